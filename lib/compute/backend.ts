/**
 * Picks the fastest TensorFlow.js backend installed on this machine:
 * tfjs-node-gpu (CUDA) > tfjs-node (native CPU) > pure-JS CPU.
 *
 * The native packages re-export `@tensorflow/tfjs` and register their backend in the same
 * engine, so domain code imports `@tensorflow/tfjs` statically and only this module decides
 * which kernels run. They are optional: their install downloads libtensorflow, which fails on
 * machines without that host, so a missing package is the normal case here, not an error.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { registerFastCpuKernels } from './cpu-kernels.js';

export type ComputeBackendName = 'tensorflow-gpu' | 'tensorflow' | 'cpu';

export interface ComputeBackend {
  /** Which backend is active. */
  name: ComputeBackendName;
  /** The npm package that supplies it. */
  packageName: string;
  /** Why the better backends were not used (empty when the best one loaded). */
  skipped: string[];
}

const CANDIDATES: ReadonlyArray<{ name: ComputeBackendName; packageName: string; tfBackend: string }> = [
  { name: 'tensorflow-gpu', packageName: '@tensorflow/tfjs-node-gpu', tfBackend: 'tensorflow' },
  { name: 'tensorflow', packageName: '@tensorflow/tfjs-node', tfBackend: 'tensorflow' },
];

let active: Promise<ComputeBackend> | undefined;
const require = createRequire(import.meta.url);

/**
 * Loads the best backend once per process. `PNEUMOGAN_BACKEND=cpu|tensorflow|tensorflow-gpu`
 * forces one (a forced backend that cannot load is an error, not a silent fallback).
 */
export function initComputeBackend(log: (line: string) => void = (l) => console.log(l)): Promise<ComputeBackend> {
  active ??= selectBackend(process.env.PNEUMOGAN_BACKEND as ComputeBackendName | undefined).then((b) => {
    log(
      `[compute] TensorFlow.js backend: ${b.name} (${b.packageName})` +
        (b.skipped.length ? `; not used: ${b.skipped.join('; ')}` : ''),
    );
    return b;
  });
  return active;
}

async function selectBackend(forced: ComputeBackendName | undefined): Promise<ComputeBackend> {
  if (forced && !['cpu', 'tensorflow', 'tensorflow-gpu'].includes(forced)) {
    throw new Error(`PNEUMOGAN_BACKEND=${forced} is not a backend; use cpu, tensorflow or tensorflow-gpu`);
  }
  const skipped: string[] = [];
  // libtensorflow logs CPU-feature and oneDNN notices at load; keep warnings and errors.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  for (const candidate of CANDIDATES) {
    if (forced && forced !== candidate.name) continue;
    try {
      // Importing a native package registers its kernels before it loads the addon; skip a
      // package whose addon was never built (its install script could not download it) so
      // the next candidate registers its kernels once.
      if (!hasNativeAddon(candidate.packageName))
        throw new Error('its native addon is not built (see `npm run setup`)');
      await import(candidate.packageName);
      if (await tf.setBackend(candidate.tfBackend)) {
        await tf.ready();
        return { name: candidate.name, packageName: candidate.packageName, skipped };
      }
      skipped.push(`${candidate.packageName} loaded but its backend did not initialise`);
    } catch (err) {
      skipped.push(`${candidate.packageName} unavailable (${firstLine(err)})`);
    }
    if (forced) throw new Error(`PNEUMOGAN_BACKEND=${forced} requested but ${skipped.at(-1)}`);
  }
  registerFastCpuKernels();
  await tf.setBackend('cpu');
  await tf.ready();
  // tfjs would otherwise print its own "install tfjs-node" banner; the log line above says it.
  tf.env().set('PROD', true);
  return { name: 'cpu', packageName: '@tensorflow/tfjs (pure JavaScript)', skipped };
}

function hasNativeAddon(packageName: string): boolean {
  try {
    const packageDir = path.dirname(require.resolve(`${packageName}/package.json`));
    const libDir = path.join(packageDir, 'lib');
    return readdirSync(libDir).some((entry) => existsSync(path.join(libDir, entry, 'tfjs_binding.node')));
  } catch {
    return false;
  }
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}
