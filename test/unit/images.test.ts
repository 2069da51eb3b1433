import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { InputError } from '../../lib/errors.js';
import { decodeGray } from '../../lib/images.js';

/** What decodeGray returned before its equal-channel shortcut: sharp's grayscale(), first channel. */
async function referenceGray(bytes: Buffer, size: number): Promise<Uint8Array> {
  const { data, info } = await sharp(bytes)
    .grayscale()
    .resize(size, size, { fit: 'fill' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return Uint8Array.from({ length: size * size }, (_, i) => data[i * info.channels]!);
}

/** A 48 x 40 picture with a smooth gradient and some texture; `colour` tints it. */
function picture(channels: 1 | 2 | 3 | 4, colour = false) {
  const width = 48;
  const height = 40;
  const data = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = (x * 5 + y * 3 + ((x * y) % 17)) % 256;
      const at = (y * width + x) * channels;
      for (let c = 0; c < channels; c++) data[at + c] = v;
      if (colour) data[at + 1] = (v + 40) % 256;
      if (channels === 2 || channels === 4) data[at + channels - 1] = 200 + (x % 50);
    }
  }
  return { data, raw: { width, height, channels } };
}

test('libvips maps every gray sRGB value to itself, which the equal-channel shortcut relies on', async () => {
  const rgb = Buffer.alloc(256 * 3);
  for (let v = 0; v < 256; v++) rgb.fill(v, v * 3, v * 3 + 3);
  const gray = await sharp(rgb, { raw: { width: 256, height: 1, channels: 3 } })
    .grayscale()
    .raw()
    .toBuffer();
  assert.deepEqual([...gray], [...Array(256).keys()]);
});

test('decodeGray returns exactly what sharp grayscale() does, for gray, colour, alpha and 16-bit inputs', async () => {
  const inputs: Record<string, Buffer> = {};
  for (const channels of [1, 2, 3, 4] as const) {
    const { data, raw } = picture(channels);
    const input = sharp(data, { raw: { width: raw.width, height: raw.height, channels } });
    inputs[`png, ${channels} equal channels`] = await input.clone().png().toBuffer();
    if (channels === 3) inputs['jpeg, gray stored as RGB'] = await input.clone().jpeg({ quality: 90 }).toBuffer();
  }
  const colour = picture(3, true);
  inputs['png, colour'] = await sharp(colour.data, { raw: colour.raw }).png().toBuffer();
  inputs['jpeg, colour'] = await sharp(colour.data, { raw: colour.raw }).jpeg().toBuffer();
  inputs['png, 16-bit gray'] = await sharp(picture(1).data, { raw: { width: 48, height: 40, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
  for (const [name, bytes] of Object.entries(inputs)) {
    for (const size of [16, 40, 64]) {
      const decoded = await decodeGray(bytes, size, name);
      assert.equal(decoded.size, size);
      assert.deepEqual(decoded.pixels, await referenceGray(bytes, size), `${name} at ${size} px`);
      assert.deepEqual([decoded.originalWidth, decoded.originalHeight], [48, 40], name);
    }
  }
});

test('a truncated image is an InputError naming the file', async () => {
  const { data } = picture(3);
  const jpeg = await sharp(data, { raw: { width: 48, height: 40, channels: 3 } })
    .jpeg()
    .toBuffer();
  await assert.rejects(
    decodeGray(jpeg.subarray(0, jpeg.length / 2), 32, 'NORMAL/broken.jpeg'),
    (err: unknown) => err instanceof InputError && /NORMAL\/broken\.jpeg/.test(err.message),
  );
});
