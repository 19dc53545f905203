// The Holidapp dashboard: plain JavaScript over the public HTTP API, no framework, no build step.
// Views are chosen by the URL's fragment (#/, #/jobs?..., #/jobs/{id}); live updates come from
// GET /events, read with fetch so that the API token can go in a header.
"use strict";

const BASE = document.querySelector('meta[name="holidapp-base"]').content;
const TOKEN_KEY = "holidapp-token";
const STATUSES = ["submitted", "in progress", "complete", "failed", "cancelled"];
const PAGE = 25;

const view = document.getElementById("view");
const message = document.getElementById("message");
const live = document.getElementById("live");
const tokenForm = document.getElementById("token-form");
const tokenInput = document.getElementById("token");

// ---- small helpers -------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function statusClass(status) {
  return "status status-" + String(status).replace(/\s+/g, "-");
}

function when(value) {
  if (!value) return "";
  const date = new Date(value);
  return isNaN(date) ? String(value) : date.toLocaleString();
}

function say(text, kind) {
  message.textContent = text;
  message.className = kind || "";
  message.hidden = !text;
}

// ---- the API -------------------------------------------------------------------------------

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token()) h["Authorization"] = "Bearer " + token();
  return h;
}

class ApiError extends Error {
  constructor(status, code, text) {
    super(text);
    this.status = status;
    this.code = code;
  }
}

// Calls the API; answers the response, or throws an ApiError carrying the common error shape.
async function call(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(BASE + path, init);
  if (response.ok) return response;
  let code = "error", text = response.status + " " + response.statusText;
  try {
    const answer = await response.json();
    if (answer && answer.error) {
      code = answer.error.code || code;
      text = answer.error.message || text;
    }
  } catch (_) { /* not JSON */ }
  if (response.status === 401) askForToken();
  throw new ApiError(response.status, code, text);
}

async function getJson(path) {
  return (await call("GET", path)).json();
}

function askForToken() {
  tokenForm.hidden = false;
  tokenInput.focus();
}

tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const value = tokenInput.value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  tokenInput.value = "";
  tokenForm.hidden = true;
  say("");
  restartEvents();
  route();
});
document.getElementById("token-forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  tokenInput.value = "";
  tokenForm.hidden = true;
  restartEvents();
});
document.getElementById("token-button").addEventListener("click", () => {
  tokenForm.hidden = !tokenForm.hidden;
  if (!tokenForm.hidden) tokenInput.focus();
});

// ---- live events ---------------------------------------------------------------------------

const listeners = new Set();
let lastEventId = "";
let eventsAbort = null;

function onEvent(listener) {
  listeners.add(listener);
}

function restartEvents() {
  if (eventsAbort) eventsAbort.abort();
  followEvents();
}

// Reads GET /events as Server-Sent Events with fetch, resuming after the last event seen.
async function followEvents() {
  const abort = new AbortController();
  eventsAbort = abort;
  while (!abort.signal.aborted) {
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (lastEventId) h["Last-Event-ID"] = lastEventId;
      const response = await fetch(BASE + "/events", { headers: h, signal: abort.signal });
      if (response.status === 401) { askForToken(); setLive(false); return; }
      if (!response.ok || !response.body) throw new Error("events answered " + response.status);
      setLive(true);
      await readStream(response.body.getReader());
    } catch (_) {
      if (abort.signal.aborted) return;
    }
    setLive(false);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function readStream(reader) {
  const decoder = new TextDecoder();
  let buffer = "";
  let kind = "message", data = [], id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(buffer[end] === "\r" && buffer[end + 1] === "\n" ? end + 2 : end + 1);
      if (line === "") {
        if (id !== null) lastEventId = id;
        if (kind === "job" && data.length) {
          try {
            const event = JSON.parse(data.join("\n"));
            for (const listener of listeners) listener(event);
          } catch (_) { /* a malformed event is skipped */ }
        }
        kind = "message"; data = []; id = null;
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") kind = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
  }
}

function setLive(on) {
  live.textContent = on ? "live" : "offline";
  live.className = on ? "live" : "live off";
}

// Every job row and job page on screen follows its job's events.
onEvent((event) => {
  for (const cell of document.querySelectorAll('[data-job="' + CSS.escape(event.job) + '"] .status')) {
    cell.textContent = event.status;
    cell.className = statusClass(event.status);
  }
  const feed = document.getElementById("events");
  if (feed) {
    feed.prepend(el("li", {},
      el("span", { class: "mono" }, when(event.at)), " ",
      el("a", { href: "#/jobs/" + encodeURIComponent(event.job), class: "mono" }, event.job.slice(0, 8)),
      " ", event.kind, "@", event.queue, " → ", el("span", { class: statusClass(event.status) }, event.status),
      event.worker ? " by " + event.worker : ""));
    while (feed.children.length > 50) feed.lastChild.remove();
  }
  scheduleRefresh();
});

// Refreshes what the current view draws from counts, at most once a second.
let refreshTimer = null;
let refreshView = null;
function scheduleRefresh() {
  if (refreshTimer || !refreshView) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    if (refreshView) refreshView().catch(() => {});
  }, 1000);
}

// ---- views ---------------------------------------------------------------------------------

function sparkline(rates) {
  const width = 160, height = 28;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  const base = document.createElementNS(svg.namespaceURI, "line");
  base.setAttribute("x1", 0); base.setAttribute("x2", width);
  base.setAttribute("y1", height - 1); base.setAttribute("y2", height - 1);
  svg.append(base);
  if (rates.length > 1) {
    const values = rates.map((r) => r.completed_per_s + r.failed_per_s);
    const top = Math.max(...values, 1);
    const points = values.map((v, i) =>
      (i * width / (values.length - 1)).toFixed(1) + "," + (height - 1 - v / top * (height - 3)).toFixed(1));
    const line = document.createElementNS(svg.namespaceURI, "polyline");
    line.setAttribute("points", points.join(" "));
    svg.append(line);
  }
  const title = document.createElementNS(svg.namespaceURI, "title");
  const now = rates.length ? rates[rates.length - 1] : null;
  title.textContent = now ? (now.completed_per_s + now.failed_per_s).toFixed(1) + " jobs/s now" : "no samples yet";
  svg.append(title);
  return svg;
}

async function overview() {
  const queuesBody = el("tbody", {});
  const workersBody = el("tbody", {});
  view.replaceChildren(
    el("h2", {}, "Queues"),
    el("table", { id: "queues" },
      el("thead", {}, el("tr", {},
        el("th", {}, "Queue"), el("th", { class: "num" }, "Waiting"), el("th", { class: "num" }, "Delayed"),
        ...STATUSES.slice(1).map((s) => el("th", { class: "num" }, s)),
        el("th", { class: "num" }, "Jobs/s"), el("th", {}, "Last 10 minutes"))),
      queuesBody),
    el("h2", {}, "Workers"),
    el("table", { id: "workers" },
      el("thead", {}, el("tr", {},
        el("th", {}, "Identity"), el("th", {}, "Queues"), el("th", { class: "num" }, "Concurrency"),
        el("th", { class: "num" }, "In flight"), el("th", { class: "num" }, "Completed"),
        el("th", { class: "num" }, "Failed"), el("th", {}, "Started"), el("th", {}, "Last beat"))),
      workersBody),
    el("h2", {}, "Recent events"),
    el("ul", { id: "events" }, el("li", { class: "hint" }, "Status changes appear here as they happen.")));

  const draw = async () => {
    const [queues, workers] = await Promise.all([getJson("/queues"), getJson("/workers")]);
    queuesBody.replaceChildren(...(queues.length ? queues.map((q) => {
      const rate = q.throughput.length ? q.throughput[q.throughput.length - 1] : null;
      const link = (status, n) => el("a", { href: "#/jobs?queue=" + encodeURIComponent(q.queue) + "&status=" + encodeURIComponent(status) }, n);
      return el("tr", { "data-queue": q.queue },
        el("td", {}, el("a", { href: "#/jobs?queue=" + encodeURIComponent(q.queue) }, q.queue)),
        el("td", { class: "num depth" }, link("submitted", q.counts.submitted)),
        el("td", { class: "num" }, q.delayed),
        ...STATUSES.slice(1).map((s) => el("td", { class: "num count", "data-status": s }, link(s, q.counts[s]))),
        el("td", { class: "num" }, rate ? (rate.completed_per_s + rate.failed_per_s).toFixed(1) : "–"),
        el("td", {}, sparkline(q.throughput)));
    }) : [el("tr", {}, el("td", { class: "empty", colspan: 9 }, "No queue has held a job yet."))]));
    workersBody.replaceChildren(...(workers.length ? workers.map((w) =>
      el("tr", { "data-worker": w.id },
        el("td", { class: "mono" }, w.identity), el("td", {}, w.queues.join(", ")),
        el("td", { class: "num" }, w.concurrency), el("td", { class: "num" }, w.in_flight),
        el("td", { class: "num" }, w.completed), el("td", { class: "num" }, w.failed),
        el("td", {}, when(w.started_at)), el("td", {}, when(w.last_seen)))
    ) : [el("tr", {}, el("td", { class: "empty", colspan: 8 }, "No live worker."))]));
  };
  await draw();
  return draw;
}

function filtersFrom(query) {
  return {
    status: query.get("status") || "",
    kind: query.get("kind") || "",
    queue: query.get("queue") || "",
    before: query.get("before") || "",
  };
}

function jobsHash(filters) {
  const q = new URLSearchParams();
  for (const key of ["status", "kind", "queue", "before"]) if (filters[key]) q.set(key, filters[key]);
  const text = q.toString();
  return "#/jobs" + (text ? "?" + text : "");
}

async function jobList(query) {
  const filters = filtersFrom(query);
  const status = el("select", { name: "status" }, el("option", { value: "" }, "any"),
    ...STATUSES.map((s) => el("option", { value: s, selected: s === filters.status }, s)));
  const kind = el("input", { name: "kind", value: filters.kind, placeholder: "any" });
  const queue = el("input", { name: "queue", value: filters.queue, placeholder: "any" });
  const form = el("form", { class: "filters", id: "filters" },
    el("label", {}, "Status", status), el("label", {}, "Kind", kind), el("label", {}, "Queue", queue),
    el("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = jobsHash({ status: status.value, kind: kind.value.trim(), queue: queue.value.trim() });
  });
  const body = el("tbody", {});
  const pager = el("div", { class: "pager" });
  view.replaceChildren(el("h2", {}, "Jobs"), form,
    el("table", { id: "jobs" },
      el("thead", {}, el("tr", {}, el("th", {}, "Id"), el("th", {}, "Kind"), el("th", {}, "Queue"),
        el("th", {}, "Status"), el("th", { class: "num" }, "Attempts"), el("th", {}, "Submitted"),
        el("th", {}, "Finished"))),
      body),
    pager);

  const params = new URLSearchParams({ limit: String(PAGE) });
  for (const key of ["status", "kind", "queue", "before"]) if (filters[key]) params.set(key, filters[key]);
  const draw = async () => {
    const response = await call("GET", "/jobs?" + params.toString());
    const jobs = await response.json();
    const next = response.headers.get("x-next-cursor");
    body.replaceChildren(...(jobs.length ? jobs.map((job) =>
      el("tr", { "data-job": job.id },
        el("td", { class: "mono" }, el("a", { href: "#/jobs/" + encodeURIComponent(job.id) }, job.id)),
        el("td", {}, job.kind), el("td", {}, job.queue),
        el("td", { class: statusClass(job.status) }, job.status),
        el("td", { class: "num" }, job.attempts + " / " + job.max_attempts),
        el("td", {}, when(job.created_at)), el("td", {}, when(job.finished_at)))
    ) : [el("tr", {}, el("td", { class: "empty", colspan: 7 }, "No job matches."))]));
    pager.replaceChildren(
      filters.before ? el("a", { href: jobsHash(Object.assign({}, filters, { before: "" })) }, "« Newest") : "",
      next ? el("a", { id: "next-page", href: jobsHash(Object.assign({}, filters, { before: next })) }, "Older »") : "");
  };
  await draw();
  // New jobs appear on the first page only; deeper pages keep their place.
  return filters.before ? null : draw;
}

async function jobPage(id) {
  const path = "/jobs/" + encodeURIComponent(id);
  const fields = el("dl", { class: "fields", id: "job", "data-job": id });
  const actions = el("div", { class: "actions" });
  const result = el("div", { id: "result" });
  view.replaceChildren(el("h2", {}, "Job ", el("span", { class: "mono" }, id)), actions, fields,
    el("h2", {}, "Result"), result);
  let shownResult = null;

  const act = (label, method, suffix, then, extra) => el("button", Object.assign({
    type: "button", id: label.toLowerCase(),
    onclick: async () => {
      try {
        await call(method, path + suffix);
        say(label + " done.", "info");
        if (then) then(); else await draw();
      } catch (e) {
        say(label + " refused: " + e.message + (e.code ? " (" + e.code + ")" : ""));
      }
    },
  }, extra || {}), label);

  const draw = async () => {
    let job;
    try {
      job = await getJson(path);
    } catch (e) {
      if (e.status === 404) {
        fields.replaceChildren(el("dt", {}, "status"), el("dd", {}, "gone: never existed, deleted, or expired"));
        actions.replaceChildren();
        return;
      }
      throw e;
    }
    const rows = [
      ["status", el("span", { class: statusClass(job.status), "data-field": "status" }, job.status)],
      ["kind", job.kind], ["queue", job.queue], ["priority", job.priority],
      ["attempts", job.attempts + " of " + job.max_attempts], ["worker", job.worker || "–"],
      ["submitted", when(job.created_at)], ["run at", when(job.run_at)],
      ["started", when(job.started_at)], ["finished", when(job.finished_at)],
      ["progress", job.progress ? job.progress.percent + "% " + (job.progress.message || "") : ""],
      ["error", job.error ? el("span", { "data-field": "error" }, job.error) : ""],
      ["parameters", el("pre", { class: "mono" }, JSON.stringify(job.params, null, 2))],
    ];
    fields.replaceChildren(...rows.filter(([, v]) => v !== "" && v !== undefined && v !== null)
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    const buttons = [];
    if (job.status === "failed") buttons.push(act("Retry", "POST", "/retry"));
    if (job.status === "submitted" || job.status === "in progress") buttons.push(act("Cancel", "POST", "/cancel"));
    if (job.status !== "in progress") {
      buttons.push(act("Delete", "DELETE", "", () => { location.hash = "#/jobs"; }, { class: "danger" }));
    }
    actions.replaceChildren(...buttons);
    if (job.status === "complete" && shownResult !== job.finished_at) {
      shownResult = job.finished_at;
      await showResult(path + "/result", result);
    } else if (job.status !== "complete") {
      shownResult = null;
      result.replaceChildren(el("span", { class: "hint" }, "No result (" + job.status + ")."));
    }
  };
  await draw();
  onEventFor = (event) => { if (event.job === id) draw().catch(() => {}); };
  return null;
}

// Shows a job's result by its content type: an image inline, JSON or text as text, anything
// else as a download.
async function showResult(path, into) {
  const response = await call("GET", path);
  const type = (response.headers.get("content-type") || "").split(";")[0].trim();
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  if (type.startsWith("image/")) {
    into.replaceChildren(el("img", { id: "result-image", src: url, alt: "The job's result" }));
  } else if (type === "application/json" || type.startsWith("text/")) {
    const text = await blob.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* as is */ }
    into.replaceChildren(el("pre", { class: "mono", id: "result-text" }, shown));
  } else {
    into.replaceChildren(el("a", { href: url, download: "result" }, "Download (" + blob.size + " bytes, " + type + ")"));
  }
}

// ---- routing -------------------------------------------------------------------------------

let onEventFor = null;
onEvent((event) => { if (onEventFor) onEventFor(event); });

async function route() {
  refreshView = null;
  onEventFor = null;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, search] = hash.split("?");
  const query = new URLSearchParams(search || "");
  try {
    if (path === "/jobs") refreshView = await jobList(query);
    else if (path.startsWith("/jobs/")) refreshView = await jobPage(decodeURIComponent(path.slice(6)));
    else refreshView = await overview();
  } catch (e) {
    say(e.message + (e.code ? " (" + e.code + ")" : ""));
  }
}

window.addEventListener("hashchange", () => { say(""); route(); });
route();
followEvents();
