// The chat demo served at "/": a development token from GET /dev/token, a switchyard-client
// connection to /ws, the default chat handler (docs/HANDLERS.md): chat/join, chat/send,
// chat/online requests and chat/message pushes. No framework, no CDN.
import { Switchyard } from "/assets/switchyard-client.js";

const $ = (id) => document.getElementById(id);
const ONLINE_REFRESH_MS = 5000;

/** Exposed for the browser tests and for poking at from the console. */
const demo = (window.demo = { sy: null, name: "", room: "", received: 0, joins: 0 });

let onlineTimer = 0;
let online = [];

function wsUrl() {
  const u = new URL("/ws", location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
}

class NoDevTokens extends Error {}

/** GET /dev/token?user=NAME -> {"token": "..."}; 404 when the server is not in dev mode. */
async function devToken(name) {
  const r = await fetch(`/dev/token?user=${encodeURIComponent(name)}`, { cache: "no-store" });
  if (r.status === 404) throw new NoDevTokens();
  if (!r.ok) throw new Error(`GET /dev/token answered ${r.status}`);
  const body = await r.json();
  if (typeof body.token !== "string") throw new Error("GET /dev/token: no token in the answer");
  return body.token;
}

function showError(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

function setStatus(state, text) {
  const s = $("status");
  s.dataset.state = state;
  s.textContent = text;
}

const CLOSED_WHY = {
  1000: "left the room",
  1008: "closed by the server's policy (rate limit or a stalled connection)",
  4001: "you were kicked by an administrator",
  4002: "your token expired",
};

function describe(state, info) {
  switch (state) {
    case "connecting":
      return "connecting…";
    case "connected":
      return `connected as ${demo.sy.user} (client ${demo.sy.clientId})`;
    case "disconnected": {
      const secs = ((info.delayMs || 0) / 1000).toFixed(1);
      const hint = info.failures >= 3 ? " · server unreachable, or the token was refused" : "";
      return `disconnected, retrying in ${secs} s${hint}`;
    }
    case "closed":
      return `closed (${demo.sy.closeCode}): ${CLOSED_WHY[demo.sy.closeCode] || demo.sy.closeReason || "connection closed"}`;
  }
  return state;
}

function time(ts) {
  const d = ts ? new Date(ts * 1000) : new Date();
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function addLine(cls, from, text, ts) {
  const li = document.createElement("li");
  li.className = cls;
  if (from !== null) {
    const t = document.createElement("span");
    t.className = "time";
    t.textContent = time(ts);
    const f = document.createElement("span");
    f.className = "from";
    f.textContent = from;
    li.append(t, f);
  }
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(body);
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.append(li);
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function renderOnline(users) {
  online = Array.isArray(users) ? users.filter((u) => typeof u === "string") : [];
  const ul = $("online");
  ul.replaceChildren(
    ...online.map((u) => {
      const li = document.createElement("li");
      li.textContent = u === demo.name ? `${u} (you)` : u;
      return li;
    }),
  );
  $("online-count").textContent = String(online.length);
}

async function refreshOnline() {
  if (!demo.sy || demo.sy.state !== "connected") return;
  try {
    const r = await demo.sy.request("chat/online", { room: demo.room }, { timeoutMs: 5000 });
    if (r && r.room === demo.room) renderOnline(r.users);
  } catch {
    /* shown by the status line when the connection is the problem */
  }
}

/** chat/join on every (re)connect: a new connection is in no room until it joins again. */
async function joinRoom() {
  try {
    const r = await demo.sy.request("chat/join", { room: demo.room }, { timeoutMs: 5000 });
    demo.joins++;
    renderOnline(r.users);
    addLine("system", null, demo.joins === 1 ? `joined #${demo.room}` : `rejoined #${demo.room}`);
  } catch (e) {
    addLine("system", null, `could not join #${demo.room}: ${e.message} (${e.kind})`);
  }
}

function enter(name, room, getToken) {
  demo.name = name;
  demo.room = room;
  demo.received = 0;
  demo.joins = 0;
  $("login").hidden = true;
  $("chat").hidden = false;
  $("room-name").textContent = room;
  $("me").textContent = name;
  $("messages").replaceChildren();
  renderOnline([]);

  const sy = (demo.sy = new Switchyard(wsUrl(), { getToken }));
  sy.onState((state, info) => {
    setStatus(state, describe(state, info));
    $("send").disabled = state === "closed";
    if (state === "connected") joinRoom();
    if (state === "closed") {
      clearInterval(onlineTimer);
      addLine("system", null, describe(state, info));
    }
  });
  sy.on("chat/message", (m, frame) => {
    if (!m || m.room !== demo.room) return;
    demo.received++;
    addLine(m.from === name ? "mine" : "", m.from, String(m.text), frame.timestamp);
    if (!online.includes(m.from)) refreshOnline();
  });
  clearInterval(onlineTimer);
  onlineTimer = setInterval(refreshOnline, ONLINE_REFRESH_MS);
  $("text").focus();
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("name").value.trim();
  const room = $("room").value.trim();
  const pasted = $("token").value.trim();
  showError($("error"), "");
  $("enter").disabled = true;
  try {
    if (pasted) {
      enter(name, room, () => pasted);
      return;
    }
    await devToken(name); // fails here, visibly, rather than in a reconnect loop
    enter(name, room, () => devToken(name));
  } catch (e) {
    if (e instanceof NoDevTokens) {
      showError(
        $("error"),
        "This server is not in development mode: GET /dev/token answered 404.\n" +
          "Paste a token minted with `switchyard token --sub " + (name || "NAME") + "` in the Token field, or start the server without a config file (development mode).",
      );
      $("token-row").hidden = false;
    } else {
      showError($("error"), `Could not get a token: ${e.message}`);
    }
  } finally {
    $("enter").disabled = false;
  }
});

$("composer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = $("text");
  const text = input.value;
  if (!text || !demo.sy) return;
  showError($("send-error"), "");
  input.value = "";
  try {
    await demo.sy.request("chat/send", { room: demo.room, text }, { timeoutMs: 10000 });
  } catch (e) {
    showError($("send-error"), `not sent: ${e.message}`);
    if (!input.value) input.value = text;
  }
});

$("leave").addEventListener("click", () => {
  demo.sy?.close();
  clearInterval(onlineTimer);
  $("chat").hidden = true;
  $("login").hidden = false;
  setStatus("idle", "not connected");
});

const params = new URLSearchParams(location.search);
if (params.get("name")) $("name").value = params.get("name");
if (params.get("room")) $("room").value = params.get("room");
