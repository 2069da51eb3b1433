/**
 * Waits at start for a service a worker needs (S3, the Temporal frontend). A worker restarted
 * while S3 or Temporal is briefly down (a redeploy, a restarted pod, the chaos soak) must not die
 * of it, and must not hang either: it retries with backoff, says each time what it waits for, and
 * gives up after a bounded wait with the last error. Errors that no retry can fix (wrong
 * credentials, a refused bucket) end the wait at once.
 */
import pRetry, { AbortError } from 'p-retry';

export interface UntilReachableOptions {
  /** The longest wait before giving up, in milliseconds. */
  maxWaitMs: number;
  log: (line: string) => void;
  /** Errors that mean the settings are wrong, not that the service is down. */
  isPermanent?: (err: unknown) => boolean;
  signal?: AbortSignal;
}

/** Waits between tries: 1 s, doubling up to 15 s (p-retry's exponential backoff, factor 2). */
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 15_000;

export async function untilReachable<T>(
  what: string,
  connect: () => Promise<T>,
  options: UntilReachableOptions,
): Promise<T> {
  const started = Date.now();
  try {
    return await pRetry(
      async () => {
        try {
          return await connect();
        } catch (err) {
          throw options.isPermanent?.(err) ? new AbortError(asError(err)) : asError(err);
        }
      },
      {
        retries: Infinity,
        minTimeout: FIRST_DELAY_MS,
        maxTimeout: MAX_DELAY_MS,
        maxRetryTime: options.maxWaitMs,
        signal: options.signal,
        onFailedAttempt: ({ error, attemptNumber }) => {
          // p-retry shortens the last wait to the time left, and tries no more once it is spent.
          const left = options.maxWaitMs - (Date.now() - started);
          if (left <= 0) return;
          const delay = Math.min(FIRST_DELAY_MS * 2 ** (attemptNumber - 1), MAX_DELAY_MS, left);
          options.log(
            `[worker] ${what} is not reachable (${firstLine(error)}); trying again in ${seconds(delay)} ` +
              `(waited ${seconds(Date.now() - started)} of at most ${seconds(options.maxWaitMs)})`,
          );
        },
      },
    );
  } catch (err) {
    if (options.signal?.aborted || options.isPermanent?.(err)) throw err;
    const waited = Date.now() - started;
    // Besides a wait that ran out, p-retry gives up at once on errors that are no outage (a TypeError).
    const why = waited >= options.maxWaitMs ? `stayed unreachable for ${seconds(waited)}` : 'failed';
    throw new Error(`${what} ${why}: ${firstLine(err)}`, { cause: err });
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(0)} s`;
}
