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
import { InputError } from '../lib/errors.js';
import { startEmbeddedInfrastructure } from '../lib/infra/embedded.js';
import {
  connectionOptions,
  s3Settings,
  taskQueueSettings,
  temporalSettings,
  type TaskQueues,
} from '../lib/settings.js';
import { ArtifactStore, type S3Settings } from '../lib/storage.js';
import { presetNames, resolvePreset } from '../pipelines/presets.js';
import { ConfigError, type DataSource } from '../pipelines/schema.js';
import type { reproducePaper } from '../workflows/index.js';
import { verifyRun } from '../lib/lineage.js';
import { reproductionWorkflowId } from '../lib/run-names.js';
import { quietTemporalLogs } from '../workers/main.js';
import { startWorkers } from '../workers/runtime.js';
import { withBackends } from './backends.js';
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
const presetOption = new Option('--preset <name>', 'pipeline preset').choices(presetNames()).default('smoke');
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

interface LaunchCliOptions {
  run?: string;
  preset: string;
  data?: DataSource;
  out: string;
  reuse: boolean;
  heartbeatTimeout: number;
  detach?: boolean;
}

async function reproduce(
  client: Client,
  store: ArtifactStore,
  opts: LaunchCliOptions,
  taskQueues: TaskQueues,
  uiUrl?: string,
): Promise<void> {
  const config = resolvePreset(opts.preset, opts.data);
  const runName = opts.run ?? defaultRunName(opts.preset);
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

const program = new Command('pneumogan')
  .description(
    'Durable, resumable, auditable reproduction of Khalifa et al. (2020): DCGAN + fine-tuned CNNs for pneumonia on chest X-rays',
  )
  .showHelpAfterError()
  // Throw instead of exiting, so usage errors get the bad-input exit code (cli/exit-codes.ts).
  .exitOverride();

program
  .command('demo')
  .description(
    'run a reproduction on the embedded default: local Temporal dev server, local S3 server and local workers (orchestration in this process, GPU workers as child processes), with state in --state-dir (rerun with the same --run to resume after a crash)',
  )
  .addOption(runNameOption)
  .addOption(presetOption)
  .addOption(dataOption)
  .addOption(outOption)
  .addOption(noReuseOption)
  .addOption(heartbeatOption)
  .option('--state-dir <dir>', 'Temporal SQLite and S3 data', '.pneumogan')
  .action(async (opts: LaunchCliOptions & { stateDir: string }) => {
    quietTemporalLogs();
    const infra = await startEmbeddedInfrastructure({ stateDir: opts.stateDir, log });
    const s3: S3Settings = {
      endpoint: infra.s3.endpoint,
      accessKey: infra.s3.accessKey,
      secretKey: infra.s3.secretKey,
      bucket: 'pneumogan',
      region: infra.s3.region,
    };
    const taskQueues = taskQueueSettings();
    let workers: Awaited<ReturnType<typeof startWorkers>> | undefined;
    try {
      workers = await startWorkers({
        role: 'all-in-one',
        temporal: { address: infra.temporal.address, namespace: infra.temporal.namespace },
        s3,
        gpuConcurrency: 2,
        gpuProcesses: 2,
        taskQueues,
        log,
      });
      const connection = await Connection.connect({ address: infra.temporal.address });
      try {
        const client = new Client({ connection, namespace: infra.temporal.namespace });
        await reproduce(client, new ArtifactStore(s3), opts, taskQueues, infra.temporal.uiUrl || undefined);
      } finally {
        await connection.close();
      }
    } finally {
      await workers?.shutdown();
      await infra.stop();
    }
  });

program
  .command('run')
  .description(
    'start (or attach to) a reproduction on the Temporal cluster (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS, profiles) and S3 (PNEUMOGAN_S3_*), on the task queues PNEUMOGAN_TASK_QUEUE / PNEUMOGAN_GPU_TASK_QUEUE name (workers run separately: workers/orchestration.ts, workers/gpu.ts)',
  )
  .addOption(runNameOption)
  .addOption(presetOption)
  .addOption(dataOption)
  .addOption(outOption)
  .addOption(noReuseOption)
  .addOption(heartbeatOption)
  .addOption(detachOption)
  .option('--ui <url>', "Temporal Web UI base URL, to print the run's link")
  .action(async (opts: LaunchCliOptions & { ui?: string }) => {
    const temporal = temporalSettings();
    const connection = await Connection.connect(connectionOptions(temporal));
    try {
      await reproduce(
        new Client({ connection, namespace: temporal.namespace }),
        new ArtifactStore(s3Settings()),
        opts,
        taskQueueSettings(),
        opts.ui,
      );
    } finally {
      await connection.close();
    }
  });

program
  .command('follow')
  .description('follow a running reproduction until it ends, then download its report')
  .argument('<run>', 'run name')
  .addOption(outOption)
  .addOption(stateDirOption)
  .action((run: string, opts: { out: string; stateDir: string }) =>
    withBackends(opts.stateDir, ({ client, store }) => followAndReport(client, store, run, opts.out)),
  );

program
  .command('status')
  .description('show each stage of a run and its trials: state, time, result, and the attempts of running steps')
  .argument('<run>', 'run name')
  .addOption(stateDirOption)
  .addOption(jsonOption)
  .action((run: string, opts: { stateDir: string; json?: boolean }) =>
    withBackends(opts.stateDir, async ({ client }) => {
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
    withBackends(opts.stateDir, async ({ client }) => {
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
    withBackends(opts.stateDir, async ({ client }) => {
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
    withBackends(opts.stateDir, async ({ store }) => {
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
    withBackends(opts.stateDir, async ({ store }) => {
      if (opts.json) return printJson(await runArtifacts(store, run));
      for (const line of await runArtifactsReport(store, run)) log(line);
    }),
  );

program
  .command('verify')
  .description('re-hash every artifact of a run and report any whose bytes no longer match (exit 1 if any)')
  .argument('<run>', 'run name')
  .addOption(stateDirOption)
  .action((run: string, opts: { stateDir: string }) =>
    withBackends(opts.stateDir, async ({ store }) => {
      const result = await verifyRun(store, run);
      if (result.checked === 0)
        throw new NotFoundError(`Run ${run} has no recorded artifacts (is the name right? see \`pneumogan list\`)`);
      for (const c of result.corrupt)
        log(`CORRUPT ${c.kind} ${c.key}: expected sha256 ${c.expected}, found ${c.actual}`);
      for (const m of result.missing) log(`MISSING ${m.kind} ${m.key}`);
      log(
        `${run}: ${result.checked} artifacts checked, ${result.corrupt.length} corrupt, ${result.missing.length} missing`,
      );
      if (result.corrupt.length || result.missing.length) process.exitCode = 1;
    }),
  );

program
  .command('report')
  .description("download a finished run's report (Markdown, JSON summary, figures) and print its path")
  .argument('<run>', 'run name')
  .addOption(outOption)
  .addOption(stateDirOption)
  .action((run: string, opts: { out: string; stateDir: string }) =>
    withBackends(opts.stateDir, async ({ store }) => {
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
