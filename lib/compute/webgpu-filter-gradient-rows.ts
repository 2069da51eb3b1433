/**
 * A second form of the filter-gradient partials (lib/compute/webgpu-kernels.ts), without integer
 * division in its inner loads. The first form finds each staged patch element's (n, ho, wo) and
 * (kh, kw, ci) by eight divisions and remainders by runtime values, which a GPU compiles to long
 * instruction sequences: about as many instructions per element loaded as the multiply-adds it
 * feeds, a likely reason the kernel reached only about 2 TFLOP/s on an H100 (AlexNet's conv2).
 * Here:
 * - each thread always loads the same patch column k, so (kh, kw, ci) is found once;
 * - each staged row's input origin (n, ho * s - pad, wo * s - pad) is found once per stage, by 32
 *   threads, into a small table in workgroup memory that the loads read;
 * - 32 reduction rows are staged at a time instead of 16, and the 4 x 4 products per thread read
 *   their operands as vec4 from workgroup memory.
 * The same 64 x 64 blocks (64 x 16 for narrow layers), split-K and partial sums as the first
 * form, and the same order of additions: its results are the first form's bit for bit. It is the
 * default: the same result with less work, 1.0x to 1.3x faster than the first form on lavapipe
 * (a CPU). Not yet timed on a GPU: `useFilterGradientRows(false)` puts the first form back, and
 * the GPU bench times both (variant `filter-first`, and the kernel table).
 */
import { FilterGradientProgram } from './webgpu-filter-gradient-program.js';

/** Reduction rows staged at once. */
export const ROWS_PER_STAGE = 32;

/** Partial filter gradients, [splits, kh * kw * ci, co]. */
export class FilterGradientRowsPartials extends FilterGradientProgram {
  constructor(outputShape: [number, number, number]) {
    super(outputShape, 'pneumoganFilterGradientRows');
  }

  getUserCode(): string {
    const rows = ROWS_PER_STAGE;
    const wide = this.columns === 4;
    const tileCo = 16 * this.columns;
    // Wide blocks: the 256 threads load one column each (co = flat % 64), 8 rows apart by 4.
    // Narrow: 16 columns, rows 16 apart.
    const gradLoads = (rows * tileCo) / 256;
    const gradRowStep = 256 / tileCo;
    return `
      var<workgroup> rowBase : array<i32, ${rows}>;
      var<workgroup> rowH : array<i32, ${rows}>;
      var<workgroup> rowW : array<i32, ${rows}>;
      var<workgroup> patchTile : array<array<vec4<f32>, 16>, ${rows}>;
      var<workgroup> gradTile : array<array<${wide ? 'vec4<f32>, 16' : 'f32, 16'}>, ${rows}>;

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let flat = ty * 16 + tx;
        let coBase = i32(workgroupId.x) * ${tileCo};
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
        let gradCol = flat % ${tileCo};
        let gradRow0 = flat / ${tileCo};

        var acc : array<vec4<f32>, 4>;
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
          for (var j = 0; j < ${gradLoads}; j++) {
            let r = gradRow0 + ${gradRowStep} * j;
            let m = m0 + r;
            let co = coBase + gradCol;
            var g = 0.0;
            if (m < mEnd && co < uniforms.coSize) {
              g = dy[m * uniforms.coSize + co];
            }
            ${wide ? 'gradTile[r][gradCol / 4][gradCol % 4] = g;' : 'gradTile[r][gradCol] = g;'}
          }
          workgroupBarrier();
          for (var r = 0; r < ${rows}; r++) {
            let a = patchTile[r][ty];
            let b = gradTile[r][tx];
            ${
              wide
                ? `acc[0] = fma(vec4<f32>(a.x), b, acc[0]);
            acc[1] = fma(vec4<f32>(a.y), b, acc[1]);
            acc[2] = fma(vec4<f32>(a.z), b, acc[2]);
            acc[3] = fma(vec4<f32>(a.w), b, acc[3]);`
                : `acc[0].x = fma(a.x, b, acc[0].x);
            acc[1].x = fma(a.y, b, acc[1].x);
            acc[2].x = fma(a.z, b, acc[2].x);
            acc[3].x = fma(a.w, b, acc[3].x);`
            }
          }
          workgroupBarrier();
        }

        for (var i = 0; i < 4; i++) {
          let kOut = kBase + ty * 4 + i;
          for (var c = 0; c < ${this.columns}; c++) {
            let co = coBase + tx * ${this.columns} + c;
            if (kOut < uniforms.kSize && co < uniforms.coSize) {
              setOutputAtIndex((split * uniforms.kSize + kOut) * uniforms.coSize + co, acc[i][c]);
            }
          }
        }
      }
    `;
  }
}
