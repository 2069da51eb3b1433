/**
 * The worker thread of `blocked-loop-heartbeat.ts`: resends an activity's last heartbeat by task
 * token while the activity's own thread is silent (blocked in native code), within a grace time.
 *
 * Plain JavaScript: a worker thread does not inherit the TypeScript loader (tsx) of its process.
 * Messages (BridgeMessage in blocked-loop-heartbeat.ts):
 *   { type: 'start', id, taskToken, details, intervalMs, graceMs, label }
 *   { type: 'details', id, details }
 *   { type: 'stop', id }
 *   { type: 'connect' }   answered with { connected, error? } once the connection is up
 */
import { parentPort, workerData } from 'node:worker_threads';
import { AsyncCompletionClient, Connection } from '@temporalio/client';

const { connection: connectionOptions, namespace } = workerData;
/** @type {Promise<AsyncCompletionClient> | undefined} */
let client;
const watched = new Map();

/** The client, connecting on first use; a failed connection is forgotten, so the next tick tries again. */
function completionClient() {
  client ??= Connection.connect(withBuffers(connectionOptions)).then(
    (connection) => new AsyncCompletionClient({ connection, namespace }),
    (err) => {
      client = undefined;
      throw err;
    },
  );
  return client;
}

/** Certificates and keys arrive as Uint8Array (structured clone drops Buffer); gRPC wants Buffers. */
function withBuffers(value) {
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (Array.isArray(value)) return value.map(withBuffers);
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withBuffers(v)]));
  return value;
}

async function tick(id) {
  const w = watched.get(id);
  if (!w) return;
  const silent = Date.now() - w.lastSeen;
  if (silent < w.intervalMs || silent > w.graceMs) return;
  try {
    await (await completionClient()).heartbeat(w.taskToken, w.details);
    if (w.bridged++ === 0) {
      parentPort?.postMessage(
        `[heartbeat bridge] ${w.label}: its thread has been busy for ${(silent / 1000).toFixed(0)} s (compiling?); heartbeating for it`,
      );
    }
  } catch (err) {
    // Cancelled, completed or timed out meanwhile: the activity's own thread learns it next time.
    clearInterval(w.timer);
    watched.delete(id);
    parentPort?.postMessage(`[heartbeat bridge] ${w.label}: stopped (${err instanceof Error ? err.message : err})`);
  }
}

parentPort?.on('message', (message) => {
  if (message.type === 'connect') {
    completionClient().then(
      () => parentPort?.postMessage({ connected: true }),
      (err) => parentPort?.postMessage({ connected: false, error: String(err) }),
    );
  } else if (message.type === 'start') {
    watched.set(message.id, {
      ...message,
      lastSeen: Date.now(),
      bridged: 0,
      timer: setInterval(() => void tick(message.id), message.intervalMs),
    });
    // Connect ahead of the first tick; a failure is reported here and retried by the tick.
    completionClient().catch((err) =>
      parentPort?.postMessage(`[heartbeat bridge] cannot reach Temporal at ${connectionOptions.address}: ${err}`),
    );
  } else if (message.type === 'details') {
    const w = watched.get(message.id);
    if (w) Object.assign(w, { details: message.details, lastSeen: Date.now() });
  } else {
    clearInterval(watched.get(message.id)?.timer);
    watched.delete(message.id);
  }
});
