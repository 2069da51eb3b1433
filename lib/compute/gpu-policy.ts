/**
 * No silent CPU fallback: a GPU worker whose backend does not run on a GPU refuses the GPU
 * queue and says what is missing, unless PNEUMOGAN_ALLOW_CPU=1 allows the CPU (the embedded
 * demo and the tests set it; they run on CPUs on purpose).
 *
 * The checklist covers both GPU routes: CUDA (NVIDIA kernel driver, libcuda.so.1, the CUDA 12
 * libraries tfjs-node-gpu is provisioned with) and WebGPU (Vulkan loader, a Vulkan driver
 * manifest, an adapter that is a GPU). `npm run gpu:doctor` prints it.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { ComputeBackend } from './backend.js';
import { findSharedLibrary, isNvidiaIcd, nvidiaDriverVersion, nvidiaGpuNames, vulkanIcdFiles } from './devices.js';

export const ALLOW_CPU_ENV = 'PNEUMOGAN_ALLOW_CPU';

/** The CUDA 12 libraries TensorFlow's CUDA build loads (dlopen) for training. */
export const CUDA_LIBRARIES = [
  'libcudart.so.12',
  'libcublas.so.12',
  'libcublasLt.so.12',
  'libcudnn.so.9',
  'libcufft.so.11',
  'libcurand.so.10',
  'libcusolver.so.11',
  'libcusparse.so.12',
  'libnvJitLink.so.12',
] as const;

export interface CheckItem {
  /** What is checked: "NVIDIA driver", "CUDA libraries", "Vulkan loader", "Vulkan ICD", "WebGPU adapter". */
  item: string;
  ok: boolean;
  detail: string;
}

export function cpuAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['1', 'true', 'yes'].includes((env[ALLOW_CPU_ENV] ?? '').toLowerCase());
}

const require = createRequire(import.meta.url);

/** Where `npm run setup:gpu` puts the nvidia-*-cu12 libraries (TensorFlow's RUNPATH finds them there). */
export function provisionedCudaDir(): string | undefined {
  try {
    return path.join(path.dirname(require.resolve('@tensorflow/tfjs-node-gpu/package.json')), 'deps', 'nvidia');
  } catch {
    return undefined;
  }
}

/** The state of every piece either GPU route needs; `backend` adds what the ladder saw. */
export function gpuChecklist(backend?: ComputeBackend): CheckItem[] {
  const items: CheckItem[] = [];
  const driver = nvidiaDriverVersion();
  const libcuda = findSharedLibrary('libcuda.so.1');
  const gpus = nvidiaGpuNames();
  items.push({
    item: 'NVIDIA driver',
    ok: Boolean(driver && libcuda),
    detail: !driver
      ? 'no NVIDIA kernel module is loaded (/proc/driver/nvidia/version is absent)'
      : !libcuda
        ? `kernel module ${driver} is loaded but libcuda.so.1 is not on the linker path (ldconfig -p): the driver's user-space libraries are missing in this container`
        : `kernel module ${driver}, ${libcuda}, GPUs: ${gpus.join(', ') || 'none listed'}`,
  });

  const cudaDir = provisionedCudaDir();
  const found = new Map<string, string>();
  if (cudaDir && existsSync(cudaDir)) {
    for (const pkg of readdirSync(cudaDir)) {
      const lib = path.join(cudaDir, pkg, 'lib');
      if (!existsSync(lib)) continue;
      for (const file of readdirSync(lib)) found.set(file, path.join(lib, file));
    }
  }
  const missing = CUDA_LIBRARIES.filter((lib) => !found.has(lib));
  items.push({
    item: 'CUDA libraries',
    ok: missing.length === 0,
    detail:
      found.size === 0
        ? '@tensorflow/tfjs-node-gpu is not provisioned with CUDA 12 libraries (npm run setup:gpu)'
        : missing.length
          ? `missing from ${cudaDir}: ${missing.join(', ')} (rerun npm run setup:gpu)`
          : `${CUDA_LIBRARIES.length} libraries under ${cudaDir}`,
  });

  const loader = findSharedLibrary('libvulkan.so.1');
  items.push({
    item: 'Vulkan loader',
    ok: Boolean(loader),
    detail: loader ?? 'libvulkan.so.1 is not on the linker path (Debian/Ubuntu: apt-get install libvulkan1)',
  });
  const icds = vulkanIcdFiles();
  const nvidiaIcds = icds.filter(isNvidiaIcd);
  items.push({
    item: 'Vulkan ICD',
    ok: nvidiaIcds.length > 0 || (icds.length > 0 && !driver),
    detail: icds.length
      ? `${icds.join(', ')}${driver && !nvidiaIcds.length ? " (none is NVIDIA's: point VK_DRIVER_FILES at the driver's nvidia_icd.json)" : ''}`
      : "no Vulkan driver manifest (VK_DRIVER_FILES is unset and /etc/vulkan/icd.d, /usr/share/vulkan/icd.d have none; NVIDIA's is nvidia_icd.json)",
  });

  if (backend) {
    const webgpuSkip = backend.skipped.find((s) => s.startsWith('webgpu: '));
    items.push({
      item: 'WebGPU adapter',
      ok: backend.name === 'webgpu' ? backend.gpu : false,
      detail: backend.name === 'webgpu' ? backend.device : (webgpuSkip?.slice('webgpu: '.length) ?? 'not tried'),
    });
  }
  return items;
}

export class NoGpuError extends Error {
  override name = 'NoGpuError';
}

/**
 * Throws NoGpuError naming what is missing when `backend` does not run on a GPU and the CPU is
 * not allowed; returns a warning line when it is allowed, and nothing when there is a GPU.
 */
export function requireGpu(backend: ComputeBackend, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (backend.gpu) return undefined;
  if (cpuAllowed(env)) {
    return `[compute] no GPU: training on ${backend.device} because ${ALLOW_CPU_ENV}=${env[ALLOW_CPU_ENV]}`;
  }
  const missing = gpuChecklist(backend).filter((c) => !c.ok);
  throw new NoGpuError(
    [
      `No usable GPU: this GPU worker would train on ${backend.device}, so it does not serve the GPU queue.`,
      'Missing:',
      ...missing.map((c) => `  - ${c.item}: ${c.detail}`),
      `Services tried: ${backend.skipped.join('; ') || backend.name}`,
      `Set ${ALLOW_CPU_ENV}=1 to train on the CPU on purpose.`,
    ].join('\n'),
  );
}
