/**
 * This project's models on the WebGPU backend (Dawn) against tfjs's CPU backend: the gradient of
 * a loss with respect to every trainable weight, which runs every op of a training step forward
 * and backward (convolutions and their filter/input gradients, transposed convolution, batch
 * norm, pooling, concatenation, dense layers, activations).
 *
 * Needs a WebGPU adapter. Without a GPU, lavapipe (Mesa's Vulkan on the CPU) provides one:
 * `npm run setup:lavapipe` on Debian 12 writes its driver manifest to the cache, which this test
 * uses when VK_DRIVER_FILES is unset. Without an adapter the tests skip and say so.
 */
import assert from 'node:assert/strict';
import { before, test, type TestContext } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { ComputeBackend } from '../../lib/compute/backend.js';
import { buildBackbone, type BackboneName } from '../../lib/models/backbones/index.js';
import { buildDiscriminator, buildGenerator } from '../../lib/models/dcgan.js';
import type { TrainingState } from '../../lib/training/checkpoint.js';
import { withSeededMathRandom } from '../../lib/training/determinism.js';
import { trainGan, type GanMeta } from '../../lib/training/gan.js';
import { PRESETS } from '../../pipelines/presets.js';
import { startWebGpuBackend, values } from '../helpers/webgpu.js';

/**
 * Largest |webgpu - cpu| of a weight's gradient over the largest |cpu| of it (or a thousandth of
 * the model's largest gradient, for weights whose gradient is all but zero). Measured on lavapipe
 * with batches of four: at most 4.5e-5. Batch-norm gradients on batches of two are
 * ill-conditioned at initialisation: there even the CPU backend and native TensorFlow differ by
 * 6.2e-4 (ResNet18's first gamma), hence the batches of four.
 */
const TOLERANCE = 1e-3;

let webgpu: ComputeBackend | undefined;
let unavailable = '';

before(async () => {
  const started = await startWebGpuBackend();
  if (typeof started === 'string') unavailable = started;
  else webgpu = started;
});

function requireWebGpu(t: TestContext): boolean {
  if (webgpu) return true;
  t.skip(unavailable);
  return false;
}

/** Gradients of `loss` with respect to every trainable variable, computed on `backend`. */
async function gradients(backend: string, loss: () => tf.Scalar): Promise<Map<string, Float32Array>> {
  assert.ok(await tf.setBackend(backend), `backend ${backend} did not start`);
  const { value, grads } = tf.variableGrads(loss);
  const out = new Map<string, Float32Array>();
  for (const [name, grad] of Object.entries(grads)) out.set(name, (await grad.data()) as Float32Array);
  tf.dispose([value, ...Object.values(grads)]);
  return out;
}

/** Runs `loss` on the CPU and on WebGPU (the variables move between them) and compares. */
async function assertSameGradients(loss: () => tf.Scalar): Promise<{ worst: number; name: string }> {
  const reference = await gradients('cpu', loss);
  const gpu = await gradients('webgpu', loss);
  assert.deepEqual([...gpu.keys()].sort(), [...reference.keys()].sort());
  const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const modelScale = Math.max(...[...reference.values()].map(maxAbs));
  let worst = 0;
  let worstName = '';
  for (const [name, expected] of reference) {
    const actual = gpu.get(name)!;
    const scale = Math.max(maxAbs(expected), modelScale * 1e-3);
    let diff = 0;
    for (let i = 0; i < expected.length; i++) diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    const relative = diff / scale;
    if (relative >= worst) [worst, worstName] = [relative, name];
    assert.ok(relative < TOLERANCE, `${name}: max |webgpu - cpu| = ${diff} against max |cpu| = ${scale}`);
  }
  return { worst, name: worstName };
}

test('DCGAN generator and discriminator gradients on WebGPU match the CPU backend', async (t) => {
  if (!requireWebGpu(t)) return;
  const options = { imageSize: 32, latentDim: 16, generatorWidth: 8, discriminatorWidth: 8, channels: 1 } as const;
  const generator = withSeededMathRandom(1, () => buildGenerator(options));
  const discriminator = withSeededMathRandom(2, () => buildDiscriminator(options));
  const z = values(4 * options.latentDim, 3);
  const real = values(4 * 32 * 32, 4);
  const { worst, name } = await assertSameGradients(() =>
    tf.tidy(() => {
      const fake = generator.apply(tf.tensor2d(z, [4, options.latentDim]), { training: true }) as tf.Tensor;
      const onFake = discriminator.apply(fake, { training: true }) as tf.Tensor;
      const onReal = discriminator.apply(tf.tensor4d(real, [4, 32, 32, 1]), { training: true }) as tf.Tensor;
      return tf.add<tf.Scalar>(tf.mean(tf.square(onFake)), tf.mean(onReal));
    }),
  );
  t.diagnostic(`worst relative gradient difference ${worst.toExponential(2)} (${name}) on ${webgpu!.device}`);
});

const backbones: Array<{ name: BackboneName; inputSize: number; widthMultiplier: number }> = [
  { name: 'resnet18', inputSize: 32, widthMultiplier: 0.125 },
  { name: 'squeezenet', inputSize: 48, widthMultiplier: 0.125 },
  { name: 'googlenet', inputSize: 32, widthMultiplier: 0.125 },
  { name: 'alexnet', inputSize: 63, widthMultiplier: 0.125 },
];

for (const b of backbones) {
  test(`${b.name} gradients on WebGPU match the CPU backend`, async (t) => {
    if (!requireWebGpu(t)) return;
    const model = withSeededMathRandom(5, () =>
      buildBackbone(b.name, { inputSize: b.inputSize, widthMultiplier: b.widthMultiplier, numClasses: 2, dropout: 0 }),
    );
    const x = values(4 * b.inputSize * b.inputSize * 3, 6);
    const { worst, name } = await assertSameGradients(() =>
      tf.tidy(() => {
        const logits = model.apply(tf.tensor4d(x, [4, b.inputSize, b.inputSize, 3]), { training: true }) as tf.Tensor;
        return tf.losses.softmaxCrossEntropy<tf.Tensor, tf.Scalar>(
          tf.oneHot(tf.tensor1d([0, 1, 0, 1], 'int32'), 2),
          logits,
        );
      }),
    );
    t.diagnostic(`worst relative gradient difference ${worst.toExponential(2)} (${name})`);
    model.dispose();
  });
}

test('GAN training on WebGPU checkpoints, and a run resumed from its checkpoint ends where an uninterrupted one does', async (t) => {
  if (!requireWebGpu(t)) return;
  assert.ok(await tf.setBackend('webgpu'));
  const gan = { ...PRESETS.smoke!.gan, steps: 4, checkpointEvery: 2 };
  const images = Array.from({ length: 8 }, (_, i) => ({
    size: gan.imageSize,
    pixels: Uint8Array.from(values(gan.imageSize ** 2, 20 + i), (v) => Math.round((v + 1) * 127.5)),
  }));
  const checkpoints: Array<TrainingState<GanMeta>> = [];
  const whole = await trainGan({
    images,
    gan,
    seed: 3,
    onCheckpoint: (s) => Promise.resolve(void checkpoints.push(s)),
  });
  whole.generator.dispose();
  assert.deepEqual(
    checkpoints.map((c) => c.meta.step),
    [2, 4],
  );
  const resumed = await trainGan({ images, gan, seed: 3, resume: checkpoints[0] });
  resumed.generator.dispose();
  assert.deepEqual(resumed.state.meta.history, whole.state.meta.history);
  for (const [group, arrays] of Object.entries(whole.state.groups))
    arrays.forEach((a, i) =>
      assert.deepEqual(resumed.state.groups[group]![i]!.data, a.data, `${group} ${a.name} after the resumed run`),
    );
});
