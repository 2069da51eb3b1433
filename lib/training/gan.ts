/**
 * Trains one DCGAN (one per class, so every generated image has a label) with the standard
 * non-saturating loss and Adam, and generates images from a trained generator. Pure domain code:
 * the caller persists checkpoints and reports progress.
 */
import * as tf from '@tensorflow/tfjs';
import type { PipelineConfig } from '../../pipelines/schema.js';
import { adam } from '../compute/webgpu-adam.js';
import { buildDiscriminator, buildGenerator, type DcganOptions } from '../models/dcgan.js';
import { pixelsFromUnitRange, type GrayImage } from '../images.js';
import { deriveSeed, SeededRandom } from '../random.js';
import { restoreModelWeights, type TrainingState } from './checkpoint.js';
import { withSeededMathRandom, yieldToEventLoop } from './determinism.js';
import { captureState, restoreState, runStepLoop, takeData, type StepMetrics, type Trainables } from './loop.js';

export interface GanHistory {
  discriminatorLoss: number[];
  generatorLoss: number[];
}

export interface GanMeta {
  kind: 'dcgan';
  step: number;
  options: DcganOptions;
  history: GanHistory;
}

export interface TrainGanOptions {
  images: readonly GrayImage[];
  gan: PipelineConfig['gan'];
  seed: number;
  resume?: TrainingState<GanMeta>;
  onProgress?: (step: number, total: number) => void | Promise<void>;
  /** Called every `gan.checkpointEvery` steps (or sooner, see `checkpointIntervalMs`) and at the end with the full state. */
  onCheckpoint?: (state: TrainingState<GanMeta>) => Promise<void>;
  /** See {@link StepLoop.checkpointIntervalMs}. */
  checkpointIntervalMs?: number;
  signal?: AbortSignal;
}

export function dcganOptions(gan: PipelineConfig['gan']): DcganOptions {
  return {
    imageSize: gan.imageSize,
    latentDim: gan.latentDim,
    generatorWidth: gan.generatorWidth,
    discriminatorWidth: gan.discriminatorWidth,
    channels: 1,
  };
}

/** Images as a [n, size, size, 1] tensor scaled to the generator's tanh range. */
function realBatchSource(images: readonly GrayImage[], size: number): tf.Tensor4D {
  return tf.tidy(() => {
    const data = new Float32Array(images.length * size * size);
    images.forEach((image, i) => {
      if (image.size !== size) throw new Error(`GAN image ${i} is ${image.size}px, expected ${size}px`);
      for (let p = 0; p < image.pixels.length; p++) data[i * size * size + p] = image.pixels[p]! / 127.5 - 1;
    });
    return tf.tensor4d(data, [images.length, size, size, 1]);
  });
}

export async function trainGan(
  options: TrainGanOptions,
): Promise<{ generator: tf.LayersModel; state: TrainingState<GanMeta> }> {
  const { gan, seed } = options;
  const modelOptions = dcganOptions(gan);
  const generator = withSeededMathRandom(deriveSeed(seed, 'generator'), () => buildGenerator(modelOptions));
  const discriminator = withSeededMathRandom(deriveSeed(seed, 'discriminator'), () => buildDiscriminator(modelOptions));
  const generatorOptimizer = adam(gan.learningRate, gan.beta1);
  const discriminatorOptimizer = adam(gan.learningRate, gan.beta1);
  const trainables: Trainables = {
    models: { generator, discriminator },
    optimizers: { 'optimizer.generator': generatorOptimizer, 'optimizer.discriminator': discriminatorOptimizer },
  };
  let reals: tf.Tensor4D | undefined;
  try {
    const history: GanHistory = { discriminatorLoss: [], generatorLoss: [] };
    if (options.resume) {
      await restoreState(trainables, options.resume, 'GAN checkpoint');
      history.discriminatorLoss.push(...options.resume.meta.history.discriminatorLoss);
      history.generatorLoss.push(...options.resume.meta.history.generatorLoss);
    }
    reals = realBatchSource(options.images, gan.imageSize);
    const realImages = reals;
    const generatorVars = generator.trainableWeights.map((w) => w.read() as tf.Variable);
    const discriminatorVars = discriminator.trainableWeights.map((w) => w.read() as tf.Variable);
    const batchSize = Math.min(gan.batchSize, options.images.length);

    const step = (index: number): StepMetrics => {
      const batchRng = new SeededRandom(deriveSeed(seed, 'batch', index));
      const indices = batchRng.shuffle([...Array(options.images.length).keys()]).slice(0, batchSize);
      const losses = tf.tidy(() => {
        const real = tf.gather(realImages, indices);
        const noise = tf.randomNormal([batchSize, gan.latentDim], 0, 1, 'float32', deriveSeed(seed, 'z', index));
        const d = discriminatorOptimizer.minimize(
          () => {
            const fake = generator.apply(noise, { training: true }) as tf.Tensor;
            const realLogits = discriminator.apply(real, { training: true }) as tf.Tensor;
            const fakeLogits = discriminator.apply(fake, { training: true }) as tf.Tensor;
            return tf.add<tf.Scalar>(
              tf.losses.sigmoidCrossEntropy(tf.onesLike(realLogits), realLogits),
              tf.losses.sigmoidCrossEntropy(tf.zerosLike(fakeLogits), fakeLogits),
            );
          },
          true,
          discriminatorVars,
        )!;
        const g = generatorOptimizer.minimize(
          () => {
            const fakeLogits = discriminator.apply(generator.apply(noise, { training: true }), {
              training: true,
            }) as tf.Tensor;
            // Non-saturating generator loss (Goodfellow et al.): maximise log D(G(z)).
            return tf.losses.sigmoidCrossEntropy<tf.Tensor, tf.Scalar>(tf.onesLike(fakeLogits), fakeLogits);
          },
          true,
          generatorVars,
        )!;
        return [d, g];
      });
      return {
        scalars: losses,
        record: ([dLoss, gLoss]) => {
          history.discriminatorLoss.push(dLoss!);
          history.generatorLoss.push(gLoss!);
        },
      };
    };
    const state = await runStepLoop<GanMeta>({
      total: gan.steps,
      done: options.resume?.meta.step ?? 0,
      checkpointEvery: gan.checkpointEvery,
      checkpointIntervalMs: options.checkpointIntervalMs,
      step,
      // A snapshot owns copies of the histories: training goes on appending to the live ones.
      snapshot: (done) =>
        captureState(trainables, {
          kind: 'dcgan',
          step: done,
          options: modelOptions,
          history: { discriminatorLoss: [...history.discriminatorLoss], generatorLoss: [...history.generatorLoss] },
        }),
      onProgress: options.onProgress,
      onCheckpoint: options.onCheckpoint,
      signal: options.signal,
    });
    return { generator, state };
  } catch (err) {
    // The generator is the caller's on success only: a failed or cancelled step must not leave it behind.
    generator.dispose();
    throw err;
  } finally {
    reals?.dispose();
    discriminator.dispose();
    generatorOptimizer.dispose();
    discriminatorOptimizer.dispose();
  }
}

/** Rebuilds a generator from a checkpoint's `generator` group. */
export function loadGenerator(state: TrainingState<GanMeta>): tf.LayersModel {
  const generator = buildGenerator(state.meta.options);
  try {
    restoreModelWeights(generator, state.groups.generator ?? [], 'GAN checkpoint (generator)');
  } catch (err) {
    generator.dispose();
    throw err;
  }
  return generator;
}

/**
 * One image per latent seed; the seed alone determines the image, so any generated image can be
 * regenerated from its lineage record (generator checkpoint + latent seed).
 */
export async function generateImages(
  generator: tf.LayersModel,
  latentDim: number,
  latentSeeds: readonly number[],
  batchSize = 64,
): Promise<GrayImage[]> {
  const out: GrayImage[] = [];
  for (let start = 0; start < latentSeeds.length; start += batchSize) {
    const seeds = latentSeeds.slice(start, start + batchSize);
    const images = tf.tidy(() => {
      const noise = tf.concat(seeds.map((s) => tf.randomNormal([1, latentDim], 0, 1, 'float32', s)));
      return generator.predict(noise) as tf.Tensor4D;
    });
    const [, size] = images.shape;
    const values = (await takeData(images)) as Float32Array;
    for (let i = 0; i < seeds.length; i++) {
      out.push({ size, pixels: pixelsFromUnitRange(values, size, i * size * size) });
    }
    await yieldToEventLoop();
  }
  return out;
}
