/**
 * `npm run bench -- --artifacts`: storage, lineage and verification at paper scale, against the
 * embedded S3 server (s3rver, in this process, as in `demo`), through the real activities run in
 * an activity context (bench/activity-harness.ts, MockActivityEnvironment):
 *
 * 1. `ingestDataset` of the 5,216-image kermany-train folder (or PNEUMOGAN_BENCH_TRAIN=/dir), paper preset (224 px);
 * 2. `synthesize` of 2 x 2,808 64-px images (the paper's 9x per class of a 624-image subset) from
 *    an untrained paper-size DCGAN (latent 100, width 64: generation costs what a trained one does);
 * 3. more recorded images in the same run until it holds ~20,000 artifacts, then `verify`;
 * 4. `lineage` of one generated image (its chain and the real source images of its generator).
 *
 * Prints each rate against its target (issue 8) and the S3 requests per artifact, counted on
 * Node's `http.client.request.start` diagnostics channel.
 */
import diagnostics from 'node:diagnostics_channel';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createCpuActivities } from '../activities/cpu.js';
import { createGpuActivities } from '../activities/gpu.js';
import { ArtifactRecorder, type ActivityDeps } from '../activities/shared.js';
import { lineageReport } from '../cli/inspect.js';
import { initComputeBackend } from '../lib/compute/backend.js';
import { DatasetManifestSchema, ImageSetSchema, type ImageSet } from '../lib/data/manifest.js';
import { localS3Settings, startLocalS3Server } from '../lib/infra/s3-server.js';
import { encodeSafetensors } from '../lib/training/checkpoint.js';
import { generateImages, loadGenerator, trainGan } from '../lib/training/gan.js';
import { verifyProblemCount, verifyRun } from '../lib/verify.js';
import { ArtifactStore } from '../lib/storage.js';
import { resolvePreset } from '../pipelines/presets.js';
import { runInActivity } from './activity-harness.js';

const TRAIN =
  process.env.PNEUMOGAN_BENCH_TRAIN ?? path.resolve(import.meta.dirname, '..', '..', 'shared', 'data', 'kermany-train');
const RUN = 'bench-artifacts';
const TRIAL = `pneumogan-${RUN}/trial-1`;
const PER_CLASS = 2808;
const VERIFY_TARGET_ARTIFACTS = 20_000;

export interface ArtifactBenchRow {
  what: string;
  /** 1-minute load average when the row was measured (2 cores: above 2 means others were running). */
  load?: number;
  value: number;
  unit: string;
  target: string;
  ok: boolean;
  requestsPerArtifact?: number;
}

export async function runArtifactBench(progress: (line: string) => void): Promise<ArtifactBenchRow[]> {
  if (!existsSync(TRAIN)) {
    throw new Error(
      `${TRAIN} is absent: the artifact bench ingests the 5,216-image kermany-train folder (set PNEUMOGAN_BENCH_TRAIN=/dir)`,
    );
  }
  let requests = 0;
  const count = () => (requests += 1);
  diagnostics.subscribe('http.client.request.start', count);
  const directory = await mkdtemp(path.join(os.tmpdir(), 'pneumogan-bench-s3-'));
  const server = await startLocalS3Server({ directory });
  const rows: ArtifactBenchRow[] = [];
  try {
    const store = new ArtifactStore(localS3Settings(server));
    await store.ensureBucket();
    const backend = await initComputeBackend(() => {});
    const deps: ActivityDeps = { store, computeBackend: backend.name, codeVersion: 'bench', workerIdentity: 'bench' };
    const cpu = createCpuActivities(deps);
    const gpu = createGpuActivities(deps);
    const config = resolvePreset('paper', { kind: 'folder', path: TRAIN });

    progress(`artifacts: ingesting ${TRAIN} (paper preset, ${config.data.storeSize} px)`);
    let before = requests;
    let started = performance.now();
    const ingested = await runInActivity({ workflowId: `pneumogan-${RUN}`, activityType: 'ingestDataset' }, () =>
      cpu.ingestDataset({ config }),
    );
    const ingestSeconds = (performance.now() - started) / 1000;
    const images = ingested.result.counts.NORMAL + ingested.result.counts.PNEUMONIA;
    rows.push({
      load: os.loadavg()[0],
      what: `ingestDataset, ${images} images + ${ingested.result.duplicates} duplicates`,
      value: images / ingestSeconds,
      unit: 'images/s',
      target: '>= 200',
      ok: images / ingestSeconds >= 200,
      requestsPerArtifact: (requests - before) / images,
    });

    // The trial's subset and an (untrained) paper-size GAN, recorded as the workflow would.
    const manifest = await store.getJson(ingested.result.manifest, DatasetManifestSchema);
    const subset: ImageSet = {
      kind: 'image-set',
      purpose: 'bench subset',
      images: manifest.images
        .slice(0, 624)
        .map(({ image, label, origin, patientId }) => ({ image, label, origin, patientId })),
    };
    const subsetRef = (
      await runInActivity({ workflowId: TRIAL, activityType: 'sampleSubset' }, () =>
        new ArtifactRecorder(deps).putJson(subset, 'subset', [{ role: 'pool', ref: ingested.result.manifest }], {}),
      )
    ).result;
    const { state, generator } = await trainGan({ images: [], gan: { ...config.gan, steps: 0 }, seed: 1 });
    generator.dispose();
    const checkpoint = (
      await runInActivity({ workflowId: TRIAL, activityType: 'trainGan', activityId: 'gan' }, () =>
        new ArtifactRecorder(deps).put(
          encodeSafetensors(state),
          'safetensors',
          'gan-checkpoint',
          [{ role: 'subset', ref: subsetRef }],
          { label: 'PNEUMONIA' },
        ),
      )
    ).result;

    // Generation alone (same generator, same seeds' count), to tell model time from storage time.
    progress(`artifacts: generating 2 x ${PER_CLASS} ${config.gan.imageSize}-px images without storing them`);
    started = performance.now();
    const alone = loadGenerator(state);
    for (let start = 0; start < 2 * PER_CLASS; start += 64) {
      await generateImages(
        alone,
        config.gan.latentDim,
        Array.from({ length: Math.min(64, 2 * PER_CLASS - start) }, (_, i) => start + i),
      );
    }
    alone.dispose();
    const generateSeconds = (performance.now() - started) / 1000;

    progress(`artifacts: synthesizing 2 x ${PER_CLASS} ${config.gan.imageSize}-px images (${backend.name})`);
    before = requests;
    started = performance.now();
    const synthetic = [];
    for (const label of ['NORMAL', 'PNEUMONIA'] as const) {
      const { result } = await runInActivity(
        { workflowId: TRIAL, activityType: 'synthesize', activityId: `synthesize-${label}` },
        () => gpu.synthesize({ checkpoint, label, count: PER_CLASS, seed: 1, reuse: false }),
      );
      synthetic.push(result);
    }
    const synthSeconds = (performance.now() - started) / 1000;
    rows.push({
      load: os.loadavg()[0],
      what: `synthesize 2 x ${PER_CLASS} images (generate, PNG, store, record)`,
      value: synthSeconds,
      unit: 's',
      target: '<= 60',
      ok: synthSeconds <= 60,
      requestsPerArtifact: (requests - before) / (2 * PER_CLASS),
    });
    rows.push({
      load: os.loadavg()[0],
      what: '  of which generation alone (generator forward passes, no PNG/S3)',
      value: generateSeconds,
      unit: 's',
      target: '-',
      ok: true,
    });

    // Fill the run up to a paper-size trial's artifact count with more recorded images.
    const recorded = images + 2 * PER_CLASS + 6;
    const extra = Math.max(0, VERIFY_TARGET_ARTIFACTS - recorded);
    progress(`artifacts: recording ${extra} more images so the run holds ~${VERIFY_TARGET_ARTIFACTS} artifacts`);
    await runInActivity({ workflowId: TRIAL, activityType: 'fill', activityId: 'fill' }, async () => {
      const recorder = new ArtifactRecorder(deps);
      const pending: Array<Promise<unknown>> = [];
      for (let i = 0; i < extra; i++) {
        const bytes = Buffer.alloc(2048, i % 251);
        bytes.writeUInt32BE(i, 0);
        pending.push(
          recorder.put(bytes, 'png', 'generated-image', [{ role: 'generator', ref: checkpoint }], {}, undefined, {
            flush: false,
          }),
        );
        if (pending.length >= 16) await Promise.all(pending.splice(0));
      }
      await Promise.all(pending);
      await recorder.flush();
    });

    progress('artifacts: verify');
    started = performance.now();
    const verified = await verifyRun(store, RUN);
    const verifySeconds = (performance.now() - started) / 1000;
    rows.push({
      load: os.loadavg()[0],
      what: `verify ${verified.checked} artifacts, ${verified.records} records (${verifyProblemCount(verified)} problems)`,
      value: verifySeconds,
      unit: 's',
      target: '<= 120',
      ok: verifySeconds <= 120 && verifyProblemCount(verified) === 0,
    });

    progress('artifacts: lineage of one generated image');
    // NORMAL: the bench subset (the manifest's first 624 images) is all NORMAL, so its generator has 624 real sources.
    const set = await store.getJson(synthetic[0]!.images, ImageSetSchema);
    const target = set.images[1234]!.image.sha256;
    started = performance.now();
    const lines = await lineageReport(store, target);
    const lineageSeconds = (performance.now() - started) / 1000;
    rows.push({
      load: os.loadavg()[0],
      what: `lineage of one generated image (${lines.length} lines)`,
      value: lineageSeconds,
      unit: 's',
      target: '<= 2',
      ok: lineageSeconds <= 2 && lines.some((l) => l.includes('latent seed')),
    });
    return rows;
  } finally {
    diagnostics.unsubscribe('http.client.request.start', count);
    await server.stop();
    await rm(directory, { recursive: true, force: true });
  }
}

export function renderArtifactRows(rows: ArtifactBenchRow[]): string[] {
  return [
    'Artifacts at paper scale (embedded S3 server, this process)',
    ...rows.map(
      (r) =>
        `  ${r.what.padEnd(72)} load ${(r.load ?? 0).toFixed(1).padStart(4)} ${r.value.toFixed(r.unit === 's' ? 1 : 0).padStart(8)} ${r.unit.padEnd(9)} target ${r.target.padEnd(7)} ${r.ok ? 'ok  ' : 'MISS'}${r.requestsPerArtifact !== undefined ? `  ${r.requestsPerArtifact.toFixed(2)} S3 requests/artifact` : ''}`,
    ),
  ];
}
