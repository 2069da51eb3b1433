/**
 * Batch normalisation's training step as WGSL kernels for tfjs's WebGPU backend: ten dispatches
 * per layer and step instead of some thirty on tfjs's ops (lib/models/batch-norm.ts), and no
 * transposes. tfjs's WebGPU reductions over N, H and W first transpose the whole activation so
 * that the channel axis is innermost, and batch norm's statistics and gradient sums take four such
 * reductions per layer and step; with GoogLeNet's 57 batch norms, the dispatches alone (each one
 * tens of microseconds of host work in tfjs) set the pace of a step on an H100.
 *
 * - Forward: per-channel mean and biased variance in two stages (each workgroup a block of 64
 *   channels over a share of the rows, Welford within a thread and Chan's formula across threads
 *   and shares, so there is no cancellation), then y = (x - mean) * rsqrt(var + eps) * gamma + beta.
 *   The statistics travel as one [2, C] tensor (mean; variance).
 * - Moving averages: moving - (moving - batch) * (1 - momentum), tfjs's arithmetic.
 * - Backward: per-channel sums of dy and dy * (x - mean) in two stages, then dx, dgamma and dbeta
 *   from the closed form (see lib/models/batch-norm.ts).
 *
 * test/unit/webgpu-batch-norm.test.ts compares every output with the CPU backend.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { FlatProgram, sumOfPartials, useWebGpuKernel, webGpuKernelRuns, type WebGpuProgram } from './webgpu-program.js';

export const BATCH_NORM_FORWARD = 'PneumoganBatchNormForward';
export const BATCH_NORM_BACKWARD = 'PneumoganBatchNormBackward';
export const MOVING_AVERAGE = 'PneumoganMovingAverage';

type Uniform = { type: 'int32' | 'float32'; data: number[] };
const int = (v: number): Uniform => ({ type: 'int32', data: [v] });
const float = (v: number): Uniform => ({ type: 'float32', data: [v] });

type KernelArgs<A> = { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend; attrs: A };

/** Channels per workgroup (adjacent threads read adjacent channels of a row) and row lanes. */
const CHANNEL_LANES = 64;
const ROW_LANES = 4;
/** Workgroups to aim for (an H100 has 132 multiprocessors), and the fewest rows a share gets. */
const TARGET_WORKGROUPS = 1024;
const MIN_ROWS_PER_SPLIT = 256;

/** How the rows (N x H x W) of a [rows, channels] reduction are shared out among workgroups. */
export function channelReductionSplits(rows: number, channels: number): { splits: number; rowsPerSplit: number } {
  const blocks = Math.ceil(channels / CHANNEL_LANES);
  const wanted = Math.max(1, Math.min(Math.ceil(TARGET_WORKGROUPS / blocks), Math.floor(rows / MIN_ROWS_PER_SPLIT)));
  const rowsPerSplit = Math.ceil(rows / wanted);
  // Recounted so that no share is empty.
  return { splits: Math.ceil(rows / rowsPerSplit), rowsPerSplit };
}

/**
 * Per share of rows and channel: (mean, sum of squared deviations) of x for 'moments', or
 * (sum of dy, sum of dy * (x - mean)) for 'gradient'. Output [splits, 2, channels].
 */
class ChannelPartials implements WebGpuProgram {
  shaderKey: string;
  variableNames: string[];
  uniforms = 'rows : i32, channels : i32, rowsPerSplit : i32,';
  workgroupSize: [number, number, number] = [CHANNEL_LANES, ROW_LANES, 1];
  size = false;
  dispatchLayout = { x: [2], y: [1], z: [0] };
  dispatch: [number, number, number];

  constructor(
    public outputShape: [number, number, number],
    private readonly mode: 'moments' | 'gradient',
  ) {
    const [splits, , channels] = outputShape;
    this.shaderKey = `pneumoganChannelPartials_${mode}`;
    this.variableNames = mode === 'moments' ? ['x'] : ['dy', 'x', 'stats'];
    this.dispatch = [Math.ceil(channels / CHANNEL_LANES), splits, 1];
  }

  getUserCode(): string {
    const lanes = CHANNEL_LANES * ROW_LANES;
    const accumulate =
      this.mode === 'moments'
        ? `let v = x[m * uniforms.channels + c];
            count += 1.0;
            let delta = v - first;
            first += delta / count;
            second += delta * (v - first);`
        : `let g = dy[m * uniforms.channels + c];
            first += g;
            second += g * (x[m * uniforms.channels + c] - mean);`;
    const combine =
      this.mode === 'moments'
        ? `let nb = countShare[slot];
              if (nb > 0.0) {
                let total = count + nb;
                let delta = firstShare[slot] - first;
                first += delta * nb / total;
                second += secondShare[slot] + delta * delta * count * nb / total;
                count = total;
              }`
        : `first += firstShare[slot];
              second += secondShare[slot];`;
    return `
      var<workgroup> firstShare : array<f32, ${lanes}>;
      var<workgroup> secondShare : array<f32, ${lanes}>;
      var<workgroup> countShare : array<f32, ${lanes}>;

      fn main() {
        let lane = i32(localId.x);
        let rowLane = i32(localId.y);
        let c = i32(workgroupId.x) * ${CHANNEL_LANES} + lane;
        let split = i32(workgroupId.y);
        let mBegin = split * uniforms.rowsPerSplit;
        let mEnd = min(mBegin + uniforms.rowsPerSplit, uniforms.rows);
        var first = 0.0;
        var second = 0.0;
        var count = 0.0;
        if (c < uniforms.channels) {
          ${this.mode === 'gradient' ? 'let mean = stats[c];' : ''}
          for (var m = mBegin + rowLane; m < mEnd; m += ${ROW_LANES}) {
            ${accumulate}
          }
        }
        let own = rowLane * ${CHANNEL_LANES} + lane;
        firstShare[own] = first;
        secondShare[own] = second;
        countShare[own] = count;
        workgroupBarrier();
        if (rowLane == 0 && c < uniforms.channels) {
          for (var r = 1; r < ${ROW_LANES}; r++) {
            let slot = r * ${CHANNEL_LANES} + lane;
            ${combine}
          }
          setOutputAtIndex((split * 2) * uniforms.channels + c, first);
          setOutputAtIndex((split * 2 + 1) * uniforms.channels + c, second);
        }
      }
    `;
  }
}

/** [splits, 2, C] (mean, squared deviations) per share -> [2, C] (mean; biased variance). */
function momentsOfShares(channels: number): FlatProgram {
  return new FlatProgram(
    'pneumoganMomentsOfShares',
    [2, channels],
    ['partials'],
    'rows : i32, channels : i32, rowsPerSplit : i32, splits : i32,',
    `if (index < uniforms.channels) {
            var count = 0.0;
            var mean = 0.0;
            var squares = 0.0;
            for (var s = 0; s < uniforms.splits; s++) {
              let nb = f32(min(uniforms.rowsPerSplit, uniforms.rows - s * uniforms.rowsPerSplit));
              let total = count + nb;
              let delta = partials[(s * 2) * uniforms.channels + index] - mean;
              mean += delta * nb / total;
              squares += partials[(s * 2 + 1) * uniforms.channels + index] + delta * delta * count * nb / total;
              count = total;
            }
            setOutputAtIndex(index, mean);
            setOutputAtIndex(uniforms.channels + index, squares / f32(uniforms.rows));
          }`,
  );
}

/** [2, C] (mean; biased variance) of x viewed as [rows, C]. */
function channelMoments(backend: WebGPUBackend, x: tf.TensorInfo, rows: number, channels: number): tf.TensorInfo {
  const { splits, rowsPerSplit } = channelReductionSplits(rows, channels);
  const shape = [rows, channels, rowsPerSplit];
  const partials = backend.runWebGPUProgram(
    new ChannelPartials([splits, 2, channels], 'moments'),
    [x],
    'float32',
    shape.map(int),
  );
  const stats = backend.runWebGPUProgram(momentsOfShares(channels), [partials], 'float32', [
    ...shape.map(int),
    int(splits),
  ]);
  backend.disposeData(partials.dataId);
  return stats;
}

/** x, gamma, beta -> y and the batch statistics [2, C]. */
function batchNormForward(args: KernelArgs<{ epsilon: number }>): tf.TensorInfo[] {
  const { x, gamma, beta } = args.inputs as Record<string, tf.TensorInfo>;
  const channels = x!.shape[x!.shape.length - 1]!;
  const stats = channelMoments(args.backend, x!, tf.util.sizeFromShape(x!.shape) / channels, channels);
  const y = args.backend.runWebGPUProgram(
    new FlatProgram(
      'pneumoganBatchNormApply',
      x!.shape,
      ['x', 'stats', 'gamma', 'beta'],
      'channels : i32, epsilon : f32,',
      `let c = index % uniforms.channels;
          let r = inverseSqrt(stats[uniforms.channels + c] + uniforms.epsilon);
          setOutputAtIndex(index, (x[index] - stats[c]) * r * gamma[c] + beta[c]);`,
    ),
    [x!, stats, gamma!, beta!],
    'float32',
    [int(channels), float(args.attrs.epsilon)],
  );
  return [y, stats];
}

/** The moving statistic `row` of stats (0: mean, 1: variance) after folding in the batch's. */
function movingAverage(args: KernelArgs<{ row: number; momentum: number }>): tf.TensorInfo {
  const { moving, stats } = args.inputs as Record<string, tf.TensorInfo>;
  return args.backend.runWebGPUProgram(
    new FlatProgram(
      'pneumoganMovingAverage',
      moving!.shape,
      ['moving', 'stats'],
      'row : i32, decay : f32,',
      'setOutputAtIndex(index, moving[index] - (moving[index] - stats[uniforms.row * uniforms.size + index]) * uniforms.decay);',
    ),
    [moving!, stats!],
    'float32',
    // As tfjs: 1 - momentum in double precision, then to float32.
    [int(args.attrs.row), float(1 - args.attrs.momentum)],
  );
}

/** dy, x, stats [2, C], gamma -> dx, dgamma, dbeta. */
function batchNormBackward(args: KernelArgs<{ epsilon: number }>): tf.TensorInfo[] {
  const { dy, x, stats, gamma } = args.inputs as Record<string, tf.TensorInfo>;
  const { backend } = args;
  const channels = x!.shape[x!.shape.length - 1]!;
  const rows = tf.util.sizeFromShape(x!.shape) / channels;
  const { splits, rowsPerSplit } = channelReductionSplits(rows, channels);
  const partials = backend.runWebGPUProgram(
    new ChannelPartials([splits, 2, channels], 'gradient'),
    [dy!, x!, stats!],
    'float32',
    [rows, channels, rowsPerSplit].map(int),
  );
  // sums: [2, C] (sum of dy; sum of dy * (x - mean)).
  const sums = backend.runWebGPUProgram(sumOfPartials([2, channels]), [partials], 'float32', [int(splits)]);
  backend.disposeData(partials.dataId);
  const uniforms = [int(channels), float(args.attrs.epsilon), float(rows)];
  const declared = 'channels : i32, epsilon : f32, rows : f32,';
  const dx = backend.runWebGPUProgram(
    new FlatProgram(
      'pneumoganBatchNormInputGradient',
      x!.shape,
      ['dy', 'x', 'stats', 'sums', 'gamma'],
      declared,
      `let c = index % uniforms.channels;
          let r = inverseSqrt(stats[uniforms.channels + c] + uniforms.epsilon);
          let centred = dy[index] - sums[c] / uniforms.rows
            - (x[index] - stats[c]) * (r * r * sums[uniforms.channels + c] / uniforms.rows);
          setOutputAtIndex(index, centred * (gamma[c] * r));`,
    ),
    [dy!, x!, stats!, sums, gamma!],
    'float32',
    uniforms,
  );
  const dGamma = backend.runWebGPUProgram(
    new FlatProgram(
      'pneumoganBatchNormScaleGradient',
      [channels],
      ['stats', 'sums'],
      declared,
      'setOutputAtIndex(index, sums[uniforms.channels + index] * inverseSqrt(stats[uniforms.channels + index] + uniforms.epsilon));',
    ),
    [stats!, sums],
    'float32',
    uniforms,
  );
  const dBeta = backend.runWebGPUProgram(
    new FlatProgram(
      'pneumoganBatchNormOffsetGradient',
      [channels],
      ['sums'],
      '',
      'setOutputAtIndex(index, sums[index]);',
    ),
    [sums],
    'float32',
  );
  backend.disposeData(sums.dataId);
  return [dx, dGamma, dBeta];
}

/** Registers (or with `false` removes) the kernels for the 'webgpu' backend. */
export function useWebGpuBatchNorm(on: boolean): void {
  useWebGpuKernel(BATCH_NORM_FORWARD, batchNormForward, on);
  useWebGpuKernel(BATCH_NORM_BACKWARD, batchNormBackward, on);
  useWebGpuKernel(MOVING_AVERAGE, movingAverage, on);
}

/** Whether the backend now running is WebGPU with these kernels registered. */
export function webGpuBatchNormInUse(): boolean {
  return webGpuKernelRuns(BATCH_NORM_FORWARD);
}
