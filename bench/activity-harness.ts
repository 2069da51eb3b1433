/**
 * Runs activity code outside a worker in @temporalio/testing's MockActivityEnvironment, recording
 * every heartbeat with its time. For benchmarks and tests whose cost is storage, not orchestration.
 */
import { MockActivityEnvironment } from '@temporalio/testing';

export interface ActivitySpec {
  workflowId: string;
  activityType: string;
  activityId?: string;
  attempt?: number;
  heartbeatDetails?: unknown;
}

export interface ActivityHarness {
  /** Every heartbeat so far, with `performance.now()` times. */
  heartbeats: Array<{ at: number; details: unknown }>;
  /** Requests cancellation, as the server does after a workflow cancels the activity. */
  cancel(): void;
}

export async function runInActivity<T>(
  spec: ActivitySpec,
  body: (harness: ActivityHarness) => Promise<T>,
): Promise<{ result: T; heartbeats: ActivityHarness['heartbeats'] }> {
  const env = new MockActivityEnvironment({
    activityType: spec.activityType,
    activityId: spec.activityId ?? '1',
    attempt: spec.attempt ?? 1,
    heartbeatDetails: spec.heartbeatDetails,
    workflowExecution: { workflowId: spec.workflowId, runId: 'bench-run' },
  });
  const heartbeats: ActivityHarness['heartbeats'] = [];
  env.on('heartbeat', (details: unknown) => heartbeats.push({ at: performance.now(), details }));
  const harness: ActivityHarness = { heartbeats, cancel: () => env.cancel() };
  const result = await env.run<[], T, () => Promise<T>>(() => body(harness));
  return { result, heartbeats };
}
