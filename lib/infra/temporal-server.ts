/**
 * Runs the Temporal CLI's development server (`temporal server start-dev`) as a child process
 * with SQLite persistence, so the pipeline needs neither Docker nor a Temporal cluster. Finding
 * or building the CLI itself is lib/infra/temporal-cli.ts.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { devServerSearchAttributeArgs } from '../search-attributes.js';
import { findFreePorts, isPortOpen } from './ports.js';
import { firstLine, LineTail, lineSplitter } from './process-output.js';
import { findOrProvisionTemporalCli } from './temporal-cli.js';

export { findFreePort } from './ports.js';

const execFileAsync = promisify(execFile);

type Log = (line: string) => void;
const noop: Log = () => {};

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
  /** SIGTERM, wait for exit (SIGKILL after the grace period). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs `temporal server start-dev` bound to 127.0.0.1 and resolves once the frontend answers
 * and the namespace exists.
 *
 * The child does not keep the parent's event loop alive, and is sent SIGTERM when the parent
 * exits normally (process 'exit'). A parent killed by a signal cannot do that; the next start on
 * the same dbFile then stops the orphan, found through `<dbFile>.pid`, before reusing the file.
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
    // The pipeline's search attributes (a workflow that upserts an unregistered one is stuck).
    ...devServerSearchAttributeArgs(),
    ...(opts.extraArgs ?? []),
  ];
  const started = Date.now();
  log(`[temporal] starting dev server: ${cliPath} ${args.join(' ')}`);

  const tail = new LineTail(60);
  const child: ChildProcess = spawn(cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
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
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      process.off('exit', onParentExit);
      if (ready && !stopping) {
        log(
          `[temporal] dev server (pid ${child.pid}) exited unexpectedly (${code ?? signal}); last output:\n${tail.text()}`,
        );
      }
      resolve();
    });
    child.on('error', (err) => {
      spawnError ??= err;
      if (child.pid === undefined) resolve(); // never started: no 'exit' will come
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
    await fs.writeFile(
      pidFile(dbFile),
      JSON.stringify({ pid: child.pid, cliPath, address, startedAt: new Date().toISOString() }) + '\n',
    );
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
    stop,
  };
}

function pidFile(dbFile: string): string {
  return `${dbFile}.pid`;
}

async function removePidFile(dbFile: string, pid: number | undefined): Promise<void> {
  try {
    const recorded = JSON.parse(await fs.readFile(pidFile(dbFile), 'utf8')) as { pid?: number };
    if (recorded.pid === pid) await fs.rm(pidFile(dbFile), { force: true });
  } catch {
    // gone or unreadable: nothing to clean
  }
}

/**
 * A parent killed by a signal leaves its dev server running on the SQLite file; two servers
 * on one file would fight over it, so stop the old one (only if it really is a `start-dev` on
 * this file: pids get reused).
 */
async function stopOrphanedServer(dbFile: string, log: Log): Promise<void> {
  let pid: number | undefined;
  try {
    pid = (JSON.parse(await fs.readFile(pidFile(dbFile), 'utf8')) as { pid?: number }).pid;
  } catch {
    return;
  }
  const cmdline = pid && isAlive(pid) ? await commandLineOf(pid) : '';
  if (!pid || !cmdline.includes('start-dev') || !cmdline.includes(dbFile)) {
    await fs.rm(pidFile(dbFile), { force: true });
    return;
  }
  log(`[temporal] stopping a dev server left running by an earlier run (pid ${pid}) on ${dbFile}`);
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
  await fs.rm(pidFile(dbFile), { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function commandLineOf(pid: number): Promise<string> {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    try {
      return (await execFileAsync('ps', ['-o', 'args=', '-p', String(pid)], { timeout: 5_000 })).stdout;
    } catch {
      return '';
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
