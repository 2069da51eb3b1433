/**
 * Our filter gradient on WebGPU. Conv2DBackpropFilter (the filter gradient of every convolution)
 * is the stock backend's worst kernel: one GPU thread per filter weight, each summing over the
 * whole batch and output plane alone (N x Ho x Wo multiply-adds in sequence: 100,352 for a
 * ResNet18 3x3 layer at batch 32, with 36,864 threads, a fraction of what an H100 runs at once),
 * reading x with a stride of the channel count. Here it is a matrix product, dW[k, co] = sum over
 * m of X[m, k] * dY[m, co], with m = (n, ho, wo) and k = (kh, kw, ci), X the patches of x,
 * gathered on the fly (implicit im2col, no patch matrix in memory):
 * - each workgroup computes a 64 x 64 block of dW with 16 x 16 threads of 4 x 4 results each
 *   (64 x 16 for narrow layers), staging 16 rows of X and dY at a time in workgroup memory
 *   (reads along k and co are contiguous in NHWC);
 * - the reduction over m is split across workgroups (split-K) so that even a layer with few
 *   weights fills the GPU; a second, small kernel sums the partial blocks.
 *
 * Only float32 NHWC takes this path; anything else goes to the stock kernel saved at
 * registration. test/unit/webgpu-kernels.test.ts compares every case with the CPU backend. This
 * file holds the first form; ./webgpu-filter-gradient-rows.ts and ./webgpu-filter-gradient-gemm.ts
 * the later ones.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { channelsLastConvInfo } from './conv-info.js';
import { kernelSwap } from './kernel-swap.js';
import { BLOCK_K, columnsPerThread, FilterGradientProgram } from './webgpu-filter-gradient-program.js';
import { FilterGradientRowsPartials, ROWS_PER_STAGE } from './webgpu-filter-gradient-rows.js';
import { FilterGradientGemmPartials, gemmBlockRows, GEMM_ROWS_PER_STAGE } from './webgpu-filter-gradient-gemm.js';
import { sumOfPartials } from './webgpu-program.js';

type Kernel<A> = (args: { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend; attrs: A }) => tf.TensorInfo;
type Uniform = { type: 'int32'; data: number[] };

/** Reduction rows the first form stages at once (blocks and threads: ./webgpu-filter-gradient-program.ts). */
const TILE_M = 16;
/** Workgroups to aim for: several per streaming multiprocessor of a large GPU (an H100 has 132). */
const TARGET_WORKGROUPS = 1024;
/** The fewest reduction rows a split gets, so that loading tiles does not dominate. */
const MIN_ROWS_PER_SPLIT = 256;

const filterGradient = kernelSwap(
  tf.Conv2DBackpropFilter,
  'webgpu',
  (stock) =>
    fastConv2DBackpropFilter(stock as unknown as Kernel<tf.Conv2DBackpropFilterAttrs>) as unknown as tf.KernelFunc,
);

/** Swaps ours in (or with `false` tfjs's own back). */
export function useWebGpuFilterGradient(on: boolean): void {
  filterGradient.use(on);
}

export function webGpuFilterGradientInUse(): boolean {
  return filterGradient.inUse();
}

/**
 * Whether our filter gradient runs in its first form (below) instead of the later ones: the row
 * table for layers of at most 16 output channels (./webgpu-filter-gradient-rows.ts), the larger
 * blocks of ./webgpu-filter-gradient-gemm.ts for wider ones.
 */
let firstForm = false;

/** Chooses the filter gradient's first form (true) or the later ones (false, the default). */
export function useFilterGradientFirstForm(on: boolean): void {
  firstForm = on;
}

export function filterGradientFirstFormInUse(): boolean {
  return firstForm;
}

/**
 * How the reduction over m = N x Ho x Wo is split for one filter gradient whose blocks have
 * `blockRows` filter rows (64, or 128 in the third form).
 */
export function filterGradientSplits(
  rows: number,
  filterRows: number,
  outChannels: number,
  blockRows = BLOCK_K,
): number {
  const blocks = Math.ceil(filterRows / blockRows) * Math.ceil(outChannels / (16 * columnsPerThread(outChannels)));
  const wanted = Math.ceil(TARGET_WORKGROUPS / blocks);
  return Math.max(1, Math.min(wanted, Math.floor(rows / MIN_ROWS_PER_SPLIT)));
}

function fastConv2DBackpropFilter(stock: Kernel<tf.Conv2DBackpropFilterAttrs>): Kernel<tf.Conv2DBackpropFilterAttrs> {
  return (args) => {
    const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs;
    if (dataFormat === 'NCHW' || x.dtype !== 'float32' || dy.dtype !== 'float32') return stock(args);
    const info = channelsLastConvInfo(x.shape, filterShape, strides, pad, dimRoundingMode);
    return runFilterGradient(args.backend, x, dy, info, filterShape);
  };
}

/**
 * Our filter gradient of the convolution `info` describes, from float32 NHWC `x` and `dy`, as a
 * tensor of `resultShape` (the filter's, or any of its size).
 */
export function runFilterGradient(
  backend: WebGPUBackend,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  resultShape: number[],
): tf.TensorInfo {
  const rows = info.batchSize * info.outHeight * info.outWidth;
  const filterRows = info.filterHeight * info.filterWidth * info.inChannels;
  const form = firstForm ? 'first' : columnsPerThread(info.outChannels) === 1 ? 'rows' : 'gemm';
  const splits = filterGradientSplits(
    rows,
    filterRows,
    info.outChannels,
    form === 'gemm' ? gemmBlockRows(filterRows) : BLOCK_K,
  );
  const stage = { first: TILE_M, rows: ROWS_PER_STAGE, gemm: GEMM_ROWS_PER_STAGE }[form];
  const rowsPerSplit = Math.ceil(rows / splits / stage) * stage;
  const int = (v: number): Uniform => ({ type: 'int32', data: [v] });
  const shape: [number, number, number] = [splits, filterRows, info.outChannels];
  const program = {
    first: () => new FilterGradientPartials(shape),
    rows: () => new FilterGradientRowsPartials(shape),
    gemm: () => new FilterGradientGemmPartials(shape),
  }[form]();
  const partials = backend.runWebGPUProgram(program, [x, dy], 'float32', [
    int(filterRows),
    int(info.outChannels),
    int(rows),
    int(rowsPerSplit),
    int(rowsPerSplit / stage),
    int(info.inHeight),
    int(info.inWidth),
    int(info.inChannels),
    int(info.outHeight),
    int(info.outWidth),
    int(info.filterWidth),
    int(info.strideHeight),
    int(info.strideWidth),
    int(info.padInfo.top),
    int(info.padInfo.left),
  ]);
  // One split is the gradient already: its buffer is the result's, under the result's shape (as
  // tfjs's Reshape does), which saves a program (the host's time per program bounds some models).
  if (splits === 1) return { dataId: partials.dataId, shape: resultShape, dtype: 'float32' };
  const dw = backend.runWebGPUProgram(sumOfPartials(resultShape), [partials], 'float32', [int(splits)]);
  backend.disposeData(partials.dataId);
  return dw;
}

/** Partial filter gradients, first form. */
class FilterGradientPartials extends FilterGradientProgram {
  constructor(outputShape: [number, number, number]) {
    super(outputShape, 'pneumoganFilterGradientPartials');
  }

  getUserCode(): string {
    const columns = this.columns;
    const tileCo = 16 * columns;
    return `
      var<workgroup> patchTile : array<array<f32, ${BLOCK_K}>, ${TILE_M}>;
      var<workgroup> gradTile : array<array<f32, ${tileCo}>, ${TILE_M}>;

      // Row m of the patch matrix at column k: x at (n, ho * s + kh - pad, wo * s + kw - pad, ci).
      fn patchValue(m : i32, k : i32, mEnd : i32) -> f32 {
        if (m >= mEnd || k >= uniforms.kSize) { return 0.0; }
        let plane = uniforms.outHeight * uniforms.outWidth;
        let n = m / plane;
        let ho = (m % plane) / uniforms.outWidth;
        let wo = m % uniforms.outWidth;
        let tap = k / uniforms.inChannels;
        let ci = k % uniforms.inChannels;
        let h = ho * uniforms.strideHeight + tap / uniforms.filterWidth - uniforms.padTop;
        let w = wo * uniforms.strideWidth + tap % uniforms.filterWidth - uniforms.padLeft;
        if (h < 0 || h >= uniforms.inHeight || w < 0 || w >= uniforms.inWidth) { return 0.0; }
        return x[((n * uniforms.inHeight + h) * uniforms.inWidth + w) * uniforms.inChannels + ci];
      }

      fn gradValue(m : i32, co : i32, mEnd : i32) -> f32 {
        if (m >= mEnd || co >= uniforms.coSize) { return 0.0; }
        return dy[m * uniforms.coSize + co];
      }

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let flat = ty * 16 + tx;
        let coBase = i32(workgroupId.x) * ${tileCo};
        let kBase = i32(workgroupId.y) * ${BLOCK_K};
        let split = i32(workgroupId.z);
        let mBegin = split * uniforms.mPerSplit;
        let mEnd = min(mBegin + uniforms.mPerSplit, uniforms.mSize);

        var acc : array<array<f32, ${columns}>, 4>;
        // The trip count is uniform (barriers inside); rows past mEnd load as zeros.
        for (var t = 0; t < uniforms.tilesPerSplit; t++) {
          let m0 = mBegin + t * ${TILE_M};
          for (var e = flat; e < ${TILE_M * BLOCK_K}; e += 256) {
            patchTile[e / ${BLOCK_K}][e % ${BLOCK_K}] = patchValue(m0 + e / ${BLOCK_K}, kBase + e % ${BLOCK_K}, mEnd);
          }
          for (var e = flat; e < ${TILE_M * tileCo}; e += 256) {
            gradTile[e / ${tileCo}][e % ${tileCo}] = gradValue(m0 + e / ${tileCo}, coBase + e % ${tileCo}, mEnd);
          }
          workgroupBarrier();
          for (var r = 0; r < ${TILE_M}; r++) {
            var a : array<f32, 4>;
            var b : array<f32, ${columns}>;
            for (var i = 0; i < 4; i++) { a[i] = patchTile[r][ty * 4 + i]; }
            for (var j = 0; j < ${columns}; j++) { b[j] = gradTile[r][tx * ${columns} + j]; }
            for (var i = 0; i < 4; i++) {
              for (var j = 0; j < ${columns}; j++) {
                acc[i][j] = fma(a[i], b[j], acc[i][j]);
              }
            }
          }
          workgroupBarrier();
        }

        for (var i = 0; i < 4; i++) {
          let k = kBase + ty * 4 + i;
          for (var j = 0; j < ${columns}; j++) {
            let co = coBase + tx * ${columns} + j;
            if (k < uniforms.kSize && co < uniforms.coSize) {
              setOutputAtIndex((split * uniforms.kSize + k) * uniforms.coSize + co, acc[i][j]);
            }
          }
        }
      }
    `;
  }
}
