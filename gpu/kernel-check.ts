/**
 * Our WebGPU kernels against tfjs's CPU backend, on the adapter the run is on: the same
 * convolutions and matrix products computed on both from the same deterministic inputs. The unit
 * tests (test/unit/webgpu-kernels.test.ts) do this on lavapipe, a CPU; the GPU run
 * (gpu/run.ts) does it first on the GPU, on paper-size layers at small batches, so that a kernel
 * that a GPU's compiler treats differently shows up as an error here, not as a trial that
 * silently learns less. Writes nothing; gpu/run.ts reports the rows.
 */
import * as tf from '@tensorflow/tfjs';
import { takeData } from '../lib/training/loop.js';

export interface ConvCase {
  what: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number;
  pad: 'same' | 'valid' | number;
}

export interface MatMulCase {
  what: string;
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
}

/** Deterministic values in [-1, 1), the same on every backend (inputs for comparing them). */
export function values(n: number, seed: number): Float32Array {
  let state = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  });
}

async function onBackend(backend: string): Promise<void> {
  if (!(await tf.setBackend(backend))) throw new Error(`the ${backend} backend did not start`);
}

/** conv2d(x, filter) on one backend, from the same deterministic x and filter as convGradient. */
export async function convForward(c: ConvCase, backend: string): Promise<Float32Array> {
  await onBackend(backend);
  const y = tf.tidy(() =>
    tf.conv2d(
      tf.tensor4d(values(tf.util.sizeFromShape(c.x), 1), c.x),
      tf.tensor4d(values(tf.util.sizeFromShape(c.filter), 2), c.filter),
      c.strides,
      c.pad,
    ),
  );
  return (await takeData(y)) as Float32Array;
}

/**
 * The gradient of sum(conv2d(x, filter) * weights) with respect to the filter or to x, on one
 * backend, from the same deterministic x, filter and weights (a weight per output element, so
 * every element of dy differs).
 */
export async function convGradient(c: ConvCase, wrt: 'filter' | 'x', backend: string): Promise<Float32Array> {
  await onBackend(backend);
  const result = tf.tidy(() => {
    const xs = tf.tensor4d(values(tf.util.sizeFromShape(c.x), 1), c.x);
    const f = tf.tensor4d(values(tf.util.sizeFromShape(c.filter), 2), c.filter);
    const y = tf.conv2d(xs, f, c.strides, c.pad);
    const weights = tf.tensor(values(y.size, 3), y.shape);
    return wrt === 'filter'
      ? tf.grad((fw) => tf.sum(tf.mul(tf.conv2d(xs, fw as tf.Tensor4D, c.strides, c.pad), weights)))(f)
      : tf.grad((xv) => tf.sum(tf.mul(tf.conv2d(xv as tf.Tensor4D, f, c.strides, c.pad), weights)))(xs);
  });
  const expected = wrt === 'filter' ? c.filter : c.x;
  if (!tf.util.arraysEqual(result.shape, expected)) {
    result.dispose();
    throw new Error(`${c.what}: gradient of shape [${result.shape.join(', ')}], not [${expected.join(', ')}]`);
  }
  return (await takeData(result)) as Float32Array;
}

/** A x B (either transposed) on one backend, from deterministic values. */
export async function matMulOn(c: MatMulCase, backend: string): Promise<{ shape: number[]; values: Float32Array }> {
  await onBackend(backend);
  const product = tf.tidy(() =>
    tf.matMul(
      tf.tensor(values(tf.util.sizeFromShape(c.a), 4), c.a),
      tf.tensor(values(tf.util.sizeFromShape(c.b), 5), c.b),
      c.transposeA,
      c.transposeB,
    ),
  );
  return { shape: product.shape, values: (await takeData(product)) as Float32Array };
}

/** The largest difference relative to the largest expected magnitude. */
export function relativeError(expected: Float32Array, actual: Float32Array): number {
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  return worst / scale;
}

/**
 * The largest relative error a GPU may show: float32 sums of up to 4,608 products in another
 * order than the CPU's (lavapipe's errors are below 1e-6; a wrong index or a lost stage gives
 * 1e-2 or more).
 */
export const DEVICE_TOLERANCE = 1e-4;

/**
 * Each model's kinds of layer (filter sizes, strides, channel counts that take different paths
 * through our kernels), on planes and batches small enough for tfjs's CPU backend, plain
 * JavaScript, to follow in seconds: its filter gradient does about 12 M multiply-adds a second.
 */
const DEVICE_CONV_CASES: ConvCase[] = [
  { what: 'AlexNet conv1 (11x11/4, 3 to 64), 67 px', x: [1, 67, 67, 3], filter: [11, 11, 3, 64], strides: 4, pad: 0 },
  { what: 'AlexNet conv2 (5x5, 64 to 192), 9 px', x: [1, 9, 9, 64], filter: [5, 5, 64, 192], strides: 1, pad: 2 },
  { what: 'ResNet18 3x3 (128 to 128), 7 px', x: [1, 7, 7, 128], filter: [3, 3, 128, 128], strides: 1, pad: 'same' },
  { what: 'GoogLeNet 1x1 (192 to 64), 14 px', x: [2, 14, 14, 192], filter: [1, 1, 192, 64], strides: 1, pad: 'same' },
  {
    what: 'SqueezeNet squeeze (1x1, 64 to 16), 27 px',
    x: [2, 27, 27, 64],
    filter: [1, 1, 64, 16],
    strides: 1,
    pad: 'same',
  },
  {
    what: 'DCGAN discriminator (4x4/2, 64 to 128), 16 px',
    x: [2, 16, 16, 64],
    filter: [4, 4, 64, 128],
    strides: 2,
    pad: 1,
  },
];

/** A dense layer's three products at AlexNet's batch of 32, on a 1,152 x 1,024 layer. */
const DEVICE_MATMUL_CASES: MatMulCase[] = [
  {
    what: 'dense forward [32, 1152] x [1152, 1024]',
    a: [32, 1152],
    b: [1152, 1024],
    transposeA: false,
    transposeB: false,
  },
  {
    what: 'dense input gradient [32, 1024] x [1152, 1024]^T',
    a: [32, 1024],
    b: [1152, 1024],
    transposeA: false,
    transposeB: true,
  },
  {
    what: 'dense weight gradient [32, 1152]^T x [32, 1024]',
    a: [32, 1152],
    b: [32, 1024],
    transposeA: true,
    transposeB: false,
  },
];

export interface KernelCheckRow {
  kernel: 'Conv2D' | 'Conv2DBackpropInput' | 'Conv2DBackpropFilter' | 'BatchMatMul';
  layer: string;
  relativeError: number;
  ok: boolean;
  /** Why the GPU side gave no result (the device rejected a program). */
  failure?: string;
}

/** Compares the WebGPU backend's kernels as they are now chosen with the CPU backend; ends on WebGPU. */
export async function checkKernelsOnDevice(log: (line: string) => void): Promise<KernelCheckRow[]> {
  const rows: KernelCheckRow[] = [];
  // A comparison whose GPU side fails (the device rejected a program) is a failed row, with why.
  const add = async (
    kernel: KernelCheckRow['kernel'],
    layer: string,
    expected: () => Promise<Float32Array>,
    actual: () => Promise<Float32Array>,
  ) => {
    const reference = await expected();
    let row: KernelCheckRow;
    try {
      const error = relativeError(reference, await actual());
      row = { kernel, layer, relativeError: error, ok: error <= DEVICE_TOLERANCE };
    } catch (err) {
      row = { kernel, layer, relativeError: Number.NaN, ok: false, failure: (err as Error).message };
    }
    rows.push(row);
    log(
      `kernel check ${row.ok ? 'ok  ' : 'FAIL'} ${kernel}, ${layer}: ${row.failure ?? `relative error ${row.relativeError.toExponential(1)}`}`,
    );
  };
  try {
    for (const c of DEVICE_CONV_CASES) {
      const forward = (backend: string) => () => convForward(c, backend);
      const gradient = (wrt: 'x' | 'filter', backend: string) => () => convGradient(c, wrt, backend);
      await add('Conv2D', c.what, forward('cpu'), forward('webgpu'));
      if (c.x[3] > 3) await add('Conv2DBackpropInput', c.what, gradient('x', 'cpu'), gradient('x', 'webgpu'));
      await add('Conv2DBackpropFilter', c.what, gradient('filter', 'cpu'), gradient('filter', 'webgpu'));
    }
    for (const c of DEVICE_MATMUL_CASES) {
      const product = (backend: string) => async () => (await matMulOn(c, backend)).values;
      await add('BatchMatMul', c.what, product('cpu'), product('webgpu'));
    }
  } finally {
    await onBackend('webgpu');
  }
  return rows;
}

/** The check as a markdown table. */
export function kernelCheckTable(rows: KernelCheckRow[], device: string): string {
  if (!rows.length) return '';
  const failed = rows.filter((r) => !r.ok).length;
  return [
    `Our kernels against tfjs's CPU backend on ${device} (relative error: the largest difference over the largest value; at most ${DEVICE_TOLERANCE} passes): ${failed ? `**${failed} of ${rows.length} FAILED**` : `all ${rows.length} pass`}.`,
    '',
    '| kernel | layer | relative error | |',
    '| --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.kernel} | ${r.layer} | ${r.failure ? '-' : r.relativeError.toExponential(1)} | ${r.ok ? 'ok' : `FAIL${r.failure ? `: ${r.failure}` : ''}`} |`,
    ),
    '',
  ].join('\n');
}
