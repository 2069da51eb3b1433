/**
 * Keeps a worker child process running: when it dies (an out-of-memory kill, a crash), it is
 * started again and the run goes on; Temporal retries the activities it was running, which
 * resume from their last checkpoint.
 *
 * Backoff and limit: a process that got as far as polling its task queue ("ready") and then
 * died is restarted after 1 s, however often that happens (each death is one failed activity
 * attempt; a step gives up after 10 of those in a row and 30 minutes without a new checkpoint, see
 * activities/shared.ts). A process that dies before it is ready is
 * failing to start (bad settings, a broken install); those restarts back off (2, 4, 8... s,
 * at most 30 s), and after `startFailureLimit` in a row the supervisor gives up: `done` rejects
 * with the last exit.
 */

export interface ChildWorker {
  child: { pid?: number };
  ready: Promise<void>;
  /** Resolves on a clean exit, rejects (with the reason) on any other. */
  exited: Promise<void>;
  stop(): void;
}

export interface SupervisedProcess {
  name: string;
  /** How many times the process was restarted. */
  readonly restarts: number;
  /** The running process, if any. */
  readonly current: ChildWorker | undefined;
  /** Resolves after stop(); rejects when the supervisor gives up. */
  done: Promise<void>;
  /** Stops the process (graceful) and the supervision; resolves when it has exited. */
  stop(): Promise<void>;
}

export interface SuperviseOptions {
  /** Consecutive deaths before readiness that end supervision (default 5). */
  startFailureLimit?: number;
  /** Called with each new process's pid, and with undefined when it ends. */
  onProcess?: (pid: number | undefined) => void;
  /** Called when the current process says it is ready. */
  onReady?: () => void;
}

const MAX_BACKOFF_MS = 30_000;

export function superviseProcess<P extends ChildWorker>(
  start: () => P,
  name: string,
  log: (line: string) => void,
  options: SuperviseOptions = {},
): SupervisedProcess {
  const limit = options.startFailureLimit ?? 5;
  let current: P | undefined;
  let restarts = 0;
  let stopping = false;
  let wake: () => void = () => {};

  const done = (async () => {
    for (let startFailures = 0; ;) {
      const proc = start();
      current = proc;
      options.onProcess?.(proc.child.pid);
      const startedAt = Date.now();
      let ready = false;
      void proc.ready.then(() => {
        ready = true;
        if (current === proc) options.onReady?.();
      });
      const failure = await proc.exited.then(
        () => undefined,
        (err: unknown) => err,
      );
      current = undefined;
      options.onProcess?.(undefined);
      if (stopping) return;
      const why = failure instanceof Error ? failure.message : 'exited with code 0';
      startFailures = ready ? 0 : startFailures + 1;
      if (startFailures >= limit)
        throw new Error(`${name} died ${limit} times in a row before it was ready; giving up (last: ${why})`);
      const delay = ready ? 1000 : Math.min(1000 * 2 ** startFailures, MAX_BACKOFF_MS);
      restarts++;
      log(
        `[supervisor] ${name} (pid ${proc.child.pid}) ${why.replace(/^\[[^\]]*\] /, '')} after ${((Date.now() - startedAt) / 1000).toFixed(1)} s` +
          `${ready ? '' : ', before it was ready'}; restarting it in ${delay / 1000} s (restart ${restarts}` +
          `${ready ? '' : `, start failure ${startFailures} of ${limit}`})`,
      );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (stopping) return;
    }
  })();

  return {
    name,
    get restarts() {
      return restarts;
    },
    get current() {
      return current;
    },
    done,
    async stop() {
      stopping = true;
      wake();
      const proc = current;
      proc?.stop();
      await proc?.exited.catch(() => undefined);
      await done.catch(() => undefined);
    },
  };
}
