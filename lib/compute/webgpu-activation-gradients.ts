/**
 * The gradients of ReLU and leaky ReLU as one WebGPU program each: dy where x > 0, dy * alpha
 * elsewhere (alpha 0 for ReLU). tfjs-core's take two programs for ReLU (step, multiply) and three
 * for leaky ReLU (greater, multiply, select); on an H100 a step's time went to queueing programs
 * (gpu/results/h100-webgpu-2026-11-26.md), and GoogLeNet alone has 57 ReLUs. The values are
 * tfjs's bit for bit wherever x is a number (dy * 0 keeps the sign of zero as tfjs's multiply
 * does); a NaN in x gives dy * alpha, not NaN. Other backends keep tfjs's own gradients.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { FlatProgram, useWebGpuKernel, webGpuKernelRuns } from './webgpu-program.js';

export const ACTIVATION_GRADIENT = 'PneumoganActivationGradient';

function activationGradient(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: WebGPUBackend;
  attrs: { alpha: number };
}): tf.TensorInfo {
  const { dy, x } = args.inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
  const program = new FlatProgram(
    'pneumoganActivationGradient',
    x.shape,
    ['dy', 'x'],
    'alpha : f32,',
    `let g = dy[index];
          setOutputAtIndex(index, select(g * uniforms.alpha, g, x[index] > 0.0));`,
  );
  return args.backend.runWebGPUProgram(program, [dy, x], 'float32', [{ type: 'float32', data: [args.attrs.alpha] }]);
}

/** tfjs's own gradient configs, for every other backend and to put back. */
let stock: Record<string, tf.GradConfig> | undefined;

function gradientOf(kernelName: string, alphaOf: (attrs: tf.NamedAttrMap) => number): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      if (!webGpuKernelRuns(ACTIVATION_GRADIENT) || x!.dtype !== 'float32' || (dy as tf.Tensor).dtype !== 'float32')
        return stock![kernelName]!.gradFunc(dy, saved, attrs);
      return {
        x: () =>
          tf
            .engine()
            .runKernel<tf.Tensor>(ACTIVATION_GRADIENT, { dy: dy as tf.Tensor, x: x! }, { alpha: alphaOf(attrs) }),
      };
    },
  };
}

const OURS = [
  gradientOf(tf.Relu, () => 0),
  gradientOf(tf.LeakyRelu, (attrs) => (attrs as unknown as tf.LeakyReluAttrs).alpha),
];

/** Puts ours in place (or tfjs's back with `false`): the program for 'webgpu', the gradients in the global registry. */
export function useWebGpuActivationGradients(on: boolean): void {
  stock ??= { [tf.Relu]: tf.getGradient(tf.Relu), [tf.LeakyRelu]: tf.getGradient(tf.LeakyRelu) };
  useWebGpuKernel(ACTIVATION_GRADIENT, activationGradient, on);
  for (const config of on ? OURS : Object.values(stock)) tf.registerGradient(config);
}
