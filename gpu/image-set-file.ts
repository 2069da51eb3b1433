/**
 * Labelled grey images of any sizes as one file of pixels and a JSON index beside it
 * (`<file>.json`): how the paper trial (gpu/paper-trial.ts) hands images to its step processes
 * and back, without an image codec.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import type { LabelledPixels } from '../lib/training/classifier.js';
import { CLASS_NAMES } from '../pipelines/schema.js';

export async function writeImageSet(file: string, images: readonly LabelledPixels[]): Promise<void> {
  const pixels = Buffer.concat(images.map((i) => i.image.pixels));
  await writeFile(file, pixels);
  const index = images.map((i) => ({ size: i.image.size, label: i.label }));
  await writeFile(`${file}.json`, JSON.stringify(index));
}

const ImageSetIndexSchema = z.array(z.object({ size: z.number().int().positive(), label: z.enum(CLASS_NAMES) }));

export async function readImageSet(file: string): Promise<LabelledPixels[]> {
  const index = ImageSetIndexSchema.parse(JSON.parse(await readFile(`${file}.json`, 'utf8')));
  const pixels = await readFile(file);
  let at = 0;
  return index.map(({ size, label }) => {
    const image = { size, pixels: new Uint8Array(pixels.subarray(at, at + size * size)) };
    at += size * size;
    return { image, label };
  });
}
