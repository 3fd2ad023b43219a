// RunFeed: one run's data in the browser. Loads the history as columns from /series (just the
// fields the view draws, downsampled on the server so every extreme and evaluation stays),
// re-loads a step range at full detail when the view zooms, follows the live stream, and hands
// the views a delta at most every `interval` ms on an animation frame: several updates a
// second however fast frames arrive, never a redraw per frame.

import { api, isTerminal } from "./api.js";
import { addFrames, emptyColumns, fromSeries, MAX_KEYS } from "./columns.js";

// Always loaded: the curves and every evaluation; with them the bucket maxima of every layer
// for the overview metrics the view shows (`overview()`, e.g. ["sat"]: one of MAX_KEYS).
export const RUN_FIELDS = ["loss", "acc", "eval"];
// Loaded for the layers a view opens (its rows, Compare's picked layer).
export const LAYER_FIELDS = [
  "p15", "p50", "p85", "sat", "sat_pre", "sat_graded", "out_mean", "out_std", "grad_norm", "act_grad_norm", "update_ratio",
  "g_mean", "g_std", "b_mean", "b_std", "w1_prev", "w1_first", "nonfinite", "hist",
];

export class RunFeed {
  /**
   * onRun(run): the Run record changed (status, step, error).
   * onUpdate(delta): new points; delta.reshape asks for a full redraw.
   * onConnection(state): "live" | "reconnecting" | "closed".
   */
  constructor(id, {
    cap = 1000, points = 800, interval = 200, layerFields = LAYER_FIELDS, openLayers,
    overview = () => MAX_KEYS,
    onRun, onUpdate, onConnection, onError,
  } = {}) {
    Object.assign(this, { id, cap, points, interval, layerFields, openLayers, overview, onRun, onUpdate, onConnection, onError });
    this.range = null; // [from, to] steps while zoomed; null: the whole run
    this.loads = 0;
    this.baseInterval = interval;
    this.cols = emptyColumns(cap);
    this.run = null;
    this.pending = [];
    this.timer = null;
    this.lastFlush = 0;
    this.source = null;
    this.stopped = false;
    this.holding = false; // a load is on its way: live frames wait for its columns
  }

  async start() {
    try {
      this.run = await api.run(this.id);
      this.onRun?.(this.run);
      await this.load(null, true);
      if (this.stopped) return;
      if (!isTerminal(this.run.status)) this.connect();
      else this.onConnection?.("closed");
    } catch (err) {
      if (!this.stopped) this.onError?.(err);
    }
  }

  /**
   * Load a step range (null: the whole run) as columns and redraw. With `first`, and no layer
   * open yet, the top layer's detail comes along (the views open it by default).
   */
  async load(range, first = false) {
    this.range = range;
    const token = ++this.loads;
    this.holding = true; // live frames wait in `pending` until the new columns are in place
    try {
      await this.fetchColumns(range, first, token);
    } finally {
      if (token === this.loads) {
        this.holding = false;
        this.flush(); // the frames that came meanwhile, those past the answers' last seq
      }
    }
  }

  async fetchColumns(range, first, token) {
    // Every answer ends at one frame: the newest this view holds (the stream brings the rest),
    // or before the stream opens the run's newest stored frame. A live run stores frames
    // between two requests: answers ending at different frames would leave those between
    // missing from the charts drawn from the shorter one, for good.
    const live = this.run && !isTerminal(this.run.status);
    const toSeq = live ? (this.source ? this.cols.lastSeq : this.run.last_seq ?? -1) : undefined;
    const span = { points: this.points, fromStep: range?.[0], toStep: range?.[1], toSeq };
    let open = this.openLayers?.() ?? [];
    // The views open the top layer by default: with its name known, load it beside the overview.
    if (first && !open.length && this.run?.layers?.length) open = this.run.layers.slice(-1);
    const detail = (names) => (names.length && this.layerFields.length
      ? api.series(this.id, { fields: this.layerFields, layers: names, ...span }) : null);
    const fields = [...RUN_FIELDS, ...this.overview().map((k) => `max:${k}`)];
    let answers;
    if (open.length) answers = await Promise.all([api.series(this.id, { fields, ...span }), detail(open)]);
    else {
      const overview = await api.series(this.id, { fields, ...span });
      open = first ? overview.layers.slice(-1) : [];
      answers = [overview, await detail(open)];
    }
    if (token !== this.loads || this.stopped) return;
    const fresh = fromSeries(answers, this.cap);
    // A zoomed range ends before the newest frame: live frames already seen stay skipped.
    fresh.lastSeq = Math.max(fresh.lastSeq, this.cols.lastSeq);
    fresh.lastStep = Math.max(fresh.lastStep, this.cols.lastStep);
    for (const k of ["status", "device", "stepsPerS"]) fresh[k] = this.cols[k] ?? fresh[k];
    for (const k of Object.keys(this.cols)) delete this.cols[k];
    Object.assign(this.cols, fresh); // in place: the views hold this object
    this.onUpdate?.({ ...emptyColumns(this.cap), reshape: true });
  }

  connect() {
    const es = api.events(this.id, this.cols.lastSeq + 1); // the first seq we lack
    this.source = es;
    es.onopen = () => this.onConnection?.("live");
    es.addEventListener("frame", (ev) => {
      // The stream starts from the first frame (EventSource sends Last-Event-ID only on a
      // reconnect): skip the history already loaded from /frames without parsing it.
      if (Number(ev.lastEventId) <= this.cols.lastSeq) return;
      this.pending.push(JSON.parse(ev.data));
      this.schedule();
    });
    es.addEventListener("status", (ev) => {
      this.run = JSON.parse(ev.data);
      if (isTerminal(this.run.status)) {
        // The server ends the stream here; closing stops EventSource from reconnecting.
        es.close();
        this.flush();
        this.onConnection?.("closed");
      }
      this.onRun?.(this.run);
    });
    es.onerror = () => {
      if (!this.stopped && es.readyState !== EventSource.CLOSED) this.onConnection?.("reconnecting");
    };
  }

  schedule() {
    if (this.timer || this.stopped) return;
    const wait = Math.max(0, this.lastFlush + this.interval - performance.now());
    // A hidden tab gets no animation frames: flush on the timer there, so frames never pile up.
    const run = () => (document.hidden ? this.flush() : requestAnimationFrame(() => this.flush()));
    this.timer = setTimeout(run, wait);
  }

  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped || this.holding || !this.pending.length) return;
    const frames = this.pending;
    this.pending = [];
    const start = performance.now();
    this.lastFlush = start;
    const delta = addFrames(this.cols, frames); // also without a listener: `?.(` skips its arguments
    this.onUpdate?.(delta);
    this.adapt(performance.now() - start);
  }

  /**
   * Drawing may take at most a fifth of the main thread: when an update costs more (big
   * heatmaps, a slow machine), the next one waits longer, so the page stays responsive.
   */
  adapt(cost) {
    this.cost = this.cost === undefined ? cost : 0.7 * this.cost + 0.3 * cost;
    this.interval = Math.min(2000, Math.max(this.baseInterval, 4 * this.cost));
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.source?.close();
  }
}
