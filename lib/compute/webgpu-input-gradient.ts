/**
 * Which of tfjs's two WebGPU input-gradient kernels (Conv2DBackpropInput, also the forward pass
 * of a transposed convolution) runs, by stride. tfjs defaults to one thread per input element
 * (WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE); its tiled matrix product reads every position of the
 * stride-dilated gradient, most of them zeros when strided. Timed on one H100 (gpu/kernels.ts,
 * paper sizes): unstrided 3x3 layers 1.8x faster as a matrix product (ResNet18 layer1 23.5 ->
 * 13.1 ms, layer4 5.1 -> 2.8 ms), 1x1 layers the same, strided layers slower (AlexNet conv1 6x,
 * the DCGAN's stride-2 layers 0.9x). So unstrided convolutions get the matrix product and
 * strided ones keep the default. Both kernels match the CPU backend on every model's shapes
 * (test/unit/webgpu-kernels.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { kernelSwap } from './kernel-swap.js';

const NAIVE = 'WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE';

/** Unstrided convolutions through tfjs's matrix product, strided ones through its default. */
const inputGradient = kernelSwap(tf.Conv2DBackpropInput, 'webgpu', (stock) => (args) => {
  const { strides } = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const unstrided = (Array.isArray(strides) ? strides : [strides]).every((s) => s === 1);
  if (!unstrided) return stock(args);
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
