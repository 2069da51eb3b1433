/**
 * What GAN and classifier training share: a set of models and optimisers whose weights make up a
 * checkpoint, and the step loop around them (resume from a step counter, one seeded step at a
 * time, progress after each, metrics read back in batches, a checkpoint every `checkpointEvery`
 * steps or sooner by time and at the end, cancellation between steps, the event loop let through
 * so heartbeats and I/O keep flowing). The loss maths of each kind of training stays in its own
 * module.
 */
import * as tf from '@tensorflow/tfjs';
import {
  modelWeights,
  optimizerWeights,
  restoreModelWeights,
  restoreOptimizerWeights,
  type TrainingState,
} from './checkpoint.js';
import { throwIfWebGpuFailed } from '../compute/webgpu-errors.js';
import { yieldToEventLoop } from './determinism.js';

/** The trained objects, each under the checkpoint group that holds its weights. */
export interface Trainables {
  models: Record<string, tf.LayersModel>;
  optimizers: Record<string, tf.Optimizer>;
}

export async function captureState<Meta>(trainables: Trainables, meta: Meta): Promise<TrainingState<Meta>> {
  const groups: TrainingState<Meta>['groups'] = {};
  for (const [group, model] of Object.entries(trainables.models)) groups[group] = await modelWeights(model);
  for (const [group, optimizer] of Object.entries(trainables.optimizers))
    groups[group] = await optimizerWeights(optimizer);
  return { groups, meta };
}

/** Writes a checkpoint's weights back; `origin` names the checkpoint in errors. */
export async function restoreState(
  trainables: Trainables,
  state: TrainingState<unknown>,
  origin: string,
): Promise<void> {
  for (const [group, model] of Object.entries(trainables.models))
    restoreModelWeights(model, state.groups[group] ?? [], `${origin} (${group})`);
  for (const [group, optimizer] of Object.entries(trainables.optimizers))
    await restoreOptimizerWeights(optimizer, state.groups[group] ?? []);
}

/**
 * A tensor's values, disposing it whether or not the read succeeds; throws when the device
 * reported a program it could not run (the values would not be valid: ../compute/webgpu-errors.ts).
 */
export async function takeData<R extends tf.Rank>(tensor: tf.Tensor<R>): Promise<tf.TypedArray> {
  try {
    const values = await tensor.data();
    throwIfWebGpuFailed();
    return values;
  } finally {
    tensor.dispose();
  }
}

/** What a step leaves behind: its metrics as scalar tensors, and where their values go once read. */
export interface StepMetrics {
  scalars: tf.Tensor[];
  record(values: number[]): void;
}

/**
 * Steps whose metrics are read back together. A readback waits for the device to finish all it
 * was given, so reading every step's losses on a GPU stops the pipeline once a step; ten steps
 * per readback (and one before each checkpoint) keep the histories exact and the queue full.
 */
export const METRICS_READ_EVERY = 10;

/** Reads the metrics of `pending` steps in one readback, records them in step order and disposes them. */
async function readMetrics(pending: StepMetrics[]): Promise<void> {
  const scalars = pending.flatMap((p) => p.scalars);
  try {
    if (scalars.length === 0) return;
    const values = await takeData(tf.tidy(() => tf.concat(scalars.map((s) => tf.reshape(tf.cast(s, 'float32'), [1])))));
    let offset = 0;
    for (const p of pending) {
      p.record(Array.from(values.subarray(offset, offset + p.scalars.length)));
      offset += p.scalars.length;
    }
  } finally {
    tf.dispose(scalars);
    pending.length = 0;
  }
}

export interface StepLoop<Meta> {
  /** Steps in the whole training. */
  total: number;
  /** Steps already done (a resumed checkpoint's counter). */
  done: number;
  checkpointEvery: number;
  /**
   * Also checkpoint once this long has passed since the last checkpoint (or the start), so an
   * attempt that lives less than `checkpointEvery` steps still leaves progress behind. Never more
   * often than ten times the last checkpoint's cost, which keeps checkpoints under a tenth of
   * the time. Resumes are exact whatever the step, so this changes no result.
   */
  checkpointIntervalMs?: number;
  /**
   * Runs step number `index` (0-based; seeds derive from it so a resumed run repeats it exactly)
   * and returns its metrics unread; the loop reads them in batches ({@link METRICS_READ_EVERY}).
   */
  step(index: number): StepMetrics;
  /** The full state after `done` steps. */
  snapshot(done: number): Promise<TrainingState<Meta>>;
  /** Called after each step is issued; a returned promise is awaited before the next step. */
  onProgress?: (done: number, total: number) => void | Promise<void>;
  onCheckpoint?: (state: TrainingState<Meta>) => Promise<void>;
  signal?: AbortSignal;
}

/** Runs the remaining steps; returns the final state. */
export async function runStepLoop<Meta>(loop: StepLoop<Meta>): Promise<TrainingState<Meta>> {
  let done = loop.done;
  let lastCheckpointAt = performance.now();
  let lastCheckpointCost = 0;
  const timeDue = () =>
    loop.checkpointIntervalMs !== undefined &&
    performance.now() - lastCheckpointAt >= Math.max(loop.checkpointIntervalMs, 10 * lastCheckpointCost);
  const pending: StepMetrics[] = [];
  try {
    while (done < loop.total) {
      loop.signal?.throwIfAborted();
      pending.push(loop.step(done));
      done += 1;
      await loop.onProgress?.(done, loop.total);
      const onCheckpoint =
        done % loop.checkpointEvery === 0 || done === loop.total || timeDue() ? loop.onCheckpoint : undefined;
      // A checkpoint's snapshot holds the histories: every step before it is read first.
      if (onCheckpoint || pending.length >= METRICS_READ_EVERY) await readMetrics(pending);
      if (onCheckpoint) {
        const started = performance.now();
        await onCheckpoint(await loop.snapshot(done));
        lastCheckpointAt = performance.now();
        lastCheckpointCost = lastCheckpointAt - started;
      }
      await yieldToEventLoop();
    }
    await readMetrics(pending);
  } finally {
    tf.dispose(pending.flatMap((p) => p.scalars));
  }
  return loop.snapshot(done);
}
