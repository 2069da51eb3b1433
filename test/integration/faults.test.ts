/**
 * Breaking things on purpose: a GPU worker killed mid-training, the Temporal server restarted
 * mid-run, S3 unavailable mid-step, an artifact corrupted after a run, and two GPU workers on
 * one run. Real Temporal dev server, real S3 server, real worker processes.
 */
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { launchReproduction } from '../../cli/launch.js';
import { startLocalS3Server, type LocalS3Server } from '../../lib/infra/s3-server.js';
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
} from '../../workers/runtime.js';
import type { RunOptions } from '../../workflows/index.js';

let stateDir: string;
let temporal: TemporalDevServer;
let s3: LocalS3Server;
let s3Settings: S3Settings;
let orchestration: RunningWorkers;
let connection: Connection;
let client: Client;
let store: ArtifactStore;
const gpuWorkers: GpuWorkerProcess[] = [];
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
  s3Settings = {
    endpoint: s3.endpoint,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    bucket: 'pneumogan',
    region: s3.region,
  };
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
  await stopGpuWorkers();
  await connection?.close();
  await orchestration?.shutdown();
  await temporal?.stop();
  await s3?.stop();
  await rm(stateDir, { recursive: true, force: true });
  console.log(`recovery timings: ${JSON.stringify(timings)}`);
});

interface Heartbeat {
  stage: string;
  done: number;
  total: number;
  checkpointStep?: number;
}

/** Heartbeat details of the trial's running activities. */
async function heartbeats(runName: string): Promise<Heartbeat[]> {
  const { raw } = await client.workflow
    .getHandle(`pneumogan-${runName}/trial-1`)
    .describe()
    .catch(() => ({ raw: { pendingActivities: [] } }));
  return (raw.pendingActivities ?? []).flatMap((a) => {
    const payload = a.heartbeatDetails?.payloads?.[0];
    return payload ? [defaultPayloadConverter.fromPayload<Heartbeat>(payload)] : [];
  });
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
  return { started, completed };
}

test(
  'a GPU worker killed in the middle of DCGAN training: a new worker resumes from the checkpoint',
  { timeout: 6 * 60_000 },
  async () => {
    startGpuWorker('gpu-a');
    const runName = 'fault-kill-worker';
    const handle = await launchReproduction({
      client,
      runName,
      config: tinyConfig(120),
      options: FAST_FAILOVER,
      log: () => {},
    });
    await waitFor('a GAN checkpoint at step >= 30', async () =>
      (await heartbeats(runName)).some((h) => h.stage.includes('GAN') && (h.checkpointStep ?? 0) >= 30),
    );
    const killedAt = Date.now();
    gpuWorkers[0]!.child.kill('SIGKILL');
    await gpuWorkers[0]!.exited.catch(() => undefined);
    gpuWorkers.splice(0);
    startGpuWorker('gpu-b');
    const result = await handle.result();
    timings.killWorker = `run finished ${((Date.now() - killedAt) / 1000).toFixed(1)}s after the kill`;

    const trial = client.workflow.getHandle(`pneumogan-${runName}/trial-1`);
    const { started, completed } = await activityEvents(trial, 'trainGan');
    assert.equal(completed.length, 2, 'each GAN produced its result exactly once');
    const retried = started.filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1);
    assert.ok(retried.length >= 1, 'the killed training was retried');
    const restartedAfter =
      Math.min(
        ...retried.map((e) => Number(e.eventTime!.seconds) * 1000 + Math.floor((e.eventTime!.nanos ?? 0) / 1e6)),
      ) - killedAt;
    timings.killWorkerReschedule = `retry started ${(restartedAfter / 1000).toFixed(1)}s after the kill`;
    const outputs = completed.map((e) =>
      defaultPayloadConverter.fromPayload<{ resumedFromStep: number }>(
        e.activityTaskCompletedEventAttributes!.result!.payloads![0]!,
      ),
    );
    assert.ok(
      outputs.some((o) => o.resumedFromStep >= 30),
      `a GAN resumed from its checkpoint (resumed at ${outputs.map((o) => o.resumedFromStep).join(',')})`,
    );
    assert.equal(result.trials[0]!.gans.length, 2);
    for (const gan of result.trials[0]!.gans) {
      assert.equal(
        (await readLineage(store, gan.checkpoint.sha256)).length,
        1,
        'one lineage record per final GAN checkpoint',
      );
    }
    await stopGpuWorkers();
  },
);

test(
  'the Temporal server stopped and restarted (same SQLite file) in the middle of a run: the run completes',
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
    await waitFor('GAN training', async () =>
      (await heartbeats(runName)).some((h) => h.stage.includes('GAN') && h.done > 5),
    );
    const { port, dbFile } = { port: Number(temporal.address.split(':').pop()), dbFile: temporal.dbFile };
    await temporal.stop();
    await sleep(3000);
    const restartedAt = Date.now();
    temporal = await startTemporalDevServer({ dbFile, port, headless: true });
    const result = await handle.result();
    timings.temporalRestart = `run finished ${((Date.now() - restartedAt) / 1000).toFixed(1)}s after the server came back`;
    assert.equal(result.trials[0]!.evaluations.length, 2);
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
    await sleep(8000);
    const backAt = Date.now();
    s3 = await startLocalS3Server({ directory: path.join(stateDir, 's3'), port: s3.port });
    const result = await handle.result();
    timings.s3Outage = `run finished ${((Date.now() - backAt) / 1000).toFixed(1)}s after S3 came back (8 s outage)`;

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
  { timeout: 8 * 60_000 },
  async () => {
    const config = tinyConfig(30);
    startGpuWorker('gpu-single');
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
    const reused = await (await launchReproduction({ client, runName: 'memo-again', config, log: () => {} })).result();
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
