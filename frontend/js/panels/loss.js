// Loss and accuracy of the training batch and of the held-out split (dashed).

import * as P from "../plot.js";
import { extendPayload, lossTraces } from "../transforms.js";

export function draw(el, cols) {
  return P.draw(el, lossTraces(cols), P.layout("loss (left) and accuracy (right)", {
    yaxis: { title: { text: "loss" }, rangemode: "tozero", zeroline: false, automargin: true },
    yaxis2: { title: { text: "accuracy" }, overlaying: "y", side: "right", range: [0, 1.02], showgrid: false, tickmode: "linear", tick0: 0, dtick: 0.2 },
    margin: { l: 48, r: 44, t: 30, b: 30 },
    annotations: cols.step.length ? [] : P.note("waiting for the first frame…"),
  }));
}

export function extend(el, delta) {
  return P.extend(el, extendPayload(lossTraces(delta)));
}
