/**
 * Batch normalisation over the channel axis of NHWC activations, as a layer whose training step is
 * one differentiable op with a closed-form gradient.
 *
 * tfjs-layers' BatchNormalization differentiates its training step op by op: `moments`, the fused
 * normalisation and their broadcasts come to some 85 kernels per layer per step (forward and
 * backward), most of them on whole activations. GoogLeNet has 57 such layers and ResNet18 20, so
 * on a GPU, where every kernel is a dispatch the host must prepare, batch norm set the pace of a
 * training step. Here the forward pass runs the same kernels as tfjs's layer (so its outputs and
 * moving statistics are the same bit for bit) and the backward pass is the textbook formula, eight
 * kernels on whole activations and a few on per-channel vectors. On WebGPU, with the project's
 * kernels in use, the whole step is ten WGSL dispatches (lib/compute/webgpu-batch-norm.ts).
 *
 * The layer keeps tfjs's weight names and order (gamma, beta, moving_mean, moving_variance) and its
 * class name, so checkpoints, the torchvision weight mapping and batch-norm recalibration (which
 * sets `momentum`) treat it as the stock layer.
 */
import * as tf from '@tensorflow/tfjs';
import {
  BATCH_NORM_BACKWARD,
  BATCH_NORM_FORWARD,
  MOVING_AVERAGE,
  webGpuBatchNormInUse,
} from '../compute/webgpu-batch-norm.js';

/** The moving statistics a training step folds its batch's into (Keras momentum). */
export interface MovingStatistics {
  mean: tf.Variable;
  variance: tf.Variable;
  momentum: number;
}

/** The reduction axes of NHWC batch statistics. */
const BATCH_AXES = [0, 1, 2];

/** One way to run the training step's arithmetic; `statistics` is whatever its backward pass needs. */
interface TrainingKernels {
  forward(
    x: tf.Tensor4D,
    gamma: tf.Tensor1D,
    beta: tf.Tensor1D,
    epsilon: number,
  ): { y: tf.Tensor; statistics: tf.Tensor[] };
  /** [dx, dgamma, dbeta] */
  backward(dy: tf.Tensor, x: tf.Tensor, gamma: tf.Tensor, statistics: tf.Tensor[], epsilon: number): tf.Tensor[];
  /** `moving` after folding in the batch's mean (row 0) or variance (row 1). */
  folded(moving: tf.Tensor, statistics: tf.Tensor[], row: 0 | 1, momentum: number): tf.Tensor;
}

/** On tfjs's ops, for every backend; `statistics` is [mean, variance] (tfjs's `moments`). */
const ON_TFJS_OPS: TrainingKernels = {
  forward: (x, gamma, beta, epsilon) => {
    const { mean, variance } = tf.moments(x, BATCH_AXES) as { mean: tf.Tensor1D; variance: tf.Tensor1D };
    return { y: tf.batchNorm4d(x, mean, variance, beta, gamma, epsilon), statistics: [mean, variance] };
  },
  backward: (dy, x, gamma, [mean, variance], epsilon) => closedFormGradients(dy, x, gamma, mean!, variance!, epsilon),
  // tfjs-layers' update, in its arithmetic: moving - (moving - batch) * (1 - momentum).
  folded: (moving, statistics, row, momentum) => tf.sub(moving, tf.mul(tf.sub(moving, statistics[row]!), 1 - momentum)),
};

/** On WGSL kernels (lib/compute/webgpu-batch-norm.ts); `statistics` is one [2, C] (mean; variance). */
const ON_WEBGPU: TrainingKernels = {
  forward: (x, gamma, beta, epsilon) => {
    const [y, stats] = tf.engine().runKernel<tf.Tensor[]>(BATCH_NORM_FORWARD, { x, gamma, beta }, { epsilon });
    return { y: y!, statistics: [stats!] };
  },
  backward: (dy, x, gamma, [stats], epsilon) =>
    tf.engine().runKernel<tf.Tensor[]>(BATCH_NORM_BACKWARD, { dy, x, stats: stats!, gamma }, { epsilon }),
  folded: (moving, [stats], row, momentum) =>
    tf.engine().runKernel<tf.Tensor>(MOVING_AVERAGE, { moving, stats: stats! }, { row, momentum }),
};

/**
 * With r = 1/sqrt(var + eps), xc = x - mean and n values per channel (sums over N, H, W):
 *   dbeta = sum(dy), dgamma = r * sum(dy * xc),
 *   dx = gamma * r * (dy - dbeta / n - xc * r^2 * sum(dy * xc) / n).
 * The centred form keeps the precision of activations whose mean is large next to their spread.
 */
function closedFormGradients(
  dy: tf.Tensor,
  x: tf.Tensor,
  gamma: tf.Tensor,
  mean: tf.Tensor,
  variance: tf.Tensor,
  epsilon: number,
): tf.Tensor[] {
  const n = x.size / x.shape[x.rank - 1]!;
  const r = tf.rsqrt(tf.add(variance, epsilon));
  const xc = tf.sub(x, mean);
  const dBeta = tf.sum(dy, BATCH_AXES);
  const dyDotXc = tf.sum(tf.mul(dy, xc), BATCH_AXES);
  const dGamma = tf.mul(dyDotXc, r);
  const centred = tf.sub(tf.sub(dy, tf.div(dBeta, n)), tf.mul(xc, tf.div(tf.mul(tf.square(r), dyDotXc), n)));
  const dx = tf.mul(centred, tf.mul(gamma, r));
  return [dx, dGamma, dBeta];
}

let closedForm = true;

/**
 * With `false`, the training step is tfjs-layers' own (the same ops, differentiated op by op): for
 * same-process comparisons in the GPU bench (gpu/variants.ts).
 */
export function useClosedFormBatchNorm(on = true): void {
  closedForm = on;
}

export function closedFormBatchNormInUse(): boolean {
  return closedForm;
}

/**
 * Normalises `x` [N, H, W, C] by its own batch statistics, then scales by `gamma` and shifts by
 * `beta`, and folds the statistics into `moving`. Differentiable in x, gamma and beta.
 */
export function batchNormTraining(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
  moving: MovingStatistics,
): tf.Tensor4D {
  const foldIn = (kernels: TrainingKernels, statistics: tf.Tensor[]) =>
    tf.tidy(() => {
      moving.mean.assign(kernels.folded(moving.mean, statistics, 0, moving.momentum));
      moving.variance.assign(kernels.folded(moving.variance, statistics, 1, moving.momentum));
    });
  if (!closedForm) {
    const { y, statistics } = ON_TFJS_OPS.forward(x, gamma, beta, epsilon);
    foldIn(ON_TFJS_OPS, statistics);
    return y as tf.Tensor4D;
  }
  const kernels = webGpuBatchNormInUse() ? ON_WEBGPU : ON_TFJS_OPS;
  const op = tf.customGrad((...args) => {
    const [input, scale, offset, save] = args as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    const { y, statistics } = kernels.forward(input, scale, offset, epsilon);
    save([input, scale, ...statistics]);
    foldIn(kernels, statistics);
    return {
      value: y,
      gradFunc: (dy, [savedX, savedGamma, ...savedStatistics]) =>
        kernels.backward(dy, savedX!, savedGamma!, savedStatistics, epsilon),
    };
  });
  return op(x, gamma, beta) as tf.Tensor4D;
}

/** tfjs does not export its Initializer class by name. */
type Initializer = ReturnType<typeof tf.initializers.zeros>;

export interface BatchNormArgs {
  name: string;
  /** Keras convention: moving = momentum * moving + (1 - momentum) * batch. */
  momentum: number;
  epsilon: number;
  gammaInitializer?: Initializer;
  betaInitializer?: Initializer;
}

/** Batch normalisation over the last axis; `training: true` uses and folds in the batch's statistics. */
export class BatchNorm extends tf.layers.Layer {
  static className = 'BatchNormalization';
  /** Public and mutable: recalibration (lib/training/batchnorm.ts) sets it batch by batch. */
  momentum: number;
  private readonly epsilon: number;
  private readonly gammaInitializer: Initializer;
  private readonly betaInitializer: Initializer;
  private gamma?: tf.LayerVariable;
  private beta?: tf.LayerVariable;
  private movingMean?: tf.LayerVariable;
  private movingVariance?: tf.LayerVariable;

  constructor(args: BatchNormArgs) {
    super({ name: args.name });
    this.momentum = args.momentum;
    this.epsilon = args.epsilon;
    this.gammaInitializer = args.gammaInitializer ?? tf.initializers.ones();
    this.betaInitializer = args.betaInitializer ?? tf.initializers.zeros();
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const channels = shape[shape.length - 1];
    if (shape.length !== 4 || channels == null)
      throw new Error(`${this.name}: BatchNorm takes [N, H, W, C] inputs with a known C (got [${shape.join(', ')}])`);
    // tfjs's order: initialisers draw from the seeded Math.random() in this sequence.
    this.gamma = this.addWeight('gamma', [channels], 'float32', this.gammaInitializer, undefined, true);
    this.beta = this.addWeight('beta', [channels], 'float32', this.betaInitializer, undefined, true);
    this.movingMean = this.addWeight('moving_mean', [channels], 'float32', tf.initializers.zeros(), undefined, false);
    this.movingVariance = this.addWeight(
      'moving_variance',
      [channels],
      'float32',
      tf.initializers.ones(),
      undefined,
      false,
    );
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      const gamma = this.gamma!.read() as tf.Tensor1D;
      const beta = this.beta!.read() as tf.Tensor1D;
      if (kwargs.training !== true) {
        const mean = this.movingMean!.read() as tf.Tensor1D;
        const variance = this.movingVariance!.read() as tf.Tensor1D;
        return tf.batchNorm4d(x, mean, variance, beta, gamma, this.epsilon);
      }
      return batchNormTraining(x, gamma, beta, this.epsilon, {
        mean: this.movingMean!.read() as tf.Variable,
        variance: this.movingVariance!.read() as tf.Variable,
        momentum: this.momentum,
      });
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), momentum: this.momentum, epsilon: this.epsilon };
  }
}
