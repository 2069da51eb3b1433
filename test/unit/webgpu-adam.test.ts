/**
 * The fused Adam update (lib/compute/webgpu-adam.ts) against tfjs's Adam on the CPU backend:
 * the same weights and optimizer state after several steps, the same state layout (so
 * checkpoints are interchangeable), and far fewer kernels per step. Needs a WebGPU adapter
 * (lavapipe without a GPU: `npm run setup:lavapipe`); those tests skip and say so without one.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { ADAM_UPDATE, adam } from '../../lib/compute/webgpu-adam.js';
import { countWebGpuPrograms } from '../../lib/compute/webgpu-program.js';
import { startWebGpuBackend, values } from '../helpers/webgpu.js';

let unavailable = '';
let runs = 0;

before(async () => {
  const started = await startWebGpuBackend();
  if (typeof started === 'string') unavailable = started;
});

/**
 * Shapes of a conv layer, its bias, a dense layer and its bias: 4-D, 1-D and 2-D variables, sizes
 * that are multiples of 4 (updated four at a time on WebGPU) and one that is not (3).
 */
const SHAPES = [[3, 3, 2, 4], [4], [36, 3], [3]];

/**
 * Runs `steps` Adam steps of a fixed least-squares loss on `backend` with `optimizer`; returns
 * the variables' values and the optimizer's weights (names and values).
 */
async function train(backend: string, optimizer: tf.Optimizer, steps: number, withList: boolean) {
  assert.ok(await tf.setBackend(backend));
  runs++;
  const vars = SHAPES.map((shape, i) =>
    tf.variable(tf.tensor(values(tf.util.sizeFromShape(shape), 10 + i), shape), true, `adamtest${runs}_${i}`),
  );
  const x = tf.tensor4d(values(2 * 6 * 6 * 2, 20), [2, 6, 6, 2]);
  const target = tf.tensor2d(values(2 * 3, 21), [2, 3]);
  const loss = () =>
    tf.tidy(() => {
      const h = tf.relu(tf.add(tf.conv2d(x, vars[0] as tf.Variable<tf.Rank.R4>, 2, 'same'), vars[1]!));
      const y = tf.add(tf.matMul(tf.reshape(h, [2, 36]), vars[2] as tf.Variable<tf.Rank.R2>), vars[3]!);
      return tf.mean<tf.Scalar>(tf.square(tf.sub(y, target)));
    });
  for (let s = 0; s < steps; s++) optimizer.minimize(loss, true, withList ? vars : undefined)?.dispose();
  const weights = await Promise.all(vars.map(async (v) => (await v.data()) as Float32Array));
  const state = await Promise.all(
    (await optimizer.getWeights()).map(async (w) => ({
      name: w.name.replace(/^adamtest\d+_/, ''),
      values: (await w.tensor.data()) as Float32Array,
    })),
  );
  tf.dispose([...vars, x, target]);
  optimizer.dispose();
  return { weights, state };
}

function worstRelative(expected: Float32Array[], actual: Float32Array[]): number {
  let worst = 0;
  expected.forEach((e, i) => {
    const scale = e.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-12);
    e.forEach((v, j) => (worst = Math.max(worst, Math.abs(actual[i]![j]! - v) / scale)));
  });
  return worst;
}

test('off WebGPU the fused Adam is tf.train.adam, value for value', async () => {
  const ours = await train('cpu', adam(0.01, 0.5), 4, false);
  const theirs = await train('cpu', tf.train.adam(0.01, 0.5), 4, false);
  assert.deepEqual(ours, theirs);
});

test('on WebGPU the fused Adam gives the CPU backend tf.train.adam weights and optimizer state', async (t) => {
  if (unavailable) return t.skip(unavailable);
  for (const withList of [false, true]) {
    const expected = await train('cpu', tf.train.adam(0.01, 0.5), 6, withList);
    const actual = await train('webgpu', adam(0.01, 0.5), 6, withList);
    assert.deepEqual(
      actual.state.map((s) => s.name),
      expected.state.map((s) => s.name),
      'the same state layout: checkpoints stay interchangeable',
    );
    const weights = worstRelative(expected.weights, actual.weights);
    const state = worstRelative(
      expected.state.map((s) => s.values),
      actual.state.map((s) => s.values),
    );
    assert.ok(weights < 1e-5 && state < 1e-5, `relative differences: weights ${weights}, optimizer state ${state}`);
    t.diagnostic(`relative difference: weights ${weights.toExponential(1)}, state ${state.toExponential(1)}`);
  }
});

test('on WebGPU one Adam step runs one fused kernel per variable instead of a dozen', async (t) => {
  if (unavailable) return t.skip(unavailable);
  assert.ok(await tf.setBackend('webgpu'));
  const kernelsOfOneStep = async (optimizer: tf.Optimizer) => {
    const vars = SHAPES.map((shape, i) => tf.variable(tf.zeros(shape), true, `adamcount${++runs}_${i}`));
    const grads = Object.fromEntries(vars.map((v) => [v.name, tf.onesLike(v)]));
    optimizer.applyGradients(grads); // creates the moments
    const programs = countWebGpuPrograms()!;
    const profile = await tf.profile(() => optimizer.applyGradients(grads)).finally(() => programs.stop());
    tf.dispose([...vars, ...Object.values(grads)]);
    optimizer.dispose();
    return { names: profile.kernels.map((k) => k.name), programs: programs.count() };
  };
  const stock = (await kernelsOfOneStep(tf.train.adam(0.01))).names;
  const { names: fused, programs } = await kernelsOfOneStep(adam(0.01));
  assert.equal(fused.filter((k) => k === ADAM_UPDATE).length, SHAPES.length);
  // Two programs per variable (packed moments, value) and the two beta powers.
  assert.ok(programs <= 2 * SHAPES.length + 2, `${programs} programs in one step`);
  assert.ok(!fused.includes('Sqrt') && stock.includes('Sqrt'));
  assert.ok(fused.length <= SHAPES.length + 4, `fused: ${fused.join(', ')}`);
  t.diagnostic(`kernels per step for ${SHAPES.length} variables: tf.train.adam ${stock.length}, fused ${fused.length}`);
});

test('on WebGPU, reading and restoring the optimizer state mid-training changes nothing, and leaks nothing', async (t) => {
  if (unavailable) return t.skip(unavailable);
  assert.ok(await tf.setBackend('webgpu'));
  const run = async (interrupt: 'none' | 'read' | 'restore') => {
    const prefix = `adamresume${++runs}_`;
    const vars = SHAPES.map((shape, i) =>
      tf.variable(tf.tensor(values(tf.util.sizeFromShape(shape), 30 + i), shape), true, `${prefix}${i}`),
    );
    let optimizer = adam(0.01, 0.5);
    const step = (s: number) => {
      const grads = vars.map((v, i) => ({ name: v.name, tensor: tf.tensor(values(v.size, 100 * s + i), v.shape) }));
      optimizer.applyGradients(grads);
      tf.dispose(grads.map((g) => g.tensor));
    };
    let tensorsAfterFirst = 0;
    for (let s = 0; s < 6; s++) {
      step(s);
      if (s === 0) tensorsAfterFirst = tf.memory().numTensors;
      // getWeights returns tfjs's slots themselves and a new scalar of the iteration count first.
      if (s === 2 && interrupt === 'read') (await optimizer.getWeights())[0]!.tensor.dispose();
      if (s === 2 && interrupt === 'restore') {
        const state = await optimizer.getWeights();
        const saved = await Promise.all(
          state.map(async (w) => ({
            name: w.name,
            tensor: tf.tensor(await w.tensor.data(), w.tensor.shape),
          })),
        );
        state[0]!.tensor.dispose();
        optimizer.dispose();
        optimizer = adam(0.01, 0.5);
        await optimizer.setWeights(saved);
        tf.dispose(saved.map((w) => w.tensor));
      }
    }
    const tensorsAtEnd = tf.memory().numTensors;
    const weights = await Promise.all(vars.map(async (v) => (await v.data()) as Float32Array));
    tf.dispose(vars);
    optimizer.dispose();
    return { weights, grew: tensorsAtEnd - tensorsAfterFirst };
  };
  const plain = await run('none');
  const read = await run('read');
  const restored = await run('restore');
  assert.deepEqual(read.weights, plain.weights, 'unpacking and packing the moments copies them exactly');
  // A restore recomputes the beta powers as beta^t, where steps multiply them: float rounding.
  const restoredError = worstRelative(plain.weights, restored.weights);
  assert.ok(restoredError < 1e-5, `restored: relative difference ${restoredError}`);
  assert.deepEqual([plain.grew, read.grew, restored.grew], [0, 0, 0], 'tensors kept after the first step');
});
