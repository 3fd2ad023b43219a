// The 15th, 50th and 85th percentile of one layer's activation input (BN paper, Figure 1b/c).

import * as P from "../plot.js";
import { extendPayload, percentileTraces } from "../transforms.js";

export function draw(el, cols, name, { step, sat } = {}) {
  const rule = sat?.text ? ` · ${sat.text} (dashed)` : "";
  return P.draw(el, percentileTraces(cols, name), P.layout(`${name}: 15 / 50 / 85th percentile${rule}`, {
    shapes: [...P.stepMarker(step), ...P.levelLines(sat?.lines)],
  }));
}

export function extend(el, delta, name) {
  return P.extend(el, extendPayload(percentileTraces(delta, name)));
}
