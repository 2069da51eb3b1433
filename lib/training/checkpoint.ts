/**
 * Training state on disk/S3 in the safetensors format (8-byte little-endian header length, JSON
 * header with dtype/shape/offsets per tensor and a `__metadata__` string map, then raw data).
 * It is documented, language-neutral (Python's `safetensors` reads our checkpoints) and is the
 * format published ImageNet weights can be converted to.
 */
import * as tf from '@tensorflow/tfjs';

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
  const header: Record<string, unknown> = { __metadata__: { meta: JSON.stringify(state.meta) } };
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [group, arrays] of Object.entries(state.groups)) {
    arrays.forEach((array, index) => {
      const bytes = Buffer.from(array.data.buffer, array.data.byteOffset, array.data.byteLength);
      // The index keeps order (tfjs weight names are not unique across models in one process).
      header[`${group}${GROUP_SEPARATOR}${String(index).padStart(4, '0')}${GROUP_SEPARATOR}${array.name}`] = {
        dtype: 'F32',
        shape: array.shape,
        data_offsets: [offset, offset + bytes.byteLength],
      };
      chunks.push(bytes);
      offset += bytes.byteLength;
    });
  }
  let headerJson = JSON.stringify(header);
  // safetensors pads the header with spaces to 8-byte alignment.
  headerJson += ' '.repeat((8 - (Buffer.byteLength(headerJson) % 8)) % 8);
  const headerBytes = Buffer.from(headerJson, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(headerBytes.byteLength));
  return Buffer.concat([length, headerBytes, ...chunks]);
}

export function decodeSafetensors<Meta>(bytes: Uint8Array, origin: string): TrainingState<Meta> {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.byteLength < 8) throw new Error(`${origin} is not a safetensors file (too short)`);
  const headerLength = Number(buffer.readBigUInt64LE(0));
  if (headerLength > buffer.byteLength - 8) throw new Error(`${origin} is not a safetensors file (bad header length)`);
  const header = JSON.parse(buffer.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>
  >;
  const dataStart = 8 + headerLength;
  const groups: Record<string, Array<NamedArray & { index: number }>> = {};
  let meta: unknown = {};
  for (const [key, entry] of Object.entries(header)) {
    if (key === '__metadata__') {
      meta = JSON.parse((entry as Record<string, string>).meta ?? '{}');
      continue;
    }
    const tensor = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (tensor.dtype !== 'F32')
      throw new Error(`${origin}: tensor ${key} has dtype ${tensor.dtype}; only F32 is supported`);
    const [group, index, ...nameParts] = key.split(GROUP_SEPARATOR);
    const [begin, end] = tensor.data_offsets;
    // Copy: the source buffer may not be 4-byte aligned.
    const data = new Float32Array(
      buffer.buffer.slice(buffer.byteOffset + dataStart + begin, buffer.byteOffset + dataStart + end),
    );
    (groups[group!] ??= []).push({
      name: nameParts.join(GROUP_SEPARATOR),
      shape: tensor.shape,
      data,
      index: Number(index),
    });
  }
  const ordered: Record<string, NamedArray[]> = {};
  for (const [group, arrays] of Object.entries(groups)) {
    ordered[group] = arrays.sort((a, b) => a.index - b.index).map(({ name, shape, data }) => ({ name, shape, data }));
  }
  return { groups: ordered, meta: meta as Meta };
}

/** Snapshot of a model's weights (trainable and BN statistics), in the model's weight order. */
export function modelWeights(model: tf.LayersModel): NamedArray[] {
  return model.weights.map((w) => ({
    name: w.originalName,
    shape: w.shape as number[],
    data: w.read().dataSync() as Float32Array,
  }));
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
  return Promise.all(
    named.map(async (w) => ({
      name: w.name,
      shape: w.tensor.shape,
      data: new Float32Array(await w.tensor.data()),
    })),
  );
}

export async function restoreOptimizerWeights(optimizer: tf.Optimizer, arrays: readonly NamedArray[]): Promise<void> {
  // tfjs optimisers match saved moments to variables by position, not by name.
  await optimizer.setWeights(arrays.map((a) => ({ name: a.name, tensor: tf.tensor(a.data, a.shape) })));
}
