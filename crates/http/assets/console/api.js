// The API client. The token lives in this tab's sessionStorage: it survives a reload,
// is gone when the tab closes, is never put in a URL, and is sent only to this server
// (the Content-Security-Policy allows no other host).

const TOKEN_KEY = "gatehouse.token";

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** An error answer of the API (or no answer at all), with a sentence for people. */
export class ApiError extends Error {
  constructor(status, body, retryAfter, requestId) {
    super(ApiError.sentence(status, body, retryAfter, requestId));
    this.status = status;
    this.code = body?.code ?? null;
    this.detail = body?.detail ?? null;
    this.fieldErrors = Array.isArray(body?.errors) ? body.errors : [];
    // A rejected user's login: the admin's note (or null). A bulk decision's refusal: the
    // ids at fault.
    this.note = typeof body?.note === "string" ? body.note : null;
    this.ids = Array.isArray(body?.ids) ? body.ids : [];
  }

  static sentence(status, body, retryAfter, requestId) {
    if (status === 0) {
      return "Gatehouse cannot be reached. Check your connection and try again.";
    }
    if (status >= 500) {
      const detail = body?.detail && status === 503 ? `${body.detail}. ` : "";
      const id = requestId ? ` (request ${requestId})` : "";
      return `${detail || "Something went wrong on the server. "}Try again in a moment${id}.`;
    }
    let text = body?.detail ?? `The request failed (HTTP ${status}).`;
    if (status === 429 && retryAfter && !/\d/.test(text)) {
      text += ` Try again in ${retryAfter} seconds.`;
    }
    return /[.!?]$/.test(text) ? text : `${text}.`;
  }

  /** The message for one field of a 422, if the API named it. */
  forField(name) {
    return this.fieldErrors.find((e) => e.field === name)?.message ?? null;
  }
}

/** Called when the API says the token is no good any more (set by the app). */
let onSessionEnded = () => {};
export function whenSessionEnds(handler) {
  onSessionEnded = handler;
}

/**
 * Calls the API. `body` is sent as JSON. Resolves to {data, headers}; rejects with an
 * ApiError. A 401 on a call made with the token ends the session.
 */
export async function call(method, path, body = undefined, { auth = true } = {}) {
  const headers = { Accept: "application/json" };
  const token = session.token;
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      redirect: "error",
    });
  } catch {
    throw new ApiError(0, null, null, null);
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(
      response.status,
      data,
      response.headers.get("Retry-After"),
      response.headers.get("X-Request-Id"),
    );
    if (response.status === 401 && auth && token) {
      session.token = null;
      onSessionEnded(error);
    }
    throw error;
  }
  return { data, headers: response.headers };
}

// Device tokens (docs/security.md, "Lockout that an attacker cannot hold"): each login
// returns one, bound to the account; this browser keeps it in localStorage per account
// and presents it at that account's next login, so failed guesses from elsewhere cannot
// lock this browser out. It opens nothing by itself: a password is still needed.
const DEVICE_KEY = "gatehouse.device.";

const devices = {
  get(email) {
    try {
      return localStorage.getItem(DEVICE_KEY + email.trim().toLowerCase());
    } catch {
      return null; // storage disabled: log in without one
    }
  },
  set(email, token) {
    try {
      if (token) localStorage.setItem(DEVICE_KEY + email.trim().toLowerCase(), token);
    } catch {
      // storage disabled or full: the next login simply has no device token
    }
  },
};

async function login(email, password) {
  const body = { email, password };
  const device = devices.get(email);
  if (device) body.device_token = device;
  const answer = await call("POST", "/api/auth/login", body, { auth: false });
  devices.set(email, answer.data?.device_token);
  return answer;
}

/** A query string of the parameters that have a value. */
function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(key, value);
  }
  return q;
}

/**
 * Registers. `reason` and `invitation` are sent only when given: the invitation code goes
 * nowhere but here, in the body of this one request.
 */
function register(email, password, { reason = "", invitation = "" } = {}) {
  const body = { email, password };
  if (reason) body.reason = reason;
  if (invitation) body.invitation = invitation;
  return call("POST", "/api/auth/register", body, { auth: false });
}

export const api = {
  login,
  register,
  me: () => call("GET", "/api/auth/me"),
  logout: () => call("POST", "/api/auth/logout"),
  changePassword: (current, next) =>
    call("PUT", "/api/auth/me/password", {
      current_password: current,
      new_password: next,
    }),
  listUsers: (params) => call("GET", `/api/auth/users?${query(params)}`),
  pendingCount: () => call("GET", "/api/auth/users/pending/count"),
  updateUser: (id, changes) => call("PUT", `/api/auth/users/${id}`, changes),
  deleteUser: (id) => call("DELETE", `/api/auth/users/${id}`),
  resetPassword: (id, password) =>
    call("POST", `/api/auth/users/${id}/reset-password`, { password }),
  /** Approves or rejects pending users at once: all of them, or (on 404/409) none. */
  decideUsers: (ids, decision, note = "") =>
    call("POST", "/api/auth/users/decisions", note ? { ids, decision, note } : { ids, decision }),
  createInvitation: (body) => call("POST", "/api/auth/invitations", body),
  listInvitations: (params) => call("GET", `/api/auth/invitations?${query(params)}`),
  revokeInvitation: (id) => call("DELETE", `/api/auth/invitations/${id}`),
};
