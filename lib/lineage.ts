/**
 * Lineage: for every artifact, what it was made from and by whom. Records live in S3 beside the
 * artifacts at `lineage/<artifact sha256>/<producer hash>.json`. The producer hash covers the
 * workflow, the activity and the artifact, not the attempt, so a retried activity that rewrites
 * the same artifact finds its record already there and does not add a duplicate.
 */
import pLimit from 'p-limit';
import { z } from 'zod';
import { runNameFromWorkflowId } from './run-names.js';
import { ArtifactRefSchema, sha256Hex, canonicalJson, type ArtifactRef, type ArtifactStore } from './storage.js';

export const ARTIFACT_KINDS = [
  'ingested-image',
  'dataset-manifest',
  'subset',
  'gan-checkpoint',
  'gan-samples',
  'training-history',
  'generated-image',
  'image-set',
  'split',
  'pretrained-weights',
  'classifier-checkpoint',
  'evaluation',
  'report',
  'figure',
  // Analyses judging the paper's claim (issue 11).
  'resampled-image',
  'detectability',
  'memorization-audit',
  'nearest-neighbour',
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
  generated: z
    .object({
      generator: ArtifactRefSchema,
      label: z.string(),
      latentSeed: z.number().int(),
      index: z.number().int(),
    })
    .optional(),
  recordedAt: z.string(),
});
export type LineageRecord = z.infer<typeof LineageRecordSchema>;

export function lineageKey(artifactSha256: string, producer: Producer): string {
  const producerHash = sha256Hex(`${producer.workflowId}\u0000${producer.activityId}`).slice(0, 32);
  return `lineage/${artifactSha256}/${producerHash}.json`;
}

/**
 * Writes the record unless this producer already recorded this artifact (a retry), and lists the
 * artifact in its run's index (`runs/<run>/artifacts/<sha256>.json`), which `verifyRun` reads.
 */
export async function recordLineage(store: ArtifactStore, record: LineageRecord): Promise<boolean> {
  const written = await store.putIfAbsent(lineageKey(record.artifact.sha256, record.producer), canonicalJson(record));
  await indexRunArtifact(store, record.producer.workflowId, record.artifact, record.kind);
  return written;
}

export const RunArtifactSchema = z.object({ artifact: ArtifactRefSchema, kind: z.enum(ARTIFACT_KINDS) });

/** Lists an artifact under the run that produced (or reused) it. */
export async function indexRunArtifact(
  store: ArtifactStore,
  workflowId: string,
  artifact: ArtifactRef,
  kind: ArtifactKind,
): Promise<void> {
  const runName = runNameFromWorkflowId(workflowId);
  if (runName)
    await store.putIfAbsent(`runs/${runName}/artifacts/${artifact.sha256}.json`, canonicalJson({ artifact, kind }));
}

export interface VerifyResult {
  checked: number;
  /** Artifacts whose bytes no longer hash to their recorded sha256. */
  corrupt: Array<{ key: string; kind: string; expected: string; actual: string }>;
  /** Artifacts listed for the run but absent from the store. */
  missing: Array<{ key: string; kind: string }>;
}

/** Re-hashes every artifact a run recorded and reports those that do not match. */
export async function verifyRun(
  store: ArtifactStore,
  runName: string,
  onProgress?: (done: number, total: number) => void,
): Promise<VerifyResult> {
  const entries = await store.list(`runs/${runName}/artifacts/`);
  const result: VerifyResult = { checked: 0, corrupt: [], missing: [] };
  const limit = pLimit(8);
  await Promise.all(
    entries.map((entryKey) =>
      limit(async () => {
        const { artifact, kind } = RunArtifactSchema.parse(JSON.parse((await store.getAt(entryKey)).toString('utf8')));
        if (!(await store.exists(artifact.key))) {
          result.missing.push({ key: artifact.key, kind });
        } else {
          const actual = sha256Hex(await store.getAt(artifact.key));
          if (actual !== artifact.sha256)
            result.corrupt.push({ key: artifact.key, kind, expected: artifact.sha256, actual });
        }
        result.checked += 1;
        onProgress?.(result.checked, entries.length);
      }),
    ),
  );
  result.corrupt.sort((a, b) => a.key.localeCompare(b.key));
  result.missing.sort((a, b) => a.key.localeCompare(b.key));
  return result;
}

export interface LineageNode {
  sha256: string;
  records: LineageRecord[];
  /** Inputs traced further (the first `maxInputs` of each record, deduplicated). */
  inputs: Array<{ role: string; node: LineageNode }>;
  /** Inputs not traced because a record had more than `maxInputs` of them. */
  omittedInputs: number;
}

/** The chain of records from an artifact back to its sources. */
export async function traceLineage(
  store: ArtifactStore,
  sha256: string,
  options: { maxDepth?: number; maxInputs?: number } = {},
  depth = 0,
): Promise<LineageNode> {
  const maxDepth = options.maxDepth ?? 12;
  const maxInputs = options.maxInputs ?? 3;
  const records = await readLineage(store, sha256);
  const node: LineageNode = { sha256, records, inputs: [], omittedInputs: 0 };
  if (depth >= maxDepth) return node;
  const seen = new Set<string>();
  for (const record of records) {
    for (const [index, input] of record.inputs.entries()) {
      if (seen.has(input.ref.sha256)) continue;
      seen.add(input.ref.sha256);
      if (index >= maxInputs) {
        node.omittedInputs += 1;
        continue;
      }
      node.inputs.push({ role: input.role, node: await traceLineage(store, input.ref.sha256, options, depth + 1) });
    }
  }
  return node;
}

export async function readLineage(store: ArtifactStore, artifactSha256: string): Promise<LineageRecord[]> {
  const keys = await store.list(`lineage/${artifactSha256}/`);
  return Promise.all(
    keys.map(async (key) => LineageRecordSchema.parse(JSON.parse((await store.getAt(key)).toString('utf8')))),
  );
}
