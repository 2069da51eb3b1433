/**
 * Storage safety and self-healing against the embedded S3 server: key validation in the store
 * and the server, corrupt objects replaced on write, non-retryable corruption errors, memo hits
 * that verify their outputs, ingestion's cross-class duplicates, report downloads.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { memoized, type ActivityDeps } from '../../activities/shared.js';
import { downloadReport } from '../../cli/launch.js';
import { ingestDataset } from '../../lib/data/ingest.js';
import { CorruptArtifactError, InputError, NON_RETRYABLE_TYPES } from '../../lib/errors.js';
import { encodeGrayPng } from '../../lib/images.js';
import { startLocalS3Server, type LocalS3Server } from '../../lib/infra/s3-server.js';
import { ArtifactStore, assertSafeKey, assertSafeRunName, sha256Hex } from '../../lib/storage.js';
import { runInActivity } from '../../bench/activity-harness.js';

let server: LocalS3Server;
let directory: string;
let store: ArtifactStore;

before(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-storage-'));
  server = await startLocalS3Server({ directory: path.join(directory, 's3') });
  store = new ArtifactStore({
    endpoint: server.endpoint,
    accessKey: server.accessKey,
    secretKey: server.secretKey,
    bucket: 'storage-test',
    region: server.region,
  });
});

after(async () => {
  try {
    await server.stop();
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

/** Overwrites an object with other bytes and no sha256 metadata, as a crashed or foreign writer would. */
async function tamper(key: string, bytes: Buffer): Promise<void> {
  await store.client.putObject(store.bucket, key, bytes, bytes.length);
}

test('keys and run names: relative, no "." or ".." or empty segments', () => {
  for (const key of ['cas/ab/x.png', 'runs/r1/report.md', 'lineage/batches/a.json']) assertSafeKey(key);
  assertSafeKey('runs/r1/', 'prefix');
  for (const key of ['', '/etc/passwd', 'runs/../x', 'runs/./x', 'runs//x', 'runs/x/', 'a\\b', 'a/..']) {
    assert.throws(() => assertSafeKey(key), InputError, key);
  }
  for (const name of ['smoke-1', 'paper.v2_a']) assertSafeRunName(name);
  for (const name of ['', '..', '../x', 'a/b', '.hidden', 'a b'])
    assert.throws(() => assertSafeRunName(name), InputError, name);
});

test('the store refuses unsafe keys before any request', async () => {
  await assert.rejects(store.putAt('runs/../../escape.txt', Buffer.from('x')), /"\.\." path segment/);
  await assert.rejects(store.getAt('/abs'), /is absolute/);
  await assert.rejects(store.list('runs/../'), InputError);
});

test('the local S3 server refuses a key with ../ instead of writing outside its folder', async () => {
  await store.ensureBucket();
  for (const raw of ['/storage-test/a/../../../escape.txt', '/storage-test/a/%2e%2e/%2e%2e/%2e%2e/escape2.txt']) {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        { host: server.host, port: server.port, method: 'PUT', path: raw, headers: { 'content-length': 1 } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end('x');
    });
    assert.equal(status, 400, raw);
  }
  assert.ok(!existsSync(path.join(directory, 'escape.txt._S3rver_object')));
  assert.ok(!existsSync(path.join(directory, 'escape2.txt._S3rver_object')));
  assert.deepEqual((await readdir(directory)).sort(), ['s3']);
});

/** Starts a raw PUT of `length` bytes to `key` in the test bucket; the body is written by the caller. */
function startPut(key: string, length: number): { request: http.ClientRequest; status: Promise<number> } {
  const request = http.request({
    host: server.host,
    port: server.port,
    method: 'PUT',
    path: `/storage-test/${key}`,
    headers: { 'content-length': length },
  });
  const status = new Promise<number>((resolve, reject) => {
    request.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    request.on('error', reject);
  });
  return { request, status };
}

/** Resolves once `predicate` holds, checking as files change; rejects after `ms`. */
async function until(predicate: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Whether the server has started writing an upload to `key`: a file of its own beside the object
 * (atomic writes), or (a server that writes in place) an object file of another size than before.
 */
async function uploadBegun(key: string, sizeBefore: number): Promise<boolean> {
  if ((await partialUploads(key)).length > 0) return true;
  const object = path.join(directory, 's3', 'storage-test', `${key}._S3rver_object`);
  const size = await stat(object).then(
    (s) => s.size,
    () => -1,
  );
  return size !== sizeBefore;
}

const partialUploads = async (key: string) => {
  const folder = path.join(directory, 's3', 'storage-test', path.dirname(key));
  const names = await readdir(folder).catch(() => [] as string[]);
  return names.filter((name) => name.includes('.partial-'));
};

test('overlapping writes of one key leave one whole version, never a mix (the local S3 server writes atomically)', async () => {
  await store.ensureBucket();
  const key = 'runs/overlap/index/shard.json';
  const long = Buffer.from(`${JSON.stringify({ entries: Array.from({ length: 4000 }, (_, i) => i) })}\n`);
  const short = Buffer.from(`${JSON.stringify({ entries: [1, 2, 3] })}\n`);
  // The long upload starts first and is still streaming when the short one completes.
  const slow = startPut(key, long.length);
  slow.request.write(long.subarray(0, 1000));
  await until(() => uploadBegun(key, -1), 'the long upload to begin');
  await store.putAt(key, short, 'json');
  assert.deepEqual(await store.getAt(key), short, 'the completed write is readable at once');
  slow.request.end(long.subarray(1000));
  assert.equal(await slow.status, 200);
  // Last to finish wins, as on S3; what matters is that the object is one version, whole.
  assert.deepEqual(await store.getAt(key), long);
  assert.deepEqual(await partialUploads(key), []);
});

test('an upload cut off mid-body leaves the previous version in place', async () => {
  await store.ensureBucket();
  const key = 'runs/cut/index/shard.json';
  const before = Buffer.from('{"version":1}\n');
  await store.putAt(key, before, 'json');
  const cut = startPut(key, 100_000);
  cut.status.catch(() => {}); // the socket is destroyed below: no response comes
  cut.request.write(Buffer.alloc(50_000, 120));
  await until(() => uploadBegun(key, before.length), 'the upload to begin');
  cut.request.destroy();
  await until(async () => (await partialUploads(key)).length === 0, 'the server to drop the cut upload');
  assert.deepEqual(await store.getAt(key), before);
});

test('a write replaces a truncated or altered object, small (blind write) or large (stat first)', async () => {
  for (const size of [3_000, 600_000]) {
    const bytes = Buffer.alloc(size, 7);
    bytes.write(`payload ${size}`);
    const ref = await store.putContent(bytes, 'bin');
    assert.equal(await store.checkContent(ref), 'ok');
    assert.equal((await store.stat(ref.key))?.sha256, ref.sha256, 'the sha256 travels as object metadata');

    await tamper(ref.key, bytes.subarray(0, size / 2));
    assert.equal(await store.checkContent(ref), 'corrupt', 'truncated: size differs');
    await store.putContent(bytes, 'bin');
    assert.equal(sha256Hex(await store.getAt(ref.key)), ref.sha256, 'the truncated object was replaced');

    const altered = Buffer.from(bytes);
    altered[10] = altered[10]! ^ 1;
    await tamper(ref.key, altered);
    assert.equal(await store.checkContent(ref), 'corrupt', 'same size without metadata: re-hashed');
    await store.putContent(bytes, 'bin');
    assert.equal(await store.checkContent(ref), 'ok');

    await tamper(ref.key, bytes);
    assert.equal(await store.checkContent(ref), 'ok', 'right bytes written without metadata (older data) still verify');
  }
});

test('reading a corrupt input fails with a non-retryable error that says what to do', async () => {
  const ref = await store.putContent(Buffer.from('the real bytes'), 'bin');
  await tamper(ref.key, Buffer.from('other bytes!!!'));
  const err = await store.get(ref).then(
    () => assert.fail('expected a CorruptArtifactError'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CorruptArtifactError);
  assert.ok(NON_RETRYABLE_TYPES.includes(err.name));
  assert.match(err.message, /Relaunch the run/);
});

test('a memo hit whose output was damaged recomputes it; an intact one is reused', async () => {
  const deps: ActivityDeps = { store, computeBackend: 'none', codeVersion: 'test', workerIdentity: 'test' };
  let runs = 0;
  const input: { reuse: boolean; n: number } = { reuse: true, n: 1 };
  const step = (workflowId: string) =>
    runInActivity({ workflowId, activityType: 'memoTest' }, () =>
      memoized(deps, input, async (recorder) => {
        runs += 1;
        return recorder.put(Buffer.from('memo output'), 'bin', 'evaluation', [], {});
      }),
    );
  const { result: first } = await step('pneumogan-memo-a/trial-1');
  await step('pneumogan-memo-b/trial-1');
  assert.equal(runs, 1, 'intact output reused');
  await tamper(first.key, Buffer.from('memo outpu'));
  const { result: again } = await step('pneumogan-memo-c/trial-1');
  assert.equal(runs, 2, 'damaged output recomputed');
  assert.deepEqual(again, first);
  assert.equal(await store.checkContent(first), 'ok', 'and rewritten');
});

test('a byte-identical image under both classes is an InputError naming both files', async () => {
  const folder = path.join(directory, 'both-classes');
  const png = await encodeGrayPng({ size: 8, pixels: new Uint8Array(64).fill(90) });
  const other = await encodeGrayPng({ size: 8, pixels: new Uint8Array(64).fill(30) });
  for (const [dir, name, bytes] of [
    ['NORMAL', 'IM-0001-0001.png', png],
    ['NORMAL', 'IM-0002-0001.png', other],
    ['PNEUMONIA', 'person1_bacteria_1.png', png],
  ] as const) {
    await mkdir(path.join(folder, dir), { recursive: true });
    await writeFile(path.join(folder, dir, name), bytes);
  }
  await assert.rejects(
    ingestDataset({ source: { kind: 'folder', path: folder }, storeSize: 8, store }),
    (err: unknown) =>
      err instanceof InputError &&
      err.message.includes('NORMAL/IM-0001-0001.png') &&
      err.message.includes('PNEUMONIA/person1_bacteria_1.png'),
  );
});

test('report downloads stay inside the output folder and skip the run index', async () => {
  await store.putAt('runs/dl/report.md', Buffer.from('# report'));
  await store.putAt('runs/dl/figures/a.png', Buffer.from('png'));
  await store.putAt('runs/dl/index/abc.json', Buffer.from('{}'));
  const out = path.join(directory, 'out');
  assert.equal(await downloadReport(store, 'dl', out), path.join(out, 'dl', 'report.md'));
  assert.deepEqual((await readdir(path.join(out, 'dl'))).sort(), ['figures', 'report.md']);
  await assert.rejects(downloadReport(store, '../dl', out), InputError);
});
