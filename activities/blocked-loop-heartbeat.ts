/**
 * Heartbeats that outlive a blocked event loop. The first training step on a GPU compiles: the
 * CUDA driver JITs TensorFlow's PTX kernels (TensorFlow 2.18 ships no Hopper SASS), Dawn and the
 * Vulkan driver compile every WGSL shader. Those calls are synchronous native code on the JS
 * thread, so no timer or heartbeat in this thread can run until the step returns, and a worker
 * compiling for minutes would be declared dead and its activity retried, only to compile again.
 *
 * While an activity runs, a worker thread (one per process, its own gRPC connection) watches the
 * activity's heartbeats. When the activity has been silent for a third of its heartbeat timeout
 * it resends the last details (progress and checkpoint, so nothing a retry needs is lost) by task
 * token. It stops bridging after PNEUMOGAN_BLOCKED_HEARTBEAT_GRACE_S seconds of silence (default
 * 900): a step that long is treated as a hang and the heartbeat timeout applies again.
 */
import { Worker } from 'node:worker_threads';
import { Context } from '@temporalio/activity';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { connectionOptions, type TemporalSettings } from '../lib/settings.js';

/** What the thread (blocked-loop-heartbeat-thread.mjs) is told. */
type BridgeMessage =
  | {
      type: 'start';
      id: number;
      taskToken: Uint8Array;
      details: unknown;
      intervalMs: number;
      graceMs: number;
      label: string;
    }
  | { type: 'details'; id: number; details: unknown }
  | { type: 'stop'; id: number }
  | { type: 'connect' };

export interface BlockedLoopHeartbeat {
  stop(): void;
}

const DEFAULT_GRACE_SECONDS = 900;
let thread: Worker | undefined;
let nextId = 0;

/**
 * The thread, connected the way its worker is (address, namespace, TLS, API key), so it reaches
 * the same cluster as the worker whose activities it heartbeats for.
 */
function bridgeThread(temporal: TemporalSettings): Worker {
  if (!thread) {
    thread = new Worker(new URL('./blocked-loop-heartbeat-thread.mjs', import.meta.url), {
      workerData: { connection: connectionOptions(temporal), namespace: temporal.namespace },
    });
    thread.on('message', (message: unknown) => {
      if (typeof message === 'string') console.log(message);
    });
    thread.on('error', (err) => console.error(`[heartbeat bridge] stopped: ${err.message}`));
    thread.on('exit', () => (thread = undefined));
    // It must never keep a worker process alive on its own.
    thread.unref();
  }
  return thread;
}

/**
 * Starts the thread and its connection now, so the first activity that needs it finds it ready
 * (loading the client and connecting take a second or two).
 */
export function prepareHeartbeatBridge(temporal: TemporalSettings): Promise<void> {
  const worker = bridgeThread(temporal);
  worker.ref(); // held until it answers
  return new Promise((resolve, reject) => {
    const onMessage = (message: unknown) => {
      if (typeof message !== 'object' || message === null || !('connected' in message)) return;
      worker.off('message', onMessage);
      worker.unref();
      if (message.connected) resolve();
      else reject(new Error(`heartbeat bridge: cannot connect (${String((message as { error?: string }).error)})`));
    };
    worker.on('message', onMessage);
    worker.postMessage({ type: 'connect' } satisfies BridgeMessage);
  });
}

/**
 * Starts bridging the current activity's heartbeats (a no-op without a heartbeat timeout) and
 * returns the handle that ends it; call `stop()` when the activity's compute is done.
 */
export function bridgeBlockedLoopHeartbeats(
  temporal: TemporalSettings,
  context: Context = Context.current(),
): BlockedLoopHeartbeat {
  const { heartbeatTimeoutMs, taskToken } = context.info;
  if (!heartbeatTimeoutMs) return { stop() {} };
  const grace = Number(process.env.PNEUMOGAN_BLOCKED_HEARTBEAT_GRACE_S) || DEFAULT_GRACE_SECONDS;
  const id = ++nextId;
  const worker = bridgeThread(temporal);
  const post = (message: BridgeMessage) => worker.postMessage(message);
  post({
    type: 'start',
    // Until the activity heartbeats, the last recorded details are the previous attempt's
    // (its checkpoint): resending those keeps the resume point.
    details: context.info.heartbeatDetails as unknown,
    id,
    taskToken,
    intervalMs: heartbeatTimeoutMs / 3,
    graceMs: grace * 1000,
    label: `${context.info.activityType} ${context.info.activityId}`,
  });
  // Every heartbeat of the activity (ProgressReporter's included) goes through this method of
  // its Context; observing it gives the thread the details to resend.
  const original = context.heartbeat;
  const observed = (details?: unknown) => {
    post({ type: 'details', id, details });
    original(details);
  };
  (context as { heartbeat: (details?: unknown) => void }).heartbeat = observed;
  return {
    stop() {
      post({ type: 'stop', id });
      if (context.heartbeat === observed) (context as { heartbeat: (details?: unknown) => void }).heartbeat = original;
    },
  };
}

/** Bridges the heartbeats of every activity a worker on `temporal` runs (GPU workers install it). */
export const heartbeatBridgeInterceptors =
  (temporal: TemporalSettings): ActivityInterceptorsFactory =>
  (context) => ({
    inbound: {
      async execute(input, next) {
        const bridge = bridgeBlockedLoopHeartbeats(temporal, context);
        try {
          return await next(input);
        } finally {
          bridge.stop();
        }
      },
    },
  });
