/**
 * The embedded default without the demo's command line: Temporal and S3 servers in a state
 * folder, all-in-one workers on them and a client. For the end-to-end tests, the paper-size
 * benchmark and the replay-history recorder, which need a whole stack but none of the demo's
 * signal handling and progress display.
 */
import { Client, Connection } from '@temporalio/client';
import { startEmbeddedInfrastructure, type EmbeddedInfrastructure } from '../lib/infra/embedded.js';
import { localS3Settings } from '../lib/infra/s3-server.js';
import { ArtifactStore, type S3Settings } from '../lib/storage.js';
import { startWorkers, type RunningWorkers } from './start-workers.js';

export interface LocalStackOptions {
  stateDir: string;
  /** GPU worker child processes (default 1). */
  gpuProcesses?: number;
  /** GPU activities at once per GPU worker process (default 1). */
  gpuConcurrency?: number;
  /** Where the workers' lines go (default: nowhere). */
  log?: (line: string) => void;
}

export interface LocalStack {
  infra: EmbeddedInfrastructure;
  s3: S3Settings;
  store: ArtifactStore;
  workers: RunningWorkers;
  client: Client;
  /** Closes the client, stops the workers, then the servers (even when an earlier stop fails). */
  stop(): Promise<void>;
}

export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const infra = await startEmbeddedInfrastructure({ stateDir: options.stateDir });
  let workers: RunningWorkers | undefined;
  try {
    const s3 = localS3Settings(infra.s3);
    workers = await startWorkers({
      role: 'all-in-one',
      temporal: { address: infra.temporal.address, namespace: infra.temporal.namespace },
      s3,
      gpuConcurrency: options.gpuConcurrency ?? 1,
      gpuProcesses: options.gpuProcesses ?? 1,
      log: options.log ?? (() => {}),
    });
    const running = workers;
    const connection = await Connection.connect({ address: infra.temporal.address });
    return {
      infra,
      s3,
      store: new ArtifactStore(s3),
      workers: running,
      client: new Client({ connection, namespace: infra.temporal.namespace }),
      async stop() {
        try {
          await connection.close();
          await running.shutdown();
        } finally {
          await infra.stop();
        }
      },
    };
  } catch (err) {
    await workers?.shutdown().catch(() => {});
    await infra.stop();
    throw err;
  }
}
