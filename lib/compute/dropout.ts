/**
 * Dropout with a mask that is a function of (seed, element index), drawn where the tensor lives.
 *
 * tfjs's `dropout` draws its uniform numbers in JavaScript (a seeded generator, one value at a
 * time) and uploads them: for SqueezeNet's classifier that is 2.8 M values a step, about 24 ms of
 * host time on an H100 machine whose whole step took 72 ms. Here element i of the mask keeps its
 * value when hash(i xor hash(seed)) >= rate * 2^32, with Wellons' lowbias32 integer hash, so the
 * WebGPU backend computes the mask in a kernel from two uniforms and every other backend computes
 * the same bits in JavaScript: a seed gives the same mask on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { FlatProgram, useWebGpuKernel, webGpuKernelRuns } from './webgpu-program.js';

export const DROPOUT_MASK = 'PneumoganDropoutMask';

/** lowbias32 (Chris Wellons' hash-prospector): a bijection on 32-bit integers with low bias. */
export function hash32(value: number): number {
  let v = value >>> 0;
  v ^= v >>> 16;
  v = Math.imul(v, 0x7feb352d);
  v ^= v >>> 15;
  v = Math.imul(v, 0x846ca68b);
  v ^= v >>> 16;
  return v >>> 0;
}

interface MaskAttrs {
  shape: number[];
  /** A hashed element is dropped below this (rate * 2^32). */
  threshold: number;
  /** hash32(seed), xor-ed into every index. */
  key: number;
  /** 1 / (1 - rate) in float32, what kept elements are scaled by (as tfjs's dropout). */
  scale: number;
}

function maskAttrs(shape: number[], rate: number, seed: number): MaskAttrs {
  return {
    shape,
    threshold: Math.min(Math.round(rate * 2 ** 32), 2 ** 32 - 1),
    key: hash32(seed),
    scale: Math.fround(1 / Math.fround(1 - rate)),
  };
}

function maskOnHost({ shape, threshold, key, scale }: MaskAttrs): tf.Tensor {
  const mask = new Float32Array(tf.util.sizeFromShape(shape));
  for (let i = 0; i < mask.length; i++) mask[i] = hash32(i ^ key) >= threshold ? scale : 0;
  return tf.tensor(mask, shape);
}

function maskOnWebGpu(args: { backend: WebGPUBackend; attrs: MaskAttrs }): tf.TensorInfo {
  const { shape, threshold, key, scale } = args.attrs;
  const program = new FlatProgram(
    'pneumoganDropoutMask',
    shape,
    [],
    'threshold : u32, key : u32, scale : f32,',
    `var v = u32(index) ^ uniforms.key;
          v ^= v >> 16u;
          v *= 0x7feb352du;
          v ^= v >> 15u;
          v *= 0x846ca68bu;
          v ^= v >> 16u;
          setOutputAtIndex(index, select(0.0, uniforms.scale, v >= uniforms.threshold));`,
  );
  return args.backend.runWebGPUProgram(program, [], 'float32', [
    { type: 'uint32', data: [threshold] },
    { type: 'uint32', data: [key] },
    { type: 'float32', data: [scale] },
  ]);
}

/** Registers (or with `false` removes) the mask kernel for the 'webgpu' backend. */
export function useWebGpuDropoutMask(on: boolean): void {
  useWebGpuKernel(DROPOUT_MASK, maskOnWebGpu, on);
}

/** The mask: 0 for a dropped element, 1 / (1 - rate) for a kept one. */
export function dropoutMask(shape: number[], rate: number, seed: number): tf.Tensor {
  const attrs = maskAttrs(shape, rate, seed);
  if (webGpuKernelRuns(DROPOUT_MASK))
    return tf.engine().runKernel(DROPOUT_MASK, {}, attrs as unknown as tf.NamedAttrMap);
  return maskOnHost(attrs);
}

/** x with each element dropped at `rate` and the rest scaled up; differentiable in x. */
export function dropout(x: tf.Tensor, rate: number, seed: number): tf.Tensor {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout rate must be in [0, 1) (got ${rate})`);
  if (rate === 0) return x.clone();
  return tf.tidy(() => tf.mul(x, dropoutMask(x.shape, rate, seed)));
}
