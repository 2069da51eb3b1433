import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runStepLoop, type StepLoop } from '../../lib/training/loop.js';

/** A step loop over `total` steps of about `stepMs` each, recording the steps it checkpointed at. */
function loop(
  total: number,
  options: Partial<StepLoop<{ step: number }>> & { stepMs?: number; checkpointMs?: number },
) {
  const checkpointed: number[] = [];
  const spin = (ms: number) => {
    for (const until = performance.now() + ms; performance.now() < until;);
  };
  const run = runStepLoop<{ step: number }>({
    total,
    done: 0,
    checkpointEvery: 1000,
    step: () => Promise.resolve(spin(options.stepMs ?? 0)),
    snapshot: (done) => Promise.resolve({ groups: {}, meta: { step: done } }),
    onCheckpoint: async (state) => {
      if (options.checkpointMs) await sleep(options.checkpointMs);
      checkpointed.push(state.meta.step);
    },
    ...options,
  });
  return { run, checkpointed };
}

test('without a time interval the loop checkpoints every checkpointEvery steps and at the end', async () => {
  const { run, checkpointed } = loop(25, { checkpointEvery: 10 });
  assert.equal((await run).meta.step, 25);
  assert.deepEqual(checkpointed, [10, 20, 25]);
});

test('with a time interval the loop also checkpoints by time, between the step-count checkpoints', async () => {
  // Steps of 50 ms and a 100 ms interval: about every second step (2, 4, 6, 8, 10).
  const { run, checkpointed } = loop(10, { checkpointIntervalMs: 100, stepMs: 50 });
  await run;
  assert.equal(checkpointed.at(-1), 10);
  assert.ok(checkpointed.length >= 3 && checkpointed.length <= 6, `checkpointed at ${checkpointed.join(', ')}`);
});

test('checkpoints by time take at most about a tenth of the time, however short the interval', async () => {
  // Steps of 10 ms, checkpoints of at least 20 ms: at most one every 200 ms of 600.
  const { run, checkpointed } = loop(60, { checkpointIntervalMs: 0, stepMs: 10, checkpointMs: 20 });
  await run;
  assert.equal(checkpointed[0], 1, 'the first one comes after the first step, before any cost is known');
  assert.equal(checkpointed.at(-1), 60);
  assert.ok(checkpointed.length >= 2 && checkpointed.length <= 5, `checkpointed at ${checkpointed.join(', ')}`);
});
