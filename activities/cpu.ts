/**
 * Activities that need no accelerator: ingestion, sampling, splitting and the report. They run
 * on the orchestration task queue beside the workflows.
 */
import { Context } from '@temporalio/activity';
import pLimit from 'p-limit';
import { ingestDataset } from '../lib/data/ingest.js';
import {
  countByClass,
  DatasetManifestSchema,
  ImageSetSchema,
  nearDuplicateCounts,
  patientsByClass,
  type ImageSet,
  type Split,
} from '../lib/data/manifest.js';
import { recordLineage } from '../lib/lineage.js';
import { partitionHeldout } from '../lib/protocol/heldout.js';
import { stratifiedSplit, stratifiedSubset } from '../lib/protocol/sampling.js';
import { readWeightsSource } from '../lib/models/weights-source.js';
import { writeReport } from '../lib/report/write.js';
import type { ArtifactRef } from '../lib/storage.js';
import {
  AggregateInputSchema,
  ImportWeightsInputSchema,
  IngestInputSchema,
  PartitionInputSchema,
  SampleSubsetInputSchema,
  SplitPoolInputSchema,
  type AggregateInput,
  type AggregateOutput,
  type ImportWeightsInput,
  type IngestInput,
  type IngestOutput,
  type SampleSubsetInput,
  type SampleSubsetOutput,
  type PartitionInput,
  type PartitionOutput,
  type SplitPoolInput,
  type SplitPoolOutput,
} from './types.js';
import { ArtifactRecorder, producer, ProgressReporter, runActivity, type ActivityDeps } from './runtime.js';

export function createCpuActivities(deps: ActivityDeps) {
  const { store } = deps;

  /** Stores a JSON artifact and its lineage record. */
  const putRecordedJson = (...args: Parameters<ArtifactRecorder['putJson']>) =>
    new ArtifactRecorder(deps).putJson(...args);

  return {
    async ingestDataset(input: IngestInput): Promise<IngestOutput> {
      return runActivity(IngestInputSchema, input, async ({ config }) => {
        const progress = new ProgressReporter('ingest', 0);
        const manifest = await ingestDataset({
          source: config.data.source,
          storeSize: config.data.storeSize,
          store,
          onProgress: (done, total) => progress.progress(done, total),
        });
        const who = producer(deps);
        const limit = pLimit(8);
        await Promise.all(
          manifest.images.map((image) =>
            limit(() =>
              recordLineage(store, {
                artifact: image.image,
                kind: 'ingested-image',
                inputs: [],
                params: {
                  source: `${manifest.source}/${image.source}`,
                  sourceSha256: image.sourceSha256,
                  label: image.label,
                  storeSize: manifest.storeSize,
                },
                producer: who,
                recordedAt: new Date().toISOString(),
              }),
            ),
          ),
        );
        const ref = await putRecordedJson(
          manifest,
          'dataset-manifest',
          manifest.images.map((i) => ({ role: 'image', ref: i.image })),
          { source: manifest.source, storeSize: manifest.storeSize },
        );
        return {
          manifest: ref,
          source: manifest.source,
          counts: manifest.counts,
          patients: manifest.patients,
          duplicates: manifest.duplicates.length,
          nearDuplicates: nearDuplicateCounts(manifest),
          skipped: manifest.skipped.length,
        };
      });
    },

    async partitionDataset(input: PartitionInput): Promise<PartitionOutput> {
      return runActivity(PartitionInputSchema, input, async ({ manifest, protocol }) => {
        const dataset = await store.getJson(manifest, DatasetManifestSchema);
        const real = dataset.images.map(({ image, label, origin, patientId }) => ({ image, label, origin, patientId }));
        if (!protocol.evaluations.includes('heldout')) {
          const pool = await putRecordedJson(
            { kind: 'image-set', purpose: 'every real image', images: real } satisfies ImageSet,
            'image-set',
            [{ role: 'dataset', ref: manifest }],
            {},
          );
          return { pool, poolCounts: countByClass(real) };
        }
        const {
          heldout,
          pool: rest,
          source,
        } = partitionHeldout(
          real,
          dataset.images.map((i) => i.split),
          protocol,
        );
        const inputs = [{ role: 'dataset', ref: manifest }];
        const heldoutRef = await putRecordedJson(
          { kind: 'image-set', purpose: `held-out real images: ${source}`, images: heldout } satisfies ImageSet,
          'image-set',
          inputs,
          { source },
        );
        const pool = await putRecordedJson(
          { kind: 'image-set', purpose: 'real images outside the held-out set', images: rest } satisfies ImageSet,
          'image-set',
          inputs,
          { excludes: heldoutRef.sha256 },
        );
        return {
          pool,
          poolCounts: countByClass(rest),
          heldout: { images: heldoutRef, counts: countByClass(heldout), patients: patientsByClass(heldout), source },
        };
      });
    },

    /** Copies pretrained weights into the store, so trials use (and lineage names) their content hash. */
    async importWeights(input: ImportWeightsInput): Promise<ArtifactRef> {
      return runActivity(ImportWeightsInputSchema, input, async ({ backbone, source }) =>
        new ArtifactRecorder(deps).put(
          await readWeightsSource(store, source),
          'safetensors',
          'pretrained-weights',
          [],
          { backbone, source },
        ),
      );
    },

    async sampleSubset(input: SampleSubsetInput): Promise<SampleSubsetOutput> {
      return runActivity(SampleSubsetInputSchema, input, async ({ pool, fraction, seed, trial }) => {
        const { images: available } = await store.getJson(pool, ImageSetSchema);
        const images = stratifiedSubset(available, fraction, seed);
        const subset: ImageSet = {
          kind: 'image-set',
          purpose: `trial ${trial}: ${fraction} of the real images, seed ${seed}`,
          images,
        };
        const ref = await putRecordedJson(subset, 'subset', [{ role: 'pool', ref: pool }], { fraction, seed, trial });
        return { subset: ref, counts: countByClass(images) };
      });
    },

    async splitPool(input: SplitPoolInput): Promise<SplitPoolOutput> {
      return runActivity(SplitPoolInputSchema, input, async ({ subset, synthetic, trainFraction, seed }) => {
        const sets = await Promise.all([subset, ...synthetic].map((ref) => store.getJson(ref, ImageSetSchema)));
        const pool = sets.flatMap((s) => s.images);
        const { train, test } = stratifiedSplit(pool, trainFraction, seed);
        const split: Split = { kind: 'split', seed, trainFraction, train, test };
        const ref = await putRecordedJson(
          split,
          'split',
          [{ role: 'real-subset', ref: subset }, ...synthetic.map((s) => ({ role: 'synthetic', ref: s }))],
          { trainFraction, seed },
        );
        return {
          split: ref,
          train: { images: countByClass(train), patients: patientsByClass(train) },
          test: { images: countByClass(test), patients: patientsByClass(test) },
        };
      });
    },

    async aggregateReport(input: AggregateInput): Promise<AggregateOutput> {
      return runActivity(AggregateInputSchema, input, async (aggregate) => {
        Context.current().heartbeat({ stage: 'report', done: 0, total: 1 });
        return writeReport(store, aggregate, producer(deps));
      });
    },
  };
}
