/**
 * The inputs and outputs of every activity: zod schemas (activities validate what they receive)
 * and the inferred types (workflows import these as types only). Payloads hold references and
 * small numbers, never pixels or tensors.
 */
import { z } from 'zod';
import { BACKBONES, CLASS_NAMES, PipelineConfigSchema, WeightsSourceSchema } from '../pipelines/schema.js';
import { ClassCounts, SideCounts } from '../pipelines/results.js';
import { ArtifactRefSchema } from '../lib/storage.js';
import { ClassificationMetricsSchema } from '../lib/protocol/metrics.js';

export {
  AggregateInputSchema,
  EVALUATION_KINDS,
  MemorizationOutputSchema,
  TrialResultSchema,
  type AggregateInput,
  type AggregateOutput,
  type DetectabilityOutput,
  type EvaluationKind,
  type MemorizationOutput,
  type TrialResult,
} from '../pipelines/results.js';

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

export const ImportWeightsInputSchema = z.object({ backbone: z.enum(BACKBONES), source: WeightsSourceSchema });
export type ImportWeightsInput = z.infer<typeof ImportWeightsInputSchema>;

export const SampleSubsetInputSchema = z
  .object({
    pool: ArtifactRefSchema,
    /** Exactly this many images (stratified), or `fraction` of each class. */
    size: z.number().int().positive().optional(),
    fraction: z.number().gt(0).lte(1).optional(),
    seed: Seed,
    trial: z.number().int().positive(),
  })
  .refine((i) => (i.size === undefined) !== (i.fraction === undefined), 'give exactly one of size and fraction');
export type SampleSubsetInput = z.infer<typeof SampleSubsetInputSchema>;
export interface SampleSubsetOutput {
  subset: z.infer<typeof ArtifactRefSchema>;
  counts: z.infer<typeof ClassCounts>;
  /** Real images the subset was drawn from (the held-out set already removed). */
  available?: z.infer<typeof ClassCounts>;
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
/** A stored image set (ImageSetSchema) and how many images it holds. */
export interface ImageSetOutput {
  images: z.infer<typeof ArtifactRefSchema>;
  count: number;
}
export type SynthesizeOutput = ImageSetOutput;

export const SplitPoolInputSchema = z.object({
  subset: ArtifactRefSchema,
  synthetic: z.array(ArtifactRefSchema),
  trainFraction: z.number().gt(0).lt(1),
  seed: Seed,
});
export type SplitPoolInput = z.infer<typeof SplitPoolInputSchema>;
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

// ---- Analyses judging the paper's claim (issue 11): inputs; results in pipelines/results.ts ----

export const MatchResolutionInputSchema = z.object({
  subset: ArtifactRefSchema,
  /** The GAN's image size: real images are stored at it, as generated ones are. */
  size: z.number().int().min(8),
  reuse: Reuse,
});
export type MatchResolutionInput = z.input<typeof MatchResolutionInputSchema>;
export type MatchResolutionOutput = ImageSetOutput;

export const DetectabilityInputSchema = z.object({
  split: ArtifactRefSchema,
  /** The size the backbones see images at (classifier.inputSize). */
  inputSize: z.number().int().min(16),
  seed: Seed,
  reuse: Reuse,
});
export type DetectabilityInput = z.input<typeof DetectabilityInputSchema>;
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
