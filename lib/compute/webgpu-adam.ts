/**
 * Adam with one fused update per variable on WebGPU.
 *
 * tfjs's AdamOptimizer updates each variable with 14 elementwise kernels (each one a GPU
 * dispatch with its own bind group and output buffer) and uploads six scalar constants per
 * variable. A DCGAN step updates 24 variables in two optimizers: over 300 dispatches and 140
 * uploads of little work each, which on a GPU cost more in dispatch overhead than in arithmetic. Here
 * each variable takes one kernel of three small programs (new first moment, new second moment,
 * new value; each recomputes the moments it needs, so none waits on another), with the
 * hyper-parameters as uniforms.
 *
 * The arithmetic follows tfjs's order, so results agree with tf.train.adam to float rounding;
 * the optimizer state (moments, accumulated beta powers, iterations) is tfjs's own, so
 * checkpoints stay interchangeable. On any other backend, or with PNEUMOGAN_WEBGPU_KERNELS=stock,
 * it is tf.train.adam unchanged. test/unit/webgpu-adam.test.ts compares it with the CPU backend.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { flatDispatch, type WebGpuProgram } from './webgpu-program.js';

export const ADAM_UPDATE = 'PneumoganAdamUpdate';

type Float = { type: 'float32'; data: number[] };

interface AdamUpdateAttrs {
  beta1: number;
  beta2: number;
  learningRate: number;
  epsilon: number;
}

/** The fields of tfjs's AdamOptimizer that its type declares private. */
interface AdamInternals {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  accumulatedSecondMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
}

/** Registers (or with `false` removes) the fused update for the 'webgpu' backend. */
export function useFusedAdam(fused: boolean): void {
  const registered = tf.getKernel(ADAM_UPDATE, 'webgpu') !== undefined;
  if (fused && !registered)
    tf.registerKernel({
      kernelName: ADAM_UPDATE,
      backendName: 'webgpu',
      kernelFunc: adamUpdate as unknown as tf.KernelFunc,
    });
  if (!fused && registered) tf.unregisterKernel(ADAM_UPDATE, 'webgpu');
}

/** tf.train.adam's signature and defaults. */
export function adam(learningRate: number, beta1 = 0.9, beta2 = 0.999): tf.AdamOptimizer {
  return new FusedAdamOptimizer(learningRate, beta1, beta2);
}

type VariableGradients = Parameters<tf.AdamOptimizer['applyGradients']>[0];

export class FusedAdamOptimizer extends tf.AdamOptimizer {
  override applyGradients(variableGradients: VariableGradients): void {
    if (tf.getBackend() !== 'webgpu' || tf.getKernel(ADAM_UPDATE, 'webgpu') === undefined) {
      super.applyGradients(variableGradients);
      return;
    }
    const self = this as unknown as AdamInternals;
    const names = Array.isArray(variableGradients)
      ? variableGradients.map((v) => v.name)
      : Object.keys(variableGradients);
    tf.tidy(() => {
      names.forEach((name, i) => {
        const value = tf.engine().registeredVariables[name]!;
        // The same slots, names and order as tfjs's, so getWeights/setWeights are unchanged.
        const zeros = () => tf.tidy(() => tf.zerosLike(value).variable(false));
        self.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: zeros() };
        self.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: zeros() };
        const gradient = Array.isArray(variableGradients) ? variableGradients[i]!.tensor : variableGradients[name];
        if (gradient == null) return;
        const firstMoment = self.accumulatedFirstMoment[i].variable;
        const secondMoment = self.accumulatedSecondMoment[i].variable;
        const attrs: AdamUpdateAttrs = {
          beta1: self.beta1,
          beta2: self.beta2,
          learningRate: self.learningRate,
          epsilon: self.epsilon,
        };
        const [m, v, w] = tf
          .engine()
          .runKernel<tf.Tensor[]>(
            ADAM_UPDATE,
            { firstMoment, secondMoment, value, gradient, accBeta1: self.accBeta1, accBeta2: self.accBeta2 },
            attrs as unknown as tf.NamedAttrMap,
          );
        firstMoment.assign(m!);
        secondMoment.assign(v!);
        value.assign(w!);
      });
      self.accBeta1.assign(tf.mul(self.accBeta1, self.beta1));
      self.accBeta2.assign(tf.mul(self.accBeta2, self.beta2));
    });
    this.incrementIterations();
  }
}

function adamUpdate(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: WebGPUBackend;
  attrs: AdamUpdateAttrs;
}): tf.TensorInfo[] {
  const inputs = args.inputs as Record<string, tf.TensorInfo>;
  const { beta1, beta2, learningRate, epsilon } = args.attrs;
  const float = (v: number): Float => ({ type: 'float32', data: [v] });
  // As tfjs: 1 - beta and -learningRate in double precision, then to float32.
  const uniforms = [
    float(beta1),
    float(1 - beta1),
    float(beta2),
    float(1 - beta2),
    float(-learningRate),
    float(epsilon),
  ];
  return (['firstMoment', 'secondMoment', 'value'] as const).map((output) => {
    const program = new AdamUpdateProgram(inputs.value!.shape, output);
    return args.backend.runWebGPUProgram(
      program,
      program.variableNames.map((name) => inputs[name]!),
      'float32',
      uniforms,
    );
  });
}

/**
 * One of the three outputs of an Adam update, elementwise over the variable. Each program binds
 * only the inputs it reads: Dawn derives the bind group layout from the shader and rejects
 * buffers the shader does not use.
 */
class AdamUpdateProgram implements WebGpuProgram {
  shaderKey: string;
  variableNames: string[];
  uniforms =
    'beta1 : f32, oneMinusBeta1 : f32, beta2 : f32, oneMinusBeta2 : f32, negLearningRate : f32, epsilon : f32,';
  workgroupSize: [number, number, number] = [64, 1, 1];
  size = true;
  dispatchLayout: WebGpuProgram['dispatchLayout'];
  dispatch: WebGpuProgram['dispatch'];

  constructor(
    public outputShape: number[],
    private readonly output: 'firstMoment' | 'secondMoment' | 'value',
  ) {
    this.shaderKey = `pneumoganAdamUpdate_${output}`;
    this.variableNames = {
      firstMoment: ['firstMoment', 'gradient'],
      secondMoment: ['secondMoment', 'gradient'],
      value: ['firstMoment', 'secondMoment', 'value', 'gradient', 'accBeta1', 'accBeta2'],
    }[output];
    ({ dispatchLayout: this.dispatchLayout, dispatch: this.dispatch } = flatDispatch(outputShape, 64));
  }

  getUserCode(): string {
    const m = 'firstMoment[index] * uniforms.beta1 + g * uniforms.oneMinusBeta1';
    const v = 'secondMoment[index] * uniforms.beta2 + (g * g) * uniforms.oneMinusBeta2';
    const result = {
      firstMoment: m,
      secondMoment: v,
      value:
        'value[index] + (m / (1.0 - accBeta1[0])) / (sqrt(v / (1.0 - accBeta2[0])) + uniforms.epsilon) * uniforms.negLearningRate',
    }[this.output];
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let g = gradient[index];
          ${this.output === 'value' ? `let m = ${m};\n          let v = ${v};` : ''}
          setOutputAtIndex(index, ${result});
        }
      }
    `;
  }
}
