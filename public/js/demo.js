// The demo page: a chat room, the notification feed and a tic-tac-toe
// board, each on its own channel. `?name=ann` picks the user's name.
import { Channel } from "./switchboard.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const name = params.get("name") || `guest${Math.floor(Math.random() * 1000)}`;
$("name").value = name;
document.querySelectorAll(".me").forEach((node) => (node.textContent = name));
// The live chat room's user: set before /js/live.js (loaded after this
// module) mounts the components.
$("live-chat").dataset.props = JSON.stringify({ room: "lobby", user: name });

function append(list, html) {
  const item = document.createElement("li");
  item.innerHTML = html;
  list.append(item);
  list.scrollTop = list.scrollHeight;
}
const escape = (text) => String(text).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

// Chat, with presence: who is here, once per user however many tabs.
let chat;
const present = new Map();
function showPresence() {
  $("present").textContent = [...present.keys()].sort().join(", ") || "nobody";
}
function joinRoom() {
  chat?.close();
  present.clear();
  chat = new Channel(`/chat/${encodeURIComponent($("room").value)}?user=${encodeURIComponent(name)}`, {
    onOpen: () => ($("status").textContent = "connected"),
    onClose: () => ($("status").textContent = "reconnecting…"),
    onRecovered: (room, recovered) => {
      if (!recovered) append($("messages"), `<i>earlier messages of ${escape(room)} could not be recovered</i>`);
    },
    onMessage: (message) => {
      switch (message.type) {
        case "message":
          append($("messages"), `<b>${escape(message.user)}</b> ${escape(message.content)}`);
          break;
        case "users":
          $("users").textContent = message.count;
          break;
        case "typing":
          $("typing").textContent = message.is_typing ? `${message.user} is typing…` : "";
          break;
        case "presence_state":
          present.clear();
          Object.keys(message.users).forEach((user) => present.set(user, true));
          showPresence();
          break;
        case "presence_diff":
          Object.keys(message.joins).forEach((user) => present.set(user, true));
          Object.keys(message.leaves).forEach((user) => present.delete(user));
          showPresence();
          break;
        case "error":
          append($("messages"), `<i>${escape(message.message)}</i>`);
          break;
      }
    },
  });
}
$("room").addEventListener("change", joinRoom);
$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const content = $("chat-input").value.trim();
  if (content) chat.send({ type: "message", user: name, content });
  $("chat-input").value = "";
});
let typingTimer;
$("chat-input").addEventListener("input", () => {
  chat.send({ type: "typing", user: name, is_typing: true });
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => chat.send({ type: "typing", user: name, is_typing: false }), 1500);
});
joinRoom();

// Notifications: everything the backend publishes for everyone or for us.
new Channel(`/notifications/${encodeURIComponent(name)}`, {
  onMessage: (message) => {
    if (message.type === "connected" || message.type === "pong") return;
    const { type, timestamp, ...rest } = message;
    append($("feed"), `<b>${escape(type)}</b> ${escape(JSON.stringify(rest))}`);
  },
});

// Tic-tac-toe.
let game;
let symbol = null;
const cells = [...Array(9)].map((_, index) => {
  const cell = document.createElement("button");
  cell.dataset.cell = index;
  cell.addEventListener("click", () => game?.send({ action: "move", position: index }));
  $("board").append(cell);
  return cell;
});
function draw(state) {
  state.board.forEach((mark, index) => (cells[index].textContent = mark));
  if (!state.result) $("game-status").textContent = symbol ? `you are ${symbol} · ${state.turn} to play` : "watching";
}
$("game-join").addEventListener("click", () => {
  game?.close();
  cells.forEach((cell) => cell.classList.remove("win"));
  game = new Channel(`/game/${encodeURIComponent($("game-id").value)}`, {
    onOpen: () => game.send({ action: "join", player: name }),
    onMessage: (message) => {
      switch (message.type) {
        case "joined":
          symbol = message.symbol;
          draw(message.state);
          break;
        case "move":
        case "move_accepted":
          cells[message.position].textContent = message.symbol;
          $("game-status").textContent = symbol ? `you are ${symbol} · ${message.turn} to play` : "watching";
          break;
        case "game_over":
          draw(message.state);
          (message.line || []).forEach((index) => cells[index].classList.add("win"));
          $("game-status").textContent = message.result === "draw" ? "draw" : `${message.result} wins`;
          break;
        case "error":
          $("game-status").textContent = message.message;
          break;
      }
    },
  });
});
