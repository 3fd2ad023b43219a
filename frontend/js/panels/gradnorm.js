// Gradient norms of one layer on a log axis: vanishing and exploding gradients are orders of
// magnitude, not percentages.

import * as P from "../plot.js";
import { extendPayload, gradTraces, logAxisTicks } from "../transforms.js";

export function draw(el, cols, name, { step } = {}) {
  const traces = gradTraces(cols, name);
  return P.draw(el, traces, P.layout(`${name}: gradient norms`, {
    yaxis: { type: "log", automargin: true, ...logAxisTicks(traces.map((t) => t.y)) },
    shapes: P.stepMarker(step),
  }));
}

export function extend(el, delta, name) {
  return P.extend(el, extendPayload(gradTraces(delta, name)));
}
