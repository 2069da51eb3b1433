import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { closestPairs, memorizationAudit, nearestNeighbours } from '../../lib/analysis/memorization.js';
import type { GrayImage } from '../../lib/images.js';
import { buildDiscriminator, type DcganOptions } from '../../lib/models/dcgan.js';
import { SeededRandom } from '../../lib/random.js';
import { modelWeights } from '../../lib/training/checkpoint.js';

test('nearest neighbours: index and Euclidean distance, scaled', async () => {
  const queries = tf.tensor2d([
    [0, 0],
    [3, 4],
    [10, 10],
  ]);
  const references = tf.tensor2d([
    [3, 4],
    [0, 1],
  ]);
  const { index, distance } = await nearestNeighbours(queries, references);
  assert.deepEqual(index, [1, 0, 0]);
  assert.deepEqual(
    distance.map((d) => Math.round(d * 1e4) / 1e4),
    [1, 0, Math.round(Math.hypot(7, 6) * 1e4) / 1e4],
  );
  const scaled = await nearestNeighbours(queries, references, 4);
  assert.ok(Math.abs(scaled.distance[2]! - Math.hypot(7, 6) / 2) < 1e-4);
  tf.dispose([queries, references]);
});

test('copies of training images are found as near-copies; inverted images and held-out ones are not', async () => {
  const rng = new SeededRandom(4);
  const noise = (): GrayImage => ({ size: 32, pixels: Uint8Array.from({ length: 32 * 32 }, () => rng.int(0, 255)) });
  const training = Array.from({ length: 6 }, noise);
  const inverted = (image: GrayImage): GrayImage => ({ size: 32, pixels: image.pixels.map((v) => 255 - v) });
  const generated = [
    training[2]!,
    inverted(training[0]!),
    training[4]!,
    inverted(training[1]!),
    inverted(training[3]!),
  ];
  const heldout = Array.from({ length: 4 }, noise);
  const options: DcganOptions = { imageSize: 32, latentDim: 8, generatorWidth: 4, discriminatorWidth: 4, channels: 1 };
  const discriminator = buildDiscriminator(options);
  const gan = {
    groups: { discriminator: await modelWeights(discriminator) },
    meta: { kind: 'dcgan' as const, step: 0, options, history: { discriminatorLoss: [], generatorLoss: [] } },
  };
  discriminator.dispose();
  const audit = await memorizationAudit({ training, generated, heldout, gan, seed: 1 });
  assert.equal(audit.pixels.generated.index[0], 2);
  assert.equal(audit.pixels.generated.index[2], 4);
  assert.ok(audit.pixels.generated.distance[0]! < 1e-3 && audit.pixels.generated.distance[2]! < 1e-3);
  assert.equal(audit.pixels.nearCopyFraction, 2 / 5);
  assert.equal(audit.features.generated.index[0], 2);
  assert.ok(audit.features.nearCopyFraction! >= 2 / 5);
  assert.equal(audit.pixels.heldout.length, 4);
  assert.ok(audit.pixels.medianHeldout! > 0.2, `uniform noise images lie far apart: ${audit.pixels.medianHeldout}`);
  assert.ok(audit.pixels.diversity.generated > 0 && audit.pixels.diversity.training > 0);
  assert.deepEqual(
    closestPairs(audit, 2)
      .map((p) => [p.generated, p.training])
      .sort(),
    [
      [0, 2],
      [2, 4],
    ],
  );
});
