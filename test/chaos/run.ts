/**
 * The long chaos soak (`npm run chaos -- --minutes N [--preset smoke] [--kill-every S] [--shape
 * both|demo|workers]`): a calm run of the config, then chaos rounds alternating `pneumogan demo`
 * and separately started workers (test/chaos/soak.ts), or only one of them, until N minutes have
 * passed. Prints each round's faults and problems, and the totals; exits 1 if any round lost or
 * changed anything.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { presetNames, resolvePreset } from '../../pipelines/presets.js';
import { calmRun, chaosOnDemo, chaosOnWorkers, shortChaosConfig, type Faults } from './soak.js';

const positive = (v: string) => {
  const n = Number(v);
  if (!(n > 0)) throw new InvalidArgumentError('a positive number');
  return n;
};
const opts = new Command('chaos')
  .addOption(new Option('--minutes <n>', 'how long to keep starting chaos rounds').argParser(positive).default(30))
  .addOption(
    new Option('--rounds <n>', 'stop after this many rounds (default: as many as --minutes allows)').argParser(
      positive,
    ),
  )
  .addOption(new Option('--preset <name>', 'pipeline preset (default: the short CI config)').choices(presetNames()))
  .addOption(
    new Option('--kill-every <seconds>', 'mean seconds between GPU worker kills').argParser(positive).default(8),
  )
  .addOption(
    new Option('--shape <shape>', 'rounds through `demo`, through separately started workers, or alternating')
      .choices(['both', 'demo', 'workers'])
      .default('both'),
  )
  .parse()
  .opts<{ minutes: number; rounds?: number; preset?: string; killEvery: number; shape: 'both' | 'demo' | 'workers' }>();

const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);
const config = opts.preset ? resolvePreset(opts.preset) : shortChaosConfig();
const started = Date.now();
log(`[chaos] calm reference run (${opts.preset ?? 'short config'})`);
const calm = await calmRun(config, log);
log(`[chaos] calm run done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
const total: Faults = { gpuWorkerKills: 0, temporalRestarts: 0, s3Outages: 0 };
let failed = 0;
for (let round = 1; Date.now() - started < opts.minutes * 60_000 && round <= (opts.rounds ?? Infinity); round++) {
  const shape = opts.shape === 'both' ? (round % 2 ? 'demo' : 'workers') : opts.shape;
  const soak = shape === 'demo' ? chaosOnDemo : chaosOnWorkers;
  const roundStarted = Date.now();
  // A round whose run fails is a finding, not a crash of the soak: record it and stop there.
  const outcome = await soak({ config, calm, killEverySeconds: opts.killEvery, seed: round, log }).catch(
    (err: unknown) => ({ error: err as Error }),
  );
  if ('error' in outcome) {
    failed++;
    log(
      `[chaos] round ${round} (${shape}) FAILED after ${((Date.now() - roundStarted) / 1000).toFixed(0)} s: ${outcome.error.message.split('\n')[0]}`,
    );
    break;
  }
  for (const k of Object.keys(total) as Array<keyof Faults>) total[k] += outcome.faults[k];
  if (outcome.problems.length) failed++;
  log(
    `[chaos] round ${round} (${shape}) finished in ${outcome.seconds.toFixed(0)} s after ${JSON.stringify(outcome.faults)}: ${outcome.problems.length ? outcome.problems.join('; ') : 'metrics and predictions equal the calm run, verify clean, lineage complete'}`,
  );
}
const survived = total.gpuWorkerKills + total.temporalRestarts + total.s3Outages;
log(`[chaos] ${survived} faults survived (${JSON.stringify(total)}); ${failed} round(s) with problems`);
process.exitCode = failed ? 1 : 0;
