/**
 * Starting, attaching to and following a reproduction. A run's workflow id comes from its name,
 * so launching a name that is already running attaches to it instead of starting a second one.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Client, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { ProgressDetails } from '../activities/shared.js';
import { InputError } from '../lib/errors.js';
import { ArtifactStore, assertSafeKey, assertSafeRunName } from '../lib/storage.js';
import type { PipelineConfig } from '../pipelines/schema.js';
import { configDifferences } from '../pipelines/resolve.js';
import {
  progressQuery,
  reproducePaper,
  type ProgressView,
  type ReproducePaperInput,
  type ReproductionResult,
  type RunOptions,
  type StageState,
} from '../workflows/index.js';
import { reproductionWorkflowId } from '../lib/run-names.js';
import { SEARCH_ATTRIBUTE_TYPE, SEARCH_ATTRIBUTES } from '../lib/search-attributes.js';
import type { TaskQueues } from '../lib/settings.js';
import { GPU_TASK_QUEUE, ORCHESTRATION_TASK_QUEUE } from '../lib/task-queues.js';
import { progressDetails } from './pending-step.js';

export interface LaunchOptions {
  client: Client;
  runName: string;
  config: PipelineConfig;
  options?: RunOptions;
  /** The queues the workers serve (lib/settings.ts); the defaults when omitted. */
  taskQueues?: TaskQueues;
  log: (line: string) => void;
}

/** Starts the run, or attaches to it when a run of that name is running or has completed. */
export async function launchReproduction({
  client,
  runName,
  config,
  options,
  taskQueues = { orchestration: ORCHESTRATION_TASK_QUEUE, gpu: GPU_TASK_QUEUE },
  log,
}: LaunchOptions): Promise<WorkflowHandle<typeof reproducePaper>> {
  const workflowId = reproductionWorkflowId(runName);
  try {
    const description = await client.workflow.getHandle(workflowId).describe();
    const differences = configDifferences(await startedConfig(client, workflowId), config);
    if (differences.length) {
      throw new InputError(
        `Run ${runName} exists with a different configuration (${differences.length} field(s) differ, its value -> yours):\n  ` +
          `${differences.join('\n  ')}\nLaunch it with the same configuration to attach or resume, or choose another --run name.`,
      );
    }
    if (description.status.name === 'RUNNING' || description.status.name === 'COMPLETED') {
      log(
        `[run] ${runName}: attaching to the ${description.status.name.toLowerCase()} workflow ${workflowId} (started ${description.startTime.toISOString()})`,
      );
      return client.workflow.getHandle<typeof reproducePaper>(workflowId);
    }
    log(
      `[run] ${runName}: the previous workflow ended ${description.status.name}; starting it again (completed steps are not lost: artifacts are content-addressed in S3)`,
    );
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  await requireSearchAttributes(client);
  return client.workflow.start(reproducePaper, {
    workflowId,
    taskQueue: taskQueues.orchestration,
    args: [{ runName, config, options, taskQueues }],
    // Two launches racing on the same name still make one workflow.
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}

/** The configuration a reproduction was started with: the input of its first history event. */
async function startedConfig(client: Client, workflowId: string): Promise<PipelineConfig | undefined> {
  const { history } = await client.workflowService.getWorkflowExecutionHistory({
    namespace: client.options.namespace,
    execution: { workflowId },
    maximumPageSize: 1,
  });
  const payload = history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  return payload ? defaultPayloadConverter.fromPayload<ReproducePaperInput>(payload).config : undefined;
}

/**
 * A run upserts the pipeline's search attributes; on a server where they are not registered its
 * first workflow task would fail over and over. Refuse to start, saying how to register them.
 */
async function requireSearchAttributes(client: Client): Promise<void> {
  const { customAttributes } = await client.connection.operatorService.listSearchAttributes({
    namespace: client.options.namespace,
  });
  const missing = Object.values(SEARCH_ATTRIBUTES).filter((name) => !(name in (customAttributes ?? {})));
  if (missing.length === 0) return;
  throw new InputError(
    `Namespace ${client.options.namespace} lacks the search attributes ${missing.join(', ')} that runs keep current. ` +
      `Register them once:\n${missing
        .map(
          (name) =>
            `  temporal operator search-attribute create --namespace ${client.options.namespace} --name ${name} --type ${SEARCH_ATTRIBUTE_TYPE}`,
        )
        .join('\n')}\n(Temporal Cloud: add them to the namespace in the Cloud UI or with tcld.)`,
  );
}

/** Heartbeat progress of a workflow's running activities. */
async function activityProgress(handle: WorkflowHandle): Promise<ProgressDetails[]> {
  const { raw } = await handle.describe();
  return (raw.pendingActivities ?? []).flatMap((activity) => progressDetails(activity) ?? []);
}

function describeStage(name: string, stage: StageState): string {
  const seconds =
    stage.startedAt !== undefined && stage.endedAt !== undefined
      ? ` in ${((stage.endedAt - stage.startedAt) / 1000).toFixed(1)}s`
      : '';
  return `${name} ${stage.status}${seconds}${stage.detail ? `: ${stage.detail}` : ''}`;
}

/** Where following a run shows its progress. */
export interface ProgressDisplay {
  /** A stage started, finished or failed. */
  stage(line: string): void;
  /** Heartbeat progress of every running step, keyed by trial and step. */
  steps(progress: Map<string, { label: string; done: number; total: number }>): void;
  stop(): void;
}

/** Progress bars for a terminal (cli-progress), one per running step. */
export function barDisplay(): ProgressDisplay {
  const multibar = new MultiBar(
    {
      format: ' {label} |{bar}| {value}/{total} {percentage}%',
      hideCursor: true,
      clearOnComplete: false,
      autopadding: true,
    },
    Presets.shades_classic,
  );
  const bars = new Map<string, SingleBar>();
  return {
    stage: (line) => multibar.log(`${line}\n`),
    steps(progress) {
      for (const [key, bar] of bars) {
        if (!progress.has(key)) {
          multibar.remove(bar);
          bars.delete(key);
        }
      }
      for (const [key, { label, done, total }] of progress) {
        if (!total) continue;
        const bar = bars.get(key) ?? multibar.create(total, 0, { label });
        bars.set(key, bar);
        bar.setTotal(total);
        bar.update(done, { label });
      }
    },
    stop: () => multibar.stop(),
  };
}

/** Plain lines for logs and CI: stage transitions, and each running step at every 25%. */
export function lineDisplay(log: (line: string) => void): ProgressDisplay {
  const lastQuarter = new Map<string, number>();
  return {
    stage: log,
    steps(progress) {
      for (const [key, { label, done, total }] of progress) {
        const quarter = total ? Math.floor((4 * done) / total) : -1;
        if (quarter > (lastQuarter.get(key) ?? -1)) {
          lastQuarter.set(key, quarter);
          log(`${label}: ${done}/${total} (${Math.floor((100 * done) / total)}%)`);
        }
      }
    },
    stop() {},
  };
}

/**
 * Shows each stage transition of the run and its trials, and the progress of running steps,
 * until the workflow closes; returns its result.
 */
export async function followReproduction(
  client: Client,
  handle: WorkflowHandle<typeof reproducePaper>,
  display: ProgressDisplay,
  pollMillis = 1000,
): Promise<ReproductionResult> {
  const printed = new Map<string, string>();
  let finished = false;
  const result = handle.result().finally(() => {
    finished = true;
  });
  const report = (scope: string, view: ProgressView) => {
    for (const [name, stage] of Object.entries(view.stages)) {
      if (stage.status === 'pending') continue;
      const line = `[${scope}] ${describeStage(name, stage)}`;
      if (printed.get(`${scope}/${name}`) !== line) {
        printed.set(`${scope}/${name}`, line);
        display.stage(line);
      }
    }
  };
  const poll = async () => {
    const parent = await handle.query(progressQuery);
    report('run', parent);
    const running = new Map<string, { label: string; done: number; total: number }>();
    for (const [index, trialId] of (parent.trials ?? []).entries()) {
      const child = client.workflow.getHandle(trialId);
      const view = await child.query(progressQuery).catch(() => undefined);
      if (!view) continue;
      report(`trial ${index + 1}`, view);
      for (const progress of await activityProgress(child).catch(() => [])) {
        running.set(`${trialId}/${progress.stage}`, {
          label: `[trial ${index + 1}] ${progress.stage}`,
          done: progress.done,
          total: progress.total,
        });
      }
    }
    display.steps(running);
  };
  try {
    while (!finished) {
      // Queries fail while a workflow task is being retried or the server restarts: keep following.
      await poll().catch(() => undefined);
      await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, pollMillis))]);
    }
    await poll().catch(() => undefined);
  } finally {
    display.stop();
  }
  return result;
}

/** Records under `runs/<run>/` that are not part of the report (they stay in S3). */
const NOT_REPORT_FILES = ['index/', 'artifacts/'];

/**
 * Copies `runs/<runName>/` (report, summary, figures) from S3 to `<outDir>/<runName>/`. Every
 * file lands inside that folder: the run name and each listed key are checked first.
 */
export async function downloadReport(store: ArtifactStore, runName: string, outDir: string): Promise<string> {
  assertSafeRunName(runName);
  const prefix = `runs/${runName}/`;
  const target = path.resolve(outDir, runName);
  for (const key of await store.list(prefix)) {
    const relative = key.slice(prefix.length);
    if (!key.startsWith(prefix) || NOT_REPORT_FILES.some((p) => relative.startsWith(p))) continue;
    assertSafeKey(key);
    const file = path.resolve(target, relative);
    if (!file.startsWith(target + path.sep)) {
      throw new InputError(`Refusing to write ${key} outside ${target}: the key leaves the run's folder.`);
    }
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, await store.getAt(key));
  }
  return path.join(target, 'report.md');
}
