/**
 * The CLI's exit codes, so scripts can tell what went wrong (README, "Scripting the CLI"):
 *
 *   0  success
 *   1  anything else: an unexpected error, or `verify` found corrupt or missing artifacts
 *   2  bad input: an unknown option or value, an invalid config or dataset
 *   3  the run failed, was cancelled or was terminated
 *   4  not found: no run, artifact or report of that name
 *   5  infrastructure down: Temporal or S3 could not be reached
 */
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { CommanderError } from 'commander';
import { InputError } from '../lib/errors.js';
import { ConfigError } from '../pipelines/schema.js';

export const EXIT = { ok: 0, error: 1, badInput: 2, runFailed: 3, notFound: 4, infrastructureDown: 5 } as const;

/** Something the user named does not exist. */
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
}

/** Node's codes for a peer that is not there; gRPC's UNAVAILABLE is 14. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'ETIMEDOUT']);
const GRPC_UNAVAILABLE = 14;

function causes(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e: unknown = err; e instanceof Error && chain.length < 10; e = e.cause) chain.push(e);
  return chain.length ? chain : [err];
}

export function isInfrastructureDown(err: unknown): boolean {
  return causes(err).some((e) => {
    if (!(e instanceof Error)) return false;
    const { code } = e as { code?: unknown };
    if (typeof code === 'string' && UNREACHABLE.has(code)) return true;
    if (code === GRPC_UNAVAILABLE) return true;
    return e.name === 'TransportError' || /Failed to connect before the deadline|connection refused/i.test(e.message);
  });
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.badInput;
  if (err instanceof InputError || err instanceof ConfigError) return EXIT.badInput;
  if (err instanceof WorkflowFailedError) return EXIT.runFailed;
  if (err instanceof WorkflowNotFoundError || err instanceof NotFoundError) return EXIT.notFound;
  if (isInfrastructureDown(err)) return EXIT.infrastructureDown;
  return EXIT.error;
}
