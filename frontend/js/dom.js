// Building DOM without innerHTML: run labels and server errors are text, never markup.

/** h("a", {href: "#/runs", class: "btn"}, "Runs") */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A status badge; colour comes from css (.status-running, ...). */
export function badge(status) {
  return h("span", { class: `badge status-${status}`, "data-status": status }, status);
}

/** An error box with a title and the server's message. */
export function errorBox(title, message, ...actions) {
  return h("div", { class: "error-box", role: "alert" }, h("strong", {}, title), h("p", {}, message), ...actions);
}

/**
 * A download link for a file route (export, report). A plain href works without a token;
 * the click goes through `download` so a token set in this browser is sent as a header.
 */
export function fileLink(url, filename, label, download) {
  return h("a", {
    class: "btn", href: url, download: filename,
    onclick: (ev) => {
      ev.preventDefault();
      download(url, filename).catch((err) => alert(err.message));
    },
  }, label);
}
