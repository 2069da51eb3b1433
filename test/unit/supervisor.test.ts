import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { superviseProcess, type ChildWorker } from '../../workers/supervisor.js';

/** A child node process: `ready` says so over IPC then waits; `crash` exits with code 3 at once. */
function child(kind: 'ready' | 'crash'): ChildWorker {
  const script =
    kind === 'ready' ? "process.send({ type: 'ready' }); setInterval(() => {}, 1000);" : 'process.exit(3);';
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  let stopping = false;
  return {
    child: proc,
    ready: new Promise((resolve) => proc.on('message', () => resolve())),
    exited: new Promise((resolve, reject) =>
      proc.once('exit', (code, signal) =>
        stopping || code === 0 ? resolve() : reject(new Error(`exited with ${signal ?? `code ${code}`}`)),
      ),
    ),
    stop() {
      stopping = true;
      proc.kill('SIGTERM');
    },
  };
}

test('a ready worker that is killed is restarted, every time, and stop() ends it', async () => {
  const lines: string[] = [];
  const pids: Array<number | undefined> = [];
  const supervised = superviseProcess(
    () => child('ready'),
    'worker',
    (l) => lines.push(l),
    {
      onProcess: (pid) => pids.push(pid),
    },
  );
  for (let kill = 1; kill <= 3; kill++) {
    const current = supervised.current!;
    await current.ready;
    process.kill(current.child.pid!, 'SIGKILL');
    while (supervised.restarts < kill || supervised.current === current || !supervised.current) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await supervised.current!.ready;
  await supervised.stop();
  await supervised.done;
  assert.equal(supervised.restarts, 3);
  assert.equal(lines.length, 3);
  assert.match(lines[0]!, /worker \(pid \d+\) exited with SIGKILL after .* s; restarting it in 1 s \(restart 1\)/);
  assert.equal(pids.filter((p) => p !== undefined).length, 4, 'four processes in all');
  assert.equal(pids.at(-1), undefined, 'the last process is reported gone');
});

test('a worker that keeps dying before it is ready is given up after the limit, with backoff', async () => {
  const lines: string[] = [];
  const started = Date.now();
  const supervised = superviseProcess(
    () => child('crash'),
    'broken',
    (l) => lines.push(l),
    { startFailureLimit: 3 },
  );
  await assert.rejects(
    supervised.done,
    /broken died 3 times in a row before it was ready; giving up \(last: exited with code 3\)/,
  );
  assert.equal(supervised.restarts, 2);
  assert.match(lines[0]!, /before it was ready; restarting it in 2 s \(restart 1, start failure 1 of 3\)/);
  assert.match(lines[1]!, /restarting it in 4 s \(restart 2, start failure 2 of 3\)/);
  assert.ok(Date.now() - started >= 6000, 'backed off 2 s then 4 s');
});
