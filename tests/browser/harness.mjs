// What the browser tests share: the cargo builds, a `switchboard serve` of
// the plugins with a TOML config, a private Redis, headless Chromium, a page
// that fails the test on any page error, and a TCP proxy between the browser
// and a server (to count its bytes, or to cut its connections).
//
// A test file registers the set-up and the clean-up itself:
//
//   import { setUp, tearDown, startServer, open } from "./harness.mjs";
//   before(setUp);
//   after(tearDown);

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, copyFileSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { createServer, connect } from "node:net";
import { chromium } from "playwright-core";

export const root = resolve(import.meta.dirname, "../..");
export const API_KEY = "browser-test-key";
/// Each plugin the servers load: its file name in the plugins folder (without
/// `.wasm`) → its cargo package.
const PLUGINS = {
  chat: "switchboard-plugin-chat",
  notifications: "switchboard-plugin-notifications",
  game: "switchboard-plugin-game",
  counter: "switchboard-plugin-counter",
  todo: "switchboard-plugin-todo",
  "chat-room": "switchboard-plugin-chat-room",
  "live-probe": "switchboard-test-plugin-live-probe",
};
/// Built too, not installed: a second version of live-probe, for hot reloads.
const OTHER_BUILDS = ["switchboard-test-plugin-live-probe-v2"];
const built = join(root, "target/test-plugins");

/// The built wasm file of cargo package `pkg`.
export const wasmOf = (pkg) => join(built, `wasm32-wasip2/plugin/${pkg.replaceAll("-", "_")}.wasm`);
let folder, plugins;
/** The browser, once `setUp` has run. */
export let browser;
const processes = [];

/// A new folder holding every plugin's wasm file, as `<name>.wasm`; its path.
export function pluginFolder() {
  const into = mkdtempSync(join(folder, "plugins-"));
  for (const [name, pkg] of Object.entries(PLUGINS)) {
    copyFileSync(wasmOf(pkg), join(into, `${name}.wasm`));
  }
  return into;
}

/// A `switchboard serve` of the test's plugins, with `extra` TOML (before
/// the `[api]` table: top-level keys or whole tables); its address. `watch`
/// turns hot reload on; `plugins` is its plugins folder (by default one
/// shared by the servers that do not watch theirs).
export async function startServer(extra = "", { watch = false, plugins: dir = plugins } = {}) {
  const config = join(folder, `switchboard-${processes.length}.toml`);
  writeFileSync(config, `listen = "127.0.0.1:0"\nplugins = "${dir}"\npublic = "${join(root, "public")}"\nwatch = ${watch}\n${extra}[api]\nkey = "${API_KEY}"\n`);
  const server = spawn(join(root, "target/release/switchboard"), ["serve", "--config", config], { stdio: ["ignore", "pipe", "inherit"] });
  processes.push(server);
  const line = await new Promise((resolveLine, reject) => {
    createInterface({ input: server.stdout }).once("line", resolveLine);
    server.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  return line.replace("listening on ", "");
}

/// A private redis-server on a free port; its URL.
export async function startRedis() {
  const port = await new Promise((resolvePort) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
  processes.push(spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" }));
  for (let tries = 0; tries < 200; tries++) {
    try {
      execFileSync("redis-cli", ["-p", String(port), "ping"], { stdio: "ignore" });
      return `redis://127.0.0.1:${port}`;
    } catch {
      await new Promise((wait) => setTimeout(wait, 25));
    }
  }
  throw new Error("redis-server did not start");
}

/// The builds, the plugins folder and the browser (a `before` hook).
export async function setUp() {
  // The same builds as `cargo test --release --workspace` and tests/build.rs
  // make, so that after scripts/test's cargo step these are no-ops.
  const cargo = (args) => execFileSync("cargo", args, { cwd: root, stdio: "inherit" });
  cargo(["test", "--release", "--workspace", "--no-run"]);
  cargo(["build", "--profile", "plugin", "--target", "wasm32-wasip2", "--target-dir", built, ...[...Object.values(PLUGINS), ...OTHER_BUILDS].flatMap((p) => ["-p", p])]);
  folder = mkdtempSync(join(tmpdir(), "switchboard-browser-"));
  plugins = pluginFolder();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/// Closes the browser, stops the servers, Redis and the proxies (an `after` hook).
export async function tearDown() {
  await browser?.close();
  for (const child of processes) child.kill("SIGTERM");
}

/// The demo page as `name`, once its status says connected; `prepare` runs
/// on the page before it loads. Any page error fails the test.
export async function open(name, address, prepare = async () => {}) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  page.on("pageerror", (error) => assert.fail(`page error on ${name}'s page: ${error}`));
  await prepare(page);
  await page.goto(`${address}/?name=${name}`);
  await page.locator("#status", { hasText: "connected" }).waitFor();
  return page;
}

/// A TCP proxy to `address`, its address and its switch: `counted.bytes`
/// adds up what the server sends; `drop()` cuts every connection through it;
/// while `online` is false new connections are cut at once (a network drop).
export async function tcpProxy(address, counted = { bytes: 0 }) {
  const { hostname, port } = new URL(address);
  const pairs = new Set();
  const control = { online: true, address: "", drop: () => pairs.forEach(([client, server]) => (client.destroy(), server.destroy())) };
  const proxy = createServer((client) => {
    if (!control.online) return client.destroy();
    const server = connect(Number(port), hostname);
    const pair = [client, server];
    pairs.add(pair);
    server.on("data", (bytes) => (counted.bytes += bytes.length));
    client.pipe(server).pipe(client);
    for (const end of pair) {
      end.on("error", () => { client.destroy(); server.destroy(); });
      end.on("close", () => pairs.delete(pair));
    }
  });
  await new Promise((listening) => proxy.listen(0, "127.0.0.1", listening));
  processes.push({ kill: () => proxy.close() });
  control.address = `http://127.0.0.1:${proxy.address().port}`;
  return control;
}

/// A TCP proxy to `address` that counts the bytes the server sends; its address.
export async function countingProxy(address, counted) {
  return (await tcpProxy(address, counted)).address;
}
