/**
 * What the three forms of our filter-gradient partials (./webgpu-filter-gradient.ts,
 * ./webgpu-filter-gradient-rows.ts, ./webgpu-filter-gradient-gemm.ts) share: their inputs and
 * uniforms, 16 x 16 threads a workgroup, and blocks of 64 filter rows (k) by 64 output channels
 * (co), or by 16 for layers with at most 16 output channels (SqueezeNet's squeeze layers, the
 * DCGAN's last), which would leave most of a 64-wide block idle. Output: [splits, kh * kw * ci,
 * co], one split of the reduction rows per workgroup z.
 */
import type { WebGpuProgram } from './webgpu-program.js';

/** Filter-gradient rows (k) per workgroup: 16 threads of 4 rows. */
export const BLOCK_K = 64;

/** Output channels per thread: 4 (64-wide blocks) or 1 (16-wide, for narrow layers). */
export const columnsPerThread = (outChannels: number): 1 | 4 => (outChannels <= 16 ? 1 : 4);

/** Every form's uniforms, in the order ./webgpu-filter-gradient.ts passes them. */
const FILTER_GRADIENT_UNIFORMS =
  'kSize : i32, coSize : i32, mSize : i32, mPerSplit : i32, tilesPerSplit : i32, ' +
  'inHeight : i32, inWidth : i32, inChannels : i32, outHeight : i32, outWidth : i32, ' +
  'filterWidth : i32, strideHeight : i32, strideWidth : i32, padTop : i32, padLeft : i32,';

export abstract class FilterGradientProgram implements WebGpuProgram {
  shaderKey: string;
  variableNames = ['x', 'dy'];
  uniforms = FILTER_GRADIENT_UNIFORMS;
  workgroupSize: [number, number, number] = [16, 16, 1];
  size = false;
  dispatchLayout = { x: [2], y: [1], z: [0] };
  dispatch: [number, number, number];
  protected readonly columns: 1 | 4;

  /** `blockRows`: filter rows per workgroup, 64 (the third form: 64 or 128). */
  constructor(
    public outputShape: [number, number, number],
    shaderName: string,
    protected readonly blockRows: number = BLOCK_K,
  ) {
    const [splits, filterRows, outChannels] = outputShape;
    this.columns = columnsPerThread(outChannels);
    this.shaderKey = `${shaderName}${this.columns}`;
    this.dispatch = [Math.ceil(outChannels / (16 * this.columns)), Math.ceil(filterRows / blockRows), splits];
  }

  abstract getUserCode(): string;
}
