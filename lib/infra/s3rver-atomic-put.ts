/**
 * Atomic object writes for s3rver. Its store writes a PUT's body straight into the object's file
 * and answers once the body has been read, not once the file is written. Two PUTs of one key that
 * overlap (a killed worker's upload still draining while its retry writes the same run-index
 * shard) then interleave in one file: the chaos test found a shard that was valid JSON followed by
 * the tail of a longer earlier version, so `verify` could not read it and 16 lineage records
 * lost their index. An upload cut off mid-body could likewise leave a truncated object.
 *
 * S3 and MinIO replace an object atomically: a reader sees the old or the new version, never a
 * mix. Here each PUT streams into a file of its own beside the object, waits until it is on disk,
 * and renames it over the object (atomic on one file system); a failed or aborted upload deletes
 * its file and leaves the object as it was. The temporary name does not end in s3rver's object
 * suffix, so listings never show it.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** What s3rver's FilesystemStore (3.7) offers that this uses. */
export interface S3rverStore {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5: string): Promise<void>;
  putObject(object: S3rverObject): Promise<{ size: number; md5: string }>;
}
interface S3rverObject {
  bucket: string;
  key: string;
  content: Buffer | Readable;
  metadata: Record<string, string>;
}

/** Replaces `store.putObject` with a write-then-rename version. */
export function installAtomicPuts(store: S3rverStore): void {
  store.putObject = async (object) => {
    const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
    await fs.mkdir(path.dirname(objectPath), { recursive: true });
    const partial = `${objectPath}.partial-${randomUUID()}`;
    const md5 = createHash('md5');
    let size = 0;
    const measure = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        md5.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    const body = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
    try {
      await pipeline(body, measure, createWriteStream(partial));
      await fs.rename(partial, objectPath);
    } catch (err) {
      await fs.rm(partial, { force: true });
      throw err;
    }
    const digest = md5.digest('hex');
    await store.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}
