/**
 * Image codecs and pixel plumbing, all through sharp. Models see images as 8-bit grayscale
 * squares; the pipeline stores them as grayscale PNG (lossless, so a stored image hashes the same
 * every time it is re-encoded from the same pixels).
 */
import sharp from 'sharp';
import { InputError } from './errors.js';

// libvips' operation cache (100 operations, 50 MB) only pays when the same image is processed
// again; here every image passes once, and the bookkeeping cost ingest 4% (215 to 225 images/s).
sharp.cache(false);

/** An 8-bit grayscale square image, row-major. */
export interface GrayImage {
  size: number;
  pixels: Uint8Array;
}

/**
 * Decodes any format sharp reads (JPEG, PNG; RGB or gray; any size), converts to grayscale and
 * resizes to `size` x `size`. Aspect ratio is not kept: X-rays are squashed to a square as
 * MATLAB's imresize would in the paper, and the sample data already is. A truncated or corrupt
 * file is an InputError naming `source`.
 *
 * Most X-ray files are gray pictures stored as RGB (all 5,216 of kermany-train). For those, the
 * first channel is exactly what sharp's grayscale() returns (libvips maps every gray sRGB value
 * to itself; test/unit/images.test.ts checks all 256), and skipping the colourspace conversion
 * saves a third of the decoding time (2.2 to 1.5 ms per 224-px image on one core). A picture with
 * colour in it, or more than 8 bits per sample, takes sharp's grayscale().
 */
export async function decodeGray(
  bytes: Uint8Array,
  size: number,
  source: string,
): Promise<GrayImage & { originalWidth: number; originalHeight: number }> {
  try {
    const decode = () =>
      sharp(bytes, { failOn: 'truncated', sequentialRead: true }).resize(size, size, { fit: 'fill' });
    const meta = await sharp(bytes).metadata();
    // 16-bit inputs are resized at 16 bits after grayscale(), so only 8-bit ones take the shortcut.
    const direct = meta.depth === 'uchar' ? await decode().raw().toBuffer({ resolveWithObject: true }) : undefined;
    let pixels = direct && grayFromEqualChannels(direct.data, direct.info.channels);
    if (pixels === undefined) {
      // sharp keeps an alpha channel through grayscale(); keep one byte per pixel.
      const gray = await decode().grayscale().raw().toBuffer({ resolveWithObject: true });
      pixels = grayFromEqualChannels(gray.data, gray.info.channels)!; // 1 or 2 channels: never undefined
    }
    return { size, pixels, originalWidth: meta.width ?? size, originalHeight: meta.height ?? size };
  } catch (err) {
    throw new InputError(
      `Cannot decode image ${source}: ${(err as Error).message}. Replace or remove the file (it is corrupt, truncated, or not an image).`,
    );
  }
}

/**
 * The gray plane of decoded pixels whose colour channels are all equal (1 or 2 channels: gray,
 * gray + alpha; 3 or 4: RGB with R = G = B, with or without alpha), or undefined when a pixel has
 * colour. One pass: this runs on every ingested image (and in the GPU pack, gpu/paper-data.ts).
 */
export function grayFromEqualChannels(pixels: Uint8Array, channels: number): Uint8Array | undefined {
  if (channels === 1) return new Uint8Array(pixels);
  const out = new Uint8Array(pixels.length / channels);
  const coloured = channels >= 3;
  for (let i = 0, at = 0; i < out.length; i++, at += channels) {
    const v = pixels[at]!;
    if (coloured && (pixels[at + 1] !== v || pixels[at + 2] !== v)) return undefined;
    out[i] = v;
  }
  return out;
}

export function encodeGrayPng(image: GrayImage): Promise<Buffer> {
  // Raw single-channel input is treated as sRGB unless told otherwise: keep the PNG 8-bit gray.
  return (
    sharp(Buffer.from(image.pixels), { raw: { width: image.size, height: image.size, channels: 1 } })
      .toColourspace('b-w')
      // zlib level 6, not 9: 28% less encoding time for 5% more bytes (224 px X-rays: 41 vs 39 KB).
      .png({ compressionLevel: 6 })
      .toBuffer()
  );
}

/** Maps tanh outputs in [-1, 1] to 8-bit pixels. */
export function pixelsFromUnitRange(values: Float32Array | number[], size: number, offset = 0): Uint8Array {
  const out = new Uint8Array(size * size);
  for (let i = 0; i < out.length; i++) {
    out[i] = Math.max(0, Math.min(255, Math.round((values[offset + i]! + 1) * 127.5)));
  }
  return out;
}

/** Tiles equally sized images into one PNG grid with a thin gap, for the report. */
export async function imageGridPng(images: readonly GrayImage[], columns: number, scale = 1): Promise<Buffer> {
  const first = images[0];
  if (!first) throw new Error('imageGridPng needs at least one image');
  const gap = 2;
  const cell = first.size;
  const rows = Math.ceil(images.length / columns);
  const width = columns * cell + (columns + 1) * gap;
  const height = rows * cell + (rows + 1) * gap;
  const canvas = new Uint8Array(width * height).fill(255);
  images.forEach((image, index) => {
    const x0 = gap + (index % columns) * (cell + gap);
    const y0 = gap + Math.floor(index / columns) * (cell + gap);
    for (let y = 0; y < cell; y++) {
      canvas.set(image.pixels.subarray(y * cell, (y + 1) * cell), (y0 + y) * width + x0);
    }
  });
  return sharp(Buffer.from(canvas), { raw: { width, height, channels: 1 } })
    .toColourspace('b-w')
    .resize(width * scale, height * scale, { kernel: 'nearest' })
    .png()
    .toBuffer();
}
