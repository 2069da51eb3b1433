import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterBootstrap, quantile, tInterval } from '../../lib/protocol/intervals.js';
import { mcnemar } from '../../lib/protocol/paired.js';
import { auc, scores, singleClass, type Outcome } from '../../lib/protocol/scores.js';

const close = (actual: number | null, expected: number, tolerance = 1e-9) =>
  assert.ok(actual !== null && Math.abs(actual - expected) < tolerance, `${actual} != ${expected}`);

const outcome = (truth: 0 | 1, score: number): Outcome => ({ truth, score, predicted: score > 0.5 ? 1 : 0 });

test('AUC counts positive-over-negative pairs, ties half, with weights', () => {
  // negatives 0.1, 0.4; positives 0.35 (beats 0.1 only), 0.8 (beats both): 3 of 4 pairs.
  const o = [outcome(0, 0.1), outcome(0, 0.4), outcome(1, 0.35), outcome(1, 0.8)];
  close(auc(o), 3 / 4);
  // The 0.1 negative counted twice: 0.35 wins 2 of 3, 0.8 wins 3 of 3.
  close(auc(o, [2, 1, 1, 1]), 5 / 6);
  close(auc([outcome(0, 0.5), outcome(1, 0.5)]), 0.5);
  assert.equal(auc([outcome(1, 0.2), outcome(1, 0.9)]), null);
});

test('scores from a hand-computed confusion matrix', () => {
  // 4 NORMAL (3 right), 6 PNEUMONIA (5 right): TN 3, FP 1, FN 1, TP 5.
  const o: Outcome[] = [
    ...[0, 0, 0, 1].map((predicted) => ({ truth: 0 as const, predicted, score: predicted ? 0.7 : 0.2 })),
    ...[1, 1, 1, 1, 1, 0].map((predicted) => ({ truth: 1 as const, predicted, score: predicted ? 0.9 : 0.3 })),
  ];
  const s = scores(o);
  close(s.accuracy, 0.8);
  close(s.sensitivity, 5 / 6);
  close(s.specificity, 3 / 4);
  close(s.balancedAccuracy, (5 / 6 + 3 / 4) / 2);
  close(s.f1, 10 / 12);
  // Positives 0.9 x5 and 0.3; negatives 0.2 x3 and 0.7: 0.9 beats all 4, 0.3 beats 3 -> 23 / 24.
  close(s.auc, 23 / 24);
  assert.equal(singleClass(o), null);
});

test('a single-class model is detected and its undefined scores are null, not 0', () => {
  const o = [outcome(0, 0.9), outcome(1, 0.8), outcome(1, 0.7)];
  assert.equal(singleClass(o), 'PNEUMONIA');
  const s = scores([outcome(1, 0.9), outcome(1, 0.2)]);
  assert.equal(s.specificity, null);
  assert.equal(s.balancedAccuracy, null);
  assert.equal(s.auc, null);
  close(s.sensitivity, 0.5);
});

test('t interval across trials: mean +- t(0.975, n-1) s / sqrt(n)', () => {
  const t = tInterval([0.8, 0.9, 1.0]);
  close(t.estimate, 0.9);
  // t(0.975, 2) = 4.302653, s = 0.1
  close(t.high - t.estimate, (4.302653 * 0.1) / Math.sqrt(3), 1e-6);
  close(t.estimate - t.low, (4.302653 * 0.1) / Math.sqrt(3), 1e-6);
  const single = tInterval([0.7]);
  assert.deepEqual([single.low, single.high], [0.7, 0.7]);
});

test('quantile interpolates between order statistics', () => {
  close(quantile([1, 2, 3, 4, 5], 0.5), 3);
  close(quantile([1, 2, 3, 4, 5], 0.025), 1.1);
  close(quantile([0, 10], 0.975), 9.75);
});

test('cluster bootstrap: seeded, resamples whole groups, intervals around the estimate', () => {
  const correct = Array.from({ length: 40 }, (_, i) => (i % 4 === 0 ? 0 : 1));
  const mean = (w: Float64Array | undefined) => {
    let hit = 0;
    let total = 0;
    correct.forEach((c, i) => {
      const weight = w ? w[i]! : 1;
      hit += c * weight;
      total += weight;
    });
    return { accuracy: total ? hit / total : null };
  };
  const groups = correct.map((_, i) => `p${Math.floor(i / 4)}`);
  // Each patient has exactly one miss among four images: every replicate is exactly 0.75.
  const grouped = clusterBootstrap(groups, mean, { replicates: 200, seed: 3 }).accuracy!;
  assert.deepEqual([grouped.estimate, grouped.low, grouped.high], [0.75, 0.75, 0.75]);
  const perImage = clusterBootstrap(
    correct.map(() => null),
    mean,
    { replicates: 500, seed: 3 },
  ).accuracy!;
  assert.ok(perImage.low < 0.75 && perImage.high > 0.75 && perImage.low > 0.5, JSON.stringify(perImage));
  assert.deepEqual(
    clusterBootstrap(
      correct.map(() => null),
      mean,
      { replicates: 500, seed: 3 },
    ),
    { accuracy: perImage },
  );
});

test('McNemar: exact binomial for few discordant pairs, corrected chi-square for many', () => {
  const exact = mcnemar([true, true, true, false, true], [false, false, false, false, true]);
  assert.deepEqual([exact.onlyFirst, exact.onlySecond, exact.method], [3, 0, 'exact binomial']);
  close(exact.pValue, 0.25); // 2 * (1/2)^3
  const first = [...new Array<boolean>(30).fill(true), ...new Array<boolean>(10).fill(false)];
  const second = [...new Array<boolean>(30).fill(false), ...new Array<boolean>(10).fill(true)];
  const large = mcnemar(first, second);
  assert.equal(large.method, 'chi-square, continuity-corrected');
  // (|30 - 10| - 1)^2 / 40 = 9.025; P(chi2_1 > 9.025) = 0.002663
  close(large.pValue, 0.002663, 1e-5);
  assert.equal(mcnemar([true], [true]).pValue, 1);
  assert.throws(() => mcnemar([true], []), /paired/);
});
