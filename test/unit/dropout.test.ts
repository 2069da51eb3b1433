/**
 * Dropout masks from (seed, index) (lib/compute/dropout.ts) and the Dropout layer
 * (lib/models/dropout.ts): the share dropped, the scale of kept values, reproducibility from the
 * seed, and the WebGPU kernel's masks equal to the host's bit for bit (that part needs a WebGPU
 * adapter, lavapipe without a GPU: `npm run setup:lavapipe`, and skips and says so without one).
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { dropout, dropoutMask, hash32 } from '../../lib/compute/dropout.js';
import { Dropout } from '../../lib/models/dropout.js';
import { withSeededMathRandom } from '../../lib/training/determinism.js';
import { startWebGpuBackend } from '../helpers/webgpu.js';

let webgpu = '';

before(async () => {
  const started = await startWebGpuBackend();
  if (typeof started === 'string') webgpu = started;
});

async function maskOn(backend: string, shape: number[], rate: number, seed: number): Promise<Float32Array> {
  assert.ok(await tf.setBackend(backend));
  const mask = dropoutMask(shape, rate, seed);
  const values = (await mask.data()) as Float32Array;
  mask.dispose();
  return values;
}

test('the hash is a bijection on the indices a mask uses, and masks drop their share at the right scale', async () => {
  const seen = new Set<number>();
  for (let i = 0; i < 200_000; i++) seen.add(hash32(i));
  assert.equal(seen.size, 200_000);
  for (const rate of [0.2, 0.5]) {
    const mask = await maskOn('cpu', [100, 1000], rate, 7);
    const scale = Math.fround(1 / Math.fround(1 - rate));
    const dropped = mask.filter((v) => v === 0).length;
    assert.equal(mask.filter((v) => v !== 0 && v !== scale).length, 0, 'kept values are 1 / (1 - rate)');
    // Five standard deviations of a binomial count.
    const sd = Math.sqrt(mask.length * rate * (1 - rate));
    assert.ok(Math.abs(dropped - rate * mask.length) < 5 * sd, `rate ${rate}: ${dropped} of ${mask.length} dropped`);
  }
});

test('a seed gives one mask; another seed an unrelated one', async () => {
  const a = await maskOn('cpu', [50_000], 0.5, 1);
  assert.deepEqual(await maskOn('cpu', [50_000], 0.5, 1), a);
  const b = await maskOn('cpu', [50_000], 0.5, 2);
  const differing = a.filter((v, i) => v !== b[i]).length;
  // Independent halves disagree on about half the elements.
  assert.ok(Math.abs(differing - 25_000) < 5 * Math.sqrt(50_000 * 0.25), `${differing} of 50,000 differ`);
});

test('the Dropout layer passes its input through at inference, and in training its masks follow Math.random', async () => {
  assert.ok(await tf.setBackend('cpu'));
  const layer = new Dropout({ rate: 0.5, name: 'drop' });
  const x = tf.ones([4, 256]);
  assert.deepEqual((layer.apply(x, { training: false }) as tf.Tensor).dataSync(), x.dataSync());
  const trained = (seed: number) =>
    withSeededMathRandom(seed, () => (layer.apply(x, { training: true }) as tf.Tensor).dataSync());
  assert.deepEqual(trained(3), trained(3));
  assert.notDeepEqual(trained(3), trained(4));
  const input = tf.variable(x, true, 'dropin');
  const { value, grads } = tf.variableGrads(() => tf.sum(dropout(input, 0.5, 9)), [input]);
  const mask = dropoutMask([4, 256], 0.5, 9).dataSync();
  assert.deepEqual(grads.dropin!.dataSync(), mask, 'the gradient is the mask');
  tf.dispose([value, input, ...Object.values(grads)]);
  assert.throws(() => new Dropout({ rate: 1, name: 'all' }), /all: dropout rate must be in \[0, 1\) \(got 1\)/);
});

test('on WebGPU the mask kernel gives the host mask bit for bit', async (t) => {
  if (webgpu) return t.skip(webgpu);
  for (const [shape, rate, seed] of [
    [[7, 13], 0.5, 0],
    [[32, 13, 13, 64], 0.5, 123_456_789],
    [[300, 1000], 0.2, 2 ** 32 - 1],
  ] as const) {
    const host = await maskOn('cpu', [...shape], rate, seed);
    const device = await maskOn('webgpu', [...shape], rate, seed);
    assert.deepEqual(device, host, `shape [${shape.join(', ')}], rate ${rate}, seed ${seed}`);
  }
});
