// Claim results -> what the Claims view draws. Pure functions, no DOM, tested with node.
// A result's `series` is a list of small, claim-agnostic figure specs made by normcore.claims:
//   {title, x_label, y_label, log_x, log_y, kind: "line" | "bar",
//    traces: [{name, x, y, dash?, group?, label?, error?}]}  (error: ± bars, e.g. a spread)
// Traces sharing a `group` share a colour and one legend entry (e.g. one run's p15/p50/p85).

import { OKABE_ITO } from "./transforms.js";

// normcore.claims.protocol.CLAIM_VERDICTS: a protocol claim reads its published cell
export const VERDICTS = ["reproduced", "mixed", "not reproduced", "no difference measured", "degenerate baseline", "unmeasured"];

/** "not reproduced" -> "verdict-not-reproduced" (the css class; colour travels with the word). */
export function verdictClass(verdict) {
  return `verdict-${String(verdict ?? "none").replace(/\s+/g, "-")}`;
}

/** A figure spec -> {traces, layout} for Plotly (layout: only the parts that differ per figure). */
export function figure(spec) {
  const bar = spec.kind === "bar";
  const groups = [];
  const traces = (spec.traces ?? []).map((t, i) => {
    const group = t.group ?? null;
    const first = group === null || !groups.includes(group);
    if (first && group !== null) groups.push(group);
    const index = group === null ? i : groups.indexOf(group);
    const color = OKABE_ITO[index % OKABE_ITO.length];
    const y = (t.y ?? []).map((v) => (v === null || v === undefined ? null : v));
    if (bar) return { type: "bar", name: t.name, x: t.x.map(String), y, marker: { color } };
    return {
      type: "scatter", mode: t.x.length > 40 ? "lines" : "lines+markers", name: t.name, x: t.x, y,
      line: { color, width: 1.8, dash: t.dash ?? "solid" }, marker: { size: 5, color },
      connectgaps: false,
      ...(t.error ? { error_y: { type: "data", array: t.error, visible: true, thickness: 1, width: 0, color } } : {}),
      ...(group === null ? {} : { legendgroup: group, showlegend: first }),
      ...(t.label ? { hovertemplate: `${t.name} ${t.label}: %{y}<extra></extra>` } : {}),
    };
  });
  const layout = {
    barmode: bar ? "group" : undefined,
    showlegend: traces.filter((t) => t.showlegend !== false).length > 1,
    xaxis: { title: { text: spec.x_label ?? "", standoff: 4 }, type: bar ? "category" : spec.log_x ? "log" : "linear", automargin: true, zeroline: false },
    yaxis: { title: { text: spec.y_label ?? "", standoff: 4 }, type: spec.log_y ? "log" : "linear", automargin: true, zeroline: false },
  };
  return { title: spec.title ?? "", traces, layout };
}

/** The arms of a result as table rows, in the experiment's order, with their stored run ids. */
export function armRows(result) {
  return (result?.run_configs ?? []).map((r) => ({
    arm: r.arm, label: r.label, runId: r.run_id ?? null, status: r.status, frames: r.frames,
  }));
}

/** Run ids worth comparing side by side: Compare takes 2 to 4 distinct runs. */
export function compareIds(result) {
  const ids = [...new Set(armRows(result).map((r) => r.runId).filter(Boolean))];
  return ids.length >= 2 && ids.length <= 4 ? ids : null;
}

/** "2/2 checks" for a result's checks, "" when there are none. */
export function checksSummary(checks) {
  if (!checks?.length) return "";
  return `${checks.filter((c) => c.passed).length}/${checks.length} checks`;
}

// --- the regime map (claims on the protocol: result.regimes) ----------------------------------
// Each cell: {regime, published, seeds, lr, verdict, effects: [{name, value, se, needs}]}.
// Verdicts of a cell: holds, fails, "no difference measured" (within two standard errors),
// "degenerate baseline", unmeasured.

export const CELL_COLORS = {
  holds: { color: "#006b4f", background: "#e3f5ef" },
  fails: { color: "#9c4200", background: "#fbece2" },
  "no difference measured": { color: "#4a4f57", background: "#eef0f3" },
  "degenerate baseline": { color: "#7a5a00", background: "#fcf3dc" },
  unmeasured: { color: "#4a4f57", background: "#ffffff" },
};

function num(v) {
  return v === null || v === undefined || !Number.isFinite(v) ? "—" : Number(v).toPrecision(3);
}

/** A cell's learning rate: one number, or each arm's tuned rate ({arm: lr}) in one line. */
export function lrText(lr) {
  if (lr === null || lr === undefined) return "—";
  if (typeof lr === "object") return Object.entries(lr).map(([arm, v]) => `${arm} ${v ?? "—"}`).join(" · ");
  return String(lr);
}

/** The result's regime cells, ready to draw, each with the stored runs that made it. */
export function regimeCells(result) {
  const runs = armRows(result);
  return (result?.regimes ?? []).map((c) => ({
    regime: c.regime,
    published: Boolean(c.published),
    verdict: c.verdict ?? "unmeasured",
    style: CELL_COLORS[c.verdict] ?? CELL_COLORS.unmeasured,
    seeds: c.seeds ?? [],
    lr: c.lr ?? null,
    lrText: lrText(c.lr),
    effects: (c.effects ?? []).map((e) => ({
      name: e.name, text: `${num(e.value)} ± ${num(e.se)}`, needs: e.needs ?? "",
    })),
    runIds: runs
      .filter((r) => (c.runs_of ?? [c.regime]).some((g) => r.arm.startsWith(`${g}|`)) && r.runId)
      .map((r) => r.runId),
  }));
}
