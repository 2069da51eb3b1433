/**
 * The GPU check: training-step rates of this project's models on the backend the ladder picks
 * (on a GPU machine: WebGPU or CUDA), beside PyTorch on the same GPU where PyTorch is installed,
 * then one `smoke` trial's GPU steps, or with --paper-trial one `paper` trial's
 * (gpu/paper-trial.ts). Writes gpu-bench.json/.md and trial.json/.md (paper-trial.json/.md) to
 * --out.
 *
 *   node --import tsx gpu/run.ts [--out DIR] [--quick] [--bench-only] [--trial-only] [--budget-s N]
 *     [--no-pytorch] [--no-kernel-bench] [--no-kernel-check] [--profile] [--host-profile]
 *     [--cases gan,resnet18,...] [--variants stock,submit-60,...]
 *     [--paper-trial] [--data DIR] [--parallel N] [--work-dir DIR] [--resume]
 *
 * The trial trains on the X-rays in --data (a folder cli/gpu/pack-paper-data.ts wrote; the pack's
 * run.sh passes its own), or on drawn images without one, running up to --parallel steps (6) as
 * processes of this program (`--paper-job SPEC`, internal), its files in --work-dir (default:
 * pneumogan-trial or pneumogan-paper-trial in the temporary folder); --resume continues the
 * trial found there.
 * --quick uses smoke sizes and a shrunken trial (to check the path on a CPU); --profile adds a
 * per-kernel profile of each row (gpu/profile.ts) to gpu-profile.json; --no-kernel-bench skips the
 * table of kernel choices (gpu/kernels.ts); on WebGPU our kernels are first compared with the CPU
 * backend on the device (gpu/kernel-check.ts, kernel-check.md; --no-kernel-check skips it), and a
 * failed comparison stops the run before any trial; --host-profile writes a CPU profile of the
 * host's side of each row's steps (gpu/host-profile.ts); --cases keeps the rows whose id contains
 * one of the words; --variants times each row again under other settings (gpu/variants.ts). The
 * GPU pack (`npm run gpu:pack`, gpu/README.md) bundles this file; its run.sh starts it on the GPU
 * machine. Rows at paper size: DCGAN D+G at batch 64 and 64 px (widths 64), and the four
 * backbones at batch 32 and 224 px, as in `npm run bench`.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { modelCases, RESULT_PREFIX, type CaseResult, type ModelCase } from '../bench/cases.js';
import { runModelCase } from '../bench/tfjs-cases.js';
import { initComputeBackend } from '../lib/compute/backend.js';
import { checkKernelsOnDevice, kernelCheckTable } from './kernel-check.js';
import { benchWebGpuKernels, kernelTable, type KernelRow } from './kernels.js';
import { describeHostProfile, hostProfileCase } from './host-profile.js';
import { describeProfile, profileCase, type CaseProfile } from './profile.js';
import { ms, paperEstimates, profileTables, rate, table, variantTable, type Row } from './report.js';
import { parseVariants, underVariant } from './variants.js';
import { JOB_EVENT_PREFIX, PaperJobSchema, runPaperJob } from './paper-job.js';
import { runPaperTrial, type PaperTrialResult, type TrialSize } from './paper-trial.js';
import { paperTrialReport } from './paper-trial-report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const option = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const out = path.resolve(option('--out') ?? process.env.OUT ?? path.join('runs', 'gpu-check'));
const quick = flag('--quick');
// The whole run must fit the 5 minutes a GPU machine is lent for; cases past this are skipped.
const budgetSeconds = Number(option('--budget-s') ?? 270);
/**
 * Where the budget ends for each part, as fractions of it: no tfjs case starts after 35%, PyTorch
 * is stopped at 55%, and the trial starts no step after 95% (a step already running finishes).
 */
const BUDGET_SHARES = { tfjs: 0.35, pytorch: 0.55, trial: 0.95 };
const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;
const log = (line: string) => console.log(`[gpu +${elapsed().toFixed(0).padStart(3)} s] ${line}`);

/** PyTorch on the same cases (bench/reference/torch_bench.py, on CUDA when it has it). */
async function pytorchColumn(cases: ModelCase[]): Promise<{ results: CaseResult[]; engine: string }> {
  const script = [
    path.join(here, 'torch_bench.py'),
    path.join(here, '..', 'bench', 'reference', 'torch_bench.py'),
  ].find((p) => existsSync(p));
  const python = process.env.PNEUMOGAN_BENCH_PYTHON || 'python3';
  if (!script) return { results: [], engine: 'torch_bench.py not found' };
  const device = process.env.PNEUMOGAN_BENCH_TORCH_DEVICE ?? 'cuda';
  return new Promise((resolve) => {
    const child = spawn(python, [script, JSON.stringify(cases)], {
      env: { ...process.env, PNEUMOGAN_BENCH_TORCH_DEVICE: device },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const results: CaseResult[] = [];
    let engine = `PyTorch (${python})`;
    let stderr = '';
    let buffer = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith(RESULT_PREFIX)) continue;
        const event = JSON.parse(line.slice(RESULT_PREFIX.length)) as {
          type: string;
          packageName?: string;
          message?: string;
        };
        if (event.type === 'hello') engine = `${event.packageName} (${device})`;
        if (event.type === 'fatal') engine = `PyTorch failed: ${event.message}`;
        if (event.type === 'result') {
          const { type: _type, ...result } = event as unknown as CaseResult & { type: string };
          results.push(result);
          log(`pytorch ${result.id}: ${result.imagesPerSecond?.toFixed(1) ?? result.status} img/s`);
        }
      }
    });
    const deadline = setTimeout(
      () => child.kill('SIGKILL'),
      Math.max(10, BUDGET_SHARES.pytorch * budgetSeconds - elapsed()) * 1000,
    );
    child.on('error', (err) => (engine = `PyTorch unavailable: ${err.message}`));
    child.on('close', (code) => {
      clearTimeout(deadline);
      if (code !== 0 && !results.length)
        engine = `PyTorch unavailable (${python}: ${stderr.trim().split('\n').at(-1) ?? `exit ${code}`})`;
      resolve({ results, engine });
    });
  });
}

async function bench(backendName: string): Promise<void> {
  const size = quick ? 'smoke' : 'paper';
  const only = option('--cases')?.split(',');
  const cases = modelCases('tensorflow-gpu', { quick }).filter(
    (c) =>
      c.size === size &&
      (c.kind === 'gan-train' || c.kind === 'cls-train') &&
      (!only || only.some((part) => c.id.includes(part))),
  );
  const rows: Row[] = cases.map((c) => ({
    id: c.id,
    label:
      c.kind === 'gan-train'
        ? `DCGAN D+G, ${c.imageSize} px, widths ${c.generatorWidth}`
        : `${c.backbone}, ${c.inputSize} px`,
    batch: c.batch,
    variants: {},
  }));
  const variants = parseVariants(option('--variants'));
  const benchDeadline = BUDGET_SHARES.tfjs * budgetSeconds;
  const kernels: KernelRow[] =
    backend.name === 'webgpu' && !flag('--no-kernel-bench') ? await benchWebGpuKernels({ quick, log }) : [];
  const profiles: CaseProfile[] = [];
  for (const [i, c] of cases.entries()) {
    if (elapsed() > benchDeadline) {
      rows[i]!.tfjs = { id: c.id, status: 'skipped', note: `over the ${benchDeadline.toFixed(0)} s bench budget` };
      continue;
    }
    log(`tfjs ${c.id} ...`);
    rows[i]!.tfjs = await runModelCase(c);
    const result = rows[i]!.tfjs;
    log(
      `tfjs ${c.id}: ${rate(result)} img/s, ${ms(result?.secondsPerStep)} ms a step (host ${ms(result?.hostSecondsPerStep)} ms), warm-up ${result?.warmupSeconds?.toFixed(1) ?? '-'} s`,
    );
    for (const v of variants) {
      const timed = await underVariant(v, () => runModelCase(c));
      rows[i]!.variants[v.name] = timed;
      log(
        `tfjs ${c.id} (${v.name}): ${rate(timed)} img/s, ${ms(timed.secondsPerStep)} ms a step (host ${ms(timed.hostSecondsPerStep)} ms)`,
      );
    }
    if (flag('--host-profile') && rows[i]!.tfjs?.status === 'ok')
      log(describeHostProfile(await hostProfileCase(c, out)));
    if (flag('--profile') && rows[i]!.tfjs?.status === 'ok') {
      const profile = await profileCase(c);
      profiles.push(profile);
      log(`profile ${c.id}: ${describeProfile(profile)}`);
    }
  }
  const torch = flag('--no-pytorch') ? { results: [], engine: 'PyTorch: --no-pytorch' } : await pytorchColumn(cases);
  for (const r of rows) r.pytorch = torch.results.find((x) => x.id === r.id);
  if (profiles.length) await writeFile(path.join(out, 'gpu-profile.json'), `${JSON.stringify(profiles, null, 2)}\n`);
  const markdown = [
    table(rows, backendName, torch.engine, profiles),
    size === 'paper' ? paperEstimates(cases, rows, backendName, torch.engine) : '',
    variants.length
      ? variantTable(
          rows,
          variants.map((v) => v.name),
        )
      : '',
    kernels.length ? kernelTable(kernels, backend.device) : '',
    profileTables(profiles),
  ].join('\n');
  console.log(`\n${markdown}`);
  await writeFile(path.join(out, 'gpu-bench.md'), markdown);
  await writeFile(
    path.join(out, 'gpu-bench.json'),
    `${JSON.stringify({ size, tfjs: backendName, pytorch: torch.engine, rows, kernels, profiles }, null, 2)}\n`,
  );
}

const jobSpec = option('--paper-job');
if (jobSpec) {
  // A step of the paper trial, in a process of its own (gpu/paper-trial.ts starts it).
  await initComputeBackend(log);
  const job = PaperJobSchema.parse(JSON.parse(await readFile(jobSpec, 'utf8')));
  await runPaperJob(job, (event) => console.log(`${JOB_EVENT_PREFIX}${JSON.stringify(event)}`));
  process.exit(0);
}

await mkdir(out, { recursive: true });
const backend = await initComputeBackend(log);
const summary = {
  startedAt: new Date().toISOString(),
  host: os.hostname(),
  node: process.version,
  backend: { name: backend.name, package: backend.packageName, device: backend.device, gpu: backend.gpu },
  tfBackend: tf.getBackend(),
  quick,
};
await writeFile(path.join(out, 'device.json'), `${JSON.stringify(summary, null, 2)}\n`);
const kernelCheck = backend.name === 'webgpu' && !flag('--no-kernel-check') ? await checkKernelsOnDevice(log) : [];
if (kernelCheck.length) {
  await writeFile(path.join(out, 'kernel-check.json'), `${JSON.stringify(kernelCheck, null, 2)}\n`);
  await writeFile(path.join(out, 'kernel-check.md'), kernelCheckTable(kernelCheck, backend.device));
}
const failedChecks = kernelCheck.filter((row) => !row.ok);
if (!flag('--trial-only')) await bench(`tfjs ${backend.name} on ${backend.device}`);
if (failedChecks.length && !flag('--bench-only')) {
  // Timings of a wrong kernel are still timings; a trial's scores on one are not worth a lease.
  log(
    `no trial: ${failedChecks.length} kernel check(s) failed (${failedChecks.map((r) => `${r.kernel}, ${r.layer}`).join('; ')}); ` +
      "see kernel-check.md, and run with PNEUMOGAN_WEBGPU_KERNELS=stock for tfjs's own kernels",
  );
  process.exit(1);
}
if (!flag('--bench-only')) {
  // One trial's GPU steps: the `paper` preset's with --paper-trial, else the `smoke` one's.
  const size: TrialSize = quick ? 'quick' : flag('--paper-trial') ? 'paper' : 'smoke';
  const base = size === 'paper' ? 'paper-trial' : 'trial';
  const writeResult = async (result: PaperTrialResult) => {
    await writeFile(path.join(out, `${base}.json`), `${JSON.stringify({ ...summary, ...result }, null, 2)}\n`);
    await writeFile(path.join(out, `${base}.md`), paperTrialReport(result, backend.device));
  };
  const result = await runPaperTrial({
    size,
    dataDir: option('--data'),
    workDir: option('--work-dir') ?? path.join(os.tmpdir(), `pneumogan-${base}`),
    resume: flag('--resume'),
    budgetSeconds: BUDGET_SHARES.trial * budgetSeconds - elapsed(),
    parallel: Number(option('--parallel') ?? 6),
    log,
    startJob: (specFile) =>
      spawn(process.execPath, [...process.execArgv, process.argv[1]!, '--paper-job', specFile], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    onUpdate: writeResult,
  });
  await writeResult(result);
  console.log(`\n${paperTrialReport(result, backend.device)}`);
}

log(`done; results in ${out}`);
