// The runs table: status, config summary, progress, final metrics; open, cancel, delete,
// export, and pick 2–4 runs to compare. Refreshes itself while any run is queued or running.

import { api, isTerminal } from "../api.js";
import { badge, errorBox, fileLink, fill, h } from "../dom.js";
import { configSummary, fmt, isWatched, stepsText } from "../format.js";
import { href } from "../router.js";

const REFRESH_MS = 2000;

/** What the label leaves out: batch, optimizer, order, seed, id. */
function runDetails(run) {
  const c = run.config ?? {};
  if (isWatched(c)) return `${configSummary(c)} · ${run.id}`;
  const order = c.batch_order && c.batch_order !== "shuffled" ? ` ${c.batch_order}` : "";
  return `bs ${c.batch_size}${order} · ${c.optimizer} lr ${c.lr} · seed ${c.seed} · ${run.id}`;
}

export function mount(root) {
  const picked = new Set();
  const body = h("tbody");
  const compareBtn = h("a", { class: "btn primary", "aria-disabled": "true", href: "#/runs" }, "Compare selected");
  const message = h("div");
  let timer = null;
  let stopped = false;
  let shown = "";

  fill(root, h("section", { class: "card" },
    h("div", { class: "card-head" }, h("h2", {}, "Runs"),
      h("span", { class: "hint" }, "pick 2–4 runs to compare"), compareBtn),
    message,
    h("div", { class: "table-wrap" }, h("table", { class: "runs" },
      h("thead", {}, h("tr", {}, ["", "run", "status", "progress", "loss", "acc", "held-out acc", "created", ""].map((c) => h("th", { scope: "col" }, c)))),
      body))));

  function updateCompare() {
    const ok = picked.size >= 2 && picked.size <= 4;
    compareBtn.setAttribute("aria-disabled", String(!ok));
    compareBtn.href = ok ? href.compare([...picked]) : "#/runs";
    compareBtn.textContent = `Compare selected (${picked.size})`;
  }

  async function act(what, run) {
    try {
      if (what === "cancel") await api.cancelRun(run.id);
      if (what === "delete") {
        if (!confirm(`Delete run ${run.id} (${run.label}) and its frames?`)) return;
        await api.deleteRun(run.id);
        shown = "";
        picked.delete(run.id);
      }
    } catch (err) {
      fill(message, errorBox(`${what} failed`, err.message));
    }
    load();
  }

  function row(run) {
    const f = run.final ?? run.metrics ?? {}; // latest metrics while it runs
    const active = !isTerminal(run.status);
    const box = h("input", {
      type: "checkbox", "aria-label": `select run ${run.id}`, checked: picked.has(run.id),
      onchange: (ev) => { ev.target.checked ? picked.add(run.id) : picked.delete(run.id); updateCompare(); },
    });
    return h("tr", { dataset: { run: run.id } },
      h("td", {}, box),
      h("td", {}, h("a", { href: href.run(run.id) }, run.label ?? run.id),
        h("div", { class: "muted" }, runDetails(run))),
      h("td", {}, badge(run.status), run.error ? h("div", { class: "muted error-text", title: run.error }, run.error.slice(0, 80)) : ""),
      h("td", { class: "num" }, stepsText(run.step ?? 0, run.steps ?? run.config?.steps)),
      h("td", { class: "num" }, fmt(f.loss)),
      h("td", { class: "num" }, fmt(f.acc)),
      h("td", { class: "num" }, fmt(f.eval_acc)),
      h("td", { class: "muted" }, run.created_at ? new Date(run.created_at * (run.created_at < 1e12 ? 1000 : 1)).toLocaleString() : ""),
      h("td", {}, h("div", { class: "actions" },
        h("a", { class: "btn", href: href.run(run.id) }, "Open"),
        active && h("button", { type: "button", class: "danger", onclick: () => act("cancel", run) }, "Cancel"),
        !active && h("button", { type: "button", onclick: () => act("delete", run) }, "Delete"),
        ["csv", "jsonl"].map((f) => fileLink(api.exportUrl(run.id, f), `${run.id}.${f}`, f.toUpperCase(), api.download)))));
  }

  async function load() {
    clearTimeout(timer);
    try {
      const { data } = await api.runs();
      if (stopped) return;
      fill(message);
      // Rebuild only on change, so focus and a hovered row survive the refresh.
      const snapshot = JSON.stringify(data);
      if (snapshot !== shown) {
        shown = snapshot;
        fill(body, data.length ? data.map(row) : h("tr", {}, h("td", { colspan: 9, class: "empty" },
          "No runs yet. ", h("a", { href: href.launch() }, "Launch one"), ".")));
      }
      for (const id of [...picked]) if (!data.some((r) => r.id === id)) picked.delete(id);
      updateCompare();
      if (data.some((r) => !isTerminal(r.status))) timer = setTimeout(load, REFRESH_MS);
    } catch (err) {
      if (stopped) return;
      fill(message, errorBox("Cannot list runs", err.message));
      timer = setTimeout(load, REFRESH_MS * 2);
    }
  }

  updateCompare();
  load();
  return { destroy() { stopped = true; clearTimeout(timer); } };
}
