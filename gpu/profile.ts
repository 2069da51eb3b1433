/**
 * Where a training step's time goes, per kernel: `tf.profile` around one more run of a bench case
 * (after its timed run, so shaders and kernels are compiled). On WebGPU with the adapter's
 * timestamp-query feature the kernel times are GPU times; elsewhere they are what the backend
 * reports (wall time per kernel on the CPU backends). The dispatch counts alone show how many
 * kernels a step launches, which is what bounds WebGPU at small sizes.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelCase } from '../bench/cases.js';
import { runModelCase } from '../bench/tfjs-cases.js';

export interface KernelSummary {
  name: string;
  count: number;
  /** Summed kernel time; null where the backend could not time it. */
  totalMs: number | null;
}

export interface CaseProfile {
  id: string;
  /** Kernels launched by one warm-up step plus one timed step (and the model's initialisation). */
  dispatches: number;
  wallMs: number;
  kernels: KernelSummary[];
}

export async function profileCase(c: ModelCase): Promise<CaseProfile> {
  const started = performance.now();
  const profile = await tf.profile(async () => {
    await runModelCase({ ...c, warmup: 1, minSteps: 1, maxSteps: 1, targetSeconds: 0 });
  });
  const wallMs = performance.now() - started;
  const byName = new Map<string, KernelSummary>();
  for (const kernel of profile.kernels) {
    const time = await kernel.kernelTimeMs;
    const entry = byName.get(kernel.name) ?? { name: kernel.name, count: 0, totalMs: 0 };
    entry.count++;
    entry.totalMs = typeof time === 'number' && entry.totalMs !== null ? entry.totalMs + time : null;
    byName.set(kernel.name, entry);
  }
  const kernels = [...byName.values()].sort((a, b) => (b.totalMs ?? 0) - (a.totalMs ?? 0) || b.count - a.count);
  return { id: c.id, dispatches: profile.kernels.length, wallMs, kernels };
}

/** "conv2d 12 x 3.1 ms, ..." for the largest `n`. */
export function describeProfile(p: CaseProfile, n = 6): string {
  const top = p.kernels
    .slice(0, n)
    .map((k) => `${k.name} ${k.count}x${k.totalMs === null ? '' : ` ${k.totalMs.toFixed(1)} ms`}`);
  return `${p.dispatches} kernels in ${p.wallMs.toFixed(0)} ms; ${top.join(', ')}`;
}
