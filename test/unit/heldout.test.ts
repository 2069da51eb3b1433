import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LabeledImage } from '../../lib/data/manifest.js';
import { partitionHeldout } from '../../lib/protocol/heldout.js';
import { sha256Hex } from '../../lib/storage.js';

function image(label: 'NORMAL' | 'PNEUMONIA', name: string, patientId: string | null): LabeledImage {
  const sha256 = sha256Hex(name);
  return { image: { key: `cas/${sha256}.png`, sha256, bytes: 1 }, label, origin: 'real', patientId };
}
const protocol = { heldoutFraction: 0.3, heldoutSeed: 5 };

test("with the archive's test split, its groups leave the pool even when filed under train too", () => {
  const real = [
    image('NORMAL', 'n1', 'IM-0001'),
    image('NORMAL', 'n2', 'IM-0001'),
    image('NORMAL', 'n3', 'IM-0002'),
    image('PNEUMONIA', 'p1', 'person1'),
    image('PNEUMONIA', 'p2', 'person1'),
    image('PNEUMONIA', 'p3', 'person2'),
    image('PNEUMONIA', 'p4', null),
  ];
  const splits = ['test', 'train', 'train', 'train', 'test', 'train', 'train'];
  const { heldout, pool, removed, source } = partitionHeldout(real, splits, protocol);
  const names = (set: LabeledImage[]) => set.map((i) => i.image.sha256);
  assert.deepEqual(names(heldout), names([real[0]!, real[4]!]));
  assert.deepEqual(names(pool), names([real[2]!, real[5]!, real[6]!]));
  assert.equal(removed, 2);
  assert.match(source, /test split; 2 image\(s\) of its groups outside it were dropped/);
});

test('without a test split, a fixed sample of whole groups is held out and no group straddles', () => {
  const real = Array.from({ length: 60 }, (_, i) =>
    image(i % 2 ? 'PNEUMONIA' : 'NORMAL', `x${i}`, i % 2 ? `person${i % 14}` : `IM-${i % 10}`),
  );
  const splits = real.map(() => 'unsplit');
  const first = partitionHeldout(real, splits, protocol);
  assert.equal(first.removed, 0);
  assert.equal(first.heldout.length + first.pool.length, real.length);
  const groups = (set: LabeledImage[]) => new Set(set.map((i) => i.patientId));
  for (const g of groups(first.heldout)) assert.ok(!groups(first.pool).has(g), `${g} straddles`);
  assert.deepEqual(
    partitionHeldout([...real].reverse(), [...splits].reverse(), protocol).heldout.length,
    first.heldout.length,
  );
});
