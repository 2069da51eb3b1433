/**
 * `npm run bench`: throughput of every TensorFlow.js backend present (pure-JS `cpu`, native
 * `tensorflow`, `tensorflow-gpu` if installed) against PyTorch on the same CPU, plus image
 * ingestion and Temporal orchestration overhead. Prints a fixed-width table and writes the same
 * data to bench/results/latest.json.
 *
 *   npm run bench                   smoke and paper sizes (several minutes on 2 cores)
 *   npm run bench -- --quick        smoke sizes only, fewer images and round trips (~2 minutes)
 *   npm run bench -- --no-reference without the PyTorch / Pillow reference
 *   npm run bench -- --threads=N    N threads for libtensorflow and PyTorch (default: see below)
 *
 * Threads: both native engines get the same count. By default it is every core, unless, before
 * each size, other processes are seen using half a core or more (/proc/stat over one idle
 * second) or a probe (reference/torch_bench.py --probe-threads) finds one thread faster: on a
 * machine busy with other work, PyTorch's OpenMP threads spin at barriers and two threads can
 * run ten times slower than one; libtensorflow then gets one thread too. Pure JS has one.
 * Every cell also records how many cores' worth of CPU other processes used during its timed
 * steps (`otherCores`), and the table flags the cells where that was half a core or more.
 *
 * Every engine runs in a child process of its own (one tfjs backend per process), one engine
 * at a time, smoke sizes for all engines first, then paper sizes. A case that outruns its cap
 * (cases.ts, `caps`) is killed and reported as skipped; the rest go on in a new process.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { drawSyntheticXray, syntheticFileNames } from '../lib/data/synthetic.js';
import { CLASS_NAMES } from '../pipelines/schema.js';
import { KERMANY_SAMPLE } from '../lib/data/kermany-sample.js';
import {
  caps,
  imageFiles,
  modelCases,
  RESULT_PREFIX,
  sizesFor,
  type CaseResult,
  type Engine,
  type ModelCase,
  type SizeName,
} from './cases.js';
import { ensureReference, type ReferenceSetup } from './reference.js';
import {
  renderReport,
  type BenchReport,
  type EngineInfo,
  type IoRow,
  type ModelRow,
  type ThreadChoice,
} from './table.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const require = createRequire(import.meta.url);

const args = new Set(process.argv.slice(2));
let forcedThreads: number | undefined;
for (const a of args) {
  const threads = /^--threads=(\d+)$/.exec(a);
  if (threads) forcedThreads = Number(threads[1]);
  else if (!['--quick', '--no-reference', '--artifacts', '--gpu', '--help', '-h'].includes(a)) {
    console.error(`unknown option ${a}; use --quick, --no-reference, --threads=N, --artifacts, --gpu`);
    process.exit(2);
  }
}
if (args.has('--help') || args.has('-h')) {
  console.log('npm run bench [-- --quick] [--no-reference] [--threads=N] [--artifacts] [--gpu]   (see bench/run.ts)');
  process.exit(0);
}
// --- GPU bench (gpu/run.ts): the training rows on the backend the ladder picks, beside PyTorch
// on CUDA where it is installed; --quick for smoke sizes. Results under runs/gpu-check.
if (args.has('--gpu')) {
  const { spawnSync } = await import('node:child_process');
  const gpuArgs = ['--bench-only', ...(args.has('--quick') ? ['--quick'] : [])];
  if (args.has('--no-reference')) gpuArgs.push('--no-pytorch');
  const ran = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'gpu', 'run.ts'), ...gpuArgs], {
    cwd: root,
    stdio: 'inherit',
  });
  process.exit(ran.status ?? 1);
}
// --- end of the GPU bench
const quick = args.has('--quick');
const started = Date.now();
const progress = (line: string) =>
  process.stderr.write(`[bench +${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}\n`);

// `--artifacts`: storage, lineage and verify at paper scale only (bench/artifacts.ts).
if (args.has('--artifacts')) {
  const { renderArtifactRows, runArtifactBench } = await import('./artifacts.js');
  const rows = await runArtifactBench(progress);
  console.log(renderArtifactRows(rows).join('\n'));
  const out = path.join(here, 'results', 'artifacts.json');
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify({ at: new Date().toISOString(), rows }, null, 2)}\n`);
  process.exit(rows.every((r) => r.ok) ? 0 : 1);
}

// ---------------------------------------------------------------------------------------------
// Child processes speaking the `@@bench {json}` protocol

type WorkerEvent =
  | { type: 'hello'; backend: string; packageName: string; threads?: number }
  | { type: 'threads'; threads: number; cores: number; why: string }
  | { type: 'start' | 'warm'; id: string }
  | ({ type: 'result' } & CaseResult)
  | { type: 'done' }
  | { type: 'fatal'; message: string };

interface Spawned {
  pid: number | undefined;
  events: AsyncGenerator<WorkerEvent>;
  kill(): void;
  stderrTail(): string;
}

function spawnWorker(command: string, argv: string[], env: Record<string, string> = {}): Spawned {
  const child = spawn(command, argv, {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', ...env },
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const queue: WorkerEvent[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  let buffer = '';
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.startsWith(RESULT_PREFIX)) {
        try {
          queue.push(JSON.parse(line.slice(RESULT_PREFIX.length)) as WorkerEvent);
        } catch {
          /* a torn line: ignore */
        }
      }
    }
    wake?.();
  });
  child.on('close', () => {
    closed = true;
    wake?.();
  });
  child.on('error', (err) => {
    stderr += String(err);
    closed = true;
    wake?.();
  });
  async function* events(): AsyncGenerator<WorkerEvent> {
    for (;;) {
      while (queue.length) yield queue.shift()!;
      if (closed) return;
      await new Promise<void>((r) => {
        wake = r;
      });
      wake = undefined;
    }
  }
  return {
    pid: child.pid,
    events: events(),
    kill: () => {
      if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
    },
    stderrTail: () => stderr.trim().split('\n').slice(-3).join(' | '),
  };
}

function lastLine(text: string): string {
  return text.split(' | ').at(-1) ?? text;
}

// ---------------------------------------------------------------------------------------------
// Contention: how much CPU other processes took while a measurement ran (Linux /proc only)

const CLOCK_TICKS = 100; // USER_HZ: /proc/stat and /proc/<pid>/stat both count in it (100 on Linux)

interface CpuSnapshot {
  at: number;
  busyTicks: number;
  ownTicks: number;
}

function busyTicks(): number | undefined {
  try {
    // cpu user nice system idle iowait irq softirq steal ...: everything but idle and iowait.
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
  } catch {
    return undefined;
  }
}

function processTicks(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime, all threads
  } catch {
    return 0;
  }
}

/** CPU of this process and of `pid` (the worker measuring) against all CPU in use. */
function cpuSnapshot(pid: number | undefined): CpuSnapshot | undefined {
  const busy = busyTicks();
  if (busy === undefined) return undefined;
  const own = process.cpuUsage();
  return {
    at: performance.now(),
    busyTicks: busy,
    ownTicks: processTicks(pid) + ((own.user + own.system) / 1e6) * CLOCK_TICKS,
  };
}

/** Cores' worth of CPU that other processes used between two snapshots. */
function otherCores(a: CpuSnapshot | undefined, b: CpuSnapshot | undefined): number | undefined {
  if (!a || !b || b.at - a.at < 200) return undefined;
  const others = b.busyTicks - a.busyTicks - (b.ownTicks - a.ownTicks);
  return Math.max(0, others / CLOCK_TICKS / ((b.at - a.at) / 1000));
}

/** What other processes use right now, measured over `ms` while this bench runs nothing. */
async function idleWindowOtherCores(ms = 1000): Promise<number | undefined> {
  const a = cpuSnapshot(undefined);
  await new Promise((r) => setTimeout(r, ms));
  return otherCores(a, cpuSnapshot(undefined));
}

/**
 * Runs `cases` on one engine, restarting the worker after a case that had to be killed.
 * Resolves with one result per case (never rejects) and the worker's hello.
 */
async function runEngineCases(
  engine: Engine,
  cases: ModelCase[],
  start: (cases: ModelCase[]) => Spawned,
): Promise<{ results: CaseResult[]; hello?: WorkerEvent & { type: 'hello' }; fatal?: string }> {
  const results: CaseResult[] = [];
  let hello: (WorkerEvent & { type: 'hello' }) | undefined;
  let remaining = cases;
  while (remaining.length) {
    const worker = start(remaining);
    let current: ModelCase | undefined;
    let timer: NodeJS.Timeout | undefined;
    let killedFor: string | undefined;
    const arm = (seconds: number, why: string) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        killedFor = why;
        worker.kill();
      }, seconds * 1000);
    };
    let caseStarted = 0;
    let warmAfter = 0;
    let timedFrom: CpuSnapshot | undefined;
    arm(120, 'startup:120'); // import + backend start-up (+ the PyTorch self-check)
    for await (const event of worker.events) {
      if (event.type === 'hello') hello = event;
      else if (event.type === 'start') {
        current = remaining.find((c) => c.id === event.id);
        if (!current) continue;
        const cap = caps(engine, current);
        caseStarted = Date.now();
        arm(cap.stepSeconds, `step:${cap.stepSeconds}`);
      } else if (event.type === 'warm' && current) {
        const cap = caps(engine, current);
        warmAfter = (Date.now() - caseStarted) / 1000;
        timedFrom = cpuSnapshot(worker.pid);
        arm(Math.max(1, cap.caseSeconds - warmAfter), `case:${cap.caseSeconds}`);
      } else if (event.type === 'result') {
        clearTimeout(timer);
        const { type: _type, ...result } = event;
        const others = otherCores(timedFrom, cpuSnapshot(worker.pid));
        if (result.status === 'ok' && others !== undefined) result.otherCores = Math.round(others * 100) / 100;
        timedFrom = undefined;
        results.push(result);
        progress(
          `${engine.padEnd(10)} ${result.id.padEnd(26)} ${result.status === 'ok' ? `${result.imagesPerSecond!.toFixed(2)} img/s (${result.steps} steps${others !== undefined ? `, others used ${others.toFixed(2)} cores` : ''})` : `${result.status}: ${result.note}`}`,
        );
        remaining = remaining.filter((c) => c.id !== result.id);
        current = undefined;
      } else if (event.type === 'fatal') {
        clearTimeout(timer);
        return { results, hello, fatal: event.message };
      }
    }
    clearTimeout(timer);
    if (!current) {
      if (killedFor?.startsWith('startup'))
        return {
          results,
          hello,
          fatal: `the worker did not start within 120 s: ${worker.stderrTail() || 'no output'}`,
        };
      if (remaining.length)
        return {
          results,
          hello,
          fatal: `worker exited before ${remaining[0]!.id}: ${worker.stderrTail() || 'no output'}`,
        };
      break;
    }
    // The worker died inside `current`: killed at a cap, or crashed (out of memory ...).
    const [kind, seconds] = (killedFor ?? ':').split(':');
    const result: CaseResult = killedFor
      ? {
          id: current.id,
          status: 'skipped',
          batch: current.batch,
          note: `> ${seconds} s`,
          // What the cap proves: the warm-up step (after a model build of < 1 s) ran past the step
          // cap, or the timed steps ran past what the case cap left after the warm-up.
          minSecondsPerStep:
            kind === 'step' ? Number(seconds) / current.warmup : (Number(seconds) - warmAfter) / current.minSteps,
        }
      : { id: current.id, status: 'failed', note: `worker died: ${lastLine(worker.stderrTail()) || 'no output'}` };
    results.push(result);
    progress(`${engine.padEnd(10)} ${current.id.padEnd(26)} ${result.status} (${result.note})`);
    remaining = remaining.filter((c) => c.id !== current.id);
  }
  return { results, hello };
}

function tfjsWorker(engine: Engine, threads: number | undefined): (cases: ModelCase[]) => Spawned {
  // libtensorflow reads these when it creates its thread pools (tensorflow/core/common_runtime/process_util.cc).
  const env: Record<string, string> = { PNEUMOGAN_BACKEND: engine };
  if (threads && engine !== 'cpu')
    Object.assign(env, { TF_NUM_INTRAOP_THREADS: String(threads), TF_NUM_INTEROP_THREADS: String(threads) });
  return (cases) =>
    spawnWorker(process.execPath, ['--import', 'tsx', path.join(here, 'tfjs-worker.ts'), JSON.stringify(cases)], env);
}

function torchWorker(python: string, threads: number | undefined): (cases: ModelCase[]) => Spawned {
  const env: Record<string, string> = threads ? { PNEUMOGAN_BENCH_TORCH_THREADS: String(threads) } : {};
  return (cases) => spawnWorker(python, [path.join(here, 'reference', 'torch_bench.py'), JSON.stringify(cases)], env);
}

/** Threads for both native engines now (see the module comment). */
async function chooseThreads(python: string | undefined): Promise<ThreadChoice> {
  const cores = os.cpus().length;
  const others = await idleWindowOtherCores();
  const seen =
    others === undefined ? '' : `other processes used ${others.toFixed(2)} of ${cores} cores in a 1 s idle window`;
  if (forcedThreads) return { threads: forcedThreads, why: '--threads', otherCores: others };
  if (cores > 1 && others !== undefined && others >= 0.5) return { threads: 1, why: seen, otherCores: others };
  if (!python) return { threads: cores, why: ['every core', seen].filter(Boolean).join('; '), otherCores: others };
  const probe = spawnWorker(python, [path.join(here, 'reference', 'torch_bench.py'), '--probe-threads']);
  for await (const event of probe.events) {
    if (event.type === 'threads')
      return { threads: event.threads, why: [seen, event.why].filter(Boolean).join('; '), otherCores: others };
  }
  return {
    threads: cores,
    why: `every core (the probe failed: ${probe.stderrTail() || 'no output'})`,
    otherCores: others,
  };
}

/** Whether a native tfjs package's addon is built (the same test lib/compute/backend.ts makes). */
function nativeAddonBuilt(packageName: string): boolean {
  try {
    const libDir = path.join(path.dirname(require.resolve(`${packageName}/package.json`)), 'lib');
    return readdirSync(libDir).some((entry) => existsSync(path.join(libDir, entry, 'tfjs_binding.node')));
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Ingestion and orchestration

async function runSection(
  argv: string[],
  capSeconds: number,
  command = process.execPath,
  env: Record<string, string> = {},
): Promise<{ results: CaseResult[]; error?: string; hello?: string }> {
  const worker = spawnWorker(command, argv, env);
  const results: CaseResult[] = [];
  let error: string | undefined;
  let hello: string | undefined;
  const timer = setTimeout(() => {
    error = `did not finish within ${capSeconds} s`;
    worker.kill();
  }, capSeconds * 1000);
  for await (const event of worker.events) {
    if (event.type === 'result') {
      const { type: _type, ...result } = event;
      results.push(result);
      progress(`${'io'.padEnd(10)} ${result.id.padEnd(26)} ${result.imagesPerSecond?.toFixed(2)} /s`);
    } else if (event.type === 'hello') hello = event.packageName;
    else if (event.type === 'fatal') error = event.message;
  }
  clearTimeout(timer);
  if (!error && !results.length) error = `no result: ${worker.stderrTail() || 'no output'}`;
  return { results, error, hello };
}

/** The real sample when it is there, else synthetic JPEGs written to a temporary folder. */
async function ingestionData(count: number): Promise<{ dir: string; description: string; cleanup(): Promise<void> }> {
  // PNEUMOGAN_BENCH_SAMPLE points elsewhere (a folder with NORMAL/ and PNEUMONIA/ images).
  const sample = process.env.PNEUMOGAN_BENCH_SAMPLE ? path.resolve(process.env.PNEUMOGAN_BENCH_SAMPLE) : KERMANY_SAMPLE;
  if (existsSync(sample)) {
    const files = await imageFiles(sample);
    return {
      dir: sample,
      description: `real sample ${path.relative(root, sample)} (${files.length} images)`,
      cleanup: async () => {},
    };
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-bench-data-'));
  for (const label of CLASS_NAMES) {
    await mkdir(path.join(dir, label));
    for (const [i, name] of syntheticFileNames(label, count / 2).entries()) {
      const image = await drawSyntheticXray(label, 1000 + i, name);
      await writeFile(path.join(dir, label, name), image.jpeg);
    }
  }
  return {
    dir,
    description: `synthetic JPEGs (${count}, 128x128 gray; the real sample ${path.relative(root, sample)} is absent)`,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

// ---------------------------------------------------------------------------------------------

const loadStart = os.loadavg();
const engines: EngineInfo[] = [];
// PyTorch right after the native backend it is compared with most, pure JS last.
const tfjsEngines: Engine[] = ['tensorflow-gpu', 'tensorflow', 'cpu'];
const packages: Record<string, string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};
for (const engine of tfjsEngines) {
  const pkg = packages[engine];
  if (pkg && !nativeAddonBuilt(pkg)) {
    engines.push({
      engine,
      available: false,
      reason: `${pkg} is not installed or its native addon is not built${engine === 'tensorflow' ? ' (npm run setup)' : ''}`,
    });
  } else {
    engines.push({ engine, available: true });
  }
}

let reference: ReferenceSetup | undefined;
if (args.has('--no-reference')) {
  engines.push({ engine: 'pytorch', available: false, reason: '--no-reference' });
} else {
  reference = await ensureReference(progress);
  engines.push(
    reference.ok
      ? { engine: 'pytorch', available: true, packageName: reference.versions }
      : { engine: 'pytorch', available: false, reason: reference.reason },
  );
  if (!reference.ok) progress(`PyTorch reference unavailable: ${reference.reason}`);
}
const setupSeconds = reference?.setupSeconds ?? 0;
const benchStarted = Date.now();

const modelResults = new Map<string, Map<Engine, CaseResult>>();
const allCases = new Map<string, ModelCase>();
const order: Engine[] = ['tensorflow-gpu', 'tensorflow', 'pytorch', 'cpu'];
const threadsBySize: Partial<Record<SizeName, ThreadChoice>> = {};
const python = reference?.ok ? reference.python : undefined;
for (const size of sizesFor({ quick })) {
  const choice = await chooseThreads(python);
  threadsBySize[size] = choice;
  progress(`${size} size: ${choice.threads} thread(s) for the native engines (${choice.why})`);
  for (const info of order.map((e) => engines.find((x) => x.engine === e)!)) {
    if (!info.available) continue;
    const cases = modelCases(info.engine, { quick }).filter((c) => c.size === size);
    for (const c of cases) if (!allCases.has(c.id)) allCases.set(c.id, c);
    progress(`${info.engine}: ${size} size, ${cases.length} cases`);
    const start =
      info.engine === 'pytorch' ? torchWorker(python!, choice.threads) : tfjsWorker(info.engine, choice.threads);
    const run = await runEngineCases(info.engine, cases, start);
    if (run.hello) info.packageName = run.hello.packageName;
    for (const r of run.results) {
      if (!modelResults.has(r.id)) modelResults.set(r.id, new Map());
      modelResults.get(r.id)!.set(info.engine, r);
    }
    if (run.fatal) {
      info.available = false;
      info.reason = run.fatal;
      progress(`${info.engine} unavailable: ${run.fatal}`);
    }
  }
}

const io: IoRow[] = [];
const ingestSizes = quick ? [64] : [64, 224];
const data = await ingestionData(quick ? 100 : 300);
try {
  progress(`ingestion: ${data.description}`);
  const js = await runSection(
    [
      '--import',
      'tsx',
      path.join(here, 'io-worker.ts'),
      'ingest',
      JSON.stringify({ dir: data.dir, sizes: ingestSizes }),
    ],
    180,
  );
  let pillow: Awaited<ReturnType<typeof runSection>> | undefined;
  if (reference?.ok) {
    const files = await imageFiles(data.dir);
    pillow = await runSection(
      [path.join(here, 'reference', 'torch_bench.py'), '--ingest', JSON.stringify({ files, sizes: ingestSizes })],
      180,
      reference.python,
    );
  }
  for (const size of ingestSizes) {
    const mine = js.results.find((r) => r.id === `ingest-decode/${size}`);
    const ref = pillow?.results.find((r) => r.id === `ingest-decode/${size}`);
    io.push({
      id: `ingest-decode/${size}`,
      label: `sharp decode+gray+resize+PNG, ${size} px`,
      unit: 'img/s',
      result: mine,
      error: js.error,
      reference: ref,
      referenceName: pillow?.hello ?? 'Pillow',
      referenceError: reference?.ok ? pillow?.error : undefined,
    });
  }
  for (const size of ingestSizes) {
    io.push({
      id: `ingest-e2e/${size}`,
      label: `ingestDataset -> local S3, ${size} px`,
      unit: 'img/s',
      result: js.results.find((r) => r.id === `ingest-e2e/${size}`),
      error: js.error,
    });
  }
} finally {
  await data.cleanup();
}
const roundTrips = quick ? 20 : 50;
progress(`temporal: ${roundTrips} activity round trips on a local dev server`);
const temporalArgs = ['--import', 'tsx', path.join(here, 'io-worker.ts'), 'temporal', JSON.stringify({ roundTrips })];
const temporal = await runSection(temporalArgs, 180);
io.push({
  id: 'temporal-roundtrip',
  label: 'Temporal activity round trip',
  unit: 'ms',
  result: temporal.results.find((r) => r.id === 'temporal-roundtrip'),
  error: temporal.error,
});
// The dev server leaves eager activity dispatch off (system.enableActivityEagerExecution): the
// activity then travels through the server's transfer queue and matching instead of coming
// back in the response to the workflow task that scheduled it. The same loop with it on:
progress('temporal: the same with eager activity dispatch enabled on the server');
const eager = await runSection(temporalArgs, 180, process.execPath, {
  PNEUMOGAN_BENCH_TEMPORAL_ARGS: JSON.stringify(['--dynamic-config-value', 'system.enableActivityEagerExecution=true']),
});
io.push({
  id: 'temporal-roundtrip-eager',
  label: '  same, eager activity dispatch on',
  unit: 'ms',
  result: eager.results.find((r) => r.id === 'temporal-roundtrip'),
  error: eager.error,
});
io.push({
  id: 'temporal-workflow',
  label: 'Temporal empty workflow, start->result',
  unit: 'ms',
  result: temporal.results.find((r) => r.id === 'temporal-workflow'),
  error: temporal.error,
});

const rows: ModelRow[] = [...allCases.values()].map((c) => ({
  case: c,
  results: Object.fromEntries(modelResults.get(c.id) ?? []),
}));
const report: BenchReport = {
  startedAt: new Date(started).toISOString(),
  mode: quick ? 'quick' : 'full',
  seconds: (Date.now() - benchStarted) / 1000,
  setupSeconds,
  machine: {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadAverageStart: loadStart,
    loadAverageEnd: os.loadavg(),
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
  },
  engines,
  threads: threadsBySize,
  reference: reference
    ? reference.ok
      ? { ok: true, python: reference.python, versions: reference.versions, how: reference.how }
      : { ok: false, reason: reference.reason }
    : { ok: false, reason: '--no-reference' },
  models: rows,
  io,
  ingestionData: data.description,
};
const text = renderReport(report);
process.stdout.write(text);
const out = path.join(here, 'results', 'latest.json');
await mkdir(path.dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify({ ...report, table: text.split('\n') }, null, 2)}\n`);
console.log(`\nJSON: ${path.relative(process.cwd(), out)}`);
