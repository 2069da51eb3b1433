/**
 * tfjs initialisers draw their seeds from Math.random() when none is given, and the layers API
 * offers no model-wide seed. Building a model inside `withSeededMathRandom` makes its initial
 * weights a function of the seed, which is what lets two workers (or a retry) reproduce a trial.
 */
import { SeededRandom } from '../random.js';

export function withSeededMathRandom<T>(seed: number, build: () => T): T {
  const original = Math.random;
  const rng = new SeededRandom(seed);
  Math.random = () => rng.float();
  try {
    return build();
  } finally {
    Math.random = original;
  }
}

/** Lets timers, I/O and heartbeats run between training batches. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
