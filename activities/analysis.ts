/**
 * Accelerator-bound analyses that judge the paper's claim (issue 11): whether generated images
 * can be told from real ones (detectability) and whether generators copy their training images
 * (memorization). They run on the GPU task queue beside training.
 */
import { SplitSchema, type LabeledImage } from '../lib/data/manifest.js';
import { loadGrayImages } from '../lib/data/load.js';
import { originProbabilities } from '../lib/analysis/detectability.js';
import { scores, type Outcome } from '../lib/protocol/scores.js';
import { DetectabilityInputSchema, type DetectabilityInput, type DetectabilityOutput } from './types.js';
import { memoized, ProgressReporter, runActivity, type ActivityDeps } from './runtime.js';

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
          const probabilities = await originProbabilities({
            train: await examples(train, inputSize),
            test: await examples(test, inputSize),
            seed,
            onProgress: (done, total) => progress.progress(done, total),
            signal: progress.signal,
          });
          // Generated is the positive class here.
          const outcomes: Outcome[] = test.map((t, i) => ({
            truth: t.origin === 'synthetic' ? 1 : 0,
            predicted: probabilities[i]! > 0.5 ? 1 : 0,
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
  };
}
