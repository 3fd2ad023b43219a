// Pure helpers of the launch form: which input each RunConfig field gets, how typed values are
// read back, how FastAPI's 422 details map onto fields, and short run summaries.
//
// The form is generated from /api/catalog (its `defaults` list every RunConfig field), so a
// field added to RunConfig shows up without a frontend change; these tables only refine it.

// Catalog list that holds the choices of each enumerated field.
export const CHOICES = {
  model: "models", activation: "activations", norm: "norms", placement: "placements",
  init: "inits", cell: "cells", dataset: "datasets", batch_order: "batch_orders",
  optimizer: "optimizers", device: "devices",
};
// The catalog has no list of devices; RunConfig's DEVICES.
export const FALLBACK_CHOICES = { devices: ["auto", "cpu", "cuda"] };
// JSON cannot tell 1.0 from 1, so float fields are named.
export const FLOAT_FIELDS = new Set(["lr", "momentum", "init_std", "clip"]);
// Fields whose default is null (off) and that take a number when set.
export const OPTIONAL_FIELDS = new Set(["clip"]);
// Catalog limit (server setting) that bounds a field.
export const LIMITS = { steps: "steps", width: "width", depth: "depth", batch_size: "batch_size" };

export const GROUPS = [
  ["Network", ["model", "depth", "width", "activation", "cell", "init", "init_std"]],
  ["Normalization", ["norm", "affine", "placement", "groups"]],
  ["Data", ["dataset", "batch_order", "batch_size"]],
  ["Optimization", ["optimizer", "lr", "momentum", "steps", "clip"]],
  ["Probing and run", ["probe_every", "hist_bins", "eval_every", "ics", "seed", "device"]],
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
  if (CHOICES[name] && (catalog[CHOICES[name]] || FALLBACK_CHOICES[CHOICES[name]])) return "select";
  const d = defaults[name];
  if (typeof d === "boolean") return "bool";
  if (OPTIONAL_FIELDS.has(name) || d === null) return "optional";
  if (typeof d === "number") return FLOAT_FIELDS.has(name) || !Number.isInteger(d) ? "float" : "int";
  return "text";
}

/** The choices of a select: [{value, label, note}] (norms carry their one-line note). */
export function choicesOf(name, catalog) {
  const list = catalog[CHOICES[name]] ?? FALLBACK_CHOICES[CHOICES[name]] ?? [];
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
  if (config.model !== "rnn") off.add("cell");
  if (config.norm !== "group") off.add("groups");
  if (config.init !== "gaussian") off.add("init_std");
  if (config.optimizer !== "momentum") off.add("momentum");
  if (config.norm === "none") ["affine", "placement"].forEach((f) => off.add(f));
  return off;
}

/** A run of a model of one's own (normcore.watch): its own loop trains it, not the server. */
export const isWatched = (c) => c?.model === "own";

/** '3 / 2,000 steps', or '3 steps' for a watched run of no planned length. */
export function stepsText(step, steps) {
  return steps ? `${fmt(step)} / ${fmt(steps)} steps` : `${fmt(step)} steps`;
}

/** The layers a watched run names: 'conv, fc1, fc2', the first few of many. */
function layerList(names = [], shown = 4) {
  const more = names.length > shown ? `, … (${names.length})` : "";
  return names.slice(0, shown).join(", ") + more;
}

/**
 * 'batch · mlp 3×100 sigmoid · digits · bs 60 · sgd lr 0.1', or for a watched run
 * 'own model · conv, fc1, fc2 · relu · every 5 steps'.
 */
export function configSummary(c) {
  if (!c) return "";
  if (isWatched(c)) {
    return `own model · ${layerList(c.layers)} · ${c.activation} · every ${fmt(c.probe_every)} steps`;
  }
  const net = `${c.model} ${c.depth}×${c.width} ${c.activation}`;
  const norm = c.norm === "none" ? "no norm" : `${c.norm}${c.affine === false ? " (no g,b)" : ""}`;
  const order = c.batch_order && c.batch_order !== "shuffled" ? ` ${c.batch_order}` : "";
  // init changes what a deep sigmoid net learns (chance vs 100 %): always said when not default
  const init = c.init && c.init !== "default" ? ` · init ${c.init}${c.init === "gaussian" ? ` std ${c.init_std}` : ""}` : "";
  return `${norm} · ${net}${init} · ${c.dataset}${order} · bs ${c.batch_size} · ${c.optimizer} lr ${c.lr}`;
}

/** A number for humans: 3 significant digits, thousands grouped, "–" for null. */
export function fmt(v, digits = 3) {
  if (v == null || !Number.isFinite(v)) return "–";
  if (Number.isInteger(v) && Math.abs(v) < 1e7) return v.toLocaleString("en-US");
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(digits - 1);
  return String(Number(v.toPrecision(digits)));
}

/**
 * Short labels that tell runs apart: the config fields that differ between them
 * ("batch · batch_size 2" vs "layer · batch_size 60"); the norm always leads.
 */
export function distinguishingLabels(configs) {
  if (!configs.length) return [];
  const keys = Object.keys(configs[0]).filter(
    (k) => k !== "norm" && configs.some((c) => JSON.stringify(c[k]) !== JSON.stringify(configs[0][k])),
  );
  return configs.map((c) => [c.norm === "none" ? "no norm" : c.norm, ...keys.map((k) => `${k} ${c[k]}`)].join(" · "));
}
