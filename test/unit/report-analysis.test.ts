import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AggregateInput, EvaluationKind } from '../../activities/types.js';
import { analyseReport } from '../../lib/report/analysis.js';
import { renderMarkdown } from '../../lib/report/write.js';
import type { Prediction } from '../../lib/protocol/scores.js';
import { sha256Hex, type ArtifactRef, type ArtifactStore } from '../../lib/storage.js';
import { resolvePreset } from '../../pipelines/presets.js';

type Trial = AggregateInput['trials'][number];
const ref = (name: string): ArtifactRef => ({ key: `cas/${name}.json`, sha256: sha256Hex(name), bytes: 1 });

/** 10 held-out real images of 5 patients: 4 NORMAL, 6 PNEUMONIA. */
const heldout = Array.from({ length: 10 }, (_, i) => ({
  image: `img${i}`,
  label: i < 4 ? ('NORMAL' as const) : ('PNEUMONIA' as const),
  origin: 'real' as const,
  patientId: `p${Math.floor(i / 2)}`,
}));
const predict = (correct: (i: number) => boolean): Prediction[] =>
  heldout.map((h, i) => {
    const truth = h.label === 'PNEUMONIA' ? 1 : 0;
    const predicted = correct(i) ? truth : 1 - truth;
    return { ...h, predicted, probability: predicted ? 0.8 : 0.2 };
  });

function fakeStore(records: Map<string, Prediction[]>): ArtifactStore {
  return {
    getJson: (r: ArtifactRef) =>
      Promise.resolve({
        kind: 'evaluation',
        backbone: 'resnet18',
        metrics: {
          accuracy: 0,
          perClassAccuracy: { NORMAL: 0, PNEUMONIA: 0 },
          precision: 0,
          recall: 0,
          f1: 0,
          confusion: [],
          support: 0,
        },
        predictions: records.get(r.key)!,
      }),
  } as unknown as ArtifactStore;
}

function trial(
  n: number,
  evaluations: Array<[EvaluationKind, Prediction[]]>,
  records: Map<string, Prediction[]>,
): Trial {
  const counts = { images: { NORMAL: 3, PNEUMONIA: 9 }, patients: { NORMAL: 3, PNEUMONIA: 4 } };
  const split = { split: ref('split'), train: counts, test: counts };
  return {
    trial: n,
    seed: n,
    workflowId: `w/trial-${n}`,
    subset: ref('subset'),
    subsetCounts: { NORMAL: 3, PNEUMONIA: 9 },
    pooledSplit: split,
    realSplit: split,
    gans: [],
    stageMillis: {},
    evaluations: evaluations.map(([kind, predictions]) => {
      const evaluation = ref(`t${n}-${kind}`);
      records.set(evaluation.key, predictions);
      return {
        protocol: kind,
        backbone: 'resnet18',
        checkpoint: ref(`ckpt-${kind}`),
        history: ref('history'),
        evaluation,
        metrics: {
          accuracy: 0,
          perClassAccuracy: { NORMAL: 0, PNEUMONIA: 0 },
          precision: 0,
          recall: 0,
          f1: 0,
          confusion: [[0]],
          support: 10,
        },
      };
    }),
  };
}

test('the GAN effect is the paired accuracy difference on the held-out images, with McNemar and intervals', async () => {
  const records = new Map<string, Prediction[]>();
  // With the GAN: 9 of 10 right (image 9 wrong). Without: 6 of 10 (images 0, 1, 2, 9 wrong).
  const trials = [1, 2].map((n) =>
    trial(
      n,
      [
        ['heldout', predict((i) => i !== 9)],
        ['no-gan-heldout', predict((i) => i > 2 && i !== 9)],
      ],
      records,
    ),
  );
  const analysis = await analyseReport(fakeStore(records), { trials }, 200);
  const [effect] = analysis.ganEffect;
  assert.equal(effect?.backbone, 'resnet18');
  for (const t of effect.trials) {
    assert.equal(t.withGan, 0.9);
    assert.equal(t.withoutGan, 0.6);
    assert.ok(Math.abs(t.difference.estimate - 0.3) < 1e-12);
    assert.deepEqual([t.mcnemar.onlyFirst, t.mcnemar.onlySecond, t.mcnemar.method], [3, 0, 'exact binomial']);
    assert.ok(Math.abs(t.mcnemar.pValue - 0.25) < 1e-12);
    assert.ok(t.difference.low <= 0.3 && t.difference.high >= 0.3);
  }
  assert.deepEqual(effect.trials[0]!.singleClass, { withGan: null, withoutGan: null });
  // Two identical trials: the t interval across them has zero width.
  assert.deepEqual(
    [effect.difference.low, effect.difference.high].map((v) => Math.round(v * 1e9) / 1e9),
    [0.3, 0.3],
  );

  const heldoutKind = analysis.kinds.find((k) => k.kind === 'heldout')!;
  assert.ok(Math.abs(heldoutKind.backbones[0]!.scores.accuracy!.estimate - 0.9) < 1e-12);
  // The baseline answers PNEUMONIA (9 of 12 training images): 6 of 10 right, AUC one half.
  assert.equal(heldoutKind.baseline.majority, 'PNEUMONIA');
  assert.ok(Math.abs(heldoutKind.baseline.scores.accuracy!.estimate - 0.6) < 1e-12);
  assert.equal(heldoutKind.baseline.scores.auc!.estimate, 0.5);
  assert.equal(heldoutKind.baseline.singleClassTrials, 2);
});

test('a pooled test set is split by origin, a one-class model is flagged, random weights are named', async () => {
  const records = new Map<string, Prediction[]>();
  const pooled: Prediction[] = [
    ...predict((i) => i < 5),
    ...Array.from({ length: 10 }, (_, i) => ({
      image: `gen${i}`,
      label: i < 5 ? ('NORMAL' as const) : ('PNEUMONIA' as const),
      origin: 'synthetic' as const,
      patientId: null,
      predicted: i < 5 ? 0 : 1,
      probability: i < 5 ? 0.1 : 0.9,
    })),
  ];
  const allPneumonia = heldout.map((h) => ({ ...h, predicted: 1, probability: 0.7 }));
  const trials = [
    trial(
      1,
      [
        ['paper', pooled],
        ['no-gan', allPneumonia],
      ],
      records,
    ),
  ];
  const analysis = await analyseReport(fakeStore(records), { trials }, 200);
  const paper = analysis.kinds.find((k) => k.kind === 'paper')!.backbones[0]!.trials[0]!;
  assert.equal(paper.byOrigin?.real?.estimate, 0.5);
  assert.equal(paper.byOrigin?.synthetic?.estimate, 1);
  assert.deepEqual([paper.byOrigin?.realImages, paper.byOrigin?.syntheticImages], [10, 10]);
  const noGan = analysis.kinds.find((k) => k.kind === 'no-gan')!.backbones[0]!;
  assert.equal(noGan.singleClassTrials, 1);

  const config = resolvePreset('smoke');
  const markdown = renderMarkdown(
    {
      runName: 'unit',
      config,
      dataset: {
        manifest: ref('manifest'),
        source: 'folder x',
        counts: { NORMAL: 10, PNEUMONIA: 10 },
        patients: { NORMAL: 8, PNEUMONIA: 5 },
        duplicates: 0,
        nearDuplicates: { pairs: 2, linkingGroups: 1, crossClass: 0 },
        skipped: 0,
      },
      trials,
    },
    [],
    analysis,
    { resnet18: null },
  );
  assert.match(
    markdown,
    /^# pneumogan reproduction: unit \(every backbone trained from random weights: no transfer learning\)/,
  );
  assert.match(markdown, /near-duplicates .*: 2 pair\(s\), 1 of them joining groups/);
  assert.match(markdown, /\| resnet18 \| .* \| random init \| ⚠ predicts only PNEUMONIA in 1 of 1 trial\(s\)/);
  assert.match(
    markdown,
    /\| paper \| resnet18 \| 1 \| 75\.0% \[.*\] \| 50\.0% \[.*\] \| 100\.0% \[100\.0, 100\.0\] \| 10 \/ 10 \|/,
  );
  assert.match(markdown, /\*majority-class baseline\*/);
});
