/**
 * Entry point: the gpu worker, configured by environment (lib/settings.ts, README "Running on a
 * cluster"); PNEUMOGAN_BACKEND forces a backend, PNEUMOGAN_ALLOW_CPU=1 lets it serve the GPU queue
 * without a GPU.
 *
 * It picks its backend before it connects and refuses to serve the GPU queue on a CPU unless
 * told to: a GPU worker that quietly trains on the CPU would make a paper-size run take days.
 */
import { initComputeBackend } from '../lib/compute/backend.js';
import { requireGpu } from '../lib/compute/gpu-policy.js';
import { runWorkerFromEnv } from './main.js';

let ready = false;
try {
  const warning = requireGpu(await initComputeBackend());
  if (warning) console.warn(warning);
  ready = true;
} catch (err) {
  console.error(`[worker] gpu worker refuses to start. ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
if (ready) await runWorkerFromEnv('gpu');
