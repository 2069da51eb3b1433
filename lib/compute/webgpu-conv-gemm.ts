/**
 * Convolutions as one tiled matrix product over implicit im2col patches on WebGPU, for the
 * forward pass (Conv2D) and the unstrided input gradient (Conv2DBackpropInput):
 * C[m, n] = sum over k of A[m, k] * B[k, n], with
 * - forward: m = (batch, ho, wo), k = (kh, kw, ci), n = co; A the patches of x, B the filter
 *   [kh * kw * ci, co] as it is stored;
 * - input gradient, stride 1: m = (batch, h, w) of x, k = (kh, kw, co), n = ci; A the patches of
 *   dy with the padding fh - 1 - padTop (a convolution of dy with the filter turned by 180
 *   degrees), B the filter read turned and transposed.
 *
 * On the H100 tfjs's own kernels for both (its Conv2DMMProgram and Conv2DDerInputMMProgram) ran
 * AlexNet's layers at 2.5 to 4 TFLOP/s: 8 x 8 threads a workgroup, 4 x 4 results each, 32 x 32
 * blocks, each loaded value used 32 times. Here a workgroup has 16 x 16 threads and computes a
 * block of 64 (or 128, for layers with enough blocks to fill a large GPU) rows by 64 columns,
 * each thread 4 (or 8) rows by 4 columns, so each staged value is used 64 (or 85) times; the next
 * stage's values are read from memory into registers while the current one is multiplied; and a
 * thread finds its rows' (batch, h, w) once, not per load. Whether that is faster on a GPU is for
 * the GPU bench to say (its kernel table times each layer both ways, variant `conv-stock` each
 * model): lavapipe, a CPU, cannot. test/unit/webgpu-kernels.test.ts compares both passes with the
 * CPU backend.
 */
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type * as tf from '@tensorflow/tfjs';
import { multiplyStage, storeBlock } from './webgpu-gemm-tiles.js';
import { sumOfPartials, type WebGpuProgram } from './webgpu-program.js';

/** Reduction indices (k) staged in workgroup memory at once. */
const STAGE_K = 16;
/** Columns (n) per workgroup: 16 threads of 4. */
const BLOCK_N = 64;
/** Workgroups at which 128-row blocks are taken: about four per streaming multiprocessor of an H100. */
const WIDE_BLOCKS = 512;
/**
 * Layers with fewer blocks than an H100 has streaming multiprocessors (132) split their reduction
 * across workgroups, into about two workgroups per multiprocessor. No more: each split layer adds
 * a program to sum the partial products, and GoogLeNet's and SqueezeNet's steps are bound by the
 * host's time per program (70-80 us on the H100), not by the GPU (splitting below 512 blocks
 * added 45 programs to a GoogLeNet step).
 */
const SPLIT_BELOW_BLOCKS = 132;
const SPLIT_TARGET_BLOCKS = 264;
/** The fewest reduction indices a split gets (16 stages). */
const MIN_DEPTH_PER_SPLIT = 256;

/** How B is read: the filter as stored (forward), or turned by 180 degrees and transposed (input gradient). */
export type FilterReading = 'forward' | 'turned';

/** Whether tfjs's or this module's kernels run the forward pass and unstrided input gradient. */
let ours = true;

/** Chooses this module's convolutions (true, the default with our kernels) or tfjs's (false). */
export function useConvGemm(on: boolean): void {
  ours = on;
}

export function convGemmInUse(): boolean {
  return ours;
}

/** Rows per thread, 4 or 8: 8 where the layer has enough 128 x 64 blocks to fill a large GPU. */
export function convGemmRowsPerThread(rows: number, columns: number): 4 | 8 {
  return Math.ceil(rows / 128) * Math.ceil(columns / BLOCK_N) >= WIDE_BLOCKS ? 8 : 4;
}

/**
 * Splits of the reduction (k) for a product of `rows` x `columns` over `depth`: layers with few
 * blocks (AlexNet's dense layers at 32 rows: 64 blocks of the 4,096-wide one) would leave most of a
 * large GPU idle, so their reduction is split across workgroups into partial products that a
 * second, small program sums, in a fixed order (deterministic, unlike atomic adds).
 */
export function convGemmSplits(rows: number, columns: number, depth: number): number {
  const blocks = Math.ceil(rows / (16 * convGemmRowsPerThread(rows, columns))) * Math.ceil(columns / BLOCK_N);
  if (blocks >= SPLIT_BELOW_BLOCKS) return 1;
  return Math.max(1, Math.min(Math.ceil(SPLIT_TARGET_BLOCKS / blocks), Math.floor(depth / MIN_DEPTH_PER_SPLIT)));
}

/** Whether a product fits this kernel: float32, and more than 16 columns (narrower ones waste a 64-wide block). */
export function gemmFits(dtype: string, columns: number): boolean {
  return dtype === 'float32' && columns > 16;
}

/** The convolutions this kernel takes now: those that fit it, while it is chosen. */
export function convGemmTakes(dtype: string, columns: number): boolean {
  return ours && gemmFits(dtype, columns);
}

/** What one convolution's matrix product needs to know, in the gathered tensor's terms. */
export interface ConvGemmShape {
  /** The output, [batch, outHeight, outWidth, columns]. */
  outputShape: [number, number, number, number];
  /** The gathered tensor's (x's, or dy's for the input gradient) height, width and channels. */
  inHeight: number;
  inWidth: number;
  inChannels: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  padTop: number;
  padLeft: number;
}

/** The forward pass of the convolution `info` describes, as this kernel's product. */
export function gemmShapeOfConvolution(info: tf.backend_util.Conv2DInfo): ConvGemmShape {
  return {
    outputShape: [info.batchSize, info.outHeight, info.outWidth, info.outChannels],
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    inChannels: info.inChannels,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

/**
 * The input gradient of the unstrided convolution `info` describes, as this kernel's product (with
 * the filter read 'turned'): dy, padded by fh - 1 - padTop, convolved with the filter turned by
 * 180 degrees.
 */
export function gemmShapeOfInputGradient(info: tf.backend_util.Conv2DInfo): ConvGemmShape {
  return {
    outputShape: [info.batchSize, info.inHeight, info.inWidth, info.inChannels],
    inHeight: info.outHeight,
    inWidth: info.outWidth,
    inChannels: info.outChannels,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    strideHeight: 1,
    strideWidth: 1,
    padTop: info.filterHeight - 1 - info.padInfo.top,
    padLeft: info.filterWidth - 1 - info.padInfo.left,
  };
}

/**
 * Runs C = A B for `gathered` (NHWC) and `filter` ([fh, fw, ., .]), as a tensor of `resultShape`
 * (default: shape.outputShape; any shape of its size).
 */
export function runConvGemm(
  backend: WebGPUBackend,
  gathered: tf.TensorInfo,
  filter: tf.TensorInfo,
  shape: ConvGemmShape,
  reading: FilterReading,
  resultShape: number[] = shape.outputShape,
): tf.TensorInfo {
  const [batch, outHeight, outWidth, columns] = shape.outputShape;
  const rows = batch * outHeight * outWidth;
  const depth = shape.filterHeight * shape.filterWidth * shape.inChannels;
  const splits = convGemmSplits(rows, columns, depth);
  const depthPerSplit = Math.ceil(depth / splits / STAGE_K) * STAGE_K;
  const program = new ConvGemmProgram(
    splits === 1 ? resultShape : [splits, rows, columns],
    rows,
    columns,
    splits,
    reading,
    convGemmRowsPerThread(rows, columns),
  );
  const int = (v: number) => ({ type: 'int32', data: [v] });
  const product = backend.runWebGPUProgram(program, [gathered, filter], 'float32', [
    int(rows),
    int(columns),
    int(depth),
    int(depthPerSplit),
    int(shape.inHeight),
    int(shape.inWidth),
    int(shape.inChannels),
    int(outHeight),
    int(outWidth),
    int(shape.filterHeight),
    int(shape.filterWidth),
    int(shape.strideHeight),
    int(shape.strideWidth),
    int(shape.padTop),
    int(shape.padLeft),
  ]);
  if (splits === 1) return product;
  const sum = backend.runWebGPUProgram(sumOfPartials(resultShape), [product], 'float32', [int(splits)]);
  backend.disposeData(product.dataId);
  return sum;
}

export class ConvGemmProgram implements WebGpuProgram {
  shaderKey: string;
  variableNames = ['x', 'w'];
  /** In the order runConvGemm passes them. */
  uniforms =
    'mSize : i32, nSize : i32, kSize : i32, kPerSplit : i32, inHeight : i32, inWidth : i32, inChannels : i32, ' +
    'outHeight : i32, outWidth : i32, filterHeight : i32, filterWidth : i32, strideHeight : i32, ' +
    'strideWidth : i32, padTop : i32, padLeft : i32,';
  workgroupSize: [number, number, number] = [16, 16, 1];
  size = false;
  dispatchLayout: WebGpuProgram['dispatchLayout'];
  dispatch: [number, number, number];

  /** `outputShape`: the result's, or [splits, rows, columns] for partial products. */
  constructor(
    public outputShape: number[],
    rows: number,
    columns: number,
    splits: number,
    private readonly reading: FilterReading,
    private readonly rowsPerThread: 4 | 8,
  ) {
    this.shaderKey = `pneumoganConvGemm_${reading}_${rowsPerThread}`;
    // Not flat (all axes in x), which would make tfjs's generator call main(index).
    const last = outputShape.length - 1;
    this.dispatchLayout = { x: [last], y: outputShape.slice(0, last).map((_, i) => i) };
    this.dispatch = [Math.ceil(columns / BLOCK_N), Math.ceil(rows / (16 * rowsPerThread)), splits];
  }

  getUserCode(): string {
    const r = this.rowsPerThread;
    const blockM = 16 * r;
    const loadsA = blockM / 16;
    const forward = this.reading === 'forward';
    // Staging: thread `flat` loads patch column kk = flat % 16 of rows loadRow + 16 j (reads along
    // k are contiguous in NHWC). B: forward, row flat / 64 + 4 j at column flat % 64 (contiguous
    // along n); turned, row kk at columns loadRow + 16 j (contiguous along k). Rows of both tiles
    // are one vec4 longer than the block, so that the 16 threads storing one column of 16 rows
    // hit different memory banks.
    const load = (k0: string) => `{
          let k = ${k0} + kk;
          let tap = k / uniforms.inChannels;
          let ci = k - tap * uniforms.inChannels;
          let kh = tap / uniforms.filterWidth;
          let kw = tap - kh * uniforms.filterWidth;
          let kValid = k < kEnd;
          for (var j = 0; j < ${loadsA}; j++) {
            let hIn = rowH[j] + kh;
            let wIn = rowW[j] + kw;
            var v = 0.0;
            if (kValid && hIn >= 0 && hIn < uniforms.inHeight && wIn >= 0 && wIn < uniforms.inWidth) {
              v = x[((rowBase[j] + hIn) * uniforms.inWidth + wIn) * uniforms.inChannels + ci];
            }
            aNext[j] = v;
          }
          ${
            forward
              ? `for (var j = 0; j < 4; j++) {
            let kb = ${k0} + flat / 64 + 4 * j;
            let n = nBase + flat % 64;
            var v = 0.0;
            if (kb < kEnd && n < uniforms.nSize) { v = w[kb * uniforms.nSize + n]; }
            bNext[j] = v;
          }`
              : `let turnedTap = uniforms.filterHeight * uniforms.filterWidth - 1 - tap;
          for (var j = 0; j < 4; j++) {
            let n = nBase + loadRow + 16 * j;
            var v = 0.0;
            if (kValid && n < uniforms.nSize) { v = w[(turnedTap * uniforms.nSize + n) * uniforms.inChannels + ci]; }
            bNext[j] = v;
          }`
          }
        }`;
    const storeB = forward
      ? `let row = flat / 64 + 4 * j;
            let col = flat % 64;`
      : `let row = kk;
            let col = loadRow + 16 * j;`;
    return `
      var<workgroup> aTile : array<array<vec4<f32>, ${blockM / 4 + 1}>, ${STAGE_K}>;
      var<workgroup> bTile : array<array<vec4<f32>, ${BLOCK_N / 4 + 1}>, ${STAGE_K}>;

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let flat = ty * 16 + tx;
        let nBase = i32(workgroupId.x) * ${BLOCK_N};
        let mBase = i32(workgroupId.y) * ${blockM};
        let kk = flat % 16;
        let loadRow = flat / 16;
        // This workgroup's part of the reduction (all of it unless split).
        let split = i32(workgroupId.z);
        let kBegin = split * uniforms.kPerSplit;
        let kEnd = min(kBegin + uniforms.kPerSplit, uniforms.kSize);

        // The origin of each row this thread loads, found once: (batch * inHeight, h0, w0).
        let plane = uniforms.outHeight * uniforms.outWidth;
        var rowBase : array<i32, ${loadsA}>;
        var rowH : array<i32, ${loadsA}>;
        var rowW : array<i32, ${loadsA}>;
        for (var j = 0; j < ${loadsA}; j++) {
          let m = mBase + loadRow + 16 * j;
          if (m < uniforms.mSize) {
            let n = m / plane;
            let rest = m - n * plane;
            let ho = rest / uniforms.outWidth;
            rowBase[j] = n * uniforms.inHeight;
            rowH[j] = ho * uniforms.strideHeight - uniforms.padTop;
            rowW[j] = (rest - ho * uniforms.outWidth) * uniforms.strideWidth - uniforms.padLeft;
          } else {
            // Past the last row: every tap falls outside the image and loads zero.
            rowBase[j] = 0;
            rowH[j] = -1073741824;
            rowW[j] = 0;
          }
        }

        var aNext : array<f32, ${loadsA}>;
        var bNext : array<f32, 4>;
        var acc : array<vec4<f32>, ${r}>;
        // Uniform, as the barriers in the loop need: a short last split loads zeros past kEnd.
        let stages = uniforms.kPerSplit / ${STAGE_K};
        ${load('kBegin')}
        for (var t = 0; t < stages; t++) {
          for (var j = 0; j < ${loadsA}; j++) {
            let row = loadRow + 16 * j;
            aTile[kk][row / 4][row % 4] = aNext[j];
          }
          for (var j = 0; j < 4; j++) {
            ${storeB}
            bTile[row][col / 4][col % 4] = bNext[j];
          }
          workgroupBarrier();
          // The next stage's loads are in flight while this one is multiplied.
          if (t + 1 < stages) ${load(`kBegin + (t + 1) * ${STAGE_K}`)}
          ${multiplyStage('aTile', 'bTile', STAGE_K, r)}
          workgroupBarrier();
        }

        ${storeBlock(r, { rowBase: 'mBase', rows: 'uniforms.mSize', columnBase: 'nBase', columns: 'uniforms.nSize' })}
      }
    `;
  }
}
