/** Text renderings of lineage, run status and verification for the CLI. */
import type { Client } from '@temporalio/client';
import type { TrialResult } from '../activities/types.js';
import { ImageSetSchema } from '../lib/data/manifest.js';
import pLimit from 'p-limit';
import {
  indexedArtifacts,
  LineageReader,
  readRunIndex,
  traceLineage,
  type LineageNode,
  type LineageRecord,
} from '../lib/lineage.js';
import { assertSafeKey, type ArtifactRef, type ArtifactStore } from '../lib/storage.js';
import { reproductionWorkflowId } from '../lib/run-names.js';
import { describePendingStep } from './pending-step.js';
import { progressQuery, type ProgressView, type reproducePaper } from '../workflows/index.js';

const short = (sha: string) => sha.slice(0, 16);

function describeRecord(record: LineageRecord, head: string, indent: string): string[] {
  const p = record.producer;
  const lines = [
    `${head}${record.kind} ${record.artifact.key} (${record.artifact.bytes} bytes)`,
    `${indent}  made by ${p.activity} in ${p.workflowId} (run ${p.runId.slice(0, 8)}, attempt ${p.attempt}) on ${p.worker}, code ${p.codeVersion}, backend ${p.computeBackend}, ${record.recordedAt}`,
  ];
  if (record.generated) {
    const g = record.generated;
    lines.push(
      `${indent}  generated: class ${g.label}, latent seed ${g.latentSeed}, index ${g.index}, generator ${short(g.generator.sha256)}`,
    );
  }
  const params = Object.entries(record.params)
    .filter(([, v]) => typeof v !== 'object')
    .map(([k, v]) => `${k}=${String(v)}`);
  if (params.length) lines.push(`${indent}  params: ${params.join(', ')}`);
  return lines;
}

function renderNode(node: LineageNode, indent: string, role?: string): string[] {
  const head = role ? `${indent}<- ${role}: ` : indent;
  if (node.records.length === 0) return [`${head}${short(node.sha256)} (no lineage record)`];
  const [first, ...others] = node.records;
  const lines = describeRecord(first!, head, indent);
  for (const other of others)
    lines.push(`${indent}  also recorded by ${other.producer.activity} in ${other.producer.workflowId}`);
  for (const input of node.inputs) lines.push(...renderNode(input.node, `${indent}   `, input.role));
  if (node.omittedInputs) lines.push(`${indent}   ... and ${node.omittedInputs} more input(s)`);
  return lines;
}

/** Resolves a sha256, a prefix of one (>= 8 chars), or an S3 key to the artifact (its key when known). */
export async function resolveArtifact(store: ArtifactStore, hashOrKey: string): Promise<string | ArtifactRef> {
  const fromKey = /([0-9a-f]{64})\.[a-z]+$/.exec(hashOrKey)?.[1];
  if (fromKey) {
    assertSafeKey(hashOrKey);
    const stat = await store.stat(hashOrKey);
    return stat ? { key: hashOrKey, sha256: fromKey, bytes: stat.size } : fromKey;
  }
  if (/^[0-9a-f]{64}$/.test(hashOrKey)) return hashOrKey;
  if (/^[0-9a-f]{8,63}$/.test(hashOrKey)) {
    // Content-addressed keys start with the hash, so a prefix lists one small folder.
    const keys = await store.list(`cas/${hashOrKey.slice(0, 2)}/${hashOrKey}`);
    const matches = [...new Set(keys.flatMap((k) => /([0-9a-f]{64})\.[a-z]+$/.exec(k)?.[1] ?? []))];
    if (matches.length === 1) return matches[0]!;
    throw new Error(
      matches.length
        ? `${hashOrKey} is ambiguous: ${matches.length} artifacts start with it`
        : `No stored artifact starts with ${hashOrKey}`,
    );
  }
  throw new Error(`${hashOrKey} is neither a sha256 (or a prefix of at least 8 hex digits) nor an artifact key`);
}

/**
 * The whole chain of an artifact; for a generated image also the real images its GAN was
 * trained on (the class's share of the trial's subset), with their source files. Lineage batches
 * are read once each, so the hundreds of source images cost one HEAD each.
 */
export async function lineageReport(store: ArtifactStore, artifact: string | ArtifactRef): Promise<string[]> {
  const reader = new LineageReader(store);
  const node = await traceLineage(store, artifact, { reader });
  const lines = renderNode(node, '');
  const generation = node.records.find((r) => r.generated);
  const generated = generation?.generated;
  if (generation) lines.push(...(await nearestNeighbourLines(reader, generation)));
  if (generated) {
    const ganRecords = await reader.read(generated.generator);
    const subsetRef = ganRecords.flatMap((r) => r.inputs).find((i) => i.role === 'subset')?.ref;
    if (subsetRef) {
      const subset = await store.getJson(subsetRef, ImageSetSchema);
      const sources = subset.images.filter((i) => i.label === generated.label);
      lines.push(
        '',
        `Real source images of its generator (${sources.length} ${generated.label} images of subset ${short(subsetRef.sha256)}):`,
      );
      const limit = pLimit(32);
      const ingested = await Promise.all(
        sources.map((image) =>
          limit(async () => (await reader.read(image.image)).find((r) => r.kind === 'ingested-image')),
        ),
      );
      for (const [i, image] of sources.entries()) {
        const source = ingested[i]?.params.source;
        lines.push(
          `  ${short(image.image.sha256)}  ${typeof source === 'string' ? source : '(source unknown)'}${image.patientId ? `  patient ${image.patientId}` : ''}`,
        );
      }
    }
  }
  return lines;
}

/** What the trial's memorization audit found nearest to a generated image among its GAN's training images. */
async function nearestNeighbourLines(reader: LineageReader, generation: LineageRecord): Promise<string[]> {
  const [record] = await reader.nearestNeighbours(generation);
  if (!record) return [];
  const audit = record.inputs.find((i) => i.role === 'audit')?.ref;
  const lines = ['', `Nearest real training images (memorization audit ${audit ? short(audit.sha256) : '?'}):`];
  const spaces = [
    ['nearest-real-training-image', 'pixels', 'pixelDistance'],
    ['nearest-real-training-image-in-feature-space', 'discriminator features', 'featureDistance'],
  ] as const;
  for (const [role, space, distance] of spaces) {
    const ref = record.inputs.find((i) => i.role === role)?.ref;
    if (!ref) continue;
    const source = (await reader.read(ref)).find((r) => r.kind === 'ingested-image')?.params.source;
    const d = record.params[distance];
    lines.push(
      `  in ${space}: ${short(ref.sha256)}  ${typeof source === 'string' ? source : '(source unknown)'}` +
        (typeof d === 'number' ? `  (distance ${d.toFixed(3)})` : ''),
    );
  }
  return lines;
}

/** `alexnet/paper 97.4%, alexnet/heldout 77.0%, ...` for one trial. */
export function trialAccuracies(trial: TrialResult): string {
  return trial.evaluations
    .map((e) => `${e.backbone}/${e.protocol} ${(100 * e.metrics.accuracy).toFixed(1)}%`)
    .join(', ');
}

/** Stage table of a run and its trials, with the progress of running steps. */
export async function statusReport(client: Client, runName: string): Promise<string[]> {
  const handle = client.workflow.getHandle(reproductionWorkflowId(runName));
  const description = await handle.describe();
  const lines = [
    `${runName}: ${description.status.name}, started ${description.startTime.toISOString()}${description.closeTime ? `, closed ${description.closeTime.toISOString()}` : ''}`,
  ];
  const view: ProgressView | undefined = await handle.query(progressQuery).catch(() => undefined);
  if (!view && description.status.name === 'COMPLETED') {
    // A closed workflow answers queries only through a worker; its result holds the same facts.
    const result = await client.workflow.getHandle<typeof reproducePaper>(handle.workflowId).result();
    for (const trial of result.trials) {
      lines.push(`  trial ${trial.trial} (${trial.workflowId})`);
      for (const [stage, ms] of Object.entries(trial.stageMillis))
        lines.push(`    done     ${stage} ${(ms / 1000).toFixed(1)}s`);
      lines.push(`    accuracy: ${trialAccuracies(trial)}`);
    }
    return [...lines, `  report: ${result.report.reportKey}`];
  }
  if (!view) return [...lines, '  (progress unavailable: no worker is serving the run right now)'];
  const stageLines = (v: ProgressView, indent: string) =>
    Object.entries(v.stages).map(([name, s]) => {
      const took =
        s.startedAt !== undefined && s.endedAt !== undefined
          ? ` ${((s.endedAt - s.startedAt) / 1000).toFixed(1)}s`
          : '';
      return `${indent}${s.status.padEnd(8)} ${name}${took}${s.detail ? `  ${s.detail}` : ''}`;
    });
  lines.push(...stageLines(view, '  '));
  for (const [i, trialId] of (view.trials ?? []).entries()) {
    const trial = client.workflow.getHandle(trialId);
    const trialView = await trial.query(progressQuery).catch(() => undefined);
    if (!trialView) continue;
    lines.push(`  trial ${i + 1} (${trialId})`, ...stageLines(trialView, '    '));
    const { raw } = await trial.describe();
    for (const activity of raw.pendingActivities ?? []) lines.push(`    ... ${describePendingStep(activity)}`);
  }
  return lines;
}

/** Every artifact listed for a run, grouped by kind. */
export async function runArtifactsReport(store: ArtifactStore, runName: string): Promise<string[]> {
  const index = await readRunIndex(store, runName);
  const byKind = new Map<string, string[]>();
  for (const { artifact, kind } of indexedArtifacts(index)) {
    byKind.set(kind, [...(byKind.get(kind) ?? []), `${artifact.key} (${artifact.bytes} bytes)`]);
  }
  const garbled = index.garbled.map((g) => `garbled index entry ${g.key}: ${g.problem}`);
  if (byKind.size === 0) return [`Run ${runName} has no recorded artifacts.`, ...garbled];
  return [
    ...[...byKind].sort().flatMap(([kind, items]) => [
      `${kind}: ${items.length}`,
      ...items
        .sort()
        .slice(0, 20)
        .map((i) => `  ${i}`),
      ...(items.length > 20 ? [`  ... and ${items.length - 20} more`] : []),
    ]),
    ...garbled,
  ];
}
