/**
 * Chaos soak: a reproduction run while its infrastructure is broken on purpose, compared with a
 * calm run of the same config. Two shapes:
 *
 *   demo:    `pneumogan demo` itself, as a user runs it (a child process with its own servers and
 *            supervised GPU workers): a random GPU worker is SIGKILLed every few seconds and the
 *            Temporal dev server is SIGKILLed once (the demo's supervisor restarts both).
 *   workers: separately started pieces (Temporal dev server, S3 server, an orchestration worker,
 *            GPU worker processes restarted by this harness as a service manager would): random
 *            GPU worker kills, the Temporal server stopped and restarted once, S3 stopped once
 *            (until a step has failed for it and is being retried).
 *
 * A run passes when it completes with the calm run's metrics and predictions, `verifyRun` finds
 * nothing corrupt or missing, and every artifact of the run has exactly one lineage record per
 * producing step.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { z } from 'zod';
import { launchReproduction } from '../../cli/launch.js';
import type { TrialResult } from '../../activities/types.js';
import { startEmbeddedInfrastructure } from '../../lib/infra/embedded.js';
import { isSameProcess } from '../../lib/infra/process-identity.js';
import { localS3Settings, startLocalS3Server, type LocalS3Server } from '../../lib/infra/s3-server.js';
import { LOCK_FILENAME, liveHolder } from '../../lib/infra/state-lock.js';
import { startTemporalDevServer, type TemporalDevServer } from '../../lib/infra/temporal-server.js';
import { indexedArtifacts, readLineage, readRunIndex } from '../../lib/lineage.js';
import { verifyProblemCount, verifyRun } from '../../lib/verify.js';
import { reproductionWorkflowId } from '../../lib/run-names.js';
import { ArtifactStore, type S3Settings } from '../../lib/storage.js';
import { resolvePreset } from '../../pipelines/presets.js';
import type { PipelineConfig } from '../../pipelines/schema.js';
import { spawnGpuWorkerProcess, startWorkers } from '../../workers/start-workers.js';
import { superviseProcess } from '../../workers/supervisor.js';
import type { reproducePaper, ReproductionResult } from '../../workflows/index.js';

type Log = (line: string) => void;

const projectRoot = path.resolve(import.meta.dirname, '..', '..');

export interface ChaosOptions {
  config: PipelineConfig;
  /** The calm run of the same config, to compare with. */
  calm: Reference;
  /** Mean seconds between GPU worker kills (default 8). */
  killEverySeconds?: number;
  /** Stop killing after this many GPU worker kills (default: no limit), so a short soak ends. */
  maxKills?: number;
  /** Seeds the choice of victims and intervals, so a failing soak can be replayed. */
  seed?: number;
  log?: Log;
}

export interface Faults {
  gpuWorkerKills: number;
  temporalRestarts: number;
  s3Outages: number;
}

export interface ChaosOutcome {
  runName: string;
  result: ReproductionResult;
  faults: Faults;
  seconds: number;
  /** Problems found by the checks (empty: the run survived with nothing lost or changed). */
  problems: string[];
  /** The steps that completed on a retry, e.g. `trial-1 fineTune (attempt 2)`. */
  retried: string[];
}

type PendingActivity = proto.temporal.api.workflow.v1.IPendingActivityInfo & { workflowId: string };

/** The pending activities of a run's workflows (the run and its trials). */
async function pendingActivities(client: Client, runName: string): Promise<PendingActivity[]> {
  const ids = [reproductionWorkflowId(runName)];
  for await (const e of client.workflow.list({ query: `WorkflowType = 'trial' AND ExecutionStatus = 'Running'` }))
    if (e.workflowId.startsWith(`${ids[0]}/`)) ids.push(e.workflowId);
  const pending: PendingActivity[] = [];
  for (const id of ids) {
    const { raw } = await client.workflow
      .getHandle(id)
      .describe()
      .catch(() => ({ raw: { pendingActivities: [] } }));
    pending.push(...(raw.pendingActivities ?? []).map((a) => ({ ...a, workflowId: id })));
  }
  return pending;
}

/** One attempt of a step, as the server lists it. */
interface StepAttempt {
  workflowId: string;
  activityId: string;
  attempt: number;
}

/** The step attempt each busy worker (by pid) is running, from the pending activities of the run's workflows. */
async function busySteps(client: Client, runName: string): Promise<Map<number, StepAttempt>> {
  const busy = new Map<number, StepAttempt>();
  for (const a of await pendingActivities(client, runName)) {
    // Worker identities are host/pid/role (workers/start-workers.ts).
    const pid = Number(/\/(\d+)\//.exec(a.lastWorkerIdentity ?? '')?.[1]);
    if (a.state === proto.temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED && pid)
      busy.set(pid, { workflowId: a.workflowId, activityId: a.activityId ?? '', attempt: a.attempt ?? 1 });
  }
  return busy;
}

/**
 * Whether a kill interrupted `step`: the server still lists that attempt as started (it learns of
 * the kill only at the heartbeat timeout). A step that finished between the look-up and the kill
 * is gone from the list, and that kill tested nothing: the loops do not count it.
 */
async function stillStarted(client: Client, runName: string, step: StepAttempt): Promise<boolean> {
  return (await pendingActivities(client, runName)).some(
    (a) =>
      a.workflowId === step.workflowId &&
      a.activityId === step.activityId &&
      (a.attempt ?? 1) === step.attempt &&
      a.state === proto.temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
  );
}

/** Whether an attempt of one of the run's steps failed for want of S3 after `since` (epoch ms). */
async function failedForS3(client: Client, runName: string, since: number): Promise<boolean> {
  return (await pendingActivities(client, runName)).some(
    (a) =>
      /ECONNREFUSED|S3/.test(a.lastFailure?.message ?? '') &&
      Number(a.lastAttemptCompleteTime?.seconds ?? 0) * 1000 >= since - 1000,
  );
}

/** The steps of a run's trials that completed on a retry. */
async function retriedSteps(client: Client, result: ReproductionResult): Promise<string[]> {
  const retried: string[] = [];
  for (const trial of result.trials) {
    const events = (await client.workflow.getHandle(trial.workflowId).fetchHistory()).events ?? [];
    const types = new Map<string, string>();
    for (const e of events) {
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled) types.set(String(e.eventId), scheduled.activityType?.name ?? '?');
    }
    for (const e of events) {
      const started = e.activityTaskStartedEventAttributes;
      if (started && (started.attempt ?? 1) > 1)
        retried.push(
          `trial-${trial.trial} ${types.get(String(started.scheduledEventId))} (attempt ${started.attempt})`,
        );
    }
  }
  return retried;
}

/** A small config: one trial, two backbones, every stage of the paper (CI's short soak). */
export function shortChaosConfig(): PipelineConfig {
  const config = resolvePreset('smoke', { kind: 'synthetic', imagesPerClass: 40, seed: 7 });
  config.protocol.trialSeeds = [3];
  config.protocol.evaluations = ['paper'];
  config.gan.steps = 40;
  config.gan.checkpointEvery = 10;
  config.classifier.backbones = ['squeezenet', 'resnet18'];
  config.classifier.epochs = 1;
  return config;
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EvaluationSchema = z.object({ predictions: z.array(z.object({ image: z.string(), predicted: z.unknown() })) });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How often the kill loops look for a busy worker once a kill is due. */
const POLL_MS = 500;

/**
 * When the kills are due: the first within half an interval of the start, each next one
 * (0.5 to 1.5) x `killEverySeconds` after the last kill that interrupted a step. Until a kill
 * lands, the loops look for a busy worker every POLL_MS, so a short run still gets its kills.
 */
function killSchedule(options: ChaosOptions, rand: () => number): { due: () => boolean; landed: () => void } {
  const interval = 1000 * (options.killEverySeconds ?? 8);
  let next = Date.now() + 0.5 * rand() * interval;
  return {
    due: () => Date.now() >= next,
    landed: () => (next = Date.now() + (0.5 + rand()) * interval),
  };
}

/** The embedded default's separately started pieces, for the calm run and the `workers` soak. */
interface Cluster {
  temporal: TemporalDevServer;
  s3: LocalS3Server;
  s3Settings: S3Settings;
  client: Client;
  store: ArtifactStore;
  stop(): Promise<void>;
}

async function startCluster(stateDir: string, log: Log): Promise<Cluster> {
  const temporal = await startTemporalDevServer({ dbFile: path.join(stateDir, 'temporal.sqlite'), headless: true });
  const s3 = await startLocalS3Server({ directory: path.join(stateDir, 's3') });
  const s3Settings: S3Settings = localS3Settings(s3);
  const connection = await Connection.connect({ address: temporal.address });
  const cluster: Cluster = {
    temporal,
    s3,
    s3Settings,
    client: new Client({ connection, namespace: temporal.namespace }),
    store: new ArtifactStore(s3Settings),
    async stop() {
      const steps = [() => connection.close(), () => cluster.temporal.stop(), () => cluster.s3.stop()];
      for (const step of steps) await step().catch((err: unknown) => log(`[chaos] teardown: ${String(err)}`));
    },
  };
  return cluster;
}

export interface Reference {
  result: ReproductionResult;
  /** Predictions of every evaluation, by `trial N protocol/backbone`, as JSON. */
  predictions: Map<string, string>;
}

const evaluationKey = (t: TrialResult, e: TrialResult['evaluations'][number]) =>
  `trial ${t.trial} ${e.protocol}/${e.backbone}`;

async function predictionsOf(store: ArtifactStore, result: ReproductionResult): Promise<Map<string, string>> {
  const predictions = new Map<string, string>();
  for (const trial of result.trials)
    for (const evaluation of trial.evaluations) {
      const { predictions: p } = await store.getJson(evaluation.evaluation, EvaluationSchema);
      predictions.set(evaluationKey(trial, evaluation), JSON.stringify(p));
    }
  return predictions;
}

/** Runs `config` without faults on separately started workers: the reference results. */
export async function calmRun(config: PipelineConfig, log: Log = () => {}): Promise<Reference> {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-calm-'));
  const cluster = await startCluster(stateDir, log);
  const workers = await startWorkers({
    role: 'all-in-one',
    temporal: { address: cluster.temporal.address, namespace: cluster.temporal.namespace },
    s3: cluster.s3Settings,
    gpuConcurrency: 2,
    gpuProcesses: 2,
    log: () => {},
  });
  try {
    const handle = await launchReproduction({ client: cluster.client, runName: 'calm', config, log: () => {} });
    const result = await handle.result();
    return { result, predictions: await predictionsOf(cluster.store, result) };
  } finally {
    await workers.shutdown().catch(() => undefined);
    await cluster.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

/** Soak through separately started pieces; see the module comment. */
export async function chaosOnWorkers(options: ChaosOptions): Promise<ChaosOutcome> {
  const log = options.log ?? (() => {});
  const rand = random(options.seed ?? 1);
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-chaos-workers-'));
  const cluster = await startCluster(stateDir, log);
  const faults: Faults = { gpuWorkerKills: 0, temporalRestarts: 0, s3Outages: 0 };
  const orchestration = await startWorkers({
    role: 'orchestration',
    temporal: { address: cluster.temporal.address, namespace: cluster.temporal.namespace },
    s3: cluster.s3Settings,
    log: () => {},
  });
  const gpu = ['gpu-worker A', 'gpu-worker B'].map((name) =>
    superviseProcess(
      () =>
        spawnGpuWorkerProcess(
          {
            temporal: { address: cluster.temporal.address, namespace: cluster.temporal.namespace },
            s3: cluster.s3Settings,
            gpuConcurrency: 2,
          },
          name,
          () => {},
        ),
      name,
      log,
    ),
  );
  const runName = `chaos-workers-${Date.now()}`;
  const started = Date.now();
  try {
    const handle = await launchReproduction({
      client: cluster.client,
      runName,
      config: options.config,
      options: { heartbeatTimeoutSeconds: 5, reuse: false },
      log: () => {},
    });
    let finished = false;
    const result = handle.result().finally(() => (finished = true));
    result.catch(() => undefined);
    const faultsDone = (async () => {
      let kills = 0;
      const schedule = killSchedule(options, rand);
      while (!finished) {
        await Promise.race([sleep(POLL_MS), result.catch(() => undefined)]);
        if (finished) return;
        if (faults.gpuWorkerKills >= (options.maxKills ?? Infinity) || !schedule.due()) continue;
        // Only a worker that is running a step: killing an idle or starting one tests nothing new.
        const busy = await busySteps(cluster.client, runName).catch(() => new Map<number, StepAttempt>());
        const candidates = gpu.filter((g) => g.current?.child.pid !== undefined && busy.has(g.current.child.pid));
        const victim = candidates[Math.floor(rand() * candidates.length)];
        const proc = victim?.current;
        if (!victim || !proc?.child.pid) continue;
        process.kill(proc.child.pid, 'SIGKILL');
        if (!(await stillStarted(cluster.client, runName, busy.get(proc.child.pid)!).catch(() => true))) {
          log(`[chaos] killed ${victim.name} (pid ${proc.child.pid}) after its step had finished: not counted`);
          continue;
        }
        faults.gpuWorkerKills++;
        kills++;
        schedule.landed();
        log(`[chaos] killed ${victim.name} (pid ${proc.child.pid})`);
        if (kills === 1) {
          const port = Number(cluster.temporal.address.split(':').pop());
          await cluster.temporal.stop();
          cluster.temporal = await startTemporalDevServer({ dbFile: cluster.temporal.dbFile, port, headless: true });
          faults.temporalRestarts++;
          log('[chaos] restarted the Temporal server');
        }
        if (kills === 2) {
          await cluster.s3.stop();
          const downAt = Date.now();
          // Down until an attempt of a step has failed for it (or at most 60 s).
          let stepFailed = false;
          while (!finished && !stepFailed && Date.now() - downAt < 60_000) {
            stepFailed = await failedForS3(cluster.client, runName, downAt).catch(() => false);
            if (!stepFailed) await sleep(250);
          }
          cluster.s3 = await startLocalS3Server({ directory: path.join(stateDir, 's3'), port: cluster.s3.port });
          faults.s3Outages++;
          log(
            `[chaos] S3 was down for ${((Date.now() - downAt) / 1000).toFixed(1)} s ` +
              (stepFailed ? '(until a step failed for it)' : '(no step failed for it)'),
          );
        }
      }
    })();
    const outcome = await result;
    await faultsDone;
    const seconds = (Date.now() - started) / 1000;
    const problems = await checkRun(cluster.store, runName, outcome, options.calm);
    return {
      runName,
      result: outcome,
      faults,
      seconds,
      problems,
      retried: await retriedSteps(cluster.client, outcome),
    };
  } finally {
    await Promise.all(gpu.map((g) => g.stop()));
    await orchestration.shutdown().catch(() => undefined);
    await cluster.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

/** Soak through `pneumogan demo` itself; see the module comment. */
export async function chaosOnDemo(options: ChaosOptions): Promise<ChaosOutcome> {
  const log = options.log ?? (() => {});
  const rand = random(options.seed ?? 2);
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-chaos-demo-'));
  const configFile = path.join(stateDir, 'config.json');
  await writeFile(configFile, JSON.stringify(options.config));
  const runName = `chaos-demo-${Date.now()}`;
  const faults: Faults = { gpuWorkerKills: 0, temporalRestarts: 0, s3Outages: 0 };
  const started = Date.now();
  const demo = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(projectRoot, 'cli', 'pneumogan.ts'),
      'demo',
      ...['--config', configFile, '--run', runName, '--state-dir', stateDir, '--out', path.join(stateDir, 'out')],
      ...['--no-reuse', '--heartbeat-timeout', '5'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  for (const stream of [demo.stdout, demo.stderr]) stream.on('data', (c: Buffer) => output.push(c.toString()));
  const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)));
  let running = true;
  void exited.then(() => (running = false));
  let connection: Connection | undefined;
  let client: Client | undefined;
  try {
    const lockFile = path.join(stateDir, LOCK_FILENAME);
    const schedule = killSchedule(options, rand);
    while (running) {
      await Promise.race([sleep(POLL_MS), exited]);
      if (faults.gpuWorkerKills >= (options.maxKills ?? Infinity) || !schedule.due()) continue;
      const holder = running ? await liveHolder(stateDir).catch(() => undefined) : undefined;
      if (!holder) continue;
      // Only workers that run a step of the run: killing an idle or starting one tests nothing new.
      if (!client && holder.endpoints) {
        connection = await Connection.connect({ address: holder.endpoints.temporal.address });
        client = new Client({ connection, namespace: holder.endpoints.temporal.namespace });
      }
      const busy = client
        ? await busySteps(client, runName).catch(() => new Map<number, StepAttempt>())
        : new Map<number, StepAttempt>();
      const candidates = Object.entries(holder.children).filter(
        ([name, child]) => name.startsWith('gpu-worker') && child.ready && busy.has(child.pid),
      );
      if (candidates.length === 0) continue;
      const [name, identity] = candidates[Math.floor(rand() * candidates.length)]!;
      if (!(await isSameProcess(identity))) continue;
      process.kill(identity.pid, 'SIGKILL');
      if (!(await stillStarted(client!, runName, busy.get(identity.pid)!).catch(() => true))) {
        log(`[chaos] killed the demo's ${name} (pid ${identity.pid}) after its step had finished: not counted`);
        continue;
      }
      faults.gpuWorkerKills++;
      schedule.landed();
      log(`[chaos] killed the demo's ${name} (pid ${identity.pid})`);
      const server = holder.children['temporal dev server'];
      if (faults.gpuWorkerKills === 2 && server && (await isSameProcess(server))) {
        process.kill(server.pid, 'SIGKILL');
        faults.temporalRestarts++;
        log(`[chaos] killed the demo's Temporal dev server (pid ${server.pid}) (lock: ${lockFile})`);
      }
    }
    const code = await exited;
    // Every call it made has been awaited, so closing it cannot strand a retry.
    await connection?.close();
    if (code !== 0) throw new Error(`the demo exited with code ${code}; its output:\n${output.join('').slice(-4000)}`);
    const seconds = (Date.now() - started) / 1000;
    // Read the finished run through the state directory, as `pneumogan status` would.
    const infra = await startEmbeddedInfrastructure({
      stateDir,
      owner: { role: 'inspect', command: 'chaos soak check' },
      temporal: { headless: true },
    });
    try {
      const connection = await Connection.connect({ address: infra.temporal.address });
      try {
        const client = new Client({ connection, namespace: infra.temporal.namespace });
        const result = await client.workflow.getHandle<typeof reproducePaper>(reproductionWorkflowId(runName)).result();
        const store = new ArtifactStore(localS3Settings(infra.s3));
        const problems = await checkRun(store, runName, result, options.calm);
        return { runName, result, faults, seconds, problems, retried: await retriedSteps(client, result) };
      } finally {
        await connection.close();
      }
    } finally {
      await infra.stop();
    }
  } finally {
    if (running) demo.kill('SIGKILL');
    await exited;
    await rm(stateDir, { recursive: true, force: true });
  }
}

/**
 * What differs from the calm run, and what verify and lineage find wrong; empty when the run
 * survived intact.
 */
export async function checkRun(
  store: ArtifactStore,
  runName: string,
  result: ReproductionResult,
  calm: Reference,
): Promise<string[]> {
  const problems: string[] = [];
  const reference = new Map(
    calm.result.trials.flatMap((t) => t.evaluations.map((e) => [evaluationKey(t, e), e] as const)),
  );
  const predictions = await predictionsOf(store, result);
  for (const trial of result.trials) {
    for (const evaluation of trial.evaluations) {
      const key = evaluationKey(trial, evaluation);
      const want = reference.get(key);
      if (!want) {
        problems.push(`${key}: not in the calm run`);
        continue;
      }
      if (JSON.stringify(evaluation.metrics) !== JSON.stringify(want.metrics))
        problems.push(
          `${key}: metrics differ from the calm run (accuracy ${evaluation.metrics.accuracy} vs ${want.metrics.accuracy})`,
        );
      if (predictions.get(key) !== calm.predictions.get(key))
        problems.push(`${key}: predictions differ from the calm run`);
    }
  }
  if (predictions.size !== calm.predictions.size)
    problems.push(`${predictions.size} evaluations, the calm run has ${calm.predictions.size}`);
  const verified = await verifyRun(store, runName);
  if (verifyProblemCount(verified))
    problems.push(`verify: ${verifyProblemCount(verified)} problem(s): ${JSON.stringify(verified)}`);
  if (verified.checked === 0) problems.push('verify: no artifacts recorded for the run');
  for (const { artifact } of indexedArtifacts(await readRunIndex(store, runName))) {
    const records = await readLineage(store, artifact);
    const producers = records.map((r) => `${r.producer.workflowId}/${r.producer.activityId}`);
    if (records.length === 0) problems.push(`lineage: no record for ${artifact.key}`);
    if (new Set(producers).size !== producers.length) problems.push(`lineage: a doubled record for ${artifact.key}`);
  }
  return problems;
}
