/**
 * The trial's analyses that judge the paper's claim (issue 11), run after its protocols:
 *  - common ground: each no-GAN model also tested on the held-out real images, where the
 *    with-GAN models are tested (`no-gan-heldout`);
 *  - matched resolution: the real subset stored at the GAN's resolution, pooled with the same
 *    generated images, split, fine-tuned and tested (`matched`);
 *  - detectability: a small real-vs-generated classifier on each pooled split;
 *  - memorization: each generated image's nearest real training image, against held-out images.
 * Deterministic orchestration only; index.ts runs it behind `patched()` so runs recorded before
 * it existed replay unchanged.
 */
import type { EvaluationKind, SplitPoolOutput, TrialResult } from '../activities/types.js';
import type { Backbone, PipelineConfig } from '../pipelines/schema.js';
import type { ArtifactRef } from '../lib/storage.js';
import { cpuActivities, gpuActivities } from './activity-proxies.js';
import { modelStages, type StageRunner } from './model-stages.js';

export const ANALYSIS_PATCH = 'issue-11-analysis';

export interface TrialAnalysisInput {
  config: PipelineConfig;
  seed: number;
  reuse: boolean;
  orchestrationTaskQueue: string;
  gpuTaskQueue: string;
  heartbeatTimeoutSeconds?: number;
  subset: ArtifactRef;
  /** Each class's GAN and generated images (empty without the GAN protocols). */
  gans: Array<{ label: 'NORMAL' | 'PNEUMONIA'; checkpoint: ArtifactRef; synthetic: ArtifactRef }>;
  pooledSplit?: ArtifactRef;
  heldout?: ArtifactRef;
  /** The no-GAN models (protocol `no-gan`), to test on the held-out set too. */
  noGanModels: Array<{ backbone: Backbone; checkpoint: ArtifactRef; history: ArtifactRef }>;
  pretrained: Partial<Record<Backbone, ArtifactRef>>;
}

export type TrialAnalysis = Pick<TrialResult, 'matchedSplit' | 'detectability' | 'memorization'> & {
  evaluations: TrialResult['evaluations'];
};

/** The analysis stages a trial runs with this config, for its stage tracker. */
export function analysisStageNames(
  config: PipelineConfig,
  runs: { withGan: boolean; heldout: boolean; noGan: boolean },
): string[] {
  const analysis = config.analysis;
  const matched = runs.withGan ? (analysis?.matchedResolution ?? []) : [];
  return [
    ...(runs.noGan && runs.heldout ? config.classifier.backbones.map((b) => `evaluate-no-gan-heldout:${b}`) : []),
    ...(matched.length ? ['resample:matched', 'split:matched'] : []),
    ...matched.flatMap((b) => [`fine-tune-matched:${b}`, `evaluate-matched:${b}`]),
    ...(runs.withGan && analysis?.detectability
      ? ['detectability', ...(matched.length ? ['detectability:matched'] : [])]
      : []),
  ];
}

export async function runTrialAnalysis(input: TrialAnalysisInput, stages: StageRunner): Promise<TrialAnalysis> {
  const { config, seed, reuse } = input;
  const cpu = cpuActivities(input.orchestrationTaskQueue);
  const gpu = gpuActivities(input.gpuTaskQueue, input.heartbeatTimeoutSeconds);
  const models = modelStages(stages, gpu, { classifier: config.classifier, seed, reuse, pretrained: input.pretrained });
  const analysis = config.analysis;
  const synthetic = input.gans.map((g) => g.synthetic);
  const matchedBackbones = synthetic.length ? (analysis?.matchedResolution ?? []) : [];

  const evaluate = async (
    kind: EvaluationKind,
    stage: string,
    model: { backbone: Backbone; checkpoint: ArtifactRef; history: ArtifactRef },
    test: ArtifactRef,
  ) => {
    const evaluated = await models.evaluate(`${stage}:${model.backbone}`, test, model.backbone, model.checkpoint);
    return { protocol: kind, ...model, evaluation: evaluated.evaluation, metrics: evaluated.metrics };
  };

  const commonGround = input.heldout
    ? Promise.all(
        input.noGanModels.map((m) => evaluate('no-gan-heldout', 'evaluate-no-gan-heldout', m, input.heldout!)),
      )
    : Promise.resolve([]);

  const detect = (stage: string, split: ArtifactRef, variant: 'paper' | 'matched') =>
    stages
      .run(
        stage,
        () => gpu.detectability({ split, inputSize: config.classifier.inputSize, seed, reuse }),
        (d) =>
          `real vs generated: test accuracy ${(100 * d.accuracy).toFixed(1)}% (majority ${(100 * d.majorityAccuracy).toFixed(1)}%)`,
      )
      .then((d) => ({ variant, ...d }));

  const detectPaper =
    analysis?.detectability && input.pooledSplit ? detect('detectability', input.pooledSplit, 'paper') : undefined;

  let matchedSplit: SplitPoolOutput | undefined;
  let matchedEvaluations: TrialAnalysis['evaluations'] = [];
  let detectMatched: ReturnType<typeof detect> | undefined;
  if (matchedBackbones.length) {
    const resampled = await stages.run(
      'resample:matched',
      () => cpu.matchResolution({ subset: input.subset, size: config.gan.imageSize, reuse }),
      (r) => `${r.count} real images at ${config.gan.imageSize}px`,
    );
    const split = await stages.run('split:matched', () =>
      cpu.splitPool({
        subset: resampled.images,
        synthetic,
        trainFraction: config.protocol.trainFraction,
        seed,
      }),
    );
    matchedSplit = split;
    if (analysis?.detectability) detectMatched = detect('detectability:matched', split.split, 'matched');
    matchedEvaluations = await Promise.all(
      matchedBackbones.map(async (backbone) => {
        const tuned = await models.fineTune(`fine-tune-matched:${backbone}`, split.split, backbone);
        return evaluate(
          'matched',
          'evaluate-matched',
          { backbone, checkpoint: tuned.checkpoint, history: tuned.history },
          split.split,
        );
      }),
    );
  }

  const memorization = analysis?.memorization
    ? Promise.all(
        input.gans.map((g) =>
          stages.run(
            `memorization:${g.label}`,
            () =>
              gpu.memorization({
                subset: input.subset,
                label: g.label,
                checkpoint: g.checkpoint,
                synthetic: g.synthetic,
                heldout: input.heldout,
                seed,
                reuse,
              }),
            (m) =>
              `median nearest-training distance ${m.pixels.medianGenerated.toFixed(3)} (held-out real ${m.pixels.medianHeldout?.toFixed(3) ?? '—'}), ` +
              `near-copies ${m.pixels.nearCopyFraction === null ? '—' : `${(100 * m.pixels.nearCopyFraction).toFixed(1)}%`}`,
          ),
        ),
      )
    : undefined;

  const [noGanHeldout, memorized, ...detections] = await Promise.all([
    commonGround,
    memorization,
    detectPaper,
    detectMatched,
  ]);
  const summary = (s: SplitPoolOutput) => ({ split: s.split, train: s.train, test: s.test });
  return {
    evaluations: [...noGanHeldout, ...matchedEvaluations],
    matchedSplit: matchedSplit ? summary(matchedSplit) : undefined,
    detectability: analysis?.detectability ? detections.flatMap((d) => (d ? [d] : [])) : undefined,
    memorization: memorized,
  };
}
