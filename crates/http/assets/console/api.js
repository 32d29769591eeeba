// The API client. The tokens live in this tab's sessionStorage: they survive a reload,
// are gone when the tab closes, are never put in a URL, and are sent only to this server
// (the Content-Security-Policy allows no other host).
//
// A sign-in gives a short-lived access token and a single-use refresh token. The access
// token is renewed in the background before it runs out (and when the tab comes back into
// view past that time), and once more when the API refuses it (401), before the call is
// tried again. One renewal at a time: every caller shares it, and the new refresh token is
// stored before anything else can use the old one; a refresh token presented twice would
// end the whole session. A refused renewal ends the session here too, quietly.

const TOKEN_KEY = "gatehouse.token";
const REFRESH_KEY = "gatehouse.refresh";
// When to renew the access token (milliseconds since the epoch).
const RENEW_AT_KEY = "gatehouse.renew_at";
// This tab's mark on its session (see "A copied tab" below).
const TAB_KEY = "gatehouse.tab";

export const session = {
  /** The access token, or null when nobody is signed in in this tab. */
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  /** Keeps the tokens of a sign-in (a login, a password change) and starts renewing them. */
  start(answer) {
    sessionStorage.setItem(TAB_KEY, randomId());
    keep(answer);
  },
  /** Forgets the tokens here (the server is not told: see api.logout for that). */
  clear() {
    forget();
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

/**
 * Called when this tab's session has ended (set by the app): with "ended" when the server
 * refused it, with "copied" when this tab turned out to be a copy of another signed-in tab.
 */
let onSessionEnded = () => {};
export function whenSessionEnds(handler) {
  onSessionEnded = handler;
}

/**
 * Called when the API refuses an admin route because this admin has no second factor yet
 * (403 `mfa_enrollment_required`, GATEHOUSE_REQUIRE_MFA_FOR_ADMINS); set by the app.
 */
let onEnrolmentRequired = () => {};
export function whenEnrolmentRequired(handler) {
  onEnrolmentRequired = handler;
}

/** One request; resolves to {ok, status, data, headers, error}; rejects only without an answer. */
async function request(method, path, body, token) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
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
  const error = response.ok
    ? null
    : new ApiError(
        response.status,
        data,
        response.headers.get("Retry-After"),
        response.headers.get("X-Request-Id"),
      );
  return { ok: response.ok, status: response.status, data, headers: response.headers, error };
}

/**
 * Calls the API. `body` is sent as JSON. Resolves to {data, headers}; rejects with an
 * ApiError. When the access token is refused (401), it is renewed once and the call tried
 * once more; if the renewal is refused too, the session has ended (the app is told, unless
 * `quiet`) and the 401 is what the caller gets.
 */
export async function call(method, path, body = undefined, { auth = true, quiet = false } = {}) {
  const used = auth ? session.token : null;
  let answer = await request(method, path, body, used);
  if (answer.status === 401 && used) {
    const first = answer.error;
    // Signed out meanwhile: nothing to renew.
    if (!session.token) throw first;
    // Another call may have renewed the token while this one was on its way.
    if (session.token === used && !(await refresh())) {
      if (!quiet) report();
      throw first;
    }
    answer = await request(method, path, body, session.token);
    if (answer.status === 401) {
      // Refused with a token just renewed: the session is over.
      forget();
      ended = true;
      if (!quiet) report();
    }
  }
  if (!answer.ok) {
    if (answer.error.code === "mfa_enrollment_required") onEnrolmentRequired();
    throw answer.error;
  }
  return { data: answer.data, headers: answer.headers };
}

// ---- keeping and renewing the tokens ----------------------------------------------------

/** The renewal in flight (shared by everyone who needs it), or null. */
let renewal = null;
/** The timer of the next renewal. */
let timer = null;
/** The session ended (refused) and the app has not been told yet. */
let ended = false;

/**
 * When to renew a token that lives `lifetime` seconds: at 80 % of its life or a minute
 * before it runs out, whichever comes first, but not before half of it has passed (a short
 * lifetime); never sooner than a second. 15 minutes: after 12; 3 seconds: after 1.5.
 */
function renewAfter(lifetime) {
  return Math.max(1, Math.min(0.8 * lifetime, Math.max(lifetime - 60, lifetime / 2)));
}

function keep(answer) {
  ended = false;
  sessionStorage.setItem(TOKEN_KEY, answer.access_token);
  if (answer.refresh_token) sessionStorage.setItem(REFRESH_KEY, answer.refresh_token);
  else sessionStorage.removeItem(REFRESH_KEY);
  const lifetime = Number(answer.expires_in);
  if (lifetime > 0) {
    sessionStorage.setItem(RENEW_AT_KEY, String(Date.now() + renewAfter(lifetime) * 1000));
  } else {
    sessionStorage.removeItem(RENEW_AT_KEY);
  }
  schedule();
}

function forget() {
  clearTimeout(timer);
  ended = false;
  for (const key of [TOKEN_KEY, REFRESH_KEY, RENEW_AT_KEY, TAB_KEY]) sessionStorage.removeItem(key);
}

/** Tells the app, once, that the session has ended. */
function report() {
  if (!ended) return;
  ended = false;
  onSessionEnded("ended");
}

function renewAt() {
  return Number(sessionStorage.getItem(RENEW_AT_KEY)) || null;
}

/** Sets the timer for the next renewal (a timer cannot wait longer than about 24 days). */
function schedule(delay = null) {
  clearTimeout(timer);
  if (!sessionStorage.getItem(REFRESH_KEY)) return;
  const at = delay === null ? renewAt() : Date.now() + delay;
  if (!at) return;
  timer = setTimeout(renewNow, Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1));
}

/** A renewal nobody waits for (the timer, the tab coming back): tells the app if it ends. */
function renewNow() {
  refresh().then(
    (ok) => {
      if (!ok) report();
    },
    () => {}, // no answer: tried again later (see renew)
  );
}

/** Renews the tokens: true when renewed, false when the session has ended; rejects (and
 * tries again later) when the server could not answer. One at a time. */
function refresh() {
  renewal ??= renew().finally(() => {
    renewal = null;
  });
  return renewal;
}

async function renew() {
  await ready;
  const spent = sessionStorage.getItem(REFRESH_KEY);
  if (!spent) {
    // A session without a refresh token (or none at all) cannot be renewed.
    if (session.token) {
      forget();
      ended = true;
    }
    return false;
  }
  clearTimeout(timer);
  const retry = () => schedule(30_000);
  let answer;
  try {
    answer = await request("POST", "/api/auth/token", {
      grant_type: "refresh_token",
      refresh_token: spent,
    });
  } catch (error) {
    retry();
    throw error;
  }
  // Signed out (or in again) meanwhile: this answer belongs to a session no longer held.
  if (sessionStorage.getItem(REFRESH_KEY) !== spent) return Boolean(session.token);
  if (answer.ok && answer.data?.access_token) {
    keep(answer.data);
    return true;
  }
  // Refused (spent, expired, revoked, or the account is out of service): the session is
  // over. Anything else (429, 5xx) may pass: keep the tokens and try again later.
  if (answer.status >= 400 && answer.status < 500 && answer.status !== 408 && answer.status !== 429) {
    forget();
    ended = true;
    return false;
  }
  retry();
  throw answer.error;
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible" || !sessionStorage.getItem(REFRESH_KEY)) return;
  const at = renewAt();
  if (at && Date.now() >= at) renewNow();
});

// ---- a copied tab -------------------------------------------------------------------------

// "Duplicate tab" copies sessionStorage, refresh token included: the two tabs would renew
// with one token, and the second renewal would end the session of both. So each sign-in
// marks its tab with a random id; a tab opening with a session asks the other tabs of this
// browser whether one holds the same id, and if an older one does, this copy gives the
// session up (without logging out, which would end the original's session too). Renewals
// wait for that answer.
function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const born = performance.timeOrigin + Math.random();
const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel("gatehouse.session") : null;
let ready = Promise.resolve();
if (channel) {
  channel.addEventListener("message", ({ data }) => {
    const tab = sessionStorage.getItem(TAB_KEY);
    if (!tab || data?.tab !== tab) return;
    if (data.type === "hello" && data.born > born) {
      channel.postMessage({ type: "taken", tab, to: data.born });
    } else if (data.type === "taken" && data.to === born) {
      forget();
      onSessionEnded("copied");
    }
  });
  const tab = sessionStorage.getItem(TAB_KEY);
  if (tab && sessionStorage.getItem(REFRESH_KEY)) {
    ready = new Promise((resolve) => setTimeout(resolve, 150));
    channel.postMessage({ type: "hello", tab, born });
  }
}
schedule();

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

/**
 * The login's second step (when the login answered `mfa_required`): the `mfa_token` of that
 * answer and a code (TOTP or a recovery code). Answers as a login does, device token included.
 */
async function loginMfa(email, mfaToken, code) {
  const answer = await call("POST", "/api/auth/login/mfa", { mfa_token: mfaToken, code }, { auth: false });
  devices.set(email, answer.data?.device_token);
  return answer;
}

/**
 * Logs out: ends this session on the server (its refresh token included) when it still
 * can, and forgets it here in any case. Never rejects.
 */
async function logout() {
  try {
    await call("POST", "/api/auth/logout", undefined, { quiet: true });
  } catch {
    // Signed out here either way; an ended session is no loss.
  } finally {
    forget();
  }
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

/**
 * Whether this server mails codes (it has a mailer), without sending or counting anything:
 * a body without its email, which the API answers 404 `not_enabled` when it has no mailer
 * and otherwise refuses (422) before it counts or sends anything.
 */
async function mailsCodes() {
  try {
    await call("POST", "/api/auth/email/verify/resend", {}, { auth: false });
    return true;
  } catch (error) {
    return error.code !== "not_enabled";
  }
}

/**
 * A passkey sign-in (`POST /api/auth/login/passkey/finish`): answers as a login does. Its
 * device token is kept once the account is known (see rememberDevice): the answer does
 * not name it.
 */
function loginPasskey(challengeId, credential) {
  return call("POST", "/api/auth/login/passkey/finish", { challenge_id: challengeId, credential }, { auth: false });
}

export const api = {
  /** Resolves to the tokens, or (TOTP on) to {mfa_required, mfa_token, methods, expires_in}. */
  login,
  loginMfa,
  register,
  /** Asks for a password reset code by mail: 202 {message}, whether or not one is sent. */
  forgotPassword: (email) => call("POST", "/api/auth/password/forgot", { email }, { auth: false }),
  /** Sets a new password with a mailed code (204). */
  recoverPassword: (email, code, newPassword) =>
    call("POST", "/api/auth/password/reset", { email, code, new_password: newPassword }, { auth: false }),
  /** Verifies an email address with its mailed code (204). */
  verifyEmail: (email, code) => call("POST", "/api/auth/email/verify", { email, code }, { auth: false }),
  /** Asks for a new verification code: 202 {message}, whether or not one is sent. */
  resendVerification: (email) =>
    call("POST", "/api/auth/email/verify/resend", { email }, { auth: false }),
  mailsCodes,
  me: () => call("GET", "/api/auth/me"),
  logout,
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
  /** Your sessions, newest first; `current` marks this tab's. */
  mySessions: (params) => call("GET", `/api/auth/me/sessions?${query(params)}`),
  endMySession: (id) => call("DELETE", `/api/auth/me/sessions/${id}`),
  /** Ends every session of yours but this tab's. */
  endMyOtherSessions: () => call("DELETE", "/api/auth/me/sessions"),
  userSessions: (id, params) => call("GET", `/api/auth/users/${id}/sessions?${query(params)}`),
  /** Signs a user out everywhere (admin). */
  endUserSessions: (id) => call("DELETE", `/api/auth/users/${id}/sessions`),
  /** Webhook endpoints (admin), oldest first; never with their secrets. */
  listWebhooks: (params) => call("GET", `/api/auth/webhooks?${query(params)}`),
  /** Adds an endpoint: the answer holds its signing secret, this once. */
  createWebhook: (body) => call("POST", "/api/auth/webhooks", body),
  updateWebhook: (id, changes) => call("PUT", `/api/auth/webhooks/${id}`, changes),
  deleteWebhook: (id) => call("DELETE", `/api/auth/webhooks/${id}`),
  /** A new signing secret (in the answer, this once); the old one stops at once. */
  rotateWebhookSecret: (id) => call("POST", `/api/auth/webhooks/${id}/rotate-secret`),
  /** Queues a webhook.test event for this endpoint alone: {event_id}. */
  testWebhook: (id) => call("POST", `/api/auth/webhooks/${id}/test`),
  /** An endpoint's deliveries log, newest first. */
  webhookDeliveries: (id, params) => call("GET", `/api/auth/webhooks/${id}/deliveries?${query(params)}`),
  /** Your second factors: {mfa_enabled, totp_enabled, recovery_codes_left}. */
  mfaStatus: () => call("GET", "/api/auth/me/mfa"),
  /** Begins TOTP enrolment: {secret, otpauth_uri}, pending until confirmed. */
  beginTotp: (password) => call("POST", "/api/auth/me/mfa/totp", { password }),
  /** Turns TOTP on with the app's first code: {recovery_codes}, shown this once. */
  confirmTotp: (code) => call("POST", "/api/auth/me/mfa/totp/confirm", { code }),
  /** Turns TOTP off (204): the password and a TOTP or recovery code. */
  disableTotp: (password, code) => call("DELETE", "/api/auth/me/mfa/totp", { password, code }),
  /** A new set of recovery codes: {recovery_codes}; the old set stops working. */
  renewRecoveryCodes: (password) => call("POST", "/api/auth/me/mfa/recovery-codes", { password }),
  /** Removes a user's second factors and ends their sessions (admin, 204). */
  resetUserMfa: (id) => call("DELETE", `/api/auth/users/${id}/mfa`),
  /** Your passkeys, newest first: [{id, name, created_at, last_used_at}]; 404 `not_enabled` without a relying party. */
  passkeys: () => call("GET", "/api/auth/me/passkeys"),
  /** Begins registering a passkey: {challenge_id, publicKey} (the creation options, as JSON). */
  beginPasskey: () => call("POST", "/api/auth/me/passkeys/register/start"),
  /** Keeps the browser's new credential (as JSON) under `name`: 201 the passkey. */
  finishPasskey: (name, credential, challengeId) =>
    call("POST", "/api/auth/me/passkeys/register/finish", { name, credential, challenge_id: challengeId }),
  /** Removes one of your passkeys (204). */
  deletePasskey: (id) => call("DELETE", `/api/auth/me/passkeys/${id}`),
  /** Begins a passkey sign-in: {challenge_id, publicKey} (the request options, naming no passkey). */
  beginPasskeyLogin: () => call("POST", "/api/auth/login/passkey/start", undefined, { auth: false }),
  loginPasskey,
  /** Keeps the device token of a sign-in that did not name its account (a passkey's). */
  rememberDevice: (email, token) => devices.set(email, token),
  /** How mail is configured (admin): the SMTP server, its security, the sender; never its credentials. */
  mailSettings: () => call("GET", "/api/auth/settings/mail"),
};

// ---- passkeys: WebAuthn's JSON and the browser's objects --------------------------------

// The API sends the options of `navigator.credentials.create` and `.get` as JSON (binary
// fields in base 64, URL-safe, unpadded) and takes the browser's credential back the same
// way. Browsers that have PublicKeyCredential.parseCreationOptionsFromJSON,
// .parseRequestOptionsFromJSON and PublicKeyCredential#toJSON do this themselves; for the
// others it is done here, field by field.

/** Base 64 (URL-safe or not, padded or not) to an ArrayBuffer. */
function fromBase64url(text) {
  const plain = String(text).replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  const binary = atob(plain + "=".repeat((4 - (plain.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

/** An ArrayBuffer (or a view of one) to base 64, URL-safe, unpadded. */
function toBase64url(buffer) {
  const bytes = ArrayBuffer.isView(buffer)
    ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
    : new Uint8Array(buffer);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A copy of a JSON value without its nulls (the browser takes a missing member, not a null one). */
function withoutNulls(value) {
  if (Array.isArray(value)) return value.filter((v) => v !== null).map(withoutNulls);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => [k, withoutNulls(v)]),
    );
  }
  return value;
}

/** Credential descriptors ({type, id, transports}) with their ids as bytes. */
function descriptors(list) {
  return Array.isArray(list) ? list.map((c) => ({ ...c, id: fromBase64url(c.id) })) : undefined;
}

const native = (name) => typeof globalThis.PublicKeyCredential?.[name] === "function";

/**
 * The options for `navigator.credentials.create({publicKey})` from their JSON form
 * (`PublicKeyCredentialCreationOptionsJSON`). `builtIn: false` skips the browser's own parser.
 */
export function creationOptions(json, { builtIn = true } = {}) {
  const clean = withoutNulls(json);
  if (builtIn && native("parseCreationOptionsFromJSON")) {
    return PublicKeyCredential.parseCreationOptionsFromJSON(clean);
  }
  const options = {
    ...clean,
    challenge: fromBase64url(clean.challenge),
    user: { ...clean.user, id: fromBase64url(clean.user.id) },
  };
  if (clean.excludeCredentials) options.excludeCredentials = descriptors(clean.excludeCredentials);
  return options;
}

/**
 * The options for `navigator.credentials.get({publicKey})` from their JSON form
 * (`PublicKeyCredentialRequestOptionsJSON`). `builtIn: false` skips the browser's own parser.
 */
export function requestOptions(json, { builtIn = true } = {}) {
  const clean = withoutNulls(json);
  if (builtIn && native("parseRequestOptionsFromJSON")) {
    return PublicKeyCredential.parseRequestOptionsFromJSON(clean);
  }
  const options = { ...clean, challenge: fromBase64url(clean.challenge) };
  if (clean.allowCredentials) options.allowCredentials = descriptors(clean.allowCredentials);
  return options;
}

/**
 * A new credential (`create`) or an assertion (`get`) as the JSON the API takes: what
 * `toJSON()` makes (`RegistrationResponseJSON`, `AuthenticationResponseJSON`).
 * `builtIn: false` skips the browser's own.
 */
export function credentialJson(credential, { builtIn = true } = {}) {
  if (builtIn && typeof credential.toJSON === "function") return credential.toJSON();
  const response = credential.response;
  const json = {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    response: { clientDataJSON: toBase64url(response.clientDataJSON) },
    clientExtensionResults: credential.getClientExtensionResults?.() ?? {},
  };
  if (credential.authenticatorAttachment) json.authenticatorAttachment = credential.authenticatorAttachment;
  if (response.attestationObject) {
    json.response.attestationObject = toBase64url(response.attestationObject);
    json.response.transports = response.getTransports?.() ?? [];
  } else {
    json.response.authenticatorData = toBase64url(response.authenticatorData);
    json.response.signature = toBase64url(response.signature);
    if (response.userHandle) json.response.userHandle = toBase64url(response.userHandle);
  }
  return json;
}

/**
 * Makes a passkey with the browser: the JSON creation options in, the new credential's
 * JSON out. Rejects with the browser's DOMException (NotAllowedError: the person cancelled
 * or the time ran out; InvalidStateError: this authenticator holds one of theirs already).
 */
export async function createPasskey(publicKey) {
  const credential = await navigator.credentials.create({ publicKey: creationOptions(publicKey) });
  return credentialJson(credential);
}

/** Signs with a passkey: the JSON request options in, the assertion's JSON out (rejects as above). */
export async function getPasskey(publicKey) {
  const credential = await navigator.credentials.get({ publicKey: requestOptions(publicKey), mediation: "optional" });
  return credentialJson(credential);
}
