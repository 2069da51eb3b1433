/**
 * Memorization audit of one class's GAN: for every generated image, its nearest neighbour among
 * the real images the GAN was trained on, in two spaces: pixels at the GAN's resolution (RMS
 * difference per pixel, 0-1 scale) and the trained discriminator's last hidden features
 * (L2-normalised, Euclidean). The same distance from held-out real images of the class to the
 * training images is the yardstick: a generated image closer to a training image than any unseen
 * real image comes is a near-copy. Diversity is the mean pairwise distance within a set.
 */
import * as tf from '@tensorflow/tfjs';
import type { GrayImage } from '../images.js';
import { buildDiscriminator } from '../models/dcgan.js';
import { SeededRandom } from '../random.js';
import { restoreModelWeights, type TrainingState } from '../training/checkpoint.js';
import type { GanMeta } from '../training/gan.js';

export interface Neighbours {
  /** Index of the nearest training image per query. */
  index: number[];
  distance: number[];
}

export interface SpaceAudit {
  generated: Neighbours;
  /** Nearest-training-image distances of held-out real images. */
  heldout: number[];
  medianGenerated: number;
  medianHeldout: number | null;
  /** The smallest held-out distance: closer than this is closer than any unseen real image comes. */
  nearCopyThreshold: number | null;
  nearCopyFraction: number | null;
  /** Mean pairwise distance among (up to DIVERSITY_SAMPLE of) the generated and the training images. */
  diversity: { generated: number; training: number };
}

export interface MemorizationAudit {
  pixels: SpaceAudit;
  features: SpaceAudit;
}

const DIVERSITY_SAMPLE = 256;
const CHUNK = 256;

function pixelMatrix(images: readonly GrayImage[]): tf.Tensor2D {
  const dims = images[0]!.pixels.length;
  const data = new Float32Array(images.length * dims);
  images.forEach((image, i) => {
    for (let p = 0; p < dims; p++) data[i * dims + p] = image.pixels[p]! / 255;
  });
  return tf.tensor2d(data, [images.length, dims]);
}

/** The discriminator's activations before its final real/fake convolution, flattened and L2-normalised. */
function discriminatorFeatures(state: TrainingState<GanMeta>, images: readonly GrayImage[]): tf.Tensor2D {
  const discriminator = buildDiscriminator(state.meta.options);
  try {
    restoreModelWeights(discriminator, state.groups.discriminator ?? [], 'GAN checkpoint (discriminator)');
    // Layers end with: last leaky ReLU, the 1-channel convolution, flatten.
    const hidden = tf.model({ inputs: discriminator.inputs, outputs: discriminator.layers.at(-3)!.output });
    const size = images[0]!.size;
    return tf.tidy(() => {
      const x = pixelMatrix(images).mul(2).sub(1).reshape([images.length, size, size, 1]);
      const features: tf.Tensor2D = (hidden.predict(x) as tf.Tensor).reshape([images.length, -1]);
      return features.div<tf.Tensor2D>(features.norm('euclidean', 1, true).add(1e-8));
    });
  } finally {
    discriminator.dispose();
  }
}

/** Nearest row of `references` for each row of `queries`; `scale` divides squared distances (per-pixel RMS). */
export async function nearestNeighbours(queries: tf.Tensor2D, references: tf.Tensor2D, scale = 1): Promise<Neighbours> {
  const index: number[] = [];
  const distance: number[] = [];
  const referenceNorms = tf.tidy(() => references.square().sum(1).reshape([1, -1]));
  try {
    for (let start = 0; start < queries.shape[0]; start += CHUNK) {
      const [d, i] = tf.tidy((): [tf.Tensor, tf.Tensor] => {
        const q = queries.slice([start, 0], [Math.min(CHUNK, queries.shape[0] - start), -1]);
        const squared = q
          .square()
          .sum(1)
          .reshape([-1, 1])
          .add(referenceNorms)
          .sub(q.matMul(references, false, true).mul(2))
          .relu();
        return [squared.min(1).div(scale).sqrt(), squared.argMin(1)];
      });
      distance.push(...(await d.data()));
      index.push(...(await i.data()));
      tf.dispose([d, i]);
    }
    return { index, distance };
  } finally {
    referenceNorms.dispose();
  }
}

async function meanPairwise(matrix: tf.Tensor2D, scale: number, seed: number): Promise<number> {
  const n = matrix.shape[0];
  if (n < 2) return 0;
  const picked = new SeededRandom(seed).shuffle([...Array(n).keys()]).slice(0, DIVERSITY_SAMPLE);
  const sum = tf.tidy(() => {
    const sample = tf.gather(matrix, picked);
    const norms = sample.square().sum(1);
    const squared = norms
      .reshape([-1, 1])
      .add(norms.reshape([1, -1]))
      .sub(sample.matMul(sample, false, true).mul(2))
      .relu();
    return squared.div(scale).sqrt().sum();
  });
  const total = (await sum.data())[0]!;
  sum.dispose();
  return total / (picked.length * (picked.length - 1));
}

const median = (values: readonly number[]) => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function auditSpace(
  training: tf.Tensor2D,
  generated: tf.Tensor2D,
  heldout: tf.Tensor2D | undefined,
  scale: number,
  seed: number,
): Promise<SpaceAudit> {
  const neighbours = await nearestNeighbours(generated, training, scale);
  const heldoutDistances = heldout ? (await nearestNeighbours(heldout, training, scale)).distance : [];
  const threshold = heldoutDistances.length ? Math.min(...heldoutDistances) : null;
  return {
    generated: neighbours,
    heldout: heldoutDistances,
    medianGenerated: median(neighbours.distance)!,
    medianHeldout: median(heldoutDistances),
    nearCopyThreshold: threshold,
    nearCopyFraction:
      threshold === null ? null : neighbours.distance.filter((d) => d < threshold).length / neighbours.distance.length,
    diversity: {
      generated: await meanPairwise(generated, scale, seed),
      training: await meanPairwise(training, scale, seed + 1),
    },
  };
}

export async function memorizationAudit(options: {
  /** The GAN's training images, generated images and held-out real images, all at the GAN's size. */
  training: readonly GrayImage[];
  generated: readonly GrayImage[];
  heldout: readonly GrayImage[];
  gan: TrainingState<GanMeta>;
  seed: number;
}): Promise<MemorizationAudit> {
  const { training, generated, heldout, gan, seed } = options;
  if (training.length === 0 || generated.length === 0)
    throw new Error('memorization audit needs training and generated images');
  const dims = training[0]!.pixels.length;
  const sets = [training, generated, ...(heldout.length ? [heldout] : [])];
  const pixels = sets.map(pixelMatrix);
  const features = sets.map((set) => discriminatorFeatures(gan, set));
  try {
    return {
      pixels: await auditSpace(pixels[0]!, pixels[1]!, pixels[2], dims, seed),
      features: await auditSpace(features[0]!, features[1]!, features[2], 1, seed),
    };
  } finally {
    tf.dispose([...pixels, ...features]);
  }
}

/** The `count` generated images closest to a training image (pixel space), closest first. */
export function closestPairs(
  audit: MemorizationAudit,
  count = 8,
): Array<{ generated: number; training: number; distance: number }> {
  const { index, distance } = audit.pixels.generated;
  return [...distance.keys()]
    .sort((a, b) => distance[a]! - distance[b]!)
    .slice(0, count)
    .map((g) => ({ generated: g, training: index[g]!, distance: distance[g]! }));
}
