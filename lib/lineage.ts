/**
 * Lineage: for every artifact, what it was made from and by whom. Records live in S3 beside the
 * artifacts at `lineage/<artifact sha256>/<producer hash>.json`. The producer hash covers the
 * workflow, the activity and the artifact, not the attempt, so a retried activity that rewrites
 * the same artifact finds its record already there and does not add a duplicate.
 */
import { z } from 'zod';
import { ArtifactRefSchema, sha256Hex, canonicalJson, type ArtifactRef, type ArtifactStore } from './storage.js';

export const ARTIFACT_KINDS = [
  'ingested-image', 'dataset-manifest', 'subset', 'gan-checkpoint', 'gan-samples', 'training-history',
  'generated-image', 'image-set', 'split', 'classifier-checkpoint', 'evaluation', 'report', 'figure',
] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

export const ProducerSchema = z.object({
  workflowId: z.string(),
  runId: z.string(),
  activity: z.string(),
  activityId: z.string(),
  attempt: z.number().int(),
  worker: z.string(),
  codeVersion: z.string(),
  computeBackend: z.string(),
});
export type Producer = z.infer<typeof ProducerSchema>;

export const LineageRecordSchema = z.object({
  artifact: ArtifactRefSchema,
  kind: z.enum(ARTIFACT_KINDS),
  inputs: z.array(z.object({ role: z.string(), ref: ArtifactRefSchema })),
  params: z.record(z.string(), z.unknown()),
  producer: ProducerSchema,
  /** For generated images: which generator, class, latent seed and index made it. */
  generated: z.object({
    generator: ArtifactRefSchema,
    label: z.string(),
    latentSeed: z.number().int(),
    index: z.number().int(),
  }).optional(),
  recordedAt: z.string(),
});
export type LineageRecord = z.infer<typeof LineageRecordSchema>;

export function lineageKey(artifactSha256: string, producer: Producer): string {
  const producerHash = sha256Hex(`${producer.workflowId}\u0000${producer.activityId}`).slice(0, 32);
  return `lineage/${artifactSha256}/${producerHash}.json`;
}

/** Writes the record unless this producer already recorded this artifact (a retry). */
export async function recordLineage(store: ArtifactStore, record: LineageRecord): Promise<boolean> {
  return store.putIfAbsent(lineageKey(record.artifact.sha256, record.producer), canonicalJson(record));
}

export async function readLineage(store: ArtifactStore, artifactSha256: string): Promise<LineageRecord[]> {
  const keys = await store.list(`lineage/${artifactSha256}/`);
  return Promise.all(keys.map(async (key) => LineageRecordSchema.parse(JSON.parse((await store.getAt(key)).toString('utf8')))));
}

export type LineageInputs = Array<{ role: string; ref: ArtifactRef }>;
