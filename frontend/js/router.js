// A tiny hash router: #/launch, #/runs, #/run/<id>, #/compare/<id>,<id>[,...], #/sweeps,
// #/sweep/<id>. Hash URLs reload
// and share without any server-side routing.

const ROUTES = [
  [/^#\/run\/([^/?#]+)$/, (m) => ({ view: "run", id: decodeURIComponent(m[1]) })],
  [/^#\/compare\/([^/?#]*)$/, (m) => ({ view: "compare", ids: m[1].split(",").map(decodeURIComponent).filter(Boolean) })],
  [/^#\/runs\/?$/, () => ({ view: "runs" })],
  [/^#\/sweeps\/?$/, () => ({ view: "sweeps" })],
  [/^#\/sweep\/([^/?#]+)$/, (m) => ({ view: "sweep", id: decodeURIComponent(m[1]) })],
  [/^#\/claims(?:\/([^/?#]+))?\/?$/, (m) => ({ view: "claims", id: m[1] ? decodeURIComponent(m[1]) : null })],
  [/^(#\/?(launch\/?)?)?$/, () => ({ view: "launch" })],
];

/** Parse a location hash into {view, ...params}; unknown paths give {view: "notfound"}. */
export function parse(hash) {
  for (const [re, make] of ROUTES) {
    const m = re.exec(hash ?? "");
    if (m) return make(m);
  }
  return { view: "notfound", hash };
}

export const href = {
  launch: () => "#/launch",
  runs: () => "#/runs",
  claims: () => "#/claims",
  claim: (id) => `#/claims/${encodeURIComponent(id)}`,
  run: (id) => `#/run/${encodeURIComponent(id)}`,
  sweeps: () => "#/sweeps",
  sweep: (id) => `#/sweep/${encodeURIComponent(id)}`,
  compare: (ids) => `#/compare/${ids.map(encodeURIComponent).join(",")}`,
};
