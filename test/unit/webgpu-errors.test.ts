/**
 * Errors the WebGPU device reports fail the step that follows them (lib/compute/webgpu-errors.ts):
 * a program Dawn cannot run otherwise leaves zeros where its results should be.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { throwIfWebGpuFailed, watchWebGpuErrors, WebGpuValidationError } from '../../lib/compute/webgpu-errors.js';
import { FlatProgram } from '../../lib/compute/webgpu-program.js';
import { NON_RETRYABLE_TYPES } from '../../lib/errors.js';
import { takeData } from '../../lib/training/loop.js';
import { startWebGpuBackend } from '../helpers/webgpu.js';

let unavailable = '';
before(async () => {
  const started = await startWebGpuBackend();
  if (typeof started === 'string') unavailable = started;
});

/** A device stand-in whose errors the test raises; put back on the real device after. */
function fakeDevice() {
  const device: { onuncapturederror: ((e: { error: object }) => void) | null } = { onuncapturederror: null };
  watchWebGpuErrors(device);
  return (error: object) => device.onuncapturederror!({ error });
}

test('a validation error is thrown once, non-retryable, with the device message and a count of the rest', () => {
  class GPUValidationError {
    message =
      'Binding size (150994944) is larger than the maximum storage buffer binding size (134217728).\n - While validating';
  }
  const raise = fakeDevice();
  raise(new GPUValidationError());
  raise(new GPUValidationError());
  assert.throws(
    () => throwIfWebGpuFailed(),
    (err: Error) =>
      err instanceof WebGpuValidationError &&
      /results are not valid: Binding size \(150994944\) is larger .*\(134217728\)\. \(and 1 more device error/.test(
        err.message,
      ),
  );
  assert.ok(NON_RETRYABLE_TYPES.includes('WebGpuValidationError'));
  assert.doesNotThrow(() => throwIfWebGpuFailed(), 'reported once');
});

test('an out-of-memory error is thrown as a plain (retryable) error', () => {
  class GPUOutOfMemoryError {
    message = 'Allocation failed';
  }
  fakeDevice()(new GPUOutOfMemoryError());
  assert.throws(
    () => throwIfWebGpuFailed(),
    (err: Error) => !(err instanceof WebGpuValidationError) && /Allocation failed/.test(err.message),
  );
});

test('on WebGPU, a program the device rejects fails the readback instead of returning zeros', async (t) => {
  if (unavailable) return t.skip(unavailable);
  assert.ok(await tf.setBackend('webgpu'));
  const backend = tf.backend() as WebGPUBackend;
  watchWebGpuErrors(backend.device);
  const input = tf.ones([8]);
  // WGSL that does not compile: the device reports a validation error and runs nothing.
  const broken = new FlatProgram('pneumoganTestBroken', [8], ['x'], '', 'setOutputAtIndex(index, notDeclared);');
  const info = backend.runWebGPUProgram(broken, [input], 'float32');
  const result = tf.engine().makeTensorFromTensorInfo(info);
  await assert.rejects(takeData(result), WebGpuValidationError);
  // The next readback of a sound program is not blamed for the earlier one.
  assert.deepEqual([...(await takeData(tf.mul(input, 2)))], Array(8).fill(2));
  input.dispose();
});
