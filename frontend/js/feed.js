// RunFeed: one run's data in the browser. Loads the (server-downsampled) history, then follows
// the live stream, and hands the views a delta at most every `interval` ms on an animation
// frame: several updates a second however fast frames arrive, never a redraw per frame.

import { api, isTerminal } from "./api.js";
import { addFrames, emptyColumns } from "./columns.js";

export class RunFeed {
  /**
   * onRun(run): the Run record changed (status, step, error).
   * onUpdate(delta): new points; delta.reshape asks for a full redraw.
   * onConnection(state): "live" | "reconnecting" | "closed".
   */
  constructor(id, { cap = 1000, interval = 200, onRun, onUpdate, onConnection, onError } = {}) {
    Object.assign(this, { id, cap, interval, onRun, onUpdate, onConnection, onError });
    this.baseInterval = interval;
    this.cols = emptyColumns(cap);
    this.run = null;
    this.pending = [];
    this.timer = null;
    this.lastFlush = 0;
    this.source = null;
    this.stopped = false;
  }

  async start() {
    try {
      this.run = await api.run(this.id);
      this.onRun?.(this.run);
      const page = await api.frames(this.id, { maxPoints: this.cap });
      if (this.stopped) return;
      this.dropped = page.dropped ?? 0;
      const delta = addFrames(this.cols, page.data ?? []);
      this.onUpdate?.({ ...delta, reshape: true });
      if (!isTerminal(this.run.status)) this.connect();
      else this.onConnection?.("closed");
    } catch (err) {
      if (!this.stopped) this.onError?.(err);
    }
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
    if (this.stopped || !this.pending.length) return;
    const frames = this.pending;
    this.pending = [];
    const start = performance.now();
    this.lastFlush = start;
    this.onUpdate?.(addFrames(this.cols, frames));
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
