/**
 * Where the CLI's inspection commands find Temporal and S3: the cluster and bucket the settings
 * name (lib/settings.ts: TEMPORAL_ADDRESS or a profile, PNEUMOGAN_S3_*) when set, else the
 * embedded state of the demo (`--state-dir`, default `.pneumogan`), whose local servers are
 * started for the command.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { startEmbeddedInfrastructure } from '../lib/infra/embedded.js';
import { clusterConfigured, connectionOptions, s3Settings, temporalSettings } from '../lib/settings.js';
import { ArtifactStore } from '../lib/storage.js';

export interface Backends {
  client: Client;
  store: ArtifactStore;
  /** Web UI base URL when known. */
  uiUrl?: string;
}

export async function withBackends<T>(stateDir: string, body: (backends: Backends) => Promise<T>): Promise<T> {
  if (clusterConfigured()) {
    const temporal = temporalSettings();
    const connection = await Connection.connect(connectionOptions(temporal));
    try {
      return await body({
        client: new Client({ connection, namespace: temporal.namespace }),
        store: new ArtifactStore(s3Settings()),
      });
    } finally {
      await connection.close();
    }
  }
  if (!existsSync(path.join(stateDir, 'temporal.sqlite'))) {
    throw new Error(
      `No embedded state in ${path.resolve(stateDir)} (run \`npm run demo\` first, pass --state-dir, or set TEMPORAL_ADDRESS (or a Temporal profile) and PNEUMOGAN_S3_* for a cluster).`,
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
