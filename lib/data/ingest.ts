/**
 * Ingestion: every source image is decoded, converted to grayscale, resized to the store size and
 * stored content-addressed as PNG, with a manifest that keeps its class, archive split, source
 * path and patient group. Byte-identical source files (the archive nests a partial copy of itself)
 * are ingested once and listed as duplicates; near-duplicates (the same film stored twice, found
 * by lib/data/near-duplicates.ts) are kept but join one group, so sampling keeps them together.
 */
import path from 'node:path';
import pLimit from 'p-limit';
import type { DataSource } from '../../pipelines/schema.js';
import { decodeGray, encodeGrayPng } from '../images.js';
import { sha256Hex, type ArtifactStore } from '../storage.js';
import {
  CANDIDATE_BITS,
  fingerprint,
  mergeGroups,
  MIN_CORRELATION,
  nearDuplicatePairs,
  type Fingerprint,
} from './near-duplicates.js';
import {
  countByClass,
  patientIdFromFileName,
  patientsByClass,
  type DatasetManifest,
  type RealImage,
} from './manifest.js';
import { listSource } from './sources.js';

export interface IngestOptions {
  source: DataSource;
  storeSize: number;
  store: ArtifactStore;
  /** Called after each file with (done, total). */
  onProgress?: (done: number, total: number) => void;
  concurrency?: number;
}

export async function ingestDataset(options: IngestOptions): Promise<DatasetManifest> {
  const { store, storeSize } = options;
  const listing = await listSource(options.source, store);
  const limit = pLimit(options.concurrency ?? 4);
  const decodedBySha = new Map<
    string,
    Promise<Pick<RealImage, 'image' | 'originalWidth' | 'originalHeight'> & { print: Fingerprint }>
  >();
  let done = 0;
  const hashed = await Promise.all(
    listing.files.map((file) =>
      limit(async () => {
        const bytes = await file.read();
        const sourceSha256 = sha256Hex(bytes);
        // A byte-identical file is decoded and stored once, whichever copy is read first.
        if (!decodedBySha.has(sourceSha256)) {
          decodedBySha.set(
            sourceSha256,
            (async () => {
              const decoded = await decodeGray(bytes, storeSize, `${listing.description}/${file.path}`);
              const image = await store.putContent(await encodeGrayPng(decoded), 'png');
              const print = await fingerprint(decoded);
              return { image, originalWidth: decoded.originalWidth, originalHeight: decoded.originalHeight, print };
            })(),
          );
        }
        const stored = await decodedBySha.get(sourceSha256)!;
        options.onProgress?.(++done, listing.files.length);
        return { file, sourceSha256, stored };
      }),
    ),
  );
  // Files are listed in path order, so the first copy of each content is the canonical one no
  // matter which copy the pool happened to read first: the manifest is deterministic.
  const images: RealImage[] = [];
  const prints: Fingerprint[] = [];
  const duplicates: DatasetManifest['duplicates'] = [];
  const canonicalPathBySha = new Map<string, string>();
  for (const { file, sourceSha256, stored } of hashed) {
    const canonical = canonicalPathBySha.get(sourceSha256);
    if (canonical !== undefined) {
      duplicates.push({ path: file.path, duplicateOf: canonical });
      continue;
    }
    canonicalPathBySha.set(sourceSha256, file.path);
    const { print, ...image } = stored;
    prints.push(print);
    images.push({
      ...image,
      perceptualHash: print.hash,
      label: file.label,
      origin: 'real',
      patientId: patientIdFromFileName(path.basename(file.path)),
      source: file.path,
      sourceSha256,
      split: file.split,
    });
  }
  const pairs = nearDuplicatePairs(prints);
  const groups = mergeGroups(
    images.map((i) => ({ patientId: i.patientId, key: i.source })),
    pairs,
  );
  const nearDuplicates = pairs.map(({ a, b, distance, correlation }) => ({
    a: images[a]!.source,
    b: images[b]!.source,
    distance,
    correlation,
    linkedGroups: images[a]!.patientId !== images[b]!.patientId,
  }));
  images.forEach((image, i) => (image.patientId = groups[i]!));
  return {
    kind: 'dataset-manifest',
    source: listing.description,
    storeSize,
    images,
    duplicates,
    nearDuplicates,
    nearDuplicateRule: { candidateBits: CANDIDATE_BITS, minCorrelation: MIN_CORRELATION },
    skipped: listing.skipped,
    counts: countByClass(images),
    patients: patientsByClass(images),
  };
}
