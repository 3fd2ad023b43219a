// One layer's distribution over steps: x = step, y = the fixed histogram bins, colour = log
// share of values per bin. Fixed edges make the drift visible as a moving band; the rows just
// outside the dotted edge lines hold the under- and overflow.

import * as P from "../plot.js";
import { extendPayload, HEATMAP_KEYS, heatmapTraces, occupiedRange } from "../transforms.js";

/**
 * `yrange` / `xrange` let Compare put several runs on the same axes; otherwise the y range is
 * the occupied rows. `sat` (transforms.saturationMarks) draws the saturation threshold.
 */
export function draw(el, cols, name, { step, title, yrange, xrange, sat } = {}) {
  const layer = cols.layers[name];
  const rule = sat?.text ? ` · ${sat.text} (dashed)` : "";
  return P.draw(el, heatmapTraces(cols, name), P.layout(title ?? `${name}: distribution over steps${rule}`, {
    xaxis: { title: { text: "step", standoff: 4 }, range: xrange, automargin: true },
    yaxis: { title: { text: "activation input" }, range: yrange ?? occupiedRange(layer) ?? edges(layer), zeroline: false, automargin: true },
    shapes: [...P.stepMarker(step), ...binEdges(layer), ...P.levelLines(sat?.lines)],
    annotations: cols.step.length ? [] : P.note("waiting for the first frame…"),
  }));
}

/** The y range: the bins plus the under/overflow rows beyond them. */
export function edges(layer) {
  const w = layer.centers.length > 2 ? layer.centers[1] - layer.centers[0] : 0;
  return [layer.lo - w, layer.hi + w];
}

/** Thin lines at lo and hi: beyond them are the under/overflow rows. */
function binEdges(layer) {
  return [layer.lo, layer.hi].map((y) => ({
    type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: y, y1: y,
    line: { color: "rgba(255, 255, 255, 0.6)", width: 1, dash: "dot" },
  }));
}

export function extend(el, delta, name) {
  return P.extend(el, extendPayload(heatmapTraces(delta, name), HEATMAP_KEYS));
}
