/** The paper trial's result as markdown: stage times, steps left unfinished, and scores. */
import type { PaperTrialResult } from './paper-trial.js';

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

export function paperTrialReport(result: PaperTrialResult, device: string): string {
  const lines = [
    `## One \`${result.size}\` trial's GPU steps (trial seed ${result.seed})`,
    '',
    `Device: ${device}. Steps in parallel: at most ${result.parallel}. Data: ${result.data}.`,
    `${result.complete ? 'Complete' : 'Not complete'} after ${result.seconds.toFixed(1)} s` +
      (result.runs > 1 ? ` in ${result.runs} runs (resumed; a stopped step continued from its checkpoint).` : '.'),
    '',
    ...Object.entries(result.counts).map(([name, text]) => `- ${name}: ${text}`),
    '',
    "| stage | seconds | ended at (s from its run's start) | run | detail |",
    '| --- | --- | --- | --- | --- |',
    ...result.stages.map(
      (s) => `| ${s.stage} | ${s.seconds.toFixed(1)} | ${s.endedAt.toFixed(0)} | ${s.run} | ${s.detail} |`,
    ),
  ];
  const unfinished = result.jobs.filter((j) => j.state !== 'done');
  if (unfinished.length) {
    lines.push(
      '',
      '| step not finished | state | progress | steps/s | seconds left at that rate |',
      '| --- | --- | --- | --- | --- |',
    );
    for (const job of unfinished) {
      const p = job.progress;
      const left = p?.perSecond ? ((p.total - p.done) / p.perSecond).toFixed(0) : '-';
      lines.push(
        `| ${job.name} | ${job.state}${job.error ? ` (${job.error})` : ''} | ${p ? `${p.done}/${p.total}` : '-'} | ${p?.perSecond?.toFixed(2) ?? '-'} | ${left} |`,
      );
    }
  }
  const backbones = [...new Set(Object.values(result.scores).flatMap((byBackbone) => Object.keys(byBackbone)))];
  if (backbones.length) {
    const protocols = ['paper', 'heldout', 'no-gan'].filter((p) => result.scores[p]);
    lines.push(
      '',
      "Accuracy (sensitivity / specificity, AUC) per protocol: `paper` the pooled split's test side, `heldout` real X-rays no model saw, `no-gan` the real subset's test side.",
      '',
      `| backbone | ${protocols.join(' | ')} |`,
      `| --- | ${protocols.map(() => '---').join(' | ')} |`,
    );
    for (const backbone of backbones) {
      const cells = protocols.map((p) => {
        const s = result.scores[p]?.[backbone];
        return s
          ? `${percent(s.accuracy)} (${percent(s.sensitivity)} / ${percent(s.specificity)}, ${s.auc?.toFixed(3) ?? '-'}; n=${s.images})`
          : '-';
      });
      lines.push(`| ${backbone} | ${cells.join(' | ')} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}
