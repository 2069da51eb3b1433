/**
 * Fast paths for the element-wise and reduction kernels that batch normalisation runs in
 * training: `x - mean`, `x * gamma` and friends broadcast a per-channel vector over an NHWC
 * tensor, and the moments and their gradients sum over every axis but the channel one. The
 * stock pure-JS kernels compute a multi-dimensional index per element on broadcasts and transpose
 * before reducing leading axes, which made these ops the bulk of a DCGAN training step. Here a
 * broadcast of a trailing block is `i % block`, and a reduction over leading axes is a strided sum.
 * Every other shape goes to the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';

type Backend = tf.MathBackendCPU;
type Values = Float32Array | Int32Array;
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs?: tf.NamedAttrMap };
type Kernel = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

const BINARY: Record<string, (a: number, b: number) => number> = {
  [tf.Add]: (a, b) => a + b,
  [tf.Sub]: (a, b) => a - b,
  [tf.Multiply]: (a, b) => a * b,
  [tf.RealDiv]: (a, b) => a / b,
  [tf.SquaredDifference]: (a, b) => (a - b) * (a - b),
};

let registered = false;

export function registerFastChannelKernels(): void {
  if (registered) return;
  registered = true;
  for (const [name, op] of Object.entries(BINARY)) replace(name, (stock) => (args) => binary(op, args) ?? stock(args));
  replace(tf.Sum, (stock) => (args) => reduceLeading(args, false) ?? stock(args));
  replace(tf.Mean, (stock) => (args) => reduceLeading(args, true) ?? stock(args));
}

function replace(name: string, make: (stock: Kernel) => Kernel): void {
  const stock = tf.getKernel(name, 'cpu');
  if (!stock) throw new Error(`cpu backend has no ${name} kernel to replace`);
  tf.unregisterKernel(name, 'cpu');
  tf.registerKernel({ ...stock, kernelFunc: make(stock.kernelFunc as unknown as Kernel) as unknown as tf.KernelFunc });
}

function values(backend: Backend, t: tf.TensorInfo): Values | undefined {
  const v = backend.data.get(t.dataId).values;
  return v instanceof Float32Array || v instanceof Int32Array ? v : undefined;
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Is `small` (right-aligned, after dropping leading 1s) equal to the trailing dims of `big`? */
function isTrailingBlock(big: readonly number[], small: readonly number[]): boolean {
  const trimmed = small.slice(small.findIndex((d) => d !== 1) === -1 ? small.length : small.findIndex((d) => d !== 1));
  if (trimmed.length > big.length || small.length > big.length) return false;
  const tail = big.slice(big.length - trimmed.length);
  return tail.every((d, i) => d === trimmed[i]);
}

function binary(op: (a: number, b: number) => number, { inputs, backend }: KernelArgs): tf.TensorInfo | undefined {
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
  const av = values(backend, a);
  const bv = values(backend, b);
  if (!av || !bv) return undefined;
  const aSize = av.length;
  const bSize = bv.length;
  let out: Float32Array;
  let shape: number[];
  if (a.shape.length >= b.shape.length && isTrailingBlock(a.shape, b.shape) && aSize >= bSize) {
    shape = a.shape.slice();
    out = new Float32Array(aSize);
    for (let i = 0, j = 0; i < aSize; i++, j = j + 1 === bSize ? 0 : j + 1) out[i] = op(av[i]!, bv[j]!);
  } else if (b.shape.length >= a.shape.length && isTrailingBlock(b.shape, a.shape)) {
    shape = b.shape.slice();
    out = new Float32Array(bSize);
    for (let i = 0, j = 0; i < bSize; i++, j = j + 1 === aSize ? 0 : j + 1) out[i] = op(av[j]!, bv[i]!);
  } else {
    return undefined;
  }
  return backend.makeTensorInfo(shape, 'float32', out);
}

/** Sum or mean over a leading prefix of axes (e.g. [0, 1, 2] of NHWC): one pass, channels innermost. */
function reduceLeading({ inputs, backend, attrs }: KernelArgs, mean: boolean): tf.TensorInfo | undefined {
  const { x } = inputs as { x: tf.TensorInfo };
  if (x.dtype !== 'float32') return undefined;
  const xv = values(backend, x);
  if (!xv) return undefined;
  const rank = x.shape.length;
  const rawAxes = (attrs?.axis ?? null) as number | number[] | null;
  const axes = (rawAxes === null ? [...Array(rank).keys()] : Array.isArray(rawAxes) ? rawAxes : [rawAxes]).map((ax) => (ax < 0 ? ax + rank : ax)).sort((p, q) => p - q);
  // Only a leading prefix that leaves at least one axis: the all-axes and trailing cases are already fast.
  if (axes.length === 0 || axes.length === rank || !axes.every((ax, i) => ax === i)) return undefined;
  const rows = size(x.shape.slice(0, axes.length));
  const inner = size(x.shape.slice(axes.length));
  const acc = new Float64Array(inner);
  for (let r = 0; r < rows; r++) {
    const base = r * inner;
    for (let c = 0; c < inner; c++) acc[c]! += xv[base + c]!;
  }
  const out = new Float32Array(inner);
  for (let c = 0; c < inner; c++) out[c] = mean ? acc[c]! / rows : acc[c]!;
  const keepDims = Boolean(attrs?.keepDims);
  const shape = keepDims ? x.shape.map((d, i) => (i < axes.length ? 1 : d)) : x.shape.slice(axes.length);
  return backend.makeTensorInfo(shape, 'float32', out);
}
