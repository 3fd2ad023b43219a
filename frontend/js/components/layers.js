// The run view's layer rows, a component (not a view: no route of its own): one foldable row
// per layer, charts only for the open ones.
// A 30-layer net shows 30 one-line summaries and the few layers the user opened, never 150
// charts. Each open row holds the distribution heatmap, percentile bands, gradient norms,
// g/b and drift of that layer.

import { latest } from "../columns.js";
import { h } from "../dom.js";
import { fmt } from "../format.js";
import * as drift from "../panels/drift.js";
import * as gb from "../panels/gb.js";
import * as gradnorm from "../panels/gradnorm.js";
import * as heatmap from "../panels/heatmap.js";
import * as percentiles from "../panels/percentiles.js";
import * as P from "../plot.js";

const PANELS = [
  ["heatmap", heatmap, "wide"],
  ["percentiles", percentiles, ""],
  ["grad", gradnorm, ""],
  ["gb", gb, ""],
  ["drift", drift, ""],
];

export class LayerRows {
  constructor(container, cols) {
    this.container = container;
    this.cols = cols;
    this.rows = new Map(); // name -> {details, summary, plots: {panel: el}}
    this.open = new Set();
    this.step = null; // the step picked in the overview, marked on every chart
    this.names = [];
  }

  /** Rebuild rows when the layer set changed, then draw every open row in full. */
  draw() {
    const cols = this.cols;
    if (cols.layerNames.join("\n") !== this.names.join("\n")) this.build();
    for (const name of this.open) this.drawLayer(name);
    this.summarize();
  }

  extend(delta) {
    for (const name of this.open) {
      const row = this.rows.get(name);
      if (!row) continue;
      for (const [key, panel] of PANELS) panel.extend(row.plots[key], delta, name);
    }
    this.summarize();
  }

  build() {
    const cols = this.cols;
    for (const row of this.rows.values()) Object.values(row.plots).forEach(P.purge);
    this.rows.clear();
    this.names = [...cols.layerNames];
    if (!this.open.size && this.names.length) this.open.add(this.names.at(-1)); // the top layer
    const rows = this.names.map((name) => this.row(name));
    this.container.replaceChildren(...rows);
  }

  row(name) {
    const plots = {};
    const grid = h("div", { class: "layer-grid" },
      PANELS.map(([key, , cls]) => {
        plots[key] = h("div", { class: `plot small ${cls}`, dataset: { panel: key, layer: name } });
        return plots[key];
      }));
    const summary = h("span", { class: "layer-stats" });
    const details = h("details", { class: "layer", dataset: { layer: name }, open: this.open.has(name) },
      h("summary", {}, h("span", { class: "layer-name" }, name), summary),
      grid);
    details.addEventListener("toggle", () => {
      if (details.open) {
        this.open.add(name);
        this.drawLayer(name);
      } else {
        this.open.delete(name);
        Object.values(plots).forEach(P.purge);
      }
    });
    this.rows.set(name, { details, summary, plots });
    return details;
  }

  drawLayer(name) {
    const row = this.rows.get(name);
    if (!row || !this.cols.layers[name]) return;
    for (const [key, panel] of PANELS) panel.draw(row.plots[key], this.cols, name, { step: this.step });
  }

  /** Open a layer (from a click in the overview), mark the step, bring it into view. */
  reveal(name, step) {
    const row = this.rows.get(name);
    if (!row) return;
    this.step = step;
    for (const other of this.open) if (other !== name) this.drawLayer(other); // move the marker
    this.open.add(name);
    if (!row.details.open) row.details.open = true; // the toggle handler draws it
    else this.drawLayer(name);
    row.details.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  summarize() {
    for (const [name, row] of this.rows) {
      const l = this.cols.layers[name];
      if (!l) continue;
      const bad = latest(l.nonfinite);
      row.summary.textContent = [
        `saturation ${fmt(latest(l.sat))} (before norm ${fmt(latest(l.sat_pre))})`,
        `median ${fmt(latest(l.p50))}`,
        `‖∇W‖ ${fmt(latest(l.grad_norm))}`,
        `drift ${fmt(latest(l.w1_first))}`,
        bad ? `${bad} non-finite` : "",
      ].filter(Boolean).join(" · ");
    }
  }

  destroy() {
    for (const row of this.rows.values()) Object.values(row.plots).forEach(P.purge);
  }
}
