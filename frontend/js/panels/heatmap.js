// One layer's distribution over steps: x = step, y = the fixed histogram bins, colour = log
// share of values per bin. Fixed edges make the drift visible as a moving band.

import * as P from "../plot.js";
import { extendPayload, HEATMAP_KEYS, heatmapTraces } from "../transforms.js";

/** `yrange` / `xrange` let Compare put several runs on the same axes. */
export function draw(el, cols, name, { step, title, yrange, xrange } = {}) {
  const layer = cols.layers[name];
  return P.draw(el, heatmapTraces(cols, name), P.layout(title ?? `${name}: distribution over steps`, {
    xaxis: { title: { text: "step", standoff: 4 }, range: xrange, automargin: true },
    yaxis: { title: { text: "activation input" }, range: yrange ?? [layer.lo, layer.hi], zeroline: false, automargin: true },
    shapes: P.stepMarker(step),
    annotations: cols.step.length ? [] : P.note("waiting for the first frame…"),
  }));
}

export function extend(el, delta, name) {
  return P.extend(el, extendPayload(heatmapTraces(delta, name), HEATMAP_KEYS));
}
