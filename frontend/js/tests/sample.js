// Hand-made frames in the wire layout of normcore/frames.py, for the transform tests.

export function layer(name, i, { lo = -4, hi = 4, bins = 8, g = true, graded = true } = {}) {
  const counts = Array.from({ length: bins }, (_, b) => (b === (i % bins) ? 30 : 10));
  return {
    name,
    hist: { lo, hi, counts, under: 5, over: 5 },
    nonfinite: 0,
    mean: 0.1 * i, std: 1 + 0.01 * i, p15: -1 + 0.1 * i, p50: 0.1 * i, p85: 1 + 0.1 * i,
    sat: 0.5 - 0.01 * i, sat_pre: 0.6, grad_norm: 10 ** -(i % 3), act_grad_norm: 0.02,
    weight_norm: 3, update_ratio: 1e-3,
    g_mean: g ? 1 + 0.01 * i : null, g_std: g ? 0.01 : null,
    b_mean: g ? 0.001 * i : null, b_std: g ? 0.002 : null,
    w1_prev: i ? 0.01 : null, w1_first: 0.02 * i,
    ...(graded ? { sat_graded: 0.3 + 0.01 * i, out_mean: 0.5 - 0.01 * i, out_std: 0.2 } : {}),
  };
}

export function frame(seq, { step = seq * 10, names = ["h1", "h2"], evalEvery = 0, status = "running", batchStats = false, g = true, graded = true } = {}) {
  const withEval = evalEvery && seq % evalEvery === 0;
  return {
    seq, step, time: 1764130000 + seq, status, device: "cpu",
    loss: 2 / (1 + seq), acc: Math.min(1, 0.1 * seq), lr: 0.1, steps_per_s: 800 + seq,
    eval: withEval
      ? { loss: 2.1 / (1 + seq), acc: 0.09 * seq, loss_batch: batchStats ? 1 : null, acc_batch: batchStats ? 0.5 : null }
      : null,
    val: null,
    ics: null,
    layers: names.map((n) => layer(n, seq, { g, graded })),
  };
}

export const frames = (n, opts) => Array.from({ length: n }, (_, i) => frame(i, opts));
