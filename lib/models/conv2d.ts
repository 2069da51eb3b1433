/**
 * A 2-D convolution without bias or activation: every convolution that batch norm follows, and
 * the DCGAN discriminator's. tfjs-layers' Conv2D runs such a layer through `tf.fused.conv2d`,
 * whose gradient is a `customGrad` that computes the input gradient along with the filter
 * gradient even where nothing needs it. At a network's first layer it is the gradient of the
 * image batch: for ResNet18 and GoogLeNet a 7x7, stride-2 input gradient at 224 px, 8 ms of a
 * 62 ms ResNet18 step on an H100 (gpu/results). `tf.conv2d`'s registered gradient is lazy, so
 * tfjs's tape, which prunes the inputs no trainable weight depends on, skips it there.
 *
 * The layer keeps tfjs-layers' class name, weight name (`<layer>/kernel`), weight shape and
 * initialisation order, so checkpoints and the torchvision mapping (lib/models/pretrained.ts) see
 * a Conv2D; its outputs and gradients are tfjs's, computed by the same kernels.
 */
import * as tf from '@tensorflow/tfjs';

type Initializer = ReturnType<typeof tf.initializers.zeros>;

export interface LinearConv2DArgs {
  name: string;
  filters: number;
  kernelSize: number;
  strides: number;
  padding: 'same' | 'valid';
  kernelInitializer: Initializer;
}

/** tfjs-layers' output length for 'same' and 'valid' padding (no dilation). */
function outputLength(size: number | null, kernel: number, padding: 'same' | 'valid', stride: number): number | null {
  if (size === null) return null;
  return Math.ceil((padding === 'same' ? size : size - kernel + 1) / stride);
}

export class LinearConv2D extends tf.layers.Layer {
  static className = 'Conv2D';
  private readonly filters: number;
  private readonly kernelSize: number;
  private readonly strides: number;
  private readonly padding: 'same' | 'valid';
  private readonly kernelInitializer: Initializer;
  private kernel?: tf.LayerVariable;

  constructor(args: LinearConv2DArgs) {
    super({ name: args.name });
    this.filters = args.filters;
    this.kernelSize = args.kernelSize;
    this.strides = args.strides;
    this.padding = args.padding;
    this.kernelInitializer = args.kernelInitializer;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const channels = shape[3];
    if (shape.length !== 4 || channels == null)
      throw new Error(
        `${this.name}: LinearConv2D takes [N, H, W, C] inputs with a known C (got [${shape.join(', ')}])`,
      );
    const k = this.kernelSize;
    this.kernel = this.addWeight(
      'kernel',
      [k, k, channels, this.filters],
      'float32',
      this.kernelInitializer,
      undefined,
      true,
    );
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [n, h, w] = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const out = (size: number | null | undefined) =>
      outputLength(size ?? null, this.kernelSize, this.padding, this.strides);
    return [n ?? null, out(h), out(w), this.filters];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      return tf.conv2d(x, this.kernel!.read() as tf.Tensor4D, this.strides, this.padding);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      filters: this.filters,
      kernelSize: [this.kernelSize, this.kernelSize],
      strides: [this.strides, this.strides],
      padding: this.padding,
      useBias: false,
      activation: 'linear',
    };
  }
}
