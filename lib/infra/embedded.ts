/**
 * The whole local infrastructure in-process: a Temporal dev server (child process, SQLite) and
 * an S3 server (s3rver, in this process), with all state under one directory:
 *
 *   <stateDir>/pneumogan.lock.json   who runs the servers on this directory (state-lock.ts)
 *   <stateDir>/temporal.sqlite       Temporal's state (workflow histories, namespaces)
 *   <stateDir>/temporal.sqlite.pid   identities of the server using it and of its parent
 *   <stateDir>/s3/                   buckets and objects
 *
 * Starting again on the same stateDir reuses both, so a run interrupted by a crash resumes: its
 * workflows are still in the SQLite file, and a worker that connects picks them up. Only one
 * process starts servers on a directory at a time (the lock); others attach to its servers.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { startLocalS3Server, type LocalS3Server, type LocalS3ServerOptions } from './s3-server.js';
import { acquireStateLock, type AcquireOptions, type HeldStateLock } from './state-lock.js';
import { startTemporalDevServer, type TemporalDevServer, type TemporalDevServerOptions } from './temporal-server.js';

type Log = (line: string) => void;

export interface EmbeddedInfrastructureOptions {
  /** Directory for all state; created if missing, reused if present. */
  stateDir: string;
  /**
   * Who takes the state directory (a second demo is refused, an inspection command waited for);
   * default: a demo named by this process's command line.
   */
  owner?: Omit<AcquireOptions, 'log'>;
  log?: Log;
  /** Extra options for the Temporal dev server (dbFile is fixed to `<stateDir>/temporal.sqlite`). */
  temporal?: Omit<TemporalDevServerOptions, 'dbFile' | 'log'>;
  /** Extra options for the S3 server (directory is fixed to `<stateDir>/s3`). */
  s3?: Omit<LocalS3ServerOptions, 'directory' | 'log'>;
  /**
   * Restart the Temporal dev server (same port, same SQLite file) when it dies; workers and
   * clients reconnect by themselves. `fatal` settles if it cannot be restarted.
   */
  superviseTemporal?: boolean;
}

export interface EmbeddedInfrastructure {
  stateDir: string;
  /** The current Temporal dev server (a restarted one keeps the address). */
  readonly temporal: TemporalDevServer;
  s3: LocalS3Server;
  lock: HeldStateLock;
  /** Settles with the reason when a supervised server could not be restarted. */
  fatal: Promise<Error>;
  /** Stops both (in parallel) and releases the directory; rejects with every failure if any. Idempotent. */
  stop(): Promise<void>;
}

export const TEMPORAL_DB_FILENAME = 'temporal.sqlite';
export const S3_DIRNAME = 's3';
/** Consecutive failed restarts of the Temporal dev server before giving up. */
const TEMPORAL_RESTART_LIMIT = 5;

export async function startEmbeddedInfrastructure(
  opts: EmbeddedInfrastructureOptions,
): Promise<EmbeddedInfrastructure> {
  const log = opts.log ?? (() => {});
  const stateDir = path.resolve(opts.stateDir);
  const owner = opts.owner ?? { role: 'demo', command: process.argv.slice(1).join(' ') };
  const lock = await acquireStateLock(stateDir, { ...owner, log });
  const dbFile = path.join(stateDir, TEMPORAL_DB_FILENAME);
  const resuming = await fs.stat(dbFile).then(
    () => true,
    () => false,
  );
  log(`[infra] ${resuming ? 'resuming from' : 'initialising'} state in ${stateDir}`);

  const [temporalStart, s3Start] = await Promise.allSettled([
    startTemporalDevServer({ ...opts.temporal, dbFile, log }),
    startLocalS3Server({ ...opts.s3, directory: path.join(stateDir, S3_DIRNAME), log }),
  ]);
  if (temporalStart.status === 'rejected' || s3Start.status === 'rejected') {
    // Do not leave the half that started running.
    await Promise.allSettled([
      temporalStart.status === 'fulfilled' ? temporalStart.value.stop() : undefined,
      s3Start.status === 'fulfilled' ? s3Start.value.stop() : undefined,
    ]);
    await lock.release();
    throw temporalStart.status === 'rejected' ? temporalStart.reason : (s3Start as PromiseRejectedResult).reason;
  }
  let temporal = temporalStart.value;
  const s3 = s3Start.value;
  await lock.setChild('temporal dev server', temporal.pid);
  await lock.setEndpoints({
    temporal: { address: temporal.address, namespace: temporal.namespace, uiUrl: temporal.uiUrl },
    s3: { endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region },
  });

  let stopping: Promise<void> | undefined;
  let reportFatal: (err: Error) => void = () => {};
  const fatal = new Promise<Error>((resolve) => (reportFatal = resolve));

  /** Restarts the server on its port and file after an unexpected exit (backoff 1, 2, 4... s). */
  const supervise = (server: TemporalDevServer) => {
    void server.exited.then(async ({ code, signal }) => {
      if (stopping) return;
      const port = Number(server.address.split(':').pop());
      for (let failures = 0; !stopping; failures++) {
        const delay = Math.min(1000 * 2 ** failures, 30_000);
        log(
          `[infra] the Temporal dev server (pid ${server.pid}) exited (${signal ?? `code ${code}`}); restarting it on port ${port} in ${delay / 1000} s (try ${failures + 1} of ${TEMPORAL_RESTART_LIMIT})`,
        );
        await new Promise((r) => setTimeout(r, delay));
        if (stopping) return;
        try {
          temporal = await startTemporalDevServer({ ...opts.temporal, port, dbFile, log });
          await lock.setChild('temporal dev server', temporal.pid);
          log(`[infra] the Temporal dev server is back (pid ${temporal.pid})`);
          supervise(temporal);
          return;
        } catch (err) {
          if (failures + 1 >= TEMPORAL_RESTART_LIMIT) {
            reportFatal(
              new Error(
                `The Temporal dev server could not be restarted after ${TEMPORAL_RESTART_LIMIT} tries: ${(err as Error).message}`,
              ),
            );
            return;
          }
        }
      }
    });
  };
  if (opts.superviseTemporal) supervise(temporal);

  return {
    stateDir,
    get temporal() {
      return temporal;
    },
    s3,
    lock,
    fatal,
    stop: () => {
      stopping ??= (async () => {
        const results = await Promise.allSettled([temporal.stop(), s3.stop()]);
        await lock.release();
        const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
        if (errors.length === 1) throw errors[0];
        if (errors.length > 1) throw new AggregateError(errors, 'stopping the embedded infrastructure failed');
        log('[infra] stopped');
      })();
      return stopping;
    },
  };
}
