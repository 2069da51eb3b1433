/**
 * A GPU worker lives for days and runs many training steps and retries: tensors must not pile up
 * across steps, nor after a step that fails, is cancelled or resumes from a checkpoint.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initComputeBackend } from '../../lib/compute/backend.js';
import { SeededRandom } from '../../lib/random.js';
import type { TrainingState } from '../../lib/training/checkpoint.js';
import {
  evaluateClassifier,
  fineTune,
  type ClassifierMeta,
  type LabelledPixels,
} from '../../lib/training/classifier.js';
import { generateImages, trainGan, type GanMeta } from '../../lib/training/gan.js';
import { PRESETS } from '../../pipelines/presets.js';

before(async () => {
  await initComputeBackend(() => {});
});

const gan = { ...PRESETS.smoke!.gan, steps: 6, checkpointEvery: 2 };
const classifier = {
  ...PRESETS.smoke!.classifier,
  inputSize: 32,
  widthMultiplier: 0.125,
  epochs: 2,
  batchSize: 4,
  checkpointEvery: 2,
};

function images(size: number, count: number): LabelledPixels[] {
  const rng = new SeededRandom(3);
  return Array.from({ length: count }, (_, i) => ({
    image: { size, pixels: Uint8Array.from({ length: size * size }, () => rng.int(0, 255)) },
    label: i % 2 ? 'PNEUMONIA' : 'NORMAL',
  }));
}

/**
 * Tensors alive at each checkpoint. Between checkpoints a step's metrics wait, unread, for the
 * loop's next batched readback; at a checkpoint every one of them has been read and freed.
 */
function tensorsPerCheckpoint(): { counts: number[]; onCheckpoint: () => Promise<void> } {
  const counts: number[] = [];
  return {
    counts,
    onCheckpoint: () => {
      counts.push(tf.memory().numTensors);
      return Promise.resolve();
    },
  };
}

test('GAN training holds a constant number of tensors across steps and frees all but the generator', async () => {
  const baseline = tf.memory().numTensors;
  const { counts, onCheckpoint } = tensorsPerCheckpoint();
  const { generator } = await trainGan({
    images: images(gan.imageSize, 8).map((i) => i.image),
    gan,
    seed: 1,
    onCheckpoint,
  });
  assert.equal(counts.length, gan.steps / gan.checkpointEvery);
  assert.deepEqual(
    counts,
    counts.map(() => counts[0]),
    `tensors at each checkpoint: ${counts.join(', ')}`,
  );
  const withGenerator = tf.memory().numTensors;
  await generateImages(generator, gan.latentDim, [1, 2, 3], 2);
  assert.equal(tf.memory().numTensors, withGenerator, 'generating images leaves nothing behind');
  generator.dispose();
  assert.equal(tf.memory().numTensors, baseline, 'nothing left once the generator is disposed');
});

test('GAN training that fails or is cancelled mid-way, and its resumed retry, leave no tensors behind', async () => {
  const baseline = tf.memory().numTensors;
  let saved: TrainingState<GanMeta> | undefined;
  await assert.rejects(
    trainGan({
      images: images(gan.imageSize, 8).map((i) => i.image),
      gan,
      seed: 1,
      onCheckpoint: (state) => {
        if (state.meta.step === 4) return Promise.reject(new Error('S3 went away'));
        saved = state;
        return Promise.resolve();
      },
    }),
    /S3 went away/,
  );
  assert.equal(tf.memory().numTensors, baseline, 'a failed attempt frees its models and optimisers');

  const controller = new AbortController();
  await assert.rejects(
    trainGan({
      images: images(gan.imageSize, 8).map((i) => i.image),
      gan,
      seed: 1,
      resume: saved,
      onProgress: (step) => {
        if (step === 3) controller.abort(new Error('cancelled'));
      },
      signal: controller.signal,
    }),
    /cancelled/,
  );
  assert.equal(tf.memory().numTensors, baseline, 'a cancelled, resumed attempt frees everything too');

  const { generator, state } = await trainGan({
    images: images(gan.imageSize, 8).map((i) => i.image),
    gan,
    seed: 1,
    resume: saved,
  });
  assert.equal(state.meta.step, gan.steps);
  generator.dispose();
  assert.equal(tf.memory().numTensors, baseline, 'resuming from a checkpoint leaks nothing');
});

test('fine-tuning holds a constant number of tensors across batches, and a failed batch frees the model', async () => {
  const baseline = tf.memory().numTensors;
  const { counts, onCheckpoint } = tensorsPerCheckpoint();
  let saved: TrainingState<ClassifierMeta> | undefined;
  const { model } = await fineTune({
    backbone: 'squeezenet',
    classifier,
    seed: 1,
    train: images(32, 12),
    onCheckpoint: (state) => {
      saved ??= state;
      return onCheckpoint();
    },
  });
  assert.equal(counts.length, 3);
  assert.deepEqual(
    counts,
    counts.map(() => counts[0]),
    `tensors at each checkpoint: ${counts.join(', ')}`,
  );
  const withModel = tf.memory().numTensors;
  await evaluateClassifier(model, images(32, 5), 32, 2);
  assert.equal(tf.memory().numTensors, withModel, 'evaluation leaves nothing behind');
  model.dispose();
  assert.equal(tf.memory().numTensors, baseline);

  // A batch whose images do not fit the model throws inside the step, after the model was built.
  const misfit = images(32, 12);
  misfit[9] = { ...misfit[9]!, image: { size: 16, pixels: new Uint8Array(16 * 16) } };
  await assert.rejects(
    fineTune({ backbone: 'squeezenet', classifier, seed: 1, train: misfit, resume: saved }),
    /classifier image \d+ is 16px, expected 32px/,
  );
  assert.equal(tf.memory().numTensors, baseline, 'a failed, resumed step frees its model and optimiser');
});
