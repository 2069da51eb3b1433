import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { recalibrateBatchNorm } from '../../lib/training/batchnorm.js';

test('batch-norm recalibration sets the moving statistics to the mean of the batch statistics', async () => {
  const model = tf.sequential({
    layers: [tf.layers.batchNormalization({ inputShape: [2], momentum: 0.99 })],
  });
  const batches = [
    [
      [0, 0],
      [2, 2],
    ],
    [
      [4, 4],
      [6, 6],
    ],
  ].map((rows) => () => tf.tensor2d(rows));
  assert.equal(await recalibrateBatchNorm(model, batches), 2);
  const [, , movingMean, movingVariance] = model.layers[0]!.getWeights();
  // Batch means 1 and 5 -> 3; each batch's (biased) variance is 1.
  assert.deepEqual(Array.from(await movingMean!.data()), [3, 3]);
  assert.deepEqual(Array.from(await movingVariance!.data()), [1, 1]);
  assert.equal((model.layers[0] as unknown as { momentum: number }).momentum, 0.99);
  assert.equal(
    await recalibrateBatchNorm(tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 1 })] }), batches),
    0,
  );
});
