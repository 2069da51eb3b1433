import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  AdaptiveAvgPool2d,
  BACKBONE_NAMES,
  buildBackbone,
  countParams,
  isBackboneName,
  minInputSize,
  type BackboneName,
} from '../../lib/models/backbones/index.js';
import { buildDiscriminator, buildGenerator, type DcganOptions } from '../../lib/models/dcgan.js';
import { withSeededMathRandom } from '../../lib/training/determinism.js';

// ------------------------------------------------------------------------------------------
// Expected parameter counts, derived by hand from torchvision's layer shapes.

const convP = (k: number, cin: number, cout: number, bias: boolean): number => k * k * cin * cout + (bias ? cout : 0);
const bnP = (c: number): number => 2 * c; // gamma + beta (running stats are buffers)
const linearP = (cin: number, cout: number): number => cin * cout + cout;

function alexnetParams(classes: number): number {
  return (
    convP(11, 3, 64, true) +
    convP(5, 64, 192, true) +
    convP(3, 192, 384, true) +
    convP(3, 384, 256, true) +
    convP(3, 256, 256, true) +
    linearP(256 * 6 * 6, 4096) +
    linearP(4096, 4096) +
    linearP(4096, classes)
  );
}

function resnet18Params(classes: number): number {
  const block = (cin: number, cout: number): number =>
    convP(3, cin, cout, false) +
    bnP(cout) +
    convP(3, cout, cout, false) +
    bnP(cout) +
    (cin !== cout ? convP(1, cin, cout, false) + bnP(cout) : 0);
  return (
    convP(7, 3, 64, false) +
    bnP(64) +
    block(64, 64) +
    block(64, 64) +
    block(64, 128) +
    block(128, 128) +
    block(128, 256) +
    block(256, 256) +
    block(256, 512) +
    block(512, 512) +
    linearP(512, classes)
  );
}

function squeezenet11Params(classes: number): number {
  const fire = (cin: number, s: number, e1: number, e3: number): number =>
    convP(1, cin, s, true) + convP(1, s, e1, true) + convP(3, s, e3, true);
  return (
    convP(3, 3, 64, true) +
    fire(64, 16, 64, 64) +
    fire(128, 16, 64, 64) +
    fire(128, 32, 128, 128) +
    fire(256, 32, 128, 128) +
    fire(256, 48, 192, 192) +
    fire(384, 48, 192, 192) +
    fire(384, 64, 256, 256) +
    fire(512, 64, 256, 256) +
    convP(1, 512, classes, true)
  );
}

function googlenetParams(classes: number): number {
  const basic = (k: number, cin: number, cout: number): number => convP(k, cin, cout, false) + bnP(cout);
  let c = 192;
  let total = basic(7, 3, 64) + basic(1, 64, 64) + basic(3, 64, 192);
  const inception = (c1: number, c3r: number, c3: number, c5r: number, c5: number, pool: number): void => {
    // torchvision's "5x5" branch uses a 3x3 conv.
    total +=
      basic(1, c, c1) + basic(1, c, c3r) + basic(3, c3r, c3) + basic(1, c, c5r) + basic(3, c5r, c5) + basic(1, c, pool);
    c = c1 + c3 + c5 + pool;
  };
  inception(64, 96, 128, 16, 32, 32);
  inception(128, 128, 192, 32, 96, 64);
  inception(192, 96, 208, 16, 48, 64);
  inception(160, 112, 224, 24, 64, 64);
  inception(128, 128, 256, 24, 64, 64);
  inception(112, 144, 288, 32, 64, 64);
  inception(256, 160, 320, 32, 128, 128);
  inception(256, 160, 320, 32, 128, 128);
  inception(384, 192, 384, 48, 128, 128);
  return total + linearP(c, classes);
}

/** torchvision's published ImageNet (1000-class) counts and their fc/final-conv heads. */
const TORCHVISION: Record<
  BackboneName,
  { published: number; head: (classes: number) => number; byShape: (c: number) => number }
> = {
  alexnet: { published: 61_100_840, head: (c) => linearP(4096, c), byShape: alexnetParams },
  googlenet: { published: 6_624_904, head: (c) => linearP(1024, c), byShape: googlenetParams },
  squeezenet: { published: 1_235_496, head: (c) => convP(1, 512, c, true), byShape: squeezenet11Params },
  resnet18: { published: 11_689_512, head: (c) => linearP(512, c), byShape: resnet18Params },
};

const SMALL_INPUT: Record<BackboneName, number> = { alexnet: 64, googlenet: 32, squeezenet: 32, resnet18: 32 };

// ------------------------------------------------------------------------------------------
// Backbones

for (const name of BACKBONE_NAMES) {
  test(`${name}: width 0.125 forward pass gives finite [2, 2] logits`, () => {
    const model = buildBackbone(name, {
      inputSize: SMALL_INPUT[name],
      widthMultiplier: 0.125,
      numClasses: 2,
      dropout: 0.5,
    });
    try {
      const x = tf.randomUniform([2, SMALL_INPUT[name], SMALL_INPUT[name], 3], -1, 1, 'float32', 7);
      const y = model.predict(x) as tf.Tensor;
      assert.deepEqual(y.shape, [2, 2]);
      assert.ok(Array.from(y.dataSync()).every(Number.isFinite));
      tf.dispose([x, y]);
    } finally {
      model.dispose();
    }
  });

  test(`${name}: width 1.0 trainable parameters equal torchvision's with a 2-class head`, () => {
    const tv = TORCHVISION[name];
    assert.equal(tv.byShape(1000), tv.published, 'shape-derived count reproduces the published total');
    const expected = tv.published - tv.head(1000) + tv.head(2);
    assert.equal(tv.byShape(2), expected);
    const model = buildBackbone(name, { inputSize: 224, widthMultiplier: 1, numClasses: 2, dropout: 0.5 });
    try {
      assert.equal(countParams(model), expected);
    } finally {
      model.dispose();
    }
  });
}

test('feature-map sizes at 224 follow PyTorch (padding, ceil_mode, adaptive pool)', () => {
  const shapeOf = (name: BackboneName, layer: string): unknown => {
    const model = buildBackbone(name, { inputSize: 224, widthMultiplier: 0.125, numClasses: 2, dropout: 0 });
    const shape = model.getLayer(layer).outputShape;
    model.dispose();
    return shape;
  };
  assert.deepEqual(shapeOf('alexnet', 'features.0'), [null, 55, 55, 8]);
  assert.deepEqual(shapeOf('alexnet', 'avgpool'), [null, 6, 6, 32]);
  assert.deepEqual(shapeOf('googlenet', 'maxpool1'), [null, 56, 56, 8]);
  assert.deepEqual(shapeOf('googlenet', 'maxpool4'), [null, 7, 7, 104]);
  assert.deepEqual(shapeOf('squeezenet', 'features.12'), [null, 13, 13, 64]);
  assert.deepEqual(shapeOf('resnet18', 'layer4.1.relu2'), [null, 7, 7, 64]);
});

test('layers carry torchvision parameter paths as names', () => {
  const expected: Record<BackboneName, string[]> = {
    alexnet: ['features.0', 'features.10', 'classifier.1', 'classifier.6'],
    googlenet: ['conv1.conv', 'conv1.bn', 'inception3a.branch2.1.conv', 'inception5b.branch4.1.bn', 'fc'],
    squeezenet: ['features.0', 'features.3.squeeze', 'features.12.expand3x3', 'classifier.1'],
    resnet18: ['conv1', 'bn1', 'layer1.0.conv1', 'layer2.0.downsample.0', 'layer4.1.bn2', 'fc'],
  };
  for (const name of BACKBONE_NAMES) {
    const model = buildBackbone(name, {
      inputSize: SMALL_INPUT[name],
      widthMultiplier: 0.125,
      numClasses: 2,
      dropout: 0,
    });
    for (const layer of expected[name]) assert.ok(model.getLayer(layer).weights.length > 0, `${name} ${layer}`);
    model.dispose();
  }
});

test('too-small inputs are refused with the minimum; unknown names list the valid ones', () => {
  assert.equal(minInputSize('alexnet'), 63);
  assert.throws(
    () => buildBackbone('alexnet', { inputSize: 32, widthMultiplier: 0.125, numClasses: 2, dropout: 0 }),
    /alexnet needs inputSize >= 63 \(got 32\)/,
  );
  for (const name of BACKBONE_NAMES) assert.ok(minInputSize(name) <= SMALL_INPUT[name]);
  assert.throws(
    () => buildBackbone('vgg16' as BackboneName, { inputSize: 64, widthMultiplier: 1, numClasses: 2, dropout: 0 }),
    (err: Error) => err.message.includes('"vgg16"') && BACKBONE_NAMES.every((n) => err.message.includes(n)),
  );
  assert.equal(isBackboneName('resnet18'), true);
  assert.equal(isBackboneName('resnet50'), false);
});

test('AdaptiveAvgPool2d matches PyTorch bins (replicates small maps, overlaps large ones)', () => {
  const torchAdaptive = (x: number[][], out: number): number[][] => {
    const n = x.length;
    const bins = (i: number): [number, number] => [Math.floor((i * n) / out), Math.ceil(((i + 1) * n) / out)];
    return Array.from({ length: out }, (_, i) =>
      Array.from({ length: out }, (_, j) => {
        const [h0, h1] = bins(i);
        const [w0, w1] = bins(j);
        let sum = 0;
        for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) sum += x[h]![w]!;
        return sum / ((h1 - h0) * (w1 - w0));
      }),
    );
  };
  const layer = new AdaptiveAvgPool2d({ outputSize: 6 });
  for (const n of [1, 3, 6, 7, 13]) {
    const grid = Array.from({ length: n }, (_, h) => Array.from({ length: n }, (_, w) => h * 10 + w * w));
    const x = tf.tensor4d(grid.flat(), [1, n, n, 1]).tile([2, 1, 1, 3]);
    const y = layer.apply(x) as tf.Tensor;
    assert.deepEqual(y.shape, [2, 6, 6, 3]);
    const got = (y.arraySync() as number[][][][])[1]!.map((row) => row.map((c) => c[2]!));
    const want = torchAdaptive(grid, 6);
    got
      .flat()
      .forEach((v, i) =>
        assert.ok(Math.abs(v - want.flat()[i]!) < 1e-4, `n=${n} cell ${i}: ${v} vs ${want.flat()[i]}`),
      );
    tf.dispose([x, y]);
  }
});

test('alexnet trains through the adaptive pool (finite gradients)', async () => {
  // Seeded, without dropout: an unlucky random init can leave every ReLU of a 2-image batch dead.
  const model = withSeededMathRandom(7, () =>
    buildBackbone('alexnet', { inputSize: 64, widthMultiplier: 0.125, numClasses: 2, dropout: 0 }),
  );
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  const x = tf.randomUniform([2, 64, 64, 3], -1, 1, 'float32', 3);
  const y = tf.oneHot(tf.tensor1d([0, 1], 'int32'), 2);
  const before = model.getLayer('features.0').getWeights()[0]!.dataSync().slice();
  const h = await model.fit(x, y, { epochs: 1, batchSize: 2, verbose: 0 });
  const loss = h.history.loss![0] as number;
  assert.ok(Number.isFinite(loss));
  const after = model.getLayer('features.0').getWeights()[0]!.dataSync();
  assert.ok(
    after.some((v, i) => v !== before[i]),
    'first conv received a gradient',
  );
  tf.dispose([x, y]);
  model.dispose();
});

test('alexnet (custom AdaptiveAvgPool2d layer) survives a save/load round trip', async () => {
  const model = buildBackbone('alexnet', { inputSize: 64, widthMultiplier: 0.125, numClasses: 2, dropout: 0.5 });
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler((a) => {
      artifacts = a;
      return Promise.resolve({ modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } });
    }),
  );
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
  assert.equal(loaded.getLayer('avgpool').getClassName(), 'AdaptiveAvgPool2d');
  const x = tf.randomUniform([2, 64, 64, 3], -1, 1, 'float32', 9);
  const a = model.predict(x) as tf.Tensor;
  const b = loaded.predict(x) as tf.Tensor;
  assert.deepEqual(Array.from(b.dataSync()), Array.from(a.dataSync()));
  tf.dispose([x, a, b]);
  model.dispose();
  loaded.dispose();
});

// ------------------------------------------------------------------------------------------
// DCGAN

function layerCounts(model: tf.LayersModel): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const l of model.layers) counts[l.getClassName()] = (counts[l.getClassName()] ?? 0) + 1;
  return counts;
}

function assertAll4x4(model: tf.LayersModel, className: string): void {
  const convs = model.layers.filter((l) => l.getClassName() === className);
  for (const l of convs) assert.deepEqual(l.getWeights()[0]!.shape.slice(0, 2), [4, 4], l.name);
}

for (const imageSize of [64, 32] as const) {
  const o: DcganOptions = { imageSize, latentDim: 16, generatorWidth: 4, discriminatorWidth: 4, channels: 1 };

  test(`DCGAN ${imageSize}px generator: [2, ${imageSize}, ${imageSize}, 1] in [-1, 1], 5 ConvT / 4 BN / 4 ReLU, 4x4`, () => {
    const g = buildGenerator(o);
    const z = tf.randomNormal([2, o.latentDim], 0, 1, 'float32', 11);
    const img = g.predict(z) as tf.Tensor;
    assert.deepEqual(img.shape, [2, imageSize, imageSize, 1]);
    const values = img.dataSync();
    assert.ok(values.every((v) => Number.isFinite(v) && v >= -1 && v <= 1));
    const counts = layerCounts(g);
    assert.equal(counts.Conv2DTranspose, 5);
    assert.equal(counts.BatchNormalization, 4);
    assert.equal(counts.ReLU, 4);
    assert.equal(counts.Conv2D ?? 0, 0);
    const last = g.layers.at(-1)!;
    assert.equal((last.getConfig() as { activation?: string }).activation, 'tanh');
    assertAll4x4(g, 'Conv2DTranspose');
    assert.equal(g.inputs[0]!.shape[1], o.latentDim);
    tf.dispose([z, img]);
    g.dispose();
  });

  test(`DCGAN ${imageSize}px discriminator: [2, 1] logits, 5 Conv / 3 BN / 4 LeakyReLU(0.2), 4x4`, () => {
    const d = buildDiscriminator(o);
    const x = tf.randomUniform([2, imageSize, imageSize, 1], -1, 1, 'float32', 5);
    const logits = d.predict(x) as tf.Tensor;
    assert.deepEqual(logits.shape, [2, 1]);
    assert.ok(Array.from(logits.dataSync()).every(Number.isFinite));
    const counts = layerCounts(d);
    assert.equal(counts.Conv2D, 5);
    assert.equal(counts.BatchNormalization, 3);
    assert.equal(counts.LeakyReLU, 4);
    for (const l of d.layers.filter((l) => l.getClassName() === 'LeakyReLU')) {
      assert.equal((l.getConfig() as { alpha: number }).alpha, 0.2);
    }
    assertAll4x4(d, 'Conv2D');
    tf.dispose([x, logits]);
    d.dispose();
  });
}

test('DCGAN paper size (64px, z 100, ngf = ndf = 64) has the reference parameter counts', () => {
  const o: DcganOptions = { imageSize: 64, latentDim: 100, generatorWidth: 64, discriminatorWidth: 64, channels: 1 };
  const g = buildGenerator(o);
  const d = buildDiscriminator(o);
  // PyTorch DCGAN reference with nc = 1 (all convs bias-free; BN gamma + beta).
  const gExpected = 16 * (100 * 512 + 512 * 256 + 256 * 128 + 128 * 64 + 64 * 1) + 2 * (512 + 256 + 128 + 64);
  const dExpected = 16 * (1 * 64 + 64 * 128 + 128 * 256 + 256 * 512 + 512 * 1) + 2 * (128 + 256 + 512);
  assert.equal(countParams(g), gExpected);
  assert.equal(countParams(d), dExpected);
  g.dispose();
  d.dispose();
});

test('DCGAN options are validated', () => {
  assert.throws(
    () =>
      buildGenerator({ imageSize: 128 as 64, latentDim: 100, generatorWidth: 64, discriminatorWidth: 64, channels: 1 }),
    /32 or 64/,
  );
  assert.throws(
    () => buildDiscriminator({ imageSize: 64, latentDim: 100, generatorWidth: 64, discriminatorWidth: 0, channels: 1 }),
    /discriminatorWidth/,
  );
});
