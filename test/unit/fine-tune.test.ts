import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { initComputeBackend } from '../../lib/compute/backend.js';
import { InputError } from '../../lib/errors.js';
import { buildBackbone } from '../../lib/models/backbones/index.js';
import { exportTorchvisionWeights } from '../../lib/models/pretrained.js';
import { SeededRandom } from '../../lib/random.js';
import { fineTune, type LabelledPixels } from '../../lib/training/classifier.js';
import { withSeededMathRandom } from '../../lib/training/determinism.js';
import { PRESETS } from '../../pipelines/presets.js';

before(async () => {
  await initComputeBackend(() => {});
});

const classifier = { ...PRESETS.smoke!.classifier, inputSize: 32, widthMultiplier: 0.125, epochs: 1, batchSize: 8 };

function images(count: number): LabelledPixels[] {
  const rng = new SeededRandom(3);
  return Array.from({ length: count }, (_, i) => ({
    image: { size: 32, pixels: Uint8Array.from({ length: 32 * 32 }, () => rng.int(0, 255)) },
    label: i % 2 ? 'PNEUMONIA' : 'NORMAL',
  }));
}

test('fine-tuning from pretrained weights with frozen features trains only the new head', async () => {
  const source = withSeededMathRandom(99, () =>
    buildBackbone('resnet18', { inputSize: 32, widthMultiplier: 0.125, numClasses: 2, dropout: 0 }),
  );
  const weights = exportTorchvisionWeights(source, 'resnet18');
  const { model } = await fineTune({
    backbone: 'resnet18',
    classifier: { ...classifier, freeze: 'features' },
    seed: 1,
    train: images(16),
    pretrained: { bytes: weights, origin: 'test weights' },
  });
  const byName = new Map(source.weights.map((w) => [w.originalName, w.read().dataSync()]));
  let frozenChecked = 0;
  for (const weight of model.weights) {
    const original = byName.get(weight.originalName);
    if (!original || weight.originalName.includes('moving_')) continue;
    const now = weight.read().dataSync();
    if (weight.originalName.startsWith('fc/')) {
      assert.notDeepEqual(Array.from(now), Array.from(original), 'the head was trained');
    } else {
      assert.deepEqual(Array.from(now), Array.from(original), `${weight.originalName} kept its pretrained value`);
      frozenChecked += 1;
    }
  }
  assert.ok(frozenChecked > 40, `${frozenChecked} frozen weights checked`);
  assert.equal(model.trainableWeights.length, 2, 'only fc kernel and bias are trainable');
});

test('pretrained weights of another width are rejected before training, naming the tensor and both shapes', async () => {
  const wider = buildBackbone('resnet18', { inputSize: 32, widthMultiplier: 0.25, numClasses: 2, dropout: 0 });
  await assert.rejects(
    fineTune({
      backbone: 'resnet18',
      classifier,
      seed: 1,
      train: images(8),
      pretrained: { bytes: exportTorchvisionWeights(wider, 'resnet18'), origin: 'wide.safetensors' },
    }),
    (err: unknown) =>
      err instanceof InputError &&
      /wide\.safetensors.*conv1\.weight is \[16,3,7,7\] in the file, the model expects \[8,3,7,7\]/s.test(err.message),
  );
});
