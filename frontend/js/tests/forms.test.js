import assert from "node:assert/strict";
import { test } from "node:test";

import { canRerun, configSummary, distinguishingLabels, fmt, isWatched, stepsText } from "../format.js";
import { choicesOf, fieldErrors, fieldKind, groupedFields, irrelevantFields, toConfig } from "../forms.js";

const defaults = {
  model: "mlp", depth: 3, width: 100, activation: "sigmoid", norm: "none", affine: true,
  lr: 0.1, momentum: 0.9, clip: null, steps: 2000, seed: 0, device: "auto", brand_new: 7,
};
const catalog = {
  models: ["mlp", "convnet", "rnn"], activations: ["sigmoid", "tanh"],
  norms: [{ name: "batch", title: "Batch norm", note: "normalizes over the batch" }, { name: "none" }],
  devices: ["auto", "cpu", "cuda"],
};

test("field kinds follow the catalog and the defaults", () => {
  assert.equal(fieldKind("model", defaults, catalog), "select");
  assert.equal(fieldKind("norm", defaults, catalog), "select");
  assert.equal(fieldKind("device", defaults, catalog), "select");
  assert.equal(fieldKind("depth", defaults, catalog), "int");
  assert.equal(fieldKind("lr", defaults, catalog), "float");
  assert.equal(fieldKind("affine", defaults, catalog), "bool");
  assert.equal(fieldKind("clip", defaults, catalog), "optional");
  assert.equal(fieldKind("seq_len_test", { ...defaults, seq_len_test: null }, catalog), "optional");
  assert.equal(fieldKind("seq_task", defaults, { ...catalog, seq_tasks: ["late", "early"] }), "select");
  assert.equal(fieldKind("brand_new", defaults, catalog), "int");
});

test("every default field is in exactly one group; unknown ones under Other", () => {
  const groups = groupedFields(defaults);
  const all = groups.flatMap(([, fs]) => fs);
  assert.deepEqual([...all].sort(), Object.keys(defaults).sort());
  assert.deepEqual(groups.at(-1), ["Other", ["brand_new"]]);
});

test("norm choices carry their one-line note", () => {
  const [bn] = choicesOf("norm", catalog);
  assert.deepEqual(bn, { value: "batch", label: "Batch norm", note: "normalizes over the batch" });
  assert.deepEqual(choicesOf("device", catalog).map((c) => c.value), ["auto", "cpu", "cuda"]);
});

test("form strings become typed config values; blank numbers become null", () => {
  const c = toConfig({ depth: "3", lr: "0.05", affine: false, clip: "", model: "mlp", steps: "" }, defaults, catalog);
  assert.deepEqual(c, { depth: 3, lr: 0.05, affine: false, clip: null, model: "mlp", steps: null });
  assert.equal(toConfig({ clip: "1.5" }, defaults, catalog).clip, 1.5);
});

test("422 details map to their field; body-level errors to the form", () => {
  const errs = fieldErrors({
    detail: [
      { loc: ["body", "batch_size"], msg: "Value error, batch_size 1 with norm 'batch': ..." },
      { loc: ["body"], msg: "JSON decode error" },
      { loc: ["body", "lr"], msg: "Input should be greater than 0" },
    ],
  });
  assert.deepEqual(errs.batch_size, ["batch_size 1 with norm 'batch': ..."]);
  assert.deepEqual(errs._form, ["JSON decode error"]);
  assert.deepEqual(errs.lr, ["Input should be greater than 0"]);
  assert.deepEqual(fieldErrors({ detail: "queue full" }), { _form: ["queue full"] });
});

test("irrelevant fields depend on the config", () => {
  const off = irrelevantFields({ model: "mlp", norm: "none", init: "default", optimizer: "sgd" });
  assert.ok(off.has("cell") && off.has("groups") && off.has("momentum") && off.has("affine"));
  assert.ok(off.has("seq_len") && off.has("seq_vary") && off.has("norm_terms"));
  const on = irrelevantFields({ model: "rnn", norm: "group", init: "gaussian", optimizer: "momentum" });
  assert.deepEqual([...on], ["bn_per_step"]); // batch norm's option only
  const bn = irrelevantFields({ model: "rnn", norm: "batch", init: "gaussian", optimizer: "momentum" });
  assert.deepEqual([...bn], ["groups"]);
});

test("summaries and numbers read well", () => {
  const s = configSummary({ ...defaults, norm: "batch", batch_size: 2, optimizer: "sgd", dataset: "digits", batch_order: "one_class" });
  assert.equal(s, "batch · mlp 3×100 sigmoid · digits one_class · bs 2 · sgd lr 0.1");
  const g = configSummary({ ...defaults, init: "gaussian", init_std: 1 });
  assert.match(g, /sigmoid · init gaussian std 1 · /);
  assert.equal(fmt(12345), "12,345");
  assert.equal(fmt(0.123456), "0.123");
  assert.equal(fmt(0.0000123), "1.23e-5");
  assert.equal(fmt(null), "–");
  assert.equal(fmt(NaN), "–");
});

test("a watched model of one's own reads by its layers, and may have no planned length", () => {
  const own = { model: "own", activation: "relu", layers: ["conv", "fc1", "fc2"], probe_every: 5, steps: 0 };
  assert.ok(isWatched(own) && !isWatched(defaults) && !isWatched(null));
  assert.equal(configSummary(own), "own model · conv, fc1, fc2 · relu · every 5 steps");
  const deep = { ...own, layers: Array.from({ length: 12 }, (_, i) => `block${i}`) };
  assert.equal(configSummary(deep), "own model · block0, block1, block2, block3, … (12) · relu · every 5 steps");
  assert.equal(stepsText(1234, 0), "1,234 steps");
  assert.equal(stepsText(1234, 2000), "1,234 / 2,000 steps");
});

test("compare labels name what differs between runs", () => {
  const a = { ...defaults, norm: "batch", batch_size: 2 };
  const b = { ...defaults, norm: "layer", batch_size: 2 };
  const c = { ...defaults, norm: "none", batch_size: 60 };
  assert.deepEqual(distinguishingLabels([a, b]), ["batch", "layer"]);
  assert.deepEqual(distinguishingLabels([a, c]), ["batch · batch_size 2", "no norm · batch_size 60"]);
  assert.deepEqual(distinguishingLabels([]), []);
});

test("only runs that ended early and that the server trains offer a re-run", () => {
  for (const status of ["interrupted", "failed", "cancelled"]) assert.ok(canRerun({ status, config: defaults }), status);
  for (const status of ["queued", "running", "completed", "diverged"]) assert.ok(!canRerun({ status, config: defaults }), status);
  assert.ok(!canRerun({ status: "cancelled", config: { model: "own" } }));
  assert.ok(!canRerun(null));
});
