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
import { encodeGrayPng, imageGridPng } from '../lib/images.js';
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
import { memoized, previousCheckpoint, ProgressReporter, runActivity, type ActivityDeps } from './runtime.js';

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
      progress ? (done) => progress.progress(done) : undefined,
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
              `Cannot train the ${label} GAN on ${images.length} image(s); raise protocol.subsetFraction so each class keeps at least 2 real images.`,
            );
          }
          const progress = new ProgressReporter(`train ${label} GAN`, gan.steps);
          const previous = previousCheckpoint();
          const resume = previous ? await loadState<GanMeta>(previous.ref) : undefined;
          const pixels = await loadGrayImages(
            store,
            images.map((i) => i.image),
            gan.imageSize,
          );
          const { generator, state } = await trainGan({
            images: pixels,
            gan,
            seed,
            resume,
            onProgress: (step) => progress.progress(step),
            onCheckpoint: checkpointer<GanMeta>(progress, (m) => m.step),
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
            const generated = await generateImages(generator, latentDim, latentSeeds);
            const limit = pLimit(8);
            let done = 0;
            const images = await Promise.all(
              generated.map((image, index) =>
                limit(async (): Promise<LabeledImage> => {
                  const ref = await recorder.put(
                    await encodeGrayPng(image),
                    'png',
                    'generated-image',
                    [{ role: 'generator', ref: checkpoint }],
                    { label },
                    { generator: checkpoint, label, latentSeed: latentSeeds[index]!, index },
                  );
                  progress.progress(++done);
                  return { image: ref, label, origin: 'synthetic', patientId: null };
                }),
              ),
            );
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
          const progress = new ProgressReporter(`fine-tune ${backbone}`, 0);
          const previous = previousCheckpoint();
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
          const progress = new ProgressReporter(`evaluate ${backbone}`, test.length);
          const model = loadClassifier(await loadState<ClassifierMeta>(checkpoint), classifier);
          try {
            const { metrics, predictions, probabilities } = await evaluateClassifier(
              model,
              await labelledPixels(test, classifier.inputSize, progress),
              classifier.inputSize,
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
