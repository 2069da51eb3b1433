/**
 * The workflow `npm run bench` times on the local Temporal dev server: `n` sequential calls of
 * a no-op activity, so each iteration is one full round trip (workflow task schedules the
 * activity, a worker runs it, its completion wakes the workflow again).
 */
import { proxyActivities } from '@temporalio/workflow';

export interface BenchActivities {
  noop(i: number): Promise<number>;
}

const { noop } = proxyActivities<BenchActivities>({ startToCloseTimeout: '30 seconds' });

export async function activityRoundTrips(n: number): Promise<number> {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += await noop(i);
  return sum;
}
