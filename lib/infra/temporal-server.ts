/**
 * Finds (or builds) the Temporal CLI and runs its development server (`temporal server
 * start-dev`) as a child process with SQLite persistence, so the pipeline needs neither Docker
 * nor a Temporal cluster.
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
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { findFreePorts, isPortOpen } from './ports.js';
import { isSameProcess, processIdentity, ProcessIdentitySchema, stopIfSameProcess } from './process-identity.js';
import { z } from 'zod';

export { findFreePort } from './ports.js';

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

// ---------------------------------------------------------------------------------------------
// Finding / provisioning the CLI
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// The dev server
// ---------------------------------------------------------------------------------------------

export interface TemporalDevServerOptions {
  /** The CLI to run; found/provisioned with {@link findOrProvisionTemporalCli} when omitted. */
  cliPath?: string;
  /** SQLite file for persistent state (created if missing, reused if present). Omitted: in-memory. */
  dbFile?: string;
  /** Frontend gRPC port on 127.0.0.1; a free one when omitted. */
  port?: number;
  /** Web UI port; a free one when omitted. */
  uiPort?: number;
  /** No Web UI (`--headless`). */
  headless?: boolean;
  /** Namespace to create/use besides `default` (default: `default`). */
  namespace?: string;
  /** Server log level (`--log-level`, default `warn`). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error' | 'never';
  /** More `start-dev` flags, e.g. `['--dynamic-config-value', 'limit.blobSize.error=134217728']`. */
  extraArgs?: string[];
  /** How long to wait for the frontend and namespace to answer (default 60 s). */
  startTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL (default 15 s; a clean stop takes ~3 s). */
  stopGraceMs?: number;
  /** Progress lines from this module. */
  log?: Log;
  /** Every line the server prints (it is otherwise kept only for error messages). */
  serverLog?: Log;
}

export interface TemporalDevServer {
  /** gRPC frontend, `127.0.0.1:<port>` (what `Connection.connect({ address })` takes). */
  address: string;
  /** Web UI URL, or '' when headless. */
  uiUrl: string;
  namespace: string;
  /** Absolute path of the SQLite file, or '' when the server keeps state in memory. */
  dbFile: string;
  pid: number;
  cliPath: string;
  /** The full command line's arguments (after the CLI path). */
  args: string[];
  /** The server's last output lines. */
  logTail(): string;
  /** Settles when the server process ends, for whatever reason (stop(), a crash, a kill). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, wait for exit (SIGKILL after the grace period). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs `temporal server start-dev` bound to 127.0.0.1 and resolves once the frontend answers
 * and the namespace exists.
 *
 * The child does not keep the parent's event loop alive, runs in its own process group (a
 * terminal's Ctrl-C reaches only the parent, which stops its workers before the server), and is
 * sent SIGTERM when the parent exits normally (process 'exit'). A parent killed by a signal
 * cannot do that; `<dbFile>.pid` records the server's and the parent's identities, and the next
 * start on the same dbFile stops the server only when it provably is that orphan (the server
 * still the recorded process, its parent gone). A server whose parent still runs is in use: the
 * start fails with a message naming it, and nothing is stopped.
 */
export async function startTemporalDevServer(opts: TemporalDevServerOptions = {}): Promise<TemporalDevServer> {
  const log = opts.log ?? noop;
  const cliPath = opts.cliPath ?? (await findOrProvisionTemporalCli({ log }));
  const dbFile = opts.dbFile ? path.resolve(opts.dbFile) : '';
  if (dbFile) {
    await fs.mkdir(path.dirname(dbFile), { recursive: true });
    await stopOrphanedServer(dbFile, log);
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(cliPath, dbFile, opts, log);
    } catch (err) {
      // Another process took a port we picked between findFreePort and the server's bind.
      if (err instanceof PortInUseError && err.port !== opts.port && err.port !== opts.uiPort && attempt < 3) {
        log(`[temporal] port ${err.port} was taken before the server could bind it; retrying with other ports`);
        continue;
      }
      throw err;
    }
  }
}

class PortInUseError extends Error {
  constructor(
    message: string,
    readonly port: number,
  ) {
    super(message);
  }
}

async function startOnce(
  cliPath: string,
  dbFile: string,
  opts: TemporalDevServerOptions,
  log: Log,
): Promise<TemporalDevServer> {
  const namespace = opts.namespace ?? 'default';
  const free = await findFreePorts(2);
  const port = opts.port ?? free[0]!;
  const uiPort = opts.uiPort ?? free.find((p) => p !== port)!;
  const address = `127.0.0.1:${port}`;
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    ...(opts.headless ? ['--headless'] : ['--ui-port', String(uiPort)]),
    ...(dbFile ? ['--db-filename', dbFile] : []),
    ...(namespace !== 'default' ? ['--namespace', namespace] : []),
    '--log-level',
    opts.logLevel ?? 'warn',
    '--log-format',
    'text',
    '--color',
    'never',
    ...(opts.extraArgs ?? []),
  ];
  const started = Date.now();
  log(`[temporal] starting dev server: ${cliPath} ${args.join(' ')}`);

  const tail = new LineTail(60);
  const child: ChildProcess = spawn(cliPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    windowsHide: true,
    detached: true,
  });
  const onLine = (line: string) => {
    tail.push(line);
    opts.serverLog?.(line);
  };
  const splitter = lineSplitter(onLine);
  child.stdout?.setEncoding('utf8').on('data', splitter);
  child.stderr?.setEncoding('utf8').on('data', splitter);

  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  let stopping: Promise<void> | undefined;
  let ready = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      process.off('exit', onParentExit);
      if (ready && !stopping) {
        log(
          `[temporal] dev server (pid ${child.pid}) exited unexpectedly (${code ?? signal}); last output:\n${tail.text()}`,
        );
      }
      resolve({ code, signal });
    });
    child.on('error', (err) => {
      spawnError ??= err;
      if (child.pid === undefined) resolve({ code: null, signal: null }); // never started: no 'exit' will come
    });
  });
  function onParentExit() {
    if (!exitInfo) child.kill('SIGTERM');
  }
  process.on('exit', onParentExit);
  // Never keep the parent alive just because the server runs.
  child.unref();
  (child.stdout as unknown as net.Socket | null)?.unref?.();
  (child.stderr as unknown as net.Socket | null)?.unref?.();

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!exitInfo && child.pid !== undefined) {
        child.kill('SIGTERM');
        const grace = opts.stopGraceMs ?? 15_000;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          exited.then(() => false),
          new Promise<boolean>((r) => {
            timer = setTimeout(() => r(true), grace);
          }),
        ]);
        clearTimeout(timer);
        if (timedOut) {
          log(`[temporal] dev server (pid ${child.pid}) still running ${grace} ms after SIGTERM; sending SIGKILL`);
          child.kill('SIGKILL');
          await exited;
        }
      }
      process.off('exit', onParentExit);
      if (dbFile) await removePidFile(dbFile, child.pid);
    })();
    return stopping;
  };

  const failWith = async (what: string, cause?: unknown): Promise<never> => {
    const out = tail.text() || '(no output)'; // before stop(): its shutdown noise would hide the cause
    await stop();
    const msg =
      `Temporal dev server ${what}\nCommand: ${cliPath} ${args.join(' ')}\nLast server output:\n${out}` +
      (cause ? `\nLast connection error: ${firstLine(cause)}` : '');
    const busy = /listen tcp [^\s]*:(\d+): bind: address already in use/i.exec(out);
    throw busy ? new PortInUseError(msg, Number(busy[1])) : new Error(msg);
  };

  if (dbFile && child.pid !== undefined) {
    const [server, owner] = await Promise.all([processIdentity(child.pid), processIdentity(process.pid)]);
    if (server && owner) {
      const record: PidRecord = { server, owner, address, startedAt: new Date().toISOString() };
      await fs.writeFile(pidFile(dbFile), JSON.stringify(record) + '\n');
    }
  }

  // Wait for the port, then for a real gRPC answer that includes the namespace.
  const deadline = started + (opts.startTimeoutMs ?? 60_000);
  const { Connection } = await import('@temporalio/client');
  let lastErr: unknown;
  for (;;) {
    if (spawnError) return failWith(`could not be started (${spawnError.message}).`);
    if (exitInfo) return failWith(`exited during startup (exit ${exitInfo.code ?? exitInfo.signal}).`);
    if (Date.now() > deadline) {
      return failWith(
        `did not answer on ${address} within ${((opts.startTimeoutMs ?? 60_000) / 1000).toFixed(1)} s.`,
        lastErr,
      );
    }
    if (await isPortOpen(port, '127.0.0.1', 250)) {
      // Lazy, so the connection can be closed even when this first call fails (a failed
      // Connection.connect returns nothing to close).
      const connection = Connection.lazy({ address });
      try {
        await connection.withDeadline(Date.now() + 2_000, () =>
          connection.workflowService.describeNamespace({ namespace }),
        );
        break;
      } catch (err) {
        lastErr = err;
      } finally {
        await connection.close().catch(() => {});
      }
    }
    await sleep(100);
  }
  ready = true;
  const uiUrl = opts.headless ? '' : `http://127.0.0.1:${uiPort}`;
  log(
    `[temporal] dev server ready in ${Date.now() - started} ms: ${address} (namespace ${namespace}` +
      `${uiUrl ? `, UI ${uiUrl}` : ''}, ${dbFile ? `state ${dbFile}` : 'in-memory state'}, pid ${child.pid})`,
  );
  return {
    address,
    uiUrl,
    namespace,
    dbFile,
    pid: child.pid!,
    cliPath,
    args,
    logTail: () => tail.text(),
    exited,
    stop,
  };
}

function pidFile(dbFile: string): string {
  return `${dbFile}.pid`;
}

const PidRecordSchema = z.object({
  server: ProcessIdentitySchema,
  owner: ProcessIdentitySchema,
  address: z.string(),
  startedAt: z.string(),
});
type PidRecord = z.infer<typeof PidRecordSchema>;

async function removePidFile(dbFile: string, pid: number | undefined): Promise<void> {
  try {
    const recorded = PidRecordSchema.parse(JSON.parse(await fs.readFile(pidFile(dbFile), 'utf8')));
    if (recorded.server.pid === pid) await fs.rm(pidFile(dbFile), { force: true });
  } catch {
    // gone or unreadable: nothing to clean
  }
}

export class TemporalDbInUseError extends Error {
  override name = 'TemporalDbInUseError';
}

/**
 * Two servers on one SQLite file would fight over it. A server left running by a parent that
 * was killed is stopped; one whose parent still runs is someone else's live server, never
 * stopped: that is an error naming both.
 */
async function stopOrphanedServer(dbFile: string, log: Log): Promise<void> {
  let text: string;
  try {
    text = await fs.readFile(pidFile(dbFile), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const parsed = PidRecordSchema.safeParse(safeJsonParse(text));
  if (!parsed.success) {
    // A record without identities (an older format, or cut short) proves nothing: stop nothing,
    // and refuse to start beside a server that still runs on the file.
    const legacyPid = (safeJsonParse(text) as { pid?: unknown } | undefined)?.pid;
    const pid = typeof legacyPid === 'number' ? legacyPid : undefined;
    const running = pid === undefined ? undefined : await processIdentity(pid);
    if (running?.commandLine.includes('start-dev') && running.commandLine.includes(dbFile)) {
      throw new TemporalDbInUseError(
        `A Temporal dev server (pid ${pid}) is running on ${dbFile}, and ${pidFile(dbFile)} does not say whose it is. ` +
          `Stop it if nothing uses it (kill ${pid}), or use another state directory.`,
      );
    }
    await fs.rm(pidFile(dbFile), { force: true });
    return;
  }
  const recorded = parsed.data;
  if (!(await isSameProcess(recorded.server))) {
    await fs.rm(pidFile(dbFile), { force: true });
    return;
  }
  if (await isSameProcess(recorded.owner)) {
    throw new TemporalDbInUseError(
      `A Temporal dev server (pid ${recorded.server.pid}, ${recorded.address}) is using ${dbFile} for a running process ` +
        `(pid ${recorded.owner.pid}: ${recorded.owner.commandLine.slice(0, 120)}). Connect to it instead, or use another state directory.`,
    );
  }
  log(
    `[temporal] stopping the dev server (pid ${recorded.server.pid}) left running on ${dbFile} by pid ${recorded.owner.pid}, which is gone`,
  );
  await stopIfSameProcess(recorded.server, 15_000);
  await fs.rm(pidFile(dbFile), { force: true });
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Keeps the last `max` lines of a stream (ANSI colours stripped). */
export class LineTail {
  private readonly lines: string[] = [];
  constructor(private readonly max: number) {}
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
  }
  text(): string {
    return this.lines.join('\n');
  }
}

/** A 'data' listener that calls onLine per complete line. */
function lineSplitter(onLine: (line: string) => void): (chunk: string) => void {
  let partial = '';
  return (chunk: string) => {
    const parts = (partial + chunk).split(/\r?\n/);
    partial = parts.pop() ?? '';
    for (const p of parts) {
      // eslint-disable-next-line no-control-regex
      const line = p.replace(/\u001b\[[0-9;]*m/g, '').trimEnd();
      if (line) onLine(line);
    }
  };
}

function safeJsonParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}

function errorText(err: unknown, max: number): string {
  const s = err instanceof Error ? err.message : String(err);
  return s.length > max ? `${s.slice(0, max)}...` : s;
}
