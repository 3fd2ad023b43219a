// The run view: header (status, progress, steps/s, device), loss/accuracy, the layers × steps
// overview (click a cell to open that layer at that step) and the foldable layer rows.
// History from /frames, then live frames from the stream, drawn with extendTraces.

import { api, isTerminal } from "../api.js";
import { badge, errorBox, fileLink, fill, h } from "../dom.js";
import { RunFeed } from "../feed.js";
import { configSummary, fmt, isWatched, stepsText } from "../format.js";
import * as loss from "../panels/loss.js";
import * as overview from "../panels/overview.js";
import * as P from "../plot.js";
import { href } from "../router.js";
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
    onRun: (r) => {
      run = r;
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
  const rows = new LayerRows(el.layers, feed.cols);

  for (const [key, m] of Object.entries(overview.METRICS)) {
    const b = h("button", { type: "button", role: "radio", dataset: { metric: key }, "aria-checked": "false" }, m.label);
    b.addEventListener("click", () => {
      picked = key;
      drawOverview();
    });
    el.toggle.append(b);
  }

  function drawOverview() {
    drawn = metric();
    for (const x of el.toggle.children) x.setAttribute("aria-checked", String(x.dataset.metric === drawn));
    overview.draw(el.overview, feed.cols, drawn);
  }

  function drawAll() {
    loss.draw(el.loss, feed.cols);
    drawOverview();
    rows.draw();
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
    el.summary.textContent = `${configSummary(run.config)} · ${plan} · run ${run.id}`;
    fill(el.status, badge(run.status));
    document.title = `${run.status} · ${run.label ?? run.id} — NormScope`;
    const active = !isTerminal(run.status);
    fill(el.actions,
      active && h("button", { type: "button", class: "danger", onclick: cancel }, "Cancel"),
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

  drawAll();
  overview.onPick(el.overview, (name, step) => rows.reveal(name, step)); // after the first draw
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
