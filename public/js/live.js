// Live components in the browser: the server renders, this file keeps the
// DOM in step (protocol: guest-sdk/LIVE-PROTOCOL.md).
//
//   <div data-live="counter" data-props='{"count":10}'></div>
//   <script type="module" src="/js/live.js"></script>
//
// Every `[data-live]` element is a component root, joined over the socket at
// `data-live-url` (default `/live/<name>`); roots sharing a URL share one
// WebSocket. The server sends templates once and then diffs of a tree of
// slots; this file merges them, renders the tree to HTML and morphs the root's
// children to it (morphdom), at most once per component per animation frame.
//
// The merge and render functions are pure and DOM-free, so Node tests import
// this module too: nothing here touches `document` unless it exists.
import morphdom from "./vendor/morphdom.js";

/** Morphs so far, one per component render (also `window.__liveStats`). */
export const stats = { patches: 0 };

const LOADING = "live-loading";
const FIELD = /^(INPUT|TEXTAREA|SELECT)$/;
const KINDS = ["click", "submit", "change", "input", "keydown"];
/** @type {Map<Element, View>} component roots on the page */
const views = new Map();
/** @type {Map<string, LiveSocket>} one socket per WebSocket URL */
const sockets = new Map();
let cids = 0; // cids are "c1", "c2", … per page

/**
 * @typedef {{el: Element, cid: string, s: LiveSocket, tree?: object, tpl?: object,
 *   resume?: string, on?: boolean, err?: boolean, force?: {el: Element, sent: Map}, ft?: number}} View
 *   `on`: rendered by a `full` since the socket opened; `force`: the submit this
 *   frame's diff answers, with the values it sent (fields that still hold them
 *   take the server's values).
 */

// ---------------------------------------------------------------------------
// Pure part: merging diffs and rendering trees.

/**
 * Merge a slot diff into a slot's old value (the protocol's merge rules): a
 * string or an object with `s` replaces, an object with `kc` is a list diff,
 * any other object is a node diff. Nothing is mutated: changed paths are copied.
 * @param {*} old the slot's current value
 * @param {*} diff the slot's diff
 * @returns {*} the new value
 */
export function merge(old, diff) {
  if (diff === null || typeof diff != "object" || "s" in diff) return diff;
  return "kc" in diff ? mergeList(old, diff) : mergeNode(old, diff);
}

/**
 * Merge a node diff (only the changed slots) into a node; a diff with `s` is a
 * whole new node, and no diff at all changes nothing.
 * @param {object} old the node
 * @param {object} [diff] its changed slots
 * @returns {object} the new node
 */
export function mergeNode(old, diff) {
  if (!diff) return old;
  if ("s" in diff) return diff;
  const node = { ...(typeof old == "object" ? old : null) };
  for (const slot in diff) node[slot] = merge(node[slot], diff[slot]);
  return node;
}

/**
 * Merge a list diff `{kc, k}` into an old list (anything else counts as the
 * empty list). Entry i of the diff is absent (old entry i), a number j (old
 * entry j, moved), `[j, diff]` (old entry j, moved and changed), or an object
 * (a new node with `s`, else a node diff of old entry i).
 * @param {*} old the old list
 * @param {{kc: number, k?: object}} diff
 * @returns {{kc: number, k: object}} the new list, every entry present
 */
export function mergeList(old, diff) {
  const was = (old && typeof old == "object" && "kc" in old && old.k) || {};
  const k = {};
  for (let i = 0; i < diff.kc; i++) {
    const e = diff.k?.[i];
    k[i] = e == null ? was[i] : typeof e == "number" ? was[e] : Array.isArray(e) ? mergeNode(was[e[0]], e[1]) : merge(was[i], e);
  }
  return { kc: diff.kc, k };
}

/**
 * The HTML of a slot value: a string as it is (the server escaped it), a list
 * as its entries in order, a node as its statics around its slots.
 * @param {*} value a node, list or string
 * @param {Map<string, string[]>|Object<string, string[]>} templates tid → statics
 * @returns {string}
 */
export function toHTML(value, templates) {
  if (value == null) return "";
  if (typeof value != "object") return "" + value;
  let html = "";
  if ("kc" in value) {
    for (let i = 0; i < value.kc; i++) html += toHTML(value.k?.[i], templates);
    return html;
  }
  const statics = templates.get ? templates.get("" + value.s) : templates[value.s];
  if (!statics) throw new Error(`live: unknown template ${value.s}`);
  html = statics[0];
  for (let i = 1; i < statics.length; i++) html += toHTML(value[i - 1], templates) + statics[i];
  return html;
}

// ---------------------------------------------------------------------------
// Sockets.

/** One WebSocket to a live-component route and the components on it. */
export class LiveSocket {
  /** @param {string} url a ws:// or wss:// URL */
  constructor(url) {
    this.url = url;
    /** @type {Map<string, View>} by cid */
    this.views = new Map();
    /** @type {Map<number, {el: Element, k: string}>} events waiting for their reply, by ref */
    this.pending = new Map();
    this.ref = 0;
    this.delay = 100;
    this.connect();
  }

  connect() {
    const ws = (this.ws = new WebSocket(this.url));
    // Templates are per connection: the server starts a new dictionary too.
    // Views keep the dictionary their tree was built with, so a close between
    // a message and its frame still renders.
    this.tpl = {};
    ws.onopen = () => {
      this.delay = 100;
      for (const v of this.views.values()) {
        this.join(v);
        // The plugin crashed (1011): its state may be gone, say so.
        if (this.crashed) show(v, "error", "error", { code: "crashed", msg: "The server restarted this component." });
      }
      this.crashed = false;
    };
    ws.onmessage = (e) => {
      try {
        this.receive(JSON.parse(e.data));
      } catch (err) {
        console.error("live:", err);
      }
    };
    ws.onclose = (e) => {
      // Unanswered events will never be answered.
      for (const { el } of this.pending.values()) el.classList.remove(LOADING);
      this.pending.clear();
      for (const v of this.views.values()) classes(v, (v.on = false));
      if (e.code == 1011) this.crashed = true;
      // Refused by policy (a missing or bad token): trying again would only
      // be refused again. Say why, and stop.
      if (e.code == 1008 && !this.closed) {
        this.closed = true;
        for (const v of this.views.values()) (v.err = true), classes(v), show(v, "error", "error", { code: "refused", msg: e.reason || "refused" });
      }
      if (this.closed) return;
      // Backoff with jitter: 50–100 % of a delay doubling from 100 ms to 5 s.
      setTimeout(() => this.closed || this.connect(), this.delay * (0.5 + Math.random() / 2));
      this.delay = Math.min(this.delay * 2, 5000);
    };
  }

  /** Send a message if the socket is open (a closed one rejoins on open). */
  send(message) {
    if (this.ws.readyState == 1) return this.ws.send(JSON.stringify(message)), true;
  }

  /** Mount a view's component: props are read now, so they may change between joins. */
  join(v) {
    let p = {};
    try {
      p = JSON.parse(v.el.getAttribute("data-props") || "{}");
    } catch (err) {
      console.error("live: bad data-props", err);
    }
    this.send({ t: "join", cid: v.cid, c: v.el.getAttribute("data-live"), p, resume: v.resume || undefined });
  }

  /** Send an event; its source element is `live-loading` until the reply. */
  event(v, el, k, message) {
    const ref = ++this.ref;
    if (this.send({ t: "ev", cid: v.cid, ref, k, ...message })) {
      // A submit's reply resets its form's fields, but only those the user
      // has not typed into since: remember what was sent.
      const sent = k == "submit" ? new Map([...el.elements].map((f) => [f, f.value])) : null;
      this.pending.set(ref, { el, k, sent });
      el.classList.add(LOADING);
    }
  }

  /**
   * A message from the server. State (templates, trees) is merged at once;
   * the DOM follows at the next animation frame.
   */
  receive(m) {
    // Templates first, whoever they are for: they cross the connection once.
    Object.assign(this.tpl, m.p);
    const v = this.views.get(m.cid);
    const p = this.pending.get(m.ack);
    this.pending.delete(m.ack);
    if (!v) return;
    if (m.t == "full" || m.t == "diff") {
      if (m.t == "full") (v.tree = m.r), (v.resume = m.resume), (v.on = true);
      else if (m.d) v.tree = merge(v.tree, m.d);
      v.tpl = this.tpl;
      v.err = false;
      // A submit's reply always renders, so the form's fields take the
      // server's values even when nothing else changed (e.g. a cleared input).
      if (p?.k == "submit") v.force = p;
      if (m.t == "full" || m.d || v.force) dirty.add(v);
    } else if (m.t == "err") {
      v.err = true;
      // The server forgot the component (plugin restarted): mount it afresh,
      // once however many events come back unknown.
      if (m.code == "unknown" && v.on) (v.on = false), (v.resume = null), this.join(v);
    }
    effects.push([v, m, p]);
    frame();
  }

  /** Close for good (no reconnect). */
  close() {
    this.closed = true;
    this.ws.close(1000);
  }
}

// ---------------------------------------------------------------------------
// Rendering: once per component per animation frame.

/** @type {Set<View>} views whose tree changed since the last frame */
const dirty = new Set();
/** @type {Array<[View, object, object?]>} messages to act on after the morphs, in order */
const effects = [];
let scheduled = false;

function frame() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    for (const v of dirty) {
      try {
        render(v);
      } catch (err) {
        console.error("live:", err);
      }
    }
    dirty.clear();
    // Side effects after the morphs: a `push` handler sees the new DOM.
    for (const [v, m, p] of effects.splice(0)) {
      // Another event from the same element may still be waiting.
      if (p && ![...v.s.pending.values()].some((q) => q.el == p.el)) p.el.classList.remove(LOADING);
      if (m.t == "err") show(v, "error", "error", m);
      else if (m.t == "flash") show(v, "flash", m.kind, m);
      else if (m.t == "redirect") location.assign(m.to);
      else if (m.t == "push") fire(v.el, m.n, m.v);
      classes(v);
    }
  });
}

/** Render a view's tree and morph its root's children to it. */
function render(v) {
  // A <template> parses any fragment (table rows too) without running scripts
  // or loading images; the wrapper lives in the template's inert document.
  const t = document.createElement("template");
  t.innerHTML = toHTML(v.tree, v.tpl);
  const to = t.content.ownerDocument.createElement(v.el.tagName);
  to.append(t.content);
  const o = {
    // Only ids are global keys: `data-key` rows are matched within their list by `keyed`.
    getNodeKey: (el) => el.id || undefined,
    onBeforeElUpdated: (from, next) => update(v, from, next),
    onBeforeElChildrenUpdated: (from, next) => !keyed(from, next, o),
  };
  if (!keyed(v.el, to, o)) morphdom(v.el, to, { ...o, childrenOnly: true });
  v.force = null;
  stats.patches++;
}

/**
 * Morph a keyed list: when every element child of `to` has a `data-key` (and
 * the rest is whitespace), rows are matched by key within this element only,
 * each morphed in place, and the fewest are moved: those off the longest run
 * of rows still in their old order. So a row added, removed or changed touches
 * that row alone, and a row that stays (with the focus in it) is never taken
 * out of the document, as morphdom's own keyed moves would. False when `to` is
 * not such a list: morphdom morphs it.
 */
function keyed(from, to, o) {
  const rows = [];
  for (const n of to.childNodes) {
    if (n.nodeType == 1 && n.hasAttribute("data-key")) rows.push(n);
    else if (n.nodeType != 3 || n.data.trim()) return false;
  }
  if (!rows.length) return false;
  const old = new Map();
  let i = 0;
  for (const n of [...from.childNodes]) {
    const k = n.nodeType == 1 ? n.getAttribute("data-key") : null;
    if (k == null || old.has(k)) from.removeChild(n);
    else old.set(k, [n, i++]);
  }
  const placed = rows.map((row) => {
    const k = row.getAttribute("data-key");
    const hit = old.get(k);
    if (!hit || hit[0].nodeName != row.nodeName) return [row, -1];
    old.delete(k);
    morphdom(hit[0], row, o);
    return hit;
  });
  for (const [n] of old.values()) from.removeChild(n);
  const stay = increasing(placed.map((p) => p[1]));
  let next = null;
  for (let j = placed.length - 1; j >= 0; j--) {
    const n = placed[j][0];
    if (!stay.has(j)) from.insertBefore(n, next);
    next = n;
  }
  return true;
}

/**
 * The positions of a longest strictly increasing run of `a`'s non-negative
 * values (old row indexes; -1 is a new row): the rows that need not move.
 */
function increasing(a) {
  const tails = [], prev = [];
  a.forEach((x, j) => {
    if (x < 0) return;
    let lo = 0, hi = tails.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      a[tails[m]] < x ? (lo = m + 1) : (hi = m);
    }
    prev[j] = lo ? tails[lo - 1] : -1;
    tails[lo] = j;
  });
  const stay = new Set();
  for (let j = tails.length ? tails[tails.length - 1] : -1; j >= 0; j = prev[j]) stay.add(j);
  return stay;
}

/**
 * Before morphdom updates `from` to look like `next`: skip nested components,
 * ignored subtrees and the flash box; keep the loading class; and keep the
 * focused field as the user has it (value, caret, selection, checked), unless
 * this is the reply to a submit of its form and the field still holds what
 * was submitted (typing after Enter is kept). Changing `next` rather than
 * `from` lets morphdom copy the other attributes as usual.
 */
function update(v, from, next) {
  if (from.matches("[data-live],[data-live-ignore],[data-live-flash]")) return false;
  if (from.classList.contains(LOADING)) next.classList.add(LOADING);
  const reset = v.force?.el.contains(from) && v.force.sent.get(from) === from.value;
  if (from != document.activeElement || !FIELD.test(from.tagName) || reset) return;
  if (from.tagName == "SELECT") {
    const chosen = new Set([...from.selectedOptions].map((o) => o.value));
    for (const o of next.options) o.toggleAttribute("selected", chosen.has(o.value));
  } else if (/^(checkbox|radio)$/.test(from.type)) {
    next.checked = from.checked;
  } else {
    // Same value attribute and property: morphdom assigns neither, so the
    // caret and selection stay where they are.
    const a = from.getAttribute("value");
    a == null ? next.removeAttribute("value") : next.setAttribute("value", a);
    next.value = from.value;
  }
}

/** The root's state classes. */
function classes(v, on = !!v.on && v.s.ws.readyState == 1) {
  const c = v.el.classList;
  c.toggle("live-connected", on);
  c.toggle("live-disconnected", !on);
  c.toggle("live-error", !!v.err);
}

/** Dispatch `live:<name>` on a root (it bubbles, so page scripts may listen on document). */
const fire = (el, name, detail) => el.dispatchEvent(new CustomEvent("live:" + name, { detail, bubbles: true }));

/**
 * Show an error or a flash in the root's `[data-live-flash]` element, if it has
 * one (its text, and `data-kind`), and dispatch `live:error` / `live:flash`.
 * The text goes after 5 s (an error after 10 s).
 */
function show(v, event, kind, detail) {
  const box = v.el.querySelector("[data-live-flash]");
  if (box) {
    box.textContent = detail.msg || detail.code;
    box.setAttribute("data-kind", kind);
    clearTimeout(v.ft);
    v.ft = setTimeout(() => (box.textContent = ""), kind == "error" ? 10000 : 5000);
  }
  fire(v.el, event, detail);
}

// ---------------------------------------------------------------------------
// Events: delegated from `document`, so morphed content needs no listeners.

/** @type {Map<Element, [number, Function]>} debounced input events: field → [timer, send] */
const timers = new Map();

function onEvent(e) {
  const k = e.type;
  const t = e.target;
  const el = t.closest?.(`[data-on-${k}]`);
  const v = views.get(el?.closest("[data-live]"));
  if (!v) return;
  const filter = el.getAttribute("data-key-filter");
  if (k == "keydown" && filter && filter != e.key) return;
  if (k == "submit" || (k == "click" && (el.tagName == "A" || (el.tagName == "BUTTON" && el.form)))) e.preventDefault();
  const form = k == "submit" ? t : t.form;
  const send = () => {
    const val = {};
    for (const a of el.attributes) if (a.name.startsWith("data-val-")) val[a.name.slice(9)] = a.value;
    if (k != "click" && k != "submit" && FIELD.test(t.tagName))
      val.value = /^(checkbox|radio)$/.test(t.type) ? (t.checked ? t.value || "on" : "") : t.value;
    if (k == "keydown") val.key = e.key;
    const message = { n: el.getAttribute("data-on-" + k), v: val };
    if (form && (k == "submit" || k == "change")) {
      message.f = {};
      for (const [name, x] of new FormData(form, k == "submit" ? e.submitter : null)) message.f[name] = typeof x == "string" ? x : x.name;
    }
    v.s.event(v, el, k, message);
  };
  if (k == "submit") {
    // Typing still debounced in this form goes first.
    for (const [field, [timer, pending]] of timers)
      if (form.contains(field)) clearTimeout(timer), timers.delete(field), pending();
  }
  const debounce = k == "input" && (t.getAttribute("data-debounce") ?? el.getAttribute("data-debounce"));
  if (debounce == null || debounce === false) return send();
  clearTimeout(timers.get(t)?.[0]);
  const ms = parseInt(debounce);
  timers.set(t, [setTimeout(() => (timers.delete(t), send()), ms >= 0 ? ms : 300), send]);
}

// ---------------------------------------------------------------------------
// Mounting.

/**
 * Mount a component root (done for every `[data-live]` element on the page,
 * now and later); mounting it again does nothing.
 * @param {Element} el
 * @returns {View}
 */
export function mount(el) {
  if (views.has(el)) return views.get(el);
  const url = new URL(el.getAttribute("data-live-url") || "/live/" + el.getAttribute("data-live"), location.href);
  url.protocol = url.protocol.replace("http", "ws");
  let s = sockets.get(url.href);
  if (!s) sockets.set(url.href, (s = new LiveSocket(url.href)));
  const v = { el, cid: "c" + ++cids, s };
  views.set(el, v);
  s.views.set(v.cid, v);
  s.join(v);
  classes(v);
  return v;
}

/**
 * Unmount a root (`leave`); the last one on a socket closes it.
 * @param {Element} el
 */
export function unmount(el) {
  const v = views.get(el);
  if (!v) return;
  views.delete(el);
  const s = v.s;
  s.views.delete(v.cid);
  s.send({ t: "leave", cid: v.cid });
  if (!s.views.size) s.close(), sockets.delete(s.url);
}

function start() {
  window.__liveStats = stats;
  for (const k of KINDS) document.addEventListener(k, onEvent, true);
  document.querySelectorAll("[data-live]").forEach(mount);
  // Roots added later (also inside rendered components) mount; removed ones leave.
  new MutationObserver((records) => {
    for (const r of records)
      for (const n of r.addedNodes)
        if (n.nodeType == 1) {
          if (n.matches("[data-live]")) mount(n);
          n.querySelectorAll("[data-live]").forEach(mount);
        }
    for (const el of views.keys()) if (!el.isConnected) unmount(el);
  }).observe(document.body, { childList: true, subtree: true });
}

if (typeof document != "undefined") {
  if (document.readyState == "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}
