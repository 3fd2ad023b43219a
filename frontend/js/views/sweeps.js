// The sweeps list: each sweep's grid, status and progress; open, cancel, resume, delete.
// Refreshes itself while any sweep is running.

import { api, isActive } from "../api.js";
import { badge, errorBox, fill, h } from "../dom.js";
import { href } from "../router.js";

const REFRESH_MS = 2000;

/** "norm × batch_size (2 × 5) · 3 seeds · eval_acc" */
export function gridSummary(sweep) {
  const fields = Object.keys(sweep.grid);
  const sizes = fields.map((f) => sweep.grid[f].length);
  return `${fields.join(" × ")} (${sizes.join(" × ")}) · ${sweep.seeds} seed${sweep.seeds > 1 ? "s" : ""} · ${sweep.metric}`;
}

export function mount(root) {
  const body = h("tbody");
  const message = h("div");
  let timer = null;
  let stopped = false;

  fill(root, h("section", { class: "card" },
    h("div", { class: "card-head" }, h("h2", {}, "Sweeps"),
      h("span", { class: "hint" }, "a grid of runs over config fields, with seeds; start one from ",
        h("a", { href: href.launch() }, "Launch"), " or `normscope sweep`")),
    message,
    h("div", { class: "table-wrap" }, h("table", { class: "runs sweeps" },
      h("thead", {}, h("tr", {}, ["sweep", "status", "cells", "created", ""].map((c) => h("th", { scope: "col" }, c)))),
      body))));

  async function act(what, sweep) {
    try {
      if (what === "cancel") await api.cancelSweep(sweep.id);
      if (what === "resume") await api.resumeSweep(sweep.id);
      if (what === "delete") {
        if (!confirm(`Delete sweep ${sweep.id} and its ${sweep.cells_total} runs?`)) return;
        await api.deleteSweep(sweep.id);
      }
    } catch (err) {
      fill(message, errorBox(`${what} failed`, err.message));
    }
    load();
  }

  function row(sweep) {
    const active = isActive(sweep.status);
    return h("tr", { dataset: { sweep: sweep.id } },
      h("td", {}, h("a", { href: href.sweep(sweep.id) }, gridSummary(sweep)),
        h("div", { class: "muted" }, sweep.id)),
      h("td", {}, badge(sweep.status)),
      h("td", { class: "num" }, `${sweep.cells_done} / ${sweep.cells_total}`),
      h("td", { class: "muted" }, new Date(sweep.created_at * 1000).toLocaleString()),
      h("td", {}, h("div", { class: "actions" },
        h("a", { class: "btn", href: href.sweep(sweep.id) }, "Open"),
        active && h("button", { type: "button", class: "danger", onclick: () => act("cancel", sweep) }, "Cancel"),
        sweep.status === "interrupted" || sweep.status === "cancelled"
          ? h("button", { type: "button", onclick: () => act("resume", sweep) }, "Resume") : "",
        !active && h("button", { type: "button", onclick: () => act("delete", sweep) }, "Delete"))));
  }

  async function load() {
    clearTimeout(timer);
    try {
      const { data } = await api.sweeps();
      if (stopped) return;
      fill(message);
      fill(body, data.length ? data.map(row) : h("tr", {}, h("td", { colspan: 5, class: "empty" },
        "No sweeps yet. ", h("a", { href: href.launch() }, "Start one"), ".")));
      if (data.some((s) => isActive(s.status))) timer = setTimeout(load, REFRESH_MS);
    } catch (err) {
      if (stopped) return;
      fill(message, errorBox("Cannot list sweeps", err.message));
      timer = setTimeout(load, REFRESH_MS * 2);
    }
  }

  load();
  return { destroy() { stopped = true; clearTimeout(timer); } };
}
