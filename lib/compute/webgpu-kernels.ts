/**
 * Faster replacements for @tensorflow/tfjs-backend-webgpu kernels that dominate conv-net training,
 * switched in and out together (the GPU bench times both ways).
 */
import { useDeviceSideGradients } from './device-gradients.js';
import { useWebGpuDropoutMask } from './dropout.js';
import { useFusedAdam } from './webgpu-adam.js';
import { useWebGpuActivationGradients } from './webgpu-activation-gradients.js';
import { useWebGpuBatchNorm } from './webgpu-batch-norm.js';
import { useWebGpuConv2D } from './webgpu-conv2d.js';
import { useWebGpuFilterGradient, webGpuFilterGradientInUse } from './webgpu-filter-gradient.js';
import { useInputGradientByStride } from './webgpu-input-gradient.js';
import { useWebGpuMatMul } from './webgpu-matmul.js';
import { useWriteBufferUploads } from './webgpu-upload.js';

/** Whether the 'webgpu' backend runs this module's kernels now (false: tfjs's own). */
export function fastWebGpuKernelsInUse(): boolean {
  return webGpuFilterGradientInUse();
}

/**
 * Swaps the fast kernels into the 'webgpu' backend (after it is registered), or with `false` puts
 * tfjs's own back (the GPU bench times both): the filter gradient (./webgpu-filter-gradient.ts),
 * the fused Adam update (./webgpu-adam.ts), the device-side Mean and Sum gradients
 * (./device-gradients.ts), uploads through the queue (./webgpu-upload.ts), the input-gradient
 * kernel chosen by stride (./webgpu-input-gradient.ts), the forward convolution
 * (./webgpu-conv2d.ts; it and the unstrided input gradient as one implicit matrix product,
 * ./webgpu-conv-gemm.ts), matrix products as 1x1 convolutions (./webgpu-matmul.ts), batch norm's
 * training step (./webgpu-batch-norm.ts), dropout masks drawn on the device (./dropout.ts) and the
 * ReLU gradients (./webgpu-activation-gradients.ts). Safe to call more than once.
 */
export function useFastWebGpuKernels(fast = true): void {
  useWebGpuFilterGradient(fast);
  useFusedAdam(fast);
  useDeviceSideGradients(fast);
  useWriteBufferUploads(fast);
  useInputGradientByStride(fast);
  useWebGpuConv2D(fast);
  useWebGpuMatMul(fast);
  useWebGpuBatchNorm(fast);
  useWebGpuDropoutMask(fast);
  useWebGpuActivationGradients(fast);
}
