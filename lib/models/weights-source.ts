/**
 * Reads pretrained weights from where a config may name them, under a policy that keeps a
 * config from making workers read arbitrary files or download without bound:
 *
 *   https://host/path.safetensors   downloaded (plain http is refused)
 *   s3://bucket/key                 read from the artifact store's S3 server
 *   a local path                    only inside the allowed folder (PNEUMOGAN_WEIGHTS_DIR on the
 *                                   workers; relative paths are taken from there), symlinks resolved
 *
 * Every read is capped in size (PNEUMOGAN_WEIGHTS_MAX_BYTES, default 1 GiB) and time
 * (PNEUMOGAN_WEIGHTS_TIMEOUT_S, default 600 s), reports bytes read, honours an abort signal, and
 * checks an optional sha256 pin. Bad sources (refused scheme, outside the folder, missing, too
 * large, wrong hash) are InputErrors naming the source and the fix; server or network failures
 * and timeouts stay ordinary (retryable) errors.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../errors.js';
import type { ArtifactStore } from '../storage.js';
import type { BackboneName } from './backbones/index.js';
import { readSafetensors } from '../safetensors.js';
import { likelyBackbone } from './pretrained.js';

export interface WeightsPolicy {
  /** Absolute folder local weight files must lie in; undefined: local files are refused. */
  allowedDir?: string;
  maxBytes: number;
  timeoutMs: number;
}

export const DEFAULT_WEIGHTS_MAX_BYTES = 1024 ** 3;
export const DEFAULT_WEIGHTS_TIMEOUT_MS = 600_000;

/** The policy the workers' environment sets (see the module comment). */
export function weightsPolicyFromEnv(env: NodeJS.ProcessEnv = process.env): WeightsPolicy {
  const positive = (name: string, fallback: number, scale = 1): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw} must be a positive number`);
    return value * scale;
  };
  return {
    allowedDir: env.PNEUMOGAN_WEIGHTS_DIR ? path.resolve(env.PNEUMOGAN_WEIGHTS_DIR) : undefined,
    maxBytes: positive('PNEUMOGAN_WEIGHTS_MAX_BYTES', DEFAULT_WEIGHTS_MAX_BYTES),
    timeoutMs: positive('PNEUMOGAN_WEIGHTS_TIMEOUT_S', DEFAULT_WEIGHTS_TIMEOUT_MS, 1000),
  };
}

export interface ReadWeightsOptions {
  policy: WeightsPolicy;
  /** Expected sha256 (hex) of the file; a mismatch is an InputError. */
  sha256?: string;
  signal?: AbortSignal;
  /** Bytes read so far, and the total when the source announced it (else 0). */
  onProgress?: (done: number, total: number) => void;
}

const FIX =
  'Fix classifier.pretrained: an https:// URL, s3://bucket/key on the artifact store, or a file inside PNEUMOGAN_WEIGHTS_DIR, of a safetensors file.';

class WeightsTimeoutError extends Error {
  override name = 'WeightsTimeoutError';
}

export async function readWeightsSource(
  store: ArtifactStore,
  source: string,
  options: ReadWeightsOptions,
): Promise<Uint8Array> {
  const { policy } = options;
  const deadline = new AbortController();
  const timer = setTimeout(
    () =>
      deadline.abort(
        new WeightsTimeoutError(
          `Reading pretrained weights from ${source} took longer than ${policy.timeoutMs / 1000} s (PNEUMOGAN_WEIGHTS_TIMEOUT_S)`,
        ),
      ),
    policy.timeoutMs,
  );
  const signal = options.signal ? AbortSignal.any([options.signal, deadline.signal]) : deadline.signal;
  try {
    // The race also ends a request that never answers (a stalled stat or connect).
    const bytes = await Promise.race([
      readCapped(store, source, policy, signal, options.onProgress ?? (() => {})),
      new Promise<never>((_, reject) => {
        if (signal.aborted) reject(signal.reason as Error);
        signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
      }),
    ]);
    if (options.sha256) {
      const actual = createHash('sha256').update(bytes).digest('hex');
      if (actual !== options.sha256.toLowerCase())
        throw new InputError(
          `Pretrained weights from ${source} have sha256 ${actual}, but the config pins ${options.sha256}. ` +
            'The file changed or the pin is wrong: check the source, then fix classifier.pretrained.<backbone>.sha256.',
        );
    }
    return bytes;
  } catch (err) {
    if (signal.aborted && signal.reason instanceof Error) throw signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

async function readCapped(
  store: ArtifactStore,
  source: string,
  policy: WeightsPolicy,
  signal: AbortSignal,
  onProgress: (done: number, total: number) => void,
): Promise<Uint8Array> {
  const tooLarge = (size: number) =>
    new InputError(
      `Pretrained weights from ${source} (at least ${size} bytes) exceed the ${policy.maxBytes}-byte cap ` +
        '(PNEUMOGAN_WEIGHTS_MAX_BYTES on the workers). Raise the cap if the file is right.',
    );
  if (/^https:\/\//i.test(source)) {
    const response = await fetch(source, { signal, redirect: 'follow' });
    if (response.url && !/^https:\/\//i.test(response.url))
      throw new InputError(
        `Pretrained weights from ${source} redirected to ${response.url}, which is not https. ${FIX}`,
      );
    if (response.status >= 400 && response.status < 500)
      throw new InputError(`Cannot read pretrained weights from ${source}: HTTP ${response.status}. ${FIX}`);
    if (!response.ok || !response.body)
      throw new Error(
        `Reading pretrained weights from ${source} failed: HTTP ${response.status} ${response.statusText}`,
      );
    const announced = Number(response.headers.get('content-length') ?? 0);
    if (announced > policy.maxBytes) {
      await response.body.cancel();
      throw tooLarge(announced);
    }
    return collect(response.body, announced, policy.maxBytes, signal, onProgress, tooLarge);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source) && !/^s3:\/\//i.test(source))
    throw new InputError(
      `Pretrained weights source ${source}: only https://, s3:// and local files inside PNEUMOGAN_WEIGHTS_DIR are accepted. ${FIX}`,
    );
  const s3 = /^s3:\/\/([^/]+)\/(.+)$/.exec(source);
  try {
    if (s3) {
      const [bucket, key] = [s3[1]!, s3[2]!];
      const { size } = await store.client.statObject(bucket, key);
      if (size > policy.maxBytes) throw tooLarge(size);
      const stream = await store.client.getObject(bucket, key);
      return await collect(stream, size, policy.maxBytes, signal, onProgress, tooLarge, () => stream.destroy());
    }
    const file = await allowedLocalFile(source, policy);
    const { size } = await stat(file);
    if (size > policy.maxBytes) throw tooLarge(size);
    const stream = createReadStream(file);
    return await collect(stream, size, policy.maxBytes, signal, onProgress, tooLarge, () => stream.destroy());
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (['ENOENT', 'EACCES', 'EISDIR', 'NoSuchKey', 'NoSuchBucket', 'NotFound'].includes(code)) {
      throw new InputError(`Cannot read pretrained weights from ${source}: ${(err as Error).message}. ${FIX}`);
    }
    throw err;
  }
}

/** The real path of a local weights file, which must lie inside the allowed folder. */
async function allowedLocalFile(source: string, policy: WeightsPolicy): Promise<string> {
  if (!policy.allowedDir)
    throw new InputError(
      `Pretrained weights source ${source} is a local path, but the workers allow no local folder: ` +
        'set PNEUMOGAN_WEIGHTS_DIR on them to the folder that holds the weights (or use https:// or s3://).',
    );
  const folder = await realpath(policy.allowedDir);
  const file = await realpath(path.resolve(folder, source));
  const relative = path.relative(folder, file);
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative))
    throw new InputError(
      `Pretrained weights source ${source} resolves to ${file}, outside PNEUMOGAN_WEIGHTS_DIR (${folder}). ` +
        'Copy the file into that folder, or name it by https:// or s3://.',
    );
  return file;
}

/** Reads a byte stream to the end, enforcing the cap and the signal, reporting progress. */
async function collect(
  stream: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>,
  announced: number,
  maxBytes: number,
  signal: AbortSignal,
  onProgress: (done: number, total: number) => void,
  tooLarge: (size: number) => Error,
  destroy?: () => void,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let done = 0;
  const onAbort = () => destroy?.();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream as AsyncIterable<Uint8Array>) {
      signal.throwIfAborted();
      done += chunk.byteLength;
      if (done > maxBytes) throw tooLarge(done);
      chunks.push(chunk);
      onProgress(done, announced);
    }
    signal.throwIfAborted();
  } catch (err) {
    destroy?.();
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  return Buffer.concat(chunks);
}

/**
 * Checks, before the file is stored, that it is a well-formed safetensors file whose tensor
 * names are those of a torchvision `backbone` (shapes are checked against the model when a
 * trial loads it). Throws an InputError naming the source.
 */
export function checkWeightsFile(bytes: Uint8Array, backbone: BackboneName, source: string): void {
  let names: string[];
  try {
    names = [...readSafetensors(bytes, source).tensors.keys()];
  } catch (err) {
    throw new InputError(`${(err as Error).message}. ${FIX}`);
  }
  const guess = likelyBackbone(names);
  if (guess !== backbone)
    throw new InputError(
      `Pretrained weights from ${source} are ${guess ? `torchvision ${guess} weights` : `not a torchvision state_dict of any supported backbone (${names.length} tensors, e.g. ${names.slice(0, 3).join(', ') || 'none'})`}, ` +
        `but classifier.pretrained names them for ${backbone}. ${FIX}`,
    );
}
