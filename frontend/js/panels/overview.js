// The layers × steps overview, the run view's entry point: graded saturation, the strict cut
// after or before the norm (or drift, or gradient norm) for every layer at once. Clicking a cell opens the layer.

import * as P from "../plot.js";
import { defaultOverviewMetric, extendPayload, HEATMAP_KEYS, OVERVIEW_METRICS, overviewTraces } from "../transforms.js";

export const METRICS = OVERVIEW_METRICS;
export const defaultMetric = defaultOverviewMetric;

/** Height that keeps rows readable from 2 to 30+ layers. */
export function height(nLayers) {
  return Math.max(240, Math.min(520, 90 + 22 * nLayers));
}

/** `sat` (transforms.saturationMarks) puts the strict cut's rule in the colour bar's title (the
 * strict maps only: the graded map is 1 − mean slope / peak slope, not a cut). */
export function draw(el, cols, metric = "sat", { title, xrange, sat } = {}) {
  el.style.height = `${height(cols.layerNames.length)}px`;
  const traces = overviewTraces(cols, metric);
  if (sat?.text && (metric === "sat" || metric === "sat_pre")) traces[0].colorbar = { ...traces[0].colorbar, title: { text: sat.text.replace(": ", "<br>"), side: "right", font: { size: 10 } } };
  if (metric === "sat_graded") traces[0].colorbar = { ...traces[0].colorbar, title: { text: "1 − slope / peak", side: "right", font: { size: 10 } } };
  return P.draw(el, traces, P.layout(title ?? `layers × steps: ${OVERVIEW_METRICS[metric].label}`, {
    xaxis: { title: { text: "step", standoff: 4 }, range: xrange, automargin: true },
    yaxis: { autorange: "reversed", type: "category", automargin: true, ticks: "" },
    annotations: cols.step.length ? [] : P.note("waiting for the first frame…"),
  }));
}

export function extend(el, delta, metric = "sat") {
  return P.extend(el, extendPayload(overviewTraces(delta, metric), HEATMAP_KEYS));
}

/** Call `pick(layerName, step)` when a cell is clicked. */
export function onPick(el, pick) {
  el.on("plotly_click", (ev) => {
    const pt = ev?.points?.[0];
    if (pt) pick(String(pt.y), Number(pt.x));
  });
}
