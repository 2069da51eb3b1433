/**
 * One trial of the `paper` preset's GPU steps on a GPU machine, without Temporal or S3, in the
 * workflow's order (workflows/index.ts): the two DCGANs, each class's synthetic images
 * (9 per real one), the pooled 80/20 split, the four backbones fine-tuned on it and evaluated on
 * its test side and on the held-out real X-rays, and the four no-gan fine-tunings on the real
 * subset alone, which need no GAN and start at once. Each step runs in its own process
 * (gpu/paper-job.ts), up to `parallel` at a time, as GPU workers on one machine would.
 *
 * Real X-rays come from the pack's data folder (gpu/paper-data.ts); without one the trial draws
 * images of the same counts. Past the time budget the running steps are stopped and the result
 * says how far each got and at what rate. `onUpdate` gets the result after every stage, so a run
 * cut short still leaves one.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { classTargets, stratifiedSplit } from '../lib/protocol/sampling.js';
import { deriveSeed } from '../lib/random.js';
import { PRESETS } from '../pipelines/presets.js';
import { CLASS_NAMES, type ClassName, type PipelineConfig } from '../pipelines/schema.js';
import { asLabeledImage, loadPaperData, type RealPixels } from './paper-data.js';
import { readImageSet, writeImageSet, type PaperJob, type ProtocolScores } from './paper-job.js';
import { runStepProcesses, type JobStage, type StepProcess, type StepRecord } from './step-processes.js';
import { drawXray, resizeGray } from './trial.js';

/** kermany-train's class counts, for drawn stand-ins of the same proportions. */
const KERMANY_TRAIN_COUNTS: Record<ClassName, number> = { NORMAL: 1341, PNEUMONIA: 3875 };
const REAL_SIZE = 224;

export interface PaperTrialStage {
  stage: string;
  /** Seconds from the trial's start to the stage's end. */
  endedAt: number;
  seconds: number;
  detail: string;
}

export interface PaperTrialResult {
  size: 'paper' | 'quick';
  seed: number;
  data: string;
  parallel: number;
  counts: Record<string, string>;
  stages: PaperTrialStage[];
  jobs: StepRecord[];
  /** protocol -> backbone -> scores. */
  scores: Record<string, Record<string, ProtocolScores>>;
  seconds: number;
  complete: boolean;
}

export interface PaperTrialOptions {
  quick: boolean;
  seed?: number;
  /** A folder written by packPaperData; absent, images are drawn. */
  dataDir?: string;
  workDir: string;
  /** Seconds from the trial's start after which no step starts and running ones are stopped. */
  budgetSeconds: number;
  /** Steps (processes) at a time. */
  parallel: number;
  log: (line: string) => void;
  /** Starts `node <this program> --paper-job <specFile>` (or an equivalent) with piped stdout. */
  startJob: (specFile: string) => ChildProcess;
  onUpdate?: (result: PaperTrialResult) => Promise<void>;
}

/** The `paper` preset's GPU configuration, or a few steps of the `smoke` one's for a CPU check. */
function trialConfig(quick: boolean): Pick<PipelineConfig, 'gan' | 'classifier' | 'protocol'> {
  const { gan, classifier, protocol } = PRESETS.paper!;
  if (!quick) return { gan, classifier, protocol };
  const smoke = PRESETS.smoke!;
  return {
    gan: { ...smoke.gan, steps: 4 },
    classifier: { ...smoke.classifier, epochs: 1 },
    protocol: { ...protocol, subsetSize: 24, syntheticPerReal: 1 },
  };
}

async function trialImages(
  options: PaperTrialOptions,
  subsetSize: number,
  seed: number,
): Promise<{ subset: RealPixels[]; heldout: RealPixels[]; data: string }> {
  if (options.dataDir) {
    const { manifest, subset, heldout } = await loadPaperData(options.dataDir, REAL_SIZE);
    // A quick check trains on the first images of each class only.
    const perClass = (items: RealPixels[], n: number) =>
      CLASS_NAMES.flatMap((label) => items.filter((i) => i.label === label).slice(0, n));
    return options.quick
      ? { subset: perClass(subset, subsetSize / 2), heldout: perClass(heldout, 8), data: `${manifest.source} (quick)` }
      : {
          subset,
          heldout,
          data: `${subset.length} real X-rays of ${manifest.source} (trial ${manifest.trialSeed}'s subset), held out: ${manifest.heldoutSource}`,
        };
  }
  const draw = (counts: Record<ClassName, number>, salt: string) =>
    CLASS_NAMES.flatMap((label) =>
      Array.from({ length: counts[label] }, (_, i) => {
        const image = drawXray(label, REAL_SIZE, deriveSeed(seed, salt, label, i));
        const sha256 = createHash('sha256').update(image.pixels).digest('hex');
        return { image, label, patientId: null, sha256 };
      }),
    );
  const heldoutCounts = classTargets(KERMANY_TRAIN_COUNTS, { fraction: options.quick ? 0.004 : 0.1 });
  return {
    subset: draw(classTargets(KERMANY_TRAIN_COUNTS, { size: subsetSize }), 'real'),
    heldout: draw(heldoutCounts, 'heldout'),
    data: 'drawn X-ray-like images (no data folder in the pack)',
  };
}

const countText = (items: readonly { label: ClassName }[]) =>
  CLASS_NAMES.map((c) => `${items.filter((i) => i.label === c).length} ${c}`).join(' + ');

export async function runPaperTrial(options: PaperTrialOptions): Promise<PaperTrialResult> {
  const started = performance.now();
  const now = () => (performance.now() - started) / 1000;
  const seed = options.seed ?? 1;
  const { gan, classifier, protocol } = trialConfig(options.quick);
  const { subset, heldout, data } = await trialImages(options, protocol.subsetSize!, seed);
  await mkdir(options.workDir, { recursive: true });
  const file = (name: string) => path.join(options.workDir, name.replace(/[^a-z0-9-]+/gi, '-'));
  const pixels = (items: readonly RealPixels[]) => items.map(({ image, label }) => ({ image, label }));
  const realSplit = stratifiedSplit(
    subset.map((s) => asLabeledImage(s, 'real')),
    protocol.trainFraction,
    seed,
  );
  await writeImageSet(file('heldout'), pixels(heldout));
  await writeImageSet(file('real-train'), pixels(realSplit.train.map((s) => s.item)));
  await writeImageSet(file('real-test'), pixels(realSplit.test.map((s) => s.item)));

  const result: PaperTrialResult = {
    size: options.quick ? 'quick' : 'paper',
    seed,
    data,
    parallel: options.parallel,
    counts: {
      subset: countText(subset),
      heldout: countText(heldout),
      'no-gan train / test': `${countText(realSplit.train)} / ${countText(realSplit.test)}`,
    },
    stages: [],
    jobs: [],
    scores: {},
    seconds: 0,
    complete: false,
  };
  const update = async () => {
    result.seconds = now();
    await options.onUpdate?.(result);
  };

  const ganJobs: StepProcess<PaperJob>[] = CLASS_NAMES.map((label) => {
    const own = subset.filter((s) => s.label === label);
    return {
      name: `gan:${label}`,
      job: {
        kind: 'gan',
        label,
        seed,
        gan,
        images: file(`gan-${label}`),
        syntheticCount: own.length * protocol.syntheticPerReal,
        out: file(`synthetic-${label}`),
        checkpoint: file(`gan-${label}.safetensors`),
      },
    };
  });
  for (const label of CLASS_NAMES) {
    const own = subset.filter((s) => s.label === label);
    await writeImageSet(
      file(`gan-${label}`),
      own.map((s) => ({ image: resizeGray(s.image, gan.imageSize), label })),
    );
  }
  const fineTuneJob = (
    backbone: PipelineConfig['classifier']['backbones'][number],
    noGan: boolean,
  ): StepProcess<PaperJob> => {
    const suffix = noGan ? '-no-gan' : '';
    return {
      name: `fine-tune${suffix}:${backbone}`,
      job: {
        kind: 'fine-tune',
        stage: `fine-tune${suffix}:${backbone}`,
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
        checkpoint: file(`fine-tune${suffix}-${backbone}.safetensors`),
      },
    };
  };
  const pooledJobs = classifier.backbones.map((b) => fineTuneJob(b, false));
  const noGanJobs = classifier.backbones.map((b) => fineTuneJob(b, true));

  /** The pooled split, once both GANs have written their images (workflows/index.ts: splitPool). */
  const splitPooled = async () => {
    const t0 = performance.now();
    const synthetic = (await Promise.all(CLASS_NAMES.map((label) => readImageSet(file(`synthetic-${label}`))))).flat();
    const pooled = [
      ...subset.map((s) => asLabeledImage(s, 'real')),
      ...synthetic.map((s) =>
        asLabeledImage(
          { ...s, patientId: null, sha256: createHash('sha256').update(s.image.pixels).digest('hex') },
          'synthetic',
        ),
      ),
    ];
    const { train, test } = stratifiedSplit(pooled, protocol.trainFraction, seed);
    await writeImageSet(
      file('pooled-train'),
      train.map((t) => ({ image: t.item.image, label: t.label })),
    );
    await writeImageSet(
      file('pooled-test'),
      test.map((t) => ({ image: t.item.image, label: t.label })),
    );
    result.counts['pooled train / test'] = `${countText(train)} / ${countText(test)}`;
    const seconds = (performance.now() - t0) / 1000;
    result.stages.push({
      stage: 'split',
      endedAt: now(),
      seconds,
      detail: `${synthetic.length} synthetic + ${subset.length} real`,
    });
    options.log(`[paper] split: ${seconds.toFixed(1)} s (train ${countText(train)}, test ${countText(test)})`);
    queue.push(...pooledJobs);
  };
  let gansLeft = ganJobs.length;
  for (const g of ganJobs) g.after = async () => (--gansLeft === 0 ? splitPooled() : undefined);

  // The GANs first (the longest chain), then the no-gan fine-tunings beside them.
  const queue: StepProcess<PaperJob>[] = [...ganJobs, ...noGanJobs];
  const records = new Map<string, StepRecord>(
    [...ganJobs, ...noGanJobs, ...pooledJobs].map((p) => [p.name, { name: p.name, state: 'waiting' }]),
  );
  result.jobs = [...records.values()];
  const onStage = (event: JobStage) => {
    result.stages.push({ stage: event.stage, endedAt: now(), seconds: event.seconds, detail: event.detail });
    options.log(`[paper] ${event.stage}: ${event.seconds.toFixed(1)} s (${event.detail})`);
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
    log: options.log,
  });
  result.complete = [...records.values()].every((r) => r.state === 'done');
  await update();
  return result;
}
