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
      protocol: z.enum(PROTOCOLS),
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
