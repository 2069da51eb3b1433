/**
 * The GPU activities in Temporal's MockActivityEnvironment, against a scratch S3 server: they
 * heartbeat progress and their latest checkpoint, a retried attempt resumes from the checkpoint
 * its predecessor reported (and ends where an uninterrupted attempt would), and cancellation
 * stops them between steps without leaving tensors behind.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import * as tf from '@tensorflow/tfjs';
import { createGpuActivities } from '../../activities/gpu.js';
import type { ProgressDetails } from '../../activities/shared.js';
import { initComputeBackend } from '../../lib/compute/backend.js';
import type { ImageSet, LabeledImage, Split } from '../../lib/data/manifest.js';
import { encodeGrayPng } from '../../lib/images.js';
import { startScratchS3 } from '../../lib/infra/scratch-s3.js';
import { SeededRandom } from '../../lib/random.js';
import type { ArtifactRef } from '../../lib/storage.js';
import { PRESETS } from '../../pipelines/presets.js';

let s3: Awaited<ReturnType<typeof startScratchS3>>;
let activities: ReturnType<typeof createGpuActivities>;
let subset: ArtifactRef;
let split: ArtifactRef;

const gan = { ...PRESETS.smoke!.gan, steps: 6, checkpointEvery: 2 };
const classifier = {
  ...PRESETS.smoke!.classifier,
  inputSize: 32,
  widthMultiplier: 0.125,
  epochs: 2,
  batchSize: 4,
  checkpointEvery: 2,
};

async function storedImages(count: number): Promise<LabeledImage[]> {
  const rng = new SeededRandom(7);
  return Promise.all(
    Array.from({ length: count }, async (_, i) => ({
      image: await s3.store.putContent(
        await encodeGrayPng({ size: 32, pixels: Uint8Array.from({ length: 32 * 32 }, () => rng.int(0, 255)) }),
        'png',
      ),
      label: i % 2 ? ('PNEUMONIA' as const) : ('NORMAL' as const),
      origin: 'real' as const,
      patientId: null,
    })),
  );
}

before(async () => {
  await initComputeBackend(() => {});
  s3 = await startScratchS3();
  await s3.store.ensureBucket();
  activities = createGpuActivities({
    store: s3.store,
    computeBackend: 'test',
    codeVersion: 'test',
    workerIdentity: 'test-worker',
  });
  const images = await storedImages(12);
  const set: ImageSet = { kind: 'image-set', purpose: 'test subset', images };
  subset = await s3.store.putJson(set);
  const splitValue: Split = {
    kind: 'split',
    seed: 1,
    trainFraction: 0.75,
    train: images.slice(0, 9),
    test: images.slice(9),
  };
  split = await s3.store.putJson(splitValue);
});
after(() => s3.stop());

/** An environment for one attempt, recording its heartbeats. */
function attempt(activityType: string, previous?: ProgressDetails) {
  const env = new MockActivityEnvironment({ activityType, attempt: previous ? 2 : 1, heartbeatDetails: previous });
  const heartbeats: ProgressDetails[] = [];
  env.on('heartbeat', (details: ProgressDetails) => heartbeats.push(details));
  return { env, heartbeats };
}

/** Runs `body` in the environment's activity context (the SDK's run() does not infer the result type). */
function runIn<T>(env: MockActivityEnvironment, body: () => Promise<T>): Promise<T> {
  return env.run<[], T, () => Promise<T>>(body);
}

const trainGanInput = () => ({ subset, label: 'NORMAL' as const, gan, seed: 3, reuse: false });

test('trainGan heartbeats each step and each checkpoint; a retry resumes from the reported checkpoint', async () => {
  const first = attempt('trainGan');
  const full = await runIn(first.env, () => activities.trainGan(trainGanInput()));
  assert.equal(full.resumedFromStep, 0);
  const steps = first.heartbeats.map((h) => h.done);
  assert.deepEqual(
    steps.filter((d, i) => d !== steps[i - 1]),
    [0, 1, 2, 3, 4, 5, 6],
    'progress from 0 to every step, in order',
  );
  const checkpoints = first.heartbeats.filter(
    (h, i) => h.checkpoint && h.checkpointStep !== first.heartbeats[i - 1]?.checkpointStep,
  );
  assert.deepEqual(
    checkpoints.map((h) => h.checkpointStep),
    [2, 4, 6],
  );
  for (const h of checkpoints)
    assert.ok(await s3.store.exists(h.checkpoint!.key), `checkpoint ${h.checkpoint!.key} stored`);

  // The worker died after step 4's checkpoint: the next attempt gets that heartbeat back.
  const died = checkpoints.find((h) => h.checkpointStep === 4)!;
  const retry = attempt('trainGan', died);
  const resumed = await runIn(retry.env, () => activities.trainGan(trainGanInput()));
  assert.equal(resumed.resumedFromStep, 4);
  assert.ok(
    retry.heartbeats.every((h) => h.done === 0 || h.done > 4),
    `the retry ran only steps 5 and 6 (progress ${retry.heartbeats.map((h) => h.done).join(', ')})`,
  );
  assert.equal(resumed.checkpoint.sha256, full.checkpoint.sha256, 'resuming ends with the same weights as not dying');
});

test('fineTune resumes from the checkpoint of a previous attempt', async () => {
  const first = attempt('fineTune');
  const input = { split, backbone: 'squeezenet' as const, classifier, seed: 2, reuse: false };
  const full = await runIn(first.env, () => activities.fineTune(input));
  const died = first.heartbeats.find((h) => h.checkpointStep === 2)!;
  const retry = attempt('fineTune', died);
  const resumed = await runIn(retry.env, () => activities.fineTune(input));
  assert.equal(resumed.resumedFromBatch, 2);
  assert.equal(resumed.checkpoint.sha256, full.checkpoint.sha256);
});

test('cancelling a running trainGan stops it between steps, as a cancellation, leaving no tensors', async () => {
  const baseline = tf.memory().numTensors;
  const { env, heartbeats } = attempt('trainGan');
  env.on('heartbeat', (details: ProgressDetails) => {
    if (details.done === 2) env.cancel();
  });
  await assert.rejects(
    runIn(env, () => activities.trainGan(trainGanInput())),
    (err: unknown) => err instanceof CancelledFailure,
  );
  assert.ok(Math.max(...heartbeats.map((h) => h.done)) < gan.steps, 'it stopped before the last step');
  assert.equal(tf.memory().numTensors, baseline);
});
