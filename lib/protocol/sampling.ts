/**
 * The paper's sampling steps: a stratified subset of the real images per trial (an exact size, 624
 * in the paper, or a fraction), and the 80/20
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

/** The images of one patient form one unit; images without a patient id are units of one (or of their identical copies). */
function patientUnits<T extends LabeledImage>(group: readonly T[]): T[][] {
  const units: T[][] = [];
  const byKey = new Map<string, T[]>();
  for (const image of group) {
    // Byte-identical images (a collapsed GAN can repeat itself) are one unit as well, so the
    // same picture never sits on both sides of a split.
    const key = image.patientId ? `patient:${image.patientId}` : `content:${image.image.sha256}`;
    let unit = byKey.get(key);
    if (!unit) {
      unit = [];
      byKey.set(key, unit);
      units.push(unit);
    }
    unit.push(image);
  }
  return units;
}

/**
 * Shuffled patient units taken until exactly `target` images are reached where the units allow
 * it. A unit that would overshoot is passed over for smaller ones later in the shuffle (first
 * fit); if the taken units still fall short (all remaining units too large), a taken unit is
 * swapped for a larger one from the rest that closes the gap. Patients are never split.
 */
function takeUnits<T extends LabeledImage>(
  group: readonly T[],
  target: number,
  rng: SeededRandom,
): { taken: T[]; rest: T[] } {
  const taken: T[][] = [];
  const rest: T[][] = [];
  let count = 0;
  const shuffled = rng.shuffle(patientUnits(group));
  // A unit larger than the rest may hold (a collapsed GAN's thousands of identical images) must
  // be taken: it is placed first, or first fit could leave it in the rest with a gap no swap closes.
  const mustTake = (unit: T[]) => unit.length > group.length - target && unit.length <= target;
  for (const unit of [...shuffled.filter(mustTake), ...shuffled.filter((u) => !mustTake(u))]) {
    if (count + unit.length <= target) {
      taken.push(unit);
      count += unit.length;
    } else {
      rest.push(unit);
    }
  }
  while (count < target && closeGapBySwap(taken, rest, target - count)) count = taken.reduce((n, u) => n + u.length, 0);
  return { taken: taken.flat(), rest: rest.flat() };
}

/** Swaps the first (taken, rest) pair whose size difference best closes `gap` without overshooting. */
function closeGapBySwap<T>(taken: T[][], rest: T[][], gap: number): boolean {
  let best: { t: number; r: number; gain: number } | undefined;
  const firstRestOfSize = new Map<number, number>();
  rest.forEach((unit, r) => {
    if (!firstRestOfSize.has(unit.length)) firstRestOfSize.set(unit.length, r);
  });
  for (const [t, unit] of taken.entries()) {
    for (let gain = gap; gain > (best?.gain ?? 0); gain--) {
      const r = firstRestOfSize.get(unit.length + gain);
      if (r !== undefined) {
        best = { t, r, gain };
        break;
      }
    }
    if (best?.gain === gap) break;
  }
  if (!best) return false;
  [taken[best.t], rest[best.r]] = [rest[best.r]!, taken[best.t]!];
  return true;
}

/** How many images a subset request asks for: an absolute size, or a fraction of the pool. */
export type SubsetRequest = { size: number } | { fraction: number };

/**
 * Per-class targets that sum to the request: an absolute size is divided in proportion to the
 * classes (largest remainder, so 624 stays 624); a fraction is applied to each class. Each class
 * keeps at least one image.
 */
export function classTargets(available: Record<ClassName, number>, request: SubsetRequest): Record<ClassName, number> {
  const total = CLASS_NAMES.reduce((sum, c) => sum + available[c], 0);
  if ('fraction' in request) {
    return Object.fromEntries(
      CLASS_NAMES.map((c) => [c, Math.max(1, Math.round(available[c] * request.fraction))]),
    ) as Record<ClassName, number>;
  }
  if (request.size > total) {
    throw new InputError(
      `A subset of ${request.size} images was requested but only ${total} real images remain for sampling ` +
        `(${CLASS_NAMES.map((c) => `${available[c]} ${c}`).join(', ')}). Lower protocol.subsetSize or use a larger dataset.`,
    );
  }
  const exact = CLASS_NAMES.map((c) => (request.size * available[c]) / total);
  const targets = exact.map(Math.floor);
  const order = CLASS_NAMES.map((_, i) => i).sort(
    (a, b) => exact[b]! - targets[b]! - (exact[a]! - targets[a]!) || a - b,
  );
  for (let i = 0; i < request.size - targets.reduce((a, b) => a + b, 0); i++) targets[order[i]!]! += 1;
  return Object.fromEntries(CLASS_NAMES.map((c, i) => [c, Math.max(1, targets[i]!)])) as Record<ClassName, number>;
}

/** A stratified subset of the requested size, whole patients, chosen by the seed. */
export function stratifiedSubset<T extends LabeledImage>(
  images: readonly T[],
  request: SubsetRequest,
  seed: number,
): T[] {
  return stratifiedPartition(images, request, seed).taken;
}

/** The subset and its complement, per class, by whole patients. */
export function stratifiedPartition<T extends LabeledImage>(
  images: readonly T[],
  request: SubsetRequest,
  seed: number,
): { taken: T[]; rest: T[] } {
  const rng = new SeededRandom(seed);
  const groups = byClassInHashOrder(images);
  for (const [label, group] of groups) {
    if (group.length === 0) throw new InputError(`The dataset has no ${label} images; both classes are needed.`);
  }
  const targets = classTargets(countsOf(groups), request);
  const taken: T[] = [];
  const rest: T[] = [];
  for (const [label, group] of groups) {
    const part = takeUnits(group, targets[label], rng);
    if ('size' in request && part.taken.length !== targets[label]) {
      throw new InputError(
        `Cannot take exactly ${targets[label]} ${label} images by whole patients: the patient groups allow ` +
          `${part.taken.length} at most. Choose another protocol.subsetSize or use subsetFraction.`,
      );
    }
    taken.push(...part.taken);
    rest.push(...part.rest);
  }
  return { taken, rest };
}

function countsOf(groups: Map<ClassName, readonly unknown[]>): Record<ClassName, number> {
  return Object.fromEntries(CLASS_NAMES.map((c) => [c, groups.get(c)!.length])) as Record<ClassName, number>;
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
          `${taken.length} for training and ${rest.length} for testing. Raise protocol.subsetSize (or subsetFraction) or use a larger dataset.`,
      );
    }
    train.push(...taken);
    test.push(...rest);
  }
  return { train, test };
}
