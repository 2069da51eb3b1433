import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  clusterConfigured,
  environmentFor,
  s3Settings,
  taskQueueSettings,
  temporalSettings,
  workerSettings,
} from '../../lib/settings.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-settings-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** An environment without the machine's own config file, so tests see only what they set. */
const isolated = (env: Record<string, string>) => ({ TEMPORAL_CONFIG_FILE: path.join(dir, 'none.toml'), ...env });

test('nothing set: the local dev server, the default namespace and the default queues', async () => {
  await writeFile(path.join(dir, 'none.toml'), '');
  assert.deepEqual(temporalSettings(isolated({})), { address: '127.0.0.1:7233', namespace: 'default' });
  assert.deepEqual(taskQueueSettings({}), { orchestration: 'pneumogan', gpu: 'pneumogan-gpu' });
  assert.deepEqual(workerSettings({}), { gpuConcurrency: 1, gpuProcesses: 2, startWaitSeconds: 300, logLevel: 'WARN' });
  assert.equal(clusterConfigured({}), false);
});

test("Temporal's standard variables win over the PNEUMOGAN_TEMPORAL_* fallbacks; an API key turns TLS on", () => {
  const env = isolated({
    TEMPORAL_ADDRESS: 'my-ns.a1b2c.tmprl.cloud:7233',
    TEMPORAL_NAMESPACE: 'my-ns.a1b2c',
    TEMPORAL_API_KEY: 'secret-key',
    PNEUMOGAN_TEMPORAL_ADDRESS: 'old:7233',
    PNEUMOGAN_TEMPORAL_NAMESPACE: 'old',
  });
  assert.deepEqual(temporalSettings(env), {
    address: 'my-ns.a1b2c.tmprl.cloud:7233',
    namespace: 'my-ns.a1b2c',
    tls: true,
    apiKey: 'secret-key',
  });
  assert.deepEqual(temporalSettings(isolated({ PNEUMOGAN_TEMPORAL_ADDRESS: 'old:7233' })), {
    address: 'old:7233',
    namespace: 'default',
  });
  assert.equal(clusterConfigured(env), true);
});

test('a profile of the TOML config file gives address, namespace and mTLS files', async () => {
  const file = path.join(dir, 'temporal.toml');
  await writeFile(path.join(dir, 'client.pem'), 'CLIENT CERT');
  await writeFile(path.join(dir, 'client.key'), 'CLIENT KEY');
  await writeFile(path.join(dir, 'ca.pem'), 'CA CERT');
  await writeFile(
    file,
    [
      '[profile.prod]',
      'address = "temporal.internal:7233"',
      'namespace = "pneumogan-prod"',
      '[profile.prod.tls]',
      `client_cert_path = "${path.join(dir, 'client.pem')}"`,
      `client_key_path = "${path.join(dir, 'client.key')}"`,
      `server_ca_cert_path = "${path.join(dir, 'ca.pem')}"`,
      'server_name = "temporal.internal"',
    ].join('\n'),
  );
  const settings = temporalSettings({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod' });
  assert.equal(settings.address, 'temporal.internal:7233');
  assert.equal(settings.namespace, 'pneumogan-prod');
  assert.ok(settings.tls && typeof settings.tls === 'object');
  assert.equal(settings.tls.serverNameOverride, 'temporal.internal');
  assert.equal(Buffer.from(settings.tls.serverRootCACertificate!).toString(), 'CA CERT');
  assert.equal(Buffer.from(settings.tls.clientCertPair!.crt).toString(), 'CLIENT CERT');
  assert.throws(
    () => temporalSettings({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'staging' }),
    /profile staging of .*temporal\.toml.*'staging' not found/s,
  );
  assert.throws(
    () => temporalSettings({ TEMPORAL_CONFIG_FILE: path.join(dir, 'missing.toml') }),
    /TEMPORAL_CONFIG_FILE=.*missing\.toml: no such file/,
  );
});

test('incomplete S3 and worker settings name each variable to fix', () => {
  assert.throws(
    () => s3Settings({ PNEUMOGAN_S3_ENDPOINT: 'not a url' }),
    (err: Error) =>
      /PNEUMOGAN_S3_ENDPOINT: must be a URL/.test(err.message) &&
      /PNEUMOGAN_S3_ACCESS_KEY/.test(err.message) &&
      /PNEUMOGAN_S3_SECRET_KEY/.test(err.message),
  );
  assert.throws(() => workerSettings({ PNEUMOGAN_GPU_CONCURRENCY: '0' }), /PNEUMOGAN_GPU_CONCURRENCY/);
  assert.throws(() => workerSettings({ PNEUMOGAN_LOG_LEVEL: 'loud' }), /PNEUMOGAN_LOG_LEVEL/);
  assert.throws(() => workerSettings({ PNEUMOGAN_START_WAIT_SECONDS: 'soon' }), /PNEUMOGAN_START_WAIT_SECONDS/);
});

test("a child worker's environment loads the parent's settings back, whatever the parent's own environment says", () => {
  const temporal = { address: '127.0.0.1:40001', namespace: 'embedded' };
  const s3 = {
    endpoint: 'http://127.0.0.1:9100',
    accessKey: 'a',
    secretKey: 'b',
    bucket: 'pneumogan',
    region: 'us-east-1',
  };
  const taskQueues = { orchestration: 'team-a', gpu: 'team-a-gpu' };
  const parent = isolated({ TEMPORAL_ADDRESS: 'cloud:7233', TEMPORAL_API_KEY: 'k', PNEUMOGAN_TEMPORAL_ADDRESS: 'x:1' });
  const child = environmentFor({ temporal, s3, taskQueues, gpuConcurrency: 3 }, parent);
  assert.deepEqual(temporalSettings(child), temporal);
  assert.deepEqual(s3Settings(child), s3);
  assert.deepEqual(taskQueueSettings(child), taskQueues);
  assert.equal(workerSettings(child).gpuConcurrency, 3);
});
