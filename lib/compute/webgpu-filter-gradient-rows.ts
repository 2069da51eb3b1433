/**
 * The second form of the filter-gradient partials (./webgpu-filter-gradient.ts), for layers of
 * at most 16 output channels (SqueezeNet's squeeze layers, the DCGAN's last; wider ones take the
 * third form, ./webgpu-filter-gradient-gemm.ts), without integer division in its inner loads.
 * The first form finds each staged patch element's (n, ho, wo) and (kh, kw, ci) by eight
 * divisions and remainders by runtime values, which a GPU compiles to long instruction sequences:
 * about as many instructions per element loaded as the multiply-adds it feeds. Here:
 * - each thread always loads the same patch column k, so (kh, kw, ci) is found once;
 * - each staged row's input origin (n, ho * s - pad, wo * s - pad) is found once per stage, by 32
 *   threads, into a small table in workgroup memory that the loads read;
 * - 32 reduction rows are staged at a time instead of 16, and each thread's 4 filter rows are
 *   read as one vec4 from workgroup memory.
 * The same 64 x 16 blocks, split-K and partial sums as the first form, and the same order of
 * additions: its results are the first form's bit for bit (1.0x to 3x faster on lavapipe, a CPU;
 * not yet timed on a GPU: `useFilterGradientFirstForm(true)` puts the first form back, and the
 * GPU bench times both, variant `filter-first` and the kernel table).
 */
import { FilterGradientProgram } from './webgpu-filter-gradient-program.js';

/** Reduction rows staged at once. */
export const ROWS_PER_STAGE = 32;

/** Partial filter gradients, [splits, kh * kw * ci, co], for at most 16 output channels. */
export class FilterGradientRowsPartials extends FilterGradientProgram {
  constructor(outputShape: [number, number, number]) {
    super(outputShape, 'pneumoganFilterGradientRows');
    if (this.columns !== 1)
      throw new Error(`the row-table filter gradient takes at most 16 output channels, not ${outputShape[2]}`);
  }

  getUserCode(): string {
    const rows = ROWS_PER_STAGE;
    // dy: the 256 threads load 16 columns each of 16 rows, two passes of 16 rows.
    return `
      var<workgroup> rowBase : array<i32, ${rows}>;
      var<workgroup> rowH : array<i32, ${rows}>;
      var<workgroup> rowW : array<i32, ${rows}>;
      var<workgroup> patchTile : array<array<vec4<f32>, 16>, ${rows}>;
      var<workgroup> gradTile : array<array<f32, 16>, ${rows}>;

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let flat = ty * 16 + tx;
        let coBase = i32(workgroupId.x) * 16;
        let kBase = i32(workgroupId.y) * 64;
        let split = i32(workgroupId.z);
        let mBegin = split * uniforms.mPerSplit;
        let mEnd = min(mBegin + uniforms.mPerSplit, uniforms.mSize);
        let plane = uniforms.outHeight * uniforms.outWidth;

        // This thread's patch column, decomposed once.
        let kc = flat % 64;
        let k = kBase + kc;
        let kValid = k < uniforms.kSize;
        let tap = k / uniforms.inChannels;
        let ci = k % uniforms.inChannels;
        let kh = tap / uniforms.filterWidth;
        let kw = tap % uniforms.filterWidth;
        let patchRow0 = flat / 64;
        let gradCol = flat % 16;
        let gradRow0 = flat / 16;

        var acc : array<f32, 4>;
        for (var t = 0; t < uniforms.tilesPerSplit; t++) {
          let m0 = mBegin + t * ${rows};
          if (flat < ${rows}) {
            let m = m0 + flat;
            if (m < mEnd) {
              let n = m / plane;
              let rest = m % plane;
              rowBase[flat] = n * uniforms.inHeight;
              rowH[flat] = (rest / uniforms.outWidth) * uniforms.strideHeight - uniforms.padTop;
              rowW[flat] = (rest % uniforms.outWidth) * uniforms.strideWidth - uniforms.padLeft;
            } else {
              // Past the split's rows: every tap falls outside the image and loads zero.
              rowBase[flat] = 0;
              rowH[flat] = -1073741824;
              rowW[flat] = 0;
            }
          }
          workgroupBarrier();
          for (var j = 0; j < ${rows / 4}; j++) {
            let r = patchRow0 + 4 * j;
            let h = rowH[r] + kh;
            let w = rowW[r] + kw;
            var v = 0.0;
            if (kValid && h >= 0 && h < uniforms.inHeight && w >= 0 && w < uniforms.inWidth) {
              v = x[((rowBase[r] + h) * uniforms.inWidth + w) * uniforms.inChannels + ci];
            }
            patchTile[r][kc / 4][kc % 4] = v;
          }
          for (var j = 0; j < ${rows / 16}; j++) {
            let r = gradRow0 + 16 * j;
            let m = m0 + r;
            let co = coBase + gradCol;
            var g = 0.0;
            if (m < mEnd && co < uniforms.coSize) {
              g = dy[m * uniforms.coSize + co];
            }
            gradTile[r][gradCol] = g;
          }
          workgroupBarrier();
          for (var r = 0; r < ${rows}; r++) {
            let a = patchTile[r][ty];
            let b = gradTile[r][tx];
            acc[0] = fma(a.x, b, acc[0]);
            acc[1] = fma(a.y, b, acc[1]);
            acc[2] = fma(a.z, b, acc[2]);
            acc[3] = fma(a.w, b, acc[3]);
          }
          workgroupBarrier();
        }

        for (var i = 0; i < 4; i++) {
          let kOut = kBase + ty * 4 + i;
          let co = coBase + tx;
          if (kOut < uniforms.kSize && co < uniforms.coSize) {
            setOutputAtIndex((split * uniforms.kSize + kOut) * uniforms.coSize + co, acc[i]);
          }
        }
      }
    `;
  }
}
