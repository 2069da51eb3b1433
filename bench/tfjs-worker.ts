/**
 * One backend's model measurements, in a process of its own (a process can hold one tfjs
 * backend cleanly). Started by `bench/run.ts` as
 *
 *   PNEUMOGAN_BACKEND=cpu|tensorflow|tensorflow-gpu node --import tsx bench/tfjs-worker.ts '<cases JSON>'
 *
 * It times the project's own training and evaluation code (`trainGan`, `fineTune`,
 * `evaluateClassifier`), reading the clock in their progress callbacks, and prints one
 * `@@bench {json}` line per event on stdout; everything else goes to stderr.
 */
import * as tf from '@tensorflow/tfjs';
import { initComputeBackend } from '../lib/compute/backend.js';
import type { GrayImage } from '../lib/images.js';
import { buildDiscriminator, buildGenerator } from '../lib/models/dcgan.js';
import { countParams } from '../lib/models/backbones/index.js';
import { trainGan, dcganOptions } from '../lib/training/gan.js';
import { buildClassifier, evaluateClassifier, fineTune, type LabelledPixels } from '../lib/training/classifier.js';
import { PRESETS } from '../pipelines/presets.js';
import type { PipelineConfig } from '../pipelines/schema.js';
import { RESULT_PREFIX, type CaseResult, type ClassifierCase, type GanCase, type ModelCase } from './cases.js';

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(event)}\n`);
}

/** Deterministic noise images: the content does not change the arithmetic, only the count does. */
function noiseImages(count: number, size: number, seed: number): GrayImage[] {
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

/**
 * Runs `body` (a training loop that calls `tick()` after every step and checks `signal`) and
 * turns the tick times into a result: warm-up steps first, then timed steps until both
 * `minSteps` and `targetSeconds` are reached, or `maxSteps`.
 */
async function timeSteps(
  c: ModelCase,
  body: (tick: () => void, signal: AbortSignal) => Promise<unknown>,
): Promise<Pick<CaseResult, 'imagesPerSecond' | 'secondsPerStep' | 'steps' | 'warmupSeconds'>> {
  const controller = new AbortController();
  const started = performance.now();
  const ticks: number[] = [];
  const tick = () => {
    ticks.push(performance.now());
    if (ticks.length === c.warmup) emit({ type: 'warm', id: c.id });
    const timed = ticks.length - c.warmup;
    if (timed <= 0) return;
    const elapsed = (ticks.at(-1)! - ticks[c.warmup - 1]!) / 1000;
    if (timed >= c.maxSteps || (timed >= c.minSteps && elapsed >= c.targetSeconds)) controller.abort();
  };
  try {
    await body(tick, controller.signal);
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  }
  const steps = ticks.length - c.warmup;
  if (steps < 1) throw new Error(`only ${ticks.length} steps ran`);
  const seconds = (ticks.at(-1)! - ticks[c.warmup - 1]!) / 1000;
  return {
    imagesPerSecond: (steps * c.batch) / seconds,
    secondsPerStep: seconds / steps,
    steps,
    warmupSeconds: (ticks[c.warmup - 1]! - started) / 1000,
  };
}

async function ganCase(c: GanCase): Promise<CaseResult> {
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
  const timed = await timeSteps(c, (tick, signal) => trainGan({ images, gan, seed: 1, signal, onProgress: tick }));
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

async function trainCase(c: ClassifierCase): Promise<CaseResult> {
  const train = labelled(noiseImages(c.batch * (c.warmup + c.maxSteps), c.inputSize, 2));
  const timed = await timeSteps(c, (tick, signal) =>
    fineTune({ backbone: c.backbone, train, classifier: classifierConfig(c, 1), seed: 1, signal, onProgress: tick }),
  );
  return { id: c.id, status: 'ok', batch: c.batch, ...timed };
}

async function inferCase(c: ClassifierCase): Promise<CaseResult> {
  const model = buildClassifier(c.backbone, classifierConfig(c, 1), 1);
  const params = countParams(model);
  const test = labelled(noiseImages(c.batch, c.inputSize, 3));
  try {
    const timed = await timeSteps(c, async (tick, signal) => {
      while (!signal.aborted) {
        await evaluateClassifier(model, test, c.inputSize, c.batch);
        tick();
      }
    });
    return { id: c.id, status: 'ok', batch: c.batch, params, ...timed };
  } finally {
    model.dispose();
  }
}

const cases = JSON.parse(process.argv[2] ?? '[]') as ModelCase[];
try {
  const backend = await initComputeBackend((line) => process.stderr.write(`${line}\n`));
  emit({ type: 'hello', backend: backend.name, packageName: backend.packageName, tfBackend: tf.getBackend() });
  for (const c of cases) {
    emit({ type: 'start', id: c.id });
    let result: CaseResult;
    try {
      result =
        c.kind === 'gan-train' ? await ganCase(c) : c.kind === 'cls-train' ? await trainCase(c) : await inferCase(c);
    } catch (err) {
      result = { id: c.id, status: 'failed', note: (err as Error).message.split('\n')[0] };
    }
    // An aborted training loop leaves its model's variables behind; nothing survives a case.
    tf.disposeVariables();
    emit({ type: 'result', ...result });
  }
  emit({ type: 'done' });
} catch (err) {
  emit({ type: 'fatal', message: (err as Error).message.split('\n')[0] });
  process.exitCode = 1;
}
