/**
 * The device-side gradients of Mean and Sum (lib/compute/device-gradients.ts) give tfjs's own
 * values bit for bit, on every kind of axis argument the models and losses use, and no longer
 * build a ones tensor on the host. On the CPU backend; the WebGPU backend runs the same ops
 * (Tile, Div) through its kernels, which test/unit/webgpu-backend.test.ts covers end to end.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useDeviceSideGradients } from '../../lib/compute/device-gradients.js';

before(async () => {
  await tf.setBackend('cpu');
});
after(() => useDeviceSideGradients(false));

const CASES: { shape: number[]; axis?: number | number[]; keepDims?: boolean }[] = [
  { shape: [4, 5, 6, 3], axis: [0, 1, 2] }, // batch-norm moments
  { shape: [4, 5, 6, 3], axis: [0, 1, 2], keepDims: true },
  { shape: [4, 5, 6, 3] }, // a loss: every axis
  { shape: [4, 7], axis: -1 },
  { shape: [4, 7], axis: 0, keepDims: true },
  { shape: [2, 3, 4], axis: [2, 0] },
];

/** Gradients of a weighted mean and sum (so dy is not uniform) with respect to x. */
function gradients(x: tf.Tensor, axis: number | number[] | undefined, keepDims: boolean | undefined) {
  return tf.tidy(() =>
    (['mean', 'sum'] as const).map((op) =>
      tf
        .grad((input: tf.Tensor) => {
          const reduced = op === 'mean' ? tf.mean(input, axis, keepDims) : tf.sum(input, axis, keepDims);
          return tf.sum(tf.mul(reduced, tf.range(1, reduced.size + 1).reshape(reduced.shape)));
        })(x)
        .arraySync(),
    ),
  );
}

test('Mean and Sum gradients equal tfjs own, bit for bit, for every axis form', () => {
  for (const { shape, axis, keepDims } of CASES) {
    const x = tf.randomNormal(shape, 0, 1, 'float32', 7);
    useDeviceSideGradients(false);
    const expected = gradients(x, axis, keepDims);
    useDeviceSideGradients(true);
    const actual = gradients(x, axis, keepDims);
    assert.deepEqual(actual, expected, `shape ${JSON.stringify(shape)}, axis ${JSON.stringify(axis)}`);
    x.dispose();
  }
});

test('the gradients build no ones tensor on the host', async () => {
  const x = tf.randomNormal([8, 16, 16, 4]);
  const kernelsOf = async () =>
    (await tf.profile(() => tf.grad((input: tf.Tensor) => tf.sum(tf.mean(input, [0, 1, 2])))(x))).kernels.map(
      (k) => k.name,
    );
  useDeviceSideGradients(false);
  const stock = await kernelsOf();
  useDeviceSideGradients(true);
  const ours = await kernelsOf();
  // tfjs's own multiplies by a host-built ones tensor; ours tiles dy on the device instead.
  assert.ok(stock.includes('Multiply') && !stock.includes('Tile'), stock.join(' '));
  assert.ok(ours.includes('Tile') && !ours.includes('Multiply'), ours.join(' '));
  x.dispose();
});
