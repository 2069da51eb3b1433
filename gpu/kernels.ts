/**
 * This project's WebGPU kernels (lib/compute/webgpu-kernels.ts) against tfjs's own, timed on
 * filter gradients of the paper-size models' layers: the same call, the stock kernel first, then
 * ours, in one process on one adapter. Part of the GPU bench (gpu/run.ts) when it runs on WebGPU;
 * `--quick` divides the batch by 8 (to check the path on lavapipe, a CPU).
 */
import * as tf from '@tensorflow/tfjs';
import { fastWebGpuKernelsInUse, useFastWebGpuKernels } from '../lib/compute/webgpu-kernels.js';

interface FilterGradientCase {
  layer: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number;
  pad: 'same' | 'valid' | number;
}

/** One layer per model, at the `paper` preset's batch (DCGAN 64, backbones 32) and sizes. */
const CASES: FilterGradientCase[] = [
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

export interface KernelRow {
  layer: string;
  batch: number;
  stockMs: number;
  fastMs: number;
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
  const rows: KernelRow[] = [];
  // The bench switches kernels to time both; the rest of the run keeps what was chosen at start
  // (PNEUMOGAN_WEBGPU_KERNELS=stock included).
  const chosen = fastWebGpuKernelsInUse();
  try {
    for (const c of CASES) rows.push(await benchCase(c, options));
  } finally {
    useFastWebGpuKernels(chosen);
  }
  return rows;
}

async function benchCase(
  c: FilterGradientCase,
  options: { quick: boolean; log: (line: string) => void },
): Promise<KernelRow> {
  const x = c.x.slice() as FilterGradientCase['x'];
  if (options.quick) x[0] = Math.max(1, x[0] / 8);
  const [inputs, dy] = tf.tidy(() => {
    const xs = tf.randomNormal<tf.Rank.R4>(x);
    const y = tf.conv2d(xs, tf.zeros(c.filter), c.strides, c.pad);
    return [xs, tf.randomNormal(y.shape)] as const;
  });
  try {
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: c.filter };
    const run = () => tf.engine().runKernel<tf.Tensor>(tf.Conv2DBackpropFilter, { x: inputs, dy }, attrs);
    useFastWebGpuKernels(false);
    const stockMs = await timeIt(run, options.quick ? 0.5 : 1);
    useFastWebGpuKernels(true);
    const fastMs = await timeIt(run, options.quick ? 0.5 : 1);
    options.log(
      `filter gradient, ${c.layer}, batch ${x[0]}: tfjs ${stockMs.toFixed(1)} ms, ours ${fastMs.toFixed(1)} ms`,
    );
    return { layer: c.layer, batch: x[0], stockMs, fastMs };
  } finally {
    tf.dispose([inputs, dy]);
  }
}

export function kernelTable(rows: KernelRow[], device: string): string {
  return [
    `Filter gradients (the Conv2DBackpropFilter kernel alone) on ${device}:`,
    '',
    '| layer | batch | tfjs kernel ms | ours ms | speed-up |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.layer} | ${r.batch} | ${r.stockMs.toFixed(1)} | ${r.fastMs.toFixed(1)} | ${(r.stockMs / r.fastMs).toFixed(1)}x |`,
    ),
    '',
  ].join('\n');
}
