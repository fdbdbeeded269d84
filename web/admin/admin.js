// The admin page served at "/admin": handler modules (GET /admin/modules, POST /admin/reload),
// connected clients (GET /api/clients, DELETE /api/clients/{id}) and the counters of
// GET /metrics. The API key (or an admin JWT) is asked once and kept in sessionStorage.
const $ = (id) => document.getElementById(id);
const KEY = "switchyard.apiKey";
const PER_PAGE = 50;
const REFRESH_MS = 5000;

let page = 1;
let timer = 0;

class Unauthorized extends Error {}

/** Every call carries X-Api-Key; an admin JWT (three dot-separated parts) also rides as
 * Authorization: Bearer, the header the server checks JWTs in. */
async function api(method, path) {
  const key = sessionStorage.getItem(KEY) || "";
  const headers = { "X-Api-Key": key, Accept: "application/json" };
  if (key.split(".").length === 3) headers.Authorization = `Bearer ${key}`;
  const r = await fetch(path, { method, headers, cache: "no-store" });
  if (r.status === 401) throw new Unauthorized("the server refused this key (401)");
  const text = await r.text();
  if (!r.ok) {
    let msg = text;
    try {
      msg = JSON.parse(text).error || text;
    } catch {}
    throw new Error(`${method} ${path}: ${r.status} ${msg}`);
  }
  return path === "/metrics" ? text : JSON.parse(text);
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

function when(secs) {
  if (!secs) return "";
  return new Date(secs * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
}

function showError(e) {
  if (e instanceof Unauthorized) return logout(e.message);
  $("error").textContent = e.message;
  $("error").hidden = false;
}

// ---- modules ------------------------------------------------------------------------------------

function renderModules(status) {
  $("manifest").textContent = status.manifest || "";
  $("manifest-error").textContent = status.manifest_error ? `manifest error: ${status.manifest_error}` : "";
  $("manifest-error").hidden = !status.manifest_error;
  $("modules").tBodies[0].replaceChildren(
    ...(status.modules || []).map((m) =>
      el(
        "tr",
        { dataset: { module: m.name } },
        el("td", {}, el("b", { textContent: m.name }), el("div", { className: "muted mono", textContent: m.path || "" })),
        el("td", { textContent: m.instance || "" }),
        el("td", { className: "num generation", textContent: String(m.generation ?? "") }),
        el("td", { className: "mono", title: m.hash || "", textContent: m.hash ? m.hash.slice(0, 12) + "…" : "—" }),
        el("td", { textContent: when(m.loaded_at) }),
        el("td", {}, ...(m.routes || []).map((r) => el("span", { className: "tag", textContent: r }))),
        el(
          "td",
          { className: m.last_error ? "error" : "muted" },
          m.last_error ? `${m.last_error}${m.last_error_at ? ` (${when(m.last_error_at)})` : ""}` : "—",
          m.penalized_until_ms > Date.now() ? el("div", { className: "error", textContent: "throttled: a call ran into its deadline" }) : null,
        ),
      ),
    ),
  );
}

async function loadModules() {
  renderModules(await api("GET", "/admin/modules"));
}

async function reload() {
  const b = $("reload");
  b.disabled = true;
  try {
    const status = await api("POST", "/admin/reload");
    renderModules(status);
    const bad = (status.modules || []).filter((m) => m.last_error).length;
    $("reload-result").textContent = `reloaded at ${new Date().toLocaleTimeString()}: ${status.modules.length} modules` +
      (bad ? `, ${bad} with errors` : "") + (status.manifest_error ? ", manifest error" : "");
    $("reload-result").hidden = false;
  } catch (e) {
    showError(e);
  } finally {
    b.disabled = false;
  }
}

// ---- clients ------------------------------------------------------------------------------------

async function loadClients() {
  const r = await api("GET", `/api/clients?page=${page}&per_page=${PER_PAGE}`);
  const pages = Math.max(1, Math.ceil(r.total / r.per_page));
  if (page > pages && r.total > 0) {
    page = pages;
    return loadClients();
  }
  $("clients-total").textContent = `(${r.total} online)`;
  $("page").textContent = `page ${r.page} of ${pages}`;
  $("prev").disabled = r.page <= 1;
  $("next").disabled = r.page >= pages;
  $("clients-empty").hidden = r.clients.length > 0;
  $("clients").tBodies[0].replaceChildren(
    ...r.clients.map((c) =>
      el(
        "tr",
        { dataset: { client: c.id } },
        el("td", { className: "mono", textContent: c.id }),
        el("td", { textContent: c.user || "(guest)" }),
        el("td", {}, ...(c.tags || []).map((t) => el("span", { className: "tag", textContent: t }))),
        el("td", { title: `last heartbeat ${when(c.last_heartbeat)}`, textContent: when(c.connected_at) }),
        el("td", { className: "mono", title: c.user_agent || "", textContent: c.ip || "" }),
        el("td", {}, el("button", { type: "button", className: "danger kick", textContent: "Kick", onclick: () => kick(c.id) })),
      ),
    ),
  );
}

async function kick(id) {
  try {
    await api("DELETE", `/api/clients/${encodeURIComponent(id)}`);
  } catch (e) {
    showError(e);
  }
  await refresh();
}

// ---- metrics ------------------------------------------------------------------------------------

/** Prometheus text exposition -> [{name, type, help, value}] (labelled samples keep their labels). */
export function parseMetrics(text) {
  const meta = {};
  const rows = [];
  for (const line of text.split("\n")) {
    const m = line.match(/^# (HELP|TYPE) (\S+) ?(.*)$/);
    if (m) {
      (meta[m[2]] ||= {})[m[1] === "HELP" ? "help" : "type"] = m[3];
      continue;
    }
    const s = line.match(/^([A-Za-z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/);
    if (s) rows.push({ name: s[1] + (s[2] || ""), base: s[1], value: s[3] });
  }
  return rows.map((r) => ({ ...r, type: meta[r.base]?.type || "", help: meta[r.base]?.help || "" }));
}

async function loadMetrics() {
  const rows = parseMetrics(await api("GET", "/metrics"));
  $("metrics").tBodies[0].replaceChildren(
    ...rows.map((r) =>
      el(
        "tr",
        { dataset: { metric: r.name } },
        el("td", { className: "mono", textContent: r.name.replace(/^switchyard_/, "") }),
        el("td", { className: "muted", textContent: r.type }),
        el("td", { className: "num", textContent: Number.isFinite(+r.value) ? Number(r.value).toLocaleString() : r.value }),
        el("td", { className: "muted", textContent: r.help }),
      ),
    ),
  );
}

// ---- page ---------------------------------------------------------------------------------------

async function refresh() {
  try {
    await Promise.all([loadClients(), loadMetrics()]);
    $("error").hidden = true;
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    showError(e);
  }
}

async function start() {
  $("login").hidden = true;
  $("panel").hidden = false;
  $("logout").hidden = false;
  try {
    await loadModules();
  } catch (e) {
    return showError(e);
  }
  await refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

function logout(message = "") {
  clearInterval(timer);
  sessionStorage.removeItem(KEY);
  $("panel").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("login-error").hidden = !message;
  $("key").value = "";
  $("key").focus();
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  start();
});
$("logout").addEventListener("click", () => logout());
$("reload").addEventListener("click", reload);
$("prev").addEventListener("click", () => { page = Math.max(1, page - 1); refresh(); });
$("next").addEventListener("click", () => { page++; refresh(); });

if (sessionStorage.getItem(KEY)) start();
else logout();
