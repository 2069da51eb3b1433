import assert from 'node:assert/strict';
import { test } from 'node:test';
import { markStep, StageProfiler, withStageProfiler } from '../../activities/profile.js';

const busy = (millis: number) => {
  const until = performance.now() + millis;
  while (performance.now() < until);
};

test('a stage profile times the steps between the first and the last, and samples peak memory', async () => {
  const profiler = new StageProfiler();
  busy(300); // loading data before the first step: not part of the time per step
  await withStageProfiler(profiler, async () => {
    for (let step = 1; step <= 5; step++) {
      busy(10);
      markStep(step);
    }
    await Promise.resolve();
  });
  markStep(99); // outside the activity: not this profiler's
  const profile = profiler.finish();
  assert.equal(profile.steps, 5);
  assert.ok(profile.secondsPerStep! >= 0.009 && profile.secondsPerStep! < 0.05, `${profile.secondsPerStep} s/step`);
  assert.ok(profile.seconds >= 0.35, `${profile.seconds} s in all`);
  assert.ok(profile.peakRssMiB >= Math.floor(process.memoryUsage.rss() / 2 ** 20 / 2), `${profile.peakRssMiB} MiB`);
});

test('a stage without steps reports its wall time and no time per step', () => {
  const profile = new StageProfiler().finish();
  assert.equal(profile.steps, 0);
  assert.equal(profile.secondsPerStep, undefined);
});
