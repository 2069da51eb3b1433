/**
 * The paper as durable orchestration. Deterministic only: no I/O, clocks or randomness outside
 * the SDK's; payloads are artifact references and small numbers.
 *
 *   reproducePaper: ingest -> trial x N (child workflows, in parallel) -> aggregate + report
 *   trial:          10% subset -> DCGAN per class -> synthesize 9x -> 80/20 split
 *                   -> fine-tune each backbone (parallel) -> evaluate each -> result
 */
import {
  condition,
  defineQuery,
  executeChild,
  isCancellation,
  patched,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { AggregateOutput, IngestOutput, SplitPoolOutput, TrialResult } from '../activities/types.js';
import type { Backbone, PipelineConfig, Protocol } from '../pipelines/schema.js';
import type { ArtifactRef } from '../lib/storage.js';
import { cpuActivities, gpuActivities } from './activity-proxies.js';
import { modelStages } from './model-stages.js';
import { GPU_TASK_QUEUE } from './queues.js';
import { publishRun } from './search-attributes.js';
import { ANALYSIS_PATCH, analysisStageNames, runTrialAnalysis } from './trial-analysis.js';

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
  /** Real images to sample the subset from (the held-out set excluded). */
  pool: ArtifactRef;
  /** Real images for the `heldout` evaluation. */
  heldout?: ArtifactRef;
  /** Imported ImageNet weights per backbone. */
  pretrained: Partial<Record<Backbone, ArtifactRef>>;
  gpuTaskQueue: string;
  options?: RunOptions;
}

export type StageState = {
  status: 'pending' | 'running' | 'done' | 'failed';
  startedAt?: number;
  endedAt?: number;
  detail?: string;
};
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
      Object.assign(stage, {
        status: 'failed',
        endedAt: Date.now(),
        detail: err instanceof Error ? err.message : String(err),
      });
      throw err;
    }
  }

  millis(): Record<string, number> {
    return Object.fromEntries(
      Object.entries(this.view.stages)
        .filter(([, s]) => s.startedAt !== undefined && s.endedAt !== undefined)
        .map(([name, s]) => [name, s.endedAt! - s.startedAt!]),
    );
  }
}

export async function reproducePaper(input: ReproducePaperInput): Promise<ReproductionResult> {
  publishRun({ preset: input.config.preset, status: 'ingesting' });
  try {
    const result = await runReproduction(input);
    publishRun({ status: 'completed' });
    return result;
  } catch (err) {
    publishRun({ status: isCancellation(err) ? 'cancelled' : 'failed' });
    throw err;
  }
}

async function runReproduction(input: ReproducePaperInput): Promise<ReproductionResult> {
  const { runName, config } = input;
  const orchestrationQueue = input.taskQueues?.orchestration ?? workflowInfo().taskQueue;
  const gpuTaskQueue = input.taskQueues?.gpu ?? GPU_TASK_QUEUE;
  const cpu = cpuActivities(orchestrationQueue);
  const trialIds = config.protocol.trialSeeds.map((_, i) => `${workflowInfo().workflowId}/trial-${i + 1}`);
  const stages = new StageTracker(['ingest', 'held-out set', 'weights', 'trials', 'report']);
  stages.view.trials = trialIds;

  const dataset = await stages.run(
    'ingest',
    () => cpu.ingestDataset({ config }),
    (d) =>
      `${d.counts.NORMAL} NORMAL + ${d.counts.PNEUMONIA} PNEUMONIA from ${d.source}` +
      (d.duplicates ? `, ${d.duplicates} duplicates skipped` : ''),
  );
  publishRun({ datasetSha256: dataset.manifest.sha256, status: 'training' });
  const partition = await stages.run(
    'held-out set',
    () => cpu.partitionDataset({ manifest: dataset.manifest, protocol: config.protocol }),
    (p) =>
      p.heldout
        ? `${p.heldout.counts.NORMAL} NORMAL + ${p.heldout.counts.PNEUMONIA} PNEUMONIA held out (${p.heldout.source})`
        : 'none (heldout evaluation not requested)',
  );
  const pretrained = await stages.run(
    'weights',
    async () =>
      Object.fromEntries(
        await Promise.all(
          Object.entries(config.classifier.pretrained).map(
            async ([backbone, source]) =>
              [backbone, await cpu.importWeights({ backbone: backbone as Backbone, source: source })] as const,
          ),
        ),
      ),
    (w) =>
      Object.keys(w).length
        ? `pretrained ${Object.keys(w).join(', ')}`
        : 'none configured: backbones start from random weights',
  );
  const trials = await stages.run('trials', () =>
    Promise.all(
      config.protocol.trialSeeds.map((seed, i) =>
        executeChild(trial, {
          workflowId: trialIds[i]!,
          taskQueue: orchestrationQueue,
          args: [
            {
              runName,
              trial: i + 1,
              seed,
              config,
              pool: partition.pool,
              heldout: partition.heldout?.images,
              pretrained,
              gpuTaskQueue,
              options: input.options,
            },
          ],
        }),
      ),
    ),
  );
  publishRun({ status: 'reporting' });
  const report = await stages.run(
    'report',
    () =>
      cpu.aggregateReport({
        runName,
        config,
        dataset,
        heldout: partition.heldout,
        poolCounts: partition.poolCounts,
        trials,
      }),
    (r) => r.reportKey,
  );
  return { runName, dataset, trials, report };
}

export async function trial(input: TrialInput): Promise<TrialResult> {
  const { config, seed } = input;
  const cpu = cpuActivities(workflowInfo().taskQueue);
  const gpu = gpuActivities(input.gpuTaskQueue, input.options?.heartbeatTimeoutSeconds);
  const reuse = input.options?.reuse ?? true;
  const labels = ['NORMAL', 'PNEUMONIA'] as const;
  const backbones = config.classifier.backbones;
  const evaluations = config.protocol.evaluations;
  const withGan = evaluations.includes('paper') || evaluations.includes('heldout');
  const heldout = evaluations.includes('heldout') ? input.heldout : undefined;
  const noGan = evaluations.includes('no-gan');
  // Issue 11: analyses after the protocols; histories recorded before them replay without.
  const analyse = patched(ANALYSIS_PATCH);
  const stages = new StageTracker([
    'subset',
    ...(withGan ? [...labels.map((l) => `gan:${l}`), ...labels.map((l) => `synthesize:${l}`), 'split'] : []),
    ...(noGan ? ['split:no-gan'] : []),
    ...backbones.flatMap((b) => [
      ...(withGan ? [`fine-tune:${b}`] : []),
      ...(evaluations.includes('paper') ? [`evaluate:${b}`] : []),
      ...(heldout ? [`evaluate-heldout:${b}`] : []),
      ...(noGan ? [`fine-tune-no-gan:${b}`, `evaluate-no-gan:${b}`] : []),
    ]),
    ...(analyse ? analysisStageNames(config, { withGan, heldout: heldout !== undefined, noGan }) : []),
  ]);
  const models = modelStages(stages, gpu, { classifier: config.classifier, seed, reuse, pretrained: input.pretrained });
  const splitDetail = (s: SplitPoolOutput) =>
    `train ${s.train.images.NORMAL}+${s.train.images.PNEUMONIA} images (${s.train.patients.PNEUMONIA} PNEUMONIA patients), ` +
    `test ${s.test.images.NORMAL}+${s.test.images.PNEUMONIA} (${s.test.patients.PNEUMONIA} patients)`;

  const subset = await stages.run(
    'subset',
    () =>
      cpu.sampleSubset({
        pool: input.pool,
        size: config.protocol.subsetSize,
        fraction: config.protocol.subsetFraction,
        seed,
        trial: input.trial,
      }),
    (s) =>
      `${s.counts.NORMAL} NORMAL + ${s.counts.PNEUMONIA} PNEUMONIA` +
      (s.available ? ` of ${s.available.NORMAL + s.available.PNEUMONIA} real images available` : ''),
  );

  const gans = !withGan
    ? []
    : await Promise.all(
        labels.map(async (label) => {
          const gan = await stages.run(
            `gan:${label}`,
            () => gpu.trainGan({ subset: subset.subset, label, gan: config.gan, seed, reuse }),
            (g) =>
              `${g.trainingImages} images, final loss D ${g.finalLoss.discriminator.toFixed(3)} G ${g.finalLoss.generator.toFixed(3)}` +
              (g.resumedFromStep ? `, resumed at step ${g.resumedFromStep}` : ''),
          );
          const count = subset.counts[label] * config.protocol.syntheticPerReal;
          const synthetic = await stages.run(
            `synthesize:${label}`,
            () => gpu.synthesize({ checkpoint: gan.checkpoint, label, count, seed, reuse }),
            (s) => `${s.count} images`,
          );
          return {
            label,
            checkpoint: gan.checkpoint,
            samples: gan.samples,
            history: gan.history,
            synthetic: synthetic.images,
            syntheticCount: synthetic.count,
          };
        }),
      );

  const splits = (protocolSplit: 'split' | 'split:no-gan', synthetic: ArtifactRef[]) =>
    stages.run(
      protocolSplit,
      () => cpu.splitPool({ subset: subset.subset, synthetic, trainFraction: config.protocol.trainFraction, seed }),
      splitDetail,
    );
  const [pooledSplit, realSplit] = await Promise.all([
    withGan
      ? splits(
          'split',
          gans.map((g) => g.synthetic),
        )
      : undefined,
    noGan ? splits('split:no-gan', []) : undefined,
  ]);

  const tuneAndEvaluate = async (
    backbone: Backbone,
    split: SplitPoolOutput,
    suffix: string,
    tests: Array<{ protocol: Protocol; stage: string; test: ArtifactRef }>,
  ) => {
    const tuned = await models.fineTune(`fine-tune${suffix}:${backbone}`, split.split, backbone);
    return Promise.all(
      tests.map(async ({ protocol, stage, test }) => {
        const evaluated = await models.evaluate(`${stage}:${backbone}`, test, backbone, tuned.checkpoint);
        return {
          protocol,
          backbone,
          checkpoint: tuned.checkpoint,
          history: tuned.history,
          evaluation: evaluated.evaluation,
          metrics: evaluated.metrics,
        };
      }),
    );
  };
  const results = await Promise.all(
    backbones.flatMap((backbone) => [
      ...(pooledSplit
        ? [
            tuneAndEvaluate(backbone, pooledSplit, '', [
              ...(evaluations.includes('paper')
                ? [{ protocol: 'paper' as const, stage: 'evaluate', test: pooledSplit.split }]
                : []),
              ...(heldout ? [{ protocol: 'heldout' as const, stage: 'evaluate-heldout', test: heldout }] : []),
            ]),
          ]
        : []),
      ...(realSplit
        ? [
            tuneAndEvaluate(backbone, realSplit, '-no-gan', [
              { protocol: 'no-gan', stage: 'evaluate-no-gan', test: realSplit.split },
            ]),
          ]
        : []),
    ]),
  );

  // ---- Issue 11: common held-out ground, matched resolution, detectability, memorization ----
  const analysis = analyse
    ? await runTrialAnalysis(
        {
          config,
          seed,
          reuse,
          orchestrationTaskQueue: workflowInfo().taskQueue,
          gpuTaskQueue: input.gpuTaskQueue,
          heartbeatTimeoutSeconds: input.options?.heartbeatTimeoutSeconds,
          subset: subset.subset,
          gans: gans.map(({ label, checkpoint, synthetic }) => ({ label, checkpoint, synthetic })),
          pooledSplit: pooledSplit?.split,
          heldout,
          noGanModels: results
            .flat()
            .filter((e) => e.protocol === 'no-gan')
            .map(({ backbone, checkpoint, history }) => ({ backbone, checkpoint, history })),
          pretrained: input.pretrained,
        },
        stages,
      )
    : undefined;
  // ---- end of issue 11 ----

  // Let a final progress query observe the finished stages before the result is returned.
  await condition(() => true);
  const summary = (s: SplitPoolOutput | undefined) =>
    s ? { split: s.split, train: s.train, test: s.test } : undefined;
  return {
    trial: input.trial,
    seed,
    workflowId: workflowInfo().workflowId,
    subset: subset.subset,
    subsetCounts: subset.counts,
    pooledSplit: summary(pooledSplit),
    realSplit: summary(realSplit),
    gans,
    evaluations: [...results.flat(), ...(analysis?.evaluations ?? [])],
    matchedSplit: analysis?.matchedSplit,
    detectability: analysis?.detectability,
    memorization: analysis?.memorization,
    stageMillis: stages.millis(),
  };
}
