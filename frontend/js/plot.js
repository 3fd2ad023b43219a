// Thin wrapper over the global Plotly (served by the app at /vendor/plotly.min.js): one look for
// every chart, full draws with Plotly.react and live growth with Plotly.extendTraces.

const Plotly = () => window.Plotly;

export const CONFIG = {
  displaylogo: false,
  responsive: true,
  modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d"],
};

let revision = 0;

/** The shared layout: compact margins for a laptop screen, legend on top, zoom kept. */
export function layout(title, extra = {}) {
  return {
    title: { text: title, font: { size: 12 }, x: 0.01, xanchor: "left", y: 0.98, yanchor: "top" },
    margin: { l: 48, r: 12, t: 30, b: 30 },
    font: { size: 11, family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif" },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#ffffff",
    legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom", font: { size: 10 } },
    xaxis: { title: { text: "step", standoff: 4 }, zeroline: false, automargin: true },
    yaxis: { zeroline: false, automargin: true },
    hovermode: "closest",
    uirevision: "keep", // a user's zoom survives redraws
    ...extra,
  };
}

/** Copy the growing arrays: Plotly must never share an array the columns store pushes into. */
function detach(traces) {
  return traces.map((t) => ({
    ...t,
    x: Array.isArray(t.x) ? t.x.slice() : t.x,
    y: Array.isArray(t.y) ? t.y.slice() : t.y,
    z: Array.isArray(t.z) ? t.z.slice() : t.z,
  }));
}

/** Draw (or redraw) a chart in full. */
export function draw(el, traces, lay) {
  revision += 1;
  // An empty chart gets its own uirevision: the first real draw must not inherit its axes.
  const empty = !traces.some((t) => t.x?.length);
  const full = { ...lay, datarevision: revision, uirevision: empty ? "empty" : lay.uirevision };
  if (empty) {
    // No data yet: hide the axes instead of showing a meaningless -1..6 grid.
    for (const k of ["xaxis", "yaxis", "yaxis2"]) full[k] = { ...full[k], visible: false };
  }
  return Plotly().react(el, detach(traces), full, CONFIG);
}

/** Append points: `payload` is transforms.extendPayload(traces built from a delta). */
export function extend(el, payload) {
  if (!el.data || !payload.update.x.some((xs) => xs.length)) return null;
  return Plotly().extendTraces(el, detachUpdate(payload.update), payload.indices);
}

function detachUpdate(update) {
  return Object.fromEntries(Object.entries(update).map(([k, arrs]) => [k, arrs.map((a) => a.slice())]));
}

/** A centred note on an empty chart ("waiting for the first frame"). */
export function note(text) {
  return [{ text, xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false, font: { size: 12, color: "#666" } }];
}

/** A vertical marker at a step (the step picked in the overview). */
export function stepMarker(step) {
  if (step == null) return [];
  return [{ type: "line", xref: "x", yref: "paper", x0: step, x1: step, y0: 0, y1: 1, line: { color: "#D55E00", width: 1, dash: "dot" } }];
}

/** Dashed horizontal lines at values of y (the saturation threshold); they do not widen the axis. */
export function levelLines(values = []) {
  return values.map((y) => ({
    type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: y, y1: y,
    line: { color: "#D55E00", width: 1, dash: "dash" },
  }));
}

export function purge(el) {
  if (el?.data) Plotly().purge(el);
}

/** Resize the charts inside a container that just became visible (an opened layer row). */
export function resizeAll(root) {
  for (const el of root.querySelectorAll(".js-plotly-plot")) Plotly().Plots.resize(el);
}

/**
 * Call `onRange([from, to] | null)` when the user zooms, pans or resets the step axis of a
 * chart: at once for the first relayout (a box zoom or a pan ends in one: its detail is
 * fetched without waiting), then, while more follow within `delay` ms (a scroll-wheel zoom
 * sends one per tick, ~16 ms apart), once more `delay` ms after the last, so a wheel's
 * ticks gather into one more fetch; the views drop answers a newer load superseded.
 */
export function onStepZoom(el, onRange, stepRange, delay = 100) {
  let timer = null;
  let pending;
  el.on("plotly_relayout", (ev) => {
    const range = stepRange(ev);
    if (range === undefined) return;
    if (timer === null) onRange(range); // leading edge
    else pending = range;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      if (pending !== undefined) onRange(pending); // trailing edge: the wheel's last tick
      pending = undefined;
    }, delay);
  });
}
