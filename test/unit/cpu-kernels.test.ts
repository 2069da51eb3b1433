import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { registerFastCpuKernels } from '../../lib/compute/cpu-kernels.js';

// Everything stock is captured before the fast kernels go in: the kernel functions themselves
// and the gradients of a small net, which later run again through the replacements.
await tf.setBackend('cpu');
const backend = tf.backend() as tf.MathBackendCPU;
const REPLACED = [
  'Conv2D',
  'FusedConv2D',
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'MaxPoolGrad',
  'AvgPoolGrad',
  'Sum',
  'Mean',
  'Transpose',
  'Slice',
  'SplitV',
  'Tile',
  'PadV2',
  'Add',
  'Sub',
  'Multiply',
  'RealDiv',
  'SquaredDifference',
];
const stock = new Map(REPLACED.map((name) => [name, tf.getKernel(name, 'cpu').kernelFunc]));
const stockNetGradients = netGradients();
registerFastCpuKernels();

type Inputs = Record<string, tf.Tensor>;
type Attrs = Record<string, unknown>;
interface Output {
  shape: number[];
  dtype: string;
  values: ArrayLike<number>;
}

function runStock(name: string, inputs: Inputs, attrs: Attrs): Output[] {
  const result = stock.get(name)!({ inputs, backend, attrs: attrs as tf.NamedAttrMap });
  return (Array.isArray(result) ? result : [result]).map((info) => {
    const values = Array.from(backend.readSync(info.dataId) as Float32Array);
    backend.disposeData(info.dataId);
    return { shape: info.shape, dtype: info.dtype, values };
  });
}

function runRegistered(name: string, inputs: Inputs, attrs: Attrs): Output[] {
  const result = tf.engine().runKernel<tf.Tensor | tf.Tensor[]>(name, inputs, attrs as tf.NamedAttrMap);
  return (Array.isArray(result) ? result : [result]).map((t) => {
    const output = { shape: t.shape, dtype: t.dtype, values: Array.from(t.dataSync() as Float32Array) };
    t.dispose();
    return output;
  });
}

/** Element-wise 1e-4 relative, with a floor for entries that are near zero after cancellation. */
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) {
    const tolerance = 1e-4 * Math.max(Math.abs(expected[i]!), 1e-2 * scale);
    if (!(Math.abs(actual[i]! - expected[i]!) <= tolerance)) {
      assert.fail(`${what}: element ${i} is ${actual[i]}, stock gives ${expected[i]}`);
    }
  }
}

function assertSameAsStock(name: string, inputs: Inputs, attrs: Attrs, what = ''): void {
  const label = `${name} ${what || JSON.stringify(attrs)}`;
  const actual = runRegistered(name, inputs, attrs);
  const expected = runStock(name, inputs, attrs);
  assert.equal(actual.length, expected.length, `${label}: number of outputs`);
  actual.forEach((out, i) => {
    assert.deepEqual([out.shape, out.dtype], [expected[i]!.shape, expected[i]!.dtype], `${label}: shape and dtype`);
    assertClose(out.values, expected[i]!.values, label);
  });
}

/** For inputs the replacements hand to the stock kernel: bit-identical output. */
function assertDelegated(name: string, inputs: Inputs, attrs: Attrs): void {
  assert.deepEqual(
    runRegistered(name, inputs, attrs),
    runStock(name, inputs, attrs),
    `${name} ${JSON.stringify(attrs)}`,
  );
}

let seed = 1;
function random(shape: number[]): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, 'float32', seed++);
}

type Pad = 'same' | 'valid' | number[][];
interface ConvCase {
  x: number[];
  filter: number[];
  strides: number[];
  pad: Pad;
}

const CONV_CASES: ConvCase[] = [
  { x: [2, 9, 9, 3], filter: [3, 3, 3, 5], strides: [1, 1], pad: 'same' },
  { x: [1, 10, 10, 4], filter: [4, 4, 4, 6], strides: [2, 2], pad: 'same' },
  { x: [2, 9, 9, 3], filter: [4, 4, 3, 2], strides: [2, 2], pad: 'same' },
  { x: [3, 11, 7, 5], filter: [3, 3, 5, 4], strides: [2, 2], pad: 'valid' },
  { x: [1, 7, 7, 9], filter: [3, 3, 9, 10], strides: [1, 1], pad: 'valid' },
  { x: [2, 8, 8, 6], filter: [1, 1, 6, 7], strides: [1, 1], pad: 'valid' },
  { x: [2, 9, 9, 6], filter: [1, 1, 6, 4], strides: [2, 2], pad: 'same' },
  {
    x: [2, 13, 12, 3],
    filter: [5, 5, 3, 8],
    strides: [2, 3],
    pad: [
      [0, 0],
      [2, 1],
      [0, 2],
      [0, 0],
    ],
  },
  // Large enough to be processed in several chunks of output rows, with a boundary inside an image.
  { x: [2, 160, 160, 2], filter: [5, 5, 2, 1], strides: [1, 1], pad: 'same' },
  { x: [1, 128, 160, 104], filter: [1, 1, 104, 1], strides: [1, 1], pad: 'valid' },
];

for (const c of CONV_CASES) {
  const label = `x=${c.x.join(',')} filter=${c.filter.join(',')} strides=${c.strides.join(',')} pad=${JSON.stringify(c.pad)}`;
  test(`conv kernels match stock: ${label}`, () => {
    tf.tidy(() => {
      const x = random(c.x);
      const filter = random(c.filter);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dilations: [1, 1] };
      const y = tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, c.strides as [number, number], c.pad as 'same');
      const dy = random(y.shape);
      assertSameAsStock('Conv2D', { x, filter }, attrs, label);
      assertSameAsStock(
        'FusedConv2D',
        { x, filter, bias: random([c.filter[3]!]) },
        { ...attrs, activation: 'relu' },
        `${label} bias+relu`,
      );
      assertSameAsStock('Conv2DBackpropInput', { dy, filter }, { ...attrs, inputShape: c.x }, label);
      assertSameAsStock('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: c.filter }, label);
    });
  });
}

test('FusedConv2D matches stock for every activation it handles and for scalar bias', () => {
  tf.tidy(() => {
    const x = random([2, 6, 6, 3]);
    const filter = random([3, 3, 3, 4]);
    const attrs = { strides: [1, 1], pad: 'same', dataFormat: 'NHWC', dilations: [1, 1] };
    for (const activation of ['linear', 'relu', 'relu6', 'elu', 'sigmoid']) {
      assertSameAsStock('FusedConv2D', { x, filter, bias: random([4]) }, { ...attrs, activation }, activation);
    }
    assertSameAsStock(
      'FusedConv2D',
      { x, filter, bias: random([1]) },
      { ...attrs, activation: 'leakyrelu', leakyreluAlpha: 0.3 },
      'leakyrelu, scalar bias',
    );
    assertSameAsStock('FusedConv2D', { x, filter }, { ...attrs, activation: 'linear' }, 'no bias');
  });
});

test('inputs outside the fast paths are delegated to the stock kernels', () => {
  tf.tidy(() => {
    const x = random([1, 8, 8, 3]);
    const filter = random([3, 3, 3, 2]);
    const dilated = { strides: [1, 1], pad: 'same', dataFormat: 'NHWC', dilations: [2, 2] };
    assertDelegated('Conv2D', { x, filter }, dilated);
    assertDelegated(
      'FusedConv2D',
      { x, filter, bias: random([2]), preluActivationWeights: random([2]) },
      { ...dilated, dilations: [1, 1], activation: 'prelu' },
    );
    assertDelegated(
      'Conv2DBackpropFilter',
      { x: random([1, 3, 6, 6]), dy: random([1, 2, 6, 6]) },
      { strides: [1, 1], pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 3, 2] },
    );
    const ints = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2, 1], 'int32');
    assertDelegated('Sum', { x: ints }, { axis: [0, 1], keepDims: false });
    assertDelegated('Multiply', { a: ints, b: tf.tensor4d([3], [1, 1, 1, 1], 'int32') }, {});
    assertDelegated('Slice', { x: random([4, 5, 6]) }, { begin: [1, 0, 0], size: [2, 5, 6] });
  });
});

interface PoolCase {
  x: number[];
  size: number;
  stride: number;
  pad: 'same' | 'valid';
}

const POOL_CASES: PoolCase[] = [
  { x: [2, 9, 9, 3], size: 3, stride: 2, pad: 'valid' },
  { x: [1, 8, 8, 5], size: 2, stride: 2, pad: 'valid' },
  { x: [2, 7, 9, 4], size: 3, stride: 1, pad: 'same' },
  { x: [2, 10, 10, 3], size: 3, stride: 2, pad: 'same' },
  { x: [3, 5, 5, 6], size: 5, stride: 5, pad: 'valid' },
];

for (const c of POOL_CASES) {
  const label = `x=${c.x.join(',')} size=${c.size} stride=${c.stride} pad=${c.pad}`;
  test(`pool gradient kernels match stock: ${label}`, () => {
    tf.tidy(() => {
      const x = random(c.x);
      // Values from {-1, 0, 1} make most windows contain ties, which must go where stock sends them.
      const tied = tf.round(x);
      const attrs = { filterSize: [c.size, c.size], strides: [c.stride, c.stride], pad: c.pad };
      for (const input of [x, tied]) {
        const output = tf.maxPool(input as tf.Tensor4D, c.size, c.stride, c.pad);
        const dy = random(output.shape);
        assertSameAsStock('MaxPoolGrad', { dy, input, output }, attrs, label);
        assertSameAsStock('AvgPoolGrad', { dy, input }, attrs, label);
      }
    });
  });
}

test('Sum and Mean match stock over any axes', () => {
  tf.tidy(() => {
    const x = random([3, 5, 4, 6]);
    const ones = random([2, 1, 4, 1]);
    for (const axis of [[0, 1, 2], [1, 2], [3], [0, 2], [-1], [2, 0], [0, 1, 2, 3], []]) {
      for (const keepDims of [false, true]) {
        assertSameAsStock('Sum', { x }, { axis, keepDims });
        assertSameAsStock('Mean', { x }, { axis, keepDims });
      }
    }
    assertSameAsStock('Sum', { x: ones }, { axis: [0, 2], keepDims: false });
    assertSameAsStock('Mean', { x: random([7]) }, { axis: 0, keepDims: false });
  });
});

test('Transpose, Slice, SplitV, Tile and PadV2 match stock', () => {
  tf.tidy(() => {
    const x = random([3, 5, 4, 6]);
    for (const perm of [
      [0, 3, 1, 2],
      [3, 2, 1, 0],
      [0, 2, 1, 3],
      [1, 0, 2, 3],
    ])
      assertSameAsStock('Transpose', { x }, { perm });
    assertSameAsStock('Transpose', { x: random([5, 7]) }, { perm: [1, 0] });
    assertSameAsStock('Slice', { x }, { begin: [1, 0, 1, 2], size: [2, 5, 3, 3] });
    assertSameAsStock('Slice', { x }, { begin: [0, 0, 0, 4], size: [-1, -1, -1, 2] });
    assertSameAsStock('Slice', { x }, { begin: [2, 1, 0, 0], size: [1, 3, -1, -1] });
    assertSameAsStock('SplitV', { x }, { numOrSizeSplits: [2, 1, 3], axis: 3 });
    assertSameAsStock('SplitV', { x }, { numOrSizeSplits: 5, axis: 1 });
    assertSameAsStock('SplitV', { x }, { numOrSizeSplits: [1, -1], axis: -2 });
    assertSameAsStock('SplitV', { x }, { numOrSizeSplits: [2, 1], axis: 0 });
    assertSameAsStock('Tile', { x: random([1, 1, 1, 6]) }, { reps: [3, 5, 4, 1] });
    assertSameAsStock('Tile', { x: random([2, 3]) }, { reps: [2, 3] });
    assertSameAsStock('Tile', { x: random([4]) }, { reps: [3] });
    assertSameAsStock(
      'PadV2',
      { x },
      {
        paddings: [
          [0, 0],
          [1, 2],
          [2, 1],
          [0, 0],
        ],
        constantValue: 0,
      },
    );
    assertSameAsStock(
      'PadV2',
      { x },
      {
        paddings: [
          [1, 0],
          [0, 0],
          [0, 3],
          [2, 2],
        ],
        constantValue: 1.5,
      },
    );
  });
});

test('broadcasting arithmetic matches stock', () => {
  tf.tidy(() => {
    const pairs: Array<[number[], number[]]> = [
      [
        [1, 1, 1, 6],
        [3, 5, 4, 6],
      ],
      [
        [3, 5, 4, 6],
        [1, 1, 1, 6],
      ],
      [
        [3, 1, 1, 6],
        [3, 5, 4, 6],
      ],
      [
        [5, 1],
        [1, 4],
      ],
      [
        [4, 1],
        [3, 1, 5],
      ],
      [[6], [3, 5, 4, 6]],
      [[3, 5, 4, 6], []],
      [
        [2, 3],
        [2, 3],
      ],
    ];
    for (const [aShape, bShape] of pairs) {
      const a = random(aShape);
      const b = random(bShape);
      for (const name of ['Add', 'Sub', 'Multiply', 'RealDiv', 'SquaredDifference']) {
        assertSameAsStock(name, { a, b }, {}, `${JSON.stringify(aShape)} with ${JSON.stringify(bShape)}`);
      }
    }
  });
});

test('registering twice keeps the same kernels', () => {
  const before = REPLACED.map((name) => tf.getKernel(name, 'cpu').kernelFunc);
  registerFastCpuKernels();
  assert.deepEqual(
    REPLACED.map((name) => tf.getKernel(name, 'cpu').kernelFunc),
    before,
  );
  for (const name of REPLACED) assert.notEqual(tf.getKernel(name, 'cpu').kernelFunc, stock.get(name));
});

test('tf.grads of a small conv net are the same with the fast kernels as with the stock ones', () => {
  const fast = netGradients();
  assert.equal(fast.length, stockNetGradients.length);
  fast.forEach((g, i) => assertClose(g, stockNetGradients[i]!, `gradient ${i}`));
});

/**
 * Gradients, with respect to the input and every weight, of a net that goes through every
 * replaced kernel: a fused conv with bias, batch norm, max/avg pooling, a broadcast
 * subtraction of per-image channel means, concat, pad and slice, a stride-2 conv and a stride-2
 * conv2dTranspose.
 */
function netGradients(): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.randomUniform<tf.Rank.R4>([2, 12, 12, 3], -1, 1, 'float32', 101);
    const w1 = tf.randomUniform<tf.Rank.R4>([3, 3, 3, 6], -1, 1, 'float32', 102);
    const b1 = tf.randomUniform<tf.Rank.R1>([6], -1, 1, 'float32', 103);
    const w2 = tf.randomUniform<tf.Rank.R4>([4, 4, 12, 8], -1, 1, 'float32', 104);
    const w3 = tf.randomUniform<tf.Rank.R4>([4, 4, 5, 8], -1, 1, 'float32', 105);
    const target = tf.randomUniform([2, 6, 6, 5], -1, 1, 'float32', 106);
    const gamma = tf.randomUniform([6], 0.5, 1.5, 'float32', 107);
    const beta = tf.randomUniform([6], -1, 1, 'float32', 108);
    const loss = (xs: tf.Tensor4D, k1: tf.Tensor4D, bias: tf.Tensor1D, k2: tf.Tensor4D, k3: tf.Tensor4D) => {
      let h = tf.relu(tf.fused.conv2d({ x: xs, filter: k1, strides: 1, pad: 'same', bias }));
      const { mean, variance } = tf.moments(h, [0, 1, 2]);
      h = tf.batchNorm(h, mean, variance, beta, gamma, 1e-3) as tf.Tensor4D;
      h = tf.maxPool(h, 3, 1, 'same');
      h = tf.sub(h, tf.mean(h, [1, 2], true));
      h = tf.concat<tf.Tensor4D>([h, tf.transpose(h, [0, 2, 1, 3])], 3);
      h = tf.slice(
        tf.pad(h, [
          [0, 0],
          [1, 0],
          [0, 1],
          [0, 0],
        ]),
        [0, 1, 0, 0],
        [2, 12, 12, 12],
      );
      h = tf.leakyRelu(tf.conv2d(h, k2, 2, 'same'), 0.2);
      h = tf.avgPool(h, 2, 1, 'valid');
      const y = tf.conv2dTranspose(h, k3, [2, 10, 10, 5], 2, 'same');
      return tf.sum(tf.mul(tf.slice(y, [0, 2, 2, 0], [2, 6, 6, 5]), target));
    };
    const grads = tf.grads(loss as (...args: tf.Tensor[]) => tf.Tensor)([x, w1, b1, w2, w3]);
    return grads.map((g) => g.dataSync() as Float32Array);
  });
}
