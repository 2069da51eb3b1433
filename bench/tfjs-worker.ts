/**
 * One backend's model measurements, in a process of its own (a process can hold one tfjs
 * backend cleanly). Started by `bench/run.ts` as
 *
 *   PNEUMOGAN_BACKEND=cpu|tensorflow|webgpu|tensorflow-gpu node --import tsx bench/tfjs-worker.ts '<cases JSON>'
 *
 * It runs the cases of `tfjs-cases.ts` and prints one `@@bench {json}` line per event on stdout;
 * everything else goes to stderr.
 */
import * as tf from '@tensorflow/tfjs';
import { initComputeBackend } from '../lib/compute/backend.js';
import { RESULT_PREFIX, type ModelCase } from './cases.js';
import { runModelCase } from './tfjs-cases.js';

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(event)}\n`);
}

const cases = JSON.parse(process.argv[2] ?? '[]') as ModelCase[];
try {
  const backend = await initComputeBackend((line) => process.stderr.write(`${line}\n`));
  emit({
    type: 'hello',
    backend: backend.name,
    packageName: backend.packageName,
    device: backend.device,
    tfBackend: tf.getBackend(),
  });
  for (const c of cases) {
    emit({ type: 'start', id: c.id });
    const result = await runModelCase(c, { onWarm: () => emit({ type: 'warm', id: c.id }) });
    emit({ type: 'result', ...result });
  }
  emit({ type: 'done' });
} catch (err) {
  emit({ type: 'fatal', message: (err as Error).message.split('\n')[0] });
  process.exitCode = 1;
}
