/**
 * Lineage: for every artifact, what it was made from and by whom, and for every run, which
 * artifacts it produced or reused. At paper scale an activity records thousands of artifacts, so
 * records are written per activity, not per artifact:
 *
 * - `lineage/batches/<producer hash>.json`: every record of one activity execution (a
 *   {@link LineageBatch}); each artifact it wrote carries the batch's key as object metadata
 *   (`x-amz-meta-lineage`), so finding an artifact's record stays one HEAD and one (cached) GET.
 * - `runs/<run>/index/<producer hash>.json`: the run index shard of that activity: the artifacts
 *   with their kinds, and the reference (with sha256) of the lineage batch that records them.
 *
 * The producer hash covers the workflow and the activity id, not the attempt, so a retried
 * activity rewrites its own batch and shard instead of adding duplicates. One-off records
 * (`recordLineage`) and data written before batches keep the per-artifact layout
 * (`lineage/<sha256>/<producer hash>.json`, `runs/<run>/artifacts/<sha256>.json`), which every
 * reader still understands.
 */
import pLimit from 'p-limit';
import { z } from 'zod';
import { runNameFromWorkflowId } from './run-names.js';
import {
  ArtifactRefSchema,
  assertSafeRunName,
  canonicalJson,
  contentKey,
  sha256Hex,
  type ArtifactRef,
  type ArtifactStore,
} from './storage.js';

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

/** Object metadata (without the `x-amz-meta-` prefix) naming the lineage batch that records an artifact. */
export const LINEAGE_METADATA = 'lineage';

function producerHash(producer: Pick<Producer, 'workflowId' | 'activityId'>): string {
  return sha256Hex(`${producer.workflowId}\u0000${producer.activityId}`).slice(0, 32);
}

/** Key of a one-off (per-artifact) record. */
export function lineageKey(artifactSha256: string, producer: Producer): string {
  return `lineage/${artifactSha256}/${producerHash(producer)}.json`;
}

export function lineageBatchKey(producer: Pick<Producer, 'workflowId' | 'activityId'>): string {
  return `lineage/batches/${producerHash(producer)}.json`;
}

export const RunArtifactSchema = z.object({ artifact: ArtifactRefSchema, kind: z.enum(ARTIFACT_KINDS) });
export type RunArtifact = z.infer<typeof RunArtifactSchema>;

export const LineageBatchSchema = z.object({
  kind: z.literal('lineage-batch'),
  records: z.array(LineageRecordSchema),
});

export const RunIndexShardSchema = z.object({
  kind: z.literal('run-index'),
  workflowId: z.string(),
  activityId: z.string(),
  /** The lineage batch recording these artifacts (absent when they were reused, not produced, by a legacy memo). */
  lineage: ArtifactRefSchema.optional(),
  entries: z.array(RunArtifactSchema),
});
export type RunIndexShard = z.infer<typeof RunIndexShardSchema>;

/**
 * Where a trial's memorization audit says which lineage batch holds the nearest-neighbour records
 * of its generated images of one class: generated images name their synthesis batch in their
 * metadata, so the audit's later records need a way in that costs one read, not one object per
 * image. Undefined outside runs.
 */
export function nearestNeighbourPointerKey(trialWorkflowId: string, label: string): string | undefined {
  const runName = runOf(trialWorkflowId);
  return (
    runName &&
    `runs/${runName}/nearest-neighbours/${producerHash({ workflowId: trialWorkflowId, activityId: label })}.json`
  );
}

const NearestNeighbourPointerSchema = z.object({
  kind: z.literal('nearest-neighbour-pointer'),
  batch: ArtifactRefSchema,
});

export async function writeNearestNeighbourPointer(
  store: ArtifactStore,
  trialWorkflowId: string,
  label: string,
  batch: ArtifactRef,
): Promise<void> {
  const key = nearestNeighbourPointerKey(trialWorkflowId, label);
  if (key) await store.putAt(key, canonicalJson({ kind: 'nearest-neighbour-pointer', batch }), 'json');
}

/** The run a workflow id belongs to, validated as a key segment; undefined outside runs. */
function runOf(workflowId: string): string | undefined {
  const runName = runNameFromWorkflowId(workflowId);
  if (runName !== undefined) assertSafeRunName(runName);
  return runName;
}

export function runIndexShardKey(runName: string, producer: Pick<Producer, 'workflowId' | 'activityId'>): string {
  return `runs/${runName}/index/${producerHash(producer)}.json`;
}

/**
 * The lineage records of one activity execution, written as one batch and one run index shard.
 * Artifacts are written first, each naming the batch in its metadata ({@link objectMetadata});
 * {@link flush} then writes the batch and the shard (again after later records: each flush
 * rewrites both whole, so call it once after a bulk of artifacts).
 */
export class LineageBatch {
  private readonly records = new Map<string, LineageRecord>();
  private version = 0;
  private flushedVersion = 0;
  private flushed: ArtifactRef | undefined;
  private flushing: Promise<ArtifactRef | undefined> = Promise.resolve(undefined);
  readonly key: string;

  constructor(
    private readonly store: ArtifactStore,
    readonly producer: Producer,
  ) {
    this.key = lineageBatchKey(producer);
  }

  /** Metadata for each artifact this batch records. */
  get objectMetadata(): Record<string, string> {
    return { [LINEAGE_METADATA]: this.key };
  }

  get size(): number {
    return this.records.size;
  }

  add(record: Omit<LineageRecord, 'producer'>): void {
    this.records.set(`${record.artifact.sha256}/${record.kind}`, { ...record, producer: this.producer });
    this.version += 1;
  }

  /**
   * Writes the batch and, for artifacts of a run, the run's index shard; returns the batch's
   * reference. Flushes run one after another, and one with nothing new to write is free.
   */
  flush(): Promise<ArtifactRef | undefined> {
    // A failed flush (S3 unavailable) must not poison the next one: it rewrites everything anyway.
    this.flushing = this.flushing
      .catch(() => undefined)
      .then(async () => {
        if (this.records.size === 0 || this.flushedVersion === this.version) return this.flushed;
        const version = this.version;
        const records = [...this.records.values()];
        const bytes = canonicalJson({ kind: 'lineage-batch', records });
        await this.store.putAt(this.key, bytes, 'json');
        const batch = { key: this.key, sha256: sha256Hex(bytes), bytes: bytes.byteLength };
        await writeRunIndexShard(
          this.store,
          this.producer,
          records.map(({ artifact, kind }) => ({ artifact, kind })),
          batch,
        );
        this.flushed = batch;
        this.flushedVersion = version;
        return batch;
      });
    return this.flushing;
  }
}

/** Lists artifacts under the run of `producer.workflowId` (no-op outside runs), as one shard. */
export async function writeRunIndexShard(
  store: ArtifactStore,
  producer: Pick<Producer, 'workflowId' | 'activityId'>,
  entries: RunArtifact[],
  lineage: ArtifactRef | undefined,
): Promise<void> {
  const runName = runOf(producer.workflowId);
  if (!runName || entries.length === 0) return;
  const shard: RunIndexShard = {
    kind: 'run-index',
    workflowId: producer.workflowId,
    activityId: producer.activityId,
    lineage,
    entries,
  };
  await store.putAt(runIndexShardKey(runName, producer), canonicalJson(shard), 'json');
}

/**
 * A one-off record (the report): written per artifact unless this producer already recorded this
 * artifact (a retry), with a per-artifact entry in its run's index.
 */
export async function recordLineage(store: ArtifactStore, record: LineageRecord): Promise<boolean> {
  const written = await store.putIfAbsent(lineageKey(record.artifact.sha256, record.producer), canonicalJson(record));
  const runName = runOf(record.producer.workflowId);
  if (runName) {
    await store.putIfAbsent(
      `runs/${runName}/artifacts/${record.artifact.sha256}.json`,
      canonicalJson({ artifact: record.artifact, kind: record.kind }),
    );
  }
  return written;
}

/** Reads lineage batches once each (a generated image's sources share one ingest batch). */
export class LineageReader {
  private readonly batches = new Map<string, Promise<Map<string, LineageRecord[]>>>();

  constructor(private readonly store: ArtifactStore) {}

  /**
   * Every record of an artifact: from the batches already read, else from the batch its object
   * names, else (one-off records, data written before batches) under `lineage/<sha256>/`. Pass
   * the reference when known (saves finding the key).
   */
  async read(artifact: string | ArtifactRef): Promise<LineageRecord[]> {
    const sha256 = typeof artifact === 'string' ? artifact : artifact.sha256;
    // A batch already read often holds it (a generator's hundreds of source images share the
    // ingest batch that tracing the chain loaded): then no request at all.
    const loaded = await Promise.allSettled(this.batches.values());
    const known = loaded.flatMap((b) => (b.status === 'fulfilled' ? (b.value.get(sha256) ?? []) : []));
    if (known.length > 0) return known;
    const batchKey = await this.batchKeyOf(artifact);
    const batched = batchKey ? ((await this.batch(batchKey)).get(sha256) ?? []) : [];
    if (batched.length > 0) return batched;
    const keys = await this.store.list(`lineage/${sha256}/`);
    return Promise.all(
      keys.map(async (key) => LineageRecordSchema.parse(JSON.parse((await this.store.getAt(key)).toString('utf8')))),
    );
  }

  /**
   * The `nearest-neighbour` records of a generated image (written by its trial's memorization
   * audit), given its generation record; none when the audit did not run or has not yet.
   */
  async nearestNeighbours(generation: LineageRecord): Promise<LineageRecord[]> {
    if (!generation.generated) return [];
    const key = nearestNeighbourPointerKey(generation.producer.workflowId, generation.generated.label);
    const bytes = key && (await this.store.getAt(key).catch(() => undefined));
    if (!bytes) return [];
    const pointer = NearestNeighbourPointerSchema.parse(JSON.parse(bytes.toString('utf8')));
    const records = (await this.batch(pointer.batch.key)).get(generation.artifact.sha256) ?? [];
    return records.filter((r) => r.kind === 'nearest-neighbour');
  }

  private async batchKeyOf(artifact: string | ArtifactRef): Promise<string | undefined> {
    const keys =
      typeof artifact === 'string' ? ARTIFACT_EXTENSIONS.map((ext) => contentKey(artifact, ext)) : [artifact.key];
    const stats = await Promise.all(keys.map((key) => this.store.stat(key)));
    return stats.find((s) => s?.metadata[LINEAGE_METADATA])?.metadata[LINEAGE_METADATA];
  }

  private batch(key: string): Promise<Map<string, LineageRecord[]>> {
    let loaded = this.batches.get(key);
    if (!loaded) {
      loaded = (async () => {
        const bySha = new Map<string, LineageRecord[]>();
        const bytes = await this.store.getAt(key).catch((err: unknown) => {
          // An artifact written by an attempt that never flushed its batch has no record yet.
          if ((err as { code?: string }).code === 'NoSuchKey') return undefined;
          throw err;
        });
        if (!bytes) return bySha;
        for (const record of LineageBatchSchema.parse(JSON.parse(bytes.toString('utf8'))).records) {
          bySha.set(record.artifact.sha256, [...(bySha.get(record.artifact.sha256) ?? []), record]);
        }
        return bySha;
      })();
      this.batches.set(key, loaded);
    }
    return loaded;
  }
}

/** Extensions content-addressed artifacts are stored with (lib/storage.ts CONTENT_TYPES). */
const ARTIFACT_EXTENSIONS = ['png', 'json', 'safetensors', 'md', 'jpeg'];

export async function readLineage(store: ArtifactStore, artifact: string | ArtifactRef): Promise<LineageRecord[]> {
  return new LineageReader(store).read(artifact);
}

export interface RunIndex {
  /** Index shards (one per activity) with their keys. */
  shards: Array<{ key: string; shard: RunIndexShard }>;
  /** Per-artifact entries (one-off records, and runs recorded before shards). */
  single: Array<{ key: string; entry: RunArtifact }>;
  /** Entries that are not JSON or do not match their schema. */
  garbled: Array<{ key: string; problem: string }>;
}

/** Every index entry of a run (shards and per-artifact entries), read concurrently. */
export async function readRunIndex(store: ArtifactStore, runName: string): Promise<RunIndex> {
  assertSafeRunName(runName);
  const index: RunIndex = { shards: [], single: [], garbled: [] };
  const limit = pLimit(16);
  const [shardKeys, singleKeys] = await Promise.all([
    store.list(`runs/${runName}/index/`),
    store.list(`runs/${runName}/artifacts/`),
  ]);
  await Promise.all([
    ...shardKeys.map((key) =>
      limit(async () => {
        const parsed = parseJson(await store.getAt(key), RunIndexShardSchema);
        if (parsed.ok) index.shards.push({ key, shard: parsed.value });
        else index.garbled.push({ key, problem: parsed.problem });
      }),
    ),
    ...singleKeys.map((key) =>
      limit(async () => {
        const parsed = parseJson(await store.getAt(key), RunArtifactSchema);
        if (parsed.ok) index.single.push({ key, entry: parsed.value });
        else index.garbled.push({ key, problem: parsed.problem });
      }),
    ),
  ]);
  return index;
}

/** The distinct artifacts of a run index (by key). */
export function indexedArtifacts(index: RunIndex): RunArtifact[] {
  const byKey = new Map<string, RunArtifact>();
  for (const { shard } of index.shards) for (const entry of shard.entries) byKey.set(entry.artifact.key, entry);
  for (const { entry } of index.single) byKey.set(entry.artifact.key, entry);
  return [...byKey.values()];
}

/** JSON.parse + schema, as a result instead of an exception (for readers that report garbage). */
export function parseJson<T>(
  bytes: Buffer,
  schema: z.ZodType<T>,
): { ok: true; value: T } | { ok: false; problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return { ok: false, problem: `not JSON (${(err as Error).message})` };
  }
  const parsed = schema.safeParse(value);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : {
        ok: false,
        problem: `does not match its schema: ${z.prettifyError(parsed.error).split('\n').slice(0, 4).join('; ')}`,
      };
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
  artifact: string | ArtifactRef,
  options: { maxDepth?: number; maxInputs?: number; reader?: LineageReader } = {},
  depth = 0,
): Promise<LineageNode> {
  const maxDepth = options.maxDepth ?? 12;
  const maxInputs = options.maxInputs ?? 3;
  const reader = options.reader ?? new LineageReader(store);
  const records = await reader.read(artifact);
  const sha256 = typeof artifact === 'string' ? artifact : artifact.sha256;
  const node: LineageNode = { sha256, records, inputs: [], omittedInputs: 0 };
  if (depth >= maxDepth) return node;
  const seen = new Set<string>();
  const traced: Array<{ role: string; ref: ArtifactRef }> = [];
  for (const record of records) {
    for (const [index, input] of record.inputs.entries()) {
      if (seen.has(input.ref.sha256)) continue;
      seen.add(input.ref.sha256);
      if (index >= maxInputs) node.omittedInputs += 1;
      else traced.push(input);
    }
  }
  node.inputs = await Promise.all(
    traced.map(async ({ role, ref }) => ({
      role,
      node: await traceLineage(store, ref, { ...options, reader }, depth + 1),
    })),
  );
  return node;
}
