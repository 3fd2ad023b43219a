// How a run and its numbers read in the views (run, runs, compare, the layer rows): pure
// functions, tested in node.

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
  return `${norm} · ${net} · ${c.dataset}${order} · bs ${c.batch_size} · ${c.optimizer} lr ${c.lr}`;
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
