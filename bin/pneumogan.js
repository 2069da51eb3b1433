#!/usr/bin/env node
// The `pneumogan` command of the package (`npx pneumogan ...`, or on PATH after `npm link` or a
// global install): runs the TypeScript CLI through tsx, a dependency, from wherever it is called.
import { register } from 'tsx/esm/api';

register();
await import('../cli/pneumogan.ts');
