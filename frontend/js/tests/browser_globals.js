// The little of a browser that api.js and feed.js touch when imported outside one: import
// this before them (imports run in order).

const items = new Map();
globalThis.location ??= { search: "", pathname: "/" };
globalThis.localStorage ??= {
  getItem: (k) => items.get(k) ?? null,
  setItem: (k, v) => items.set(k, String(v)),
  removeItem: (k) => items.delete(k),
};
globalThis.document ??= { hidden: true }; // a hidden tab flushes on timers: no animation frames
