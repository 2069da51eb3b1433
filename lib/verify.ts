/**
 * `pneumogan verify`: checks everything a run recorded against everything else it recorded, so a
 * missing or altered artifact is found whichever records went with it:
 *
 * - the run index (shards and per-artifact entries) lists artifacts;
 * - the lineage batches the shards name (their sha256 is in the shard) record the same artifacts,
 *   with their inputs; each record must match its schema;
 * - the run's summary (`runs/<run>/summary.json`, the workflow's results) references artifacts;
 * - JSON artifacts that list images (image sets, subsets, splits, the dataset manifest) reference
 *   the images;
 * - `runs/<run>/report.md` and `summary.json` must equal a recorded report artifact.
 *
 * Every referenced artifact is downloaded and re-hashed. Unreadable entries are reported as
 * garbled, never thrown.
 */
import pLimit from 'p-limit';
import { z } from 'zod';
import { LineageRecordSchema, parseJson, readRunIndex, type LineageRecord, type RunIndex } from './lineage.js';
import { ArtifactRefSchema, assertSafeRunName, sha256Hex, type ArtifactRef, type ArtifactStore } from './storage.js';

export interface VerifyResult {
  /** Distinct artifacts downloaded and re-hashed. */
  checked: number;
  /** Index entries, lineage records and summary references read. */
  records: number;
  /** Artifacts whose bytes no longer hash to their recorded sha256 (lineage batches included). */
  corrupt: Array<{ key: string; kind: string; expected: string; actual: string }>;
  /** Referenced artifacts absent from the store, with what referenced them. */
  missing: Array<{ key: string; kind: string; referencedBy: string[] }>;
  /** Records that are not JSON or do not match their schema. */
  garbled: Array<{ key: string; problem: string }>;
  /** Records that disagree with each other (an artifact one lists and another lacks, two hashes for one key). */
  inconsistent: Array<{ key: string; problem: string }>;
}

export function verifyProblemCount(result: VerifyResult): number {
  return result.corrupt.length + result.missing.length + result.garbled.length + result.inconsistent.length;
}

export interface VerifyOptions {
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  concurrency?: number;
}

/** Kinds whose JSON lists image references that must belong to the run too. */
const CONTAINER_KINDS = new Set(['image-set', 'subset', 'split', 'dataset-manifest']);

interface Expected {
  ref: ArtifactRef;
  kind: string;
  referencedBy: Set<string>;
}

export async function verifyRun(
  store: ArtifactStore,
  runName: string,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  assertSafeRunName(runName);
  const result: VerifyResult = { checked: 0, records: 0, corrupt: [], missing: [], garbled: [], inconsistent: [] };
  const limit = pLimit(options.concurrency ?? 32);
  const index = await readRunIndex(store, runName);
  result.garbled.push(...index.garbled);

  // Every (key, sha256) pair any record names, with who names it.
  const expected = new Map<string, Map<string, Expected>>();
  const indexed = new Set<string>();
  const expect = (ref: ArtifactRef, kind: string, source: string) => {
    const byHash = expected.get(ref.key) ?? new Map<string, Expected>();
    expected.set(ref.key, byHash);
    const entry = byHash.get(ref.sha256) ?? { ref, kind, referencedBy: new Set() };
    entry.referencedBy.add(source);
    byHash.set(ref.sha256, entry);
  };
  const requireIndexed = (ref: ArtifactRef, kind: string, source: string) => {
    expect(ref, kind, source);
    if (!indexed.has(`${ref.key}#${ref.sha256}`)) {
      result.inconsistent.push({
        key: ref.key,
        problem: `${source} lists it (sha256 ${ref.sha256}), the run index does not`,
      });
    }
  };

  for (const { key, shard } of index.shards) {
    for (const { artifact, kind } of shard.entries) {
      expect(artifact, kind, `index ${key}`);
      indexed.add(`${artifact.key}#${artifact.sha256}`);
    }
  }
  for (const { key, entry } of index.single) {
    expect(entry.artifact, entry.kind, `index ${key}`);
    indexed.add(`${entry.artifact.key}#${entry.artifact.sha256}`);
  }
  result.records += index.shards.reduce((n, s) => n + s.shard.entries.length, 0) + index.single.length;
  if (result.records === 0 && index.garbled.length === 0) return result;

  const lineageInputs: Array<{ ref: ArtifactRef; source: string }> = [];
  await Promise.all([
    checkLineageBatches(store, index, result, requireIndexed, lineageInputs, limit),
    checkOneOffRecords(store, index, result, lineageInputs, limit),
    checkSummaryAndReport(store, runName, index, result, requireIndexed),
  ]);
  options.signal?.throwIfAborted();

  // Download and re-hash; containers add the images they list.
  let done = 0;
  const containers: Array<{ ref: ArtifactRef; kind: string; bytes: Buffer }> = [];
  const checkAll = async (entries: Expected[]) => {
    const total = done + entries.length;
    await Promise.all(
      entries.map((entry) =>
        limit(async () => {
          options.signal?.throwIfAborted();
          const bytes = await getIfPresent(store, entry.ref.key);
          if (!bytes) {
            result.missing.push({ key: entry.ref.key, kind: entry.kind, referencedBy: [...entry.referencedBy].sort() });
          } else {
            const actual = sha256Hex(bytes);
            if (actual !== entry.ref.sha256) {
              result.corrupt.push({ key: entry.ref.key, kind: entry.kind, expected: entry.ref.sha256, actual });
            } else if (CONTAINER_KINDS.has(entry.kind)) {
              containers.push({ ref: entry.ref, kind: entry.kind, bytes });
            }
          }
          result.checked += 1;
          options.onProgress?.(++done, total);
        }),
      ),
    );
  };
  const expectedEntries = () => [...expected.values()].flatMap((byHash) => [...byHash.values()]);
  checkKeyConsistency(expected, result);
  await checkAll(expectedEntries());

  const before = new Set(expectedEntries());
  for (const { ref, kind, bytes } of containers) {
    const parsed = parseJson(bytes, z.unknown());
    if (!parsed.ok) continue;
    for (const image of artifactRefsIn(parsed.value)) requireIndexed(image, 'image', `${kind} ${ref.key}`);
  }
  // Lineage inputs from outside the run (e.g. weights imported by another run) must exist too.
  for (const { ref, source } of lineageInputs) expect(ref, 'input', source);
  checkKeyConsistency(expected, result);
  await checkAll(expectedEntries().filter((e) => !before.has(e)));

  for (const list of [result.corrupt, result.missing, result.garbled, result.inconsistent]) {
    (list as Array<{ key: string }>).sort((a, b) => a.key.localeCompare(b.key));
  }
  result.inconsistent = dedupe(result.inconsistent);
  return result;
}

/** Lineage batches named by index shards: hash, schema, and the same artifacts as the shard. */
async function checkLineageBatches(
  store: ArtifactStore,
  index: RunIndex,
  result: VerifyResult,
  requireIndexed: (ref: ArtifactRef, kind: string, source: string) => void,
  lineageInputs: Array<{ ref: ArtifactRef; source: string }>,
  limit: ReturnType<typeof pLimit>,
): Promise<void> {
  const batches = new Map<string, { ref: ArtifactRef; shards: Array<RunIndex['shards'][number]> }>();
  for (const shard of index.shards) {
    const ref = shard.shard.lineage;
    if (!ref) continue;
    const entry = batches.get(`${ref.key}#${ref.sha256}`) ?? { ref, shards: [] };
    entry.shards.push(shard);
    batches.set(`${ref.key}#${ref.sha256}`, entry);
  }
  await Promise.all(
    [...batches.values()].map(({ ref, shards }) =>
      limit(async () => {
        const bytes = await getIfPresent(store, ref.key);
        if (!bytes) {
          result.missing.push({
            key: ref.key,
            kind: 'lineage-batch',
            referencedBy: shards.map((s) => `index ${s.key}`),
          });
          return;
        }
        const actual = sha256Hex(bytes);
        if (actual !== ref.sha256) {
          result.corrupt.push({ key: ref.key, kind: 'lineage-batch', expected: ref.sha256, actual });
        }
        const parsed = parseJson(bytes, z.object({ kind: z.literal('lineage-batch'), records: z.array(z.unknown()) }));
        if (!parsed.ok) {
          result.garbled.push({ key: ref.key, problem: parsed.problem });
          return;
        }
        const recorded = new Set<string>();
        for (const [i, raw] of parsed.value.records.entries()) {
          const record = LineageRecordSchema.safeParse(raw);
          if (!record.success) {
            result.garbled.push({ key: `${ref.key}#${i}`, problem: `lineage record ${i} does not match its schema` });
            continue;
          }
          result.records += 1;
          recorded.add(`${record.data.artifact.key}#${record.data.artifact.sha256}`);
          requireIndexed(record.data.artifact, record.data.kind, `lineage batch ${ref.key}`);
          addInputs(record.data, `lineage batch ${ref.key}`, lineageInputs);
        }
        for (const shard of shards) {
          for (const { artifact } of shard.shard.entries) {
            if (!recorded.has(`${artifact.key}#${artifact.sha256}`)) {
              result.inconsistent.push({
                key: artifact.key,
                problem: `the run index (${shard.key}) lists it (sha256 ${artifact.sha256}), its lineage batch ${ref.key} has no record of it`,
              });
            }
          }
        }
      }),
    ),
  );
  for (const { key, shard } of index.shards) {
    if (!shard.lineage) {
      result.inconsistent.push({ key, problem: 'this index shard names no lineage batch for its artifacts' });
    }
  }
}

/** Per-artifact entries (one-off records such as the report, and runs recorded before batches). */
async function checkOneOffRecords(
  store: ArtifactStore,
  index: RunIndex,
  result: VerifyResult,
  lineageInputs: Array<{ ref: ArtifactRef; source: string }>,
  limit: ReturnType<typeof pLimit>,
): Promise<void> {
  await Promise.all(
    index.single.map(({ entry }) =>
      limit(async () => {
        const keys = await store.list(`lineage/${entry.artifact.sha256}/`);
        if (keys.length === 0) {
          result.inconsistent.push({ key: entry.artifact.key, problem: 'listed for the run without a lineage record' });
        }
        for (const key of keys) {
          const bytes = await getIfPresent(store, key);
          if (!bytes) continue;
          const parsed = parseJson(bytes, LineageRecordSchema);
          if (!parsed.ok) result.garbled.push({ key, problem: parsed.problem });
          else if (parsed.value.artifact.sha256 !== entry.artifact.sha256) {
            result.inconsistent.push({
              key,
              problem: `records sha256 ${parsed.value.artifact.sha256}, not ${entry.artifact.sha256}`,
            });
          } else {
            result.records += 1;
            addInputs(parsed.value, `lineage record ${key}`, lineageInputs);
          }
        }
      }),
    ),
  );
}

function addInputs(record: LineageRecord, source: string, into: Array<{ ref: ArtifactRef; source: string }>): void {
  for (const input of record.inputs) into.push({ ref: input.ref, source });
  if (record.generated) into.push({ ref: record.generated.generator, source });
}

/** The workflow's results (summary.json) and the report must match what the run recorded. */
async function checkSummaryAndReport(
  store: ArtifactStore,
  runName: string,
  index: RunIndex,
  result: VerifyResult,
  requireIndexed: (ref: ArtifactRef, kind: string, source: string) => void,
): Promise<void> {
  const reports = new Set(
    [...index.shards.flatMap((s) => s.shard.entries), ...index.single.map((s) => s.entry)]
      .filter((e) => e.kind === 'report')
      .map((e) => e.artifact.sha256),
  );
  for (const name of ['summary.json', 'report.md']) {
    const key = `runs/${runName}/${name}`;
    const bytes = await getIfPresent(store, key);
    if (!bytes) continue;
    if (!reports.has(sha256Hex(bytes))) {
      result.inconsistent.push({
        key,
        problem: `its sha256 ${sha256Hex(bytes)} matches no report artifact recorded for the run (edited or replaced)`,
      });
    }
    if (name !== 'summary.json') continue;
    const parsed = parseJson(bytes, z.unknown());
    if (!parsed.ok) {
      result.garbled.push({ key, problem: parsed.problem });
      continue;
    }
    for (const ref of artifactRefsIn(parsed.value)) {
      result.records += 1;
      requireIndexed(ref, 'result', `the run's results (${key})`);
    }
  }
}

/** One key must mean one content: a content-addressed key names its sha256, and records agree. */
function checkKeyConsistency(expected: Map<string, Map<string, Expected>>, result: VerifyResult): void {
  for (const [key, byHash] of expected) {
    const named = /^cas\/[0-9a-f]{2}\/([0-9a-f]{64})\.[a-z]+$/.exec(key)?.[1];
    for (const { ref, referencedBy } of byHash.values()) {
      if (named && named !== ref.sha256) {
        result.inconsistent.push({
          key,
          problem: `${[...referencedBy].sort().join(', ')} give(s) sha256 ${ref.sha256}, the content-addressed key names ${named}`,
        });
      }
    }
    if (byHash.size > 1) {
      result.inconsistent.push({
        key,
        problem: `records disagree on its sha256: ${[...byHash.values()].map((e) => `${e.ref.sha256} (${[...e.referencedBy].sort().join(', ')})`).join(' vs ')}`,
      });
    }
  }
}

/** Every `{ key, sha256, bytes }` object inside a JSON value. */
export function artifactRefsIn(value: unknown): ArtifactRef[] {
  const refs: ArtifactRef[] = [];
  const visit = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') {
      const ref = ArtifactRefSchema.strict().safeParse(v);
      if (ref.success) refs.push(ref.data);
      else Object.values(v).forEach(visit);
    }
  };
  visit(value);
  return refs;
}

async function getIfPresent(store: ArtifactStore, key: string): Promise<Buffer | undefined> {
  try {
    return await store.getAt(key);
  } catch (err) {
    if ((err as { code?: string }).code === 'NoSuchKey') return undefined;
    throw err;
  }
}

function dedupe<T extends { key: string; problem: string }>(items: T[]): T[] {
  const seen = new Set<string>();
  return items.filter((i) => !seen.has(`${i.key}\u0000${i.problem}`) && seen.add(`${i.key}\u0000${i.problem}`));
}
