import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LabeledImage } from '../../lib/data/manifest.js';
import { InputError } from '../../lib/errors.js';
import { aggregateMetrics, confusionMatrix, meanStd, metricsFromConfusion } from '../../lib/protocol/metrics.js';
import { classTargets, stratifiedPartition, stratifiedSplit, stratifiedSubset } from '../../lib/protocol/sampling.js';
import { sha256Hex } from '../../lib/storage.js';

function images(normal: number, pneumonia: number): LabeledImage[] {
  const make = (label: 'NORMAL' | 'PNEUMONIA', i: number): LabeledImage => {
    const sha256 = sha256Hex(`${label}-${i}`);
    return { image: { key: `cas/${sha256}.png`, sha256, bytes: 1 }, label, origin: 'real', patientId: null };
  };
  return [
    ...Array.from({ length: normal }, (_, i) => make('NORMAL', i)),
    ...Array.from({ length: pneumonia }, (_, i) => make('PNEUMONIA', i)),
  ];
}

const keys = (set: LabeledImage[]) => set.map((i) => i.image.sha256).sort();

test('stratifiedSubset keeps the fraction of each class', () => {
  const subset = stratifiedSubset(images(1583, 4273), { fraction: 624 / 5863 }, 1);
  assert.equal(subset.filter((i) => i.label === 'NORMAL').length, 168);
  assert.equal(subset.filter((i) => i.label === 'PNEUMONIA').length, 455);
});

test('an absolute subset size is met exactly, in class proportion, with whole patients', () => {
  // The paper's pool shape: multi-image patients of uneven size in both classes.
  const pool = images(1341, 3875).map((image, i) => ({ ...image, patientId: `p${image.label}${i % 997}` }));
  for (const seed of [1, 2, 3]) {
    const subset = stratifiedSubset(pool, { size: 624 }, seed);
    assert.equal(subset.length, 624);
    // 624 * 1341 / 5216 = 160.43 NORMAL, 463.57 PNEUMONIA: largest remainder gives 160 + 464.
    assert.equal(subset.filter((i) => i.label === 'NORMAL').length, 160);
  }
});

test('classTargets divides a size by largest remainder and refuses more than the pool holds', () => {
  assert.deepEqual(classTargets({ NORMAL: 1341, PNEUMONIA: 3875 }, { size: 624 }), { NORMAL: 160, PNEUMONIA: 464 });
  assert.deepEqual(classTargets({ NORMAL: 1, PNEUMONIA: 1 }, { size: 1 }), { NORMAL: 1, PNEUMONIA: 1 });
  assert.deepEqual(classTargets({ NORMAL: 50, PNEUMONIA: 150 }, { fraction: 0.1 }), { NORMAL: 5, PNEUMONIA: 15 });
  assert.throws(
    () => classTargets({ NORMAL: 100, PNEUMONIA: 200 }, { size: 624 }),
    (err: unknown) =>
      err instanceof InputError && /624 images was requested but only 300 real images remain/.test(err.message),
  );
});

test("the paper's counts: 624 real + 9x synthetic = 6,240, split exactly 4,992 / 1,248 with whole patients", () => {
  const pool = images(1341, 3875).map((image, i) => ({ ...image, patientId: `p${image.label}${i % 1200}` }));
  const subset = stratifiedSubset(pool, { size: 624 }, 7);
  const synthetic = subset.flatMap((real, r) =>
    Array.from({ length: 9 }, (_, k): LabeledImage => {
      const sha256 = sha256Hex(`synthetic-${r}-${k}`);
      return {
        image: { key: `cas/${sha256}.png`, sha256, bytes: 1 },
        label: real.label,
        origin: 'synthetic',
        patientId: null,
      };
    }),
  );
  const { train, test: held } = stratifiedSplit([...subset, ...synthetic], 0.8, 7);
  assert.equal(train.length, 4992);
  assert.equal(held.length, 1248);
  const trainPatients = new Set(train.flatMap((i) => (i.patientId ? [i.patientId] : [])));
  assert.ok(held.every((i) => !i.patientId || !trainPatients.has(i.patientId)));
});

test('stratifiedSubset is deterministic per seed, different across trials, and ignores input order', () => {
  const all = images(100, 200);
  assert.deepEqual(
    keys(stratifiedSubset(all, { fraction: 0.1 }, 1)),
    keys(stratifiedSubset([...all].reverse(), { fraction: 0.1 }, 1)),
  );
  const trials = [1, 2, 3].map((seed) => keys(stratifiedSubset(all, { fraction: 0.1 }, seed)).join());
  assert.equal(new Set(trials).size, 3);
});

test('stratifiedSplit is stratified, disjoint, complete and deterministic', () => {
  const pool = images(50, 70);
  const { train, test: held } = stratifiedSplit(pool, 0.8, 9);
  assert.equal(train.filter((i) => i.label === 'NORMAL').length, 40);
  assert.equal(held.filter((i) => i.label === 'PNEUMONIA').length, 14);
  assert.deepEqual([...keys(train), ...keys(held)].sort(), keys(pool));
  assert.equal(new Set([...keys(train), ...keys(held)]).size, pool.length);
  assert.deepEqual(keys(stratifiedSplit(pool, 0.8, 9).train), keys(train));
  assert.notDeepEqual(keys(stratifiedSplit(pool, 0.8, 10).train), keys(train));
});

test('a subset too small to split is an InputError naming the class and the fix', () => {
  assert.throws(
    () => stratifiedSplit(images(1, 10), 0.8, 1),
    (err: unknown) => {
      assert.ok(err instanceof InputError);
      assert.match(err.message, /Too few NORMAL images to split: 1 image/);
      assert.match(err.message, /subsetSize/);
      return true;
    },
  );
});

test('confusion matrix and metrics match a hand-computed example', () => {
  // truth: 4 NORMAL, 6 PNEUMONIA; predictions: 3 of the NORMAL right, 5 of the PNEUMONIA right.
  const truth = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
  const predicted = [0, 0, 0, 1, 1, 1, 1, 1, 1, 0];
  const confusion = confusionMatrix(truth, predicted);
  assert.deepEqual(confusion, [
    [3, 1],
    [1, 5],
  ]);
  const m = metricsFromConfusion(confusion);
  assert.equal(m.accuracy, 0.8);
  assert.equal(m.perClassAccuracy.NORMAL, 0.75);
  assert.equal(m.perClassAccuracy.PNEUMONIA, 5 / 6);
  assert.equal(m.precision, 5 / 6);
  assert.equal(m.recall, 5 / 6);
  assert.ok(Math.abs(m.f1 - 5 / 6) < 1e-12);
  assert.equal(m.support, 10);
});

test('metrics of a classifier that never predicts PNEUMONIA report 0, not NaN', () => {
  const m = metricsFromConfusion([
    [5, 0],
    [5, 0],
  ]);
  assert.equal(m.precision, 0);
  assert.equal(m.f1, 0);
  assert.equal(m.accuracy, 0.5);
});

test('aggregate is the mean and sample standard deviation over trials', () => {
  const trials = [
    [
      [9, 1],
      [2, 8],
    ],
    [
      [8, 2],
      [1, 9],
    ],
    [
      [10, 0],
      [0, 10],
    ],
  ].map(metricsFromConfusion);
  const agg = aggregateMetrics(trials);
  assert.ok(Math.abs(agg.accuracy.mean - (0.85 + 0.85 + 1) / 3) < 1e-12);
  assert.ok(Math.abs(agg.accuracy.std - meanStd([0.85, 0.85, 1]).std) < 1e-12);
  assert.ok(Math.abs(meanStd([0.85, 0.85, 1]).std - Math.sqrt((0.05 ** 2 * 2 + 0.1 ** 2) / 2)) < 1e-12);
  assert.deepEqual(agg.confusion, [
    [27, 3],
    [3, 27],
  ]);
  assert.equal(agg.trials, 3);
});

test('subsets, partitions and splits keep each patient on one side', () => {
  // 30 PNEUMONIA images from 10 patients (3 each) and 30 NORMAL images without patient ids.
  const pool = images(30, 30).map((image, i) =>
    image.label === 'PNEUMONIA' ? { ...image, patientId: `person${i % 10}` } : image,
  );
  const sides = (parts: LabeledImage[][]) =>
    parts.map((part) => new Set(part.flatMap((i) => (i.patientId ? [i.patientId] : []))));
  const { train, test: held } = stratifiedSplit(pool, 0.8, 4);
  const [trainPatients, testPatients] = sides([train, held]);
  assert.equal([...trainPatients!].filter((p) => testPatients!.has(p)).length, 0, 'no patient in both train and test');
  assert.equal(held.filter((i) => i.label === 'PNEUMONIA').length % 3, 0, 'whole patients');
  const { taken, rest } = stratifiedPartition(pool, { fraction: 0.2 }, 5);
  const [takenPatients, restPatients] = sides([taken, rest]);
  assert.equal([...takenPatients!].filter((p) => restPatients!.has(p)).length, 0);
  assert.equal(taken.length + rest.length, pool.length);
  assert.equal(taken.filter((i) => i.label === 'NORMAL').length, 6);
});

test('byte-identical images (a collapsed GAN repeating itself) never straddle a split', () => {
  const [first, second] = images(2, 0);
  const repeated = Array.from({ length: 40 }, (_, i): LabeledImage => ({
    ...(i % 2 ? first! : second!),
    origin: 'synthetic',
  }));
  const pool = [...repeated, ...images(20, 20)];
  const { train, test: held } = stratifiedSplit(pool, 0.8, 3);
  const trainContent = new Set(train.map((i) => i.image.sha256));
  assert.ok(
    held.every((i) => !trainContent.has(i.image.sha256)),
    'no content on both sides',
  );
  assert.equal(train.length + held.length, pool.length);
});

test('a collapsed GAN larger than the test side holds still gives an exact 80/20 split, whatever the seed', () => {
  // 464 real PNEUMONIA images and 4,176 generated ones of which 2,700 are one repeated picture:
  // that unit exceeds the 928 test places, so it must be on the training side.
  const sha256 = sha256Hex('collapsed');
  const picture: LabeledImage = {
    image: { key: `cas/${sha256}.png`, sha256, bytes: 1 },
    label: 'PNEUMONIA',
    origin: 'synthetic',
    patientId: null,
  };
  const others = images(100, 464 + 4176 - 2700).map((i, k) => ({ ...i, patientId: `p${k % 300}` }));
  const pool = [...Array.from({ length: 2700 }, () => picture), ...others];
  for (const seed of [1, 2, 3, 4, 5]) {
    const { train, test: held } = stratifiedSplit(pool, 0.8, seed);
    const pneumonia = (set: LabeledImage[]) => set.filter((i) => i.label === 'PNEUMONIA').length;
    assert.equal(pneumonia(train), 3712, `seed ${seed}`);
    assert.equal(pneumonia(held), 928, `seed ${seed}`);
  }
});
