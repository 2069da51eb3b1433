import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { PRESETS } from '../../pipelines/presets.js';
import { applySet, configDifferences, resolveConfig } from '../../pipelines/resolve.js';
import { ConfigError } from '../../pipelines/schema.js';

const dir = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-config-'));
const file = async (name: string, text: string) => {
  const target = path.join(dir, name);
  await writeFile(target, text);
  return target;
};

test('a YAML file over its preset, then --set overrides, validated as one configuration', async () => {
  const yaml = await file('run.yaml', 'preset: paper\ngan:\n  steps: 500\nclassifier:\n  backbones: [resnet18]\n');
  const config = await resolveConfig({
    file: yaml,
    sets: [
      'classifier.epochs=2',
      'classifier.pretrained.resnet18=/weights/resnet18.safetensors',
      'protocol.trialSeeds=[4, 5]',
    ],
  });
  assert.equal(config.preset, 'paper');
  assert.equal(config.gan.steps, 500);
  assert.equal(config.gan.latentDim, PRESETS.paper!.gan.latentDim, 'fields the file leaves out keep the preset value');
  assert.deepEqual(config.classifier.backbones, ['resnet18'], 'arrays replace');
  assert.equal(config.classifier.epochs, 2);
  assert.deepEqual(config.classifier.pretrained, { resnet18: '/weights/resnet18.safetensors' });
  assert.deepEqual(config.protocol.trialSeeds, [4, 5]);
});

test('JSON files work, --preset wins over the file, null removes a field, --data replaces the source', async () => {
  const json = await file(
    'run.json',
    JSON.stringify({ preset: 'paper', protocol: { subsetSize: null, subsetFraction: 0.2 } }),
  );
  const config = await resolveConfig({
    preset: 'smoke',
    file: json,
    data: { kind: 'folder', path: '/data/chest_xray' },
  });
  assert.equal(config.preset, 'smoke');
  assert.equal(config.protocol.subsetFraction, 0.2);
  assert.deepEqual(config.data.source, { kind: 'folder', path: '/data/chest_xray' });
  const fromPaper = await resolveConfig({
    preset: 'paper',
    sets: ['protocol.subsetSize=null', 'protocol.subsetFraction=0.1'],
  });
  assert.equal(fromPaper.protocol.subsetSize, undefined);
  assert.equal(fromPaper.protocol.subsetFraction, 0.1);
});

test('bad values give one error that lists every bad field and where the configuration came from', async () => {
  const yaml = await file('bad.yaml', 'gan:\n  steps: -1\nclassifier:\n  backbone: [vgg]\n');
  await assert.rejects(resolveConfig({ file: yaml, sets: ['classifier.epochs=zero'] }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /preset "smoke" \+ file .*bad\.yaml \+ --set overrides/);
    assert.match(err.message, /gan\.steps: Too small/);
    assert.match(err.message, /classifier: Unrecognized key: "backbone"/);
    assert.match(err.message, /classifier\.epochs: Invalid input: expected number, received string/);
    return true;
  });
  await assert.rejects(resolveConfig({ preset: 'huge' }), /Unknown preset "huge"; choose one of: paper/);
  await assert.rejects(
    resolveConfig({ file: path.join(dir, 'missing.yaml') }),
    /Cannot read the config file .*missing\.yaml/,
  );
  await assert.rejects(resolveConfig({ file: await file('list.yaml', '- 1\n- 2\n') }), /must hold a mapping of fields/);
  await assert.rejects(resolveConfig({ file: await file('broken.json', '{"gan": ') }), /not valid JSON or YAML/);
});

test('--set syntax errors name the assignment and the fix', () => {
  assert.throws(() => applySet({}, 'epochs'), /--set epochs: expected key\.path=value/);
  assert.throws(() => applySet({}, 'gan..steps=1'), /expected key\.path=value/);
  assert.throws(() => applySet({ gan: { steps: 3 } }, 'gan.steps.x=1'), /gan\.steps is a value, not a group of fields/);
  assert.deepEqual(applySet({}, 'a.b=text with spaces'), { a: { b: 'text with spaces' } });
});

test('configDifferences names each differing field with both values', () => {
  const before = structuredClone(PRESETS.smoke!);
  const after = structuredClone(PRESETS.smoke!);
  after.gan.steps = 10;
  after.classifier.backbones = ['alexnet'];
  after.classifier.maxSteps = 4;
  assert.deepEqual(configDifferences(before, after), [
    'classifier.backbones: ["alexnet","googlenet","squeezenet","resnet18"] -> ["alexnet"]',
    'classifier.maxSteps: (unset) -> 4',
    'gan.steps: 200 -> 10',
  ]);
  assert.deepEqual(configDifferences(before, structuredClone(before)), []);
});
