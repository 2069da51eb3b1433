/**
 * `npm run bench:paper-bounded`: one trial of the `paper` preset itself (224 px backbones at
 * width 1, the 64 px DCGAN of width 64) on the real archive, every stage exercised, with a step
 * limit per training stage: ingest, held-out set, subset, both GANs, 9x synthesis, the splits,
 * each backbone's fine-tuning (with and without GAN images) and every evaluation run in full,
 * while GAN training and fine-tuning stop after a few steps. One GPU worker process runs one
 * step at a time, so each stage's peak memory is its own. From the measured time per step it
 * extrapolates the wall time of the whole preset (three trials) on this machine.
 *
 *   npm run bench:paper-bounded [-- --data DIR] [--gan-steps N] [--fine-tune-steps N]
 *
 * Writes bench/results/paper-bounded.json and prints a table.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { StageProfileSchema } from '../activities/profile.js';
import { launchReproduction } from '../cli/launch.js';
import { resolveConfig } from '../pipelines/resolve.js';
import type { PipelineConfig } from '../pipelines/schema.js';
import { quietTemporalLogs } from '../workers/main.js';
import { startLocalStack } from '../workers/local-stack.js';
import { PROFILE_LOG_PREFIX } from '../workers/stage-profile.js';

const { values } = parseArgs({
  options: {
    data: { type: 'string', default: path.resolve(import.meta.dirname, '..', '..', 'shared', 'data', 'kermany-train') },
    'gan-steps': { type: 'string', default: '6' },
    'fine-tune-steps': { type: 'string', default: '6' },
  },
});
const data = path.resolve(values.data);
if (!existsSync(data)) {
  console.error(
    `No dataset at ${data}: pass --data with the chest_xray archive or a folder with NORMAL/ and PNEUMONIA/.`,
  );
  process.exit(2);
}
const ganSteps = Number(values['gan-steps']);
const boundedFineTuneSteps = Number(values['fine-tune-steps']);

const ProfileLineSchema = StageProfileSchema.extend({
  activity: z.string(),
  subject: z.string().optional(),
  workflowId: z.string().optional(),
  outcome: z.string(),
});
type ProfileLine = z.infer<typeof ProfileLineSchema>;

const profiles: ProfileLine[] = [];
const log = (line: string) => {
  const at = line.indexOf(PROFILE_LOG_PREFIX);
  if (at >= 0) {
    const profile = ProfileLineSchema.parse(JSON.parse(line.slice(at + PROFILE_LOG_PREFIX.length)));
    profiles.push(profile);
    console.error(
      `  ${profile.activity} ${profile.subject ?? ''}: ${profile.seconds.toFixed(1)} s, peak ${profile.peakRssMiB} MiB`,
    );
  } else if (/error|fail/i.test(line)) console.error(line);
};

// Children inherit the environment: every worker profiles its activities.
process.env.PNEUMOGAN_PROFILE = '1';
quietTemporalLogs();
const stateDir = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-paper-bounded-'));
const stack = await startLocalStack({ stateDir, log });
const started = performance.now();
let config: PipelineConfig;
try {
  config = await resolveConfig({
    preset: 'paper',
    data: { kind: 'folder', path: data },
    sets: [
      'protocol.trialSeeds=[1]',
      `gan.steps=${ganSteps}`,
      `gan.checkpointEvery=${ganSteps}`,
      `classifier.maxSteps=${boundedFineTuneSteps}`,
      `classifier.checkpointEvery=${boundedFineTuneSteps}`,
    ],
  });
  console.error(
    `[paper-bounded] one trial of the paper preset on ${data}: GAN ${ganSteps} steps, fine-tuning ${boundedFineTuneSteps} steps`,
  );
  const handle = await launchReproduction({
    client: stack.client,
    runName: 'paper-bounded',
    config,
    log: (l) => console.error(l),
  });
  await handle.result();
} finally {
  try {
    await stack.stop();
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
}
const wallSeconds = (performance.now() - started) / 1000;

/**
 * The whole preset's wall time from the bounded trial: each training stage's fixed cost (loading
 * its images, saving) plus the preset's full step count at the measured time per step; every
 * other stage as measured, since it ran in full. Steps run one after another on this machine
 * (more worker processes share the same cores), so the estimate adds the stages up: the steps
 * that happen once per run, then three times those of a trial.
 */
function estimate(paper: PipelineConfig, measured: readonly ProfileLine[]) {
  const { protocol, gan, classifier } = paper;
  const epochSteps = (examples: number) => Math.ceil(examples / classifier.batchSize);
  const oncePerRun = new Set(['ingestDataset', 'partitionDataset', 'importWeights', 'aggregateReport']);
  const stages = new Map<
    string,
    { seconds: number; fullSeconds: number; secondsPerStep?: number; peakRssMiB: number; perRun: boolean }
  >();
  for (const p of measured) {
    const key = `${p.activity}${p.subject ? ` ${p.subject}` : ''}`;
    const stage = stages.get(key) ?? { seconds: 0, fullSeconds: 0, peakRssMiB: 0, perRun: oncePerRun.has(p.activity) };
    const fixed = p.seconds - (p.secondsPerStep ?? 0) * p.steps;
    const perStep = p.secondsPerStep ?? 0;
    const full =
      p.activity === 'trainGan'
        ? gan.steps
        : p.activity === 'fineTune' && p.examples !== undefined
          ? classifier.epochs * epochSteps(p.examples)
          : p.steps;
    stage.fullSeconds += fixed + perStep * full;
    stage.seconds += p.seconds;
    stage.secondsPerStep ??= p.secondsPerStep;
    stage.peakRssMiB = Math.max(stage.peakRssMiB, p.peakRssMiB);
    stages.set(key, stage);
  }
  const trials = protocol.trialSeeds.length;
  const total = [...stages.values()].reduce((sum, s) => sum + s.fullSeconds * (s.perRun ? 1 : trials), 0);
  return { stages, totalSeconds: total, trials };
}

const paper = await resolveConfig({ preset: 'paper', data: { kind: 'folder', path: data } });
const { stages, totalSeconds, trials } = estimate(paper, profiles);
const hours = (s: number) => `${(s / 3600).toFixed(1)} h`;
console.log(`\nOne bounded trial of the paper preset on ${data}: ${wallSeconds.toFixed(0)} s wall`);
console.log(`(GAN ${ganSteps} steps, fine-tuning ${boundedFineTuneSteps} steps; everything else in full)\n`);
console.log('stage                          measured s   s/step   full-size s   peak RSS MiB');
for (const [name, s] of stages) {
  console.log(
    `${name.padEnd(30)} ${s.seconds.toFixed(1).padStart(10)} ${(s.secondsPerStep?.toFixed(2) ?? '—').padStart(8)} ` +
      `${s.fullSeconds.toFixed(0).padStart(13)} ${String(s.peakRssMiB).padStart(14)}${s.perRun ? '  (once per run)' : ''}`,
  );
}
console.log(
  `\nEstimated wall time of the whole paper preset (${trials} trials; GAN ${paper.gan.steps} steps, ` +
    `${paper.classifier.epochs} fine-tuning epochs) on this machine: ${hours(totalSeconds)}`,
);
await mkdir(path.resolve(import.meta.dirname, 'results'), { recursive: true });
const resultFile = path.resolve(import.meta.dirname, 'results', 'paper-bounded.json');
await writeFile(
  resultFile,
  JSON.stringify(
    {
      data,
      ganSteps,
      fineTuneSteps: boundedFineTuneSteps,
      wallSeconds,
      estimatedPaperSeconds: totalSeconds,
      stages: Object.fromEntries(stages),
      profiles,
      config: config!,
    },
    null,
    2,
  ),
);
console.log(`Results: ${resultFile}`);
