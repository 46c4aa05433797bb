/**
 * Server-rendered SVG charts for the console's activity page: no script, no charting package in the browser. Every
 * text in a chart (command names come from our own list, but still) goes through hono/html's escaping.
 */
import { html } from 'hono/html';

export type Html = ReturnType<typeof html>;

/** One series of a chart: a command, its colour, a value per period. */
export interface ChartSeries {
  name: string;
  values: number[];
}

export interface ChartInput {
  title: string;
  /** The label of each period (the x axis shows a few of them). */
  labels: string[];
  series: ChartSeries[];
  unit: string;
  /** Bars stacked per period, or a line per series. */
  kind: 'stacked' | 'lines';
  /** What the chart says when no series has a value. */
  empty: string;
}

/** Colours told apart also by people who cannot tell red from green (Okabe-Ito). */
const COLOURS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#999999'];

const WIDTH = 720;
const HEIGHT = 180;
const LEFT = 56;
const BOTTOM = 22;
const TOP = 8;

export function colourOf(index: number): string {
  return COLOURS[index % COLOURS.length]!;
}

/** A chart as an inline <svg> with a legend, or a line saying there is nothing to show. */
export function chart(input: ChartInput): Html {
  const periods = input.labels.length;
  const totals = Array.from({ length: periods }, (_, i) =>
    input.kind === 'stacked'
      ? input.series.reduce((n, s) => n + (s.values[i] ?? 0), 0)
      : Math.max(0, ...input.series.map((s) => s.values[i] ?? 0)),
  );
  const max = niceCeiling(Math.max(0, ...totals));
  const plotWidth = WIDTH - LEFT - 8;
  const plotHeight = HEIGHT - TOP - BOTTOM;
  const step = plotWidth / Math.max(1, periods);
  const y = (v: number): number => TOP + plotHeight - (max > 0 ? (v / max) * plotHeight : 0);
  const marks: Html[] = [];
  if (input.kind === 'stacked') {
    for (let i = 0; i < periods; i++) {
      let base = 0;
      input.series.forEach((s, k) => {
        const v = s.values[i] ?? 0;
        if (v <= 0) return;
        const top = y(base + v);
        marks.push(
          html`<rect x="${fixed(LEFT + i * step + 0.5)}" y="${fixed(top)}" width="${fixed(Math.max(1, step - 1))}" height="${fixed(y(base) - top)}" fill="${colourOf(k)}"><title>${input.labels[i]} ${s.name}: ${v} ${input.unit}</title></rect>`,
        );
        base += v;
      });
    }
  } else {
    input.series.forEach((s, k) => {
      const points = s.values
        .map((v, i) => (v > 0 ? `${fixed(LEFT + (i + 0.5) * step)},${fixed(y(v))}` : undefined))
        .filter((p) => p !== undefined);
      if (points.length === 0) return;
      marks.push(
        html`<polyline points="${points.join(' ')}" fill="none" stroke="${colourOf(k)}" stroke-width="2"><title>${s.name}</title></polyline>`,
      );
      if (points.length === 1) {
        const [cx, cy] = points[0]!.split(',');
        marks.push(html`<circle cx="${cx}" cy="${cy}" r="3" fill="${colourOf(k)}"></circle>`);
      }
    });
  }
  const ticks = [0, Math.floor(periods / 2), periods - 1].filter((v, i, a) => v >= 0 && a.indexOf(v) === i);
  return html`<figure class="chart">
<figcaption>${input.title} (${input.unit})</figcaption>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${input.title}">
<line x1="${LEFT}" y1="${TOP + plotHeight}" x2="${WIDTH - 8}" y2="${TOP + plotHeight}" stroke="#888"></line>
<line x1="${LEFT}" y1="${TOP}" x2="${LEFT}" y2="${TOP + plotHeight}" stroke="#888"></line>
<text x="${LEFT - 4}" y="${TOP + 10}" text-anchor="end" font-size="11">${max}</text>
<text x="${LEFT - 4}" y="${TOP + plotHeight}" text-anchor="end" font-size="11">0</text>
${ticks.map((i) => html`<text x="${fixed(LEFT + (i + 0.5) * step)}" y="${HEIGHT - 6}" text-anchor="${i === periods - 1 ? 'end' : i === 0 ? 'start' : 'middle'}" font-size="11">${input.labels[i]}</text>`)}
${marks}
</svg>
${
  input.series.length === 0
    ? html`<p class="empty">${input.empty}</p>`
    : html`<ul class="legend">${input.series.map((s, k) => html`<li><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" fill="${colourOf(k)}"></rect></svg> ${s.name}</li>`)}</ul>`
}
</figure>`;
}

/** A round number at or above `n` for the top of the axis (1, 2, 5 × 10^k). */
export function niceCeiling(n: number): number {
  if (n <= 0) return 0;
  const magnitude = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * magnitude >= n) return m * magnitude;
  return 10 * magnitude;
}

function fixed(n: number): string {
  return n.toFixed(1);
}
