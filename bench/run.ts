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
 * Threads: both native engines get the same count. By default it is every core, unless a probe
 * (reference/torch_bench.py --probe-threads, before each size) finds one thread faster: on a
 * machine busy with other work, PyTorch's OpenMP threads spin at barriers and two threads can
 * run ten times slower than one; libtensorflow then gets one thread too. Pure JS has one.
 *
 * Every engine runs in a child process of its own (one tfjs backend per process), one engine
 * at a time, smoke sizes for all engines first, then paper sizes. A case that outruns its cap
 * (cases.ts, `caps`) is killed and reported as skipped; the rest go on in a new process.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { drawSyntheticXray, syntheticFileNames } from '../lib/data/synthetic.js';
import { CLASS_NAMES } from '../pipelines/schema.js';
import { KERMANY_SAMPLE } from '../test/helpers/s3.js';
import { caps, imageFiles, modelCases, RESULT_PREFIX, sizesFor, type CaseResult, type Engine, type ModelCase, type SizeName } from './cases.js';
import { ensureReference, type ReferenceSetup } from './reference.js';
import { renderReport, type BenchReport, type EngineInfo, type IoRow, type ModelRow, type ThreadChoice } from './table.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const require = createRequire(import.meta.url);

const args = new Set(process.argv.slice(2));
let forcedThreads: number | undefined;
for (const a of args) {
  const threads = /^--threads=(\d+)$/.exec(a);
  if (threads) forcedThreads = Number(threads[1]);
  else if (!['--quick', '--no-reference', '--help', '-h'].includes(a)) {
    console.error(`unknown option ${a}; use --quick, --no-reference, --threads=N`);
    process.exit(2);
  }
}
if (args.has('--help') || args.has('-h')) {
  console.log('npm run bench [-- --quick] [--no-reference] [--threads=N]   (see bench/run.ts)');
  process.exit(0);
}
const quick = args.has('--quick');
const started = Date.now();
const progress = (line: string) => process.stderr.write(`[bench +${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}\n`);

// ---------------------------------------------------------------------------------------------
// Child processes speaking the `@@bench {json}` protocol

type WorkerEvent = { type: 'hello'; backend: string; packageName: string; threads?: number }
  | { type: 'threads'; threads: number; cores: number; why: string }
  | { type: 'start' | 'warm'; id: string }
  | ({ type: 'result' } & CaseResult)
  | { type: 'done' }
  | { type: 'fatal'; message: string };

interface Spawned {
  events: AsyncGenerator<WorkerEvent>;
  kill(): void;
  stderrTail(): string;
}

function spawnWorker(command: string, argv: string[], env: Record<string, string> = {}): Spawned {
  const child = spawn(command, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', ...env } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
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
        } catch { /* a torn line: ignore */ }
      }
    }
    wake?.();
  });
  child.on('close', () => { closed = true; wake?.(); });
  child.on('error', (err) => { stderr += String(err); closed = true; wake?.(); });
  async function* events(): AsyncGenerator<WorkerEvent> {
    for (;;) {
      while (queue.length) yield queue.shift()!;
      if (closed) return;
      await new Promise<void>((r) => { wake = r; });
      wake = undefined;
    }
  }
  return {
    events: events(),
    kill: () => { if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL'); },
    stderrTail: () => stderr.trim().split('\n').slice(-3).join(' | '),
  };
}

function lastLine(text: string): string {
  return text.split(' | ').at(-1) ?? text;
}

/**
 * Runs `cases` on one engine, restarting the worker after a case that had to be killed.
 * Resolves with one result per case (never rejects) and the worker's hello.
 */
async function runEngineCases(engine: Engine, cases: ModelCase[], start: (cases: ModelCase[]) => Spawned): Promise<{ results: CaseResult[]; hello?: WorkerEvent & { type: 'hello' }; fatal?: string }> {
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
      timer = setTimeout(() => { killedFor = why; worker.kill(); }, seconds * 1000);
    };
    let caseStarted = 0;
    let warmAfter = 0;
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
        arm(Math.max(1, cap.caseSeconds - warmAfter), `case:${cap.caseSeconds}`);
      } else if (event.type === 'result') {
        clearTimeout(timer);
        const { type: _type, ...result } = event;
        results.push(result);
        progress(`${engine.padEnd(10)} ${result.id.padEnd(26)} ${result.status === 'ok' ? `${result.imagesPerSecond!.toFixed(2)} img/s (${result.steps} steps)` : `${result.status}: ${result.note}`}`);
        remaining = remaining.filter((c) => c.id !== result.id);
        current = undefined;
      } else if (event.type === 'fatal') {
        clearTimeout(timer);
        return { results, hello, fatal: event.message };
      }
    }
    clearTimeout(timer);
    if (!current) {
      if (remaining.length) return { results, hello, fatal: `worker exited before ${remaining[0]!.id}: ${worker.stderrTail() || 'no output'}` };
      break;
    }
    // The worker died inside `current`: killed at a cap, or crashed (out of memory ...).
    const [kind, seconds] = (killedFor ?? ':').split(':');
    const result: CaseResult = killedFor
      ? {
        id: current.id, status: 'skipped', batch: current.batch, note: `> ${seconds} s`,
        // What the cap proves: the warm-up step (after a model build of < 1 s) ran past the step
        // cap, or the timed steps ran past what the case cap left after the warm-up.
        minSecondsPerStep: kind === 'step' ? Number(seconds) / current.warmup : (Number(seconds) - warmAfter) / current.minSteps,
      }
      : { id: current.id, status: 'failed', note: `worker died: ${lastLine(worker.stderrTail()) || 'no output'}` };
    results.push(result);
    progress(`${engine.padEnd(10)} ${current.id.padEnd(26)} ${result.status} (${result.note})`);
    remaining = remaining.filter((c) => c.id !== current!.id);
  }
  return { results, hello };
}

function tfjsWorker(engine: Engine, threads: number | undefined): (cases: ModelCase[]) => Spawned {
  // libtensorflow reads these when it creates its thread pools (tensorflow/core/common_runtime/process_util.cc).
  const env: Record<string, string> = { PNEUMOGAN_BACKEND: engine };
  if (threads && engine !== 'cpu') Object.assign(env, { TF_NUM_INTRAOP_THREADS: String(threads), TF_NUM_INTEROP_THREADS: String(threads) });
  return (cases) => spawnWorker(process.execPath, ['--import', 'tsx', path.join(here, 'tfjs-worker.ts'), JSON.stringify(cases)], env);
}

function torchWorker(python: string, threads: number | undefined): (cases: ModelCase[]) => Spawned {
  const env: Record<string, string> = threads ? { PNEUMOGAN_BENCH_TORCH_THREADS: String(threads) } : {};
  return (cases) => spawnWorker(python, [path.join(here, 'reference', 'torch_bench.py'), JSON.stringify(cases)], env);
}

/** Threads for both native engines now (see the module comment). */
async function chooseThreads(python: string | undefined): Promise<ThreadChoice> {
  const cores = os.cpus().length;
  if (forcedThreads) return { threads: forcedThreads, why: '--threads' };
  if (!python) return { threads: cores, why: 'every core (no PyTorch to probe with)' };
  const probe = spawnWorker(python, [path.join(here, 'reference', 'torch_bench.py'), '--probe-threads']);
  for await (const event of probe.events) {
    if (event.type === 'threads') return { threads: event.threads, why: event.why };
  }
  return { threads: cores, why: `every core (the probe failed: ${probe.stderrTail() || 'no output'})` };
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

async function runSection(argv: string[], capSeconds: number, command = process.execPath): Promise<{ results: CaseResult[]; error?: string; hello?: string }> {
  const worker = spawnWorker(command, argv);
  const results: CaseResult[] = [];
  let error: string | undefined;
  let hello: string | undefined;
  const timer = setTimeout(() => { error = `did not finish within ${capSeconds} s`; worker.kill(); }, capSeconds * 1000);
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
  if (existsSync(KERMANY_SAMPLE)) {
    const files = await imageFiles(KERMANY_SAMPLE);
    return { dir: KERMANY_SAMPLE, description: `real sample ${path.relative(root, KERMANY_SAMPLE)} (${files.length} JPEGs, 224x224 gray)`, cleanup: async () => {} };
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
    description: `synthetic JPEGs (${count}, 128x128; the real sample ${path.relative(root, KERMANY_SAMPLE)} is absent)`,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

// ---------------------------------------------------------------------------------------------

const loadStart = os.loadavg();
const engines: EngineInfo[] = [];
// PyTorch right after the native backend it is compared with most, pure JS last.
const tfjsEngines: Engine[] = ['tensorflow-gpu', 'tensorflow', 'cpu'];
const packages: Record<string, string> = { 'tensorflow-gpu': '@tensorflow/tfjs-node-gpu', tensorflow: '@tensorflow/tfjs-node' };
for (const engine of tfjsEngines) {
  const pkg = packages[engine];
  if (pkg && !nativeAddonBuilt(pkg)) {
    engines.push({ engine, available: false, reason: `${pkg} is not installed or its native addon is not built${engine === 'tensorflow' ? ' (npm run setup)' : ''}` });
  } else {
    engines.push({ engine, available: true });
  }
}

let reference: ReferenceSetup | undefined;
if (args.has('--no-reference')) {
  engines.push({ engine: 'pytorch', available: false, reason: '--no-reference' });
} else {
  reference = await ensureReference(progress);
  engines.push(reference.ok
    ? { engine: 'pytorch', available: true, packageName: reference.versions }
    : { engine: 'pytorch', available: false, reason: reference.reason });
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
    const start = info.engine === 'pytorch' ? torchWorker(python!, choice.threads) : tfjsWorker(info.engine, choice.threads);
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
  const js = await runSection(['--import', 'tsx', path.join(here, 'io-worker.ts'), 'ingest', JSON.stringify({ dir: data.dir, sizes: ingestSizes })], 180);
  let pillow: Awaited<ReturnType<typeof runSection>> | undefined;
  if (reference?.ok) {
    const files = await imageFiles(data.dir);
    pillow = await runSection([path.join(here, 'reference', 'torch_bench.py'), '--ingest', JSON.stringify({ files, sizes: ingestSizes })], 180, reference.python);
  }
  for (const size of ingestSizes) {
    const mine = js.results.find((r) => r.id === `ingest-decode/${size}`);
    const ref = pillow?.results.find((r) => r.id === `ingest-decode/${size}`);
    io.push({ id: `ingest-decode/${size}`, label: `sharp decode+gray+resize+PNG, ${size} px`, unit: 'img/s', result: mine, error: js.error, reference: ref, referenceName: pillow?.hello ?? 'Pillow', referenceError: reference?.ok ? pillow?.error : undefined });
  }
  for (const size of ingestSizes) {
    io.push({ id: `ingest-e2e/${size}`, label: `ingestDataset -> local S3, ${size} px`, unit: 'img/s', result: js.results.find((r) => r.id === `ingest-e2e/${size}`), error: js.error });
  }
} finally {
  await data.cleanup();
}
const roundTrips = quick ? 20 : 50;
progress(`temporal: ${roundTrips} activity round trips on a local dev server`);
const temporal = await runSection(['--import', 'tsx', path.join(here, 'io-worker.ts'), 'temporal', JSON.stringify({ roundTrips })], 180);
io.push({ id: 'temporal-roundtrip', label: 'Temporal activity round trip', unit: 'ms', result: temporal.results.find((r) => r.id === 'temporal-roundtrip'), error: temporal.error });
io.push({ id: 'temporal-workflow', label: 'Temporal empty workflow, start->result', unit: 'ms', result: temporal.results.find((r) => r.id === 'temporal-workflow'), error: temporal.error });

const rows: ModelRow[] = [...allCases.values()].map((c) => ({ case: c, results: Object.fromEntries(modelResults.get(c.id) ?? []) }));
const report: BenchReport = {
  startedAt: new Date(started).toISOString(),
  mode: quick ? 'quick' : 'full',
  seconds: (Date.now() - benchStarted) / 1000,
  setupSeconds,
  machine: {
    cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadAverageStart: loadStart, loadAverageEnd: os.loadavg(), node: process.version, platform: `${os.platform()} ${os.arch()}`,
  },
  engines,
  threads: threadsBySize,
  reference: reference ? (reference.ok ? { ok: true, python: reference.python, versions: reference.versions, how: reference.how } : { ok: false, reason: reference.reason }) : { ok: false, reason: '--no-reference' },
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
