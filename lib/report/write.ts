/**
 * The reproduction's report: a JSON summary (every number, with the references it came from), a
 * Markdown report beside the paper's numbers, and PNG figures (accuracy, confusion matrices, GAN
 * samples, loss curves). Written content-addressed and under `runs/<runName>/`, where the
 * Markdown's relative figure links resolve.
 */
import { z } from 'zod';
import type { AggregateInput, AggregateOutput, TrialResult } from '../../pipelines/results.js';
import { BACKBONES, PROTOCOLS, type Backbone, type Protocol } from '../../pipelines/schema.js';
import { CANDIDATE_BITS, MIN_CORRELATION } from '../data/near-duplicates.js';
import { readLineage, recordLineage, type Producer } from '../lineage.js';
import { aggregateMetrics, type AggregatedMetrics, type MeanStd } from '../protocol/metrics.js';
import { canonicalJson, type ArtifactStore } from '../storage.js';
import { describeTestSet } from './test-sets.js';
import { accuracySpec, confusionSpec, lossCurveSpec, renderPng } from './charts.js';
import { analyseReport, type ReportAnalysis } from './analysis.js';
import {
  detectabilityTable,
  ganEffectTable,
  kindTable,
  memorizationTable,
  originTable,
  trainingSentence,
} from './tables.js';
import { PAPER_ACCURACY, PAPER_BEST_PER_CLASS } from './paper.js';

const GanHistorySchema = z.object({ discriminatorLoss: z.array(z.number()), generatorLoss: z.array(z.number()) });
const ClassifierHistorySchema = z.object({ loss: z.array(z.number()), accuracy: z.array(z.number()) });

export interface BackboneSummary {
  protocol: Protocol;
  backbone: Backbone;
  paperAccuracy: number;
  aggregate: AggregatedMetrics;
}

/** Mean and spread over trials of every (protocol, backbone) that every trial evaluated. */
export function summarizeEvaluations(trials: AggregateInput['trials']): BackboneSummary[] {
  return PROTOCOLS.flatMap((protocol) =>
    BACKBONES.flatMap((backbone) => {
      const perTrial = trials.map((t) => t.evaluations.find((e) => e.protocol === protocol && e.backbone === backbone));
      if (perTrial.some((e) => e === undefined)) return [];
      return [
        {
          protocol,
          backbone,
          paperAccuracy: PAPER_ACCURACY[backbone],
          aggregate: aggregateMetrics(perTrial.map((e) => e!.metrics)),
        },
      ];
    }),
  );
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
const pm = (m: MeanStd) => `${pct(m.mean)} ± ${(100 * m.std).toFixed(1)}`;

export async function writeReport(
  store: ArtifactStore,
  input: AggregateInput,
  producer: Producer,
): Promise<AggregateOutput> {
  const { runName, config, dataset, trials } = input;
  const base = `runs/${runName}`;
  const summaries = summarizeEvaluations(trials);
  const analysis = await analyseReport(store, input, config.analysis.bootstrapReplicates);
  const weights = await pretrainedWeights(store, input);
  const figures = new Map<string, Buffer>();

  figures.set(
    'accuracy.png',
    await renderPng(
      accuracySpec([
        ...summaries.map((b) => ({
          backbone: b.backbone,
          source: b.protocol,
          accuracy: b.aggregate.accuracy.mean,
          low: Math.min(...b.aggregate.accuracy.values),
          high: Math.max(...b.aggregate.accuracy.values),
        })),
        ...[...new Set(summaries.map((b) => b.backbone))].map((backbone) => ({
          backbone,
          source: 'paper (reported)',
          accuracy: PAPER_ACCURACY[backbone],
          low: PAPER_ACCURACY[backbone],
          high: PAPER_ACCURACY[backbone],
        })),
      ]),
    ),
  );
  for (const b of summaries) {
    figures.set(
      `confusion-${b.protocol}-${b.backbone}.png`,
      await renderPng(
        confusionSpec(`${b.backbone} (${b.protocol}): ${trials.length} trial(s) summed`, b.aggregate.confusion),
      ),
    );
  }
  for (const trial of trials) {
    for (const audit of trial.memorization ?? [])
      figures.set(`memorization-trial${trial.trial}-${audit.label}.png`, await store.get(audit.closestPairs));
    for (const gan of trial.gans) {
      figures.set(`gan-samples-trial${trial.trial}-${gan.label}.png`, await store.get(gan.samples));
      const history = await store.getJson(gan.history, GanHistorySchema.passthrough());
      figures.set(
        `gan-loss-trial${trial.trial}-${gan.label}.png`,
        await renderPng(
          lossCurveSpec(
            `Trial ${trial.trial}: ${gan.label} DCGAN`,
            { discriminator: history.discriminatorLoss, generator: history.generatorLoss },
            'step',
          ),
        ),
      );
    }
    const curves: Record<string, number[]> = {};
    for (const result of trial.evaluations) {
      const name = result.protocol === 'no-gan' ? `${result.backbone} (no GAN)` : result.backbone;
      curves[name] ??= (await store.getJson(result.history, ClassifierHistorySchema.passthrough())).loss;
    }
    figures.set(
      `classifier-loss-trial${trial.trial}.png`,
      await renderPng(lossCurveSpec(`Trial ${trial.trial}: fine-tuning loss`, curves, 'batch')),
    );
  }

  const figureKeys: string[] = [];
  for (const [name, bytes] of figures) {
    const key = `${base}/figures/${name}`;
    await store.putAt(key, bytes, 'png');
    figureKeys.push(key);
  }

  const summaryValue = {
    kind: 'reproduction-summary',
    runName,
    producedBy: {
      workflowId: producer.workflowId,
      codeVersion: producer.codeVersion,
      computeBackend: producer.computeBackend,
    },
    config,
    dataset,
    heldout: input.heldout,
    evaluations: summaries,
    analysis,
    weights,
    paper: { accuracy: PAPER_ACCURACY, bestPerClass: PAPER_BEST_PER_CLASS },
    trials,
  };
  const summary = await store.putJson(summaryValue);
  const markdown = Buffer.from(renderMarkdown(input, summaries, analysis, weights), 'utf8');
  const report = await store.putContent(markdown, 'md');
  const lineageInputs = trials.flatMap((t) =>
    t.evaluations.map((e) => ({ role: `evaluation:trial${t.trial}:${e.protocol}:${e.backbone}`, ref: e.evaluation })),
  );
  for (const ref of [summary, report]) {
    await recordLineage(store, {
      artifact: ref,
      kind: 'report',
      inputs: lineageInputs,
      params: { runName },
      producer,
      recordedAt: new Date().toISOString(),
    });
  }
  const summaryKey = `${base}/summary.json`;
  const reportKey = `${base}/report.md`;
  await store.putAt(summaryKey, canonicalJson(summaryValue), 'json');
  await store.putAt(reportKey, markdown, 'md');
  return { summary, report, reportKey, summaryKey, figureKeys };
}

/** The ImageNet weights each backbone started from (file and hash), or null: random initialisation. */
export type StartingWeights = Partial<Record<Backbone, { source: string; sha256: string } | null>>;

/** Read from the lineage of each backbone's checkpoints, which names the weights they started from. */
async function pretrainedWeights(store: ArtifactStore, input: AggregateInput): Promise<StartingWeights> {
  const weights: StartingWeights = {};
  for (const evaluation of input.trials.flatMap((t) => t.evaluations)) {
    if (weights[evaluation.backbone] !== undefined) continue;
    const records = await readLineage(store, evaluation.checkpoint.sha256);
    const ref = records.flatMap((r) => r.inputs).find((i) => i.role === 'pretrained-weights')?.ref;
    const source = input.config.classifier.pretrained[evaluation.backbone];
    const named = typeof source === 'string' ? source : source?.source;
    weights[evaluation.backbone] = ref ? { source: named ?? ref.key, sha256: ref.sha256 } : null;
  }
  return weights;
}

/** What kept images of one patient (and copies of one film) on one side of every boundary. */
function groupingStatement(dataset: AggregateInput['dataset']): string {
  const near = dataset.nearDuplicates;
  return (
    `Grouping: PNEUMONIA images by patient (\`personN\` in the file name), NORMAL images by imaging series (\`IM-XXXX\`, \`NORMAL2-IM-XXXX\`), ` +
    `${dataset.patients.NORMAL} NORMAL and ${dataset.patients.PNEUMONIA} PNEUMONIA groups; ` +
    (near
      ? `near-duplicates (perceptual hash within ${CANDIDATE_BITS} bits and 32 px thumbnails correlating at ${MIN_CORRELATION} or more): ${near.pairs} pair(s), ` +
        `${near.linkingGroups} of them joining groups the file names kept apart (merged into one group), ${near.crossClass} across classes. `
      : 'near-duplicates were not searched for (ingested by an older version). ') +
    'Subsets, splits and the held-out set take whole groups' +
    (near?.crossClass ? ', per class (a group with images of both classes can straddle).' : '.')
  );
}

export function renderMarkdown(
  input: AggregateInput,
  summaries: BackboneSummary[],
  analysis: ReportAnalysis,
  weights: StartingWeights,
): string {
  const { runName, config, dataset, heldout, trials } = input;
  const lines: string[] = [];
  const used = Object.entries(weights);
  const random = used.filter(([, w]) => w === null).map(([b]) => b);
  const weightsCell = (b: Backbone) =>
    weights[b] ? `ImageNet \`${weights[b].source}\` (sha256 ${weights[b].sha256.slice(0, 12)})` : 'random init';
  const backboneNote = (b: Backbone) => (weights[b] ? '' : '(random init)');
  lines.push(
    `# pneumogan reproduction: ${runName}` +
      (random.length === used.length
        ? ' (every backbone trained from random weights: no transfer learning)'
        : random.length
          ? ` (${random.join(', ')} from random weights, the others from ImageNet weights)`
          : ' (backbones fine-tuned from ImageNet weights)'),
    '',
  );
  lines.push(
    `Khalifa et al. (2020), *Detection of Coronavirus (COVID-19) Associated Pneumonia based on GANs and a Fine-Tuned Deep Transfer Learning Model*, reproduced with preset **${config.preset}** over **${trials.length} trial(s)** (seeds ${config.protocol.trialSeeds.join(', ')}).`,
    '',
  );
  if (random.length) {
    lines.push(
      `> **No ImageNet weights** for ${random.join(', ')}: those backbones start from random weights, so this run does not test the paper's *fine-tuned transfer learning*; give \`classifier.pretrained\` to test it.`,
      '',
    );
  }
  lines.push(
    `Dataset: ${dataset.source}: ${dataset.counts.NORMAL} NORMAL and ${dataset.counts.PNEUMONIA} PNEUMONIA images, ` +
      `${dataset.duplicates} byte-identical duplicate(s) and ${dataset.skipped} non-image file(s) skipped.`,
    '',
  );
  lines.push(groupingStatement(dataset), '');
  if (heldout) {
    lines.push(
      `Held-out set (${heldout.source}): ${heldout.counts.NORMAL} NORMAL + ${heldout.counts.PNEUMONIA} PNEUMONIA real images ` +
        `(${heldout.patients.NORMAL} NORMAL series, ${heldout.patients.PNEUMONIA} PNEUMONIA patients), the same for every trial; no group in it is in any trial's pool.`,
      '',
    );
  }
  if (input.poolCounts) {
    const pool = input.poolCounts;
    const subset = trials[0]!.subsetCounts;
    lines.push(
      `Sampling pool: ${pool.NORMAL + pool.PNEUMONIA} real images (${pool.NORMAL} NORMAL, ${pool.PNEUMONIA} PNEUMONIA) remained for the trials' subsets` +
        (heldout ? ' after the held-out set was taken out' : '') +
        `; each trial drew ${subset.NORMAL + subset.PNEUMONIA} of them (${subset.NORMAL} NORMAL, ${subset.PNEUMONIA} PNEUMONIA).`,
      '',
    );
  }
  if (config.data.source.kind === 'synthetic') {
    lines.push(
      '> **The data are synthetic** (drawn by the project, not X-rays of patients): these numbers test the pipeline, they say nothing about pneumonia detection.',
      '',
    );
  }
  lines.push(
    ...ganEffectTable(analysis.ganEffect, backboneNote, {
      withGan: trainingSentence('heldout', trials, config.classifier),
      withoutGan: trainingSentence('no-gan-heldout', trials, config.classifier),
    }),
  );
  lines.push('## Results', '');
  lines.push(
    `Accuracy as the paper reports it (mean ± standard deviation over trials), then every metric as its mean over trials with a 95% t interval across trials (one trial: its patient-level bootstrap interval, ${analysis.bootstrapReplicates} replicates). ` +
      'Sensitivity, specificity and F1 take PNEUMONIA as the positive class. The paper reports only its own protocol. ' +
      'A model that predicts one class for every test image is flagged: its accuracy is the class share, not skill.',
    '',
  );
  const summaryOf = (kind: string, backbone: Backbone) =>
    summaries.find((b) => b.protocol === kind && b.backbone === backbone)?.aggregate.accuracy;
  for (const kind of analysis.kinds) {
    lines.push(
      ...kindTable(
        kind,
        (backbone) => {
          const m = summaryOf(kind.kind, backbone);
          return m ? pm(m) : undefined;
        },
        (backbone) => pct(PAPER_ACCURACY[backbone]),
        weightsCell,
        [
          trainingSentence(kind.kind, trials, config.classifier),
          (PROTOCOLS as readonly string[]).includes(kind.kind) ? describeTestSet(kind.kind as Protocol, input) : '',
        ]
          .filter(Boolean)
          .join(' '),
      ),
    );
  }
  lines.push(...originTable(analysis.kinds), ...detectabilityTable(trials), ...memorizationTable(trials));
  lines.push(
    `Paper's best per-class accuracy: NORMAL ${pct(PAPER_BEST_PER_CLASS.NORMAL.accuracy)} (${PAPER_BEST_PER_CLASS.NORMAL.backbone}), PNEUMONIA ${pct(PAPER_BEST_PER_CLASS.PNEUMONIA.accuracy)} (${PAPER_BEST_PER_CLASS.PNEUMONIA.backbone}).`,
    '',
  );
  lines.push('![accuracy](figures/accuracy.png)', '');
  lines.push('### Accuracy per trial', '');
  lines.push(`| protocol | backbone | ${trials.map((t) => `trial ${t.trial} (seed ${t.seed})`).join(' | ')} |`);
  lines.push(`| --- | --- | ${trials.map(() => '---').join(' | ')} |`);
  for (const b of summaries)
    lines.push(`| ${b.protocol} | ${b.backbone} | ${b.aggregate.accuracy.values.map(pct).join(' | ')} |`);
  lines.push('', '## Confusion matrices (summed over trials)', '');
  for (const protocol of PROTOCOLS) {
    const rows = summaries.filter((b) => b.protocol === protocol);
    if (rows.length)
      lines.push(
        `**${protocol}**`,
        '',
        rows.map((b) => `![${b.backbone} ${protocol}](figures/confusion-${protocol}-${b.backbone}.png)`).join(' '),
        '',
      );
  }
  lines.push('## GANs', '');
  for (const t of trials) {
    lines.push(`### Trial ${t.trial}`, '');
    for (const g of t.gans) {
      lines.push(
        `**${g.label}**: generator \`${g.checkpoint.sha256.slice(0, 16)}\`, ${g.syntheticCount} images synthesized.`,
        '',
      );
      lines.push(
        `![${g.label} samples](figures/gan-samples-trial${t.trial}-${g.label}.png)`,
        '',
        `![${g.label} loss](figures/gan-loss-trial${t.trial}-${g.label}.png)`,
        '',
      );
    }
    lines.push(`![fine-tuning loss](figures/classifier-loss-trial${t.trial}.png)`, '');
  }
  const side = (s: NonNullable<TrialResult['pooledSplit']>['train']) =>
    `${s.images.NORMAL}/${s.images.PNEUMONIA} (${s.patients.PNEUMONIA} P patients)`;
  lines.push('## Trials, splits and stage times', '');
  lines.push(
    'Counts are NORMAL/PNEUMONIA images; patients are PNEUMONIA patients identified from file names (synthetic images have none).',
    '',
  );
  lines.push(
    '| trial | seed | subset | paper split: train | paper split: test | no-GAN split: train | no-GAN split: test | stage times |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const t of trials) {
    const stages = Object.entries(t.stageMillis)
      .map(([stage, ms]) => `${stage} ${(ms / 1000).toFixed(1)}s`)
      .join(', ');
    const splitCells = (s: TrialResult['pooledSplit']) => (s ? `${side(s.train)} | ${side(s.test)}` : '— | —');
    lines.push(
      `| ${t.trial} | ${t.seed} | ${t.subsetCounts.NORMAL}/${t.subsetCounts.PNEUMONIA} | ${splitCells(t.pooledSplit)} | ${splitCells(t.realSplit)} | ${stages} |`,
    );
  }
  lines.push('', '## Lineage', '');
  lines.push(`- dataset manifest: \`${dataset.manifest.key}\``);
  if (heldout) lines.push(`- held-out set: \`${heldout.images.key}\``);
  for (const t of trials) {
    lines.push(
      `- trial ${t.trial} (\`${t.workflowId}\`): subset \`${t.subset.key}\`` +
        (t.pooledSplit ? `, split \`${t.pooledSplit.split.key}\`` : '') +
        ', models ' +
        t.evaluations
          .filter((e) => e.protocol !== 'heldout')
          .map(
            (e) => `${e.backbone}${e.protocol === 'no-gan' ? ' (no GAN)' : ''} \`${e.checkpoint.sha256.slice(0, 16)}\``,
          )
          .join(', '),
    );
  }
  lines.push(
    '',
    'Every artifact has lineage records under `lineage/<sha256>/` in the bucket; `pneumogan lineage <sha256>` traces one, `pneumogan verify <run>` re-hashes them all.',
    '',
  );
  lines.push('## Configuration', '', '```json', JSON.stringify(config, null, 2), '```', '');
  return lines.join('\n');
}
