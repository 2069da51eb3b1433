/**
 * What this project's WGSL programs give tfjs's WebGPU backend (`backend.runWebGPUProgram`), flat
 * (one thread per output element) programs, the second stage of split reductions, the
 * registration of kernels, and a count of the programs dispatched.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

/**
 * The fields tfjs's shader generator reads (see WebGPUProgram in tfjs-backend-webgpu). The
 * generator prepends the uniforms struct, the buffer bindings and the `_start` entry point,
 * which calls `main()` (or `main(index)` for flat programs with `size`).
 */
export interface WebGpuProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[]; y?: number[]; z?: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  uniforms: string;
  workgroupSize: [number, number, number];
  size: boolean;
  /** 4: the output (and by default every input) is declared array<vec4<f32>>. */
  outputComponent?: number;
  /** Per input, 1 or 4, where they differ from outputComponent. */
  variableComponents?: number[];
  getUserCode(): string;
}

/** Workgroups a dispatch may have along one dimension (WebGPU's default limit). */
const MAX_WORKGROUPS_PER_DIMENSION = 65_535;

/**
 * Layout and dispatch of a flat program of `workgroupSize` threads a workgroup: enough workgroups
 * for every output element, wrapped into y past the per-dimension limit (tfjs's global index
 * then counts workgroupId.y * numWorkgroups.x; threads past the end see index >= uniforms.size).
 */
export function flatDispatch(
  outputShape: readonly number[],
  workgroupSize: number,
): Pick<WebGpuProgram, 'dispatchLayout' | 'dispatch'> {
  const groups = Math.ceil(outputShape.reduce((a, b) => a * b, 1) / workgroupSize);
  return {
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.min(groups, MAX_WORKGROUPS_PER_DIMENSION), Math.ceil(groups / MAX_WORKGROUPS_PER_DIMENSION), 1],
  };
}

/**
 * A flat program: one thread per output element, `body` the WGSL that sets the output at `index`
 * (with `setOutputAtIndex`), reading the inputs named in `variableNames` and the `uniforms` declared.
 * With `inputComponents` (an output whose size is a multiple of 4), one thread per 4 elements:
 * the output and the inputs marked 4 are arrays of vec4<f32>, `index` and `uniforms.size` count
 * vec4s.
 */
export class FlatProgram implements WebGpuProgram {
  workgroupSize: [number, number, number] = [64, 1, 1];
  size = true;
  dispatchLayout: WebGpuProgram['dispatchLayout'];
  dispatch: WebGpuProgram['dispatch'];
  outputComponent?: number;
  variableComponents?: number[];

  constructor(
    public shaderKey: string,
    public outputShape: number[],
    public variableNames: string[],
    public uniforms: string,
    private readonly body: string,
    inputComponents?: Array<1 | 4>,
  ) {
    const elements = tf.util.sizeFromShape(outputShape);
    if (inputComponents) {
      if (elements % 4 !== 0)
        throw new Error(`${shaderKey}: a vec4 program needs a multiple of 4 elements, not ${elements}`);
      this.outputComponent = 4;
      this.variableComponents = inputComponents;
    }
    this.dispatchLayout = flatDispatch(outputShape, 64).dispatchLayout;
    this.dispatch = flatDispatch([inputComponents ? elements / 4 : elements], 64).dispatch;
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          ${this.body}
        }
      }
    `;
  }
}

/** Sums [splits, ...] partials over the first axis into `outputShape` (any shape, same size). */
export function sumOfPartials(outputShape: number[]): FlatProgram {
  return new FlatProgram(
    'pneumoganSumOfPartials',
    outputShape,
    ['partials'],
    'splits : i32,',
    `var total = 0.0;
          for (var s = 0; s < uniforms.splits; s++) {
            total += partials[s * uniforms.size + index];
          }
          setOutputAtIndex(index, total);`,
  );
}

/** Whether the backend now running is WebGPU with `kernelName` registered (by useWebGpuKernel). */
export function webGpuKernelRuns(kernelName: string): boolean {
  return tf.getBackend() === 'webgpu' && tf.getKernel(kernelName, 'webgpu') !== undefined;
}

/** Registers `kernelFunc` as `kernelName` for the 'webgpu' backend (or with `on` false removes it). */
export function useWebGpuKernel(kernelName: string, kernelFunc: unknown, on: boolean): void {
  const registered = tf.getKernel(kernelName, 'webgpu') !== undefined;
  if (on && !registered)
    tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc: kernelFunc as tf.KernelFunc });
  if (!on && registered) tf.unregisterKernel(kernelName, 'webgpu');
}

/**
 * Counts the programs the WebGPU backend dispatches until `stop()`, and keeps their shader keys
 * (every tfjs WebGPU kernel runs through runWebGPUProgram, and one kernel may run several);
 * undefined on any other backend.
 */
export function countWebGpuPrograms():
  { count: () => number; shaderKeys: () => string[]; stop: () => void } | undefined {
  if (tf.getBackend() !== 'webgpu') return undefined;
  const backend = tf.backend() as WebGPUBackend;
  // Unbound on purpose: it is called with apply() and put back as it was.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const run = backend.runWebGPUProgram;
  const keys: string[] = [];
  backend.runWebGPUProgram = (program, ...rest) => {
    keys.push(program.shaderKey);
    return run.apply(backend, [program, ...rest]);
  };
  return { count: () => keys.length, shaderKeys: () => [...keys], stop: () => (backend.runWebGPUProgram = run) };
}
