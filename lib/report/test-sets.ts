/**
 * What each protocol was tested on, in words a reader can check: the size of the test set and
 * its composition (classes, real vs GAN-made images), per trial when trials differ.
 */
import type { AggregateInput, TrialResult } from '../../pipelines/results.js';
import type { Protocol } from '../../pipelines/schema.js';

type Side = NonNullable<TrialResult['pooledSplit']>['test'];

const n = (value: number) => value.toLocaleString('en-US');

function describeSide(side: Side): string {
  const total = side.images.NORMAL + side.images.PNEUMONIA;
  const origins = side.origins
    ? side.origins.synthetic
      ? `; ${n(side.origins.real)} real + ${n(side.origins.synthetic)} GAN-made`
      : '; all real'
    : '';
  return `${n(total)} images (${n(side.images.NORMAL)} NORMAL, ${n(side.images.PNEUMONIA)} PNEUMONIA${origins})`;
}

/** One sentence: the test set of `protocol` in every trial (once when all trials agree). */
export function describeTestSet(protocol: Protocol, input: Pick<AggregateInput, 'heldout' | 'trials'>): string {
  if (protocol === 'heldout') {
    const h = input.heldout;
    if (!h) return 'Test set: the held-out real images.';
    const total = h.counts.NORMAL + h.counts.PNEUMONIA;
    return `Test set: the same ${n(total)} held-out real images in every trial (${n(h.counts.NORMAL)} NORMAL, ${n(h.counts.PNEUMONIA)} PNEUMONIA).`;
  }
  const sides = input.trials.flatMap((t) => {
    const split = protocol === 'paper' ? t.pooledSplit : t.realSplit;
    return split ? [{ trial: t.trial, text: describeSide(split.test) }] : [];
  });
  const which = protocol === 'paper' ? 'the pooled 20% of real + GAN images' : "the real subset's 20%";
  if (sides.length === 0) return `Test set: ${which}.`;
  if (new Set(sides.map((s) => s.text)).size === 1) return `Test set per trial: ${which}, ${sides[0]!.text}.`;
  return `Test set: ${which}; ${sides.map((s) => `trial ${s.trial}: ${s.text}`).join('; ')}.`;
}
