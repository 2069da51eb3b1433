/**
 * The GPU check: training-step rates of this project's models on the backend the ladder picks
 * (on a GPU machine: WebGPU or CUDA), beside PyTorch on the same GPU where PyTorch is installed,
 * then one smoke trial's GPU steps. Writes gpu-bench.json/.md and trial.json to --out.
 *
 *   node --import tsx gpu/run.ts [--out DIR] [--quick] [--bench-only] [--trial-only] [--budget-s N]
 *                                [--no-pytorch] [--no-kernel-bench] [--profile] [--host-profile]
 *                                [--cases gan,resnet18,...] [--variants stock,submit-60,...]
 *
 * --quick uses smoke sizes and a shrunken trial (to check the path on a CPU); --profile adds a
 * per-kernel profile of each row (gpu/profile.ts) to gpu-profile.json; --no-kernel-bench skips the
 * table of kernel choices (gpu/kernels.ts); --host-profile writes a CPU profile of the host's side
 * of each row's steps (gpu/host-profile.ts); --cases keeps the rows whose id contains one of the words;
 * --variants times each row again under other settings (gpu/variants.ts). The GPU pack
 * (`npm run gpu:pack`, gpu/README.md) bundles this file; its run.sh starts it on the GPU machine.
 * Rows at paper size: DCGAN D+G at batch 64 and 64 px (widths 64), and the four backbones at
 * batch 32 and 224 px, as in `npm run bench`.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { modelCases, RESULT_PREFIX, type CaseResult, type ModelCase } from '../bench/cases.js';
import { runModelCase } from '../bench/tfjs-cases.js';
import { initComputeBackend } from '../lib/compute/backend.js';
import { estimatePaper } from './estimate.js';
import { benchWebGpuKernels, kernelTable, type KernelRow } from './kernels.js';
import { describeHostProfile, hostProfileCase } from './host-profile.js';
import { describeProfile, profileCase, type CaseProfile } from './profile.js';
import { parseVariants, underVariant } from './variants.js';
import { runSmokeTrialGpuSteps } from './trial.js';

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

interface Row {
  id: string;
  label: string;
  batch: number;
  tfjs?: CaseResult;
  /** The same case under each --variants setting (gpu/variants.ts), by variant name. */
  variants: Record<string, CaseResult>;
  pytorch?: CaseResult;
}

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

function rate(r: CaseResult | undefined): string {
  if (!r) return '-';
  if (r.status !== 'ok') return r.status + (r.note ? ` (${r.note})` : '');
  return r.imagesPerSecond! >= 100 ? r.imagesPerSecond!.toFixed(0) : r.imagesPerSecond!.toPrecision(3);
}

const ms = (seconds: number | undefined) => (seconds === undefined ? '-' : (seconds * 1000).toFixed(1));

/**
 * The bench table. "step ms" is the device-synchronised time per training step; "host ms" is the
 * host's time to queue one (on WebGPU, far below the step time means the GPU's work bounds the
 * step; close to it means the host does); "kernel ms" is the profiled step's summed kernel time.
 */
function table(rows: Row[], tfjsName: string, torchName: string, profiles: CaseProfile[]): string {
  const kernelMs = (r: Row) => profiles.find((p) => p.id === r.id)?.kernelMs;
  const lines = [
    `| model | ${tfjsName} img/s | step ms | host ms | kernel ms | ${torchName} img/s | ratio |`,
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => {
      const a = r.tfjs?.imagesPerSecond;
      const b = r.pytorch?.imagesPerSecond;
      const k = kernelMs(r);
      return `| ${r.label}, batch ${r.batch} | ${rate(r.tfjs)} | ${ms(r.tfjs?.secondsPerStep)} | ${ms(r.tfjs?.hostSecondsPerStep)} | ${k == null ? '-' : k.toFixed(1)} | ${rate(r.pytorch)} | ${a && b ? `${(a / b).toPrecision(2)}x` : '-'} |`;
    }),
  ];
  return lines.join('\n');
}

/** Each row under its default and under each variant, timed in this run, and the default's speed-up over each. */
function variantTable(rows: Row[], names: string[]): string {
  const cell = (r: CaseResult | undefined, base: CaseResult | undefined) =>
    `${rate(r)} (${ms(r?.secondsPerStep)} ms)${
      r?.imagesPerSecond && base?.imagesPerSecond
        ? `, default ${(base.imagesPerSecond / r.imagesPerSecond).toFixed(2)}x`
        : ''
    }`;
  return [
    'The same rows under other settings (gpu/variants.ts), img/s (step ms), timed in this run:',
    '',
    `| model | default | ${names.join(' | ')} |`,
    `| --- | --- |${names.map(() => ' --- |').join('')}`,
    ...rows.map(
      (r) =>
        `| ${r.label}, batch ${r.batch} | ${cell(r.tfjs, undefined)} | ${names.map((n) => cell(r.variants[n], r.tfjs)).join(' | ')} |`,
    ),
    '',
  ].join('\n');
}

/** Per profiled case, the kernels and the layers (input shapes) the step's time goes to. */
function profileTables(profiles: CaseProfile[]): string {
  return profiles
    .flatMap((p) => [
      `Profile of ${p.id}: ${describeProfile(p, 0)}`,
      '',
      '| kernel | calls | ms |',
      '| --- | --- | --- |',
      ...p.kernels.slice(0, 12).map((k) => `| ${k.name} | ${k.count} | ${k.totalMs?.toFixed(2) ?? '-'} |`),
      '',
      '| kernel and input shapes | calls | ms |',
      '| --- | --- | --- |',
      ...p.calls.slice(0, 12).map((k) => `| ${k.name} | ${k.count} | ${k.totalMs?.toFixed(2) ?? '-'} |`),
      '',
    ])
    .join('\n');
}

/** The `paper` preset's training time per trial and in all, from each column's rates (gpu/estimate.ts). */
function paperEstimates(cases: ModelCase[], rows: Row[], tfjsName: string, torchName: string): string {
  const lines = ['', 'Expected training time of the `paper` preset from these rates (gpu/estimate.ts):', ''];
  for (const [name, pick] of [
    [tfjsName, (r: Row) => r.tfjs],
    [torchName, (r: Row) => r.pytorch],
  ] as const) {
    const rateOf = (c: ModelCase) => {
      const result = pick(rows.find((r) => r.id === c.id)!);
      return result?.status === 'ok' ? result.imagesPerSecond : undefined;
    };
    const gan = cases.find((c) => c.kind === 'gan-train');
    const backboneRates = Object.fromEntries(
      cases.flatMap((c) => (c.kind === 'cls-train' ? [[c.backbone, rateOf(c)]] : [])),
    ) as Record<string, number | undefined>;
    const estimate = estimatePaper(gan && rateOf(gan), backboneRates);
    lines.push(
      estimate
        ? `- ${name}: ${(estimate.perTrialSeconds / 60).toFixed(1)} min per trial, ${(estimate.totalSeconds / 3600).toFixed(2)} h for 3 trials (${Object.entries(
            estimate.parts,
          )
            .map(([k, v]) => `${k} ${(v / 60).toFixed(1)} min`)
            .join(', ')})`
        : `- ${name}: no estimate (a row has no rate)`,
    );
  }
  return `${lines.join('\n')}\n`;
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
if (!flag('--trial-only')) await bench(`tfjs ${backend.name} on ${backend.device}`);
if (!flag('--bench-only')) {
  const trial = await runSmokeTrialGpuSteps({
    quick,
    log,
    deadlineSeconds: BUDGET_SHARES.trial * budgetSeconds - elapsed(),
  });
  await writeFile(path.join(out, 'trial.json'), `${JSON.stringify({ ...summary, ...trial }, null, 2)}\n`);
  log(`smoke trial GPU steps: ${trial.seconds.toFixed(1)} s`);
}
log(`done; results in ${out}`);
