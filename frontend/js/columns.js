// Columns: the browser's copy of a run's frames, stored column-wise (one array per metric).
//
// Every line series has its own x (steps): the server's /series downsamples each series on
// its own (MinMaxLTTB keeps its extremes, app/downsample.py), so `xs[key]` holds the steps of
// `cols[key]` and `layer.xs[key]` those of `layer[key]`. Heatmaps sit on bucket grids:
// `cols.step` for the layers x steps overview (its values `layer.max[key]`, each bucket's
// maximum) and `layer.hx` for a layer's distribution (`layer.density`). Live frames append one
// point to every series and one column to every grid.
//
// Why columns: Plotly wants arrays per trace, and extendTraces wants "the new points of each
// trace". Keeping frames column-wise makes both a slice, and lets the store stay bounded: the
// server downsamples the history, and a live run that outgrows `cap` points is thinned here
// (every other point dropped, the first and last kept, and from then on only every
// `stride`-th live frame kept). The browser never holds more points than it draws.
//
// Pure: no DOM, no fetch. Mutates only the columns object it is given.

export const DEFAULT_CAP = 1000;
// Density below this fraction of a layer's values shows as the floor colour (log10 scale).
export const DENSITY_FLOOR = 1e-4;

const LAYER_KEYS = [
  "mean", "std", "p15", "p50", "p85", "sat", "sat_pre", "grad_norm", "act_grad_norm",
  "weight_norm", "update_ratio", "g_mean", "g_std", "b_mean", "b_std", "w1_prev",
  "w1_first", "nonfinite", "sat_graded", "out_mean", "out_std",
];
const EVAL_KEYS = ["loss", "acc", "loss_batch", "acc_batch"];
const RUN_KEYS = ["loss", "acc", "lr"];
// The overview's metrics: kept per bucket as the maximum (see app/downsample.py).
export const MAX_KEYS = ["sat_graded", "sat", "sat_pre", "w1_first", "grad_norm"];
const TERMINAL_FRAME = new Set(["completed", "diverged"]);

/** An empty store. `cap` bounds the points per series. */
export function emptyColumns(cap = DEFAULT_CAP) {
  return {
    cap, stride: 1, sinceKept: 0, lastSeq: -1, lastStep: 0, status: null, device: null,
    stepsPerS: null,
    step: [], seq: [], loss: [], acc: [], lr: [], xs: { loss: [], acc: [], lr: [] },
    evals: { step: [], loss: [], acc: [], loss_batch: [], acc_batch: [] },
    hasEvalBatch: false,
    layerNames: [], layers: {},
  };
}

/**
 * Row centres of a layer's heatmap: one row below lo for the underflow, the fixed equal bins
 * on [lo, hi], one row above hi for the overflow. The two edge rows show the mass that left
 * the bins (a drifting or saturating layer) instead of letting it vanish.
 */
export function binCenters(hist) {
  const n = hist.counts.length;
  const w = (hist.hi - hist.lo) / n;
  return Array.from({ length: n + 2 }, (_, i) => hist.lo + (i - 0.5) * w);
}

/**
 * One heatmap column, aligned with binCenters: log10 of each row's share of the layer's
 * values (underflow, bins, overflow). Empty rows sit at log10(DENSITY_FLOOR); a histogram
 * without values gives nulls (a gap).
 */
export function densityColumn(hist) {
  const rows = [hist.under ?? 0, ...hist.counts, hist.over ?? 0].map((c) => c ?? 0);
  const total = rows.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return rows.map(() => null);
  return rows.map((c) => Math.log10(Math.max(c / total, DENSITY_FLOOR)));
}

function newLayer(name, hist) {
  const layer = { name, lo: hist?.lo ?? 0, hi: hist?.hi ?? 1, centers: [], density: [], hx: [], xs: {}, max: {} };
  layer.centers = hist ? binCenters(hist) : [];
  for (const k of LAYER_KEYS) {
    layer[k] = [];
    layer.xs[k] = [];
  }
  for (const k of MAX_KEYS) layer.max[k] = [];
  return layer;
}

function pushFrame(cols, frame) {
  cols.step.push(frame.step);
  cols.seq.push(frame.seq);
  for (const k of RUN_KEYS) {
    cols[k].push(frame[k] ?? null);
    cols.xs[k].push(frame.step);
  }
  const byName = new Map((frame.layers ?? []).map((l) => [l.name, l]));
  for (const name of cols.layerNames) {
    const src = byName.get(name);
    const layer = cols.layers[name];
    for (const k of LAYER_KEYS) {
      layer[k].push(src?.[k] ?? null);
      layer.xs[k].push(frame.step);
    }
    for (const k of MAX_KEYS) layer.max[k].push(src?.[k] ?? null);
    if (src?.hist && !layer.centers.length) Object.assign(layer, { lo: src.hist.lo, hi: src.hist.hi, centers: binCenters(src.hist) });
    layer.hx.push(frame.step);
    layer.density.push(src?.hist ? densityColumn(src.hist) : layer.centers.map(() => null));
  }
}

function pushEval(cols, frame) {
  const ev = frame.eval;
  cols.evals.step.push(frame.step);
  for (const k of EVAL_KEYS) cols.evals[k].push(ev[k] ?? null);
}

function registerLayers(cols, frame) {
  let added = false;
  for (const l of frame.layers ?? []) {
    if (!(l.name in cols.layers)) {
      cols.layers[l.name] = newLayer(l.name, l.hist);
      cols.layerNames.push(l.name);
      added = true;
    } else if (!cols.layers[l.name].centers.length && l.hist?.counts?.length) {
      // known by name before any of its values came (a load that ended before its frames):
      // its heatmap's rows come with its first histogram
      const layer = cols.layers[l.name];
      Object.assign(layer, { lo: l.hist.lo, hi: l.hist.hi, centers: binCenters(l.hist) });
      added = true;
    }
  }
  if (added) {
    // A layer that appears late gets nulls for the steps before it: all series stay aligned.
    for (const name of cols.layerNames) {
      const layer = cols.layers[name];
      while (layer.max.sat.length < cols.step.length) {
        const i = layer.max.sat.length;
        for (const k of MAX_KEYS) layer.max[k].push(null);
        for (const k of LAYER_KEYS) {
          layer[k].push(null);
          layer.xs[k].push(cols.step[i]);
        }
        layer.hx.push(cols.step[i]);
        layer.density.push(layer.centers.map(() => null));
      }
    }
  }
  return added;
}

/** A store holding the same layer metadata as `cols` and no points: the shape of a delta. */
function emptyLike(cols) {
  const delta = emptyColumns(cols.cap);
  delta.layerNames = [...cols.layerNames];
  for (const name of cols.layerNames) {
    const src = cols.layers[name];
    delta.layers[name] = newLayer(name, null);
    Object.assign(delta.layers[name], { lo: src.lo, hi: src.hi, centers: src.centers });
  }
  return delta;
}

/**
 * Add frames (any order, duplicates and already-seen seqs ignored) to `cols`.
 * Returns the delta: a columns object holding only the points added, for extendTraces, with
 * `reshape: true` when the caller must redraw in full instead (new layers, first batch-stats
 * evaluation, or the store was thinned).
 */
export function addFrames(cols, frames) {
  const fresh = frames
    .filter((f) => f && Number.isFinite(f.seq) && f.seq > cols.lastSeq)
    .sort((a, b) => a.seq - b.seq);
  let reshape = false;
  for (const f of fresh) if (registerLayers(cols, f)) reshape = true;
  const delta = emptyLike(cols);
  const hadEvalBatch = cols.hasEvalBatch;
  for (const f of fresh) {
    if (f.seq <= cols.lastSeq) continue; // duplicate within the batch
    cols.lastSeq = f.seq;
    cols.lastStep = f.step;
    cols.status = f.status ?? cols.status;
    cols.device = f.device ?? cols.device;
    cols.stepsPerS = f.steps_per_s ?? cols.stepsPerS;
    if (f.eval) {
      if (f.eval.loss_batch != null) cols.hasEvalBatch = true;
      pushEval(cols, f);
      pushEval(delta, f);
    }
    cols.sinceKept += 1;
    const last = fresh[fresh.length - 1] === f;
    if (cols.sinceKept >= cols.stride || TERMINAL_FRAME.has(f.status) || (last && cols.step.length === 0)) {
      cols.sinceKept = 0;
      pushFrame(cols, f);
      pushFrame(delta, f);
    }
  }
  delta.hasEvalBatch = cols.hasEvalBatch;
  if (cols.hasEvalBatch !== hadEvalBatch) reshape = true;
  if (thin(cols)) reshape = true;
  delta.reshape = reshape;
  return delta;
}

/** Indices kept when halving n points: every other one, the first and the last. */
export function halfIndices(n) {
  const keep = [];
  for (let i = 0; i < n; i += 2) keep.push(i);
  if (n > 0 && keep[keep.length - 1] !== n - 1) keep.push(n - 1);
  return keep;
}

const pick = (arr, idx) => idx.map((i) => arr[i]);

/** Halve the series while they exceed the cap; returns true when anything was dropped. */
export function thin(cols) {
  let changed = false;
  // Each series and grid is halved on its own: after a /series load their lengths differ.
  const halve = (owner, k, xs) => {
    if (owner[k].length <= cols.cap) return false;
    const idx = halfIndices(owner[k].length);
    owner[k] = pick(owner[k], idx);
    if (xs) xs[k] = pick(xs[k], idx);
    return true;
  };
  while (cols.step.length > cols.cap) {
    const idx = halfIndices(cols.step.length);
    for (const k of ["step", "seq"]) cols[k] = pick(cols[k], idx);
    for (const name of cols.layerNames) {
      const max = cols.layers[name].max;
      for (const k of MAX_KEYS) max[k] = pick(max[k], idx);
    }
    cols.stride *= 2;
    changed = true;
  }
  for (const k of RUN_KEYS) while (halve(cols, k, cols.xs)) changed = true;
  for (const name of cols.layerNames) {
    const layer = cols.layers[name];
    for (const k of LAYER_KEYS) while (halve(layer, k, layer.xs)) changed = true;
    while (layer.density.length > cols.cap) {
      const idx = halfIndices(layer.density.length);
      layer.density = pick(layer.density, idx);
      layer.hx = pick(layer.hx, idx);
      changed = true;
    }
  }
  while (cols.evals.step.length > cols.cap) {
    const idx = halfIndices(cols.evals.step.length);
    for (const k of ["step", ...EVAL_KEYS]) cols.evals[k] = pick(cols.evals[k], idx);
    changed = true;
  }
  return changed;
}

/** The latest non-null value of a series (for summaries), or null. */
export function latest(series) {
  for (let i = series.length - 1; i >= 0; i--) if (series[i] != null) return series[i];
  return null;
}

/**
 * Columns from /series answers (app/series.py) over one step range: `answers` may split the
 * fields (the overview's bucket maxima of every layer in one, an open layer's lines and
 * histogram in another); each layer's distribution keeps its own bucket grid.
 */
export function fromSeries(answers, cap = DEFAULT_CAP) {
  const cols = emptyColumns(cap);
  const nonNull = (a) => a.some((v) => v != null);
  for (const ans of answers) {
    if (!ans) continue;
    const last = ans.last;
    if (last && last.seq > cols.lastSeq) {
      Object.assign(cols, { lastSeq: last.seq, lastStep: last.step, status: last.status ?? cols.status });
      cols.device = last.device ?? cols.device;
      cols.stepsPerS = last.steps_per_s ?? cols.stepsPerS;
    }
    for (const name of ans.layers ?? []) {
      if (!(name in cols.layers)) {
        cols.layers[name] = newLayer(name, null);
        cols.layerNames.push(name);
      }
    }
    for (const [k, line] of Object.entries(ans.run ?? {})) {
      if (!RUN_KEYS.includes(k)) continue;
      cols[k] = line.y;
      cols.xs[k] = line.step;
    }
    if (ans.eval) {
      cols.evals = ans.eval;
      cols.hasEvalBatch = nonNull(ans.eval.loss_batch);
    }
    const grid = ans.heat?.step ?? [];
    for (const [name, data] of Object.entries(ans.layer ?? {})) {
      const layer = cols.layers[name];
      for (const [k, v] of Object.entries(data)) {
        if (k === "hist") {
          const bins = v.counts[0] ? v.counts[0].length - 2 : 0;
          // no rows, no bins: the rows come with the layer's first histogram (registerLayers)
          if (bins) Object.assign(layer, { lo: v.lo, hi: v.hi, centers: binCenters({ lo: v.lo, hi: v.hi, counts: new Array(bins) }) });
          layer.hx = grid.slice();
          layer.density = v.counts.map((row) => densityColumn({ under: row[0], counts: row.slice(1, -1), over: row.at(-1) }));
        } else if (k.startsWith("max:")) {
          layer.max[k.slice(4)] = v;
          if (cols.step.length !== grid.length) {
            cols.step = grid.slice();
            cols.seq = grid.map(() => null);
          }
        } else if (LAYER_KEYS.includes(k)) {
          layer[k] = v.y;
          layer.xs[k] = v.step;
        }
      }
    }
  }
  return cols;
}
