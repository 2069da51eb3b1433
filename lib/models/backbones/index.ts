/**
 * The four ImageNet CNNs Khalifa et al. 2020 fine-tune (AlexNet, GoogLeNet, SqueezeNet 1.1,
 * ResNet18), rebuilt layer for layer after torchvision's definitions as TensorFlow.js
 * functional (`tf.model`) graphs in NHWC layout, one file per architecture beside this one.
 *
 * Inputs are `[N, inputSize, inputSize, 3]` (grayscale X-rays replicated to three channels by
 * the caller, normalised the way the caller's weights expect); outputs are logits
 * `[N, numClasses]` (no softmax). `widthMultiplier` scales every channel count, hidden fully
 * connected widths included (`max(1, round(c * w))`); at 1.0 every shape, and so the trainable
 * parameter count, equals torchvision's.
 *
 * Layer naming (for a loader of published torchvision weights): every layer that owns weights
 * is named after its torchvision module path, so torchvision's `<path>.weight` / `.bias` (and
 * BatchNorm's `.running_mean` / `.running_var`) belong to the tfjs layer named `<path>` (each
 * architecture's file lists its paths). Layers without weights use the torchvision module name
 * where one exists (features.2, maxpool1, avgpool, classifier.0 ...) and a `<owner>.<role>`
 * suffix for tfjs-only helpers (`.pad`, `.relu`, `.add`). A ReLU that directly follows a
 * conv/linear without BatchNorm is fused into that layer's `activation` (identical maths, one
 * kernel).
 *
 * Weight layout differences a loader must apply: conv kernels are `[kh, kw, in, out]`
 * (torchvision `[out, in, kh, kw]`), dense kernels `[in, out]` (torchvision `[out, in]`).
 * BatchNorm is `[gamma, beta, moving_mean, moving_variance]`.
 */
import type * as tf from '@tensorflow/tfjs';
import * as alexnet from './alexnet.js';
import * as googlenet from './googlenet.js';
import { torchConvOut, torchPoolOut, type BackboneOptions, type SpatialOp } from './layers.js';
import * as resnet18 from './resnet18.js';
import * as squeezenet from './squeezenet.js';

export { AdaptiveAvgPool2d, adaptivePoolMatrix } from './adaptive-avg-pool.js';
export type { BackboneOptions } from './layers.js';

export const BACKBONE_NAMES = ['alexnet', 'googlenet', 'squeezenet', 'resnet18'] as const;
export type BackboneName = (typeof BACKBONE_NAMES)[number];

const ARCHITECTURES: Record<
  BackboneName,
  { build(o: BackboneOptions): tf.LayersModel; spatialChain: readonly SpatialOp[] }
> = { alexnet, googlenet, squeezenet, resnet18 };

export function isBackboneName(s: string): s is BackboneName {
  return (BACKBONE_NAMES as readonly string[]).includes(s);
}

/** Builds `name` for `o`; throws on an unknown name or an input too small for the net. */
export function buildBackbone(name: BackboneName, o: BackboneOptions): tf.LayersModel {
  if (!isBackboneName(name)) {
    throw new Error(`Unknown backbone "${String(name)}"; valid names: ${BACKBONE_NAMES.join(', ')}`);
  }
  validateOptions(o);
  const min = minInputSize(name);
  if (o.inputSize < min) {
    throw new Error(
      `${name} needs inputSize >= ${min} (got ${o.inputSize}): smaller inputs shrink a ` + 'feature map to zero size',
    );
  }
  return ARCHITECTURES[name].build(o);
}

/**
 * Trainable parameters (what PyTorch's `sum(p.numel() for p in model.parameters())` counts:
 * tfjs BatchNorm's moving mean/variance are non-trainable, like PyTorch's buffers). Layers
 * frozen with `trainable = false` are excluded.
 */
export function countParams(model: tf.LayersModel): number {
  let total = 0;
  for (const w of model.trainableWeights) total += w.shape.reduce<number>((a, b) => a * (b ?? 0), 1);
  return total;
}

/** Smallest square input `name` accepts (PyTorch's output-size rules on each net's spatial chain). */
export function minInputSize(name: BackboneName): number {
  const chain = ARCHITECTURES[name].spatialChain;
  for (let n = 1; n <= 4096; n++) {
    let size = n;
    for (const op of chain) {
      size = op.kind === 'conv' ? torchConvOut(size, op.k, op.s, op.p) : torchPoolOut(size, op.k, op.s, op.p, op.ceil);
      if (size < 1) break;
    }
    if (size >= 1) return n;
  }
  throw new Error(`no input size up to 4096 fits ${name}`);
}

function validateOptions(o: BackboneOptions): void {
  if (!Number.isInteger(o.inputSize) || o.inputSize < 1)
    throw new Error(`inputSize must be a positive integer (got ${o.inputSize})`);
  if (!(o.widthMultiplier > 0) || !Number.isFinite(o.widthMultiplier))
    throw new Error(`widthMultiplier must be > 0 (got ${o.widthMultiplier})`);
  if (!Number.isInteger(o.numClasses) || o.numClasses < 1)
    throw new Error(`numClasses must be a positive integer (got ${o.numClasses})`);
  if (!(o.dropout >= 0 && o.dropout < 1)) throw new Error(`dropout must be in [0, 1) (got ${o.dropout})`);
}
