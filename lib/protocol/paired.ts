/**
 * Paired comparison of two classifiers on the same images: McNemar's test on the discordant
 * pairs (exact two-sided binomial when there are fewer than 25, else the chi-square statistic with
 * continuity correction) and the accuracy difference.
 */
import jStat from 'jstat';

export interface McNemar {
  /** Images only the first model got right. */
  onlyFirst: number;
  /** Images only the second model got right. */
  onlySecond: number;
  pValue: number;
  method: 'exact binomial' | 'chi-square, continuity-corrected';
}

/** Below this many discordant pairs the chi-square approximation is poor; use the exact test. */
export const EXACT_BELOW = 25;

export function mcnemar(firstCorrect: readonly boolean[], secondCorrect: readonly boolean[]): McNemar {
  if (firstCorrect.length !== secondCorrect.length)
    throw new Error(`mcnemar: ${firstCorrect.length} vs ${secondCorrect.length} outcomes; the images must be paired`);
  let onlyFirst = 0;
  let onlySecond = 0;
  firstCorrect.forEach((a, i) => {
    if (a && !secondCorrect[i]) onlyFirst += 1;
    if (!a && secondCorrect[i]) onlySecond += 1;
  });
  const discordant = onlyFirst + onlySecond;
  if (discordant === 0) return { onlyFirst, onlySecond, pValue: 1, method: 'exact binomial' };
  if (discordant < EXACT_BELOW) {
    const tail = jStat.binomial.cdf(Math.min(onlyFirst, onlySecond), discordant, 0.5);
    return { onlyFirst, onlySecond, pValue: Math.min(1, 2 * tail), method: 'exact binomial' };
  }
  const statistic = (Math.abs(onlyFirst - onlySecond) - 1) ** 2 / discordant;
  return {
    onlyFirst,
    onlySecond,
    pValue: 1 - jStat.chisquare.cdf(statistic, 1),
    method: 'chi-square, continuity-corrected',
  };
}
