import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { ingestDataset } from '../../lib/data/ingest.js';
import { DatasetManifestSchema } from '../../lib/data/manifest.js';
import { InputError } from '../../lib/errors.js';
import type { ArtifactStore } from '../../lib/storage.js';
import { KERMANY_SAMPLE } from '../../lib/data/kermany-sample.js';
import { startScratchS3 } from '../../lib/infra/scratch-s3.js';

let s3: Awaited<ReturnType<typeof startScratchS3>>;
let store: ArtifactStore;
let scratch: string;

before(async () => {
  s3 = await startScratchS3();
  store = s3.store;
  scratch = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-ingest-'));
});
after(async () => {
  await s3.stop();
  await rm(scratch, { recursive: true, force: true });
});

const sampleMissing = existsSync(KERMANY_SAMPLE)
  ? false
  : `the real Kermany sample is not at ${KERMANY_SAMPLE} (CI provides it beside the checkout; a user's clone does not have it)`;

test(
  'ingests the real Kermany sample: counts, classes, patient ids, content-addressed grayscale PNGs',
  { skip: sampleMissing },
  async () => {
    const manifest = await ingestDataset({ source: { kind: 'folder', path: KERMANY_SAMPLE }, storeSize: 64, store });
    // 366 files, of which person1372_bacteria_3501/3502/3503 are byte-identical: one is kept.
    assert.deepEqual(manifest.counts, { NORMAL: 166, PNEUMONIA: 198 });
    assert.deepEqual(
      manifest.duplicates,
      [3502, 3503].map((n) => ({
        path: path.join('PNEUMONIA', `person1372_bacteria_${n}.jpeg`),
        duplicateOf: path.join('PNEUMONIA', 'person1372_bacteria_3501.jpeg'),
      })),
    );
    assert.deepEqual(
      manifest.skipped.map((s) => s.path),
      ['README.md'],
    );
    const pneumonia = manifest.images.filter((i) => i.label === 'PNEUMONIA');
    assert.ok(
      pneumonia.every((i) => /^person\d+$/.test(i.patientId ?? '')),
      'every PNEUMONIA image has a patient id',
    );
    const byName = manifest.images.find((i) => i.source === path.join('PNEUMONIA', 'person1003_bacteria_2934.jpeg'));
    assert.equal(byName?.patientId, 'person1003');
    const normal = manifest.images.filter((i) => i.label === 'NORMAL');
    assert.ok(
      normal.every((i) => /^(NORMAL2-)?IM-\d+$/.test(i.patientId ?? '')),
      'every NORMAL image has its series',
    );
    const series = normal.filter((i) => /IM-0491-0001-000[12]/.test(i.source)).map((i) => i.patientId);
    assert.deepEqual(series, ['IM-0491', 'IM-0491'], 'two films of one series share a group');
    assert.ok(manifest.patients.NORMAL < 166, 'several NORMAL films share a series');
    assert.equal(manifest.patients.PNEUMONIA, new Set(pneumonia.map((i) => i.patientId)).size);
    // The sample's only copies (person1372_bacteria_3501-3503) are byte-identical, handled above.
    assert.deepEqual(manifest.nearDuplicates, []);
    assert.ok(manifest.images.every((i) => /^[0-9a-f]{16}$/.test(i.perceptualHash)));
    assert.ok(manifest.patients.PNEUMONIA < 198, 'several images share a patient');
    const first = manifest.images[0]!;
    assert.match(first.image.key, new RegExp(`^cas/${first.image.sha256.slice(0, 2)}/${first.image.sha256}\\.png$`));
    const meta = await sharp(await store.get(first.image)).metadata();
    assert.deepEqual([meta.width, meta.height, meta.channels], [64, 64, 1]);
    assert.deepEqual([first.originalWidth, first.originalHeight], [224, 224]);
    DatasetManifestSchema.parse(manifest);
  },
);

test('archive layout: splits, nested duplicate copy and __MACOSX debris are handled, RGB and odd sizes decoded', async () => {
  const root = path.join(scratch, 'archive', 'chest_xray');
  const gray = await sharp({ create: { width: 300, height: 217, channels: 3, background: { r: 90, g: 90, b: 90 } } })
    .jpeg()
    .toBuffer();
  const rgb = await sharp({ create: { width: 411, height: 380, channels: 3, background: { r: 200, g: 40, b: 10 } } })
    .jpeg()
    .toBuffer();
  const files: Record<string, Buffer> = {
    'train/NORMAL/IM-0001-0001.jpeg': gray,
    'test/NORMAL/IM-0002-0001.jpeg': await sharp(gray).rotate(90).jpeg().toBuffer(),
    'train/PNEUMONIA/person7_bacteria_30.jpeg': rgb,
    'val/PNEUMONIA/person8_virus_31.jpeg': await sharp(rgb).flip().png().toBuffer(),
    // the common archive nests a partial copy of itself
    'chest_xray/train/NORMAL/IM-0001-0001.jpeg': gray,
    'chest_xray/train/PNEUMONIA/person7_bacteria_30.jpeg': rgb,
    '__MACOSX/train/NORMAL/._IM-0001-0001.jpeg': Buffer.from('resource fork'),
    'train/NORMAL/.DS_Store': Buffer.from('x'),
  };
  for (const [rel, bytes] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), bytes);
  }
  const manifest = await ingestDataset({ source: { kind: 'folder', path: path.dirname(root) }, storeSize: 32, store });
  assert.deepEqual(manifest.counts, { NORMAL: 2, PNEUMONIA: 2 });
  assert.deepEqual(manifest.duplicates, [
    {
      path: path.join('chest_xray', 'train', 'NORMAL', 'IM-0001-0001.jpeg'),
      duplicateOf: path.join('chest_xray', 'chest_xray', 'train', 'NORMAL', 'IM-0001-0001.jpeg'),
    },
    {
      path: path.join('chest_xray', 'train', 'PNEUMONIA', 'person7_bacteria_30.jpeg'),
      duplicateOf: path.join('chest_xray', 'chest_xray', 'train', 'PNEUMONIA', 'person7_bacteria_30.jpeg'),
    },
  ]);
  assert.deepEqual(manifest.skipped.map((s) => s.reason).sort(), ['__MACOSX archive debris', 'hidden file']);
  assert.deepEqual(manifest.images.map((i) => i.split).sort(), ['test', 'train', 'train', 'val']);
  for (const image of manifest.images) {
    const meta = await sharp(await store.get(image.image)).metadata();
    assert.deepEqual([meta.width, meta.height, meta.channels], [32, 32, 1]);
  }
  // Ingesting again stores nothing new and yields the same manifest.
  const again = await ingestDataset({ source: { kind: 'folder', path: path.dirname(root) }, storeSize: 32, store });
  assert.deepEqual(again, manifest);
});

test(
  "a re-encoded copy of a sample X-ray under another name joins the original's group",
  { skip: sampleMissing },
  async () => {
    const root = path.join(scratch, 'near-duplicates');
    const original = path.join(KERMANY_SAMPLE, 'PNEUMONIA', 'person1003_bacteria_2934.jpeg');
    const copy = await sharp(original).resize(180, 200, { fit: 'fill' }).jpeg({ quality: 50 }).toBuffer();
    await mkdir(path.join(root, 'NORMAL'), { recursive: true });
    await mkdir(path.join(root, 'PNEUMONIA'), { recursive: true });
    await writeFile(path.join(root, 'PNEUMONIA', 'person1003_bacteria_2934.jpeg'), await sharp(original).toBuffer());
    await writeFile(path.join(root, 'PNEUMONIA', 'person77_virus_1.jpeg'), copy);
    for (const name of ['IM-0491-0001-0001.jpeg', 'IM-0117-0001.jpeg'])
      await writeFile(
        path.join(root, 'NORMAL', name),
        await sharp(path.join(KERMANY_SAMPLE, 'NORMAL', name)).toBuffer(),
      );
    const manifest = await ingestDataset({ source: { kind: 'folder', path: root }, storeSize: 64, store });
    assert.equal(manifest.nearDuplicates.length, 1);
    assert.equal(manifest.nearDuplicates[0]!.linkedGroups, true);
    const ids = manifest.images.filter((i) => i.label === 'PNEUMONIA').map((i) => i.patientId);
    assert.deepEqual(ids, ['person1003+person77', 'person1003+person77']);
    assert.ok(manifest.images.filter((i) => i.label === 'NORMAL').every((i) => !i.patientId?.includes('+')));
  },
);

test('a corrupt JPEG is an InputError naming the file', async () => {
  const root = path.join(scratch, 'corrupt');
  const good = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 128, g: 128, b: 128 } } })
    .jpeg()
    .toBuffer();
  await mkdir(path.join(root, 'NORMAL'), { recursive: true });
  await mkdir(path.join(root, 'PNEUMONIA'), { recursive: true });
  await writeFile(path.join(root, 'NORMAL', 'IM-1.jpeg'), good);
  await writeFile(path.join(root, 'PNEUMONIA', 'person1_virus_1.jpeg'), good.subarray(0, good.length / 2));
  await assert.rejects(
    ingestDataset({ source: { kind: 'folder', path: root }, storeSize: 32, store }),
    (err: unknown) => {
      assert.ok(err instanceof InputError);
      assert.match(err.message, /person1_virus_1\.jpeg/);
      assert.match(err.message, /corrupt|truncated/);
      return true;
    },
  );
});

test('an empty class folder and a missing dataset are InputErrors that say what to do', async () => {
  const root = path.join(scratch, 'empty-class');
  await mkdir(path.join(root, 'NORMAL'), { recursive: true });
  await mkdir(path.join(root, 'PNEUMONIA'), { recursive: true });
  await writeFile(
    path.join(root, 'NORMAL', 'IM-1.jpeg'),
    await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 1, g: 1, b: 1 } } })
      .jpeg()
      .toBuffer(),
  );
  await assert.rejects(
    ingestDataset({ source: { kind: 'folder', path: root }, storeSize: 32, store }),
    (err: unknown) => err instanceof InputError && /PNEUMONIA holds no images/.test(err.message),
  );
  await assert.rejects(
    ingestDataset({ source: { kind: 'folder', path: path.join(scratch, 'nope') }, storeSize: 32, store }),
    (err: unknown) => err instanceof InputError && /does not exist. Pass --data/.test(err.message),
  );
});

test('the synthetic maker draws a deterministic, two-class dataset with patient ids', async () => {
  const a = await ingestDataset({ source: { kind: 'synthetic', imagesPerClass: 6, seed: 3 }, storeSize: 32, store });
  const b = await ingestDataset({ source: { kind: 'synthetic', imagesPerClass: 6, seed: 3 }, storeSize: 32, store });
  assert.deepEqual(a, b);
  assert.deepEqual(a.counts, { NORMAL: 6, PNEUMONIA: 6 });
  assert.equal(a.patients.PNEUMONIA, 2);
  // PNEUMONIA images are brighter in the lungs on average: a learnable signal.
  const mean = async (label: string) => {
    const sums = await Promise.all(
      a.images
        .filter((i) => i.label === label)
        .map(async (i) => {
          const raw = await sharp(await store.get(i.image))
            .raw()
            .toBuffer();
          return raw.reduce((s, v) => s + v, 0) / raw.length;
        }),
    );
    return sums.reduce((s, v) => s + v, 0) / sums.length;
  };
  assert.ok((await mean('PNEUMONIA')) > (await mean('NORMAL')) + 3);
});
