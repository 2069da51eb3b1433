import assert from 'node:assert/strict';
import { test } from 'node:test';
import { asyncLocalStorage, Context, type Info } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import {
  CHECKPOINT_INTERVAL_MS,
  checkpointIntervalAfter,
  MAX_STALLED_ATTEMPTS,
  MIN_CHECKPOINT_INTERVAL_MS,
  ProgressReporter,
  STALL_WINDOW_MS,
  stalledAttemptsBefore,
  type ProgressDetails,
} from '../../activities/shared.js';
import type { ArtifactRef } from '../../lib/storage.js';

const ref = (n: number): ArtifactRef => ({
  key: `cas/0${n}/${String(n).repeat(64)}.safetensors`,
  sha256: String(n).repeat(64),
  bytes: 10 * n,
});

/** Runs `body` as one activity attempt that starts with `previous` heartbeat details; returns its heartbeats. */
function attempt(
  previous: ProgressDetails | undefined,
  body: (progress: ProgressReporter) => void,
  number = (previous?.attempt ?? 0) + 1,
  scheduledTimestampMs = Date.now(),
): ProgressDetails[] {
  const beats: ProgressDetails[] = [];
  const info = {
    heartbeatDetails: previous,
    activityType: 'trainGan',
    attempt: number,
    scheduledTimestampMs,
  } as unknown as Info;
  const context = new Context(
    info,
    new Promise<never>(() => {}),
    new AbortController().signal,
    (details?: unknown) => beats.push(details as ProgressDetails),
    undefined,
    console,
    undefined as never,
    {},
  );
  asyncLocalStorage.run(context, () => body(new ProgressReporter('train NORMAL GAN', 100)));
  return beats;
}

test('every heartbeat of every attempt carries the latest checkpoint, even of attempts that never checkpoint', () => {
  // Attempt 1 checkpoints at step 20, then dies.
  const first = attempt(undefined, (p) => {
    p.progress(10);
    p.checkpoint(ref(1), 20);
    p.progress(25);
  });
  assert.equal(first.at(-1)!.checkpointStep, 20);
  // Attempt 2 resumes from it and dies before its own first checkpoint.
  let resumed: unknown;
  const second = attempt(first.at(-1), (p) => {
    resumed = p.resumeFrom;
    p.progress(22);
  });
  assert.deepEqual(resumed, { ref: ref(1), step: 20 });
  for (const beat of second) assert.deepEqual([beat.checkpoint, beat.checkpointStep], [ref(1), 20]);
  // Attempt 3 still sees attempt 1's checkpoint; a newer one replaces it.
  const third = attempt(second.at(-1), (p) => {
    assert.deepEqual(p.resumeFrom, { ref: ref(1), step: 20 });
    p.checkpoint(ref(2), 40);
  });
  assert.deepEqual([third.at(-1)!.checkpoint, third.at(-1)!.checkpointStep], [ref(2), 40]);
  // The first attempt starts without a checkpoint and says so.
  assert.equal(first[0]!.checkpoint, undefined);
});

test('a step gives up after 10 attempts and 30 minutes without a new checkpoint, never while it moves forward', () => {
  // 30 attempts, each killed after one more checkpoint: every one of them runs.
  let details: ProgressDetails | undefined;
  for (let n = 1; n <= 30; n++) {
    details = attempt(details, (p) => p.checkpoint(ref(n % 9), n * 10)).at(-1);
  }
  assert.equal(details!.attempt, 30);
  assert.equal(details!.stalledAttempts, 0);
  // Then 12 attempts die before checkpointing, within minutes: all of them still run.
  for (let n = 31; n <= 42; n++) details = attempt(details, (p) => p.progress(1)).at(-1);
  assert.equal(details!.stalledAttempts, 11);
  // Once the last checkpoint is older than the window, the next attempt refuses to start.
  const stale = { ...details!, progressAt: Date.now() - STALL_WINDOW_MS - 60_000 };
  assert.throws(
    () => attempt(stale, () => assert.fail('the attempt must not start')),
    (err: unknown) =>
      err instanceof ApplicationFailure &&
      err.nonRetryable &&
      err.type === 'StalledStepError' &&
      /train NORMAL GAN: no new checkpoint in 31 minutes and 12 attempts in a row \(the last is at step 300\)/.test(
        err.message,
      ),
  );
  // An old checkpoint alone is not enough: a slow step that checkpoints rarely is not stalled.
  const slow = { ...stale, stalledAttempts: MAX_STALLED_ATTEMPTS - 2 };
  assert.doesNotThrow(() => attempt(slow, (p) => p.progress(1)));
  // Without any details, the window counts from when the step was first scheduled.
  assert.throws(
    () => attempt(undefined, () => {}, MAX_STALLED_ATTEMPTS + 1, Date.now() - STALL_WINDOW_MS - 1),
    /no new checkpoint in 30 minutes and 10 attempts in a row; giving up/,
  );
});

test('stalled attempts count those that died before reporting anything', () => {
  // No details at all: every earlier attempt stalled.
  assert.equal(stalledAttemptsBefore(1, undefined), 0);
  assert.equal(stalledAttemptsBefore(4, undefined), 3);
  const base = { stage: 's', done: 0, total: 1 };
  // Attempt 3 checkpointed (step 40 from 20); attempts 4 and 5 left no details.
  assert.equal(
    stalledAttemptsBefore(6, { ...base, attempt: 3, startedFromStep: 20, checkpointStep: 40, stalledAttempts: 2 }),
    2,
  );
  // Attempt 3 did not move on from step 20, after 2 stalled ones.
  assert.equal(
    stalledAttemptsBefore(4, { ...base, attempt: 3, startedFromStep: 20, checkpointStep: 20, stalledAttempts: 2 }),
    3,
  );
  // Details from before this field existed: the sender is taken to be the previous attempt.
  assert.equal(stalledAttemptsBefore(2, { ...base, checkpointStep: 20 }), 0);
});

test('attempts that die before checkpointing make the step checkpoint by time more often, and it keeps that pace', () => {
  let details: ProgressDetails | undefined;
  const intervals: number[] = [];
  // Six attempts die before their first checkpoint: each checkpoints four times as often, down to 1 s.
  for (let n = 1; n <= 6; n++)
    details = attempt(details, (p) => {
      intervals.push(p.checkpointIntervalMs);
      p.progress(1);
    }).at(-1);
  assert.deepEqual(intervals, [
    CHECKPOINT_INTERVAL_MS,
    CHECKPOINT_INTERVAL_MS / 4,
    CHECKPOINT_INTERVAL_MS / 16,
    CHECKPOINT_INTERVAL_MS / 64,
    MIN_CHECKPOINT_INTERVAL_MS,
    MIN_CHECKPOINT_INTERVAL_MS,
  ]);
  // One that moves forward does not reset it: its successors die as quickly.
  details = attempt(details, (p) => p.checkpoint(ref(1), 10)).at(-1);
  assert.equal(attempt(details, () => {})[0]!.checkpointIntervalMs, MIN_CHECKPOINT_INTERVAL_MS);
  // Details from before this field existed: the default, shortened after a stall.
  assert.equal(checkpointIntervalAfter({ stage: 's', done: 0, total: 1 }, 0), CHECKPOINT_INTERVAL_MS);
  assert.equal(checkpointIntervalAfter({ stage: 's', done: 0, total: 1 }, 3), CHECKPOINT_INTERVAL_MS / 4);
});
