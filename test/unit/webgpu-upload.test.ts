/**
 * Uploads through `queue.writeBuffer` (lib/compute/webgpu-upload.ts): host values of every dtype
 * arrive intact, an upload into a pooled buffer is seen by the kernels encoded after it and not
 * by those before, and uploads create no staging buffers. Needs a WebGPU adapter (lavapipe
 * without a GPU: `npm run setup:lavapipe`); the tests skip and say so without one.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useWriteBufferUploads } from '../../lib/compute/webgpu-upload.js';
import { startWebGpuBackend } from '../helpers/webgpu.js';

let unavailable = '';

before(async () => {
  const started = await startWebGpuBackend();
  if (typeof started === 'string') unavailable = started;
});

/** Reads `t` after a kernel on the device has consumed it (so the upload itself is exercised). */
async function throughDevice(t: tf.Tensor): Promise<number[]> {
  const out = tf.tidy(() => (t.dtype === 'bool' ? tf.logicalNot(tf.logicalNot(t)) : tf.add(t, tf.zerosLike(t))));
  const result = Array.from(await out.data());
  out.dispose();
  return result;
}

test('host values of every dtype arrive intact', async (t) => {
  if (unavailable) return t.skip(unavailable);
  useWriteBufferUploads(true);
  const floats = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e3);
  assert.deepEqual(await throughDevice(tf.tensor1d(floats)), Array.from(floats));
  assert.deepEqual(await throughDevice(tf.tensor1d([1.5, -2.25, 3])), [1.5, -2.25, 3]);
  assert.deepEqual(await throughDevice(tf.scalar(7)), [7]);
  assert.deepEqual(await throughDevice(tf.tensor1d([1, -2, 2 ** 30], 'int32')), [1, -2, 2 ** 30]);
  assert.deepEqual(await throughDevice(tf.tensor1d([true, false, true], 'bool')), [1, 0, 1]);
  // A view into a larger array: only its own elements are sent.
  const whole = Float32Array.from({ length: 16 }, (_, i) => i);
  assert.deepEqual(await throughDevice(tf.tensor1d(whole.subarray(4, 8))), [4, 5, 6, 7]);
});

test('an upload into a reused buffer is seen by later kernels in the same command buffer, not earlier ones', async (t) => {
  if (unavailable) return t.skip(unavailable);
  useWriteBufferUploads(true);
  const batch = tf.env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE');
  // Nothing is submitted in between: every kernel and upload below shares one command buffer.
  tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', 10_000);
  try {
    const x = tf.range(0, 4096, 1, 'float32');
    const results = tf.tidy(() =>
      Array.from({ length: 40 }, (_, i) => {
        // Device-written scratch of the upload's size, freed at once: its buffer is the one a
        // later upload would reuse if tfjs handed it back before the command buffer is submitted.
        tf.dispose(tf.mul(x, -1));
        return tf.sum(tf.mul(x, tf.tensor1d(new Float32Array(4096).fill(i))));
      }),
    );
    const sums = await Promise.all(results.map((r) => r.data().then((d) => d[0]!)));
    const base = (4095 * 4096) / 2;
    assert.deepEqual(
      sums,
      Array.from({ length: 40 }, (_, i) => base * i),
    );
    tf.dispose([x, ...results]);
  } finally {
    tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', batch);
  }
});

test('uploads create no staging buffers', async (t) => {
  if (unavailable) return t.skip(unavailable);
  const device = (tf.backend() as unknown as { device: { createBuffer: (...args: unknown[]) => unknown } }).device;
  const created = async (ours: boolean) => {
    useWriteBufferUploads(ours);
    const x = tf.ones([256]);
    const run = () =>
      tf.tidy(() => Array.from({ length: 50 }, (_, i) => tf.sum(tf.mul(x, tf.scalar(i)))).reduce(tf.add));
    // Warm tfjs's buffer pool and pipelines first, so only per-upload buffers are counted.
    await run().data();
    const original = device.createBuffer;
    let count = 0;
    device.createBuffer = (...args: unknown[]) => {
      count++;
      return original.apply(device, args);
    };
    try {
      const total = run();
      await total.data();
      total.dispose();
    } finally {
      device.createBuffer = original;
      x.dispose();
    }
    return count;
  };
  const stock = await created(false);
  const ours = await created(true);
  assert.ok(stock >= 50, `tfjs's upload created ${stock} buffers for 50 scalars`);
  assert.ok(ours <= 2, `writeBuffer uploads created ${ours} buffers for 50 scalars`);
  useWriteBufferUploads(true);
});
