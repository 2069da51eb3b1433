/**
 * Finds (or builds) the Temporal CLI, which runs the local dev server (lib/infra/temporal-server.ts).
 *
 * The CLI is a single ~250 MB Go binary. Looked up, in order:
 *   1. `$TEMPORAL_CLI_PATH` (an explicit override: when set it must work, no fallback);
 *   2. `temporal` on `$PATH`;
 *   3. the project cache, `$PNEUMOGAN_CACHE_DIR/bin` (default `~/.cache/pneumogan/bin`);
 *   4. Go's bin directories (`go env GOBIN`, `$(go env GOPATH)/bin`);
 *   5. a copy the Temporal SDK downloaded earlier into the project cache;
 *   6. when `go` exists: `go install github.com/temporalio/cli/cmd/temporal@v1.5.1` into the
 *      project cache (minutes; later tags carry a `replace` directive `go install` refuses);
 *   7. the Temporal SDK's own download (`@temporalio/testing`, only when installed; it fetches
 *      from temporal.download, which must be reachable).
 */
import { execFile, spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { errorText, firstLine, LineTail, lineSplitter } from './process-output.js';

const execFileAsync = promisify(execFile);

type Log = (line: string) => void;
const noop: Log = () => {};

/** The pinned CLI release (the newest tag that `go install` accepts). */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
export const TEMPORAL_CLI_GO_PACKAGE = 'github.com/temporalio/cli/cmd/temporal';
const EXE = process.platform === 'win32' ? '.exe' : '';

/** Per-user cache for tools the project provisions: `$PNEUMOGAN_CACHE_DIR` or `~/.cache/pneumogan`. */
export function pneumoganCacheDir(): string {
  return process.env.PNEUMOGAN_CACHE_DIR || path.join(os.homedir(), '.cache', 'pneumogan');
}

/** Where provisioned binaries go (`<cache>/bin`). */
export function pneumoganBinDir(): string {
  return path.join(pneumoganCacheDir(), 'bin');
}

export interface FindTemporalCliOptions {
  log?: Log;
  /**
   * Build (go install) or download the CLI when no copy is found. Default true; false only
   * looks, which is what tests use so that they never start a multi-minute build.
   */
  provision?: boolean;
}

/** The first line of `temporal --version`; throws when the file is not a working CLI. */
export async function temporalCliVersion(cliPath: string): Promise<string> {
  const { stdout, stderr } = await execFileAsync(cliPath, ['--version'], { timeout: 30_000, windowsHide: true });
  const out = `${stdout}${stderr}`.trim();
  const line = out.split('\n').find((l) => /^temporal version /.test(l.trim()));
  if (!line)
    throw new Error(
      `\`${cliPath} --version\` printed ${JSON.stringify(out.slice(0, 200))}, not "temporal version ..."`,
    );
  return line.trim();
}

/**
 * The path of a working `temporal` executable, provisioning one when needed (see the module
 * comment for the search order). Errors list what was tried and how to fix it.
 */
export async function findOrProvisionTemporalCli(opts: FindTemporalCliOptions = {}): Promise<string> {
  const log = opts.log ?? noop;
  const tried: string[] = [];
  const found = (p: string, version: string, how: string) => {
    log(`[temporal] CLI: ${p} (${version}; ${how})`);
    return p;
  };

  // 1. Explicit override: must work, no silent fallback.
  const envPath = process.env.TEMPORAL_CLI_PATH;
  if (envPath) {
    const p = path.resolve(envPath);
    try {
      return found(p, await temporalCliVersion(p), 'from TEMPORAL_CLI_PATH');
    } catch (err) {
      throw new Error(
        `TEMPORAL_CLI_PATH=${envPath} is not a working Temporal CLI (${firstLine(err)}). ` +
          `Point it at a \`temporal\` executable, or unset it to let the project find or build one.`,
        { cause: err },
      );
    }
  }
  tried.push('TEMPORAL_CLI_PATH: not set');

  const candidates: Array<{ how: string; path: string }> = [];
  const onPath = await findOnPath(`temporal${EXE}`);
  if (onPath.length) candidates.push(...onPath.map((p) => ({ how: 'on PATH', path: p })));
  else tried.push('PATH: no `temporal` executable');
  const binDir = pneumoganBinDir();
  candidates.push({ how: 'project cache', path: path.join(binDir, `temporal${EXE}`) });
  const go = await findGo();
  if (go) {
    for (const dir of await goBinDirs(go))
      candidates.push({ how: 'Go bin dir', path: path.join(dir, `temporal${EXE}`) });
  }
  for (const name of await sdkDownloadedNames(binDir))
    candidates.push({ how: 'downloaded by the Temporal SDK', path: path.join(binDir, name) });

  const seen = new Set<string>();
  for (const c of candidates) {
    if (seen.has(c.path)) continue;
    seen.add(c.path);
    const verdict = await tryCli(c.path);
    if (typeof verdict === 'object') return found(c.path, verdict.version, c.how);
    tried.push(`${c.how}: ${c.path} (${verdict})`);
  }

  if (opts.provision === false) {
    throw new TemporalCliNotFoundError(
      tried,
      'provisioning disabled (provision: false); run `npx tsx cli/setup.ts` to build it',
    );
  }

  // 6. Build from source with Go.
  if (go) {
    try {
      const built = await goInstallOnce(go, binDir, log);
      return found(built, await temporalCliVersion(built), `built with go install ${TEMPORAL_CLI_VERSION}`);
    } catch (err) {
      tried.push(
        `go install ${TEMPORAL_CLI_GO_PACKAGE}@${TEMPORAL_CLI_VERSION} (with ${go}): failed: ${errorText(err, 1500)}`,
      );
    }
  } else {
    tried.push('go install: no `go` toolchain found (PATH, $GOROOT/bin, /usr/local/go/bin)');
  }

  // 7. The Temporal SDK's downloader, when @temporalio/testing is installed.
  try {
    const downloaded = await downloadWithTemporalSdk(binDir, log);
    return found(downloaded, await temporalCliVersion(downloaded), 'downloaded by @temporalio/testing');
  } catch (err) {
    tried.push(`Temporal SDK download: ${firstLine(err)}`);
  }

  throw new TemporalCliNotFoundError(tried);
}

export class TemporalCliNotFoundError extends Error {
  constructor(
    readonly tried: string[],
    note?: string,
  ) {
    const cacheBin = pneumoganBinDir();
    super(
      [
        'Could not find or provision the Temporal CLI (`temporal`), which runs the local Temporal dev server.',
        'Tried:',
        ...tried.map((t) => `  - ${t}`),
        ...(note ? [`Note: ${note}`] : []),
        'Fix (any one):',
        `  - Install Go >= 1.25 (https://go.dev/dl/; older Go fetches a newer toolchain itself when GOTOOLCHAIN=auto) and run \`npx tsx cli/setup.ts\`;`,
        `    it runs \`GOBIN=${cacheBin} go install ${TEMPORAL_CLI_GO_PACKAGE}@${TEMPORAL_CLI_VERSION}\` (a few minutes, ~250 MB).`,
        '  - Download a release from https://github.com/temporalio/cli/releases (or `brew install temporal`, or',
        `    \`curl -sSf https://temporal.download/cli.sh | sh\`) and put \`temporal\` on PATH, in ${cacheBin}, or set TEMPORAL_CLI_PATH=/path/to/temporal.`,
        '  - `npm install --save-dev @temporalio/testing`, whose ephemeral-server support downloads the CLI from',
        '    temporal.download on first use (that host must be reachable).',
      ].join('\n'),
    );
    this.name = 'TemporalCliNotFoundError';
  }
}

async function tryCli(p: string): Promise<{ version: string } | string> {
  try {
    await fs.access(p, fsConstants.X_OK);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : `not executable: ${firstLine(err)}`;
  }
  try {
    return { version: await temporalCliVersion(p) };
  } catch (err) {
    return `does not work: ${firstLine(err)}`;
  }
}

async function findOnPath(name: string): Promise<string[]> {
  const out: string[] = [];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      await fs.access(p, fsConstants.X_OK);
      if ((await fs.stat(p)).isFile()) out.push(p);
    } catch {
      // not here
    }
  }
  return out;
}

async function findGo(): Promise<string | undefined> {
  const candidates = [
    ...(await findOnPath(`go${EXE}`)),
    ...(process.env.GOROOT ? [path.join(process.env.GOROOT, 'bin', `go${EXE}`)] : []),
    '/usr/local/go/bin/go',
    path.join(os.homedir(), 'go', 'bin', `go${EXE}`),
  ];
  for (const p of candidates) {
    try {
      await fs.access(p, fsConstants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

async function goBinDirs(go: string): Promise<string[]> {
  try {
    const { stdout } = await execFileAsync(go, ['env', 'GOBIN', 'GOPATH'], { timeout: 30_000 });
    const [gobin = '', gopath = ''] = stdout.split('\n').map((s) => s.trim());
    return [
      ...(gobin ? [gobin] : []),
      ...gopath
        .split(path.delimiter)
        .filter(Boolean)
        .map((p) => path.join(p, 'bin')),
    ];
  } catch {
    return [];
  }
}

/** Files the SDK's cached download leaves: `temporal-sdk-typescript-<ver>` or `temporal-<ver>`. */
async function sdkDownloadedNames(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir))
      .filter((n) => /^temporal-(sdk-|v?\d)/.test(n))
      .sort()
      .reverse();
  } catch {
    return [];
  }
}

let goInstallInFlight: Promise<string> | undefined;

/** One `go install` per process at a time (concurrent callers share it). */
function goInstallOnce(go: string, binDir: string, log: Log): Promise<string> {
  goInstallInFlight ??= goInstall(go, binDir, log).finally(() => {
    goInstallInFlight = undefined;
  });
  return goInstallInFlight;
}

async function goInstall(go: string, binDir: string, log: Log): Promise<string> {
  await fs.mkdir(binDir, { recursive: true });
  const target = `${TEMPORAL_CLI_GO_PACKAGE}@${TEMPORAL_CLI_VERSION}`;
  log(`[temporal] building the Temporal CLI from source: GOBIN=${binDir} ${go} install ${target}`);
  log('[temporal] this takes a few minutes (hundreds of Go modules, a ~250 MB binary); it happens once per machine');
  const started = Date.now();
  const tail = new LineTail(40);
  let modules = 0;
  const child = spawn(go, ['install', target], {
    env: {
      ...process.env,
      GOBIN: binDir,
      // The CLI's SQLite driver is pure Go; a cgo-free build needs no C compiler.
      CGO_ENABLED: process.env.CGO_ENABLED ?? '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    windowsHide: true,
  });
  const onLine = (line: string) => {
    if (line.startsWith('go: downloading')) modules++;
    tail.push(line);
  };
  const splitter = lineSplitter(onLine);
  child.stdout?.setEncoding('utf8').on('data', splitter);
  child.stderr?.setEncoding('utf8').on('data', splitter);
  const progress = setInterval(() => {
    log(
      `[temporal] go install still running: ${Math.round((Date.now() - started) / 1000)} s` +
        (modules ? `, ${modules} modules downloaded so far` : ' (compiling)'),
    );
  }, 30_000);
  const timeoutMs = 30 * 60_000;
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (c, s) => resolve({ code: c, signal: s }));
      },
    );
    if (code !== 0) {
      throw new Error(
        `exit ${code ?? signal}${signal === 'SIGKILL' ? ` (killed after ${timeoutMs / 60_000} min)` : ''}; last output:\n${tail.text()}`,
      );
    }
  } finally {
    clearInterval(progress);
    clearTimeout(killer);
  }
  const built = path.join(binDir, `temporal${EXE}`);
  const size = (await fs.stat(built)).size;
  log(
    `[temporal] built ${built} in ${Math.round((Date.now() - started) / 1000)} s (${(size / 2 ** 20).toFixed(0)} MiB${modules ? `, ${modules} modules downloaded` : ''})`,
  );
  return built;
}

async function downloadWithTemporalSdk(binDir: string, log: Log): Promise<string> {
  const moduleName = '@temporalio/testing'; // not a dependency: imported by name so tsc does not need it
  let testing: { TestWorkflowEnvironment: { createLocal(o: unknown): Promise<{ teardown(): Promise<void> }> } };
  try {
    testing = (await import(moduleName)) as typeof testing;
  } catch {
    throw new Error(
      '@temporalio/testing is not installed (`npm install --save-dev @temporalio/testing` enables this path)',
    );
  }
  await fs.mkdir(binDir, { recursive: true });
  log(`[temporal] asking @temporalio/testing to download the CLI into ${binDir} (from temporal.download)`);
  const env = await testing.TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'cached-download', downloadDir: binDir } },
  });
  await env.teardown();
  for (const name of await sdkDownloadedNames(binDir)) {
    const p = path.join(binDir, name);
    if (typeof (await tryCli(p)) === 'object') return p;
  }
  throw new Error(`@temporalio/testing ran, but no temporal-* executable appeared in ${binDir}`);
}
