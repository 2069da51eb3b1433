import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { initComputeBackend } from '../../lib/compute/backend.js';
import { balancedThreshold, originProbabilities } from '../../lib/analysis/detectability.js';
import { auc } from '../../lib/protocol/scores.js';
import { SeededRandom } from '../../lib/random.js';

before(async () => {
  await initComputeBackend(() => {});
});

test('the threshold maximises balanced accuracy on the training side', () => {
  // Real 0.1, 0.2, 0.3; generated 0.25, 0.6, 0.7, 0.8: the cut between 0.3 and 0.6 gets all real
  // right and 3 of 4 generated (0.875); nothing gets more.
  const threshold = balancedThreshold(
    [0.1, 0.2, 0.3, 0.25, 0.6, 0.7, 0.8],
    [false, false, false, true, true, true, true],
  );
  assert.ok(Math.abs(threshold - 0.45) < 1e-12, String(threshold));
  assert.equal(balancedThreshold([0.2, 0.9], [true, true]), 0.5);
});

test('a small CNN tells sharp noise from smooth images', async () => {
  const rng = new SeededRandom(2);
  const example = (synthetic: boolean) => {
    const base = rng.int(60, 190);
    return {
      synthetic,
      image: {
        size: 16,
        pixels: Uint8Array.from({ length: 256 }, () => (synthetic ? base + rng.int(-3, 3) : rng.int(0, 255))),
      },
    };
  };
  const train = Array.from({ length: 96 }, (_, i) => example(i % 4 !== 0));
  const test = Array.from({ length: 40 }, (_, i) => example(i % 4 !== 0));
  const { test: p } = await originProbabilities({ train, test, seed: 3, epochs: 4 });
  const score = auc(test.map((t, i) => ({ truth: t.synthetic ? 1 : 0, predicted: 0, score: p[i]! })));
  assert.ok(score !== null && score > 0.9, `AUC ${score}`);
});
