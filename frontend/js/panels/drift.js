// Drift of one layer's input distribution: Wasserstein-1 on the fixed bins to the previous
// probe (how fast it moves) and to the first probe (how far it went).

import * as P from "../plot.js";
import { driftTraces, extendPayload } from "../transforms.js";

export function draw(el, cols, name, { step } = {}) {
  return P.draw(el, driftTraces(cols, name), P.layout(`${name}: drift (W1)`, {
    // W1 between two distributions of the activation input is in the input's own units.
    yaxis: { title: { text: "W1 (input units)" }, rangemode: "tozero", automargin: true },
    shapes: P.stepMarker(step),
  }));
}

export function extend(el, delta, name) {
  return P.extend(el, extendPayload(driftTraces(delta, name)));
}
