import assert from "node:assert/strict";
import { test } from "node:test";

import { armRows, checksSummary, compareIds, figure, verdictClass } from "../claim_figures.js";

test("line figures keep x, map missing values to gaps and honour log axes", () => {
  const f = figure({
    title: "drift", x_label: "layer", y_label: "W1", log_y: true, kind: "line",
    traces: [{ name: "none", x: [1, 2, 3], y: [0.1, null, 0.3] }, { name: "batch", x: [1, 2, 3], y: [0.1, 0.1, 0.1], dash: "dot" }],
  });
  assert.equal(f.title, "drift");
  assert.equal(f.traces.length, 2);
  assert.deepEqual(f.traces[0].y, [0.1, null, 0.3]);
  assert.equal(f.traces[0].connectgaps, false);
  assert.equal(f.traces[1].line.dash, "dot");
  assert.notEqual(f.traces[0].line.color, f.traces[1].line.color);
  assert.equal(f.layout.yaxis.type, "log");
  assert.equal(f.layout.xaxis.type, "linear");
  assert.equal(f.layout.showlegend, true);
});

test("traces of one group share a colour and one legend entry", () => {
  const f = figure({ traces: ["p15", "p50", "p85"].flatMap((q) => ["none", "batch"].map((arm) => (
    { name: arm, group: arm, label: q, x: [0, 1], y: [0, 1], dash: q === "p50" ? "solid" : "dot" }))) });
  const none = f.traces.filter((t) => t.name === "none");
  assert.equal(new Set(none.map((t) => t.line.color)).size, 1);
  assert.notEqual(none[0].line.color, f.traces.find((t) => t.name === "batch").line.color);
  assert.deepEqual(f.traces.filter((t) => t.showlegend).map((t) => t.name), ["none", "batch"]);
  assert.equal(f.layout.showlegend, true);
});

test("bar figures use categories and group their traces", () => {
  const f = figure({ kind: "bar", traces: [{ name: "acc", x: ["batch", "layer"], y: [0.9, 0.8] }] });
  assert.equal(f.traces[0].type, "bar");
  assert.deepEqual(f.traces[0].x, ["batch", "layer"]);
  assert.equal(f.layout.xaxis.type, "category");
  assert.equal(f.layout.barmode, "group");
  assert.equal(f.layout.showlegend, false);
});

test("arms link to their runs; compare needs two to four distinct runs", () => {
  const result = { run_configs: [
    { arm: "none", label: "none · mlp", run_id: "a", status: "completed", frames: 3 },
    { arm: "batch", label: "batch · mlp", run_id: "b", status: "completed", frames: 3 },
  ] };
  assert.deepEqual(armRows(result).map((r) => [r.arm, r.runId]), [["none", "a"], ["batch", "b"]]);
  assert.deepEqual(compareIds(result), ["a", "b"]);
  assert.equal(compareIds({ run_configs: [] }), null);
  const many = { run_configs: "abcde".split("").map((id) => ({ arm: id, run_id: id })) };
  assert.equal(compareIds(many), null);
});

test("verdicts become css classes and checks a short summary", () => {
  assert.equal(verdictClass("not reproduced"), "verdict-not-reproduced");
  assert.equal(verdictClass(null), "verdict-none");
  assert.equal(checksSummary([{ passed: true }, { passed: false }]), "1/2 checks");
  assert.equal(checksSummary([]), "");
});

test("regime cells carry their verdict's colours, effects with standard errors and their runs", async () => {
  const { regimeCells, CELL_COLORS } = await import("../claim_figures.js");
  const result = {
    regimes: [
      { regime: "sigmoid, depth 4", published: true, verdict: "holds", seeds: [0, 1], lr: 0.1,
        effects: [{ name: "top excess", value: 0.6376, se: 0.0073, needs: "> 0" }] },
      { regime: "tanh", verdict: "no difference measured", seeds: [0, 1], lr: 0.1, effects: [{ name: "x", value: null, se: null }] },
    ],
    run_configs: [
      { arm: "sigmoid, depth 4|none|0.1|0", run_id: "r1" }, { arm: "sigmoid, depth 4|none|0.1|1", run_id: "r2" },
      { arm: "tanh|none|0.1|0", run_id: null },
    ],
  };
  const cells = regimeCells(result);
  assert.equal(cells.length, 2);
  assert.equal(cells[0].published, true);
  assert.deepEqual(cells[0].style, CELL_COLORS.holds);
  assert.equal(cells[0].effects[0].text, "0.638 ± 0.00730");
  assert.deepEqual(cells[0].runIds, ["r1", "r2"]);
  assert.deepEqual(cells[1].style, CELL_COLORS["no difference measured"]);
  assert.equal(cells[1].effects[0].text, "— ± —");
  assert.deepEqual(cells[1].runIds, []);
  assert.deepEqual(regimeCells({}), []);
  assert.equal(cells[0].lrText, "0.1");
});

test("a cell's lr reads as one rate or as each arm's tuned rate", async () => {
  const { lrText } = await import("../claim_figures.js");
  assert.equal(lrText(0.3), "0.3");
  assert.equal(lrText({ affine: 3, plain: 0.3 }), "affine 3 · plain 0.3");
  assert.equal(lrText({ none: null }), "none —");
  assert.equal(lrText(undefined), "—");
});

test("a regime cell shows one lr per arm and links the runs of the regimes it compares", async () => {
  const { regimeCells } = await import("../claim_figures.js");
  const result = {
    regimes: [{ regime: "batch 4", runs_of: ["batch 4", "batch 32"], verdict: "holds", seeds: [0, 1],
      lr: { batch: 0.003, group: 0.03 }, effects: [] }],
    run_configs: [
      { arm: "batch 4|batch|0.003|0", run_id: "a" }, { arm: "batch 32|batch|0.03|0", run_id: "b" },
      { arm: "batch 16|batch|0.03|0", run_id: "c" },
    ],
  };
  const [cell] = regimeCells(result);
  assert.equal(cell.lrText, "batch 0.003 · group 0.03");
  assert.deepEqual(cell.runIds, ["a", "b"]);
  assert.equal(regimeCells({ regimes: [{ regime: "x", lr: null }] })[0].lrText, "—");
});

test("a trace's error becomes symmetric error bars in its colour", () => {
  const f = figure({ traces: [{ name: "h1", x: [0, 1], y: [0.5, 0.4], error: [0.1, 0.2] }, { name: "h2", x: [0], y: [1] }] });
  assert.deepEqual(f.traces[0].error_y.array, [0.1, 0.2]);
  assert.equal(f.traces[0].error_y.color, f.traces[0].line.color);
  assert.equal(f.traces[1].error_y, undefined);
});
