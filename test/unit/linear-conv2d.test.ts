/**
 * LinearConv2D (lib/models/conv2d.ts) against tfjs-layers' Conv2D without bias or activation:
 * the same weights from the same seed, outputs and filter gradients bit for bit, and no input
 * gradient at a network's first layer, which tfjs-layers' fused path computes and throws away.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { LinearConv2D } from '../../lib/models/conv2d.js';
import { withSeededMathRandom } from '../../lib/training/determinism.js';

before(async () => {
  await tf.setBackend('cpu');
});

const INPUT: [number, number, number] = [13, 13, 3];

/** Two stacked convolutions (a stem and a second layer), stock or ours, from one seed. */
function network(kind: 'stock' | 'ours', strides: number, padding: 'same' | 'valid'): tf.LayersModel {
  return withSeededMathRandom(7, () => {
    const layer = (name: string, filters: number, kernelSize: number) =>
      kind === 'ours'
        ? new LinearConv2D({
            name,
            filters,
            kernelSize,
            strides,
            padding,
            kernelInitializer: tf.initializers.heNormal({}),
          })
        : tf.layers.conv2d({
            name,
            filters,
            kernelSize,
            strides,
            padding,
            useBias: false,
            kernelInitializer: tf.initializers.heNormal({}),
          });
    const input = tf.input({ shape: INPUT });
    const hidden = layer('stem', 4, 5).apply(input) as tf.SymbolicTensor;
    const output = layer('second', 2, 3).apply(hidden) as tf.SymbolicTensor;
    return tf.model({ inputs: input, outputs: output });
  });
}

/** Filter gradients of a squared-output loss, and the Conv2DBackpropInput kernels that computed them. */
async function gradients(model: tf.LayersModel, x: tf.Tensor4D) {
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  let grads: tf.NamedTensorMap = {};
  const profile = await tf.profile(() => {
    grads = tf.variableGrads(() => tf.sum(tf.square(model.apply(x, { training: true }) as tf.Tensor)), variables).grads;
  });
  const inputGradients = profile.kernels.filter((k) => k.name === 'Conv2DBackpropInput').length;
  return { grads: variables.map((v) => grads[v.name]!.dataSync()), inputGradients };
}

for (const [strides, padding] of [
  [1, 'same'],
  [2, 'valid'],
  [2, 'same'],
] as const) {
  test(`stride ${strides}, ${padding}: weights, outputs and filter gradients equal tfjs-layers' Conv2D bit for bit`, async () => {
    const stock = network('stock', strides, padding);
    const ours = network('ours', strides, padding);
    assert.deepEqual(ours.outputs[0]!.shape, stock.outputs[0]!.shape, 'symbolic output shape');
    assert.deepEqual(
      ours.getWeights().map((w) => w.dataSync()),
      stock.getWeights().map((w) => w.dataSync()),
      'the same initial weights from the same seed',
    );
    const x = tf.randomNormal<tf.Rank.R4>([2, ...INPUT], 0, 1, 'float32', 3);
    const [a, b] = [stock, ours].map((m) => m.predict(x) as tf.Tensor);
    assert.deepEqual(b!.dataSync(), a!.dataSync(), 'outputs');
    const [stockGrads, ourGrads] = [await gradients(stock, x), await gradients(ours, x)];
    assert.deepEqual(ourGrads.grads, stockGrads.grads, 'filter gradients');
    assert.equal(stockGrads.inputGradients, 2, "tfjs-layers computes the stem's input gradient too");
    assert.equal(ourGrads.inputGradients, 1, 'only the second layer needs an input gradient');
    tf.dispose([x, a!, b!]);
    stock.dispose();
    ours.dispose();
  });
}

test('a checkpoint sees a Conv2D: class name, weight name and shape', () => {
  const model = network('ours', 1, 'same');
  const stem = model.getLayer('stem');
  assert.equal(stem.getClassName(), 'Conv2D');
  assert.deepEqual(
    stem.weights.map((w) => [w.originalName, w.shape]),
    [['stem/kernel', [5, 5, 3, 4]]],
  );
  assert.deepEqual((stem.getConfig() as { kernelSize: number[] }).kernelSize, [5, 5]);
  model.dispose();
});
