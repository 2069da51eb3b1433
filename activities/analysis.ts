/**
 * Accelerator-bound analyses that judge the paper's claim (issue 11): whether generated images
 * can be told from real ones (detectability) and whether generators copy their training images
 * (memorization). They run on the GPU task queue beside training.
 */
import { ImageSetSchema, SplitSchema, type LabeledImage } from '../lib/data/manifest.js';
import { loadGrayImages } from '../lib/data/load.js';
import { balancedThreshold, originProbabilities } from '../lib/analysis/detectability.js';
import { closestPairs, memorizationAudit, type SpaceAudit } from '../lib/analysis/memorization.js';
import { imageGridPng } from '../lib/images.js';
import { writeNearestNeighbourPointer } from '../lib/lineage.js';
import { decodeSafetensors } from '../lib/training/checkpoint.js';
import type { GanMeta } from '../lib/training/gan.js';
import { scores, type Outcome } from '../lib/protocol/scores.js';
import {
  DetectabilityInputSchema,
  MemorizationInputSchema,
  type DetectabilityInput,
  type DetectabilityOutput,
  type MemorizationInput,
  type MemorizationOutput,
} from './types.js';
import { memoized, producer, ProgressReporter, runActivity, type ActivityDeps } from './shared.js';

/** An audit's numbers without its per-image arrays, for the workflow payload. */
const summarize = ({ generated: _generated, heldout: _heldout, ...summary }: SpaceAudit) => summary;

export function createAnalysisActivities(deps: ActivityDeps) {
  const { store } = deps;

  const examples = async (images: readonly LabeledImage[], size: number) => {
    const pixels = await loadGrayImages(
      store,
      images.map((i) => i.image),
      size,
    );
    return images.map((image, i) => ({ image: pixels[i]!, synthetic: image.origin === 'synthetic' }));
  };

  return {
    async detectability(input: DetectabilityInput): Promise<DetectabilityOutput> {
      return runActivity(DetectabilityInputSchema, input, (parsed) =>
        memoized(deps, parsed, async (recorder) => {
          const { split, inputSize, seed } = parsed;
          const { train, test } = await store.getJson(split, SplitSchema);
          const progress = new ProgressReporter('real vs generated', 0);
          const trainExamples = await examples(train, inputSize);
          const origin = await originProbabilities({
            train: trainExamples,
            test: await examples(test, inputSize),
            seed,
            onProgress: (done, total) => progress.progress(done, total),
            signal: progress.signal,
          });
          const threshold = balancedThreshold(
            origin.train,
            trainExamples.map((e) => e.synthetic),
          );
          const probabilities = origin.test;
          // Generated is the positive class here.
          const outcomes: Outcome[] = test.map((t, i) => ({
            truth: t.origin === 'synthetic' ? 1 : 0,
            predicted: probabilities[i]! > threshold ? 1 : 0,
            score: probabilities[i]!,
          }));
          const s = scores(outcomes);
          const trainSynthetic = train.filter((t) => t.origin === 'synthetic').length;
          const majoritySynthetic = trainSynthetic * 2 >= train.length;
          const result = {
            accuracy: s.accuracy ?? 0,
            balancedAccuracy: s.balancedAccuracy,
            auc: s.auc,
            majorityAccuracy: test.filter((t) => (t.origin === 'synthetic') === majoritySynthetic).length / test.length,
            trainImages: train.length,
            testImages: test.length,
          };
          const evaluation = await recorder.putJson(
            {
              kind: 'detectability',
              ...result,
              threshold,
              predictions: test.map((t, i) => ({
                image: t.image.sha256,
                origin: t.origin,
                label: t.label,
                probabilitySynthetic: probabilities[i]!,
              })),
            },
            'detectability',
            [{ role: 'split', ref: split }],
            { inputSize, seed },
          );
          return { ...result, evaluation };
        }),
      );
    },

    async memorization(input: MemorizationInput): Promise<MemorizationOutput> {
      return runActivity(MemorizationInputSchema, input, (parsed) =>
        memoized(deps, parsed, async (recorder) => {
          const { subset, label, checkpoint, synthetic, heldout, seed } = parsed;
          const progress = new ProgressReporter(`memorization ${label}`, 3);
          const gan = decodeSafetensors<GanMeta>(await store.get(checkpoint), checkpoint.key);
          const size = gan.meta.options.imageSize;
          const ofClass = async (ref: typeof subset) =>
            (await store.getJson(ref, ImageSetSchema)).images.filter((i) => i.label === label);
          const [trainingSet, generatedSet, heldoutSet] = await Promise.all([
            ofClass(subset),
            ofClass(synthetic),
            heldout ? ofClass(heldout) : Promise.resolve([]),
          ]);
          const load = (images: readonly LabeledImage[]) =>
            loadGrayImages(
              store,
              images.map((i) => i.image),
              size,
            );
          const [training, generated, held] = await Promise.all([
            load(trainingSet),
            load(generatedSet),
            load(heldoutSet),
          ]);
          progress.progress(1);
          const audit = await memorizationAudit({ training, generated, heldout: held, gan, seed });
          progress.progress(2);
          const closest = closestPairs(audit);
          const inputs = [
            { role: 'generator', ref: checkpoint },
            { role: 'generated-images', ref: synthetic },
            { role: 'gan-training-images', ref: subset },
          ];
          const closestPng = await recorder.put(
            await imageGridPng(
              [...closest.map((c) => generated[c.generated]!), ...closest.map((c) => training[c.training]!)],
              closest.length,
              size < 64 ? 2 : 1,
            ),
            'png',
            'figure',
            inputs,
            { label, shows: 'closest generated (top) / training (bottom) pairs' },
          );
          const auditRef = await recorder.putJson(
            {
              kind: 'memorization-audit',
              label,
              imageSize: size,
              closest: closest.map((c) => ({
                generated: generatedSet[c.generated]!.image.sha256,
                training: trainingSet[c.training]!.image.sha256,
                distance: c.distance,
              })),
              pixels: { ...audit.pixels, heldoutDistances: audit.pixels.heldout },
              features: { ...audit.features, heldoutDistances: audit.features.heldout },
              generatedImages: generatedSet.map((g) => g.image.sha256),
              trainingImages: trainingSet.map((t) => t.image.sha256),
            },
            'memorization-audit',
            [...inputs, ...(heldout ? [{ role: 'held-out-images', ref: heldout }] : [])],
            { label, seed },
          );
          // Each generated image's lineage names its nearest real training image: thousands of records
          // per trial at paper size, so they go into this step's one lineage batch, which a pointer
          // per trial and class lets `lineage` find (lib/lineage.ts nearestNeighbourPointerKey).
          generatedSet.forEach((g, i) =>
            recorder.record(
              g.image,
              'nearest-neighbour',
              [
                { role: 'nearest-real-training-image', ref: trainingSet[audit.pixels.generated.index[i]!]!.image },
                {
                  role: 'nearest-real-training-image-in-feature-space',
                  ref: trainingSet[audit.features.generated.index[i]!]!.image,
                },
                { role: 'audit', ref: auditRef },
              ],
              {
                pixelDistance: audit.pixels.generated.distance[i]!,
                featureDistance: audit.features.generated.distance[i]!,
                imageSize: size,
              },
            ),
          );
          const batch = await recorder.flush();
          if (batch) await writeNearestNeighbourPointer(store, producer(deps).workflowId, label, batch);
          progress.progress(3);
          return {
            label,
            audit: auditRef,
            closestPairs: closestPng,
            generatedImages: generated.length,
            trainingImages: training.length,
            heldoutImages: held.length,
            pixels: summarize(audit.pixels),
            features: summarize(audit.features),
          };
        }),
      );
    },
  };
}
