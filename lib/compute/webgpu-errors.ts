/**
 * Errors the WebGPU device reports, made to fail the step. Dawn answers a program it cannot run
 * (a buffer larger than the device can bind, a shader that does not compile, memory it cannot
 * allocate) with an `uncapturederror` event and goes on: the program does not run, and what tfjs
 * reads back is zeros or stale memory, so training would go on silently wrong (on lavapipe, whose
 * devices bind at most 128 MiB, AlexNet's 151 MB dense layer did exactly that). The backend ladder
 * watches the device (`watchWebGpuErrors`); readbacks and checkpoints call `throwIfWebGpuFailed`,
 * which throws the device's first message since the last throw.
 */
export class WebGpuValidationError extends Error {
  override name = 'WebGpuValidationError';
}

interface DeviceLike {
  onuncapturederror: ((event: { error: { message: string; constructor: { name: string } } }) => void) | null;
}

let first: { message: string; kind: string } | undefined;
let count = 0;

/** Keeps the first error `device` reports (and counts the rest) until throwIfWebGpuFailed. */
export function watchWebGpuErrors(device: unknown): void {
  (device as DeviceLike).onuncapturederror = (event) => {
    count++;
    first ??= { message: event.error.message, kind: event.error.constructor.name };
  };
}

/**
 * Throws what the device reported since the last call, if anything: a validation error (the same
 * program fails the same way on a retry: non-retryable) as WebGpuValidationError, an out-of-memory
 * or internal error (a retry on a fresh worker may pass) as a plain Error.
 */
export function throwIfWebGpuFailed(): void {
  if (!first) return;
  const { message, kind } = first;
  const more = count > 1 ? ` (and ${count - 1} more device error(s))` : '';
  first = undefined;
  count = 0;
  const text = `the WebGPU device could not run a program, so this step's results are not valid: ${message.split('\n')[0]}${more}`;
  throw kind === 'GPUValidationError' ? new WebGpuValidationError(text) : new Error(text);
}
