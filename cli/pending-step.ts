/**
 * One line per running step for `pneumogan status`: which attempt, how far it got, and how old its
 * resume point is. On a multi-day run that is what tells a step that keeps dying but moves forward
 * (retries are working) from one that makes no progress (the step gives up after 10 attempts and
 * 30 minutes without a new checkpoint, activities/shared.ts).
 */
import { defaultPayloadConverter } from '@temporalio/common';
import type proto from '@temporalio/proto';
import { ProgressDetailsSchema, type ProgressDetails } from '../activities/shared.js';

type PendingActivity = proto.temporal.api.workflow.v1.IPendingActivityInfo;

/** A running step's last heartbeat details, when they are progress details (`follow` and `status` read them). */
export function progressDetails(activity: PendingActivity): ProgressDetails | undefined {
  const payload = activity.heartbeatDetails?.payloads?.[0];
  const parsed = payload ? ProgressDetailsSchema.safeParse(defaultPayloadConverter.fromPayload(payload)) : undefined;
  return parsed?.success ? parsed.data : undefined;
}

export function describePendingStep(activity: PendingActivity, now = Date.now()): string {
  const parts = [`${activity.activityType?.name ?? 'step'} attempt ${activity.attempt ?? 1}`];
  const details = progressDetails(activity);
  if (details) {
    if (details.total > 0) parts.push(`${details.stage} ${details.done}/${details.total}`);
    if (details.checkpointStep !== undefined)
      parts.push(
        `resumes from step ${details.checkpointStep}` +
          (details.progressAt !== undefined ? ` (checkpointed ${age(now - details.progressAt)} ago)` : ''),
      );
    if (details.stalledAttempts) parts.push(`${details.stalledAttempts} attempt(s) in a row without a new checkpoint`);
  }
  if (activity.lastFailure?.message) parts.push(`last failure: ${activity.lastFailure.message}`);
  return parts.join(', ');
}

function age(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 2 * 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
