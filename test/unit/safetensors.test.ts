import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readSafetensors, toFloat32, writeSafetensors } from '../../lib/safetensors.js';
import { decodeSafetensors, encodeSafetensors, type TrainingState } from '../../lib/training/checkpoint.js';

const state: TrainingState<{ step: number }> = {
  groups: {
    generator: [
      { name: 'dense/kernel', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
      { name: 'odd::name', shape: [1], data: Float32Array.from([7]) },
    ],
    'optimizer.generator': [{ name: 'iter', shape: [], data: Float32Array.from([3]) }],
  },
  meta: { step: 3 },
};

test('a checkpoint round-trips through the one safetensors codec, groups and order intact', () => {
  const decoded = decodeSafetensors<{ step: number }>(encodeSafetensors(state), 'checkpoint');
  assert.deepEqual(decoded.meta, { step: 3 });
  assert.deepEqual(Object.keys(decoded.groups), ['generator', 'optimizer.generator']);
  assert.deepEqual(
    decoded.groups.generator!.map((a) => [a.name, a.shape, [...a.data]]),
    [
      ['dense/kernel', [2, 3], [1, 2, 3, 4, 5, 6]],
      ['odd::name', [1], [7]],
    ],
  );
});

test('a checkpoint is a plain safetensors file: the generic reader sees every tensor and the metadata', () => {
  const { tensors, metadata } = readSafetensors(encodeSafetensors(state), 'checkpoint');
  assert.deepEqual([...tensors.keys()].sort(), [
    'generator::0000::dense/kernel',
    'generator::0001::odd::name',
    'optimizer.generator::0000::iter',
  ]);
  assert.deepEqual([...toFloat32(tensors.get('generator::0000::dense/kernel')!)], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(JSON.parse(metadata.meta!), { step: 3 });
});

test('a safetensors file that is not a checkpoint is refused with its origin named', () => {
  const foreign = writeSafetensors([{ name: 'fc.weight', dtype: 'F32', shape: [1], data: Float32Array.from([1]) }]);
  assert.throws(
    () => decodeSafetensors(foreign, 's3://bucket/weights.safetensors'),
    /weights\.safetensors: tensor fc\.weight is not named/,
  );
  assert.throws(
    () => decodeSafetensors(new Uint8Array(4), 'tiny.safetensors'),
    /tiny\.safetensors is not a valid safetensors file/,
  );
});
