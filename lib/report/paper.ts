/** The numbers the paper reports (Khalifa et al. 2020, with GAN, mean of three trials). */
import type { Backbone } from '../../pipelines/schema.js';

export const PAPER_ACCURACY: Record<Backbone, number> = {
  alexnet: 0.961,
  googlenet: 0.986,
  squeezenet: 0.947,
  resnet18: 0.99,
};

/** Best per-class accuracies the paper reports (Table 1's maxima; the full table is not in the text). */
export const PAPER_BEST_PER_CLASS = {
  NORMAL: { backbone: 'squeezenet', accuracy: 0.993 },
  PNEUMONIA: { backbone: 'googlenet', accuracy: 0.994 },
} as const;
