/**
 * The real X-rays a paper-size trial on a bare GPU machine trains and tests on. The pack
 * (`npm run gpu:pack`) chooses them here with the pipeline's own protocol functions (the held-out
 * set by whole patients, then trial 1's stratified 624-image subset, the `paper` preset's values)
 * and copies only those files, about 9 MB of JPEG; the GPU machine decodes them with jpeg-js,
 * since the pack carries no libvips.
 *
 * Two differences from the pipeline, both about data preparation, none about the GPU steps:
 * images are ordered by the hash of the file (the pipeline hashes its re-encoded PNG, so the
 * draws differ), and patient groups come from file names alone (the pipeline also merges
 * near-duplicate pictures into one group).
 */
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { z } from 'zod';
import { patientIdFromFileName, type LabeledImage } from '../lib/data/manifest.js';
import { InputError } from '../lib/errors.js';
import { sha256Hex } from '../lib/storage.js';
import { grayFromEqualChannels, type GrayImage } from '../lib/images.js';
import { partitionHeldout } from '../lib/protocol/heldout.js';
import { classTargets, stratifiedSubset } from '../lib/protocol/sampling.js';
import { deriveSeed } from '../lib/random.js';
import { PRESETS } from '../pipelines/presets.js';
import { CLASS_NAMES, type ClassName } from '../pipelines/schema.js';
import { drawXray } from './gray-images.js';
import type { TrialSize } from './paper-trial.js';

const ImageEntrySchema = z.object({
  /** Path relative to the data folder. */
  file: z.string(),
  label: z.enum(CLASS_NAMES),
  patientId: z.string().nullable(),
  sha256: z.string(),
});
type ImageEntry = z.infer<typeof ImageEntrySchema>;

export const PaperDataManifestSchema = z.object({
  kind: z.literal('paper-trial-data'),
  /** The name of the folder the images were chosen from (`kermany-train`). */
  source: z.string(),
  trialSeed: z.number().int(),
  subsetSize: z.number().int(),
  heldoutSource: z.string(),
  subset: z.array(ImageEntrySchema),
  heldout: z.array(ImageEntrySchema),
});
export type PaperDataManifest = z.infer<typeof PaperDataManifestSchema>;

export const PAPER_DATA_MANIFEST = 'manifest.json';

export interface RealPixels {
  image: GrayImage;
  label: ClassName;
  patientId: string | null;
  /** The file's sha256: what the protocol functions order images by. */
  sha256: string;
}

/** A picture as the protocol functions see it: label, group and content hash. */
export function asLabeledImage<T extends { label: ClassName; patientId: string | null; sha256: string }>(
  item: T,
  origin: 'real' | 'synthetic',
): LabeledImage & { item: T } {
  return {
    image: { key: item.sha256, sha256: item.sha256, bytes: 0 },
    label: item.label,
    origin,
    patientId: item.patientId,
    item,
  };
}

/**
 * Chooses trial `trialSeed`'s subset and the held-out set from a folder with NORMAL/ and
 * PNEUMONIA/ subfolders (kermany-train's layout) and copies those files to `dest`.
 */
export async function packPaperData(
  source: string,
  dest: string,
  options: { trialSeed?: number; subsetSize?: number } = {},
): Promise<PaperDataManifest> {
  const { protocol } = PRESETS.paper!;
  const trialSeed = options.trialSeed ?? 1;
  const subsetSize = options.subsetSize ?? protocol.subsetSize!;
  const listed: ImageEntry[] = [];
  for (const label of CLASS_NAMES) {
    const names = await readdir(path.join(source, label)).catch(() => {
      throw new InputError(
        `${path.join(source, label)} is missing: the paper trial's data folder needs NORMAL/ and PNEUMONIA/ subfolders of X-rays (kermany-train's layout).`,
      );
    });
    for (const name of names.filter((n) => /\.jpe?g$/i.test(n)).sort()) {
      const bytes = await readFile(path.join(source, label, name));
      listed.push({
        file: path.join(label, name),
        label,
        patientId: patientIdFromFileName(name),
        sha256: sha256Hex(bytes),
      });
    }
  }
  const real = listed.map((entry) => asLabeledImage(entry, 'real'));
  const {
    heldout,
    pool,
    source: heldoutSource,
  } = partitionHeldout(
    real,
    real.map(() => 'train'),
    protocol,
  );
  const subset = stratifiedSubset(pool, { size: subsetSize }, trialSeed);
  const manifest: PaperDataManifest = {
    kind: 'paper-trial-data',
    source: path.basename(path.resolve(source)),
    trialSeed,
    subsetSize,
    heldoutSource,
    subset: subset.map((s) => s.item),
    heldout: heldout.map((h) => h.item),
  };
  for (const entry of [...manifest.subset, ...manifest.heldout]) {
    await mkdir(path.join(dest, path.dirname(entry.file)), { recursive: true });
    await copyFile(path.join(source, entry.file), path.join(dest, entry.file));
  }
  await writeFile(path.join(dest, PAPER_DATA_MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`);
  return manifest;
}

/** A decoded JPEG's grey plane (kermany's X-rays are grey stored as RGB), checked for size and colour. */
export function decodeGrayJpeg(bytes: Uint8Array, size: number, file: string): GrayImage {
  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    decoded = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false });
  } catch (err) {
    throw new InputError(`Cannot decode ${file}: ${(err as Error).message}. Re-run npm run gpu:pack.`);
  }
  if (decoded.width !== size || decoded.height !== size) {
    throw new InputError(
      `${file} is ${decoded.width}x${decoded.height}; the paper trial takes ${size}x${size} X-rays (kermany-train's size).`,
    );
  }
  const pixels = grayFromEqualChannels(decoded.data, decoded.data.length / (size * size));
  if (!pixels) {
    throw new InputError(
      `${file} has colour; the paper trial takes grey X-rays (ingest it with the pipeline, which converts it, or remove it).`,
    );
  }
  return { size, pixels };
}

/** Reads a folder written by {@link packPaperData}. */
export async function loadPaperData(
  dir: string,
  size: number,
): Promise<{ manifest: PaperDataManifest; subset: RealPixels[]; heldout: RealPixels[] }> {
  const manifestPath = path.join(dir, PAPER_DATA_MANIFEST);
  const manifest = PaperDataManifestSchema.parse(JSON.parse(await readFile(manifestPath, 'utf8')));
  const load = (entries: ImageEntry[]) =>
    Promise.all(
      entries.map(async (entry) => ({
        image: decodeGrayJpeg(await readFile(path.join(dir, entry.file)), size, path.join(dir, entry.file)),
        label: entry.label,
        patientId: entry.patientId,
        sha256: entry.sha256,
      })),
    );
  return { manifest, subset: await load(manifest.subset), heldout: await load(manifest.heldout) };
}

/** kermany-train's class counts, for drawn stand-ins of the same proportions. */
const KERMANY_TRAIN_COUNTS: Record<ClassName, number> = { NORMAL: 1341, PNEUMONIA: 3875 };
/** The side of kermany-train's X-rays and of the images drawn in their place. */
export const REAL_SIZE = 224;

/**
 * A trial's real images: the pack's (`dataDir`), or drawn X-ray-like pictures of the same counts
 * without one. A `paper` trial takes the whole subset and held-out set, a `smoke` one the first
 * half of `subsetSize` per class and 20 held out per class, a `quick` one 8 held out per class.
 */
export async function trialImages(options: {
  dataDir?: string;
  size: TrialSize;
  subsetSize: number;
  seed: number;
}): Promise<{ subset: RealPixels[]; heldout: RealPixels[]; data: string }> {
  const { size, subsetSize, seed } = options;
  const heldoutPerClass = size === 'smoke' ? 20 : 8;
  if (options.dataDir) {
    const { manifest, subset, heldout } = await loadPaperData(options.dataDir, REAL_SIZE);
    const perClass = (items: RealPixels[], n: number) =>
      CLASS_NAMES.flatMap((label) => items.filter((i) => i.label === label).slice(0, n));
    return size === 'paper'
      ? {
          subset,
          heldout,
          data: `${subset.length} real X-rays of ${manifest.source} (trial ${manifest.trialSeed}'s subset), held out: ${manifest.heldoutSource}`,
        }
      : {
          subset: perClass(subset, subsetSize / 2),
          heldout: perClass(heldout, heldoutPerClass),
          data: `${manifest.source} (${size}: ${subsetSize / 2} per class of trial ${manifest.trialSeed}'s subset)`,
        };
  }
  const draw = (counts: Record<ClassName, number>, salt: string) =>
    CLASS_NAMES.flatMap((label) =>
      Array.from({ length: counts[label] }, (_, i) => {
        const image = drawXray(label, REAL_SIZE, deriveSeed(seed, salt, label, i));
        const sha256 = sha256Hex(image.pixels);
        return { image, label, patientId: null, sha256 };
      }),
    );
  const heldoutCounts =
    size === 'paper'
      ? classTargets(KERMANY_TRAIN_COUNTS, { fraction: 0.1 })
      : { NORMAL: heldoutPerClass, PNEUMONIA: heldoutPerClass };
  return {
    subset: draw(classTargets(KERMANY_TRAIN_COUNTS, { size: subsetSize }), 'real'),
    heldout: draw(heldoutCounts, 'heldout'),
    data: 'drawn X-ray-like images (no data folder in the pack)',
  };
}
