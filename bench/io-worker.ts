/**
 * The backend-independent measurements of `npm run bench`, each in its own process:
 *
 *   node --import tsx bench/io-worker.ts ingest '{"dir": ..., "sizes": [64, 224]}'
 *   node --import tsx bench/io-worker.ts temporal '{"roundTrips": 50}'
 *
 * `ingest`: sharp decode + grayscale + resize + PNG encode (lib/images.ts, one image at a time),
 * then `ingestDataset` end to end from the folder into a fresh local S3 server (s3rver).
 * `temporal`: a real local Temporal dev server, a worker in this process, and a workflow that
 * calls a no-op activity N times in sequence.
 * Prints `@@bench {json}` lines on stdout like the model workers.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { ingestDataset } from '../lib/data/ingest.js';
import { decodeGray, encodeGrayPng } from '../lib/images.js';
import { findOrProvisionTemporalCli } from '../lib/infra/temporal-cli.js';
import { startTemporalDevServer } from '../lib/infra/temporal-server.js';
import { startScratchS3 } from '../lib/infra/scratch-s3.js';
import { imageFiles, RESULT_PREFIX, type CaseResult } from './cases.js';

const here = path.dirname(fileURLToPath(import.meta.url));

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(event)}\n`);
}

async function ingest(spec: { dir: string; sizes: number[] }): Promise<void> {
  const files = await imageFiles(spec.dir);
  const blobs = await Promise.all(files.map((f) => readFile(f)));
  for (const size of spec.sizes) {
    const id = `ingest-decode/${size}`;
    emit({ type: 'start', id });
    const one = async (bytes: Buffer, i: number) => encodeGrayPng(await decodeGray(bytes, size, files[i]!));
    for (let i = 0; i < Math.min(8, blobs.length); i++) await one(blobs[i]!, i); // warm-up: libvips start-up
    const t0 = performance.now();
    for (let i = 0; i < blobs.length; i++) await one(blobs[i]!, i);
    const seconds = (performance.now() - t0) / 1000;
    const result: CaseResult = {
      id,
      status: 'ok',
      imagesPerSecond: blobs.length / seconds,
      secondsPerStep: seconds / blobs.length,
      steps: blobs.length,
      batch: 1,
      note: 'sharp, one image at a time',
    };
    emit({ type: 'result', ...result });
  }
  for (const size of spec.sizes) {
    const id = `ingest-e2e/${size}`;
    emit({ type: 'start', id });
    const s3 = await startScratchS3(`pneumogan-bench-${size}`);
    try {
      await s3.store.ensureBucket();
      const t0 = performance.now();
      const manifest = await ingestDataset({
        source: { kind: 'folder', path: spec.dir },
        storeSize: size,
        store: s3.store,
      });
      const seconds = (performance.now() - t0) / 1000;
      const n = manifest.images.length + manifest.duplicates.length;
      const result: CaseResult = {
        id,
        status: 'ok',
        imagesPerSecond: n / seconds,
        secondsPerStep: seconds / n,
        steps: n,
        batch: 1,
        note: `${manifest.images.length} stored, ${manifest.duplicates.length} duplicates; s3rver in-process`,
      };
      emit({ type: 'result', ...result });
    } finally {
      await s3.stop();
    }
  }
}

async function temporal(spec: { roundTrips: number }): Promise<void> {
  emit({ type: 'start', id: 'temporal' });
  // The SDK logs every worker state change at INFO; keep warnings and errors.
  Runtime.install({
    logger: new DefaultLogger('WARN'),
    telemetryOptions: { logging: { filter: { core: 'WARN', other: 'WARN' }, forward: {} } },
  });
  const cliPath = await findOrProvisionTemporalCli({ provision: false });
  // PNEUMOGAN_BENCH_TEMPORAL_ARGS: extra `temporal server start-dev` flags as a JSON list, to try
  // settings, e.g. '["--dynamic-config-value", "system.enableActivityEagerExecution=true"]'.
  const extraArgs = JSON.parse(process.env.PNEUMOGAN_BENCH_TEMPORAL_ARGS ?? '[]') as string[];
  const server = await startTemporalDevServer({ cliPath, headless: true, extraArgs });
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  let connection: Connection | undefined;
  try {
    const workflowBundle = await bundleWorkflowCode({
      workflowsPath: path.join(here, 'temporal-workflows.ts'),
      logger: {
        trace() {},
        debug() {},
        info() {},
        warn() {},
        error(m: string) {
          process.stderr.write(`${m}\n`);
        },
        log() {},
      },
    });
    const taskQueue = 'pneumogan-bench';
    const nativeConnection = await NativeConnection.connect({ address: server.address });
    worker = await Worker.create({
      connection: nativeConnection,
      taskQueue,
      workflowBundle,
      activities: { noop: (i: number) => Promise.resolve(i) },
    });
    running = worker.run().finally(() => nativeConnection.close());
    connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection });
    let serial = 0;
    const timeWorkflow = async (n: number): Promise<number> => {
      const t0 = performance.now();
      await client.workflow.execute('activityRoundTrips', {
        taskQueue,
        workflowId: `bench-${process.pid}-${serial++}`,
        args: [n],
      });
      return (performance.now() - t0) / 1000;
    };
    await timeWorkflow(3); // warm-up: first workflow task, sticky cache, connections
    const empty: number[] = [];
    for (let i = 0; i < 3; i++) empty.push(await timeWorkflow(0));
    empty.sort((a, b) => a - b);
    const base = empty[1]!;
    const full = await timeWorkflow(spec.roundTrips);
    const perTrip = (full - base) / spec.roundTrips;
    emit({
      type: 'result',
      id: 'temporal-roundtrip',
      status: 'ok',
      secondsPerStep: perTrip,
      imagesPerSecond: 1 / perTrip,
      steps: spec.roundTrips,
      batch: 1,
      note: `(${(full * 1000).toFixed(0)} ms for ${spec.roundTrips} - ${(base * 1000).toFixed(0)} ms for 0) / ${spec.roundTrips}`,
    } satisfies CaseResult & { type: string });
    emit({
      type: 'result',
      id: 'temporal-workflow',
      status: 'ok',
      secondsPerStep: base,
      imagesPerSecond: 1 / base,
      steps: 3,
      batch: 1,
      note: 'start + complete of a workflow with no activity (median of 3)',
    } satisfies CaseResult & { type: string });
  } finally {
    await connection?.close();
    worker?.shutdown();
    await running?.catch(() => {});
    await server.stop();
  }
}

const [what, json] = process.argv.slice(2);
try {
  // The parent process (bench/run.ts) writes the spec for the section it names.
  const spec: unknown = JSON.parse(json ?? '{}');
  if (what === 'ingest') await ingest(spec as Parameters<typeof ingest>[0]);
  else if (what === 'temporal') await temporal(spec as Parameters<typeof temporal>[0]);
  else throw new Error(`unknown section ${what}`);
  emit({ type: 'done' });
} catch (err) {
  emit({ type: 'fatal', message: (err as Error).message.split('\n')[0] });
  process.exitCode = 1;
}
// s3rver and gRPC handles can outlive their stop(); the results are out.
setTimeout(() => process.exit(), 500).unref();
