/**
 * What the four backbones share: their options, PyTorch's output-size rules, and layer builders
 * that reproduce torchvision's padding, pooling and initialisation in TensorFlow.js (NHWC).
 *
 * Padding and pooling follow PyTorch exactly: explicit `ZeroPadding2D` + 'valid' where
 * PyTorch's symmetric padding differs from TF's 'same' (strided layers); 'same' only for
 * stride-1 odd kernels with padding (k-1)/2, where both agree. Max-pool padding and
 * `ceil_mode` overhang are zero-padded instead of -inf: every max pool here reads ReLU
 * outputs (>= 0), so the result is identical.
 */
import * as tf from '@tensorflow/tfjs';
import { BatchNorm } from '../batch-norm.js';
import { LinearConv2D } from '../conv2d.js';

export interface BackboneOptions {
  /** Square input side in pixels (224/227 for the paper; 32 or 64 for tests). */
  inputSize: number;
  /** Scales every channel count; 1.0 is torchvision's exact architecture. */
  widthMultiplier: number;
  /** Size of the classification head (2 for normal vs pneumonia). */
  numClasses: number;
  /**
   * Dropout rate wherever torchvision has dropout (its defaults: AlexNet 0.5, GoogLeNet 0.2,
   * SqueezeNet 0.5; ResNet18 has none and ignores it).
   */
  dropout: number;
}

// ---------------------------------------------------------------------------------------------
// PyTorch size rules

/** One resolution-changing op on a net's main path (branches inside blocks keep the size). */
export type SpatialOp = { kind: 'conv' | 'pool'; k: number; s: number; p: number; ceil: boolean };
export const cv = (k: number, s: number, p: number): SpatialOp => ({ kind: 'conv', k, s, p, ceil: false });
export const pl = (k: number, s: number, p: number, ceil: boolean): SpatialOp => ({ kind: 'pool', k, s, p, ceil });

export function torchConvOut(n: number, k: number, s: number, p: number): number {
  return n + 2 * p < k ? 0 : Math.floor((n + 2 * p - k) / s) + 1;
}

/** ATen's pooling_output_shape (div rounds toward -inf; ceil windows must start inside). */
export function torchPoolOut(n: number, k: number, s: number, p: number, ceil: boolean): number {
  let out = Math.floor((n + 2 * p - (k - 1) - 1 + (ceil ? s - 1 : 0)) / s) + 1;
  if (ceil && (out - 1) * s >= n + p) out--;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Layer builders

export type ST = tf.SymbolicTensor;
/** tfjs does not export its Initializer class by name. */
export type Init = ReturnType<typeof tf.initializers.zeros>;

/** PyTorch BatchNorm momentum 0.1 (weight of the new batch) is Keras momentum 0.9. */
const BN_MOMENTUM = 0.9;

export function widthFn(w: number): (c: number) => number {
  return (c) => Math.max(1, Math.round(c * w));
}

export function ap(layer: tf.layers.Layer, x: ST | ST[]): ST {
  return layer.apply(x) as ST;
}

function side(x: ST): number {
  const h = x.shape[1];
  if (h == null) throw new Error('spatial size must be static');
  return h;
}

export function channels(x: ST): number {
  const c = x.shape[3];
  if (c == null) throw new Error('channel count must be static');
  return c;
}

/** PyTorch's default Conv/Linear init, kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in)). */
export function torchDefaultKernel(): Init {
  return tf.initializers.varianceScaling({ scale: 1 / 3, mode: 'fanIn', distribution: 'uniform' });
}
/** PyTorch's default bias init: U(+-1/sqrt(fan_in)). */
export function torchDefaultBias(fanIn: number): Init {
  const b = 1 / Math.sqrt(fanIn);
  return tf.initializers.randomUniform({ minval: -b, maxval: b });
}

interface ConvSpec {
  name: string;
  filters: number;
  kernel: number;
  stride?: number;
  padding?: number;
  bias: boolean;
  relu?: boolean;
  kernelInit: Init;
  biasInit?: Init;
}

/** nn.Conv2d with PyTorch's symmetric zero padding. */
export function conv(x: ST, spec: ConvSpec): ST {
  const k = spec.kernel;
  const s = spec.stride ?? 1;
  const p = spec.padding ?? 0;
  let padding: 'same' | 'valid' = 'valid';
  if (p > 0) {
    if (s === 1 && 2 * p === k - 1) {
      padding = 'same'; // TF 'same' pads (k-1)/2 on both sides here: identical to PyTorch
    } else {
      x = ap(
        tf.layers.zeroPadding2d({
          padding: [
            [p, p],
            [p, p],
          ],
          name: `${spec.name}.pad`,
        }),
        x,
      );
    }
  }
  if (!spec.bias && !spec.relu) {
    // Batch norm follows: a plain convolution, whose gradient skips the input where unneeded.
    return ap(
      new LinearConv2D({
        name: spec.name,
        filters: spec.filters,
        kernelSize: k,
        strides: s,
        padding,
        kernelInitializer: spec.kernelInit,
      }),
      x,
    );
  }
  return ap(
    tf.layers.conv2d({
      name: spec.name,
      filters: spec.filters,
      kernelSize: k,
      strides: s,
      padding,
      useBias: spec.bias,
      activation: spec.relu ? 'relu' : 'linear',
      kernelInitializer: spec.kernelInit,
      biasInitializer: spec.biasInit ?? 'zeros',
    }),
    x,
  );
}

/**
 * nn.MaxPool2d(k, s, p, ceil_mode). PyTorch pads with -inf and lets ceil-mode windows hang
 * over the bottom/right edge; here both become zero padding, which gives the same maxima
 * because every call site pools ReLU outputs (>= 0).
 */
export function maxPool(x: ST, name: string, k: number, s: number, p: number, ceil: boolean): ST {
  const n = side(x);
  const out = torchPoolOut(n, k, s, p, ceil);
  if (out < 1) throw new Error(`${name}: ${n}x${n} input is too small for a ${k}x${k}/${s} max pool`);
  const extra = Math.max(0, (out - 1) * s + k - (n + 2 * p));
  if (s === 1 && 2 * p === k - 1 && extra === 0) {
    // TF 'same' max pooling ignores the (symmetric) padding, exactly like PyTorch's -inf.
    return ap(tf.layers.maxPooling2d({ name, poolSize: k, strides: 1, padding: 'same' }), x);
  }
  if (p > 0 || extra > 0) {
    x = ap(
      tf.layers.zeroPadding2d({
        padding: [
          [p, p + extra],
          [p, p + extra],
        ],
        name: `${name}.pad`,
      }),
      x,
    );
  }
  return ap(tf.layers.maxPooling2d({ name, poolSize: k, strides: s, padding: 'valid' }), x);
}

export function batchNorm(x: ST, name: string, epsilon: number): ST {
  return ap(new BatchNorm({ name, momentum: BN_MOMENTUM, epsilon }), x);
}

export function relu(x: ST, name: string): ST {
  return ap(tf.layers.reLU({ name }), x);
}

export function dense(x: ST, name: string, units: number, relu: boolean, kernelInit: Init, biasInit: Init): ST {
  return ap(
    tf.layers.dense({
      name,
      units,
      activation: relu ? 'relu' : 'linear',
      kernelInitializer: kernelInit,
      biasInitializer: biasInit,
    }),
    x,
  );
}

export function imageInput(o: BackboneOptions): ST {
  return tf.input({ shape: [o.inputSize, o.inputSize, 3], name: 'input' });
}
