/**
 * The four ImageNet CNNs Khalifa et al. 2020 fine-tune (AlexNet, GoogLeNet, SqueezeNet 1.1,
 * ResNet18), rebuilt layer for layer after torchvision's definitions as TensorFlow.js
 * functional (`tf.model`) graphs in NHWC layout.
 *
 * Inputs are `[N, inputSize, inputSize, 3]` (grayscale X-rays replicated to three channels by
 * the caller, normalised the way the caller's weights expect); outputs are logits
 * `[N, numClasses]` (no softmax). `widthMultiplier` scales every channel count, hidden fully
 * connected widths included (`max(1, round(c * w))`); at 1.0 every shape, and so the trainable
 * parameter count, equals torchvision's.
 *
 * Layer naming (for a loader of published torchvision weights): every layer that owns weights
 * is named after its torchvision module path, so torchvision's `<path>.weight` / `.bias` (and
 * BatchNorm's `.running_mean` / `.running_var`) belong to the tfjs layer named `<path>`:
 *   - AlexNet:    features.0|3|6|8|10 (conv), classifier.1|4|6 (linear)
 *   - GoogLeNet:  conv1.conv, conv1.bn, conv2.*, conv3.*, inception3a.branch1.conv,
 *                 inception3a.branch2.0.conv / .1.conv, inception3a.branch3.{0,1}.{conv,bn},
 *                 inception3a.branch4.1.conv, ... inception5b.*, fc
 *   - SqueezeNet: features.0, features.{3,4,6,7,9,10,11,12}.{squeeze,expand1x1,expand3x3},
 *                 classifier.1
 *   - ResNet18:   conv1, bn1, layer{1-4}.{0,1}.{conv1,bn1,conv2,bn2},
 *                 layer{2-4}.0.downsample.0 (conv) / .downsample.1 (bn), fc
 * Layers without weights use the torchvision module name where one exists (features.2,
 * maxpool1, avgpool, classifier.0 ...) and a `<owner>.<role>` suffix for tfjs-only helpers
 * (`.pad`, `.relu`, `.add`). A ReLU that directly follows a conv/linear without BatchNorm is
 * fused into that layer's `activation` (identical maths, one kernel), so e.g. AlexNet's
 * `features.1` has no layer of its own.
 *
 * Weight layout differences a loader must apply: conv kernels are `[kh, kw, in, out]`
 * (torchvision `[out, in, kh, kw]`), dense kernels `[in, out]` (torchvision `[out, in]`).
 * AlexNet flattens in PyTorch's channel-major order (a Permute to NCHW precedes the Flatten),
 * so `classifier.1` needs only the plain transpose. BatchNorm is `[gamma, beta, moving_mean,
 * moving_variance]`. torchvision's pretrained GoogLeNet also sets `transform_input=True`
 * (an input re-normalisation); that belongs to the caller's preprocessing, not to this graph.
 *
 * Padding and pooling follow PyTorch exactly: explicit `ZeroPadding2D` + 'valid' where
 * PyTorch's symmetric padding differs from TF's 'same' (strided layers); 'same' only for
 * stride-1 odd kernels with padding (k-1)/2, where both agree. Max-pool padding and
 * `ceil_mode` overhang are zero-padded instead of -inf: every max pool here reads ReLU
 * outputs (>= 0), so the result is identical. AlexNet's AdaptiveAvgPool2d((6,6)) is the
 * exact PyTorch bin rule (`AdaptiveAvgPool2d` below), so small inputs whose feature map is
 * below 6x6 are replicated the way PyTorch does; global pools are AdaptiveAvgPool2d((1,1)).
 */
import * as tf from '@tensorflow/tfjs';

export const BACKBONE_NAMES = ['alexnet', 'googlenet', 'squeezenet', 'resnet18'] as const;
export type BackboneName = (typeof BACKBONE_NAMES)[number];

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
  switch (name) {
    case 'alexnet':
      return buildAlexNet(o);
    case 'googlenet':
      return buildGoogLeNet(o);
    case 'squeezenet':
      return buildSqueezeNet(o);
    case 'resnet18':
      return buildResNet18(o);
  }
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

/** Smallest square input `name` accepts (PyTorch's output-size rules, see SPATIAL_CHAINS). */
export function minInputSize(name: BackboneName): number {
  const chain = SPATIAL_CHAINS[name];
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

// ---------------------------------------------------------------------------------------------
// PyTorch size rules

type SpatialOp = { kind: 'conv' | 'pool'; k: number; s: number; p: number; ceil: boolean };
const cv = (k: number, s: number, p: number): SpatialOp => ({ kind: 'conv', k, s, p, ceil: false });
const pl = (k: number, s: number, p: number, ceil: boolean): SpatialOp => ({ kind: 'pool', k, s, p, ceil });

/** The resolution-changing ops on each net's main path (branches inside blocks keep the size). */
const SPATIAL_CHAINS: Record<BackboneName, SpatialOp[]> = {
  alexnet: [cv(11, 4, 2), pl(3, 2, 0, false), cv(5, 1, 2), pl(3, 2, 0, false), cv(3, 1, 1), pl(3, 2, 0, false)],
  googlenet: [cv(7, 2, 3), pl(3, 2, 0, true), cv(3, 1, 1), pl(3, 2, 0, true), pl(3, 2, 0, true), pl(2, 2, 0, true)],
  squeezenet: [cv(3, 2, 0), pl(3, 2, 0, true), pl(3, 2, 0, true), pl(3, 2, 0, true)],
  resnet18: [cv(7, 2, 3), pl(3, 2, 1, false), cv(3, 2, 1), cv(3, 2, 1), cv(3, 2, 1)],
};

function torchConvOut(n: number, k: number, s: number, p: number): number {
  return n + 2 * p < k ? 0 : Math.floor((n + 2 * p - k) / s) + 1;
}

/** ATen's pooling_output_shape (div rounds toward -inf; ceil windows must start inside). */
function torchPoolOut(n: number, k: number, s: number, p: number, ceil: boolean): number {
  let out = Math.floor((n + 2 * p - (k - 1) - 1 + (ceil ? s - 1 : 0)) / s) + 1;
  if (ceil && (out - 1) * s >= n + p) out--;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Shared building blocks

type ST = tf.SymbolicTensor;
/** tfjs does not export its Initializer class by name. */
type Init = ReturnType<typeof tf.initializers.zeros>;

/** PyTorch BatchNorm momentum 0.1 (weight of the new batch) is Keras momentum 0.9. */
const BN_MOMENTUM = 0.9;

function validateOptions(o: BackboneOptions): void {
  if (!Number.isInteger(o.inputSize) || o.inputSize < 1)
    throw new Error(`inputSize must be a positive integer (got ${o.inputSize})`);
  if (!(o.widthMultiplier > 0) || !Number.isFinite(o.widthMultiplier))
    throw new Error(`widthMultiplier must be > 0 (got ${o.widthMultiplier})`);
  if (!Number.isInteger(o.numClasses) || o.numClasses < 1)
    throw new Error(`numClasses must be a positive integer (got ${o.numClasses})`);
  if (!(o.dropout >= 0 && o.dropout < 1)) throw new Error(`dropout must be in [0, 1) (got ${o.dropout})`);
}

function widthFn(w: number): (c: number) => number {
  return (c) => Math.max(1, Math.round(c * w));
}

function ap(layer: tf.layers.Layer, x: ST | ST[]): ST {
  return layer.apply(x) as ST;
}

function side(x: ST): number {
  const h = x.shape[1];
  if (h == null) throw new Error('spatial size must be static');
  return h;
}

function channels(x: ST): number {
  const c = x.shape[3];
  if (c == null) throw new Error('channel count must be static');
  return c;
}

/** PyTorch's default Conv/Linear init, kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in)). */
function torchDefaultKernel(): Init {
  return tf.initializers.varianceScaling({ scale: 1 / 3, mode: 'fanIn', distribution: 'uniform' });
}
/** PyTorch's default bias init: U(+-1/sqrt(fan_in)). */
function torchDefaultBias(fanIn: number): Init {
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
function conv(x: ST, spec: ConvSpec): ST {
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
function maxPool(x: ST, name: string, k: number, s: number, p: number, ceil: boolean): ST {
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

function batchNorm(x: ST, name: string, epsilon: number): ST {
  return ap(tf.layers.batchNormalization({ name, axis: -1, momentum: BN_MOMENTUM, epsilon }), x);
}

function relu(x: ST, name: string): ST {
  return ap(tf.layers.reLU({ name }), x);
}

function dense(x: ST, name: string, units: number, relu: boolean, kernelInit: Init, biasInit: Init): ST {
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

function imageInput(o: BackboneOptions): ST {
  return tf.input({ shape: [o.inputSize, o.inputSize, 3], name: 'input' });
}

// ---------------------------------------------------------------------------------------------
// AdaptiveAvgPool2d

/**
 * Row i of PyTorch's adaptive average pool as an [out, n] averaging matrix: input cells
 * [floor(i*n/out), ceil((i+1)*n/out)). Bins overlap when n > out does not divide evenly and
 * repeat input cells when n < out (a 1x1 map becomes 6x6 copies), exactly as in ATen.
 */
export function adaptivePoolMatrix(n: number, out: number): number[][] {
  const rows: number[][] = [];
  for (let i = 0; i < out; i++) {
    const start = Math.floor((i * n) / out);
    const end = Math.ceil(((i + 1) * n) / out);
    const row = new Array<number>(n).fill(0);
    for (let j = start; j < end; j++) row[j] = 1 / (end - start);
    rows.push(row);
  }
  return rows;
}

/** torch.nn.AdaptiveAvgPool2d for NHWC tensors (weightless; separable, so two matmuls). */
export class AdaptiveAvgPool2d extends tf.layers.Layer {
  static className = 'AdaptiveAvgPool2d';
  private readonly outH: number;
  private readonly outW: number;

  constructor(args: { outputSize: number | [number, number]; name?: string }) {
    super({ name: args.name });
    const [h, w] = typeof args.outputSize === 'number' ? [args.outputSize, args.outputSize] : args.outputSize;
    this.outH = h;
    this.outW = w;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [s[0] ?? null, this.outH, this.outW, s[3] ?? null];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      const [n, h, w, c] = x.shape;
      if (h === this.outH && w === this.outW) return x.clone();
      const ah = tf.tensor2d(adaptivePoolMatrix(h, this.outH)); // [outH, h]
      const aw = tf.tensor2d(adaptivePoolMatrix(w, this.outW)); // [outW, w]
      // pool H: [N,H,W,C] -> [N,W,C,H] -> (N*W*C, H) x (H, outH)
      const t1 = x
        .transpose([0, 2, 3, 1])
        .reshape([n * w * c, h])
        .matMul(ah, false, true);
      // pool W: [N,W,C,outH] -> [N,outH,C,W] -> (N*outH*C, W) x (W, outW)
      const t2 = t1
        .reshape([n, w, c, this.outH])
        .transpose([0, 3, 2, 1])
        .reshape([n * this.outH * c, w])
        .matMul(aw, false, true);
      return t2.reshape([n, this.outH, c, this.outW]).transpose([0, 1, 3, 2]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), outputSize: [this.outH, this.outW] };
  }
}
tf.serialization.registerClass(AdaptiveAvgPool2d);

// ---------------------------------------------------------------------------------------------
// AlexNet (torchvision.models.alexnet)

function buildAlexNet(o: BackboneOptions): tf.LayersModel {
  const ch = widthFn(o.widthMultiplier);
  const input = imageInput(o);
  const tconv = (x: ST, name: string, filters: number, kernel: number, stride: number, padding: number): ST =>
    conv(x, {
      name,
      filters,
      kernel,
      stride,
      padding,
      bias: true,
      relu: true,
      kernelInit: torchDefaultKernel(),
      biasInit: torchDefaultBias(channels(x) * kernel * kernel),
    });
  let x = tconv(input, 'features.0', ch(64), 11, 4, 2); // + features.1 ReLU
  x = maxPool(x, 'features.2', 3, 2, 0, false);
  x = tconv(x, 'features.3', ch(192), 5, 1, 2);
  x = maxPool(x, 'features.5', 3, 2, 0, false);
  x = tconv(x, 'features.6', ch(384), 3, 1, 1);
  x = tconv(x, 'features.8', ch(256), 3, 1, 1);
  x = tconv(x, 'features.10', ch(256), 3, 1, 1);
  x = maxPool(x, 'features.12', 3, 2, 0, false);
  x = ap(new AdaptiveAvgPool2d({ outputSize: 6, name: 'avgpool' }), x);
  // torch.flatten of NCHW: channel-major order, so classifier.1 matches torchvision's layout.
  x = ap(tf.layers.permute({ dims: [3, 1, 2], name: 'avgpool.nchw' }), x);
  x = ap(tf.layers.flatten({ name: 'flatten' }), x);
  const fc = (x: ST, name: string, units: number, relu: boolean): ST =>
    dense(x, name, units, relu, torchDefaultKernel(), torchDefaultBias(x.shape[1] ?? 1));
  x = ap(tf.layers.dropout({ rate: o.dropout, name: 'classifier.0' }), x);
  x = fc(x, 'classifier.1', ch(4096), true); // + classifier.2 ReLU
  x = ap(tf.layers.dropout({ rate: o.dropout, name: 'classifier.3' }), x);
  x = fc(x, 'classifier.4', ch(4096), true); // + classifier.5 ReLU
  x = fc(x, 'classifier.6', o.numClasses, false);
  return tf.model({ inputs: input, outputs: x, name: 'alexnet' });
}

// ---------------------------------------------------------------------------------------------
// GoogLeNet (torchvision.models.googlenet, aux_logits=False)

function buildGoogLeNet(o: BackboneOptions): tf.LayersModel {
  const ch = widthFn(o.widthMultiplier);
  // torchvision: trunc_normal_(std=0.01, a=-2, b=2) on every conv/linear (bounds are +-200
  // sigma, i.e. a plain normal); BatchNorm gamma 1, beta 0; BasicConv2d BN eps 0.001.
  const init = (): Init => tf.initializers.randomNormal({ mean: 0, stddev: 0.01 });
  const basic = (x: ST, name: string, filters: number, kernel: number, stride = 1, padding = 0): ST => {
    x = conv(x, { name: `${name}.conv`, filters, kernel, stride, padding, bias: false, kernelInit: init() });
    x = batchNorm(x, `${name}.bn`, 1e-3);
    return relu(x, `${name}.relu`);
  };
  const inception = (
    x: ST,
    name: string,
    c1: number,
    c3r: number,
    c3: number,
    c5r: number,
    c5: number,
    pool: number,
  ): ST => {
    const b1 = basic(x, `${name}.branch1`, ch(c1), 1);
    const b2 = basic(basic(x, `${name}.branch2.0`, ch(c3r), 1), `${name}.branch2.1`, ch(c3), 3, 1, 1);
    // torchvision's "5x5" branch really uses a 3x3 conv (a known quirk kept for weight compatibility).
    const b3 = basic(basic(x, `${name}.branch3.0`, ch(c5r), 1), `${name}.branch3.1`, ch(c5), 3, 1, 1);
    const b4 = basic(maxPool(x, `${name}.branch4.0`, 3, 1, 1, true), `${name}.branch4.1`, ch(pool), 1);
    return ap(tf.layers.concatenate({ axis: -1, name }), [b1, b2, b3, b4]);
  };
  const input = imageInput(o);
  let x = basic(input, 'conv1', ch(64), 7, 2, 3);
  x = maxPool(x, 'maxpool1', 3, 2, 0, true);
  x = basic(x, 'conv2', ch(64), 1);
  x = basic(x, 'conv3', ch(192), 3, 1, 1);
  x = maxPool(x, 'maxpool2', 3, 2, 0, true);
  x = inception(x, 'inception3a', 64, 96, 128, 16, 32, 32);
  x = inception(x, 'inception3b', 128, 128, 192, 32, 96, 64);
  x = maxPool(x, 'maxpool3', 3, 2, 0, true);
  x = inception(x, 'inception4a', 192, 96, 208, 16, 48, 64);
  x = inception(x, 'inception4b', 160, 112, 224, 24, 64, 64);
  x = inception(x, 'inception4c', 128, 128, 256, 24, 64, 64);
  x = inception(x, 'inception4d', 112, 144, 288, 32, 64, 64);
  x = inception(x, 'inception4e', 256, 160, 320, 32, 128, 128);
  x = maxPool(x, 'maxpool4', 2, 2, 0, true);
  x = inception(x, 'inception5a', 256, 160, 320, 32, 128, 128);
  x = inception(x, 'inception5b', 384, 192, 384, 48, 128, 128);
  x = ap(tf.layers.globalAveragePooling2d({ name: 'avgpool' }), x); // AdaptiveAvgPool2d((1,1)) + flatten
  x = ap(tf.layers.dropout({ rate: o.dropout, name: 'dropout' }), x);
  x = dense(x, 'fc', o.numClasses, false, init(), torchDefaultBias(x.shape[1] ?? 1)); // bias keeps nn.Linear's default
  return tf.model({ inputs: input, outputs: x, name: 'googlenet' });
}

// ---------------------------------------------------------------------------------------------
// SqueezeNet 1.1 (torchvision.models.squeezenet1_1)

function buildSqueezeNet(o: BackboneOptions): tf.LayersModel {
  const ch = widthFn(o.widthMultiplier);
  // torchvision: kaiming_uniform_ (a=0) on every conv but the last, which is normal(0, 0.01); biases 0.
  const kaiming = (): Init => tf.initializers.varianceScaling({ scale: 2, mode: 'fanIn', distribution: 'uniform' });
  const c = (x: ST, name: string, filters: number, kernel: number, stride = 1, padding = 0): ST =>
    conv(x, { name, filters, kernel, stride, padding, bias: true, relu: true, kernelInit: kaiming() });
  const fire = (x: ST, name: string, squeeze: number, e1: number, e3: number): ST => {
    const s = c(x, `${name}.squeeze`, ch(squeeze), 1); // + squeeze_activation
    const a = c(s, `${name}.expand1x1`, ch(e1), 1); // + expand1x1_activation
    const b = c(s, `${name}.expand3x3`, ch(e3), 3, 1, 1); // + expand3x3_activation
    return ap(tf.layers.concatenate({ axis: -1, name }), [a, b]);
  };
  const input = imageInput(o);
  let x = c(input, 'features.0', ch(64), 3, 2); // + features.1 ReLU
  x = maxPool(x, 'features.2', 3, 2, 0, true);
  x = fire(x, 'features.3', 16, 64, 64);
  x = fire(x, 'features.4', 16, 64, 64);
  x = maxPool(x, 'features.5', 3, 2, 0, true);
  x = fire(x, 'features.6', 32, 128, 128);
  x = fire(x, 'features.7', 32, 128, 128);
  x = maxPool(x, 'features.8', 3, 2, 0, true);
  x = fire(x, 'features.9', 48, 192, 192);
  x = fire(x, 'features.10', 48, 192, 192);
  x = fire(x, 'features.11', 64, 256, 256);
  x = fire(x, 'features.12', 64, 256, 256);
  x = ap(tf.layers.dropout({ rate: o.dropout, name: 'classifier.0' }), x);
  // final_conv + classifier.2 ReLU: torchvision's logits pass through a ReLU before pooling.
  x = conv(x, {
    name: 'classifier.1',
    filters: o.numClasses,
    kernel: 1,
    bias: true,
    relu: true,
    kernelInit: tf.initializers.randomNormal({ mean: 0, stddev: 0.01 }),
  });
  x = ap(tf.layers.globalAveragePooling2d({ name: 'classifier.3' }), x); // AdaptiveAvgPool2d((1,1)) + flatten
  return tf.model({ inputs: input, outputs: x, name: 'squeezenet1_1' });
}

// ---------------------------------------------------------------------------------------------
// ResNet18 (torchvision.models.resnet18)

function buildResNet18(o: BackboneOptions): tf.LayersModel {
  const ch = widthFn(o.widthMultiplier);
  const EPS = 1e-5; // nn.BatchNorm2d default
  // torchvision: kaiming_normal_(mode='fan_out', nonlinearity='relu') on convs; BN gamma 1, beta 0.
  const kconv = (x: ST, name: string, filters: number, kernel: number, stride: number, padding: number): ST =>
    conv(x, {
      name,
      filters,
      kernel,
      stride,
      padding,
      bias: false,
      kernelInit: tf.initializers.randomNormal({ mean: 0, stddev: Math.sqrt(2 / (filters * kernel * kernel)) }),
    });
  const block = (x: ST, name: string, planes: number, stride: number): ST => {
    let identity = x;
    let y = kconv(x, `${name}.conv1`, planes, 3, stride, 1);
    y = batchNorm(y, `${name}.bn1`, EPS);
    y = relu(y, `${name}.relu1`);
    y = kconv(y, `${name}.conv2`, planes, 3, 1, 1);
    y = batchNorm(y, `${name}.bn2`, EPS);
    if (stride !== 1 || channels(x) !== planes) {
      identity = kconv(x, `${name}.downsample.0`, planes, 1, stride, 0);
      identity = batchNorm(identity, `${name}.downsample.1`, EPS);
    }
    y = ap(tf.layers.add({ name: `${name}.add` }), [y, identity]);
    return relu(y, `${name}.relu2`);
  };
  const input = imageInput(o);
  let x = kconv(input, 'conv1', ch(64), 7, 2, 3);
  x = batchNorm(x, 'bn1', EPS);
  x = relu(x, 'relu');
  x = maxPool(x, 'maxpool', 3, 2, 1, false);
  const stages: Array<[number, number]> = [
    [64, 1],
    [128, 2],
    [256, 2],
    [512, 2],
  ];
  stages.forEach(([planes, stride], i) => {
    x = block(x, `layer${i + 1}.0`, ch(planes), stride);
    x = block(x, `layer${i + 1}.1`, ch(planes), 1);
  });
  x = ap(tf.layers.globalAveragePooling2d({ name: 'avgpool' }), x); // AdaptiveAvgPool2d((1,1)) + flatten
  x = dense(x, 'fc', o.numClasses, false, torchDefaultKernel(), torchDefaultBias(x.shape[1] ?? 1));
  return tf.model({ inputs: input, outputs: x, name: 'resnet18' });
}
