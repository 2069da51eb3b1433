/**
 * What a reproduction produces, shared by the workflows (types only), the activities that make
 * it and the report (lib/report) that reads it: a trial's result, and the aggregation's input
 * and output. Zod schemas, since the aggregate activity validates what it receives.
 */
import { z } from 'zod';
import { ClassificationMetricsSchema } from '../lib/protocol/metrics.js';
import { ArtifactRefSchema } from '../lib/storage.js';
import { BACKBONES, CLASS_NAMES, PipelineConfigSchema, PROTOCOLS } from './schema.js';

export const ClassCounts = z.object({ NORMAL: z.number().int(), PNEUMONIA: z.number().int() });
export const SideCounts = z.object({
  images: ClassCounts,
  patients: ClassCounts,
  /** Real and GAN-made images on this side (absent in results recorded before it was counted). */
  origins: z.object({ real: z.number().int(), synthetic: z.number().int() }).optional(),
});
const Label = z.enum(CLASS_NAMES);
const Seed = z.number().int().min(0);

const SplitSummary = z.object({ split: ArtifactRefSchema, train: SideCounts, test: SideCounts });

// ---- Results of the analyses judging the paper's claim (issue 11) ----

/**
 * What a model was trained on and tested on: the configured protocols, plus the analyses'
 * evaluations. `no-gan-heldout`: the no-GAN models on the held-out set (common ground with
 * `heldout`); `matched`: models fine-tuned and tested on the resolution-matched pool.
 */
export const EVALUATION_KINDS = [...PROTOCOLS, 'no-gan-heldout', 'matched'] as const;
export type EvaluationKind = (typeof EVALUATION_KINDS)[number];

export const DetectabilityScores = z.object({
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
  /** Real images left for the trials to sample from once the held-out set was taken out. */
  poolCounts: ClassCounts.optional(),
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
