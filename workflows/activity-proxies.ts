/**
 * The activity proxies of the trial workflow and its analyses: one timeout and retry policy for
 * each kind of worker, so that every stage of a trial retries the same way.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { createAnalysisActivities } from '../activities/analysis.js';
import type { createCpuActivities } from '../activities/cpu.js';
import type { createGpuActivities } from '../activities/gpu.js';
import type { createResolutionActivities } from '../activities/resolution.js';
import { NON_RETRYABLE_TYPES } from '../lib/errors.js';

export type CpuActivities = ReturnType<typeof createCpuActivities> & ReturnType<typeof createResolutionActivities>;
export type GpuActivities = ReturnType<typeof createGpuActivities> & ReturnType<typeof createAnalysisActivities>;

export function cpuActivities(taskQueue: string) {
  return proxyActivities<CpuActivities>({
    taskQueue,
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '2 minutes',
    retry: {
      initialInterval: '2 seconds',
      backoffCoefficient: 2,
      maximumInterval: '1 minute',
      maximumAttempts: 8,
      nonRetryableErrorTypes: NON_RETRYABLE_TYPES,
    },
  });
}

export function gpuActivities(taskQueue: string, heartbeatTimeoutSeconds: number | undefined) {
  return proxyActivities<GpuActivities>({
    taskQueue,
    // Paper-size GAN training takes hours; the heartbeat, not this bound, detects dead workers.
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: `${heartbeatTimeoutSeconds ?? 60} seconds`,
    retry: {
      initialInterval: '5 seconds',
      backoffCoefficient: 2,
      // A worker death already cost a heartbeat timeout; a step killed often should not also wait
      // minutes for each retry (the backoff grows with attempts, not with consecutive failures).
      maximumInterval: '30 seconds',
      // A backstop only: a step gives up by itself after 10 attempts and 30 minutes without a new
      // checkpoint (activities/shared.ts), while one that moves forward goes on through worker
      // deaths (a day of GAN training may outlive many of them).
      maximumAttempts: 200,
      nonRetryableErrorTypes: NON_RETRYABLE_TYPES,
    },
  });
}
