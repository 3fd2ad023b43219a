import assert from "node:assert/strict";
import { test } from "node:test";

import {
  addFrames, binCenters, DENSITY_FLOOR, densityColumn, emptyColumns, fromSeries, halfIndices, latest,
} from "../columns.js";
import { frame, frames } from "./sample.js";

test("rows: underflow, fixed equal bins, overflow", () => {
  assert.deepEqual(binCenters({ lo: -2, hi: 2, counts: [0, 0, 0, 0] }), [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]);
});

test("density column is log10 share per row, under/overflow rows included, with a floor", () => {
  const z = densityColumn({ lo: 0, hi: 1, counts: [50, 0, 25], under: 20, over: 5 });
  assert.equal(z.length, 5);
  assert.equal(z[0], Math.log10(0.2));
  assert.equal(z[1], Math.log10(0.5));
  assert.equal(z[2], Math.log10(DENSITY_FLOOR));
  assert.equal(z[3], Math.log10(0.25));
  assert.equal(z[4], Math.log10(0.05));
});

test("density column of an empty histogram is a gap, not NaN", () => {
  assert.deepEqual(densityColumn({ lo: 0, hi: 1, counts: [0, 0], under: 0, over: 0 }), [null, null, null, null]);
});

test("frames become aligned columns per run and per layer", () => {
  const cols = emptyColumns();
  addFrames(cols, frames(5, { evalEvery: 2 }));
  assert.deepEqual(cols.step, [0, 10, 20, 30, 40]);
  assert.deepEqual(cols.layerNames, ["h1", "h2"]);
  assert.equal(cols.layers.h2.p50.length, 5);
  assert.equal(cols.layers.h2.density.length, 5);
  assert.equal(cols.layers.h2.density[0].length, 10); // 8 bins + under + over
  assert.deepEqual(cols.evals.step, [0, 20, 40]);
  assert.equal(cols.lastSeq, 4);
  assert.equal(cols.stepsPerS, 804);
});

test("duplicate and already-seen frames are ignored (SSE replay after a reload)", () => {
  const cols = emptyColumns();
  addFrames(cols, frames(3));
  const delta = addFrames(cols, [frame(1), frame(2), frame(3), frame(3), frame(4)]);
  assert.deepEqual(cols.seq, [0, 1, 2, 3, 4]);
  assert.deepEqual(delta.seq, [3, 4]);
  assert.equal(delta.reshape, false);
});

test("out-of-order frames are sorted by seq", () => {
  const cols = emptyColumns();
  addFrames(cols, [frame(2), frame(0), frame(1)]);
  assert.deepEqual(cols.seq, [0, 1, 2]);
});

test("the delta holds exactly the new points of every series", () => {
  const cols = emptyColumns();
  addFrames(cols, frames(4));
  const delta = addFrames(cols, [frame(4), frame(5)]);
  assert.deepEqual(delta.step, cols.step.slice(-2));
  assert.deepEqual(delta.layers.h1.sat, cols.layers.h1.sat.slice(-2));
  assert.deepEqual(delta.layers.h1.density, cols.layers.h1.density.slice(-2));
  assert.deepEqual(delta.layers.h1.centers, cols.layers.h1.centers);
});

test("a store over its cap is halved, keeping first and last, and then strides", () => {
  const cols = emptyColumns(10);
  const delta = addFrames(cols, frames(11));
  assert.equal(delta.reshape, true);
  assert.ok(cols.step.length <= 10);
  assert.equal(cols.step[0], 0);
  assert.equal(cols.step.at(-1), 100);
  assert.equal(cols.stride, 2);
  assert.equal(cols.layers.h1.density.length, cols.step.length);
  // With stride 2, one of the next two live frames is kept.
  addFrames(cols, [frame(11)]);
  addFrames(cols, [frame(12)]);
  assert.equal(cols.seq.filter((s) => s > 10).length, 1);
  assert.ok(cols.step.length <= 10);
});

test("the final frame is always kept, whatever the stride", () => {
  const cols = emptyColumns(4);
  addFrames(cols, frames(9));
  const stride = cols.stride;
  assert.ok(stride > 1);
  addFrames(cols, [frame(9, { status: "completed" })]);
  assert.equal(cols.seq.at(-1), 9);
  assert.equal(cols.status, "completed");
});

test("evaluations survive the stride (they are sparse)", () => {
  const cols = emptyColumns(4);
  addFrames(cols, frames(8));
  const before = cols.evals.step.length;
  addFrames(cols, [frame(8, { evalEvery: 8 })]);
  assert.equal(cols.evals.step.length, before + 1);
});

test("first batch-statistics evaluation asks for a full redraw", () => {
  const cols = emptyColumns();
  addFrames(cols, frames(2));
  const delta = addFrames(cols, [frame(2, { evalEvery: 1, batchStats: true })]);
  assert.equal(cols.hasEvalBatch, true);
  assert.equal(delta.reshape, true);
});

test("a layer that appears late is padded with gaps", () => {
  const cols = emptyColumns();
  addFrames(cols, frames(2, { names: ["h1"] }));
  const delta = addFrames(cols, [frame(2, { names: ["h1", "h2"] })]);
  assert.equal(delta.reshape, true);
  assert.deepEqual(cols.layers.h2.sat.slice(0, 2), [null, null]);
  assert.equal(cols.layers.h2.density.length, 3);
});

test("a layer reported with null statistics (diverged) stays null, never NaN", () => {
  const cols = emptyColumns();
  const f = frame(0);
  f.layers[0] = { name: "h1", hist: { lo: -1, hi: 1, counts: [0, 0], under: 0, over: 0 }, sat: null };
  addFrames(cols, [f]);
  assert.equal(cols.layers.h1.sat[0], null);
  assert.equal(cols.layers.h1.p50[0], null);
  assert.deepEqual(cols.layers.h1.density[0], [null, null, null, null]);
});

test("half indices keep the first and the last", () => {
  assert.deepEqual(halfIndices(6), [0, 2, 4, 5]);
  assert.deepEqual(halfIndices(5), [0, 2, 4]);
  assert.deepEqual(halfIndices(0), []);
});

test("latest skips trailing nulls", () => {
  assert.equal(latest([1, 2, null]), 2);
  assert.equal(latest([null]), null);
});

// A /series answer as app/series.py writes it: each line series on its own steps, the
// overview's bucket maxima on the shared grid, a layer's histogram counts summed per bucket.
const answer = {
  layers: ["h1", "h2"], count: 6, total: 6,
  last: { seq: 5, step: 60, status: "completed", device: "cpu", steps_per_s: 900 },
  run: { loss: { step: [10, 30, 60], y: [2, 9.5, 0.5] } },
  eval: { step: [10, 60], loss: [2.1, 0.6], acc: [0.1, 0.9], loss_batch: [null, null], acc_batch: [null, null] },
  heat: { step: [10, 40], step_to: [30, 60] },
  layer: {
    h1: { "max:sat": [0.2, 0.9] },
    h2: {
      "max:sat": [0.1, 0.3], sat: { step: [10, 20, 60], y: [0.1, 0.3, 0.2] },
      hist: { lo: -1, hi: 1, counts: [[1, 2, 3, 4], [0, 10, 0, 0]] },
    },
  },
};

test("a /series answer becomes columns with per-series steps and bucket grids", () => {
  const cols = fromSeries([answer]);
  assert.deepEqual(cols.layerNames, ["h1", "h2"]);
  assert.deepEqual(cols.xs.loss, [10, 30, 60]);
  assert.deepEqual(cols.loss, [2, 9.5, 0.5]);
  assert.deepEqual(cols.evals.step, [10, 60]);
  assert.deepEqual(cols.step, [10, 40]);
  assert.deepEqual(cols.layers.h1.max.sat, [0.2, 0.9]);
  assert.deepEqual(cols.layers.h2.xs.sat, [10, 20, 60]);
  assert.deepEqual(cols.layers.h2.hx, [10, 40]);
  assert.equal(cols.layers.h2.centers.length, 4); // 2 bins + under + over
  assert.equal(cols.layers.h2.density[1][1], 0); // all 10 values in the first bin: log10(1)
  assert.equal(cols.lastSeq, 5);
  assert.equal(cols.status, "completed");
});

test("live frames after a /series load extend every series and grid", () => {
  const cols = fromSeries([answer]);
  const delta = addFrames(cols, [{ ...frame(6, { names: ["h1", "h2"] }), step: 70 }]);
  assert.deepEqual(cols.xs.loss, [10, 30, 60, 70]);
  assert.deepEqual(cols.layers.h2.xs.sat.at(-1), 70);
  assert.deepEqual(cols.step, [10, 40, 70]);
  assert.equal(cols.layers.h1.max.sat.length, 3);
  assert.deepEqual(delta.xs.loss, [70]);
  const frameOnly = addFrames(fromSeries([answer]), [frame(1)]);
  assert.equal(frameOnly.step.length, 0, "frames a loaded range already holds are skipped");
});
