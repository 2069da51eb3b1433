/**
 * Training state on disk/S3 as safetensors (lib/safetensors.ts): every tensor is named
 * `<group>::<index>::<weight name>` (group: `generator`, `optimizer.d`, ...; the index keeps the
 * model's weight order) and the JSON metadata travels in `__metadata__.meta`.
 */
import * as tf from '@tensorflow/tfjs';
import { throwIfWebGpuFailed } from '../compute/webgpu-errors.js';
import { readSafetensors, toFloat32, writeSafetensors, type PlainTensor } from '../safetensors.js';

export interface NamedArray {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Tensors grouped by owner (`generator`, `optimizer.d`, ...) plus JSON metadata. */
export interface TrainingState<Meta> {
  groups: Record<string, NamedArray[]>;
  meta: Meta;
}

const GROUP_SEPARATOR = '::';

export function encodeSafetensors<Meta>(state: TrainingState<Meta>): Buffer {
  // The index keeps order (tfjs weight names are not unique across models in one process).
  const tensors: PlainTensor[] = Object.entries(state.groups).flatMap(([group, arrays]) =>
    arrays.map((array, index) => ({
      name: `${group}${GROUP_SEPARATOR}${String(index).padStart(4, '0')}${GROUP_SEPARATOR}${array.name}`,
      dtype: 'F32' as const,
      shape: array.shape,
      data: array.data,
    })),
  );
  const bytes = writeSafetensors(tensors, { meta: JSON.stringify(state.meta) });
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function decodeSafetensors<Meta>(bytes: Uint8Array, origin: string): TrainingState<Meta> {
  const { tensors, metadata } = readSafetensors(bytes, origin);
  const groups: Record<string, Array<NamedArray & { index: number }>> = {};
  for (const [key, entry] of tensors) {
    if (entry.dtype !== 'F32')
      throw new Error(`${origin}: tensor ${key} has dtype ${entry.dtype}; only F32 is supported`);
    const [group, index, ...nameParts] = key.split(GROUP_SEPARATOR);
    if (group === undefined || nameParts.length === 0 || !/^\d+$/.test(index ?? '')) {
      throw new Error(
        `${origin}: tensor ${key} is not named <group>::<index>::<name>; it is not a pneumogan checkpoint`,
      );
    }
    (groups[group] ??= []).push({
      name: nameParts.join(GROUP_SEPARATOR),
      shape: entry.shape,
      data: toFloat32(entry),
      index: Number(index),
    });
  }
  const ordered: Record<string, NamedArray[]> = {};
  for (const [group, arrays] of Object.entries(groups)) {
    ordered[group] = arrays.sort((a, b) => a.index - b.index).map(({ name, shape, data }) => ({ name, shape, data }));
  }
  return { groups: ordered, meta: JSON.parse(metadata.meta ?? '{}') as Meta };
}

/**
 * Snapshot of a model's weights (trainable and BN statistics), in the model's weight order. Read
 * asynchronously: the WebGPU backend cannot read synchronously in Node (its readSync draws through
 * an OffscreenCanvas, which Node lacks), and an async read does not block the event loop.
 */
export async function modelWeights(model: tf.LayersModel): Promise<NamedArray[]> {
  const arrays = await Promise.all(
    model.weights.map(async (w) => ({
      name: w.originalName,
      shape: w.shape as number[],
      data: (await w.read().data()) as Float32Array,
    })),
  );
  // Weights computed by a program the device could not run are not worth a checkpoint.
  throwIfWebGpuFailed();
  return arrays;
}

export function restoreModelWeights(model: tf.LayersModel, arrays: readonly NamedArray[], origin: string): void {
  if (arrays.length !== model.weights.length) {
    throw new Error(
      `${origin} holds ${arrays.length} weight tensors but the model has ${model.weights.length}: it was saved from a different architecture or width`,
    );
  }
  const tensors = arrays.map((array, i) => {
    const expected = model.weights[i]!.shape;
    if (expected.join('x') !== array.shape.join('x')) {
      throw new Error(
        `${origin}: weight ${i} (${array.name}) has shape [${array.shape.join(',')}] but the model expects [${expected.join(',')}] at ${model.weights[i]!.originalName}`,
      );
    }
    return tf.tensor(array.data, array.shape);
  });
  model.setWeights(tensors);
  tf.dispose(tensors);
}

/** Adam's iteration count and moments, in the order of the variables it updates. */
export async function optimizerWeights(optimizer: tf.Optimizer): Promise<NamedArray[]> {
  const named = await optimizer.getWeights();
  try {
    return await Promise.all(
      named.map(async (w) => ({
        name: w.name,
        shape: w.tensor.shape,
        data: new Float32Array(await w.tensor.data()),
      })),
    );
  } finally {
    // getWeights() makes a fresh tensor for the iteration count; the moments are the optimiser's own variables.
    for (const w of named) if (!(w.tensor instanceof tf.Variable)) w.tensor.dispose();
  }
}

export async function restoreOptimizerWeights(optimizer: tf.Optimizer, arrays: readonly NamedArray[]): Promise<void> {
  // tfjs optimisers match saved moments to variables by position, not by name; setWeights copies
  // each tensor into a variable of its own, so the tensors made here are disposed afterwards.
  const named = arrays.map((a) => ({ name: a.name, tensor: tf.tensor(a.data, a.shape) }));
  try {
    await optimizer.setWeights(named);
  } finally {
    tf.dispose(named.map((n) => n.tensor));
  }
  if (optimizer.getClassName() === 'Adam') replayAdamBiasPowers(optimizer);
}

/** The fields of tfjs's AdamOptimizer that its bias correction uses (not part of its typings). */
interface AdamInternals {
  beta1: number;
  beta2: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  iterations: number;
}

/**
 * Adam's setWeights() sets its bias-correction powers to beta^(t+1) with one pow(), while
 * training multiplies them by beta once per step; the two differ in the last float32 bit, so a
 * resumed training would drift from an uninterrupted one. Redo the multiplications the way the
 * steps did, so a retried attempt ends with exactly the weights the uninterrupted one would have.
 */
function replayAdamBiasPowers(optimizer: tf.Optimizer): void {
  const adam = optimizer as unknown as AdamInternals;
  tf.tidy(() => {
    let power1: tf.Tensor = tf.scalar(adam.beta1);
    let power2: tf.Tensor = tf.scalar(adam.beta2);
    for (let step = 0; step < adam.iterations; step++) {
      power1 = tf.mul(power1, adam.beta1);
      power2 = tf.mul(power2, adam.beta2);
    }
    adam.accBeta1.assign(power1);
    adam.accBeta2.assign(power2);
  });
}
