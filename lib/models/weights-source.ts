/**
 * Reads pretrained weights from where a config may name them: a local path, an http(s) URL or
 * `s3://bucket/key` (on the artifact store's server). A source that does not exist is an
 * InputError naming it; a server or network failure stays an ordinary (retryable) error.
 */
import { readFile } from 'node:fs/promises';
import { InputError } from '../errors.js';
import type { ArtifactStore } from '../storage.js';

const FIX =
  'Fix classifier.pretrained (a path on the workers, an http(s) URL or s3://bucket/key of a safetensors file).';

export async function readWeightsSource(store: ArtifactStore, source: string): Promise<Uint8Array> {
  if (/^https?:\/\//.test(source)) {
    const response = await fetch(source);
    if (response.status >= 400 && response.status < 500)
      throw new InputError(`Cannot read pretrained weights from ${source}: HTTP ${response.status}. ${FIX}`);
    if (!response.ok)
      throw new Error(
        `Reading pretrained weights from ${source} failed: HTTP ${response.status} ${response.statusText}`,
      );
    return new Uint8Array(await response.arrayBuffer());
  }
  const s3 = /^s3:\/\/([^/]+)\/(.+)$/.exec(source);
  try {
    if (s3) {
      const chunks: Buffer[] = [];
      for await (const chunk of await store.client.getObject(s3[1]!, s3[2]!)) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    }
    return await readFile(source);
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (['ENOENT', 'EACCES', 'EISDIR', 'NoSuchKey', 'NoSuchBucket', 'NotFound'].includes(code)) {
      throw new InputError(`Cannot read pretrained weights from ${source}: ${(err as Error).message}. ${FIX}`);
    }
    throw err;
  }
}
