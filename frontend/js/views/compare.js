// Compare: two to four runs on shared axes, live while they run. Line panels overlay the runs
// (one Okabe-Ito colour each); the distribution heatmaps and saturation maps sit side by side
// on the same y range and colour scale.

import { isTerminal } from "../api.js";
import { badge, errorBox, fill, h } from "../dom.js";
import { RunFeed } from "../feed.js";
import { distinguishingLabels, isWatched } from "../format.js";
import * as heatmap from "../panels/heatmap.js";
import * as overview from "../panels/overview.js";
import * as P from "../plot.js";
import { href } from "../router.js";
import {
  compareGbTraces, compareLayerTraces, comparePercentileTraces, compareRunTraces, LOG_AXIS,
  OVERVIEW_METRICS, RUN_COLORS, sharedRange, stepRange,
} from "../transforms.js";

const CAP = 600; // points per run: four runs stay light
// What Compare's panels draw of the picked layer (RunFeed loads the rest for every run).
const LAYER_FIELDS = ["p15", "p50", "p85", "sat_graded", "sat", "sat_pre", "grad_norm", "w1_first", "g_mean", "b_mean", "hist"];
// The saturation Compare draws, as the run view's overview offers it (docs/saturation.md):
// graded first, the strict cut (reads ~0 until units are pinned) and the cut before the norm.
const SATURATIONS = ["sat_graded", "sat", "sat_pre"];
const REDRAW_MS = 400;

const LINE_PANELS = [
  ["loss", "training loss", (runs) => compareRunTraces(runs, "loss"), {}],
  ["eval-loss", "held-out loss", (runs) => compareRunTraces(runs, "eval.loss"), {}],
  ["eval-acc", "held-out accuracy", (runs) => compareRunTraces(runs, "eval.acc"), { yaxis: { range: [0, 1.02] } }],
  ["percentiles", "15 / 50 / 85th percentile", (runs, l) => comparePercentileTraces(runs, l), {}],
  ["sat", "saturation", (runs, l, sat) => compareLayerTraces(runs, l, sat), { yaxis: { range: [0, 1.02] } }],
  ["grad", "‖∇W‖ (log)", (runs, l) => compareLayerTraces(runs, l, "grad_norm"), { yaxis: LOG_AXIS }],
  ["drift", "drift: W1 to first", (runs, l) => compareLayerTraces(runs, l, "w1_first"), { yaxis: { rangemode: "tozero" } }],
  ["gb", "norm's g (solid) and b (dashed), mean", (runs, l) => compareGbTraces(runs, l), {}],
];
const LAYER_PANELS = new Set(["percentiles", "sat", "grad", "drift", "gb"]);

export function mount(root, { ids }) {
  if (ids.length < 2 || ids.length > 4) {
    fill(root, errorBox("Compare takes 2 to 4 runs", `This link names ${ids.length}.`,
      h("p", {}, "Pick runs in ", h("a", { href: href.runs() }, "the runs table"), ".")));
    return { destroy() {} };
  }
  // loading: feeds still loading since the last loadAll; a load's redraw waits for all of
  // them (one draw of the 16 panels, not one per run), live updates are throttled instead.
  const state = { layer: null, sat: SATURATIONS[0], timer: null, last: 0, cost: 0, range: null, loading: new Set(), drawn: false };
  const chips = h("div", { class: "chips" });
  const layerSelect = h("select", { id: "compare-layer", onchange: () => { state.layer = layerSelect.value; loadAll(state.range); } });
  const satSelect = h("select", { id: "compare-sat", onchange: () => { state.sat = satSelect.value; loadAll(state.range); } },
    SATURATIONS.map((key) => h("option", { value: key }, OVERVIEW_METRICS[key].label)));
  const lineEls = Object.fromEntries(LINE_PANELS.map(([key]) => [key, h("div", { class: "plot small", dataset: { panel: `compare-${key}` } })]));
  const heatRow = h("div", { class: "side-by-side" });
  const satRow = h("div", { class: "side-by-side" });
  const errors = h("div");

  fill(root,
    h("section", { class: "card run-head" },
      h("div", { class: "run-line" }, h("h2", {}, "Compare"), chips),
      h("div", { class: "run-line controls" },
        h("label", { for: "compare-layer" }, "Layer "), layerSelect,
        h("label", { for: "compare-sat" }, "Saturation "), satSelect),
      errors),
    h("section", { class: "compare-grid" }, Object.values(lineEls).map((e) => h("div", { class: "card" }, e))),
    h("section", { class: "card" }, h("h3", {}, "Distribution over steps, same bins and colour scale"), heatRow),
    h("section", { class: "card" }, h("h3", {}, "Saturation, layers × steps"), satRow));

  const runs = ids.map((id, i) => ({ id, color: RUN_COLORS[i], label: id, run: null, heat: null, sat: null }));
  const feeds = runs.map((r) => new RunFeed(r.id, {
    cap: CAP,
    points: CAP,
    layerFields: LAYER_FIELDS,
    openLayers: () => (state.layer ? [state.layer] : []),
    overview: () => [state.sat],
    onRun: (run) => { r.run = run; renderChips(); },
    onUpdate: (delta) => (delta.reshape ? loaded(r.id) : schedule()),
    onError: (err) => (err.status === 404 ? missing(r.id) : errors.append(errorBox(`Run ${r.id}`, err.message))),
  }));
  runs.forEach((r, i) => {
    r.cols = feeds[i].cols;
    r.heat = h("div", { class: "plot small", dataset: { panel: "compare-heatmap", run: r.id } });
    r.sat = h("div", { class: "plot small", dataset: { panel: "compare-saturation", run: r.id } });
    heatRow.append(r.heat);
    satRow.append(r.sat);
  });

  /** A run that does not exist: no page of empty panels, just what is wrong and a way on. */
  const absent = new Set();
  function missing(id) {
    absent.add(id);
    feeds.forEach((f) => f.stop());
    clearTimeout(state.timer);
    root.querySelectorAll(".js-plotly-plot").forEach(P.purge);
    fill(root, errorBox("Cannot compare these runs", `No run ${[...absent].map((x) => `"${x}"`).join(", ")} on this server.`,
      h("p", {}, "Pick runs in ", h("a", { href: href.runs() }, "the runs table"), ".")));
  }

  /** Load a step range (null: whole runs) for every run: a zoom on any chart, or a new layer. */
  function loadAll(range) {
    state.range = range;
    state.loading = new Set(feeds.map((f) => f.id));
    for (const f of feeds) f.load(range).catch((err) => { loaded(f.id); errors.append(errorBox(`Run ${f.id}`, err.message)); });
  }

  /** A feed's load answered: once every run's has, draw them all at once, on the next frame. */
  function loaded(id) {
    // (start() answers twice for its first load: from the load, and when it ends or fails)
    if (!state.loading.delete(id) || state.loading.size || absent.size) return;
    clearTimeout(state.timer);
    state.timer = setTimeout(() => requestAnimationFrame(redraw), 0);
  }

  function renderChips() {
    const known = runs.every((r) => r.run);
    const watched = known && runs.some((r) => isWatched(r.run.config)); // no norm field: their labels
    const labels = !known ? runs.map((r) => r.id)
      : watched ? runs.map((r) => `${r.run.label} · ${r.id}`)
        : distinguishingLabels(runs.map((r) => r.run.config));
    runs.forEach((r, i) => { r.label = labels[i]; });
    fill(chips, runs.map((r) => h("a", { class: "chip", href: href.run(r.id), title: r.run?.label ?? r.id },
      h("span", { class: "swatch", style: `background:${r.color}` }), r.label, " ", r.run ? badge(r.run.status) : "")));
    const stillRunning = runs.filter((r) => r.run && !isTerminal(r.run.status)).length;
    document.title = `Compare ${runs.length} runs${stillRunning ? ` (${stillRunning} running)` : ""} — NormScope`;
    schedule();
  }

  function schedule() {
    if (state.timer || state.loading.size) return; // a load in flight draws when it ends
    // Redraws may take at most a fifth of the main thread (as in the run view's feed).
    const gap = Math.min(3000, Math.max(REDRAW_MS, 4 * state.cost));
    const wait = Math.max(0, state.last + gap - performance.now());
    state.timer = setTimeout(() => requestAnimationFrame(redraw), wait);
  }

  function syncLayers() {
    const names = [...new Set(runs.flatMap((r) => r.cols.layerNames))];
    if (names.join() === [...layerSelect.options].map((o) => o.value).join()) return;
    fill(layerSelect, names.map((n) => h("option", { value: n }, n)));
    if (!names.includes(state.layer)) state.layer = names.at(-1) ?? null;
    layerSelect.value = state.layer ?? "";
  }

  function redraw() {
    clearTimeout(state.timer);
    state.timer = null;
    state.last = performance.now();
    try {
      drawAll();
      if (!state.drawn) {
        // the charts exist now: a zoom or pan on any of them re-loads every run's window
        state.drawn = true;
        for (const chart of root.querySelectorAll(".plot")) P.onStepZoom(chart, loadAll, stepRange);
      }
    } finally {
      const cost = performance.now() - state.last;
      state.cost = state.cost ? 0.7 * state.cost + 0.3 * cost : cost;
    }
  }

  function drawAll() {
    syncLayers();
    const l = state.layer;
    const waiting = runs.every((r) => !r.cols.step.length);
    const maxStep = Math.max(1, ...runs.map((r) => r.cols.lastStep ?? 0));
    const xrange = state.range ?? [0, maxStep];
    const xaxis = { title: { text: "step", standoff: 4 }, range: xrange, automargin: true };
    for (const [key, title, build, extra] of LINE_PANELS) {
      const traces = l || !LAYER_PANELS.has(key) ? build(runs, l, state.sat) : [];
      const what = key === "sat" ? OVERVIEW_METRICS[state.sat].label : title;
      const t = !LAYER_PANELS.has(key) || !l ? what : `${l}: ${what}`;
      P.draw(lineEls[key], traces, P.layout(t, {
        xaxis,
        yaxis: { automargin: true, zeroline: false, ...extra.yaxis },
        annotations: waiting ? P.note("waiting for the first frames…") : [],
      }));
    }
    const range = l ? sharedRange(runs, l) : null;
    for (const r of runs) {
      if (l && r.cols.layers[l]) {
        heatmap.draw(r.heat, r.cols, l, { title: `${r.label}: ${l}`, yrange: range, xrange });
      } else P.draw(r.heat, [], empty(r));
      if (r.cols.step.length) {
        const title = `${r.label}: ${OVERVIEW_METRICS[state.sat].label}`;
        overview.draw(r.sat, r.cols, state.sat, { title, xrange });
      } else P.draw(r.sat, [], empty(r));
    }
  }

  const empty = (r) => P.layout(r.label, {
    annotations: P.note(r.run?.status === "queued" ? "queued…" : "no frames yet"),
  });

  // Nothing is drawn before every run's first load has answered (start: run, then series).
  state.loading = new Set(feeds.map((f) => f.id));
  feeds.forEach((f) => f.start().then(() => loaded(f.id)));
  return {
    destroy() {
      clearTimeout(state.timer);
      feeds.forEach((f) => f.stop());
      root.querySelectorAll(".js-plotly-plot").forEach(P.purge);
    },
  };
}
