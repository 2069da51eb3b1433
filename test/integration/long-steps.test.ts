/**
 * Ingestion and synthesis at paper sizes (seconds to tens of seconds, depending on the machine):
 * both heartbeat all along and stop soon after cancellation. The activities run in a test
 * activity context against the embedded S3 server; no Temporal server is needed.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createCpuActivities } from '../../activities/cpu.js';
import { createGpuActivities } from '../../activities/gpu.js';
import type { ActivityDeps } from '../../activities/shared.js';
import { initComputeBackend } from '../../lib/compute/backend.js';
import { encodeSafetensors } from '../../lib/training/checkpoint.js';
import { trainGan } from '../../lib/training/gan.js';
import { resolvePreset } from '../../pipelines/presets.js';
import { runInActivity, type ActivityHarness } from '../../bench/activity-harness.js';
import { startScratchS3 } from '../../lib/infra/scratch-s3.js';

const KERMANY_TRAIN = path.resolve(import.meta.dirname, '..', '..', '..', 'shared', 'data', 'kermany-train');
const HEARTBEAT_TIMEOUT_MS = 5000;

let s3: Awaited<ReturnType<typeof startScratchS3>>;
let deps: ActivityDeps;
let scratch: string;

before(async () => {
  s3 = await startScratchS3();
  scratch = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-long-steps-'));
  const backend = await initComputeBackend(() => {});
  deps = { store: s3.store, computeBackend: backend.name, codeVersion: 'test', workerIdentity: 'test' };
});

after(async () => {
  try {
    await s3?.stop();
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
});

/** Longest silence between the start, each heartbeat and the end. */
function longestGap(started: number, heartbeats: ActivityHarness['heartbeats'], ended: number): number {
  const times = [started, ...heartbeats.map((h) => h.at), ended];
  return Math.max(...times.slice(1).map((t, i) => t - times[i]!));
}

/**
 * The step's whole duration depends on the machine (4.6 s on a fast CI machine, 30 s on a loaded
 * one), so what is asserted is its spread: no silence longer than a fifth of the step, nor than
 * the heartbeat timeout. A step that heartbeats only at its start or end fails either way.
 */
function assertHeartbeatsThroughout(started: number, heartbeats: ActivityHarness['heartbeats'], ended: number): void {
  const gap = longestGap(started, heartbeats, ended);
  const total = ended - started;
  assert.ok(heartbeats.length >= 10, `at least 10 heartbeats (got ${heartbeats.length})`);
  assert.ok(gap <= total / 5, `longest silence ${gap.toFixed(0)} ms is over a fifth of ${total.toFixed(0)} ms`);
  assert.ok(gap < HEARTBEAT_TIMEOUT_MS, `heartbeats never 5 s apart (longest silence ${gap.toFixed(0)} ms)`);
}

/** Runs a step, cancels it after `cancelAfter` heartbeats, and returns how long it took to stop. */
async function cancelAfterHeartbeats(
  spec: Parameters<typeof runInActivity>[0],
  step: () => Promise<unknown>,
  cancelAfter: number,
): Promise<{ stoppedMs: number; heartbeats: number }> {
  let cancelledAt = 0;
  let count = 0;
  let harness: ActivityHarness | undefined;
  const outcome = runInActivity(spec, (h) => {
    harness = h;
    return step();
  });
  const watch = setInterval(() => {
    count = harness?.heartbeats.length ?? 0;
    if (!cancelledAt && count >= cancelAfter) {
      cancelledAt = performance.now();
      harness!.cancel();
    }
  }, 10);
  try {
    await assert.rejects(outcome, /CANCELLED|cancel|abort/i);
  } finally {
    clearInterval(watch);
  }
  assert.ok(cancelledAt > 0, 'the step was cancelled while running');
  return { stoppedMs: performance.now() - cancelledAt, heartbeats: count };
}

test(
  'ingesting 2,000 real X-rays heartbeats throughout and stops on cancellation',
  {
    timeout: 240_000,
    skip: existsSync(KERMANY_TRAIN) ? false : `${KERMANY_TRAIN} is absent (CI provides it beside the checkout)`,
  },
  async () => {
    // A fixed 2,000-image part of kermany-train (copies: the folder source lists plain files only).
    const folder = path.join(scratch, 'part');
    for (const label of ['NORMAL', 'PNEUMONIA']) {
      await mkdir(path.join(folder, label), { recursive: true });
      const names = (await readdir(path.join(KERMANY_TRAIN, label))).sort().slice(0, 1000);
      await Promise.all(names.map((n) => copyFile(path.join(KERMANY_TRAIN, label, n), path.join(folder, label, n))));
    }
    const config = resolvePreset('paper', { kind: 'folder', path: folder });
    const cpu = createCpuActivities(deps);
    const started = performance.now();
    const { result, heartbeats } = await runInActivity(
      { workflowId: 'pneumogan-long-ingest', activityType: 'ingestDataset' },
      () => cpu.ingestDataset({ config }),
    );
    const ended = performance.now();
    console.log(
      `# ingest: 2,000 images in ${((ended - started) / 1000).toFixed(1)} s, ${heartbeats.length} heartbeats`,
    );
    assert.equal(result.counts.NORMAL + result.counts.PNEUMONIA + result.duplicates, 2000);
    assertHeartbeatsThroughout(started, heartbeats, ended);

    const { stoppedMs } = await cancelAfterHeartbeats(
      { workflowId: 'pneumogan-long-ingest-cancelled', activityType: 'ingestDataset' },
      () => cpu.ingestDataset({ config: resolvePreset('paper', { kind: 'folder', path: KERMANY_TRAIN }) }),
      100,
    );
    assert.ok(stoppedMs < HEARTBEAT_TIMEOUT_MS, `stopped ${stoppedMs.toFixed(0)} ms after cancellation`);
  },
);

test(
  'synthesizing 1,024 paper-size GAN images heartbeats throughout and stops on cancellation',
  { timeout: 240_000 },
  async () => {
    const gan = { ...resolvePreset('paper').gan, steps: 0 };
    const { state, generator } = await trainGan({ images: [], gan, seed: 3 });
    generator.dispose();
    const checkpoint = await s3.store.putContent(encodeSafetensors(state), 'safetensors');
    const gpu = createGpuActivities(deps);
    const input = { checkpoint, label: 'NORMAL' as const, count: 1024, seed: 5, reuse: false };
    const started = performance.now();
    const { result, heartbeats } = await runInActivity(
      { workflowId: 'pneumogan-long-synth/trial-1', activityType: 'synthesize' },
      () => gpu.synthesize(input),
    );
    const ended = performance.now();
    console.log(
      `# synthesize: 1,024 images in ${((ended - started) / 1000).toFixed(1)} s, ${heartbeats.length} heartbeats`,
    );
    assert.equal(result.count, 1024);
    assertHeartbeatsThroughout(started, heartbeats, ended);

    const { stoppedMs, heartbeats: before } = await cancelAfterHeartbeats(
      { workflowId: 'pneumogan-long-synth-cancelled/trial-1', activityType: 'synthesize' },
      () => gpu.synthesize({ ...input, seed: 6 }),
      100,
    );
    assert.ok(before < 1024, 'cancelled before the end');
    assert.ok(stoppedMs < HEARTBEAT_TIMEOUT_MS, `stopped ${stoppedMs.toFixed(0)} ms after cancellation`);
  },
);
