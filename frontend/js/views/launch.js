// Launch: presets that reproduce the seed's experiments, and a form generated from
// /api/catalog with every RunConfig field. The server validates; its 422 errors are shown
// next to the field they name, and nothing starts.

import { api } from "../api.js";
import { errorBox, fill, h } from "../dom.js";
import { configSummary } from "../format.js";
import {
  choicesOf, fieldErrors, fieldKind, groupedFields, HELP, irrelevantFields, LIMITS, toConfig,
} from "../forms.js";
import { href } from "../router.js";
import { parseValues } from "../sweep_grid.js";

const human = (name) => name.replaceAll("_", " ");

export function mount(root) {
  let stopped = false;
  fill(root, h("p", { class: "muted" }, "Loading the catalog…"));
  api.catalog().then((catalog) => {
    if (!stopped) render(root, catalog);
  }, (err) => {
    if (!stopped) fill(root, errorBox("Cannot load the catalog", err.message));
  });
  return { destroy() { stopped = true; } };
}

function render(root, catalog) {
  const defaults = catalog.defaults;
  const inputs = {};
  const errorEls = {};
  const formError = h("div", { class: "form-error", role: "alert", "aria-live": "polite" });
  const normNote = h("div", { class: "norm-note", id: "norm-note", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary" }, "Start run");

  const form = h("form", { class: "card launch-form", novalidate: true, "aria-label": "run configuration" },
    h("div", { class: "card-head" }, h("h2", {}, "New run"),
      h("span", { class: "hint" }, "every field of the run; the server checks the combination")),
    groupedFields(defaults).map(([title, fields]) =>
      h("fieldset", {}, h("legend", {}, title), fields.map((name) => field(name)))),
    formError,
    h("div", { class: "form-actions" }, submit,
      h("button", { type: "button", onclick: () => setValues(defaults) }, "Reset to defaults")));

  function field(name) {
    const kind = fieldKind(name, defaults, catalog);
    const id = `f-${name}`;
    let input;
    if (kind === "select") {
      input = h("select", { id, name }, choicesOf(name, catalog).map((c) => h("option", { value: c.value }, c.label)));
    } else if (kind === "bool") {
      input = h("input", { id, name, type: "checkbox" });
    } else {
      const limit = catalog.limits?.[LIMITS[name]];
      input = h("input", {
        id, name, type: kind === "text" ? "text" : "number", inputmode: kind === "int" ? "numeric" : "decimal",
        step: kind === "int" ? "1" : "any", max: limit ?? undefined,
        placeholder: kind === "optional" ? "off" : undefined,
      });
    }
    inputs[name] = input;
    errorEls[name] = h("div", { class: "field-error", id: `e-${name}`, role: "alert" });
    const help = name === "norm" ? normNote : h("small", { class: "help", id: `h-${name}` },
      [HELP[name], catalog.limits?.[LIMITS[name]] ? `max ${catalog.limits[LIMITS[name]]}` : ""].filter(Boolean).join("; "));
    input.setAttribute("aria-describedby", `${help.id} e-${name}`);
    input.addEventListener("input", () => { clearError(name); refresh(); });
    input.addEventListener("change", () => { clearError(name); refresh(); });
    return h("div", { class: `field field-${kind}`, dataset: { field: name } },
      h("label", { for: id }, human(name)), input,
      help, errorEls[name]);
  }

  function rawValues() {
    return Object.fromEntries(Object.entries(inputs).map(([n, el]) => [n, el.type === "checkbox" ? el.checked : el.value]));
  }

  function setValues(config) {
    for (const [name, el] of Object.entries(inputs)) {
      const v = config[name] ?? defaults[name];
      if (el.type === "checkbox") el.checked = Boolean(v);
      else el.value = v === null || v === undefined ? "" : String(v);
    }
    Object.keys(errorEls).forEach(clearError);
    fill(formError);
    refresh();
  }

  function refresh() {
    const config = toConfig(rawValues(), defaults, catalog);
    const off = irrelevantFields(config);
    for (const name of Object.keys(inputs)) inputs[name].closest(".field").classList.toggle("irrelevant", off.has(name));
    const norm = (catalog.norms ?? []).find((n) => n.name === config.norm);
    const props = Object.entries(norm?.properties ?? {}).filter(([, v]) => v).map(([k]) => human(k));
    fill(normNote, norm?.note ?? "", props.length ? h("span", { class: "tags" }, props.map((p) => h("span", { class: "tag" }, p))) : "");
  }

  function clearError(name) {
    if (!errorEls[name]) return;
    fill(errorEls[name]);
    inputs[name].removeAttribute("aria-invalid");
  }

  function showErrors(err) {
    if (err.status !== 422) {
      const wait = err.retryAfter ? ` Try again in ${err.retryAfter} s.` : "";
      fill(formError, errorBox(err.status === 429 ? "The run queue is full" : "The run was not started", err.message + wait));
      return;
    }
    const byField = fieldErrors(err.body);
    const unplaced = [];
    for (const [name, msgs] of Object.entries(byField)) {
      if (errorEls[name]) {
        fill(errorEls[name], msgs.join("; "));
        inputs[name].setAttribute("aria-invalid", "true");
      } else unplaced.push(`${name === "_form" ? "" : `${name}: `}${msgs.join("; ")}`);
    }
    fill(formError, unplaced.length ? errorBox("The run was not started", unplaced.join("\n")) : "");
    const first = Object.keys(byField).find((n) => inputs[n]);
    if (first) inputs[first].focus();
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    Object.keys(errorEls).forEach(clearError);
    fill(formError);
    try {
      const run = await api.createRun(toConfig(rawValues(), defaults, catalog));
      location.hash = href.run(run.id);
    } catch (err) {
      showErrors(err);
    } finally {
      submit.disabled = false;
    }
  });

  const base = () => toConfig(rawValues(), defaults, catalog);
  fill(root, h("div", { class: "launch-page" }, form,
    h("div", {}, sweepCard(catalog, base), presets(catalog, setValues))));
  setValues(defaults);
}

/** Sweep mode: the form above is the base config; mark fields to vary and list their values. */
function sweepCard(catalog, base) {
  const fields = Object.keys(catalog.defaults).filter((f) => f !== "seed");
  const rows = h("div", { class: "sweep-rows" });
  const seeds = h("input", { id: "sweep-seeds", type: "number", min: 1, max: 100, step: 1, value: 2 });
  const metric = h("select", { id: "sweep-metric" },
    Object.entries(catalog.sweep_metrics ?? {}).map(([name, what]) => h("option", { value: name, title: what }, `${name} — ${what}`)));
  const skip = h("input", { type: "checkbox", id: "sweep-skip" });
  const error = h("div", { class: "form-error", role: "alert", "aria-live": "polite" });
  const start = h("button", { type: "submit", class: "primary" }, "Start sweep");

  function addRow(field = "norm", values = "") {
    const pick = h("select", { class: "sweep-field", "aria-label": "field to vary" },
      fields.map((f) => h("option", { value: f, selected: f === field }, human(f))));
    const list = h("input", { class: "sweep-values", type: "text", value: values, "aria-label": "values, comma-separated",
      placeholder: "values, comma-separated: batch, group or 2, 4, 8" });
    const row = h("div", { class: "sweep-row" }, pick, list,
      h("button", { type: "button", "aria-label": "remove this field", onclick: () => row.remove() }, "×"));
    rows.append(row);
  }

  const card = h("form", { class: "card sweep-form", novalidate: true, "aria-label": "sweep" },
    h("div", { class: "card-head" }, h("h2", {}, "Sweep"),
      h("span", { class: "hint" }, `the form above is the base; every cell is checked first (at most ${catalog.max_sweep_cells || "?"} cells)`)),
    rows,
    h("div", { class: "form-actions" },
      h("button", { type: "button", onclick: () => addRow(fields.find((f) => f !== "norm")) }, "Vary another field")),
    h("div", { class: "sweep-options" },
      h("label", { for: "sweep-seeds" }, "seeds "), seeds,
      h("label", { for: "sweep-metric" }, " metric "), metric,
      h("label", {}, skip, " skip invalid cells")),
    error,
    h("div", { class: "form-actions" }, start));
  addRow("norm", "batch, layer");

  card.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    fill(error);
    const grid = {};
    for (const row of rows.querySelectorAll(".sweep-row")) {
      const values = parseValues(row.querySelector(".sweep-values").value);
      if (values.length) grid[row.querySelector(".sweep-field").value] = values;
    }
    start.disabled = true;
    try {
      const sweep = await api.createSweep({ base: base(), grid, seeds: Number(seeds.value) || 1,
        metric: metric.value || "eval_acc", skip_invalid: skip.checked });
      location.hash = href.sweep(sweep.id);
    } catch (err) {
      fill(error, errorBox("The sweep was not started", err.message));
    } finally {
      start.disabled = false;
    }
  });
  return h("div", {}, card, sweepPresets(catalog));
}

function sweepPresets(catalog) {
  const list = catalog.sweep_presets ?? [];
  if (!list.length) return "";
  return h("section", { class: "card presets" }, h("h2", {}, "Sweep presets"),
    h("div", { class: "preset-list" }, list.map((p) => {
      const status = h("div", { class: "preset-status", role: "status" });
      const cells = Object.values(p.grid).reduce((n, v) => n * v.length, 1) * p.seeds;
      const go = h("button", { type: "button", class: "primary", dataset: { sweepPreset: p.id } }, `Start ${cells} runs`);
      go.addEventListener("click", async () => {
        go.disabled = true;
        try {
          const sweep = await api.createSweep({ base: p.base, grid: p.grid, seeds: p.seeds, metric: p.metric });
          location.hash = href.sweep(sweep.id);
        } catch (err) {
          fill(status, errorBox("The sweep was not started", err.message));
        } finally {
          go.disabled = false;
        }
      });
      return h("article", { class: "preset", dataset: { sweepPreset: p.id } }, h("h3", {}, p.title), h("p", {}, p.description),
        h("div", { class: "form-actions" }, go), status);
    })));
}

function presets(catalog, edit) {
  const list = catalog.presets ?? [];
  if (!list.length) return "";
  return h("section", { class: "card presets" },
    h("h2", {}, "Presets"), h("p", { class: "hint" }, "the seed's experiments, ready to run"),
    h("div", { class: "preset-list" }, list.map((p) => {
      const status = h("div", { class: "preset-status", role: "status" });
      const go = h("button", { type: "button", class: "primary", dataset: { preset: p.id } },
        p.runs.length > 1 ? `Launch ${p.runs.length} runs and compare` : "Launch");
      go.addEventListener("click", async () => {
        go.disabled = true;
        const ids = [];
        try {
          for (const cfg of p.runs) ids.push((await api.createRun(cfg)).id);
          location.hash = ids.length > 1 ? href.compare(ids) : href.run(ids[0]);
        } catch (err) {
          fill(status, errorBox(`Run ${ids.length + 1} of the preset was not started`, err.message,
            ids.length ? h("p", {}, "Started: ", ids.map((id) => h("a", { href: href.run(id) }, `${id} `))) : ""));
        } finally {
          go.disabled = false;
        }
      });
      return h("article", { class: "preset", dataset: { preset: p.id } },
        h("h3", {}, p.title), h("p", {}, p.description),
        h("ul", { class: "muted" }, p.runs.map((r) => h("li", {}, configSummary({ ...catalog.defaults, ...r })))),
        h("div", { class: "form-actions" }, go,
          h("button", { type: "button", onclick: () => { edit(p.runs[0]); document.getElementById("f-norm")?.focus(); } },
            p.runs.length > 1 ? "Edit the first run" : "Edit in the form")),
        status);
    })));
}
