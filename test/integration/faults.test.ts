/**
 * Breaking things on purpose: a GPU worker killed mid-training, the Temporal server restarted
 * mid-run, S3 unavailable mid-step, an artifact corrupted after a run, and two GPU workers on
 * one run. Real Temporal dev server, real S3 server, real worker processes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { launchReproduction } from '../../cli/launch.js';
import { localS3Settings, startLocalS3Server, type LocalS3Server } from '../../lib/infra/s3-server.js';
import { startTemporalDevServer, type TemporalDevServer } from '../../lib/infra/temporal-server.js';
import { indexedArtifacts, readLineage, readRunIndex } from '../../lib/lineage.js';
import { verifyRun } from '../../lib/verify.js';
import { ArtifactStore, type S3Settings } from '../../lib/storage.js';
import { resolvePreset } from '../../pipelines/presets.js';
import type { PipelineConfig } from '../../pipelines/schema.js';
import { quietTemporalLogs } from '../../workers/main.js';
import {
  spawnGpuWorkerProcess,
  startWorkers,
  type GpuWorkerProcess,
  type RunningWorkers,
} from '../../workers/start-workers.js';
import type { reproducePaper, RunOptions } from '../../workflows/index.js';

let stateDir: string;
let temporal: TemporalDevServer;
let s3: LocalS3Server;
let s3Settings: S3Settings;
let orchestration: RunningWorkers;
let connection: Connection;
let client: Client;
let store: ArtifactStore;
const gpuWorkers: GpuWorkerProcess[] = [];
const projectRoot = path.resolve(import.meta.dirname, '..', '..');
const timings: Record<string, string> = {};

/** One trial, two backbones: every stage of the paper, small enough to run several times. */
function tinyConfig(ganSteps: number): PipelineConfig {
  const config = resolvePreset('smoke', { kind: 'synthetic', imagesPerClass: 50, seed: 5 });
  config.protocol.trialSeeds = [11];
  config.gan.steps = ganSteps;
  config.gan.checkpointEvery = 10;
  config.classifier.backbones = ['squeezenet', 'resnet18'];
  config.classifier.epochs = 2;
  config.protocol.evaluations = ['paper'];
  // The faults concern the training steps; the issue-11 analyses would only add work and evaluations.
  config.analysis = { ...config.analysis, matchedResolution: [], detectability: false, memorization: false };
  return config;
}

/** Worker output is kept quiet unless PNEUMOGAN_TEST_WORKER_LOG names a file to append it to. */
const workerLog = (line: string) => {
  if (process.env.PNEUMOGAN_TEST_WORKER_LOG)
    appendFileSync(process.env.PNEUMOGAN_TEST_WORKER_LOG, `${new Date().toISOString()} ${line}\n`);
};

const FAST_FAILOVER: RunOptions = { heartbeatTimeoutSeconds: 5, reuse: false };

function startGpuWorker(name: string): GpuWorkerProcess {
  const worker = spawnGpuWorkerProcess(
    { temporal: { address: temporal.address, namespace: temporal.namespace }, s3: s3Settings, gpuConcurrency: 2 },
    name,
    workerLog,
  );
  gpuWorkers.push(worker);
  return worker;
}

async function stopGpuWorkers(): Promise<void> {
  for (const worker of gpuWorkers.splice(0)) {
    worker.stop();
    await worker.exited.catch(() => undefined);
  }
}

before(async () => {
  quietTemporalLogs();
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-faults-'));
  temporal = await startTemporalDevServer({ dbFile: path.join(stateDir, 'temporal.sqlite'), headless: true });
  s3 = await startLocalS3Server({ directory: path.join(stateDir, 's3') });
  s3Settings = localS3Settings(s3);
  store = new ArtifactStore(s3Settings);
  orchestration = await startWorkers({
    role: 'orchestration',
    temporal: { address: temporal.address, namespace: temporal.namespace },
    s3: s3Settings,
    log: workerLog,
  });
  connection = await Connection.connect({ address: temporal.address });
  client = new Client({ connection, namespace: temporal.namespace });
});

after(async () => {
  // Every step runs even when an earlier one (or the test) failed, so no server outlives the suite.
  const steps: Array<() => Promise<unknown>> = [
    stopGpuWorkers,
    async () => connection?.close(),
    async () => orchestration?.shutdown(),
    async () => temporal?.stop(),
    async () => s3?.stop(),
    async () => stateDir && rm(stateDir, { recursive: true, force: true }),
  ];
  const failures: unknown[] = [];
  for (const step of steps) await step().catch((err: unknown) => failures.push(err));
  console.log(`recovery timings: ${JSON.stringify(timings)}`);
  if (failures.length) throw new AggregateError(failures, 'tearing down the fault-test infrastructure failed');
});

interface Heartbeat {
  stage: string;
  done: number;
  total: number;
  checkpointStep?: number;
}

interface PendingActivity {
  activityType: string;
  attempt: number;
  identity: string;
  /** Whether the current attempt has heartbeated (its heartbeat is newer than its start). */
  heartbeatedThisAttempt: boolean;
  heartbeat?: Heartbeat;
}

const millis = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  t ? Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : 0;

/** The trial's running activities, as the server records them (what a retry will be given). */
async function pending(runName: string): Promise<PendingActivity[]> {
  const { raw } = await client.workflow
    .getHandle(`pneumogan-${runName}/trial-1`)
    .describe()
    .catch(() => ({ raw: { pendingActivities: [] } }));
  return (raw.pendingActivities ?? []).map((a) => {
    const payload = a.heartbeatDetails?.payloads?.[0];
    return {
      activityType: a.activityType?.name ?? '',
      attempt: a.attempt ?? 1,
      identity: a.lastWorkerIdentity ?? '',
      heartbeatedThisAttempt: millis(a.lastHeartbeatTime) >= millis(a.lastStartedTime) && !!a.lastStartedTime,
      heartbeat: payload ? defaultPayloadConverter.fromPayload<Heartbeat>(payload) : undefined,
    };
  });
}

/** Heartbeat details of the trial's running activities. */
async function heartbeats(runName: string): Promise<Heartbeat[]> {
  return (await pending(runName)).flatMap((p) => (p.heartbeat ? [p.heartbeat] : []));
}

/** The GAN checkpoint steps the server holds per running GAN (by stage name). */
async function ganCheckpoints(runName: string): Promise<Map<string, number>> {
  return new Map(
    (await heartbeats(runName))
      .filter((h) => h.stage.includes('GAN') && h.checkpointStep !== undefined)
      .map((h) => [h.stage, h.checkpointStep!]),
  );
}

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

async function activityEvents(handle: WorkflowHandle, activityType: string) {
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = new Map<string, string>();
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes?.activityType?.name === activityType)
      scheduled.set(String(e.eventId), activityType);
  }
  const started = events.filter((e) =>
    scheduled.has(String(e.activityTaskStartedEventAttributes?.scheduledEventId ?? '')),
  );
  const completed = events.filter((e) =>
    scheduled.has(String(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? '')),
  );
  const attempts = started.map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 1);
  return { started, completed, attempts };
}

interface GanRun {
  /** The attempt that completed. */
  attempt: number;
  resumedFromStep: number;
  checkpoint: string;
}

/** Each completed trainGan of a run's trial, by label: which attempt finished, and where it resumed. */
async function ganRuns(runName: string): Promise<Map<string, GanRun>> {
  const events = (await client.workflow.getHandle(`pneumogan-${runName}/trial-1`).fetchHistory()).events ?? [];
  const labels = new Map<string, string>();
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled?.activityType?.name !== 'trainGan') continue;
    const input = defaultPayloadConverter.fromPayload<{ label: string }>(scheduled.input!.payloads![0]!);
    labels.set(String(e.eventId), input.label);
  }
  const attempts = new Map<string, number>();
  for (const e of events) {
    const started = e.activityTaskStartedEventAttributes;
    if (started && labels.has(String(started.scheduledEventId))) attempts.set(String(e.eventId), started.attempt ?? 1);
  }
  const runs = new Map<string, GanRun>();
  for (const e of events) {
    const completed = e.activityTaskCompletedEventAttributes;
    const label = completed && labels.get(String(completed.scheduledEventId));
    if (!completed || !label) continue;
    const output = defaultPayloadConverter.fromPayload<{ resumedFromStep: number; checkpoint: { sha256: string } }>(
      completed.result!.payloads![0]!,
    );
    runs.set(label, {
      attempt: attempts.get(String(completed.startedEventId)) ?? 0,
      resumedFromStep: output.resumedFromStep,
      checkpoint: output.checkpoint.sha256,
    });
  }
  return runs;
}

/** Kills a GPU worker process and waits until it is gone. */
async function killGpuWorker(worker: GpuWorkerProcess): Promise<number> {
  worker.child.kill('SIGKILL');
  await worker.exited.catch(() => undefined);
  gpuWorkers.splice(gpuWorkers.indexOf(worker), 1);
  return Date.now();
}

const ganLabel = (stage: string) => /(NORMAL|PNEUMONIA)/.exec(stage)![1]!;

test(
  'a GPU worker killed in the middle of DCGAN training: a new worker resumes from the checkpoint the server holds',
  { timeout: 6 * 60_000 },
  async () => {
    const first = startGpuWorker('gpu-a');
    const runName = 'fault-kill-worker';
    const handle = await launchReproduction({
      client,
      runName,
      config: tinyConfig(120),
      options: FAST_FAILOVER,
      log: () => {},
    });
    await waitFor('a GAN checkpoint at step >= 30 recorded by the server', async () =>
      [...(await ganCheckpoints(runName)).values()].some((step) => step >= 30),
    );
    const killedAt = await killGpuWorker(first);
    // Read after the kill: with the worker dead this is final, and it is what the retry is given.
    const held = await ganCheckpoints(runName);
    const second = startGpuWorker('gpu-b');
    await waitFor('the retry to start on the new worker', async () =>
      (await pending(runName)).some((p) => p.attempt >= 2 && p.identity.includes(`/${second.child.pid}/`)),
    );
    timings.killWorkerReschedule = `retry started ${((Date.now() - killedAt) / 1000).toFixed(1)}s after the kill`;
    const result = await handle.result();
    timings.killWorker = `run finished ${((Date.now() - killedAt) / 1000).toFixed(1)}s after the kill`;

    const runs = await ganRuns(runName);
    assert.deepEqual([...runs.keys()].sort(), ['NORMAL', 'PNEUMONIA']);
    for (const [stage, step] of held) {
      const run = runs.get(ganLabel(stage))!;
      assert.ok(run.attempt >= 2, `${stage}: finished by a retry (attempt ${run.attempt})`);
      assert.equal(run.resumedFromStep, step, `${stage}: resumed from the step-${step} checkpoint the server held`);
      const records = await readLineage(store, run.checkpoint);
      assert.deepEqual(
        records.map((r) => r.producer.attempt),
        [run.attempt],
        `${stage}: one lineage record for the final checkpoint, made by attempt ${run.attempt}`,
      );
    }
    assert.equal(result.trials[0]!.gans.length, 2);
    await stopGpuWorkers();
  },
);

test(
  "a step killed twice in a row, the second attempt before it checkpoints: the third resumes from the first attempt's checkpoint",
  { timeout: 8 * 60_000 },
  async () => {
    const config = tinyConfig(100);
    config.gan.checkpointEvery = 20; // a wide gap, so the second attempt can be killed before it checkpoints
    const first = startGpuWorker('gpu-first');
    const runName = 'fault-kill-twice';
    const handle = await launchReproduction({ client, runName, config, options: FAST_FAILOVER, log: () => {} });
    await waitFor(
      'both GANs checkpointed by the first attempt',
      async () => (await ganCheckpoints(runName)).size === 2,
    );
    await killGpuWorker(first);
    const fromFirst = await ganCheckpoints(runName);

    const second = startGpuWorker('gpu-second');
    await waitFor('both GANs retried on the second worker, and heartbeating there', async () => {
      const gans = (await pending(runName)).filter((p) => p.activityType === 'trainGan');
      return (
        gans.length === 2 &&
        gans.every((p) => p.attempt === 2 && p.identity.includes(`/${second.child.pid}/`) && p.heartbeatedThisAttempt)
      );
    });
    await killGpuWorker(second);
    const fromSecond = await ganCheckpoints(runName);
    assert.deepEqual(
      fromSecond,
      fromFirst,
      "the second attempt's heartbeats still carry the first attempt's checkpoints (and it made none of its own)",
    );

    startGpuWorker('gpu-third');
    await handle.result();
    const runs = await ganRuns(runName);
    for (const [stage, step] of fromFirst) {
      const run = runs.get(ganLabel(stage))!;
      assert.equal(run.attempt, 3, `${stage}: finished by the third attempt`);
      assert.equal(run.resumedFromStep, step, `${stage}: resumed from the first attempt's step-${step} checkpoint`);
    }
    await stopGpuWorkers();
  },
);

test(
  'the Temporal server stopped and restarted (same SQLite file) in the middle of a run: the run resumes and completes',
  { timeout: 6 * 60_000 },
  async () => {
    startGpuWorker('gpu-c');
    const runName = 'fault-temporal-restart';
    const handle = await launchReproduction({
      client,
      runName,
      config: tinyConfig(40),
      options: FAST_FAILOVER,
      log: () => {},
    });
    await waitFor('a GAN checkpoint recorded by the server', async () => (await ganCheckpoints(runName)).size > 0);
    const before = await handle.describe();
    const held = await ganCheckpoints(runName);
    const { port, dbFile } = { port: Number(temporal.address.split(':').pop()), dbFile: temporal.dbFile };
    await temporal.stop();
    const restartedAt = Date.now();
    temporal = await startTemporalDevServer({ dbFile, port, headless: true });
    const result = await handle.result();
    timings.temporalRestart = `run finished ${((Date.now() - restartedAt) / 1000).toFixed(1)}s after the server came back`;
    assert.equal(result.trials[0]!.evaluations.length, 2);

    // Resumed, not restarted: the same workflow run, ingestion done once, no GAN retrained from scratch.
    assert.equal((await handle.describe()).runId, before.runId);
    const { started: ingests } = await activityEvents(handle, 'ingestDataset');
    assert.equal(ingests.length, 1, 'the dataset was ingested once');
    // A GAN retried after the outage resumed from at least the checkpoint the server held before it.
    const runs = await ganRuns(runName);
    for (const [stage, step] of held) {
      const run = runs.get(ganLabel(stage))!;
      assert.ok(
        run.attempt === 1 || run.resumedFromStep >= step,
        `${stage}: attempt ${run.attempt} resumed from step ${run.resumedFromStep}, the server held step ${step}`,
      );
    }
    await stopGpuWorkers();
  },
);

test(
  'S3 unavailable for a while during a step: the step retries, the run completes, lineage has no duplicate or missing record',
  { timeout: 6 * 60_000 },
  async () => {
    startGpuWorker('gpu-d');
    const runName = 'fault-s3-outage';
    const handle = await launchReproduction({
      client,
      runName,
      config: tinyConfig(60),
      options: FAST_FAILOVER,
      log: () => {},
    });
    await waitFor('GAN training', async () =>
      (await heartbeats(runName)).some((h) => h.stage.includes('GAN') && (h.checkpointStep ?? 0) >= 10),
    );
    await s3.stop();
    const downAt = Date.now();
    // S3 stays down until a step has failed for it and is being retried.
    await waitFor('a step retried while S3 is down', async () => (await pending(runName)).some((p) => p.attempt >= 2));
    const backAt = Date.now();
    s3 = await startLocalS3Server({ directory: path.join(stateDir, 's3'), port: s3.port });
    const result = await handle.result();
    timings.s3Outage = `run finished ${((Date.now() - backAt) / 1000).toFixed(1)}s after S3 came back (${((backAt - downAt) / 1000).toFixed(1)} s outage)`;
    const trialEvents = (await client.workflow.getHandle(`pneumogan-${runName}/trial-1`).fetchHistory()).events ?? [];
    const attempts = trialEvents.flatMap((e) => e.activityTaskStartedEventAttributes?.attempt ?? []);
    assert.ok(
      attempts.some((a) => a >= 2),
      `a step completed on a retry (attempts of the trial's steps: ${attempts.join(', ')})`,
    );

    const indexed = new Set(indexedArtifacts(await readRunIndex(store, runName)).map((e) => e.artifact.sha256));
    const trial = result.trials[0]!;
    const produced = [
      trial.subset,
      trial.pooledSplit!.split,
      ...trial.gans.flatMap((g) => [g.checkpoint, g.samples, g.history, g.synthetic]),
      ...trial.evaluations.flatMap((e) => [e.checkpoint, e.history, e.evaluation]),
    ];
    for (const ref of produced) {
      assert.ok(indexed.has(ref.sha256), `${ref.key} is listed for the run`);
      const records = await readLineage(store, ref.sha256);
      const producers = records.map((r) => `${r.producer.workflowId}/${r.producer.activityId}`);
      assert.ok(records.length >= 1, `${ref.key} has a lineage record`);
      assert.equal(new Set(producers).size, producers.length, `${ref.key} has no duplicate record`);
    }
    const verified = await verifyRun(store, runName);
    assert.deepEqual([verified.corrupt, verified.missing], [[], []]);
    assert.ok(verified.checked > 100, `verified ${verified.checked} artifacts`);
    await stopGpuWorkers();
  },
);

test('an artifact corrupted after a run: verify reports exactly that artifact', async () => {
  const runName = 'fault-s3-outage';
  const entries = indexedArtifacts(await readRunIndex(store, runName)).sort((a, b) =>
    a.artifact.key.localeCompare(b.artifact.key),
  );
  const victim = entries[Math.floor(entries.length / 2)]!;
  const original = await store.getAt(victim.artifact.key);
  await store.putAt(victim.artifact.key, Buffer.concat([original, Buffer.from('tampered')]));
  const verified = await verifyRun(store, runName);
  assert.deepEqual(
    verified.corrupt.map((c) => c.key),
    [victim.artifact.key],
  );
  assert.equal(verified.corrupt[0]!.expected, victim.artifact.sha256);
  assert.deepEqual(verified.missing, []);
  await store.putAt(victim.artifact.key, original);
});

test(
  'two GPU worker processes share a run through the task queue, and match a one-worker run',
  // Two whole runs: generous for a loaded 2-core machine, where one took over 8 minutes.
  { timeout: 15 * 60_000 },
  async () => {
    const config = tinyConfig(30);
    config.classifier.epochs = 1;
    await startGpuWorker('gpu-single').ready;
    const single = await (
      await launchReproduction({
        client,
        runName: 'fault-one-worker',
        config,
        options: { reuse: false },
        log: () => {},
      })
    ).result();
    await stopGpuWorkers();
    for (const name of ['gpu-1-of-2', 'gpu-2-of-2']) {
      const worker = spawnGpuWorkerProcess(
        { temporal: { address: temporal.address, namespace: temporal.namespace }, s3: s3Settings, gpuConcurrency: 1 },
        name,
        () => {},
      );
      gpuWorkers.push(worker);
    }
    // Both poll before the run starts, so each can take one of the two parallel fine-tuning steps.
    await Promise.all(gpuWorkers.map((w) => w.ready));
    const handle = await launchReproduction({
      client,
      runName: 'fault-two-workers',
      config,
      options: { reuse: false },
      log: () => {},
    });
    const pair = await handle.result();
    const trial = client.workflow.getHandle('pneumogan-fault-two-workers/trial-1');
    const identities = new Set(
      (await activityEvents(trial, 'fineTune')).started.map((e) => e.activityTaskStartedEventAttributes?.identity),
    );
    assert.equal(identities.size, 2, `fine-tuning ran on both workers: ${[...identities].join(', ')}`);
    for (const [i, backbone] of pair.trials[0]!.evaluations.entries()) {
      const reference = single.trials[0]!.evaluations[i]!;
      assert.equal(backbone.backbone, reference.backbone);
      assert.deepEqual(
        backbone.metrics.confusion,
        reference.metrics.confusion,
        `${backbone.backbone}: same predictions`,
      );
      assert.ok(Math.abs(backbone.metrics.accuracy - reference.metrics.accuracy) < 1e-9);
    }
    await stopGpuWorkers();
  },
);

test(
  'an identical step is reused, not recomputed, and is listed for the new run; --no-reuse recomputes',
  { timeout: 6 * 60_000 },
  async () => {
    // A step count no other test uses, so the first run cannot reuse their steps.
    const config = tinyConfig(31);
    startGpuWorker('gpu-memo');
    const first = await (await launchReproduction({ client, runName: 'memo-first', config, log: () => {} })).result();
    const startedAt = Date.now();
    // Launched twice at once (two connections, as two CLI processes would): one workflow.
    const secondConnection = await Connection.connect({ address: temporal.address });
    try {
      const otherClient = new Client({ connection: secondConnection, namespace: temporal.namespace });
      await Promise.all(
        [client, otherClient].map((c) =>
          launchReproduction({ client: c, runName: 'memo-again', config, log: () => {} }),
        ),
      );
    } finally {
      await secondConnection.close();
    }
    const reused = await client.workflow.getHandle<typeof reproducePaper>('pneumogan-memo-again').result();
    const executions = [];
    for await (const e of client.workflow.list({ query: `WorkflowId = 'pneumogan-memo-again'` })) executions.push(e);
    assert.equal(executions.length, 1, 'two concurrent launches of one name made one workflow run');
    timings.memoizedRun = `identical run took ${((Date.now() - startedAt) / 1000).toFixed(1)}s with every GPU step reused`;
    const gan = reused.trials[0]!.gans[0]!;
    assert.equal(gan.checkpoint.sha256, first.trials[0]!.gans[0]!.checkpoint.sha256);
    const producers = (await readLineage(store, gan.checkpoint.sha256)).map((r) => r.producer.workflowId);
    assert.ok(producers.includes('pneumogan-memo-first/trial-1'));
    assert.ok(!producers.includes('pneumogan-memo-again/trial-1'), 'the second run did not train the GAN again');
    assert.ok(
      indexedArtifacts(await readRunIndex(store, 'memo-again')).some(
        (e) => e.artifact.sha256 === gan.checkpoint.sha256,
      ),
      'the reused checkpoint is listed for the second run',
    );
    assert.deepEqual((await verifyRun(store, 'memo-again')).corrupt, []);

    const forced = await (
      await launchReproduction({ client, runName: 'memo-forced', config, options: { reuse: false }, log: () => {} })
    ).result();
    // Multi-threaded float sums may differ in the last bits, so the retrained checkpoint need not be byte-identical.
    const recomputed = (await readLineage(store, forced.trials[0]!.gans[0]!.checkpoint.sha256)).map(
      (r) => r.producer.workflowId,
    );
    assert.ok(recomputed.includes('pneumogan-memo-forced/trial-1'), 'reuse: false trained the GAN again');
    await stopGpuWorkers();
  },
);

test(
  'a GPU worker started while S3 is down waits for it (saying so) and then serves; one with bad settings exits at once',
  { timeout: 4 * 60_000 },
  async () => {
    await s3.stop();
    const lines: string[] = [];
    let sawWait = () => {};
    const waiting = new Promise<void>((resolve) => (sawWait = resolve));
    const worker = spawnGpuWorkerProcess(
      { temporal: { address: temporal.address, namespace: temporal.namespace }, s3: s3Settings, gpuConcurrency: 1 },
      'gpu-early',
      (line) => {
        lines.push(line);
        if (line.includes('S3 is not reachable')) sawWait();
      },
    );
    gpuWorkers.push(worker);
    // Before this change the worker logged its failure and then hung, neither ready nor exited.
    await Promise.race([waiting, worker.exited.then(() => assert.fail(`it exited: ${lines.join('\n')}`))]);
    s3 = await startLocalS3Server({ directory: path.join(stateDir, 's3'), port: s3.port });
    await Promise.race([worker.ready, worker.exited.then(() => assert.fail(`it exited: ${lines.join('\n')}`))]);
    await stopGpuWorkers();

    const misconfigured = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'workers', 'gpu.ts')], {
      env: { PATH: process.env.PATH, PNEUMOGAN_ALLOW_CPU: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    for (const stream of [misconfigured.stdout, misconfigured.stderr])
      stream.on('data', (c: Buffer) => (output += c.toString()));
    const [code] = (await once(misconfigured, 'exit')) as [number | null];
    assert.equal(code, 1, output);
    assert.match(output, /PNEUMOGAN_S3_ENDPOINT/);
  },
);
