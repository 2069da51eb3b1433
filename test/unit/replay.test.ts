/**
 * Determinism guard: every recorded history (test/replay/histories, one set per workflow version
 * that shipped) must replay against today's workflow code. A change that alters the commands an
 * in-flight run already issued fails here; wrap such changes in `patched()` instead.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { quietTemporalLogs } from '../../workers/main.js';

const historiesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'replay', 'histories');
const workflowsPath = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'workflows', 'index.ts');

test('every recorded workflow history replays against the current workflow code', { timeout: 5 * 60_000 }, async () => {
  quietTemporalLogs();
  const files = (await readdir(historiesDir)).filter((f) => f.endsWith('.binpb')).sort();
  assert.ok(files.length >= 2, `expected recorded histories in ${historiesDir}`);
  const histories = await Promise.all(
    files.map(async (file) => ({
      workflowId: decodeURIComponent(file.replace(/\.binpb$/, '')),
      history: proto.temporal.api.history.v1.History.decode(await readFile(path.join(historiesDir, file))),
    })),
  );
  const results: string[] = [];
  for await (const result of Worker.runReplayHistories({ workflowsPath }, histories)) {
    results.push(`${result.workflowId}: ${result.error ? String(result.error) : 'ok'}`);
  }
  assert.deepEqual(
    results.filter((r) => !r.endsWith(': ok')),
    [],
    results.join('\n'),
  );
  assert.equal(results.length, files.length);
});
