/**
 * The stages every protocol of a trial repeats per backbone: fine-tune on a split, evaluate a
 * checkpoint on a test set. Each is a tracked stage (its name and one-line result in the trial's
 * progress view).
 */
import type { EvaluateInput, FineTuneInput } from '../activities/types.js';
import type { GpuActivities } from './activity-proxies.js';

/** What the trial's stage tracker offers (index.ts's StageTracker). */
export interface StageRunner {
  run<T>(name: string, body: () => Promise<T>, describe?: (result: T) => string): Promise<T>;
}

export function fineTuneStage(stages: StageRunner, gpu: GpuActivities, stage: string, input: FineTuneInput) {
  return stages.run(
    stage,
    () => gpu.fineTune(input),
    (t) =>
      `final loss ${t.finalLoss.toFixed(3)}` + (t.resumedFromBatch ? `, resumed at batch ${t.resumedFromBatch}` : ''),
  );
}

export function evaluateStage(stages: StageRunner, gpu: GpuActivities, stage: string, input: EvaluateInput) {
  return stages.run(
    stage,
    () => gpu.evaluate(input),
    (e) => `accuracy ${(e.metrics.accuracy * 100).toFixed(1)}%`,
  );
}
