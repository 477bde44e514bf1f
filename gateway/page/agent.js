// The agent card: reads the 360 through the service and follows its flags live (SSE over fetch, so the
// bearer token travels in a header, never in a URL). The token comes in the URL fragment: #token=...
"use strict";
const params = new URLSearchParams(location.hash.slice(1));
const token = params.get("token") || sessionStorage.getItem("ls.token") || "";
if (token) sessionStorage.setItem("ls.token", token);
history.replaceState(null, "", location.pathname + location.search);  // the token leaves the address bar
const $ = (id) => document.getElementById(id);
const auth = { Authorization: "Bearer " + token };
let current = null, stream = null, lastEventId = "";
const flags = new Map();

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}
const when = (ms) => new Date(ms).toLocaleString();

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...auth, ...(options.headers || {}) } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail || body.title || res.statusText);
  return body;
}

async function openCustomer(key) {
  $("message").textContent = "";
  try {
    const doc = await api("/v1/customers/" + encodeURIComponent(key) + "?timeline=20");
    current = doc.customer;
    render(doc);
    follow(key, doc.stream_id || "");  // from where the 360 was read: no flag raised since is missed
  } catch (err) {
    $("card").hidden = true;
    $("message").textContent = err.message;
  }
}

// The context carried, readable at a glance: "chat on chat about billing, escalated, 3 min ago".
function contextText(ctx) {
  const type = ctx.type || "contact";  // "chat on chat" when the type names the channel (break-test 12h, H8)
  const on = ctx.channel && ctx.channel !== type ? " on " + ctx.channel : "";
  const parts = [type + on + (ctx.topic ? " about " + ctx.topic : "")];
  if (ctx.outcome) parts.push(ctx.outcome);
  if (ctx.minutes_ago !== undefined && ctx.minutes_ago !== null) parts.push(ctx.minutes_ago + " min ago");
  return parts.join(", ");
}

function render(doc) {
  $("card").hidden = false;
  const attrs = (doc.identity && doc.identity.attributes) || {};
  $("who-name").textContent = attrs.name || doc.customer;
  const viaIds = (doc.identity && doc.identity.ids_via) || {};  // named only by a linked profile (break-test 12h, H8)
  const idText = (k, x) => ((viaIds[k] || []).includes(x) ? x + " (via linked identifier, not identified)" : x);
  const ids = Object.entries((doc.identity && doc.identity.ids) || {})
    .map(([k, v]) => k + ": " + v.map((x) => idText(k, x)).join(", "));
  $("who-ids").textContent = ids.join(" · ") + " · " + (doc.access ? doc.access.why : "");
  showMood(doc.future && doc.future.mood);
  const present = doc.present || {};
  $("why-now").replaceChildren(...(present.why_now ? [present.why_now.detail, via(present.why_now.via)]
    : ["No open reason found"]));
  const ctx = present.context_carried;
  $("context").replaceChildren(...(ctx ? ["Context carried: " + contextText(ctx), via(ctx.via)] : []));
  flags.clear();
  for (const [name, f] of Object.entries(present.active_flags || {})) flags.set(name, { flag: name, ...f });
  renderFlags();
  renderActions(doc.future && doc.future.next_best_actions);
  $("timeline").replaceChildren(...(doc.timeline || []).map((e) => el("li", {}, el("time", {}, when(e.t)), e.s,
    via(e.via))));
}

// What came from a device or cookie the customer once used, not from the customer's own identified contacts:
// anyone holding that device id or a copy of the cookie may have written it (break-test 12f, F7).
const VIA_WORDS = { device_id: "device", cookie_id: "cookie", email: "e-mail address", phone: "phone number" };
function via(kind) {
  if (!kind) return "";
  return el("span", { class: "via", title: "not identified: came from a linked " + (VIA_WORDS[kind] || kind) },
    " via " + (VIA_WORDS[kind] || kind) + ", not identified");
}

function showMood(mood) {
  $("mood").textContent = mood ? "Mood: " + moodWord(mood.last) + " (trend " + (mood.trend ?? "–") + ")" : "Mood: unknown";
}

function moodWord(v) {
  if (v === undefined || v === null) return "unknown";
  return v <= -0.3 ? "upset" : v >= 0.3 ? "happy" : "neutral";
}

function renderFlags(fresh) {
  const items = [...flags.values()].map((f) => {
    const li = el("li", { "data-flag": f.flag, class: f.flag === fresh ? "new" : "" },
      el("span", { class: "sev " + (f.severity || "info") }, f.severity || "info"), el("strong", {}, f.flag), " ",
      f.reason || "", el("div", { class: "evidence" }, "Evidence: " + (f.evidence || []).join(", ")),
      verdict("flag", f.flag_id || f.id, "relevant", "Relevant"), " ",
      verdict("flag", f.flag_id || f.id, "not_relevant", "Not relevant"));
    return li;
  });
  $("flags").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "No flags")]));
}

function renderActions(nba) {
  const ranked = (nba && nba.ranked) || [];
  const items = ranked.map((a) => el("li", { "data-action": a.action }, el("strong", {}, a.action), " ",
    el("span", { class: "muted" }, a.reason || ""), " ",
    verdict("action", nba.decision_id, "accept", "Accept", a.action), " ",
    verdict("action", nba.decision_id, "reject", "Reject", a.action),
    // "not relevant" teaches the offer that was sent: only that action has it
    ...(nba.sent && a.action === nba.chosen
      ? [" ", verdict("action", nba.decision_id, "not_relevant", "Not relevant", a.action)] : [])));
  $("actions").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "No action proposed yet")]));
}

function verdict(target, targetId, value, label, action) {
  const button = el("button", { type: "button", "data-verdict": value }, label);
  const key = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now());
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api("/v1/customers/" + encodeURIComponent(current) + "/feedback", {
        method: "POST", headers: { "Content-Type": "application/json", "Idempotency-Key": key },
        body: JSON.stringify({ target, target_id: targetId, verdict: value, action }),
      });
      button.parentElement.append(el("span", { class: "done" }, " ✓ " + label));
    } catch (err) {
      button.disabled = false;
      $("message").textContent = err.message;
    }
  });
  return button;
}

async function follow(key, from) {
  if (stream) stream.abort();
  const controller = new AbortController();
  stream = controller;
  lastEventId = from;
  let delay = 500;
  while (!controller.signal.aborted) {
    try {
      const headers = { ...auth };
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      const res = await fetch("/v1/push?customer=" + encodeURIComponent(key), { headers, signal: controller.signal });
      if (res.status === 401 || res.status === 403) {
        // refused, not failed: retrying cannot help (token expired, contact ended) and each try is an audited denial
        setLive(false);
        $("live").textContent = "stopped";
        $("message").textContent = res.status === 401
          ? "Live updates stopped: your token expired; sign in again."
          : "Live updates stopped: this customer is no longer yours.";
        return;
      }
      if (!res.ok) throw new Error("push " + res.status);
      setLive(true);
      delay = 500;
      await readEvents(res.body.getReader(), controller);
    } catch (err) {
      if (controller.signal.aborted) return;
    }
    setLive(false);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
  }
}

async function readEvents(reader, controller) {
  const decoder = new TextDecoder();
  let buffer = "";
  while (!controller.signal.aborted) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = { type: "message", data: "", id: "" };
      for (const line of block.split("\n")) {
        const [field, ...rest] = line.split(":");
        const v = rest.join(":").replace(/^ /, "");
        if (field === "event") event.type = v; else if (field === "data") event.data += v; else if (field === "id") event.id = v;
      }
      if (event.id) lastEventId = event.id;
      onEvent(event);
    }
  }
}

function onEvent(event) {
  if (event.type === "flag") {
    const { flag } = JSON.parse(event.data);
    if (flag.state === "cleared") flags.delete(flag.flag); else flags.set(flag.flag, flag);
    renderFlags(flag.flag);
  } else if (event.type === "mood") {
    showMood(JSON.parse(event.data).mood);
  } else if (event.type === "actions") {
    renderActions(JSON.parse(event.data).next_best_actions);
  } else if (event.type === "reset") {
    openCustomer(current);
  }
}

function setLive(on) {
  $("live").textContent = on ? "live" : "offline";
  $("live").className = "live " + (on ? "on" : "off");
}

$("open").addEventListener("submit", (e) => { e.preventDefault(); openCustomer($("customer").value.trim()); });
const initial = params.get("customer") || new URLSearchParams(location.search).get("customer");
if (initial) { $("customer").value = initial; openCustomer(initial); }
if (!token) $("message").textContent = "No token: open this page with #token=<a token from livesignals token>.";
