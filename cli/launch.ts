/**
 * Starting, attaching to and following a reproduction. A run's workflow id comes from its name,
 * so launching a name that is already running attaches to it instead of starting a second one.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Client, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { ArtifactStore } from '../lib/storage.js';
import type { PipelineConfig } from '../pipelines/schema.js';
import { progressQuery, reproducePaper, type ProgressView, type ReproductionResult, type RunOptions, type StageState } from '../workflows/index.js';
import { reproductionWorkflowId } from '../lib/run-names.js';
import { ORCHESTRATION_TASK_QUEUE } from '../workflows/queues.js';

export interface LaunchOptions {
  client: Client;
  runName: string;
  config: PipelineConfig;
  options?: RunOptions;
  log: (line: string) => void;
}

/** Starts the run, or attaches to it when a run of that name is running or has completed. */
export async function launchReproduction({ client, runName, config, options, log }: LaunchOptions): Promise<WorkflowHandle<typeof reproducePaper>> {
  const workflowId = reproductionWorkflowId(runName);
  try {
    const description = await client.workflow.getHandle(workflowId).describe();
    if (description.status.name === 'RUNNING' || description.status.name === 'COMPLETED') {
      log(`[run] ${runName}: attaching to the ${description.status.name.toLowerCase()} workflow ${workflowId} (started ${description.startTime.toISOString()})`);
      return client.workflow.getHandle<typeof reproducePaper>(workflowId);
    }
    log(`[run] ${runName}: the previous workflow ended ${description.status.name}; starting it again (completed steps are not lost: artifacts are content-addressed in S3)`);
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  return client.workflow.start(reproducePaper, {
    workflowId,
    taskQueue: ORCHESTRATION_TASK_QUEUE,
    args: [{ runName, config, options }],
    // Two launches racing on the same name still make one workflow.
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}

interface PendingActivityProgress { stage: string; done: number; total: number }

/** Heartbeat progress of a workflow's running activities, by activity type. */
async function activityProgress(handle: WorkflowHandle): Promise<PendingActivityProgress[]> {
  const { raw } = await handle.describe();
  return (raw.pendingActivities ?? []).flatMap((activity) => {
    const payload = activity.heartbeatDetails?.payloads?.[0];
    if (!payload) return [];
    const details = defaultPayloadConverter.fromPayload<PendingActivityProgress>(payload);
    return details && typeof details.done === 'number' ? [details] : [];
  });
}

function describeStage(name: string, stage: StageState): string {
  const seconds = stage.startedAt !== undefined && stage.endedAt !== undefined ? ` in ${((stage.endedAt - stage.startedAt) / 1000).toFixed(1)}s` : '';
  return `${name} ${stage.status}${seconds}${stage.detail ? `: ${stage.detail}` : ''}`;
}

/**
 * Prints each stage transition of the run and its trials, and the progress of long steps,
 * until the workflow closes; returns its result.
 */
export async function followReproduction(client: Client, handle: WorkflowHandle<typeof reproducePaper>, log: (line: string) => void, pollMillis = 1000): Promise<ReproductionResult> {
  const printed = new Map<string, string>();
  const lastProgress = new Map<string, number>();
  let finished = false;
  const result = handle.result().finally(() => { finished = true; });
  const report = (scope: string, view: ProgressView) => {
    for (const [name, stage] of Object.entries(view.stages)) {
      if (stage.status === 'pending') continue;
      const line = `[${scope}] ${describeStage(name, stage)}`;
      if (printed.get(`${scope}/${name}`) !== line) {
        printed.set(`${scope}/${name}`, line);
        log(line);
      }
    }
  };
  const poll = async () => {
    const parent = await handle.query(progressQuery);
    report('run', parent);
    for (const [index, trialId] of (parent.trials ?? []).entries()) {
      const child = client.workflow.getHandle(trialId);
      const view = await child.query(progressQuery).catch(() => undefined);
      if (!view) continue;
      report(`trial ${index + 1}`, view);
      for (const progress of await activityProgress(child).catch(() => [])) {
        const key = `${trialId}/${progress.stage}`;
        const percent = progress.total ? Math.floor((100 * progress.done) / progress.total) : 0;
        // A line per 25% keeps logs readable on long steps.
        if (progress.total && Math.floor(percent / 25) > Math.floor((lastProgress.get(key) ?? -1) / 25)) {
          lastProgress.set(key, percent);
          log(`[trial ${index + 1}] ${progress.stage}: ${progress.done}/${progress.total} (${percent}%)`);
        }
      }
    }
  };
  while (!finished) {
    // Queries fail while a workflow task is being retried or the server restarts: keep following.
    await poll().catch(() => undefined);
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, pollMillis))]);
  }
  await poll().catch(() => undefined);
  return result;
}

/** Copies `runs/<runName>/` (report, summary, figures) from S3 to `<outDir>/<runName>/`. */
export async function downloadReport(store: ArtifactStore, runName: string, outDir: string): Promise<string> {
  const prefix = `runs/${runName}/`;
  const target = path.resolve(outDir, runName);
  for (const key of await store.list(prefix)) {
    const file = path.join(target, key.slice(prefix.length));
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, await store.getAt(key));
  }
  return path.join(target, 'report.md');
}

