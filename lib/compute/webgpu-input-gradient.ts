/**
 * Which WebGPU kernel computes an input gradient (Conv2DBackpropInput, also the forward pass of a
 * transposed convolution), by stride:
 * - unstrided: our implicit matrix product (./webgpu-conv-gemm.ts) where it takes the layer, else
 *   tfjs's own tiled matrix product, which tfjs ships behind
 *   WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE=false. Timed on one H100 (gpu/kernels.ts, paper sizes),
 *   tfjs's matrix product was 1.8x faster than its default on unstrided 3x3 layers (ResNet18
 *   layer1 23.5 -> 13.1 ms, layer4 5.1 -> 2.8 ms), the same on 1x1 layers;
 * - strided: tfjs's default, one thread per input element. A matrix product reads every position
 *   of the stride-dilated gradient, most of them zeros: 6x slower on AlexNet's conv1, 0.9x on the
 *   DCGAN's stride-2 layers.
 * Every kernel matches the CPU backend on every model's shapes (test/unit/webgpu-kernels.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { channelsLastConvInfo } from './conv-info.js';
import { convGemmTakes, gemmShapeOfInputGradient, runConvGemm } from './webgpu-conv-gemm.js';
import { kernelSwap } from './kernel-swap.js';

const NAIVE = 'WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE';

const inputGradient = kernelSwap(tf.Conv2DBackpropInput, 'webgpu', (stock) => (args) => {
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } =
    args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const unstrided = (Array.isArray(strides) ? strides : [strides]).every((s) => s === 1);
  if (!unstrided) return stock(args);
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  if (dataFormat !== 'NCHW' && filter.dtype === 'float32' && convGemmTakes(dy.dtype, inputShape[3])) {
    const info = channelsLastConvInfo(inputShape, filter.shape, 1, pad, dimRoundingMode);
    const backend = args.backend as unknown as WebGPUBackend;
    return runConvGemm(backend, dy, filter, gemmShapeOfInputGradient(info), 'turned');
  }
  const naive = tf.env().getBool(NAIVE);
  tf.env().set(NAIVE, false);
  try {
    return stock(args);
  } finally {
    tf.env().set(NAIVE, naive);
  }
});

/** Chooses the kernel by stride (or with `false` leaves the choice to tfjs's flag again). */
export function useInputGradientByStride(on = true): void {
  inputGradient.use(on);
}

export function inputGradientByStrideInUse(): boolean {
  return inputGradient.inUse();
}
