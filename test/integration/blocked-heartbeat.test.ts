import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Context } from '@temporalio/activity';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, TimeoutFailure, TimeoutType } from '@temporalio/common';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { heartbeatBridgeInterceptors, prepareHeartbeatBridge } from '../../activities/blocked-loop-heartbeat.js';
import { findOrProvisionTemporalCli } from '../../lib/infra/temporal-cli.js';
import { startTemporalDevServer, type TemporalDevServer } from '../../lib/infra/temporal-server.js';

const here = path.dirname(fileURLToPath(import.meta.url));
let server: TemporalDevServer;
let nativeConnection: NativeConnection;
const workers: Worker[] = [];
let running: Promise<unknown>;
let connection: Connection;
let client: Client;

/** Blocks this thread for `ms` (as a native kernel compile does), heartbeating before and after. */
function blockEventLoop(ms: number): Promise<string> {
  const context = Context.current();
  context.heartbeat({ stage: 'compile', done: 0, total: 1 });
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  context.heartbeat({ stage: 'compile', done: 1, total: 1 });
  return Promise.resolve(`blocked ${ms} ms`);
}

before(async () => {
  server = await startTemporalDevServer({
    cliPath: await findOrProvisionTemporalCli({ provision: false }),
    headless: true,
  });
  const temporal = { address: server.address, namespace: 'default' };
  await prepareHeartbeatBridge(temporal);
  nativeConnection = await NativeConnection.connect({ address: server.address });
  const workflowBundle = await bundleWorkflowCode({
    workflowsPath: path.join(here, '..', 'helpers', 'blocking-workflow.ts'),
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error: (m: string) => console.error(m), log() {} },
  });
  for (const bridged of [false, true]) {
    workers.push(
      await Worker.create({
        connection: nativeConnection,
        taskQueue: bridged ? 'bridged' : 'plain',
        workflowBundle,
        activities: { blockEventLoop },
        interceptors: bridged ? { activity: [heartbeatBridgeInterceptors(temporal)] } : {},
      }),
    );
  }
  running = Promise.all(workers.map((w) => w.run()));
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
});

after(async () => {
  for (const w of workers) w.shutdown();
  await running;
  await nativeConnection?.close();
  await connection?.close();
  await server?.stop();
});

const run = (taskQueue: string) =>
  client.workflow.execute('blockOnce', { taskQueue, workflowId: `blocked-${taskQueue}`, args: [6000, taskQueue] });

test('an activity whose event loop is blocked past its heartbeat timeout is timed out without the bridge', async () => {
  await assert.rejects(run('plain'), (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError);
    assert.ok(err.cause instanceof ActivityFailure);
    assert.ok(err.cause.cause instanceof TimeoutFailure, String(err.cause.cause));
    assert.equal(err.cause.cause.timeoutType, TimeoutType.HEARTBEAT);
    return true;
  });
});

test('with the bridge interceptor (as GPU workers run) it survives the same block', async () => {
  assert.equal(await run('bridged'), 'blocked 6000 ms');
});
