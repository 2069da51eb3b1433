/**
 * Settings a GPU run can time each bench row under, beside its default, in the same process on
 * the same adapter (timings on a lent GPU vary by tens of percent between runs, so a choice is
 * only judged within one run):
 *   stock      tfjs's own WebGPU kernels, optimizer and gradients (PNEUMOGAN_WEBGPU_KERNELS=stock),
 *              tfjs-layers' batch-norm training step, and dropout masks computed on the host
 *   stock-bn   only the batch-norm training step is tfjs-layers' (differentiated op by op)
 *   filter-first  our filter gradient in its first form (lib/compute/webgpu-filter-gradient.ts),
 *              not the later ones (lib/compute/webgpu-filter-gradient-rows.ts, -gemm.ts)
 *   conv-stock tfjs's forward convolution and its matrix product for unstrided input gradients,
 *              not our implicit matrix product (lib/compute/webgpu-conv-gemm.ts)
 *   matmul-stock  tfjs's matrix products, not ours as 1x1 convolutions (lib/compute/webgpu-matmul.ts)
 *   submit-N   tfjs submits its queued kernels to the GPU every N dispatches (its default is 15)
 */
import * as tf from '@tensorflow/tfjs';
import { convGemmInUse, useConvGemm } from '../lib/compute/webgpu-conv-gemm.js';
import { matMulAsConvolutionInUse, useMatMulAsConvolution } from '../lib/compute/webgpu-matmul.js';
import { filterGradientFirstFormInUse, useFilterGradientFirstForm } from '../lib/compute/webgpu-filter-gradient.js';
import { fastWebGpuKernelsInUse, useFastWebGpuKernels } from '../lib/compute/webgpu-kernels.js';
import { closedFormBatchNormInUse, useClosedFormBatchNorm } from '../lib/models/batch-norm.js';
import { setFor } from './switches.js';

export interface Variant {
  name: string;
  /** Puts the setting in place; returns what puts the previous one back. */
  apply(): () => void;
}

const SUBMIT_BATCH = 'WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE';

const stockBatchNorm = () => setFor(closedFormBatchNormInUse, useClosedFormBatchNorm, false);

function variant(name: string): Variant {
  if (name === 'stock')
    return {
      name,
      apply: () => {
        const restoreKernels = setFor(fastWebGpuKernelsInUse, useFastWebGpuKernels, false);
        const restoreBatchNorm = stockBatchNorm();
        return () => {
          restoreKernels();
          restoreBatchNorm();
        };
      },
    };
  if (name === 'stock-bn') return { name, apply: stockBatchNorm };
  if (name === 'filter-first')
    return { name, apply: () => setFor(filterGradientFirstFormInUse, useFilterGradientFirstForm, true) };
  if (name === 'conv-stock') return { name, apply: () => setFor(convGemmInUse, useConvGemm, false) };
  if (name === 'matmul-stock')
    return { name, apply: () => setFor(matMulAsConvolutionInUse, useMatMulAsConvolution, false) };
  const submit = /^submit-(\d+)$/.exec(name);
  if (submit)
    return {
      name,
      apply: () =>
        setFor(
          () => tf.env().getNumber(SUBMIT_BATCH),
          (value) => tf.env().set(SUBMIT_BATCH, value),
          Number(submit[1]),
        ),
    };
  throw new Error(`unknown variant "${name}": use stock, stock-bn, filter-first, conv-stock, matmul-stock or submit-N`);
}

/** "stock,submit-60" -> variants; an empty or missing list gives none. */
export function parseVariants(list: string | undefined): Variant[] {
  return (list ?? '')
    .split(',')
    .filter(Boolean)
    .map((name) => variant(name.trim()));
}

/** Runs `body` under `v`, and puts the previous setting back whatever happens. */
export async function underVariant<T>(v: Variant, body: () => Promise<T>): Promise<T> {
  const restore = v.apply();
  try {
    return await body();
  } finally {
    restore();
  }
}
