/**
 * Uploads of host values to WebGPU through `queue.writeBuffer`. tfjs's `uploadToGPU` creates a
 * mapped staging buffer for every tensor whose values live on the host, ends the compute pass
 * and records a copy; the staging buffer is destroyed after the next submit. Training uploads a
 * scalar for nearly every constant in the graph (batch-norm epsilon, loss weights, divisors):
 * 165 per ResNet18 step, 463 per GoogLeNet step. On an H100 through Dawn/Vulkan buffer creation
 * alone was 10-15% of a step's host time, and the extra passes and copies add to every submit
 * (gpu/host-profile.ts). `writeBuffer` copies through Dawn's own staging ring and keeps the pass
 * open.
 *
 * Ordering: a write queued with `writeBuffer` lands before the next submitted command buffer,
 * i.e. before every kernel tfjs is still encoding, which is where the tensor is first read. The
 * destination comes from tfjs's pool of free buffers, and tfjs returns a buffer to that pool only
 * after the command buffer that last used it was submitted (`commandQueueOwnedIds`), so nothing
 * still being encoded can see the write early.
 */
import * as tf from '@tensorflow/tfjs';

interface TensorData {
  dtype: tf.DataType;
  shape: number[];
  values: tf.backend_util.BackendValues | null;
  resource: unknown;
}

/** The parts of tfjs-webgpu's backend this touches (private in its typings). */
interface WebGpuBackendInternals {
  tensorMap: { get(dataId: object): TensorData };
  bufferManager: { acquireBuffer(size: number, usage: number): GPUBufferLike };
  queue: { writeBuffer(buffer: GPUBufferLike, offset: number, data: ArrayBufferView): void };
  uploadToGPU: (this: WebGpuBackendInternals, dataId: object) => void;
}
type GPUBufferLike = object;

let stock: ((this: WebGpuBackendInternals, dataId: object) => void) | undefined;

/** Storage buffers as tfjs allocates them for tensors. */
const usage = () => {
  const flags = (globalThis as unknown as { GPUBufferUsage: Record<string, number> }).GPUBufferUsage;
  return flags.STORAGE! | flags.COPY_SRC! | flags.COPY_DST!;
};

function writeBufferUpload(this: WebGpuBackendInternals, dataId: object): void {
  const data = this.tensorMap.get(dataId);
  const count = tf.util.sizeFromShape(data.shape);
  if (data.resource != null || !data.values || count === 0 || data.dtype === 'complex64' || data.dtype === 'string') {
    stock!.call(this, dataId);
    return;
  }
  // tfjs keeps bool as int32 on the GPU, 4 bytes per element like float32 and int32.
  const view =
    data.dtype === 'float32'
      ? data.values instanceof Float32Array
        ? data.values
        : Float32Array.from(data.values as ArrayLike<number>)
      : data.values instanceof Int32Array
        ? data.values
        : Int32Array.from(data.values as ArrayLike<number>);
  const buffer = this.bufferManager.acquireBuffer(count * 4, usage());
  this.queue.writeBuffer(buffer, 0, view.subarray(0, count));
  data.resource = buffer;
  // Once uploaded the values are not kept on the host (as tfjs does).
  data.values = null;
}

/** Puts the writeBuffer upload in place on the registered webgpu backend, or tfjs's back with `false`. */
export function useWriteBufferUploads(on = true): void {
  const backend = tf.findBackend('webgpu');
  if (!backend) throw new Error('the webgpu backend is not registered');
  const proto = Object.getPrototypeOf(backend) as WebGpuBackendInternals;
  stock ??= proto.uploadToGPU;
  proto.uploadToGPU = on ? writeBufferUpload : stock;
}
