// ESLint with typescript-eslint's type-aware rules. Workflow code runs in Temporal's deterministic
// sandbox, so it may not import Node built-ins or modules that do I/O at import time.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

export default tseslint.config(
  { ignores: ['node_modules/', '.pneumogan/', 'runs/', 'dist/', '.pack/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test() and describe() return promises the runner itself awaits.
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: builtinModules
            .flatMap((name) => [name, `node:${name}`])
            .map((name) => ({
              name,
              message: 'Workflow code is deterministic: no Node built-ins (use activities for I/O).',
            })),
          patterns: [
            {
              group: [
                '../lib/*',
                '../lib/**',
                '!../lib/errors.js',
                '!../lib/run-names.js',
                '!../lib/task-queues.js',
                '!../lib/search-attributes.js',
              ],
              allowTypeImports: true,
              message:
                'Workflows may import lib/ only as types (or the side-effect-free errors/run-names/task-queues/search-attributes modules).',
            },
            {
              group: ['../activities/*'],
              allowTypeImports: true,
              message: 'Workflows call activities through proxyActivities; import their types only.',
            },
          ],
        },
      ],
    },
  },
  {
    // Layering: lib/ is domain code the other layers use, never the other way round; benchmarks
    // measure the product, so they share nothing with the tests.
    files: ['lib/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/activities/*', '**/workflows/*', '**/workers/*', '**/cli/*', '**/test/*', '**/bench/*'],
              message: 'lib/ is plain domain code: it may import only lib/ and pipelines/ (move shared types there).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['bench/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/test/*'], message: 'bench/ may not import test code: move the helper to lib/.' }] },
      ],
    },
  },
  // Plain JavaScript outside the TypeScript project: worker-thread entry points (a thread does not
  // inherit the tsx loader), the bin launcher and this file.
  { files: ['eslint.config.js', '**/*.mjs', 'bin/*.js'], ...tseslint.configs.disableTypeChecked },
);
