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

const NAIVE = 'WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE';

let stock: tf.KernelConfig | undefined;
let inUse = false;

function byStride(args: Parameters<tf.KernelFunc>[0]): ReturnType<tf.KernelFunc> {
  const { strides } = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const unstrided = (Array.isArray(strides) ? strides : [strides]).every((s) => s === 1);
  if (!unstrided) return stock!.kernelFunc(args);
  const naive = tf.env().getBool(NAIVE);
  tf.env().set(NAIVE, false);
  try {
    return stock!.kernelFunc(args);
  } finally {
    tf.env().set(NAIVE, naive);
  }
}

/** Chooses the kernel by stride (or with `false` leaves the choice to tfjs's flag again). */
export function useInputGradientByStride(on = true): void {
  stock ??= tf.getKernel(tf.Conv2DBackpropInput, 'webgpu');
  if (!stock) throw new Error('the webgpu backend has no Conv2DBackpropInput kernel; is it loaded?');
  tf.unregisterKernel(tf.Conv2DBackpropInput, 'webgpu');
  tf.registerKernel(on ? { ...stock, kernelFunc: byStride } : stock);
  inUse = on;
}

export function inputGradientByStrideInUse(): boolean {
  return inUse;
}
