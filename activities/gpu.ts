/**
 * Accelerator-bound activities: DCGAN training, synthesis, fine-tuning and evaluation. They run
 * on GPU workers (activity-only, their own task queue). Long ones checkpoint to S3 and put the
 * checkpoint's reference in their heartbeat; a retried attempt resumes from it.
 */
import pLimit from 'p-limit';
import { z } from 'zod';
import { ImageSetSchema, SplitSchema, type ImageSet, type LabeledImage } from '../lib/data/manifest.js';
import { loadGrayImages } from '../lib/data/load.js';
import { InputError } from '../lib/errors.js';
import { encodeGrayPng, imageGridPng, type GrayImage } from '../lib/images.js';
import { deriveSeed } from '../lib/random.js';
import type { ArtifactRef } from '../lib/storage.js';
import { decodeSafetensors, encodeSafetensors, type TrainingState } from '../lib/training/checkpoint.js';
import {
  evaluateClassifier,
  fineTune,
  loadClassifier,
  type ClassifierMeta,
  type LabelledPixels,
} from '../lib/training/classifier.js';
import { generateImages, loadGenerator, trainGan, type GanMeta } from '../lib/training/gan.js';
import type { EvaluationRecord } from '../lib/protocol/scores.js';
import {
  EvaluateInputSchema,
  FineTuneInputSchema,
  SynthesizeInputSchema,
  TrainGanInputSchema,
  type EvaluateInput,
  type EvaluateOutput,
  type FineTuneInput,
  type FineTuneOutput,
  type SynthesizeInput,
  type SynthesizeOutput,
  type TrainGanInput,
  type TrainGanOutput,
} from './types.js';
import { markExamples } from './profile.js';
import { memoized, ProgressReporter, runActivity, type ActivityDeps } from './shared.js';

/**
 * Generated images per chunk of synthesis, stored while the next chunk is generated. The native
 * backend's forward pass holds the event loop, so a chunk is sized to keep heartbeats flowing:
 * 16 paper-size (64 px, width 64) images take about a second on a busy 2-core machine.
 */
const SYNTHESIS_CHUNK = 16;

/** Images shown in each GAN's sample grid. */
const SAMPLE_GRID = { images: 16, columns: 8 };

export function createGpuActivities(deps: ActivityDeps) {
  const { store } = deps;

  async function loadState<Meta>(ref: ArtifactRef): Promise<TrainingState<Meta>> {
    return decodeSafetensors<Meta>(await store.get(ref), ref.key);
  }

  /** Persists a checkpoint and makes it the one a retry resumes from. */
  function checkpointer<Meta>(progress: ProgressReporter, stepOf: (meta: Meta) => number) {
    return async (state: TrainingState<Meta>) => {
      const ref = await store.putContent(encodeSafetensors(state), 'safetensors');
      progress.checkpoint(ref, stepOf(state.meta));
    };
  }

  async function labelledPixels(
    images: readonly LabeledImage[],
    size: number,
    progress?: ProgressReporter,
  ): Promise<LabelledPixels[]> {
    const pixels = await loadGrayImages(
      store,
      images.map((i) => i.image),
      size,
      progress
        ? (done) => {
            progress.signal.throwIfAborted();
            progress.progress(done);
          }
        : undefined,
    );
    return images.map((image, i) => ({ image: pixels[i]!, label: image.label }));
  }

  return {
    async trainGan(input: TrainGanInput): Promise<TrainGanOutput> {
      return runActivity(TrainGanInputSchema, input, (parsed) =>
        memoized(deps, parsed, async (recorder) => {
          const { subset, label, gan, seed } = parsed;
          const images = (await store.getJson(subset, ImageSetSchema)).images.filter((i) => i.label === label);
          if (images.length < 2) {
            throw new InputError(
              `Cannot train the ${label} GAN on ${images.length} image(s); raise protocol.subsetSize (or subsetFraction) so each class keeps at least 2 real images.`,
            );
          }
          markExamples(images.length);
          const progress = new ProgressReporter(`train ${label} GAN`, gan.steps);
          const previous = progress.resumeFrom;
          const resume = previous ? await loadState<GanMeta>(previous.ref) : undefined;
          const pixels = await loadGrayImages(
            store,
            images.map((i) => i.image),
            gan.imageSize,
            () => progress.stillWorking(),
          );
          const { generator, state } = await trainGan({
            images: pixels,
            gan,
            seed,
            resume,
            onProgress: (step) => progress.progress(step),
            onCheckpoint: checkpointer<GanMeta>(progress, (m) => m.step),
            checkpointIntervalMs: progress.checkpointIntervalMs,
            signal: progress.signal,
          });
          try {
            const inputs = [{ role: 'subset', ref: subset }];
            const params = { label, seed, gan };
            const checkpoint = await recorder.put(
              encodeSafetensors(state),
              'safetensors',
              'gan-checkpoint',
              inputs,
              params,
            );
            const gridImages = await generateImages(
              generator,
              gan.latentDim,
              Array.from({ length: SAMPLE_GRID.images }, (_, i) => deriveSeed(seed, 'sample-grid', i)),
            );
            const samples = await recorder.put(
              await imageGridPng(gridImages, SAMPLE_GRID.columns, gan.imageSize < 64 ? 2 : 1),
              'png',
              'gan-samples',
              [{ role: 'generator', ref: checkpoint }],
              { label },
            );
            const history = await recorder.putJson(
              { kind: 'gan-history', label, ...state.meta.history },
              'training-history',
              [{ role: 'generator', ref: checkpoint }],
              { label },
            );
            return {
              checkpoint,
              samples,
              history,
              trainingImages: images.length,
              finalLoss: {
                discriminator: state.meta.history.discriminatorLoss.at(-1) ?? NaN,
                generator: state.meta.history.generatorLoss.at(-1) ?? NaN,
              },
              resumedFromStep: resume?.meta.step ?? 0,
            };
          } finally {
            generator.dispose();
          }
        }),
      );
    },

    async synthesize(input: SynthesizeInput): Promise<SynthesizeOutput> {
      return runActivity(SynthesizeInputSchema, input, (parsed) =>
        memoized(deps, parsed, async (recorder) => {
          const { checkpoint, label, count, seed } = parsed;
          const progress = new ProgressReporter(`synthesize ${label}`, count);
          const generator = loadGenerator(await loadState<GanMeta>(checkpoint));
          try {
            const latentDim = generator.inputs[0]!.shape.at(-1) as number;
            const latentSeeds = Array.from({ length: count }, (_, index) => deriveSeed(seed, label, 'latent', index));
            const images: LabeledImage[] = new Array<LabeledImage>(count);
            const limit = pLimit(8);
            let done = 0;
            // Images are generated a chunk at a time and stored while the next chunk is generated;
            // every image goes into this activity's one lineage batch, written once at the end.
            const storeChunk = async (chunk: GrayImage[], start: number) => {
              await Promise.all(
                chunk.map((image, offset) =>
                  limit(async () => {
                    const index = start + offset;
                    const ref = await recorder.put(
                      await encodeGrayPng(image),
                      'png',
                      'generated-image',
                      [{ role: 'generator', ref: checkpoint }],
                      { label },
                      { generator: checkpoint, label, latentSeed: latentSeeds[index]!, index },
                      { flush: false },
                    );
                    images[index] = { image: ref, label, origin: 'synthetic', patientId: null };
                    progress.progress(++done);
                  }),
                ),
              );
            };
            let stored: Promise<void> = Promise.resolve();
            for (let start = 0; start < count; start += SYNTHESIS_CHUNK) {
              progress.signal.throwIfAborted();
              const chunk = await generateImages(
                generator,
                latentDim,
                latentSeeds.slice(start, start + SYNTHESIS_CHUNK),
              );
              await stored;
              stored = storeChunk(chunk, start);
              // Awaited on the next pass; until then a failure must not count as unhandled.
              stored.catch(() => undefined);
            }
            await stored;
            progress.signal.throwIfAborted();
            const set: ImageSet = {
              kind: 'image-set',
              purpose: `${count} ${label} images from generator ${checkpoint.sha256.slice(0, 12)}`,
              images,
            };
            const ref = await recorder.putJson(set, 'image-set', [{ role: 'generator', ref: checkpoint }], {
              label,
              count,
              seed,
            });
            return { images: ref, count };
          } finally {
            generator.dispose();
          }
        }),
      );
    },

    async fineTune(input: FineTuneInput): Promise<FineTuneOutput> {
      return runActivity(FineTuneInputSchema, input, (parsed) =>
        memoized(deps, parsed, async (recorder) => {
          const { split, backbone, classifier, seed, pretrained } = parsed;
          const { train } = await store.getJson(split, SplitSchema);
          markExamples(train.length);
          const progress = new ProgressReporter(`fine-tune ${backbone}`, 0);
          const previous = progress.resumeFrom;
          const resume = previous ? await loadState<ClassifierMeta>(previous.ref) : undefined;
          const { model, state } = await fineTune({
            backbone,
            classifier,
            seed,
            resume,
            pretrained: pretrained
              ? { bytes: await store.get(pretrained), origin: `pretrained ${backbone} weights ${pretrained.key}` }
              : undefined,
            train: await labelledPixels(train, classifier.inputSize),
            onProgress: (done, total) => progress.progress(done, total),
            onCheckpoint: checkpointer<ClassifierMeta>(progress, (m) => m.batchesDone),
            checkpointIntervalMs: progress.checkpointIntervalMs,
            signal: progress.signal,
          });
          model.dispose();
          const checkpoint = await recorder.put(
            encodeSafetensors(state),
            'safetensors',
            'classifier-checkpoint',
            [{ role: 'split', ref: split }, ...(pretrained ? [{ role: 'pretrained-weights', ref: pretrained }] : [])],
            { backbone, classifier, seed },
          );
          const history = await recorder.putJson(
            { kind: 'classifier-history', backbone, ...state.meta.history },
            'training-history',
            [{ role: 'model', ref: checkpoint }],
            { backbone },
          );
          return {
            checkpoint,
            history,
            finalLoss: state.meta.history.loss.at(-1) ?? NaN,
            resumedFromBatch: resume?.meta.batchesDone ?? 0,
          };
        }),
      );
    },

    async evaluate(input: EvaluateInput): Promise<EvaluateOutput> {
      return runActivity(EvaluateInputSchema, input, (parsed) =>
        memoized(deps, parsed, async (recorder) => {
          const { test: testRef, checkpoint, backbone, classifier } = parsed;
          const testSet = await store.getJson(testRef, z.union([SplitSchema, ImageSetSchema]));
          const test = testSet.kind === 'split' ? testSet.test : testSet.images;
          // Two passes over the test set, each reported: loading the images, then predicting them.
          const progress = new ProgressReporter(`evaluate ${backbone}`, 2 * test.length);
          const model = loadClassifier(await loadState<ClassifierMeta>(checkpoint), classifier);
          try {
            const pixels = await labelledPixels(test, classifier.inputSize, progress);
            const { metrics, predictions, probabilities } = await evaluateClassifier(
              model,
              pixels,
              classifier.inputSize,
              undefined,
              { onProgress: (done) => progress.progress(test.length + done), signal: progress.signal },
            );
            const evaluation: EvaluationRecord = {
              kind: 'evaluation',
              backbone,
              metrics,
              predictions: test.map((t, i) => ({
                image: t.image.sha256,
                label: t.label,
                origin: t.origin,
                patientId: t.patientId,
                predicted: predictions[i]!,
                probability: probabilities[i]!,
              })),
            };
            const ref = await recorder.putJson(
              evaluation,
              'evaluation',
              [
                { role: 'test-set', ref: testRef },
                { role: 'model', ref: checkpoint },
              ],
              { backbone },
            );
            return { evaluation: ref, metrics };
          } finally {
            model.dispose();
          }
        }),
      );
    },
  };
}
