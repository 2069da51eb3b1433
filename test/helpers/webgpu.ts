/**
 * The WebGPU backend for tests: the machine's adapter, or lavapipe's (Mesa's Vulkan on the CPU,
 * from `npm run setup:lavapipe`) when VK_DRIVER_FILES is unset and it is installed. Resolves to
 * the backend, or to the reason there is none, for the test to skip with.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { initComputeBackend, type ComputeBackend } from '../../lib/compute/backend.js';
import { pneumoganCacheDir } from '../../lib/infra/temporal-cli.js';

export { values } from '../../gpu/kernel-check.js';

export async function startWebGpuBackend(): Promise<ComputeBackend | string> {
  const lavapipe = path.join(pneumoganCacheDir(), 'lavapipe', 'lvp_icd.json');
  if (!process.env.VK_DRIVER_FILES && existsSync(lavapipe)) process.env.VK_DRIVER_FILES = lavapipe;
  process.env.PNEUMOGAN_BACKEND = 'webgpu';
  try {
    return await initComputeBackend(() => {});
  } catch (err) {
    return (
      `no WebGPU adapter here (${(err as Error).message}); ` +
      '`npm run setup:lavapipe` installs a CPU one on Debian 12, or run on a machine with a GPU'
    );
  }
}
