/**
 * Batch norm's training step on WebGPU (lib/compute/webgpu-batch-norm.ts, through the BatchNorm
 * layer of lib/models/batch-norm.ts) against the CPU backend: outputs, moving statistics and all
 * three gradients, on channel counts below and past the 64-wide blocks, reductions split across
 * workgroups, and activations whose mean is large next to their spread; and the dispatches a step
 * takes beside tfjs-layers' own layer on the same backend.
 *
 * Needs a WebGPU adapter (lavapipe without a GPU: `npm run setup:lavapipe`); skips and says so
 * without one.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { channelReductionSplits, webGpuBatchNormInUse } from '../../lib/compute/webgpu-batch-norm.js';
import { countWebGpuPrograms } from '../../lib/compute/webgpu-program.js';
import { BatchNorm } from '../../lib/models/batch-norm.js';
import { startWebGpuBackend, values } from '../helpers/webgpu.js';

let unavailable = '';

before(async () => {
  const started = await startWebGpuBackend();
  if (typeof started === 'string') unavailable = started;
});

const CASES: { what: string; shape: [number, number, number, number]; mean: number; spread: number }[] = [
  { what: '6 channels, one share of rows', shape: [2, 5, 7, 6], mean: 0, spread: 3 },
  { what: '96 channels (a block and a half), rows split in four', shape: [4, 16, 16, 96], mean: 0.5, spread: 3 },
  { what: '64 channels, 32 shares of 256 rows', shape: [8, 32, 32, 64], mean: 0, spread: 3 },
  { what: 'values 40 +- 0.25 (no cancellation)', shape: [4, 20, 20, 8], mean: 40, spread: 0.25 },
];

/** One training step of a fresh layer on `backend`: y, the moving statistics, dx, dgamma, dbeta. */
async function trainingStep(c: (typeof CASES)[number], backend: string): Promise<Float32Array[]> {
  assert.ok(await tf.setBackend(backend));
  const layer = new BatchNorm({ name: `bn_${backend}`, momentum: 0.9, epsilon: 1e-5 });
  const channels = c.shape[3];
  layer.build(c.shape);
  const initial = [
    tf.tensor1d(values(channels, 4)).add(1.5),
    tf.tensor1d(values(channels, 5)),
    tf.tensor1d(values(channels, 6)),
    tf.tensor1d(values(channels, 7)).add(2),
  ];
  layer.setWeights(initial);
  tf.dispose(initial);
  const x = tf.tidy(() =>
    tf
      .tensor4d(values(tf.util.sizeFromShape(c.shape), 1), c.shape)
      .mul(c.spread)
      .add(c.mean),
  );
  const w = tf.tensor(values(x.size, 2), c.shape);
  const gamma = layer.trainableWeights[0]!.read() as tf.Variable;
  const beta = layer.trainableWeights[1]!.read() as tf.Variable;
  const xv = tf.variable(x);
  const loss = () => tf.sum<tf.Scalar>(tf.mul(layer.apply(xv, { training: true }) as tf.Tensor, w));
  const { grads } = tf.variableGrads(loss, [xv, gamma, beta]);
  const y = tf.tidy(() => layer.apply(x, { training: true }) as tf.Tensor);
  // The layer ran twice (grads and y): both folded the same batch into the moving statistics.
  const out = [y, ...layer.getWeights().slice(2), grads[xv.name]!, grads[gamma.name]!, grads[beta.name]!];
  const arrays = await Promise.all(out.map(async (t) => (await t.data()) as Float32Array));
  tf.dispose([x, w, xv, y, ...Object.values(grads)]);
  layer.weights.forEach((v) => v.dispose());
  return arrays;
}

function relativeError(actual: Float32Array, expected: Float32Array): number {
  let worst = 0;
  let scale = 1e-6;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return worst / scale;
}

for (const c of CASES) {
  test(`batch-norm training step on WebGPU matches the CPU backend: ${c.what}`, async (t) => {
    if (unavailable) return t.skip(unavailable);
    const expected = await trainingStep(c, 'cpu');
    const actual = await trainingStep(c, 'webgpu');
    assert.ok(webGpuBatchNormInUse(), 'the WGSL kernels ran');
    ['y', 'moving mean', 'moving variance', 'dx', 'dgamma', 'dbeta'].forEach((name, i) => {
      const error = relativeError(actual[i]!, expected[i]!);
      assert.ok(error < 2e-5, `${name}: relative error ${error}`);
    });
  });
}

test('the rows of a channel reduction are shared out without empty shares', () => {
  assert.deepEqual(channelReductionSplits(70, 6), { splits: 1, rowsPerSplit: 70 });
  assert.deepEqual(channelReductionSplits(32 * 112 * 112, 64), { splits: 1024, rowsPerSplit: 392 });
  for (const [rows, channels] of [
    [9 * 256, 1],
    [1000, 512],
    [1023, 64],
    [257, 3],
  ] as const) {
    const { splits, rowsPerSplit } = channelReductionSplits(rows, channels);
    assert.ok((splits - 1) * rowsPerSplit < rows && splits * rowsPerSplit >= rows, `${rows} x ${channels}`);
  }
});

/** WebGPU programs one forward and backward pass through `layer` and a sum dispatches. */
async function dispatchesPerStep(layer: tf.layers.Layer, x: tf.Variable): Promise<number> {
  const programs = countWebGpuPrograms()!;
  try {
    const weights = [...layer.trainableWeights.map((v) => v.read() as tf.Variable), x];
    const { value, grads } = tf.variableGrads(() => tf.sum(layer.apply(x, { training: true }) as tf.Tensor), weights);
    await value.data();
    tf.dispose([value, ...Object.values(grads)]);
    return programs.count();
  } finally {
    programs.stop();
  }
}

test('a batch-norm training step dispatches at most a third of what tfjs-layers does on WebGPU', async (t) => {
  if (unavailable) return t.skip(unavailable);
  assert.ok(await tf.setBackend('webgpu'));
  const shape: [number, number, number, number] = [4, 8, 8, 32];
  const x = tf.variable(tf.tensor4d(values(tf.util.sizeFromShape(shape), 8), shape));
  const stock = tf.layers.batchNormalization({ axis: -1, momentum: 0.9, epsilon: 1e-5 });
  const ours = new BatchNorm({ name: 'dispatches', momentum: 0.9, epsilon: 1e-5 });
  const [stockCount, ourCount] = [await dispatchesPerStep(stock, x), await dispatchesPerStep(ours, x)];
  // Ours: 5 forward (statistics in two, normalisation, two moving averages), 5 backward, and the sum.
  assert.ok(ourCount <= 12 && ourCount * 3 <= stockCount, `ours ${ourCount}, tfjs-layers ${stockCount}`);
  tf.dispose(x);
  stock.dispose();
  ours.dispose();
});
