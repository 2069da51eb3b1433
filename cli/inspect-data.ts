/**
 * What the inspection commands show, as data: `--json` prints it as is, and scripts can rely on
 * its shape. (The text renderings are in inspect.ts.)
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { defineSearchAttributeKey } from '@temporalio/common';
import { InputError } from '../lib/errors.js';
import {
  LineageReader,
  RunArtifactSchema,
  traceLineage,
  type LineageNode,
  type LineageRecord,
} from '../lib/lineage.js';
import { reproductionWorkflowId, runNameFromWorkflowId } from '../lib/run-names.js';
import { SEARCH_ATTRIBUTES } from '../lib/search-attributes.js';
import type { ArtifactRef, ArtifactStore } from '../lib/storage.js';
import { progressQuery, type ProgressView, type reproducePaper } from '../workflows/index.js';
import { NotFoundError } from './exit-codes.js';

const keys = {
  preset: defineSearchAttributeKey(SEARCH_ATTRIBUTES.preset, 'KEYWORD'),
  datasetSha256: defineSearchAttributeKey(SEARCH_ATTRIBUTES.datasetSha256, 'KEYWORD'),
  stage: defineSearchAttributeKey(SEARCH_ATTRIBUTES.status, 'KEYWORD'),
};

export interface RunSummary {
  run: string;
  workflowId: string;
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, ... */
  status: string;
  /** The pipeline's own stage (PneumoganStatus search attribute); absent for runs older than it. */
  stage?: string;
  preset?: string;
  datasetSha256?: string;
  startTime: string;
  closeTime?: string;
}

function summarize(
  execution: Pick<WorkflowExecutionInfo, 'workflowId' | 'status' | 'typedSearchAttributes' | 'startTime' | 'closeTime'>,
): RunSummary {
  const attributes = execution.typedSearchAttributes;
  return {
    run: runNameFromWorkflowId(execution.workflowId) ?? execution.workflowId,
    workflowId: execution.workflowId,
    status: execution.status.name,
    stage: attributes.get(keys.stage),
    preset: attributes.get(keys.preset),
    datasetSha256: attributes.get(keys.datasetSha256),
    startTime: execution.startTime.toISOString(),
    closeTime: execution.closeTime?.toISOString(),
  };
}

export interface RunFilter {
  preset?: string;
  stage?: string;
  datasetSha256?: string;
}

/** A visibility query for reproductions matching `filter` (values are checked, then quoted). */
export function listQuery(filter: RunFilter): string {
  const clauses = [`WorkflowType = 'reproducePaper'`];
  const add = (attribute: string, value: string | undefined) => {
    if (value === undefined) return;
    if (!/^[A-Za-z0-9._-]+$/.test(value)) throw new InputError(`"${value}": use letters, digits, ".", "_" and "-"`);
    clauses.push(`${attribute} = '${value}'`);
  };
  add(SEARCH_ATTRIBUTES.preset, filter.preset);
  add(SEARCH_ATTRIBUTES.status, filter.stage);
  add(SEARCH_ATTRIBUTES.datasetSha256, filter.datasetSha256);
  return clauses.join(' AND ');
}

/** Reproductions, newest first. */
export async function listRuns(client: Client, filter: RunFilter = {}): Promise<RunSummary[]> {
  const runs: RunSummary[] = [];
  for await (const execution of client.workflow.list({ query: listQuery(filter) })) runs.push(summarize(execution));
  return runs;
}

export interface RunStatus extends RunSummary {
  stages?: ProgressView['stages'];
  trials: Array<{
    workflowId: string;
    stages?: ProgressView['stages'];
    /** Steps running now, with their attempt and the last failure (retries in progress). */
    running: Array<{ activity: string; attempt: number; lastFailure?: string }>;
    /** From the result, once the run completed. */
    accuracy?: Array<{ protocol: string; backbone: string; accuracy: number }>;
  }>;
  reportKey?: string;
}

/** Stages of a run and its trials; a completed run's from its result (queries need a worker). */
export async function runStatus(client: Client, runName: string): Promise<RunStatus> {
  const handle = client.workflow.getHandle<typeof reproducePaper>(reproductionWorkflowId(runName));
  const description = await handle.describe();
  const status: RunStatus = { ...summarize(description), run: runName, trials: [] };
  const view = await handle.query(progressQuery).catch(() => undefined);
  if (!view && description.status.name === 'COMPLETED') {
    const result = await handle.result();
    status.trials = result.trials.map((t) => ({
      workflowId: t.workflowId,
      stages: Object.fromEntries(
        Object.entries(t.stageMillis).map(([name, ms]) => [
          name,
          { status: 'done' as const, startedAt: 0, endedAt: ms },
        ]),
      ),
      running: [],
      accuracy: t.evaluations.map((e) => ({
        protocol: e.protocol,
        backbone: e.backbone,
        accuracy: e.metrics.accuracy,
      })),
    }));
    status.reportKey = result.report.reportKey;
    return status;
  }
  status.stages = view?.stages;
  for (const trialId of view?.trials ?? []) {
    const trial = client.workflow.getHandle(trialId);
    const trialView = await trial.query(progressQuery).catch(() => undefined);
    const { raw } = await trial.describe().catch(() => ({ raw: undefined }));
    status.trials.push({
      workflowId: trialId,
      stages: trialView?.stages,
      running: (raw?.pendingActivities ?? []).map((a) => ({
        activity: a.activityType?.name ?? '?',
        attempt: a.attempt ?? 1,
        ...(a.lastFailure?.message ? { lastFailure: a.lastFailure.message } : {}),
      })),
    });
  }
  return status;
}

export interface RunArtifact {
  kind: string;
  key: string;
  sha256: string;
  bytes: number;
}

/** Every artifact a run produced or reused. */
export async function runArtifacts(store: ArtifactStore, runName: string): Promise<RunArtifact[]> {
  const keys = await store.list(`runs/${runName}/artifacts/`);
  if (keys.length === 0) throw new NotFoundError(`Run ${runName} has no recorded artifacts (see \`pneumogan list\`)`);
  const artifacts = await Promise.all(
    keys.map(async (key) => {
      const { artifact, kind } = RunArtifactSchema.parse(JSON.parse((await store.getAt(key)).toString('utf8')));
      return { kind, ...artifact };
    }),
  );
  return artifacts.sort((a, b) => a.kind.localeCompare(b.kind) || a.key.localeCompare(b.key));
}

/**
 * An artifact's lineage tree, back to its sources; for a generated image also what its trial's
 * memorization audit found nearest to it among the real training images (`nearestNeighbours`).
 */
export async function artifactLineage(
  store: ArtifactStore,
  artifact: string | ArtifactRef,
): Promise<LineageNode & { nearestNeighbours?: LineageRecord[] }> {
  const reader = new LineageReader(store);
  const node = await traceLineage(store, artifact, { reader });
  const generation = node.records.find((r) => r.generated);
  const nearestNeighbours = generation ? await reader.nearestNeighbours(generation) : [];
  return nearestNeighbours.length ? { ...node, nearestNeighbours } : node;
}
