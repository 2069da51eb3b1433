/**
 * The project's BatchNorm layer (lib/models/batch-norm.ts) against tfjs-layers' own: the same
 * outputs and moving statistics bit for bit, gradients as accurate (both checked against the formula
 * in double precision), the same weights for checkpoints, and far fewer kernels per training step.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { BatchNorm, useClosedFormBatchNorm } from '../../lib/models/batch-norm.js';
import { recalibrateBatchNorm } from '../../lib/training/batchnorm.js';

before(async () => {
  await tf.setBackend('cpu');
});

const SHAPE: [number, number, number, number] = [3, 4, 5, 6];
const EPSILON = 1e-5;

/** The stock layer and ours, built on the same input shape with the same (non-trivial) weights. */
function pair(): { stock: tf.layers.Layer; ours: BatchNorm } {
  const stock = tf.layers.batchNormalization({ name: 'stock', axis: -1, momentum: 0.9, epsilon: EPSILON });
  const ours = new BatchNorm({ name: 'ours', momentum: 0.9, epsilon: EPSILON });
  const weights = [
    tf.tensor1d([0.5, 1, 1.5, 2, -1, 0.25]),
    tf.tensor1d([0, 0.1, -0.2, 0.3, 1, -1]),
    tf.tensor1d([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
    tf.tensor1d([1, 2, 3, 0.5, 0.25, 4]),
  ];
  for (const layer of [stock, ours]) {
    layer.build(SHAPE);
    layer.setWeights(weights);
  }
  tf.dispose(weights);
  return { stock, ours };
}

/** Activations far from zero mean (a ReLU output's scale), so the centred gradient form matters. */
function input(seed: number): tf.Tensor4D {
  return tf.randomNormal(SHAPE, 40, 0.5, 'float32', seed);
}

test('training and inference outputs and moving statistics equal the stock layer bit for bit', () => {
  const { stock, ours } = pair();
  for (let step = 0; step < 3; step++) {
    const x = input(step);
    const [a, b] = [stock, ours].map((l) => l.apply(x, { training: true }) as tf.Tensor);
    assert.deepEqual(b!.dataSync(), a!.dataSync(), `training output, step ${step}`);
    tf.dispose([x, a!, b!]);
  }
  const stockWeights = stock.getWeights().map((w) => w.dataSync());
  assert.deepEqual(
    ours.getWeights().map((w) => w.dataSync()),
    stockWeights,
  );
  const x = input(9);
  const [a, b] = [stock, ours].map((l) => l.apply(x, { training: false }) as tf.Tensor);
  assert.deepEqual(b!.dataSync(), a!.dataSync(), 'inference output');
  assert.deepEqual(
    ours.weights.map((w) => w.originalName.replace('ours', 'stock')),
    stock.weights.map((w) => w.originalName),
  );
  assert.deepEqual(
    ours.weights.map((w) => w.trainable),
    stock.weights.map((w) => w.trainable),
  );
  assert.equal(ours.getClassName(), stock.getClassName());
});

/** d/dx, d/dgamma, d/dbeta of sum(bn(x) * w) for fixed weights w, by the textbook formula in doubles. */
function referenceGradients(x: Float32Array, w: Float32Array, gamma: Float32Array): Float64Array[] {
  const c = SHAPE[3];
  const n = x.length / c;
  const dx = new Float64Array(x.length);
  const dGamma = new Float64Array(c);
  const dBeta = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    let mean = 0;
    for (let i = ch; i < x.length; i += c) mean += x[i]!;
    mean /= n;
    let variance = 0;
    for (let i = ch; i < x.length; i += c) variance += (x[i]! - mean) ** 2;
    variance /= n;
    const r = 1 / Math.sqrt(variance + EPSILON);
    let sumDy = 0;
    let sumDyXhat = 0;
    for (let i = ch; i < x.length; i += c) {
      sumDy += w[i]!;
      sumDyXhat += w[i]! * (x[i]! - mean) * r;
    }
    dGamma[ch] = sumDyXhat;
    dBeta[ch] = sumDy;
    for (let i = ch; i < x.length; i += c) {
      const xhat = (x[i]! - mean) * r;
      dx[i] = ((gamma[ch]! * r) / n) * (n * w[i]! - sumDy - xhat * sumDyXhat);
    }
  }
  return [dx, dGamma, dBeta];
}

function maxError(actual: Float32Array, expected: Float64Array): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return worst / scale;
}

test('gradients for x, gamma and beta are as accurate as the stock layer, against the formula in doubles', () => {
  const { stock, ours } = pair();
  const x = input(1);
  const w = tf.randomNormal(SHAPE, 0, 1, 'float32', 2);
  const gamma = stock.getWeights()[0]!.dataSync() as Float32Array;
  const expected = referenceGradients(x.dataSync() as Float32Array, w.dataSync() as Float32Array, gamma);
  const errors = [stock, ours].map((layer) => {
    const { grads } = tf.variableGrads(
      () => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, w)),
      layer.trainableWeights.map((v) => v.read() as tf.Variable),
    );
    const dx = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(layer.apply(input, { training: true }) as tf.Tensor, w)))(x);
    const [gammaName, betaName] = layer.trainableWeights.map((v) => (v.read() as tf.Variable).name);
    const actual = [dx, grads[gammaName!]!, grads[betaName!]!].map((t) => t.dataSync() as Float32Array);
    return actual.map((a, i) => maxError(a, expected[i]!));
  });
  const [stockErrors, ourErrors] = errors as [number[], number[]];
  ['x', 'gamma', 'beta'].forEach((name, i) => {
    assert.ok(ourErrors[i]! < 1e-4, `d${name}: relative error ${ourErrors[i]}`);
    assert.ok(
      ourErrors[i]! <= Math.max(2 * stockErrors[i]!, 1e-6),
      `d${name}: ours ${ourErrors[i]}, stock ${stockErrors[i]}`,
    );
  });
});

/** Kernels of a forward and backward pass through `layer` and a sum (x is a variable, as in a net). */
async function kernelsPerTrainingStep(layer: tf.layers.Layer, x: tf.Variable): Promise<number> {
  const weights = [...layer.trainableWeights.map((v) => v.read() as tf.Variable), x];
  const step = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(() => tf.sum(layer.apply(x, { training: true }) as tf.Tensor), weights);
    tf.dispose([value, ...Object.values(grads)]);
  });
  return step.kernels.length;
}

test('a training step runs at most 60% of the stock layer kernels, and leaks no tensor', async () => {
  const { stock, ours } = pair();
  const x = tf.variable(input(3));
  const stockCount = await kernelsPerTrainingStep(stock, x);
  const ourCount = await kernelsPerTrainingStep(ours, x);
  assert.ok(ourCount <= 0.6 * stockCount, `ours ${ourCount} kernels, stock ${stockCount}`);
  const before = tf.memory().numTensors;
  await kernelsPerTrainingStep(ours, x);
  assert.equal(tf.memory().numTensors, before);
  useClosedFormBatchNorm(false);
  try {
    assert.equal(await kernelsPerTrainingStep(ours, x), stockCount, 'the bench switch gives the stock step');
  } finally {
    useClosedFormBatchNorm(true);
  }
});

test('recalibration drives the layer through its momentum, as it does the stock layer', async () => {
  const layer = new BatchNorm({ name: 'recalibrated', momentum: 0.99, epsilon: EPSILON });
  const model = tf.sequential({ layers: [tf.layers.inputLayer({ inputShape: [1, 2, 1] }), layer] });
  // Two batches with means 1 and 5 and (biased) variance 1 each.
  const batches = [
    [0, 2],
    [4, 6],
  ].map((values) => () => tf.tensor4d(values, [1, 1, 2, 1]));
  assert.equal(await recalibrateBatchNorm(model, batches), 2);
  const [, , movingMean, movingVariance] = layer.getWeights();
  assert.deepEqual(Array.from(movingMean!.dataSync()), [3]);
  assert.deepEqual(Array.from(movingVariance!.dataSync()), [1]);
  assert.equal(layer.momentum, 0.99);
});

test('inputs that are not [N, H, W, C] are refused with the layer name', () => {
  const layer = new BatchNorm({ name: 'flat', momentum: 0.9, epsilon: EPSILON });
  assert.throws(() => layer.build([null, 8]), /flat: BatchNorm takes \[N, H, W, C\] inputs/);
});
