import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TrialResult } from '../../activities/types.js';
import { describeTestSet } from '../../lib/report/test-sets.js';
import { metricsFromConfusion } from '../../lib/protocol/metrics.js';

const ref = { key: 'cas/00/x.json', sha256: '0'.repeat(64), bytes: 1 };
const side = (normal: number, pneumonia: number, real: number) => ({
  images: { NORMAL: normal, PNEUMONIA: pneumonia },
  patients: { NORMAL: 0, PNEUMONIA: 0 },
  origins: { real, synthetic: normal + pneumonia - real },
});

function trial(n: number, testNormal: number, support: number): TrialResult {
  return {
    trial: n,
    seed: n,
    workflowId: `w/trial-${n}`,
    subset: ref,
    subsetCounts: { NORMAL: 160, PNEUMONIA: 464 },
    pooledSplit: { split: ref, train: side(1280, 3712, 499), test: side(testNormal, 1248 - testNormal, 125) },
    gans: [],
    evaluations: [
      {
        protocol: 'paper',
        backbone: 'alexnet',
        checkpoint: ref,
        history: ref,
        evaluation: ref,
        metrics: {
          ...metricsFromConfusion([
            [support - 1, 1],
            [0, 0],
          ]),
        },
      },
    ],
    stageMillis: {},
  };
}

test("a protocol's test set is described once when every trial agrees, with real and GAN-made counts", () => {
  const text = describeTestSet('paper', { trials: [trial(1, 320, 1248), trial(2, 320, 1248)] });
  assert.equal(
    text,
    'Test set per trial: the pooled 20% of real + GAN images, 1,248 images (320 NORMAL, 928 PNEUMONIA; 125 real + 1,123 GAN-made).',
  );
});

test('trials that differ are listed one by one', () => {
  const text = describeTestSet('paper', { trials: [trial(1, 320, 1248), trial(2, 321, 1248)] });
  assert.match(
    text,
    /trial 1: 1,248 images \(320 NORMAL, 928 PNEUMONIA;.*trial 2: 1,248 images \(321 NORMAL, 927 PNEUMONIA/,
  );
});

test('the held-out test set is named with its counts', () => {
  const heldout = {
    images: ref,
    counts: { NORMAL: 134, PNEUMONIA: 388 },
    patients: { NORMAL: 0, PNEUMONIA: 300 },
    source: 'x',
  };
  assert.equal(
    describeTestSet('heldout', { heldout, trials: [] }),
    'Test set: the same 522 held-out real images in every trial (134 NORMAL, 388 PNEUMONIA).',
  );
});
