import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as tf from '@tensorflow/tfjs';
import { METRICS_READ_EVERY, runStepLoop, type StepLoop } from '../../lib/training/loop.js';

type Meta = { step: number; history: number[] };

/**
 * A step loop over `total` steps of about `stepMs` each, whose metric is the step's index and
 * whose snapshots carry the history recorded so far; returns the snapshots it checkpointed.
 */
function loop(total: number, options: Partial<StepLoop<Meta>> & { stepMs?: number; checkpointMs?: number }) {
  const checkpointed: Meta[] = [];
  const history: number[] = [];
  const spin = (ms: number) => {
    for (const until = performance.now() + ms; performance.now() < until;);
  };
  const run = runStepLoop<Meta>({
    total,
    done: 0,
    checkpointEvery: 1000,
    step: (index) => {
      spin(options.stepMs ?? 0);
      return { scalars: [tf.scalar(index), tf.scalar(index % 2, 'int32')], record: ([i]) => history.push(i!) };
    },
    snapshot: (done) => Promise.resolve({ groups: {}, meta: { step: done, history: [...history] } }),
    onCheckpoint: async (state) => {
      if (options.checkpointMs) await sleep(options.checkpointMs);
      checkpointed.push(state.meta);
    },
    ...options,
  });
  return { run, checkpointed, steps: () => checkpointed.map((m) => m.step) };
}

test('without a time interval the loop checkpoints every checkpointEvery steps and at the end', async () => {
  const { run, steps } = loop(25, { checkpointEvery: 10 });
  assert.equal((await run).meta.step, 25);
  assert.deepEqual(steps(), [10, 20, 25]);
});

test('metrics are read in batches, recorded in step order, and complete in every checkpoint', async () => {
  const tensorsBefore = tf.memory().numTensors;
  const { run, checkpointed } = loop(3 * METRICS_READ_EVERY + 3, { checkpointEvery: 7 });
  const final = await run;
  const indices = Array.from({ length: 3 * METRICS_READ_EVERY + 3 }, (_, i) => i);
  assert.deepEqual(final.meta.history, indices);
  for (const meta of checkpointed) assert.deepEqual(meta.history, indices.slice(0, meta.step));
  assert.equal(tf.memory().numTensors, tensorsBefore, 'every metric tensor was disposed');
});

test('with a time interval the loop also checkpoints by time, between the step-count checkpoints', async () => {
  // Steps of 50 ms and a 100 ms interval: about every second step (2, 4, 6, 8, 10).
  const { run, steps } = loop(10, { checkpointIntervalMs: 100, stepMs: 50 });
  await run;
  assert.equal(steps().at(-1), 10);
  assert.ok(steps().length >= 3 && steps().length <= 6, `checkpointed at ${steps().join(', ')}`);
});

test('checkpoints by time take at most about a tenth of the time, however short the interval', async () => {
  // Steps of 10 ms, checkpoints of at least 20 ms: at most one every 200 ms of 600.
  const { run, steps } = loop(60, { checkpointIntervalMs: 0, stepMs: 10, checkpointMs: 20 });
  await run;
  assert.equal(steps()[0], 1, 'the first one comes after the first step, before any cost is known');
  assert.equal(steps().at(-1), 60);
  assert.ok(steps().length >= 2 && steps().length <= 5, `checkpointed at ${steps().join(', ')}`);
});

test('a cancelled loop disposes the metrics it had not read yet', async () => {
  const tensorsBefore = tf.memory().numTensors;
  const abort = new AbortController();
  const { run } = loop(50, {
    onProgress: (done) => {
      if (done === 5) abort.abort();
    },
    signal: abort.signal,
  });
  await assert.rejects(run, { name: 'AbortError' });
  assert.equal(tf.memory().numTensors, tensorsBefore);
});
