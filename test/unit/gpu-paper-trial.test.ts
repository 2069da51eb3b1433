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
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { registerFastCpuKernels } from '../../lib/compute/cpu-kernels.js';
import { KERMANY_SAMPLE } from '../../lib/data/kermany-sample.js';
import { countByClass } from '../../lib/data/manifest.js';
import { decodeGray } from '../../lib/images.js';
import { decodeSafetensors } from '../../lib/training/checkpoint.js';
import type { GanMeta } from '../../lib/training/gan.js';
import { PRESETS } from '../../pipelines/presets.js';
import { drawXray } from '../../gpu/gray-images.js';
import { decodeGrayJpeg, loadPaperData, packPaperData, trialImages } from '../../gpu/paper-data.js';
import { writeImageSet } from '../../gpu/image-set-file.js';
import { runPaperJob, type JobEvent, type PaperJob } from '../../gpu/paper-job.js';
import { runPaperTrial, type PaperTrialOptions, type PaperTrialResult } from '../../gpu/paper-trial.js';
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

/** A shrunken trial in its own folder under `root`, two steps at a time, on the CPU backend. */
const quickTrial = (folder: string, options: Partial<PaperTrialOptions> = {}) =>
  runPaperTrial({
    size: 'quick',
    workDir: path.join(root, folder),
    budgetSeconds: 600,
    parallel: 2,
    log: () => {},
    startJob,
    ...options,
  });

test("a smoke trial without packed X-rays draws 40 stand-ins in the archive's proportions and 20 held out per class", async () => {
  const { subset, heldout, data } = await trialImages({ size: 'smoke', subsetSize: 40, seed: 1 });
  assert.deepEqual(countByClass(subset), { NORMAL: 10, PNEUMONIA: 30 });
  assert.deepEqual(countByClass(heldout), { NORMAL: 20, PNEUMONIA: 20 });
  assert.match(data, /drawn/);
});

/** A step process that writes `stderr` and exits with `code`, or never exits (code undefined). */
const fakeStep = (stderr: string, code?: number) => () =>
  spawn(
    process.execPath,
    [
      '-e',
      code === undefined
        ? 'setTimeout(() => {}, 60_000)'
        : `console.error(${JSON.stringify(stderr)}); process.exit(${code})`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );

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

test('a colour picture or one of another size is refused by name', async () => {
  const colour = await sharp({ create: { width: 224, height: 224, channels: 3, background: { r: 200, g: 30, b: 30 } } })
    .jpeg()
    .toBuffer();
  assert.throws(() => decodeGrayJpeg(colour, 224, 'red.jpeg'), /red\.jpeg has colour/);
  assert.throws(() => decodeGrayJpeg(colour, 64, 'red.jpeg'), /red\.jpeg is 224x224; the paper trial takes 64x64/);
});

test('a shrunken trial runs every step in its own process, in the workflow order, and scores three protocols', async () => {
  const updates: PaperTrialResult[] = [];
  const result = await quickTrial('quick', {
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
  const result = await quickTrial('failing', {
    parallel: 3,
    startJob: fakeStep('at somewhere\nRangeError: out of device memory', 3),
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
  const result = await quickTrial('budget', {
    // Long enough for the images to be drawn on a loaded machine; the steps never end by themselves.
    budgetSeconds: 5,
    startJob: fakeStep(''),
  });
  assert.equal(result.complete, false);
  assert.deepEqual(
    result.jobs.filter((j) => j.state === 'stopped').map((j) => j.name),
    ['gan:NORMAL', 'gan:PNEUMONIA'],
  );
  assert.ok(
    result.jobs.every((j) => j.state !== 'stopped' || j.endedAt !== undefined),
    'stopped steps have closed before the result is written',
  );
  assert.match(paperTrialReport(result, 'CPU'), /\| gan:NORMAL \| stopped \|/);
});

test('a trial stopped by a failing step resumes: finished steps are kept, the rest run', async () => {
  const started: string[] = [];
  const pooledFineTune = /fine-tune-(alexnet|googlenet|squeezenet|resnet18)-job-json$/;
  const first = await quickTrial('resumed', {
    startJob: (spec) => (pooledFineTune.test(spec) ? fakeStep('Error: lost the GPU', 1)() : startJob(spec)),
  });
  assert.equal(first.complete, false);
  const doneFirst = first.jobs.filter((j) => j.state === 'done').map((j) => j.name);
  assert.ok(doneFirst.includes('gan:NORMAL') && doneFirst.includes('gan:PNEUMONIA'), doneFirst.join());

  const second = await quickTrial('resumed', {
    resume: true,
    startJob: (spec) => {
      started.push(path.basename(spec));
      return startJob(spec);
    },
  });
  assert.ok(second.complete, JSON.stringify(second.jobs));
  assert.equal(second.runs, 2);
  assert.equal(started.length, 10 - doneFirst.length, `started again: ${started.join(', ')}`);
  assert.ok(!started.some((s) => s.startsWith('gan-')), 'the GANs are not trained again');
  assert.equal(second.stages.find((s) => s.stage === 'gan:NORMAL')?.run, 1);
  assert.equal(second.stages.find((s) => s.stage === 'fine-tune:resnet18')?.run, 2);
  assert.equal(Object.keys(second.scores.heldout ?? {}).length, 4);
  assert.ok(second.seconds > first.seconds);
  assert.match(paperTrialReport(second, 'CPU'), /in 2 runs \(resumed/);
  await assert.rejects(
    () => quickTrial('resumed', { size: 'paper', resume: true }),
    /holds a quick trial with seed 1, not a paper trial with seed 1/,
  );
});

test('a GAN step resumes from its checkpoint to the same weights as one run straight through', async () => {
  await tf.setBackend('cpu');
  registerFastCpuKernels();
  const dir = path.join(root, 'gan-resume');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const gan = { ...PRESETS.smoke!.gan, steps: 4, checkpointEvery: 2 };
  const images = Array.from({ length: 6 }, (_, i) => ({
    image: drawXray('NORMAL', gan.imageSize, i),
    label: 'NORMAL' as const,
  }));
  await writeImageSet(path.join(dir, 'images'), images);
  const job = (name: string, steps: number): PaperJob => ({
    kind: 'gan',
    label: 'NORMAL',
    seed: 5,
    gan: { ...gan, steps },
    images: path.join(dir, 'images'),
    syntheticCount: 2,
    out: path.join(dir, `${name}-out`),
    checkpoint: path.join(dir, `${name}.safetensors`),
  });
  const events: JobEvent[] = [];
  await runPaperJob(job('straight', 4), () => {});
  await runPaperJob(job('resumed', 2), () => {});
  await runPaperJob(job('resumed', 4), (e) => events.push(e));
  assert.match(events.map((e) => (e.type === 'stage' ? e.detail : '')).join(), /resumed at step 2/);
  const read = async (name: string) =>
    decodeSafetensors<GanMeta>(await readFile(path.join(dir, `${name}.safetensors`)), name);
  const [straight, resumed] = [await read('straight'), await read('resumed')];
  assert.deepEqual(resumed.meta.history, straight.meta.history);
  // tfjs suffixes the names of a process's second model (kernel_1); the values are what count.
  const values = (state: typeof straight) =>
    Object.fromEntries(Object.entries(state.groups).map(([g, arrays]) => [g, arrays.map((a) => [a.shape, a.data])]));
  assert.deepEqual(values(resumed), values(straight));
});
