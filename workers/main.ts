/** Shared body of the worker entry points: read the settings (lib/settings.ts), run until SIGINT/SIGTERM. */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { s3Settings, taskQueueSettings, temporalSettings, workerSettings } from '../lib/settings.js';
import { startWorkers, type WorkerRole } from './start-workers.js';

export async function runWorkerFromEnv(role: WorkerRole): Promise<void> {
  quietTemporalLogs();
  // A stop signal while the worker still waits for S3 or Temporal ends the wait (once running,
  // the SDK's own signal handling drains the workers).
  const starting = new AbortController();
  const stopStarting = () => starting.abort();
  for (const signal of STOP_SIGNALS) process.once(signal, stopStarting);
  try {
    const worker = workerSettings();
    const running = await startWorkers({
      role,
      temporal: temporalSettings(),
      s3: s3Settings(),
      gpuConcurrency: worker.gpuConcurrency,
      gpuProcesses: worker.gpuProcesses,
      taskQueues: taskQueueSettings(),
      startWaitMs: worker.startWaitSeconds * 1000,
      signal: starting.signal,
    });
    for (const signal of STOP_SIGNALS) process.off(signal, stopStarting);
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
    if (!starting.signal.aborted)
      console.error(`[worker] ${role} worker failed: ${err instanceof Error ? err.message : String(err)}`);
    // Exit explicitly: once the Temporal runtime is installed, its native handles (and its own
    // signal handlers) keep a process alive whose workers never started, so a worker that failed
    // to start would hang instead of dying and being restarted by its supervisor.
    process.exit(starting.signal.aborted ? 0 : 1);
  }
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

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
