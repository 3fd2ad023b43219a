// Pure functions from a sweep (GET /api/sweeps/{id}) to what the Sweep view draws: the metric
// over two grid fields as a heatmap, or over one numeric field as lines with error bars.
// Other grid fields are either fixed at one value or averaged over (every seed of every
// matching grid point pooled, so the std is over all of them).

/** Whether every value of a grid field is a number (then it can be a line chart's x axis). */
export function isNumeric(values) {
  return values.length > 0 && values.every((v) => typeof v === "number" && Number.isFinite(v));
}

function meanStd(values) {
  if (!values.length) return { mean: null, std: null, n: 0 };
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (values.length < 2) return { mean, std: null, n: 1 };
  const v = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1);
  return { mean, std: Math.sqrt(v), n: values.length };
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Pool the cells at each (x, y) value pair: `fixed` maps other fields to a value (absent:
 * averaged over). y may be null for a one-field view. Returns
 * {xs, ys, cells: [[{mean, std, n, runIds, done, total}]]} indexed [yi][xi].
 */
export function pool(sweep, xField, yField, fixed = {}) {
  const xs = sweep.grid[xField] ?? [];
  const ys = yField ? sweep.grid[yField] ?? [] : [null];
  const bucket = ys.map(() => xs.map(() => ({ values: [], runIds: [], done: 0, total: 0 })));
  for (const cell of sweep.cells ?? []) {
    const v = cell.values;
    if (Object.entries(fixed).some(([k, want]) => !same(v[k], want))) continue;
    const xi = xs.findIndex((x) => same(x, v[xField]));
    const yi = yField ? ys.findIndex((y) => same(y, v[yField])) : 0;
    if (xi < 0 || yi < 0) continue;
    const b = bucket[yi][xi];
    b.total += 1;
    b.runIds.push(cell.run_id);
    if (cell.ended) b.done += 1;
    if (cell.metric !== null && cell.metric !== undefined) b.values.push(cell.metric);
  }
  const cells = bucket.map((row) => row.map((b) => ({ ...meanStd(b.values), runIds: b.runIds, done: b.done, total: b.total })));
  return { xs, ys, cells };
}

const fmt = (v) => (v === null || v === undefined ? "—" : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));

/** The cell's label: "0.912 ± 0.013" (n < total while seeds are still running). */
export function cellText(c) {
  if (c.mean === null) return c.total ? `${c.done}/${c.total}` : "";
  const spread = c.std === null ? "" : ` ± ${fmt(c.std)}`;
  const progress = c.done < c.total ? ` (${c.done}/${c.total})` : "";
  return `${fmt(c.mean)}${spread}${progress}`;
}

/** A Plotly heatmap trace of the pooled metric; customdata carries the run ids per cell. */
export function heatmapTrace(pooled, metric) {
  return {
    type: "heatmap",
    x: pooled.xs.map(String),
    y: pooled.ys.map(String),
    z: pooled.cells.map((row) => row.map((c) => c.mean)),
    text: pooled.cells.map((row) => row.map(cellText)),
    texttemplate: "%{text}",
    customdata: pooled.cells.map((row) => row.map((c) => c.runIds.join(","))),
    hovertemplate: `%{y} · %{x}<br>${metric}: %{text}<extra></extra>`,
    colorscale: "Viridis",
    colorbar: { title: { text: metric, side: "right" }, thickness: 12 },
    xgap: 2,
    ygap: 2,
  };
}

/** One line per y value over a numeric x field, error bars = std over seeds. */
export function lineTraces(pooled, yField) {
  return pooled.ys.map((y, yi) => ({
    type: "scatter",
    mode: "lines+markers",
    name: yField ? `${yField}=${y}` : "mean",
    x: pooled.xs,
    y: pooled.cells[yi].map((c) => c.mean),
    error_y: { type: "data", array: pooled.cells[yi].map((c) => c.std ?? 0), visible: true },
    customdata: pooled.cells[yi].map((c) => c.runIds.join(",")),
    text: pooled.cells[yi].map(cellText),
    hovertemplate: "%{x}: %{text}<extra>%{fullData.name}</extra>",
  }));
}

/** Parse the Launch form's "values" box: "2, 4, 8" -> [2, 4, 8]; "batch, group" -> names. */
export function parseValues(text) {
  return String(text).split(",").map((s) => s.trim()).filter(Boolean).map((s) => {
    if (s === "true" || s === "false") return s === "true";
    if (s === "null") return null;
    const n = Number(s);
    return Number.isFinite(n) && /^[-+]?(\d|\.\d)/.test(s) ? n : s;
  });
}
