/**
 * The paper's counts end to end on real X-rays, with models small enough for CI: a fixed
 * 1,000-image part of the archive's train split, a 624-image subset, 9x synthesis (5,616 GAN
 * images), the pooled 6,240 split 4,992 / 1,248, every backbone fine-tuned and evaluated under
 * the three protocols. Every stage's counts are checked, not only that the run finished.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import type { TrialResult } from '../../activities/types.js';
import { launchReproduction } from '../../cli/launch.js';
import { ImageSetSchema, SplitSchema } from '../../lib/data/manifest.js';
import { resolveConfig } from '../../pipelines/resolve.js';
import { BACKBONES, CLASS_NAMES, PROTOCOLS } from '../../pipelines/schema.js';
import { quietTemporalLogs } from '../../workers/main.js';
import { startLocalStack, type LocalStack } from '../../workers/local-stack.js';
import { KERMANY_TRAIN } from '../../lib/data/kermany-sample.js';

const missing = existsSync(KERMANY_TRAIN)
  ? false
  : `the archive's train split is not at ${KERMANY_TRAIN} (CI provides it beside the checkout; a user's clone does not have it)`;

/** 1,000 images in the archive's class proportions (257 NORMAL, 743 PNEUMONIA), every k-th file by name. */
const PART = { NORMAL: 257, PNEUMONIA: 743 } as const;

let stateDir: string;
let stack: LocalStack;

before(async () => {
  if (missing) return;
  quietTemporalLogs();
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-counts-'));
  for (const label of CLASS_NAMES) {
    const files = (await readdir(path.join(KERMANY_TRAIN, label))).filter((f) => f.endsWith('.jpeg')).sort();
    const stride = files.length / PART[label];
    await mkdir(path.join(stateDir, 'data', label), { recursive: true });
    for (let i = 0; i < PART[label]; i++) {
      const file = files[Math.floor(i * stride)]!;
      await copyFile(path.join(KERMANY_TRAIN, label, file), path.join(stateDir, 'data', label, file));
    }
  }
  stack = await startLocalStack({ stateDir: path.join(stateDir, 'state'), gpuConcurrency: 2 });
});

after(async () => {
  try {
    await stack?.stop();
  } finally {
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  }
});

test(
  "the paper's counts at every stage on 1,000 real X-rays: 624 -> +5,616 -> 4,992 / 1,248",
  { skip: missing, timeout: 15 * 60_000 },
  async () => {
    // paper-cpu's protocol (the paper's) with one trial and tiny models.
    const config = await resolveConfig({
      preset: 'paper-cpu',
      data: { kind: 'folder', path: path.join(stateDir, 'data') },
      sets: [
        'protocol.trialSeeds=[5]',
        'gan.imageSize=32',
        'gan.latentDim=16',
        'gan.generatorWidth=4',
        'gan.discriminatorWidth=4',
        'gan.batchSize=8',
        'gan.steps=4',
        'gan.checkpointEvery=2',
        'classifier.widthMultiplier=0.125',
        'classifier.maxSteps=3',
        'classifier.batchSize=8',
        'classifier.checkpointEvery=2',
      ],
    });
    const { client, store } = stack;
    const handle = await launchReproduction({ client, runName: 'paper-counts', config, log: () => {} });
    const { dataset, trials } = await handle.result();

    assert.deepEqual(dataset.counts, PART, 'ingest: every copied image');
    const [trial] = trials;
    assert.ok(trial);
    const subset = trial.subsetCounts;
    assert.equal(subset.NORMAL + subset.PNEUMONIA, 624, 'subset: exactly 624 real images');
    assert.deepEqual(subset, { NORMAL: 160, PNEUMONIA: 464 }, 'subset: in class proportion of the pool');
    const subsetImages = (await store.getJson(trial.subset, ImageSetSchema)).images;
    assert.equal(subsetImages.length, 624);
    assert.ok(subsetImages.every((i) => i.origin === 'real'));

    for (const gan of trial.gans) {
      assert.equal(gan.syntheticCount, 9 * subset[gan.label], `synthesis: 9x the ${gan.label} subset`);
      const images = (await store.getJson(gan.synthetic, ImageSetSchema)).images;
      assert.equal(images.length, gan.syntheticCount);
      assert.ok(images.every((i) => i.origin === 'synthetic' && i.label === gan.label));
    }
    assert.equal(
      trial.gans.reduce((n, g) => n + g.syntheticCount, 0),
      5616,
    );

    const pooled = trial.pooledSplit!;
    const sum = (c: { NORMAL: number; PNEUMONIA: number }) => c.NORMAL + c.PNEUMONIA;
    assert.equal(sum(pooled.train.images), 4992, 'paper split: 80% of 6,240');
    assert.equal(sum(pooled.test.images), 1248, 'paper split: 20% of 6,240');
    assert.deepEqual(pooled.train.images, { NORMAL: 1280, PNEUMONIA: 3712 });
    assert.equal(pooled.train.origins!.real + pooled.test.origins!.real, 624);
    assert.equal(pooled.train.origins!.synthetic + pooled.test.origins!.synthetic, 5616);
    const split = await store.getJson(pooled.split, SplitSchema);
    assert.equal(split.train.length, 4992);
    assert.equal(split.test.length, 1248);
    // A class's picture never sits on both sides (a 4-step GAN repeats itself; its repeats stay together).
    const trainContent = new Set(split.train.map((i) => `${i.label}/${i.image.sha256}`));
    assert.ok(
      split.test.every((i) => !trainContent.has(`${i.label}/${i.image.sha256}`)),
      'no image of a class (not even a repeated GAN output) on both sides',
    );

    const real = trial.realSplit!;
    assert.equal(sum(real.train.images) + sum(real.test.images), 624, 'no-GAN split: the real subset');
    assert.deepEqual(real.train.images, { NORMAL: 128, PNEUMONIA: 371 });

    // The held-out set: 10% of each class by whole patients, the rest is the sampling pool.
    const summary = z
      .object({ heldout: z.object({ counts: z.object({ NORMAL: z.number(), PNEUMONIA: z.number() }) }) })
      .parse(JSON.parse((await store.getAt('runs/paper-counts/summary.json')).toString('utf8')));
    assert.deepEqual(summary.heldout.counts, { NORMAL: 26, PNEUMONIA: 74 });
    for (const protocol of PROTOCOLS) {
      const evaluations: TrialResult['evaluations'] = trial.evaluations.filter((e) => e.protocol === protocol);
      assert.deepEqual(evaluations.map((e) => e.backbone).sort(), [...BACKBONES].sort(), `${protocol}: every backbone`);
      const expected = protocol === 'paper' ? 1248 : protocol === 'no-gan' ? sum(real.test.images) : 100;
      for (const e of evaluations)
        assert.equal(e.metrics.support, expected, `${protocol} ${e.backbone}: whole test set`);
    }

    const report = (await store.getAt('runs/paper-counts/report.md')).toString('utf8');
    assert.match(
      report,
      /Sampling pool: 900 real images \(231 NORMAL, 669 PNEUMONIA\) remained .* after the held-out set/,
    );
    assert.match(report, /each trial drew 624 of them \(160 NORMAL, 464 PNEUMONIA\)/);
    // How many of the 1,248 are real depends on the draw (a 4-step GAN's repeated picture must train).
    const testSet = report.match(
      /Test set per trial: the pooled 20% of real \+ GAN images, 1,248 images \(320 NORMAL, 928 PNEUMONIA; ([\d,]+) real \+ ([\d,]+) GAN-made\)/,
    );
    assert.ok(testSet, 'the report states the test set and its composition');
    const count = (n: string) => Number(n.replace(',', ''));
    assert.equal(count(testSet[1]!), pooled.test.origins!.real);
    assert.equal(count(testSet[1]!) + count(testSet[2]!), 1248);
  },
);
