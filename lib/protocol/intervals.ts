/**
 * 95% intervals: a cluster (patient-level) percentile bootstrap within one trial, and a Student t
 * interval of the mean across trials (distribution functions from jStat).
 */
import jStat from 'jstat';
import { SeededRandom } from '../random.js';

export interface Interval {
  estimate: number;
  low: number;
  high: number;
}

/** Mean and t interval over trials; no interval (low = high = mean) from a single trial. */
export function tInterval(values: readonly number[], level = 0.95): Interval & { n: number; std: number } {
  const n = values.length;
  if (n === 0) throw new Error('tInterval of no values');
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n < 2 ? 0 : Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  const half = n < 2 ? 0 : jStat.studentt.inv(1 - (1 - level) / 2, n - 1) * (std / Math.sqrt(n));
  return { estimate: mean, low: mean - half, high: mean + half, n, std };
}

/** The q-quantile of sorted values, linear between order statistics. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const above = Math.min(sorted.length - 1, below + 1);
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (position - below);
}

/**
 * Percentile bootstrap that resamples groups (patients) with replacement, so images of one patient
 * stay together: each replicate gives every item the number of times its group was drawn as its
 * weight, and `statistic` computes named values from those weights (null: undefined in that
 * replicate, left out of that value's interval). Items without a group are groups of one.
 */
export function clusterBootstrap<K extends string>(
  groups: ReadonlyArray<string | null>,
  statistic: (weights: Float64Array | undefined) => Record<K, number | null>,
  options: { replicates: number; seed: number; level?: number },
): Record<K, Interval | null> {
  const groupIndex = new Map<string, number>();
  const itemGroup = groups.map((g, i) => {
    const key = g ?? `\u0000${i}`;
    if (!groupIndex.has(key)) groupIndex.set(key, groupIndex.size);
    return groupIndex.get(key)!;
  });
  const groupCount = groupIndex.size;
  const estimate = statistic(undefined);
  const samples = Object.fromEntries(Object.keys(estimate).map((k) => [k, [] as number[]])) as Record<K, number[]>;
  const rng = new SeededRandom(options.seed);
  const drawn = new Float64Array(groupCount);
  const weights = new Float64Array(groups.length);
  for (let r = 0; r < options.replicates; r++) {
    drawn.fill(0);
    for (let g = 0; g < groupCount; g++) drawn[rng.int(0, groupCount - 1)]! += 1;
    for (let i = 0; i < weights.length; i++) weights[i] = drawn[itemGroup[i]!]!;
    const values = statistic(weights);
    for (const key of Object.keys(values) as K[]) if (values[key] !== null) samples[key].push(values[key]);
  }
  const tail = (1 - (options.level ?? 0.95)) / 2;
  return Object.fromEntries(
    (Object.keys(estimate) as K[]).map((key) => {
      const value = estimate[key];
      const sorted = samples[key].sort((a, b) => a - b);
      return [
        key,
        value === null ? null : { estimate: value, low: quantile(sorted, tail), high: quantile(sorted, 1 - tail) },
      ];
    }),
  ) as Record<K, Interval | null>;
}
