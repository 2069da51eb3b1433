/**
 * The Python reference for `npm run bench`: PyTorch (with torchvision and Pillow) in a virtual
 * environment of its own under the project cache, created on first use and reused after.
 *
 * Why the full PyPI wheel: PyTorch's CPU-only builds are published only on download.pytorch.org,
 * which is not reachable here; PyPI has just the Linux x86-64 wheel built for CUDA, which needs
 * the nvidia-* packages to load (libtorch_cuda.so links cuBLAS, cuDNN, NCCL ...), about 3 GB.
 * Its CPU kernels are the same ones the CPU-only build runs (oneDNN, MKL, OpenMP), so the
 * numbers are PyTorch's CPU numbers; the CUDA libraries are loaded and never used.
 *
 *   PNEUMOGAN_BENCH_PYTHON=/path/to/python   use an existing interpreter that has torch
 *   PNEUMOGAN_CACHE_DIR                      cache root (default ~/.cache/pneumogan)
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pneumoganCacheDir } from '../lib/infra/temporal-cli.js';

/** What the venv gets; a change here rebuilds it. */
export const REFERENCE_REQUIREMENTS = ['torch==2.15.0', 'torchvision==0.29.2', 'pillow==13.0.0'] as const;
const MARKER = '.pneumogan-bench-ready';
const CHECK = 'import torch, torchvision, PIL; print(torch.__version__, torchvision.__version__, PIL.__version__)';

export type ReferenceSetup =
  | { ok: true; python: string; versions: string; how: string; setupSeconds: number }
  | { ok: false; reason: string; setupSeconds: number };

export function referenceVenvDir(): string {
  return path.join(pneumoganCacheDir(), 'bench-venv');
}

interface Ran {
  code: number | null;
  out: string;
}

function run(cmd: string, args: string[], opts: { timeoutMs: number; logFile?: string }): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' },
    });
    const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
    let out = '';
    const keep = (chunk: Buffer) => {
      log?.write(chunk);
      out = (out + chunk.toString()).slice(-20_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    const finish = (code: number | null, extra = '') => {
      clearTimeout(timer);
      log?.end();
      resolve({ code, out: out + extra });
    };
    child.on('error', (err) => finish(-1, String(err)));
    child.on('close', (code) => finish(code));
  });
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}

async function check(python: string): Promise<string | undefined> {
  const r = await run(python, ['-W', 'ignore', '-c', CHECK], { timeoutMs: 120_000 });
  return r.code === 0 ? r.out.trim().split('\n').at(-1) : undefined;
}

/** Finds or builds the reference interpreter; never throws (a failure is a reason to print). */
export async function ensureReference(log: (line: string) => void): Promise<ReferenceSetup> {
  const started = Date.now();
  const seconds = () => (Date.now() - started) / 1000;
  const override = process.env.PNEUMOGAN_BENCH_PYTHON;
  if (override) {
    const versions = await check(override);
    return versions
      ? { ok: true, python: override, versions, how: 'PNEUMOGAN_BENCH_PYTHON', setupSeconds: seconds() }
      : {
          ok: false,
          reason: `PNEUMOGAN_BENCH_PYTHON=${override} cannot import torch, torchvision and PIL`,
          setupSeconds: seconds(),
        };
  }
  const venv = referenceVenvDir();
  const python = path.join(venv, 'bin', 'python');
  const spec = REFERENCE_REQUIREMENTS.join(' ');
  const marker = await fs.readFile(path.join(venv, MARKER), 'utf8').catch(() => '');
  if (marker.trim() === spec) {
    const versions = await check(python);
    if (versions) return { ok: true, python, versions, how: `cached venv ${venv}`, setupSeconds: seconds() };
    log(`[bench] the cached reference venv ${venv} no longer imports torch; rebuilding it`);
  }

  // Build it from scratch (first run, or the requirements changed).
  const base = await findPython();
  if (!base)
    return {
      ok: false,
      reason: 'no python3 (>= 3.10) on PATH to build the PyTorch venv from',
      setupSeconds: seconds(),
    };
  const logFile = `${venv}-install.log`;
  log(
    `[bench] setting up the PyTorch reference once: ${spec} from PyPI into ${venv} ` +
      `(PyPI has only the CUDA build of torch: ~3 GB with its nvidia-* libraries; a few minutes; log: ${logFile})`,
  );
  await fs.rm(venv, { recursive: true, force: true });
  await fs.mkdir(path.dirname(venv), { recursive: true });
  await fs.writeFile(logFile, `# ${new Date().toISOString()} ${base} -m venv ${venv} && pip install ${spec}\n`);
  const made = await run(base, ['-m', 'venv', venv], { timeoutMs: 120_000, logFile });
  if (made.code !== 0) {
    return {
      ok: false,
      reason: `\`${base} -m venv\` failed (${lastLines(made.out, 2)}); on Debian: apt-get install python3-venv`,
      setupSeconds: seconds(),
    };
  }
  // --no-cache-dir: the wheels are ~3 GB and the venv is the cache; no second copy under ~/.cache/pip.
  const installed = await run(
    python,
    [
      '-m',
      'pip',
      'install',
      '--no-cache-dir',
      '--only-binary=:all:',
      '--progress-bar',
      'off',
      ...REFERENCE_REQUIREMENTS,
    ],
    { timeoutMs: 30 * 60_000, logFile },
  );
  if (installed.code !== 0) {
    return {
      ok: false,
      reason: `pip install ${spec} failed (exit ${installed.code}): ${lastLines(installed.out, 3)} (full log: ${logFile})`,
      setupSeconds: seconds(),
    };
  }
  const versions = await check(python);
  if (!versions)
    return {
      ok: false,
      reason: `torch was installed into ${venv} but does not import (see ${logFile})`,
      setupSeconds: seconds(),
    };
  await fs.writeFile(path.join(venv, MARKER), `${spec}\n`);
  log(`[bench] PyTorch reference ready in ${seconds().toFixed(0)} s (${versions})`);
  return { ok: true, python, versions, how: `venv ${venv} (built now)`, setupSeconds: seconds() };
}

async function findPython(): Promise<string | undefined> {
  for (const candidate of ['python3', 'python']) {
    const r = await run(candidate, ['-c', 'import sys; assert sys.version_info >= (3, 10); print(sys.executable)'], {
      timeoutMs: 30_000,
    });
    if (r.code === 0) return r.out.trim().split('\n').at(-1);
  }
  return undefined;
}

// `tsx bench/reference.ts` sets the venv up on its own (what `npm run bench` does first).
if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await ensureReference((l) => console.log(l));
  console.log(JSON.stringify(r));
  process.exit(r.ok ? 0 : 1);
}
