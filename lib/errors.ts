/**
 * Bad input that no retry can fix: a corrupt image, an empty class folder, a subset too small to
 * split, an unknown backbone. Activities turn it into a non-retryable Temporal failure; the CLI
 * prints it as is. The message names the offending file or field and says how to fix it.
 */
export class InputError extends Error {
  override name = 'InputError';
}

/** Failure types that retry policies treat as final: bad input, bad config, an invalid payload. */
export const NON_RETRYABLE_TYPES = ['InputError', 'ConfigError', 'ValidationError'];
