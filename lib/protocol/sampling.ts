/**
 * The paper's sampling steps: a stratified fraction of the real images per trial, and the 80/20
 * split of the pooled real + synthetic images. Both are pure functions of their input and seed;
 * the input order does not matter (images are ordered by content hash first). A patient's images
 * always stay on one side: images that carry a patient id move together, so no patient is in
 * both a training and a test set.
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

/** The images of one patient form one unit; images without a patient id are units of one. */
function patientUnits<T extends LabeledImage>(group: readonly T[]): T[][] {
  const units: T[][] = [];
  const byPatient = new Map<string, T[]>();
  for (const image of group) {
    if (!image.patientId) {
      units.push([image]);
      continue;
    }
    let unit = byPatient.get(image.patientId);
    if (!unit) {
      unit = [];
      byPatient.set(image.patientId, unit);
      units.push(unit);
    }
    unit.push(image);
  }
  return units;
}

/** Shuffled patient units taken until `target` images are reached; the rest stay out. */
function takeUnits<T extends LabeledImage>(
  group: readonly T[],
  target: number,
  rng: SeededRandom,
): { taken: T[]; rest: T[] } {
  const taken: T[] = [];
  const rest: T[] = [];
  for (const unit of rng.shuffle(patientUnits(group))) (taken.length < target ? taken : rest).push(...unit);
  return { taken, rest };
}

/** About `round(n * fraction)` images of each class (at least one), whole patients, chosen by the seed. */
export function stratifiedSubset<T extends LabeledImage>(images: readonly T[], fraction: number, seed: number): T[] {
  return stratifiedPartition(images, fraction, seed).taken;
}

/** The subset and its complement, per class, by whole patients. */
export function stratifiedPartition<T extends LabeledImage>(
  images: readonly T[],
  fraction: number,
  seed: number,
): { taken: T[]; rest: T[] } {
  const rng = new SeededRandom(seed);
  const taken: T[] = [];
  const rest: T[] = [];
  for (const [label, group] of byClassInHashOrder(images)) {
    if (group.length === 0) throw new InputError(`The dataset has no ${label} images; both classes are needed.`);
    const part = takeUnits(group, Math.max(1, Math.round(group.length * fraction)), rng);
    taken.push(...part.taken);
    rest.push(...part.rest);
  }
  return { taken, rest };
}

/** Stratified train/test split by whole patients; each class must land on both sides. */
export function stratifiedSplit<T extends LabeledImage>(
  images: readonly T[],
  trainFraction: number,
  seed: number,
): { train: T[]; test: T[] } {
  const rng = new SeededRandom(seed);
  const train: T[] = [];
  const test: T[] = [];
  for (const [label, group] of byClassInHashOrder(images)) {
    const { taken, rest } = takeUnits(group, Math.round(group.length * trainFraction), rng);
    if (taken.length < 1 || rest.length < 1) {
      throw new InputError(
        `Too few ${label} images to split: ${group.length} image(s) in ${patientUnits(group).length} patient group(s) with trainFraction ${trainFraction} leaves ` +
          `${taken.length} for training and ${rest.length} for testing. Raise protocol.subsetFraction or use a larger dataset.`,
      );
    }
    train.push(...taken);
    test.push(...rest);
  }
  return { train, test };
}
