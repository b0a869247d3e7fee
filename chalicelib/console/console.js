// The operators' console: plain JavaScript, no build step, no third-party code.
// Every figure comes from the hub's operator API (/v1/ops/…, chalicelib/ops_api.py); every action
// there is recorded in the audit log. Text from the API is only ever set as textContent.
"use strict";

const BASE = location.pathname.replace(/console\/?$/, "");
const SESSION_KEY = "hub-operator-session";
const PKCE_KEY = "hub-operator-pkce";
const SVG_NS = "http://www.w3.org/2000/svg";
const CHINA_TIME = new Intl.DateTimeFormat("zh-CN", {timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit",
  day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
const REFRESH_MS = 1500;
const REFRESH_MAX = 40;  // a case page refreshes itself while a delivery is pending, at most this often

let session = null;
let refreshTimer = null;

// ---------------------------------------------------------------------------------------------
// small helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "dataset") { for (const [k, v] of Object.entries(value)) node.dataset[k] = v; }
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return CHINA_TIME.format(new Date(seconds * 1000)).replace(/\//g, "-");
}

function whenIso(text) {
  return text ? when(Date.parse(text) / 1000) : "";
}

function caseLink(caseId, label) {
  return el("a", {href: "#/cases/" + encodeURIComponent(caseId)}, label || caseId);
}

function caseOfKey(caseKey) {
  return caseKey ? caseKey.split("#")[0] : null;
}

function status(text, isError) {
  const node = document.getElementById("status");
  node.textContent = text || "";
  node.className = isError ? "status error" : "status";
}

function table(headers, rows, emptyText) {
  if (!rows.length) return el("p", {class: "empty"}, emptyText || "Nothing here.");
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {class: h.num ? "num" : null}, h.label || h)))),
    el("tbody", {}, rows));
}

function reasonForm(defaultReason, label, act) {
  // An action's reason is a snake_case code (no free text: nothing personal can enter the audit log).
  const input = el("input", {class: "reason", name: "reason", value: defaultReason, required: true,
    pattern: "[a-z][a-z0-9_]{0,63}", title: "a snake_case reason code", "aria-label": "reason"});
  const button = el("button", {type: "submit"}, label);
  return el("form", {class: "inline action", onsubmit: async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await act(input.value);
    } catch (error) {
      status(error.message, true);
      button.disabled = false;
    }
  }}, input, button);
}

// ---------------------------------------------------------------------------------------------
// the API and sign-in

class ApiError extends Error {
  constructor(httpStatus, body) {
    const error = (body && body.error) || {};
    super((error.message || "The hub answered " + httpStatus) + (error.code ? " (" + error.code + ")" : ""));
    this.status = httpStatus;
    this.code = error.code;
  }
}

async function api(method, path, body) {
  const headers = {"accept": "application/json"};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (session.auth === "token") {
    headers["hub-operator-token"] = session.token;
    headers["hub-operator"] = session.operator;
  } else {
    headers["authorization"] = session.idToken;
  }
  const response = await fetch(BASE + "v1/ops/" + path, {method, headers, cache: "no-store", credentials: "omit",
    body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) {
    signOut("Please sign in again.");
    throw new ApiError(401, data);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function saveSession(value) {
  session = value;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(value));
}

function signOut(message) {
  session = null;
  sessionStorage.removeItem(SESSION_KEY);
  document.getElementById("nav").hidden = true;
  document.getElementById("view").replaceChildren();
  showSignIn(message);
}

async function showSignIn(message) {
  document.getElementById("sign-in").hidden = false;
  document.getElementById("sign-in-error").textContent = message || "";
  const config = await fetch(BASE + "console/sign-in.json", {cache: "no-store"}).then((r) => r.json());
  if (config.auth === "cognito") {
    const button = document.getElementById("cognito-sign-in");
    button.hidden = false;
    button.onclick = () => cognitoRedirect(config);
  } else {
    document.getElementById("token-form").hidden = false;
  }
}

async function signedIn() {
  const who = await api("GET", "session");
  document.getElementById("sign-in").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("who").textContent = "signed in as " + who.operator_id;
  route();
}

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function redirectUri() {
  return location.origin + location.pathname;
}

async function cognitoRedirect(config) {
  // Authorization code with PKCE (RFC 7636) against the Cognito user pool's hosted sign-in.
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({verifier, state}));
  const query = new URLSearchParams({response_type: "code", client_id: config.client_id, redirect_uri: redirectUri(),
    scope: "openid", state, code_challenge: challenge, code_challenge_method: "S256"});
  location.assign(config.authorize_url + "?" + query);
}

async function cognitoReturn(config, params) {
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "{}");
  sessionStorage.removeItem(PKCE_KEY);
  history.replaceState(null, "", location.pathname + location.hash);
  if (!saved.state || saved.state !== params.get("state")) throw new Error("The sign-in answer did not match its request.");
  const response = await fetch(config.token_url, {method: "POST", credentials: "omit",
    headers: {"content-type": "application/x-www-form-urlencoded"},
    body: new URLSearchParams({grant_type: "authorization_code", client_id: config.client_id, code: params.get("code"),
      redirect_uri: redirectUri(), code_verifier: saved.verifier})});
  if (!response.ok) throw new Error("The identity provider refused the sign-in.");
  const tokens = await response.json();
  saveSession({auth: "cognito", idToken: tokens.id_token});
}

// ---------------------------------------------------------------------------------------------
// pages

const PAGES = {
  "overview": overviewPage,
  "holds": holdsPage,
  "overdue": overduePage,
  "dead-letters": deadLettersPage,
  "utilities": utilitiesPage,
  "risks": risksPage,
  "reconciliations": reconciliationsPage,
  "partners": partnersPage,
  "audit": auditPage,
  "actions": actionsPage,
  "cases": casePage,
  "relays": relayPage,
};

async function route() {
  if (!session) return;
  clearTimeout(refreshTimer);
  const [name, ...rest] = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
  const page = PAGES[name] || overviewPage;
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.getAttribute("href") === "#/" + name);
  }
  const view = document.getElementById("view");
  status("Loading…");
  try {
    const content = await page(...rest.map(decodeURIComponent));
    view.replaceChildren(...[content].flat());
    status("");
  } catch (error) {
    if (error.status !== 401) status(error.message, true);
  }
}

async function overviewPage() {
  const [holds, overdue, dead, utilities, risks, health, checkpoint] = await Promise.all([
    api("GET", "holds?limit=1000"), api("GET", "overdue?limit=1000"), api("GET", "dead-letters?limit=1000"),
    api("GET", "utilities?limit=1000"), api("GET", "risks?limit=1000"), api("GET", "partners/health"),
    api("GET", "audit/checkpoint").catch((error) => ({error}))]);
  const tile = (href, label, count) => el("a", {class: "tile" + (count ? " alert" : ""), href},
    el("div", {class: "count"}, count), el("div", {}, label));
  const troubled = health.partners.filter((p) => p.dead || p.retrying);
  return [
    el("h2", {}, "Overview"),
    el("div", {class: "tiles"},
      tile("#/overdue", "stages past their time limit", overdue.overdue.length),
      tile("#/holds", "payments and clearances held", holds.holds.length),
      tile("#/dead-letters", "dead letters", dead.dead_letters.length),
      tile("#/utilities", "failed utility transfers", utilities.utilities.length),
      tile("#/risks", "cases on the risk list", risks.risks.length),
      tile("#/partners", "partners failing deliveries", troubled.length)),
    el("h3", {}, "Latest audit checkpoint"),
    checkpoint.error ? el("p", {}, checkpoint.error.message) :
      el("p", {}, "Tree size ", el("strong", {}, checkpoint.tree_size), ", integrated ", whenIso(checkpoint.integrated_at),
        ". ", el("a", {href: "#/audit"}, "Details and proofs")),
  ];
}

async function holdsPage() {
  const [open, released] = await Promise.all([api("GET", "holds?state=open"), api("GET", "holds?state=released")]);
  return [
    el("h2", {}, "Payments and clearances held for review"),
    el("p", {class: "legend"}, "Releasing a hold closes it as reviewed and records who and why. It books no money: " +
      "a held payment is booked only when the platform sends a corrected result."),
    holdsTable(open.holds, true),
    el("h3", {}, "Released"),
    holdsTable(released.holds, false),
  ];
}

function holdsTable(holds, open) {
  return table(["case", "unit", "hold", "reason", "held at", open ? "release" : "released"], holds.map((hold) =>
    el("tr", {dataset: {hold: hold.hold_id}},
      el("td", {}, caseLink(hold.case_id)), el("td", {class: "mono"}, hold.unit_code),
      el("td", {class: "mono"}, hold.hold_id), el("td", {}, hold.reason), el("td", {}, when(hold.at)),
      el("td", {}, open ? reasonForm("reviewed_no_booking", "Release", async (reason) => {
        await api("POST", "holds/release", {case_id: hold.case_id, unit_code: hold.unit_code, hold_id: hold.hold_id, reason});
        status("Hold released.");
        route();
      }) : hold.released ? `${hold.released.by}: ${hold.released.reason} (${when(hold.released.at)})` : ""))),
    open ? "No open holds." : "None released yet.");
}

async function overduePage() {
  const {overdue} = await api("GET", "overdue");
  return [el("h2", {}, "Stages past their time limit"), table(
    ["subject", "stage", "responsible", "limit", "due", "detected", "alerted"], overdue.map((row) => el("tr", {},
      el("td", {}, row.case_id ? caseLink(row.case_id) : row.subject_key),
      el("td", {}, row.stage),
      el("td", {}, row.responsible_partner_id || row.responsible_kind || ""),
      el("td", {}, row.limit ? `${row.limit.value} ${row.limit.unit.replace("_", " ")}` : ""),
      el("td", {}, whenIso(row.due_at)), el("td", {}, when(row.detected_ts)), el("td", {}, when(row.alerted_ts)))),
    "No stage is late.")];
}

function replayForm(delivery, after) {
  return reasonForm("receiver_recovered", "Replay", async (reason) => {
    await api("POST", "dead-letters/" + encodeURIComponent(delivery) + "/replay", {reason});
    status("Replayed: the same webhook-id goes out again.");
    after();
  });
}

async function deadLettersPage() {
  const {dead_letters: dead} = await api("GET", "dead-letters");
  return [el("h2", {}, "Dead letters"), table(
    ["delivery (webhook-id)", "partner", "type", "attempts", "last error", "dead at", "case", "replay"],
    dead.map((item) => el("tr", {dataset: {delivery: item.delivery_id}},
      el("td", {class: "mono"}, item.delivery_id), el("td", {}, item.partner_id), el("td", {}, item.type),
      el("td", {class: "num"}, item.attempts), el("td", {}, item.last_error || ""), el("td", {}, when(item.dead_at)),
      el("td", {}, item.case_key ? caseLink(caseOfKey(item.case_key)) : ""),
      el("td", {}, item.replayable === false ? "nothing to deliver (no partner)" : replayForm(item.delivery_id, route)))),
    "No dead letters.")];
}

async function utilitiesPage() {
  const {utilities} = await api("GET", "utilities");
  return [el("h2", {}, "Utility transfers that failed"), table(
    ["case", "utility", "attempt", "request", "reason", "at", "retry"], utilities.map((row) => el("tr", {},
      el("td", {}, caseLink(row.case_id)), el("td", {}, row.utility), el("td", {class: "num"}, row.attempt),
      el("td", {class: "mono"}, row.request_id), el("td", {}, row.reason_code || ""), el("td", {}, when(row.at)),
      el("td", {}, reasonForm("arrears_settled", "Retry", async (reason) => {
        await api("POST", "utilities/retry", {case_id: row.case_id, unit_code: row.unit_code, utility: row.utility, reason});
        status("Retry sent: the next attempt goes to the utility.");
        route();
      })))), "No failed utility transfers.")];
}

async function risksPage() {
  const {risks} = await api("GET", "risks");
  return [el("h2", {}, "Cases that did not close their loop"), table(["case", "unit", "reason", "at"],
    risks.map((row) => el("tr", {}, el("td", {}, caseLink(row.case_id)), el("td", {class: "mono"}, row.unit_code),
      el("td", {}, row.reason), el("td", {}, when(row.at)))), "No case on the risk list.")];
}

async function reconciliationsPage(...key) {
  const {reports} = await api("GET", "reconciliations");
  const detail = el("div", {});
  const show = async (reportKey) => {
    const report = await api("GET", "reconciliations?report_key=" + encodeURIComponent(reportKey));
    detail.replaceChildren(el("h3", {}, reportKey), el("pre", {}, JSON.stringify(report, null, 2)));
  };
  return [el("h2", {}, "Daily settlement reconciliation"), table(
    ["platform", "day", "ok", "summary", ""], reports.map((row) => el("tr", {},
      el("td", {}, row.partner_id), el("td", {}, row.settlement_date), el("td", {}, row.ok ? "yes" : "NO"),
      el("td", {class: "mono"}, Object.entries(row.summary).map(([k, v]) => `${k} ${v}`).join(", ")),
      el("td", {}, el("button", {type: "button", onclick: () => show(row.report_key).catch((e) => status(e.message, true))},
        "Show")))), "No reports yet."), detail];
}

async function partnersPage() {
  const health = await api("GET", "partners/health");
  const ms = (value) => value === null ? "" : value;
  return [el("h2", {}, "Partner health"),
    el("p", {class: "legend"}, `Waiting and dead deliveries are counted in full; delivered ones and their latency ` +
      `(created → acknowledged) come from ${health.delivered_sample.read} delivered items` +
      (health.delivered_sample.complete ? " (all of them)." : " (a sample).")),
    table(["partner", "kind", "city", "waiting", "retrying", "oldest waiting (s)", "dead", "delivered",
      "after retries", {label: "p50 ms", num: true}, {label: "p95 ms", num: true}, {label: "max ms", num: true},
      "last error"], health.partners.map((p) => el("tr", {dataset: {partner: p.partner_id}},
      el("td", {}, p.partner_id), el("td", {}, p.kind), el("td", {}, p.city || ""),
      el("td", {class: "num"}, p.pending), el("td", {class: "num"}, p.retrying), el("td", {class: "num"}, ms(p.oldest_pending_s)),
      el("td", {class: "num" + (p.dead ? " state-dead" : "")}, p.dead), el("td", {class: "num"}, p.delivered),
      el("td", {class: "num"}, p.delivered_after_retry), el("td", {class: "num"}, ms(p.latency_ms.p50)),
      el("td", {class: "num"}, ms(p.latency_ms.p95)), el("td", {class: "num"}, ms(p.latency_ms.max)),
      el("td", {}, p.last_error || ""))))];
}

async function auditPage() {
  const result = el("div", {});
  let checkpoint;
  try {
    checkpoint = await api("GET", "audit/checkpoint");
  } catch (error) {
    if (error.status === 401) throw error;
    checkpoint = null;
    result.append(el("p", {}, error.message));
  }
  const input = el("input", {name: "ref", placeholder: "event, delivery or action id", required: true, size: 40});
  const prove = el("form", {class: "inline", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const proof = await api("GET", "audit/" + encodeURIComponent(input.value.trim()));
      result.replaceChildren(el("h3", {}, "Inclusion proof"), el("pre", {}, JSON.stringify(proof, null, 2)),
        el("p", {class: "legend"}, "Save it and check it offline: python tools/verify_audit.py (see README)."));
    } catch (error) {
      status(error.message, true);
    }
  }}, input, el("button", {type: "submit"}, "Prove inclusion"));
  return [el("h2", {}, "Audit log"),
    checkpoint ? [el("p", {}, `Tree size ${checkpoint.tree_size}, integrated ${whenIso(checkpoint.integrated_at)}. ` +
      `Verifier key: `, el("code", {}, checkpoint.verifier_key)), el("pre", {id: "checkpoint"}, checkpoint.checkpoint)] : [],
    prove, result];
}

async function actionsPage() {
  const {actions} = await api("GET", "actions");
  return [el("h2", {}, "Operator actions (newest first)"), table(["at", "operator", "action", "on", "reason", "action id"],
    actions.map((a) => el("tr", {}, el("td", {}, when(a.at)), el("td", {}, a.details.operator_id),
      el("td", {}, a.details.action), el("td", {class: "mono"}, a.details.target_ref), el("td", {}, a.details.reason || ""),
      el("td", {class: "mono"}, a.action_id))), "No operator action yet.")];
}

// ---------------------------------------------------------------------------------------------
// a case: lanes

async function casePage(caseId) {
  const detail = await api("GET", "cases/" + encodeURIComponent(caseId));
  const content = [];
  let pending = false;
  for (const one of detail.cases) {
    content.push(caseSection(one));
    pending = pending || one.timeline.some((t) => t.direction === "out" && t.state === "pending");
  }
  scheduleRefresh(pending);
  return content;
}

async function relayPage(relayId) {
  const detail = await api("GET", "relays/" + encodeURIComponent(relayId));
  const relay = detail.relay;
  return el("section", {class: "case", dataset: {relay: relay.relay_id}},
    el("h2", {}, `Relay ${relay.relay_id} · ${relay.service} · ${relay.state}`),
    el("p", {class: "mono"}, relay.unit_code),
    lanesFigure({timeline: detail.timeline, agencies: detail.agencies, clocks: [], holds: [], now: detail.now}),
    timelineTable(detail.timeline));
}

function scheduleRefresh(pending) {
  // While a delivery of the case is on its way, look again shortly (bounded).
  const count = Number(sessionStorage.getItem("refresh-count") || 0);
  if (pending && count < REFRESH_MAX) {
    sessionStorage.setItem("refresh-count", String(count + 1));
    refreshTimer = setTimeout(route, REFRESH_MS);
  } else {
    sessionStorage.setItem("refresh-count", "0");
  }
}

function caseSection(detail) {
  const c = detail.case;
  return el("section", {class: "case", dataset: {case: c.case_id, unit: c.unit_code}},
    el("h2", {}, `Case ${c.case_id} · ${c.flow} · ${c.stage || ""}`),
    el("p", {}, el("span", {class: "mono"}, c.unit_code), "  ", c.service ? `service ${c.service}` : "",
      c.city ? ` · city ${c.city}` : ""),
    lanesFigure(detail),
    el("h3", {}, "Messages in and out"), timelineTable(detail.timeline),
    el("h3", {}, "Stages and their time limits"), clocksTable(detail.clocks),
    el("h3", {}, "Holds"), holdsTable(detail.holds.map((h) => ({...h, case_id: c.case_id, unit_code: c.unit_code}))
      .filter((h) => !h.released), true),
    detail.holds.some((h) => h.released) ? holdsTable(detail.holds.filter((h) => h.released)
      .map((h) => ({...h, case_id: c.case_id, unit_code: c.unit_code})), false) : null,
    c.utilities && Object.keys(c.utilities).length ? [el("h3", {}, "Utilities"), utilitiesTable(c)] : null,
    el("h3", {}, "Summary"), el("pre", {class: "summary"}, JSON.stringify(summaryOf(c), null, 2)));
}

function summaryOf(view) {
  const shown = {...view};
  delete shown.utilities;
  return shown;
}

function timelineTable(timeline) {
  return table(["at", "direction", "partner", "type", "state", "attempts", "reference", ""], timeline.map((t) =>
    el("tr", {class: "message-row", dataset: {ref: t.ref, state: t.state || "accepted"}},
      el("td", {}, when(t.at)), el("td", {}, t.direction === "in" ? "in ←" : "out →"), el("td", {}, t.partner_id),
      el("td", {}, t.type), el("td", {class: t.state ? "state-" + t.state : ""}, t.state || "accepted"),
      el("td", {class: "num"}, t.attempts ?? ""), el("td", {class: "mono"}, t.ref),
      el("td", {}, t.state === "dead" ? replayForm(t.ref, route) : ""))), "No message yet.");
}

function clocksTable(clocks) {
  return table(["stage", "responsible", "limit", "started", "due", "stopped", "state"], clocks.map((k) =>
    el("tr", {class: k.overdue ? "state-dead" : ""},
      el("td", {}, k.stage + (k.instance ? ` (${k.instance})` : "")),
      el("td", {}, k.responsible_partner_id || k.responsible_kind),
      el("td", {}, `${k.limit.value} ${k.limit.unit.replace("_", " ")}`), el("td", {}, when(k.started_ts)),
      el("td", {}, when(k.due_ts)), el("td", {}, when(k.stopped_ts)),
      el("td", {}, k.overdue ? "overdue" : k.state))), "No stage clock.");
}

function utilitiesTable(view) {
  return table(["utility", "state", "attempt", "request", "reason", ""], Object.entries(view.utilities).map(([name, u]) =>
    el("tr", {}, el("td", {}, name), el("td", {}, u.state), el("td", {class: "num"}, u.attempt),
      el("td", {class: "mono"}, u.request_id), el("td", {}, u.reason_code || ""),
      el("td", {}, u.state === "failed" ? reasonForm("arrears_settled", "Retry", async (reason) => {
        await api("POST", "utilities/retry", {case_id: view.case_id, unit_code: view.unit_code, utility: name, reason});
        route();
      }) : ""))));
}

// The time axis: every moment that matters (messages, clock starts, dues and stops, holds, now),
// spaced by the logarithm of the gap, so seconds between messages and days to a due date both show.
function timeAxis(moments, left, minWidth) {
  const sorted = [...new Set(moments.filter((m) => m !== null && m !== undefined))].sort((a, b) => a - b);
  const xs = new Map();
  let x = left;
  sorted.forEach((moment, i) => {
    if (i > 0) x += Math.max(18, 26 * Math.log10(1 + (moment - sorted[i - 1])));
    xs.set(moment, x);
  });
  const span = x - left;
  const stretch = span > 0 && span < minWidth - left ? (minWidth - left) / span : 1;
  const at = (moment) => left + ((xs.get(moment) ?? left) - left) * stretch;
  return {sorted, at, right: left + span * stretch};
}

function lanesFigure(detail) {
  const LABEL = 170, LANE = 70, TOP = 14, AXIS = 44;
  const now = detail.now;
  const holds = detail.holds || [];
  const moments = [now, ...detail.timeline.map((t) => t.at)];
  for (const k of detail.clocks) moments.push(k.started_ts, k.due_ts, k.stopped_ts);
  for (const h of holds) moments.push(h.at, h.released && h.released.at);
  // as wide as the page allows (the widest labels, a clock's limit, need ~220 px past the last moment)
  const available = Math.max(900, (document.getElementById("view").clientWidth || 1200) - 40);
  const axis = timeAxis(moments, LABEL + 24, available - 220);
  const width = Math.ceil(axis.right + 220);
  const agencies = detail.agencies;
  const height = TOP + LANE * (agencies.length + 1) + AXIS;
  const laneY = new Map([["hub", TOP + LANE / 2]]);
  agencies.forEach((a, i) => laneY.set(a.partner_id, TOP + LANE * (i + 1) + LANE / 2));
  const hubY = laneY.get("hub");

  const root = svg("svg", {class: "lanes", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "the case as lanes, one per agency, on a time axis"});
  root.append(svg("defs", {},
    ["in", "out"].map((d) => svg("marker", {id: "arrow-" + d, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
      markerHeight: 7, orient: "auto-start-reverse"}, svg("path", {d: "M0,0 L10,5 L0,10 z", fill: d === "in" ? "#2f6fb3" : "#2e8555"})))));

  const laneBox = (group, y, label, kind) => {
    group.append(svg("rect", {class: "lane-bg", x: 0, y: y - LANE / 2, width, height: LANE}),
      svg("text", {class: "lane-label", x: 8, y: y - 4}, label), svg("text", {class: "lane-kind", x: 8, y: y + 12}, kind));
  };
  const hub = svg("g", {class: "hub-lane", dataset: {agency: "hub"}});
  laneBox(hub, hubY, "hub", "registration hub");
  root.append(hub);

  const groups = new Map();
  for (const agency of agencies) {
    const group = svg("g", {class: "lane", dataset: {agency: agency.partner_id, kind: agency.kind}});
    laneBox(group, laneY.get(agency.partner_id), agency.partner_id, agency.kind + (agency.city ? " · " + agency.city : ""));
    groups.set(agency.partner_id, group);
    root.append(group);
  }

  // the stages' clocks, on the lane of the agency that answers for them
  const laneOfClock = (k) => k.responsible_partner_id && groups.has(k.responsible_partner_id) ? k.responsible_partner_id :
    (agencies.find((a) => a.kind === k.responsible_kind) || {}).partner_id;
  for (const k of detail.clocks) {
    const lane = laneOfClock(k);
    const group = lane ? groups.get(lane) : hub;
    const y = (lane ? laneY.get(lane) : hubY) + LANE / 2 - 12;
    const x0 = axis.at(k.started_ts), x1 = axis.at(k.stopped_ts ?? now), xd = axis.at(k.due_ts);
    const state = k.overdue ? "overdue" : k.state;
    group.append(svg("g", {class: "clock " + state, dataset: {stage: k.stage}},
      svg("title", {}, `${k.stage}: limit ${k.limit.value} ${k.limit.unit}, due ${when(k.due_ts)}` +
        (k.stopped_ts ? `, answered ${when(k.stopped_ts)}` : ", running")),
      svg("rect", {class: "bar", x: x0, y, width: Math.max(2, x1 - x0), height: 7, rx: 2}),
      svg("line", {class: "due", x1: xd, x2: xd, y1: y - 8, y2: y + 9}),
      svg("text", {x: xd + 3, y: y - 1}, `${k.stage} ≤ ${k.limit.value} ${k.limit.unit.replace("_", " ")}`)));
  }

  // every message: in (agency → hub) or out (hub → agency), at its time
  detail.timeline.forEach((t, i) => {
    const group = groups.get(t.partner_id) || hub;
    const y = laneY.get(t.partner_id) ?? hubY;
    const x = axis.at(t.at);
    const state = t.direction === "in" ? "accepted" : t.state;
    const [from, to] = t.direction === "in" ? [y, hubY + (y > hubY ? 6 : -6)] : [hubY, y + (y > hubY ? -6 : 6)];
    group.append(svg("g", {class: `message ${t.direction} ${state}`, dataset: {ref: t.ref, type: t.type, state}},
      svg("title", {}, `${t.direction === "in" ? "in" : "out"} · ${t.type} · ${t.partner_id} · ${when(t.at)} · ${state}` +
        (t.attempts ? ` · ${t.attempts} attempt(s)` : "")),
      svg("line", {x1: x, x2: x, y1: from, y2: to, "marker-end": `url(#arrow-${t.direction})`}),
      svg("circle", {cx: x, cy: y, r: 5}),
      svg("text", {x: x + 4, y: y - 8 - (i % 2) * 11}, t.type)));
  });

  for (const h of holds) {
    const x = axis.at(h.at);
    hub.append(svg("g", {class: "hold" + (h.released ? " released" : ""), dataset: {hold: h.hold_id}},
      svg("title", {}, `hold ${h.hold_id}: ${h.reason}` + (h.released ? `, released by ${h.released.by} (${h.released.reason})` : "")),
      svg("path", {d: `M${x},${hubY - 9} L${x + 7},${hubY} L${x},${hubY + 9} L${x - 7},${hubY} z`})));
  }

  // the axis, and now
  const axisY = TOP + LANE * (agencies.length + 1) + 6;
  const ticks = svg("g", {class: "axis"}, svg("line", {x1: LABEL, x2: width, y1: axisY, y2: axisY}));
  let lastLabel = -Infinity;
  for (const moment of axis.sorted) {
    const x = axis.at(moment);
    ticks.append(svg("line", {x1: x, x2: x, y1: axisY, y2: axisY + 5}));
    if (x - lastLabel > 78) {
      const [day, time] = when(moment).split(" ");
      ticks.append(svg("text", {x: x - 22, y: axisY + 17}, time), svg("text", {x: x - 26, y: axisY + 29}, day));
      lastLabel = x;
    }
  }
  root.append(ticks, svg("line", {class: "now", x1: axis.at(now), x2: axis.at(now), y1: TOP, y2: axisY},
    svg("title", {}, "now")));

  return el("figure", {class: "lanes-figure"},
    el("div", {class: "legend"}, el("span", {}, "in: agency → hub (blue)"),
      el("span", {}, "out: hub → agency (green delivered, amber waiting, red dead)"),
      el("span", {}, "bars: a stage's clock, dashed: its time limit"), el("span", {}, "◆ hold")),
    el("div", {class: "lanes-wrap"}, root));
}

// ---------------------------------------------------------------------------------------------
// start

async function start() {
  window.addEventListener("hashchange", () => { sessionStorage.setItem("refresh-count", "0"); route(); });
  document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
  document.getElementById("case-search").addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = "#/cases/" + encodeURIComponent(event.target.case_id.value.trim());
  });
  document.getElementById("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    saveSession({auth: "token", operator: form.operator.value.trim(), token: form.token.value});
    form.token.value = "";
    try {
      await signedIn();
    } catch (error) {
      if (error.status !== 401) signOut(error.message);
      else document.getElementById("sign-in-error").textContent = "The token or operator id was not accepted.";
    }
  });
  const params = new URLSearchParams(location.search);
  try {
    if (params.get("code")) {
      const config = await fetch(BASE + "console/sign-in.json", {cache: "no-store"}).then((r) => r.json());
      await cognitoReturn(config, params);
    }
    session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    if (session) await signedIn();
    else await showSignIn();
  } catch (error) {
    if (error.status !== 401) signOut(error.message);
  }
}

start();
