/**
 * The code version that memo keys and lineage records carry: a hash of the sources that run in
 * workers (every .ts file under activities/, lib/, workflows/, pipelines/ and workers/, by path
 * and content) and of package-lock.json (the dependencies). It changes with any edit, committed
 * or not, and needs no git checkout, so a memoized step is never reused by different code.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CODE_DIRS = ['activities', 'lib', 'workflows', 'pipelines', 'workers'] as const;
const LOCK_FILE = 'package-lock.json';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cached = new Map<string, string>();

/** `src-<16 hex>` for the tree at `root` (computed once per process and root). */
export function codeVersion(root = projectRoot): string {
  let version = cached.get(root);
  if (!version) {
    version = `src-${hashSources(root).slice(0, 16)}`;
    cached.set(root, version);
  }
  return version;
}

function hashSources(root: string): string {
  const files = CODE_DIRS.flatMap((dir) => tsFilesUnder(root, dir)).sort();
  const hash = createHash('sha256');
  for (const file of [...files, LOCK_FILE]) {
    let content: Buffer;
    try {
      content = readFileSync(path.join(root, file));
    } catch (err) {
      if (file === LOCK_FILE && (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    // Length-prefixed path and content, so no two trees hash alike by shifting bytes between files.
    hash.update(`${file.length}:${file}\0${content.length}:`).update(content);
  }
  return hash.digest('hex');
}

/** Relative paths (with /) of the .ts files under `root/dir`, node_modules excluded. */
function tsFilesUnder(root: string, dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .filter((p) => !p.split('/').includes('node_modules'));
}
