/** A real S3 server (s3rver) on loopback in a temporary directory, and a store on it. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLocalS3Server } from '../../lib/infra/s3-server.js';
import { ArtifactStore, type S3Settings } from '../../lib/storage.js';

export async function startTestS3(
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

/** The real X-ray sample CI provides beside the checkout; absent in a user's clone. */
export const KERMANY_SAMPLE = path.resolve(import.meta.dirname, '..', '..', '..', 'shared', 'data', 'kermany-sample');

/** The archive's whole train split (5,216 real X-rays), beside CI checkouts like the sample. */
export const KERMANY_TRAIN = path.resolve(import.meta.dirname, '..', '..', '..', 'shared', 'data', 'kermany-train');
