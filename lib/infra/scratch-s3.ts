/**
 * A throw-away S3 server (s3rver) on loopback in a temporary directory, and a store on it: for
 * tests and benchmarks that need real S3 round trips but no state that outlives them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ArtifactStore, type S3Settings } from '../storage.js';
import { startLocalS3Server } from './s3-server.js';

export async function startScratchS3(
  bucket = 'pneumogan-test',
): Promise<{ store: ArtifactStore; settings: S3Settings; stop(): Promise<void> }> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-s3-'));
  const server = await startLocalS3Server({ directory });
  const settings: S3Settings = {
    endpoint: server.endpoint,
    accessKey: server.accessKey,
    secretKey: server.secretKey,
    bucket,
    region: server.region,
  };
  return {
    store: new ArtifactStore(settings),
    settings,
    async stop() {
      await server.stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
