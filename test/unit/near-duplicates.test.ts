import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import sharpPhash from 'sharp-phash';
import {
  fingerprint,
  hammingDistance,
  mergeGroups,
  MIN_CORRELATION,
  nearDuplicatePairs,
} from '../../lib/data/near-duplicates.js';
import { patientIdFromFileName } from '../../lib/data/manifest.js';
import { drawSyntheticXray } from '../../lib/data/synthetic.js';
import { decodeGray } from '../../lib/images.js';

test('patient ids: PNEUMONIA by person, NORMAL by imaging series in both naming schemes', () => {
  assert.equal(patientIdFromFileName('person1003_bacteria_2934.jpeg'), 'person1003');
  assert.equal(patientIdFromFileName('person447_virus_921_1.jpeg'), 'person447');
  assert.equal(patientIdFromFileName('IM-0491-0001-0001.jpeg'), 'IM-0491');
  assert.equal(patientIdFromFileName('IM-0491-0001-0002.jpeg'), 'IM-0491');
  assert.equal(patientIdFromFileName('IM-0117-0001.jpeg'), 'IM-0117');
  assert.equal(patientIdFromFileName('NORMAL2-IM-1345-0001.jpeg'), 'NORMAL2-IM-1345');
  assert.notEqual(patientIdFromFileName('NORMAL2-IM-0491-0001.jpeg'), patientIdFromFileName('IM-0491-0001.jpeg'));
  assert.equal(patientIdFromFileName('SYN-NORMAL-0001.jpeg'), null);
  assert.equal(patientIdFromFileName('scan.png'), null);
});

test('Hamming distance of 64-bit hex hashes', () => {
  assert.equal(hammingDistance('0000000000000000', 'ffffffffffffffff'), 64);
  assert.equal(hammingDistance('0000000000000001', '0000000000000003'), 1);
  assert.equal(hammingDistance('8000000000000000', '0000000000000001'), 2);
  assert.equal(hammingDistance('0123456789abcdef', '0123456789abcdef'), 0);
  assert.throws(() => hammingDistance('xyz', '0000000000000000'), /not 16 hex digits/);
});

test('groups merge through shared patients and near-duplicate pairs, transitively', () => {
  const images = [
    { patientId: 'person1', key: 'k0' },
    { patientId: 'person1', key: 'k1' },
    { patientId: 'IM-0002', key: 'k2' },
    { patientId: null, key: 'k3' },
    { patientId: null, key: 'k4' },
    { patientId: 'person9', key: 'k5' },
    { patientId: null, key: 'k6' },
  ];
  assert.deepEqual(
    mergeGroups(images, [
      { a: 1, b: 2 },
      { a: 3, b: 4 },
    ]),
    [
      'IM-0002+person1',
      'IM-0002+person1',
      'IM-0002+person1',
      'near-duplicate:k3',
      'near-duplicate:k3',
      'person9',
      null,
    ],
  );
  assert.deepEqual(mergeGroups(images, []), ['person1', 'person1', 'IM-0002', null, null, 'person9', null]);
});

async function gray(jpeg: Buffer, size = 64) {
  return decodeGray(jpeg, size, 'test image');
}

test('a re-compressed, re-scaled copy is a near-duplicate; different X-rays are not', async () => {
  const original = (await drawSyntheticXray('PNEUMONIA', 11, 'a.jpeg')).jpeg;
  const copy = await sharp(original).resize(97, 97).jpeg({ quality: 35 }).toBuffer();
  const others = await Promise.all(
    [12, 13, 14].map(async (seed) => (await drawSyntheticXray('PNEUMONIA', seed, 'b.jpeg')).jpeg),
  );
  const prints = await Promise.all([original, copy, ...others].map(async (jpeg) => fingerprint(await gray(jpeg))));
  const pairs = nearDuplicatePairs(prints);
  assert.deepEqual(
    pairs.map(({ a, b }) => [a, b]),
    [[0, 1]],
  );
  assert.ok(pairs[0]!.correlation >= MIN_CORRELATION && pairs[0]!.distance <= 8, JSON.stringify(pairs[0]));
});

// sharp-phash is CommonJS (`module.exports = phash`) but its types declare an ES default export.
const referencePhash = sharpPhash as unknown as (typeof sharpPhash)['default'];
const KERMANY_SAMPLE = path.resolve(import.meta.dirname, '..', '..', '..', 'shared', 'data', 'kermany-sample');

test('the separable pHash equals sharp-phash bit for bit, on drawn and (where present) real X-rays', async () => {
  const jpegs = await Promise.all(
    Array.from({ length: 40 }, async (_, seed) => (await drawSyntheticXray('NORMAL', seed, 'x.jpeg')).jpeg),
  );
  if (existsSync(KERMANY_SAMPLE)) {
    for (const label of ['NORMAL', 'PNEUMONIA']) {
      const names = (await readdir(path.join(KERMANY_SAMPLE, label))).sort();
      jpegs.push(...(await Promise.all(names.map((n) => readFile(path.join(KERMANY_SAMPLE, label, n))))));
    }
  } else {
    console.log(`# ${KERMANY_SAMPLE} is absent: compared on drawn X-rays only`);
  }
  for (const [i, jpeg] of jpegs.entries()) {
    for (const size of [64, 224]) {
      const image = await gray(jpeg, size);
      const raw = { raw: { width: size, height: size, channels: 1 as const } };
      const bits = await referencePhash(Buffer.from(image.pixels), raw);
      const expected = Array.from({ length: 16 }, (_, k) =>
        parseInt(bits.slice(k * 4, k * 4 + 4), 2).toString(16),
      ).join('');
      assert.equal((await fingerprint(image)).hash, expected, `image ${i} at ${size} px`);
    }
  }
});
