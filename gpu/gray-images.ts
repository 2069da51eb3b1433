/**
 * Grey pictures for the GPU trials without an image codec: X-ray-like stand-ins drawn in plain
 * JS where the pack carries no X-rays, and a resize to the GAN's and the backbones' sizes.
 */
import type { GrayImage } from '../lib/images.js';
import { SeededRandom } from '../lib/random.js';
import type { ClassName } from '../pipelines/schema.js';

/**
 * A chest-X-ray-like picture: a grey thorax with two dark lungs; PNEUMONIA adds bright patches
 * inside them (as the project's synthetic data does, there with SVG and sharp).
 */
export function drawXray(label: ClassName, size: number, seed: number): GrayImage {
  const rng = new SeededRandom(seed);
  const pixels = new Uint8Array(size * size);
  const lungs = [0.32, 0.68].map((cx) => ({
    cx: cx + (rng.float() - 0.5) * 0.06,
    cy: 0.5 + (rng.float() - 0.5) * 0.06,
    rx: 0.14 + rng.float() * 0.04,
    ry: 0.3 + rng.float() * 0.06,
  }));
  const patches =
    label === 'PNEUMONIA'
      ? Array.from({ length: 2 + rng.int(0, 2) }, () => {
          const lung = lungs[rng.int(0, 1)]!;
          return { cx: lung.cx + (rng.float() - 0.5) * lung.rx, cy: lung.cy + (rng.float() - 0.5) * lung.ry, r: 0.06 };
        })
      : [];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const u = (x + 0.5) / size;
      const v = (y + 0.5) / size;
      let value = 150 + 40 * Math.cos((u - 0.5) * Math.PI);
      for (const l of lungs) if (((u - l.cx) / l.rx) ** 2 + ((v - l.cy) / l.ry) ** 2 < 1) value = 45;
      for (const p of patches) if ((u - p.cx) ** 2 + (v - p.cy) ** 2 < p.r ** 2) value = 210;
      pixels[y * size + x] = Math.max(0, Math.min(255, value + (rng.float() - 0.5) * 30));
    }
  }
  return { size, pixels };
}

/** Nearest-neighbour or box resize (the pipeline uses sharp's Lanczos; the GPU steps only need pixels). */
export function resizeGray(image: GrayImage, size: number): GrayImage {
  const pixels = new Uint8Array(size * size);
  const scale = image.size / size;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (scale <= 1) {
        pixels[y * size + x] = image.pixels[Math.floor(y * scale) * image.size + Math.floor(x * scale)]!;
      } else {
        let sum = 0;
        let n = 0;
        for (let yy = Math.floor(y * scale); yy < Math.floor((y + 1) * scale); yy++)
          for (let xx = Math.floor(x * scale); xx < Math.floor((x + 1) * scale); xx++, n++)
            sum += image.pixels[yy * image.size + xx]!;
        pixels[y * size + x] = Math.round(sum / n);
      }
    }
  }
  return { size, pixels };
}
