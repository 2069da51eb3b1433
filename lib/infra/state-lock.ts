/**
 * One owner per embedded state directory. The process that starts the local servers on a state
 * directory (a `demo`, or an inspection command when no demo runs) holds
 * `<stateDir>/pneumogan.lock.json`: its own identity (pid, start time, command line), the
 * servers' endpoints, and the identities of the processes it started (Temporal dev server, GPU
 * workers). Others read it:
 *   - an inspection command attaches to the holder's servers instead of starting (or stopping) any;
 *   - a second demo refuses, naming the holder and how to follow its run;
 *   - after the holder was killed (its identity no longer runs), the next owner stops the
 *     processes it recorded, but only those whose pid, start time and command line still match
 *     (lib/infra/process-identity.ts), then takes the lock.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { isSameProcess, processIdentity, ProcessIdentitySchema, stopIfSameProcess } from './process-identity.js';

export const LOCK_FILENAME = 'pneumogan.lock.json';

const EndpointsSchema = z.object({
  temporal: z.object({ address: z.string(), namespace: z.string(), uiUrl: z.string() }),
  s3: z.object({
    endpoint: z.string(),
    accessKey: z.string(),
    secretKey: z.string(),
    region: z.string(),
  }),
});
export type EmbeddedEndpoints = z.infer<typeof EndpointsSchema>;

const LockSchema = z.object({
  owner: ProcessIdentitySchema,
  /** What the owner is: `demo` (long-lived, runs workers) or `inspect` (a short command). */
  role: z.enum(['demo', 'inspect']),
  /** The owner's command as a user would type it, for messages. */
  command: z.string(),
  /** The run a demo follows, for messages. */
  run: z.string().optional(),
  acquiredAt: z.string(),
  endpoints: EndpointsSchema.optional(),
  /** Processes the owner started; `ready` once a worker polls its task queue. */
  children: z.record(z.string(), ProcessIdentitySchema.extend({ ready: z.boolean().optional() })),
});
export type StateLock = z.infer<typeof LockSchema>;

export class StateDirBusyError extends Error {
  override name = 'StateDirBusyError';
  constructor(
    message: string,
    readonly holder: StateLock,
  ) {
    super(message);
  }
}

type Log = (line: string) => void;

/** The live holder of a state directory's lock, or undefined when none (no file, or its owner is gone). */
export async function liveHolder(stateDir: string): Promise<StateLock | undefined> {
  const lock = await readLock(stateDir);
  return lock && (await isSameProcess(lock.owner)) ? lock : undefined;
}

async function readLock(stateDir: string): Promise<StateLock | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path.join(stateDir, LOCK_FILENAME), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const parsed = LockSchema.safeParse(safeJson(text));
  // A lock cut short by a crash mid-write names nobody; it is treated as stale.
  return parsed.success ? parsed.data : undefined;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export interface HeldStateLock {
  readonly stateDir: string;
  /** Records the servers' endpoints, for inspection commands to attach to. */
  setEndpoints(endpoints: EmbeddedEndpoints): Promise<void>;
  /** Records (pid) or forgets (undefined) a child process, for cleanup after a crash. */
  setChild(name: string, pid: number | undefined): Promise<void>;
  /** Marks a recorded child as ready (a worker that polls its task queue). */
  setChildReady(name: string): Promise<void>;
  /** Removes the lock file (if it is still this holder's). Idempotent. */
  release(): Promise<void>;
}

export interface AcquireOptions {
  role: StateLock['role'];
  command: string;
  run?: string;
  log?: Log;
  /** How long to wait for an inspection command holding the lock to finish (default 60 s). */
  waitForInspectionMs?: number;
}

/**
 * Takes the state directory's lock. A live demo holding it is a StateDirBusyError; a live
 * inspection command is waited for; a dead holder's recorded processes are stopped when they
 * provably are its orphans, and its lock replaced.
 */
export async function acquireStateLock(stateDir: string, options: AcquireOptions): Promise<HeldStateLock> {
  const log = options.log ?? (() => {});
  const file = path.join(stateDir, LOCK_FILENAME);
  await fs.mkdir(stateDir, { recursive: true });
  const owner = await processIdentity(process.pid);
  if (!owner) throw new Error(`cannot read this process's own identity (pid ${process.pid})`);
  const waitUntil = Date.now() + (options.waitForInspectionMs ?? 60_000);
  let lock: StateLock = {
    owner,
    role: options.role,
    command: options.command,
    ...(options.run ? { run: options.run } : {}),
    acquiredAt: new Date().toISOString(),
    children: {},
  };
  for (;;) {
    try {
      await fs.writeFile(file, JSON.stringify(lock, null, 2) + '\n', { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const text = await fs.readFile(file, 'utf8').catch(() => '');
    const parsed = LockSchema.safeParse(safeJson(text));
    const holder = parsed.success ? parsed.data : undefined;
    if (holder && (await isSameProcess(holder.owner))) {
      if (holder.role === 'inspect' && Date.now() < waitUntil) {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      throw new StateDirBusyError(busyMessage(stateDir, holder), holder);
    }
    if (holder) await stopOrphans(holder, log);
    // Remove the stale lock only if it is still the one just judged (another starter may have replaced it).
    if ((await fs.readFile(file, 'utf8').catch(() => '')) === text) await fs.rm(file, { force: true });
  }

  const write = async () => {
    const tmp = `${file}.${randomUUID()}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(lock, null, 2) + '\n');
    await fs.rename(tmp, file);
  };
  // Writes are serialised so a later update never lands before an earlier one.
  let queue: Promise<void> = Promise.resolve();
  const update = (change: (l: StateLock) => StateLock) => {
    queue = queue.then(async () => {
      if (released) return;
      lock = change(lock);
      await write();
    });
    return queue;
  };
  let released = false;
  return {
    stateDir,
    setEndpoints: (endpoints) => update((l) => ({ ...l, endpoints })),
    async setChild(name, pid) {
      const identity = pid === undefined ? undefined : await processIdentity(pid);
      await update((l) => {
        const children = { ...l.children };
        if (identity) children[name] = identity;
        else delete children[name];
        return { ...l, children };
      });
    },
    setChildReady: (name) =>
      update((l) =>
        l.children[name] ? { ...l, children: { ...l.children, [name]: { ...l.children[name], ready: true } } } : l,
      ),
    async release() {
      await queue;
      if (released) return;
      released = true;
      const current = await readLock(stateDir);
      if (current && current.owner.pid === owner.pid && current.owner.startTime === owner.startTime)
        await fs.rm(file, { force: true });
    },
  };
}

function busyMessage(stateDir: string, holder: StateLock): string {
  const since = `since ${holder.acquiredAt}`;
  const dirFlag = ` --state-dir ${stateDir}`;
  return (
    `The state directory ${stateDir} is in use by \`${holder.command}\` (pid ${holder.owner.pid}, ${since}). ` +
    (holder.run
      ? `Follow its run with \`pneumogan follow ${holder.run}${dirFlag}\` (or \`status\`, \`list\`), `
      : 'Inspect it with `pneumogan list' + dirFlag + '`, ') +
    'wait for it to finish, or give this command another --state-dir.'
  );
}

async function stopOrphans(holder: StateLock, log: Log): Promise<void> {
  for (const [name, identity] of Object.entries(holder.children)) {
    const outcome = await stopIfSameProcess(identity);
    if (outcome !== 'not running')
      log(
        `[infra] ${outcome} ${name} (pid ${identity.pid}), left running by \`${holder.command}\` (pid ${holder.owner.pid}) that is gone`,
      );
  }
}
