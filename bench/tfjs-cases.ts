/**
 * The tfjs side of every bench case: times the project's own training and evaluation code
 * (`trainGan`, `fineTune`, `evaluateClassifier`), reading the clock in their progress callbacks.
 * Shared by the bench worker process (`tfjs-worker.ts`) and the GPU runner (`gpu/run.ts`).
 */
import * as tf from '@tensorflow/tfjs';
import type { GrayImage } from '../lib/images.js';
import { buildDiscriminator, buildGenerator } from '../lib/models/dcgan.js';
import { countParams } from '../lib/models/backbones/index.js';
import { trainGan, dcganOptions } from '../lib/training/gan.js';
import { buildClassifier, evaluateClassifier, fineTune, type LabelledPixels } from '../lib/training/classifier.js';
import { PRESETS } from '../pipelines/presets.js';
import { syncDevice } from '../lib/compute/device-sync.js';
import type { PipelineConfig } from '../pipelines/schema.js';
import type { CaseResult, ClassifierCase, GanCase, ModelCase } from './cases.js';

/** Deterministic noise images: the content does not change the arithmetic, only the count does. */
export function noiseImages(count: number, size: number, seed: number): GrayImage[] {
  let state = seed >>> 0 || 1;
  return Array.from({ length: count }, () => {
    const pixels = new Uint8Array(size * size);
    for (let i = 0; i < pixels.length; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      pixels[i] = state >>> 24;
    }
    return { size, pixels };
  });
}

/** Called as the warm-up steps end and as the timed steps end (the device synchronised at both). */
export interface CaseHooks {
  onWarm?: () => void;
  onTimed?: () => void;
}

/**
 * Runs `body` (a training loop that calls `tick()` after every step and checks `signal`) and
 * turns the tick times into a result: warm-up steps first, then timed steps until both
 * `minSteps` and `targetSeconds` are reached, or `maxSteps`. The device is synchronised at both
 * ends of the timed steps, so asynchronous backends (WebGPU) are timed by what they finished, not
 * by what the host queued; `hostSecondsPerStep` is the host's share, the time to queue the steps.
 */
async function timeSteps(
  c: ModelCase,
  body: (tick: () => Promise<void>, signal: AbortSignal) => Promise<unknown>,
  hooks: CaseHooks,
): Promise<Pick<CaseResult, 'imagesPerSecond' | 'secondsPerStep' | 'hostSecondsPerStep' | 'steps' | 'warmupSeconds'>> {
  const controller = new AbortController();
  const started = performance.now();
  let count = 0;
  let warmAt = 0;
  let queuedAt = 0;
  let finishedAt = 0;
  const finish = async () => {
    await syncDevice();
    finishedAt = performance.now();
    hooks.onTimed?.();
  };
  const tick = async () => {
    count++;
    if (count === c.warmup) {
      await syncDevice();
      warmAt = performance.now();
      hooks.onWarm?.();
    }
    const timed = count - c.warmup;
    if (timed <= 0 || controller.signal.aborted) return;
    queuedAt = performance.now();
    if (timed >= c.maxSteps || (timed >= c.minSteps && (queuedAt - warmAt) / 1000 >= c.targetSeconds)) {
      await finish();
      controller.abort();
    }
  };
  try {
    await body(tick, controller.signal);
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  }
  const steps = count - c.warmup;
  if (steps < 1) throw new Error(`only ${count} steps ran`);
  // A loop that ended on its own (fewer steps than maxSteps) finished its last step unsynchronised.
  if (!finishedAt) await finish();
  const seconds = (finishedAt - warmAt) / 1000;
  return {
    imagesPerSecond: (steps * c.batch) / seconds,
    secondsPerStep: seconds / steps,
    hostSecondsPerStep: (queuedAt - warmAt) / 1000 / steps,
    steps,
    warmupSeconds: (warmAt - started) / 1000,
  };
}

async function ganCase(c: GanCase, hooks: CaseHooks): Promise<CaseResult> {
  const gan: PipelineConfig['gan'] = {
    ...structuredClone(PRESETS[c.size]!.gan),
    imageSize: c.imageSize,
    latentDim: c.latentDim,
    generatorWidth: c.generatorWidth,
    discriminatorWidth: c.discriminatorWidth,
    batchSize: c.batch,
    steps: c.warmup + c.maxSteps,
    learningRate: c.learningRate,
    beta1: c.beta1,
    checkpointEvery: 1_000_000,
  };
  const params = tf.tidy(() => {
    const g = buildGenerator(dcganOptions(gan));
    const d = buildDiscriminator(dcganOptions(gan));
    const n = countParams(g) + countParams(d);
    g.dispose();
    d.dispose();
    return n;
  });
  const images = noiseImages(c.batch * 2, c.imageSize, 1);
  const timed = await timeSteps(
    c,
    (tick, signal) => trainGan({ images, gan, seed: 1, signal, onProgress: tick }),
    hooks,
  );
  return { id: c.id, status: 'ok', batch: c.batch, params, ...timed };
}

/** The preset's classifier settings (so new fields keep their defaults) with the case's sizes. */
function classifierConfig(c: ClassifierCase, epochs: number): PipelineConfig['classifier'] {
  return {
    ...structuredClone(PRESETS[c.size]!.classifier),
    backbones: [c.backbone],
    inputSize: c.inputSize,
    widthMultiplier: c.widthMultiplier,
    epochs,
    batchSize: c.batch,
    learningRate: c.learningRate,
    dropout: c.dropout,
    checkpointEvery: 1_000_000,
  };
}

function labelled(images: GrayImage[]): LabelledPixels[] {
  return images.map((image, i) => ({ image, label: i % 2 ? 'PNEUMONIA' : 'NORMAL' }));
}

async function trainCase(c: ClassifierCase, hooks: CaseHooks): Promise<CaseResult> {
  const train = labelled(noiseImages(c.batch * (c.warmup + c.maxSteps), c.inputSize, 2));
  const timed = await timeSteps(
    c,
    (tick, signal) =>
      fineTune({ backbone: c.backbone, train, classifier: classifierConfig(c, 1), seed: 1, signal, onProgress: tick }),
    hooks,
  );
  return { id: c.id, status: 'ok', batch: c.batch, ...timed };
}

async function inferCase(c: ClassifierCase, hooks: CaseHooks): Promise<CaseResult> {
  const model = buildClassifier(c.backbone, classifierConfig(c, 1), 1);
  const params = countParams(model);
  const test = labelled(noiseImages(c.batch, c.inputSize, 3));
  try {
    const timed = await timeSteps(
      c,
      async (tick, signal) => {
        while (!signal.aborted) {
          await evaluateClassifier(model, test, c.inputSize, c.batch);
          await tick();
        }
      },
      hooks,
    );
    return { id: c.id, status: 'ok', batch: c.batch, params, ...timed };
  } finally {
    model.dispose();
  }
}

/**
 * Runs one case and returns its result (a failure is a result too); `hooks` are called when the
 * warm-up steps are done. Whatever the case leaves behind (an aborted loop's variables) is freed.
 */
export async function runModelCase(c: ModelCase, hooks: CaseHooks = {}): Promise<CaseResult> {
  try {
    return c.kind === 'gan-train'
      ? await ganCase(c, hooks)
      : c.kind === 'cls-train'
        ? await trainCase(c, hooks)
        : await inferCase(c, hooks);
  } catch (err) {
    return { id: c.id, status: 'failed', note: (err as Error).message.split('\n')[0] };
  } finally {
    tf.disposeVariables();
  }
}
