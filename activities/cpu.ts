/**
 * Activities that need no accelerator: ingestion, sampling, splitting and the report. They run
 * on the orchestration task queue beside the workflows.
 */
import { Context } from '@temporalio/activity';
import { ingestDataset } from '../lib/data/ingest.js';
import {
  countByClass,
  DatasetManifestSchema,
  ImageSetSchema,
  nearDuplicateCounts,
  patientsByClass,
  type ImageSet,
  type LabeledImage,
  type Split,
} from '../lib/data/manifest.js';
import { partitionHeldout } from '../lib/protocol/heldout.js';
import { stratifiedSplit, stratifiedSubset } from '../lib/protocol/sampling.js';
import { checkWeightsFile, readWeightsSource, weightsPolicyFromEnv } from '../lib/models/weights-source.js';
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
import { ArtifactRecorder, producer, ProgressReporter, runActivity, type ActivityDeps } from './shared.js';

function sideCounts(images: readonly LabeledImage[]): SplitPoolOutput['train'] {
  const real = images.filter((i) => i.origin === 'real').length;
  return {
    images: countByClass(images),
    patients: patientsByClass(images),
    origins: { real, synthetic: images.length - real },
  };
}

export function createCpuActivities(deps: ActivityDeps) {
  const { store } = deps;

  /** Stores a JSON artifact and its lineage record. */
  const putRecordedJson = (...args: Parameters<ArtifactRecorder['putJson']>) =>
    new ArtifactRecorder(deps).putJson(...args);

  return {
    async ingestDataset(input: IngestInput): Promise<IngestOutput> {
      return runActivity(IngestInputSchema, input, async ({ config }) => {
        const progress = new ProgressReporter('ingest', 0);
        // One lineage batch for every image and the manifest: one write instead of one per image.
        const recorder = new ArtifactRecorder(deps);
        const manifest = await ingestDataset({
          source: config.data.source,
          storeSize: config.data.storeSize,
          store,
          onProgress: (done, total) => progress.progress(done, total),
          signal: progress.signal,
          contentMetadata: recorder.objectMetadata,
        });
        for (const image of manifest.images) {
          recorder.record(image.image, 'ingested-image', [], {
            source: `${manifest.source}/${image.source}`,
            sourceSha256: image.sourceSha256,
            label: image.label,
            storeSize: manifest.storeSize,
          });
        }
        const ref = await recorder.putJson(
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

    /**
     * Copies pretrained weights into the store, so trials use (and lineage names) their content
     * hash. The file is read under the workers' weights policy (allowed sources, size cap,
     * timeout, optional sha256 pin) and checked to be safetensors of the backbone before it is stored.
     */
    async importWeights(input: ImportWeightsInput): Promise<ArtifactRef> {
      return runActivity(ImportWeightsInputSchema, input, async ({ backbone, source: configured }) => {
        const { source, sha256 } =
          typeof configured === 'string' ? { source: configured, sha256: undefined } : configured;
        const progress = new ProgressReporter(`import ${backbone} weights`, 0);
        const bytes = await readWeightsSource(store, source, {
          policy: weightsPolicyFromEnv(),
          sha256,
          signal: progress.signal,
          onProgress: (done, total) => progress.progress(done, total),
        });
        checkWeightsFile(bytes, backbone, source);
        return new ArtifactRecorder(deps).put(bytes, 'safetensors', 'pretrained-weights', [], {
          backbone,
          source,
          ...(sha256 ? { sha256 } : {}),
        });
      });
    },

    async sampleSubset(input: SampleSubsetInput): Promise<SampleSubsetOutput> {
      return runActivity(SampleSubsetInputSchema, input, async ({ pool, size, fraction, seed, trial }) => {
        const { images: available } = await store.getJson(pool, ImageSetSchema);
        const request = size !== undefined ? { size } : { fraction: fraction! };
        const images = stratifiedSubset(available, request, seed);
        const described = size !== undefined ? `${size} real images` : `${fraction} of the real images`;
        const subset: ImageSet = { kind: 'image-set', purpose: `trial ${trial}: ${described}, seed ${seed}`, images };
        const ref = await putRecordedJson(subset, 'subset', [{ role: 'pool', ref: pool }], { ...request, seed, trial });
        return { subset: ref, counts: countByClass(images), available: countByClass(available) };
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
          train: sideCounts(train),
          test: sideCounts(test),
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
