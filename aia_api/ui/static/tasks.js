// Recent tasks: the list from the API, each row kept up to date in place by
// the live events; submitting and cancelling; a task's timeline.

import { api } from "./api.js";
import { $, clear, h, json, say, show, when } from "./dom.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const LIMIT = 50;

function fraction(progress) {
  if (!progress || typeof progress !== "object") return null;
  const { current, total } = progress;
  if (typeof current === "number" && typeof total === "number" && total > 0) {
    return Math.max(0, Math.min(1, current / total));
  }
  return null;
}

function progressCell(progress, status) {
  const done = status === "succeeded" ? 1 : fraction(progress);
  if (done === null) return "";
  return h("progress", { max: "1", value: String(done), title: `${Math.round(done * 100)} %` });
}

export class Tasks {
  constructor(live, notify) {
    this.live = live;
    this.notify = notify;
    this.tasks = new Map(); // id -> TaskView, as fresh as the events made it
    this.detail = null; // { id, source }
    this.body = $("#tasks tbody");
    $("#submit-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  async loadTypes() {
    const select = clear($("#submit-type"));
    let types = ["diagnostics.sleep"];
    try {
      const doc = await api("GET", "/openapi.json");
      types = Object.keys(doc["x-task-types"] || {}).sort();
    } catch (err) {
      // The form still offers the diagnostic sleep.
    }
    for (const type of types) select.append(h("option", { value: type }, type));
    select.value = types.includes("diagnostics.sleep") ? "diagnostics.sleep" : types[0];
  }

  async refresh() {
    const page = await api("GET", `/v1/tasks?limit=${LIMIT}`);
    for (const view of page.items) this.upsert(view);
    this.render();
  }

  upsert(view) {
    const known = this.tasks.get(view.id);
    // The list is read from the recorded history, which may be behind the events.
    if (known && (known.seq || 0) > (view.seq || 0)) return;
    this.tasks.set(view.id, { ...known, ...view });
    if (!TERMINAL.has(view.status)) this.live.follow(view.id, view.seq || 0);
  }

  applyEvent(event) {
    const known = this.tasks.get(event.task_id);
    if (known) {
      if ((known.seq || 0) >= event.seq) return;
      known.seq = event.seq;
      known.status = event.status;
      if (event.event === "progress") known.progress = event.data;
      if (event.event === "succeeded") known.progress = null;
      this.renderRow(known);
    }
    if (this.detail && this.detail.id === event.task_id) this.addTimeline(event);
  }

  recent() {
    return [...this.tasks.values()]
      .sort((a, b) => String(b.created_at || "").localeCompare(String(a.created_at || "")))
      .slice(0, LIMIT);
  }

  render() {
    const rows = this.recent().map((task) => this.row(task));
    this.body.replaceChildren(...rows);
  }

  renderRow(task) {
    const old = this.body.querySelector(`tr[data-task-id="${CSS.escape(task.id)}"]`);
    const row = this.row(task);
    if (old) old.replaceWith(row);
    else this.body.prepend(row);
  }

  row(task) {
    const cancellable = !TERMINAL.has(task.status);
    return h(
      "tr",
      { dataset: { taskId: task.id, status: task.status } },
      h("td", {}, h("a", { href: "#", className: "open", onclick: (e) => this.open(e, task.id) }, task.id)),
      h("td", {}, task.type),
      h("td", {}, task.queue),
      h("td", { className: `status ${task.status}` }, task.status),
      h("td", {}, progressCell(task.progress, task.status)),
      h("td", {}, when(task.created_at)),
      h(
        "td",
        {},
        cancellable &&
          h("button", { type: "button", className: "cancel", onclick: () => this.cancel(task.id) }, "Cancel"),
      ),
    );
  }

  async submit() {
    const message = $("#submit-message");
    say(message, "");
    let payload;
    try {
      payload = JSON.parse($("#submit-payload").value || "{}");
    } catch (err) {
      message.classList.add("error");
      say(message, `The payload is not valid JSON: ${err.message}`);
      return;
    }
    try {
      const view = await api("POST", "/v1/tasks", { type: $("#submit-type").value, payload });
      this.upsert(view);
      this.renderRow(this.tasks.get(view.id));
      message.classList.remove("error");
      say(message, `Submitted ${view.id}`);
    } catch (err) {
      message.classList.add("error");
      const fields = (err.problem.errors || []).map((e) => `${(e.loc || []).join(".")}: ${e.msg}`);
      say(message, [err.message, ...fields].join(" · "));
    }
  }

  async cancel(taskId) {
    try {
      const view = await api("POST", `/v1/tasks/${encodeURIComponent(taskId)}/cancel`);
      if (view && view.id) {
        this.upsert(view);
        this.renderRow(this.tasks.get(view.id));
      }
    } catch (err) {
      this.notify(`Could not cancel ${taskId}: ${err.message}`);
    }
  }

  async open(event, taskId) {
    event.preventDefault();
    this.close();
    const panel = $("#task-detail");
    $("#detail-id").textContent = taskId;
    clear($("#timeline"));
    show(panel, true);
    let view;
    try {
      view = await api("GET", `/v1/tasks/${encodeURIComponent(taskId)}`);
    } catch (err) {
      $("#detail-status").textContent = err.message;
      return;
    }
    this.detail = { id: taskId, source: null, view };
    this.showDetail(view);
    // The stream replays the task's events from the first, then follows it live.
    const source = new EventSource(`/v1/tasks/${encodeURIComponent(taskId)}/events`);
    this.detail.source = source;
    const onEvent = (message) => {
      try {
        this.addTimeline(JSON.parse(message.data));
      } catch (err) {
        // A keep-alive or a malformed line: nothing to show.
      }
    };
    for (const name of ["queued", "started", "progress", "retrying", "succeeded", "failed", "cancelled"]) {
      source.addEventListener(name, onEvent);
    }
    source.addEventListener("error", () => {
      if (this.detail && this.detail.source === source && TERMINAL.has(this.detail.view.status)) {
        source.close();
      }
    });
  }

  close() {
    if (this.detail && this.detail.source) this.detail.source.close();
    this.detail = null;
  }

  showDetail(view) {
    $("#detail-status").textContent = view.status;
    $("#detail-progress").value = view.status === "succeeded" ? 1 : fraction(view.progress) || 0;
    $("#detail-payload").textContent = json(view.payload);
    $("#detail-result").textContent = json(view.error || view.result);
  }

  addTimeline(event) {
    if (!this.detail || this.detail.id !== event.task_id) return;
    const list = $("#timeline");
    if (list.querySelector(`li[data-seq="${Number(event.seq)}"]`)) return;
    const done = fraction(event.data);
    list.append(
      h(
        "li",
        { className: `event ${event.event}`, dataset: { seq: String(event.seq), event: event.event } },
        h("span", { className: "seq" }, `#${event.seq}`),
        " ",
        h("b", {}, event.event),
        " ",
        h("time", {}, when(event.time)),
        done !== null && h("progress", { max: "1", value: String(done) }),
        event.data && Object.keys(event.data).length ? h("code", {}, JSON.stringify(event.data)) : null,
      ),
    );
    const view = this.detail.view;
    if (event.seq >= (view.seq || 0)) {
      view.seq = event.seq;
      view.status = event.status;
      if (event.event === "progress") view.progress = event.data;
      this.showDetail(view);
    }
    if (TERMINAL.has(event.status)) {
      api("GET", `/v1/tasks/${encodeURIComponent(event.task_id)}`)
        .then((fresh) => {
          if (this.detail && this.detail.id === fresh.id) this.showDetail(fresh);
        })
        .catch(() => {});
    }
  }

  // Per queue, from the tenant's recent tasks: how many were submitted in the
  // last minute, and how long the oldest still queued has waited.
  queueFigures(now = Date.now()) {
    const figures = {};
    for (const task of this.tasks.values()) {
      const created = Date.parse(task.created_at || "");
      if (Number.isNaN(created)) continue;
      const entry = (figures[task.queue] ||= { perMinute: 0, oldest: null });
      if (now - created <= 60000) entry.perMinute += 1;
      if (task.status === "queued") {
        const waited = (now - created) / 1000;
        entry.oldest = Math.max(entry.oldest || 0, waited);
      }
    }
    return figures;
  }

  reset() {
    this.close();
    this.tasks.clear();
    clear(this.body);
    show($("#task-detail"), false);
  }
}
