/**
 * The classifier's input (lib/training/classifier.ts toInputTensor): grey levels looked up on the
 * device give exactly the values of the per-pixel normalisation ((v / 255 - mean) / std per
 * ImageNet channel, in double precision, rounded to float32 once), and the size check still
 * names the image.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '../../lib/random.js';
import { toInputTensor } from '../../lib/training/classifier.js';

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

test('grey levels become normalised RGB, bit for bit as a per-pixel computation', async () => {
  await tf.setBackend('cpu');
  const rng = new SeededRandom(3);
  const size = 7;
  // Every level appears (0 and 255 included), in three images.
  const images = Array.from({ length: 3 }, (_, i) => ({
    size,
    pixels: Uint8Array.from({ length: size * size }, (_, p) => (i === 0 ? (p * 6) % 256 : rng.int(0, 255))),
  }));
  images[1]!.pixels[0] = 255;
  const expected = new Float32Array(3 * size * size * 3);
  images.forEach((image, i) =>
    image.pixels.forEach((level, p) => {
      for (let c = 0; c < 3; c++) expected[(i * size * size + p) * 3 + c] = (level / 255 - MEAN[c]!) / STD[c]!;
    }),
  );
  const before = tf.memory().numTensors;
  const input = toInputTensor(images, size);
  assert.deepEqual(input.shape, [3, size, size, 3]);
  assert.deepEqual(await input.data(), expected);
  input.dispose();
  assert.equal(tf.memory().numTensors, before, 'the lookup table and the levels are freed');
});

test('an image of the wrong size is named', () => {
  assert.throws(
    () =>
      toInputTensor(
        [
          { size: 4, pixels: new Uint8Array(16) },
          { size: 5, pixels: new Uint8Array(25) },
        ],
        4,
      ),
    /classifier image 1 is 5px, expected 4px/,
  );
});
