/**
 * One GPU step of a paper-size trial, run in a process of its own (gpu/paper-trial.ts starts
 * them): train one class's DCGAN and synthesize its images, or fine-tune one backbone and run its
 * evaluations. A GPU worker process queues its kernels from one JavaScript thread, so several
 * processes, like several GPU workers on one machine, are what keeps a GPU busy. Checkpoints are
 * taken as the activities take them (every `checkpointEvery` steps) and written to disk, so their
 * cost is in the stage times; a job whose checkpoint file exists resumes from it, as an activity's
 * retry does. Events go to stdout as `@@paper-job {json}` lines.
 */
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { GrayImage } from '../lib/images.js';
import { auc } from '../lib/protocol/scores.js';
import { deriveSeed } from '../lib/random.js';
import { decodeSafetensors, encodeSafetensors, type TrainingState } from '../lib/training/checkpoint.js';
import { takeData } from '../lib/training/loop.js';
import { readImageSet, writeImageSet } from './image-set-file.js';
import {
  evaluateClassifier,
  fineTune,
  type ClassifierMeta,
  type Evaluation,
  type LabelledPixels,
} from '../lib/training/classifier.js';
import { generateImages, trainGan, type GanMeta } from '../lib/training/gan.js';
import { BACKBONES, CLASS_NAMES, PipelineConfigSchema } from '../pipelines/schema.js';

export const JOB_EVENT_PREFIX = '@@paper-job ';

const GanJobSchema = z.object({
  kind: z.literal('gan'),
  label: z.enum(CLASS_NAMES),
  seed: z.number().int(),
  gan: PipelineConfigSchema.shape.gan,
  /** The class's real images at the GAN's size (an image-set file, see {@link writeImageSet}). */
  images: z.string(),
  syntheticCount: z.number().int().nonnegative(),
  /** Where the synthetic images go. */
  out: z.string(),
  checkpoint: z.string(),
});

const FineTuneJobSchema = z.object({
  kind: z.literal('fine-tune'),
  /** The stage's name in the trial (`fine-tune:resnet18`, `fine-tune-no-gan:resnet18`). */
  stage: z.string(),
  backbone: z.enum(BACKBONES),
  seed: z.number().int(),
  classifier: PipelineConfigSchema.shape.classifier,
  train: z.string(),
  tests: z.array(z.object({ stage: z.string(), protocol: z.string(), images: z.string() })),
  checkpoint: z.string(),
});

export const PaperJobSchema = z.discriminatedUnion('kind', [GanJobSchema, FineTuneJobSchema]);
export type PaperJob = z.infer<typeof PaperJobSchema>;

export interface ProtocolScores {
  accuracy: number;
  sensitivity: number;
  specificity: number;
  auc: number | null;
  images: number;
}

export type JobEvent =
  | { type: 'progress'; done: number; total: number }
  | { type: 'stage'; stage: string; seconds: number; detail: string; protocol?: string; scores?: ProtocolScores };

/**
 * Images at `size`, resized bilinearly on the backend where they differ, a few hundred at a time
 * (the pipeline resizes with sharp's Lanczos before it stores them).
 */
async function resizeTo(images: readonly LabelledPixels[], size: number): Promise<LabelledPixels[]> {
  const out = images.slice();
  const CHUNK = 256;
  for (const from of new Set(images.map((i) => i.image.size))) {
    if (from === size) continue;
    const at = images.flatMap((item, i) => (item.image.size === from ? [i] : []));
    for (let start = 0; start < at.length; start += CHUNK) {
      const chunk = at.slice(start, start + CHUNK);
      const flat = new Uint8Array(chunk.length * from * from);
      chunk.forEach((i, k) => flat.set(images[i]!.image.pixels, k * from * from));
      const resized = tf.tidy(() =>
        tf.image
          .resizeBilinear(tf.tensor4d(flat, [chunk.length, from, from, 1], 'float32'), [size, size])
          .round()
          .clipByValue(0, 255),
      );
      // Read asynchronously: tfjs's WebGPU backend cannot read synchronously under Node.
      const values = await takeData(resized);
      chunk.forEach((i, k) => {
        const image: GrayImage = {
          size,
          pixels: Uint8Array.from(values.subarray(k * size * size, (k + 1) * size * size)),
        };
        out[i] = { image, label: images[i]!.label };
      });
    }
  }
  return out;
}

/** The evaluation's own metrics, with the AUC of its PNEUMONIA probabilities. */
function protocolScores(
  test: readonly LabelledPixels[],
  { metrics, predictions, probabilities }: Evaluation,
): ProtocolScores {
  return {
    accuracy: metrics.accuracy,
    sensitivity: metrics.perClassAccuracy.PNEUMONIA,
    specificity: metrics.perClassAccuracy.NORMAL,
    auc: auc(
      test.map((t, i) => ({
        truth: t.label === 'PNEUMONIA' ? 1 : 0,
        predicted: predictions[i]!,
        score: probabilities[i]!,
      })),
    ),
    images: test.length,
  };
}

/** Written whole or not at all: a step killed mid-write leaves the previous checkpoint. */
async function writeCheckpoint<Meta>(file: string, state: TrainingState<Meta>): Promise<void> {
  await writeFile(`${file}.tmp`, encodeSafetensors(state));
  await rename(`${file}.tmp`, file);
}

async function readCheckpoint<Meta>(file: string): Promise<TrainingState<Meta> | undefined> {
  return existsSync(file) ? decodeSafetensors<Meta>(await readFile(file), file) : undefined;
}

/** Runs one job; `emit` gets its progress and its stages. */
export async function runPaperJob(job: PaperJob, emit: (event: JobEvent) => void): Promise<void> {
  const timed = async <T>(stage: string, body: () => Promise<T>, detail: (r: T) => string) => {
    const t0 = performance.now();
    const result = await body();
    emit({ type: 'stage', stage, seconds: (performance.now() - t0) / 1000, detail: detail(result) });
    return result;
  };
  const progress = (done: number, total: number) => {
    if (done === total || done % 25 === 0) emit({ type: 'progress', done, total });
  };
  if (job.kind === 'gan') {
    const images = (await readImageSet(job.images)).map((i) => i.image);
    const resume = await readCheckpoint<GanMeta>(job.checkpoint);
    const { generator } = await timed(
      `gan:${job.label}`,
      () =>
        trainGan({
          images,
          gan: job.gan,
          seed: job.seed,
          resume,
          onProgress: progress,
          onCheckpoint: (s) => writeCheckpoint(job.checkpoint, s),
        }),
      (r) =>
        `${job.gan.steps} steps on ${images.length} images, batch ${job.gan.batchSize}` +
        (resume ? `, resumed at step ${resume.meta.step}` : '') +
        `; final loss D ${r.state.meta.history.discriminatorLoss.at(-1)?.toFixed(3)} G ${r.state.meta.history.generatorLoss.at(-1)?.toFixed(3)}`,
    );
    const seeds = Array.from({ length: job.syntheticCount }, (_, i) => deriveSeed(job.seed, job.label, 'latent', i));
    const synthetic = await timed(
      `synthesize:${job.label}`,
      () => generateImages(generator, job.gan.latentDim, seeds),
      (r) => `${r.length} images`,
    );
    generator.dispose();
    await writeImageSet(
      job.out,
      synthetic.map((image) => ({ image, label: job.label })),
    );
    return;
  }
  const { classifier } = job;
  const train = await resizeTo(await readImageSet(job.train), classifier.inputSize);
  const resume = await readCheckpoint<ClassifierMeta>(job.checkpoint);
  const { model } = await timed(
    job.stage,
    () =>
      fineTune({
        backbone: job.backbone,
        classifier,
        seed: job.seed,
        train,
        resume,
        onProgress: progress,
        onCheckpoint: (s) => writeCheckpoint(job.checkpoint, s),
      }),
    () =>
      `${train.length} images x ${classifier.epochs} epochs, batch ${classifier.batchSize}` +
      (resume ? `, resumed at batch ${resume.meta.batchesDone}` : ''),
  );
  for (const test of job.tests) {
    const images = await resizeTo(await readImageSet(test.images), classifier.inputSize);
    const t0 = performance.now();
    const scores = protocolScores(images, await evaluateClassifier(model, images, classifier.inputSize));
    emit({
      type: 'stage',
      stage: test.stage,
      seconds: (performance.now() - t0) / 1000,
      detail: `accuracy ${(100 * scores.accuracy).toFixed(1)}% on ${images.length} images`,
      protocol: test.protocol,
      scores,
    });
  }
  model.dispose();
}
