/**
 * Artifact storage on any S3 API (MinIO in production, a loopback S3 server in tests) through the
 * `minio` client, which is the only storage client in the project.
 *
 * Every artifact is content-addressed: its key is derived from the sha256 of its bytes, so writing
 * the same bytes twice (a retried activity) is idempotent and a reference carries its own
 * integrity check. Reads verify the hash. Every object carries its sha256 as user metadata
 * (`x-amz-meta-sha256`), so a stat (one HEAD) tells whether what is stored is what was meant:
 * writes replace a truncated or corrupt object instead of trusting that the key exists.
 *
 * Keys are validated on every call (no `..`, no absolute paths, no empty segments), so no caller
 * can address anything outside the bucket's intended layout.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import * as Minio from 'minio';
import stableStringify from 'fast-json-stable-stringify';
import { z } from 'zod';
import { CorruptArtifactError, InputError, StorageConfigError } from './errors.js';

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

/**
 * Objects up to this size are written without a stat first: one PUT of the right bytes costs
 * about what a HEAD does and heals whatever was there. Larger ones are stat'ed and uploaded only
 * when missing or not matching.
 */
const BLIND_WRITE_BYTES = 256 * 1024;

/** User metadata names (minio adds the `x-amz-meta-` prefix and strips it again on stat). */
export const SHA256_METADATA = 'sha256';

/** What a stat of an object says: its size and the sha256 recorded when it was written (if any). */
export interface ObjectStat {
  size: number;
  sha256: string | undefined;
  metadata: Record<string, string>;
}

/** How a stored object compares with a reference: `corrupt` includes truncated objects. */
export type ContentCheck = 'ok' | 'missing' | 'corrupt';

/**
 * Throws an InputError unless `key` is a relative object key of non-empty segments, none of them
 * `.` or `..`, without backslashes or control characters. A prefix may end with `/`.
 */
export function assertSafeKey(key: string, kind: 'key' | 'prefix' = 'key'): void {
  const segments = (kind === 'prefix' && key.endsWith('/') ? key.slice(0, -1) : key).split('/');
  const problem =
    key.length === 0
      ? 'is empty'
      : key.startsWith('/')
        ? 'is absolute'
        : key.includes('\\') || [...key].some((c) => c.charCodeAt(0) < 0x20)
          ? 'contains a backslash or a control character'
          : segments.includes('')
            ? 'has an empty path segment'
            : segments.some((segment) => segment === '.' || segment === '..')
              ? 'has a "." or ".." path segment'
              : undefined;
  if (problem) {
    throw new InputError(
      `Invalid storage ${kind} ${JSON.stringify(key)}: it ${problem}. Keys are relative, such as runs/<run>/report.md.`,
    );
  }
}

/** Run names become key segments: letters, digits, `.`, `_`, `-`, starting with a letter or digit. */
export function assertSafeRunName(runName: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(runName)) {
    throw new InputError(
      `Invalid run name ${JSON.stringify(runName)}: use 1 to 128 letters, digits, ".", "_" and "-", starting with a letter or digit.`,
    );
  }
}

/** The content-addressed key of bytes with this sha256. */
export function contentKey(sha256: string, ext: string): string {
  return `cas/${sha256.slice(0, 2)}/${sha256}.${ext}`;
}

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
      // Keep connections open between the thousands of small requests of a paper-size trial, and
      // drop sockets silent for 15 s before the server closes them (the local S3 server keeps
      // them 60 s), so a request never goes out on a socket being closed (ECONNRESET).
      transportAgent: new (useSSL ? https : http).Agent({ keepAlive: true, maxSockets: 64, timeout: 15_000 }),
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
      const code = (err as { code?: string }).code;
      if (code && DETERMINISTIC_BUCKET_ERRORS.has(code)) {
        throw new StorageConfigError(
          `S3 at ${this.settings.endpoint} refused bucket "${this.bucket}" (${code}): no retry can fix this. Check PNEUMOGAN_S3_BUCKET and the access keys (PNEUMOGAN_S3_ACCESS_KEY / PNEUMOGAN_S3_SECRET_KEY), then relaunch.`,
        );
      }
      throw new Error(
        `S3 at ${this.settings.endpoint} is unreachable or refused bucket "${this.bucket}": ${String(err)}`,
      );
    });
    return this.bucketReady;
  }

  /**
   * Stores bytes under `cas/<sha256>.<ext>`. Small objects are written blind (a PUT of the right
   * bytes costs what a HEAD does); a large one already there is kept only when its size and
   * recorded sha256 match (re-hashed when it has no sha256 metadata) and it carries `metadata`
   * (user metadata, e.g. the lineage batch that records it); anything else is replaced.
   */
  async putContent(bytes: Uint8Array, ext: string, metadata: Record<string, string> = {}): Promise<ArtifactRef> {
    const sha256 = sha256Hex(bytes);
    const ref = { key: contentKey(sha256, ext), sha256, bytes: bytes.byteLength };
    if (bytes.byteLength > BLIND_WRITE_BYTES) {
      const stat = await this.stat(ref.key);
      // Kept only when intact and already carrying this write's metadata (its lineage batch).
      const keep =
        stat !== undefined &&
        Object.entries(metadata).every(([name, value]) => stat.metadata[name] === value) &&
        (await this.compare(ref, stat)) === 'ok';
      if (keep) return ref;
    }
    await this.putAt(ref.key, bytes, ext, metadata, sha256);
    return ref;
  }

  /** Stores a JSON value content-addressed (canonical form). */
  putJson(value: unknown, metadata: Record<string, string> = {}): Promise<ArtifactRef> {
    return this.putContent(canonicalJson(value), 'json', metadata);
  }

  /** Writes bytes at a chosen key (reports, run indexes): not content-addressed, overwrites. */
  async putAt(
    key: string,
    bytes: Uint8Array,
    ext = key.split('.').pop() ?? '',
    metadata: Record<string, string> = {},
    /** The bytes' sha256 when the caller has computed it already (content writes), so they are hashed once. */
    sha256 = sha256Hex(bytes),
  ): Promise<void> {
    assertSafeKey(key);
    await this.ensureBucket();
    const userMetadata = Object.fromEntries(
      Object.entries({ ...metadata, [SHA256_METADATA]: sha256 }).map(([k, v]) => [`x-amz-meta-${k}`, v]),
    );
    await this.client.putObject(
      this.bucket,
      key,
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      bytes.byteLength,
      { 'Content-Type': CONTENT_TYPES[ext] ?? 'application/octet-stream', ...userMetadata },
    );
  }

  /** Writes a value at a key only if nothing is there yet; true when this call wrote it. */
  async putIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    if (await this.exists(key)) return false;
    await this.putAt(key, bytes);
    return true;
  }

  async exists(key: string): Promise<boolean> {
    return (await this.stat(key)) !== undefined;
  }

  /** Size and recorded metadata of an object (one HEAD); undefined when there is none. */
  async stat(key: string): Promise<ObjectStat | undefined> {
    assertSafeKey(key);
    await this.ensureBucket();
    try {
      const stat = await this.client.statObject(this.bucket, key);
      const metadata = Object.fromEntries(
        Object.entries(stat.metaData as Record<string, unknown>).map(([k, v]) => [k.toLowerCase(), String(v)]),
      );
      return { size: stat.size, sha256: metadata[SHA256_METADATA], metadata };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Whether the object at `ref.key` holds the referenced bytes: compares size and recorded sha256
   * (one HEAD); an object written without the sha256 metadata is downloaded and re-hashed.
   */
  async checkContent(ref: ArtifactRef): Promise<ContentCheck> {
    return this.compare(ref, await this.stat(ref.key));
  }

  private async compare(ref: ArtifactRef, stat: ObjectStat | undefined): Promise<ContentCheck> {
    if (!stat) return 'missing';
    if (stat.size !== ref.bytes) return 'corrupt';
    if (stat.sha256 !== undefined) return stat.sha256 === ref.sha256 ? 'ok' : 'corrupt';
    const actual = await this.getAt(ref.key).then(sha256Hex, (err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    return actual === undefined ? 'missing' : actual === ref.sha256 ? 'ok' : 'corrupt';
  }

  async getAt(key: string): Promise<Buffer> {
    return (await this.getWithMetadata(key)).bytes;
  }

  /** An object's bytes and user metadata in one GET. */
  async getWithMetadata(key: string): Promise<{ bytes: Buffer; metadata: Record<string, string> }> {
    assertSafeKey(key);
    await this.ensureBucket();
    const stream = await this.client.getObject(this.bucket, key);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const headers = (stream as { headers?: Record<string, string | string[] | undefined> }).headers ?? {};
    const metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers)) {
      if (name.startsWith('x-amz-meta-') && value !== undefined) metadata[name.slice(11)] = String(value);
    }
    return { bytes: Buffer.concat(chunks), metadata };
  }

  /** Reads a referenced artifact and checks its bytes against the reference's hash. */
  async get(ref: ArtifactRef): Promise<Buffer> {
    const bytes = await this.getAt(ref.key);
    const actual = sha256Hex(bytes);
    if (actual !== ref.sha256) throw new CorruptArtifactError(ref, actual);
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
    if (prefix) assertSafeKey(prefix, 'prefix');
    await this.ensureBucket();
    const keys: string[] = [];
    for await (const item of this.client.listObjectsV2(this.bucket, prefix, true) as AsyncIterable<Minio.BucketItem>) {
      if (item.name) keys.push(item.name);
    }
    return keys;
  }
}

/** S3 error codes that say the bucket or the credentials are wrong, not that S3 is unavailable. */
const DETERMINISTIC_BUCKET_ERRORS = new Set([
  'InvalidBucketName',
  'AccessDenied',
  'AllAccessDisabled',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
]);

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'NotFound' || code === 'NoSuchKey';
}
