/**
 * The one schema that describes a reproduction. Presets (`presets.ts`) are values of it; the CLI,
 * the workflows and every activity speak this type. Anything the paper leaves unstated (image
 * sizes, optimisers, epochs, seeds, how GAN images get labels) is a field here with the default
 * written down in `presets.ts`.
 */
import { z } from 'zod';

export const CLASS_NAMES = ['NORMAL', 'PNEUMONIA'] as const;
export type ClassName = (typeof CLASS_NAMES)[number];

/** Must match `lib/models/backbones.ts`; kept here so the schema has no TensorFlow import. */
export const BACKBONES = ['alexnet', 'googlenet', 'squeezenet', 'resnet18'] as const;
export type Backbone = (typeof BACKBONES)[number];

export const PROTOCOLS = ['paper', 'heldout', 'no-gan'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

const positiveInt = z.number().int().positive();
const seed = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31 - 1);

// ---- Analyses that judge the paper's claim (issue 11); kept apart from the protocol fields. ----
export const AnalysisSchema = z
  .object({
    /**
     * Backbones also fine-tuned and tested on a resolution-matched pool: the real images pass
     * through the GAN's resolution (stored at gan.imageSize, as generated images are), so image
     * sharpness cannot give an image's origin away. Empty: not run.
     */
    matchedResolution: z
      .array(z.enum(BACKBONES))
      .refine((b) => new Set(b).size === b.length, 'matchedResolution backbones must not repeat'),
    /** Train a small real-vs-generated classifier on each pooled split and report its test accuracy. */
    detectability: z.boolean(),
    /** Nearest real training image of every generated image, at the GAN's resolution and in feature space. */
    memorization: z.boolean(),
    /** Patient-level bootstrap replicates behind each per-trial 95% interval. */
    bootstrapReplicates: z.number().int().min(100).max(100_000),
  })
  .strict();
export type Analysis = z.infer<typeof AnalysisSchema>;
export const DEFAULT_ANALYSIS: Analysis = {
  matchedResolution: [],
  detectability: true,
  memorization: true,
  bootstrapReplicates: 1000,
};
// ---- end of the issue-11 analysis block ----

export const DataSourceSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('synthetic'),
      /** Images drawn per class by the synthetic X-ray maker. */
      imagesPerClass: positiveInt,
      seed,
    })
    .strict(),
  z
    .object({
      kind: z.literal('folder'),
      /** A `chest_xray` archive root, one split of it, or any folder with NORMAL/ and PNEUMONIA/. */
      path: z.string().min(1),
    })
    .strict(),
  z
    .object({
      kind: z.literal('s3'),
      bucket: z.string().min(3),
      /** Key prefix laid out like the archive (`.../NORMAL/x.jpeg`). */
      prefix: z.string(),
    })
    .strict(),
]);
export type DataSource = z.infer<typeof DataSourceSchema>;

/** Where pretrained weights come from: a source string, or one with the file's sha256 pinned. */
export const WeightsSourceSchema = z.union([
  z.string().min(1),
  z
    .object({
      source: z.string().min(1),
      sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'a sha256 is 64 hex digits'),
    })
    .strict(),
]);
export type WeightsSource = z.infer<typeof WeightsSourceSchema>;

export const PipelineConfigSchema = z
  .object({
    /** Preset this config started from, for the report. */
    preset: z.string().min(1),
    data: z
      .object({
        source: DataSourceSchema,
        /** Side in pixels at which ingested images are stored (grayscale PNG); models resize from it. */
        storeSize: z.number().int().min(16).max(1024),
      })
      .strict(),
    protocol: z
      .object({
        /** One seed per trial; the trial count is their number (the paper averages three). */
        trialSeeds: z.array(seed).min(1).max(20),
        /**
         * Real images kept per trial, stratified by class, whole patients: exactly this many (the
         * paper: 624). Give this or subsetFraction, not both.
         */
        subsetSize: positiveInt.optional(),
        /** Alternatively, the fraction of the remaining real images kept per trial. */
        subsetFraction: z.number().gt(0).lte(1).optional(),
        /** Synthetic images per real image, per class (the paper: 9, so real + synthetic = 10x). */
        syntheticPerReal: z.number().int().min(0).max(100),
        /** Share of the pooled images used for training; the rest is the test set (paper: 0.8). */
        trainFraction: z.number().gt(0).lt(1),
        /**
         * Which evaluations to run. `paper`: the paper's protocol (real subset + GAN images pooled,
         * split, tested on the pooled 20%). `heldout`: the same models tested on real images that no
         * GAN or classifier saw. `no-gan`: each backbone fine-tuned on the real subset alone.
         */
        evaluations: z
          .array(z.enum(PROTOCOLS))
          .min(1)
          .refine((e) => new Set(e).size === e.length, 'evaluations must not repeat'),
        /**
         * Real images held out for `heldout`, per class, when the dataset has no `test` split (with
         * one, its test split is the held-out set). Fixed across trials: drawn once with heldoutSeed.
         */
        heldoutFraction: z.number().gt(0).lt(1),
        heldoutSeed: seed,
      })
      .strict()
      .refine((p) => (p.subsetSize === undefined) !== (p.subsetFraction === undefined), {
        message: 'give exactly one of subsetSize (an image count, the paper: 624) and subsetFraction',
        path: ['subsetSize'],
      }),
    gan: z
      .object({
        /** 64 is the classic DCGAN output; 32 keeps the same five layers for CPU smoke runs. */
        imageSize: z.union([z.literal(32), z.literal(64)]),
        latentDim: positiveInt,
        generatorWidth: positiveInt,
        discriminatorWidth: positiveInt,
        batchSize: positiveInt,
        steps: positiveInt,
        learningRate: z.number().positive(),
        beta1: z.number().min(0).lt(1),
        /** Steps between checkpoints written to S3 (and reported in heartbeats). */
        checkpointEvery: positiveInt,
      })
      .strict(),
    classifier: z
      .object({
        backbones: z
          .array(z.enum(BACKBONES))
          .min(1)
          .refine((b) => new Set(b).size === b.length, 'backbones must not repeat'),
        inputSize: z.number().int().min(32).max(512),
        /** Scales every channel count; 1 is the published architecture. */
        widthMultiplier: z.number().gt(0).lte(1),
        epochs: positiveInt,
        /**
         * Stops fine-tuning after this many batches in all, for bounded measurement runs of a large
         * preset (`--set classifier.maxSteps=20`); unset, every epoch runs in full.
         */
        maxSteps: positiveInt.optional(),
        batchSize: positiveInt,
        learningRate: z.number().positive(),
        dropout: z.number().min(0).lt(1),
        /**
         * ImageNet weights per backbone: a file path on the workers, an http(s) URL or s3://bucket/key
         * of a safetensors file with torchvision parameter names (see lib/models/pretrained.ts for how
         * to make one from published weights). Backbones without an entry start from random weights.
         * `{ source, sha256 }` also pins the file's hash. Local paths must lie in PNEUMOGAN_WEIGHTS_DIR
         * and plain http is refused (lib/models/weights-source.ts).
         */
        pretrained: z.partialRecord(z.enum(BACKBONES), WeightsSourceSchema),
        /** `features`: train only the new 2-class head; `none`: fine-tune every layer. */
        freeze: z.enum(['none', 'features']),
        /** Batches between checkpoints written to S3. */
        checkpointEvery: positiveInt,
      })
      .strict(),
    /** Analyses beside the protocols (issue 11); configs written before it get DEFAULT_ANALYSIS. */
    analysis: AnalysisSchema.default(DEFAULT_ANALYSIS),
  })
  .strict();

export type PipelineConfig = z.infer<typeof PipelineConfigSchema>;

/** A config error that names every offending field, e.g. `gan.imageSize: expected 32 or 64`. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function parsePipelineConfig(input: unknown, origin = 'config'): PipelineConfig {
  const result = PipelineConfigSchema.safeParse(input);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => `  - ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  throw new ConfigError(`Invalid pipeline ${origin}:\n${lines.join('\n')}`);
}
