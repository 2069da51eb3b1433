/**
 * Faster replacements for the pure-JS 'cpu' backend kernels that dominate conv-net training.
 *
 * The stock conv kernels load and store an accumulator around every multiply-add, and three of
 * them (Conv2DBackpropFilter, MaxPoolGrad, AvgPoolGrad) read each element through
 * `TensorBuffer.get`, which builds an index from a rest-parameter array, with the reduction running
 * over strided memory: the filter gradient of a small DCGAN layer takes ~50x the forward conv.
 * Here the convs are im2col + a register-blocked matrix product (4x4 tiles: 8 loads per 16
 * multiply-adds, summed in doubles like the stock kernels), and the pool gradients make one pass
 * over the outputs with channels innermost, so every hot loop walks contiguous memory.
 *
 * The stock data-movement kernels are just as slow for another reason: Transpose, Tile, PadV2
 * and non-contiguous Slice compute a coordinate array per element. They sit on the training path
 * through batch norm (Sum and Mean over N, H, W transpose the whole tensor first; the batch norm
 * gradient tiles to full size) and concat (its gradient is SplitV), so they are replaced by
 * row-at-a-time copies and a single-pass reduction. Likewise
 * the binary arithmetic kernels, when a dimension has to be broadcast from 1 (batch norm's
 * [1, 1, 1, C] statistics, global average pooling's gradient).
 *
 * Only float32 tensors (for the convs: NHWC with dilation 1) take the fast path. Anything else
 * (other dtypes, NCHW, dilations > 1, PReLU fusion, unusual bias shapes, scalars) goes to the
 * stock kernel saved at registration, so those cases keep the stock results and error messages.
 */
import * as tf from '@tensorflow/tfjs';
import { kernelSwap } from './kernel-swap.js';

type Conv2DInfo = tf.backend_util.Conv2DInfo;
type Shape4 = [number, number, number, number];
type KernelArgs<A> = { inputs: tf.NamedTensorInfoMap; backend: tf.MathBackendCPU; attrs: A };
type Kernel<A> = (args: KernelArgs<A>) => tf.TensorInfo | tf.TensorInfo[];

/**
 * Upper bound on the floats in one im2col buffer. Output rows are processed in chunks so that a
 * large image (e.g. 224x224 with an 11x11 filter) does not allocate its whole patch matrix.
 */
const CHUNK_FLOATS = 1 << 21;

let registered = false;

/** Swaps the fast kernels into the 'cpu' backend. Safe to call more than once. */
export function registerFastCpuKernels(): void {
  if (registered) return;
  registered = true;
  replaceKernel(tf.Conv2D, fastConv2D);
  replaceKernel(tf.FusedConv2D, fastFusedConv2D);
  replaceKernel(tf.Conv2DBackpropFilter, fastConv2DBackpropFilter);
  replaceKernel(tf.Conv2DBackpropInput, fastConv2DBackpropInput);
  replaceKernel(tf.MaxPoolGrad, fastMaxPoolGrad);
  replaceKernel(tf.AvgPoolGrad, fastAvgPoolGrad);
  replaceKernel(tf.Sum, fastSum);
  replaceKernel(tf.Mean, fastMean);
  replaceKernel(tf.Transpose, fastTranspose);
  replaceKernel(tf.Slice, fastSlice);
  replaceKernel(tf.SplitV, fastSplitV);
  replaceKernel(tf.Tile, fastTile);
  replaceKernel(tf.PadV2, fastPadV2);
  for (const [kernelName, op] of BROADCASTING_OPS) replaceKernel(kernelName, fastBroadcasting(op));
}

function replaceKernel<A>(kernelName: string, make: (stock: Kernel<A>) => Kernel<A>): void {
  kernelSwap(kernelName, 'cpu', (stock) => make(stock as unknown as Kernel<A>) as unknown as tf.KernelFunc).use(true);
}

// ---------------------------------------------------------------------------------------------
// Kernels

function fastConv2D(stock: Kernel<tf.Conv2DAttrs>): Kernel<tf.Conv2DAttrs> {
  return (args) => {
    const { x, filter } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
    const { strides, pad, dataFormat, dilations, dimRoundingMode } = args.attrs;
    if (!onFastPath([x, filter], dataFormat, dilations)) return stock(args);
    const info = convInfo(x.shape, filter.shape, strides, pad, dimRoundingMode);
    const y = conv2DForward(info, valuesOf(args.backend, x), valuesOf(args.backend, filter));
    return args.backend.makeTensorInfo(info.outShape, 'float32', y);
  };
}

/** tf.layers conv layers run through FusedConv2D, whose stock kernel calls the stock conv directly. */
function fastFusedConv2D(stock: Kernel<tf.FusedConv2DAttrs>): Kernel<tf.FusedConv2DAttrs> {
  return (args) => {
    const { x, filter, bias, preluActivationWeights } = args.inputs as {
      x: tf.TensorInfo;
      filter: tf.TensorInfo;
      bias?: tf.TensorInfo;
      preluActivationWeights?: tf.TensorInfo;
    };
    const { strides, pad, dataFormat, dilations, dimRoundingMode, activation, leakyreluAlpha } = args.attrs;
    // Without an alpha the stock leakyrelu yields NaN for negatives; leave that oddity to it.
    const activate =
      activation === 'leakyrelu' && leakyreluAlpha === undefined ? undefined : ACTIVATIONS[activation ?? 'linear'];
    const biasInputs = bias ? [bias] : [];
    if (!onFastPath([x, filter, ...biasInputs], dataFormat, dilations) || preluActivationWeights || !activate) {
      return stock(args);
    }
    const info = convInfo(x.shape, filter.shape, strides, pad, dimRoundingMode);
    const { outChannels } = info;
    if (bias && !isChannelBias(bias, outChannels)) return stock(args);
    const y = conv2DForward(info, valuesOf(args.backend, x), valuesOf(args.backend, filter));
    const b = bias ? valuesOf(args.backend, bias) : new Float32Array(1);
    const channelStride = b.length === 1 ? 0 : 1;
    const alpha = leakyreluAlpha ?? 0;
    for (let i = 0, c = 0; i < y.length; i++) {
      // Round the biased value to float32 first, as the stock kernel stores it before activating.
      y[i] = activate(Math.fround(y[i]! + b[c * channelStride]!), alpha);
      if (++c === outChannels) c = 0;
    }
    return args.backend.makeTensorInfo(info.outShape, 'float32', y);
  };
}

/** Same formulas as the stock cpu activation kernels; 'prelu' is left to the stock kernel. */
const ACTIVATIONS: Partial<Record<string, (v: number, alpha: number) => number>> = {
  linear: (v) => v,
  relu: (v) => Math.max(0, v),
  relu6: (v) => Math.min(Math.max(0, v), 6),
  elu: (v) => (v >= 0 ? v : Math.exp(v) - 1),
  sigmoid: (v) => 1 / (1 + Math.exp(-v)),
  leakyrelu: (v, alpha) => (v < 0 ? alpha * v : v),
};

function isChannelBias(bias: tf.TensorInfo, outChannels: number): boolean {
  const size = tf.util.sizeFromShape(bias.shape);
  return size === 1 || (size === outChannels && bias.shape[bias.shape.length - 1] === outChannels);
}

function fastConv2DBackpropFilter(stock: Kernel<tf.Conv2DBackpropFilterAttrs>): Kernel<tf.Conv2DBackpropFilterAttrs> {
  return (args) => {
    const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs;
    if (!onFastPath([x, dy], dataFormat, 1)) return stock(args);
    const info = convInfo(x.shape, filterShape, strides, pad, dimRoundingMode);
    const dw = conv2DFilterGrad(info, valuesOf(args.backend, x), valuesOf(args.backend, dy));
    return args.backend.makeTensorInfo(info.filterShape, 'float32', dw);
  };
}

/** Also the forward pass of conv2dTranspose. */
function fastConv2DBackpropInput(stock: Kernel<tf.Conv2DBackpropInputAttrs>): Kernel<tf.Conv2DBackpropInputAttrs> {
  return (args) => {
    const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const { inputShape, strides, pad, dataFormat, dimRoundingMode } = args.attrs;
    if (!onFastPath([dy, filter], dataFormat, 1)) return stock(args);
    const info = convInfo(inputShape, filter.shape, strides, pad, dimRoundingMode);
    const dx = conv2DInputGrad(info, valuesOf(args.backend, dy), valuesOf(args.backend, filter));
    return args.backend.makeTensorInfo(info.inShape, 'float32', dx);
  };
}

function fastMaxPoolGrad(stock: Kernel<tf.MaxPoolGradAttrs>): Kernel<tf.MaxPoolGradAttrs> {
  return (args) => {
    const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
    const { filterSize, strides, pad, dimRoundingMode } = args.attrs;
    if (!onFastPath([dy, input], 'NHWC', 1)) return stock(args);
    const info = tf.backend_util.computePool2DInfo(input.shape as Shape4, filterSize, strides, 1, pad, dimRoundingMode);
    const dx = maxPoolGrad(info, valuesOf(args.backend, input), valuesOf(args.backend, dy));
    return args.backend.makeTensorInfo(info.inShape, 'float32', dx);
  };
}

function fastAvgPoolGrad(stock: Kernel<tf.AvgPoolGradAttrs>): Kernel<tf.AvgPoolGradAttrs> {
  return (args) => {
    const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
    const { filterSize, strides, pad } = args.attrs;
    if (!onFastPath([dy, input], 'NHWC', 1)) return stock(args);
    const info = tf.backend_util.computePool2DInfo(input.shape as Shape4, filterSize, strides, 1, pad);
    const dx = avgPoolGrad(info, valuesOf(args.backend, dy));
    return args.backend.makeTensorInfo(info.inShape, 'float32', dx);
  };
}

function fastSum(stock: Kernel<tf.SumAttrs>): Kernel<tf.SumAttrs> {
  return (args) => reduceKernel(args, stock, false);
}

function fastMean(stock: Kernel<tf.MeanAttrs>): Kernel<tf.MeanAttrs> {
  return (args) => reduceKernel(args, stock, true);
}

function reduceKernel(
  args: KernelArgs<tf.SumAttrs | tf.MeanAttrs>,
  stock: Kernel<tf.SumAttrs | tf.MeanAttrs>,
  mean: boolean,
): tf.TensorInfo | tf.TensorInfo[] {
  const { x } = args.inputs as { x: tf.TensorInfo };
  if (!isFloat32NonScalar(x)) return stock(args);
  const axes = tf.util.parseAxisParam(args.attrs.axis, x.shape);
  const [outShape, reduceShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
  const sums = sumOverAxes(valuesOf(args.backend, x), x.shape, axes);
  const scale = mean ? 1 / tf.util.sizeFromShape(reduceShape) : 1;
  const out = new Float32Array(sums.length);
  for (let i = 0; i < out.length; i++) out[i] = sums[i]! * scale;
  const shape = args.attrs.keepDims ? tf.backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
  return args.backend.makeTensorInfo(shape, 'float32', out);
}

function fastTranspose(stock: Kernel<tf.TransposeAttrs>): Kernel<tf.TransposeAttrs> {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (!isFloat32NonScalar(x)) return stock(args);
    const { perm } = args.attrs;
    const strides = stridesOf(x.shape);
    const outShape = perm.map((axis) => x.shape[axis]!);
    const out = gather(
      valuesOf(args.backend, x),
      outShape,
      perm.map((axis) => strides[axis]!),
      0,
    );
    return args.backend.makeTensorInfo(outShape, 'float32', out);
  };
}

/** Contiguous slices stay with the stock kernel, which returns them as views without copying. */
function fastSlice(stock: Kernel<tf.SliceAttrs>): Kernel<tf.SliceAttrs> {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (!isFloat32NonScalar(x)) return stock(args);
    const [begin, size] = tf.slice_util.parseSliceParams(x, args.attrs.begin, args.attrs.size) as [number[], number[]];
    if (tf.slice_util.isSliceContinous(x.shape, begin, size)) return stock(args);
    tf.slice_util.assertParamsValid(x, begin, size);
    return args.backend.makeTensorInfo(size, 'float32', sliceOf(valuesOf(args.backend, x), x.shape, begin, size));
  };
}

function fastSplitV(stock: Kernel<tf.SplitVAttrs>): Kernel<tf.SplitVAttrs> {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (!isFloat32NonScalar(x)) return stock(args);
    const axis = tf.util.parseAxisParam(args.attrs.axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x, args.attrs.numOrSizeSplits, axis);
    const values = valuesOf(args.backend, x);
    const begin = x.shape.map(() => 0);
    return sizes.map((length) => {
      const size = x.shape.slice();
      size[axis] = length;
      const piece = args.backend.makeTensorInfo(size, 'float32', sliceOf(values, x.shape, begin, size));
      begin[axis] = begin[axis]! + length;
      return piece;
    });
  };
}

function fastTile(stock: Kernel<tf.TileAttrs>): Kernel<tf.TileAttrs> {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (!isFloat32NonScalar(x)) return stock(args);
    const { reps } = args.attrs;
    // Output index along dim d is rep * shape[d] + i: a row-major walk over the interleaved
    // (reps[d], shape[d]) dims, where the rep dims do not move in the input.
    const strides = stridesOf(x.shape);
    const walkShape = x.shape.flatMap((n, d) => [reps[d]!, n]);
    const out = gather(
      valuesOf(args.backend, x),
      walkShape,
      strides.flatMap((stride) => [0, stride]),
      0,
    );
    return args.backend.makeTensorInfo(
      x.shape.map((n, d) => n * reps[d]!),
      'float32',
      out,
    );
  };
}

function fastPadV2(stock: Kernel<tf.PadV2Attrs>): Kernel<tf.PadV2Attrs> {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (!isFloat32NonScalar(x)) return stock(args);
    const { paddings, constantValue } = args.attrs;
    const outShape = x.shape.map((n, d) => paddings[d]![0] + n + paddings[d]![1]);
    const outStrides = stridesOf(outShape);
    const out = new Float32Array(tf.util.sizeFromShape(outShape));
    if (constantValue !== 0) out.fill(constantValue);
    const xValues = valuesOf(args.backend, x);
    const run = x.shape[x.shape.length - 1]!;
    const walk = new RowWalker(
      x.shape,
      outStrides,
      paddings.reduce((at, [before], d) => at + before * outStrides[d]!, 0),
    );
    for (let i = 0; i < xValues.length; i += run, walk.next()) {
      for (let t = 0, o = walk.offset; t < run; t++, o++) out[o] = xValues[i + t]!;
    }
    return args.backend.makeTensorInfo(outShape, 'float32', out);
  };
}

/** Same formulas as the stock cpu kernels. */
const BROADCASTING_OPS: ReadonlyArray<[string, (a: number, b: number) => number]> = [
  [tf.Add, (a, b) => a + b],
  [tf.Sub, (a, b) => a - b],
  [tf.Multiply, (a, b) => a * b],
  [tf.RealDiv, (a, b) => a / b],
  [tf.SquaredDifference, (a, b) => (a - b) * (a - b)],
];

function fastBroadcasting(
  op: (a: number, b: number) => number,
): (stock: Kernel<tf.NamedAttrMap>) => Kernel<tf.NamedAttrMap> {
  return (stock) => (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    if (!isFloat32NonScalar(a) || !isFloat32NonScalar(b)) return stock(args);
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    // Without a dimension to expand from 1 the stock kernel is already one flat loop.
    if (
      tf.backend_util.getBroadcastDims(a.shape, outShape).length === 0 &&
      tf.backend_util.getBroadcastDims(b.shape, outShape).length === 0
    ) {
      return stock(args);
    }
    const aValues = valuesOf(args.backend, a);
    const bValues = valuesOf(args.backend, b);
    const aStrides = broadcastStrides(a.shape, outShape);
    const bStrides = broadcastStrides(b.shape, outShape);
    const aStep = aStrides[aStrides.length - 1]!;
    const bStep = bStrides[bStrides.length - 1]!;
    const run = outShape[outShape.length - 1]!;
    const aWalk = new RowWalker(outShape, aStrides, 0);
    const bWalk = new RowWalker(outShape, bStrides, 0);
    const out = new Float32Array(tf.util.sizeFromShape(outShape));
    for (let o = 0; o < out.length; o += run, aWalk.next(), bWalk.next()) {
      for (let t = 0, i = aWalk.offset, j = bWalk.offset; t < run; t++, i += aStep, j += bStep) {
        out[o + t] = op(aValues[i]!, bValues[j]!);
      }
    }
    return args.backend.makeTensorInfo(outShape, 'float32', out);
  };
}

/** Strides of `shape` read as broadcast to `outShape`: 0 along dimensions it does not span. */
function broadcastStrides(shape: number[], outShape: number[]): number[] {
  const strides = stridesOf(shape);
  const lead = outShape.length - shape.length;
  return outShape.map((n, d) => (d < lead || shape[d - lead] === 1 ? 0 : strides[d - lead]!));
}

/** Scalars are left to the stock kernels, so every shape here has a last dimension to copy along. */
function isFloat32NonScalar(t: tf.TensorInfo): boolean {
  return t.dtype === 'float32' && t.shape.length > 0;
}

function onFastPath(tensors: tf.TensorInfo[], dataFormat: string | undefined, dilations: number | number[]): boolean {
  return (
    (dataFormat ?? 'NHWC') === 'NHWC' &&
    tf.backend_util.tupleValuesAreOne(dilations) &&
    tensors.every((t) => t.dtype === 'float32')
  );
}

function convInfo(
  xShape: number[],
  filterShape: number[],
  strides: tf.Conv2DAttrs['strides'],
  pad: tf.Conv2DAttrs['pad'],
  dimRoundingMode: tf.Conv2DAttrs['dimRoundingMode'],
): Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as Shape4,
    filterShape as Shape4,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
}

function valuesOf(backend: tf.MathBackendCPU, t: tf.TensorInfo): Float32Array {
  return backend.data.get(t.dataId).values as Float32Array;
}

// ---------------------------------------------------------------------------------------------
// Convolution as matrix products. With K = filterHeight * filterWidth * inChannels, the filter
// [fh, fw, in, out] is already a row-major K x out matrix, and the im2col patch matrix of a block
// of output pixels is P x K with the same K ordering.

function conv2DForward(info: Conv2DInfo, x: Float32Array, w: Float32Array): Float32Array {
  const k = patchLength(info);
  const { outChannels, outWidth } = info;
  const wT = new Float32Array(w.length);
  transpose(w, 0, k, outChannels, wT);
  const y = new Float32Array(tf.util.sizeFromShape(info.outShape));
  forEachPatchChunk(info, x, (row0, pixels, patches, offset) => {
    gemmNT(pixels, outChannels, k, patches, offset, wT, 0, y, row0 * outWidth * outChannels);
  });
  return y;
}

function conv2DFilterGrad(info: Conv2DInfo, x: Float32Array, dy: Float32Array): Float32Array {
  const k = patchLength(info);
  const { outChannels, outWidth } = info;
  const dw = new Float32Array(k * outChannels);
  const chunkDw = new Float32Array(k * outChannels);
  const maxPixels = chunkRows(info) * outWidth;
  // dW = patchesᵀ · dy reduces over pixels, so both operands are transposed to make it contiguous.
  const patchesT = new Float32Array(maxPixels * k);
  const dyT = new Float32Array(maxPixels * outChannels);
  forEachPatchChunk(info, x, (row0, pixels, patches, offset) => {
    transpose(patches, offset, pixels, k, patchesT);
    transpose(dy, row0 * outWidth * outChannels, pixels, outChannels, dyT);
    gemmNT(k, outChannels, pixels, patchesT, 0, dyT, 0, chunkDw, 0);
    for (let i = 0; i < dw.length; i++) dw[i] = dw[i]! + chunkDw[i]!;
  });
  return dw;
}

function conv2DInputGrad(info: Conv2DInfo, dy: Float32Array, w: Float32Array): Float32Array {
  const k = patchLength(info);
  const { outChannels, outWidth } = info;
  const dx = new Float32Array(tf.util.sizeFromShape(info.inShape));
  const totalRows = info.batchSize * info.outHeight;
  if (isPointwise(info)) {
    gemmNT(totalRows * outWidth, k, outChannels, dy, 0, w, 0, dx, 0);
    return dx;
  }
  const rowsPerChunk = chunkRows(info);
  const patches = new Float32Array(rowsPerChunk * outWidth * k);
  for (let row0 = 0; row0 < totalRows; row0 += rowsPerChunk) {
    const row1 = Math.min(totalRows, row0 + rowsPerChunk);
    const pixels = (row1 - row0) * outWidth;
    gemmNT(pixels, k, outChannels, dy, row0 * outWidth * outChannels, w, 0, patches, 0);
    col2imAdd(info, row0, row1, patches, dx);
  }
  return dx;
}

function patchLength(info: Conv2DInfo): number {
  return info.filterHeight * info.filterWidth * info.inChannels;
}

/** A 1x1, stride-1, unpadded conv: the input itself is the patch matrix. */
function isPointwise(info: Conv2DInfo): boolean {
  return (
    info.filterHeight === 1 &&
    info.filterWidth === 1 &&
    info.outHeight === info.inHeight &&
    info.outWidth === info.inWidth &&
    info.padInfo.top === 0 &&
    info.padInfo.left === 0
  );
}

/** Output rows (flattened batch x outHeight) per im2col chunk. */
function chunkRows(info: Conv2DInfo): number {
  const rowFloats = info.outWidth * patchLength(info);
  return Math.max(1, Math.min(info.batchSize * info.outHeight, Math.floor(CHUNK_FLOATS / rowFloats)));
}

/**
 * Calls `fn` for consecutive blocks of at most chunkRows(info) output rows with their P x K patch
 * matrix, which starts at `offset` in `patches` (`x` itself for pointwise convs).
 */
function forEachPatchChunk(
  info: Conv2DInfo,
  x: Float32Array,
  fn: (row0: number, pixels: number, patches: Float32Array, offset: number) => void,
): void {
  const totalRows = info.batchSize * info.outHeight;
  const rowsPerChunk = chunkRows(info);
  const rowFloats = info.outWidth * patchLength(info);
  const pointwise = isPointwise(info);
  const patches = pointwise ? x : new Float32Array(rowsPerChunk * rowFloats);
  for (let row0 = 0; row0 < totalRows; row0 += rowsPerChunk) {
    const row1 = Math.min(totalRows, row0 + rowsPerChunk);
    if (!pointwise) im2col(info, row0, row1, x, patches);
    fn(row0, (row1 - row0) * info.outWidth, patches, pointwise ? row0 * rowFloats : 0);
  }
}

/**
 * Writes the P x K patch matrix of output rows [row0, row1). Within one filter row the in-bounds
 * taps read consecutive input pixels whatever the stride, so each is one contiguous copy.
 */
function im2col(info: Conv2DInfo, row0: number, row1: number, x: Float32Array, patches: Float32Array): void {
  const { inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight, filterWidth } = info;
  const { strideHeight, strideWidth } = info;
  const { top, left } = info.padInfo;
  const tapRow = filterWidth * inChannels;
  let p = 0;
  for (let row = row0; row < row1; row++) {
    const b = Math.floor(row / outHeight);
    const xR0 = (row - b * outHeight) * strideHeight - top;
    for (let yC = 0; yC < outWidth; yC++) {
      const xC0 = yC * strideWidth - left;
      const from = Math.max(0, -xC0) * inChannels;
      const to = (Math.min(inWidth, xC0 + filterWidth) - xC0) * inChannels;
      for (let wR = 0; wR < filterHeight; wR++, p += tapRow) {
        const xR = xR0 + wR;
        if (xR < 0 || xR >= inHeight || from >= to) {
          patches.fill(0, p, p + tapRow);
          continue;
        }
        const src = ((b * inHeight + xR) * inWidth + xC0) * inChannels;
        for (let t = 0; t < from; t++) patches[p + t] = 0;
        for (let t = from; t < to; t++) patches[p + t] = x[src + t]!;
        for (let t = to; t < tapRow; t++) patches[p + t] = 0;
      }
    }
  }
}

/** The adjoint of im2col: adds each patch entry back onto the input pixel it was read from. */
function col2imAdd(info: Conv2DInfo, row0: number, row1: number, patches: Float32Array, dx: Float32Array): void {
  const { inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight, filterWidth } = info;
  const { strideHeight, strideWidth } = info;
  const { top, left } = info.padInfo;
  const tapRow = filterWidth * inChannels;
  let p = 0;
  for (let row = row0; row < row1; row++) {
    const b = Math.floor(row / outHeight);
    const xR0 = (row - b * outHeight) * strideHeight - top;
    for (let yC = 0; yC < outWidth; yC++) {
      const xC0 = yC * strideWidth - left;
      const from = Math.max(0, -xC0) * inChannels;
      const to = (Math.min(inWidth, xC0 + filterWidth) - xC0) * inChannels;
      for (let wR = 0; wR < filterHeight; wR++, p += tapRow) {
        const xR = xR0 + wR;
        if (xR < 0 || xR >= inHeight) continue;
        const dst = ((b * inHeight + xR) * inWidth + xC0) * inChannels;
        for (let t = from; t < to; t++) dx[dst + t] = dx[dst + t]! + patches[p + t]!;
      }
    }
  }
}

/** dst (cols x rows) = the rows x cols matrix starting at src[srcOffset], both row-major. */
function transpose(src: Float32Array, srcOffset: number, rows: number, cols: number, dst: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const s = srcOffset + r * cols;
    for (let c = 0, d = r; c < cols; c++, d += rows) dst[d] = src[s + c]!;
  }
}

/**
 * c[m x n] = a[m x k] · b[n x k]ᵀ (row-major, starting at the given offsets). Both operands are
 * read along contiguous rows; 4x4 output tiles keep 16 double accumulators in registers and load
 * each operand value once per 4 multiply-adds.
 */
function gemmNT(
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  aOffset: number,
  b: Float32Array,
  bOffset: number,
  c: Float32Array,
  cOffset: number,
): void {
  const m4 = m - (m % 4);
  const n4 = n - (n % 4);
  for (let i = 0; i < m4; i += 4) {
    const a0 = aOffset + i * k,
      a1 = a0 + k,
      a2 = a1 + k,
      a3 = a2 + k;
    const c0 = cOffset + i * n,
      c1 = c0 + n,
      c2 = c1 + n,
      c3 = c2 + n;
    for (let j = 0; j < n4; j += 4) {
      const b0 = bOffset + j * k,
        b1 = b0 + k,
        b2 = b1 + k,
        b3 = b2 + k;
      let s00 = 0,
        s01 = 0,
        s02 = 0,
        s03 = 0,
        s10 = 0,
        s11 = 0,
        s12 = 0,
        s13 = 0;
      let s20 = 0,
        s21 = 0,
        s22 = 0,
        s23 = 0,
        s30 = 0,
        s31 = 0,
        s32 = 0,
        s33 = 0;
      for (let t = 0; t < k; t++) {
        const x0 = a[a0 + t]!,
          x1 = a[a1 + t]!,
          x2 = a[a2 + t]!,
          x3 = a[a3 + t]!;
        let y = b[b0 + t]!;
        s00 += x0 * y;
        s10 += x1 * y;
        s20 += x2 * y;
        s30 += x3 * y;
        y = b[b1 + t]!;
        s01 += x0 * y;
        s11 += x1 * y;
        s21 += x2 * y;
        s31 += x3 * y;
        y = b[b2 + t]!;
        s02 += x0 * y;
        s12 += x1 * y;
        s22 += x2 * y;
        s32 += x3 * y;
        y = b[b3 + t]!;
        s03 += x0 * y;
        s13 += x1 * y;
        s23 += x2 * y;
        s33 += x3 * y;
      }
      c[c0 + j] = s00;
      c[c0 + j + 1] = s01;
      c[c0 + j + 2] = s02;
      c[c0 + j + 3] = s03;
      c[c1 + j] = s10;
      c[c1 + j + 1] = s11;
      c[c1 + j + 2] = s12;
      c[c1 + j + 3] = s13;
      c[c2 + j] = s20;
      c[c2 + j + 1] = s21;
      c[c2 + j + 2] = s22;
      c[c2 + j + 3] = s23;
      c[c3 + j] = s30;
      c[c3 + j + 1] = s31;
      c[c3 + j + 2] = s32;
      c[c3 + j + 3] = s33;
    }
    for (let j = n4; j < n; j++) {
      const b0 = bOffset + j * k;
      let s0 = 0,
        s1 = 0,
        s2 = 0,
        s3 = 0;
      for (let t = 0; t < k; t++) {
        const y = b[b0 + t]!;
        s0 += a[a0 + t]! * y;
        s1 += a[a1 + t]! * y;
        s2 += a[a2 + t]! * y;
        s3 += a[a3 + t]! * y;
      }
      c[c0 + j] = s0;
      c[c1 + j] = s1;
      c[c2 + j] = s2;
      c[c3 + j] = s3;
    }
  }
  for (let i = m4; i < m; i++) {
    const a0 = aOffset + i * k;
    const c0 = cOffset + i * n;
    for (let j = 0; j < n; j++) {
      const b0 = bOffset + j * k;
      let s = 0;
      for (let t = 0; t < k; t++) s += a[a0 + t]! * b[b0 + t]!;
      c[c0 + j] = s;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Pool gradients: one pass over the output pixels, with the channel loop innermost.

/**
 * Routes each output gradient to the first strictly largest input of its window (row-major
 * order, padding excluded), which is the position the stock kernel picks, ties included.
 */
function maxPoolGrad(info: Conv2DInfo, x: Float32Array, dy: Float32Array): Float32Array {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth } = info;
  const { strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const dx = new Float32Array(x.length);
  const best = new Float64Array(inChannels);
  const bestAt = new Int32Array(inChannels);
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    for (let yR = 0; yR < outHeight; yR++) {
      const xR0 = yR * strideHeight - top;
      const xR1 = Math.min(inHeight, xR0 + filterHeight);
      for (let yC = 0; yC < outWidth; yC++, o += inChannels) {
        const xC0 = yC * strideWidth - left;
        const xC1 = Math.min(inWidth, xC0 + filterWidth);
        best.fill(-Infinity);
        bestAt.fill(-1);
        for (let xR = Math.max(0, xR0); xR < xR1; xR++) {
          for (let xC = Math.max(0, xC0); xC < xC1; xC++) {
            const src = ((b * inHeight + xR) * inWidth + xC) * inChannels;
            for (let d = 0; d < inChannels; d++) {
              const v = x[src + d]!;
              if (v > best[d]!) {
                best[d] = v;
                bestAt[d] = src + d;
              }
            }
          }
        }
        for (let d = 0; d < inChannels; d++) {
          const at = bestAt[d]!;
          if (at >= 0) dx[at] = dx[at]! + dy[o + d]!;
        }
      }
    }
  }
  return dx;
}

/**
 * Spreads each output gradient over its window's in-bounds inputs, scaled by 1 / (filter area)
 * like the stock kernel (whose forward pass divides 'same'-padded border windows by the
 * in-bounds count instead; the two agree for 'valid' pooling).
 */
function avgPoolGrad(info: Conv2DInfo, dy: Float32Array): Float32Array {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth } = info;
  const { strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const sums = new Float64Array(batchSize * inHeight * inWidth * inChannels);
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    for (let yR = 0; yR < outHeight; yR++) {
      const xR0 = yR * strideHeight - top;
      const xR1 = Math.min(inHeight, xR0 + filterHeight);
      for (let yC = 0; yC < outWidth; yC++, o += inChannels) {
        const xC0 = yC * strideWidth - left;
        const xC1 = Math.min(inWidth, xC0 + filterWidth);
        for (let xR = Math.max(0, xR0); xR < xR1; xR++) {
          for (let xC = Math.max(0, xC0); xC < xC1; xC++) {
            const dst = ((b * inHeight + xR) * inWidth + xC) * inChannels;
            for (let d = 0; d < inChannels; d++) sums[dst + d] = sums[dst + d]! + dy[o + d]!;
          }
        }
      }
    }
  }
  const scale = 1 / (filterHeight * filterWidth);
  const dx = new Float32Array(sums.length);
  for (let i = 0; i < sums.length; i++) dx[i] = sums[i]! * scale;
  return dx;
}

// ---------------------------------------------------------------------------------------------
// Data movement and reductions, one row (innermost dimension) at a time.

/** Row-major strides, including the trailing 1. */
function stridesOf(shape: number[]): number[] {
  const strides = new Array<number>(shape.length);
  for (let d = shape.length - 1, stride = 1; d >= 0; d--) {
    strides[d] = stride;
    stride *= shape[d]!;
  }
  return strides;
}

/**
 * Row-major walk over every dimension of `shape` but the last, tracking the flat offset of the
 * current row in an array with the given per-dimension strides.
 */
class RowWalker {
  offset: number;
  private readonly index: number[];

  constructor(
    private readonly shape: number[],
    private readonly strides: number[],
    start: number,
  ) {
    this.offset = start;
    this.index = shape.map(() => 0);
  }

  next(): void {
    const { shape, strides, index } = this;
    for (let d = shape.length - 2; d >= 0; d--) {
      this.offset += strides[d]!;
      if (++index[d]! < shape[d]!) return;
      index[d] = 0;
      this.offset -= shape[d]! * strides[d]!;
    }
  }
}

/** out[i] = x[the offset of output position i under `strides`], for an output of `outShape`. */
function gather(x: Float32Array, outShape: number[], strides: number[], start: number): Float32Array {
  const out = new Float32Array(tf.util.sizeFromShape(outShape));
  const run = outShape[outShape.length - 1]!;
  const step = strides[strides.length - 1]!;
  const walk = new RowWalker(outShape, strides, start);
  for (let o = 0; o < out.length; o += run, walk.next()) {
    for (let t = 0, i = walk.offset; t < run; t++, i += step) out[o + t] = x[i]!;
  }
  return out;
}

function sliceOf(x: Float32Array, shape: number[], begin: number[], size: number[]): Float32Array {
  const strides = stridesOf(shape);
  return gather(
    x,
    size,
    strides,
    begin.reduce((at, b, d) => at + b * strides[d]!, 0),
  );
}

/**
 * Sums over `axes` in one row-major pass over x, so each output still receives its terms in
 * the stock order (the stock kernel transposes the axes innermost first). Runs of adjacent
 * dimensions that are all reduced or all kept are merged to keep rows long.
 */
function sumOverAxes(x: Float32Array, shape: number[], axes: number[]): Float64Array {
  const dims: number[] = [];
  const reduced: boolean[] = [];
  shape.forEach((n, d) => {
    const isReduced = axes.includes(d);
    if (dims.length > 0 && reduced[reduced.length - 1] === isReduced) dims[dims.length - 1]! *= n;
    else {
      dims.push(n);
      reduced.push(isReduced);
    }
  });
  const outStrides = new Array<number>(dims.length);
  let outSize = 1;
  for (let d = dims.length - 1; d >= 0; d--) {
    outStrides[d] = reduced[d] ? 0 : outSize;
    if (!reduced[d]) outSize *= dims[d]!;
  }
  const sums = new Float64Array(outSize);
  const run = dims[dims.length - 1]!;
  const walk = new RowWalker(dims, outStrides, 0);
  if (reduced[reduced.length - 1]) {
    for (let i = 0; i < x.length; i += run, walk.next()) {
      let sum = sums[walk.offset]!;
      for (let t = 0; t < run; t++) sum += x[i + t]!;
      sums[walk.offset] = sum;
    }
  } else {
    for (let i = 0; i < x.length; i += run, walk.next()) {
      for (let t = 0, o = walk.offset; t < run; t++, o++) sums[o] = sums[o]! + x[i + t]!;
    }
  }
  return sums;
}
