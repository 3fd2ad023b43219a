// Claims: the seed's claims C1..C9 (and the BN paper's Figure 1, Santurkar's ICS), each with
// the experiment behind it and its measured verdict. #/claims lists them; #/claims/<id> shows
// one: claim, experiment, criterion, checks with their numbers, plots, and links to the runs.

import { api, isActive } from "../api.js";
import { armRows, checksSummary, compareIds, figure, regimeCells, verdictClass } from "../claim_figures.js";
import { badge, errorBox, fill, h } from "../dom.js";
import * as P from "../plot.js";
import { href } from "../router.js";

const POLL_MS = 1500;

/** The verdict, or why there is none: a claim that is running has not "not run yet". */
function verdictBadge(verdict, running = false) {
  return h("span", { class: `badge verdict ${verdictClass(verdict)}`, dataset: { verdict: verdict ?? "" } },
    verdict ?? (running ? "verdict when it ends" : "not run yet"));
}

function when(t) {
  return t ? new Date(t * 1000).toLocaleString() : "";
}

/** "full · published, commit 1a2b3c4" or "quick · <date>": what kind of claim run it is. */
function runKind(run) {
  const mode = run.quick ? "quick" : "full";
  return run.published ? `${mode} · published, commit ${run.result?.run_at?.commit ?? "?"}` : `${mode} · ${when(run.created_at)}`;
}

/** Where a published result ran: the results stored with the code, not run by this server. */
function provenance(run) {
  const at = run.result?.run_at ?? {};
  const wall = Number.isFinite(at.wall_s) ? `, ${Math.round(at.wall_s)} s wall` : "";
  return h("p", { class: "muted published-note" },
    `Published result: ${run.quick ? "quick" : "full"}-mode run of commit ${at.commit ?? "?"} on ${at.date ?? "?"} (${at.machine ?? "machine unknown"}${wall}), ` +
    "stored with the code by normscope claims --full. Its arms' runs are not on this server: run the claim to get them here.");
}

export function mount(root, route) {
  return route.id ? mountClaim(root, route.id) : mountList(root);
}

// --- the list ------------------------------------------------------------------------------

function mountList(root) {
  const body = h("tbody");
  const message = h("div");
  let timer = null;
  let stopped = false;

  fill(root, h("section", { class: "card" },
    h("div", { class: "card-head" }, h("h2", {}, "Claims"),
      h("span", { class: "hint" }, "each claim of the seed, checked by an experiment with a measured verdict"),
      h("button", { type: "button", class: "primary", id: "claims-run-all", onclick: runAll }, "Run all (quick)")),
    message,
    h("div", { class: "table-wrap" }, h("table", { class: "runs claims" },
      h("thead", {}, h("tr", {}, ["claim", "", "verdict", "last run", ""].map((c) => h("th", { scope: "col" }, c)))),
      body))));

  async function start(id) {
    try {
      await api.runClaim(id, true);
    } catch (err) {
      if (err.status !== 409) fill(message, errorBox(`Cannot run ${id}`, err.message));
    }
  }

  async function runAll() {
    const { data } = await api.claims();
    for (const c of data) if (!isActive(c.latest?.status)) await start(c.id);
    load();
  }

  function row(c) {
    const latest = c.latest;
    const active = isActive(latest?.status);
    return h("tr", { dataset: { claim: c.id } },
      h("td", {}, h("a", { href: href.claim(c.id), class: "claim-id" }, c.id)),
      h("td", {}, h("a", { href: href.claim(c.id) }, c.title), h("div", { class: "muted claim-text" }, c.claim)),
      h("td", {}, verdictBadge(latest?.verdict, active)),
      h("td", {}, latest ? [badge(latest.status), h("div", { class: "muted" }, runKind(latest))] : h("span", { class: "muted" }, "—")),
      h("td", {}, h("div", { class: "actions" },
        h("button", { type: "button", disabled: active, onclick: async () => { await start(c.id); load(); } }, active ? "Running…" : "Run (quick)"))));
  }

  async function load() {
    clearTimeout(timer);
    try {
      const { data } = await api.claims();
      if (stopped) return;
      fill(message);
      fill(body, data.map(row));
      if (data.some((c) => isActive(c.latest?.status))) timer = setTimeout(load, POLL_MS);
    } catch (err) {
      if (stopped) return;
      fill(message, errorBox("Cannot list the claims", err.message));
      timer = setTimeout(load, POLL_MS * 3);
    }
  }

  load();
  return { destroy() { stopped = true; clearTimeout(timer); } };
}

// --- one claim -----------------------------------------------------------------------------

function checkList(checks) {
  return h("ul", { class: "checks" }, checks.map((c) =>
    h("li", { class: c.passed ? "pass" : "fail" },
      h("span", { class: "mark", "aria-label": c.passed ? "passed" : "failed" }, c.passed ? "✓" : "✗"),
      h("strong", {}, c.name), h("span", { class: "muted" }, ` — ${c.detail}`))));
}

// {gridTemplateColumns: "x"} -> "grid-template-columns: x" (dom.h sets a string style as is)
function css(style) {
  return Object.entries(style).map(([k, v]) => `${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${v}`).join("; ");
}

// The regime map: one cell per regime of a protocol claim, coloured by its verdict, with its
// effects (mean ± standard error over seeds), seeds, learning rate and links to its runs.
function regimeMap(result) {
  const cells = regimeCells(result);
  if (!cells.length) return null;
  const grid = { display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(15rem, 1fr))", gap: "0.5rem" };
  return h("section", { class: "card" },
    h("div", { class: "card-head" }, h("h3", {}, "Regime map"),
      h("span", { class: "hint" }, "where the claim holds and where it does not; an effect counts beyond two standard errors over seeds")),
    h("div", { class: "regime-map", style: css(grid) }, cells.map((c) => {
      const style = { ...c.style, padding: "0.5rem 0.6rem", borderRadius: "6px", border: c.published ? "2px solid currentColor" : "1px solid #d0d4da" };
      return h("div", { class: "regime-cell", style: css(style), dataset: { regime: c.regime, verdict: c.verdict } },
        h("div", {}, h("strong", {}, c.regime), c.published ? h("span", { class: "muted" }, " · published setting") : null),
        h("div", { style: "font-weight: 600" }, c.verdict),
        h("ul", { style: "margin: 0.2rem 0; padding-left: 1rem" }, c.effects.map((e) =>
          h("li", {}, `${e.name} ${e.text}`, e.needs ? h("span", { class: "muted" }, ` (needs ${e.needs})`) : null))),
        h("div", { class: "muted" }, `seeds ${c.seeds.join(", ")} · lr ${c.lrText}`),
        c.runIds.length ? h("div", {}, c.runIds.map((rid, i) => [i ? " " : "", h("a", { href: href.run(rid) }, `run ${i + 1}`)])) : null);
    })));
}

function armTable(result) {
  const rows = armRows(result);
  if (!rows.length) return h("p", { class: "muted" }, "This experiment trains nothing: it measures the layers directly.");
  const ids = compareIds(result);
  return h("div", {},
    h("div", { class: "table-wrap" }, h("table", { class: "runs arms" },
      h("thead", {}, h("tr", {}, ["arm", "run", "status", "frames"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", { dataset: { arm: r.arm } },
        h("td", {}, r.arm),
        h("td", {}, r.runId ? h("a", { href: href.run(r.runId) }, r.label) : r.label),
        h("td", {}, badge(r.status)),
        h("td", { class: "num" }, String(r.frames ?? ""))))))),
    ids && h("p", {}, h("a", { class: "btn", href: href.compare(ids) }, "Compare these runs")));
}

function mountClaim(root, id) {
  const head = h("section", { class: "card run-head" });
  const resultEl = h("div");
  const plots = [];
  let timer = null;
  let stopped = false;
  let shown = null; // id of the claim run whose result is drawn

  fill(root, head, resultEl);

  async function start(quick) {
    try {
      await api.runClaim(id, quick);
    } catch (err) {
      if (err.status !== 409) fill(resultEl, errorBox(`Cannot run ${id}`, err.message));
    }
    load();
  }

  function drawHead(c) {
    const latest = c.latest;
    const active = isActive(latest?.status);
    const status = !latest ? h("span", { class: "muted" }, "Not run yet on this server.")
      : active ? h("span", {}, badge(latest.status), ` ${latest.quick ? "quick" : "full"} run started ${when(latest.created_at)} · ${latest.run_ids.length} arm run(s) so far`)
        : latest.status === "completed" ? h("span", { class: "muted" }, latest.published ? `published result (${runKind(latest)})` : `last run ${when(latest.finished_at)} (${latest.quick ? "quick" : "full"})`)
          : h("span", {}, badge(latest.status), h("span", { class: "error-text" }, ` ${latest.error ?? ""}`));
    fill(head,
      h("div", { class: "run-line" },
        h("a", { href: href.claims(), class: "muted" }, "← Claims"),
        h("h2", { class: "run-title" }, `${c.id} · ${c.title}`),
        verdictBadge(c.result?.verdict, active),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "primary", disabled: active, onclick: () => start(true) }, "Run (quick)"),
          h("button", { type: "button", disabled: active, onclick: () => start(false) }, "Run (full)"))),
      h("div", { class: "run-line" }, status),
      h("blockquote", { class: "claim-quote" }, c.claim),
      h("p", { class: "claim-experiment" }, h("strong", {}, "Experiment. "), c.experiment));
  }

  function drawResult(run) {
    for (const el of plots.splice(0)) P.purge(el);
    if (!run?.result) {
      fill(resultEl, h("section", { class: "card" }, h("p", { class: "muted" }, "No result yet: press Run (quick), 10-20 s for most claims on a laptop, about 1.3 minutes for C5 (the RNN).")));
      return;
    }
    const r = run.result;
    const grid = h("div", { class: "claim-plots" });
    fill(resultEl,
      h("section", { class: "card", dataset: { claimRun: run.id } },
        h("div", { class: "card-head" }, h("h3", {}, "Verdict"), verdictBadge(r.verdict),
          h("span", { class: "hint" }, `${checksSummary(r.checks)} · ${r.quick ? "quick" : "full"} · ${r.duration_s}s`)),
        run.published ? provenance(run) : null,
        h("p", {}, h("strong", {}, "Criterion. "), r.criterion),
        checkList(r.checks)),
      regimeMap(r),
      h("section", { class: "card" }, h("h3", {}, "Measurements"), grid),
      h("section", { class: "card" }, h("h3", {}, "Runs"), armTable(r),
        h("details", { class: "numbers" }, h("summary", {}, "All measured numbers (JSON)"),
          h("pre", {}, JSON.stringify(r.numbers, null, 1)))));
    const figures = (r.series ?? []).map(figure);
    for (const f of figures) {
      const el = h("div", { class: "plot", dataset: { panel: "claim" } });
      grid.append(el);
      plots.push(el);
    }
    // draw once every chart has its place in the grid, so each takes its cell's width
    figures.forEach((f, i) => P.draw(plots[i], f.traces, P.layout(f.title, f.layout)));
  }

  async function load() {
    clearTimeout(timer);
    try {
      const c = await api.claim(id);
      if (stopped) return;
      document.title = `${c.id} · NormScope`;
      drawHead(c);
      if (c.result?.id !== shown || !c.result) {
        shown = c.result?.id ?? null;
        drawResult(c.result);
      }
      if (isActive(c.latest?.status)) timer = setTimeout(load, POLL_MS);
    } catch (err) {
      if (stopped) return;
      fill(head, errorBox(err.status === 404 ? "No such claim" : "Cannot load the claim", err.message,
        h("p", {}, h("a", { href: href.claims() }, "All claims"))));
      if (err.status !== 404) timer = setTimeout(load, POLL_MS * 3);
    }
  }

  load();
  return { destroy() { stopped = true; clearTimeout(timer); for (const el of plots) P.purge(el); } };
}
