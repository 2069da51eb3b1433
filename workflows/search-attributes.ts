/**
 * Keeps a reproduction's search attributes (lib/search-attributes.ts) current. The upserts are
 * workflow commands, so runs started before they existed must not issue them on replay: every
 * call is behind `patched('search-attributes')`.
 */
import { defineSearchAttributeKey } from '@temporalio/common';
import { patched, upsertSearchAttributes } from '@temporalio/workflow';
import { SEARCH_ATTRIBUTES, type RunStatus } from '../lib/search-attributes.js';

const PRESET = defineSearchAttributeKey(SEARCH_ATTRIBUTES.preset, 'KEYWORD');
const DATASET = defineSearchAttributeKey(SEARCH_ATTRIBUTES.datasetSha256, 'KEYWORD');
const STATUS = defineSearchAttributeKey(SEARCH_ATTRIBUTES.status, 'KEYWORD');

export const SEARCH_ATTRIBUTES_PATCH = 'search-attributes';

export function publishRun(fields: { preset?: string; datasetSha256?: string; status?: RunStatus }): void {
  if (!patched(SEARCH_ATTRIBUTES_PATCH)) return;
  upsertSearchAttributes([
    ...(fields.preset !== undefined ? [{ key: PRESET, value: fields.preset }] : []),
    ...(fields.datasetSha256 !== undefined ? [{ key: DATASET, value: fields.datasetSha256 }] : []),
    ...(fields.status !== undefined ? [{ key: STATUS, value: fields.status }] : []),
  ]);
}
