/**
 * The trial's stage plan, tested the Temporal way: today's workflow code runs on a real (local)
 * Temporal server through TestWorkflowEnvironment, with stub activities that record what they
 * were asked to do. No training, no S3: seconds per run. Covers which stages each protocol
 * choice schedules, that backbones and trials fan out in parallel, and what the failure of one
 * backbone does to the run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  defineSearchAttributeKey,
} from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { createCpuActivities } from '../../activities/cpu.js';
import type { createGpuActivities } from '../../activities/gpu.js';
import type { createAnalysisActivities } from '../../activities/analysis.js';
import type { createResolutionActivities } from '../../activities/resolution.js';
import { EXIT } from '../../cli/exit-codes.js';
import { listRuns } from '../../cli/inspect-data.js';
import { launchReproduction } from '../../cli/launch.js';
import { findOrProvisionTemporalCli } from '../../lib/infra/temporal-cli.js';
import { devServerSearchAttributeArgs, SEARCH_ATTRIBUTES } from '../../lib/search-attributes.js';
import { reproductionWorkflowId } from '../../lib/run-names.js';
import { taskQueueSettings } from '../../lib/settings.js';
import { confusionMatrix, metricsFromConfusion } from '../../lib/protocol/metrics.js';
import { sha256Hex, type ArtifactRef } from '../../lib/storage.js';
import { resolvePreset } from '../../pipelines/presets.js';
import type { Backbone, PipelineConfig, Protocol } from '../../pipelines/schema.js';
import { progressQuery, reproducePaper } from '../../workflows/index.js';
import { quietTemporalLogs } from '../../workers/main.js';
import { bundleWorkflows } from '../../workers/start-workers.js';

type CpuActivities = ReturnType<typeof createCpuActivities> & ReturnType<typeof createResolutionActivities>;
type GpuActivities = ReturnType<typeof createGpuActivities> & ReturnType<typeof createAnalysisActivities>;

let env: TestWorkflowEnvironment | undefined;
let bundle: WorkflowBundleWithSourceMap;
let skip: string | false = false;

before(async () => {
  let cliPath: string;
  try {
    cliPath = await findOrProvisionTemporalCli({ provision: false });
  } catch (err) {
    skip = `no Temporal CLI to run the test server (${(err as Error).message.split('\n')[0]}); run \`npm run setup\``;
    return;
  }
  quietTemporalLogs();
  [env, bundle] = await Promise.all([
    TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: cliPath }, extraArgs: devServerSearchAttributeArgs() },
    }),
    bundleWorkflows(),
  ]);
});
after(() => env?.teardown());

const ref = (name: string): ArtifactRef => ({ key: `stub/${name}`, sha256: sha256Hex(name), bytes: 1 });
const counts = { NORMAL: 10, PNEUMONIA: 10 };
const sides = { images: counts, patients: counts };
/** Three of four right: what the report's aggregation reads, made by the real metrics code. */
const metrics = metricsFromConfusion(confusionMatrix([0, 1, 0, 1], [0, 1, 1, 1]));

interface Call {
  activity: string;
  input: Record<string, unknown>;
}

/** Stub activities that record every call; `hooks` replace or wrap single ones. */
function stubs(calls: Call[], hooks: Partial<GpuActivities> = {}) {
  const record = (activity: string, input: unknown) =>
    calls.push({ activity, input: input as Record<string, unknown> });
  const cpu = {
    ingestDataset: (input) => {
      record('ingestDataset', input);
      return Promise.resolve({
        manifest: ref('manifest'),
        source: 'stub',
        counts,
        patients: counts,
        duplicates: 0,
        nearDuplicates: { pairs: 0, linkingGroups: 0, crossClass: 0 },
        skipped: 0,
      });
    },
    partitionDataset: (input) => {
      record('partitionDataset', input);
      return Promise.resolve({
        pool: ref('pool'),
        poolCounts: counts,
        heldout: input.protocol.evaluations.includes('heldout')
          ? { images: ref('heldout'), counts, patients: counts, source: 'stub' }
          : undefined,
      });
    },
    importWeights: (input) => {
      record('importWeights', input);
      return Promise.resolve(ref(`weights-${input.backbone}`));
    },
    sampleSubset: (input) => {
      record('sampleSubset', input);
      return Promise.resolve({ subset: ref(`subset-${input.trial}`), counts });
    },
    splitPool: (input) => {
      record('splitPool', input);
      return Promise.resolve({
        split: ref(`split-${input.synthetic.length}-${input.seed}`),
        train: sides,
        test: sides,
      });
    },
    matchResolution: (input) => {
      record('matchResolution', input);
      return Promise.resolve({ images: ref(`matched-${input.subset.key}`), count: 20 });
    },
    aggregateReport: (input) => {
      record('aggregateReport', input);
      return Promise.resolve({
        summary: ref('summary'),
        report: ref('report'),
        reportKey: `runs/${input.runName}/report.md`,
        summaryKey: `runs/${input.runName}/summary.json`,
        figureKeys: [],
      });
    },
  } as Partial<CpuActivities> as CpuActivities;
  const gpu: GpuActivities = {
    trainGan: (input) => {
      record('trainGan', input);
      return Promise.resolve({
        checkpoint: ref(`gan-${input.label}-${input.seed}`),
        samples: ref('samples'),
        history: ref('gan-history'),
        trainingImages: 10,
        finalLoss: { discriminator: 1, generator: 1 },
        resumedFromStep: 0,
      });
    },
    synthesize: (input) => {
      record('synthesize', input);
      return Promise.resolve({ images: ref(`synthetic-${input.label}-${input.seed}`), count: input.count });
    },
    fineTune: (input) => {
      record('fineTune', input);
      return Promise.resolve({
        checkpoint: ref(`model-${input.backbone}-${input.split.key}`),
        history: ref('history'),
        finalLoss: 0.5,
        resumedFromBatch: 0,
      });
    },
    evaluate: (input) => {
      record('evaluate', input);
      return Promise.resolve({
        evaluation: ref(`evaluation-${input.backbone}-${input.test.key}`),
        metrics,
      });
    },
    detectability: (input) => {
      record('detectability', input);
      return Promise.resolve({
        accuracy: 0.9,
        balancedAccuracy: 0.5,
        auc: 0.5,
        majorityAccuracy: 0.9,
        trainImages: 16,
        testImages: 4,
        evaluation: ref(`detectability-${input.split.key}`),
      });
    },
    memorization: (input) => {
      record('memorization', input);
      const space = {
        medianGenerated: 0.1,
        medianHeldout: 0.1,
        nearCopyThreshold: 0.05,
        nearCopyFraction: 0,
        diversity: { generated: 0.1, training: 0.2 },
      };
      return Promise.resolve({
        label: input.label,
        audit: ref(`audit-${input.label}`),
        closestPairs: ref(`pairs-${input.label}`),
        generatedImages: 90,
        trainingImages: 10,
        heldoutImages: 10,
        pixels: space,
        features: space,
      });
    },
    ...hooks,
  };
  return { cpu, gpu };
}

const projectRoot = path.resolve(import.meta.dirname, '..', '..');
let queueCounter = 0;

/** The run's custom search attributes, as the Temporal UI and `pneumogan list` see them. */
async function searchAttributes(workflowId: string): Promise<Record<string, string | undefined>> {
  const { typedSearchAttributes } = await env!.client.workflow.getHandle(workflowId).describe();
  return Object.fromEntries(
    Object.entries(SEARCH_ATTRIBUTES).map(([field, name]) => [
      field,
      typedSearchAttributes.get(defineSearchAttributeKey(name, 'KEYWORD')),
    ]),
  );
}

/**
 * Runs reproducePaper with `config` on fresh, non-default task queues served by stub workers;
 * `afterwards` runs while the workers still serve (queries of a closed workflow need one).
 */
async function runWithStubs(
  config: PipelineConfig,
  calls: Call[],
  hooks: Partial<GpuActivities> = {},
  afterwards: (workflowId: string) => Promise<void> = () => Promise.resolve(),
) {
  const { cpu, gpu } = stubs(calls, hooks);
  const queue = `stage-plan-${process.pid}-${++queueCounter}`;
  const taskQueues = { orchestration: queue, gpu: `${queue}-gpu` };
  const orchestration = await Worker.create({
    connection: env!.nativeConnection,
    taskQueue: taskQueues.orchestration,
    workflowBundle: bundle,
    activities: cpu,
  });
  const gpuWorker = await Worker.create({
    connection: env!.nativeConnection,
    taskQueue: taskQueues.gpu,
    activities: gpu,
  });
  const runName = `stage-plan-${process.pid}-${queueCounter}`;
  const workflowId = reproductionWorkflowId(runName);
  const handle = await env!.client.workflow.start(reproducePaper, {
    workflowId,
    taskQueue: taskQueues.orchestration,
    args: [{ runName, config, taskQueues, options: { reuse: false } }],
  });
  const outcome = await orchestration.runUntil(
    gpuWorker.runUntil(
      handle
        .result()
        .then(
          (result) => ({ result, error: undefined }),
          (error: unknown) => ({ result: undefined, error }),
        )
        .then(async (outcome) => {
          await afterwards(workflowId);
          return outcome;
        }),
    ),
  );
  return { runName, handle, ...outcome };
}

/** The smoke preset with the chosen protocols; the optional analyses (issue 11) off unless asked for. */
function smoke(
  evaluations: Protocol[],
  backbones: Backbone[],
  trials = 1,
  analysis: Partial<PipelineConfig['analysis']> = {},
): PipelineConfig {
  const config = resolvePreset('smoke');
  config.protocol.evaluations = evaluations;
  config.protocol.trialSeeds = config.protocol.trialSeeds.slice(0, trials);
  config.classifier.backbones = backbones;
  config.analysis = {
    ...config.analysis,
    matchedResolution: [],
    detectability: false,
    memorization: false,
    ...analysis,
  };
  return config;
}

const tally = (calls: Call[]) =>
  Object.fromEntries(
    [...new Set(calls.map((c) => c.activity))].sort().map((a) => [a, calls.filter((c) => c.activity === a).length]),
  );

test('the paper protocol alone: a GAN and synthesis per class, one pooled split, one fine-tune and evaluation per backbone', async (t) => {
  if (skip) return t.skip(skip);
  const calls: Call[] = [];
  const { handle, result, error } = await runWithStubs(smoke(['paper'], ['alexnet', 'resnet18']), calls);
  assert.equal(error, undefined);
  assert.deepEqual(await searchAttributes(handle.workflowId), {
    preset: 'smoke',
    datasetSha256: sha256Hex('manifest'),
    status: 'completed',
  });
  assert.deepEqual(tally(calls), {
    aggregateReport: 1,
    evaluate: 2,
    fineTune: 2,
    ingestDataset: 1,
    partitionDataset: 1,
    sampleSubset: 1,
    splitPool: 1,
    synthesize: 2,
    trainGan: 2,
  });
  const split = calls.find((c) => c.activity === 'splitPool')!.input;
  assert.equal((split.synthetic as ArtifactRef[]).length, 2, 'the pooled split takes both classes of synthetic images');
  for (const e of calls.filter((c) => c.activity === 'evaluate'))
    assert.match((e.input.test as ArtifactRef).key, /^stub\/split-2-/, 'tested on the pooled split');
  assert.deepEqual(result!.trials[0]!.evaluations.map((e) => `${e.protocol}:${e.backbone}`).sort(), [
    'paper:alexnet',
    'paper:resnet18',
  ]);
  // Synthesis asks for syntheticPerReal images per real one of its class.
  const synth = calls.filter((c) => c.activity === 'synthesize').map((c) => c.input.count);
  assert.deepEqual(synth, [10 * 9, 10 * 9]);
});

test('no-gan alone trains no GAN: one real-only split, each backbone fine-tuned and tested on it', async (t) => {
  if (skip) return t.skip(skip);
  const calls: Call[] = [];
  const { result, error } = await runWithStubs(smoke(['no-gan'], ['squeezenet']), calls);
  assert.equal(error, undefined);
  assert.equal(tally(calls).trainGan, undefined);
  assert.equal(tally(calls).synthesize, undefined);
  const splits = calls.filter((c) => c.activity === 'splitPool');
  assert.deepEqual(
    splits.map((s) => (s.input.synthetic as ArtifactRef[]).length),
    [0],
  );
  assert.deepEqual(
    result!.trials[0]!.evaluations.map((e) => `${e.protocol}:${e.backbone}`),
    ['no-gan:squeezenet'],
  );
});

test('all three protocols: both models are tested on the held-out images (common ground), each on its own split too', async (t) => {
  if (skip) return t.skip(skip);
  const calls: Call[] = [];
  const { result, error } = await runWithStubs(smoke(['paper', 'heldout', 'no-gan'], ['googlenet']), calls);
  assert.equal(error, undefined);
  assert.equal(tally(calls).fineTune, 2);
  assert.equal(tally(calls).evaluate, 4);
  const heldoutTests = calls.filter(
    (c) => c.activity === 'evaluate' && (c.input.test as ArtifactRef).key === 'stub/heldout',
  );
  assert.equal(
    new Set(heldoutTests.map((c) => (c.input.checkpoint as ArtifactRef).key)).size,
    2,
    'the GAN-trained and the real-only model are both tested on the held-out images',
  );
  assert.deepEqual(result!.trials[0]!.evaluations.map((e) => e.protocol).sort(), [
    'heldout',
    'no-gan',
    'no-gan-heldout',
    'paper',
  ]);
});

test('the analyses: a resolution-matched pool and model, detectability of both pools, a memorization audit per class', async (t) => {
  if (skip) return t.skip(skip);
  const calls: Call[] = [];
  const config = smoke(['paper', 'heldout'], ['alexnet', 'resnet18'], 1, {
    matchedResolution: ['resnet18'],
    detectability: true,
    memorization: true,
  });
  const { result, error } = await runWithStubs(config, calls);
  assert.equal(error, undefined);
  const matched = calls.find((c) => c.activity === 'matchResolution')!.input;
  assert.equal(matched.size, config.gan.imageSize);
  const matchedSplit = calls.filter((c) => c.activity === 'splitPool').map((c) => (c.input.subset as ArtifactRef).key);
  assert.ok(
    matchedSplit.some((k) => k.startsWith('stub/matched-')),
    'the matched subset is pooled and split',
  );
  assert.equal(tally(calls).fineTune, 3, 'two backbones, and resnet18 again on the matched pool');
  assert.equal(tally(calls).detectability, 2);
  assert.deepEqual(
    calls
      .filter((c) => c.activity === 'memorization')
      .map((c) => c.input.label)
      .sort(),
    ['NORMAL', 'PNEUMONIA'],
  );
  const trial = result!.trials[0]!;
  assert.deepEqual(
    trial.evaluations.filter((e) => e.protocol === 'matched').map((e) => e.backbone),
    ['resnet18'],
  );
  assert.deepEqual(
    trial.detectability?.map((d) => d.variant),
    ['paper', 'matched'],
  );
  assert.equal(trial.memorization?.length, 2);
  assert.ok(
    trial.stageMillis['memorization:NORMAL'] !== undefined && trial.stageMillis['detectability:matched'] !== undefined,
  );
});

test('backbones fine-tune in parallel and trials run side by side', async (t) => {
  if (skip) return t.skip(skip);
  const backbones: Backbone[] = ['alexnet', 'googlenet', 'squeezenet', 'resnet18'];
  const trials = 2;
  const expected = backbones.length * trials;
  // Each fine-tune waits until every one has started: a sequential plan would never get there.
  let started = 0;
  let allStarted!: () => void;
  const barrier = new Promise<void>((resolve) => (allStarted = resolve));
  const calls: Call[] = [];
  const { result, error } = await runWithStubs(smoke(['paper'], backbones, trials), calls, {
    async fineTune(input) {
      calls.push({ activity: 'fineTune', input: input });
      if (++started === expected) allStarted();
      await barrier;
      return {
        checkpoint: ref(`model-${input.backbone}`),
        history: ref('history'),
        finalLoss: 0.5,
        resumedFromBatch: 0,
      };
    },
  });
  assert.equal(error, undefined);
  assert.equal(started, expected);
  assert.equal(result!.trials.length, trials);
  assert.deepEqual(
    result!.trials.map((r) => r.seed),
    resolvePreset('smoke').protocol.trialSeeds.slice(0, trials),
  );
});

test('a backbone whose fine-tuning fails for good fails its trial and the run, naming the activity; no report is written', async (t) => {
  if (skip) return t.skip(skip);
  const calls: Call[] = [];
  let trialStages: Record<string, { status: string }> = {};
  const { handle, error } = await runWithStubs(
    smoke(['paper'], ['alexnet', 'googlenet']),
    calls,
    {
      fineTune(input) {
        calls.push({ activity: 'fineTune', input: input });
        if (input.backbone === 'googlenet')
          return Promise.reject(ApplicationFailure.nonRetryable('googlenet weights do not fit', 'InputError'));
        return Promise.resolve({
          checkpoint: ref('model'),
          history: ref('history'),
          finalLoss: 0.5,
          resumedFromBatch: 0,
        });
      },
    },
    async (workflowId) => {
      trialStages = (await env!.client.workflow.getHandle(`${workflowId}/trial-1`).query(progressQuery)).stages;
    },
  );
  assert.ok(error instanceof WorkflowFailedError, `the run failed (${String(error)})`);
  const child = error.cause;
  assert.ok(child instanceof ChildWorkflowFailure, 'through its trial');
  assert.ok(child.cause instanceof ActivityFailure && child.cause.activityType === 'fineTune');
  assert.match(String(child.cause.cause?.message), /googlenet weights do not fit/);
  assert.equal(tally(calls).aggregateReport, undefined);
  assert.equal(tally(calls).fineTune, 2, 'tried once: bad input is not retried');
  assert.equal(trialStages['fine-tune:googlenet']?.status, 'failed');
  assert.equal((await searchAttributes(handle.workflowId)).status, 'failed', 'the UI can filter failed runs');
  assert.equal((await handle.describe()).status.name, 'FAILED');
});

test(
  '`pneumogan run` starts on the queues the settings name, so workers on non-default queues pick the run up',
  // Started on the default queue, the run would wait forever for a worker: fail instead.
  { timeout: 120_000 },
  async (t) => {
    if (skip) return t.skip(skip);
    const taskQueues = taskQueueSettings({
      PNEUMOGAN_TASK_QUEUE: `team-a-${process.pid}`,
      PNEUMOGAN_GPU_TASK_QUEUE: `team-a-gpu-${process.pid}`,
    });
    const calls: Call[] = [];
    const { cpu, gpu } = stubs(calls);
    // Only these two queues have workers: a run started on the default queue would never finish.
    const orchestration = await Worker.create({
      connection: env!.nativeConnection,
      taskQueue: taskQueues.orchestration,
      workflowBundle: bundle,
      activities: cpu,
    });
    const gpuWorker = await Worker.create({
      connection: env!.nativeConnection,
      taskQueue: taskQueues.gpu,
      activities: gpu,
    });
    const handle = await launchReproduction({
      client: env!.client,
      runName: `queues-${process.pid}`,
      config: smoke(['paper'], ['resnet18']),
      taskQueues,
      log: () => {},
    });
    const result = await orchestration.runUntil(gpuWorker.runUntil(handle.result()));
    assert.equal(result.trials.length, 1);
    assert.equal((await handle.describe()).taskQueue, taskQueues.orchestration);
    assert.equal(tally(calls).fineTune, 1, 'the GPU steps ran on the GPU queue the settings name');
  },
);

test('runs can be filtered by their search attributes; the CLI prints JSON and exits with documented codes', async (t) => {
  if (skip) return t.skip(skip);
  const calls: Call[] = [];
  const { runName, handle, error } = await runWithStubs(smoke(['no-gan'], ['resnet18']), calls);
  assert.equal(error, undefined);
  // Visibility is eventually consistent: wait until the list shows the finished run.
  const deadline = Date.now() + 30_000;
  let listed: Awaited<ReturnType<typeof listRuns>> = [];
  while (!listed.some((r) => r.workflowId === handle.workflowId) && Date.now() < deadline) {
    listed = await listRuns(env!.client, { preset: 'smoke', stage: 'completed', datasetSha256: sha256Hex('manifest') });
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.ok(
    listed.some((r) => r.workflowId === handle.workflowId),
    'found through preset, stage and dataset',
  );
  assert.deepEqual(await listRuns(env!.client, { preset: 'paper' }), [], 'no paper-preset runs here');

  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [path.join(projectRoot, 'bin', 'pneumogan.js'), ...args], {
      encoding: 'utf8',
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: env!.address,
        TEMPORAL_NAMESPACE: 'default',
        PNEUMOGAN_S3_ENDPOINT: 'http://127.0.0.1:9',
        PNEUMOGAN_S3_ACCESS_KEY: 'unused',
        PNEUMOGAN_S3_SECRET_KEY: 'unused',
      },
    });
  const status = cli('status', runName, '--json');
  assert.equal(status.status, 0, status.stderr);
  const parsed = JSON.parse(status.stdout) as { status: string; stage: string; preset: string; trials: unknown[] };
  assert.deepEqual(
    [parsed.status, parsed.stage, parsed.preset, parsed.trials.length],
    ['COMPLETED', 'completed', 'smoke', 1],
  );
  assert.equal(cli('status', 'no-such-run').status, EXIT.notFound);
  assert.equal(cli('list', '--preset', "x' OR 1=1").status, EXIT.badInput);
  assert.equal(cli('list', '--no-such-option').status, EXIT.badInput);
});
