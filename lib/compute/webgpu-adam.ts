/**
 * Adam with one fused update per variable on WebGPU.
 *
 * tfjs's AdamOptimizer updates each variable with 14 elementwise kernels (each one a GPU
 * dispatch with its own bind group and output buffer) and uploads six scalar constants per
 * variable. A DCGAN step updates 24 variables in two optimizers: over 300 dispatches and 140
 * uploads of little work each, which on a GPU cost more in dispatch overhead than in arithmetic. Here
 * each variable takes one kernel of two small programs (its new moments, m and v packed in one
 * tensor, and its new value, which recomputes the moments it needs, so neither waits on the
 * other), with the hyper-parameters as uniforms. Variables whose size is a multiple of 4 are
 * updated four elements a thread, as vec4 (the H100 profile had the scalar form moving about
 * 445 GB/s on AlexNet's 37.7 M-weight layer, a fraction of the GPU's memory bandwidth).
 *
 * The arithmetic follows tfjs's order, so results agree with tf.train.adam to float rounding;
 * the optimizer state (moments, accumulated beta powers, iterations) is tfjs's own whenever it is
 * read or written (`getWeights`, `setWeights`, another backend's step: the packed moments are
 * unpacked into tfjs's slots first), so checkpoints stay interchangeable. On any other backend,
 * or with PNEUMOGAN_WEBGPU_KERNELS=stock, it is tf.train.adam unchanged.
 * test/unit/webgpu-adam.test.ts compares it with the CPU backend.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { FlatProgram, useWebGpuKernel, webGpuKernelRuns } from './webgpu-program.js';

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
  useWebGpuKernel(ADAM_UPDATE, adamUpdate, fused);
}

/** tf.train.adam's signature and defaults. */
export function adam(learningRate: number, beta1 = 0.9, beta2 = 0.999): tf.AdamOptimizer {
  return new FusedAdamOptimizer(learningRate, beta1, beta2);
}

type VariableGradients = Parameters<tf.AdamOptimizer['applyGradients']>[0];
type NamedTensor = Awaited<ReturnType<tf.Optimizer['getWeights']>>[number];

/** One variable's moments on WebGPU: m and v, flattened, one after the other. */
interface PackedMoments {
  name: string;
  shape: number[];
  moments: tf.Variable;
}

export class FusedAdamOptimizer extends tf.AdamOptimizer {
  /**
   * Per variable (tfjs's slot index), its moments packed while on WebGPU, so that one program
   * writes both; tfjs's slots hold them again whenever something else reads or runs them.
   */
  private packed: Array<PackedMoments | undefined> = [];

  override applyGradients(variableGradients: VariableGradients): void {
    if (!webGpuKernelRuns(ADAM_UPDATE)) {
      this.unpack();
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
        const gradient = Array.isArray(variableGradients) ? variableGradients[i]!.tensor : variableGradients[name];
        if (gradient == null) return;
        const { moments } = (this.packed[i] ??= this.pack(i, name, value));
        const attrs: AdamUpdateAttrs = {
          beta1: self.beta1,
          beta2: self.beta2,
          learningRate: self.learningRate,
          epsilon: self.epsilon,
        };
        const [updatedMoments, updatedValue] = tf
          .engine()
          .runKernel<tf.Tensor[]>(
            ADAM_UPDATE,
            { moments, value, gradient, accBeta1: self.accBeta1, accBeta2: self.accBeta2 },
            attrs as unknown as tf.NamedAttrMap,
          );
        moments.assign(updatedMoments!);
        value.assign(updatedValue!);
      });
      self.accBeta1.assign(tf.mul(self.accBeta1, self.beta1));
      self.accBeta2.assign(tf.mul(self.accBeta2, self.beta2));
    });
    this.incrementIterations();
  }

  /** Packs slot i's moments (zeros for a variable without any yet) and empties the slot. */
  private pack(i: number, name: string, value: tf.Variable): PackedMoments {
    const self = this as unknown as AdamInternals;
    const m = self.accumulatedFirstMoment[i]?.variable;
    const v = self.accumulatedSecondMoment[i]?.variable;
    const moments = tf.tidy(() =>
      (m && v ? tf.concat([m.flatten(), v.flatten()]) : tf.zeros([2 * value.size])).variable(false),
    );
    tf.dispose([m, v].filter((t): t is tf.Variable => t !== undefined));
    self.accumulatedFirstMoment[i] = undefined;
    self.accumulatedSecondMoment[i] = undefined;
    return { name, shape: value.shape, moments };
  }

  /** Puts every packed variable's moments back into tfjs's slots, under tfjs's names. */
  private unpack(): void {
    const self = this as unknown as AdamInternals;
    this.packed.forEach((entry, i) => {
      if (!entry) return;
      const size = entry.moments.size / 2;
      const slot = (begin: number, suffix: string) => ({
        originalName: `${entry.name}/${suffix}`,
        variable: tf.tidy(() => entry.moments.slice(begin, size).reshape(entry.shape).variable(false)),
      });
      self.accumulatedFirstMoment[i] = slot(0, 'm');
      self.accumulatedSecondMoment[i] = slot(size, 'v');
      entry.moments.dispose();
    });
    this.packed = [];
  }

  override async getWeights(): Promise<NamedTensor[]> {
    this.unpack();
    return super.getWeights();
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    this.unpack();
    this.disposeSlots();
    return super.setWeights(weightValues);
  }

  override dispose(): void {
    this.packed.forEach((entry) => entry?.moments.dispose());
    this.packed = [];
    // Slots emptied by pack() have nothing to free.
    const self = this as unknown as AdamInternals;
    self.accumulatedFirstMoment = self.accumulatedFirstMoment.filter((slot) => slot !== undefined);
    self.accumulatedSecondMoment = self.accumulatedSecondMoment.filter((slot) => slot !== undefined);
    super.dispose();
  }

  /** tfjs's setWeights replaces the slots without freeing the variables in them. */
  private disposeSlots(): void {
    const self = this as unknown as AdamInternals;
    const variables = [...self.accumulatedFirstMoment, ...self.accumulatedSecondMoment].map((slot) => slot?.variable);
    tf.dispose(variables.filter((t): t is tf.Variable => t !== undefined));
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
  // Four elements a thread where the variable's size allows (all but a few biases).
  const components = tf.util.sizeFromShape(inputs.value!.shape) % 4 === 0 ? 4 : 1;
  return (['moments', 'value'] as const).map((output) => {
    const program = adamUpdateProgram(
      output === 'moments' ? inputs.moments!.shape : inputs.value!.shape,
      output,
      components,
    );
    return args.backend.runWebGPUProgram(
      program,
      program.variableNames.map((name) => inputs[name]!),
      'float32',
      uniforms,
    );
  });
}

/**
 * One of the two outputs of an Adam update: the packed moments [m, v] (2 x the variable's size) or
 * the new value, elementwise, one element or four (vec4) a thread. Each program binds only the
 * inputs it reads: Dawn derives the bind group layout from the shader and rejects buffers the
 * shader does not use.
 */
function adamUpdateProgram(outputShape: number[], output: 'moments' | 'value', components: 1 | 4): FlatProgram {
  const key = `pneumoganAdamUpdate_${output}${components === 4 ? '_vec4' : ''}`;
  const vec4 = components === 4;
  // n: the variable's size; m at moments[i], v at moments[n + i].
  const m = (i: string) => `moments[${i}] * uniforms.beta1 + g * uniforms.oneMinusBeta1`;
  const v = (i: string) => `moments[${i}] * uniforms.beta2 + (g * g) * uniforms.oneMinusBeta2`;
  const uniforms =
    'beta1 : f32, oneMinusBeta1 : f32, beta2 : f32, oneMinusBeta2 : f32, negLearningRate : f32, epsilon : f32,';
  if (output === 'moments')
    return new FlatProgram(
      key,
      outputShape,
      ['moments', 'gradient'],
      uniforms,
      `let n = uniforms.size / 2;
          if (index < n) {
            let g = gradient[index];
            setOutputAtIndex(index, ${m('index')});
          } else {
            let g = gradient[index - n];
            setOutputAtIndex(index, ${v('index')});
          }`,
      vec4 ? [4, 4] : undefined,
    );
  return new FlatProgram(
    key,
    outputShape,
    ['moments', 'value', 'gradient', 'accBeta1', 'accBeta2'],
    uniforms,
    `let g = gradient[index];
          let m = ${m('index')};
          let v = ${v('uniforms.size + index')};
          setOutputAtIndex(index, value[index] + (m / (1.0 - accBeta1[0])) / (sqrt(v / (1.0 - accBeta2[0])) + uniforms.epsilon) * uniforms.negLearningRate);`,
    vec4 ? [4, 4, 4, 1, 1] : undefined,
  );
}
