/**
 * The paper as durable orchestration. Deterministic only: no I/O, clocks or randomness outside
 * the SDK's; payloads are artifact references and small numbers.
 *
 *   reproducePaper: ingest -> trial x N (child workflows, in parallel) -> aggregate + report
 *   trial:          10% subset -> DCGAN per class -> synthesize 9x -> 80/20 split
 *                   -> fine-tune each backbone (parallel) -> evaluate each -> result
 */
import { condition, defineQuery, executeChild, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { createCpuActivities } from '../activities/cpu.js';
import type { createGpuActivities } from '../activities/gpu.js';
import type { AggregateOutput, IngestOutput, TrialResult } from '../activities/types.js';
import type { PipelineConfig } from '../pipelines/schema.js';
import type { ArtifactRef } from '../lib/storage.js';
import { GPU_TASK_QUEUE, ORCHESTRATION_TASK_QUEUE } from './queues.js';

/** Mirrors activities/runtime.ts NON_RETRYABLE_TYPES (workflow code may not import it: it pulls in the SDK's activity side). */
const NON_RETRYABLE_TYPES = ['InputError', 'ConfigError', 'ValidationError'];

export interface RunOptions {
  /** Reuse the outputs of identical completed steps (default true). */
  reuse?: boolean;
  /** A GPU step whose worker stops heartbeating this long is retried elsewhere (default 60). */
  heartbeatTimeoutSeconds?: number;
}

export interface ReproducePaperInput {
  runName: string;
  config: PipelineConfig;
  options?: RunOptions;
  /** Overrides for deployments that name their queues differently. */
  taskQueues?: { orchestration?: string; gpu?: string };
}

export interface ReproductionResult {
  runName: string;
  dataset: IngestOutput;
  trials: TrialResult[];
  report: AggregateOutput;
}

export interface TrialInput {
  runName: string;
  trial: number;
  seed: number;
  config: PipelineConfig;
  manifest: ArtifactRef;
  gpuTaskQueue: string;
  options?: RunOptions;
}

export type StageState = { status: 'pending' | 'running' | 'done' | 'failed'; startedAt?: number; endedAt?: number; detail?: string };
export interface ProgressView {
  stages: Record<string, StageState>;
  /** Child trial workflow ids (parent only). */
  trials?: string[];
}

export const progressQuery = defineQuery<ProgressView>('progress');

/** Stage bookkeeping exposed through the `progress` query (workflow time, deterministic). */
class StageTracker {
  readonly view: ProgressView = { stages: {} };

  constructor(names: string[]) {
    for (const name of names) this.view.stages[name] = { status: 'pending' };
    setHandler(progressQuery, () => this.view);
  }

  async run<T>(name: string, body: () => Promise<T>, describe?: (result: T) => string): Promise<T> {
    const stage: StageState = { status: 'running', startedAt: Date.now() };
    this.view.stages[name] = stage;
    try {
      const result = await body();
      Object.assign(stage, { status: 'done', endedAt: Date.now(), detail: describe?.(result) });
      return result;
    } catch (err) {
      Object.assign(stage, { status: 'failed', endedAt: Date.now(), detail: err instanceof Error ? err.message : String(err) });
      throw err;
    }
  }

  millis(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.view.stages)
      .filter(([, s]) => s.startedAt !== undefined && s.endedAt !== undefined)
      .map(([name, s]) => [name, s.endedAt! - s.startedAt!]));
  }
}

function cpuActivities(taskQueue: string) {
  return proxyActivities<ReturnType<typeof createCpuActivities>>({
    taskQueue,
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 8, nonRetryableErrorTypes: NON_RETRYABLE_TYPES },
  });
}

function gpuActivities(taskQueue: string, options: RunOptions | undefined) {
  return proxyActivities<ReturnType<typeof createGpuActivities>>({
    taskQueue,
    // Paper-size GAN training takes hours; the heartbeat, not this bound, detects dead workers.
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: `${options?.heartbeatTimeoutSeconds ?? 60} seconds`,
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE_TYPES },
  });
}

export async function reproducePaper(input: ReproducePaperInput): Promise<ReproductionResult> {
  const { runName, config } = input;
  const orchestrationQueue = input.taskQueues?.orchestration ?? workflowInfo().taskQueue ?? ORCHESTRATION_TASK_QUEUE;
  const gpuTaskQueue = input.taskQueues?.gpu ?? GPU_TASK_QUEUE;
  const cpu = cpuActivities(orchestrationQueue);
  const trialIds = config.protocol.trialSeeds.map((_, i) => `${workflowInfo().workflowId}/trial-${i + 1}`);
  const stages = new StageTracker(['ingest', 'trials', 'report']);
  stages.view.trials = trialIds;

  const dataset = await stages.run('ingest', () => cpu.ingestDataset({ config }),
    (d) => `${d.counts.NORMAL} NORMAL + ${d.counts.PNEUMONIA} PNEUMONIA from ${d.source}` + (d.duplicates ? `, ${d.duplicates} duplicates skipped` : ''));
  const trials = await stages.run('trials', () => Promise.all(config.protocol.trialSeeds.map((seed, i) =>
    executeChild(trial, {
      workflowId: trialIds[i]!,
      taskQueue: orchestrationQueue,
      args: [{ runName, trial: i + 1, seed, config, manifest: dataset.manifest, gpuTaskQueue, options: input.options }],
    }))));
  const report = await stages.run('report', () => cpu.aggregateReport({
    runName, config,
    dataset: { manifest: dataset.manifest, source: dataset.source, counts: dataset.counts, patients: dataset.patients, duplicates: dataset.duplicates, skipped: dataset.skipped },
    trials,
  }), (r) => r.reportKey);
  return { runName, dataset, trials, report };
}

export async function trial(input: TrialInput): Promise<TrialResult> {
  const { config, seed, manifest } = input;
  const cpu = cpuActivities(workflowInfo().taskQueue);
  const gpu = gpuActivities(input.gpuTaskQueue, input.options);
  const reuse = input.options?.reuse ?? true;
  const labels = ['NORMAL', 'PNEUMONIA'] as const;
  const backbones = config.classifier.backbones;
  const stages = new StageTracker([
    'subset',
    ...labels.map((l) => `gan:${l}`),
    ...labels.map((l) => `synthesize:${l}`),
    'split',
    ...backbones.map((b) => `fine-tune:${b}`),
    ...backbones.map((b) => `evaluate:${b}`),
  ]);

  const subset = await stages.run('subset', () => cpu.sampleSubset({ manifest, fraction: config.protocol.subsetFraction, seed, trial: input.trial }),
    (s) => `${s.counts.NORMAL} NORMAL + ${s.counts.PNEUMONIA} PNEUMONIA`);

  const gans = await Promise.all(labels.map(async (label) => {
    const gan = await stages.run(`gan:${label}`, () => gpu.trainGan({ subset: subset.subset, label, gan: config.gan, seed, reuse }),
      (g) => `${g.trainingImages} images, final loss D ${g.finalLoss.discriminator.toFixed(3)} G ${g.finalLoss.generator.toFixed(3)}` + (g.resumedFromStep ? `, resumed at step ${g.resumedFromStep}` : ''));
    const count = subset.counts[label] * config.protocol.syntheticPerReal;
    const synthetic = await stages.run(`synthesize:${label}`, () => gpu.synthesize({ checkpoint: gan.checkpoint, label, count, seed, reuse }), (s) => `${s.count} images`);
    return { label, checkpoint: gan.checkpoint, samples: gan.samples, history: gan.history, synthetic: synthetic.images, syntheticCount: synthetic.count };
  }));

  const split = await stages.run('split', () => cpu.splitPool({ subset: subset.subset, synthetic: gans.map((g) => g.synthetic), trainFraction: config.protocol.trainFraction, seed }),
    (s) => `train ${s.train.NORMAL}+${s.train.PNEUMONIA}, test ${s.test.NORMAL}+${s.test.PNEUMONIA}`);

  const results = await Promise.all(backbones.map(async (backbone) => {
    const tuned = await stages.run(`fine-tune:${backbone}`, () => gpu.fineTune({ split: split.split, backbone, classifier: config.classifier, seed, reuse }),
      (t) => `final loss ${t.finalLoss.toFixed(3)}` + (t.resumedFromBatch ? `, resumed at batch ${t.resumedFromBatch}` : ''));
    const evaluated = await stages.run(`evaluate:${backbone}`, () => gpu.evaluate({ split: split.split, checkpoint: tuned.checkpoint, backbone, classifier: config.classifier, reuse }),
      (e) => `accuracy ${(e.metrics.accuracy * 100).toFixed(1)}%`);
    return { backbone, checkpoint: tuned.checkpoint, history: tuned.history, evaluation: evaluated.evaluation, metrics: evaluated.metrics };
  }));

  // Let a final progress query observe the finished stages before the result is returned.
  await condition(() => true);
  return {
    trial: input.trial, seed, workflowId: workflowInfo().workflowId,
    subset: subset.subset, subsetCounts: subset.counts,
    split: split.split, trainCounts: split.train, testCounts: split.test,
    gans, backbones: results, stageMillis: stages.millis(),
  };
}
