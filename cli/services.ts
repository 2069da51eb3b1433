/**
 * Where the CLI's inspection commands find Temporal and S3: the cluster and bucket the settings
 * name (lib/settings.ts: TEMPORAL_ADDRESS or a profile, PNEUMOGAN_S3_*) when set, else the
 * embedded state of the demo (`--state-dir`, default `.pneumogan`). When a demo runs on that
 * directory, the command attaches to its servers and never starts or stops any; otherwise it
 * starts the local servers for the command's duration, holding the directory's lock meanwhile
 * (lib/infra/state-lock.ts).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { startEmbeddedInfrastructure } from '../lib/infra/embedded.js';
import { localS3Settings } from '../lib/infra/s3-server.js';
import { liveHolder, StateDirBusyError } from '../lib/infra/state-lock.js';
import { clusterConfigured, connectionOptions, s3Settings, temporalSettings } from '../lib/settings.js';
import { ArtifactStore } from '../lib/storage.js';

export interface Services {
  client: Client;
  store: ArtifactStore;
  /** Web UI base URL when known. */
  uiUrl?: string;
}

export async function withServices<T>(stateDir: string, body: (services: Services) => Promise<T>): Promise<T> {
  if (clusterConfigured()) {
    const temporal = temporalSettings();
    return withClient(
      connectionOptions(temporal),
      temporal.namespace,
      new ArtifactStore(s3Settings()),
      undefined,
      body,
    );
  }
  if (!existsSync(path.join(stateDir, 'temporal.sqlite'))) {
    throw new Error(
      `No embedded state in ${path.resolve(stateDir)} (run \`npm run demo\` first, pass --state-dir, or set TEMPORAL_ADDRESS (or a Temporal profile) and PNEUMOGAN_S3_* for a cluster).`,
    );
  }
  const deadline = Date.now() + 60_000;
  for (;;) {
    const holder = await liveHolder(stateDir);
    if (holder?.role === 'demo') {
      if (holder.endpoints) {
        const { temporal, s3 } = holder.endpoints;
        return withClient(
          { address: temporal.address },
          temporal.namespace,
          new ArtifactStore(localS3Settings(s3)),
          temporal.uiUrl || undefined,
          body,
        );
      }
      // The demo is still starting its servers.
      if (Date.now() > deadline)
        throw new Error(
          `The demo holding ${path.resolve(stateDir)} (pid ${holder.owner.pid}) has not started its servers within 60 s`,
        );
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    let infra;
    try {
      infra = await startEmbeddedInfrastructure({
        stateDir,
        owner: { role: 'inspect', command: `pneumogan ${process.argv.slice(2).join(' ')}` },
        temporal: { headless: true },
      });
    } catch (err) {
      if (err instanceof StateDirBusyError) continue; // a demo took the directory meanwhile: attach to it
      throw err;
    }
    try {
      return await withClient(
        { address: infra.temporal.address },
        infra.temporal.namespace,
        new ArtifactStore(localS3Settings(infra.s3)),
        undefined,
        body,
      );
    } finally {
      await infra.stop();
    }
  }
}

async function withClient<T>(
  connection: ConnectionOptions,
  namespace: string,
  store: ArtifactStore,
  uiUrl: string | undefined,
  body: (services: Services) => Promise<T>,
): Promise<T> {
  const connected = await Connection.connect(connection);
  try {
    return await body({ client: new Client({ connection: connected, namespace }), store, uiUrl });
  } finally {
    await connected.close();
  }
}
