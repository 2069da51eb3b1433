/**
 * What this machine has to compute on, read from the kernel and the dynamic linker: the CPU
 * model, the NVIDIA driver and GPUs, the libraries the CUDA and Vulkan routes load, and the
 * Vulkan driver manifests (ICDs). Used to name the device that ran a step and to say what is
 * missing when no GPU can be used.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** "CPU (2 threads, AMD EPYC 7B13)". */
export function cpuDescription(threads: number): string {
  const model = os.cpus()[0]?.model.trim() || 'unknown model';
  return `CPU (${threads} thread${threads === 1 ? '' : 's'}, ${model})`;
}

/** The threads libtensorflow's intra-op pool uses (it reads TF_NUM_INTRAOP_THREADS, else every core). */
export function tensorflowThreads(env: NodeJS.ProcessEnv = process.env): number {
  const forced = Number(env.TF_NUM_INTRAOP_THREADS);
  return Number.isInteger(forced) && forced > 0 ? forced : os.availableParallelism();
}

/** The loaded NVIDIA kernel module's version line, or undefined without the driver. */
export function nvidiaDriverVersion(): string | undefined {
  try {
    const line = readFileSync('/proc/driver/nvidia/version', 'utf8').split('\n')[0] ?? '';
    return /Kernel Module\s+(\S+)/.exec(line)?.[1] ?? line.trim();
  } catch {
    return undefined;
  }
}

/** Model names of the GPUs the NVIDIA driver reports, in bus order ("NVIDIA H100 80GB HBM3"). */
export function nvidiaGpuNames(): string[] {
  const dir = '/proc/driver/nvidia/gpus';
  try {
    return readdirSync(dir)
      .sort()
      .map((bus) => /^Model:\s*(.+)$/m.exec(readFileSync(path.join(dir, bus, 'information'), 'utf8'))?.[1]?.trim())
      .filter((name): name is string => Boolean(name));
  } catch {
    return [];
  }
}

let linkerCache: Map<string, string> | undefined;

/**
 * Where the dynamic linker would find `soname` (LD_LIBRARY_PATH, then the ldconfig cache), or
 * undefined. This is what dlopen("libcuda.so.1") and dlopen("libvulkan.so.1") search.
 */
export function findSharedLibrary(soname: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean)) {
    if (existsSync(path.join(dir, soname))) return path.join(dir, soname);
  }
  if (!linkerCache) {
    linkerCache = new Map();
    for (const ldconfig of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
      try {
        const listing = execFileSync(ldconfig, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        // "\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"; 32-bit copies are not ours.
        for (const m of listing.matchAll(/^\s*(\S+) \(([^)]*)\) => (\S+)$/gm)) {
          if (process.arch === 'x64' && !m[2]!.includes('x86-64')) continue;
          if (!linkerCache.has(m[1]!)) linkerCache.set(m[1]!, m[3]!);
        }
        break;
      } catch {
        /* try the next location */
      }
    }
  }
  return linkerCache.get(soname);
}

/**
 * The Vulkan driver manifests the Vulkan loader reads: VK_DRIVER_FILES / VK_ICD_FILENAMES when
 * set (as the loader does), else the standard icd.d folders.
 */
export function vulkanIcdFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const forced = env.VK_DRIVER_FILES || env.VK_ICD_FILENAMES;
  if (forced) return forced.split(':').filter((file) => file && existsSync(file));
  const dirs = [
    ...(env.XDG_CONFIG_DIRS ?? '/etc/xdg').split(':').map((d) => path.join(d, 'vulkan/icd.d')),
    '/etc/vulkan/icd.d',
    ...(env.XDG_DATA_DIRS ?? '/usr/local/share:/usr/share').split(':').map((d) => path.join(d, 'vulkan/icd.d')),
  ];
  const files: string[] = [];
  for (const dir of dirs) {
    try {
      for (const entry of readdirSync(dir).sort()) if (entry.endsWith('.json')) files.push(path.join(dir, entry));
    } catch {
      /* absent folder */
    }
  }
  return files;
}

/** Whether a Vulkan ICD manifest names NVIDIA's driver (libGLX_nvidia / libnvidia-vulkan). */
export function isNvidiaIcd(file: string): boolean {
  try {
    return /nvidia/i.test(readFileSync(file, 'utf8')) || /nvidia/i.test(path.basename(file));
  } catch {
    return false;
  }
}
