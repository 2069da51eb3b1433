import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultPayloadConverter } from '@temporalio/common';
import type { ProgressDetails } from '../../activities/shared.js';
import { describePendingStep } from '../../cli/pending-step.js';

const now = Date.parse('2026-11-26T12:00:00Z');
const ref = { key: `cas/ab/${'ab'.repeat(32)}.safetensors`, sha256: 'ab'.repeat(32), bytes: 100 };

function pending(details: unknown, attempt: number, failure?: string) {
  return {
    activityType: { name: 'trainGan' },
    attempt,
    heartbeatDetails: details === undefined ? undefined : { payloads: [defaultPayloadConverter.toPayload(details)] },
    lastFailure: failure ? { message: failure } : undefined,
  };
}

test('a running step shows its attempt, progress, resume point and its age, and stalled attempts', () => {
  const details: ProgressDetails = {
    stage: 'train NORMAL GAN',
    done: 120,
    total: 200,
    checkpoint: ref,
    checkpointStep: 100,
    attempt: 7,
    startedFromStep: 100,
    stalledAttempts: 2,
    progressAt: now - 3 * 60_000,
  };
  assert.equal(
    describePendingStep(pending(details, 7, 'activity Heartbeat timeout'), now),
    'trainGan attempt 7, train NORMAL GAN 120/200, resumes from step 100 (checkpointed 3 min ago), ' +
      '2 attempt(s) in a row without a new checkpoint, last failure: activity Heartbeat timeout',
  );
});

test('a step without details, or with details of another shape, still shows its attempt and failure', () => {
  assert.equal(describePendingStep(pending(undefined, 1), now), 'trainGan attempt 1');
  assert.equal(
    describePendingStep(pending({ rows: 3 }, 2, 'S3 down'), now),
    'trainGan attempt 2, last failure: S3 down',
  );
  const fresh = { stage: 'fine-tune resnet18', done: 5, total: 40, stalledAttempts: 0 };
  assert.equal(describePendingStep(pending(fresh, 1), now), 'trainGan attempt 1, fine-tune resnet18 5/40');
});
