/**
 * The GPU pack's paper trial (gpu/paper-data.ts, gpu/paper-trial.ts, gpu/paper-job.ts) on this
 * machine's CPU backend: the packed X-rays are chosen by the pipeline's protocol functions and
 * decode as sharp decodes them; a shrunken trial runs every step in its own process in the
 * workflow's order and scores all three protocols; a step that fails, or a time budget that runs
 * out, leaves a result that says so.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { KERMANY_SAMPLE } from '../../lib/data/kermany-sample.js';
import { decodeGray } from '../../lib/images.js';
import { decodeGrayJpeg, loadPaperData, packPaperData } from '../../gpu/paper-data.js';
import { runPaperTrial, type PaperTrialResult } from '../../gpu/paper-trial.js';
import { paperTrialReport } from '../../gpu/paper-trial-report.js';

const root = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-paper-trial-test-'));
after(() => rm(root, { recursive: true, force: true }));

const sampleMissing = existsSync(KERMANY_SAMPLE)
  ? false
  : `the real Kermany sample is not at ${KERMANY_SAMPLE} (CI provides it beside the checkout; a user's clone does not have it)`;

const RUN_TS = path.resolve(import.meta.dirname, '..', '..', 'gpu', 'run.ts');
const startJob = (specFile: string) =>
  spawn(process.execPath, ['--import', 'tsx', RUN_TS, '--paper-job', specFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PNEUMOGAN_BACKEND: 'cpu' },
  });

test(
  'the pack takes a stratified subset and a held-out set by whole patients, decoded as sharp does',
  { skip: sampleMissing },
  async () => {
    const dest = path.join(root, 'data');
    const manifest = await packPaperData(KERMANY_SAMPLE, dest, { subsetSize: 60 });
    assert.equal(manifest.source, 'kermany-sample');
    assert.equal(manifest.subset.length, 60);
    const heldoutPatients = new Set(manifest.heldout.map((h) => h.patientId));
    assert.ok(manifest.heldout.length > 0);
    assert.ok(
      manifest.subset.every((s) => s.patientId === null || !heldoutPatients.has(s.patientId)),
      'no patient on both sides',
    );
    const normal = manifest.subset.filter((s) => s.label === 'NORMAL').length;
    const total = (await readdir(path.join(KERMANY_SAMPLE, 'NORMAL'))).length;
    assert.ok(
      normal > 0 && normal < 60 && Math.abs(normal / 60 - total / 366) < 0.1,
      `stratified: ${normal} NORMAL of 60`,
    );

    const { subset, heldout } = await loadPaperData(dest, 224);
    assert.equal(subset.length + heldout.length, manifest.subset.length + manifest.heldout.length);
    // jpeg-js rounds its inverse DCT a little differently from libjpeg-turbo: at most one grey level.
    for (const entry of manifest.subset.slice(0, 5)) {
      const bytes = await readFile(path.join(dest, entry.file));
      const ours = decodeGrayJpeg(bytes, 224, entry.file);
      const sharp = await decodeGray(bytes, 224, entry.file);
      const worst = ours.pixels.reduce((m, v, i) => Math.max(m, Math.abs(v - sharp.pixels[i]!)), 0);
      assert.ok(worst <= 1, `${entry.file}: ${worst} grey levels from sharp`);
    }
    await assert.rejects(() => loadPaperData(dest, 64), /is 224x224; the paper trial takes 64x64/);
  },
);

test('a shrunken trial runs every step in its own process, in the workflow order, and scores three protocols', async () => {
  const updates: PaperTrialResult[] = [];
  const result = await runPaperTrial({
    quick: true,
    workDir: path.join(root, 'quick'),
    budgetSeconds: 600,
    parallel: 2,
    log: () => {},
    startJob,
    onUpdate: (r) => {
      updates.push(structuredClone(r));
      return Promise.resolve();
    },
  });
  assert.ok(result.complete, JSON.stringify(result.jobs));
  assert.equal(result.jobs.length, 10);
  const ended = (stage: string) => result.stages.find((s) => s.stage === stage)?.endedAt ?? NaN;
  for (const label of ['NORMAL', 'PNEUMONIA']) assert.ok(ended(`gan:${label}`) <= ended('split'));
  for (const backbone of ['alexnet', 'googlenet', 'squeezenet', 'resnet18']) {
    assert.ok(ended('split') <= ended(`fine-tune:${backbone}`), `${backbone} after the split`);
    for (const protocol of ['paper', 'heldout', 'no-gan']) {
      const scores = result.scores[protocol]?.[backbone];
      assert.ok(scores && scores.accuracy >= 0 && scores.accuracy <= 1 && scores.images > 0, `${protocol} ${backbone}`);
    }
  }
  assert.ok(updates.length >= result.stages.length, 'a result after every stage');
  const report = paperTrialReport(result, 'CPU');
  assert.match(report, /Complete after/);
  assert.match(report, /\| resnet18 \| .+% .+\| .+% .+\| .+% /);
});

test('a failing step stops the trial and its error line is kept', async () => {
  const result = await runPaperTrial({
    quick: true,
    workDir: path.join(root, 'failing'),
    budgetSeconds: 600,
    parallel: 3,
    log: () => {},
    startJob: () =>
      spawn(
        process.execPath,
        ['-e', 'console.error("at somewhere\\nRangeError: out of device memory"); process.exit(3)'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
  });
  assert.equal(result.complete, false);
  const failed = result.jobs.filter((j) => j.state === 'failed');
  assert.ok(failed.length >= 1);
  assert.equal(failed[0]!.error, 'exit 3: RangeError: out of device memory');
  assert.ok(
    result.jobs.some((j) => j.state === 'waiting'),
    'nothing else starts after a failure',
  );
});

test('past its time budget the running steps are stopped and the result says how far they got', async () => {
  const result = await runPaperTrial({
    quick: true,
    workDir: path.join(root, 'budget'),
    // Long enough for the images to be drawn on a loaded machine; the steps never end by themselves.
    budgetSeconds: 5,
    parallel: 2,
    log: () => {},
    startJob: () =>
      spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: ['ignore', 'pipe', 'pipe'] }),
  });
  assert.equal(result.complete, false);
  assert.deepEqual(
    result.jobs.filter((j) => j.state === 'stopped').map((j) => j.name),
    ['gan:NORMAL', 'gan:PNEUMONIA'],
  );
  assert.match(paperTrialReport(result, 'CPU'), /\| gan:NORMAL \| stopped \|/);
});
