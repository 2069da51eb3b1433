/**
 * The JSON documents that describe image sets. They are stored content-addressed in S3 and
 * workflows pass only their references.
 */
import { z } from 'zod';
import { CLASS_NAMES } from '../../pipelines/schema.js';
import { ArtifactRefSchema } from '../storage.js';

export const ClassNameSchema = z.enum(CLASS_NAMES);

/** One image any step can train or test on. */
export const LabeledImageSchema = z.object({
  image: ArtifactRefSchema,
  label: ClassNameSchema,
  origin: z.enum(['real', 'synthetic']),
  /**
   * The group the image must share every boundary with: its patient or imaging series from the
   * file name (patientIdFromFileName), merged with the groups of its near-duplicates (ids joined
   * by `+`, see lib/data/near-duplicates.ts); null when unknown (synthetic images).
   */
  patientId: z.string().nullable(),
});
export type LabeledImage = z.infer<typeof LabeledImageSchema>;

export const RealImageSchema = LabeledImageSchema.extend({
  origin: z.literal('real'),
  /** Path (or S3 key) the image was read from, relative to the dataset root. */
  source: z.string(),
  sourceSha256: z.string(),
  /** The archive split folder it came from (`train`, `val`, `test`), or `unsplit`. */
  split: z.string(),
  originalWidth: z.number().int().positive(),
  originalHeight: z.number().int().positive(),
  /** 64-bit DCT perceptual hash of the stored image, 16 hex digits. */
  perceptualHash: z.string().regex(/^[0-9a-f]{16}$/),
});
export type RealImage = z.infer<typeof RealImageSchema>;

const ClassCountsSchema = z.object({ NORMAL: z.number().int(), PNEUMONIA: z.number().int() });
export type ClassCounts = z.infer<typeof ClassCountsSchema>;

export const DatasetManifestSchema = z.object({
  kind: z.literal('dataset-manifest'),
  source: z.string(),
  storeSize: z.number().int(),
  images: z.array(RealImageSchema),
  /** Byte-identical copies found again (the archive nests `chest_xray/chest_xray/`): ingested once. */
  duplicates: z.array(z.object({ path: z.string(), duplicateOf: z.string() })),
  /** Near-duplicate pairs (source paths); `linkedGroups`: the pair merged two groups that names kept apart. */
  nearDuplicates: z.array(
    z.object({
      a: z.string(),
      b: z.string(),
      distance: z.number().int(),
      correlation: z.number(),
      linkedGroups: z.boolean(),
    }),
  ),
  nearDuplicateRule: z.object({ candidateBits: z.number().int(), minCorrelation: z.number() }),
  /** Files that are not images of a class (`__MACOSX` debris, stray files), with why. */
  skipped: z.array(z.object({ path: z.string(), reason: z.string() })),
  counts: ClassCountsSchema,
  patients: ClassCountsSchema,
});
export type DatasetManifest = z.infer<typeof DatasetManifestSchema>;

/** A set of images with a purpose (a trial's subset, a GAN's output, a split side). */
export const ImageSetSchema = z.object({
  kind: z.literal('image-set'),
  purpose: z.string(),
  images: z.array(LabeledImageSchema),
});
export type ImageSet = z.infer<typeof ImageSetSchema>;

export const SplitSchema = z.object({
  kind: z.literal('split'),
  seed: z.number().int(),
  trainFraction: z.number(),
  train: z.array(LabeledImageSchema),
  test: z.array(LabeledImageSchema),
});
export type Split = z.infer<typeof SplitSchema>;

export function countByClass(images: readonly { label: string }[]): ClassCounts {
  const counts: ClassCounts = { NORMAL: 0, PNEUMONIA: 0 };
  for (const image of images) counts[image.label as keyof ClassCounts] += 1;
  return counts;
}

export function patientsByClass(images: readonly { label: string; patientId: string | null }[]): ClassCounts {
  const seen = { NORMAL: new Set<string>(), PNEUMONIA: new Set<string>() };
  for (const image of images) if (image.patientId) seen[image.label as keyof ClassCounts].add(image.patientId);
  return { NORMAL: seen.NORMAL.size, PNEUMONIA: seen.PNEUMONIA.size };
}

export function nearDuplicateCounts(manifest: Pick<DatasetManifest, 'nearDuplicates' | 'images'>) {
  const labelOf = new Map(manifest.images.map((i) => [i.source, i.label]));
  return {
    pairs: manifest.nearDuplicates.length,
    linkingGroups: manifest.nearDuplicates.filter((p) => p.linkedGroups).length,
    crossClass: manifest.nearDuplicates.filter((p) => labelOf.get(p.a) !== labelOf.get(p.b)).length,
  };
}

/**
 * The patient (or imaging series) a file belongs to, from the archive's names:
 * `person123_bacteria_456.jpeg` -> `person123` (PNEUMONIA; N is the patient),
 * `IM-0491-0001-0002.jpeg` -> `IM-0491` and `NORMAL2-IM-1345-0001.jpeg` -> `NORMAL2-IM-1345`
 * (NORMAL; XXXX is the series, and the archive holds several films of one series). The two NORMAL
 * naming schemes come from different batches, so `IM-0491` and `NORMAL2-IM-0491` stay distinct.
 * Names that follow neither scheme give null.
 */
export function patientIdFromFileName(fileName: string): string | null {
  const person = /^(person\d+)_/i.exec(fileName);
  if (person) return person[1]!.toLowerCase();
  const series = /^((?:NORMAL2-)?IM-\d+)-\d+/i.exec(fileName);
  return series ? series[1]!.toUpperCase() : null;
}
