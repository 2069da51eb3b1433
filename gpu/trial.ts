/**
 * The GPU steps of one `smoke` trial, without Temporal or S3: what a GPU worker does for a trial
 * (train a DCGAN per class, synthesize 9x, fine-tune the four backbones on the pooled set,
 * evaluate on its 20% split and on held-out real images), on images drawn here in plain JS so
 * that the GPU pack needs no image codec. Stage times and accuracies say whether the GPU path
 * trains, and how long each step takes on that device.
 */
import * as tf from '@tensorflow/tfjs';
import type { GrayImage } from '../lib/images.js';
import { deriveSeed, SeededRandom } from '../lib/random.js';
import { evaluateClassifier, fineTune, type LabelledPixels } from '../lib/training/classifier.js';
import { generateImages, trainGan } from '../lib/training/gan.js';
import { PRESETS } from '../pipelines/presets.js';
import { CLASS_NAMES, type ClassName, type PipelineConfig } from '../pipelines/schema.js';

export interface TrialStage {
  stage: string;
  seconds: number;
  detail: string;
}

export interface TrialResult {
  config: { gan: PipelineConfig['gan']; classifier: PipelineConfig['classifier']; realPerClass: number };
  stages: TrialStage[];
  accuracy: Record<string, { split: number; heldout: number }>;
  seconds: number;
}

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

/**
 * Runs the trial. `quick` shrinks it to a few GAN steps, one epoch and one synthetic image per
 * real one, for checking the path on a CPU; the full size is the `smoke` preset's.
 */
export async function runSmokeTrialGpuSteps(options: {
  quick: boolean;
  seed?: number;
  log: (line: string) => void;
  /** Seconds from now after which no further fine-tuning starts (those backbones are skipped). */
  deadlineSeconds?: number;
}): Promise<TrialResult> {
  const started = performance.now();
  const preset = PRESETS.smoke!;
  const seed = options.seed ?? 1;
  const gan = { ...preset.gan, ...(options.quick ? { steps: 4 } : {}) };
  const classifier = { ...preset.classifier, ...(options.quick ? { epochs: 1 } : {}) };
  const syntheticPerReal = options.quick ? 1 : preset.protocol.syntheticPerReal;
  // The smoke preset's subset: 20% of 100 synthetic images per class.
  const realPerClass = Math.round((preset.protocol.subsetFraction ?? 0.2) * 100);
  const stages: TrialStage[] = [];
  const stage = async <T>(name: string, body: () => Promise<T>, detail: (r: T) => string): Promise<T> => {
    const t0 = performance.now();
    const result = await body();
    const entry = { stage: name, seconds: (performance.now() - t0) / 1000, detail: detail(result) };
    stages.push(entry);
    options.log(`[trial] ${name}: ${entry.seconds.toFixed(1)} s (${entry.detail})`);
    return result;
  };

  const real = (label: ClassName, count: number, salt: string) =>
    Array.from({ length: count }, (_, i) => drawXray(label, classifier.inputSize, deriveSeed(seed, salt, label, i)));
  const pool: LabelledPixels[] = [];
  for (const label of CLASS_NAMES) {
    const images = real(label, realPerClass, 'real');
    const trained = await stage(
      `gan:${label}`,
      () => trainGan({ images: images.map((i) => resizeGray(i, gan.imageSize)), gan, seed: deriveSeed(seed, label) }),
      (r) =>
        `${gan.steps} steps, batch ${gan.batchSize}, final D loss ${r.state.meta.history.discriminatorLoss.at(-1)?.toFixed(3)}`,
    );
    const synthetic = await stage(
      `synthesize:${label}`,
      () =>
        generateImages(
          trained.generator,
          gan.latentDim,
          Array.from({ length: images.length * syntheticPerReal }, (_, i) => deriveSeed(seed, 'latent', label, i)),
        ),
      (r) => `${r.length} images`,
    );
    trained.generator.dispose();
    tf.disposeVariables();
    pool.push(...images.map((image) => ({ image, label })));
    pool.push(...synthetic.map((image) => ({ image: resizeGray(image, classifier.inputSize), label })));
  }
  const order = new SeededRandom(deriveSeed(seed, 'split'));
  for (let i = pool.length - 1; i > 0; i--) {
    const j = order.int(0, i);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  const cut = Math.round(pool.length * preset.protocol.trainFraction);
  const train = pool.slice(0, cut);
  const test = pool.slice(cut);
  const heldout = CLASS_NAMES.flatMap((label) =>
    real(label, realPerClass, 'heldout').map((image) => ({ image, label })),
  );

  const accuracy: TrialResult['accuracy'] = {};
  const deadline = started + (options.deadlineSeconds ?? Infinity) * 1000;
  for (const backbone of classifier.backbones) {
    if (performance.now() > deadline) {
      stages.push({ stage: `fine-tune:${backbone}`, seconds: 0, detail: 'skipped: over the time budget' });
      options.log(`[trial] fine-tune:${backbone}: skipped (over the time budget)`);
      continue;
    }
    const { model } = await stage(
      `fine-tune:${backbone}`,
      () => fineTune({ backbone, train, classifier, seed }),
      () => `${train.length} images x ${classifier.epochs} epoch(s), batch ${classifier.batchSize}`,
    );
    const scores = await stage(
      `evaluate:${backbone}`,
      async () => ({
        split: (await evaluateClassifier(model, test, classifier.inputSize)).metrics.accuracy,
        heldout: (await evaluateClassifier(model, heldout, classifier.inputSize)).metrics.accuracy,
      }),
      (r) =>
        `accuracy ${(100 * r.split).toFixed(1)}% on the ${test.length}-image split, ${(100 * r.heldout).toFixed(1)}% on ${heldout.length} held-out`,
    );
    accuracy[backbone] = scores;
    model.dispose();
    tf.disposeVariables();
  }
  return {
    config: { gan, classifier, realPerClass },
    stages,
    accuracy,
    seconds: (performance.now() - started) / 1000,
  };
}
