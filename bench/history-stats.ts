/**
 * `npm run bench:history -- <run> [--state-dir DIR]`: how large a reproduction's workflow
 * histories grew: the event count of the parent and of each trial, and the largest payload any
 * event carried (activity inputs and results, child workflow inputs and results), so one can see
 * that histories and payloads stay bounded at paper size (payloads are references and counts).
 */
import { parseArgs } from 'node:util';
import type { temporal } from '@temporalio/proto';
import { withServices } from '../cli/services.js';
import { reproductionWorkflowId } from '../lib/run-names.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'state-dir': { type: 'string', default: '.pneumogan' } },
});
const runName = positionals[0];
if (!runName) {
  console.error('usage: npm run bench:history -- <run name> [--state-dir DIR]');
  process.exit(2);
}

type Event = temporal.api.history.v1.IHistoryEvent;

/** Bytes of every payload an event carries, and what carried them. */
function payloadsOf(event: Event): Array<{ bytes: number; what: string }> {
  const sized = (what: string, payloads: temporal.api.common.v1.IPayloads | null | undefined) =>
    payloads?.payloads?.length
      ? [{ what, bytes: payloads.payloads.reduce((n, p) => n + (p.data?.length ?? 0), 0) }]
      : [];
  return [
    ...sized('workflow input', event.workflowExecutionStartedEventAttributes?.input),
    ...sized('workflow result', event.workflowExecutionCompletedEventAttributes?.result),
    ...sized(
      `activity ${event.activityTaskScheduledEventAttributes?.activityType?.name} input`,
      event.activityTaskScheduledEventAttributes?.input,
    ),
    ...sized('activity result', event.activityTaskCompletedEventAttributes?.result),
    ...sized('child workflow input', event.startChildWorkflowExecutionInitiatedEventAttributes?.input),
    ...sized('child workflow result', event.childWorkflowExecutionCompletedEventAttributes?.result),
  ];
}

await withServices(values['state-dir'], async ({ client }) => {
  const parentId = reproductionWorkflowId(runName);
  const parent = await client.workflow.getHandle(parentId).fetchHistory();
  const trialIds = [
    ...new Set(
      (parent.events ?? []).flatMap((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId ?? []),
    ),
  ];
  console.log('workflow                                   events   payload bytes   largest payload');
  for (const id of [parentId, ...trialIds]) {
    const history = id === parentId ? parent : await client.workflow.getHandle(id).fetchHistory();
    const events = history.events ?? [];
    const largest = events.flatMap(payloadsOf).reduce((a, b) => (b.bytes > a.bytes ? b : a), { bytes: 0, what: '—' });
    const payloadBytes = events.flatMap(payloadsOf).reduce((n, p) => n + p.bytes, 0);
    console.log(
      `${id.padEnd(40)} ${String(events.length).padStart(8)} ${String(payloadBytes).padStart(15)}   ${largest.bytes} bytes (${largest.what})`,
    );
  }
});
