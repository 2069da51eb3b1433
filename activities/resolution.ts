/**
 * The resolution-matched variant of the paper's protocol: the real subset stored at the GAN's
 * image size, as generated images are, so every image of the pooled split is upsampled from the
 * same resolution by the same code and sharpness cannot tell a real image from a generated one.
 * Runs on the orchestration queue (image resizing only).
 */
import pLimit from 'p-limit';
import { ImageSetSchema, type ImageSet, type LabeledImage } from '../lib/data/manifest.js';
import { loadGrayImages } from '../lib/data/load.js';
import { encodeGrayPng } from '../lib/images.js';
import { MatchResolutionInputSchema, type MatchResolutionInput, type MatchResolutionOutput } from './types.js';
import { memoized, ProgressReporter, runActivity, type ActivityDeps } from './shared.js';

export function createResolutionActivities(deps: ActivityDeps) {
  const { store } = deps;
  return {
    async matchResolution(input: MatchResolutionInput): Promise<MatchResolutionOutput> {
      return runActivity(MatchResolutionInputSchema, input, (parsed) =>
        memoized(deps, parsed, async (recorder) => {
          const { subset, size } = parsed;
          const { images } = await store.getJson(subset, ImageSetSchema);
          const progress = new ProgressReporter(`resample to ${size}px`, images.length);
          const pixels = await loadGrayImages(
            store,
            images.map((i) => i.image),
            size,
            () => progress.stillWorking(),
          );
          const limit = pLimit(8);
          let done = 0;
          const resampled = await Promise.all(
            images.map((image, i) =>
              limit(async (): Promise<LabeledImage> => {
                const ref = await recorder.put(
                  await encodeGrayPng(pixels[i]!),
                  'png',
                  'resampled-image',
                  [{ role: 'source', ref: image.image }],
                  { size },
                );
                progress.progress(++done);
                return { ...image, image: ref };
              }),
            ),
          );
          const set: ImageSet = {
            kind: 'image-set',
            purpose: `the real subset ${subset.sha256.slice(0, 12)} at ${size}px, the GAN's resolution`,
            images: resampled,
          };
          const ref = await recorder.putJson(set, 'image-set', [{ role: 'subset', ref: subset }], { size });
          return { images: ref, count: resampled.length };
        }),
      );
    },
  };
}
