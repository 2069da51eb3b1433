/**
 * The numbers that judge the paper's claim, from the stored per-image predictions: every
 * evaluation's metrics with patient-level bootstrap intervals, their t intervals across trials,
 * a majority-class baseline per test set, single-class models flagged, accuracy on the real and
 * the generated part of pooled test sets, and the paired with-GAN vs no-GAN comparison on the
 * held-out real images.
 */
import type { AggregateInput, EvaluationKind, TrialResult } from '../../pipelines/results.js';
import { EVALUATION_KINDS } from '../../pipelines/results.js';
import { BACKBONES, type Backbone } from '../../pipelines/schema.js';
import { deriveSeed } from '../random.js';
import type { ArtifactStore } from '../storage.js';
import { clusterBootstrap, tInterval, type Interval } from '../protocol/intervals.js';
import { mcnemar, type McNemar } from '../protocol/paired.js';
import {
  EvaluationRecordSchema,
  outcomesOf,
  SCORE_NAMES,
  scoreOrder,
  scores,
  singleClass,
  type Outcome,
  type Prediction,
  type ScoreName,
} from '../protocol/scores.js';

export type ScoreIntervals = Record<ScoreName, Interval | null>;

export interface TrialEvaluation {
  trial: number;
  testImages: number;
  scores: ScoreIntervals;
  /** The one class the model predicted for every test image, if it did. */
  singleClass: 'NORMAL' | 'PNEUMONIA' | null;
  /** Accuracy on the real and on the generated test images (pooled test sets only). */
  byOrigin?: { real: Interval | null; synthetic: Interval | null; realImages: number; syntheticImages: number };
}

export interface AcrossTrials {
  /** Mean of the per-trial estimates with a t interval; null when undefined in every trial. */
  scores: Record<ScoreName, (Interval & { std: number; n: number }) | null>;
  trials: TrialEvaluation[];
  singleClassTrials: number;
}

export interface KindAnalysis {
  kind: EvaluationKind;
  backbones: Array<{ backbone: Backbone } & AcrossTrials>;
  /** Always answering the majority class of the models' training side. */
  baseline: AcrossTrials & { majority: string };
}

export interface PairedTrial {
  trial: number;
  images: number;
  withGan: number;
  withoutGan: number;
  /** with-GAN accuracy minus no-GAN accuracy, with a patient-level bootstrap interval. */
  difference: Interval;
  mcnemar: McNemar;
  /** The class each model predicted for every held-out image, if it did (its accuracy is then the class share). */
  singleClass: { withGan: 'NORMAL' | 'PNEUMONIA' | null; withoutGan: 'NORMAL' | 'PNEUMONIA' | null };
}

export interface GanEffect {
  backbone: Backbone;
  trials: PairedTrial[];
  /** Mean difference over trials with its t interval. */
  difference: Interval & { n: number };
  withGan: Interval;
  withoutGan: Interval;
}

export interface ReportAnalysis {
  bootstrapReplicates: number;
  kinds: KindAnalysis[];
  ganEffect: GanEffect[];
}

const outcomeScores = (outcomes: Outcome[], hasProbabilities: boolean) => {
  const order = scoreOrder(outcomes);
  return (weights: Float64Array | undefined) => {
    const s = scores(outcomes, weights, order);
    return hasProbabilities ? s : { ...s, auc: null };
  };
};

function accuracyOf(outcomes: readonly Outcome[]) {
  return (weights: Float64Array | undefined) => {
    let hit = 0;
    let total = 0;
    outcomes.forEach((o, i) => {
      const w = weights ? weights[i]! : 1;
      total += w;
      if (o.predicted === o.truth) hit += w;
    });
    return { accuracy: total > 0 ? hit / total : null };
  };
}

function evaluateTrial(
  trial: number,
  predictions: readonly Prediction[],
  seed: number,
  replicates: number,
  splitByOrigin: boolean,
): TrialEvaluation {
  const outcomes = outcomesOf(predictions);
  const groups = predictions.map((p) => p.patientId);
  const hasProbabilities = predictions.every((p) => p.probability !== null);
  const result: TrialEvaluation = {
    trial,
    testImages: predictions.length,
    scores: clusterBootstrap(groups, outcomeScores(outcomes, hasProbabilities), { replicates, seed }),
    singleClass: singleClass(outcomes),
  };
  if (splitByOrigin) {
    const part = (origin: 'real' | 'synthetic') => {
      const members = predictions.flatMap((p, i) => (p.origin === origin ? [i] : []));
      const interval = members.length
        ? clusterBootstrap(
            members.map((i) => groups[i]!),
            accuracyOf(members.map((i) => outcomes[i]!)),
            { replicates, seed: deriveSeed(seed, origin) },
          ).accuracy
        : null;
      return { interval, count: members.length };
    };
    const real = part('real');
    const synthetic = part('synthetic');
    result.byOrigin = {
      real: real.interval,
      synthetic: synthetic.interval,
      realImages: real.count,
      syntheticImages: synthetic.count,
    };
  }
  return result;
}

function acrossTrials(trials: TrialEvaluation[]): AcrossTrials {
  const summary = Object.fromEntries(
    SCORE_NAMES.map((name) => {
      const values = trials.flatMap((t) => (t.scores[name] ? [t.scores[name].estimate] : []));
      return [name, values.length ? tInterval(values) : null];
    }),
  ) as AcrossTrials['scores'];
  return { scores: summary, trials, singleClassTrials: trials.filter((t) => t.singleClass !== null).length };
}

/** The training side whose majority class the baseline answers, per kind. */
export function trainingCounts(trial: TrialResult, kind: EvaluationKind) {
  const split =
    kind === 'paper' || kind === 'heldout'
      ? trial.pooledSplit
      : kind === 'matched'
        ? trial.matchedSplit
        : trial.realSplit;
  return split?.train.images;
}

export async function analyseReport(
  store: ArtifactStore,
  input: Pick<AggregateInput, 'trials'>,
  replicates: number,
): Promise<ReportAnalysis> {
  const { trials } = input;
  const predictions = new Map<string, Prediction[]>();
  await Promise.all(
    trials.flatMap((t) =>
      t.evaluations.map(async (e) => {
        const record = await store.getJson(e.evaluation, EvaluationRecordSchema);
        predictions.set(`${t.trial}/${e.protocol}/${e.backbone}`, record.predictions);
      }),
    ),
  );
  const predictionsOf = (trial: number, kind: EvaluationKind, backbone: Backbone) =>
    predictions.get(`${trial}/${kind}/${backbone}`);

  const kinds: KindAnalysis[] = [];
  for (const kind of EVALUATION_KINDS) {
    const pooled = kind === 'paper' || kind === 'matched';
    const backbones = BACKBONES.flatMap((backbone) => {
      const perTrial = trials.map((t) => predictionsOf(t.trial, kind, backbone));
      if (perTrial.some((p) => p === undefined)) return [];
      return [
        {
          backbone,
          ...acrossTrials(
            perTrial.map((p, i) =>
              evaluateTrial(
                trials[i]!.trial,
                p!,
                deriveSeed(trials[i]!.seed, kind, backbone, 'bootstrap'),
                replicates,
                pooled,
              ),
            ),
          ),
        },
      ];
    });
    if (backbones.length === 0) continue;
    const first = backbones[0]!.backbone;
    let majority = 'PNEUMONIA';
    const baselineTrials = trials.map((t) => {
      const counts = trainingCounts(t, kind);
      majority = counts && counts.NORMAL > counts.PNEUMONIA ? 'NORMAL' : 'PNEUMONIA';
      const constant = predictionsOf(t.trial, kind, first)!.map((p) => ({
        ...p,
        predicted: majority === 'PNEUMONIA' ? 1 : 0,
        probability: 0.5,
      }));
      return evaluateTrial(t.trial, constant, deriveSeed(t.seed, kind, 'baseline'), replicates, pooled);
    });
    kinds.push({ kind, backbones, baseline: { majority, ...acrossTrials(baselineTrials) } });
  }

  const ganEffect = BACKBONES.flatMap((backbone): GanEffect[] => {
    const paired = trials.map((t) => {
      const withGan = predictionsOf(t.trial, 'heldout', backbone);
      const withoutGan = predictionsOf(t.trial, 'no-gan-heldout', backbone);
      return withGan && withoutGan ? pairedTrial(t, withGan, withoutGan, backbone, replicates) : undefined;
    });
    if (paired.some((p) => p === undefined)) return [];
    const perTrial = paired as PairedTrial[];
    return [
      {
        backbone,
        trials: perTrial,
        difference: tInterval(perTrial.map((p) => p.difference.estimate)),
        withGan: tInterval(perTrial.map((p) => p.withGan)),
        withoutGan: tInterval(perTrial.map((p) => p.withoutGan)),
      },
    ];
  });
  return { bootstrapReplicates: replicates, kinds, ganEffect };
}

function pairedTrial(
  trial: TrialResult,
  withGan: readonly Prediction[],
  withoutGan: readonly Prediction[],
  backbone: Backbone,
  replicates: number,
): PairedTrial {
  const other = new Map(withoutGan.map((p) => [p.image, p]));
  const pairs = withGan.map((p) => {
    const q = other.get(p.image);
    if (!q) throw new Error(`trial ${trial.trial} ${backbone}: held-out image ${p.image} has no no-GAN prediction`);
    return { group: p.patientId, a: p.predicted === labelIndex(p), b: q.predicted === labelIndex(q) };
  });
  const difference = clusterBootstrap(
    pairs.map((p) => p.group),
    (weights) => {
      let total = 0;
      let delta = 0;
      pairs.forEach((p, i) => {
        const w = weights ? weights[i]! : 1;
        total += w;
        delta += w * (Number(p.a) - Number(p.b));
      });
      return { difference: total > 0 ? delta / total : null };
    },
    { replicates, seed: deriveSeed(trial.seed, backbone, 'gan-effect') },
  ).difference!;
  const accuracy = (key: 'a' | 'b') => pairs.filter((p) => p[key]).length / pairs.length;
  return {
    trial: trial.trial,
    singleClass: { withGan: singleClass(outcomesOf(withGan)), withoutGan: singleClass(outcomesOf(withoutGan)) },
    images: pairs.length,
    withGan: accuracy('a'),
    withoutGan: accuracy('b'),
    difference,
    mcnemar: mcnemar(
      pairs.map((p) => p.a),
      pairs.map((p) => p.b),
    ),
  };
}

const labelIndex = (p: Prediction) => (p.label === 'PNEUMONIA' ? 1 : 0);
