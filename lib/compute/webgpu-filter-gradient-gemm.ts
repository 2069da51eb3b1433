/**
 * The third form of our filter-gradient partials (./webgpu-filter-gradient.ts), for layers with
 * more than 16 output channels, built like the forward convolution's matrix product
 * (./webgpu-conv-gemm.ts): dW[k, co] = sum over m of P[m, k] * dY[m, co], with
 * - blocks of 64 or 128 filter rows (k) by 64 output channels, each of the 16 x 16 threads
 *   computing 4 or 8 rows by 4 channels (the second form: 4 x 4), 128 where the layer has at least
 *   128 filter rows, so that each staged value is used more often;
 * - the next stage's 16 reduction rows read from memory into registers while the current stage
 *   is multiplied;
 * - each thread following its rows' (batch, ho, wo) from stage to stage by addition, with no
 *   division and no table in workgroup memory (the second form builds one per stage, behind a
 *   barrier of its own).
 * Split-K and partial sums as the other forms; the additions over m within a split run in the
 * same order, so the result differs from theirs only where the splits differ. Not yet timed on a
 * GPU: the GPU bench's kernel table times it against the first form (variant `filter-first` for
 * whole steps). test/unit/webgpu-kernels.test.ts compares it with the CPU backend.
 */
import { FilterGradientProgram } from './webgpu-filter-gradient-program.js';
import { multiplyStage, storeBlock } from './webgpu-gemm-tiles.js';

/** Reduction rows (m) staged at once. */
export const GEMM_ROWS_PER_STAGE = 16;

/** Filter rows per block: 128 (8 a thread) for layers with at least 128, else 64 (4 a thread). */
export const gemmBlockRows = (filterRows: number): 64 | 128 => (filterRows >= 128 ? 128 : 64);

/** Partial filter gradients, [splits, kh * kw * ci, co], for more than 16 output channels. */
export class FilterGradientGemmPartials extends FilterGradientProgram {
  constructor(outputShape: [number, number, number]) {
    const blockRows = gemmBlockRows(outputShape[1]);
    super(outputShape, `pneumoganFilterGradientGemm${blockRows}`, blockRows);
    if (this.columns !== 4)
      throw new Error(`this filter gradient takes more than 16 output channels, not ${outputShape[2]}`);
  }

  /**
   * Staging: thread `flat` loads patch column kc = flat % blockRows of the rows
   * flat / blockRows + rowStep j (reads along k are contiguous in NHWC), `patchLoads` of them a
   * stage, and dy at channel flat % 64 of rows flat / 64 + 4 j.
   */
  private get rowStep(): number {
    return 256 / this.blockRows;
  }

  private get patchLoads(): number {
    return (GEMM_ROWS_PER_STAGE * this.blockRows) / 256;
  }

  getUserCode(): string {
    const stage = GEMM_ROWS_PER_STAGE;
    const blockK = this.blockRows;
    const r = blockK === 128 ? 8 : 4;
    const rowStep = this.rowStep;
    const loadsA = this.patchLoads;
    return `
      var<workgroup> patchTile : array<array<vec4<f32>, ${blockK / 4}>, ${stage}>;
      var<workgroup> gradTile : array<array<vec4<f32>, 16>, ${stage}>;

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let flat = ty * 16 + tx;
        let coBase = i32(workgroupId.x) * 64;
        let kBase = i32(workgroupId.y) * ${blockK};
        let split = i32(workgroupId.z);
        let mBegin = split * uniforms.mPerSplit;
        let mEnd = min(mBegin + uniforms.mPerSplit, uniforms.mSize);

        // This thread's patch column, decomposed once.
        let kc = flat % ${blockK};
        let k = kBase + kc;
        let kValid = k < uniforms.kSize;
        let tap = k / uniforms.inChannels;
        let ci = k - tap * uniforms.inChannels;
        let kh = tap / uniforms.filterWidth;
        let kw = tap - kh * uniforms.filterWidth;
        let co = coBase + flat % 64;
        let coValid = co < uniforms.coSize;

        // The output positions (batch, ho, wo) of the rows this thread loads, advanced by
        // ${stage} rows a stage.
        let plane = uniforms.outHeight * uniforms.outWidth;
        var rowN : array<i32, ${loadsA}>;
        var rowHo : array<i32, ${loadsA}>;
        var rowWo : array<i32, ${loadsA}>;
        for (var j = 0; j < ${loadsA}; j++) {
          let m = mBegin + flat / ${blockK} + ${rowStep} * j;
          rowN[j] = m / plane;
          let rest = m - rowN[j] * plane;
          rowHo[j] = rest / uniforms.outWidth;
          rowWo[j] = rest - rowHo[j] * uniforms.outWidth;
        }

        var patchNext : array<f32, ${loadsA}>;
        var gradNext : array<f32, 4>;
        var acc : array<vec4<f32>, ${r}>;

        ${this.loads('mBegin')}
        for (var t = 0; t < uniforms.tilesPerSplit; t++) {
          let m0 = mBegin + t * ${stage};
          for (var j = 0; j < ${loadsA}; j++) {
            let row = flat / ${blockK} + ${rowStep} * j;
            patchTile[row][kc / 4][kc % 4] = patchNext[j];
          }
          for (var j = 0; j < 4; j++) {
            let c = flat % 64;
            gradTile[flat / 64 + 4 * j][c / 4][c % 4] = gradNext[j];
          }
          workgroupBarrier();
          // The next stage's loads are in flight while this one is multiplied.
          for (var j = 0; j < ${loadsA}; j++) {
            rowWo[j] += ${stage};
            while (rowWo[j] >= uniforms.outWidth) {
              rowWo[j] -= uniforms.outWidth;
              rowHo[j] += 1;
            }
            while (rowHo[j] >= uniforms.outHeight) {
              rowHo[j] -= uniforms.outHeight;
              rowN[j] += 1;
            }
          }
          if (t + 1 < uniforms.tilesPerSplit) {
            ${this.loads(`m0 + ${stage}`)}
          }
          ${multiplyStage('patchTile', 'gradTile', stage, r)}
          workgroupBarrier();
        }

        ${storeBlock(r, { rowBase: 'kBase', rows: 'uniforms.kSize', columnBase: 'coBase', columns: 'uniforms.coSize' })}
      }
    `;
  }

  /** WGSL reading the stage that starts at reduction row `m0` into patchNext and gradNext. */
  private loads(m0: string): string {
    return `for (var j = 0; j < ${this.patchLoads}; j++) {
              let m = ${m0} + flat / ${this.blockRows} + ${this.rowStep} * j;
              let h = rowHo[j] * uniforms.strideHeight - uniforms.padTop + kh;
              let w = rowWo[j] * uniforms.strideWidth - uniforms.padLeft + kw;
              var v = 0.0;
              if (m < mEnd && kValid && h >= 0 && h < uniforms.inHeight && w >= 0 && w < uniforms.inWidth) {
                v = x[((rowN[j] * uniforms.inHeight + h) * uniforms.inWidth + w) * uniforms.inChannels + ci];
              }
              patchNext[j] = v;
            }
            for (var j = 0; j < 4; j++) {
              let m = ${m0} + flat / 64 + 4 * j;
              var g = 0.0;
              if (m < mEnd && coValid) {
                g = dy[m * uniforms.coSize + co];
              }
              gradNext[j] = g;
            }`;
  }
}
