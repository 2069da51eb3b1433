/**
 * Draws X-ray-like chest images with sharp (SVG rasterised by librsvg), so the demo and the tests
 * have a dataset with a learnable class signal and no download. NORMAL: dark, clear lung fields.
 * PNEUMONIA: the same anatomy with bright, fuzzy consolidations and a haze over the lungs, which
 * is how pneumonia looks on a radiograph. Every image is a pure function of (class, seed).
 */
import sharp from 'sharp';
import type { ClassName } from '../../pipelines/schema.js';
import { SeededRandom } from '../random.js';

export interface SyntheticImage {
  /** File name in the archive's style: `SYN-NORMAL-0001.jpeg`, `person7_synthetic_2.jpeg`. */
  fileName: string;
  label: ClassName;
  jpeg: Buffer;
}

const CANVAS = 128;

export async function drawSyntheticXray(label: ClassName, seed: number, fileName: string): Promise<SyntheticImage> {
  const rng = new SeededRandom(seed);
  const jitter = (spread: number) => (rng.float() - 0.5) * 2 * spread;
  const lungY = 62 + jitter(4);
  const lungRx = 22 + jitter(3);
  const lungRy = 38 + jitter(4);
  const lungGap = 24 + jitter(3);
  const lungFill = label === 'PNEUMONIA' ? 70 + jitter(10) : 38 + jitter(8);
  const shapes: string[] = [
    // torso and shoulders
    `<ellipse cx="64" cy="78" rx="${56 + jitter(3)}" ry="${64 + jitter(3)}" fill="rgb(120,120,120)"/>`,
    // lung fields
    ...[-1, 1].map(
      (side) =>
        `<ellipse cx="${64 + side * lungGap}" cy="${lungY}" rx="${lungRx}" ry="${lungRy}" fill="${gray(lungFill)}" filter="url(#soft)"/>`,
    ),
    // spine and heart shadow
    `<rect x="${60 + jitter(1)}" y="10" width="8" height="118" fill="rgb(185,185,185)" filter="url(#soft)"/>`,
    `<ellipse cx="${56 + jitter(3)}" cy="${84 + jitter(3)}" rx="${16 + jitter(2)}" ry="${14 + jitter(2)}" fill="rgb(165,165,165)" filter="url(#soft)"/>`,
    // clavicles
    ...[-1, 1].map(
      (side) =>
        `<path d="M64 ${22 + jitter(2)} Q ${64 + side * 30} ${16 + jitter(2)} ${64 + side * 54} ${26 + jitter(2)}" stroke="rgb(200,200,200)" stroke-width="3" fill="none"/>`,
    ),
  ];
  // ribs: faint arcs across each lung
  for (let rib = 0; rib < 6; rib++) {
    const y = lungY - lungRy + 10 + rib * 12 + jitter(1.5);
    for (const side of [-1, 1]) {
      shapes.push(
        `<path d="M ${64 + side * 6} ${y} Q ${64 + side * (lungGap + 6)} ${y - 10} ${64 + side * (lungGap + lungRx + 4)} ${y + 8}" stroke="rgb(150,150,150)" stroke-opacity="0.55" stroke-width="2" fill="none"/>`,
      );
    }
  }
  if (label === 'PNEUMONIA') {
    // consolidations: bright fuzzy patches inside the lung fields
    const patches = rng.int(2, 4);
    for (let i = 0; i < patches; i++) {
      const side = rng.int(0, 1) === 0 ? -1 : 1;
      const cx = 64 + side * (lungGap + jitter(lungRx * 0.5));
      const cy = lungY + jitter(lungRy * 0.6);
      shapes.push(
        `<ellipse cx="${cx}" cy="${cy}" rx="${9 + rng.int(0, 8)}" ry="${7 + rng.int(0, 8)}" fill="url(#opacity)"/>`,
      );
    }
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${CANVAS}" height="${CANVAS}">
  <defs>
    <filter id="soft"><feGaussianBlur stdDeviation="2.5"/></filter>
    <radialGradient id="opacity"><stop offset="0" stop-color="rgb(235,235,235)" stop-opacity="0.95"/><stop offset="1" stop-color="rgb(235,235,235)" stop-opacity="0"/></radialGradient>
  </defs>
  <rect width="100%" height="100%" fill="rgb(12,12,12)"/>
  ${shapes.join('\n  ')}
</svg>`;
  const rendered = await sharp(Buffer.from(svg)).grayscale().raw().toBuffer({ resolveWithObject: true });
  const channels = rendered.info.channels;
  const pixels = new Uint8Array(CANVAS * CANVAS);
  // film grain, seeded
  for (let i = 0; i < pixels.length; i++) {
    pixels[i] = Math.max(0, Math.min(255, rendered.data[i * channels]! + jitter(10)));
  }
  const jpeg = await sharp(Buffer.from(pixels), { raw: { width: CANVAS, height: CANVAS, channels: 1 } })
    .jpeg({ quality: 92 })
    .toBuffer();
  return { fileName, label, jpeg };
}

function gray(level: number): string {
  const v = Math.round(Math.max(0, Math.min(255, level)));
  return `rgb(${v},${v},${v})`;
}

/**
 * The file names of a synthetic dataset of `perClass` images per class. PNEUMONIA images come in
 * patients of up to three images each, so patient-aware code has something to group.
 */
export function syntheticFileNames(label: ClassName, perClass: number): string[] {
  return Array.from({ length: perClass }, (_, i) =>
    label === 'NORMAL'
      ? `SYN-NORMAL-${String(i + 1).padStart(4, '0')}.jpeg`
      : `person${Math.floor(i / 3) + 1}_synthetic_${(i % 3) + 1}.jpeg`,
  );
}
