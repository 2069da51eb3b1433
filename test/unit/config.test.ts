import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PRESETS, resolvePreset } from '../../pipelines/presets.js';
import { ConfigError, parsePipelineConfig } from '../../pipelines/schema.js';

test('every preset is a valid config', () => {
  for (const [name, preset] of Object.entries(PRESETS)) assert.deepEqual(parsePipelineConfig(preset, name), preset);
});

test('the paper preset follows the paper: three trials, 624-image subsets, 9x synthesis, 80/20, 64 px DCGAN, four backbones at 224', () => {
  const paper = PRESETS.paper!;
  assert.equal(paper.protocol.trialSeeds.length, 3);
  assert.equal(paper.protocol.subsetSize, 624);
  assert.equal(paper.protocol.subsetFraction, undefined);
  assert.equal(paper.protocol.syntheticPerReal, 9);
  assert.equal(paper.protocol.trainFraction, 0.8);
  assert.equal(paper.gan.imageSize, 64);
  assert.equal(paper.gan.latentDim, 100);
  assert.deepEqual(paper.classifier.backbones, ['alexnet', 'googlenet', 'squeezenet', 'resnet18']);
  assert.equal(paper.classifier.inputSize, 224);
  assert.equal(paper.classifier.widthMultiplier, 1);
});

test('smoke has the same topology as paper', () => {
  const { smoke, paper } = PRESETS;
  assert.equal(smoke!.protocol.trialSeeds.length, paper!.protocol.trialSeeds.length);
  assert.deepEqual(smoke!.classifier.backbones, paper!.classifier.backbones);
  assert.equal(smoke!.protocol.syntheticPerReal, paper!.protocol.syntheticPerReal);
});

test('an invalid config names each bad field', () => {
  // Loosen the field types so the test can write values the schema must reject.
  const bad = structuredClone(PRESETS.smoke!) as unknown as {
    gan: { imageSize: number };
    protocol: { trainFraction: number };
    classifier: { backbones: string[] };
  };
  bad.gan.imageSize = 48;
  bad.protocol.trainFraction = 1.5;
  bad.classifier.backbones = ['resnet18', 'vgg16'];
  assert.throws(
    () => parsePipelineConfig(bad),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /gan\.imageSize/);
      assert.match(err.message, /protocol\.trainFraction/);
      assert.match(err.message, /classifier\.backbones\.1/);
      return true;
    },
  );
});

test('unknown fields and unknown presets are rejected', () => {
  assert.throws(() => parsePipelineConfig({ ...PRESETS.smoke!, epochs: 3 }), /Unrecognized key.*epochs/);
  assert.throws(() => resolvePreset('huge'), /Unknown preset "huge"; choose one of: paper, paper-cpu, smoke/);
});

test('resolvePreset swaps the data source without touching the preset', () => {
  const config = resolvePreset('smoke', { kind: 'folder', path: '/data/chest_xray' });
  assert.deepEqual(config.data.source, { kind: 'folder', path: '/data/chest_xray' });
  assert.equal(PRESETS.smoke!.data.source.kind, 'synthetic');
});

test("paper-cpu keeps the paper's data protocol and changes only model sizes", () => {
  const { paper, 'paper-cpu': cpu } = PRESETS;
  assert.deepEqual(cpu!.protocol, paper!.protocol);
  assert.equal(cpu!.gan.imageSize, 64);
  assert.equal(cpu!.gan.latentDim, 100);
  assert.deepEqual(cpu!.classifier.backbones, paper!.classifier.backbones);
});
