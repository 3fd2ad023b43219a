// Pure helpers of the launch form: which input each RunConfig field gets, how typed values are
// read back, and how FastAPI's 422 details map onto fields. How runs read in the run views
// (summaries, step counts, numbers) is in format.js.
//
// The form is generated from /api/catalog (its `defaults` list every RunConfig field), so a
// field added to RunConfig shows up without a frontend change; these tables only refine it.

// Catalog list that holds the choices of each enumerated field.
export const CHOICES = {
  model: "models", activation: "activations", norm: "norms", placement: "placements",
  init: "inits", cell: "cells", dataset: "datasets", batch_order: "batch_orders",
  optimizer: "optimizers", device: "devices", seq_task: "seq_tasks", norm_terms: "norm_terms",
};
// JSON cannot tell 1.0 from 1, so float fields are named.
export const FLOAT_FIELDS = new Set(["lr", "momentum", "init_std", "clip", "val_fraction"]);
// Fields whose default is null (off) and that take a number when set.
export const OPTIONAL_FIELDS = new Set(["clip", "seq_len_test"]);
// Fields only the rnn model reads (the sequence task and the recurrent norm's options).
export const RNN_FIELDS = ["cell", "seq_len", "seq_len_test", "seq_vary", "seq_task", "bn_per_step", "norm_terms"];
// Catalog limit (server setting) that bounds a field.
export const LIMITS = { steps: "steps", width: "width", depth: "depth", batch_size: "batch_size" };

export const GROUPS = [
  ["Network", ["model", "depth", "width", "activation", "cell", "init", "init_std"]],
  ["Normalization", ["norm", "affine", "placement", "groups"]],
  ["Data", ["dataset", "batch_order", "batch_size", "val_fraction", "input_scale"]],
  ["Sequences (rnn)", ["seq_len", "seq_len_test", "seq_vary", "seq_task", "bn_per_step", "norm_terms"]],
  ["Optimization", ["optimizer", "lr", "momentum", "steps", "clip"]],
  ["Probing and run", ["probe_every", "hist_bins", "eval_every", "ics", "seed", "device", "threads"]],
];

/** Every field of the form, grouped: known groups first, unknown new fields in "Other". */
export function groupedFields(defaults) {
  const known = new Set(GROUPS.flatMap(([, fs]) => fs));
  const groups = GROUPS.map(([title, fs]) => [title, fs.filter((f) => f in defaults)]);
  const other = Object.keys(defaults).filter((f) => !known.has(f));
  if (other.length) groups.push(["Other", other]);
  return groups.filter(([, fs]) => fs.length);
}

/** The input kind of a field: select | bool | int | float | optional | text. */
export function fieldKind(name, defaults, catalog) {
  if (CHOICES[name] && catalog[CHOICES[name]]) return "select";
  const d = defaults[name];
  if (typeof d === "boolean") return "bool";
  if (OPTIONAL_FIELDS.has(name) || d === null) return "optional";
  if (typeof d === "number") return FLOAT_FIELDS.has(name) || !Number.isInteger(d) ? "float" : "int";
  return "text";
}

/** The choices of a select: [{value, label, note}] (norms carry their one-line note). */
export function choicesOf(name, catalog) {
  const list = catalog[CHOICES[name]] ?? [];
  return list.map((c) =>
    typeof c === "string"
      ? { value: c, label: c, note: "" }
      : { value: c.name, label: c.title ?? c.name, note: c.note ?? "" },
  );
}

/** Typed RunConfig from raw form values (strings, booleans). Blank numbers become null. */
export function toConfig(raw, defaults, catalog) {
  const config = {};
  for (const [name, value] of Object.entries(raw)) {
    const kind = fieldKind(name, defaults, catalog);
    if (kind === "bool") config[name] = Boolean(value);
    else if (kind === "int" || kind === "float" || kind === "optional") {
      const s = String(value).trim();
      // null for blank or non-numeric: the server then names the field in its 422.
      config[name] = s === "" || !Number.isFinite(Number(s)) ? null : Number(s);
    } else config[name] = value;
  }
  return config;
}

/**
 * FastAPI's 422 body -> {field: [messages]}; errors without a field go under "_form".
 * loc is ["body", "batch_size"] for a field, ["body"] for the whole body.
 */
export function fieldErrors(body) {
  const out = {};
  const add = (k, m) => (out[k] ??= []).push(m);
  const detail = body?.detail;
  if (!Array.isArray(detail)) {
    add("_form", typeof detail === "string" ? detail : JSON.stringify(body ?? "request rejected"));
    return out;
  }
  for (const d of detail) {
    const loc = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body") : [];
    const msg = String(d.msg ?? "invalid").replace(/^Value error, /, "");
    add(loc.length ? String(loc[0]) : "_form", msg);
  }
  return out;
}

/** Fields that do nothing for this config (shown dimmed, still editable). */
export function irrelevantFields(config) {
  const off = new Set();
  if (config.model !== "rnn") RNN_FIELDS.forEach((f) => off.add(f));
  if (config.norm !== "batch") off.add("bn_per_step");
  if (config.norm !== "group") off.add("groups");
  if (config.init !== "gaussian") off.add("init_std");
  if (config.optimizer !== "momentum") off.add("momentum");
  if (config.norm === "none") ["affine", "placement"].forEach((f) => off.add(f));
  return off;
}
