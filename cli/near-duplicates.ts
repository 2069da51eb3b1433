/**
 * Near-duplicate census of an image folder, the evidence behind the thresholds in
 * lib/data/near-duplicates.ts: every image is decoded as ingestion stores it (grayscale, square,
 * --size px) and fingerprinted, and all pairs are compared. Prints the pHash distance histogram
 * for pairs within one patient group and across groups, the thumbnail correlations of the
 * candidate pairs, and the confirmed near-duplicate pairs.
 *
 *   npx tsx cli/near-duplicates.ts ../shared/data/kermany-train [--size 224] [--show 20]
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pLimit from 'p-limit';
import { decodeGray } from '../lib/images.js';
import { patientIdFromFileName } from '../lib/data/manifest.js';
import { listSource } from '../lib/data/sources.js';
import {
  CANDIDATE_BITS,
  fingerprint,
  hammingDistance,
  mergeGroups,
  MIN_CORRELATION,
  nearDuplicatePairs,
  thumbnailCorrelation,
} from '../lib/data/near-duplicates.js';
import { sha256Hex, type ArtifactStore } from '../lib/storage.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { size: { type: 'string', default: '224' }, show: { type: 'string', default: '20' } },
});
const folder = positionals[0];
if (!folder) {
  console.error('usage: npx tsx cli/near-duplicates.ts <folder with NORMAL/ and PNEUMONIA/> [--size 224] [--show 20]');
  process.exit(2);
}

// Listing a folder never touches the store.
const listing = await listSource({ kind: 'folder', path: folder }, undefined as unknown as ArtifactStore);
const limit = pLimit(4);
let done = 0;
const started = Date.now();
const read = await Promise.all(
  listing.files.map((file) =>
    limit(async () => {
      const bytes = await readFile(path.join(folder, file.path));
      const image = await decodeGray(bytes, Number(values.size), file.path);
      if (++done % 1000 === 0) process.stderr.write(`fingerprinted ${done}/${listing.files.length}\n`);
      return { file, sha256: sha256Hex(bytes), print: await fingerprint(image) };
    }),
  ),
);
const seconds = (Date.now() - started) / 1000;
// Byte-identical copies are ingested once (ingest.ts), so like ingestion keep the first of each.
const distinct = read.filter((r, i) => read.findIndex((o) => o.sha256 === r.sha256) === i);
const prints = distinct.map((r) => r.print);
const files = distinct.map(({ file }) => ({ ...file, patientId: patientIdFromFileName(path.basename(file.path)) }));
const sameGroup = (a: number, b: number) => files[a]!.patientId !== null && files[a]!.patientId === files[b]!.patientId;

const histogram = { within: new Array<number>(65).fill(0), across: new Array<number>(65).fill(0) };
const candidateCorrelations = { within: [] as number[], across: [] as number[] };
for (let a = 0; a < prints.length; a++) {
  for (let b = a + 1; b < prints.length; b++) {
    const d = hammingDistance(prints[a]!.hash, prints[b]!.hash);
    const side = sameGroup(a, b) ? 'within' : 'across';
    histogram[side][d]! += 1;
    if (d <= CANDIDATE_BITS) candidateCorrelations[side].push(thumbnailCorrelation(prints[a]!, prints[b]!));
  }
}
const sum = (h: readonly number[]) => h.reduce((x, y) => x + y, 0);
const upTo = (h: readonly number[], d: number) => sum(h.slice(0, d + 1));
console.log(
  `${read.length} images from ${listing.description}, fingerprinted in ${seconds.toFixed(1)} s; ` +
    `${read.length - distinct.length} byte-identical copies set aside, ${distinct.length} compared`,
);
console.log(`pairs: ${sum(histogram.within)} within a patient group, ${sum(histogram.across)} across groups`);
console.log('pHash bits | within-group pairs (cumulative) | across-group pairs (cumulative, fraction of all)');
for (let d = 0; d <= 12; d++) {
  const across = upTo(histogram.across, d);
  console.log(
    `${String(d).padStart(10)} | ${histogram.within[d]} (${upTo(histogram.within, d)}) | ${histogram.across[d]} (${across}, ${(across / sum(histogram.across)).toExponential(2)})`,
  );
}
const quantiles = (values: number[]) => {
  const s = [...values].sort((x, y) => x - y);
  return [0, 0.5, 0.99, 1]
    .map((q) => s[Math.min(s.length - 1, Math.floor(q * s.length))]?.toFixed(3) ?? '—')
    .join(' / ');
};
console.log(`thumbnail correlation of candidates (<= ${CANDIDATE_BITS} bits), min / median / 99% / max:`);
console.log(`  within groups (${candidateCorrelations.within.length}): ${quantiles(candidateCorrelations.within)}`);
console.log(`  across groups (${candidateCorrelations.across.length}): ${quantiles(candidateCorrelations.across)}`);

const pairs = nearDuplicatePairs(prints);
const linking = pairs.filter((p) => !sameGroup(p.a, p.b));
const crossClass = pairs.filter((p) => files[p.a]!.label !== files[p.b]!.label);
const groups = mergeGroups(
  files.map((f) => ({ patientId: f.patientId, key: f.path })),
  pairs,
);
const groupCount = (ids: ReadonlyArray<string | null>) => new Set(ids.map((id, i) => id ?? `#${i}`)).size;
console.log(
  `near-duplicate pairs (<= ${CANDIDATE_BITS} bits and correlation >= ${MIN_CORRELATION}): ${pairs.length}; ` +
    `${pairs.length - linking.length} within one patient group, ${linking.length} linking different groups, ${crossClass.length} across classes`,
);
console.log(
  `groups: ${groupCount(files.map((f) => f.patientId))} from file names, ${groupCount(groups)} after merging near-duplicates`,
);
for (const p of pairs.slice(0, Number(values.show)))
  console.log(`  ${p.distance} bits, r=${p.correlation.toFixed(4)}: ${files[p.a]!.path}  ~  ${files[p.b]!.path}`);
