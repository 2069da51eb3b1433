/**
 * The forward convolution (Conv2D) on WebGPU through our implicit matrix product
 * (./webgpu-conv-gemm.ts) where it takes the layer: float32, NHWC, no dilation, more than 16
 * output channels. Anything else, and everything while `useConvGemm(false)`, runs tfjs's kernel.
 * Layers with a bias or an activation run FusedConv2D, which this leaves to tfjs.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { channelsLastConvInfo } from './conv-info.js';
import { convGemmTakes, gemmShapeOfConvolution, runConvGemm } from './webgpu-conv-gemm.js';
import { kernelSwap } from './kernel-swap.js';

const forward = kernelSwap(tf.Conv2D, 'webgpu', (stock) => (args) => {
  const { strides, pad, dataFormat, dilations, dimRoundingMode } = args.attrs as unknown as tf.Conv2DAttrs;
  const { x, filter } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
  const undilated = (Array.isArray(dilations) ? dilations : [dilations ?? 1]).every((d) => d === 1);
  if (dataFormat === 'NCHW' || !undilated || filter.dtype !== 'float32' || !convGemmTakes(x.dtype, filter.shape[3]!))
    return stock(args);
  const info = channelsLastConvInfo(x.shape, filter.shape, strides, pad, dimRoundingMode);
  return runConvGemm(args.backend as unknown as WebGPUBackend, x, filter, gemmShapeOfConvolution(info), 'forward');
});

/** Swaps ours in (or with `false` tfjs's own back). */
export function useWebGpuConv2D(on: boolean): void {
  forward.use(on);
}
