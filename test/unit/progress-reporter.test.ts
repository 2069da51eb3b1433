import assert from 'node:assert/strict';
import { test } from 'node:test';
import { asyncLocalStorage, Context, type Info } from '@temporalio/activity';
import { ProgressReporter, type ProgressDetails } from '../../activities/shared.js';
import type { ArtifactRef } from '../../lib/storage.js';

const ref = (n: number): ArtifactRef => ({
  key: `cas/0${n}/${String(n).repeat(64)}.safetensors`,
  sha256: String(n).repeat(64),
  bytes: 10 * n,
});

/** Runs `body` as one activity attempt that starts with `previous` heartbeat details; returns its heartbeats. */
function attempt(previous: ProgressDetails | undefined, body: (progress: ProgressReporter) => void): ProgressDetails[] {
  const beats: ProgressDetails[] = [];
  const info = { heartbeatDetails: previous, activityType: 'trainGan', attempt: 1 } as unknown as Info;
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
