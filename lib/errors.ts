/**
 * Bad input that no retry can fix: a corrupt image, an empty class folder, a subset too small to
 * split, an unknown backbone. Activities turn it into a non-retryable Temporal failure; the CLI
 * prints it as is. The message names the offending file or field and says how to fix it.
 */
export class InputError extends Error {
  override name = 'InputError';
}

/**
 * An input artifact whose bytes no longer hash to its reference: retrying the step reads the same
 * bytes, so it fails at once and says how to recover.
 */
export class CorruptArtifactError extends InputError {
  override name = 'CorruptArtifactError';
  constructor(
    readonly ref: { key: string; sha256: string },
    readonly actualSha256: string,
  ) {
    super(
      `Artifact ${ref.key} is corrupt: expected sha256 ${ref.sha256}, found ${actualSha256}. ` +
        'Relaunch the run (steps whose stored outputs no longer verify are recomputed), and run `pneumogan verify <run>` to find other damage.',
    );
  }
}

/** The bucket or credentials are wrong (not a passing outage): fix the settings, then relaunch. */
export class StorageConfigError extends InputError {
  override name = 'StorageConfigError';
}

/** Failure types that retry policies treat as final: bad input, bad config, an invalid payload. */
export const NON_RETRYABLE_TYPES = [
  'InputError',
  'ConfigError',
  'ValidationError',
  'CorruptArtifactError',
  'StorageConfigError',
  'WebGpuValidationError',
];
