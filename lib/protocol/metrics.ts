/**
 * The paper's evaluation: confusion matrix, accuracy, per-class accuracy, precision, recall and F1
 * (PNEUMONIA is the positive class, as in the paper's binary setting), and the mean and standard
 * deviation over trials.
 */
import { z } from 'zod';
import { CLASS_NAMES } from '../../pipelines/schema.js';

/** rows: true class, columns: predicted class, in CLASS_NAMES order. */
export type ConfusionMatrix = number[][];

export const ClassificationMetricsSchema = z.object({
  accuracy: z.number(),
  perClassAccuracy: z.object({ NORMAL: z.number(), PNEUMONIA: z.number() }),
  precision: z.number(),
  recall: z.number(),
  f1: z.number(),
  confusion: z.array(z.array(z.number().int())),
  support: z.number().int(),
});
export type ClassificationMetrics = z.infer<typeof ClassificationMetricsSchema>;

export function confusionMatrix(
  truth: readonly number[],
  predicted: readonly number[],
  classes = CLASS_NAMES.length,
): ConfusionMatrix {
  if (truth.length !== predicted.length)
    throw new Error(`confusionMatrix: ${truth.length} labels but ${predicted.length} predictions`);
  const matrix = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  truth.forEach((t, i) => {
    matrix[t]![predicted[i]!]! += 1;
  });
  return matrix;
}

/** 0/0 is reported as 0 (e.g. precision when nothing is predicted positive). */
function ratio(numerator: number, denominator: number): number {
  return denominator === 0 ? 0 : numerator / denominator;
}

export function metricsFromConfusion(confusion: ConfusionMatrix): ClassificationMetrics {
  const [[tn, fp], [fn, tp]] = confusion as [[number, number], [number, number]];
  const total = tn + fp + fn + tp;
  const precision = ratio(tp, tp + fp);
  const recall = ratio(tp, tp + fn);
  return {
    accuracy: ratio(tp + tn, total),
    perClassAccuracy: { NORMAL: ratio(tn, tn + fp), PNEUMONIA: ratio(tp, tp + fn) },
    precision,
    recall,
    f1: ratio(2 * precision * recall, precision + recall),
    confusion,
    support: total,
  };
}

export interface MeanStd {
  mean: number;
  /** Sample standard deviation (n - 1); 0 for a single trial. */
  std: number;
  values: number[];
}

export function meanStd(values: readonly number[]): MeanStd {
  if (values.length === 0) throw new Error('meanStd of no values');
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.length < 2 ? 0 : values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1);
  return { mean, std: Math.sqrt(variance), values: [...values] };
}

export type AggregatedMetrics = {
  accuracy: MeanStd;
  perClassAccuracy: { NORMAL: MeanStd; PNEUMONIA: MeanStd };
  precision: MeanStd;
  recall: MeanStd;
  f1: MeanStd;
  /** Element-wise sum of the trials' confusion matrices. */
  confusion: ConfusionMatrix;
  trials: number;
};

export function aggregateMetrics(trials: readonly ClassificationMetrics[]): AggregatedMetrics {
  const pick = (f: (m: ClassificationMetrics) => number) => meanStd(trials.map(f));
  const confusion = trials[0]!.confusion.map((row, i) =>
    row.map((_, j) => trials.reduce((sum, m) => sum + m.confusion[i]![j]!, 0)),
  );
  return {
    accuracy: pick((m) => m.accuracy),
    perClassAccuracy: {
      NORMAL: pick((m) => m.perClassAccuracy.NORMAL),
      PNEUMONIA: pick((m) => m.perClassAccuracy.PNEUMONIA),
    },
    precision: pick((m) => m.precision),
    recall: pick((m) => m.recall),
    f1: pick((m) => m.f1),
    confusion,
    trials: trials.length,
  };
}
