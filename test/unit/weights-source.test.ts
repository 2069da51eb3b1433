import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { InputError } from '../../lib/errors.js';
import { writeSafetensors } from '../../lib/safetensors.js';
import { checkWeightsFile, readWeightsSource, type WeightsPolicy } from '../../lib/models/weights-source.js';
import { ArtifactStore } from '../../lib/storage.js';
import { startScratchS3 } from '../../lib/infra/scratch-s3.js';

let s3: Awaited<ReturnType<typeof startScratchS3>>;
let dir: string;
let outside: string;
let policy: WeightsPolicy;
/** A file whose tensor names are SqueezeNet's (the names are what the import checks). */
const squeezenet = writeSafetensors([
  { name: 'features.0.weight', dtype: 'F32', shape: [2, 3, 3, 3], data: new Float32Array(54) },
  { name: 'features.3.squeeze.weight', dtype: 'F32', shape: [1, 2, 1, 1], data: new Float32Array(2) },
]);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

before(async () => {
  s3 = await startScratchS3('weights');
  dir = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-weights-'));
  outside = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-outside-'));
  await writeFile(path.join(dir, 'squeezenet.safetensors'), squeezenet);
  await writeFile(path.join(outside, 'secret.safetensors'), squeezenet);
  await symlink(path.join(outside, 'secret.safetensors'), path.join(dir, 'link.safetensors'));
  policy = { allowedDir: dir, maxBytes: 10_000, timeoutMs: 10_000 };
  await s3.store.ensureBucket();
  await s3.store.putAt('w/squeezenet.safetensors', squeezenet);
});

after(async () => {
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

const read = (source: string, extra: Partial<Parameters<typeof readWeightsSource>[2]> = {}) =>
  readWeightsSource(s3.store, source, { policy, ...extra });

async function rejectsInput(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof InputError, `an InputError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

test('weights are read from the allowed folder (relative or absolute) and from s3://, with progress', async () => {
  const seen: number[] = [];
  const local = await read('squeezenet.safetensors', { onProgress: (done) => seen.push(done) });
  assert.equal(sha256(local), sha256(squeezenet));
  assert.equal(seen.at(-1), squeezenet.byteLength, 'progress reaches the file size');
  assert.equal(sha256(await read(path.join(dir, 'squeezenet.safetensors'))), sha256(squeezenet));
  assert.equal(sha256(await read('s3://weights/w/squeezenet.safetensors')), sha256(squeezenet));
  checkWeightsFile(local, 'squeezenet', 'squeezenet.safetensors');
});

test('local files outside the allowed folder are refused, through .., absolute paths and symlinks alike', async () => {
  await rejectsInput(read('../' + path.basename(outside) + '/secret.safetensors'), /outside PNEUMOGAN_WEIGHTS_DIR/);
  await rejectsInput(read(path.join(outside, 'secret.safetensors')), /outside PNEUMOGAN_WEIGHTS_DIR/);
  await rejectsInput(read('link.safetensors'), /outside PNEUMOGAN_WEIGHTS_DIR/);
  await rejectsInput(read('/etc/passwd'), /outside PNEUMOGAN_WEIGHTS_DIR/);
  await rejectsInput(
    readWeightsSource(s3.store, 'squeezenet.safetensors', { policy: { ...policy, allowedDir: undefined } }),
    /set PNEUMOGAN_WEIGHTS_DIR/,
  );
  await rejectsInput(read('missing.safetensors'), /Cannot read pretrained weights/);
});

test('plain http and other schemes are refused', async () => {
  for (const source of ['http://example.com/w.safetensors', 'ftp://example.com/w', 'file:///etc/passwd'])
    await rejectsInput(read(source), /only https:\/\/, s3:\/\/ and local files/);
});

test('a file over the size cap is refused, locally and on S3', async () => {
  const small = { ...policy, maxBytes: 100 };
  await rejectsInput(
    readWeightsSource(s3.store, 'squeezenet.safetensors', { policy: small }),
    /exceed the 100-byte cap.*PNEUMOGAN_WEIGHTS_MAX_BYTES/,
  );
  await rejectsInput(
    readWeightsSource(s3.store, 's3://weights/w/squeezenet.safetensors', { policy: small }),
    /exceed the 100-byte cap/,
  );
});

test('a sha256 pin is checked', async () => {
  await read('squeezenet.safetensors', { sha256: sha256(squeezenet) });
  await rejectsInput(read('squeezenet.safetensors', { sha256: '0'.repeat(64) }), /config pins 0{64}/);
});

test('a source that never answers times out with a retryable error', async () => {
  const silent = net.createServer(() => {});
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const sockets = new Set<net.Socket>();
  silent.on('connection', (s) => sockets.add(s));
  try {
    const port = (silent.address() as net.AddressInfo).port;
    const hanging = new ArtifactStore({ ...s3.settings, endpoint: `http://127.0.0.1:${port}` });
    const started = Date.now();
    await assert.rejects(
      readWeightsSource(hanging, 's3://weights/w/squeezenet.safetensors', { policy: { ...policy, timeoutMs: 300 } }),
      (err: unknown) => {
        assert.ok(!(err instanceof InputError), 'a timeout is retryable');
        assert.match((err as Error).message, /took longer than 0.3 s \(PNEUMOGAN_WEIGHTS_TIMEOUT_S\)/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 5_000);
  } finally {
    for (const s of sockets) s.destroy();
    silent.close();
  }
});

test('a cancelled read stops with the cancellation reason', async () => {
  const controller = new AbortController();
  controller.abort(new Error('cancelled by the workflow'));
  await assert.rejects(read('squeezenet.safetensors', { signal: controller.signal }), /cancelled by the workflow/);
});

test('files that are not safetensors of the named backbone are refused before storing', () => {
  assert.throws(
    () => checkWeightsFile(new TextEncoder().encode('<html>not found</html>'), 'squeezenet', 'w.safetensors'),
    (err: unknown) => err instanceof InputError && /w.safetensors is not a valid safetensors file/.test(err.message),
  );
  assert.throws(
    () => checkWeightsFile(squeezenet, 'resnet18', 'squeezenet.safetensors'),
    (err: unknown) =>
      err instanceof InputError && /torchvision squeezenet weights.*names them for resnet18/.test(err.message),
  );
});

test('classifier.pretrained takes a source or { source, sha256 } and rejects a malformed pin', async () => {
  const { parsePipelineConfig } = await import('../../pipelines/schema.js');
  const { resolvePreset } = await import('../../pipelines/presets.js');
  const config = resolvePreset('smoke');
  const pinned = { source: 'https://example.com/r.safetensors', sha256: sha256(squeezenet) };
  config.classifier.pretrained = { resnet18: pinned, alexnet: 's3://weights/a.safetensors' };
  assert.deepEqual(parsePipelineConfig(config).classifier.pretrained.resnet18, pinned);
  config.classifier.pretrained = { resnet18: { source: 'x', sha256: 'abc' } };
  assert.throws(() => parsePipelineConfig(config), /classifier\.pretrained\.resnet18.*|sha256 is 64 hex digits/);
});
