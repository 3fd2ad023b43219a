import assert from "node:assert/strict";
import { test } from "node:test";

import { cellText, heatmapTrace, isNumeric, lineTraces, parseValues, pool } from "../sweep_grid.js";

const cell = (norm, bs, lr, seed, metric, runId) => ({
  values: { norm, batch_size: bs, lr }, seed, metric, ended: metric !== null, run_id: runId,
});

const SWEEP = {
  grid: { norm: ["batch", "group"], batch_size: [2, 32], lr: [0.1, 0.01] },
  cells: [
    cell("batch", 2, 0.1, 0, 0.5, "a"), cell("batch", 2, 0.1, 1, 0.7, "b"),
    cell("batch", 2, 0.01, 0, 0.3, "c"), cell("batch", 32, 0.1, 0, 0.9, "d"),
    cell("group", 2, 0.1, 0, 0.8, "e"), cell("group", 32, 0.1, 0, null, "f"),
  ],
};

test("pool fixes some fields and averages over the others", () => {
  const fixedLr = pool(SWEEP, "batch_size", "norm", { lr: 0.1 });
  assert.deepEqual(fixedLr.xs, [2, 32]);
  assert.deepEqual(fixedLr.ys, ["batch", "group"]);
  const bs2 = fixedLr.cells[0][0];
  assert.equal(bs2.mean, 0.6);
  assert.ok(Math.abs(bs2.std - Math.sqrt(0.02)) < 1e-12);
  assert.deepEqual(bs2.runIds, ["a", "b"]);
  const pending = fixedLr.cells[1][1];
  assert.deepEqual([pending.mean, pending.done, pending.total], [null, 0, 1]);
  const averaged = pool(SWEEP, "batch_size", "norm");
  assert.equal(averaged.cells[0][0].n, 3); // lr 0.1 and 0.01 pooled
  assert.ok(Math.abs(averaged.cells[0][0].mean - 0.5) < 1e-12);
});

test("a one-field view pools everything into one row", () => {
  const one = pool(SWEEP, "norm", null, { batch_size: 2 });
  assert.deepEqual(one.ys, [null]);
  assert.equal(one.cells[0][0].n, 3);
  assert.equal(one.cells[0][1].mean, 0.8);
});

test("labels say mean ± std and the seeds still running", () => {
  assert.equal(cellText({ mean: 0.6, std: 0.1414, n: 2, done: 2, total: 2 }), "0.600 ± 0.141");
  assert.equal(cellText({ mean: 0.8, std: null, n: 1, done: 1, total: 3 }), "0.800 (1/3)");
  assert.equal(cellText({ mean: null, std: null, n: 0, done: 0, total: 2 }), "0/2");
});

test("traces carry the run ids of each cell for the click", () => {
  const pooled = pool(SWEEP, "batch_size", "norm", { lr: 0.1 });
  const heat = heatmapTrace(pooled, "eval_acc");
  assert.deepEqual(heat.x, ["2", "32"]);
  assert.equal(heat.customdata[0][0], "a,b");
  assert.equal(heat.z[1][1], null);
  const lines = lineTraces(pooled, "norm");
  assert.equal(lines.length, 2);
  assert.deepEqual(lines[0].x, [2, 32]);
  assert.equal(lines[0].name, "norm=batch");
  assert.equal(lines[0].error_y.array[1], 0); // one seed: no bar
});

test("values typed in the form become numbers, booleans or names", () => {
  assert.deepEqual(parseValues("2, 4,8"), [2, 4, 8]);
  assert.deepEqual(parseValues("batch, group ,"), ["batch", "group"]);
  assert.deepEqual(parseValues("0.1, 1e-3, true, null"), [0.1, 0.001, true, null]);
  assert.deepEqual(parseValues("3x100"), ["3x100"]);
  assert.ok(isNumeric([1, 2.5]) && !isNumeric(["a", 1]) && !isNumeric([]));
});
