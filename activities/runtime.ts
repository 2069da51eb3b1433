/**
 * What every activity shares: its dependencies, input validation, the mapping of bad input to
 * non-retryable failures, heartbeats that carry the latest checkpoint, and lineage producers.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { InputError } from '../lib/errors.js';
import { ConfigError } from '../pipelines/schema.js';
import {
  indexRunArtifact,
  recordLineage,
  type ArtifactKind,
  type LineageRecord,
  type Producer,
} from '../lib/lineage.js';
import { ArtifactRefSchema, canonicalJson, sha256Hex, type ArtifactRef, type ArtifactStore } from '../lib/storage.js';

export interface ActivityDeps {
  store: ArtifactStore;
  /** The TensorFlow.js backend the worker loaded, recorded in lineage. */
  computeBackend: string;
  /** Git commit (or package version) of the code, recorded in lineage. */
  codeVersion: string;
  /** Worker identity (host and pid), recorded in lineage. */
  workerIdentity: string;
}

/**
 * Validates the input and runs the body; bad input (invalid payload, InputError, ConfigError)
 * becomes a non-retryable ApplicationFailure, everything else stays retryable.
 */
export async function runActivity<S extends z.ZodType, R>(
  schema: S,
  input: unknown,
  body: (input: z.infer<S>) => Promise<R>,
): Promise<R> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `Invalid activity input: ${z.prettifyError(parsed.error)}`,
      'ValidationError',
    );
  }
  try {
    return await body(parsed.data);
  } catch (err) {
    if (err instanceof InputError || err instanceof ConfigError) {
      throw ApplicationFailure.nonRetryable(err.message, err.name);
    }
    throw err;
  }
}

export function producer(deps: ActivityDeps): Producer {
  const info = Context.current().info;
  return {
    // Standalone activities have no workflow; ours always run inside one.
    workflowId: info.workflowExecution?.workflowId ?? '',
    runId: info.workflowExecution?.runId ?? '',
    activity: info.activityType,
    activityId: info.activityId,
    attempt: info.attempt,
    worker: deps.workerIdentity,
    codeVersion: deps.codeVersion,
    computeBackend: deps.computeBackend,
  };
}

/** Heartbeat payload of long steps: progress, and the checkpoint a retry resumes from. */
export const ProgressDetailsSchema = z.object({
  stage: z.string(),
  done: z.number(),
  total: z.number(),
  checkpoint: ArtifactRefSchema.optional(),
  checkpointStep: z.number().int().optional(),
});
export type ProgressDetails = z.infer<typeof ProgressDetailsSchema>;

/** The checkpoint the previous attempt reported, if any (corrupt details are ignored). */
export function previousCheckpoint(): { ref: ArtifactRef; step: number } | undefined {
  const parsed = ProgressDetailsSchema.safeParse(Context.current().info.heartbeatDetails);
  if (!parsed.success || !parsed.data.checkpoint) return undefined;
  return { ref: parsed.data.checkpoint, step: parsed.data.checkpointStep ?? 0 };
}

/**
 * Tracks progress and the latest checkpoint and heartbeats both. The SDK throttles heartbeats,
 * so calling this every batch is cheap.
 *
 * Every heartbeat carries the newest checkpoint known to this attempt, starting with the one the
 * previous attempt reported: an attempt that dies before writing its own first checkpoint must
 * not erase the resume point (its last heartbeat is what the next attempt reads).
 */
export class ProgressReporter {
  private details: ProgressDetails;
  /** The checkpoint this attempt starts from (the previous attempt's latest), if any. */
  readonly resumeFrom: { ref: ArtifactRef; step: number } | undefined;

  constructor(stage: string, total: number) {
    this.resumeFrom = previousCheckpoint();
    this.details = {
      stage,
      done: 0,
      total,
      ...(this.resumeFrom ? { checkpoint: this.resumeFrom.ref, checkpointStep: this.resumeFrom.step } : {}),
    };
    Context.current().heartbeat(this.details);
  }

  progress(done: number, total = this.details.total): void {
    this.details = { ...this.details, done, total };
    Context.current().heartbeat(this.details);
  }

  checkpoint(ref: ArtifactRef, step: number): void {
    this.details = { ...this.details, checkpoint: ref, checkpointStep: step };
    Context.current().heartbeat(this.details);
  }

  get signal(): AbortSignal {
    return Context.current().cancellationSignal;
  }
}

/** Stores artifacts with their lineage records and remembers what it stored (for memoization). */
export class ArtifactRecorder {
  readonly recorded: Array<{ artifact: ArtifactRef; kind: ArtifactKind }> = [];

  constructor(private readonly deps: ActivityDeps) {}

  async put(
    bytes: Uint8Array,
    ext: string,
    kind: ArtifactKind,
    inputs: LineageRecord['inputs'],
    params: Record<string, unknown>,
    generated?: LineageRecord['generated'],
  ): Promise<ArtifactRef> {
    const artifact = await this.deps.store.putContent(bytes, ext);
    await recordLineage(this.deps.store, {
      artifact,
      kind,
      inputs,
      params,
      producer: producer(this.deps),
      generated,
      recordedAt: new Date().toISOString(),
    });
    this.recorded.push({ artifact, kind });
    return artifact;
  }

  putJson(
    value: unknown,
    kind: ArtifactKind,
    inputs: LineageRecord['inputs'],
    params: Record<string, unknown>,
  ): Promise<ArtifactRef> {
    return this.put(canonicalJson(value), 'json', kind, inputs, params);
  }
}

const MemoRecordSchema = z.object({
  output: z.unknown(),
  artifacts: z.array(z.object({ artifact: ArtifactRefSchema, kind: z.string() })),
  producer: z.object({ workflowId: z.string(), activityId: z.string() }).passthrough(),
});

/**
 * Step memoization: a step whose validated input (artifact hashes and parameters) and code
 * version match a completed step returns that step's output instead of recomputing, once every
 * artifact it produced is confirmed present. `reuse: false` in the input forces a recomputation.
 * The reused artifacts are listed under the new run too, so verifying the run checks them.
 */
export async function memoized<T>(
  deps: ActivityDeps,
  input: { reuse: boolean },
  body: (recorder: ArtifactRecorder) => Promise<T>,
): Promise<T> {
  const info = Context.current().info;
  const { reuse, ...keyed } = input;
  const memoKey = `memo/${info.activityType}/${sha256Hex(canonicalJson({ activity: info.activityType, input: keyed, codeVersion: deps.codeVersion }))}.json`;
  if (reuse && (await deps.store.exists(memoKey))) {
    const memo = MemoRecordSchema.parse(JSON.parse((await deps.store.getAt(memoKey)).toString('utf8')));
    const present = await Promise.all(memo.artifacts.map((a) => deps.store.exists(a.artifact.key)));
    if (present.every(Boolean)) {
      const workflowId = info.workflowExecution?.workflowId ?? '';
      for (const { artifact, kind } of memo.artifacts)
        await indexRunArtifact(deps.store, workflowId, artifact, kind as ArtifactKind);
      Context.current().log.info(
        `${info.activityType}: reusing the output of ${memo.producer.workflowId} (${memoKey})`,
      );
      return memo.output as T;
    }
  }
  const recorder = new ArtifactRecorder(deps);
  const output = await body(recorder);
  await deps.store.putAt(
    memoKey,
    canonicalJson({
      output,
      artifacts: recorder.recorded,
      producer: producer(deps),
      recordedAt: new Date().toISOString(),
    }),
  );
  return output;
}
