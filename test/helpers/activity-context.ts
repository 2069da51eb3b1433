/**
 * Runs activity code outside a worker, in an activity Context of its own (what
 * @temporalio/testing's MockActivityEnvironment does, without that package): records every
 * heartbeat with its time and lets the caller cancel. For tests and benchmarks of activities
 * whose cost is storage, not orchestration.
 */
import { asyncLocalStorage, Context, type Info } from '@temporalio/activity';
import { CancelledFailure, noopMetricMeter } from '@temporalio/common';

export interface ActivityHarness {
  /** Every heartbeat so far, with `performance.now()` times. */
  heartbeats: Array<{ at: number; details: unknown }>;
  /** Requests cancellation, as the server does after a workflow cancels the activity. */
  cancel(): void;
}

export interface ActivitySpec {
  workflowId: string;
  activityType: string;
  activityId?: string;
  attempt?: number;
  heartbeatDetails?: unknown;
}

export async function runInActivity<T>(
  spec: ActivitySpec,
  body: (harness: ActivityHarness) => Promise<T>,
): Promise<{ result: T; heartbeats: ActivityHarness['heartbeats'] }> {
  const heartbeats: ActivityHarness['heartbeats'] = [];
  const abort = new AbortController();
  let rejectCancelled: (err: unknown) => void = () => {};
  const cancelled = new Promise<never>((_, reject) => (rejectCancelled = reject));
  cancelled.catch(() => undefined);
  const info = {
    taskToken: new Uint8Array(),
    base64TaskToken: '',
    activityId: spec.activityId ?? '1',
    activityType: spec.activityType,
    activityNamespace: 'default',
    attempt: spec.attempt ?? 1,
    isLocal: false,
    workflowExecution: { workflowId: spec.workflowId, runId: 'test-run' },
    workflowNamespace: 'default',
    workflowType: 'test',
    scheduledTimestampMs: Date.now(),
    scheduleToCloseTimeoutMs: 0,
    startToCloseTimeoutMs: 0,
    currentAttemptScheduledTimestampMs: Date.now(),
    heartbeatDetails: spec.heartbeatDetails,
    taskQueue: 'test',
    namespace: 'default',
    inWorkflow: true,
  } as unknown as Info;
  const quiet = () => {};
  const logger = { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet };
  const context = new Context(
    info,
    cancelled,
    abort.signal,
    (details?: unknown) => heartbeats.push({ at: performance.now(), details }),
    undefined,
    logger,
    noopMetricMeter,
    { details: undefined },
  );
  const harness: ActivityHarness = {
    heartbeats,
    cancel() {
      const failure = new CancelledFailure('CANCELLED');
      abort.abort(failure);
      rejectCancelled(failure);
    },
  };
  const result = await asyncLocalStorage.run(context, () => body(harness));
  return { result, heartbeats };
}
