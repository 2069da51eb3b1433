import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { codeVersion } from '../../workers/code-version.js';

/** A small project tree without git; each call gets a fresh directory (codeVersion caches per root). */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'pneumogan-code-version-'));
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), content);
  }
  return root;
}

const base = {
  'activities/gpu.ts': 'export const a = 1;\n',
  'lib/training/gan.ts': 'export const steps = 10;\n',
  'workflows/index.ts': 'export {};\n',
  'package-lock.json': '{"lockfileVersion":3}\n',
  'README.md': 'docs\n',
};

test('the code version follows every source edit, addition and rename, and the lock file, without git', (t) => {
  const roots: string[] = [];
  t.after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));
  const version = (files: Record<string, string>) => {
    const root = tree(files);
    roots.push(root);
    return codeVersion(root);
  };
  const original = version(base);
  assert.match(original, /^src-[0-9a-f]{16}$/);
  assert.equal(version({ ...base }), original, 'the same sources give the same version');
  assert.equal(version({ ...base, 'README.md': 'other docs\n' }), original, 'non-source files do not count');
  const variants = {
    'an uncommitted edit': { ...base, 'lib/training/gan.ts': 'export const steps = 11;\n' },
    'a new source file': { ...base, 'workers/extra.ts': 'export {};\n' },
    'a dependency change': { ...base, 'package-lock.json': '{"lockfileVersion":3,"x":1}\n' },
    'a renamed file': {
      ...Object.fromEntries(Object.entries(base).filter(([f]) => f !== 'workflows/index.ts')),
      'workflows/main.ts': 'export {};\n',
    },
  };
  const seen = new Set([original]);
  for (const [what, files] of Object.entries(variants)) {
    const changed = version(files);
    assert.ok(!seen.has(changed), `${what} changes the code version`);
    seen.add(changed);
  }
});

test("this checkout's code version covers its own worker sources", (t) => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'pneumogan-code-version-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const projectRoot = path.resolve(import.meta.dirname, '../..');
  for (const dir of ['activities', 'lib', 'workflows', 'pipelines', 'workers'])
    cpSync(path.join(projectRoot, dir), path.join(root, dir), { recursive: true });
  cpSync(path.join(projectRoot, 'package-lock.json'), path.join(root, 'package-lock.json'));
  assert.equal(codeVersion(root), codeVersion(projectRoot), 'a copy without .git has the same version');
  writeFileSync(path.join(root, 'activities', 'gpu.ts'), '// edited\n', { flag: 'a' });
  const edited = mkdtempSync(path.join(os.tmpdir(), 'pneumogan-code-version-'));
  t.after(() => rmSync(edited, { recursive: true, force: true }));
  cpSync(root, edited, { recursive: true });
  assert.notEqual(codeVersion(edited), codeVersion(projectRoot), 'an edited activity changes it');
});
