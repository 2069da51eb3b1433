/**
 * Workflow for test/integration/blocked-heartbeat.test.ts: one activity with a 2 s heartbeat
 * timeout and no retry, which blocks its event loop for longer than that.
 */
import { proxyActivities } from '@temporalio/workflow';

export interface BlockingActivities {
  blockEventLoop(ms: number): Promise<string>;
}

/** Runs the activity on `taskQueue` (the test has a worker with the bridge and one without). */
export async function blockOnce(ms: number, taskQueue: string): Promise<string> {
  const { blockEventLoop } = proxyActivities<BlockingActivities>({
    taskQueue,
    startToCloseTimeout: '1 minute',
    heartbeatTimeout: '2 seconds',
    retry: { maximumAttempts: 1 },
  });
  return blockEventLoop(ms);
}
