// Gradient norms of one layer on a log axis: vanishing and exploding gradients are orders of
// magnitude, not percentages.

import * as P from "../plot.js";
import { extendPayload, gradTraces, LOG_AXIS } from "../transforms.js";

export function draw(el, cols, name, { step } = {}) {
  return P.draw(el, gradTraces(cols, name), P.layout(`${name}: gradient norms`, {
    yaxis: { ...LOG_AXIS, automargin: true },
    shapes: P.stepMarker(step),
  }));
}

export function extend(el, delta, name) {
  return P.extend(el, extendPayload(gradTraces(delta, name)));
}
