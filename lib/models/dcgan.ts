/**
 * DCGAN (Radford et al. 2016) as used by Khalifa et al. 2020, following the PyTorch DCGAN
 * reference (`examples/dcgan`, the DCGAN tutorial) layer for layer, as TensorFlow.js
 * functional graphs in NHWC layout.
 *
 * Generator, 64x64 (paper): z [N, latentDim] -> reshape [N,1,1,latentDim] ->
 *   ConvT 4x4/1 valid ngf*8 -> BN -> ReLU        (1 -> 4)
 *   ConvT 4x4/2 same  ngf*4 -> BN -> ReLU        (4 -> 8)
 *   ConvT 4x4/2 same  ngf*2 -> BN -> ReLU        (8 -> 16)
 *   ConvT 4x4/2 same  ngf   -> BN -> ReLU        (16 -> 32)
 *   ConvT 4x4/2 same  channels -> Tanh           (32 -> 64)
 * i.e. 5 transposed convs, 4 BN, 4 ReLU, 1 Tanh, every window 4x4. A 4x4/2 'same' transposed
 * conv in TF pads 1 on each side, which is exactly PyTorch's ConvTranspose2d(4, 2, 1).
 *
 * Discriminator, 64x64: x [N,64,64,channels] ->
 *   Conv 4x4/2 ndf -> LeakyReLU(0.2)                   (64 -> 32)
 *   Conv 4x4/2 ndf*2 -> BN -> LeakyReLU(0.2)           (32 -> 16)
 *   Conv 4x4/2 ndf*4 -> BN -> LeakyReLU(0.2)           (16 -> 8)
 *   Conv 4x4/2 ndf*8 -> BN -> LeakyReLU(0.2)           (8 -> 4)
 *   Conv 4x4/1 valid 1                                 (4 -> 1) -> flatten [N,1]
 * i.e. 5 convs, 4 LeakyReLU, 3 BN, every window 4x4. The reference ends in a Sigmoid; we
 * return logits for a numerically stable sigmoid-cross-entropy-with-logits loss.
 *
 * 32x32 variant: the same 5 layers and 4x4 windows, with one fewer doubling. 1 -> 4 is fixed
 * by the 4x4 valid first layer and there are four stride-2 layers after it in the 64px net,
 * so 32px needs exactly one of them at stride 1. We make the last-but-one upsampling (layer 4,
 * 16 -> 16) the stride-1 'same' layer rather than dropping a layer or changing a window, which
 * keeps the layer, BN and activation counts and all parameter shapes identical to the paper's
 * net (so the capacity and training recipe carry over); the discriminator mirrors it (its
 * second conv, 16 -> 16, is stride 1). A 4x4 stride-1 'same' window pads 1 before and 2 after
 * (an even kernel cannot pad symmetrically), the only asymmetry in the 32px nets.
 *
 * All convolutions are bias-free as in the PyTorch reference (`bias=False`). Init is DCGAN's
 * `weights_init`: conv kernels N(0, 0.02), BN gamma N(1, 0.02), beta 0. BatchNorm uses
 * PyTorch's defaults (eps 1e-5, momentum 0.1 == Keras momentum 0.9).
 *
 * Layer names follow the reference's `nn.Sequential` indices under `netG.main.<i>` /
 * `netD.main.<i>` (the reference's module and state-dict names), e.g. `netG.main.0` is the
 * first transposed conv, `netG.main.1` its BN; the `netG`/`netD` prefix keeps names unique if
 * both nets are combined into one model.
 */
import * as tf from '@tensorflow/tfjs';
import { BatchNorm } from './batch-norm.js';
import { LinearConv2D } from './conv2d.js';

export interface DcganOptions {
  /** Output / input side in pixels. */
  imageSize: 32 | 64;
  /** Length of z (100 in DCGAN and the paper). */
  latentDim: number;
  /** ngf: generator feature maps in the last hidden layer (64 in the paper). */
  generatorWidth: number;
  /** ndf: discriminator feature maps in the first layer (64 in the paper). */
  discriminatorWidth: number;
  /** Image channels (1 for grayscale X-rays). */
  channels: number;
}

/** PyTorch BatchNorm2d defaults. */
const BN_EPSILON = 1e-5;
const BN_MOMENTUM = 0.9;

type ST = tf.SymbolicTensor;
/** tfjs does not export its Initializer class by name. */
type Init = ReturnType<typeof tf.initializers.zeros>;

function convInit(): Init {
  return tf.initializers.randomNormal({ mean: 0, stddev: 0.02 });
}

function bn(x: ST, name: string): ST {
  return new BatchNorm({
    name,
    epsilon: BN_EPSILON,
    momentum: BN_MOMENTUM,
    gammaInitializer: tf.initializers.randomNormal({ mean: 1, stddev: 0.02 }),
    betaInitializer: tf.initializers.zeros(),
  }).apply(x) as ST;
}

function validate(o: DcganOptions): void {
  if (o.imageSize !== 32 && o.imageSize !== 64)
    throw new Error(`DCGAN imageSize must be 32 or 64 (got ${String(o.imageSize)})`);
  for (const key of ['latentDim', 'generatorWidth', 'discriminatorWidth', 'channels'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1)
      throw new Error(`DCGAN ${key} must be a positive integer (got ${o[key]})`);
  }
}

/** Strides of layers 2-5 (layer 1 is always 4x4/1 valid): see the 32x32 note above. */
function generatorStrides(imageSize: 32 | 64): [number, number, number, number] {
  return imageSize === 64 ? [2, 2, 2, 2] : [2, 2, 1, 2];
}

/** z [N, latentDim] -> images [N, S, S, channels] in [-1, 1]. */
export function buildGenerator(o: DcganOptions): tf.LayersModel {
  validate(o);
  const ngf = o.generatorWidth;
  const z = tf.input({ shape: [o.latentDim], name: 'z' });
  let x = tf.layers.reshape({ targetShape: [1, 1, o.latentDim], name: 'netG.reshape' }).apply(z) as ST;
  const widths = [ngf * 8, ngf * 4, ngf * 2, ngf];
  const strides = [1, ...generatorStrides(o.imageSize)];
  for (let i = 0; i < 4; i++) {
    x = tf.layers
      .conv2dTranspose({
        name: `netG.main.${3 * i}`,
        filters: widths[i]!,
        kernelSize: 4,
        strides: strides[i]!,
        padding: i === 0 ? 'valid' : 'same',
        useBias: false,
        kernelInitializer: convInit(),
      })
      .apply(x) as ST;
    x = bn(x, `netG.main.${3 * i + 1}`);
    x = tf.layers.reLU({ name: `netG.main.${3 * i + 2}` }).apply(x) as ST;
  }
  x = tf.layers
    .conv2dTranspose({
      name: 'netG.main.12',
      filters: o.channels,
      kernelSize: 4,
      strides: strides[4]!,
      padding: 'same',
      useBias: false,
      kernelInitializer: convInit(),
    })
    .apply(x) as ST;
  x = tf.layers.activation({ activation: 'tanh', name: 'netG.main.13' }).apply(x) as ST;
  return tf.model({ inputs: z, outputs: x, name: 'generator' });
}

/** images [N, S, S, channels] -> real/fake logits [N, 1] (no sigmoid). */
export function buildDiscriminator(o: DcganOptions): tf.LayersModel {
  validate(o);
  const ndf = o.discriminatorWidth;
  const input = tf.input({ shape: [o.imageSize, o.imageSize, o.channels], name: 'image' });
  // Mirror of the generator: D layer j has G layer (6 - j)'s stride.
  const strides = [...generatorStrides(o.imageSize)].reverse();
  const widths = [ndf, ndf * 2, ndf * 4, ndf * 8];
  let x: ST = input;
  let index = 0;
  for (let i = 0; i < 4; i++) {
    x = new LinearConv2D({
      name: `netD.main.${index++}`,
      filters: widths[i]!,
      kernelSize: 4,
      strides: strides[i]!,
      padding: 'same',
      kernelInitializer: convInit(),
    }).apply(x) as ST;
    if (i > 0) x = bn(x, `netD.main.${index++}`);
    x = tf.layers.leakyReLU({ alpha: 0.2, name: `netD.main.${index++}` }).apply(x) as ST;
  }
  x = new LinearConv2D({
    name: `netD.main.${index}`,
    filters: 1,
    kernelSize: 4,
    strides: 1,
    padding: 'valid',
    kernelInitializer: convInit(),
  }).apply(x) as ST;
  x = tf.layers.flatten({ name: 'netD.flatten' }).apply(x) as ST;
  return tf.model({ inputs: input, outputs: x, name: 'discriminator' });
}
