/**
 * The held-out set: real images that no GAN and no classifier of any trial sees. The archive's own
 * test split when it has both classes, else a fixed stratified sample of whole groups. Either way
 * every group (patient, series, near-duplicates) with an image in the held-out set leaves the pool
 * entirely, so a patient filed under both archive splits cannot leak back into training.
 */
import type { LabeledImage } from '../data/manifest.js';
import type { PipelineConfig } from '../../pipelines/schema.js';
import { countByClass } from '../data/manifest.js';
import { stratifiedPartition } from './sampling.js';

export interface HeldoutPartition<T> {
  heldout: T[];
  /** The images trials may sample from. */
  pool: T[];
  /** How the held-out set was chosen, for the report. */
  source: string;
  /** Images outside the held-out set dropped from the pool because their group is held out. */
  removed: number;
}

/** `splits[i]` is the archive split folder (`train`, `val`, `test`, `unsplit`) of `real[i]`. */
export function partitionHeldout<T extends LabeledImage>(
  real: readonly T[],
  splits: readonly string[],
  protocol: Pick<PipelineConfig['protocol'], 'heldoutFraction' | 'heldoutSeed'>,
): HeldoutPartition<T> {
  const inTestSplit = real.filter((_, i) => splits[i] === 'test');
  const testCounts = countByClass(inTestSplit);
  const hasTestSplit = testCounts.NORMAL > 0 && testCounts.PNEUMONIA > 0;
  const { taken: heldout, rest: outside } = hasTestSplit
    ? { taken: inTestSplit, rest: real.filter((_, i) => splits[i] !== 'test') }
    : stratifiedPartition(real, { fraction: protocol.heldoutFraction }, protocol.heldoutSeed);
  const heldoutGroups = new Set(heldout.flatMap((i) => (i.patientId ? [i.patientId] : [])));
  const pool = outside.filter((i) => !i.patientId || !heldoutGroups.has(i.patientId));
  const removed = outside.length - pool.length;
  const source =
    (hasTestSplit
      ? "the dataset's test split"
      : `${protocol.heldoutFraction} of the real images per class (seed ${protocol.heldoutSeed}), whole groups`) +
    (removed ? `; ${removed} image(s) of its groups outside it were dropped from the pool` : '');
  return { heldout, pool, source, removed };
}
