/**
 * The embedded infrastructure end to end: s3rver through the minio client, the Temporal dev
 * server through @temporalio/client, and a restart on the same SQLite file that still knows a
 * workflow started before it.
 *
 * Needs the Temporal CLI (`npx tsx cli/setup.ts` provisions it); skipped with that hint when it
 * is missing, so that this test never starts a multi-minute `go install` itself.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import * as Minio from 'minio';
import { startEmbeddedInfrastructure, TEMPORAL_DB_FILENAME } from '../../lib/infra/embedded.js';
import { findFreePort } from '../../lib/infra/ports.js';
import type { LocalS3Server } from '../../lib/infra/s3-server.js';
import { findOrProvisionTemporalCli, TemporalCliNotFoundError } from '../../lib/infra/temporal-cli.js';

const NAMESPACE = 'pneumogan-infra-test';
const TASK_QUEUE = 'infra-test-no-worker';
const BUCKET = 'pneumogan-test';

function minioFor(s3: LocalS3Server, extra: Partial<Minio.ClientOptions> = {}): Minio.Client {
  return new Minio.Client({
    endPoint: s3.host,
    port: s3.port,
    useSSL: false,
    pathStyle: true,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    region: s3.region,
    ...extra,
  });
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks);
}

function listNames(client: Minio.Client, prefix: string, recursive: boolean): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const names: string[] = [];
    client
      .listObjectsV2(BUCKET, prefix, recursive)
      .on('data', (item) => names.push(item.name ?? `${item.prefix}`))
      .on('end', () => resolve(names))
      .on('error', reject);
  });
}

test('findFreePort returns a bindable loopback port', async () => {
  const port = await findFreePort();
  assert.ok(Number.isInteger(port) && port > 0 && port < 65536);
});

test('a missing Temporal CLI is reported with what was tried and how to fix it', async () => {
  const saved = { ...process.env };
  const empty = await fs.mkdtemp(path.join(os.tmpdir(), 'pneumogan-nocli-'));
  try {
    delete process.env.TEMPORAL_CLI_PATH;
    delete process.env.GOBIN;
    process.env.PATH = empty;
    process.env.GOPATH = empty;
    process.env.PNEUMOGAN_CACHE_DIR = empty;
    await assert.rejects(findOrProvisionTemporalCli({ provision: false }), (err: unknown) => {
      assert.ok(err instanceof TemporalCliNotFoundError);
      assert.match(err.message, /TEMPORAL_CLI_PATH: not set/);
      assert.match(err.message, /project cache: .*pneumogan-nocli-/);
      assert.match(err.message, /go install github\.com\/temporalio\/cli\/cmd\/temporal@v1\.5\.1/);
      return true;
    });
    process.env.TEMPORAL_CLI_PATH = path.join(empty, 'no-such-temporal');
    await assert.rejects(
      findOrProvisionTemporalCli({ provision: false }),
      /TEMPORAL_CLI_PATH=.*not a working Temporal CLI/,
    );
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
    await fs.rm(empty, { recursive: true, force: true });
  }
});

test('embedded infrastructure: S3 round trip, Temporal frontend, resume from the same SQLite file', async (t) => {
  let cliPath: string;
  try {
    cliPath = await findOrProvisionTemporalCli({ provision: false });
  } catch {
    t.skip('Temporal CLI not found; run `npx tsx cli/setup.ts` to provision it');
    return;
  }
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pneumogan-infra-'));
  t.after(() => fs.rm(stateDir, { recursive: true, force: true }));
  const logs: string[] = [];
  const start = () =>
    startEmbeddedInfrastructure({ stateDir, log: (l) => logs.push(l), temporal: { cliPath, namespace: NAMESPACE } });

  const workflowId = `infra-probe-${Date.now()}`;
  let runId = '';
  const big = Buffer.alloc(6 * 1024 * 1024 + 123, 7);

  const infra = await start();
  try {
    await t.test('s3: bucket, put/stat/get/list/remove with minio', async () => {
      const s3 = minioFor(infra.s3);
      assert.equal(await s3.bucketExists(BUCKET), false);
      await s3.makeBucket(BUCKET);
      assert.equal(await s3.bucketExists(BUCKET), true);

      const body = Buffer.from('{"hello":"world"}');
      const put = await s3.putObject(BUCKET, 'runs/r1/manifest.json', body, body.length, {
        'Content-Type': 'application/json',
        'X-Amz-Meta-Sha256': 'abc123',
      });
      assert.match(put.etag, /^[0-9a-f]{32}$/);
      const stat = await s3.statObject(BUCKET, 'runs/r1/manifest.json');
      assert.equal(stat.size, body.length);
      assert.equal(stat.metaData['content-type'], 'application/json');
      assert.equal(stat.metaData.sha256, 'abc123');
      assert.deepEqual(await readAll(await s3.getObject(BUCKET, 'runs/r1/manifest.json')), body);

      // Keys with '+' and a stream of unknown length (multipart: needs the compat shim).
      await s3.putObject(BUCKET, 'runs/r1/at+00:00.txt', Buffer.from('plus'));
      await s3.putObject(BUCKET, 'runs/r1/stream.bin', Readable.from([Buffer.from('ab'), Buffer.from('cd')]));
      await minioFor(infra.s3, { partSize: 5 * 1024 * 1024 }).putObject(BUCKET, 'runs/r1/big.bin', big, big.length);
      assert.equal((await s3.statObject(BUCKET, 'runs/r1/big.bin')).size, big.length);
      assert.equal((await readAll(await s3.getObject(BUCKET, 'runs/r1/stream.bin'))).toString(), 'abcd');

      assert.deepEqual(await listNames(s3, 'runs/', false), ['runs/r1/']);
      assert.deepEqual(await listNames(s3, 'runs/r1/', true), [
        'runs/r1/at+00:00.txt',
        'runs/r1/big.bin',
        'runs/r1/manifest.json',
        'runs/r1/stream.bin',
      ]);

      await s3.removeObject(BUCKET, 'runs/r1/stream.bin');
      await assert.rejects(
        s3.statObject(BUCKET, 'runs/r1/stream.bin'),
        (err: { code?: string }) => err.code === 'NotFound',
      );
      await assert.rejects(
        s3.getObject(BUCKET, 'runs/r1/stream.bin'),
        (err: { code?: string }) => err.code === 'NoSuchKey',
      );
    });

    await t.test('temporal: frontend answers and a workflow can be started without a worker', async () => {
      const connection = await Connection.connect({ address: infra.temporal.address });
      try {
        const info = await connection.workflowService.getSystemInfo({});
        assert.ok(info.serverVersion, 'getSystemInfo returns a server version');
        const { namespaces } = await connection.workflowService.listNamespaces({});
        const names = namespaces.map((n) => n.namespaceInfo?.name);
        assert.ok(names.includes(NAMESPACE), `namespace ${NAMESPACE} in ${names.join(', ')}`);

        const client = new Client({ connection, namespace: NAMESPACE });
        const handle = await client.workflow.start('infraProbeWorkflow', {
          taskQueue: TASK_QUEUE,
          workflowId,
          args: [{ probe: true }],
        });
        runId = handle.firstExecutionRunId;
        assert.equal((await handle.describe()).status.name, 'RUNNING');
      } finally {
        await connection.close();
      }
    });
  } finally {
    await infra.stop();
  }
  assert.ok(runId, 'the workflow was started before the restart');

  await t.test('restart on the same state: the workflow and the objects are still there', async () => {
    const again = await start();
    try {
      assert.equal(again.temporal.dbFile, path.join(stateDir, TEMPORAL_DB_FILENAME));
      const connection = await Connection.connect({ address: again.temporal.address });
      try {
        const client = new Client({ connection, namespace: NAMESPACE });
        const description = await client.workflow.getHandle(workflowId).describe();
        assert.equal(description.runId, runId);
        assert.equal(description.type, 'infraProbeWorkflow');
        assert.equal(description.taskQueue, TASK_QUEUE);
        assert.equal(description.status.name, 'RUNNING');
      } finally {
        await connection.close();
      }
      const s3 = minioFor(again.s3);
      assert.equal(await s3.bucketExists(BUCKET), true);
      assert.deepEqual(await readAll(await s3.getObject(BUCKET, 'runs/r1/big.bin')), big);
    } finally {
      await again.stop();
    }
  });
  assert.ok(
    logs.some((l) => l.includes('resuming from state')),
    logs.join('\n'),
  );
});
