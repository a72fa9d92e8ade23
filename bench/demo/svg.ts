/**
 * A tiny SVG line-chart generator (no dependencies): stacked panels sharing one time axis,
 * each with its own y range, series as polylines, optional vertical markers and a legend.
 * Good enough for the demo's plots; not a charting library.
 */

export interface Series {
  readonly label: string;
  readonly color: string;
  /** [x, y] points; y NaN breaks the line. */
  readonly points: readonly (readonly [number, number])[];
  readonly dashed?: boolean;
  readonly width?: number;
}

export interface Panel {
  readonly title: string;
  readonly yLabel?: string;
  readonly yMin: number;
  /** Omitted: the data's maximum, rounded up to a tidy value. */
  readonly yMax?: number;
  readonly series: readonly Series[];
  /** Horizontal reference lines (e.g. a target). */
  readonly hlines?: readonly { y: number; label: string; color?: string }[];
}

export interface Chart {
  readonly title: string;
  /** Lines under the title. */
  readonly subtitle?: readonly string[];
  readonly xLabel: string;
  readonly xMin: number;
  readonly xMax: number;
  readonly panels: readonly Panel[];
  /** Vertical markers across every panel (e.g. "capacity halved"). */
  readonly vlines?: readonly { x: number; label: string }[];
  readonly width?: number;
  readonly panelHeight?: number;
}

/** Distinguishable colors (Okabe–Ito, then a few extra). */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#D55E00', '#56B4E9', '#F0E442', '#000000'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (v: number): string => (Math.round(v * 10) / 10).toString();

/** A tidy step for about `target` ticks over `span`. */
function tickStep(span: number, target = 5): number {
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const step = tickStep(v, 5);
  return Math.ceil(v / step) * step;
}

function tickLabel(v: number, step: number): string {
  const decimals = step >= 1 ? 0 : Math.min(4, Math.ceil(-Math.log10(step)));
  return v.toFixed(decimals);
}

export function renderChart(chart: Chart): string {
  const width = chart.width ?? 900;
  const panelHeight = chart.panelHeight ?? 220;
  const left = 64;
  const right = 150; // legend
  const subtitle = chart.subtitle ?? [];
  const top = 48 + subtitle.length * 15;
  const gap = 46;
  const bottom = 44;
  const plotW = width - left - right;
  const height = top + chart.panels.length * panelHeight + (chart.panels.length - 1) * gap + bottom;
  const sx = (x: number): number => left + ((x - chart.xMin) / (chart.xMax - chart.xMin)) * plotW;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${left}" y="20" font-size="15" font-weight="bold">${esc(chart.title)}</text>`,
  );
  subtitle.forEach((line, i) => out.push(`<text x="${left}" y="${36 + i * 15}" font-size="11" fill="#444">${esc(line)}</text>`));
  const xStep = tickStep(chart.xMax - chart.xMin, 10);

  chart.panels.forEach((panel, pi) => {
    const y0 = top + pi * (panelHeight + gap);
    let dataMax = 0;
    for (const s of panel.series) for (const [, y] of s.points) if (Number.isFinite(y) && y > dataMax) dataMax = y;
    const yMax = panel.yMax ?? niceMax(dataMax);
    const yMin = panel.yMin;
    const sy = (y: number): number => y0 + panelHeight - ((Math.min(Math.max(y, yMin), yMax) - yMin) / (yMax - yMin)) * panelHeight;
    out.push(`<g>`);
    out.push(`<text x="${left}" y="${y0 - 8}" font-size="12" font-weight="bold">${esc(panel.title)}</text>`);
    out.push(`<rect x="${left}" y="${y0}" width="${plotW}" height="${panelHeight}" fill="none" stroke="#999"/>`);
    const yStep = tickStep(yMax - yMin, 5);
    for (let v = yMin; v <= yMax + yStep * 1e-9; v += yStep) {
      const y = sy(v);
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${fmt(y)}" y2="${fmt(y)}" stroke="#eee"/>`);
      out.push(`<text x="${left - 6}" y="${fmt(y + 4)}" text-anchor="end" fill="#333">${tickLabel(v, yStep)}</text>`);
    }
    for (let v = Math.ceil(chart.xMin / xStep) * xStep; v <= chart.xMax + 1e-9; v += xStep) {
      const x = sx(v);
      out.push(`<line x1="${fmt(x)}" x2="${fmt(x)}" y1="${y0}" y2="${y0 + panelHeight}" stroke="#f2f2f2"/>`);
      out.push(`<text x="${fmt(x)}" y="${y0 + panelHeight + 14}" text-anchor="middle" fill="#333">${tickLabel(v, xStep)}</text>`);
    }
    if (panel.yLabel) {
      out.push(`<text transform="translate(${left - 44},${y0 + panelHeight / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(panel.yLabel)}</text>`);
    }
    for (const h of panel.hlines ?? []) {
      const y = sy(h.y);
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${fmt(y)}" y2="${fmt(y)}" stroke="${h.color ?? '#c00'}" stroke-dasharray="2,3"/>`);
      out.push(`<text x="${left + plotW - 4}" y="${fmt(y - 4)}" text-anchor="end" fill="${h.color ?? '#c00'}">${esc(h.label)}</text>`);
    }
    for (const v of chart.vlines ?? []) {
      const x = sx(v.x);
      out.push(`<line x1="${fmt(x)}" x2="${fmt(x)}" y1="${y0}" y2="${y0 + panelHeight}" stroke="#c00" stroke-dasharray="5,4"/>`);
      if (pi === 0) out.push(`<text x="${fmt(x + 4)}" y="${y0 + 12}" fill="#c00">${esc(v.label)}</text>`);
    }
    for (const s of panel.series) {
      const segments: string[][] = [[]];
      for (const [x, y] of s.points) {
        if (!Number.isFinite(y)) {
          segments.push([]);
          continue;
        }
        (segments[segments.length - 1] as string[]).push(`${fmt(sx(x))},${fmt(sy(y))}`);
      }
      for (const seg of segments) {
        if (seg.length < 2) continue;
        out.push(
          `<polyline fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.6}"${s.dashed ? ' stroke-dasharray="6,3"' : ''} points="${seg.join(' ')}"/>`,
        );
      }
    }
    panel.series.forEach((s, si) => {
      const ly = y0 + 10 + si * 16;
      const lx = left + plotW + 12;
      out.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="6,3"' : ''}/>`);
      out.push(`<text x="${lx + 24}" y="${ly + 4}">${esc(s.label)}</text>`);
    });
    out.push(`</g>`);
  });
  out.push(`<text x="${left + plotW / 2}" y="${height - 8}" text-anchor="middle" fill="#333">${esc(chart.xLabel)}</text>`);
  out.push(`</svg>`);
  return `${out.join('\n')}\n`;
}
