/**
 * Builds Temporal workers for the pipeline. Three shapes share this code:
 * - orchestration: workflows + light activities on the orchestration queue;
 * - gpu: accelerator-bound activities only, on the GPU queue (no workflows, so restarting a GPU
 *   worker never strands a sticky workflow task);
 * - all-in-one: both in one process, for the local demo and tests.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { z } from 'zod';
import { createCpuActivities } from '../activities/cpu.js';
import { createGpuActivities } from '../activities/gpu.js';
import type { ActivityDeps } from '../activities/runtime.js';
import { initComputeBackend } from '../lib/compute/backend.js';
import { ArtifactStore, type S3Settings } from '../lib/storage.js';
import { GPU_TASK_QUEUE, ORCHESTRATION_TASK_QUEUE } from '../workflows/queues.js';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const TemporalSettingsSchema = z.object({
  address: z.string().min(1).default('127.0.0.1:7233'),
  namespace: z.string().min(1).default('default'),
});
export type TemporalSettings = z.infer<typeof TemporalSettingsSchema>;

export function temporalSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  return TemporalSettingsSchema.parse({ address: env.PNEUMOGAN_TEMPORAL_ADDRESS || undefined, namespace: env.PNEUMOGAN_TEMPORAL_NAMESPACE || undefined });
}

export type WorkerRole = 'orchestration' | 'gpu' | 'all-in-one';

export interface StartWorkersOptions {
  role: WorkerRole;
  temporal: TemporalSettings;
  s3: S3Settings;
  /** Concurrent GPU activities per worker: 1 on a real GPU, more only interleaves on a CPU. */
  gpuConcurrency?: number;
  taskQueues?: { orchestration?: string; gpu?: string };
  /** A pre-built workflow bundle (tests bundle once and start several workers). */
  workflowBundle?: WorkflowBundleWithSourceMap;
  log?: (line: string) => void;
}

export interface RunningWorkers {
  workers: Worker[];
  computeBackend: string;
  /** Resolves when every worker has stopped; rejects if one fails. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

export function codeVersion(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: projectRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    const pkg = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string };
    return `v${pkg.version}`;
  }
}

export function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: path.join(projectRoot, 'workflows', 'index.ts'), logger: silentBundlerLogger });
}

const silentBundlerLogger = { trace() {}, debug() {}, info() {}, warn() {}, error(message: string) { console.error(message); }, log() {} };

export async function startWorkers(options: StartWorkersOptions): Promise<RunningWorkers> {
  const log = options.log ?? ((line: string) => console.log(line));
  const store = new ArtifactStore(options.s3);
  await store.ensureBucket();
  const runsGpu = options.role !== 'orchestration';
  const backend = runsGpu ? (await initComputeBackend(log)).name : 'none';
  const deps: ActivityDeps = { store, computeBackend: backend, codeVersion: codeVersion(), workerIdentity: `${os.hostname()}/${process.pid}/${options.role}` };
  const connection = await NativeConnection.connect({ address: options.temporal.address });
  const workers: Worker[] = [];
  if (options.role !== 'gpu') {
    workers.push(await Worker.create({
      connection,
      namespace: options.temporal.namespace,
      taskQueue: options.taskQueues?.orchestration ?? ORCHESTRATION_TASK_QUEUE,
      ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowBundle: await bundleWorkflows() }),
      activities: createCpuActivities(deps),
      identity: `${deps.workerIdentity}/orchestration`,
    }));
  }
  if (runsGpu) {
    workers.push(await Worker.create({
      connection,
      namespace: options.temporal.namespace,
      taskQueue: options.taskQueues?.gpu ?? GPU_TASK_QUEUE,
      activities: createGpuActivities(deps),
      maxConcurrentActivityTaskExecutions: options.gpuConcurrency ?? 1,
      identity: `${deps.workerIdentity}/gpu`,
    }));
  }
  const done = Promise.all(workers.map((w) => w.run())).then(() => connection.close());
  log(`[worker] ${options.role} worker(s) polling ${workers.map((w) => w.options.taskQueue).join(' and ')} on ${options.temporal.address} (${options.temporal.namespace}), compute: ${backend}`);
  return {
    workers,
    computeBackend: backend,
    done,
    async shutdown() {
      for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
    },
  };
}
