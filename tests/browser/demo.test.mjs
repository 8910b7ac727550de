// The demo page in headless Chromium, against the real server and plugins:
// two pages chat, a notification published with curl reaches the feed, and
// the two pages play tic-tac-toe to the end, both boards following every
// move; then the same with the two pages on two nodes sharing one Redis;
// then a page whose connection drops shows, once back, what it missed; then
// Chromium and the server speak permessage-deflate, measured on the wire by
// a proxy. A screenshot is kept in target/browser/demo.png.
//
// Run: `npm test` in this folder (after `npm ci`), with Debian's chromium
// installed; it builds the server and the plugins with cargo first.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { root, API_KEY, setUp, tearDown, startServer, startRedis, open, browser, countingProxy } from "./harness.mjs";

before(setUp);
after(tearDown);

/// Chat, a notification published to `publishTo` (which counts `delivered`
/// of them), and a game to the end, between two pages.
async function playTogether(ann, bob, publishTo, delivered) {
  // Chat: typed in one page, shown in the other; presence shows both users.
  for (const page of [ann, bob]) await page.locator("#present", { hasText: "ann, bob" }).waitFor();
  await ann.fill("#chat-input", "hello from ann");
  await ann.click("#chat-form button");
  await bob.locator("#messages li", { hasText: "hello from ann" }).waitFor();

  // A notification published by the backend with curl reaches both feeds.
  const body = JSON.stringify({ plugin: "notifications", topic: "user_created", payload: { user: { name: "Zoe" } } });
  const answer = execFileSync("curl", ["-sS", "-X", "POST", `${publishTo}/api/publish`, "-H", `Authorization: Bearer ${API_KEY}`, "-H", "Content-Type: application/json", "-d", body]);
  assert.equal(JSON.parse(answer).delivered, delivered);
  for (const page of [ann, bob]) await page.locator("#feed li", { hasText: "user_created" }).waitFor();

  // Tic-tac-toe: ann is X, bob is O; X wins on the diagonal.
  await ann.click("#game-join");
  await ann.locator("#game-status", { hasText: "you are X" }).waitFor();
  await bob.click("#game-join");
  await bob.locator("#game-status", { hasText: "you are O" }).waitFor();
  const moves = [[ann, 0], [bob, 1], [ann, 4], [bob, 2], [ann, 8]];
  for (const [index, [page, cell]] of moves.entries()) {
    await page.click(`#board button[data-cell="${cell}"]`);
    const mark = index % 2 === 0 ? "X" : "O";
    // The mover's board changes on move_accepted, the opponent's on move.
    for (const board of [page, page === ann ? bob : ann]) {
      await board.locator(`#board button[data-cell="${cell}"]`, { hasText: mark }).waitFor();
    }
  }
  for (const page of [ann, bob]) await page.locator("#game-status", { hasText: "X wins" }).waitFor();
}

test("two pages chat, get a published notification and play a game to the end", async () => {
  const address = await startServer();
  const ann = await open("ann", address);
  const bob = await open("bob", address);
  await playTogether(ann, bob, address, 2);
  mkdirSync(join(root, "target/browser"), { recursive: true });
  await ann.screenshot({ path: join(root, "target/browser/demo.png"), fullPage: true });
  await Promise.all([ann.close(), bob.close()]);
});

test("the same with the two pages on two nodes sharing one Redis", async () => {
  const redis = await startRedis();
  const cluster = `[cluster]\nredis = "${redis}"\n`;
  const [first, second] = [await startServer(cluster), await startServer(cluster)];
  const ann = await open("ann", first);
  const bob = await open("bob", second);
  // The event is published on ann's node: `delivered` counts that node's recipients.
  await playTogether(ann, bob, first, 1);
});

test("a page that lost its connection shows what it missed, once, when it comes back", async () => {
  const address = await startServer(`[plugin.chat.limits]\nhistory_size = 100\n`);
  // Ann's chat socket goes through a switch the test can turn off (a network drop).
  let online = true;
  let current = null;
  const urls = [];
  const ann = await open("ann", address, (page) =>
    page.routeWebSocket(/\/chat\//, (socket) => {
      urls.push(socket.url());
      if (!online) return socket.close({ code: 4000, reason: "offline" });
      current = socket;
      socket.connectToServer();
    }),
  );
  const bob = await open("bob", address);
  for (const page of [ann, bob]) await page.locator("#present", { hasText: "ann, bob" }).waitFor();
  await bob.fill("#chat-input", "before the drop");
  await bob.click("#chat-form button");
  await ann.locator("#messages li", { hasText: "before the drop" }).waitFor();

  online = false;
  current.close({ code: 4000, reason: "network drop" });
  await ann.locator("#status", { hasText: "reconnecting" }).waitFor();
  await bob.fill("#chat-input", "said while ann was away");
  await bob.click("#chat-form button");
  await bob.locator("#messages li", { hasText: "said while ann was away" }).waitFor();
  online = true;
  await ann.locator("#messages li", { hasText: "said while ann was away" }).waitFor();
  assert.equal(await ann.locator("#messages li", { hasText: "before the drop" }).count(), 1, "nothing twice");
  assert.equal(await ann.locator("#messages li", { hasText: "could not be recovered" }).count(), 0);
  assert.ok(urls.at(-1).includes("recover="), `came back with its position: ${urls.at(-1)}`);
  await Promise.all([ann.close(), bob.close()]);
});

test("Chromium and the server agree on permessage-deflate: a long chat message crosses compressed", async () => {
  const counted = { bytes: 0 };
  const address = await countingProxy(await startServer(), counted);
  const page = await browser.newPage();
  page.on("pageerror", (error) => assert.fail(`page error: ${error}`));
  await page.goto(`${address}/`);
  const content = "the same few words again and again, ".repeat(300);
  const chat = `${address.replace("http", "ws")}/chat/deflate?user=zoe`;
  const opened = await page.evaluate(async (url) => {
    window.socket = new WebSocket(url);
    window.received = [];
    window.socket.onmessage = (event) => window.received.push(JSON.parse(event.data));
    await new Promise((open, fail) => { window.socket.onopen = open; window.socket.onerror = fail; });
    return window.socket.extensions;
  }, chat);
  assert.equal(opened, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  await page.waitForFunction(() => window.received.some((message) => message.type === "users"));
  const before = counted.bytes;
  const echoed = await page.evaluate(async (content) => {
    window.socket.send(JSON.stringify({ type: "message", user: "zoe", content }));
    while (!window.received.some((message) => message.type === "message")) await new Promise((wait) => setTimeout(wait, 10));
    return window.received.find((message) => message.type === "message").content;
  }, content);
  assert.equal(echoed, content, "the page reads the message as it was sent");
  const wire = counted.bytes - before;
  assert.ok(wire < content.length / 10, `${wire} bytes on the wire for a ${content.length}-byte message`);
  await page.close();
});
