import assert from "node:assert/strict";
import { test } from "node:test";

import { href, parse } from "../router.js";

test("deep links parse to their view", () => {
  assert.deepEqual(parse("#/run/abc123"), { view: "run", id: "abc123" });
  assert.deepEqual(parse("#/compare/a,b,c"), { view: "compare", ids: ["a", "b", "c"] });
  assert.deepEqual(parse("#/runs"), { view: "runs" });
  assert.deepEqual(parse(""), { view: "launch" });
  assert.deepEqual(parse("#/"), { view: "launch" });
  assert.deepEqual(parse("#/launch"), { view: "launch" });
  assert.equal(parse("#/nope").view, "notfound");
});

test("links round-trip through the parser", () => {
  assert.deepEqual(parse(href.run("r 1")), { view: "run", id: "r 1" });
  assert.deepEqual(parse(href.compare(["x", "y"])).ids, ["x", "y"]);
});
