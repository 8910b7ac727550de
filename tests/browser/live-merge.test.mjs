// The live-component client's pure half in Node: merging `full`/`diff`
// messages into a tree and rendering it gives the HTML the server rendered.
// The cases in tests/fixtures/live/cases.json are shared with the Rust side
// (which generates them); the edge cases below are the client's own.
//
// Run: `node --test live-merge.test.mjs` in this folder (no install needed).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { merge, mergeList, mergeNode, toHTML, stats } from "../../public/js/live.js";

const root = resolve(import.meta.dirname, "../..");
const cases = JSON.parse(readFileSync(resolve(root, "tests/fixtures/live/cases.json"), "utf8"));

/** Freeze a value deeply: a merge that mutates its inputs throws (modules are strict). */
function freeze(value) {
  if (value && typeof value == "object") {
    Object.values(value).forEach(freeze);
    Object.freeze(value);
  }
  return value;
}

test("the fixtures hold cases", () => {
  assert.ok(Array.isArray(cases) && cases.length > 0);
});

for (const c of cases) {
  test(`fixture: ${c.name}`, () => {
    freeze(c);
    assert.equal(c.full.t, "full");
    assert.equal(c.html.length, c.diffs.length + 1, "one HTML per state");
    // The client keeps one template dictionary per socket: later diffs add to it.
    const templates = { ...c.full.p };
    let tree = c.full.r;
    assert.equal(toHTML(tree, templates), c.html[0], "after full");
    c.diffs.forEach((d, i) => {
      assert.equal(d.t, "diff");
      Object.assign(templates, d.p);
      if (d.d) tree = merge(tree, d.d);
      assert.equal(toHTML(tree, templates), c.html[i + 1], `after diff ${i + 1}`);
    });
  });
}

// Templates for the edge cases.
const T = {
  0: ["<div>", "|", "</div>"],
  1: ["<i>", "</i>"],
  2: ["<b>", "</b>"],
};
const i = (text) => ({ s: 1, 0: text });
const list = (...entries) => ({ kc: entries.length, k: Object.fromEntries(entries.map((e, n) => [n, e])) });

test("a missing diff changes nothing", () => {
  const node = freeze({ s: 0, 0: "a", 1: "b" });
  assert.equal(mergeNode(node, undefined), node);
  assert.equal(mergeNode(node, null), node);
  assert.deepEqual(merge(node, {}), node);
});

test("templates may be a Map of tid strings", () => {
  const templates = new Map(Object.entries(T));
  assert.equal(toHTML({ s: 0, 0: i("x"), 1: list(i("y"), i("z")) }, templates), "<div><i>x</i>|<i>y</i><i>z</i></div>");
  assert.equal(toHTML({ s: "1", 0: "q" }, templates), "<i>q</i>");
});

test("an unknown template is an error, not empty HTML", () => {
  assert.throws(() => toHTML({ s: 9 }, T), /unknown template 9/);
});

test("slots: strings are HTML as they are, absent slots render empty", () => {
  assert.equal(toHTML({ s: 0, 0: "&lt;b&gt;", 1: "<br>" }, T), "<div>&lt;b&gt;|<br></div>");
  assert.equal(toHTML({ s: 0 }, T), "<div>|</div>");
  assert.equal(toHTML({ s: 0, 0: 42, 1: list() }, T), "<div>42|</div>");
});

test("a node diff with s replaces the node, even at the root", () => {
  const old = freeze({ s: 0, 0: "a", 1: "b" });
  assert.deepEqual(merge(old, { s: 2, 0: "c" }), { s: 2, 0: "c" });
  assert.deepEqual(mergeNode(old, { s: 2, 0: "c" }), { s: 2, 0: "c" });
});

test("a node diff keeps the other slots and copies rather than mutates", () => {
  const old = freeze({ s: 0, 0: i("a"), 1: "b" });
  const merged = merge(old, { 0: { 0: "A" } });
  assert.deepEqual(merged, { s: 0, 0: { s: 1, 0: "A" }, 1: "b" });
  assert.equal(old[0][0], "a");
  assert.equal(merged[1], old[1]);
});

test("list diffs: moves, moves with changes, new nodes and in-place diffs together", () => {
  const old = freeze(list(i("a"), i("b"), i("c"), i("d")));
  const merged = mergeList(old, { kc: 5, k: { 0: 3, 1: [0, { 0: "A" }], 3: { 0: "C" }, 4: { s: 2, 0: "e" } } });
  assert.equal(toHTML(merged, T), "<i>d</i><i>A</i><i>c</i><i>C</i><b>e</b>");
  // Unchanged entries are shared, not copied.
  assert.equal(merged.k[0], old.k[3]);
  assert.equal(merged.k[2], old.k[2]);
});

test("a list diff without k keeps the first kc old entries", () => {
  const old = freeze(list(i("a"), i("b"), i("c")));
  assert.equal(toHTML(mergeList(old, { kc: 2 }), T), "<i>a</i><i>b</i>");
  assert.equal(toHTML(mergeList(old, { kc: 0 }), T), "");
});

test("a list diff against something that is not a list starts from the empty list", () => {
  for (const old of [undefined, null, "text", i("node")]) {
    const merged = merge(old, { kc: 2, k: { 0: i("x"), 1: { s: 2, 0: "y" } } });
    assert.equal(toHTML(merged, T), "<i>x</i><b>y</b>", `old: ${JSON.stringify(old)}`);
  }
});

test("a slot goes from string to list to node and back", () => {
  let tree = freeze({ s: 0, 0: "x", 1: "" });
  tree = merge(tree, { 1: { kc: 1, k: { 0: i("1") } } });
  assert.equal(toHTML(tree, T), "<div>x|<i>1</i></div>");
  tree = merge(tree, { 1: { s: 2, 0: "n" } });
  assert.equal(toHTML(tree, T), "<div>x|<b>n</b></div>");
  tree = merge(tree, { 1: { 0: "m" } });
  assert.equal(toHTML(tree, T), "<div>x|<b>m</b></div>");
  tree = merge(tree, { 1: "s" });
  assert.equal(toHTML(tree, T), "<div>x|s</div>");
});

test("importing the client in Node starts nothing", () => {
  assert.equal(typeof globalThis.document, "undefined");
  assert.equal(globalThis.__liveStats, undefined);
  assert.deepEqual(stats, { patches: 0 });
});
