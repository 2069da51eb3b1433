/**
 * Every setting a pipeline process takes from its environment, in one place: the workers, the
 * CLI and the compose stack's test read them here (two start-up switches are read where they
 * act; SETTINGS_VARIABLES lists them too).
 *
 * Temporal: Temporal's own client configuration (`@temporalio/envconfig`, the same as the
 * `temporal` CLI and every SDK): `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`,
 * `TEMPORAL_TLS*` (client certificate, key, server CA, server name), `TEMPORAL_PROFILE` and the
 * profiles of the TOML file at `TEMPORAL_CONFIG_FILE` (default
 * `~/.config/temporalio/temporal.toml`). `PNEUMOGAN_TEMPORAL_ADDRESS` / `_NAMESPACE` are
 * fallbacks for deployments configured before; the dev server's `127.0.0.1:7233` / `default`
 * apply when nothing is set.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { z } from 'zod';
import { S3SettingsSchema, type S3Settings } from './storage.js';
import { GPU_TASK_QUEUE, ORCHESTRATION_TASK_QUEUE } from './task-queues.js';

type Env = Readonly<Record<string, string | undefined>>;

/** The variables this module reads, with what they mean (README and the compose test use this). */
export const SETTINGS_VARIABLES = {
  PNEUMOGAN_TASK_QUEUE: `orchestration task queue: workflows and light activities (default ${ORCHESTRATION_TASK_QUEUE})`,
  PNEUMOGAN_GPU_TASK_QUEUE: `GPU task queue: training, synthesis, evaluation (default ${GPU_TASK_QUEUE})`,
  PNEUMOGAN_S3_ENDPOINT: 'S3 endpoint URL, e.g. http://minio:9000 (required by workers)',
  PNEUMOGAN_S3_ACCESS_KEY: 'S3 access key (required by workers)',
  PNEUMOGAN_S3_SECRET_KEY: 'S3 secret key (required by workers)',
  PNEUMOGAN_S3_BUCKET: 'bucket, created if missing (default pneumogan)',
  PNEUMOGAN_S3_REGION: 'S3 region (default us-east-1)',
  PNEUMOGAN_GPU_CONCURRENCY: 'GPU activities at once per GPU worker (default 1)',
  PNEUMOGAN_GPU_PROCESSES: 'GPU worker processes of the all-in-one worker (default 2)',
  PNEUMOGAN_START_WAIT_SECONDS: 'how long a starting worker waits for S3 and Temporal to answer (default 300)',
  PNEUMOGAN_LOG_LEVEL: 'Temporal SDK log level: TRACE, DEBUG, INFO, WARN, ERROR (default WARN)',
  PNEUMOGAN_TEMPORAL_ADDRESS: 'fallback for TEMPORAL_ADDRESS',
  PNEUMOGAN_TEMPORAL_NAMESPACE: 'fallback for TEMPORAL_NAMESPACE',
  // Read where they take effect, at start: the compute backend (lib/compute/backend.ts) and the
  // decoded-image cache (lib/data/load.ts).
  PNEUMOGAN_BACKEND: 'force a TensorFlow.js backend: cpu, tensorflow or tensorflow-gpu (default: the best present)',
  PNEUMOGAN_IMAGE_CACHE_BYTES: 'decoded-image cache per worker process in bytes (default 1 GiB)',
} as const;
export type SettingsVariable = keyof typeof SETTINGS_VARIABLES;

/** Temporal's standard client variables, which @temporalio/envconfig reads. */
export const TEMPORAL_CLIENT_VARIABLES = [
  'TEMPORAL_ADDRESS',
  'TEMPORAL_NAMESPACE',
  'TEMPORAL_API_KEY',
  'TEMPORAL_PROFILE',
  'TEMPORAL_CONFIG_FILE',
  'TEMPORAL_TLS',
  'TEMPORAL_TLS_CLIENT_CERT_PATH',
  'TEMPORAL_TLS_CLIENT_KEY_PATH',
  'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
  'TEMPORAL_TLS_SERVER_NAME',
  'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION',
] as const;

export const TaskQueuesSchema = z.object({
  orchestration: z.string().min(1).default(ORCHESTRATION_TASK_QUEUE),
  gpu: z.string().min(1).default(GPU_TASK_QUEUE),
});
export type TaskQueues = z.infer<typeof TaskQueuesSchema>;

export function taskQueueSettings(env: Env = process.env): TaskQueues {
  return parse(
    TaskQueuesSchema,
    { orchestration: env.PNEUMOGAN_TASK_QUEUE, gpu: env.PNEUMOGAN_GPU_TASK_QUEUE },
    {
      orchestration: 'PNEUMOGAN_TASK_QUEUE',
      gpu: 'PNEUMOGAN_GPU_TASK_QUEUE',
    },
  );
}

/** The `PNEUMOGAN_S3_*` variables as validated settings; the error names every missing or bad one. */
export function s3Settings(env: Env = process.env): S3Settings {
  return parse(
    S3SettingsSchema,
    {
      endpoint: env.PNEUMOGAN_S3_ENDPOINT,
      accessKey: env.PNEUMOGAN_S3_ACCESS_KEY,
      secretKey: env.PNEUMOGAN_S3_SECRET_KEY,
      bucket: env.PNEUMOGAN_S3_BUCKET ?? 'pneumogan',
      region: env.PNEUMOGAN_S3_REGION,
    },
    {
      endpoint: 'PNEUMOGAN_S3_ENDPOINT',
      accessKey: 'PNEUMOGAN_S3_ACCESS_KEY',
      secretKey: 'PNEUMOGAN_S3_SECRET_KEY',
      bucket: 'PNEUMOGAN_S3_BUCKET',
      region: 'PNEUMOGAN_S3_REGION',
    },
  );
}

const LogLevelSchema = z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']);

export const WorkerSettingsSchema = z.object({
  gpuConcurrency: z.coerce.number().int().min(1).default(1),
  gpuProcesses: z.coerce.number().int().min(1).default(2),
  startWaitSeconds: z.coerce.number().min(0).default(300),
  logLevel: z.preprocess((v) => (typeof v === 'string' ? v.toUpperCase() : v), LogLevelSchema.default('WARN')),
});
export type WorkerSettings = z.infer<typeof WorkerSettingsSchema>;

export function workerSettings(env: Env = process.env): WorkerSettings {
  return parse(
    WorkerSettingsSchema,
    {
      gpuConcurrency: env.PNEUMOGAN_GPU_CONCURRENCY || undefined,
      gpuProcesses: env.PNEUMOGAN_GPU_PROCESSES || undefined,
      startWaitSeconds: env.PNEUMOGAN_START_WAIT_SECONDS || undefined,
      logLevel: env.PNEUMOGAN_LOG_LEVEL || undefined,
    },
    {
      gpuConcurrency: 'PNEUMOGAN_GPU_CONCURRENCY',
      gpuProcesses: 'PNEUMOGAN_GPU_PROCESSES',
      startWaitSeconds: 'PNEUMOGAN_START_WAIT_SECONDS',
      logLevel: 'PNEUMOGAN_LOG_LEVEL',
    },
  );
}

/** How to reach Temporal: what `Connection.connect` and `NativeConnection.connect` take, and the namespace. */
export interface TemporalSettings {
  address: string;
  namespace: string;
  /** TLS: true for system roots, an object for mTLS / a private CA, absent for plain text. */
  tls?: Exclude<ReturnType<typeof loadClientConnectConfig>['connectionOptions']['tls'], undefined | null>;
  apiKey?: string;
  /** gRPC metadata sent with every call (`TEMPORAL_GRPC_META_*`, profile `grpc_meta`). */
  metadata?: Record<string, string>;
}

/**
 * Temporal connection settings from Temporal's standard client configuration, with the
 * `PNEUMOGAN_TEMPORAL_*` fallbacks (see the module comment). Errors name the variable or file.
 */
export function temporalSettings(env: Env = process.env): TemporalSettings {
  const defined = Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  const file = defined.TEMPORAL_CONFIG_FILE;
  if (file && !existsSync(file)) {
    throw new Error(`TEMPORAL_CONFIG_FILE=${file}: no such file (unset it to use ~/.config/temporalio/temporal.toml)`);
  }
  // envconfig 1.24 fails on a file that holds no profile at all (an empty one, say): skip such a file.
  const configFile = file ?? path.join(os.homedir(), '.config', 'temporalio', 'temporal.toml');
  const noProfiles = existsSync(configFile) && !/^\s*\[profile\./m.test(readFileSync(configFile, 'utf8'));
  let loaded: ReturnType<typeof loadClientConnectConfig>;
  try {
    loaded = loadClientConnectConfig({
      overrideEnvVars: defined,
      profile: defined.TEMPORAL_PROFILE,
      disableFile: noProfiles,
    });
  } catch (err) {
    throw new Error(
      `Temporal client configuration (TEMPORAL_* variables, profile ${defined.TEMPORAL_PROFILE ?? 'default'} of ` +
        `${file ?? '~/.config/temporalio/temporal.toml'}) is invalid: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const { connectionOptions, namespace } = loaded;
  return {
    address: connectionOptions.address ?? (defined.PNEUMOGAN_TEMPORAL_ADDRESS || '127.0.0.1:7233'),
    namespace: namespace ?? (defined.PNEUMOGAN_TEMPORAL_NAMESPACE || 'default'),
    ...(connectionOptions.tls ? { tls: connectionOptions.tls } : {}),
    ...(connectionOptions.apiKey ? { apiKey: connectionOptions.apiKey } : {}),
    ...(connectionOptions.metadata ? { metadata: connectionOptions.metadata as Record<string, string> } : {}),
  };
}

/** True when the environment names a cluster (else the CLI uses the embedded demo's state). */
export function clusterConfigured(env: Env = process.env): boolean {
  return ['TEMPORAL_ADDRESS', 'TEMPORAL_PROFILE', 'PNEUMOGAN_TEMPORAL_ADDRESS', 'PNEUMOGAN_S3_ENDPOINT'].some(
    (name) => !!env[name],
  );
}

function parse<S extends z.ZodObject>(schema: S, input: Record<string, unknown>, variables: Record<string, string>) {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${variables[String(i.path[0])] ?? String(i.path[0])}: ${i.message}`);
  throw new Error(`Settings from the environment are incomplete or invalid:\n  ${problems.join('\n  ')}`);
}

/** What a child worker process needs to reach the same cluster, bucket and queues as its parent. */
export interface ChildSettings {
  temporal: TemporalSettings;
  s3: S3Settings;
  taskQueues?: Partial<TaskQueues>;
  gpuConcurrency?: number;
}

/**
 * The environment under which a child process loads `settings` again (the inverse of the loaders
 * above): the parent's environment with every setting written over it. TLS files and profiles
 * are inherited as variables; a connection without TLS says so, so a profile cannot add it.
 */
export function environmentFor(settings: ChildSettings, parent: Env = process.env): Record<string, string> {
  const env = Object.fromEntries(
    Object.entries(parent).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  const { temporal, s3 } = settings;
  delete env.PNEUMOGAN_TEMPORAL_ADDRESS;
  delete env.PNEUMOGAN_TEMPORAL_NAMESPACE;
  delete env.TEMPORAL_API_KEY;
  Object.assign(env, {
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: temporal.namespace,
    ...(temporal.tls ? {} : { TEMPORAL_TLS: 'false' }),
    ...(temporal.apiKey ? { TEMPORAL_API_KEY: temporal.apiKey } : {}),
    PNEUMOGAN_S3_ENDPOINT: s3.endpoint,
    PNEUMOGAN_S3_ACCESS_KEY: s3.accessKey,
    PNEUMOGAN_S3_SECRET_KEY: s3.secretKey,
    PNEUMOGAN_S3_BUCKET: s3.bucket,
    PNEUMOGAN_S3_REGION: s3.region,
    ...(settings.taskQueues?.orchestration ? { PNEUMOGAN_TASK_QUEUE: settings.taskQueues.orchestration } : {}),
    ...(settings.taskQueues?.gpu ? { PNEUMOGAN_GPU_TASK_QUEUE: settings.taskQueues.gpu } : {}),
    ...(settings.gpuConcurrency ? { PNEUMOGAN_GPU_CONCURRENCY: String(settings.gpuConcurrency) } : {}),
  });
  return env;
}

/** What `Connection.connect` / `NativeConnection.connect` take. */
export function connectionOptions(temporal: TemporalSettings) {
  return {
    address: temporal.address,
    ...(temporal.tls !== undefined ? { tls: temporal.tls } : {}),
    ...(temporal.apiKey ? { apiKey: temporal.apiKey } : {}),
    ...(temporal.metadata ? { metadata: temporal.metadata } : {}),
  };
}
