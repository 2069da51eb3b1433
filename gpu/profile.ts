/**
 * Where a training step's time goes, per kernel: `tf.profile` around one more run of a bench case
 * (after its timed run, so shaders are compiled), keeping the kernels of its one timed step (model
 * building, the warm-up step and what follows the step are cut off). On WebGPU with the
 * adapter's timestamp-query feature the kernel times are GPU times (each program then runs in a
 * pass of its own, so the profiled step is slower than a real one; only the kernel times count);
 * elsewhere they are what the backend reports. The sum of GPU times beside the bench's measured
 * step time says whether a step is bound by the GPU's work or by the host queueing it.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelCase } from '../bench/cases.js';
import { runModelCase } from '../bench/tfjs-cases.js';
import { countWebGpuPrograms } from '../lib/compute/webgpu-program.js';

export interface KernelSummary {
  /** The kernel's name, or name and input shapes for {@link CaseProfile.calls}. */
  name: string;
  count: number;
  /** Summed kernel time; null where the backend could not time it. */
  totalMs: number | null;
}

export interface CaseProfile {
  id: string;
  /** tfjs kernels the timed step ran. */
  dispatches: number;
  /**
   * GPU programs the timed step dispatched on WebGPU (one of this project's kernels can run
   * several: batch norm's forward runs three), null on other backends.
   */
  programs: number | null;
  /** Summed kernel times of the timed step (GPU time on WebGPU with timestamp queries). */
  kernelMs: number | null;
  /** Per kernel name, largest time first. */
  kernels: KernelSummary[];
  /** Per kernel name and input shapes, the 25 largest: which layers the time goes to. */
  calls: KernelSummary[];
}

type ProfiledKernel = Awaited<ReturnType<typeof tf.profile>>['kernels'][number];

async function summarise(kernels: ProfiledKernel[], key: (k: ProfiledKernel) => string): Promise<KernelSummary[]> {
  const byKey = new Map<string, KernelSummary>();
  for (const kernel of kernels) {
    const time = await kernel.kernelTimeMs;
    const name = key(kernel);
    const entry = byKey.get(name) ?? { name, count: 0, totalMs: 0 };
    entry.count++;
    entry.totalMs = typeof time === 'number' && entry.totalMs !== null ? entry.totalMs + time : null;
    byKey.set(name, entry);
  }
  return [...byKey.values()].sort((a, b) => (b.totalMs ?? 0) - (a.totalMs ?? 0) || b.count - a.count);
}

export async function profileCase(c: ModelCase): Promise<CaseProfile> {
  // Kernels recorded so far, read where the warm-up step ends (tfjs keeps the running profile there).
  const recorded = () => (tf.engine().state.activeProfile.kernels ?? []).length;
  let warmEnd = 0;
  let timedEnd = 0;
  const programs = countWebGpuPrograms();
  let programsAtWarm = 0;
  let programsAtTimed = 0;
  const profile = await tf
    .profile(async () => {
      await runModelCase(
        { ...c, warmup: 1, minSteps: 1, maxSteps: 1, targetSeconds: 0 },
        {
          onWarm: () => {
            warmEnd = recorded();
            programsAtWarm = programs?.count() ?? 0;
          },
          onTimed: () => {
            timedEnd = recorded();
            programsAtTimed = programs?.count() ?? 0;
          },
        },
      );
    })
    .finally(() => programs?.stop());
  // Registered kernels only: an op built from others (a custom gradient) is recorded around them too.
  const step = profile.kernels
    .slice(warmEnd, timedEnd)
    .filter((k) => tf.getKernel(k.name, tf.getBackend()) !== undefined);
  const kernels = await summarise(step, (k) => k.name);
  const calls = await summarise(step, (k) => `${k.name} ${JSON.stringify(k.inputShapes)}`);
  const timed = kernels.every((k) => k.totalMs !== null);
  return {
    id: c.id,
    dispatches: step.length,
    programs: programs ? programsAtTimed - programsAtWarm : null,
    kernelMs: timed ? kernels.reduce((sum, k) => sum + k.totalMs!, 0) : null,
    kernels,
    calls: calls.slice(0, 25),
  };
}

/** "4,012 kernels, 310.2 ms of kernel time; Conv2DBackpropInput 24x 120.3 ms, ..." for the largest `n`. */
export function describeProfile(p: CaseProfile, n = 6): string {
  const top = p.kernels
    .slice(0, n)
    .map((k) => `${k.name} ${k.count}x${k.totalMs === null ? '' : ` ${k.totalMs.toFixed(1)} ms`}`);
  const time = p.kernelMs === null ? 'untimed' : `${p.kernelMs.toFixed(1)} ms of kernel time`;
  const programs = p.programs === null ? '' : ` (${p.programs.toLocaleString('en-US')} GPU programs)`;
  return `${p.dispatches.toLocaleString('en-US')} kernels${programs} in the step, ${time}${top.length ? `; ${top.join(', ')}` : ''}`;
}
