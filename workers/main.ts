/** Shared body of the worker entry points: read the settings (lib/settings.ts), run until SIGINT/SIGTERM. */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { s3Settings, taskQueueSettings, temporalSettings, workerSettings } from '../lib/settings.js';
import { startWorkers, type WorkerRole } from './start-workers.js';

export async function runWorkerFromEnv(role: WorkerRole): Promise<void> {
  quietTemporalLogs();
  try {
    const worker = workerSettings();
    const running = await startWorkers({
      role,
      temporal: temporalSettings(),
      s3: s3Settings(),
      gpuConcurrency: worker.gpuConcurrency,
      gpuProcesses: worker.gpuProcesses,
      taskQueues: taskQueueSettings(),
    });
    if (process.send) {
      // Started by a supervisor (workers/supervisor.ts): say that the worker polls, and stop
      // when the supervisor is gone (its IPC channel closes), as no one would restart or stop us.
      process.send({ type: 'ready' });
      process.once('disconnect', () => {
        console.error(`[worker] ${role}: the parent process is gone; stopping`);
        void running.shutdown();
      });
      process.channel?.unref();
    }
    // The SDK's workers stop gracefully on SIGINT/SIGTERM by default.
    await running.done;
  } catch (err) {
    console.error(`[worker] ${role} worker failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}

/**
 * The SDK logs every worker state change at INFO; keep warnings and errors (PNEUMOGAN_LOG_LEVEL
 * overrides). `handleSignals: false` leaves SIGINT/SIGTERM to the caller (the demo stops its
 * workers and servers in order) instead of the SDK's own shutdown of every worker.
 */
export function quietTemporalLogs(options: { handleSignals?: boolean } = {}): void {
  const level = workerSettings().logLevel;
  Runtime.install({
    logger: new DefaultLogger(level),
    telemetryOptions: { logging: { filter: { core: level, other: level }, forward: {} } },
    ...(options.handleSignals === false ? { shutdownSignals: [] } : {}),
  });
}
