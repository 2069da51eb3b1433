/**
 * Where a step's time and memory go: wall time, the time per training step (between the first
 * and the last step, so data loading and saving are not counted), and the peak resident memory
 * of the worker process while the step ran (sampled; TensorFlow's native allocations included).
 * With one activity per worker process at a time the peak belongs to this step; with several it
 * is the process's peak while they overlapped.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { z } from 'zod';

export const StageProfileSchema = z.object({
  seconds: z.number(),
  steps: z.number().int(),
  /** Training examples the stage read, where it trains (one epoch is ceil(examples / batch) steps). */
  examples: z.number().int().optional(),
  secondsPerStep: z.number().optional(),
  peakRssMiB: z.number(),
});
export type StageProfile = z.infer<typeof StageProfileSchema>;

const SAMPLE_MILLIS = 200;

export class StageProfiler {
  private readonly started = performance.now();
  private firstStep: { at: number; step: number } | undefined;
  private lastStep: { at: number; step: number } | undefined;
  private peakRss = process.memoryUsage.rss();
  private exampleCount: number | undefined;
  private readonly sampler = setInterval(() => this.sample(), SAMPLE_MILLIS).unref();

  /** Marks that training reached `step` (a cumulative count, as progress callbacks report it). */
  step(step: number): void {
    const mark = { at: performance.now(), step };
    this.firstStep ??= mark;
    this.lastStep = mark;
  }

  /** Records how many training examples the stage has. */
  examples(count: number): void {
    this.exampleCount = count;
  }

  finish(): StageProfile {
    clearInterval(this.sampler);
    this.sample();
    const first = this.firstStep;
    const last = this.lastStep;
    const timed =
      first && last && last.step > first.step ? (last.at - first.at) / 1000 / (last.step - first.step) : undefined;
    return {
      seconds: (performance.now() - this.started) / 1000,
      steps: last?.step ?? 0,
      ...(this.exampleCount !== undefined ? { examples: this.exampleCount } : {}),
      ...(timed !== undefined ? { secondsPerStep: timed } : {}),
      peakRssMiB: Math.round(this.peakRss / 2 ** 20),
    };
  }

  private sample(): void {
    this.peakRss = Math.max(this.peakRss, process.memoryUsage.rss());
  }
}

const current = new AsyncLocalStorage<StageProfiler>();

/** Runs an activity with a profiler that its progress reports (ProgressReporter) feed. */
export function withStageProfiler<T>(profiler: StageProfiler, body: () => Promise<T>): Promise<T> {
  return current.run(profiler, body);
}

/** Tells the running activity's profiler, if profiling is on, how many examples it trains on. */
export function markExamples(count: number): void {
  current.getStore()?.examples(count);
}

/** Tells the running activity's profiler, if profiling is on, that training reached `step`. */
export function markStep(step: number): void {
  current.getStore()?.step(step);
}
