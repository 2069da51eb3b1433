/**
 * One trial of the `paper` (or `smoke`) preset's GPU steps on a GPU machine, without Temporal or
 * S3, in the workflow's order (workflows/index.ts): the two DCGANs, each class's synthetic images
 * (9 per real one), the pooled 80/20 split, the four backbones fine-tuned on it and evaluated on
 * its test side and on the held-out real X-rays, and the four no-gan fine-tunings on the real
 * subset alone, which need no GAN and start at once. Each step runs in its own process
 * (gpu/paper-job.ts), up to `parallel` at a time, as GPU workers on one machine would.
 *
 * Past the time budget the running steps are stopped, and the result says how far each got and at
 * what rate. The state is kept in the work folder after every stage, so a later run with `resume`
 * (on the same machine: a lent one runs a command for at most 10 minutes, a trial takes longer)
 * skips the finished steps and continues the others from their checkpoints, as an activity's retry
 * would. `onUpdate` gets the result after every stage.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { countByClass } from '../lib/data/manifest.js';
import { InputError } from '../lib/errors.js';
import { sha256Hex } from '../lib/storage.js';
import { stratifiedSplit } from '../lib/protocol/sampling.js';
import { PRESETS } from '../pipelines/presets.js';
import { CLASS_NAMES, type Backbone, type ClassName, type PipelineConfig } from '../pipelines/schema.js';
import { asLabeledImage, trialImages, type RealPixels } from './paper-data.js';
import { readImageSet, writeImageSet } from './image-set-file.js';
import type { PaperJob, ProtocolScores } from './paper-job.js';
import { runStepProcesses, type JobStage, type StepProcess, type StepRecord } from './step-processes.js';
import { resizeGray } from './gray-images.js';

export interface PaperTrialStage {
  stage: string;
  /** Seconds from its run's start to the stage's end. */
  endedAt: number;
  /** Including the time an earlier run spent on it before it was stopped. */
  seconds: number;
  detail: string;
  /** Which run of the trial (1 unless resumed) finished it. */
  run: number;
}

/**
 * How big a trial is: the `paper` preset's, the `smoke` preset's (the pack's default: its models
 * and steps, 40 real images), or `quick`, a few steps of the smoke one for checking the path on a
 * CPU.
 */
export type TrialSize = 'paper' | 'smoke' | 'quick';

export interface PaperTrialResult {
  size: TrialSize;
  seed: number;
  data: string;
  parallel: number;
  /** Runs so far: 1, plus one per resume. */
  runs: number;
  counts: Record<string, string>;
  stages: PaperTrialStage[];
  jobs: StepRecord[];
  /** protocol -> backbone -> scores. */
  scores: Record<string, Record<string, ProtocolScores>>;
  /** Over all runs. */
  seconds: number;
  complete: boolean;
}

export interface PaperTrialOptions {
  size: TrialSize;
  seed?: number;
  /** A folder written by packPaperData; absent, images are drawn. */
  dataDir?: string;
  workDir: string;
  /** Continue the trial kept in `workDir`; otherwise the folder is emptied first. */
  resume?: boolean;
  /** Seconds from this run's start after which no step starts and running ones are stopped. */
  budgetSeconds: number;
  /** Steps (processes) at a time. */
  parallel: number;
  log: (line: string) => void;
  /** Starts `node <this program> --paper-job <specFile>` (or an equivalent) with piped stdout. */
  startJob: (specFile: string) => ChildProcess;
  onUpdate?: (result: PaperTrialResult) => Promise<void>;
}

const STATE_FILE = 'trial-state.json';

/** The GPU configuration of a trial of `size`. */
function trialConfig(size: TrialSize): Pick<PipelineConfig, 'gan' | 'classifier' | 'protocol'> {
  const { protocol } = PRESETS.paper!;
  if (size === 'paper') return { gan: PRESETS.paper!.gan, classifier: PRESETS.paper!.classifier, protocol };
  const smoke = PRESETS.smoke!;
  // The smoke preset's subset: 20% of its 200 synthetic images.
  if (size === 'smoke')
    return { gan: smoke.gan, classifier: smoke.classifier, protocol: { ...protocol, subsetSize: 40 } };
  return {
    gan: { ...smoke.gan, steps: 4 },
    classifier: { ...smoke.classifier, epochs: 1 },
    protocol: { ...protocol, subsetSize: 24, syntheticPerReal: 1 },
  };
}

const countText = (items: readonly { label: ClassName }[]) => {
  const counts = countByClass(items);
  return CLASS_NAMES.map((c) => `${counts[c]} ${c}`).join(' + ');
};

/** The trial's GPU steps, as the workflow has them: a GAN per class, then fine-tunings by protocol. */
function trialSteps(trial: {
  subset: readonly RealPixels[];
  gan: PipelineConfig['gan'];
  classifier: PipelineConfig['classifier'];
  protocol: PipelineConfig['protocol'];
  seed: number;
  file: (name: string) => string;
}) {
  const { subset, gan, classifier, protocol, seed, file } = trial;
  const ganJobs: StepProcess<PaperJob>[] = CLASS_NAMES.map((label) => ({
    name: `gan:${label}`,
    job: {
      kind: 'gan',
      label,
      seed,
      gan,
      images: file(`gan-${label}`),
      syntheticCount: subset.filter((s) => s.label === label).length * protocol.syntheticPerReal,
      out: file(`synthetic-${label}`),
      checkpoint: file(`gan-${label}.safetensors`),
    },
  }));
  const fineTuneJob = (backbone: Backbone, noGan: boolean): StepProcess<PaperJob> => {
    const name = `fine-tune${noGan ? '-no-gan' : ''}:${backbone}`;
    return {
      name,
      job: {
        kind: 'fine-tune',
        stage: name,
        backbone,
        seed,
        classifier,
        train: file(noGan ? 'real-train' : 'pooled-train'),
        tests: noGan
          ? [{ stage: `evaluate-no-gan:${backbone}`, protocol: 'no-gan', images: file('real-test') }]
          : [
              { stage: `evaluate:${backbone}`, protocol: 'paper', images: file('pooled-test') },
              { stage: `evaluate-heldout:${backbone}`, protocol: 'heldout', images: file('heldout') },
            ],
        checkpoint: file(`${name}.safetensors`),
      },
    };
  };
  const pooledJobs = classifier.backbones.map((b) => fineTuneJob(b, false));
  const noGanJobs = classifier.backbones.map((b) => fineTuneJob(b, true));
  return { ganJobs, pooledJobs, noGanJobs };
}

export async function runPaperTrial(options: PaperTrialOptions): Promise<PaperTrialResult> {
  const started = performance.now();
  const now = () => (performance.now() - started) / 1000;
  const seed = options.seed ?? 1;
  const { gan, classifier, protocol } = trialConfig(options.size);
  const file = (name: string) => path.join(options.workDir, name.replace(/[^a-z0-9-]+/gi, '-'));
  const statePath = path.join(options.workDir, STATE_FILE);
  const previous =
    options.resume && existsSync(statePath)
      ? (JSON.parse(await readFile(statePath, 'utf8')) as PaperTrialResult)
      : undefined;
  // The state is written before any step starts: without one, nothing there is worth keeping.
  if (!previous) await rm(options.workDir, { recursive: true, force: true });
  await mkdir(options.workDir, { recursive: true });
  const size = options.size;
  if (previous && (previous.size !== size || previous.seed !== seed)) {
    throw new InputError(
      `${options.workDir} holds a ${previous.size} trial with seed ${previous.seed}, not a ${size} trial with seed ${seed}: resume it with the same options, or start anew without --resume (or with another --work-dir).`,
    );
  }
  const run = (previous?.runs ?? 0) + 1;

  // Deterministic from the seed, so a resumed run writes the same files again.
  const { subset, heldout, data } = await trialImages({
    dataDir: options.dataDir,
    size,
    subsetSize: protocol.subsetSize!,
    seed,
  });
  const pixels = (items: readonly RealPixels[]) => items.map(({ image, label }) => ({ image, label }));
  const realSplit = stratifiedSplit(
    subset.map((s) => asLabeledImage(s, 'real')),
    protocol.trainFraction,
    seed,
  );
  await writeImageSet(file('heldout'), pixels(heldout));
  await writeImageSet(file('real-train'), pixels(realSplit.train.map((s) => s.item)));
  await writeImageSet(file('real-test'), pixels(realSplit.test.map((s) => s.item)));
  for (const label of CLASS_NAMES) {
    const own = subset.filter((s) => s.label === label);
    await writeImageSet(
      file(`gan-${label}`),
      own.map((s) => ({ image: resizeGray(s.image, gan.imageSize), label })),
    );
  }

  const { ganJobs, pooledJobs, noGanJobs } = trialSteps({ subset, gan, classifier, protocol, seed, file });
  const allJobs = [...ganJobs, ...noGanJobs, ...pooledJobs];

  // A step an earlier run finished keeps its record and stages; one it stopped starts again from
  // its checkpoint, and the time it had run is added to its training stage.
  const earlier = new Map((previous?.jobs ?? []).map((r) => [r.name, r]));
  const finished = (name: string) => earlier.get(name)?.state === 'done';
  const ownerOf = new Map(
    allJobs.flatMap(({ name, job }) =>
      (job.kind === 'gan' ? [name, `synthesize:${job.label}`] : [name, ...job.tests.map((t) => t.stage)]).map(
        (stage) => [stage, name] as const,
      ),
    ),
  );
  const records = new Map<string, StepRecord>(
    allJobs.map((j) => {
      const before = earlier.get(j.name);
      if (before?.state === 'done') return [j.name, before];
      // A run killed from outside (not by its budget) left no end: its last report stands in.
      const endedAt = before?.endedAt ?? before?.lastSeenAt;
      const secondsBefore =
        (before?.secondsBefore ?? 0) +
        (before?.startedAt !== undefined && endedAt !== undefined ? endedAt - before.startedAt : 0);
      return [j.name, { name: j.name, state: 'waiting', ...(secondsBefore ? { secondsBefore } : {}) }];
    }),
  );
  const result: PaperTrialResult = {
    size,
    seed,
    data,
    parallel: options.parallel,
    runs: run,
    counts: {
      subset: countText(subset),
      heldout: countText(heldout),
      'no-gan train / test': `${countText(realSplit.train)} / ${countText(realSplit.test)}`,
    },
    stages: (previous?.stages ?? []).filter((s) => finished(ownerOf.get(s.stage) ?? '')),
    jobs: [...records.values()],
    scores: {},
    seconds: 0,
    complete: false,
  };
  for (const [protocolName, byBackbone] of Object.entries(previous?.scores ?? {})) {
    for (const [backbone, scores] of Object.entries(byBackbone)) {
      const owner = protocolName === 'no-gan' ? `fine-tune-no-gan:${backbone}` : `fine-tune:${backbone}`;
      if (finished(owner)) (result.scores[protocolName] ??= {})[backbone] = scores;
    }
  }
  // One write at a time, each whole (a run killed mid-write must leave a state to resume from).
  let writing = Promise.resolve();
  const update = () =>
    (writing = writing.then(async () => {
      result.seconds = (previous?.seconds ?? 0) + now();
      await writeFile(`${statePath}.tmp`, JSON.stringify(result));
      await rename(`${statePath}.tmp`, statePath);
      await options.onUpdate?.(result);
    }));
  if (previous) {
    const done = allJobs.filter((j) => finished(j.name)).length;
    options.log(`[paper] run ${run} resumes the trial: ${done} of ${allJobs.length} steps were finished`);
  }
  await update();

  /** The pooled split, once both GANs have written their images (workflows/index.ts: splitPool). */
  const splitPooled = async () => {
    const t0 = performance.now();
    const synthetic = (await Promise.all(CLASS_NAMES.map((label) => readImageSet(file(`synthetic-${label}`))))).flat();
    const pooled = [
      ...subset.map((s) => asLabeledImage(s, 'real')),
      ...synthetic.map((s) =>
        asLabeledImage({ ...s, patientId: null, sha256: sha256Hex(s.image.pixels) }, 'synthetic'),
      ),
    ];
    const { train, test } = stratifiedSplit(pooled, protocol.trainFraction, seed);
    const asPixels = (side: typeof train) => side.map((t) => ({ image: t.item.image, label: t.label }));
    await writeImageSet(file('pooled-train'), asPixels(train));
    await writeImageSet(file('pooled-test'), asPixels(test));
    result.counts['pooled train / test'] = `${countText(train)} / ${countText(test)}`;
    const seconds = (performance.now() - t0) / 1000;
    const detail = `${synthetic.length} synthetic + ${subset.length} real`;
    result.stages = result.stages.filter((s) => s.stage !== 'split');
    result.stages.push({ stage: 'split', endedAt: now(), seconds, detail, run });
    options.log(`[paper] split: ${seconds.toFixed(1)} s (train ${countText(train)}, test ${countText(test)})`);
    queue.push(...pooledJobs.filter((j) => !finished(j.name)));
  };
  let gansLeft = ganJobs.length;
  for (const g of ganJobs) g.after = async () => (--gansLeft === 0 ? splitPooled() : undefined);

  // The GANs first (the longest chain), then the no-gan fine-tunings beside them.
  const queue: StepProcess<PaperJob>[] = [...ganJobs, ...noGanJobs].filter((j) => !finished(j.name));
  for (const g of ganJobs.filter((j) => finished(j.name))) await g.after!();

  const onStage = (event: JobStage, record: StepRecord) => {
    const seconds = event.seconds + (event.stage === record.name ? (record.secondsBefore ?? 0) : 0);
    result.stages.push({ stage: event.stage, endedAt: now(), seconds, detail: event.detail, run });
    options.log(`[paper] ${event.stage}: ${seconds.toFixed(1)} s (${event.detail})`);
    if (event.protocol && event.scores) {
      const backbone = event.stage.split(':')[1]!;
      (result.scores[event.protocol] ??= {})[backbone] = event.scores;
    }
    void update();
  };
  await runStepProcesses({
    queue,
    records,
    parallel: options.parallel,
    budgetSeconds: options.budgetSeconds,
    now,
    specFile: (name) => file(`${name}.job.json`),
    startJob: options.startJob,
    onStage,
    onTick: () => void update(),
    log: options.log,
  });
  result.complete = [...records.values()].every((r) => r.state === 'done');
  await update();
  return result;
}
