/**
 * Loads stored images for training and evaluation, decoded at the size a model needs. Decoded
 * pixels are cached per process by (content hash, size): the four backbones of a trial read the
 * same split, and content addressing makes the cache always valid.
 */
import { LRUCache } from 'lru-cache';
import pLimit from 'p-limit';
import { decodeGray, type GrayImage } from '../images.js';
import type { ArtifactRef, ArtifactStore } from '../storage.js';

const decodedCache = new LRUCache<string, GrayImage>({
  maxSize: Number(process.env.PNEUMOGAN_IMAGE_CACHE_BYTES ?? 1024 ** 3),
  sizeCalculation: (image) => image.pixels.byteLength,
});

export async function loadGrayImages(
  store: ArtifactStore,
  refs: readonly ArtifactRef[],
  size: number,
  onProgress?: (done: number, total: number) => void,
): Promise<GrayImage[]> {
  const limit = pLimit(8);
  let done = 0;
  return Promise.all(
    refs.map((ref) =>
      limit(async () => {
        const cacheKey = `${ref.sha256}@${size}`;
        let image = decodedCache.get(cacheKey);
        if (!image) {
          const { size: decodedSize, pixels } = await decodeGray(await store.get(ref), size, ref.key);
          image = { size: decodedSize, pixels };
          decodedCache.set(cacheKey, image);
        }
        onProgress?.(++done, refs.length);
        return image;
      }),
    ),
  );
}
