/**
 * The GPU check's report (gpu/run.ts): the bench table with step, host and kernel times beside
 * PyTorch, the same rows under other settings, the per-kernel profiles, and the `paper` preset's
 * expected training time from each column's rates, as markdown.
 */
import type { CaseResult, ModelCase } from '../bench/cases.js';
import { estimatePaper } from './estimate.js';
import { describeProfile, type CaseProfile } from './profile.js';

export interface Row {
  id: string;
  label: string;
  batch: number;
  tfjs?: CaseResult;
  /** The same case under each --variants setting (gpu/variants.ts), by variant name. */
  variants: Record<string, CaseResult>;
  pytorch?: CaseResult;
}

export function rate(r: CaseResult | undefined): string {
  if (!r) return '-';
  if (r.status !== 'ok') return r.status + (r.note ? ` (${r.note})` : '');
  return r.imagesPerSecond! >= 100 ? r.imagesPerSecond!.toFixed(0) : r.imagesPerSecond!.toPrecision(3);
}

export const ms = (seconds: number | undefined) => (seconds === undefined ? '-' : (seconds * 1000).toFixed(1));

/**
 * The bench table. "step ms" is the device-synchronised time per training step; "host ms" is the
 * host's time to queue one (on WebGPU, far below the step time means the GPU's work bounds the
 * step; close to it means the host does, or that the GPU's queue is full and the host waits, which
 * "kernel ms", the profiled step's summed kernel time, tells apart).
 */
export function table(rows: Row[], tfjsName: string, torchName: string, profiles: CaseProfile[]): string {
  const kernelMs = (r: Row) => profiles.find((p) => p.id === r.id)?.kernelMs;
  const lines = [
    `| model | ${tfjsName} img/s | step ms | host ms | kernel ms | ${torchName} img/s | ratio |`,
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => {
      const a = r.tfjs?.imagesPerSecond;
      const b = r.pytorch?.imagesPerSecond;
      const k = kernelMs(r);
      return `| ${r.label}, batch ${r.batch} | ${rate(r.tfjs)} | ${ms(r.tfjs?.secondsPerStep)} | ${ms(r.tfjs?.hostSecondsPerStep)} | ${k == null ? '-' : k.toFixed(1)} | ${rate(r.pytorch)} | ${a && b ? `${(a / b).toPrecision(2)}x` : '-'} |`;
    }),
  ];
  return lines.join('\n');
}

/** Each row under its default and under each variant, timed in this run, and the default's speed-up over each. */
export function variantTable(rows: Row[], names: string[]): string {
  const cell = (r: CaseResult | undefined, base: CaseResult | undefined) =>
    `${rate(r)} (${ms(r?.secondsPerStep)} ms)${
      r?.imagesPerSecond && base?.imagesPerSecond
        ? `, default ${(base.imagesPerSecond / r.imagesPerSecond).toFixed(2)}x`
        : ''
    }`;
  return [
    'The same rows under other settings (gpu/variants.ts), img/s (step ms), timed in this run:',
    '',
    `| model | default | ${names.join(' | ')} |`,
    `| --- | --- |${names.map(() => ' --- |').join('')}`,
    ...rows.map(
      (r) =>
        `| ${r.label}, batch ${r.batch} | ${cell(r.tfjs, undefined)} | ${names.map((n) => cell(r.variants[n], r.tfjs)).join(' | ')} |`,
    ),
    '',
  ].join('\n');
}

/** Per profiled case, the kernels and the layers (input shapes) the step's time goes to. */
export function profileTables(profiles: CaseProfile[]): string {
  return profiles
    .flatMap((p) => [
      `Profile of ${p.id}: ${describeProfile(p, 0)}`,
      '',
      '| kernel | calls | ms |',
      '| --- | --- | --- |',
      ...p.kernels.slice(0, 12).map((k) => `| ${k.name} | ${k.count} | ${k.totalMs?.toFixed(2) ?? '-'} |`),
      '',
      '| kernel and input shapes | calls | ms |',
      '| --- | --- | --- |',
      ...p.calls.slice(0, 12).map((k) => `| ${k.name} | ${k.count} | ${k.totalMs?.toFixed(2) ?? '-'} |`),
      '',
    ])
    .join('\n');
}

/** The `paper` preset's training time per trial and in all, from each column's rates (gpu/estimate.ts). */
export function paperEstimates(cases: ModelCase[], rows: Row[], tfjsName: string, torchName: string): string {
  const lines = ['', 'Expected training time of the `paper` preset from these rates (gpu/estimate.ts):', ''];
  for (const [name, pick] of [
    [tfjsName, (r: Row) => r.tfjs],
    [torchName, (r: Row) => r.pytorch],
  ] as const) {
    const rateOf = (c: ModelCase) => {
      const result = pick(rows.find((r) => r.id === c.id)!);
      return result?.status === 'ok' ? result.imagesPerSecond : undefined;
    };
    const gan = cases.find((c) => c.kind === 'gan-train');
    const backboneRates = Object.fromEntries(
      cases.flatMap((c) => (c.kind === 'cls-train' ? [[c.backbone, rateOf(c)]] : [])),
    ) as Record<string, number | undefined>;
    const estimate = estimatePaper(gan && rateOf(gan), backboneRates);
    lines.push(
      estimate
        ? `- ${name}: ${(estimate.perTrialSeconds / 60).toFixed(1)} min per trial, ${(estimate.totalSeconds / 3600).toFixed(2)} h for 3 trials (${Object.entries(
            estimate.parts,
          )
            .map(([k, v]) => `${k} ${(v / 60).toFixed(1)} min`)
            .join(', ')})`
        : `- ${name}: no estimate (a row has no rate)`,
    );
  }
  return `${lines.join('\n')}\n`;
}
