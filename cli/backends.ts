/**
 * Where the CLI's inspection commands find Temporal and S3: the cluster and bucket named by
 * PNEUMOGAN_TEMPORAL_ADDRESS / PNEUMOGAN_S3_ENDPOINT when set, else the embedded state of the
 * demo (`--state-dir`, default `.pneumogan`), whose local servers are started for the command.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { startEmbeddedInfrastructure } from '../lib/infra/embedded.js';
import { ArtifactStore, s3SettingsFromEnv } from '../lib/storage.js';
import { temporalSettingsFromEnv } from '../workers/runtime.js';

export interface Backends {
  client: Client;
  store: ArtifactStore;
  /** Web UI base URL when known. */
  uiUrl?: string;
}

export async function withBackends<T>(stateDir: string, body: (backends: Backends) => Promise<T>): Promise<T> {
  if (process.env.PNEUMOGAN_TEMPORAL_ADDRESS || process.env.PNEUMOGAN_S3_ENDPOINT) {
    const temporal = temporalSettingsFromEnv();
    const connection = await Connection.connect({ address: temporal.address });
    try {
      return await body({
        client: new Client({ connection, namespace: temporal.namespace }),
        store: new ArtifactStore(s3SettingsFromEnv()),
      });
    } finally {
      await connection.close();
    }
  }
  if (!existsSync(path.join(stateDir, 'temporal.sqlite'))) {
    throw new Error(
      `No embedded state in ${path.resolve(stateDir)} (run \`npm run demo\` first, pass --state-dir, or set PNEUMOGAN_TEMPORAL_ADDRESS and PNEUMOGAN_S3_* for a cluster).`,
    );
  }
  const infra = await startEmbeddedInfrastructure({ stateDir, temporal: { headless: true } });
  try {
    const connection = await Connection.connect({ address: infra.temporal.address });
    try {
      const store = new ArtifactStore({
        endpoint: infra.s3.endpoint,
        accessKey: infra.s3.accessKey,
        secretKey: infra.s3.secretKey,
        bucket: 'pneumogan',
        region: infra.s3.region,
      });
      return await body({ client: new Client({ connection, namespace: infra.temporal.namespace }), store });
    } finally {
      await connection.close();
    }
  } finally {
    await infra.stop();
  }
}
