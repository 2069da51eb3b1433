/**
 * Where raw images come from: a local folder laid out like the Kermany `chest_xray` archive, an S3
 * prefix laid out the same way, or the synthetic maker. Each yields candidate files with their
 * class; ingestion does the rest the same way for all three.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { BucketItem } from 'minio';
import { CLASS_NAMES, type ClassName, type DataSource } from '../../pipelines/schema.js';
import { InputError } from '../errors.js';
import type { ArtifactStore } from '../storage.js';
import { drawSyntheticXray, syntheticFileNames } from './synthetic.js';
import { deriveSeed } from '../random.js';

export interface SourceFile {
  /** Path relative to the dataset root (or S3 key under the prefix). */
  path: string;
  label: ClassName;
  /** `train`, `val`, `test` from the archive layout, else `unsplit`. */
  split: string;
  read(): Promise<Uint8Array>;
}

export interface SourceListing {
  description: string;
  files: SourceFile[];
  /** Entries that are not images of a class, with the reason. */
  skipped: Array<{ path: string; reason: string }>;
}

const IMAGE_EXTENSIONS = new Set(['.jpeg', '.jpg', '.png']);
const SPLITS = new Set(['train', 'val', 'test']);

/** Classifies one relative path by the archive's conventions. */
export function classifyPath(relativePath: string): { label: ClassName; split: string } | { skip: string } {
  const parts = relativePath.split(/[\\/]/);
  const fileName = parts.at(-1) ?? '';
  if (parts.some((p) => p === '__MACOSX')) return { skip: '__MACOSX archive debris' };
  if (fileName.startsWith('.')) return { skip: 'hidden file' };
  if (!IMAGE_EXTENSIONS.has(path.extname(fileName).toLowerCase())) return { skip: 'not a .jpeg/.jpg/.png file' };
  const dirs = parts.slice(0, -1).map((p) => p.toUpperCase());
  const classDir = dirs.findLast((d) => (CLASS_NAMES as readonly string[]).includes(d));
  if (!classDir) return { skip: 'not inside a NORMAL or PNEUMONIA folder' };
  const split =
    parts
      .slice(0, -1)
      .findLast((p) => SPLITS.has(p.toLowerCase()))
      ?.toLowerCase() ?? 'unsplit';
  return { label: classDir as ClassName, split };
}

export async function listSource(source: DataSource, store: ArtifactStore): Promise<SourceListing> {
  switch (source.kind) {
    case 'folder':
      return listFolder(source.path);
    case 's3':
      return listS3(store, source.bucket, source.prefix);
    case 'synthetic':
      return listSynthetic(source.imagesPerClass, source.seed);
  }
}

async function listFolder(root: string): Promise<SourceListing> {
  const absolute = path.resolve(root);
  const info = await stat(absolute).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new InputError(
      `Dataset folder ${absolute} does not exist. Pass --data with the path of the chest_xray archive (or a folder holding NORMAL/ and PNEUMONIA/).`,
    );
  }
  const entries = await readdir(absolute, { recursive: true, withFileTypes: true });
  const files: SourceFile[] = [];
  const skipped: SourceListing['skipped'] = [];
  const classDirs = new Map<string, ClassName>();
  for (const entry of entries) {
    const full = path.join(entry.parentPath, entry.name);
    const relative = path.relative(absolute, full);
    if (entry.isDirectory()) {
      const upper = entry.name.toUpperCase();
      if ((CLASS_NAMES as readonly string[]).includes(upper) && !relative.split(path.sep).includes('__MACOSX'))
        classDirs.set(relative, upper as ClassName);
      continue;
    }
    if (!entry.isFile()) continue;
    const verdict = classifyPath(relative);
    if ('skip' in verdict) skipped.push({ path: relative, reason: verdict.skip });
    else files.push({ path: relative, ...verdict, read: () => readFile(full) });
  }
  checkClassFolders(
    absolute,
    [...classDirs].map(([dir, label]) => ({ dir, label })),
    files,
  );
  files.sort((a, b) => a.path.localeCompare(b.path));
  return { description: `folder ${absolute}`, files, skipped };
}

/** Both classes must be present, and no class folder may be empty. */
function checkClassFolders(
  root: string,
  classDirs: Array<{ dir: string; label: ClassName }>,
  files: SourceFile[],
): void {
  for (const label of CLASS_NAMES) {
    const dirs = classDirs.filter((d) => d.label === label);
    if (dirs.length === 0) {
      throw new InputError(
        `No ${label} folder under ${root}. Expected the chest_xray layout: {train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg (or NORMAL/ and PNEUMONIA/ directly).`,
      );
    }
    for (const { dir } of dirs) {
      if (!files.some((f) => f.path.startsWith(dir + path.sep))) {
        throw new InputError(
          `Class folder ${path.join(root, dir)} holds no images (.jpeg/.jpg/.png). Put the ${label} X-rays there or remove the empty folder.`,
        );
      }
    }
  }
}

async function listS3(store: ArtifactStore, bucket: string, prefix: string): Promise<SourceListing> {
  const normalized = prefix && !prefix.endsWith('/') ? `${prefix}/` : prefix;
  const keys: string[] = [];
  for await (const item of store.client.listObjectsV2(bucket, normalized, true) as AsyncIterable<BucketItem>)
    if (item.name) keys.push(item.name);
  if (keys.length === 0)
    throw new InputError(
      `No objects under s3://${bucket}/${normalized}. Upload the chest_xray archive there or fix the prefix.`,
    );
  const files: SourceFile[] = [];
  const skipped: SourceListing['skipped'] = [];
  for (const key of keys.sort()) {
    const relative = key.slice(normalized.length);
    const verdict = classifyPath(relative);
    if ('skip' in verdict) skipped.push({ path: relative, reason: verdict.skip });
    else files.push({ path: relative, ...verdict, read: () => readS3(store, bucket, key) });
  }
  for (const label of CLASS_NAMES) {
    if (!files.some((f) => f.label === label)) {
      throw new InputError(
        `No ${label} images under s3://${bucket}/${normalized}. Expected keys like ${normalized}train/${label}/x.jpeg.`,
      );
    }
  }
  return { description: `s3://${bucket}/${normalized}`, files, skipped };
}

async function readS3(store: ArtifactStore, bucket: string, key: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.client.getObject(bucket, key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function listSynthetic(perClass: number, seed: number): SourceListing {
  const files = CLASS_NAMES.flatMap((label) =>
    syntheticFileNames(label, perClass).map((fileName): SourceFile => ({
      path: `synthetic/${label}/${fileName}`,
      label,
      split: 'unsplit',
      read: async () => (await drawSyntheticXray(label, deriveSeed(seed, label, fileName), fileName)).jpeg,
    })),
  );
  return { description: `synthetic X-rays (${perClass} per class, seed ${seed})`, files, skipped: [] };
}
