/**
 * Batch-norm recalibration after training (as torch.optim.swa_utils.update_bn does): the moving
 * mean and variance each BatchNorm layer uses at inference are replaced by the average of its
 * batch statistics over the training images under the final weights. With few training steps and
 * fast-moving weights, the exponential moving averages still describe weights long gone, and a
 * model that fits its training batches predicts one class at inference: measured at the smoke
 * size on kermany-sample, GoogLeNet predicted PNEUMONIA for 76 of 76 test images with its moving
 * statistics (55.3% accuracy) and scored 93.4% with the batches' own statistics.
 */
import * as tf from '@tensorflow/tfjs';
import { yieldToEventLoop } from './determinism.js';

/** tfjs keeps BatchNormalization's momentum private; the update is m * moving + (1 - m) * batch. */
type WithMomentum = { momentum: number };

export async function recalibrateBatchNorm(model: tf.LayersModel, batches: Iterable<() => tf.Tensor>): Promise<number> {
  const layers = model.layers.filter((l) => l.getClassName() === 'BatchNormalization') as unknown as WithMomentum[];
  if (layers.length === 0) return 0;
  const original = layers.map((l) => l.momentum);
  let seen = 0;
  try {
    for (const makeBatch of batches) {
      // Momentum k / (k + 1) for the k-th batch keeps the running value the mean of all batches so far.
      for (const layer of layers) layer.momentum = seen / (seen + 1);
      tf.tidy(() => {
        model.apply(makeBatch(), { training: true });
      });
      seen += 1;
      await yieldToEventLoop();
    }
  } finally {
    layers.forEach((l, i) => (l.momentum = original[i]!));
  }
  return seen;
}
