/**
 * The whole paper, end to end, on a real Temporal dev server and a real S3 server, with the
 * orchestration worker in this process and GPU workers as child processes (the demo's shape).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import sharp from 'sharp';
import { z } from 'zod';
import { lineageReport } from '../../cli/inspect.js';
import { artifactLineage } from '../../cli/inspect-data.js';
import { launchReproduction } from '../../cli/launch.js';
import { InputError } from '../../lib/errors.js';
import { LineageReader, readLineage } from '../../lib/lineage.js';
import { ImageSetSchema } from '../../lib/data/manifest.js';
import { EvaluationRecordSchema } from '../../lib/protocol/scores.js';
import type { ArtifactStore } from '../../lib/storage.js';
import { resolvePreset } from '../../pipelines/presets.js';
import { BACKBONES, PROTOCOLS } from '../../pipelines/schema.js';
import { quietTemporalLogs } from '../../workers/main.js';
import { startLocalStack, type LocalStack } from '../../workers/local-stack.js';
import { reproducePaper } from '../../workflows/index.js';
import { ORCHESTRATION_TASK_QUEUE } from '../../workflows/queues.js';

let stateDir: string;
let stack: LocalStack;
let client: Client;
let store: ArtifactStore;

before(async () => {
  quietTemporalLogs();
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-e2e-'));
  stack = await startLocalStack({ stateDir, gpuProcesses: 2, gpuConcurrency: 2 });
  ({ client, store } = stack);
});

after(async () => {
  try {
    await stack?.stop();
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
});

const SummarySchema = z.object({
  evaluations: z.array(
    z.object({
      protocol: z.string(),
      backbone: z.string(),
      aggregate: z.object({ accuracy: z.object({ mean: z.number(), std: z.number(), values: z.array(z.number()) }) }),
    }),
  ),
  trials: z.array(
    z.object({
      trial: z.number(),
      evaluations: z.array(
        z.object({ protocol: z.string(), backbone: z.string(), metrics: z.object({ accuracy: z.number() }) }),
      ),
    }),
  ),
});

test(
  'reproducePaper (smoke: three trials, four backbones, three protocols) completes with a consistent report',
  // The analyses (issue 11) add evaluations, a matched-resolution model, detectability and memorization per trial.
  { timeout: 20 * 60_000 },
  async () => {
    const config = resolvePreset('smoke');
    const handle = await launchReproduction({ client, runName: 'e2e-smoke', config, log: () => {} });
    const result = await handle.result();

    assert.equal(result.trials.length, 3);
    for (const trial of result.trials) {
      for (const protocol of PROTOCOLS) {
        assert.deepEqual(
          trial.evaluations
            .filter((e) => e.protocol === protocol)
            .map((e) => e.backbone)
            .sort(),
          [...BACKBONES].sort(),
          `trial ${trial.trial} evaluated every backbone under ${protocol}`,
        );
      }
      assert.ok(
        trial.stageMillis['gan:NORMAL']! > 0 &&
          trial.stageMillis['fine-tune:resnet18']! > 0 &&
          trial.stageMillis['fine-tune-no-gan:resnet18']! > 0,
      );
      // The paper's model and the held-out evaluation share a checkpoint; the no-GAN model is another.
      const resnet = (protocol: string) =>
        trial.evaluations.find((e) => e.backbone === 'resnet18' && e.protocol === protocol)!;
      assert.equal(resnet('paper').checkpoint.sha256, resnet('heldout').checkpoint.sha256);
      assert.notEqual(resnet('paper').checkpoint.sha256, resnet('no-gan').checkpoint.sha256);
    }
    // Different seeds, different subsets; one held-out set for all trials, disjoint from every subset.
    assert.equal(new Set(result.trials.map((t) => t.subset.sha256)).size, 3);
    const summaryValue = JSON.parse((await store.getAt(result.report.summaryKey)).toString('utf8')) as {
      heldout: { images: { key: string; sha256: string; bytes: number } };
    };
    const heldout = await store.getJson(summaryValue.heldout.images, ImageSetSchema);
    const heldoutHashes = new Set(heldout.images.map((i) => i.image.sha256));
    for (const trial of result.trials) {
      const subset = await store.getJson(trial.subset, ImageSetSchema);
      assert.ok(
        subset.images.every((i) => !heldoutHashes.has(i.image.sha256)),
        `trial ${trial.trial}'s subset avoids the held-out set`,
      );
      assert.equal(trial.evaluations.find((e) => e.protocol === 'heldout')!.metrics.support, heldout.images.length);
    }

    // Above chance on the synthetic data: the pipeline learns.
    const accuracies = result.trials.flatMap((t) =>
      t.evaluations.filter((e) => e.protocol === 'paper').map((e) => e.metrics.accuracy),
    );
    const meanAccuracy = accuracies.reduce((a, b) => a + b, 0) / accuracies.length;
    assert.ok(
      meanAccuracy > 0.6,
      `mean paper-protocol accuracy over trials and backbones is ${meanAccuracy.toFixed(3)}`,
    );

    // The aggregate in the stored summary is the mean of the trials' metrics.
    const summary = SummarySchema.parse(JSON.parse((await store.getAt(result.report.summaryKey)).toString('utf8')));
    assert.equal(summary.evaluations.length, PROTOCOLS.length * BACKBONES.length);
    for (const entry of summary.evaluations) {
      const perTrial = summary.trials.map(
        (t) =>
          t.evaluations.find((e) => e.backbone === entry.backbone && e.protocol === entry.protocol)!.metrics.accuracy,
      );
      assert.deepEqual(entry.aggregate.accuracy.values, perTrial);
      assert.ok(
        Math.abs(entry.aggregate.accuracy.mean - perTrial.reduce((a, b) => a + b, 0) / perTrial.length) < 1e-12,
      );
    }
    // ... and each trial's metrics are those of the evaluation artifact stored in S3.
    for (const trial of result.trials) {
      for (const evaluation of trial.evaluations) {
        const stored = await store.getJson(
          evaluation.evaluation,
          z
            .object({
              backbone: z.string(),
              metrics: z.object({ accuracy: z.number(), confusion: z.array(z.array(z.number())) }),
            })
            .passthrough(),
        );
        assert.equal(stored.backbone, evaluation.backbone);
        assert.equal(
          stored.metrics.accuracy,
          summary.trials[trial.trial - 1]!.evaluations.find(
            (e) => e.backbone === evaluation.backbone && e.protocol === evaluation.protocol,
          )!.metrics.accuracy,
        );
      }
    }
    const report = (await store.getAt(result.report.reportKey)).toString('utf8');
    for (const entry of summary.evaluations) {
      const mean = `${(100 * entry.aggregate.accuracy.mean).toFixed(1)}% ± ${(100 * entry.aggregate.accuracy.std).toFixed(1)}`;
      assert.ok(
        report.includes(`| ${entry.backbone} | ${mean} |`),
        `the report shows ${entry.protocol}/${entry.backbone} accuracy ${mean}`,
      );
    }
    for (const protocol of PROTOCOLS) assert.match(report, new RegExp(`### ${protocol}: `));
    // Issue 11: the GAN's effect on unseen real images comes first; random weights are named.
    assert.match(report, /^# pneumogan reproduction: e2e-smoke \(every backbone trained from random weights/);
    assert.ok(report.indexOf('## Does the GAN help on unseen real images?') < report.indexOf('## Results'));
    for (const backbone of BACKBONES)
      assert.match(report, new RegExp(`\\| ${backbone} \\(random init\\) \\| \\d+\\.\\d% \\[`));
    assert.match(report, /## The pooled test set taken apart/);
    assert.match(report, /## Can generated images be told from real ones\?/);
    for (const trial of result.trials) {
      const heldoutImages = trial.evaluations.find((e) => e.protocol === 'heldout')!.metrics.support;
      const noGanHeldout = trial.evaluations.filter((e) => e.protocol === 'no-gan-heldout');
      assert.deepEqual(noGanHeldout.map((e) => e.backbone).sort(), [...BACKBONES].sort());
      assert.ok(noGanHeldout.every((e) => e.metrics.support === heldoutImages));
      assert.deepEqual(
        trial.evaluations.filter((e) => e.protocol === 'matched').map((e) => e.backbone),
        config.analysis.matchedResolution,
      );
      assert.deepEqual(
        trial.detectability?.map((d) => d.variant),
        ['paper', 'matched'],
      );
      const stored = await store.getJson(trial.evaluations[0]!.evaluation, EvaluationRecordSchema);
      assert.ok(stored.predictions.every((p) => p.probability !== null && p.probability >= 0 && p.probability <= 1));
    }
    for (const backbone of BACKBONES) assert.match(report, new RegExp(`\\| ${backbone} \\| \\d+\\.\\d% ± `));
    assert.ok(result.report.figureKeys.includes('runs/e2e-smoke/figures/confusion-heldout-resnet18.png'));
    const figure = await sharp(await store.getAt('runs/e2e-smoke/figures/accuracy.png')).metadata();
    assert.equal(figure.format, 'png');

    // A generated image's lineage names its generator, class, latent seed and index.
    const synthetic = await store.getJson(result.trials[0]!.gans[0]!.synthetic, ImageSetSchema);
    const [record] = await readLineage(store, synthetic.images[0]!.image.sha256);
    assert.equal(record?.kind, 'generated-image');
    assert.equal(record?.generated?.generator.sha256, result.trials[0]!.gans[0]!.checkpoint.sha256);
    assert.equal(record?.producer.workflowId, 'pneumogan-e2e-smoke/trial-1');
    // ...and, through its trial's memorization audit, its nearest real training image.
    const [neighbour] = await new LineageReader(store).nearestNeighbours(record);
    const nearest = neighbour?.inputs.find((i) => i.role === 'nearest-real-training-image')?.ref.sha256;
    const subset = await store.getJson(result.trials[0]!.subset, ImageSetSchema);
    assert.ok(
      subset.images.some((i) => i.image.sha256 === nearest),
      'the nearest neighbour is one of the subset images',
    );
    const lines = await lineageReport(store, synthetic.images[0]!.image);
    assert.ok(
      lines.some((l) => l.startsWith('Nearest real training images')),
      lines.join('\n'),
    );
    // `lineage --json` carries the same record.
    const json = await artifactLineage(store, synthetic.images[0]!.image);
    assert.deepEqual(json.nearestNeighbours, [neighbour]);

    // GPU steps were spread over both GPU worker processes by the shared task queue.
    const identities = new Set<string>();
    for (const trial of result.trials) {
      for (const event of (await client.workflow.getHandle(trial.workflowId).fetchHistory()).events ?? []) {
        const identity = event.activityTaskStartedEventAttributes?.identity;
        if (identity?.endsWith('/gpu')) identities.add(identity);
      }
    }
    assert.equal(identities.size, 2, `GPU steps ran on ${[...identities].join(', ')}`);

    // Launching the same run name again attaches to it: still one workflow.
    const again = await launchReproduction({ client, runName: 'e2e-smoke', config, log: () => {} });
    assert.equal((await again.describe()).runId, (await handle.describe()).runId);
    // ...but not with another configuration: that is refused, naming the fields that differ.
    const changed = structuredClone(config);
    changed.gan.steps += 1;
    await assert.rejects(
      launchReproduction({ client, runName: 'e2e-smoke', config: changed, log: () => {} }),
      (err: unknown) =>
        err instanceof InputError &&
        /Run e2e-smoke exists with a different configuration \(1 field\(s\) differ/.test(err.message) &&
        err.message.includes(`gan.steps: ${config.gan.steps} -> ${changed.gan.steps}`),
    );
  },
);

/** The failure an activity raised inside the workflow, with its attempt count. */
async function activityFailureOf(
  promise: Promise<unknown>,
): Promise<{ failure: ApplicationFailure; activity: ActivityFailure }> {
  const err = await promise.then(
    () => assert.fail('the workflow should have failed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WorkflowFailedError, `expected WorkflowFailedError, got ${String(err)}`);
  const activity = err.cause;
  assert.ok(activity instanceof ActivityFailure, `expected an activity failure, got ${String(activity)}`);
  assert.ok(activity.cause instanceof ApplicationFailure);
  return { failure: activity.cause, activity };
}

test('a corrupt JPEG fails the run at ingestion, non-retryably, naming the file', async () => {
  const root = path.join(stateDir, 'corrupt-data');
  const jpeg = await sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 60, g: 60, b: 60 } } })
    .jpeg()
    .toBuffer();
  for (const label of ['NORMAL', 'PNEUMONIA']) await mkdir(path.join(root, label), { recursive: true });
  await writeFile(path.join(root, 'NORMAL', 'IM-0001-0001.jpeg'), jpeg);
  await writeFile(path.join(root, 'PNEUMONIA', 'person3_virus_9.jpeg'), jpeg.subarray(0, 200));
  const handle = await client.workflow.start(reproducePaper, {
    workflowId: 'bad-input-corrupt',
    taskQueue: ORCHESTRATION_TASK_QUEUE,
    args: [{ runName: 'bad-input-corrupt', config: resolvePreset('smoke', { kind: 'folder', path: root }) }],
  });
  const { failure, activity } = await activityFailureOf(handle.result());
  assert.equal(failure.type, 'InputError');
  assert.equal(failure.nonRetryable, true);
  assert.equal(activity.activityType, 'ingestDataset');
  assert.match(failure.message, /person3_virus_9\.jpeg/);
  const history = await handle.fetchHistory();
  const started = history.events?.filter((e) => e.activityTaskStartedEventAttributes) ?? [];
  assert.equal(started[0]?.activityTaskStartedEventAttributes?.attempt, 1, 'no retry of bad input');
});

test('an unknown backbone sent straight to the workflow is a non-retryable validation failure', async () => {
  const config = resolvePreset('smoke') as unknown as { classifier: { backbones: string[] } };
  config.classifier.backbones = ['resnet18', 'vgg16'];
  const handle = await client.workflow.start(reproducePaper, {
    workflowId: 'bad-input-backbone',
    taskQueue: ORCHESTRATION_TASK_QUEUE,
    args: [{ runName: 'bad-input-backbone', config: config as never }],
  });
  const { failure } = await activityFailureOf(handle.result());
  assert.equal(failure.type, 'ValidationError');
  assert.equal(failure.nonRetryable, true);
  assert.match(failure.message, /classifier\.backbones\[1\]|backbones/);
  assert.match(failure.message, /vgg16|alexnet/);
});

test('a subset too small to train a GAN fails in the trial, non-retryably, saying how to fix it', async () => {
  const config = resolvePreset('smoke', { kind: 'synthetic', imagesPerClass: 4, seed: 1 });
  config.protocol.trialSeeds = [1];
  config.protocol.subsetFraction = 0.25;
  const handle = await client.workflow.start(reproducePaper, {
    workflowId: 'bad-input-tiny',
    taskQueue: ORCHESTRATION_TASK_QUEUE,
    args: [{ runName: 'bad-input-tiny', config }],
  });
  const err = await handle.result().then(
    () => assert.fail('should fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WorkflowFailedError);
  // parent <- child workflow <- activity
  const activity = (err.cause as { cause?: unknown }).cause;
  assert.ok(activity instanceof ActivityFailure, String(activity));
  assert.ok(activity.cause instanceof ApplicationFailure);
  assert.equal(activity.cause.type, 'InputError');
  // 0 or 1 image, depending on which of the 4 images the seeded draws pick.
  assert.match(activity.cause.message, /[01] image\(s\); raise protocol\.subsetSize \(or subsetFraction\)/);
});
