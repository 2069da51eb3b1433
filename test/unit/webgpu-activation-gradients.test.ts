/**
 * The ReLU and leaky-ReLU gradients on WebGPU (lib/compute/webgpu-activation-gradients.ts) against
 * tfjs's on the CPU backend, bit for bit (zeros, negatives and the sign of zero included), and the
 * programs they dispatch. Needs a WebGPU adapter (lavapipe without a GPU: `npm run setup:lavapipe`);
 * skips and says so without one.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { countWebGpuPrograms } from '../../lib/compute/webgpu-program.js';
import { useWebGpuActivationGradients } from '../../lib/compute/webgpu-activation-gradients.js';
import { startWebGpuBackend, values } from '../helpers/webgpu.js';

let unavailable = '';

before(async () => {
  const started = await startWebGpuBackend();
  if (typeof started === 'string') unavailable = started;
});

const ACTIVATIONS: Array<[string, (x: tf.Tensor) => tf.Tensor]> = [
  ['relu', (x) => tf.relu(x)],
  ['leaky relu 0.2', (x) => tf.leakyRelu(x, 0.2)],
];

/** x with exact zeros among its values; dy with negatives (dy * 0 is then -0). */
async function gradient(backend: string, activation: (x: tf.Tensor) => tf.Tensor): Promise<Float32Array> {
  assert.ok(await tf.setBackend(backend));
  const shape = [3, 7, 5, 11];
  const x = tf.tidy(() => tf.round(tf.mul(tf.tensor(values(1155, 1), shape), 4)));
  const dy = tf.tensor(values(1155, 2), shape);
  const dx = tf.grad((input: tf.Tensor) => tf.mul(activation(input), 1))(x, dy);
  const data = (await dx.data()) as Float32Array;
  tf.dispose([x, dy, dx]);
  return data;
}

for (const [name, activation] of ACTIVATIONS) {
  test(`the ${name} gradient on WebGPU is the CPU backend's, bit for bit`, async (t) => {
    if (unavailable) return t.skip(unavailable);
    const expected = await gradient('cpu', activation);
    // dy * 0 for x <= 0 with a negative dy: ReLU's gradient has negative zeros to keep.
    if (name === 'relu')
      assert.ok(
        expected.some((v) => Object.is(v, -0)),
        'the case has negative zeros',
      );
    assert.deepEqual(await gradient('webgpu', activation), expected);
  });
}

test('each activation gradient is one program on WebGPU (tfjs: two for ReLU, three for leaky ReLU)', async (t) => {
  if (unavailable) return t.skip(unavailable);
  assert.ok(await tf.setBackend('webgpu'));
  const programsOfBackward = (activation: (x: tf.Tensor) => tf.Tensor) =>
    tf.tidy(() => {
      const x = tf.tensor(values(64, 3), [8, 8]);
      const dy = tf.onesLike(x);
      const forward = countWebGpuPrograms()!;
      tf.dispose(activation(x));
      forward.stop();
      const both = countWebGpuPrograms()!;
      tf.grad(activation)(x, dy);
      both.stop();
      return both.count() - forward.count();
    });
  for (const [name, activation] of ACTIVATIONS) {
    assert.equal(programsOfBackward(activation), 1, name);
  }
  useWebGpuActivationGradients(false);
  try {
    assert.deepEqual(
      ACTIVATIONS.map(([, activation]) => programsOfBackward(activation)),
      [2, 3],
    );
  } finally {
    useWebGpuActivationGradients(true);
  }
});
