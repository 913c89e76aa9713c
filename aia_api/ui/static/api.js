// Calls to the API with the session cookie. The CSRF token lives only in this
// module's memory: never in storage, never in a URL.

let csrfToken = null;
const listeners = { ended: [] };

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

export function onSessionEnded(listener) {
  listeners.ended.push(listener);
}

export function setCsrf(token) {
  csrfToken = token;
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, { title: "Network error", detail: "the API could not be reached" });
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      parsed = { detail: text.slice(0, 200) };
    }
  }
  if (response.status === 401 && !path.startsWith("/v1/auth/session")) {
    for (const listener of listeners.ended) listener(new ApiError(401, parsed));
  }
  if (!response.ok && !(response.status === 503 && path === "/status")) {
    throw new ApiError(response.status, parsed);
  }
  return parsed;
}

export async function signIn(fields) {
  const session = await api("POST", "/v1/auth/session", fields);
  setCsrf(session.csrf_token);
  return session;
}

export async function currentSession() {
  const session = await api("GET", "/v1/auth/session");
  setCsrf(session.csrf_token);
  return session;
}

export async function signOut() {
  try {
    await api("DELETE", "/v1/auth/session");
  } finally {
    setCsrf(null);
  }
}
