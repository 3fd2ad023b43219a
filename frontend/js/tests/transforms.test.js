import assert from "node:assert/strict";
import { test } from "node:test";

import { addFrames, emptyColumns } from "../columns.js";
import {
  compareGbTraces, comparePercentileTraces, defaultOverviewMetric, compareRunTraces, driftTraces, extendPayload, gbTraces,
  gradTraces, HEATMAP_KEYS, hasValues, heatmapTraces, lossTraces, overviewTraces,
  occupiedRange, percentileTraces, saturationMarks, sharedRange, stepRange, withAlpha,
} from "../transforms.js";
import { frame, frames } from "./sample.js";

const build = (n, opts) => {
  const cols = emptyColumns();
  addFrames(cols, frames(n, opts));
  return cols;
};

const LAYER_BUILDERS = { percentileTraces, gradTraces, gbTraces, driftTraces };

test("extending with the delta's traces gives the full traces (every line panel)", () => {
  const builders = { ...LAYER_BUILDERS, lossTraces: (cols) => lossTraces(cols) };
  const cols = build(5, { evalEvery: 2 });
  // Builders hand out the store's own arrays, which grow in place: snapshot by value.
  const before = Object.fromEntries(
    Object.entries(builders).map(([k, b]) => [k, structuredClone(b(cols, "h2"))]),
  );
  const delta = addFrames(cols, [frame(5), frame(6, { evalEvery: 2 })]);
  for (const [k, b] of Object.entries(builders)) {
    const full = b(cols, "h2");
    const { update, indices } = extendPayload(b(delta, "h2"));
    assert.deepEqual(indices, full.map((_, i) => i), `${k} keeps its trace count`);
    full.forEach((t, i) => {
      assert.deepEqual([...before[k][i].x, ...update.x[i]], t.x, `${k}[${i}].x`);
      assert.deepEqual([...before[k][i].y, ...update.y[i]], t.y, `${k}[${i}].y`);
    });
  }
});

test("loss traces: train loss and acc on steps, held-out on evaluation steps", () => {
  const cols = build(5, { evalEvery: 2 });
  const [loss, heldLoss, acc, heldAcc] = lossTraces(cols);
  assert.deepEqual(loss.x, [0, 10, 20, 30, 40]);
  assert.deepEqual(heldLoss.x, [0, 20, 40]);
  assert.equal(acc.yaxis, "y2");
  assert.equal(heldAcc.yaxis, "y2");
  assert.equal(heldAcc.line.dash, "dash");
});

test("batch-statistics traces are hidden until a norm with running stats reports them", () => {
  const cols = build(3, { evalEvery: 1 });
  assert.equal(lossTraces(cols)[4].visible, "legendonly");
  addFrames(cols, [frame(3, { evalEvery: 1, batchStats: true })]);
  assert.equal(lossTraces(cols)[4].visible, true);
});

test("distribution heatmap: steps as columns, fixed bin centres, Viridis, fixed z range", () => {
  const cols = build(4);
  const [h] = heatmapTraces(cols, "h1");
  assert.equal(h.type, "heatmap");
  assert.equal(h.transpose, true);
  assert.equal(h.colorscale, "Viridis");
  assert.deepEqual(h.x, [0, 10, 20, 30]);
  assert.equal(h.y.length, 10); // 8 bins and the under/overflow rows
  assert.equal(h.z.length, 4);
  assert.equal(h.zmin, -4);
  assert.equal(h.zmax, 0);
  // frame seq puts its peak into bin seq % 8 (row 1 + that): the picture moves with the data
  assert.equal(h.z[3].indexOf(Math.max(...h.z[3])), 1 + 3);
});

test("heatmap extends by steps: x and z grow, the bins do not", () => {
  const cols = build(3);
  const delta = addFrames(cols, [frame(3)]);
  const { update } = extendPayload(heatmapTraces(delta, "h1"), HEATMAP_KEYS);
  assert.deepEqual(Object.keys(update), ["x", "z"]);
  assert.deepEqual(update.x[0], [30]);
  assert.equal(update.z[0].length, 1);
  assert.deepEqual(update.z[0][0], cols.layers.h1.density.at(-1));
});

test("percentile band fills between p15 and p85 around the median", () => {
  const cols = build(3);
  const [p85, p15, p50] = percentileTraces(cols, "h1", "#0072B2", "BN");
  assert.deepEqual(p85.y, cols.layers.h1.p85);
  assert.equal(p15.fill, "tonexty");
  assert.equal(p15.fillcolor, "rgba(0, 114, 178, 0.18)");
  assert.deepEqual(p50.y, cols.layers.h1.p50);
  assert.equal(p50.name, "BN median");
});

test("overview: layers × steps, saturation on a fixed 0..1 scale", () => {
  const cols = build(3);
  const [o] = overviewTraces(cols, "sat");
  assert.deepEqual(o.y, ["h1", "h2"]);
  assert.deepEqual(o.z, [[0.5, 0.5], [0.49, 0.49], [0.48, 0.48]]);
  assert.equal(o.zmin, 0);
  assert.equal(o.zmax, 1);
  assert.notEqual(o.colorscale, "Jet");
});

test("overview of gradient norms is log10, and non-positive values are gaps", () => {
  const cols = build(3);
  cols.layers.h1.max.grad_norm[0] = 0; // the overview draws bucket maxima
  const [o] = overviewTraces(cols, "grad_norm");
  assert.equal(o.z[0][0], null);
  assert.equal(o.z[1][0], -1);
  assert.equal(o.z[2][1], -2);
  assert.equal(o.zmin, undefined);
});

test("overview before the norm reads sat_pre", () => {
  const cols = build(2);
  assert.deepEqual(overviewTraces(cols, "sat_pre")[0].z, [[0.6, 0.6], [0.6, 0.6]]);
});

test("overview of graded saturation: its own column on the 0..1 scale", () => {
  const cols = build(2);
  const [o] = overviewTraces(cols, "sat_graded");
  assert.deepEqual(o.z, [[0.3, 0.3], [0.31, 0.31]]);
  assert.equal(o.zmin, 0);
  assert.equal(o.zmax, 1);
  assert.deepEqual(overviewTraces(cols, "sat")[0].z, [[0.5, 0.5], [0.49, 0.49]]); // strict cut kept
});

test("the overview opens on graded saturation, on the strict cut for runs without it", () => {
  assert.equal(defaultOverviewMetric(build(3)), "sat_graded");
  assert.equal(defaultOverviewMetric(build(3, { graded: false })), "sat");
  assert.equal(defaultOverviewMetric(emptyColumns()), "sat"); // no frame yet
  const cols = build(2, { graded: false });
  addFrames(cols, [frame(2)]); // a graded value arrives later: the default follows it
  assert.equal(defaultOverviewMetric(cols), "sat_graded");
});

test("g/b absent without an affine norm: the panel can tell", () => {
  const cols = build(3, { g: false });
  assert.equal(hasValues(gbTraces(cols, "h1")[0].y), false);
  assert.equal(hasValues(gbTraces(build(3), "h1")[0].y), true);
});

test("compare: one trace per run with the run's colour and label", () => {
  const runs = [
    { cols: build(3, { evalEvery: 1 }), label: "none", color: "#0072B2" },
    { cols: build(4, { evalEvery: 1 }), label: "BN", color: "#D55E00" },
  ];
  const loss = compareRunTraces(runs, "loss");
  assert.deepEqual(loss.map((t) => t.name), ["none", "BN"]);
  assert.equal(loss[1].line.color, "#D55E00");
  assert.equal(loss[1].x.length, 4);
  assert.equal(compareRunTraces(runs, "eval.acc")[0].y.length, 3);
  assert.equal(comparePercentileTraces(runs, "h1").length, 6);
  assert.equal(comparePercentileTraces(runs, "h9").length, 0);
  assert.ok(comparePercentileTraces(runs, "h1").every((t) => !t.fill), "outlines, no grey mush");
});

test("compare g/b: runs without g and b get no legend entries", () => {
  const runs = [
    { cols: build(3, { g: false }), label: "no norm", color: "#0072B2" },
    { cols: build(3), label: "batch", color: "#D55E00" },
  ];
  assert.deepEqual(compareGbTraces(runs, "h1").map((t) => t.name), ["batch g", "batch b"]);
});

test("shared range covers every run's edges", () => {
  const a = build(1);
  const b = build(1);
  b.layers.h1.centers = [-9, -7, -5, -3, -1, 1, 3]; // bins on [-8, 2], width 2, edge rows
  // a: 8 bins on [-4, 4], width 1, plus one row each side: [-5, 5]; b: [-10, 4]
  assert.deepEqual(sharedRange([{ cols: a }, { cols: b }], "h1"), [-10, 5]);
  assert.equal(sharedRange([{ cols: a }], "nope"), null);
});

test("colours are valid CSS rgba", () => {
  assert.equal(withAlpha("#D55E00", 0.5), "rgba(213, 94, 0, 0.5)");
});


test("a zoom or pan on the step axis asks for its range; a reset for the whole run", () => {
  assert.deepEqual(stepRange({ "xaxis.range[0]": 10.4, "xaxis.range[1]": 99.2 }), [10, 100]);
  assert.deepEqual(stepRange({ "xaxis.range": [-5, 20.5] }), [0, 21]);
  assert.equal(stepRange({ "xaxis.autorange": true }), null);
  assert.equal(stepRange({ "yaxis.range[0]": 1, "yaxis.range[1]": 2 }), undefined);
  assert.equal(stepRange({ autosize: true }), undefined);
});

test("saturation marks follow the activation's rule", () => {
  assert.deepEqual(saturationMarks({ rule: "abs_above", at: 4.356 }), { lines: [-4.356, 4.356], text: "saturated: |x| > 4.356" });
  assert.deepEqual(saturationMarks({ rule: "at_or_below", at: 0 }).lines, [0]);
  assert.deepEqual(saturationMarks(undefined), { lines: [], text: "" });
});

test("a distribution's y range covers its occupied rows, a row of margin each side", () => {
  const cols = emptyColumns();
  addFrames(cols, frames(3)); // 8 bins on [-4, 4]: one bin holds 30, the others 10
  assert.deepEqual(occupiedRange(cols.layers.h1), [-5, 5]); // every row occupied
  const layer = { centers: [-1.5, -0.5, 0.5, 1.5], density: [[-4, -1, -4, -4], [-4, -4, 0, -4]] };
  assert.deepEqual(occupiedRange(layer), [-2, 2]);
  assert.equal(occupiedRange({ centers: [0, 1], density: [[-4, -4]] }), null);
});
