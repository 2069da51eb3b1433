/**
 * The inputs and outputs of every activity: zod schemas (activities validate what they receive)
 * and the inferred types (workflows import these as types only). Payloads hold references and
 * small numbers, never pixels or tensors.
 */
import { z } from 'zod';
import { BACKBONES, CLASS_NAMES, PipelineConfigSchema, PROTOCOLS } from '../pipelines/schema.js';
import { ArtifactRefSchema } from '../lib/storage.js';
import { ClassificationMetricsSchema } from '../lib/protocol/metrics.js';

const ClassCounts = z.object({ NORMAL: z.number().int(), PNEUMONIA: z.number().int() });
const Label = z.enum(CLASS_NAMES);
const Seed = z.number().int().min(0);
/** false forces a step to recompute even when an identical step already completed. */
const Reuse = z.boolean().default(true);

export const IngestInputSchema = z.object({ config: PipelineConfigSchema });
export type IngestInput = z.infer<typeof IngestInputSchema>;
export interface IngestOutput {
  manifest: z.infer<typeof ArtifactRefSchema>;
  source: string;
  counts: z.infer<typeof ClassCounts>;
  patients: z.infer<typeof ClassCounts>;
  duplicates: number;
  /** Near-duplicate pairs found, and how many of them merged groups that file names kept apart. */
  nearDuplicates: { pairs: number; linkingGroups: number; crossClass: number };
  skipped: number;
}

export const PartitionInputSchema = z.object({
  manifest: ArtifactRefSchema,
  protocol: PipelineConfigSchema.shape.protocol,
});
export type PartitionInput = z.infer<typeof PartitionInputSchema>;
export interface PartitionOutput {
  /** Real images trials sample their subsets from. */
  pool: z.infer<typeof ArtifactRefSchema>;
  poolCounts: z.infer<typeof ClassCounts>;
  /** Real images no GAN or classifier sees, for the `heldout` evaluation (absent when it is not run). */
  heldout?: {
    images: z.infer<typeof ArtifactRefSchema>;
    counts: z.infer<typeof ClassCounts>;
    patients: z.infer<typeof ClassCounts>;
    source: string;
  };
}

export const ImportWeightsInputSchema = z.object({ backbone: z.enum(BACKBONES), source: z.string().min(1) });
export type ImportWeightsInput = z.infer<typeof ImportWeightsInputSchema>;

export const SampleSubsetInputSchema = z.object({
  pool: ArtifactRefSchema,
  fraction: z.number().gt(0).lte(1),
  seed: Seed,
  trial: z.number().int().positive(),
});
export type SampleSubsetInput = z.infer<typeof SampleSubsetInputSchema>;
export interface SampleSubsetOutput {
  subset: z.infer<typeof ArtifactRefSchema>;
  counts: z.infer<typeof ClassCounts>;
}

export const TrainGanInputSchema = z.object({
  subset: ArtifactRefSchema,
  label: Label,
  gan: PipelineConfigSchema.shape.gan,
  seed: Seed,
  reuse: Reuse,
});
export type TrainGanInput = z.input<typeof TrainGanInputSchema>;
export interface TrainGanOutput {
  checkpoint: z.infer<typeof ArtifactRefSchema>;
  samples: z.infer<typeof ArtifactRefSchema>;
  history: z.infer<typeof ArtifactRefSchema>;
  trainingImages: number;
  finalLoss: { discriminator: number; generator: number };
  /** Step the attempt that finished started from (0 unless it resumed from a checkpoint). */
  resumedFromStep: number;
}

export const SynthesizeInputSchema = z.object({
  checkpoint: ArtifactRefSchema,
  label: Label,
  count: z.number().int().min(0),
  seed: Seed,
  reuse: Reuse,
});
export type SynthesizeInput = z.input<typeof SynthesizeInputSchema>;
export interface SynthesizeOutput {
  images: z.infer<typeof ArtifactRefSchema>;
  count: number;
}

export const SplitPoolInputSchema = z.object({
  subset: ArtifactRefSchema,
  synthetic: z.array(ArtifactRefSchema),
  trainFraction: z.number().gt(0).lt(1),
  seed: Seed,
});
export type SplitPoolInput = z.infer<typeof SplitPoolInputSchema>;
const SideCounts = z.object({ images: ClassCounts, patients: ClassCounts });
export interface SplitPoolOutput {
  split: z.infer<typeof ArtifactRefSchema>;
  train: z.infer<typeof SideCounts>;
  test: z.infer<typeof SideCounts>;
}

export const FineTuneInputSchema = z.object({
  split: ArtifactRefSchema,
  backbone: z.enum(BACKBONES),
  classifier: PipelineConfigSchema.shape.classifier,
  seed: Seed,
  pretrained: ArtifactRefSchema.optional(),
  reuse: Reuse,
});
export type FineTuneInput = z.input<typeof FineTuneInputSchema>;
export interface FineTuneOutput {
  checkpoint: z.infer<typeof ArtifactRefSchema>;
  history: z.infer<typeof ArtifactRefSchema>;
  finalLoss: number;
  resumedFromBatch: number;
}

/** `test` is a split (its test side is used) or an image set (all of it). */
export const EvaluateInputSchema = z.object({
  test: ArtifactRefSchema,
  checkpoint: ArtifactRefSchema,
  backbone: z.enum(BACKBONES),
  classifier: PipelineConfigSchema.shape.classifier,
  reuse: Reuse,
});
export type EvaluateInput = z.input<typeof EvaluateInputSchema>;
export interface EvaluateOutput {
  evaluation: z.infer<typeof ArtifactRefSchema>;
  metrics: z.infer<typeof ClassificationMetricsSchema>;
}

const SplitSummary = z.object({ split: ArtifactRefSchema, train: SideCounts, test: SideCounts });

// ---- Analyses judging the paper's claim (issue 11) ----

/**
 * What a model was trained on and tested on: the configured protocols, plus the analyses'
 * evaluations. `no-gan-heldout`: the no-GAN models on the held-out set (common ground with
 * `heldout`); `matched`: models fine-tuned and tested on the resolution-matched pool.
 */
export const EVALUATION_KINDS = [...PROTOCOLS, 'no-gan-heldout', 'matched'] as const;
export type EvaluationKind = (typeof EVALUATION_KINDS)[number];

export const MatchResolutionInputSchema = z.object({
  subset: ArtifactRefSchema,
  /** The GAN's image size: real images are stored at it, as generated ones are. */
  size: z.number().int().min(8),
  reuse: Reuse,
});
export type MatchResolutionInput = z.input<typeof MatchResolutionInputSchema>;
export interface MatchResolutionOutput {
  images: z.infer<typeof ArtifactRefSchema>;
  count: number;
}

export const DetectabilityInputSchema = z.object({
  split: ArtifactRefSchema,
  /** The size the backbones see images at (classifier.inputSize). */
  inputSize: z.number().int().min(16),
  seed: Seed,
  reuse: Reuse,
});
export type DetectabilityInput = z.input<typeof DetectabilityInputSchema>;
const DetectabilityScores = z.object({
  accuracy: z.number(),
  balancedAccuracy: z.number().nullable(),
  auc: z.number().nullable(),
  /** Accuracy of always answering the majority origin of the training side. */
  majorityAccuracy: z.number(),
  trainImages: z.number().int(),
  testImages: z.number().int(),
});
export type DetectabilityOutput = z.infer<typeof DetectabilityScores> & {
  evaluation: z.infer<typeof ArtifactRefSchema>;
};

export const MemorizationInputSchema = z.object({
  /** The trial's real subset: the GAN of `label` was trained on its images of that class. */
  subset: ArtifactRefSchema,
  label: Label,
  checkpoint: ArtifactRefSchema,
  synthetic: ArtifactRefSchema,
  heldout: ArtifactRefSchema.optional(),
  seed: Seed,
  reuse: Reuse,
});
export type MemorizationInput = z.input<typeof MemorizationInputSchema>;
const SpaceSummary = z.object({
  medianGenerated: z.number(),
  medianHeldout: z.number().nullable(),
  nearCopyThreshold: z.number().nullable(),
  nearCopyFraction: z.number().nullable(),
  diversity: z.object({ generated: z.number(), training: z.number() }),
});
export const MemorizationOutputSchema = z.object({
  label: Label,
  audit: ArtifactRefSchema,
  /** PNG: the 8 generated images closest to a training image (top row) above those images. */
  closestPairs: ArtifactRefSchema,
  generatedImages: z.number().int(),
  trainingImages: z.number().int(),
  heldoutImages: z.number().int(),
  pixels: SpaceSummary,
  features: SpaceSummary,
});
export type MemorizationOutput = z.infer<typeof MemorizationOutputSchema>;

const TrialDetectability = DetectabilityScores.extend({
  variant: z.enum(['paper', 'matched']),
  evaluation: ArtifactRefSchema,
});

// ---- end of the issue-11 analysis types ----

/** What a trial workflow returns to the parent. */
export const TrialResultSchema = z.object({
  trial: z.number().int().positive(),
  seed: Seed,
  workflowId: z.string(),
  subset: ArtifactRefSchema,
  subsetCounts: ClassCounts,
  /** The paper's split of real + synthetic images (absent when only `no-gan` runs). */
  pooledSplit: SplitSummary.optional(),
  /** The split of the real subset alone, for `no-gan`. */
  realSplit: SplitSummary.optional(),
  /** The resolution-matched pooled split (analysis.matchedResolution). */
  matchedSplit: SplitSummary.optional(),
  /** Real-vs-generated classifiers' test scores per pooled split (analysis.detectability). */
  detectability: z.array(TrialDetectability).optional(),
  /** Nearest-training-image audit of each class's generated images (analysis.memorization). */
  memorization: z.array(MemorizationOutputSchema).optional(),
  gans: z.array(
    z.object({
      label: Label,
      checkpoint: ArtifactRefSchema,
      samples: ArtifactRefSchema,
      history: ArtifactRefSchema,
      synthetic: ArtifactRefSchema,
      syntheticCount: z.number().int(),
    }),
  ),
  evaluations: z.array(
    z.object({
      protocol: z.enum(EVALUATION_KINDS),
      backbone: z.enum(BACKBONES),
      checkpoint: ArtifactRefSchema,
      history: ArtifactRefSchema,
      evaluation: ArtifactRefSchema,
      metrics: ClassificationMetricsSchema,
    }),
  ),
  /** Wall time of each stage in milliseconds (workflow time, so it replays identically). */
  stageMillis: z.record(z.string(), z.number()),
});
export type TrialResult = z.infer<typeof TrialResultSchema>;

export const AggregateInputSchema = z.object({
  runName: z.string().min(1),
  config: PipelineConfigSchema,
  dataset: z.object({
    manifest: ArtifactRefSchema,
    source: z.string(),
    counts: ClassCounts,
    patients: ClassCounts,
    duplicates: z.number().int(),
    // Optional: runs ingested before near-duplicate detection existed have no count.
    nearDuplicates: z
      .object({ pairs: z.number().int(), linkingGroups: z.number().int(), crossClass: z.number().int() })
      .optional(),
    skipped: z.number().int(),
  }),
  heldout: z
    .object({ images: ArtifactRefSchema, counts: ClassCounts, patients: ClassCounts, source: z.string() })
    .optional(),
  trials: z.array(TrialResultSchema).min(1),
});
export type AggregateInput = z.infer<typeof AggregateInputSchema>;
export interface AggregateOutput {
  summary: z.infer<typeof ArtifactRefSchema>;
  report: z.infer<typeof ArtifactRefSchema>;
  /** Stable keys under `runs/<runName>/` where the report and its figures are also written. */
  reportKey: string;
  summaryKey: string;
  figureKeys: string[];
}
