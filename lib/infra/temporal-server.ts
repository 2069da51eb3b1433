/**
 * Runs the Temporal CLI's development server (`temporal server start-dev`) as a child process
 * with SQLite persistence, so the pipeline needs neither Docker nor a Temporal cluster. Finding
 * or building the CLI itself is lib/infra/temporal-cli.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { devServerSearchAttributeArgs } from '../search-attributes.js';
import { findFreePorts, isPortOpen } from './ports.js';
import { firstLine, LineTail, lineSplitter } from './process-output.js';
import { isSameProcess, processIdentity, ProcessIdentitySchema, stopIfSameProcess } from './process-identity.js';
import { findOrProvisionTemporalCli } from './temporal-cli.js';
import { z } from 'zod';

export { findFreePort } from './ports.js';

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
    // The pipeline's search attributes (a workflow that upserts an unregistered one is stuck).
    ...devServerSearchAttributeArgs(),
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
