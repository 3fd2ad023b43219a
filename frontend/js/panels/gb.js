// The norm's own scale g and shift b over steps: the "second shift and scale" that lets a
// normalized layer undo the normalization (seed C3).

import * as P from "../plot.js";
import { extendPayload, gbTraces, hasValues } from "../transforms.js";

export function draw(el, cols, name, { step } = {}) {
  const traces = gbTraces(cols, name);
  const empty = cols.step.length && !traces.some((t) => hasValues(t.y));
  return P.draw(el, traces, P.layout(`${name}: norm's g and b`, {
    shapes: P.stepMarker(step),
    annotations: empty ? P.note("no g, b here: no norm, or affine off") : [],
  }));
}

export function extend(el, delta, name) {
  return P.extend(el, extendPayload(gbTraces(delta, name)));
}
