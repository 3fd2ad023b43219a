// Boots the dashboard: a view per route, a header with the server's health, and one banner
// for the states every view shares (server unreachable, token needed).

import { api, setToken } from "./api.js";
import { errorBox, fill, h } from "./dom.js";
import { href, parse } from "./router.js";
import * as claims from "./views/claims.js";
import * as compare from "./views/compare.js";
import * as launch from "./views/launch.js";
import * as run from "./views/run.js";
import * as runs from "./views/runs.js";
import * as sweep from "./views/sweep.js";
import * as sweeps from "./views/sweeps.js";

const VIEWS = { launch, run, compare, runs, claims, sweeps, sweep };
const NAV_OF = { sweep: "sweeps" }; // the nav entry a view belongs to, where it has another name
const root = document.getElementById("view");
const banner = document.getElementById("banner");
let current = null;

function notFound(el, route) {
  fill(el, errorBox("Nothing here", `No view for ${route.hash}.`, h("p", {}, h("a", { href: href.launch() }, "Launch a run"))));
  return { destroy() {} };
}

function route() {
  current?.destroy();
  window.scrollTo(0, 0);
  const r = parse(location.hash);
  document.title = "NormScope";
  for (const a of document.querySelectorAll("nav a")) {
    a.toggleAttribute("aria-current", a.dataset.view === (NAV_OF[r.view] ?? r.view));
  }
  current = (VIEWS[r.view]?.mount ?? ((el) => notFound(el, r)))(root, r);
}

function tokenForm() {
  const input = h("input", { type: "password", id: "token", autocomplete: "off" });
  return h("form", { class: "token-form", onsubmit: (ev) => { ev.preventDefault(); setToken(input.value.trim()); checkHealth(); route(); } },
    h("label", { for: "token" }, "Access token "), input, h("button", { type: "submit" }, "Use token"));
}

async function checkHealth() {
  const status = document.getElementById("server");
  try {
    const health = await api.health();
    status.textContent = `server ${health.version ?? ""} · ${health.device ?? ""}`;
    status.className = "server ok";
    fill(banner);
    // /healthz is open; probe an /api route to learn whether this browser needs a token.
    await api.runs("running").catch((err) => {
      if (err.status === 401) fill(banner, errorBox("This server needs an access token", "Enter the NORMSCOPE_TOKEN it was started with.", tokenForm()));
    });
  } catch (err) {
    status.textContent = "server unreachable";
    status.className = "server down";
    fill(banner, errorBox("Server unreachable", err.message,
      h("button", { type: "button", onclick: () => { checkHealth(); route(); } }, "Retry")));
    setTimeout(checkHealth, 5000);
  }
}

window.addEventListener("hashchange", route);
checkHealth();
route();
