/**
 * Builds Temporal workers for the pipeline. Three shapes share this code:
 * - orchestration: workflows + light activities on the orchestration queue;
 * - gpu: accelerator-bound activities only, on the GPU queue (no workflows, so restarting a GPU
 *   worker never strands a sticky workflow task);
 * - all-in-one: the orchestration worker in this process and GPU workers as supervised child
 *   processes (restarted when they die), for the local demo and tests. Training is synchronous CPU work in tfjs between awaits; in
 *   its own process it cannot starve the workflow worker's event loop (workflow tasks must
 *   finish within seconds) or an embedded S3 server's sockets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createCpuActivities } from '../activities/cpu.js';
import { heartbeatBridgeInterceptors } from '../activities/blocked-loop-heartbeat.js';
import { createGpuActivities } from '../activities/gpu.js';
import { createAnalysisActivities } from '../activities/analysis.js';
import { createResolutionActivities } from '../activities/resolution.js';
import type { ActivityDeps } from '../activities/shared.js';
import { computeLabel, initComputeBackend } from '../lib/compute/backend.js';
import { StorageConfigError } from '../lib/errors.js';
import { untilReachable } from '../lib/infra/until-reachable.js';
import { connectionOptions, environmentFor, type TemporalSettings } from '../lib/settings.js';
import { ArtifactStore, type S3Settings } from '../lib/storage.js';
import { stageProfileInterceptors } from './stage-profile.js';
import { GPU_TASK_QUEUE, ORCHESTRATION_TASK_QUEUE } from '../workflows/queues.js';
import { codeVersion } from './code-version.js';
import { superviseProcess, type SupervisedProcess } from './supervisor.js';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export type WorkerRole = 'orchestration' | 'gpu' | 'all-in-one';

export interface StartWorkersOptions {
  role: WorkerRole;
  temporal: TemporalSettings;
  s3: S3Settings;
  /** Concurrent GPU activities per worker: 1 on a real GPU, more only interleaves on a CPU. */
  gpuConcurrency?: number;
  /** all-in-one only: GPU worker child processes (each runs tfjs on one core). */
  gpuProcesses?: number;
  taskQueues?: { orchestration?: string; gpu?: string };
  /** A pre-built workflow bundle (tests bundle once and start several workers). */
  workflowBundle?: WorkflowBundleWithSourceMap;
  log?: (line: string) => void;
  /** How long to wait at start for S3 and Temporal to answer (default 5 minutes). */
  startWaitMs?: number;
  /** Aborts the wait for S3 and Temporal (a SIGTERM during start). */
  signal?: AbortSignal;
  /** all-in-one only: a GPU worker process started (its pid), polls ('ready') or ended (undefined). */
  onGpuProcess?: (name: string, event: number | 'ready' | undefined) => void;
}

/**
 * How long a stopping worker lets in-flight activities run before cancelling them. Long steps
 * checkpoint and put the checkpoint in their heartbeat, so a cancelled step loses little, and
 * a Ctrl-C or SIGTERM takes seconds rather than the rest of a training run.
 */
export const SHUTDOWN_GRACE = '5 seconds';

export interface RunningWorkers {
  workers: Worker[];
  computeBackend: string;
  /** Resolves when every worker has stopped; rejects if one fails. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

const HEARTBEAT_THROTTLE = '10s';

export function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({
    workflowsPath: path.join(projectRoot, 'workflows', 'index.ts'),
    logger: silentBundlerLogger,
  });
}

const silentBundlerLogger = {
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error(message: string) {
    console.error(message);
  },
  log() {},
};

export async function startWorkers(options: StartWorkersOptions): Promise<RunningWorkers> {
  const log = options.log ?? ((line: string) => console.log(line));
  const store = new ArtifactStore(options.s3);
  const waiting = {
    maxWaitMs: options.startWaitMs ?? 5 * 60_000,
    log,
    signal: options.signal,
  };
  await untilReachable('S3', () => store.ensureBucket(), {
    ...waiting,
    isPermanent: (err) => err instanceof StorageConfigError,
  });
  const inProcessGpu = options.role === 'gpu';
  // Lineage records the device that ran a step (GPU model or CPU threads and model), not a package.
  const backend = inProcessGpu ? computeLabel(await initComputeBackend(log)) : 'none';
  const deps: ActivityDeps = {
    store,
    computeBackend: backend,
    codeVersion: codeVersion(),
    workerIdentity: `${os.hostname()}/${process.pid}/${options.role}`,
  };
  const connection = await untilReachable(
    `Temporal at ${options.temporal.address}`,
    () => NativeConnection.connect(connectionOptions(options.temporal)),
    waiting,
  );
  const interceptors =
    process.env.PNEUMOGAN_PROFILE === '1' ? { activity: [stageProfileInterceptors(log)] } : undefined;
  const workers: Worker[] = [];
  if (options.role !== 'gpu') {
    workers.push(
      await Worker.create({
        connection,
        namespace: options.temporal.namespace,
        taskQueue: options.taskQueues?.orchestration ?? ORCHESTRATION_TASK_QUEUE,
        workflowBundle: options.workflowBundle ?? (await bundleWorkflows()),
        activities: { ...createCpuActivities(deps), ...createResolutionActivities(deps) },
        maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
        identity: `${deps.workerIdentity}/orchestration`,
        interceptors,
        shutdownGraceTime: SHUTDOWN_GRACE,
      }),
    );
  }
  if (inProcessGpu) {
    workers.push(
      await Worker.create({
        connection,
        namespace: options.temporal.namespace,
        taskQueue: options.taskQueues?.gpu ?? GPU_TASK_QUEUE,
        activities: { ...createGpuActivities(deps), ...createAnalysisActivities(deps) },
        maxConcurrentActivityTaskExecutions: options.gpuConcurrency ?? 1,
        // The SDK sends heartbeats at most every 0.8 x the heartbeat timeout (48 s of 60) by default,
        // so the server's details (the resume point a retry reads, the progress `follow` shows)
        // lagged by most of a minute. Every 10 s keeps them fresh at a negligible cost.
        maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
        // A first step that compiles kernels for minutes blocks this thread; heartbeat from another.
        interceptors: { activity: [heartbeatBridgeInterceptors(options.temporal), ...(interceptors?.activity ?? [])] },
        identity: `${deps.workerIdentity}/gpu`,
        shutdownGraceTime: SHUTDOWN_GRACE,
      }),
    );
  }
  const children = options.role === 'all-in-one' ? spawnGpuWorkers(options, log) : [];
  const done = Promise.all([...workers.map((w) => w.run()), ...children.map((c) => c.done)]).then(() =>
    connection.close(),
  );
  log(
    `[worker] ${options.role}: ${workers
      .map((w) => `${w.options.taskQueue} worker`)
      .concat(children.map((c) => `supervised ${c.name} process`))
      .join(', ')} on ${options.temporal.address} (${options.temporal.namespace})`,
  );
  return {
    workers,
    computeBackend: backend,
    done,
    async shutdown() {
      for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
      await Promise.all(children.map((c) => c.stop()));
      await done;
    },
  };
}

export interface GpuWorkerProcess {
  child: ChildProcess;
  /** Resolves once the worker polls its task queue (it says so over IPC). */
  ready: Promise<void>;
  /** Resolves when the process ends after stop() or with code 0; rejects on any other exit. */
  exited: Promise<void>;
  /** Graceful: SIGTERM (the SDK drains in-flight activities for SHUTDOWN_GRACE), SIGKILL after 10 s. */
  stop(): void;
}

/**
 * GPU workers as supervised child processes (workers/supervisor.ts): one that dies is restarted,
 * and its pid reported through onGpuProcess.
 */
function spawnGpuWorkers(options: StartWorkersOptions, log: (line: string) => void): SupervisedProcess[] {
  return Array.from({ length: options.gpuProcesses ?? 2 }, (_, index) => {
    const name = `gpu-worker ${index + 1}`;
    return superviseProcess(() => spawnGpuWorkerProcess(options, name, log), name, log, {
      onProcess: (pid) => options.onGpuProcess?.(name, pid),
      onReady: () => options.onGpuProcess?.(name, 'ready'),
    });
  });
}

export function spawnGpuWorkerProcess(
  options: Pick<StartWorkersOptions, 'temporal' | 's3' | 'gpuConcurrency' | 'taskQueues'>,
  name: string,
  log: (line: string) => void,
): GpuWorkerProcess {
  const env = {
    ...environmentFor({
      temporal: options.temporal,
      s3: options.s3,
      gpuConcurrency: options.gpuConcurrency ?? 1,
      taskQueues: options.taskQueues,
    }),
    // These child workers serve the embedded demo and the tests, which train on the CPU on purpose;
    // PNEUMOGAN_ALLOW_CPU=0 makes them refuse it like a production GPU worker (workers/gpu.ts).
    PNEUMOGAN_ALLOW_CPU: process.env.PNEUMOGAN_ALLOW_CPU ?? '1',
  };
  // Its own process group: a terminal's Ctrl-C reaches only the parent, which stops workers in
  // order. The IPC channel says when it is ready, and its closing tells it that the parent died.
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'workers', 'gpu.ts')], {
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    detached: true,
  });
  const prefix = `[${name}]`;
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8');
    let pending = '';
    stream?.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) log(`${prefix} ${line}`);
    });
  }
  const ready = new Promise<void>((resolve) =>
    child.on('message', (message: unknown) => {
      if ((message as { type?: string } | null)?.type === 'ready') resolve();
    }),
  );
  let stopping = false;
  const exited = new Promise<void>((resolve, reject) =>
    child.once('exit', (code, signal) => {
      process.off('exit', killOnExit);
      if (stopping || code === 0) resolve();
      else reject(new Error(`${prefix} exited with ${signal ?? `code ${code}`}`));
    }),
  );
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  return {
    child,
    ready,
    exited,
    stop() {
      stopping = true;
      process.off('exit', killOnExit);
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    },
  };
}
