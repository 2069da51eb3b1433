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
  /** Patient the image belongs to, from file names like `person123_bacteria_456.jpeg`; null when unknown. */
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

/** `person123_bacteria_456.jpeg` -> `person123`; names without a patient number give null. */
export function patientIdFromFileName(fileName: string): string | null {
  const match = /^(person\d+)_/i.exec(fileName);
  return match ? match[1]!.toLowerCase() : null;
}
