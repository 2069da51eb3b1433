/**
 * Where the host's time goes during a training step: a V8 CPU profile (node:inspector) of the
 * timed steps of a bench case, summarised by function (self time). On WebGPU a step is bound by
 * the host when it takes much longer than its kernels' GPU time; native calls into Dawn appear
 * under the JS function that makes them (createBindGroup, writeBuffer, submit, ...), so the
 * summary says which part of queueing a kernel costs. The .cpuprofile opens in Chrome DevTools.
 */
import { Session } from 'node:inspector';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ModelCase } from '../bench/cases.js';
import { runModelCase } from '../bench/tfjs-cases.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface HostFunction {
  name: string;
  selfMs: number;
  share: number;
}

export interface HostProfile {
  id: string;
  steps: number;
  profiledMs: number;
  top: HostFunction[];
  file: string;
}

function post<T>(session: Session, method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) =>
    session.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result as T))),
  );
}

/** Self time per function (name and source position), from the sample intervals. */
export function selfTimes(profile: CpuProfile, n: number): HostFunction[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, ProfileNode>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node);
  const label = (node: ProfileNode) => {
    const { functionName, url, lineNumber } = node.callFrame;
    return `${functionName || '(anonymous)'} ${path.basename(url)}:${lineNumber + 1}`;
  };
  const selfUs = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const node = byId.get(samples[i]!);
    if (!node) continue;
    // Native functions (Dawn's, through N-API) have no name of their own: name their JS caller.
    const parent = parentOf.get(node.id);
    const native = !node.callFrame.url && !node.callFrame.functionName && parent;
    const key = native ? `native, called from ${label(parent)}` : label(node);
    selfUs.set(key, (selfUs.get(key) ?? 0) + (deltas[i + 1] ?? 0));
  }
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0) || 1;
  return [...selfUs.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, us]) => ({ name, selfMs: us / 1000, share: us / total }));
}

/** Profiles the timed steps of `c` (after one warm-up step) and writes `<out>/host-<case>.cpuprofile`. */
export async function hostProfileCase(c: ModelCase, out: string, steps = 2): Promise<HostProfile> {
  const session = new Session();
  session.connect();
  try {
    await post(session, 'Profiler.enable');
    await post(session, 'Profiler.setSamplingInterval', { interval: 100 });
    let started: Promise<unknown> | undefined;
    let stopped: Promise<{ profile: CpuProfile }> | undefined;
    await runModelCase(
      { ...c, warmup: 1, minSteps: steps, maxSteps: steps, targetSeconds: 0 },
      {
        onWarm: () => {
          started = post(session, 'Profiler.start');
        },
        onTimed: () => {
          stopped = post(session, 'Profiler.stop');
        },
      },
    );
    await started;
    if (!stopped) throw new Error(`${c.id}: the timed steps never ended`);
    const { profile } = await stopped;
    const file = path.join(out, `host-${c.id.replace(/[^a-z0-9]+/gi, '-')}.cpuprofile`);
    await writeFile(file, JSON.stringify(profile));
    return {
      id: c.id,
      steps,
      profiledMs: (profile.endTime - profile.startTime) / 1000,
      top: selfTimes(profile, 30),
      file,
    };
  } finally {
    session.disconnect();
  }
}

export function describeHostProfile(p: HostProfile): string {
  return [
    `host profile of ${p.id}: ${p.steps} steps in ${p.profiledMs.toFixed(0)} ms; self time by function:`,
    ...p.top.map(
      (f) => `  ${(100 * f.share).toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(1).padStart(8)} ms  ${f.name}`,
    ),
  ].join('\n');
}
