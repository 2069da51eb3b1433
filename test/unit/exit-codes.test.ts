import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkflowNotFoundError } from '@temporalio/client';
import { EXIT, exitCodeFor, NotFoundError } from '../../cli/exit-codes.js';
import { InputError } from '../../lib/errors.js';

test('each kind of failure maps to its documented exit code', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9000'), { code: 'ECONNREFUSED' });
  const unavailable = Object.assign(new Error('14 UNAVAILABLE: Connection dropped'), { code: 14 });
  assert.equal(exitCodeFor(new InputError('no folder at /x')), EXIT.badInput);
  assert.equal(exitCodeFor(new NotFoundError('no report')), EXIT.notFound);
  assert.equal(exitCodeFor(new WorkflowNotFoundError('not found', 'pneumogan-x', undefined)), EXIT.notFound);
  assert.equal(exitCodeFor(refused), EXIT.infrastructureDown);
  assert.equal(exitCodeFor(new Error('listing failed', { cause: unavailable })), EXIT.infrastructureDown);
  assert.equal(exitCodeFor(new Error('Failed to connect before the deadline')), EXIT.infrastructureDown);
  assert.equal(exitCodeFor(new TypeError('a bug')), EXIT.error);
});
