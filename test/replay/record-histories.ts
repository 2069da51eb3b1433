/**
 * Records the event histories of one small reproduction (the parent workflow and each trial) as
 * JSON fixtures for the replay test. Run it before a workflow change ships, so runs started by
 * the code of that day keep replaying against every later version:
 *
 *   node --import tsx test/replay/record-histories.ts <label>
 *
 * writes test/replay/histories/pneumogan-replay-<label>.binpb (the parent) and ...%2Ftrial-1.binpb.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import proto from '@temporalio/proto';
import { launchReproduction } from '../../cli/launch.js';
import { resolvePreset } from '../../pipelines/presets.js';
import { quietTemporalLogs } from '../../workers/main.js';
import { startLocalStack } from '../../workers/local-stack.js';

const label = process.argv[2];
if (!label || !/^[a-z0-9-]+$/.test(label))
  throw new Error('usage: record-histories.ts <label> (lower-case letters, digits, dashes)');
const outDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'histories');

quietTemporalLogs();
const stateDir = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-record-'));
const stack = await startLocalStack({ stateDir, gpuConcurrency: 2 });
try {
  // Every stage kind of the pipeline, as small as it goes: one trial of one backbone, all protocols.
  const config = resolvePreset('smoke');
  config.protocol.trialSeeds = [1];
  config.gan.steps = 4;
  config.gan.checkpointEvery = 2;
  config.classifier.backbones = ['alexnet'];
  config.classifier.epochs = 1;
  const { client } = stack;
  const handle = await launchReproduction({ client, runName: `replay-${label}`, config, log: () => {} });
  await handle.result();
  await mkdir(outDir, { recursive: true });
  const ids = [handle.workflowId, `${handle.workflowId}/trial-1`];
  for (const id of ids) {
    const history = await client.workflow.getHandle(id).fetchHistory();
    // The file name is the workflow id (URI-encoded): replay must use the recorded id.
    const file = path.join(outDir, `${encodeURIComponent(id)}.binpb`);
    // Binary protobuf: exact, and decoded by the same @temporalio/proto the worker replays with.
    await writeFile(file, proto.temporal.api.history.v1.History.encode(history).finish());
    console.log(`${file}: ${history.events?.length ?? 0} events`);
  }
} finally {
  try {
    await stack.stop();
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
}
