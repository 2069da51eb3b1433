/**
 * The safetensors format (https://github.com/huggingface/safetensors), the one codec for every
 * tensor file the project reads or writes: training checkpoints (lib/training/checkpoint.ts)
 * and torchvision weights (lib/models/pretrained.ts). It is documented and language-neutral:
 * Python's `safetensors` reads our files and we read the files it writes.
 *
 * Layout: 8-byte little-endian u64 header length N, N bytes of JSON mapping each tensor name to
 * `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the end of the header) plus
 * an optional `__metadata__` string map, then the raw little-endian data. Readers accept every
 * dtype; `toFloat32` converts F32, F16, BF16 and F64 (published weights are sometimes half
 * precision).
 */

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  /** Raw little-endian bytes of the tensor (a view into the source). */
  bytes: Uint8Array;
}

const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  BOOL: 1,
};
export const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export const shapeText = (s: ReadonlyArray<number | string>): string => `[${s.join(',')}]`;
export const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/**
 * Parses a plain safetensors file (no group naming scheme). Throws, naming `origin`, on a
 * malformed file: short/garbled header, offsets outside the data or not matching dtype x shape.
 */
export function readSafetensors(
  source: Uint8Array,
  origin: string,
): {
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
} {
  const fail = (why: string): never => {
    throw new Error(`${origin} is not a valid safetensors file: ${why}`);
  };
  if (source.byteLength < 8) fail(`${source.byteLength} bytes is too short`);
  const view = new DataView(source.buffer, source.byteOffset, source.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, source.byteLength - 8))) {
    fail(`header length ${headerLength} exceeds the ${source.byteLength - 8} bytes after the length field`);
  }
  const dataStart = 8 + Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(source.subarray(8, dataStart)));
  } catch (e) {
    fail(`header is not JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');
  const dataLength = source.byteLength - dataStart;
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw !== null && typeof raw === 'object') metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e === null || typeof e !== 'object' || typeof e.dtype !== 'string') fail(`tensor ${name} has no dtype`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      fail(`tensor ${name} has an invalid shape ${JSON.stringify(shape)}`);
    }
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
      fail(`tensor ${name} has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataLength) {
      fail(`tensor ${name} data_offsets [${begin},${end}] fall outside the ${dataLength} data bytes`);
    }
    const dtype = e.dtype as string;
    const width = DTYPE_BYTES[dtype];
    if (width !== undefined && end - begin !== numel(shape as number[]) * width) {
      fail(
        `tensor ${name} (${dtype} ${shapeText(shape as number[])}) needs ${numel(shape as number[]) * width} bytes, ` +
          `its data_offsets span ${end - begin}`,
      );
    }
    tensors.set(name, { dtype, shape: shape as number[], bytes: source.subarray(dataStart + begin, dataStart + end) });
  }
  return { tensors, metadata };
}

/** IEEE 754 half -> float. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

let halfTable: Float32Array | undefined;

/** A float tensor's values as float32 (copied: the source need not be aligned). */
export function toFloat32(entry: SafetensorsEntry): Float32Array {
  const { bytes, dtype } = entry;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32': {
      if (bytes.byteOffset % 4 === 0)
        return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4).slice();
      const out = new Float32Array(bytes.byteLength / 4);
      for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    }
    case 'F64': {
      const out = new Float32Array(bytes.byteLength / 8);
      for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    }
    case 'F16': {
      const table = (halfTable ??= Float32Array.from({ length: 65536 }, (_, h) => halfToFloat(h)));
      const out = new Float32Array(bytes.byteLength / 2);
      for (let i = 0; i < out.length; i++) out[i] = table[view.getUint16(2 * i, true)]!;
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(bytes.byteLength / 2);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    default:
      throw new Error(`dtype ${dtype} is not a float type`);
  }
}

export interface PlainTensor {
  name: string;
  dtype: 'F32' | 'I64';
  shape: number[];
  /** F32 values, or I64 values (as bigint) */
  data: Float32Array | BigInt64Array;
}

/** Writes a plain safetensors file (8-byte aligned header and tensors). */
export function writeSafetensors(tensors: readonly PlainTensor[], metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  // 8-byte types first so every tensor starts aligned to its element size.
  const ordered = [...tensors].sort((a, b) => (a.dtype === b.dtype ? 0 : a.dtype === 'I64' ? -1 : 1));
  let offset = 0;
  const chunks: Uint8Array[] = [];
  for (const t of ordered) {
    if (header[t.name] !== undefined) throw new Error(`duplicate tensor name ${t.name}`);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const expected = numel(t.shape) * DTYPE_BYTES[t.dtype]!;
    if (bytes.byteLength !== expected)
      throw new Error(`tensor ${t.name}: ${bytes.byteLength} bytes for ${t.dtype} ${shapeText(t.shape)}`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const c of chunks) {
    out.set(c, at); // host is little-endian (all platforms tfjs-node supports)
    at += c.byteLength;
  }
  return out;
}
