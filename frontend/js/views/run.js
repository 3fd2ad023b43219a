// The run view: header (status, progress, steps/s, device), loss/accuracy, the layers × steps
// overview (click a cell to open that layer at that step) and the foldable layer rows.
// History from /series (columns of just what is drawn), then live frames from the stream,
// drawn with extendTraces. A zoom or pan on any step axis loads that range in detail for
// every chart (debounced); a reset (double click) loads the whole run again.

import { api, isTerminal } from "../api.js";
import { badge, errorBox, fileLink, fill, h } from "../dom.js";
import { RunFeed } from "../feed.js";
import { canRerun, configSummary, fmt, isWatched, stepsText } from "../format.js";
import * as loss from "../panels/loss.js";
import * as overview from "../panels/overview.js";
import * as P from "../plot.js";
import { href } from "../router.js";
import { saturationMarks, stepRange } from "../transforms.js";
import { LayerRows } from "../components/layers.js";

export function mount(root, { id }) {
  const el = {
    title: h("h2", { class: "run-title" }, id),
    summary: h("p", { class: "run-summary" }),
    status: h("span", { class: "run-status" }),
    bar: h("div", { class: "bar" }),
    progressText: h("span", { class: "progress-text", "data-testid": "progress" }),
    rate: h("span", { class: "rate" }),
    device: h("span", { class: "device" }),
    conn: h("span", { class: "conn" }),
    actions: h("div", { class: "actions" }),
    error: h("div", { class: "run-error" }),
    loss: h("div", { class: "plot", dataset: { panel: "loss" } }),
    overview: h("div", { class: "plot", dataset: { panel: "overview" } }),
    toggle: h("div", { class: "segmented", role: "radiogroup", "aria-label": "overview metric" }),
    layers: h("div", { class: "layers" }, h("p", { class: "muted" }, "Layer rows appear with the first frame.")),
  };
  let picked = null; // the user's overview metric; until then the data's default
  let drawn = null; // the metric the overview shows now
  let run = null;
  let sat = null; // what counts as saturated for this run's activation (from the catalog)
  const metric = () => picked ?? overview.defaultMetric(feed.cols);

  const header = h("section", { class: "run-head card" },
    h("div", { class: "run-line" }, el.title, el.status, el.device, el.conn),
    el.summary,
    h("div", { class: "run-line" },
      h("div", { class: "progress", role: "progressbar", "aria-label": "training progress" }, el.bar),
      el.progressText, el.rate, el.actions),
    el.error);
  fill(root, header,
    h("section", { class: "top-grid" },
      h("div", { class: "card" }, el.loss),
      h("div", { class: "card" },
        h("div", { class: "card-head" }, h("span", { class: "hint" }, "click a cell to open that layer"), el.toggle),
        el.overview)),
    h("section", { class: "card" },
      h("h3", {}, "Layers ", h("small", {}, "open a row, or click the overview")),
      el.layers));

  const feed = new RunFeed(id, {
    openLayers: () => (rows ? [...rows.open] : []),
    // the shown metric's maxima; until one is picked, both saturations (the default is the
    // graded one where the run has it); the other metrics load when picked
    overview: () => (picked ? [overview.METRICS[picked].key] : ["sat_graded", "sat"]),
    onRun: (r) => {
      run = r;
      if (sat === null && r.config?.activation) loadSaturation(r.config.activation);
      renderHeader();
    },
    onUpdate: (delta) => {
      if (delta.reshape) drawAll();
      else {
        loss.extend(el.loss, delta);
        if (metric() === drawn) overview.extend(el.overview, delta, drawn);
        else drawOverview(); // the first frames brought the graded column: switch to it
        rows.extend(delta);
      }
      renderProgress();
    },
    onConnection: (state) => {
      el.conn.textContent = state === "reconnecting" ? "reconnecting…" : state === "live" ? "● live" : "";
      el.conn.className = `conn conn-${state}`;
    },
    onError: (err) => {
      fill(root, errorBox(err.status === 404 ? "No such run" : "Cannot load this run", err.message,
        h("p", {}, h("a", { href: href.runs() }, "All runs"), " · ", h("a", { href: href.launch() }, "Launch a run"))));
    },
  });
  const zoomTo = (range) => feed.load(range).catch((err) => fill(el.error, errorBox("Cannot load that range", err.message)));
  const rows = new LayerRows(el.layers, feed.cols, {
    onZoom: zoomTo,
    // A layer opened for the first time has no detail yet: load it for the range shown.
    onOpen: (name) => !feed.cols.layers[name]?.hx.length && zoomTo(feed.range),
  });

  for (const [key, m] of Object.entries(overview.METRICS)) {
    const b = h("button", { type: "button", role: "radio", dataset: { metric: key }, "aria-checked": "false" }, m.label);
    b.addEventListener("click", () => {
      picked = key;
      const loaded = feed.cols.layerNames.every((n) => feed.cols.layers[n].max[overview.METRICS[key].key]?.length === feed.cols.step.length);
      if (loaded) drawOverview();
      else zoomTo(feed.range); // its reload redraws
    });
    el.toggle.append(b);
  }

  function drawOverview() {
    drawn = metric();
    for (const x of el.toggle.children) x.setAttribute("aria-checked", String(x.dataset.metric === drawn));
    overview.draw(el.overview, feed.cols, drawn, { sat });
  }

  function drawAll() {
    loss.draw(el.loss, feed.cols);
    drawOverview();
    rows.draw();
  }

  async function loadSaturation(activation) {
    sat = saturationMarks(undefined); // asked once
    try {
      sat = saturationMarks((await api.catalog()).saturation?.[activation]);
      rows.sat = sat;
      drawAll();
    } catch {
      // without the catalog the charts just lack the threshold lines
    }
  }

  function renderProgress() {
    const cols = feed.cols;
    const steps = run?.steps ?? run?.config?.steps ?? 0;
    const step = Math.max(cols.lastStep ?? 0, run?.step ?? 0);
    const frac = steps ? Math.min(1, step / steps) : 0;
    el.bar.style.width = `${(100 * frac).toFixed(1)}%`;
    el.bar.parentElement.setAttribute("aria-valuenow", String(Math.round(100 * frac)));
    el.progressText.textContent = run?.status === "queued"
      ? `queued: waits for a free worker · ${fmt(steps)} steps`
      : stepsText(step, steps);
    const live = run && !isTerminal(run.status);
    el.rate.textContent = cols.stepsPerS != null && live ? `${fmt(cols.stepsPerS)} steps/s` : "";
    const dev = cols.device ?? run?.device;
    el.device.textContent = dev ? `on ${dev}` : "";
  }

  function renderHeader() {
    if (!run) return;
    el.title.textContent = run.label || configSummary(run.config);
    const plan = isWatched(run.config)
      ? "trained by its own loop"
      : `${fmt(run.config?.steps)} steps · seed ${run.config?.seed}`;
    const origin = run.rerun_of ? ` · re-run of ${run.rerun_of}` : "";
    el.summary.textContent = `${configSummary(run.config)} · ${plan} · run ${run.id}${origin}`;
    fill(el.status, badge(run.status));
    document.title = `${run.status} · ${run.label ?? run.id} — NormScope`;
    const active = !isTerminal(run.status);
    fill(el.actions,
      active && h("button", { type: "button", class: "danger", onclick: cancel }, "Cancel"),
      canRerun(run) && h("button", { type: "button", onclick: rerun, title: "a new run with this config" }, "Re-run"),
      ["csv", "jsonl"].map((f) => fileLink(api.exportUrl(run.id, f), `${run.id}.${f}`, f.toUpperCase(), api.download)),
      h("a", { class: "btn", href: api.reportUrl(run.id), target: "_blank", rel: "noopener" }, "Report"),
      h("a", { class: "btn", href: href.runs() }, "All runs"));
    const failed = ["failed", "diverged", "interrupted"].includes(run.status);
    fill(el.error, failed
      ? errorBox(`Run ${run.status}`, run.error || (run.status === "diverged"
        ? "The loss became NaN or infinite; the frames before it are kept." : "No reason was recorded."))
      : "");
    renderProgress();
  }

  async function cancel() {
    try {
      await api.cancelRun(id);
    } catch (err) {
      fill(el.error, errorBox("Cancel failed", err.message));
    }
  }

  async function rerun() {
    try {
      const created = await api.rerunRun(id);
      location.hash = href.run(created.id);
    } catch (err) {
      fill(el.error, errorBox("Re-run failed", err.message));
    }
  }

  drawAll();
  overview.onPick(el.overview, (name, step) => rows.reveal(name, step)); // after the first draw
  for (const chart of [el.loss, el.overview]) P.onStepZoom(chart, zoomTo, stepRange);
  feed.start();

  return {
    destroy() {
      feed.stop();
      rows.destroy();
      P.purge(el.loss);
      P.purge(el.overview);
    },
  };
}
