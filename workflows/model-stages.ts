/**
 * The stages every protocol of a trial repeats per backbone: fine-tune on a split, evaluate a
 * checkpoint on a test set, with the trial's classifier config, seed, pretrained weights and
 * reuse flag. Each is a tracked stage (its name and one-line result in the trial's progress view).
 */
import type { Backbone, PipelineConfig } from '../pipelines/schema.js';
import type { ArtifactRef } from '../lib/storage.js';
import type { GpuActivities } from './activity-proxies.js';

/** What the trial's stage tracker offers (index.ts's StageTracker). */
export interface StageRunner {
  run<T>(name: string, body: () => Promise<T>, describe?: (result: T) => string): Promise<T>;
}

export interface TrialModels {
  classifier: PipelineConfig['classifier'];
  seed: number;
  reuse: boolean;
  pretrained: Partial<Record<Backbone, ArtifactRef>>;
}

export function modelStages(stages: StageRunner, gpu: GpuActivities, trial: TrialModels) {
  return {
    fineTune: (stage: string, split: ArtifactRef, backbone: Backbone) =>
      stages.run(
        stage,
        () =>
          gpu.fineTune({
            split,
            backbone,
            classifier: trial.classifier,
            seed: trial.seed,
            pretrained: trial.pretrained[backbone],
            reuse: trial.reuse,
          }),
        (t) =>
          `final loss ${t.finalLoss.toFixed(3)}` +
          (t.resumedFromBatch ? `, resumed at batch ${t.resumedFromBatch}` : ''),
      ),
    evaluate: (stage: string, test: ArtifactRef, backbone: Backbone, checkpoint: ArtifactRef) =>
      stages.run(
        stage,
        () => gpu.evaluate({ test, checkpoint, backbone, classifier: trial.classifier, reuse: trial.reuse }),
        (e) => `accuracy ${(e.metrics.accuracy * 100).toFixed(1)}%`,
      ),
  };
}
