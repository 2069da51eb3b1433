/**
 * Metrics of a binary classifier from per-image predictions (PNEUMONIA is the positive class):
 * accuracy, AUC-ROC, balanced accuracy, sensitivity, specificity and F1. Every metric takes
 * optional per-image weights, so a bootstrap replicate is the same data with resampling counts
 * (lib/protocol/bootstrap.ts) instead of a copied array.
 */
import { z } from 'zod';
import { BACKBONES } from '../../pipelines/schema.js';
import { ClassificationMetricsSchema } from './metrics.js';

export const SCORE_NAMES = ['accuracy', 'auc', 'balancedAccuracy', 'sensitivity', 'specificity', 'f1'] as const;
export type ScoreName = (typeof SCORE_NAMES)[number];
/** null where a metric is undefined: AUC, sensitivity or balanced accuracy without both classes, F1 with no positives. */
export type Scores = Record<ScoreName, number | null>;

export const SCORE_TITLES: Record<ScoreName, string> = {
  accuracy: 'accuracy',
  auc: 'AUC-ROC',
  balancedAccuracy: 'balanced acc.',
  sensitivity: 'sensitivity',
  specificity: 'specificity',
  f1: 'F1',
};

/** One test image's outcome, as the evaluation artifact stores it. */
export const PredictionSchema = z.object({
  image: z.string(),
  label: z.enum(['NORMAL', 'PNEUMONIA']),
  origin: z.enum(['real', 'synthetic']),
  /** The image's group (patient, series, near-duplicates); null for synthetic images (and in older artifacts). */
  patientId: z.string().nullable().default(null),
  /** Predicted class index (0 NORMAL, 1 PNEUMONIA). */
  predicted: z.number().int().min(0).max(1),
  /** Softmax probability of PNEUMONIA; null in artifacts written before it was stored. */
  probability: z.number().min(0).max(1).nullable().default(null),
});
export type Prediction = z.infer<typeof PredictionSchema>;

/** The `evaluation` artifact: one model on one test set, every image's outcome. */
export const EvaluationRecordSchema = z.object({
  kind: z.literal('evaluation'),
  backbone: z.enum(BACKBONES),
  metrics: ClassificationMetricsSchema,
  predictions: z.array(PredictionSchema),
});
export type EvaluationRecord = z.infer<typeof EvaluationRecordSchema>;

/** Truth (1 = PNEUMONIA), predicted class and score, the only things metrics need. */
export interface Outcome {
  truth: 0 | 1;
  predicted: number;
  score: number;
}

/** Without stored probabilities the predicted class is the score (AUC then is that of the hard labels). */
export function outcomesOf(predictions: readonly Prediction[]): Outcome[] {
  return predictions.map((p) => ({
    truth: p.label === 'PNEUMONIA' ? 1 : 0,
    predicted: p.predicted,
    score: p.probability ?? p.predicted,
  }));
}

/**
 * AUC-ROC as the Mann-Whitney probability that a positive outranks a negative (ties count half),
 * weighted. `order` is the outcomes' indices sorted by score, so replicates sort once.
 */
export function auc(
  outcomes: readonly Outcome[],
  weights?: ArrayLike<number>,
  order = scoreOrder(outcomes),
): number | null {
  let negativesBelow = 0;
  let pairsWon = 0;
  let positives = 0;
  for (let start = 0; start < order.length;) {
    let end = start;
    let tiedPositives = 0;
    let tiedNegatives = 0;
    while (end < order.length && outcomes[order[end]!]!.score === outcomes[order[start]!]!.score) {
      const i = order[end]!;
      const w = weights ? weights[i]! : 1;
      if (outcomes[i]!.truth === 1) tiedPositives += w;
      else tiedNegatives += w;
      end += 1;
    }
    pairsWon += tiedPositives * (negativesBelow + tiedNegatives / 2);
    negativesBelow += tiedNegatives;
    positives += tiedPositives;
    start = end;
  }
  return positives === 0 || negativesBelow === 0 ? null : pairsWon / (positives * negativesBelow);
}

export function scoreOrder(outcomes: readonly Outcome[]): number[] {
  return [...outcomes.keys()].sort((a, b) => outcomes[a]!.score - outcomes[b]!.score);
}

export function scores(outcomes: readonly Outcome[], weights?: ArrayLike<number>, order?: number[]): Scores {
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  outcomes.forEach((o, i) => {
    const w = weights ? weights[i]! : 1;
    if (o.truth === 1 && o.predicted === 1) tp += w;
    else if (o.truth === 1) fn += w;
    else if (o.predicted === 1) fp += w;
    else tn += w;
  });
  const total = tp + fp + tn + fn;
  const sensitivity = tp + fn > 0 ? tp / (tp + fn) : null;
  const specificity = tn + fp > 0 ? tn / (tn + fp) : null;
  return {
    accuracy: total > 0 ? (tp + tn) / total : null,
    auc: auc(outcomes, weights, order),
    balancedAccuracy: sensitivity !== null && specificity !== null ? (sensitivity + specificity) / 2 : null,
    sensitivity,
    specificity,
    f1: 2 * tp + fp + fn > 0 ? (2 * tp) / (2 * tp + fp + fn) : null,
  };
}

/** The class a model predicted for every image, or null when it predicted both. */
export function singleClass(outcomes: readonly Outcome[]): 'NORMAL' | 'PNEUMONIA' | null {
  const predicted = new Set(outcomes.map((o) => o.predicted));
  return predicted.size !== 1 ? null : predicted.has(1) ? 'PNEUMONIA' : 'NORMAL';
}
