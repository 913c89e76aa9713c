// The dashboard: signing in and out, the tabs, and what refreshes when.

import { ApiError, currentSession, onSessionEnded, signIn, signOut } from "./api.js";
import { refreshAgents } from "./agents.js";
import { $, say, show } from "./dom.js";
import { Live } from "./live.js";
import { refreshModels } from "./models.js";
import { refreshQueues } from "./queues.js";
import { Tasks } from "./tasks.js";
import { refreshWebhooks } from "./webhooks.js";

const QUEUES_EVERY_MS = 3000;
const TASKS_EVERY_MS = 10000;
const PANELS = { models: refreshModels, webhooks: refreshWebhooks, agents: refreshAgents };

const notice = $("#notice");
const live = new Live(
  (event) => tasks.applyEvent(event),
  (state) => say(notice, state === "live" ? "" : `Live updates ${state}…`),
);
const tasks = new Tasks(live, (message) => say(notice, message));
let timers = [];
let signedIn = false;
let view = "queues";

function guarded(work) {
  return async () => {
    try {
      await work();
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) say(notice, err.message);
    }
  };
}

const refreshQueuesView = guarded(() => refreshQueues(tasks.queueFigures()));
const refreshTasks = guarded(() => tasks.refresh());

function enter(session) {
  signedIn = true;
  const who = session.principal;
  $("#who").textContent = `${who.kind === "key" ? "API key" : "user"} ${who.id} · ${who.tenant} · ${who.role}`;
  show($("#signin"), false);
  show($("#loading"), false);
  show($("#app"), true);
  show($("#sign-out"), true);
  live.start();
  refreshTasks().then(refreshQueuesView);
  tasks.loadTypes();
  timers = [setInterval(refreshQueuesView, QUEUES_EVERY_MS), setInterval(refreshTasks, TASKS_EVERY_MS)];
  select(view);
}

function leave(message) {
  signedIn = false;
  for (const timer of timers) clearInterval(timer);
  timers = [];
  live.stop();
  tasks.reset();
  $("#who").textContent = "";
  say(notice, "");
  show($("#app"), false);
  show($("#sign-out"), false);
  show($("#loading"), false);
  show($("#signin"), true);
  say($("#signin-message"), message);
  $("#password").value = "";
  $("#totp").value = "";
  $("#api-key").value = "";
}

function select(name) {
  view = name;
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.view === name);
  }
  for (const section of document.querySelectorAll(".view")) {
    show(section, section.id === `view-${name}`);
  }
  if (PANELS[name]) guarded(PANELS[name])();
}

async function attempt(fields, button) {
  button.disabled = true;
  say($("#signin-message"), "");
  try {
    enter(await signIn(fields));
  } catch (err) {
    const slug = String(err.problem.type || "").split(/[:/]/).pop();
    if (slug === "mfa-required") {
      say($("#signin-message"), "This account uses MFA: enter the current one-time code.");
      $("#totp").focus();
    } else if (err.status === 401) {
      say($("#signin-message"), `Sign-in failed: ${err.message}`);
    } else {
      say($("#signin-message"), `Could not sign in: ${err.message}`);
    }
  } finally {
    button.disabled = false;
  }
}

$("#signin-user").addEventListener("submit", (event) => {
  event.preventDefault();
  const fields = { username: $("#username").value, password: $("#password").value };
  const totp = $("#totp").value.trim();
  if (totp) fields.totp = totp;
  attempt(fields, $("#signin-user-submit"));
});

$("#signin-key").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt({ api_key: $("#api-key").value.trim() }, $("#signin-key-submit"));
});

$("#sign-out").addEventListener("click", async () => {
  try {
    await signOut();
  } catch (err) {
    // Signed out here whatever the API said: the cookie is no use to the page now.
  }
  leave("You are signed out.");
});

for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => select(button.dataset.view));
}

setInterval(() => {
  if (signedIn && PANELS[view]) guarded(PANELS[view])();
}, 15000);

onSessionEnded((err) => {
  if (signedIn) leave(`Your session has ended (${err.message}). Sign in again.`);
});

currentSession()
  .then(enter)
  .catch((err) => leave(err.status === 401 ? "" : `The API could not be reached: ${err.message}`));
