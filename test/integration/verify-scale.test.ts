/**
 * `verify` and `lineage` on the artifacts of one paper-size trial (5,216 ingested images, 2 x 2,808
 * generated ones, the subset, the GAN checkpoints, the image sets, the split and the report),
 * recorded through the activities' own ArtifactRecorder against the embedded S3 server, with
 * stand-in bytes instead of real images so it builds in seconds. Then every kind of damage verify
 * must find, injected at once: a missing object, a missing index entry, an artifact edited
 * together with its index entry, a corrupted lineage record, an edited report.md and garbled
 * index entries. No Temporal server is needed.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ArtifactRecorder, type ActivityDeps } from '../../activities/shared.js';
import { lineageReport } from '../../cli/inspect.js';
import type { ImageSet, LabeledImage } from '../../lib/data/manifest.js';
import {
  LineageBatchSchema,
  readRunIndex,
  recordLineage,
  RunIndexShardSchema,
  type LineageRecord,
} from '../../lib/lineage.js';
import { canonicalJson, contentKey, sha256Hex, type ArtifactRef, type ArtifactStore } from '../../lib/storage.js';
import { verifyProblemCount, verifyRun } from '../../lib/verify.js';
import { runInActivity } from '../../bench/activity-harness.js';
import { startScratchS3 } from '../../lib/infra/scratch-s3.js';

const RUN = 'paper-trial';
const TRIAL = `pneumogan-${RUN}/trial-1`;
const INGESTED = 5216;
const PER_CLASS = 2808;

let s3: Awaited<ReturnType<typeof startScratchS3>>;
let store: ArtifactStore;
let deps: ActivityDeps;
const built: { generated: LabeledImage[]; synthetic: ArtifactRef[]; report: ArtifactRef } = {
  generated: [],
  synthetic: [],
  report: undefined as unknown as ArtifactRef,
};

/** Distinct stand-in bytes for image `i` of a group (real PNG content is irrelevant to storage). */
function imageBytes(group: string, i: number): Buffer {
  const bytes = Buffer.alloc(1200, i % 241);
  bytes.writeUInt32BE(i, 0);
  bytes.write(group, 4);
  return bytes;
}

async function inActivity<T>(
  workflowId: string,
  activityType: string,
  activityId: string,
  body: (r: ArtifactRecorder) => Promise<T>,
) {
  return (
    await runInActivity({ workflowId, activityType, activityId }, async () => {
      const recorder = new ArtifactRecorder(deps);
      const result = await body(recorder);
      await recorder.flush();
      return result;
    })
  ).result;
}

/** Stores `count` images 16 at a time (their records go into the activity's batch, flushed at its end). */
async function putImages(count: number, put: (i: number) => Promise<ArtifactRef>): Promise<ArtifactRef[]> {
  const refs: ArtifactRef[] = new Array<ArtifactRef>(count);
  for (let start = 0; start < count; start += 16) {
    await Promise.all(
      Array.from({ length: Math.min(16, count - start) }, async (_, k) => (refs[start + k] = await put(start + k))),
    );
  }
  return refs;
}

before(async () => {
  s3 = await startScratchS3();
  store = s3.store;
  deps = { store, computeBackend: 'none', codeVersion: 'test', workerIdentity: 'test' };
  const started = performance.now();

  const real = await inActivity(`pneumogan-${RUN}`, 'ingestDataset', '1', async (recorder) => {
    const refs = await putImages(INGESTED, (i) =>
      recorder.put(
        imageBytes('real', i),
        'png',
        'ingested-image',
        [],
        { source: `folder/NORMAL/IM-${i}.jpeg` },
        undefined,
        {
          flush: false,
        },
      ),
    );
    const images: LabeledImage[] = refs.map((image, i) => ({
      image,
      label: i % 4 === 0 ? 'NORMAL' : 'PNEUMONIA',
      origin: 'real',
      patientId: `person${i}`,
    }));
    const manifest = await recorder.putJson(
      { kind: 'dataset-manifest', images },
      'dataset-manifest',
      refs.map((ref) => ({ role: 'image', ref })),
      {},
    );
    return { images, manifest };
  });
  const subset = await inActivity(TRIAL, 'sampleSubset', 'subset', (recorder) =>
    recorder.putJson(
      { kind: 'image-set', purpose: 'subset', images: real.images.slice(0, 624) } satisfies ImageSet,
      'subset',
      [{ role: 'pool', ref: real.manifest }],
      {},
    ),
  );
  for (const label of ['NORMAL', 'PNEUMONIA'] as const) {
    const checkpoint = await inActivity(TRIAL, 'trainGan', `gan-${label}`, (recorder) =>
      recorder.put(
        Buffer.from(`generator ${label}`),
        'safetensors',
        'gan-checkpoint',
        [{ role: 'subset', ref: subset }],
        {
          label,
        },
      ),
    );
    const set = await inActivity(TRIAL, 'synthesize', `synthesize-${label}`, async (recorder) => {
      const refs = await putImages(PER_CLASS, (index) =>
        recorder.put(
          imageBytes(label, index),
          'png',
          'generated-image',
          [{ role: 'generator', ref: checkpoint }],
          { label },
          { generator: checkpoint, label, latentSeed: 1000 + index, index },
          { flush: false },
        ),
      );
      const images: LabeledImage[] = refs.map((image) => ({ image, label, origin: 'synthetic', patientId: null }));
      built.generated.push(...images);
      return recorder.putJson(
        { kind: 'image-set', purpose: label, images } satisfies ImageSet,
        'image-set',
        [{ role: 'generator', ref: checkpoint }],
        { label },
      );
    });
    built.synthetic.push(set);
  }
  const split = await inActivity(TRIAL, 'splitPool', 'split', (recorder) =>
    recorder.putJson(
      { kind: 'split', train: built.generated.slice(0, 4992), test: built.generated.slice(4992) },
      'split',
      built.synthetic.map((ref) => ({ role: 'synthetic', ref })),
      {},
    ),
  );
  // The report as lib/report/write.ts writes it: content-addressed with one-off records, and at runs/<run>/.
  const summaryValue = {
    kind: 'reproduction-summary',
    runName: RUN,
    trials: [{ subset, split, synthetic: built.synthetic }],
  };
  await runInActivity({ workflowId: `pneumogan-${RUN}`, activityType: 'aggregateReport' }, async () => {
    const producer = {
      workflowId: `pneumogan-${RUN}`,
      runId: 'r',
      activity: 'aggregateReport',
      activityId: 'report',
      attempt: 1,
      worker: 'test',
      codeVersion: 'test',
      computeBackend: 'none',
    };
    const summary = await store.putJson(summaryValue);
    built.report = await store.putContent(Buffer.from('# report\n'), 'md');
    for (const artifact of [summary, built.report]) {
      await recordLineage(store, { artifact, kind: 'report', inputs: [], params: {}, producer, recordedAt: 'now' });
    }
    await store.putAt(`runs/${RUN}/summary.json`, canonicalJson(summaryValue), 'json');
    await store.putAt(`runs/${RUN}/report.md`, Buffer.from('# report\n'), 'md');
  });
  console.log(`# built one paper-size trial's artifacts in ${((performance.now() - started) / 1000).toFixed(1)} s`);
});

after(async () => {
  await s3?.stop();
});

test(
  'a clean paper-size trial verifies clean, with progress throughout and cancellation honoured',
  { timeout: 240_000 },
  async () => {
    const progress: number[] = [];
    const started = performance.now();
    const result = await verifyRun(store, RUN, { onProgress: () => progress.push(performance.now()) });
    const seconds = (performance.now() - started) / 1000;
    console.log(`# verify: ${result.checked} artifacts, ${result.records} records in ${seconds.toFixed(1)} s`);
    assert.equal(verifyProblemCount(result), 0, JSON.stringify(result).slice(0, 2000));
    assert.equal(result.checked, INGESTED + 2 * PER_CLASS + 9, 'every artifact of the trial was re-hashed');
    const gaps = progress.map((t, i) => t - (progress[i - 1] ?? started));
    assert.ok(
      Math.max(...gaps.slice(1)) < 5000,
      `progress reported at most 5 s apart (longest ${Math.max(...gaps.slice(1))} ms)`,
    );

    const abort = new AbortController();
    let seen = 0;
    const cancelledAt = await verifyRun(store, RUN, {
      signal: abort.signal,
      onProgress: () => {
        if (++seen === 500) abort.abort(new Error('cancelled by the test'));
      },
    }).then(
      () => assert.fail('verify should stop when cancelled'),
      (err: unknown) => {
        assert.match(String(err), /cancelled by the test/);
        return seen;
      },
    );
    assert.ok(cancelledAt < 600, `verify stopped right after cancellation (${cancelledAt} artifacts)`);
  },
);

test('lineage of one generated image is fast and names its generator, subset and real sources', async () => {
  const image = built.generated[4000]!.image;
  const started = performance.now();
  const lines = await lineageReport(store, image.sha256);
  const seconds = (performance.now() - started) / 1000;
  console.log(`# lineage: ${lines.length} lines in ${seconds.toFixed(2)} s`);
  assert.match(lines[0]!, new RegExp(`^generated-image ${image.key}`));
  assert.ok(lines.some((l) => /generated: class PNEUMONIA, latent seed \d+, index \d+/.test(l)));
  assert.ok(lines.some((l) => l.includes('<- subset: subset')));
  assert.ok(
    lines.some((l) => l.includes('folder/NORMAL/IM-1.jpeg')),
    'real source images with their files',
  );
  assert.ok(seconds < 10, `lineage took ${seconds} s`);
});

test('verify finds every injected fault, whichever records went with it', { timeout: 240_000 }, async () => {
  const index = await readRunIndex(store, RUN);
  const synthShard = index.shards.find((s) => s.shard.activityId === 'synthesize-PNEUMONIA')!;
  const entries = synthShard.shard.entries;
  const [deleted, unindexed, edited] = [entries[10]!.artifact, entries[20]!.artifact, entries[30]!.artifact];

  // 1. An object deleted (its index entry and lineage record stay).
  await store.client.removeObject(store.bucket, deleted.key);
  // 2 + 3. One index entry removed; another artifact edited together with its index entry.
  const editedBytes = Buffer.concat([await store.getAt(edited.key), Buffer.from('edited')]);
  const editedRef = {
    key: contentKey(sha256Hex(editedBytes), 'png'),
    sha256: sha256Hex(editedBytes),
    bytes: editedBytes.length,
  };
  await store.putAt(editedRef.key, editedBytes);
  await store.client.removeObject(store.bucket, edited.key);
  const shard = RunIndexShardSchema.parse(JSON.parse((await store.getAt(synthShard.key)).toString('utf8')));
  shard.entries = shard.entries
    .filter((e) => e.artifact.key !== unindexed.key)
    .map((e) => (e.artifact.key === edited.key ? { ...e, artifact: editedRef } : e));
  await store.putAt(synthShard.key, canonicalJson(shard));
  // 4. One lineage record altered (still valid JSON and schema) in the ingest batch.
  const ingestShard = index.shards.find(
    (s) => s.shard.activityId === '1' && s.shard.workflowId === `pneumogan-${RUN}`,
  )!;
  const batchKey = ingestShard.shard.lineage!.key;
  const batch = LineageBatchSchema.parse(JSON.parse((await store.getAt(batchKey)).toString('utf8')));
  (batch.records[5] as LineageRecord).params.source = 'folder/NORMAL/forged.jpeg';
  await store.putAt(batchKey, canonicalJson(batch));
  // 5. report.md edited.
  await store.putAt(`runs/${RUN}/report.md`, Buffer.from('# report (edited)\n'));
  // 6. Garbled index entries: a per-artifact entry and a shard.
  await store.putAt(`runs/${RUN}/artifacts/${'0'.repeat(64)}.json`, Buffer.from('{"artifact": '));
  await store.putAt(`runs/${RUN}/index/garbled.json`, Buffer.from('not json'));

  const result = await verifyRun(store, RUN);
  const mentions = (list: Array<{ key: string }>, key: string) => list.some((f) => f.key === key);
  assert.ok(mentions(result.missing, deleted.key), 'deleted object is missing');
  assert.ok(
    result.inconsistent.some((f) => f.key === unindexed.key && /run index does not/.test(f.problem)),
    'unindexed artifact found through its lineage record and image set',
  );
  assert.ok(mentions(result.missing, edited.key), 'the edited artifact: its original is missing');
  assert.ok(
    result.inconsistent.some((f) => f.key === edited.key && /run index does not/.test(f.problem)),
    'the edited artifact: lineage and image set still name the original',
  );
  assert.ok(
    result.inconsistent.some((f) => f.key === editedRef.key && /no record of it/.test(f.problem)),
    'the edited artifact: its new index entry has no lineage record',
  );
  assert.ok(
    result.corrupt.some((f) => f.key === batchKey && f.kind === 'lineage-batch'),
    'the altered lineage record is caught by its batch hash',
  );
  assert.ok(
    result.inconsistent.some((f) => f.key === `runs/${RUN}/report.md`),
    'edited report.md matches no recorded report',
  );
  assert.ok(mentions(result.garbled, `runs/${RUN}/artifacts/${'0'.repeat(64)}.json`), 'garbled per-artifact entry');
  assert.ok(mentions(result.garbled, `runs/${RUN}/index/garbled.json`), 'garbled shard');
  assert.ok(!mentions(result.corrupt, built.report.key), 'the recorded report itself is intact');
});
