/**
 * This project's WebGPU kernels (lib/compute/webgpu-*.ts) against tfjs's CPU backend, on
 * the shapes the models use and on awkward ones: every stride and padding the models have,
 * channel counts that are not multiples of the 64-wide tiles, one channel, and reductions long
 * enough to be split across workgroups.
 *
 * Needs a WebGPU adapter (lavapipe without a GPU: `npm run setup:lavapipe`); skips and says so
 * without one.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import {
  convGemmInUse,
  convGemmRowsPerThread,
  convGemmSplits,
  convGemmTakes,
  useConvGemm,
} from '../../lib/compute/webgpu-conv-gemm.js';
import { inputGradientByStrideInUse, useInputGradientByStride } from '../../lib/compute/webgpu-input-gradient.js';
import {
  filterGradientFirstFormInUse,
  filterGradientSplits,
  useFilterGradientFirstForm,
} from '../../lib/compute/webgpu-filter-gradient.js';
import { fastWebGpuKernelsInUse, useFastWebGpuKernels } from '../../lib/compute/webgpu-kernels.js';
import { gemmBlockRows } from '../../lib/compute/webgpu-filter-gradient-gemm.js';
import { matMulAsConvolutionInUse, useMatMulAsConvolution } from '../../lib/compute/webgpu-matmul.js';
import { countWebGpuPrograms, FlatProgram, flatDispatch } from '../../lib/compute/webgpu-program.js';
import {
  checkKernelsOnDevice,
  convForward,
  convGradient,
  kernelCheckTable,
  matMulOn,
  relativeError,
  type ConvCase,
  type KernelCheckRow,
  type MatMulCase,
} from '../../gpu/kernel-check.js';
import { startWebGpuBackend } from '../helpers/webgpu.js';

let unavailable = '';

before(async () => {
  const started = await startWebGpuBackend();
  if (typeof started === 'string') unavailable = started;
});

const cases: ConvCase[] = [
  { what: 'AlexNet conv1: 11x11, stride 4, 3 channels', x: [2, 63, 63, 3], filter: [11, 11, 3, 8], strides: 4, pad: 2 },
  { what: 'ResNet18 3x3, same', x: [4, 16, 16, 16], filter: [3, 3, 16, 16], strides: 1, pad: 'same' },
  { what: 'ResNet18 downsampling 1x1, stride 2', x: [4, 16, 16, 16], filter: [1, 1, 16, 32], strides: 2, pad: 'valid' },
  { what: 'ResNet18 stem 7x7, stride 2', x: [2, 32, 32, 3], filter: [7, 7, 3, 8], strides: 2, pad: 3 },
  {
    what: 'DCGAN discriminator 4x4, stride 2, 1 channel in',
    x: [8, 32, 32, 1],
    filter: [4, 4, 1, 8],
    strides: 2,
    pad: 1,
  },
  { what: 'DCGAN last layer: 1 channel out, valid', x: [8, 4, 4, 64], filter: [4, 4, 64, 1], strides: 1, pad: 'valid' },
  {
    what: 'tiles not filled: 70 channels in, 70 out',
    x: [2, 9, 9, 70],
    filter: [3, 3, 70, 70],
    strides: 1,
    pad: 'same',
  },
  {
    what: 'long reduction, split across workgroups',
    x: [16, 40, 40, 4],
    filter: [3, 3, 4, 4],
    strides: 1,
    pad: 'same',
  },
  {
    what: 'AlexNet conv1 at 64 channels out: 11x11, stride 4',
    x: [2, 63, 63, 3],
    filter: [11, 11, 3, 64],
    strides: 4,
    pad: 2,
  },
  {
    what: 'AlexNet conv2: 5x5, pad 2, 24 to 40 channels',
    x: [3, 13, 13, 24],
    filter: [5, 5, 24, 40],
    strides: 1,
    pad: 2,
  },
  {
    what: '5 px planes: stages of 16 rows span images, reduction split in two',
    x: [24, 5, 5, 32],
    filter: [3, 3, 32, 40],
    strides: 1,
    pad: 'same',
  },
  {
    what: '1 px output planes (a dense layer as a convolution)',
    x: [40, 3, 3, 24],
    filter: [3, 3, 24, 32],
    strides: 1,
    pad: 'valid',
  },
  {
    what: 'a dense layer as a 1x1 convolution: 32 rows, reduction of 1,100 split four ways',
    x: [32, 1, 1, 1100],
    filter: [1, 1, 1100, 40],
    strides: 1,
    pad: 'valid',
  },
  {
    what: '128-row blocks in the forward pass: 512 of them',
    x: [8, 64, 64, 8],
    filter: [3, 3, 8, 72],
    strides: 1,
    pad: 'same',
  },
  {
    what: '128-row blocks in the input gradient',
    x: [8, 64, 64, 72],
    filter: [3, 3, 72, 8],
    strides: 1,
    pad: 'same',
  },
];

for (const c of cases) {
  test(`Conv2DBackpropFilter on WebGPU, each form of ours, matches the CPU backend: ${c.what}`, async (t) => {
    if (unavailable) return t.skip(unavailable);
    const expected = await convGradient(c, 'filter', 'cpu');
    const chosen = filterGradientFirstFormInUse();
    const filterRows = c.filter[0] * c.filter[1] * c.filter[2];
    const later = c.filter[3] <= 16 ? 'row table' : `${gemmBlockRows(filterRows)}-row blocks`;
    const errors: string[] = [];
    try {
      for (const first of [true, false]) {
        useFilterGradientFirstForm(first);
        const form = first ? 'first form' : later;
        const error = relativeError(expected, await convGradient(c, 'filter', 'webgpu'));
        assert.ok(error < 1e-5, `${form}: max |webgpu - cpu| / max |cpu| = ${error}`);
        errors.push(`${form} ${error.toExponential(1)}`);
      }
    } finally {
      useFilterGradientFirstForm(chosen);
    }
    const [n, h, w] = c.x;
    const rows = n * Math.ceil(h / c.strides) * Math.ceil(w / c.strides);
    const blockRows = c.filter[3] <= 16 ? 64 : gemmBlockRows(filterRows);
    t.diagnostic(
      `relative error ${errors.join(', ')}; ${filterGradientSplits(rows, filterRows, c.filter[3], blockRows)} split(s)`,
    );
  });
}

for (const c of cases) {
  test(`Conv2D on WebGPU, tfjs's kernel and our implicit matrix product, matches the CPU backend: ${c.what}`, async (t) => {
    if (unavailable) return t.skip(unavailable);
    const expected = await convForward(c, 'cpu');
    const chosen = convGemmInUse();
    try {
      for (const ours of [false, true]) {
        useConvGemm(ours);
        const error = relativeError(expected, await convForward(c, 'webgpu'));
        assert.ok(error < 1e-5, `${ours ? 'ours' : 'tfjs'}: max |webgpu - cpu| / max |cpu| = ${error}`);
      }
    } finally {
      useConvGemm(chosen);
    }
    const [n, h, w] = c.x;
    const rows = n * Math.ceil(h / c.strides) * Math.ceil(w / c.strides);
    t.diagnostic(
      convGemmTakes('float32', c.filter[3])
        ? `ours ran, ${convGemmRowsPerThread(rows, c.filter[3])} rows a thread, ${convGemmSplits(rows, c.filter[3], c.filter[0] * c.filter[1] * c.filter[2])} split(s)`
        : 'too few output channels for ours: tfjs ran both times',
    );
  });
}

for (const c of cases) {
  test(`Conv2DBackpropInput on WebGPU, tfjs's naive and matrix-product kernels, ours, and the choice by stride, match the CPU backend: ${c.what}`, async (t) => {
    if (unavailable) return t.skip(unavailable);
    const expected = await convGradient(c, 'x', 'cpu');
    const flag = 'WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE';
    const chosen = tf.env().getBool(flag);
    const byStride = inputGradientByStrideInUse();
    const oursChosen = convGemmInUse();
    try {
      useInputGradientByStride(false);
      for (const naive of [true, false]) {
        tf.env().set(flag, naive);
        const error = relativeError(expected, await convGradient(c, 'x', 'webgpu'));
        assert.ok(error < 1e-5, `${naive ? 'naive' : 'matrix product'}: max |webgpu - cpu| / max |cpu| = ${error}`);
      }
      tf.env().set(flag, chosen);
      useInputGradientByStride(true);
      for (const ours of [false, true]) {
        useConvGemm(ours);
        const error = relativeError(expected, await convGradient(c, 'x', 'webgpu'));
        assert.ok(
          error < 1e-5,
          `chosen by stride, ours ${ours ? 'on' : 'off'}: max |webgpu - cpu| / max |cpu| = ${error}`,
        );
      }
    } finally {
      tf.env().set(flag, chosen);
      useInputGradientByStride(byStride);
      useConvGemm(oursChosen);
    }
    t.diagnostic(
      c.strides === 1 && convGemmTakes('float32', c.x[3])
        ? `ours ran when on, ${convGemmRowsPerThread(c.x[0] * c.x[1] * c.x[2], c.x[3])} rows a thread, ${convGemmSplits(c.x[0] * c.x[1] * c.x[2], c.x[3], c.filter[0] * c.filter[1] * c.filter[3])} split(s)`
        : 'strided or too few input channels: ours does not take it',
    );
  });
}

interface MatMulCheck extends MatMulCase {
  /** Whether ours takes it (batch 1, not both transposed, more than 16 columns). */
  ours: boolean;
}

const matMulCases: MatMulCheck[] = [
  {
    what: "a dense layer's forward pass",
    a: [32, 1100],
    b: [1100, 40],
    transposeA: false,
    transposeB: false,
    ours: true,
  },
  {
    what: 'its input gradient (B transposed)',
    a: [32, 40],
    b: [1100, 40],
    transposeA: false,
    transposeB: true,
    ours: true,
  },
  {
    what: 'its weight gradient (A transposed)',
    a: [32, 1100],
    b: [32, 40],
    transposeA: true,
    transposeB: false,
    ours: true,
  },
  { what: 'rank 3, batch 1', a: [1, 20, 70], b: [1, 70, 33], transposeA: false, transposeB: false, ours: true },
  { what: 'a batch of 3: tfjs', a: [3, 20, 70], b: [3, 70, 33], transposeA: false, transposeB: false, ours: false },
  { what: 'both transposed: tfjs', a: [70, 20], b: [33, 70], transposeA: true, transposeB: true, ours: false },
  {
    what: '2 columns (a classifier): tfjs',
    a: [32, 300],
    b: [300, 2],
    transposeA: false,
    transposeB: false,
    ours: false,
  },
];

for (const c of matMulCases) {
  test(`BatchMatMul on WebGPU, tfjs's kernel and ours (as a 1x1 convolution), matches the CPU backend: ${c.what}`, async (t) => {
    if (unavailable) return t.skip(unavailable);
    const expected = await matMulOn(c, 'cpu');
    const chosen = matMulAsConvolutionInUse();
    const errors: string[] = [];
    try {
      for (const ours of [false, true]) {
        useMatMulAsConvolution(ours);
        assert.ok(await tf.setBackend('webgpu'));
        const programs = countWebGpuPrograms()!;
        try {
          const actual = await matMulOn(c, 'webgpu');
          assert.deepEqual(actual.shape, expected.shape);
          const error = relativeError(expected.values, actual.values);
          assert.ok(error < 1e-5, `${ours ? 'ours' : 'tfjs'}: max |webgpu - cpu| / max |cpu| = ${error}`);
          errors.push(`${ours ? 'ours' : 'tfjs'} ${error.toExponential(1)}`);
        } finally {
          programs.stop();
        }
        const keys = programs.shaderKeys();
        const ran = keys.some((key) => /^pneumogan(ConvGemm|FilterGradient)/.test(key));
        assert.equal(ran, ours && c.ours, `our kernel ran: ${ran} (programs ${keys.join(', ')})`);
      }
    } finally {
      useMatMulAsConvolution(chosen);
    }
    t.diagnostic(`relative error ${errors.join(', ')}; ${c.ours ? 'ours ran' : 'tfjs ran both times'}`);
  });
}

test('the implicit matrix product splits its reduction only where a layer has fewer blocks than an H100 has multiprocessors', () => {
  // AlexNet's 9,216 x 4,096 dense layer at batch 32: 64 blocks, split five ways.
  assert.equal(convGemmSplits(32, 4096, 9216), 5);
  // ResNet18's last stage (1,568 rows, 512 channels): 200 blocks, not split.
  assert.equal(convGemmSplits(32 * 7 * 7, 512, 4608), 1);
  // AlexNet's 13 px layers: 510 blocks.
  assert.equal(convGemmSplits(32 * 13 * 13, 384, 1728), 1);
  // Never below 256 reduction indices a split.
  assert.equal(convGemmSplits(32, 64, 300), 1);
});

test('the reduction is split so that small layers fill a large GPU, and never below 256 rows a split', () => {
  // ResNet18's 3x3x64x64 layer at batch 32 and 56 px: 9 blocks of 64 x 64, 100,352 rows.
  assert.equal(filterGradientSplits(32 * 56 * 56, 576, 64), 114);
  // Its 3x3x512x512 layer: 576 blocks already fill the GPU.
  assert.equal(filterGradientSplits(32 * 7 * 7, 4608, 512), 2);
  assert.equal(filterGradientSplits(100, 16, 8), 1);
});

test("switching between tfjs's kernel and ours is reported, so the bench can put back what was chosen", (t) => {
  if (unavailable) return t.skip(unavailable);
  const kernel = () => tf.getKernel(tf.Conv2DBackpropFilter, 'webgpu')?.kernelFunc;
  assert.equal(fastWebGpuKernelsInUse(), true, 'the backend ladder turned ours on');
  const ours = kernel();
  useFastWebGpuKernels(false);
  assert.equal(fastWebGpuKernelsInUse(), false);
  assert.notEqual(kernel(), ours);
  useFastWebGpuKernels(true);
  assert.equal(fastWebGpuKernelsInUse(), true);
});

test('a flat program covers every output element, wrapping past 65,535 workgroups into y', () => {
  assert.deepEqual(flatDispatch([10], 64).dispatch, [1, 1, 1]);
  // SumOfPartials of ResNet18's 3x3x512x512 filter: 36,864 workgroups in x alone.
  assert.deepEqual(flatDispatch([3, 3, 512, 512], 64).dispatch, [36_864, 1, 1]);
  // Adam on AlexNet's 9216 x 4096 dense kernel: 589,824 workgroups, just over 9 rows of 65,535.
  const { dispatch, dispatchLayout } = flatDispatch([9216, 4096], 64);
  assert.deepEqual(dispatch, [65_535, 10, 1]);
  assert.ok(dispatch[0] * dispatch[1] * 64 >= 9216 * 4096);
  assert.deepEqual(dispatchLayout, { x: [0, 1] });
});

test('the GPU run checks our kernels against the CPU backend on the device, and names a wrong one', async (t) => {
  if (unavailable) return t.skip(unavailable);
  // A forward convolution that negates its filter first (wrong values), and matrix products the
  // device rejects (no values): those rows must fail, and nothing else.
  const conv = tf.getKernel(tf.Conv2D, 'webgpu');
  const matMul = tf.getKernel(tf.BatchMatMul, 'webgpu');
  const negate = (filter: tf.TensorInfo) =>
    new FlatProgram('pneumoganTestNegate', filter.shape, ['x'], '', 'setOutputAtIndex(index, -x[index]);');
  const replace = (config: tf.KernelConfig, kernelFunc: tf.KernelFunc) => {
    tf.unregisterKernel(config.kernelName, 'webgpu');
    tf.registerKernel({ ...config, kernelFunc });
  };
  replace(conv, (args) => {
    const backend = args.backend as WebGPUBackend;
    const filter = args.inputs.filter!;
    const negated = backend.runWebGPUProgram(negate(filter), [filter], 'float32');
    try {
      return conv.kernelFunc({ ...args, inputs: { ...args.inputs, filter: negated } });
    } finally {
      backend.disposeData(negated.dataId);
    }
  });
  replace(matMul, (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
    const shape = [a.shape[transposeA ? 1 : 0]!, b.shape[transposeB ? 0 : 1]!];
    const broken = new FlatProgram('pneumoganTestBroken', shape, ['x'], '', 'setOutputAtIndex(index, notDeclared);');
    return (args.backend as WebGPUBackend).runWebGPUProgram(broken, [a], 'float32');
  });
  let rows: KernelCheckRow[];
  try {
    rows = await checkKernelsOnDevice(() => {});
  } finally {
    for (const config of [conv, matMul]) replace(config, config.kernelFunc);
  }
  const failed = rows.filter((r) => !r.ok);
  assert.deepEqual(
    failed.map((r) => r.kernel),
    [...rows.filter((r) => r.kernel === 'Conv2D'), ...rows.filter((r) => r.kernel === 'BatchMatMul')].map(
      (r) => r.kernel,
    ),
  );
  assert.ok(
    failed
      .filter((r) => r.kernel === 'BatchMatMul')
      .every((r) => /device could not run a program/.test(r.failure ?? '')),
  );
  assert.ok(failed.filter((r) => r.kernel === 'Conv2D').every((r) => r.failure === undefined && r.relativeError > 1));
  assert.match(kernelCheckTable(rows, 'a test adapter'), /\*\*9 of 20 FAILED\*\*/);
  const passed = rows.filter((r) => r.ok).map((r) => r.relativeError);
  t.diagnostic(`${rows.length} checks; largest passing error ${Math.max(...passed).toExponential(1)}`);
});
