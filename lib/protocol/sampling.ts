/**
 * The paper's sampling steps: a stratified fraction of the real images per trial, and the 80/20
 * split of the pooled real + synthetic images. Both are pure functions of their input and seed;
 * the input order does not matter (images are ordered by content hash first).
 */
import { CLASS_NAMES, type ClassName } from '../../pipelines/schema.js';
import { InputError } from '../errors.js';
import { SeededRandom } from '../random.js';
import type { LabeledImage } from '../data/manifest.js';

function byClassInHashOrder<T extends LabeledImage>(images: readonly T[]): Map<ClassName, T[]> {
  const groups = new Map<ClassName, T[]>(CLASS_NAMES.map((c) => [c, []]));
  for (const image of images) groups.get(image.label)!.push(image);
  for (const group of groups.values()) group.sort((a, b) => a.image.sha256.localeCompare(b.image.sha256));
  return groups;
}

/** `round(n * fraction)` images of each class (at least one), chosen by the seed. */
export function stratifiedSubset<T extends LabeledImage>(images: readonly T[], fraction: number, seed: number): T[] {
  const rng = new SeededRandom(seed);
  const subset: T[] = [];
  for (const [label, group] of byClassInHashOrder(images)) {
    if (group.length === 0) throw new InputError(`The dataset has no ${label} images; both classes are needed.`);
    const take = Math.max(1, Math.round(group.length * fraction));
    subset.push(...rng.shuffle(group).slice(0, take));
  }
  return subset;
}

/** Stratified train/test split; each class must land on both sides. */
export function stratifiedSplit<T extends LabeledImage>(images: readonly T[], trainFraction: number, seed: number): { train: T[]; test: T[] } {
  const rng = new SeededRandom(seed);
  const train: T[] = [];
  const test: T[] = [];
  for (const [label, group] of byClassInHashOrder(images)) {
    const trainCount = Math.round(group.length * trainFraction);
    if (trainCount < 1 || trainCount >= group.length) {
      throw new InputError(
        `Too few ${label} images to split: ${group.length} image(s) with trainFraction ${trainFraction} leaves ` +
        `${trainCount} for training and ${group.length - trainCount} for testing. Raise protocol.subsetFraction or use a larger dataset.`);
    }
    const shuffled = rng.shuffle(group);
    train.push(...shuffled.slice(0, trainCount));
    test.push(...shuffled.slice(trainCount));
  }
  return { train, test };
}
