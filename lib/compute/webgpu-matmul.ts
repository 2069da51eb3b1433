/**
 * Matrix products of one batch (BatchMatMul) on WebGPU through our convolution kernels, as 1x1
 * convolutions: C = A B is a convolution of A ([M, 1, 1, K]) with B ([1, 1, K, N]); C = A B^T the
 * same with B read transposed, as the input gradient reads a filter (./webgpu-conv-gemm.ts); and
 * C = A^T B the filter gradient of a 1x1 convolution of A ([K, 1, 1, M]) whose output gradient is
 * B ([K, 1, 1, N]) (./webgpu-filter-gradient.ts). Those are a dense layer's forward pass, input
 * gradient and weight gradient.
 *
 * On the H100 tfjs's kernels took 4.3 ms of AlexNet's 48.7 ms step on its dense layers, at 32
 * rows (the batch): the forward pass of the 9,216 x 4,096 layer 1.29 ms, about 1.9 TFLOP/s, and
 * far from reading its 151 MB of weights at the GPU's memory bandwidth, since its 32 x 32 blocks
 * make 128 workgroups of 64 threads, each running the whole reduction of 9,216. Ours splits that
 * reduction across workgroups. Products with a batch, both operands transposed, other dtypes or
 * at most 16 columns run tfjs's kernel. Not yet timed on a GPU (variant `matmul-stock`).
 * test/unit/webgpu-kernels.test.ts compares all three forms with the CPU backend.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { channelsLastConvInfo } from './conv-info.js';
import { gemmFits, gemmShapeOfConvolution, gemmShapeOfInputGradient, runConvGemm } from './webgpu-conv-gemm.js';
import { kernelSwap } from './kernel-swap.js';
import { runFilterGradient } from './webgpu-filter-gradient.js';

/** Whether ours runs the products it fits (true, the default with our kernels) or tfjs's (false). */
let ours = true;

export function useMatMulAsConvolution(on: boolean): void {
  ours = on;
}

export function matMulAsConvolutionInUse(): boolean {
  return ours;
}

const batchOf = (t: tf.TensorInfo) => t.shape.slice(0, -2).reduce((a, b) => a * b, 1);

const matMul = kernelSwap(tf.BatchMatMul, 'webgpu', (stock) => (args) => {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
  const [aRows, aCols] = a.shape.slice(-2) as [number, number];
  const [bRows, bCols] = b.shape.slice(-2) as [number, number];
  const columns = transposeB ? bRows : bCols;
  if (
    !ours ||
    (transposeA && transposeB) ||
    batchOf(a) !== 1 ||
    batchOf(b) !== 1 ||
    b.dtype !== 'float32' ||
    !gemmFits(a.dtype, columns)
  )
    return stock(args);
  const backend = args.backend as unknown as WebGPUBackend;
  const rows = transposeA ? aCols : aRows;
  const depth = transposeA ? aRows : aCols;
  // Batch 1: tfjs's output shape is the longer operand's leading ones, then [rows, columns].
  const outer = (a.shape.length >= b.shape.length ? a.shape : b.shape).slice(0, -2);
  const resultShape = [...outer, rows, columns];
  if (transposeA)
    return runFilterGradient(
      backend,
      a,
      b,
      channelsLastConvInfo([depth, 1, 1, rows], [1, 1, rows, columns], 1, 'valid'),
      resultShape,
    );
  // B transposed: the input gradient of a 1x1 convolution of an x of `columns` channels with
  // filter B ([columns, depth]) whose output gradient is A.
  const shape = transposeB
    ? gemmShapeOfInputGradient(channelsLastConvInfo([rows, 1, 1, columns], [1, 1, columns, depth], 1, 'valid'))
    : gemmShapeOfConvolution(channelsLastConvInfo([rows, 1, 1, depth], [1, 1, depth, columns], 1, 'valid'));
  return runConvGemm(backend, a, b, shape, transposeB ? 'turned' : 'forward', resultShape);
});

/** Swaps ours in (or with `false` tfjs's own back). */
export function useWebGpuMatMul(on: boolean): void {
  matMul.use(on);
}
