/**
 * Near-duplicate images: the same radiograph stored twice under different names (re-exported,
 * re-scaled, re-compressed), which must land on the same side of every boundary just like the
 * images of one patient. Two stages, so the all-pairs search stays cheap and look-alikes are not
 * mistaken for copies:
 *  1. candidates: a 64-bit DCT perceptual hash (pHash as the `sharp-phash` package defines it:
 *     32x32 grayscale, 2-D DCT-II, the 8x8 lowest non-DC frequencies thresholded at their mean)
 *     of each stored grayscale image; pairs at most CANDIDATE_BITS apart;
 *  2. confirmation: Pearson correlation of the two images' 32x32 thumbnails at least
 *     MIN_CORRELATION.
 * Thresholds measured on the 5,216 images of the archive's train split (`cli/near-duplicates.ts`):
 * chest X-rays all look alike at 32x32, so pHash alone cannot separate copies from look-alikes:
 * films of different patients come as close as 2 bits (4 pairs), 3,189 such pairs lie within
 * 8 bits, and their thumbnails correlate at most 0.963 (0.94 over 20,000 random pairs; two films
 * of one patient at most 0.968). The only copies there are 26 byte-identical files (28 pairs, 0 bits,
 * correlation 1.000), which ingestion stores once anyway; no pair of the 5,190 distinct files
 * passes both stages. A copy re-compressed
 * (JPEG quality 20), re-scaled, squashed or brightened by 10% stays within 0 bits and above
 * 0.999; a copy cropped by 5% (5 bits, 0.977) is not caught.
 */
import sharp from 'sharp';
import type { GrayImage } from '../images.js';

/** pHash bits up to which a pair is compared pixel by pixel (2.4e-4 of the different-patient pairs in the train split). */
export const CANDIDATE_BITS = 8;
/** Thumbnail correlation from which a candidate is a copy: between look-alikes (at most 0.963) and copies (0.999+). */
export const MIN_CORRELATION = 0.98;
const THUMBNAIL = 32;

export interface Fingerprint {
  /** 64-bit pHash as 16 hex digits. */
  hash: string;
  /** 32x32 grayscale thumbnail, centred and scaled to unit norm (for correlations). */
  thumbnail: Float32Array;
}

export async function fingerprint(image: GrayImage): Promise<Fingerprint> {
  const raw = { raw: { width: image.size, height: image.size, channels: 1 as const } };
  const small = await sharp(Buffer.from(image.pixels), raw)
    .resize(THUMBNAIL, THUMBNAIL, { fit: 'fill' })
    .extractChannel(0)
    .raw()
    .toBuffer();
  return { hash: perceptualHash(small), thumbnail: unitCentred(small) };
}

const LOW_FREQUENCIES = 8;
/** cos((2n + 1) k pi / 2N) for k = 1..8 (DC skipped) and n = 0..31: sharp-phash's DCT-II basis. */
const BASIS = Array.from({ length: LOW_FREQUENCIES }, (_, k) =>
  Float64Array.from({ length: THUMBNAIL }, (_, n) => Math.cos(((2 * n + 1) / (2 * THUMBNAIL)) * (k + 1) * Math.PI)),
);

/**
 * The pHash of a 32x32 thumbnail (row-major), bit for bit the one `sharp-phash` computes from
 * the same thumbnail (test/unit/near-duplicates.test.ts compares them on real X-rays). sharp-phash
 * evaluates all 32x32 DCT coefficients with a four-deep loop (a million multiply-adds, about 4 ms of
 * the JS thread per image, a third of ingestion's time on 2 cores) to keep 64 of them; the DCT is
 * separable, so the 64 take 10,000 here. Bit x*8+y is coefficient (x+1, y+1), x along columns.
 */
function perceptualHash(thumbnail: Uint8Array): string {
  const n = THUMBNAIL;
  // Along the rows first: byRow[v][x] = sum over rows y of basis_v(y) * pixel(x, y).
  const byRow = BASIS.map((basis) => {
    const out = new Float64Array(n);
    for (let y = 0; y < n; y++) {
      const weight = basis[y]!;
      for (let x = 0; x < n; x++) out[x]! += weight * thumbnail[y * n + x]!;
    }
    return out;
  });
  const coefficients = new Float64Array(LOW_FREQUENCIES * LOW_FREQUENCIES);
  for (let u = 0; u < LOW_FREQUENCIES; u++) {
    for (let v = 0; v < LOW_FREQUENCIES; v++) {
      let sum = 0;
      for (let x = 0; x < n; x++) sum += BASIS[u]![x]! * byRow[v]![x]!;
      coefficients[u * LOW_FREQUENCIES + v] = sum / 4;
    }
  }
  const mean = coefficients.reduce((a, b) => a + b, 0) / coefficients.length;
  let hash = '';
  for (let nibble = 0; nibble < 16; nibble++) {
    let value = 0;
    for (let bit = 0; bit < 4; bit++) value = (value << 1) | (coefficients[nibble * 4 + bit]! > mean ? 1 : 0);
    hash += value.toString(16);
  }
  return hash;
}

function unitCentred(pixels: Uint8Array): Float32Array {
  // Plain loops: reduce/map over typed arrays cost ingestion 1% of its time.
  let sum = 0;
  for (let i = 0; i < pixels.length; i++) sum += pixels[i]!;
  const mean = sum / pixels.length;
  const out = new Float32Array(pixels.length);
  let squares = 0;
  for (let i = 0; i < pixels.length; i++) {
    const v = pixels[i]! - mean;
    out[i] = v;
    squares += v * v;
  }
  const norm = Math.sqrt(squares) || 1;
  for (let i = 0; i < out.length; i++) out[i]! /= norm;
  return out;
}

/** Pearson correlation of two fingerprints' thumbnails. */
export function thumbnailCorrelation(a: Fingerprint, b: Fingerprint): number {
  let sum = 0;
  for (let i = 0; i < a.thumbnail.length; i++) sum += a.thumbnail[i]! * b.thumbnail[i]!;
  return sum;
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

function halves(hex: string): [number, number] {
  if (!/^[0-9a-f]{16}$/.test(hex)) throw new Error(`perceptual hash "${hex}" is not 16 hex digits`);
  return [parseInt(hex.slice(0, 8), 16), parseInt(hex.slice(8), 16)];
}

export function hammingDistance(a: string, b: string): number {
  const [a0, a1] = halves(a);
  const [b0, b1] = halves(b);
  return popcount32(a0 ^ b0) + popcount32(a1 ^ b1);
}

export interface NearDuplicatePair {
  /** Indices into the fingerprint list, a < b. */
  a: number;
  b: number;
  /** pHash Hamming distance in bits. */
  distance: number;
  correlation: number;
}

/** Every confirmed pair (all pairs' hashes compared: about 14 M for 5,300 images, under a second). */
export function nearDuplicatePairs(
  prints: readonly Fingerprint[],
  thresholds = { candidateBits: CANDIDATE_BITS, minCorrelation: MIN_CORRELATION },
): NearDuplicatePair[] {
  const split = prints.map((p) => halves(p.hash));
  const pairs: NearDuplicatePair[] = [];
  for (let a = 0; a < split.length; a++) {
    const [a0, a1] = split[a]!;
    for (let b = a + 1; b < split.length; b++) {
      const [b0, b1] = split[b]!;
      const distance = popcount32(a0 ^ b0) + popcount32(a1 ^ b1);
      if (distance > thresholds.candidateBits) continue;
      const correlation = thumbnailCorrelation(prints[a]!, prints[b]!);
      if (correlation >= thresholds.minCorrelation) pairs.push({ a, b, distance, correlation });
    }
  }
  return pairs;
}

/**
 * Group ids that keep linked images together: images sharing a patient id, and images joined by a
 * near-duplicate pair (transitively), get one id. A group's id is its patient ids, sorted and
 * joined by `+`, or `near-duplicate:<first member's key>` when no member has a patient id; an
 * image linked to nothing keeps its own patient id (null stays null).
 */
export function mergeGroups(
  images: ReadonlyArray<{ patientId: string | null; key: string }>,
  pairs: ReadonlyArray<Pick<NearDuplicatePair, 'a' | 'b'>>,
): Array<string | null> {
  const parent = images.map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]!]!;
    return i;
  };
  const union = (a: number, b: number) => {
    const [ra, rb] = [find(a), find(b)];
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  const firstOfPatient = new Map<string, number>();
  images.forEach(({ patientId }, i) => {
    if (patientId === null) return;
    const first = firstOfPatient.get(patientId);
    if (first === undefined) firstOfPatient.set(patientId, i);
    else union(first, i);
  });
  for (const { a, b } of pairs) union(a, b);

  const members = new Map<number, number[]>();
  images.forEach((_, i) => {
    const root = find(i);
    let group = members.get(root);
    if (!group) members.set(root, (group = []));
    group.push(i);
  });
  const ids = new Array<string | null>(images.length);
  for (const [root, group] of members) {
    const patients = [...new Set(group.flatMap((i) => images[i]!.patientId ?? []))].sort();
    const id =
      group.length === 1
        ? images[root]!.patientId
        : patients.length > 0
          ? patients.join('+')
          : `near-duplicate:${images[root]!.key}`;
    for (const i of group) ids[i] = id;
  }
  return ids;
}
