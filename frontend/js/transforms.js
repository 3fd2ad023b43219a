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
    line("train loss", cols.xs.loss, cols.loss, OKABE_ITO[0]),
    line("held-out loss", ev.step, ev.loss, OKABE_ITO[0], { ...evalMode, line: { color: OKABE_ITO[0], dash: "dash", width: 1.6 } }),
    line("train acc", cols.xs.acc, cols.acc, OKABE_ITO[1], { yaxis: "y2" }),
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
    type: "heatmap", name, x: layer.hx, y: layer.centers, z: layer.density, transpose: true,
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
    line(`${p}p85`, layer.xs.p85, layer.p85, color, { line: { color, width: 0.8 }, showlegend: false, legendgroup: p }),
    line(`${p}p15–p85`, layer.xs.p15, layer.p15, color, { line: { color, width: 0.8 }, fill: "tonexty", fillcolor: withAlpha(color, 0.18), legendgroup: p }),
    line(`${p}median`, layer.xs.p50, layer.p50, color, { line: { color, width: 2 }, legendgroup: p }),
  ];
}

/** Gradient norm of the layer's weights, of its activation, and the update ratio (log axis). */
export function gradTraces(cols, name) {
  const layer = cols.layers[name];
  return [
    line("‖∇W‖", layer.xs.grad_norm, layer.grad_norm, OKABE_ITO[0]),
    line("‖∇act‖", layer.xs.act_grad_norm, layer.act_grad_norm, OKABE_ITO[1]),
    line("‖ΔW‖/‖W‖", layer.xs.update_ratio, layer.update_ratio, OKABE_ITO[2], { line: { color: OKABE_ITO[2], width: 1.2, dash: "dot" } }),
  ];
}

/** The norm's own scale g and shift b (the "second shift and scale"), mean and std. */
export function gbTraces(cols, name) {
  const layer = cols.layers[name];
  return [
    line("g mean", layer.xs.g_mean, layer.g_mean, OKABE_ITO[0]),
    line("g std", layer.xs.g_std, layer.g_std, OKABE_ITO[0], { line: { color: OKABE_ITO[0], width: 1.2, dash: "dot" } }),
    line("b mean", layer.xs.b_mean, layer.b_mean, OKABE_ITO[1]),
    line("b std", layer.xs.b_std, layer.b_std, OKABE_ITO[1], { line: { color: OKABE_ITO[1], width: 1.2, dash: "dot" } }),
  ];
}

/** Wasserstein-1 distance of the layer's histogram to the previous and to the first probe. */
export function driftTraces(cols, name) {
  const layer = cols.layers[name];
  return [
    line("W1 to previous", layer.xs.w1_prev, layer.w1_prev, OKABE_ITO[2]),
    line("W1 to first", layer.xs.w1_first, layer.w1_first, OKABE_ITO[3]),
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
  // line values (frames pushed live) or bucket maxima (the server's downsampled overview)
  const graded = cols.layerNames.some((n) => hasValues(cols.layers[n].sat_graded ?? [])
    || hasValues(cols.layers[n].max?.sat_graded ?? []));
  return graded ? "sat_graded" : "sat";
}

const log10OrNull = (v) => (v != null && v > 0 ? Math.log10(v) : null);

/**
 * Layers × steps heatmap of one metric, each cell its bucket's maximum (the server's
 * aggregation, so one saturated step is not averaged away); z columns are steps (transpose)
 * so it can extend.
 */
export function overviewTraces(cols, metric = "sat") {
  const m = OVERVIEW_METRICS[metric];
  const z = cols.step.map((_, i) =>
    cols.layerNames.map((n) => {
      const v = cols.layers[n].max[m.key][i];
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
      : [cols.xs[key], cols[key]];
    const extra = key.startsWith("eval.") ? { mode: "lines+markers", marker: { size: 4 } } : {};
    return line(label, x, y, color, extra);
  });
}

/** One line per run of a per-layer series; runs without that layer draw nothing. */
export function compareLayerTraces(runs, name, key) {
  return runs.map(({ cols, label, color }) => {
    const layer = cols.layers[name];
    return line(label, layer ? layer.xs[key] : [], layer ? layer[key] : [], color);
  });
}

/**
 * Percentiles of one layer, per run: the median solid, p15 and p85 as thin dotted outlines.
 * No fills: four overlapping translucent bands mix into grey.
 */
export function comparePercentileTraces(runs, name) {
  return runs.flatMap(({ cols, label, color }) => {
    const layer = cols.layers[name];
    if (!layer) return [];
    const edge = { line: { color, width: 0.9, dash: "dot" }, showlegend: false, legendgroup: label };
    return [
      line(`${label} p85`, layer.xs.p85, layer.p85, color, edge),
      line(`${label} p15`, layer.xs.p15, layer.p15, color, edge),
      line(`${label} median (p15, p85 dotted)`, layer.xs.p50, layer.p50, color, { line: { color, width: 2 }, legendgroup: label }),
    ];
  });
}

/** The norm's g (solid) and b (dashed) means per run; runs without g and b draw nothing. */
export function compareGbTraces(runs, name) {
  const has = runs.filter(({ cols }) => cols.layers[name] && hasValues(cols.layers[name].g_mean));
  const g = compareLayerTraces(has, name, "g_mean").map((t) => ({ ...t, name: `${t.name} g`, legendgroup: t.name }));
  const b = compareLayerTraces(has, name, "b_mean").map((t) => ({
    ...t, name: `${t.name} b`, legendgroup: t.name, line: { ...t.line, dash: "dash" },
  }));
  return [...g, ...b];
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

/**
 * The step range a Plotly relayout event asks for: [from, to] (whole steps, widened to the
 * steps that contain the edges) on a zoom or pan of the x axis, null on a reset (autorange),
 * undefined when the event does not touch the x axis (a y zoom, a resize).
 */
export function stepRange(ev) {
  if (!ev) return undefined;
  if (ev["xaxis.autorange"] || ev.autosize) return ev["xaxis.autorange"] ? null : undefined;
  const a = ev["xaxis.range[0]"] ?? ev["xaxis.range"]?.[0];
  const b = ev["xaxis.range[1]"] ?? ev["xaxis.range"]?.[1];
  if (!Number.isFinite(a) || !Number.isFinite(b)) return undefined;
  return [Math.max(0, Math.floor(Math.min(a, b))), Math.ceil(Math.max(a, b))];
}

/**
 * What counts as saturated for a run's activation (the catalog's `saturation`, from
 * normcore.stats): the values to draw as lines on a distribution and the rule in words.
 */
export function saturationMarks(rule) {
  if (!rule) return { lines: [], text: "" };
  if (rule.rule === "abs_above") return { lines: [-rule.at, rule.at], text: `saturated: |x| > ${rule.at}` };
  return { lines: [rule.at], text: `saturated (dead): x ≤ ${rule.at}` };
}

/**
 * The y range of a distribution heatmap's occupied rows (any step with a share above the
 * floor), a row of margin each side; null when nothing is occupied. A layer that fills 8 of
 * 64 bins then fills the chart, and its drift shows.
 */
export function occupiedRange(layer) {
  const floor = Math.log10(DENSITY_FLOOR);
  let lo = Infinity;
  let hi = -Infinity;
  for (const col of layer.density) {
    for (let i = 0; i < col.length; i++) {
      if (col[i] != null && col[i] > floor) {
        if (i < lo) lo = i;
        if (i > hi) hi = i;
      }
    }
  }
  if (lo > hi || layer.centers.length < 2) return null;
  const w = layer.centers[1] - layer.centers[0];
  return [layer.centers[Math.max(0, lo - 1)] - w / 2, layer.centers[Math.min(layer.centers.length - 1, hi + 1)] + w / 2];
}
