/**
 * The whole local infrastructure in-process: a Temporal dev server (child process, SQLite) and
 * an S3 server (s3rver, in this process), with all state under one directory:
 *
 *   <stateDir>/temporal.sqlite       Temporal's state (workflow histories, namespaces)
 *   <stateDir>/temporal.sqlite.pid   pid of the server using it (to stop an orphan after a crash)
 *   <stateDir>/s3/                   buckets and objects
 *
 * Starting again on the same stateDir reuses both, so a run interrupted by a crash resumes: its
 * workflows are still in the SQLite file, and a worker that connects picks them up.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { startLocalS3Server, type LocalS3Server, type LocalS3ServerOptions } from './s3-server.js';
import { startTemporalDevServer, type TemporalDevServer, type TemporalDevServerOptions } from './temporal-server.js';

type Log = (line: string) => void;

export interface EmbeddedInfrastructureOptions {
  /** Directory for all state; created if missing, reused if present. */
  stateDir: string;
  log?: Log;
  /** Extra options for the Temporal dev server (dbFile is fixed to `<stateDir>/temporal.sqlite`). */
  temporal?: Omit<TemporalDevServerOptions, 'dbFile' | 'log'>;
  /** Extra options for the S3 server (directory is fixed to `<stateDir>/s3`). */
  s3?: Omit<LocalS3ServerOptions, 'directory' | 'log'>;
}

export interface EmbeddedInfrastructure {
  stateDir: string;
  temporal: TemporalDevServer;
  s3: LocalS3Server;
  /** Stops both (in parallel); rejects with every failure if any. Idempotent. */
  stop(): Promise<void>;
}

export const TEMPORAL_DB_FILENAME = 'temporal.sqlite';
export const S3_DIRNAME = 's3';

export async function startEmbeddedInfrastructure(
  opts: EmbeddedInfrastructureOptions,
): Promise<EmbeddedInfrastructure> {
  const log = opts.log ?? (() => {});
  const stateDir = path.resolve(opts.stateDir);
  await fs.mkdir(stateDir, { recursive: true });
  const dbFile = path.join(stateDir, TEMPORAL_DB_FILENAME);
  const resuming = await fs.stat(dbFile).then(
    () => true,
    () => false,
  );
  log(`[infra] ${resuming ? 'resuming from' : 'initialising'} state in ${stateDir}`);

  const [temporal, s3] = await Promise.allSettled([
    startTemporalDevServer({ ...opts.temporal, dbFile, log }),
    startLocalS3Server({ ...opts.s3, directory: path.join(stateDir, S3_DIRNAME), log }),
  ]);
  if (temporal.status === 'rejected' || s3.status === 'rejected') {
    // Do not leave the half that started running.
    await Promise.allSettled([
      temporal.status === 'fulfilled' ? temporal.value.stop() : undefined,
      s3.status === 'fulfilled' ? s3.value.stop() : undefined,
    ]);
    throw temporal.status === 'rejected' ? temporal.reason : (s3 as PromiseRejectedResult).reason;
  }

  let stopping: Promise<void> | undefined;
  return {
    stateDir,
    temporal: temporal.value,
    s3: s3.value,
    stop: () => {
      stopping ??= (async () => {
        const results = await Promise.allSettled([temporal.value.stop(), s3.value.stop()]);
        const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
        if (errors.length === 1) throw errors[0];
        if (errors.length > 1) throw new AggregateError(errors, 'stopping the embedded infrastructure failed');
        log('[infra] stopped');
      })();
      return stopping;
    },
  };
}
