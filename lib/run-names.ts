/**
 * A reproduction's Temporal workflow id is derived from its run name, so launching a name again
 * attaches to the same run, and any artifact's producer (a workflow id) names its run.
 */
const PREFIX = 'pneumogan-';

export function reproductionWorkflowId(runName: string): string {
  return `${PREFIX}${runName}`;
}

/** `pneumogan-<run>` or `pneumogan-<run>/trial-2` -> `<run>`; other workflow ids -> undefined. */
export function runNameFromWorkflowId(workflowId: string): string | undefined {
  if (!workflowId.startsWith(PREFIX)) return undefined;
  return workflowId.slice(PREFIX.length).split('/')[0] || undefined;
}
