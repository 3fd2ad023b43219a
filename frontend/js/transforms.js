// Pure functions from a run's columns (columns.js) to Plotly traces.
//
// Every builder returns the same number of traces in the same order whatever the data, so a
// panel can draw `builder(cols)` once and then extendTraces with `extendPayload(builder(delta))`:
// the delta's traces carry exactly the new points. No DOM here, so node can test it.

import { DENSITY_FLOOR } from "./columns.js";

// Okabe-Ito: distinguishable under the common colour-vision deficiencies.
export const OKABE_ITO = [
  "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
];
export const RUN_COLORS = OKABE_ITO.slice(0, 4);

/** rgba() of a #rrggbb colour (Plotly 4 wants valid CSS colours). */
export function withAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

const line = (name, x, y, color, extra = {}) => ({
  type: "scatter", mode: "lines", name, x, y, line: { color, width: 1.6 }, ...extra,
});

/** Loss (left axis) and accuracy (right axis), training batch and held-out. */
export function lossTraces(cols) {
  const ev = cols.evals;
  const evalMode = { mode: "lines+markers", marker: { size: 4 } };
  const batchVisible = cols.hasEvalBatch ? true : "legendonly";
  return [
    line("train loss", cols.step, cols.loss, OKABE_ITO[0]),
    line("held-out loss", ev.step, ev.loss, OKABE_ITO[0], { ...evalMode, line: { color: OKABE_ITO[0], dash: "dash", width: 1.6 } }),
    line("train acc", cols.step, cols.acc, OKABE_ITO[1], { yaxis: "y2" }),
    line("held-out acc", ev.step, ev.acc, OKABE_ITO[1], { ...evalMode, yaxis: "y2", line: { color: OKABE_ITO[1], dash: "dash", width: 1.6 } }),
    // Norms with running statistics: the same held-out split with batch statistics. The gap
    // to "held-out acc" is what breaks BN at small or one-class batches.
    line("held-out acc (batch stats)", ev.step, ev.acc_batch, OKABE_ITO[2], { ...evalMode, yaxis: "y2", visible: batchVisible, showlegend: cols.hasEvalBatch, line: { color: OKABE_ITO[2], dash: "dot", width: 1.6 } }),
    line("held-out loss (batch stats)", ev.step, ev.loss_batch, OKABE_ITO[3], { ...evalMode, visible: batchVisible, showlegend: cols.hasEvalBatch, line: { color: OKABE_ITO[3], dash: "dot", width: 1.6 } }),
  ];
}

/** Distribution over steps of one layer: x = step, y = fixed bin centres, colour = log density. */
export function heatmapTraces(cols, name) {
  const layer = cols.layers[name];
  return [{
    type: "heatmap", name, x: cols.step, y: layer.centers, z: layer.density, transpose: true,
    colorscale: "Viridis", zmin: Math.log10(DENSITY_FLOOR), zmax: 0, zsmooth: false,
    colorbar: {
      thickness: 10, len: 0.9, outlinewidth: 0,
      tickvals: [-4, -3, -2, -1, 0], ticktext: ["≤1e-4", "0.001", "0.01", "0.1", "1"],
    },
    hovertemplate: "step %{x}<br>value %{y:.3g}<br>log10 share %{z:.2f}<extra></extra>",
  }];
}

/** The BN paper's Figure 1b/c: 15th, 50th and 85th percentile of the activation input. */
export function percentileTraces(cols, name, color = OKABE_ITO[0], label = "") {
  const layer = cols.layers[name];
  const p = label ? `${label} ` : "";
  return [
    line(`${p}p85`, cols.step, layer.p85, color, { line: { color, width: 0.8 }, showlegend: false, legendgroup: p }),
    line(`${p}p15–p85`, cols.step, layer.p15, color, { line: { color, width: 0.8 }, fill: "tonexty", fillcolor: withAlpha(color, 0.18), legendgroup: p }),
    line(`${p}median`, cols.step, layer.p50, color, { line: { color, width: 2 }, legendgroup: p }),
  ];
}

/** Gradient norm of the layer's weights, of its activation, and the update ratio (log axis). */
export function gradTraces(cols, name) {
  const layer = cols.layers[name];
  return [
    line("‖∇W‖", cols.step, layer.grad_norm, OKABE_ITO[0]),
    line("‖∇act‖", cols.step, layer.act_grad_norm, OKABE_ITO[1]),
    line("‖ΔW‖/‖W‖", cols.step, layer.update_ratio, OKABE_ITO[2], { line: { color: OKABE_ITO[2], width: 1.2, dash: "dot" } }),
  ];
}

/** The norm's own scale g and shift b (the "second shift and scale"), mean and std. */
export function gbTraces(cols, name) {
  const layer = cols.layers[name];
  return [
    line("g mean", cols.step, layer.g_mean, OKABE_ITO[0]),
    line("g std", cols.step, layer.g_std, OKABE_ITO[0], { line: { color: OKABE_ITO[0], width: 1.2, dash: "dot" } }),
    line("b mean", cols.step, layer.b_mean, OKABE_ITO[1]),
    line("b std", cols.step, layer.b_std, OKABE_ITO[1], { line: { color: OKABE_ITO[1], width: 1.2, dash: "dot" } }),
  ];
}

/** Wasserstein-1 distance of the layer's histogram to the previous and to the first probe. */
export function driftTraces(cols, name) {
  const layer = cols.layers[name];
  return [
    line("W1 to previous", cols.step, layer.w1_prev, OKABE_ITO[2]),
    line("W1 to first", cols.step, layer.w1_first, OKABE_ITO[3]),
  ];
}

// The layers × steps overview: which per-layer series it shows, and how. Graded saturation
// (1 − mean slope / peak slope, normcore/probe/stats.py) comes first: it sees a sigmoid layer
// leave its linear region long before any value passes the strict cut (docs/saturation.md),
// which stays as an option ("strict cut": slope below 5 % of its peak).
export const OVERVIEW_METRICS = {
  sat_graded: { label: "saturation (graded)", key: "sat_graded", zmin: 0, zmax: 1, colorscale: "Cividis" },
  sat: { label: "saturation (strict cut)", key: "sat", zmin: 0, zmax: 1, colorscale: "Cividis" },
  sat_pre: { label: "strict cut before norm", key: "sat_pre", zmin: 0, zmax: 1, colorscale: "Cividis" },
  w1_first: { label: "drift (W1 to first)", key: "w1_first", colorscale: "Cividis" },
  grad_norm: { label: "log10 ‖∇W‖", key: "grad_norm", log: true, colorscale: "Cividis" },
};

/**
 * The overview's metric until the user picks one: graded saturation when the run has it,
 * else the strict cut (runs stored before the graded column existed, or watched models whose
 * activation the probe does not know).
 */
export function defaultOverviewMetric(cols) {
  const graded = cols.layerNames.some((n) => hasValues(cols.layers[n].sat_graded ?? []));
  return graded ? "sat_graded" : "sat";
}

const log10OrNull = (v) => (v != null && v > 0 ? Math.log10(v) : null);

/** Layers × steps heatmap of one metric; z columns are steps (transpose) so it can extend. */
export function overviewTraces(cols, metric = "sat") {
  const m = OVERVIEW_METRICS[metric];
  const z = cols.step.map((_, i) =>
    cols.layerNames.map((n) => {
      const v = cols.layers[n][m.key][i];
      return m.log ? log10OrNull(v) : v ?? null;
    }),
  );
  const trace = {
    type: "heatmap", name: m.label, x: cols.step, y: cols.layerNames, z, transpose: true,
    colorscale: m.colorscale, xgap: 0, ygap: 1,
    colorbar: { thickness: 10, len: 0.9, outlinewidth: 0 },
    hovertemplate: `step %{x}<br>layer %{y}<br>${m.label} %{z:.3g}<extra></extra>`,
  };
  if (m.zmin !== undefined) Object.assign(trace, { zmin: m.zmin, zmax: m.zmax });
  return [trace];
}

/**
 * The extendTraces argument for traces built from a delta: {x: [[...]], y: [[...]]} and the
 * trace indices. `keys` are the arrays that grow (a heatmap's y, its bin centres, does not).
 */
export function extendPayload(traces, keys = ["x", "y"]) {
  const update = {};
  for (const k of keys) update[k] = traces.map((t) => t[k] ?? []);
  return { update, indices: traces.map((_, i) => i) };
}

export const HEATMAP_KEYS = ["x", "z"];

/** True when a series has at least one finite value (e.g. g/b exist only for affine norms). */
export function hasValues(series) {
  return series.some((v) => v != null && Number.isFinite(v));
}

// ---- Compare: several runs on shared axes -------------------------------------------------

/** One line per run of a run-level series (e.g. "loss") or eval series ("eval.acc"). */
export function compareRunTraces(runs, key) {
  return runs.map(({ cols, label, color }) => {
    const [x, y] = key.startsWith("eval.")
      ? [cols.evals.step, cols.evals[key.slice(5)]]
      : [cols.step, cols[key]];
    const extra = key.startsWith("eval.") ? { mode: "lines+markers", marker: { size: 4 } } : {};
    return line(label, x, y, color, extra);
  });
}

/** One line per run of a per-layer series; runs without that layer draw nothing. */
export function compareLayerTraces(runs, name, key) {
  return runs.map(({ cols, label, color }) => {
    const layer = cols.layers[name];
    return line(label, layer ? cols.step : [], layer ? layer[key] : [], color);
  });
}

/** Percentile bands of one layer, one band per run. */
export function comparePercentileTraces(runs, name) {
  return runs.flatMap(({ cols, label, color }) =>
    cols.layers[name] ? percentileTraces(cols, name, color, label) : [],
  );
}

/**
 * The y range covering every run's heatmap rows for a layer (bins and the under/overflow rows
 * around them), so heatmaps share axes.
 */
export function sharedRange(runs, name) {
  const layers = runs.map((r) => r.cols.layers[name]).filter(Boolean);
  if (!layers.length) return null;
  const lo = layers.map((l) => l.centers[0] ?? l.lo);
  const hi = layers.map((l) => l.centers.at(-1) ?? l.hi);
  const half = layers.map((l) => (l.centers.length > 1 ? (l.centers[1] - l.centers[0]) / 2 : 0));
  return [Math.min(...lo.map((v, i) => v - half[i])), Math.max(...hi.map((v, i) => v + half[i]))];
}

/**
 * A log axis for small charts. Few ticks make Plotly label whole decades, or 2 and 5 within
 * them, instead of every digit; it re-chooses as extendTraces widens the range.
 */
export const LOG_AXIS = { type: "log", nticks: 3, exponentformat: "power" };
