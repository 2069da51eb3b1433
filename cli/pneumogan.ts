#!/usr/bin/env -S npx tsx
/**
 * pneumogan: run and inspect reproductions of Khalifa et al. (2020).
 *
 *   demo  embedded default: local Temporal dev server + local S3 + in-process workers
 *   run   against a running Temporal cluster and MinIO/S3 (workers started separately)
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { ActivityFailure, ChildWorkflowFailure } from '@temporalio/common';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { stringify as stringifyYaml } from 'yaml';
import { InputError } from '../lib/errors.js';
import { startEmbeddedInfrastructure } from '../lib/infra/embedded.js';
import { localS3Settings } from '../lib/infra/s3-server.js';
import { StateDirBusyError } from '../lib/infra/state-lock.js';
import { TemporalDbInUseError } from '../lib/infra/temporal-server.js';
import {
  connectionOptions,
  s3Settings,
  taskQueueSettings,
  temporalSettings,
  type TaskQueues,
} from '../lib/settings.js';
import { ArtifactStore, assertSafeRunName } from '../lib/storage.js';
import { presetNames } from '../pipelines/presets.js';
import { resolveConfig, type ConfigSources } from '../pipelines/resolve.js';
import { ConfigError, type DataSource, type PipelineConfig } from '../pipelines/schema.js';
import type { reproducePaper } from '../workflows/index.js';
import { verifyProblemCount, verifyRun, type VerifyResult } from '../lib/verify.js';
import { reproductionWorkflowId } from '../lib/run-names.js';
import { quietTemporalLogs } from '../workers/main.js';
import { SHUTDOWN_GRACE, startWorkers } from '../workers/start-workers.js';
import { withServices } from './services.js';
import { exitCodeFor, isInfrastructureDown, NotFoundError } from './exit-codes.js';
import { artifactLineage, listRuns, runArtifacts, runStatus } from './inspect-data.js';
import { lineageReport, resolveArtifact, runArtifactsReport, statusReport, trialAccuracies } from './inspect.js';
import { barDisplay, downloadReport, followReproduction, launchReproduction, lineDisplay } from './launch.js';

const log = (line: string) => console.log(line);

function parseDataOption(value: string): DataSource {
  if (value.startsWith('s3://')) {
    const [bucket, ...rest] = value.slice('s3://'.length).split('/');
    if (!bucket) throw new InvalidArgumentError('an S3 data source looks like s3://bucket/prefix');
    return { kind: 's3', bucket, prefix: rest.join('/') };
  }
  const folder = path.resolve(value);
  if (!existsSync(folder)) {
    throw new InvalidArgumentError(
      `no folder at ${folder}. Point --data at the chest_xray archive (or a folder with NORMAL/ and PNEUMONIA/); ` +
        'the 366-image Kermany sample exists only beside CI checkouts, at ../shared/data/kermany-sample. Leave --data out to use synthetic X-rays.',
    );
  }
  return { kind: 'folder', path: folder };
}

function defaultRunName(preset: string): string {
  return `${preset}-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-')}`;
}

const runNameOption = new Option('--run <name>', 'run name; the same name attaches to (or resumes) that run').argParser(
  (v) => {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v))
      throw new InvalidArgumentError('use letters, digits, ".", "_" and "-"');
    return v;
  },
);
const presetOption = new Option('--preset <name>', "pipeline preset (default: the config file's, else smoke)").choices(
  presetNames(),
);
const configOption = new Option(
  '--config <file>',
  'JSON or YAML file with any part of the configuration, over the preset',
);
const setOption = new Option(
  '--set <key.path=value>',
  'override one field, e.g. --set classifier.epochs=2 (repeatable, applied last; =null removes a field)',
).argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
const dataOption = new Option(
  '--data <path>',
  'real dataset: a chest_xray folder (or one with NORMAL/ and PNEUMONIA/), or s3://bucket/prefix; default: synthetic X-rays',
).argParser(parseDataOption);
const outOption = new Option('--out <dir>', 'where the report is downloaded').default('runs');
const noReuseOption = new Option(
  '--no-reuse',
  'recompute every step, even those whose identical inputs already completed',
);
const heartbeatOption = new Option(
  '--heartbeat-timeout <seconds>',
  'seconds without a heartbeat before a GPU step is retried on another worker',
)
  .default(60)
  .argParser((v) => {
    const seconds = Number(v);
    if (!Number.isInteger(seconds) || seconds < 1) throw new InvalidArgumentError('a whole number of seconds');
    return seconds;
  });
const detachOption = new Option('--detach', 'start the run and return without following it');
const jsonOption = new Option('--json', 'print the result as JSON (for scripts)');

function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}
const stateDirOption = new Option(
  '--state-dir <dir>',
  'embedded Temporal SQLite and S3 data (used unless TEMPORAL_ADDRESS, a Temporal profile or PNEUMOGAN_S3_ENDPOINT name a cluster)',
).default('.pneumogan');

interface ConfigCliOptions {
  preset?: string;
  config?: string;
  data?: DataSource;
  set?: string[];
}

const configSources = (opts: ConfigCliOptions): ConfigSources => ({
  preset: opts.preset,
  file: opts.config,
  data: opts.data,
  sets: opts.set,
});

interface LaunchCliOptions extends ConfigCliOptions {
  run?: string;
  out: string;
  reuse: boolean;
  heartbeatTimeout: number;
  detach?: boolean;
}

async function reproduce(
  client: Client,
  store: ArtifactStore,
  config: PipelineConfig,
  opts: LaunchCliOptions,
  taskQueues: TaskQueues,
  uiUrl?: string,
): Promise<void> {
  const runName = opts.run ?? defaultRunName(config.preset);
  const source = config.data.source;
  log(
    `[run] ${runName}: preset ${config.preset}, ${config.protocol.trialSeeds.length} trials, backbones ${config.classifier.backbones.join(', ')}, data ${source.kind === 'folder' ? source.path : source.kind === 's3' ? `s3://${source.bucket}/${source.prefix}` : 'synthetic X-rays'}`,
  );
  const handle = await launchReproduction({
    client,
    runName,
    config,
    options: { reuse: opts.reuse, heartbeatTimeoutSeconds: opts.heartbeatTimeout },
    taskQueues,
    log,
  });
  if (uiUrl)
    log(
      `[run] Temporal UI: ${uiUrl}/namespaces/${client.options.namespace}/workflows/${encodeURIComponent(handle.workflowId)}`,
    );
  if (opts.detach) {
    log(`[run] started; follow it with: pneumogan follow ${runName}`);
    return;
  }
  await followAndReport(client, store, runName, opts.out);
}

async function followAndReport(client: Client, store: ArtifactStore, runName: string, out: string): Promise<void> {
  const handle = client.workflow.getHandle<typeof reproducePaper>(reproductionWorkflowId(runName));
  const started = Date.now();
  const result = await followReproduction(client, handle, process.stdout.isTTY ? barDisplay() : lineDisplay(log));
  const reportPath = await downloadReport(store, runName, out);
  log(`[run] finished in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  for (const trial of result.trials) {
    log(`[run] trial ${trial.trial}: ${trialAccuracies(trial)}`);
  }
  log(`[run] report: ${reportPath}`);
}

/** The options `demo` and `run` share: which run, its configuration, and how it runs. */
function addLaunchOptions(command: Command): Command {
  for (const option of [
    runNameOption,
    presetOption,
    configOption,
    setOption,
    dataOption,
    outOption,
    noReuseOption,
    heartbeatOption,
  ])
    command.addOption(option);
  return command;
}

const program = new Command('pneumogan')
  .description(
    'Durable, resumable, auditable reproduction of Khalifa et al. (2020): DCGAN + fine-tuned CNNs for pneumonia on chest X-rays',
  )
  .showHelpAfterError()
  // Throw instead of exiting, so usage errors get the bad-input exit code (cli/exit-codes.ts).
  .exitOverride();

addLaunchOptions(
  program
    .command('demo')
    .description(
      'run a reproduction on the embedded default: local Temporal dev server, local S3 server and local workers (orchestration in this process, GPU workers as supervised child processes), with state in --state-dir. Ctrl-C stops it within seconds, keeping the state; rerun with the same --run to resume (also after a crash)',
    ),
)
  .option('--state-dir <dir>', 'Temporal SQLite and S3 data', '.pneumogan')
  .action(async (opts: LaunchCliOptions & { stateDir: string }) => {
    // A bad configuration fails before any server starts.
    const config = await resolveConfig(configSources(opts));
    const runName = (opts.run ??= defaultRunName(config.preset));
    const interrupted = new AbortController();
    const onSignal = (signal: NodeJS.Signals) => {
      if (!interrupted.signal.aborted) {
        log(
          `[demo] ${signal}: stopping (running steps get ${SHUTDOWN_GRACE} to finish, then the servers stop; state stays in ${path.resolve(opts.stateDir)}). Press Ctrl-C again to stop at once.`,
        );
        interrupted.abort(new DemoInterrupted(signal));
      } else {
        log(`[demo] ${signal} again: stopping at once`);
        process.exit(130); // the 'exit' hooks kill the worker processes and stop the server
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const stoppedBy = new Promise<never>((_, reject) =>
      interrupted.signal.addEventListener('abort', () => reject(interrupted.signal.reason as Error), { once: true }),
    );
    stoppedBy.catch(() => undefined);
    const startedAt = Date.now();
    const taskQueues = taskQueueSettings();
    let infra: Awaited<ReturnType<typeof startEmbeddedInfrastructure>> | undefined;
    let workers: Awaited<ReturnType<typeof startWorkers>> | undefined;
    const body = async () => {
      infra = await Promise.race([
        startEmbeddedInfrastructure({
          stateDir: opts.stateDir,
          log,
          owner: { role: 'demo', command: `pneumogan demo --run ${runName}`, run: runName },
          superviseTemporal: true,
        }),
        stoppedBy,
      ]);
      const s3 = localS3Settings(infra.s3);
      const lock = infra.lock;
      // Installed only now: once installed, the SDK's runtime keeps the process alive until its workers stop.
      quietTemporalLogs({ handleSignals: false });
      workers = await startWorkers({
        role: 'all-in-one',
        temporal: { address: infra.temporal.address, namespace: infra.temporal.namespace },
        s3,
        // One step per process: tfjs-node runs each op synchronously on the JS thread, so a second
        // step in the same process gains no compute and, while one trains, gets one event-loop turn
        // per training step: loading its 463 images took minutes and hit the heartbeat timeout.
        gpuConcurrency: 1,
        gpuProcesses: 2,
        taskQueues,
        log,
        onGpuProcess: (name, event) => void (event === 'ready' ? lock.setChildReady(name) : lock.setChild(name, event)),
      });
      const connection = await Connection.connect({ address: infra.temporal.address });
      let followed = false;
      try {
        const client = new Client({ connection, namespace: infra.temporal.namespace });
        // The run ends the demo, and so does whatever makes finishing it impossible.
        const workersEnded = workers.done.then(() => {
          throw new Error('the workers stopped before the run finished');
        });
        const serverLost = infra.fatal.then((err) => {
          throw err;
        });
        for (const p of [workersEnded, serverLost]) p.catch(() => undefined);
        await Promise.race([
          reproduce(client, new ArtifactStore(s3), config, opts, taskQueues, infra.temporal.uiUrl || undefined).finally(
            () => (followed = true),
          ),
          stoppedBy,
          workersEnded,
          serverLost,
        ]);
      } finally {
        // Until the follow loop has ended it has calls in flight, and the client's retry timers
        // throw on a closed channel ("Channel has been shut down"); the process exits instead.
        if (followed) await connection.close();
      }
    };
    let failure: unknown;
    try {
      await body();
    } catch (err) {
      if (!(err instanceof DemoInterrupted)) failure = err;
    } finally {
      await workers?.shutdown().catch((err: unknown) => log(`[demo] stopping the workers: ${String(err)}`));
      await infra?.stop();
    }
    if (failure !== undefined) {
      // Exit now: a follow loop cut short still holds client calls that would keep the process alive.
      console.error(`pneumogan: ${explain(failure)}`);
      process.exit(1);
    }
    if (interrupted.signal.aborted) {
      log(
        `[demo] stopped ${((Date.now() - startedAt) / 1000).toFixed(1)} s after start; resume with: npm run demo -- --run ${runName}${opts.stateDir === '.pneumogan' ? '' : ` --state-dir ${opts.stateDir}`}`,
      );
      process.exit(130);
    }
  });

/** The demo was asked to stop (Ctrl-C or SIGTERM): not a failure, the run resumes on relaunch. */
class DemoInterrupted extends Error {
  override name = 'DemoInterrupted';
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

addLaunchOptions(
  program
    .command('run')
    .description(
      'start (or attach to) a reproduction on the Temporal cluster (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS, profiles) and S3 (PNEUMOGAN_S3_*), on the task queues PNEUMOGAN_TASK_QUEUE / PNEUMOGAN_GPU_TASK_QUEUE name (workers run separately: workers/orchestration.ts, workers/gpu.ts)',
    ),
)
  .addOption(detachOption)
  .option('--ui <url>', "Temporal Web UI base URL, to print the run's link")
  .action(async (opts: LaunchCliOptions & { ui?: string }) => {
    const config = await resolveConfig(configSources(opts));
    const temporal = temporalSettings();
    const connection = await Connection.connect(connectionOptions(temporal));
    try {
      await reproduce(
        new Client({ connection, namespace: temporal.namespace }),
        new ArtifactStore(s3Settings()),
        config,
        opts,
        taskQueueSettings(),
        opts.ui,
      );
    } finally {
      await connection.close();
    }
  });

program
  .command('config')
  .description(
    'print the effective, validated configuration of a preset + config file + --data + --set overrides (what run and demo would launch)',
  )
  .addOption(presetOption)
  .addOption(configOption)
  .addOption(setOption)
  .addOption(dataOption)
  .option('--yaml', 'print YAML instead of JSON')
  .action(async (opts: ConfigCliOptions & { yaml?: boolean }) => {
    const config = await resolveConfig(configSources(opts));
    log(opts.yaml ? stringifyYaml(config).trimEnd() : JSON.stringify(config, null, 2));
  });

program
  .command('follow')
  .description('follow a running reproduction until it ends, then download its report')
  .argument('<run>', 'run name')
  .addOption(outOption)
  .addOption(stateDirOption)
  .action((run: string, opts: { out: string; stateDir: string }) =>
    withServices(opts.stateDir, ({ client, store }) => followAndReport(client, store, run, opts.out)),
  );

program
  .command('status')
  .description('show each stage of a run and its trials: state, time, result, and the attempts of running steps')
  .argument('<run>', 'run name')
  .addOption(stateDirOption)
  .addOption(jsonOption)
  .action((run: string, opts: { stateDir: string; json?: boolean }) =>
    withServices(opts.stateDir, async ({ client }) => {
      if (opts.json) return printJson(await runStatus(client, run));
      for (const line of await statusReport(client, run)) log(line);
    }),
  );

program
  .command('list')
  .description('list reproductions, newest first; filter by preset, stage or dataset (search attributes)')
  .addOption(stateDirOption)
  .option('--preset <name>', 'only runs of this preset')
  .option('--stage <stage>', 'only runs at this stage: ingesting, training, reporting, completed, failed, cancelled')
  .option('--dataset <sha256>', "only runs on this dataset (its manifest's sha256)")
  .addOption(jsonOption)
  .action((opts: { stateDir: string; preset?: string; stage?: string; dataset?: string; json?: boolean }) =>
    withServices(opts.stateDir, async ({ client }) => {
      const runs = await listRuns(client, { preset: opts.preset, stage: opts.stage, datasetSha256: opts.dataset });
      if (opts.json) return printJson(runs);
      for (const r of runs) {
        log(
          `${r.run.padEnd(32)} ${r.status.padEnd(11)} ${(r.stage ?? '').padEnd(10)} ${(r.preset ?? '').padEnd(8)} started ${r.startTime}${r.closeTime ? `  closed ${r.closeTime}` : ''}`,
        );
      }
    }),
  );

program
  .command('cancel')
  .description('cancel a running reproduction (running steps are told to stop; completed artifacts stay)')
  .argument('<run>', 'run name')
  .addOption(stateDirOption)
  .action((run: string, opts: { stateDir: string }) =>
    withServices(opts.stateDir, async ({ client }) => {
      await client.workflow.getHandle(reproductionWorkflowId(run)).cancel();
      log(`cancellation of ${run} requested`);
    }),
  );

program
  .command('lineage')
  .description(
    'trace an artifact (sha256, a prefix of at least 8 hex digits, or its S3 key) back to its sources and the run that made it',
  )
  .argument('<artifact>', 'sha256, sha256 prefix or key')
  .addOption(stateDirOption)
  .addOption(jsonOption)
  .action((artifact: string, opts: { stateDir: string; json?: boolean }) =>
    withServices(opts.stateDir, async ({ store }) => {
      const sha256 = await resolveArtifact(store, artifact);
      if (opts.json) return printJson(await artifactLineage(store, sha256));
      for (const line of await lineageReport(store, sha256)) log(line);
    }),
  );

program
  .command('artifacts')
  .description('list every artifact a run produced or reused, by kind')
  .argument('<run>', 'run name')
  .addOption(stateDirOption)
  .addOption(jsonOption)
  .action((run: string, opts: { stateDir: string; json?: boolean }) =>
    withServices(opts.stateDir, async ({ store }) => {
      assertSafeRunName(run);
      if (opts.json) return printJson(await runArtifacts(store, run));
      for (const line of await runArtifactsReport(store, run)) log(line);
    }),
  );

/** `pneumogan verify` exit codes (README, "Inspecting runs"). */
const VERIFY_EXIT = { clean: 0, problems: 1, unverifiable: 2 } as const;

function verifyLines(run: string, result: VerifyResult): string[] {
  return [
    ...result.corrupt.map((c) => `CORRUPT ${c.kind} ${c.key}: expected sha256 ${c.expected}, found ${c.actual}`),
    ...result.missing.map((m) => `MISSING ${m.kind} ${m.key} (referenced by ${m.referencedBy.join('; ')})`),
    ...result.garbled.map((g) => `GARBLED ${g.key}: ${g.problem}`),
    ...result.inconsistent.map((i) => `INCONSISTENT ${i.key}: ${i.problem}`),
    `${run}: ${result.checked} artifacts re-hashed, ${result.records} records cross-checked; ${result.corrupt.length} corrupt, ${result.missing.length} missing, ${result.garbled.length} garbled, ${result.inconsistent.length} inconsistent`,
  ];
}

program
  .command('verify')
  .description(
    'cross-check a run: re-hash every artifact its index, lineage records, results and image sets name, and check the report (exit 0 clean, 1 problems found, 2 could not verify)',
  )
  .argument('<run>', 'run name')
  .option('--json', 'print the findings as one JSON object')
  .addOption(stateDirOption)
  .action(async (run: string, opts: { stateDir: string; json?: boolean }) => {
    try {
      await withServices(opts.stateDir, async ({ store }) => {
        const abort = new AbortController();
        const onSigint = () => abort.abort(new Error('verify interrupted (Ctrl-C)'));
        process.once('SIGINT', onSigint);
        let lastShown = 0;
        try {
          const result = await verifyRun(store, run, {
            signal: abort.signal,
            onProgress: (done, total) => {
              if (process.stderr.isTTY && (Date.now() - lastShown > 500 || done === total)) {
                lastShown = Date.now();
                process.stderr.write(`\rverifying ${run}: ${done}/${total} artifacts`);
                if (done === total) process.stderr.write('\n');
              }
            },
          });
          if (result.records === 0 && result.garbled.length === 0)
            throw new InputError(`Run ${run} has no recorded artifacts (is the name right? see \`pneumogan list\`)`);
          if (opts.json) log(JSON.stringify({ run, ...result, problems: verifyProblemCount(result) }, null, 2));
          else for (const line of verifyLines(run, result)) log(line);
          process.exitCode = verifyProblemCount(result) ? VERIFY_EXIT.problems : VERIFY_EXIT.clean;
        } finally {
          process.off('SIGINT', onSigint);
        }
      });
    } catch (err) {
      console.error(`pneumogan: ${explain(err)}`);
      process.exitCode = VERIFY_EXIT.unverifiable;
    }
  });

program
  .command('report')
  .description("download a finished run's report (Markdown, JSON summary, figures) and print its path")
  .argument('<run>', 'run name')
  .addOption(outOption)
  .addOption(stateDirOption)
  .action((run: string, opts: { out: string; stateDir: string }) =>
    withServices(opts.stateDir, async ({ store }) => {
      assertSafeRunName(run);
      if (!(await store.exists(`runs/${run}/report.md`)))
        throw new NotFoundError(`Run ${run} has no report yet (see \`pneumogan status ${run}\`)`);
      log(await downloadReport(store, run, opts.out));
    }),
  );

/**
 * Bad input is reported by its message alone; a failed run by its chain of causes (workflow ->
 * child workflow -> activity -> the error that stopped it), which says where and why.
 */
function explain(err: unknown): string {
  if (
    err instanceof InputError ||
    err instanceof ConfigError ||
    err instanceof StateDirBusyError ||
    err instanceof TemporalDbInUseError ||
    err instanceof NotFoundError ||
    err instanceof WorkflowNotFoundError
  )
    return err.message;
  if (isInfrastructureDown(err))
    return `cannot reach Temporal or S3 (${err instanceof Error ? err.message : String(err)}); check TEMPORAL_ADDRESS / the profile and PNEUMOGAN_S3_ENDPOINT, or start the stack`;
  if (err instanceof WorkflowFailedError) {
    const chain: string[] = [];
    for (let cause: unknown = err; cause instanceof Error; cause = cause.cause) {
      const where =
        cause instanceof ActivityFailure
          ? ` (activity ${cause.activityType})`
          : cause instanceof ChildWorkflowFailure
            ? ` (workflow ${cause.execution.workflowId})`
            : '';
      chain.push(`${cause.message}${where}`);
    }
    return chain.join('\n  caused by: ');
  }
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

try {
  await program.parseAsync();
} catch (err) {
  // Commander has printed its own usage message.
  if (!(err instanceof CommanderError)) console.error(`pneumogan: ${explain(err)}`);
  process.exitCode = exitCodeFor(err);
}
