/** The report of `npm run bench`: its data (also written as JSON) and its fixed-width text form. */
import type { CaseResult, Engine, ModelCase, SizeName } from './cases.js';

export interface EngineInfo {
  engine: Engine;
  available: boolean;
  reason?: string;
  packageName?: string;
}

/** Threads given to libtensorflow and PyTorch for one size's measurements, and why. */
export interface ThreadChoice {
  threads: number;
  why: string;
  /** Cores' worth of CPU other processes used just before (Linux). */
  otherCores?: number;
}

/** Cells measured while other processes used at least this many cores get a "!". */
export const BUSY_CORES = 0.5;

export interface ModelRow {
  case: ModelCase;
  results: Partial<Record<Engine, CaseResult>>;
}

export interface IoRow {
  id: string;
  label: string;
  unit: 'img/s' | 'ms';
  result?: CaseResult;
  error?: string;
  reference?: CaseResult;
  referenceName?: string;
  referenceError?: string;
}

export interface BenchReport {
  startedAt: string;
  mode: 'quick' | 'full';
  /** Wall time of the measurements (without the one-time reference setup). */
  seconds: number;
  setupSeconds: number;
  machine: {
    cpu: string;
    cores: number;
    memoryGiB: number;
    loadAverageStart: number[];
    loadAverageEnd: number[];
    node: string;
    platform: string;
  };
  engines: EngineInfo[];
  threads: Partial<Record<SizeName, ThreadChoice>>;
  reference: { ok: true; python: string; versions: string; how: string } | { ok: false; reason: string };
  models: ModelRow[];
  io: IoRow[];
  ingestionData: string;
}

const SHORT: Record<Engine, string> = { cpu: 'js', tensorflow: 'tf', 'tensorflow-gpu': 'gpu', pytorch: 'pt' };
const TITLE: Record<Engine, string> = {
  cpu: 'cpu (pure JS)',
  tensorflow: 'tensorflow',
  'tensorflow-gpu': 'tensorflow-gpu',
  pytorch: 'pytorch',
};

function num(v: number): string {
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

function int(v: number): string {
  return v.toLocaleString('en-US');
}

/** A rate, or bounds for it: [low, high] (an ok result has low = high). */
function rate(r: CaseResult | undefined): [number, number] | undefined {
  if (!r) return undefined;
  if (r.status === 'ok' && r.imagesPerSecond) return [r.imagesPerSecond, r.imagesPerSecond];
  if (r.status === 'skipped' && r.minSecondsPerStep && r.batch) return [0, r.batch / r.minSecondsPerStep];
  return undefined;
}

function ratio(a: CaseResult | undefined, b: CaseResult | undefined): string {
  const ra = rate(a);
  const rb = rate(b);
  if (!ra || !rb) return '-';
  const exactA = ra[0] === ra[1];
  const exactB = rb[0] === rb[1];
  if (exactA && exactB) return `${num(ra[0] / rb[0])}x`;
  if (exactA && !exactB) return `>${num(ra[0] / rb[1])}x`;
  if (!exactA && exactB) return `<${num(ra[1] / rb[0])}x`;
  return '-';
}

function cell(r: CaseResult | undefined, available: boolean, notes: string[]): string {
  if (!r) return available ? '-' : 'n/a';
  if (r.status === 'ok')
    return `${num(r.imagesPerSecond!)}${r.steps === 1 ? '*' : ''}${(r.otherCores ?? 0) >= BUSY_CORES ? '!' : ''}`;
  if (r.status === 'skipped') return `skipped (${r.note})`;
  notes.push(`${r.id}: ${r.note}`);
  return `failed [${notes.length}]`;
}

function table(header: string[], rows: string[][], align: Array<'l' | 'r'>): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (align[i] === 'r' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

function config(c: ModelCase): string {
  if (c.kind === 'gan-train') return `${c.imageSize}px z${c.latentDim} w${c.generatorWidth} b${c.batch}`;
  return `${c.inputSize}px w${c.widthMultiplier} b${c.batch}`;
}

function label(c: ModelCase): string {
  if (c.kind === 'gan-train') return 'DCGAN train step (D+G)';
  return `${c.kind === 'cls-train' ? 'fine-tune' : 'inference'} ${c.backbone}`;
}

function duration(s: number): string {
  return s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${s.toFixed(0)} s`;
}

export function renderReport(r: BenchReport): string {
  const out: string[] = [];
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(' / ');
  out.push(
    `pneumogan bench (${r.mode}), ${r.startedAt}: measurements took ${duration(r.seconds)}` +
      (r.setupSeconds > 5 ? ` (+ ${duration(r.setupSeconds)} reference setup)` : ''),
  );
  out.push(
    `machine: ${r.machine.cores} x ${r.machine.cpu}, ${r.machine.memoryGiB} GiB, ${r.machine.platform}, node ${r.machine.node}`,
  );
  const others = r.models
    .flatMap((m) => Object.values(m.results))
    .map((x) => x?.otherCores)
    .filter((x): x is number => x !== undefined)
    .sort((a, b) => a - b);
  out.push(
    `load average (1/5/15 min): ${load(r.machine.loadAverageStart)} at start, ${load(r.machine.loadAverageEnd)} at end` +
      (others.length
        ? `; other processes used ${others[others.length >> 1]!.toFixed(2)} cores (median), up to ${others.at(-1)!.toFixed(2)}, during the timed steps`
        : ''),
  );
  for (const e of r.engines) {
    const what =
      e.available || r.models.some((m) => m.results[e.engine])
        ? (e.packageName ?? '') + (e.available ? '' : `; stopped: ${e.reason}`)
        : `not measured: ${e.reason}`;
    out.push(`  ${TITLE[e.engine].padEnd(15)} ${what}`);
  }
  for (const [size, t] of Object.entries(r.threads)) {
    out.push(`  threads at ${size} size: ${t.threads} for libtensorflow and PyTorch (${t.why}); pure JS: 1`);
  }

  const shown = r.engines.filter((e) => e.available || r.models.some((m) => m.results[e.engine]));
  const has = (e: Engine) => shown.some((s) => s.engine === e);
  const ratios: Array<[Engine, Engine]> = [];
  for (const e of ['tensorflow-gpu', 'tensorflow'] as const) {
    if (!has(e)) continue;
    if (has('cpu')) ratios.push([e, 'cpu']);
    if (has('pytorch')) ratios.push([e, 'pytorch']);
  }
  if (has('cpu') && has('pytorch')) ratios.push(['cpu', 'pytorch']);

  const notes: string[] = [];
  out.push('', 'Model throughput, images/second (higher is better); ratios divide the two rates');
  const header = [
    'measurement',
    'size',
    'config',
    ...shown.map((e) => TITLE[e.engine]),
    ...ratios.map(([a, b]) => `${SHORT[a]}/${SHORT[b]}`),
  ];
  const rows = r.models.map((m) => [
    label(m.case),
    m.case.size,
    config(m.case),
    ...shown.map((e) => cell(m.results[e.engine], e.available, notes)),
    ...ratios.map(([a, b]) => ratio(m.results[a], m.results[b])),
  ]);
  out.push(
    ...table(
      header,
      rows,
      header.map((_, i) => (i < 3 ? 'l' : 'r')),
    ),
  );
  const single = r.models.some((m) => Object.values(m.results).some((x) => x?.status === 'ok' && x.steps === 1));
  if (single) out.push('  * one timed step (after one warm-up step): a single sample');
  const busy = r.models
    .flatMap((m) => Object.values(m.results))
    .filter((x) => (x?.otherCores ?? 0) >= BUSY_CORES).length;
  if (busy) {
    out.push(
      `  ! other processes used ${BUSY_CORES} core or more (of ${r.machine.cores}) during these timed steps (${busy} cells; JSON: otherCores):`,
      '    slower than on an idle machine, by an amount that varied from cell to cell',
    );
  }
  if (r.models.some((m) => Object.values(m.results).some((x) => x?.status === 'skipped'))) {
    out.push(
      '  skipped (> N s): the warm-up step (model build, < 1 s, included) or the timed step ran past its cap and was killed;',
      '  ratios against it are bounds (> or <) that take its rate as at most batch / (seconds the cap proves per step)',
    );
  }
  notes.forEach((n, i) => out.push(`  [${i + 1}] ${n}`));

  // Same architectures: trainable parameters of the tfjs models and of the PyTorch ones.
  const paramRows: string[][] = [];
  for (const m of r.models) {
    if (m.case.kind === 'cls-train') continue;
    const tfjs = (['tensorflow-gpu', 'tensorflow', 'cpu'] as const)
      .map((e) => m.results[e]?.params)
      .find((p) => p !== undefined);
    const torch = m.results.pytorch?.params;
    if (tfjs === undefined && torch === undefined) continue;
    const name = m.case.kind === 'gan-train' ? 'DCGAN G+D' : m.case.backbone;
    paramRows.push([
      name,
      config(m.case).replace(/ b\d+$/, ''),
      tfjs === undefined ? '-' : int(tfjs),
      torch === undefined ? '-' : int(torch),
      tfjs === undefined || torch === undefined ? '' : tfjs === torch ? 'same' : 'DIFFERENT',
      m.results.pytorch?.note ?? '',
    ]);
  }
  if (paramRows.length) {
    out.push('', 'Same architectures: trainable parameters');
    out.push(
      ...table(['model', 'config', 'tfjs', 'pytorch', 'check', 'pytorch model'], paramRows, [
        'l',
        'l',
        'r',
        'r',
        'l',
        'l',
      ]),
    );
  }

  out.push('', `Ingestion and orchestration (no tfjs backend involved; images: ${r.ingestionData})`);
  const refName = r.io.find((x) => x.referenceName)?.referenceName ?? 'Pillow';
  const ioRows = r.io.map((x) => {
    const value = (c: CaseResult | undefined, err: string | undefined) => {
      if (!c || c.status !== 'ok') return err ? 'failed' : '-';
      return x.unit === 'ms' ? `${(c.secondsPerStep! * 1000).toFixed(1)} ms` : `${num(c.imagesPerSecond!)} img/s`;
    };
    if (!x.result && x.error) notes.push(`${x.label}: ${x.error}`);
    if (x.referenceError) notes.push(`${refName} ${x.label}: ${x.referenceError}`);
    return [
      x.label,
      value(x.result, x.error),
      value(x.reference, x.referenceError),
      x.reference ? ratio(x.result, x.reference) : '-',
      x.result?.note ?? '',
    ];
  });
  out.push(
    ...table(['measurement', 'this project', `reference (${refName}, 1 thread)`, 'ratio', 'detail'], ioRows, [
      'l',
      'r',
      'r',
      'r',
      'l',
    ]),
  );
  const ioNotes = notes.filter((n) => !r.models.some((m) => n.startsWith(`${m.case.id}:`)));
  ioNotes.forEach((n) => out.push(`  - ${n}`));

  out.push('', 'What limits these numbers:');
  out.push(
    `  - ${r.machine.cores} cores, shared: anything else running (tests, builds) takes cycles from whichever engine runs then;`,
    '    compare rows measured close together, rerun when the load average above is high. Few steps per cell: expect +-20%.',
    '  - pure JS runs on one thread; tfjs-node (libtensorflow 2.9.1) and PyTorch get the threads above; PyTorch is its PyPI build',
    '    (CUDA-enabled wheel, CPU kernels: oneDNN/MKL), NCHW layout, eager mode, no torch.compile.',
    '  - tfjs cells time the project code (trainGan, fineTune, evaluateClassifier) including its per-batch JS work:',
    '    uint8 -> normalised float conversion, loss readback, one event-loop yield per step.',
  );
  if (!r.reference.ok) out.push(`  - no PyTorch reference: ${r.reference.reason}`);
  return `${out.join('\n')}\n`;
}
