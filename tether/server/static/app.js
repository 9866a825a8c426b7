// The Tether web UI: namespaces -> runs -> a run's history, over the same HTTP API
// any client uses (no API of its own). Build-free, no third-party code.
"use strict";

const view = document.getElementById("view");
const crumbs = document.getElementById("crumbs");
const errorBox = document.getElementById("error");
const tokenInput = document.getElementById("token");
const STATUSES = ["", "running", "completed", "failed", "canceled", "terminated", "continued_as_new"];

tokenInput.value = localStorage.getItem("tether.token") || "";
tokenInput.addEventListener("change", () => {
  localStorage.setItem("tether.token", tokenInput.value);
  route();
});

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (tokenInput.value) headers.Authorization = `Bearer ${tokenInput.value}`;
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) {
    const error = data.error || {};
    throw new Error(`${error.code || response.status}: ${error.message || response.statusText}`);
  }
  return data;
}

function showError(error) {
  errorBox.textContent = error ? String(error.message || error) : "";
  errorBox.hidden = !error;
}

const when = (ts) => (ts == null ? "-" : new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 23));
const short = (value) => (value === undefined ? "" : JSON.stringify(value));
const enc = encodeURIComponent;
const nsPath = (ns) => `/v1/namespaces/${enc(ns)}`;
const runPath = (ns, id) => `${nsPath(ns)}/workflows/${enc(id)}`;

function setCrumbs(...links) {
  crumbs.replaceChildren(...links.flatMap(([text, href]) => [" / ", el("a", { href }, text)]));
}

async function namespacesPage() {
  setCrumbs();
  const { namespaces } = await api("GET", "/v1/namespaces");
  view.replaceChildren(
    el("h1", {}, "Namespaces"),
    el("table", { id: "namespaces" },
      el("tr", {}, el("th", {}, "namespace"), el("th", {}, "created")),
      ...namespaces.map((ns) => el("tr", {},
        el("td", {}, el("a", { href: `#/ns/${enc(ns.name)}` }, ns.name)),
        el("td", {}, when(ns.created_at))))),
  );
}

async function runsPage(ns, params) {
  setCrumbs([ns, `#/ns/${enc(ns)}`]);
  const status = params.get("status") || "";
  const query = new URLSearchParams({ limit: "50" });
  if (status) query.set("status", status);
  if (params.get("cursor")) query.set("cursor", params.get("cursor"));
  const page = await api("GET", `${nsPath(ns)}/workflows?${query}`);
  const filter = el("select", {
    id: "status-filter",
    onchange: (event) => { location.hash = `#/ns/${enc(ns)}?status=${enc(event.target.value)}`; },
  }, ...STATUSES.map((s) => el("option", { value: s }, s || "any status")));
  filter.value = status;
  const rows = page.runs.map((run) => el("tr", { "data-workflow-id": run.workflow_id },
    el("td", {}, el("a", { href: `#/ns/${enc(ns)}/wf/${enc(run.workflow_id)}?run_id=${enc(run.run_id)}` }, run.workflow_id)),
    el("td", {}, run.type),
    el("td", { class: `status status-${run.status}` }, run.status),
    el("td", {}, when(run.created_at)),
    el("td", {}, when(run.closed_at))));
  const more = page.next_cursor
    ? el("a", { id: "more", href: `#/ns/${enc(ns)}?status=${enc(status)}&cursor=${enc(page.next_cursor)}` }, "more")
    : "";
  view.replaceChildren(
    el("h1", {}, `Runs of ${ns}`),
    el("label", {}, "status ", filter),
    el("table", { id: "runs" },
      el("tr", {}, ...["workflow id", "type", "status", "started", "closed"].map((h) => el("th", {}, h))),
      ...rows),
    more,
  );
}

function actionForm(id, label, fields, submit) {
  const inputs = fields.map(([name, placeholder]) => el("input", { name, placeholder, "aria-label": name }));
  return el("form", {
    id,
    onsubmit: async (event) => {
      event.preventDefault();
      const values = Object.fromEntries(inputs.map((input) => [input.name, input.value]));
      try {
        showError(null);
        await submit(values);
        await route();
      } catch (error) {
        showError(error);
      }
    },
  }, ...inputs, el("button", { type: "submit" }, label));
}

async function runPage(ns, workflowId, params) {
  setCrumbs([ns, `#/ns/${enc(ns)}`], [workflowId, location.hash]);
  const runId = params.get("run_id");
  const suffix = runId ? `?run_id=${enc(runId)}` : "";
  const [run, { events }] = await Promise.all([
    api("GET", `${runPath(ns, workflowId)}${suffix}`),
    api("GET", `${runPath(ns, workflowId)}/history${suffix}`),
  ]);
  const facts = el("dl", { id: "run" },
    ...[["status", run.status], ["type", run.type], ["run id", run.run_id],
      ["task queue", run.task_queue], ["started", when(run.created_at)],
      ["closed", when(run.closed_at)], ["result", short(run.result)],
      ["failure", run.failure ? run.failure.message : ""], ["stuck", run.stuck || ""]]
      .flatMap(([key, value]) => [el("dt", {}, key), el("dd", { "data-field": key }, value)]));
  const path = runPath(ns, workflowId);
  const actions = run.status !== "running" ? "" : el("div", { class: "actions" },
    actionForm("signal", "Signal", [["name", "signal name"], ["payload", "payload (JSON)"]],
      ({ name, payload }) => api("POST", `${path}/signal/${enc(name)}${suffix}`,
        { payload: payload.trim() ? JSON.parse(payload) : null })),
    actionForm("cancel", "Cancel", [["reason", "reason"]],
      ({ reason }) => api("POST", `${path}/cancel${suffix}`, { reason })),
    actionForm("terminate", "Terminate", [["reason", "reason"]],
      ({ reason }) => api("POST", `${path}/terminate${suffix}`, { reason })));
  view.replaceChildren(
    el("h1", {}, workflowId),
    facts,
    actions,
    el("h2", {}, "History"),
    el("table", { id: "history" },
      el("tr", {}, ...["#", "time", "event", "details"].map((h) => el("th", {}, h))),
      ...events.map((e) => el("tr", { "data-event": e.type },
        el("td", {}, e.seq), el("td", {}, when(e.ts)), el("td", {}, e.type),
        el("td", { class: "details" }, short(e.attrs))))),
  );
}

async function route() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    showError(null);
    if (parts[0] === "ns" && parts[2] === "wf" && parts.length === 4) await runPage(parts[1], parts[3], params);
    else if (parts[0] === "ns" && parts.length === 2) await runsPage(parts[1], params);
    else await namespacesPage();
  } catch (error) {
    view.replaceChildren();
    showError(error);
  }
}

window.addEventListener("hashchange", route);
route();
