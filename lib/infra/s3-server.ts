/**
 * A local S3-compatible server (s3rver, a devDependency) for development, tests and the
 * single-machine demo: objects live as plain files under `directory`, so they survive
 * restarts. Talk to it with the `minio` client in path-style mode:
 *
 *   new Minio.Client({ endPoint: s3.host, port: s3.port, useSSL: false, pathStyle: true,
 *                      accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region })
 *
 * Behaviour checked with minio@8 (see test/integration/infra.test.ts), where it differs from
 * AWS S3 / MinIO:
 *   - No real authentication: the access key must be S3RVER, but SigV4 signatures are not
 *     verified (a wrong secret works) and unsigned requests are accepted.
 *   - ETag is always the plain MD5 of the whole object, multipart uploads included (S3 and MinIO
 *     give `<md5 of part md5s>-<parts>` there), so code must not treat ETags as content hashes.
 *   - makeBucket on an existing bucket fails with BucketAlreadyExists (MinIO:
 *     BucketAlreadyOwnedByYou); bucketExists answers true/false correctly.
 *   - statObject of a missing key fails with code NotFound (a HEAD has no body), getObject with
 *     NoSuchKey; removeObject of a missing key succeeds; removeBucket of a non-empty bucket fails
 *     with BucketNotEmpty. All as on S3.
 *   - Listing with a delimiter (recursive: false) returns common prefixes as `{ prefix, size: 0 }`.
 *   - User metadata (`x-amz-meta-*`) round-trips with lowercased names; copyObject keeps the
 *     source's metadata.
 *   - Three incompatibilities are patched here (see installMinioCompat): multipart/stream
 *     uploads, listings longer than 1000 keys, and `+`/`%` in listed keys.
 *   - s3rver wrote objects in place, so overlapping PUTs of one key could mix and a cut-off upload
 *     could truncate an object; writes are atomic here as on S3 (./s3rver-atomic-put.ts).
 *   - Objects are plain files under `directory`: `<bucket>/<key>._S3rver_object` plus
 *     `_metadata.json` and `.md5` sidecars. s3rver joins key segments into that path as they
 *     come, so a key with `..` segments would read or write outside the bucket's folder: keys
 *     with `.`, `..` or empty segments (or backslashes) are refused with 400 InvalidArgument
 *     (see rejectUnsafeKeys).
 */
import fs from 'node:fs/promises';
import type { Server } from 'node:http';
import path from 'node:path';
import type { S3Settings } from '../storage.js';
import { installAtomicPuts, type S3rverStore } from './s3rver-atomic-put.js';

type Log = (line: string) => void;

/** s3rver accepts this single key pair (its built-in dummy account). */
export const S3RVER_ACCESS_KEY = 'S3RVER';
export const S3RVER_SECRET_KEY = 'S3RVER';

export interface LocalS3ServerOptions {
  /** Where buckets and objects are stored (created if missing, reused if present). */
  directory: string;
  /** Port on 127.0.0.1; 0 or omitted picks a free one. */
  port?: number;
  /** Buckets to create at start (existing ones are kept). */
  buckets?: string[];
  /** Print s3rver's own request log to the console (default: silent). */
  verbose?: boolean;
  log?: Log;
}

/** The bucket the embedded default keeps artifacts in. */
export const LOCAL_BUCKET = 'pneumogan';

/** Client settings for the embedded bucket of a local S3 server (or of its recorded endpoints). */
export function localS3Settings(
  server: Pick<LocalS3Server, 'endpoint' | 'accessKey' | 'secretKey' | 'region'>,
): S3Settings {
  const { endpoint, accessKey, secretKey, region } = server;
  return { endpoint, accessKey, secretKey, region, bucket: LOCAL_BUCKET };
}

export interface LocalS3Server {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  host: string;
  port: number;
  /** Region to give clients (s3rver ignores it; minio would otherwise ask the server). */
  region: string;
  accessKey: string;
  secretKey: string;
  directory: string;
  /** Stops accepting connections and closes the open ones. Idempotent. */
  stop(): Promise<void>;
}

interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  store?: S3rverStore;
  close(): Promise<void>;
  httpServer?: Server;
  /** Koa's middleware stack (s3rver extends Koa). */
  middleware: KoaMiddleware[];
}
interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  body: unknown;
  status: number;
  store: { getBucket(name: string): Promise<unknown> };
}
type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void> | void;
type S3rverCtor = new (options: Record<string, unknown>) => S3rverInstance;

export class S3rverMissingError extends Error {
  constructor(cause: unknown) {
    super(
      'The local S3 server needs the `s3rver` package, which is a devDependency and is not installed ' +
        `(${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)}). ` +
        'Install dev dependencies (`npm install`, or `npm install --save-dev s3rver@^3.7.1`), ' +
        'or point the pipeline at a real S3/MinIO endpoint instead.',
    );
    this.name = 'S3rverMissingError';
  }
}

/** Loads s3rver (a CommonJS devDependency); throws {@link S3rverMissingError} when it is absent. */
export async function loadS3rver(): Promise<S3rverCtor> {
  const moduleName = 's3rver';
  try {
    const mod = (await import(moduleName)) as { default?: S3rverCtor } & S3rverCtor;
    return mod.default ?? mod;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw new S3rverMissingError(err);
    throw err;
  }
}

export async function startLocalS3Server(opts: LocalS3ServerOptions): Promise<LocalS3Server> {
  const log = opts.log ?? (() => {});
  const S3rver = await loadS3rver();
  const directory = path.resolve(opts.directory);
  await fs.mkdir(directory, { recursive: true });
  const host = '127.0.0.1';
  const started = Date.now();
  const server = new S3rver({
    address: host,
    port: opts.port ?? 0,
    directory,
    silent: !opts.verbose,
    resetOnClose: false,
    // Only path-style requests: never treat `<bucket>.localhost` Host headers as buckets.
    vhostBuckets: false,
    configureBuckets: (opts.buckets ?? []).map((name) => ({ name, configs: [] })),
  });
  rejectUnsafeKeys(server, log);
  installMinioCompat(server, log);
  if (server.store) installAtomicPuts(server.store);
  else log('[s3] s3rver internals changed: object writes are not atomic');
  const { port } = await server.run();
  if (server.httpServer) {
    // Idle keep-alive connections stay open longer than clients keep them (ArtifactStore: 15 s).
    server.httpServer.keepAliveTimeout = 60_000;
    server.httpServer.headersTimeout = 65_000;
  }
  const endpoint = `http://${host}:${port}`;
  log(`[s3] s3rver ready in ${Date.now() - started} ms: ${endpoint} (data ${directory})`);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const http = server.httpServer;
      // close() waits for open connections; keep-alive sockets from clients are idle ones.
      const closing = server.close();
      http?.closeIdleConnections?.();
      const timer = setTimeout(() => http?.closeAllConnections?.(), 2_000);
      try {
        await closing;
      } finally {
        clearTimeout(timer);
      }
    })();
    return stopping;
  };

  return {
    endpoint,
    host,
    port,
    region: 'us-east-1',
    accessKey: S3RVER_ACCESS_KEY,
    secretKey: S3RVER_SECRET_KEY,
    directory,
    stop,
  };
}

/**
 * Refuses object keys that s3rver would turn into a path outside the bucket's folder (or that no
 * project key has): `.`/`..`/empty segments and backslashes, percent-encoded or not. Installed
 * just before s3rver's router, after its XML encoder, like the compatibility shims.
 */
function rejectUnsafeKeys(server: S3rverInstance, log: Log): void {
  const stack = server.middleware;
  if (!Array.isArray(stack) || stack.length < 2) {
    log('[s3] s3rver internals changed: unsafe-key guard not installed');
    return;
  }
  const guard: KoaMiddleware = async (ctx, next) => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(ctx.path);
    } catch {
      decoded = ctx.path;
    }
    // `/<bucket>/<key>`: the key is everything after the bucket's segment.
    const key = decoded.replace(/^\/[^/]*\/?/, '');
    const segments = key.split('/');
    const unsafe =
      /\\/.test(decoded) ||
      (key !== '' &&
        segments.some(
          (segment, i) => segment === '.' || segment === '..' || (segment === '' && i < segments.length - 1),
        ));
    if (unsafe) {
      ctx.status = 400;
      ctx.body = {
        Error: {
          Code: 'InvalidArgument',
          Message: `Object key ${JSON.stringify(key)} has ".", ".." or empty segments`,
        },
      };
      return;
    }
    await next();
  };
  stack.splice(stack.length - 1, 0, guard);
}

/**
 * Gaps between s3rver 3.7 and what minio@8 sends, patched into s3rver's Koa stack just before
 * its router (after its XML encoder, so plain-object bodies are serialised as usual):
 *
 * 1. ListMultipartUploads (`GET /<bucket>?uploads`) answers NotImplemented, and minio calls it
 *    before every multipart upload (to resume an earlier one), so every upload above the client's
 *    partSize (64 MiB by default) and every stream of unknown length failed. The shim answers
 *    "no uploads in progress"; minio then starts a new multipart upload, which s3rver supports.
 * 2. ListObjectsV2 continuation tokens are DES-encrypted, which OpenSSL 3 (Node >= 17) refuses:
 *    any truncated listing (more than 1000 keys, or a smaller max-keys) failed with HTTP 500.
 *    The shim serves V2 listings through s3rver's V1 code (marker-based) and issues its own
 *    tokens (the base64url of the last key).
 * 3. minio lists with `encoding-type=url` and URL-decodes the keys it gets back, but s3rver
 *    ignores the parameter, so a `+` in a key came back as a space (and `%` could break
 *    decoding). The shim URL-encodes keys and prefixes in listings when asked to.
 */
function installMinioCompat(server: S3rverInstance, log: Log): void {
  const stack = server.middleware;
  if (!Array.isArray(stack) || stack.length < 2) {
    log('[s3] s3rver internals changed: minio compatibility shims not installed (multipart uploads will fail)');
    return;
  }
  const TOKEN_PREFIX = 'pg1.';
  const compat: KoaMiddleware = async (ctx, next) => {
    const bucketMatch = ctx.method === 'GET' ? /^\/([^/]+)\/?$/.exec(ctx.path) : null;
    if (!bucketMatch) return next();
    const bucket = decodeURIComponent(bucketMatch[1]!);
    const query = { ...ctx.query };

    // 1. ListMultipartUploads: always "none in progress" (for an existing bucket).
    if ('uploads' in query && (await ctx.store.getBucket(bucket))) {
      ctx.body = {
        ListMultipartUploadsResult: {
          '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
          Bucket: bucket,
          KeyMarker: '',
          UploadIdMarker: '',
          Prefix: typeof query.prefix === 'string' ? query.prefix : '',
          MaxUploads: 1000,
          IsTruncated: false,
        },
      };
      return;
    }

    // 2. ListObjectsV2 -> V1 on the way in.
    const isListing = !Object.keys(query).some((k) => LIST_INCOMPATIBLE_PARAMS.has(k));
    const v2 = isListing && query['list-type'] === '2';
    const token = typeof query['continuation-token'] === 'string' ? query['continuation-token'] : undefined;
    const startAfter = typeof query['start-after'] === 'string' ? query['start-after'] : undefined;
    const fetchOwner = query['fetch-owner'] === 'true';
    if (v2) {
      let marker = startAfter;
      if (token) {
        marker = token.startsWith(TOKEN_PREFIX)
          ? Buffer.from(token.slice(TOKEN_PREFIX.length), 'base64url').toString('utf8')
          : undefined;
        if (!marker) {
          ctx.status = 400;
          ctx.body = { Error: { Code: 'InvalidArgument', Message: 'The continuation token provided is incorrect' } };
          return;
        }
      }
      for (const k of ['list-type', 'continuation-token', 'start-after', 'fetch-owner']) delete query[k];
      if (marker) query.marker = marker;
      ctx.query = query;
    }

    await next();

    const result = isRecord(ctx.body) && isRecord(ctx.body.ListBucketResult) ? ctx.body.ListBucketResult : undefined;
    if (!result) return;
    const contents = Array.isArray(result.Contents) ? (result.Contents as Array<Record<string, unknown>>) : [];
    const prefixes = Array.isArray(result.CommonPrefixes)
      ? (result.CommonPrefixes as Array<Record<string, unknown>>)
      : [];

    // 2. ... and V1 -> V2 on the way out.
    if (v2) {
      const lastKey = (result.NextMarker as string | undefined) ?? (contents.at(-1)?.Key as string | undefined);
      const { Name, Prefix, MaxKeys, Delimiter, IsTruncated } = result;
      if (!fetchOwner) for (const c of contents) delete c.Owner;
      ctx.body = {
        ListBucketResult: {
          '@': result['@'],
          Name,
          Prefix,
          StartAfter: token ? undefined : startAfter,
          ContinuationToken: token,
          NextContinuationToken:
            IsTruncated && lastKey ? TOKEN_PREFIX + Buffer.from(lastKey, 'utf8').toString('base64url') : undefined,
          KeyCount: contents.length + prefixes.length,
          MaxKeys,
          Delimiter,
          IsTruncated,
          Contents: contents,
          CommonPrefixes: prefixes,
        },
      };
    }

    // 3. encoding-type=url
    if (query['encoding-type'] === 'url') {
      const out = (ctx.body as { ListBucketResult: Record<string, unknown> }).ListBucketResult;
      const enc = (v: unknown) => (typeof v === 'string' ? encodeURIComponent(v) : v);
      for (const field of ['Prefix', 'Delimiter', 'StartAfter', 'Marker', 'NextMarker']) {
        if (out[field] !== undefined) out[field] = enc(out[field]);
      }
      for (const c of contents) c.Key = enc(c.Key);
      for (const p of prefixes) p.Prefix = enc(p.Prefix);
      out.EncodingType = 'url';
    }
  };
  stack.splice(stack.length - 1, 0, compat);
}

/** Query parameters that make `GET /<bucket>` something other than a listing (acl, cors, ...). */
const LIST_INCOMPATIBLE_PARAMS = new Set([
  'acl',
  'analytics',
  'cors',
  'encryption',
  'inventory',
  'lifecycle',
  'location',
  'logging',
  'metrics',
  'notification',
  'object-lock',
  'policy',
  'policyStatus',
  'publicAccessBlock',
  'replication',
  'requestPayment',
  'tagging',
  'uploads',
  'versioning',
  'versions',
  'website',
]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
