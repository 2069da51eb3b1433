/**
 * The short chaos soak (the long one: `npm run chaos -- --minutes N`): one small run through
 * `pneumogan demo` and one through separately started workers, each with three GPU worker kills
 * about 10 s apart, the Temporal server restarted once (and S3 stopped once for the separate
 * workers); both must complete with the calm run's metrics and predictions, a clean verify and
 * complete lineage.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { quietTemporalLogs } from '../../workers/main.js';
import { calmRun, chaosOnDemo, chaosOnWorkers, shortChaosConfig, type Reference } from '../chaos/soak.js';

const config = shortChaosConfig();
let calm: Reference;
const log = (line: string) => {
  if (process.env.PNEUMOGAN_TEST_WORKER_LOG) console.log(line);
};

before(async () => {
  quietTemporalLogs();
  calm = await calmRun(config);
});

test(
  'chaos through `pneumogan demo`: worker kills and a Temporal server kill change nothing',
  { timeout: 10 * 60_000 },
  async () => {
    const outcome = await chaosOnDemo({ config, calm, killEverySeconds: 10, maxKills: 3, seed: 1, log });
    const survived = outcome.faults.gpuWorkerKills + outcome.faults.temporalRestarts;
    console.log(
      `chaos demo: ${survived} faults survived ${JSON.stringify(outcome.faults)} in ${outcome.seconds.toFixed(0)} s; completed on a retry: ${outcome.retried.join(', ') || 'none'}`,
    );
    assert.deepEqual(outcome.problems, []);
    assert.ok(outcome.retried.length >= 1, 'a killed step completed on a retry');
  },
);

test(
  'chaos on separately started workers: worker kills, a Temporal restart and an S3 outage change nothing',
  { timeout: 10 * 60_000 },
  async () => {
    const outcome = await chaosOnWorkers({ config, calm, killEverySeconds: 10, maxKills: 3, seed: 2, log });
    const survived = outcome.faults.gpuWorkerKills + outcome.faults.temporalRestarts + outcome.faults.s3Outages;
    console.log(
      `chaos workers: ${survived} faults survived ${JSON.stringify(outcome.faults)} in ${outcome.seconds.toFixed(0)} s; completed on a retry: ${outcome.retried.join(', ') || 'none'}`,
    );
    assert.deepEqual(outcome.problems, []);
    assert.ok(outcome.retried.length >= 1, 'a killed step completed on a retry');
  },
);
