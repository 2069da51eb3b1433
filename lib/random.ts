/**
 * Seeded randomness for everything the pipeline samples (subsets, splits, batch order, latent
 * seeds), so a trial is a pure function of its seed. Built on pure-rand's xoroshiro128+.
 */
import prand from 'pure-rand';

export class SeededRandom {
  private readonly generator: prand.RandomGenerator;

  constructor(seed: number) {
    this.generator = prand.xoroshiro128plus(seed);
  }

  /** Uniform integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return prand.unsafeUniformIntDistribution(min, max, this.generator);
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return this.int(0, 2 ** 30 - 1) / 2 ** 30;
  }

  /** A new array, Fisher-Yates shuffled. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  /** A seed for a sub-task (tfjs ops, a child generator), drawn from this stream. */
  childSeed(): number {
    return this.int(0, 2 ** 31 - 2);
  }
}

/** A stable 31-bit seed from several parts (trial seed, class, purpose). */
export function deriveSeed(...parts: Array<string | number>): number {
  let hash = 2166136261;
  for (const ch of parts.join('\u0000')) {
    hash ^= ch.codePointAt(0)!;
    hash = Math.imul(hash, 16777619) >>> 0;
  }
  return hash & 0x7fffffff;
}
