/**
 * The `paper` preset's training work, and its expected wall time on a device from measured
 * training rates (images per second at paper size, as gpu/run.ts and `npm run bench` measure
 * them). Per trial: one DCGAN per class, then every backbone fine-tuned on the pooled set (real
 * subset + 9x synthetic, 80% of it) and on the real subset alone (the no-gan protocol); the
 * held-out protocol reuses the pooled models. Synthesis and evaluation are inference over a few
 * thousand images and are left out (seconds on a GPU).
 */
import { PRESETS } from '../pipelines/presets.js';
import type { Backbone } from '../pipelines/schema.js';

/** Images in the archive the paper's subset fraction refers to (624 of 5,863). */
const PAPER_ARCHIVE_IMAGES = 5863;

export interface PaperWork {
  trials: number;
  /** Images through one GAN's training steps (D+G steps x batch). */
  ganImages: number;
  gansPerTrial: number;
  /** Images through one backbone's training, both protocols together. */
  fineTuneImages: number;
  backbones: readonly Backbone[];
}

export function paperWork(): PaperWork {
  const { protocol, gan, classifier } = PRESETS.paper!;
  const subset = protocol.subsetSize ?? Math.round(PAPER_ARCHIVE_IMAGES * (protocol.subsetFraction ?? 0));
  const pooledTrain = Math.round(subset * (1 + protocol.syntheticPerReal) * protocol.trainFraction);
  const realTrain = Math.round(subset * protocol.trainFraction);
  return {
    trials: protocol.trialSeeds.length,
    ganImages: gan.steps * gan.batchSize,
    gansPerTrial: 2,
    fineTuneImages: (pooledTrain + realTrain) * classifier.epochs,
    backbones: classifier.backbones,
  };
}

/**
 * Seconds of training per trial and for the whole preset, given images/s for the DCGAN step and
 * each backbone; undefined when a rate is missing.
 */
export function estimatePaper(
  ganRate: number | undefined,
  backboneRates: Partial<Record<Backbone, number>>,
): { perTrialSeconds: number; totalSeconds: number; parts: Record<string, number> } | undefined {
  const work = paperWork();
  if (!ganRate) return undefined;
  const parts: Record<string, number> = { gan: (work.gansPerTrial * work.ganImages) / ganRate };
  for (const backbone of work.backbones) {
    const rate = backboneRates[backbone];
    if (!rate) return undefined;
    parts[backbone] = work.fineTuneImages / rate;
  }
  const perTrialSeconds = Object.values(parts).reduce((a, b) => a + b, 0);
  return { perTrialSeconds, totalSeconds: perTrialSeconds * work.trials, parts };
}
