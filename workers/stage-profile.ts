/**
 * `PNEUMOGAN_PROFILE=1`: every activity a worker runs logs one line with its wall time, time per
 * training step and the worker process's peak memory while it ran, as JSON after `[profile]`.
 * The bounded paper run (bench/paper-bounded.ts) reads these lines to size the `paper` preset.
 */
import type { ActivityInboundCallsInterceptor, ActivityInterceptorsFactory } from '@temporalio/worker';
import { StageProfiler, withStageProfiler } from '../activities/profile.js';

export const PROFILE_LOG_PREFIX = '[profile] ';

/** What the log line says the activity worked on: its class label or backbone, when it has one. */
function subjectOf(args: readonly unknown[]): string | undefined {
  const first = args[0] as { label?: unknown; backbone?: unknown } | undefined;
  return [first?.backbone, first?.label].filter((v): v is string => typeof v === 'string').join(' ') || undefined;
}

export function stageProfileInterceptors(log: (line: string) => void): ActivityInterceptorsFactory {
  return (ctx) => {
    const inbound: ActivityInboundCallsInterceptor = {
      async execute(input, next) {
        const profiler = new StageProfiler();
        let outcome = 'completed';
        try {
          return await withStageProfiler(profiler, () => next(input));
        } catch (err) {
          outcome = 'failed';
          throw err;
        } finally {
          const { activityType, workflowExecution } = ctx.info;
          log(
            PROFILE_LOG_PREFIX +
              JSON.stringify({
                activity: activityType,
                subject: subjectOf(input.args),
                workflowId: workflowExecution?.workflowId,
                outcome,
                ...profiler.finish(),
              }),
          );
        }
      },
    };
    return { inbound };
  };
}
