/**
 * Picks the fastest TensorFlow.js backend this machine can run, once per process:
 *
 *   tensorflow-gpu  @tensorflow/tfjs-node-gpu, TensorFlow on a CUDA GPU (`npm run setup:gpu`)
 *   webgpu          @tensorflow/tfjs-backend-webgpu on Dawn (`webgpu` package): Vulkan, Metal, D3D12
 *   tensorflow      TensorFlow on the CPU (@tensorflow/tfjs-node, or tfjs-node-gpu without a GPU)
 *   cpu             pure JavaScript, with this project's faster CPU kernels
 *
 * The native packages re-export `@tensorflow/tfjs` and register their backend in the same
 * engine, so domain code imports `@tensorflow/tfjs` statically and only this module decides
 * which kernels run. All of them are optional dependencies: a missing one is normal, not an error.
 *
 * The result names the device that runs the kernels (a CUDA GPU, a WebGPU adapter, or the CPU
 * with its thread count and model), which logs and lineage record. tfjs-node-gpu on a machine
 * whose CUDA libraries do not load runs on the CPU; that is detected (TensorFlow reports no GPU
 * device) and reported, never passed off as the GPU rung. TensorFlow's own log lines
 * (TF_CPP_MIN_LOG_LEVEL) are left on: they say which CUDA library failed to load.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { registerFastCpuKernels } from './cpu-kernels.js';
import {
  cpuDescription,
  findSharedLibrary,
  nvidiaDriverVersion,
  nvidiaGpuNames,
  tensorflowThreads,
  vulkanIcdFiles,
} from './devices.js';
import { describeWebGpuAdapter, installNavigatorGpu, probeWebGpuAdapter } from './webgpu.js';
import { watchWebGpuErrors } from './webgpu-errors.js';
import { useFastWebGpuKernels } from './webgpu-kernels.js';

export const BACKEND_LADDER = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'cpu'] as const;
export type ComputeBackendName = (typeof BACKEND_LADDER)[number];

export interface ComputeBackend {
  /** Which rung of the ladder is active. */
  name: ComputeBackendName;
  /** The npm package that supplies it. */
  packageName: string;
  /** The device that runs the kernels: "CUDA GPU:0 NVIDIA H100 ...", "WebGPU adapter ...", "CPU (2 threads, ...)". */
  device: string;
  /** True when the kernels run on a GPU (a software WebGPU adapter is not one). */
  gpu: boolean;
  /** Why the better rungs were not used (empty when the best one loaded). */
  skipped: string[];
}

/** What lineage and reports record for a step: the device first, then the backend that drove it. */
export function computeLabel(backend: ComputeBackend): string {
  return `${backend.device} [${backend.name}]`;
}

const PACKAGES = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  webgpu: '@tensorflow/tfjs-backend-webgpu',
  tensorflow: '@tensorflow/tfjs-node',
  cpu: '@tensorflow/tfjs (pure JavaScript)',
} as const satisfies Record<ComputeBackendName, string>;

let active: Promise<ComputeBackend> | undefined;
const require = createRequire(import.meta.url);

/**
 * Loads the best backend once per process and logs what runs where. `PNEUMOGAN_BACKEND` forces
 * one rung (`cpu`, `tensorflow`, `webgpu`, `tensorflow-gpu`); a forced rung that cannot run is an
 * error, not a fallback. Forcing `webgpu` accepts a software adapter (lavapipe), the automatic
 * ladder does not (TensorFlow on the CPU is faster than a CPU emulating a GPU).
 */
export function initComputeBackend(log: (line: string) => void = (l) => console.log(l)): Promise<ComputeBackend> {
  active ??= selectBackend(parseForced(process.env.PNEUMOGAN_BACKEND)).then((b) => {
    log(
      `[compute] running on ${b.device} (TensorFlow.js backend ${b.name}, ${b.packageName})` +
        (b.skipped.length ? `; not used: ${b.skipped.join('; ')}` : ''),
    );
    return b;
  });
  return active;
}

function parseForced(value: string | undefined): ComputeBackendName | undefined {
  if (!value) return undefined;
  if (!(BACKEND_LADDER as readonly string[]).includes(value)) {
    throw new Error(`PNEUMOGAN_BACKEND=${value} is not a backend; use one of ${BACKEND_LADDER.join(', ')}`);
  }
  return value as ComputeBackendName;
}

type Attempt = Omit<ComputeBackend, 'skipped' | 'name'> | string;

async function selectBackend(forced: ComputeBackendName | undefined): Promise<ComputeBackend> {
  const skipped: string[] = [];
  // tfjs-node-gpu on a machine without a usable GPU is still TensorFlow on the CPU; the
  // `tensorflow` rung then uses it rather than registering tfjs-node's kernels a second time.
  let tensorflowOnCpu: string | undefined;
  const attempts: Record<ComputeBackendName, () => Promise<Attempt>> = {
    'tensorflow-gpu': async () => {
      const pkg = PACKAGES['tensorflow-gpu'];
      if (!hasNativeAddon(pkg)) return `${pkg} is not provisioned (npm run setup:gpu)`;
      await import(pkg);
      if (!(await tf.setBackend('tensorflow'))) return `${pkg} loaded but its backend did not initialise`;
      await tf.ready();
      if (!(tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice) {
        tensorflowOnCpu = pkg;
        return `${pkg} loaded but TensorFlow found no CUDA GPU (its log lines above say which library or driver failed)`;
      }
      return { packageName: pkg, device: cudaDescription(), gpu: true };
    },
    webgpu: async () => {
      // Without a Vulkan loader and a driver manifest Dawn has nothing to open (Linux); say so
      // without loading dawn.node, whose own warnings would only repeat it.
      if (process.platform === 'linux') {
        if (!findSharedLibrary('libvulkan.so.1')) return 'the Vulkan loader libvulkan.so.1 is not installed';
        if (!vulkanIcdFiles().length) return 'no Vulkan driver manifest (ICD) is installed or named by VK_DRIVER_FILES';
      }
      const gpu = await installNavigatorGpu();
      const adapter = await probeWebGpuAdapter(gpu);
      if (!adapter) return 'Dawn found no WebGPU adapter (no Vulkan driver for a GPU; see `npm run gpu:doctor`)';
      if (adapter.software && forced !== 'webgpu')
        return `the only WebGPU adapter is ${describeWebGpuAdapter(adapter)}; set PNEUMOGAN_BACKEND=webgpu to use it anyway`;
      // A literal specifier, so bundlers (the GPU pack) include it with the same tfjs-core.
      await import('@tensorflow/tfjs-backend-webgpu');
      if (!(await tf.setBackend('webgpu'))) return `${PACKAGES.webgpu} loaded but its backend did not initialise`;
      await tf.ready();
      watchWebGpuErrors((tf.backend() as WebGPUBackend).device);
      // `stock` keeps tfjs's own kernels: for comparing timings, or ruling ours out of a problem.
      if (process.env.PNEUMOGAN_WEBGPU_KERNELS !== 'stock') useFastWebGpuKernels();
      return {
        packageName: PACKAGES.webgpu,
        device: describeWebGpuAdapter(adapter, nvidiaGpuNames()),
        gpu: !adapter.software,
      };
    },
    tensorflow: async () => {
      const pkg = tensorflowOnCpu ?? PACKAGES.tensorflow;
      if (!tensorflowOnCpu) {
        if (!hasNativeAddon(pkg)) return `${pkg}: its native addon is not built (npm run setup)`;
        await import(pkg);
      }
      if (!(await tf.setBackend('tensorflow'))) return `${pkg} loaded but its backend did not initialise`;
      await tf.ready();
      return { packageName: pkg, device: cpuDescription(tensorflowThreads()), gpu: false };
    },
    cpu: async () => {
      registerFastCpuKernels();
      await tf.setBackend('cpu');
      await tf.ready();
      // tfjs would otherwise print its own "install tfjs-node" banner; the log line says it.
      tf.env().set('PROD', true);
      return { packageName: PACKAGES.cpu, device: cpuDescription(1), gpu: false };
    },
  };
  for (const name of BACKEND_LADDER) {
    if (forced && forced !== name) continue;
    let outcome: Attempt;
    try {
      outcome = await attempts[name]();
    } catch (err) {
      outcome = `${PACKAGES[name]} unavailable (${firstLine(err)})`;
    }
    if (typeof outcome !== 'string') return { name, ...outcome, skipped };
    skipped.push(`${name}: ${outcome}`);
    if (forced) throw new Error(`PNEUMOGAN_BACKEND=${forced} requested, but ${outcome}`);
  }
  throw new Error(`no TensorFlow.js backend could start: ${skipped.join('; ')}`);
}

/** "CUDA GPU:0 NVIDIA H100 80GB HBM3 (1 GPU on the machine, NVIDIA driver 580.65)". */
function cudaDescription(): string {
  const names = nvidiaGpuNames();
  const driver = nvidiaDriverVersion();
  // TensorFlow runs ops on its GPU:0, the first CUDA-visible device. /proc lists GPUs in PCI
  // bus order, which is CUDA's order when CUDA_DEVICE_ORDER=PCI_BUS_ID (names usually agree).
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  const first = Number(visible?.split(',')[0] ?? 0);
  const name = names[Number.isInteger(first) ? first : 0] ?? names[0] ?? 'NVIDIA GPU';
  const details = [
    `${names.length} GPU${names.length === 1 ? '' : 's'} on the machine`,
    visible ? `CUDA_VISIBLE_DEVICES=${visible}` : '',
    driver ? `NVIDIA driver ${driver}` : '',
  ].filter(Boolean);
  return `CUDA GPU:0 ${name} (${details.join(', ')})`;
}

/** Whether a native tfjs package's addon is built (lib/napi-v*\/tfjs_binding.node). */
export function hasNativeAddon(packageName: string): boolean {
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
