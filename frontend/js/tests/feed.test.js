// RunFeed against a live run that stores frames while the view loads: every chart ends with
// one point per stored frame, however the requests and the stream interleave.

import assert from "node:assert/strict";
import { test } from "node:test";

import "./browser_globals.js";
import { api } from "../api.js";
import { RunFeed } from "../feed.js";
import { frame } from "./sample.js";

/** A run that stores `perRequest` frames before each /series answer, as a live run does. */
class LiveRun {
  constructor(stored, perRequest) {
    this.frames = Array.from({ length: stored }, (_, i) => frame(i));
    this.perRequest = perRequest;
    this.streams = [];
    this.asked = [];
  }

  store(n) {
    for (let i = 0; i < n; i += 1) {
      const f = frame(this.frames.length);
      this.frames.push(f);
      for (const s of this.streams) s.send(f);
    }
  }

  record() {
    return { id: "r", status: "running", layers: ["h1", "h2"], last_seq: this.frames.length - 1 };
  }

  /** The /series answer (app/series.py) of the frames up to toSeq, at full detail. */
  async series(id, { fields, layers, toSeq }) {
    this.asked.push(toSeq);
    this.store(this.perRequest);
    await new Promise((resolve) => setTimeout(resolve, 1));
    const fs = this.frames.filter((f) => toSeq === undefined || f.seq <= toSeq);
    const steps = fs.map((f) => f.step);
    const last = fs.at(-1);
    const answer = {
      layers: ["h1", "h2"],
      last: last ? { seq: last.seq, step: last.step, status: last.status } : null,
      heat: { step: steps },
      layer: {},
    };
    if (fields.includes("loss")) answer.run = { loss: { step: steps, y: fs.map((f) => f.loss) } };
    for (const name of layers ?? ["h1", "h2"]) {
      const of = (f) => f.layers.find((l) => l.name === name);
      const data = {};
      for (const field of fields) {
        if (field.startsWith("max:")) data[field] = fs.map((f) => of(f)[field.slice(4)]);
        if (field === "hist") {
          const { lo, hi } = of(fs[0] ?? frame(0)).hist;
          data.hist = { lo, hi, counts: fs.map((f) => [of(f).hist.under, ...of(f).hist.counts, of(f).hist.over]) };
        }
        if (field === "p50") data.p50 = { step: steps, y: fs.map((f) => of(f).p50) };
      }
      answer.layer[name] = data;
    }
    return answer;
  }

  /** The SSE stream from `since` on: the stored frames after it now, then each new one. */
  events(id, since) {
    const listeners = {};
    const stream = {
      readyState: 1,
      addEventListener: (type, fn) => { listeners[type] = fn; },
      close: () => { stream.readyState = 2; },
      send: (f) => listeners.frame?.({ lastEventId: String(f.seq), data: JSON.stringify(f) }),
    };
    this.streams.push(stream);
    setTimeout(() => this.frames.filter((f) => f.seq >= since).forEach(stream.send), 0);
    return stream;
  }
}

/** The server behind api.js's requests: the catalog's statuses, the run, its /series. */
function serve(run) {
  globalThis.fetch = async (path) => {
    const url = new URL(path, "http://127.0.0.1");
    const q = (k) => url.searchParams.get(k);
    let body;
    if (url.pathname === "/api/catalog") {
      body = { statuses: { active: ["queued", "running"], terminal: ["completed", "failed", "cancelled"] } };
    } else if (url.pathname === "/api/runs/r") body = run.record();
    else if (url.pathname === "/api/runs/r/series") {
      body = await run.series("r", {
        fields: q("fields").split(","),
        layers: q("layers")?.split(","),
        toSeq: q("to_seq") === null ? undefined : Number(q("to_seq")),
      });
    } else return { ok: false, status: 404, text: async () => "", headers: { get: () => null } };
    return { ok: true, status: 200, text: async () => JSON.stringify(body) };
  };
  api.events = (...a) => run.events(...a);
}

async function follow(run, { open = ["h2"] } = {}) {
  serve(run);
  const feed = new RunFeed("r", {
    interval: 0, openLayers: () => open, overview: () => ["sat"], layerFields: ["p50", "hist"],
  });
  await feed.start();
  return feed;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

function assertEveryFrame(feed, run) {
  const n = run.frames.length;
  const { cols } = feed;
  assert.equal(cols.lastSeq, n - 1);
  assert.equal(cols.step.length, n, "overview");
  assert.equal(cols.loss.length, n, "loss");
  assert.equal(cols.layers.h1.max.sat.length, n, "overview's h1 row");
  assert.equal(cols.layers.h2.hx.length, n, "h2's heatmap");
  assert.equal(cols.layers.h2.density.length, n, "h2's heatmap");
  assert.equal(cols.layers.h2.p50.length, n, "h2's percentiles");
  assert.deepEqual(cols.step, run.frames.map((f) => f.step));
}

test("the first load's answers end at the run's newest frame when the view asked", async () => {
  const run = new LiveRun(10, 3);
  const feed = await follow(run);
  assert.deepEqual(run.asked, [9, 9]); // both answers bounded alike, though 6 frames came meanwhile
  await settle();
  assertEveryFrame(feed, run);
  feed.stop();
});

test("the top layer found by the first answer is loaded to the same frame", async () => {
  const run = new LiveRun(10, 3);
  const feed = await follow(run, { open: [] }); // overview first, then the top layer
  assert.deepEqual(run.asked, [9, 9]);
  await settle();
  assertEveryFrame(feed, run);
  feed.stop();
});

test("a reload while live keeps the frames the stream brought during it", async () => {
  const run = new LiveRun(5, 0);
  const feed = await follow(run);
  await settle();
  run.store(4);
  await settle();
  run.perRequest = 5; // the stream delivers these while the reload's answers are on their way
  await feed.load(null);
  assert.deepEqual(run.asked.slice(-2), [8, 8]);
  await settle();
  assertEveryFrame(feed, run);
  feed.stop();
});

test("a run with no frame yet when the view asked gets its heatmap's rows with its first frame", async () => {
  const run = new LiveRun(0, 4); // the server names the layers (the run's), with no rows yet
  const feed = await follow(run);
  assert.deepEqual(run.asked, [-1, -1]);
  await settle();
  assertEveryFrame(feed, run);
  const { centers } = feed.cols.layers.h2;
  assert.equal(centers.length, 8 + 2); // 8 bins, the underflow and the overflow
  assert.ok(centers.every(Number.isFinite), centers);
  feed.stop();
});

test("a finished run's answers are not bounded", async () => {
  const run = new LiveRun(6, 0);
  run.record = () => ({ id: "r", status: "completed", layers: ["h1", "h2"], last_seq: 2 });
  const feed = await follow(run);
  assert.deepEqual(run.asked, [undefined, undefined]);
  assertEveryFrame(feed, run);
  feed.stop();
});
