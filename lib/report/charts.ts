/**
 * Report figures: Vega-Lite specs rendered to SVG by Vega (no browser or canvas needed) and
 * rasterised to PNG by sharp.
 */
import sharp from 'sharp';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { CLASS_NAMES } from '../../pipelines/schema.js';
import type { ConfusionMatrix } from '../protocol/metrics.js';

export async function renderPng(spec: TopLevelSpec): Promise<Buffer> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return sharp(Buffer.from(svg), { density: 144 }).png().toBuffer();
}

/** Loss curves: one line per series, x = step. Long series are thinned to ~400 points. */
export function lossCurveSpec(title: string, series: Record<string, readonly number[]>, xTitle: string): TopLevelSpec {
  const values = Object.entries(series).flatMap(([name, ys]) => {
    const stride = Math.max(1, Math.ceil(ys.length / 400));
    return ys.flatMap((y, step) =>
      step % stride === 0 && Number.isFinite(y) ? [{ step: step + 1, value: y, series: name }] : [],
    );
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 360,
    height: 160,
    data: { values },
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: xTitle },
      y: { field: 'value', type: 'quantitative', title: 'loss' },
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
}

/** A confusion matrix as an annotated heat map (rows: true class, columns: predicted). */
export function confusionSpec(title: string, confusion: ConfusionMatrix): TopLevelSpec {
  const total = confusion.flat().reduce((a, b) => a + b, 0) || 1;
  const values = confusion.flatMap((row, i) =>
    row.map((count, j) => ({
      truth: CLASS_NAMES[i],
      predicted: CLASS_NAMES[j],
      count,
      label: `${count} (${((100 * count) / total).toFixed(1)}%)`,
    })),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 180,
    height: 180,
    data: { values },
    encoding: {
      x: { field: 'predicted', type: 'nominal', sort: [...CLASS_NAMES], title: 'predicted' },
      y: { field: 'truth', type: 'nominal', sort: [...CLASS_NAMES], title: 'true class' },
    },
    layer: [
      {
        mark: 'rect',
        encoding: { color: { field: 'count', type: 'quantitative', scale: { scheme: 'blues' }, legend: null } },
      },
      {
        mark: { type: 'text', fontSize: 13 },
        encoding: {
          text: { field: 'label' },
          color: { condition: { test: `datum.count > ${total / 4}`, value: 'white' }, value: 'black' },
        },
      },
    ],
  };
}

/** Accuracy per backbone: this reproduction (mean with min-max over trials) next to the paper. */
export function accuracySpec(
  rows: Array<{ backbone: string; source: string; accuracy: number; low: number; high: number }>,
): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Test accuracy: this reproduction vs the paper',
    width: 90,
    height: 200,
    data: { values: rows },
    facet: { column: { field: 'backbone', type: 'nominal', title: null } },
    spec: {
      layer: [
        {
          mark: 'bar',
          encoding: {
            x: { field: 'source', type: 'nominal', title: null },
            y: { field: 'accuracy', type: 'quantitative', scale: { domain: [0, 1] }, title: 'accuracy' },
            color: { field: 'source', type: 'nominal', legend: null },
          },
        },
        {
          mark: { type: 'rule', strokeWidth: 2 },
          encoding: {
            x: { field: 'source', type: 'nominal' },
            y: { field: 'low', type: 'quantitative' },
            y2: { field: 'high' },
          },
        },
      ],
    },
  };
}
