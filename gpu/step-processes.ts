/**
 * Runs a trial's GPU steps as child processes, up to `parallel` at a time, until the queue is
 * empty, a step fails, or the time budget runs out (running steps are then killed and marked
 * stopped). A step reports on stdout with `@@paper-job {json}` lines (gpu/paper-job.ts): its
 * progress goes into its record, its stages to `onStage`. A step's `after` runs when it has
 * finished and may queue further steps.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { JOB_EVENT_PREFIX, type JobEvent } from './paper-job.js';

export interface StepProcess<J> {
  name: string;
  job: J;
  after?: () => Promise<void>;
}

export interface StepRecord {
  name: string;
  state: 'waiting' | 'running' | 'done' | 'failed' | 'stopped';
  /** Seconds from the trial's start. */
  startedAt?: number;
  endedAt?: number;
  /** When the step last reported, for a run killed before it could record `endedAt`. */
  lastSeenAt?: number;
  progress?: { done: number; total: number; perSecond?: number };
  error?: string;
  /** Seconds an earlier run of the trial spent on this step before stopping it. */
  secondsBefore?: number;
}

export type JobStage = Extract<JobEvent, { type: 'stage' }>;

export interface StepProcessOptions<J> {
  queue: StepProcess<J>[];
  /** One per step, queued or not; updated in place. */
  records: Map<string, StepRecord>;
  parallel: number;
  /** Compared with `now()`: no step starts after it, running ones are stopped at it. */
  budgetSeconds: number;
  now: () => number;
  specFile: (name: string) => string;
  startJob: (specFile: string) => ChildProcess;
  onStage: (event: JobStage, record: StepRecord) => void;
  /** Called with the progress log, every {@link PROGRESS_LOG_MS}. */
  onTick?: () => void;
  log: (line: string) => void;
}

/** How often the running steps' progress is logged. */
const PROGRESS_LOG_MS = 30_000;

export async function runStepProcesses<J>(options: StepProcessOptions<J>): Promise<void> {
  const { records, now } = options;
  const running = new Map<string, ChildProcess>();
  let failed = false;

  const onEvent = (record: StepRecord, event: JobEvent) => {
    record.lastSeenAt = now();
    if (event.type === 'stage') return options.onStage(event, record);
    const seconds = now() - (record.startedAt ?? 0);
    record.progress = { done: event.done, total: event.total, perSecond: event.done / Math.max(seconds, 1e-9) };
  };

  const start = async (step: StepProcess<J>): Promise<void> => {
    const record = records.get(step.name)!;
    record.state = 'running';
    record.startedAt = now();
    const specFile = options.specFile(step.name);
    await writeFile(specFile, JSON.stringify(step.job));
    const child = options.startJob(specFile);
    running.set(step.name, child);
    let buffer = '';
    let errorLine = 'no error line on stderr';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith(JOB_EVENT_PREFIX))
          onEvent(record, JSON.parse(line.slice(JOB_EVENT_PREFIX.length)) as JobEvent);
      }
    });
    // The error's own line, not Node's version banner or a line of minified bundle.
    child.stderr?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (/^\w*Error\b/.test(line.trim())) errorLine = line.trim();
    });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('close', (c, s) => resolve([c, s])),
    );
    running.delete(step.name);
    record.endedAt = now();
    // Killed at the deadline (stopAll set the state meanwhile).
    if (records.get(step.name)!.state === 'stopped') return;
    if (code === 0) {
      record.state = 'done';
      await step.after?.();
      return;
    }
    record.state = 'failed';
    record.error = `exit ${code ?? signal}: ${errorLine}`;
    options.log(`[paper] ${step.name} failed: ${record.error}`);
    failed = true;
  };

  const stopAll = () => {
    for (const [name, child] of running) {
      records.get(name)!.state = 'stopped';
      child.kill('SIGKILL');
    }
  };
  const deadline = setTimeout(
    () => {
      stopAll();
      options.log(`[paper] time budget of ${options.budgetSeconds.toFixed(0)} s reached: running steps stopped`);
    },
    Math.max(0, options.budgetSeconds - now()) * 1000,
  );
  const reporter = setInterval(() => {
    const lines = [...running.keys()].map((name) => {
      const p = records.get(name)!.progress;
      return p ? `${name} ${p.done}/${p.total} (${p.perSecond?.toFixed(1)}/s)` : `${name} starting`;
    });
    if (lines.length) options.log(`[paper] running: ${lines.join(', ')}`);
    options.onTick?.();
  }, PROGRESS_LOG_MS);
  const inFlight = new Set<Promise<void>>();
  try {
    while (!failed && now() < options.budgetSeconds && (options.queue.length || inFlight.size)) {
      while (options.queue.length && inFlight.size < options.parallel) {
        const task: Promise<void> = start(options.queue.shift()!).finally(() => inFlight.delete(task));
        inFlight.add(task);
      }
      if (inFlight.size) await Promise.race(inFlight);
    }
  } finally {
    // After a failure the others are stopped too: the trial cannot complete. Their records are
    // final once their processes have closed.
    stopAll();
    await Promise.allSettled(inFlight);
    clearTimeout(deadline);
    clearInterval(reporter);
  }
}
