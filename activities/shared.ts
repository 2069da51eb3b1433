/**
 * What every activity shares: its dependencies, input validation, the mapping of bad input to
 * non-retryable failures, heartbeats that carry the latest checkpoint, and lineage producers.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { markStep } from './profile.js';
import { InputError } from '../lib/errors.js';
import { ConfigError } from '../pipelines/schema.js';
import pLimit from 'p-limit';
import {
  LineageBatch,
  parseJson,
  RunArtifactSchema,
  writeRunIndexShard,
  type ArtifactKind,
  type LineageRecord,
  type Producer,
  type RunArtifact,
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
  /** The attempt that sent these details. */
  attempt: z.number().int().optional(),
  /** The checkpoint step that attempt started from (0: from scratch). */
  startedFromStep: z.number().int().optional(),
  /** Attempts in a row before that one that ended without a new checkpoint. */
  stalledAttempts: z.number().int().optional(),
  /** When the newest checkpoint was written (epoch ms; before the first, when the step was scheduled). */
  progressAt: z.number().optional(),
  /** The time-based checkpoint interval that attempt used (see {@link checkpointIntervalAfter}). */
  checkpointIntervalMs: z.number().optional(),
});
export type ProgressDetails = z.infer<typeof ProgressDetailsSchema>;

/**
 * A step gives up when it has gone this many attempts in a row, and this long, without a new
 * checkpoint. A checkpoint resets both, so a long step survives any number of failures while it
 * moves forward (GPU workers may be killed many times during hours of GAN training); one that
 * fails the same way every time stops. Both, not either: the chaos soak kills workers faster than
 * a smoke GAN checkpoints, so 10 short-lived attempts in a row happen to a step that still
 * advances every few minutes; and a step that fails at once is retried 10 times in a few minutes.
 */
export const MAX_STALLED_ATTEMPTS = 10;
export const STALL_WINDOW_MS = 30 * 60_000;

/**
 * Time-based checkpoints (on top of every `checkpointEvery` steps): at first every 2 minutes,
 * which costs little even for paper-size checkpoints of hundreds of MB. An attempt that follows
 * attempts which died without a new checkpoint (workers killed faster than they checkpoint)
 * checkpoints four times as often, down to every second, and the step keeps that pace for the
 * rest of its attempts: the interval adapts to how long attempts live.
 */
export const CHECKPOINT_INTERVAL_MS = 2 * 60_000;
export const MIN_CHECKPOINT_INTERVAL_MS = 1000;

export function checkpointIntervalAfter(previous: ProgressDetails | undefined, stalledAttempts: number): number {
  const interval = previous?.checkpointIntervalMs ?? CHECKPOINT_INTERVAL_MS;
  return stalledAttempts > 0 ? Math.max(MIN_CHECKPOINT_INTERVAL_MS, interval / 4) : interval;
}

/**
 * How many attempts before `attempt` ended in a row without a new checkpoint, from the last
 * heartbeat details any of them sent. Attempts after the sender that sent none (they died
 * before reporting) count as stalled too.
 */
export function stalledAttemptsBefore(attempt: number, previous: ProgressDetails | undefined): number {
  if (!previous) return attempt - 1;
  const sender = previous.attempt ?? attempt - 1;
  const senderProgressed = (previous.checkpointStep ?? 0) > (previous.startedFromStep ?? 0);
  const upToSender = senderProgressed ? 0 : (previous.stalledAttempts ?? 0) + 1;
  return upToSender + Math.max(0, attempt - 1 - sender);
}

/**
 * Tracks progress and the latest checkpoint and heartbeats both. The SDK throttles heartbeats,
 * so calling this every batch is cheap.
 *
 * Every heartbeat carries the newest checkpoint known to this attempt, starting with the one the
 * previous attempt reported: an attempt that dies before writing its own first checkpoint must
 * not erase the resume point (its last heartbeat is what the next attempt reads). It also
 * carries the count of stalled attempts and the time of the last checkpoint, and an attempt that
 * follows {@link MAX_STALLED_ATTEMPTS} of them over {@link STALL_WINDOW_MS} fails for good (the
 * workflow's retry policy allows many more attempts than that, so that attempts which move
 * forward are never cut off).
 */
export class ProgressReporter {
  private details: ProgressDetails;
  /** The checkpoint this attempt starts from (the previous attempt's latest), if any. */
  readonly resumeFrom: { ref: ArtifactRef; step: number } | undefined;
  /** How often this attempt checkpoints by time (see {@link checkpointIntervalAfter}). */
  readonly checkpointIntervalMs: number;

  constructor(stage: string, total: number) {
    const { attempt, scheduledTimestampMs } = Context.current().info;
    // Corrupt details are ignored: the attempt starts over.
    const parsed = ProgressDetailsSchema.safeParse(Context.current().info.heartbeatDetails as unknown);
    const previous = parsed.success ? parsed.data : undefined;
    const stalledAttempts = stalledAttemptsBefore(attempt, previous);
    const progressAt = previous?.progressAt ?? scheduledTimestampMs;
    const stalledMinutes = (Date.now() - progressAt) / 60_000;
    if (stalledAttempts >= MAX_STALLED_ATTEMPTS && stalledMinutes >= STALL_WINDOW_MS / 60_000) {
      throw ApplicationFailure.nonRetryable(
        `${stage}: no new checkpoint in ${stalledMinutes.toFixed(0)} minutes and ${stalledAttempts} attempts in a row` +
          (previous?.checkpointStep ? ` (the last is at step ${previous.checkpointStep})` : '') +
          '; giving up instead of retrying the same failure. The worker logs say why the attempts died ' +
          '(out of memory, a lost GPU, a crash); fix that and relaunch the run, which resumes from the last checkpoint.',
        'StalledStepError',
      );
    }
    this.resumeFrom = previous?.checkpoint && { ref: previous.checkpoint, step: previous.checkpointStep ?? 0 };
    this.checkpointIntervalMs = checkpointIntervalAfter(previous, stalledAttempts);
    this.details = {
      stage,
      done: 0,
      total,
      ...(this.resumeFrom ? { checkpoint: this.resumeFrom.ref, checkpointStep: this.resumeFrom.step } : {}),
      attempt,
      startedFromStep: this.resumeFrom?.step ?? 0,
      stalledAttempts,
      progressAt,
      checkpointIntervalMs: this.checkpointIntervalMs,
    };
    Context.current().heartbeat(this.details);
  }

  progress(done: number, total = this.details.total): void {
    markStep(done);
    this.details = { ...this.details, done, total };
    Context.current().heartbeat(this.details);
  }

  /**
   * Heartbeats the current details again, during preparation before the first step (loading
   * images, say), so a long preparation is not taken for a dead worker. Cancellation surfaces here.
   */
  stillWorking(): void {
    this.signal.throwIfAborted();
    Context.current().heartbeat(this.details);
  }

  checkpoint(ref: ArtifactRef, step: number): void {
    this.details = { ...this.details, checkpoint: ref, checkpointStep: step, progressAt: Date.now() };
    Context.current().heartbeat(this.details);
  }

  get signal(): AbortSignal {
    return Context.current().cancellationSignal;
  }
}

/** One lineage batch per activity execution, shared by every recorder the execution creates. */
const batches = new WeakMap<Context, LineageBatch>();

/**
 * Stores artifacts with their lineage records and remembers what it stored (for memoization).
 * Records go into the activity's lineage batch and run index shard ({@link LineageBatch}); `put`
 * writes both after each artifact unless told not to, for bulk steps that {@link flush} once.
 */
export class ArtifactRecorder {
  readonly recorded: RunArtifact[] = [];
  private readonly batch: LineageBatch;

  constructor(private readonly deps: ActivityDeps) {
    const context = Context.current();
    let batch = batches.get(context);
    if (!batch) {
      batch = new LineageBatch(deps.store, producer(deps));
      batches.set(context, batch);
    }
    this.batch = batch;
  }

  async put(
    bytes: Uint8Array,
    ext: string,
    kind: ArtifactKind,
    inputs: LineageRecord['inputs'],
    params: Record<string, unknown>,
    generated?: LineageRecord['generated'],
    options: { flush?: boolean } = {},
  ): Promise<ArtifactRef> {
    const artifact = await this.deps.store.putContent(bytes, ext, this.batch.objectMetadata);
    this.batch.add({ artifact, kind, inputs, params, generated, recordedAt: new Date().toISOString() });
    this.recorded.push({ artifact, kind });
    if (options.flush ?? true) await this.flush();
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

  /** Records an artifact stored elsewhere (by lib code) in this activity's batch; call {@link flush} after. */
  record(
    artifact: ArtifactRef,
    kind: ArtifactKind,
    inputs: LineageRecord['inputs'],
    params: Record<string, unknown>,
  ): void {
    this.batch.add({ artifact, kind, inputs, params, recordedAt: new Date().toISOString() });
    this.recorded.push({ artifact, kind });
  }

  /** Metadata for artifacts stored by lib code, naming this activity's lineage batch. */
  get objectMetadata(): Record<string, string> {
    return this.batch.objectMetadata;
  }

  /** Writes the lineage batch and run index shard of everything this activity recorded so far. */
  flush(): Promise<ArtifactRef | undefined> {
    return this.batch.flush();
  }
}

const MemoRecordSchema = z.object({
  output: z.unknown(),
  artifacts: z.array(RunArtifactSchema),
  /** The lineage batch of the step that produced the output (absent in memos written before batches). */
  lineage: ArtifactRefSchema.optional(),
  producer: z.object({ workflowId: z.string(), activityId: z.string() }).passthrough(),
});

/**
 * Step memoization: a step whose validated input (artifact hashes and parameters) and code
 * version match a completed step returns that step's output instead of recomputing, once every
 * artifact it produced is confirmed intact (size and sha256, see ArtifactStore.checkContent); a
 * missing or corrupt output makes the step run again, which rewrites it. `reuse: false` in the
 * input forces a recomputation. The reused artifacts are listed under the new run too (one index
 * shard pointing at the original lineage batch), so verifying the run checks them.
 */
export async function memoized<T>(
  deps: ActivityDeps,
  input: { reuse: boolean },
  body: (recorder: ArtifactRecorder) => Promise<T>,
): Promise<T> {
  const context = Context.current();
  const info = context.info;
  const { reuse, ...keyed } = input;
  const memoKey = `memo/${info.activityType}/${sha256Hex(canonicalJson({ activity: info.activityType, input: keyed, codeVersion: deps.codeVersion }))}.json`;
  const memo = reuse ? await readMemo(deps, memoKey) : undefined;
  if (memo) {
    const limit = pLimit(16);
    let checked = 0;
    const checks = await Promise.all(
      memo.artifacts.map(({ artifact }) =>
        limit(async () => {
          const check = await deps.store.checkContent(artifact);
          // Thousands of outputs (synthesis) take a while to confirm: keep the heartbeat going.
          if (++checked % 200 === 0)
            context.heartbeat({ stage: 'confirm reused outputs', done: checked, total: memo.artifacts.length });
          return { artifact, check };
        }),
      ),
    );
    const damaged = checks.filter((c) => c.check !== 'ok');
    if (damaged.length === 0) {
      await writeRunIndexShard(
        deps.store,
        { workflowId: info.workflowExecution?.workflowId ?? '', activityId: info.activityId },
        memo.artifacts,
        memo.lineage,
      );
      context.log.info(`${info.activityType}: reusing the output of ${memo.producer.workflowId} (${memoKey})`);
      return memo.output as T;
    }
    context.log.warn(
      `${info.activityType}: not reusing ${memoKey}: ${damaged.length} output(s) ${damaged
        .slice(0, 3)
        .map((d) => `${d.artifact.key} ${d.check}`)
        .join(', ')}${damaged.length > 3 ? ', ...' : ''}; recomputing`,
    );
  }
  const recorder = new ArtifactRecorder(deps);
  const output = await body(recorder);
  const lineage = await recorder.flush();
  await deps.store.putAt(
    memoKey,
    canonicalJson({
      output,
      artifacts: recorder.recorded,
      lineage,
      producer: producer(deps),
      recordedAt: new Date().toISOString(),
    }),
  );
  return output;
}

/** The memo record at `key`, or undefined when there is none or it is garbled (then recomputed). */
async function readMemo(deps: ActivityDeps, key: string): Promise<z.infer<typeof MemoRecordSchema> | undefined> {
  if (!(await deps.store.exists(key))) return undefined;
  const parsed = parseJson(await deps.store.getAt(key), MemoRecordSchema);
  if (parsed.ok) return parsed.value;
  Context.current().log.warn(`memo record ${key} ${parsed.problem}; recomputing the step`);
  return undefined;
}
