// One sweep: the metric over two chosen grid fields (a heatmap, or lines with error bars over a
// numeric field), the other fields fixed at a value or averaged; it fills live as cells end.
// A click on a cell opens its runs (the seeds) in Compare, or the run itself when it is one.

import { api, isActive } from "../api.js";
import { badge, errorBox, fileLink, fill, h } from "../dom.js";
import * as P from "../plot.js";
import { href } from "../router.js";
import { heatmapTrace, isNumeric, lineTraces, pool } from "../sweep_grid.js";
import { gridSummary } from "./sweeps.js";

const AVERAGE = "__average__";

export function mount(root, { id }) {
  const state = { sweep: null, x: null, y: null, fixed: {}, lines: false };
  let stopped = false;
  let source = null;
  let pending = null;
  const head = h("div", { class: "run-line" });
  const controls = h("div", { class: "run-line controls sweep-controls" });
  const chart = h("div", { class: "plot sweep-chart", dataset: { panel: "sweep-grid" } });
  const table = h("div", { class: "table-wrap" });
  const message = h("div");

  fill(root, h("section", { class: "card run-head" }, head, controls, message),
    h("section", { class: "card" }, chart, h("p", { class: "hint" },
      "Click a cell to open its runs (its seeds) in Compare.")),
    h("section", { class: "card" }, h("h3", {}, "Every grid point"), table));

  function select(label, idAttr, options, value, onchange) {
    const el = h("select", { id: idAttr, onchange: (ev) => onchange(ev.target.value) },
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
    return h("label", { for: idAttr }, `${label} `, el);
  }

  function renderControls() {
    const s = state.sweep;
    const fields = Object.keys(s.grid);
    const others = fields.filter((f) => f !== state.x && f !== state.y);
    fill(controls,
      select("x", "sweep-x", fields.map((f) => [f, f]), state.x, (v) => { state.x = v; if (state.y === v) state.y = fields.find((f) => f !== v) ?? null; renderAll(); }),
      fields.length > 1 ? select("y", "sweep-y", [["", "—"], ...fields.filter((f) => f !== state.x).map((f) => [f, f])], state.y ?? "",
        (v) => { state.y = v || null; renderAll(); }) : "",
      others.map((f) => select(f, `sweep-fix-${f}`, [[AVERAGE, "average"], ...s.grid[f].map((v) => [JSON.stringify(v), String(v)])],
        f in state.fixed ? JSON.stringify(state.fixed[f]) : AVERAGE,
        (v) => { if (v === AVERAGE) delete state.fixed[f]; else state.fixed[f] = JSON.parse(v); renderAll(); })),
      isNumeric(s.grid[state.x]) ? h("label", {}, h("input", { type: "checkbox", id: "sweep-lines", checked: state.lines,
        onchange: (ev) => { state.lines = ev.target.checked; renderAll(); } }), " lines with error bars") : "");
  }

  function renderHead() {
    const s = state.sweep;
    const active = isActive(s.status);
    fill(head, h("h2", {}, `Sweep · ${gridSummary(s)}`), badge(s.status),
      h("span", { class: "progress-text", "data-cells": `${s.cells_done}/${s.cells_total}` }, `${s.cells_done} / ${s.cells_total} cells`),
      h("div", { class: "actions" },
        active && h("button", { type: "button", class: "danger", onclick: () => act(api.cancelSweep) }, "Cancel"),
        (s.status === "interrupted" || s.status === "cancelled") && h("button", { type: "button", onclick: () => act(api.resumeSweep) }, "Resume"),
        fileLink(api.sweepCsvUrl(s.id), `sweep-${s.id}.csv`, "CSV", api.download)),
      s.skipped.length ? h("div", { class: "muted" }, `skipped ${s.skipped.length} invalid cells: `,
        s.skipped.map((k) => `${JSON.stringify(k.values)} (${k.field}: ${k.message})`).join("; ")) : "");
  }

  function renderChart() {
    const s = state.sweep;
    const pooled = pool(s, state.x, state.y, state.fixed);
    const lines = state.lines && isNumeric(s.grid[state.x]);
    const traces = lines ? lineTraces(pooled, state.y) : [heatmapTrace(pooled, s.metric)];
    const numericX = isNumeric(s.grid[state.x]);
    const averaged = Object.keys(s.grid).filter((f) => f !== state.x && f !== state.y && !(f in state.fixed));
    const lay = P.layout(`${s.metric} (mean ± std over seeds${averaged.length ? `; averaged over ${averaged.join(", ")}` : ""})`, {
      xaxis: { title: { text: state.x }, type: lines ? (numericX && s.grid[state.x].every((v) => v > 0) ? "log" : "linear") : "category" },
      yaxis: lines ? { title: { text: s.metric } } : { title: { text: state.y ?? "" }, type: "category" },
      uirevision: `${state.x}|${state.y}|${lines}`,
    });
    P.draw(chart, traces, lay);
    chart.removeAllListeners?.("plotly_click");
    chart.on?.("plotly_click", (ev) => {
      const ids = String(ev.points?.[0]?.customdata ?? "").split(",").filter(Boolean);
      if (ids.length === 1) location.hash = href.run(ids[0]);
      else if (ids.length > 1) location.hash = href.compare(ids.slice(0, 4));
    });
  }

  function renderTable() {
    const s = state.sweep;
    const fields = Object.keys(s.grid);
    const runsOf = (point) => s.cells.filter((c) => c.point === point);
    fill(table, h("table", { class: "runs sweep-points" },
      h("thead", {}, h("tr", {}, [...fields, `${s.metric} mean`, "std", "seeds", "runs"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, s.summary.map((row) => h("tr", { dataset: { point: row.point } },
        fields.map((f) => h("td", {}, String(row.values[f]))),
        h("td", { class: "num" }, row.mean === null ? "—" : row.mean.toPrecision(4)),
        h("td", { class: "num" }, row.std === null ? "—" : row.std.toPrecision(3)),
        h("td", { class: "num" }, `${row.n} / ${runsOf(row.point).length}`),
        h("td", {}, runsOf(row.point).map((c) => h("a", { href: href.run(c.run_id), class: `status-${c.status}`, title: c.status }, `seed ${c.seed}`))))))));
  }

  function renderAll() {
    if (stopped || !state.sweep) return;
    renderHead();
    renderControls();
    renderChart();
    renderTable();
  }

  async function act(call) {
    try {
      state.sweep = await call(id);
      renderAll();
      follow();
    } catch (err) {
      fill(message, errorBox("The sweep did not change", err.message));
    }
  }

  async function load() {
    try {
      const sweep = await api.sweep(id);
      if (stopped) return;
      if (!state.sweep) {
        const fields = Object.keys(sweep.grid);
        state.x = fields.find((f) => isNumeric(sweep.grid[f])) ?? fields[0];
        state.y = fields.find((f) => f !== state.x) ?? null;
      }
      state.sweep = sweep;
      fill(message);
      renderAll();
    } catch (err) {
      if (!stopped) fill(message, errorBox(`Cannot load sweep ${id}`, err.message, h("p", {}, h("a", { href: href.sweeps() }, "All sweeps"))));
    }
  }

  // Live: a cell event triggers a reload (coalesced); the stream ends with the sweep.
  function follow() {
    source?.close();
    if (!state.sweep || !isActive(state.sweep.status)) return;
    source = api.sweepEvents(id);
    const reload = () => { if (!pending) pending = setTimeout(() => { pending = null; load(); }, 200); };
    source.addEventListener("cell", reload);
    source.addEventListener("sweep", () => { source.close(); load(); });
  }

  load().then(follow);
  return { destroy() { stopped = true; source?.close(); clearTimeout(pending); P.purge(chart); } };
}
