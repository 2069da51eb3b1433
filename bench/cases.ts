/**
 * What `npm run bench` measures, as plain data shared by the tfjs worker (`tfjs-worker.ts`) and
 * the PyTorch reference (`reference/torch_bench.py`), so both run the same architectures at the
 * same sizes and batch sizes. Sizes come from the presets: `smoke` and `paper`.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { PRESETS } from '../pipelines/presets.js';
import { BACKBONES, type Backbone } from '../pipelines/schema.js';

export type SizeName = 'smoke' | 'paper';

interface Timing {
  /** Untimed steps first (graph set-up, allocator warm-up). */
  warmup: number;
  /** Timed steps: at least `minSteps`, then more until `targetSeconds` of timed work or `maxSteps`. */
  minSteps: number;
  maxSteps: number;
  targetSeconds: number;
}

export interface GanCase extends Timing {
  id: string;
  kind: 'gan-train';
  size: SizeName;
  imageSize: 32 | 64;
  latentDim: number;
  generatorWidth: number;
  discriminatorWidth: number;
  batch: number;
  learningRate: number;
  beta1: number;
}

export interface ClassifierCase extends Timing {
  id: string;
  kind: 'cls-train' | 'cls-infer';
  size: SizeName;
  backbone: Backbone;
  inputSize: number;
  widthMultiplier: number;
  batch: number;
  learningRate: number;
  dropout: number;
}

export type ModelCase = GanCase | ClassifierCase;

export type Engine = 'cpu' | 'tensorflow' | 'tensorflow-gpu' | 'pytorch';

export interface PlanOptions {
  quick: boolean;
}

/**
 * Timing per engine and size. Small on purpose: the whole bench has to finish in a few minutes
 * on two shared cores, so every number is a mean over few steps (the table marks single-step
 * ones). The pure-JS backend at paper size gets exactly one warm-up and one timed step (a
 * paper-size step takes it tens of seconds), under the caps below.
 */
function timing(engine: Engine, size: SizeName, kind: ModelCase['kind']): Timing {
  if (size === 'paper' && engine === 'cpu') return { warmup: 1, minSteps: 1, maxSteps: 1, targetSeconds: 0 };
  if (size === 'paper') return { warmup: 1, minSteps: 2, maxSteps: 5, targetSeconds: kind === 'cls-infer' ? 1.5 : 3 };
  return { warmup: 2, minSteps: 3, maxSteps: 30, targetSeconds: 1 };
}

export interface Caps {
  /** Seconds allowed for model build + the warm-up step(s); past it the case is "skipped (> N s)". */
  stepSeconds: number;
  /** Seconds allowed for the whole case. */
  caseSeconds: number;
}

/**
 * When a case is abandoned. A warm-up step still running after `stepSeconds` means the timed
 * step would take about as long again, so the case stops there rather than at `caseSeconds`;
 * the table then prints "skipped (> N s)" and uses batch / N as an upper bound of its rate.
 */
export function caps(engine: Engine, c: ModelCase): Caps {
  if (c.size === 'smoke') return { stepSeconds: 30, caseSeconds: 60 };
  if (engine === 'cpu') return { stepSeconds: 12, caseSeconds: 30 };
  return { stepSeconds: 60, caseSeconds: 120 };
}

export function sizesFor(options: PlanOptions): SizeName[] {
  return options.quick ? ['smoke'] : ['smoke', 'paper'];
}

export function modelCases(engine: Engine, options: PlanOptions): ModelCase[] {
  const cases: ModelCase[] = [];
  for (const size of sizesFor(options)) {
    const { gan, classifier } = PRESETS[size]!;
    cases.push({
      id: `gan-train/${size}`,
      kind: 'gan-train',
      size,
      imageSize: gan.imageSize,
      latentDim: gan.latentDim,
      generatorWidth: gan.generatorWidth,
      discriminatorWidth: gan.discriminatorWidth,
      batch: gan.batchSize,
      learningRate: gan.learningRate,
      beta1: gan.beta1,
      ...timing(engine, size, 'gan-train'),
    });
    for (const kind of ['cls-train', 'cls-infer'] as const) {
      for (const backbone of BACKBONES) {
        cases.push({
          id: `${kind}/${backbone}/${size}`,
          kind,
          size,
          backbone,
          inputSize: classifier.inputSize,
          widthMultiplier: classifier.widthMultiplier,
          batch: classifier.batchSize,
          learningRate: classifier.learningRate,
          dropout: classifier.dropout,
          ...timing(engine, size, kind),
        });
      }
    }
  }
  return cases;
}

/** One measured case, as a worker reports it. */
export interface CaseResult {
  id: string;
  status: 'ok' | 'skipped' | 'failed';
  /** Images per second over the timed steps. */
  imagesPerSecond?: number;
  /** Mean seconds per timed step. */
  secondsPerStep?: number;
  /** Time to queue a step on the host (equal to secondsPerStep on synchronous backends). */
  hostSecondsPerStep?: number;
  steps?: number;
  batch?: number;
  warmupSeconds?: number;
  /** Skipped cases: what the cap proves, a step takes at least this long (so rate <= batch / it). */
  minSecondsPerStep?: number;
  /** Cores' worth of CPU other processes used during the timed steps (Linux; set by the runner). */
  otherCores?: number;
  /** Trainable parameters of the model(s) (generator + discriminator for the GAN). */
  params?: number;
  note?: string;
}

/** Marks a worker's result lines on stdout (anything else there is ignored). */
export const RESULT_PREFIX = '@@bench ';

/** Every image file under `dir` (NORMAL/ and PNEUMONIA/ layout), sorted. */
export async function imageFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && /\.(jpe?g|png)$/i.test(e.name))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}
