/**
 * Kernel choices for WebGPU, timed on the convolutions of the paper-size models' layers:
 * the same call under each choice, in one process on one adapter. Part of the GPU bench
 * (gpu/run.ts) when it runs on WebGPU; `--quick` divides the batch by 8 (to check the path on
 * lavapipe, a CPU).
 * - filter gradient (Conv2DBackpropFilter): tfjs's kernel against ours
 *   (lib/compute/webgpu-filter-gradient.ts), and ours in its first form against the later ones
 *   (lib/compute/webgpu-filter-gradient-rows.ts for layers of at most 16 output channels,
 *   -gemm.ts for wider ones);
 * - input gradient (Conv2DBackpropInput, also the generator's transposed convolutions): tfjs's
 *   default, one thread per input element, against tfjs's own tiled matrix-product version, which
 *   it ships behind WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE=false. Both match the CPU backend on every
 *   shape the models have (test/unit/webgpu-kernels.test.ts). On an H100 the matrix product was
 *   1.8x faster on unstrided 3x3 layers and slower on strided ones (it reads every position of
 *   the dilated gradient, most of them zeros), which is how lib/compute/webgpu-input-gradient.ts
 *   now chooses; that choice is off while these rows are timed;
 * - the forward pass (Conv2D) and the unstrided input gradient: tfjs's kernels (the latter its
 *   matrix product) against our implicit matrix product (lib/compute/webgpu-conv-gemm.ts), on the
 *   layers ours takes.
 */
import * as tf from '@tensorflow/tfjs';
import { convGemmInUse, convGemmTakes, useConvGemm } from '../lib/compute/webgpu-conv-gemm.js';
import { inputGradientByStrideInUse, useInputGradientByStride } from '../lib/compute/webgpu-input-gradient.js';
import { filterGradientFirstFormInUse, useFilterGradientFirstForm } from '../lib/compute/webgpu-filter-gradient.js';
import { fastWebGpuKernelsInUse, useFastWebGpuKernels } from '../lib/compute/webgpu-kernels.js';
import { restorer } from './switches.js';

interface GradientCase {
  layer: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number;
  pad: 'same' | 'valid' | number;
}

/** One layer per model, at the `paper` preset's batch (DCGAN 64, backbones 32) and sizes. */
const CASES: GradientCase[] = [
  {
    layer: 'DCGAN discriminator conv 2 (4x4/2, 64 to 128, 32 px)',
    x: [64, 32, 32, 64],
    filter: [4, 4, 64, 128],
    strides: 2,
    pad: 1,
  },
  {
    layer: 'AlexNet conv1 (11x11/4, 3 to 64, 224 px)',
    x: [32, 224, 224, 3],
    filter: [11, 11, 3, 64],
    strides: 4,
    pad: 2,
  },
  {
    layer: 'AlexNet conv2 (5x5, 64 to 192, 27 px)',
    x: [32, 27, 27, 64],
    filter: [5, 5, 64, 192],
    strides: 1,
    pad: 'same',
  },
  {
    layer: 'GoogLeNet 3a 1x1 (192 to 64, 28 px)',
    x: [32, 28, 28, 192],
    filter: [1, 1, 192, 64],
    strides: 1,
    pad: 'same',
  },
  {
    layer: 'SqueezeNet fire2 squeeze (1x1, 64 to 16, 55 px)',
    x: [32, 55, 55, 64],
    filter: [1, 1, 64, 16],
    strides: 1,
    pad: 'same',
  },
  {
    layer: 'ResNet18 layer1 (3x3, 64 to 64, 56 px)',
    x: [32, 56, 56, 64],
    filter: [3, 3, 64, 64],
    strides: 1,
    pad: 'same',
  },
  {
    layer: 'ResNet18 layer4 (3x3, 512 to 512, 7 px)',
    x: [32, 7, 7, 512],
    filter: [3, 3, 512, 512],
    strides: 1,
    pad: 'same',
  },
];

/** Two ways to run one kernel, and how to switch between them. */
interface KernelChoice {
  kernel: 'Conv2D' | 'Conv2DBackpropFilter' | 'Conv2DBackpropInput';
  what: string;
  baseline: string;
  alternative: string;
  /** Sets every switch the kernel's choice depends on, for the baseline or the alternative. */
  use(alternative: boolean): void;
  /** The layers the choice differs on (all when absent). */
  applies?(c: GradientCase): boolean;
}

const NAIVE_INPUT_GRADIENT = 'WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE';

/** Our kernels in place, then `set` on top. */
const oursAnd = (set: () => void) => {
  useFastWebGpuKernels(true);
  set();
};

const CHOICES: KernelChoice[] = [
  {
    kernel: 'Conv2DBackpropFilter',
    what: 'Filter gradients',
    baseline: 'tfjs kernel',
    alternative: 'ours',
    use: useFastWebGpuKernels,
  },
  {
    kernel: 'Conv2DBackpropFilter',
    what: 'Filter gradients, our forms',
    baseline: 'first form',
    alternative: 'row table (narrow) / larger blocks (wide)',
    use: (alternative) => oursAnd(() => useFilterGradientFirstForm(!alternative)),
  },
  {
    kernel: 'Conv2D',
    what: 'Forward convolutions',
    baseline: 'tfjs kernel',
    alternative: 'ours',
    use: (alternative) => oursAnd(() => useConvGemm(alternative)),
    applies: (c) => convGemmTakes('float32', c.filter[3]),
  },
  {
    kernel: 'Conv2DBackpropInput',
    what: 'Input gradients (and transposed convolutions)',
    baseline: 'tfjs default (naive)',
    alternative: 'tfjs matrix product',
    use: (alternative) =>
      oursAnd(() => {
        useInputGradientByStride(false);
        tf.env().set(NAIVE_INPUT_GRADIENT, !alternative);
      }),
  },
  {
    kernel: 'Conv2DBackpropInput',
    what: 'Unstrided input gradients',
    baseline: 'tfjs matrix product',
    alternative: 'ours',
    use: (alternative) =>
      oursAnd(() => {
        useInputGradientByStride(true);
        useConvGemm(alternative);
      }),
    applies: (c) => c.strides === 1 && convGemmTakes('float32', c.filter[2]),
  },
];

export interface KernelRow {
  kernel: KernelChoice['kernel'];
  /** The choice's title (two choices time the filter gradient). */
  what: string;
  layer: string;
  batch: number;
  baselineMs: number;
  alternativeMs: number;
}

/** Mean wall time of `run` (its result read back), after one untimed call compiles the shaders. */
async function timeIt(run: () => tf.Tensor, minSeconds: number): Promise<number> {
  const once = async () => {
    const result = run();
    await result.data();
    result.dispose();
  };
  await once();
  const started = performance.now();
  let calls = 0;
  while (calls < 3 || performance.now() - started < minSeconds * 1000) {
    await once();
    calls++;
  }
  return (performance.now() - started) / calls;
}

export async function benchWebGpuKernels(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<KernelRow[]> {
  // The choices switch kernels to time both ways; the rest of the run keeps what was chosen at
  // start (PNEUMOGAN_WEBGPU_KERNELS=stock included).
  // Fast kernels first: turning them on or off sets some of the others.
  const restore = [
    restorer(fastWebGpuKernelsInUse, useFastWebGpuKernels),
    restorer(filterGradientFirstFormInUse, useFilterGradientFirstForm),
    restorer(inputGradientByStrideInUse, useInputGradientByStride),
    restorer(convGemmInUse, useConvGemm),
    restorer(
      () => tf.env().getBool(NAIVE_INPUT_GRADIENT),
      (naive) => tf.env().set(NAIVE_INPUT_GRADIENT, naive),
    ),
  ];
  const rows: KernelRow[] = [];
  try {
    for (const choice of CHOICES)
      for (const c of CASES) if (choice.applies?.(c) ?? true) rows.push(await benchCase(choice, c, options));
  } finally {
    for (const put of restore) put();
  }
  return rows;
}

async function benchCase(
  choice: KernelChoice,
  c: GradientCase,
  options: { quick: boolean; log: (line: string) => void },
): Promise<KernelRow> {
  const x = c.x.slice() as GradientCase['x'];
  if (options.quick) x[0] = Math.max(1, x[0] / 8);
  const [inputs, filter, dy] = tf.tidy(() => {
    const xs = tf.randomNormal<tf.Rank.R4>(x);
    const f = tf.randomNormal<tf.Rank.R4>(c.filter);
    return [xs, f, tf.randomNormal(tf.conv2d(xs, f, c.strides, c.pad).shape)] as const;
  });
  try {
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC' };
    const run =
      choice.kernel === 'Conv2D'
        ? () => tf.engine().runKernel<tf.Tensor>(tf.Conv2D, { x: inputs, filter }, { ...attrs, dilations: 1 })
        : choice.kernel === 'Conv2DBackpropFilter'
          ? () =>
              tf.engine().runKernel<tf.Tensor>(
                tf.Conv2DBackpropFilter,
                { x: inputs, dy },
                {
                  ...attrs,
                  filterShape: c.filter,
                },
              )
          : () => tf.engine().runKernel<tf.Tensor>(tf.Conv2DBackpropInput, { dy, filter }, { ...attrs, inputShape: x });
    choice.use(false);
    const baselineMs = await timeIt(run, options.quick ? 0.5 : 1);
    choice.use(true);
    const alternativeMs = await timeIt(run, options.quick ? 0.5 : 1);
    options.log(
      `${choice.kernel}, ${c.layer}, batch ${x[0]}: ${choice.baseline} ${baselineMs.toFixed(1)} ms, ${choice.alternative} ${alternativeMs.toFixed(1)} ms`,
    );
    return { kernel: choice.kernel, what: choice.what, layer: c.layer, batch: x[0], baselineMs, alternativeMs };
  } finally {
    tf.dispose([inputs, filter, dy]);
  }
}

export function kernelTable(rows: KernelRow[], device: string): string {
  return CHOICES.flatMap((choice) => {
    const mine = rows.filter((r) => r.what === choice.what);
    if (!mine.length) return [];
    return [
      `${choice.what} (the ${choice.kernel} kernel alone) on ${device}:`,
      '',
      `| layer | batch | ${choice.baseline} ms | ${choice.alternative} ms | speed-up |`,
      '| --- | --- | --- | --- | --- |',
      ...mine.map(
        (r) =>
          `| ${r.layer} | ${r.batch} | ${r.baselineMs.toFixed(1)} | ${r.alternativeMs.toFixed(1)} | ${(r.baselineMs / r.alternativeMs).toFixed(1)}x |`,
      ),
      '',
    ];
  }).join('\n');
}
