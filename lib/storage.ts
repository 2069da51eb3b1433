/**
 * Artifact storage on any S3 API (MinIO in production, a loopback S3 server in tests) through the
 * `minio` client, which is the only storage client in the project.
 *
 * Every artifact is content-addressed: its key is derived from the sha256 of its bytes, so writing
 * the same bytes twice (a retried activity) is a no-op and a reference carries its own integrity
 * check. Reads verify the hash.
 */
import { createHash } from 'node:crypto';
import * as Minio from 'minio';
import stableStringify from 'fast-json-stable-stringify';
import { z } from 'zod';

export const S3SettingsSchema = z.object({
  endpoint: z.url({ message: 'must be a URL such as http://127.0.0.1:9000' }),
  accessKey: z.string().min(1),
  secretKey: z.string().min(1),
  bucket: z
    .string()
    .min(3)
    .regex(/^[a-z0-9][a-z0-9.-]+$/, 'S3 bucket names are lower-case letters, digits, dots and dashes'),
  region: z.string().default('us-east-1'),
});
export type S3Settings = z.infer<typeof S3SettingsSchema>;

/** A pointer to stored bytes; the only way artifacts travel through workflows. */
export const ArtifactRefSchema = z.object({
  key: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().nonnegative(),
});
export type ArtifactRef = z.infer<typeof ArtifactRefSchema>;

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The canonical bytes of a JSON value: sorted keys, so equal values hash equally. */
export function canonicalJson(value: unknown): Buffer {
  return Buffer.from(stableStringify(value), 'utf8');
}

const CONTENT_TYPES: Record<string, string> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  json: 'application/json',
  md: 'text/markdown; charset=utf-8',
  safetensors: 'application/octet-stream',
};

export class ArtifactStore {
  readonly client: Minio.Client;
  private bucketReady: Promise<void> | undefined;

  constructor(readonly settings: S3Settings) {
    const url = new URL(settings.endpoint);
    const useSSL = url.protocol === 'https:';
    this.client = new Minio.Client({
      endPoint: url.hostname,
      port: url.port ? Number(url.port) : useSSL ? 443 : 80,
      useSSL,
      accessKey: settings.accessKey,
      secretKey: settings.secretKey,
      region: settings.region,
      // Path-style works with MinIO, with loopback servers and with any host name.
      pathStyle: true,
    });
  }

  get bucket(): string {
    return this.settings.bucket;
  }

  /** Creates the bucket on first use. */
  ensureBucket(): Promise<void> {
    this.bucketReady ??= (async () => {
      if (!(await this.client.bucketExists(this.bucket))) {
        await this.client.makeBucket(this.bucket, this.settings.region).catch(async (err: unknown) => {
          // Another worker may have created it between the check and the call.
          if (!(await this.client.bucketExists(this.bucket))) throw err;
        });
      }
    })().catch((err: unknown) => {
      this.bucketReady = undefined;
      throw new Error(
        `S3 at ${this.settings.endpoint} is unreachable or refused bucket "${this.bucket}": ${String(err)}`,
      );
    });
    return this.bucketReady;
  }

  /** Stores bytes under `cas/<sha256>.<ext>`; skips the upload when they are already there. */
  async putContent(bytes: Uint8Array, ext: string): Promise<ArtifactRef> {
    const sha256 = sha256Hex(bytes);
    const ref = { key: `cas/${sha256.slice(0, 2)}/${sha256}.${ext}`, sha256, bytes: bytes.byteLength };
    if (!(await this.exists(ref.key))) await this.putAt(ref.key, bytes, ext);
    return ref;
  }

  /** Stores a JSON value content-addressed (canonical form). */
  putJson(value: unknown): Promise<ArtifactRef> {
    return this.putContent(canonicalJson(value), 'json');
  }

  /** Writes bytes at a chosen key (reports, run indexes): not content-addressed, overwrites. */
  async putAt(key: string, bytes: Uint8Array, ext = key.split('.').pop() ?? ''): Promise<void> {
    await this.ensureBucket();
    await this.client.putObject(
      this.bucket,
      key,
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      bytes.byteLength,
      {
        'Content-Type': CONTENT_TYPES[ext] ?? 'application/octet-stream',
      },
    );
  }

  /** Writes a value at a key only if nothing is there yet; true when this call wrote it. */
  async putIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    if (await this.exists(key)) return false;
    await this.putAt(key, bytes);
    return true;
  }

  async exists(key: string): Promise<boolean> {
    await this.ensureBucket();
    try {
      await this.client.statObject(this.bucket, key);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async getAt(key: string): Promise<Buffer> {
    await this.ensureBucket();
    const stream = await this.client.getObject(this.bucket, key);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** Reads a referenced artifact and checks its bytes against the reference's hash. */
  async get(ref: ArtifactRef): Promise<Buffer> {
    const bytes = await this.getAt(ref.key);
    const actual = sha256Hex(bytes);
    if (actual !== ref.sha256) {
      throw new Error(`Artifact ${ref.key} is corrupt: expected sha256 ${ref.sha256}, found ${actual}`);
    }
    return bytes;
  }

  /** Reads and validates a JSON artifact. */
  async getJson<T>(ref: ArtifactRef, schema: z.ZodType<T>): Promise<T> {
    const value: unknown = JSON.parse((await this.get(ref)).toString('utf8'));
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      throw new Error(`Artifact ${ref.key} does not match its schema: ${z.prettifyError(parsed.error)}`);
    }
    return parsed.data;
  }

  /** Every key under a prefix. */
  async list(prefix: string): Promise<string[]> {
    await this.ensureBucket();
    const keys: string[] = [];
    for await (const item of this.client.listObjectsV2(this.bucket, prefix, true) as AsyncIterable<Minio.BucketItem>) {
      if (item.name) keys.push(item.name);
    }
    return keys;
  }
}

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'NotFound' || code === 'NoSuchKey';
}
