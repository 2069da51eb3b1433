/** Shared body of the worker entry points: read the environment, run until SIGINT/SIGTERM. */
import { s3SettingsFromEnv } from '../lib/storage.js';
import { startWorkers, temporalSettingsFromEnv, type WorkerRole } from './runtime.js';

export async function runWorkerFromEnv(role: WorkerRole): Promise<void> {
  try {
    const running = await startWorkers({
      role,
      temporal: temporalSettingsFromEnv(),
      s3: s3SettingsFromEnv(),
      gpuConcurrency: Number(process.env.PNEUMOGAN_GPU_CONCURRENCY ?? 1),
    });
    // The SDK's workers stop gracefully on SIGINT/SIGTERM by default.
    await running.done;
  } catch (err) {
    console.error(`[worker] ${role} worker failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}
