// The Gatehouse console: log in (with a second step when two-step sign-in is on, or with a
// passkey), register (and verify the address by its mailed code), recover a forgotten
// password, wait for approval, see and end your sessions, turn two-step sign-in on and
// off, add and remove passkeys, manage users, invitations and webhooks, see how the
// server mails. Views are chosen by the part of the URL after "#/" (never
// holding a token; "#/register?invitation=CODE" carries an invitation's code, which goes
// nowhere but the registration request); every view asks the API who is signed in first,
// so a user disabled or demoted a moment ago sees the effect on the next click, and the
// server's rules stay the only rules. The tokens and their renewal are api.js's business.

import { api, createPasskey, getPasskey, session, whenEnrolmentRequired, whenSessionEnds } from "./api.js";
import { h, replace, field, messageBox, time, formatDate } from "./dom.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");

const state = {
  me: null,
  // A message for the next view (after a redirect), and the email of a pending sign-up.
  notice: null,
  pendingEmail: null,
  // A rejected user's login: {email, note}, for the page that says so.
  rejected: null,
  // The address last typed on a public page, filled in on the next one (the login page,
  // "Forgot password?", the code pages).
  email: "",
  // The "check your mail" step: {email, password, user}. The password (of the registration
  // or login that led here, to sign in once the address is verified) is kept in memory and
  // only while the step is shown; `user` is the registration's answer, if it led here.
  verification: null,
  // The login's second step: {email, token, expiresAt} (the `mfa_token` of a login that
  // answered `mfa_required`), in memory only and only while the step is shown.
  mfa: null,
  // The server refused an admin route to this admin for want of a second factor
  // (GATEHOUSE_REQUIRE_MFA_FOR_ADMINS): the admin pages show the enrolment prompt.
  enrolmentRequired: false,
  // The server answered a passkey route 404 `not_enabled`: the login page offers none.
  passkeysOff: false,
  // The device token of a passkey sign-in, kept once the next view knows the account.
  deviceToken: null,
  badgeTimer: null,
  renders: 0,
  users: { q: "", status: "", role: "", offset: 0 },
  invitations: { status: "", offset: 0 },
};

const PAGE_SIZE = 50;
const BADGE_REFRESH_MS = 30_000;

const routes = {
  // `guest`: for people who are not signed in; someone signed in goes to their home page.
  login: { title: "Log in", public: true, guest: true, view: loginView },
  register: { title: "Create an account", public: true, guest: true, view: registerView },
  forgot: { title: "Forgot your password?", public: true, guest: true, view: forgotView },
  reset: { title: "Set a new password", public: true, guest: true, view: resetView },
  verify: { title: "Verify your email address", public: true, guest: true, view: verifyView },
  "two-step": { title: "Two-step sign-in", public: true, guest: true, view: twoStepView },
  pending: { title: "Awaiting approval", public: true, view: pendingView },
  rejected: { title: "Registration declined", public: true, view: rejectedView },
  account: { title: "Your account", view: accountView },
  security: { title: "Security", view: securityView },
  sessions: { title: "Sessions", view: sessionsView },
  users: { title: "Users", admin: true, view: usersView },
  invitations: { title: "Invitations", admin: true, view: invitationsView },
  webhooks: { title: "Webhooks", admin: true, view: webhooksView },
  settings: { title: "Settings", admin: true, view: settingsView },
};

function notify(text, kind = "success") {
  state.notice = { text, kind };
}

function go(name) {
  const hash = `#/${name}`;
  if (location.hash === hash) {
    render();
  } else {
    location.hash = hash;
  }
}

function home() {
  return state.me?.is_admin ? "users" : "account";
}

whenSessionEnds((reason) => {
  state.me = null;
  // A dialog left open would cover the login page.
  for (const open of document.querySelectorAll("dialog[open]")) open.close();
  if (reason === "copied") {
    notify("This tab is a copy of another signed-in tab, which keeps the session. Log in again to use this one too.", "info");
  } else {
    notify("Your session has ended. Please log in again.", "info");
  }
  go("login");
});

/** An admin without a second factor, on a server that requires one of admins. */
function enrolmentDue() {
  return state.enrolmentRequired && Boolean(state.me?.is_admin) && !state.me.mfa_enabled;
}

whenEnrolmentRequired(() => {
  if (state.enrolmentRequired) return;
  state.enrolmentRequired = true;
  // The admin page on the screen cannot work: the prompt takes its place.
  if (state.me && routes[place().name]?.admin) render();
});

// ---- rendering ------------------------------------------------------------------------

/** The view's name (before any "?") and its parameters (after it) from the URL fragment. */
function place() {
  const raw = location.hash.replace(/^#\/?/, "");
  const at = raw.indexOf("?");
  return {
    name: at < 0 ? raw : raw.slice(0, at),
    params: new URLSearchParams(at < 0 ? "" : raw.slice(at + 1)),
  };
}

async function render() {
  const ticket = ++state.renders;
  clearInterval(state.badgeTimer);
  const { name, params } = place();
  const route = Object.hasOwn(routes, name) ? routes[name] : null;
  // The verification step's password lives no longer than the step, nor the second
  // step's token.
  if (name !== "verify") state.verification = null;
  if (name !== "two-step") state.mfa = null;

  if (session.token) {
    try {
      state.me = (await api.me()).data;
    } catch (error) {
      if (ticket !== state.renders || error.status === 401) return; // login takes over
      state.me = null;
      showFailure(error);
      return;
    }
  } else {
    state.me = null;
  }
  if (ticket !== state.renders) return;
  if (state.deviceToken) {
    if (state.me) api.rememberDevice(state.me.email, state.deviceToken);
    state.deviceToken = null;
  }

  if (!route) return go(state.me ? home() : "login");
  if (!route.public && !state.me) return go("login");
  if (state.me && route.guest) {
    if (name === "register" && params.get("invitation")) {
      notify("You are signed in already. To register with this invitation, log out and open the link again.", "info");
    }
    return go(home());
  }
  if (route.admin && !state.me.is_admin) return go(home());
  // The second step follows a password: without one (a reload), back to the login.
  if (name === "two-step" && !state.mfa) return go("login");
  // An admin who must turn on two-step sign-in first sees the prompt on the admin pages.
  const prompt = route.admin && enrolmentDue();

  renderNav(name);
  document.title = `${prompt ? "Turn on two-step sign-in" : route.title} · Gatehouse`;
  const notice = state.notice;
  state.notice = null;
  replace(main, (prompt ? enrolmentPromptView : route.view)(notice, params));
  const first = main.querySelector("[data-autofocus]") ?? main.querySelector("h1");
  first?.focus();
}

function showFailure(error) {
  renderNav(null);
  document.title = "Gatehouse";
  const msg = messageBox();
  msg.show(error.message);
  replace(
    main,
    h(
      "section",
      { class: "narrow panel" },
      h("h1", { tabindex: "-1" }, "Gatehouse is not answering"),
      msg.el,
      h("button", { type: "button", class: "primary", onclick: () => render() }, "Try again"),
    ),
  );
  main.querySelector("h1")?.focus();
}

function heading(text) {
  return h("h1", { tabindex: "-1" }, text);
}

/** An email address as text that wraps anywhere (it may be 254 bytes without a break). */
function address(email) {
  return h("span", { class: "address" }, email);
}

function noticeBox(notice) {
  const box = messageBox();
  if (notice) box.show(notice.text, notice.kind);
  return box;
}

// ---- navigation -----------------------------------------------------------------------

function renderNav(current) {
  const me = state.me;
  if (!me) {
    nav.hidden = true;
    replace(nav);
    return;
  }
  // A link to the page already shown reloads it (no hash change would).
  const link = (name, ...label) =>
    h(
      "a",
      {
        href: `#/${name}`,
        "aria-current": name === current ? "page" : null,
        onclick: (event) => {
          if (location.hash === `#/${name}`) {
            event.preventDefault();
            render();
          }
        },
      },
      ...label,
    );
  const badge = h("span", { class: "badge", id: "pending-badge", hidden: true });
  replace(
    nav,
    h(
      "ul",
      {},
      me.is_admin ? h("li", {}, link("users", "Users", badge)) : null,
      me.is_admin ? h("li", {}, link("invitations", "Invitations")) : null,
      me.is_admin ? h("li", {}, link("webhooks", "Webhooks")) : null,
      h("li", {}, link("account", "Account")),
      h("li", {}, link("security", "Security")),
      h("li", {}, link("sessions", "Sessions")),
      me.is_admin ? h("li", {}, link("settings", "Settings")) : null,
    ),
    h(
      "span",
      { class: "who" },
      "Signed in as ",
      h("strong", { class: "address" }, me.email),
      me.is_admin ? " (admin)" : "",
    ),
    h("button", { type: "button", onclick: logout }, "Log out"),
  );
  nav.hidden = false;
  // The count is an admin route: closed to an admin who must turn on two-step sign-in.
  if (me.is_admin && !enrolmentDue()) {
    updateBadge();
    state.badgeTimer = setInterval(() => {
      if (document.visibilityState === "visible") updateBadge();
    }, BADGE_REFRESH_MS);
  }
}

async function updateBadge() {
  const badge = document.getElementById("pending-badge");
  if (!badge) return;
  try {
    const { count } = (await api.pendingCount()).data;
    replace(
      badge,
      h("span", { "aria-hidden": "true" }, String(count)),
      h("span", { class: "visually-hidden" }, ` (${count} pending)`),
    );
    badge.title = `${count} waiting for approval`;
    badge.hidden = count === 0;
  } catch {
    // The badge is a hint; the page itself reports errors.
  }
}

async function logout() {
  await api.logout(); // ends the session on the server if it can; forgets it here anyway
  state.me = null;
  notify("You have logged out.", "info");
  go("login");
}

// ---- helpers for forms ----------------------------------------------------------------

const bytes = (text) => new TextEncoder().encode(text).length;

/** The policy's length rule, checked before asking the server (which checks it too). */
function passwordProblem(password) {
  if (!password) return "Enter a password.";
  if (bytes(password) < 8) return "Use at least 8 characters.";
  if (bytes(password) > 72) return "Use at most 72 bytes (about 72 letters; fewer with accents or emoji).";
  return null;
}

const PASSWORD_HINT = "8 to 72 characters. Very common passwords are refused.";

/** The email field of the login and registration forms. */
function emailField() {
  return field("Email", {
    type: "email",
    name: "email",
    autocomplete: "username",
    required: true,
    "data-autofocus": true,
  });
}

/**
 * A new password typed twice: `input` (with the policy's hint) and `repeat`.
 * `value()` gives the password, or null after marking what is wrong on its field.
 */
function newPasswordFields(label, repeatLabel, attrs = {}) {
  const input = field(
    label,
    { type: "password", name: "new", autocomplete: "new-password", ...attrs },
    PASSWORD_HINT,
  );
  const repeat = field(repeatLabel, {
    type: "password",
    name: "confirm",
    autocomplete: "new-password",
    required: attrs.required,
  });
  return {
    input,
    repeat,
    rows: [input.row, repeat.row],
    value() {
      const chosen = input.input.value;
      const problem = passwordProblem(chosen);
      if (problem) {
        input.setError(problem);
        return null;
      }
      if (chosen !== repeat.input.value) {
        repeat.setError("The two passwords are not the same.");
        return null;
      }
      return chosen;
    },
  };
}

/** Runs `work` with the submit button busy; returns whatever `work` returns. */
async function busy(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

function form(onsubmit, ...children) {
  return h(
    "form",
    {
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        onsubmit(event);
      },
    },
    ...children,
  );
}

// ---- public views ---------------------------------------------------------------------

function loginView(notice) {
  const msg = noticeBox(notice);
  const email = emailField();
  const password = field("Password", {
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
  });
  // Back from a recovery or a verification: the address is filled in.
  if (state.email) {
    email.input.value = state.email;
    email.input.removeAttribute("data-autofocus");
    password.input.setAttribute("data-autofocus", "");
  }
  // The links to the recovery and the code pages take the address typed so far along.
  const carry = () => {
    state.email = email.input.value.trim();
  };
  const submit = h("button", { type: "submit", class: "primary full" }, "Log in");
  const onsubmit = () =>
    busy(submit, async () => {
      msg.clear();
      const address = email.input.value.trim();
      if (!address) return email.setError("Enter your email address.");
      if (!password.input.value) return password.setError("Enter your password.");
      try {
        const { data } = await api.login(address, password.input.value);
        if (signedIn(address, data)) go(""); // the default view for whoever this is
      } catch (error) {
        if (error.code === "account_pending") {
          state.pendingEmail = address;
          go("pending");
        } else if (error.code === "account_rejected") {
          state.rejected = { email: address, note: error.note };
          go("rejected");
        } else if (error.code === "email_unverified") {
          // The right password, but the address must be verified first: the code step,
          // which signs in once it is.
          state.verification = { email: address, password: password.input.value, user: null };
          go("verify");
        } else {
          msg.show(error.message);
          password.input.value = "";
        }
      }
    });
  return h(
    "section",
    { class: "narrow panel", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title", tabindex: "-1" }, "Log in"),
    msg.el,
    form(onsubmit, email.row, password.row, submit),
    passkeysPossible() && !state.passkeysOff ? passkeyLogin(msg) : null,
    h("p", { class: "forgot" }, h("a", { href: "#/forgot", onclick: carry }, "Forgot password?")),
    h("p", {}, "No account yet? ", h("a", { href: "#/register" }, "Create an account")),
    h(
      "p",
      { class: "muted" },
      "Got a code to confirm your email address? ",
      h("a", { href: "#/verify", onclick: carry }, "Verify your email"),
    ),
  );
}

/**
 * "Sign in with a passkey", under the login form: the browser's passkey dialog (no address
 * typed: the passkey names its account), then signed in as after a password. Errors go to
 * the login page's message box `msg`.
 */
function passkeyLogin(msg) {
  const button = h("button", { type: "button", class: "full passkey-login" }, "Sign in with a passkey");
  const part = h("div", { class: "passkey-part" }, h("p", { class: "or" }, h("span", {}, "or")), button);

  // The API refused: the same pages and words as the password login, where they apply.
  function refused(error) {
    if (error.status === 404 && error.code === "not_enabled") {
      state.passkeysOff = true;
      part.hidden = true;
      return msg.show(`${PASSKEYS_OFF} Log in with your email and password.`, "info");
    }
    if (error.code === "invalid_credential") {
      return msg.show(
        "That passkey is not known here: it may have been removed from your account, or be for another account or site. Log in with your email and password.",
      );
    }
    if (error.code === "account_pending") {
      state.pendingEmail = null;
      return go("pending");
    }
    if (error.code === "account_rejected") {
      state.rejected = { email: null, note: error.note };
      return go("rejected");
    }
    if (error.code === "email_unverified") {
      // No password to sign in with afterwards: the code step asks for the address too.
      state.verification = null;
      notify(
        "Your email address has to be verified before you can sign in. Enter it and the code mailed to it when you registered, then sign in again.",
        "info",
      );
      return go("verify");
    }
    return msg.show(error.message);
  }

  button.addEventListener("click", () =>
    busy(button, async () => {
      msg.clear();
      let start;
      try {
        start = (await api.beginPasskeyLogin()).data;
      } catch (error) {
        return refused(error);
      }
      let credential;
      try {
        credential = await getPasskey(start.publicKey);
      } catch (error) {
        const problem = ceremonyProblem(error, "get");
        return msg.show(problem.text, problem.kind);
      }
      let data;
      try {
        data = (await api.loginPasskey(start.challenge_id, credential)).data;
      } catch (error) {
        return refused(error);
      }
      state.deviceToken = data?.device_token ?? null;
      if (signedIn("", data)) go(""); // the default view for whoever this is
    }),
  );
  return part;
}

/**
 * After a login's answer: the session starts (true), or, when the account has two-step
 * sign-in on (`mfa_required`, no tokens yet), the second step is shown (false).
 */
function signedIn(email, data) {
  if (data?.mfa_required) {
    const lifetime = Number(data.expires_in) > 0 ? Number(data.expires_in) : 300;
    state.mfa = { email, token: data.mfa_token, expiresAt: Date.now() + lifetime * 1000 };
    go("two-step");
    return false;
  }
  session.start(data);
  return true;
}

/** A free-text field (a reason, a note): at most 500 characters, newlines kept. */
function textField(label, attrs, hint) {
  return field(label, { rows: "3", maxlength: "500", ...attrs }, hint, "textarea");
}

function registerView(notice, params) {
  const invited = (params.get("invitation") ?? "").trim();
  const msg = noticeBox(notice);
  if (invited && !notice) {
    msg.show("You were invited: the invitation code is filled in, and your account is ready as soon as you register.", "info");
  }
  const email = emailField();
  const password = newPasswordFields("Password", "Repeat the password", {
    name: "password",
    required: true,
  });
  const reason = textField(
    "Why do you want an account?",
    { name: "reason" },
    "Optional. Shown to the administrators who approve accounts.",
  );
  const invitation = field(
    "Invitation code",
    {
      type: "text",
      name: "invitation",
      autocomplete: "off",
      autocapitalize: "off",
      spellcheck: "false",
      value: invited,
    },
    invited
      ? "Filled in from your invitation link."
      : "Optional. With a code from an administrator, your account is ready at once.",
  );
  const submit = h("button", { type: "submit", class: "primary full" }, "Create account");
  const onsubmit = () =>
    busy(submit, async () => {
      msg.clear();
      const address = email.input.value.trim();
      if (!address) return email.setError("Enter your email address.");
      const chosen = password.value();
      if (chosen === null) return;
      const code = invitation.input.value.trim();
      let user;
      try {
        user = (
          await api.register(address, chosen, { reason: reason.input.value.trim(), invitation: code })
        ).data;
      } catch (error) {
        if (error.status === 409) return email.setError(error.message);
        if (error.code === "invalid_invitation") {
          return invitation.setError(
            `${error.message} It may have expired, been used up or revoked, or be meant for another email address.`,
          );
        }
        if (error.code === "registration_closed") {
          return msg.show(
            code ? error.message : `${error.message} If you were invited, enter your invitation code.`,
          );
        }
        const problems = [
          [email, error.forField("email")],
          [password.input, error.forField("password")],
          [reason, error.forField("reason")],
          [invitation, error.forField("invitation")],
        ].filter(([, problem]) => problem);
        for (const [f, problem] of problems) f.setError(problem);
        if (problems.length === 0) msg.show(error.message);
        return;
      }
      // A server with a mailer has sent a code to the address: the "check your mail" step
      // first (asking the server whether it mails sends nothing and counts nothing).
      if (user.email_verified === false && (await api.mailsCodes())) {
        state.verification = { email: user.email, password: chosen, user, invited: Boolean(code) };
        return go("verify");
      }
      await afterRegistration(user, address, chosen, Boolean(code));
    });
  return h(
    "section",
    { class: "narrow panel" },
    heading("Create an account"),
    msg.el,
    form(onsubmit, email.row, ...password.rows, reason.row, invitation.row, submit),
    h("p", {}, "Already registered? ", h("a", { href: "#/login" }, "Log in")),
  );
}

/** After a registration that needs no verification: the pending page, or signed in. */
async function afterRegistration(user, address, password, invited) {
  if (user.status !== "approved") {
    state.pendingEmail = user.email;
    return go("pending");
  }
  // Invited, or the first user: approved at once, so log in.
  try {
    const { data } = await api.login(address, password);
    notify(welcome(user, invited));
    if (!signedIn(address, data)) return;
    go(user.is_admin ? "users" : "account");
  } catch (error) {
    notify(`Your account was created, but logging in failed: ${error.message}`, "error");
    go("login");
  }
}

/** The welcome of a registration (`user`, its answer) that ends signed in. */
function welcome(user, invited) {
  // Pending when registered, approved now: its domain is approved once verified.
  if (user.status !== "approved") return "Welcome! Your account is ready.";
  if (!invited) return "Welcome! You are the first user, so you are the administrator.";
  if (user.is_admin) return "Welcome! You were invited as an administrator: your account is ready.";
  return "Welcome! You were invited, so your account is ready.";
}

// ---- the login's second step -------------------------------------------------------------

/** Wrong codes a second step takes before its token dies (the API's rule). */
const MFA_TRIES = 5;

/** What is wrong with a typed authenticator code (6 digits, spaces allowed), if anything. */
function totpProblem(code) {
  const digits = code.replace(/\s/g, "");
  if (!digits) return "Enter the 6-digit code from your authenticator app.";
  if (!/^\d{6}$/.test(digits)) return "The code has 6 digits, such as 123 456.";
  return null;
}

/** What is wrong with a typed recovery code (10 characters, ABCDE-FGHJK), if anything. */
function recoveryCodeProblem(code) {
  const plain = code.replace(/[\s-]/g, "");
  if (!plain) return "Enter one of your recovery codes.";
  if (plain.length !== 10) return "A recovery code has 10 characters, such as ABCDE-FGHJK.";
  return null;
}

/**
 * The login's second step: the code from the authenticator app, or a recovery code. Its
 * token (in memory) lasts 5 minutes and takes 5 wrong codes; then the password again.
 */
function twoStepView(notice) {
  const step = state.mfa;
  const msg = noticeBox(notice);
  let recovery = false;
  let wrong = 0;
  const code = field(
    "Authentication code",
    {
      type: "text",
      name: "code",
      inputmode: "numeric",
      autocomplete: "one-time-code",
      autocapitalize: "off",
      spellcheck: "false",
      maxlength: "32",
      "data-autofocus": true,
    },
    "The 6-digit code your authenticator app shows for Gatehouse now.",
  );
  const label = code.row.querySelector("label");
  const submit = h("button", { type: "submit", class: "primary full" }, "Verify");
  const other = h("button", { type: "button", class: "link" }, "Use a recovery code instead");
  const back = () => {
    state.email = step.email;
  };
  const again = h(
    "button",
    {
      type: "button",
      class: "primary full",
      hidden: true,
      onclick: () => {
        back();
        go("login");
      },
    },
    "Log in again",
  );

  other.addEventListener("click", () => {
    recovery = !recovery;
    code.setError(null);
    code.input.value = "";
    label.textContent = recovery ? "Recovery code" : "Authentication code";
    code.hint.textContent = recovery
      ? "One of the recovery codes you saved when you turned on two-step sign-in, such as ABCDE-FGHJK. Each works once."
      : "The 6-digit code your authenticator app shows for Gatehouse now.";
    code.input.inputMode = recovery ? "text" : "numeric";
    code.input.setAttribute("autocomplete", recovery ? "off" : "one-time-code");
    code.input.setAttribute("autocapitalize", recovery ? "characters" : "off");
    other.textContent = recovery ? "Use the code from your app instead" : "Use a recovery code instead";
    code.input.focus();
  });

  const over = () => wrong >= MFA_TRIES || Date.now() >= step.expiresAt;
  // The token is dead: only the password step can start a new one.
  function expired() {
    stepForm.hidden = true;
    other.hidden = true;
    again.hidden = false;
    msg.show(
      wrong >= MFA_TRIES
        ? `That was ${MFA_TRIES} wrong codes: this sign-in has ended. Log in again with your password to get new tries.`
        : "This sign-in has expired: the second step must follow the password within 5 minutes. Log in again with your password.",
    );
    again.focus();
  }

  const onsubmit = () =>
    busy(submit, async () => {
      msg.clear();
      const typed = code.input.value.trim();
      const problem = recovery ? recoveryCodeProblem(typed) : totpProblem(typed);
      if (problem) return code.setError(problem);
      if (over()) return expired();
      let data;
      try {
        data = (await api.loginMfa(step.email, step.token, recovery ? typed : typed.replace(/\s/g, ""))).data;
      } catch (error) {
        // The account's second factor cannot be checked (the server's secret changed): no
        // code helps, an admin must reset it.
        if (error.code === "mfa_unavailable" && error.detail) return msg.show(sentence(error.detail));
        if (error.code !== "invalid_code") return msg.show(error.message);
        wrong += 1;
        if (over()) return expired();
        code.input.value = "";
        const left = MFA_TRIES - wrong;
        const tries = `${left} ${left === 1 ? "try" : "tries"} left before you must log in again.`;
        return code.setError(
          recovery
            ? `That recovery code is not right, or it was used already. ${tries}`
            : `That code is not right: enter the one your app shows now (it changes every 30 seconds). ${tries}`,
        );
      }
      state.mfa = null;
      if (signedIn(step.email, data)) go(""); // the default view for whoever this is
    });
  const stepForm = form(onsubmit, code.row, submit);
  return h(
    "section",
    { class: "narrow panel", "aria-labelledby": "two-step-title" },
    h("h1", { id: "two-step-title", tabindex: "-1" }, "Two-step sign-in"),
    h(
      "p",
      {},
      "Your password is right. To finish signing in as ",
      h("strong", { class: "address" }, step.email),
      ", enter the code from your authenticator app.",
    ),
    msg.el,
    stepForm,
    again,
    h("p", { class: "forgot" }, other),
    h("p", {}, h("a", { href: "#/login", onclick: back }, "Back to log in")),
  );
}

// ---- recovery and verification --------------------------------------------------------

const RECOVERY_OFF =
  "Password recovery is not set up on this server: it needs mail, and this server sends none. Ask an administrator to reset your password.";

/** A sentence of the API's (which may lack its full stop). */
function sentence(text) {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

/** The answer of the routes that mail a code, as a sentence. */
function onItsWay(answer) {
  return `${sentence(answer?.message ?? "If that address is registered, a code is on its way")} Check your mail.`;
}

/** The email field of the code pages: filled in with the address known so far. */
function addressField() {
  return field("Email", {
    type: "email",
    name: "email",
    autocomplete: "username",
    required: true,
    value: state.email,
    "data-autofocus": !state.email,
  });
}

/** The field for a mailed code (ABCD-EFGH). */
function codeField(attrs = {}) {
  return field(
    "Code",
    {
      type: "text",
      name: "code",
      autocomplete: "one-time-code",
      autocapitalize: "characters",
      spellcheck: "false",
      maxlength: "32",
      ...attrs,
    },
    "The 8 characters from the mail, such as ABCD-EFGH. Small letters, spaces and hyphens do not matter.",
  );
}

/** What is wrong with a typed code, before asking the server (which checks it too). */
function codeProblem(code) {
  const plain = code.replace(/[\s-]/g, "");
  if (!plain) return "Enter the code from the mail.";
  if (plain.length !== 8) return "The code has 8 characters, such as ABCD-EFGH.";
  return null;
}

function forgotView(notice) {
  const msg = noticeBox(notice);
  const email = emailField();
  email.input.value = state.email;
  const submit = h("button", { type: "submit", class: "primary full" }, "Send me a code");
  const sendForm = form(
    () =>
      busy(submit, async () => {
        msg.clear();
        const address = email.input.value.trim();
        if (!address) return email.setError("Enter your email address.");
        let answer;
        try {
          answer = (await api.forgotPassword(address)).data;
        } catch (error) {
          if (error.code === "not_enabled") return off();
          const issue = error.forField("email");
          if (issue) return email.setError(issue);
          return msg.show(error.message);
        }
        state.email = address;
        notify(onItsWay(answer), "info");
        go("reset");
      }),
    email.row,
    submit,
  );
  const links = h(
    "p",
    {},
    "Have a code already? ",
    h("a", { href: "#/reset", onclick: () => (state.email = email.input.value.trim()) }, "Enter it"),
  );
  // A server without a mailer cannot send a code: say so at once, and ask for nothing.
  function off() {
    sendForm.hidden = true;
    links.hidden = true;
    msg.show(RECOVERY_OFF);
    if (!main.contains(document.activeElement) || document.activeElement === email.input) {
      main.querySelector("h1")?.focus();
    }
  }
  api.mailsCodes().then((on) => {
    if (!on && sendForm.isConnected) off();
  });
  return h(
    "section",
    { class: "narrow panel" },
    heading("Forgot your password?"),
    h(
      "p",
      { class: "muted" },
      "Enter the email address of your account. If it is registered, a code to set a new password is mailed to it.",
    ),
    msg.el,
    sendForm,
    links,
    h("p", {}, h("a", { href: "#/login" }, "Back to log in")),
  );
}

function resetView(notice) {
  const msg = noticeBox(notice);
  const email = addressField();
  const code = codeField({ "data-autofocus": Boolean(state.email) });
  const password = newPasswordFields("New password", "Repeat the new password", { required: true });
  const submit = h("button", { type: "submit", class: "primary full" }, "Set new password");
  const onsubmit = () =>
    busy(submit, async () => {
      msg.clear();
      const address = email.input.value.trim();
      if (!address) return email.setError("Enter your email address.");
      const typed = code.input.value.trim();
      const problem = codeProblem(typed);
      if (problem) return code.setError(problem);
      const chosen = password.value();
      if (chosen === null) return;
      try {
        await api.recoverPassword(address, typed, chosen);
      } catch (error) {
        if (error.code === "invalid_code") {
          return code.setError(`${error.message} Check the address and the code, or ask for a new code.`);
        }
        if (error.code === "not_enabled") return msg.show(RECOVERY_OFF);
        const problems = [
          [email, error.forField("email")],
          [code, error.forField("code")],
          [password.input, error.forField("new_password")],
        ].filter(([, issue]) => issue);
        for (const [f, issue] of problems) f.setError(issue);
        if (problems.length === 0) msg.show(error.message);
        return;
      }
      state.email = address;
      notify("Your new password is set, and every session of yours has been signed out. Log in with the new password.");
      go("login");
    });
  return h(
    "section",
    { class: "narrow panel" },
    heading("Set a new password"),
    h("p", { class: "muted" }, "Enter the code from the mail and choose a new password."),
    msg.el,
    form(onsubmit, email.row, code.row, ...password.rows, submit),
    h(
      "p",
      {},
      "No code, or it has expired? ",
      h("a", { href: "#/forgot", onclick: () => (state.email = email.input.value.trim()) }, "Ask for a new one"),
    ),
    h("p", {}, h("a", { href: "#/login" }, "Back to log in")),
  );
}

/**
 * The "check your mail" step: after a registration, after a login refused for an
 * unverified address, or opened from the login page (then the address is asked for too).
 */
function verifyView(notice) {
  const step = state.verification;
  const msg = noticeBox(notice);
  const email = step ? null : addressField();
  const code = codeField({ "data-autofocus": Boolean(step || state.email) });
  const submit = h("button", { type: "submit", class: "primary full" }, "Verify");
  const resend = h("button", { type: "button" }, "Send a new code");
  const address = () => (step ? step.email : email.input.value.trim());

  const onsubmit = () =>
    busy(submit, async () => {
      msg.clear();
      const to = address();
      if (!to) return email.setError("Enter your email address.");
      const typed = code.input.value.trim();
      const problem = codeProblem(typed);
      if (problem) return code.setError(problem);
      try {
        await api.verifyEmail(to, typed);
      } catch (error) {
        if (error.code === "not_enabled") return notNeeded();
        if (error.code === "invalid_code") {
          return code.setError(`${error.message} Check it against the newest mail, or send a new code.`);
        }
        const issue = error.forField("email");
        if (issue && email) return email.setError(issue);
        return msg.show(error.message);
      }
      await verified(step, to);
    });
  resend.addEventListener("click", () =>
    busy(resend, async () => {
      msg.clear();
      const to = address();
      if (!to) return email.setError("Enter your email address.");
      try {
        msg.show(onItsWay((await api.resendVerification(to)).data), "info");
      } catch (error) {
        if (error.code === "not_enabled") return notNeeded();
        const issue = error.forField("email");
        if (issue && email) return email.setError(issue);
        msg.show(error.message);
      }
    }),
  );

  // This server has no mailer, so nothing is verified: on as if there were no step.
  async function notNeeded() {
    if (step?.user) return afterRegistration(step.user, step.email, step.password, step.invited);
    notify("This server does not verify email addresses: there is nothing to confirm. Log in as usual.", "info");
    go("login");
  }

  let intro;
  if (step?.user) {
    intro = [
      "We have mailed a code to ",
      h("strong", { class: "address" }, step.email),
      ". Enter it here to confirm that the address is yours.",
    ];
  } else if (step) {
    intro = [
      "Your email address has to be verified before you can log in. Enter the code mailed to ",
      h("strong", { class: "address" }, step.email),
      " when you registered, or send a new one.",
    ];
  } else {
    intro = "Enter your email address and the code mailed to it when you registered.";
  }
  return h(
    "section",
    { class: "narrow panel" },
    heading(step ? "Check your mail" : "Verify your email address"),
    h("p", {}, intro),
    msg.el,
    form(onsubmit, email?.row, code.row, submit),
    h("p", { class: "resend" }, h("span", { class: "muted" }, "No mail, or the code has expired? "), resend),
    h("p", {}, h("a", { href: "#/login" }, "Back to log in")),
  );
}

/** After the address is verified: signed in with the step's password, when it has one. */
async function verified(step, email) {
  const done = "Your email address is verified.";
  if (!step?.password) {
    state.email = email;
    notify(`${done} Log in to go on.`);
    return go("login");
  }
  try {
    const { data } = await api.login(email, step.password);
    if (!signedIn(email, data)) {
      notify(`${done} One more step: the code from your authenticator app.`, "info");
      return;
    }
  } catch (error) {
    if (error.code === "account_pending") {
      state.pendingEmail = email;
      notify(`${done} Your account now waits for an administrator's approval.`);
      return go("pending");
    }
    if (error.code === "account_rejected") {
      state.rejected = { email, note: error.note };
      return go("rejected");
    }
    state.email = email;
    notify(`${done} Logging in failed: ${error.message}`, "error");
    return go("login");
  }
  notify(step.user ? `${done} ${welcome(step.user, step.invited)}` : `${done} You are signed in.`);
  go(""); // the default view for whoever this is
}

function pendingView(notice) {
  const who = state.pendingEmail;
  return h(
    "section",
    { class: "narrow panel stack" },
    heading("Your account awaits approval"),
    notice ? noticeBox(notice).el : null,
    h(
      "p",
      {},
      "An administrator has to approve ",
      who ? h("strong", { class: "address" }, who) : "your account",
      " before you can log in.",
    ),
    h("p", { class: "muted" }, "You can close this page and log in once you have been approved."),
    h("p", {}, h("a", { href: "#/login" }, "Back to log in")),
  );
}

function rejectedView() {
  const rejected = state.rejected;
  let note;
  if (!rejected) {
    note = h("p", { class: "muted" }, "Log in again to see the administrator's note, if they left one.");
  } else if (rejected.note) {
    note = [
      h("p", {}, "The administrator's note:"),
      h("blockquote", { class: "decision-note" }, rejected.note),
    ];
  } else {
    note = h("p", { class: "muted" }, "No reason was given.");
  }
  return h(
    "section",
    { class: "narrow panel stack" },
    heading("Your registration was declined"),
    h(
      "p",
      {},
      "An administrator declined the account request for ",
      rejected?.email ? h("strong", { class: "address" }, rejected.email) : "this address",
      ". You cannot log in with it.",
    ),
    note,
    h("p", {}, h("a", { href: "#/login" }, "Back to log in")),
  );
}

// ---- the signed-in user's account -----------------------------------------------------

function roleName(user) {
  return user.is_admin ? "Admin" : "User";
}

function statusName(status) {
  return (
    { pending: "Pending", approved: "Approved", disabled: "Disabled", rejected: "Rejected" }[status] ??
    status
  );
}

function accountView(notice) {
  const me = state.me;
  const msg = noticeBox(notice);
  const current = field("Current password", {
    type: "password",
    name: "current",
    autocomplete: "current-password",
  });
  const next = newPasswordFields("New password", "Repeat the new password");
  const submit = h("button", { type: "submit", class: "primary" }, "Change password");
  const passwordForm = form(
    () =>
      busy(submit, async () => {
        msg.clear();
        if (!current.input.value) return current.setError("Enter your current password.");
        const chosen = next.value();
        if (chosen === null) return;
        try {
          const { data } = await api.changePassword(current.input.value, chosen);
          session.start(data); // a fresh pair for this session; the others have ended
          for (const f of [current, next.input, next.repeat]) f.input.value = "";
          msg.show("Your password has been changed. Your other sessions have been signed out.");
        } catch (error) {
          if (error.code === "invalid_password") return current.setError(error.message);
          const issue = error.forField("new_password");
          if (issue) return next.input.setError(issue);
          msg.show(error.message);
        }
      }),
    current.row,
    ...next.rows,
    submit,
  );
  return h(
    "div",
    { class: "stack" },
    heading("Your account"),
    msg.el,
    h(
      "section",
      { class: "panel", "aria-labelledby": "details-title" },
      h("h2", { id: "details-title" }, "Details"),
      h(
        "dl",
        { class: "details" },
        h("dt", {}, "Email"),
        h("dd", { class: "address" }, me.email),
        h("dt", {}, "Role"),
        h("dd", {}, roleName(me)),
        h("dt", {}, "Status"),
        h("dd", {}, statusName(me.status)),
        h("dt", {}, "Member since"),
        h("dd", {}, time(me.created_at)),
        h("dt", {}, "Two-step sign-in"),
        h(
          "dd",
          { "data-field": "mfa" },
          me.mfa_enabled ? "On" : "Off",
          " · ",
          h("a", { href: "#/security" }, me.mfa_enabled ? "Manage it" : "Turn it on"),
        ),
      ),
    ),
    h(
      "section",
      { class: "panel narrow-form", "aria-labelledby": "password-title" },
      h("h2", { id: "password-title" }, "Change your password"),
      passwordForm,
    ),
  );
}

// ---- security: two-step sign-in ------------------------------------------------------

/** The field for the current password of a security change. */
function currentPasswordField(attrs = {}) {
  return field("Current password", {
    type: "password",
    name: "current",
    autocomplete: "current-password",
    ...attrs,
  });
}

/** The field for the authenticator app's 6-digit code. */
function appCodeField(label, hint, attrs = {}) {
  return field(
    label,
    {
      type: "text",
      name: "code",
      inputmode: "numeric",
      autocomplete: "one-time-code",
      autocapitalize: "off",
      spellcheck: "false",
      maxlength: "16",
      ...attrs,
    },
    hint,
  );
}

/** A base 32 secret in groups of four, as people type it: "ABCD EFGH …". */
function groupsOfFour(secret) {
  return secret.match(/.{1,4}/g)?.join(" ") ?? secret;
}

/** "1 recovery code" / "7 recovery codes". */
function recoveryCodes(n) {
  return `${n} recovery ${n === 1 ? "code" : "codes"}`;
}

/** Saves `text` as a file named `name` through a Blob URL (nothing leaves the browser). */
function download(text, name) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * The enrolment prompt, in place of an admin page, when the server requires admins to have
 * a second factor (GATEHOUSE_REQUIRE_MFA_FOR_ADMINS) and this admin has none.
 */
function enrolmentPromptView() {
  return h(
    "section",
    { class: "narrow panel stack", "aria-labelledby": "enrol-title" },
    h("h1", { id: "enrol-title", tabindex: "-1" }, "Admins must turn on two-step sign-in"),
    h(
      "p",
      {},
      "This server requires every administrator to sign in with two steps: the password, then a code from an authenticator app on their phone.",
    ),
    h(
      "p",
      { class: "muted" },
      "Until you turn it on, the admin pages (users, invitations, webhooks, settings) stay closed to you. Your own account, security and sessions pages stay open.",
    ),
    h("p", {}, h("a", { class: "button primary", href: "#/security" }, "Turn on two-step sign-in")),
  );
}

// ---- passkeys ---------------------------------------------------------------------------

const PASSKEYS_OFF = "Passkeys are not set up on this server.";

/** Whether `host` (as location.hostname has it) is an IP address, where WebAuthn never works. */
function isIpAddress(host) {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}

/** Whether this browser, at this address, can use passkeys at all. */
function passkeysPossible() {
  return typeof window.PublicKeyCredential === "function" && !isIpAddress(location.hostname);
}

/**
 * What went wrong in the browser's passkey dialog (`doing`: "create" or "get"), in words:
 * {text, kind}, kind "info" when the person just stopped (or let the time run out).
 */
function ceremonyProblem(error, doing) {
  const making = doing === "create";
  switch (error?.name) {
    case "NotAllowedError":
    case "AbortError":
      return {
        kind: "info",
        text: making
          ? "No passkey was added: the browser's passkey dialog was closed, or it timed out. Try again when you are ready."
          : "No passkey was used: the browser's passkey dialog was closed, or it timed out. Try again, or log in with your email and password.",
      };
    case "InvalidStateError":
      return {
        kind: "error",
        text: "This device or password manager already holds a passkey for your account here. Use another one, or remove the old passkey first.",
      };
    case "SecurityError":
      return {
        kind: "error",
        text: `This browser refused to ${making ? "make" : "use"} a passkey at this address. Open the console at the server's public address (GATEHOUSE_PUBLIC_URL).`,
      };
    case "NotSupportedError":
      return {
        kind: "error",
        text: "This browser or device cannot make the kind of passkey Gatehouse asks for (one that signs in by itself, unlocked with a fingerprint, face, PIN or screen lock).",
      };
    default:
      return {
        kind: "error",
        text: `The browser could not ${making ? "make" : "use"} a passkey${error?.message ? `: ${sentence(error.message)}` : "."}`,
      };
  }
}

/** A name for a new passkey: this browser and system, "Chrome on macOS". */
function defaultPasskeyName() {
  return deviceName(navigator.userAgent).replace(/ \d+(?= on |$)/, "").slice(0, PASSKEY_NAME_MAX);
}

const PASSKEY_NAME_MAX = 64;

/** What is wrong with a typed passkey name (the API's rule), if anything. */
function passkeyNameProblem(name) {
  if (!name) return "Enter a name for the passkey.";
  if ([...name].length > PASSKEY_NAME_MAX) return `Use at most ${PASSKEY_NAME_MAX} characters.`;
  if (/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/.test(name)) {
    return "Use letters, digits, spaces and punctuation only.";
  }
  return null;
}

/**
 * The Security page's passkeys: the list (`GET /api/auth/me/passkeys`), Add a passkey (a
 * name, then the browser's dialog) and Remove (asks first). `changed(text)` is called after
 * an addition or a removal (`mfa_enabled` may have changed with it), with the words that
 * said so; `offered()` once the server has answered that it offers passkeys.
 */
function passkeysPanel(changed, offered) {
  const msg = messageBox();
  msg.el.tabIndex = -1;
  const body = h("div", { class: "mfa-body passkeys-body" }, h("p", { class: "muted" }, "Loading…"));

  function show(...children) {
    replace(body, ...children);
    (body.querySelector("[data-autofocus]") ?? body.querySelector("h3"))?.focus();
  }

  async function load() {
    let passkeys;
    try {
      passkeys = (await api.passkeys()).data;
    } catch (error) {
      if (error.status === 404 && error.code === "not_enabled") return replace(body, ...notSetUp());
      replace(body);
      if (error.status !== 401) msg.show(`Could not read your passkeys: ${error.message}`);
      return;
    }
    replace(body, ...overviewOf(passkeys));
    offered();
  }

  function notSetUp() {
    return [
      h("p", {}, PASSKEYS_OFF),
      h(
        "p",
        { class: "muted" },
        "An administrator turns them on by setting GATEHOUSE_PUBLIC_URL to the address people open Gatehouse at, with a domain name (such as id.example.com), not an IP address.",
      ),
    ];
  }

  function overviewOf(passkeys) {
    let adding;
    if (typeof window.PublicKeyCredential !== "function") {
      adding = h("p", { class: "muted" }, "This browser cannot use passkeys: add one from a browser that can.");
    } else if (isIpAddress(location.hostname)) {
      adding = h(
        "p",
        { class: "muted" },
        `Browsers offer passkeys on domain names only, and this page is open at an IP address (${location.hostname}). Open the console at the server's public address to add one.`,
      );
    } else {
      adding = h(
        "button",
        { type: "button", class: "primary", onclick: () => show(...addStep()) },
        "Add a passkey",
      );
    }
    return [
      h(
        "p",
        {},
        "A passkey signs you in without your password or a code: your phone, computer, password manager or security key keeps it, and unlocks it with your fingerprint, face, PIN or screen lock. It works on this site only, so it cannot be phished.",
      ),
      passkeys.length === 0
        ? h("p", { class: "muted passkeys-none" }, "You have no passkeys yet.")
        : h(
            "ul",
            { class: "passkey-list", "aria-label": "Your passkeys" },
            passkeys.map(passkeyItem),
          ),
      adding,
    ];
  }

  function passkeyItem(passkey) {
    return h(
      "li",
      { "data-id": String(passkey.id) },
      h(
        "div",
        { class: "passkey-text" },
        h("span", { class: "passkey-name" }, passkey.name),
        h(
          "p",
          { class: "session-facts" },
          "Added ",
          time(passkey.created_at),
          " · ",
          passkey.last_used_at ? ["last used ", time(passkey.last_used_at)] : "not used yet",
        ),
      ),
      h(
        "button",
        { type: "button", class: "danger", "aria-label": `Remove: ${passkey.name}`, onclick: () => remove(passkey) },
        "Remove",
      ),
    );
  }

  async function remove(passkey) {
    const sure = await confirmDialog({
      title: ["Remove the passkey “", passkey.name, "”?"],
      text: "You can no longer sign in with it: Gatehouse refuses it from now on. The device or password manager that keeps it may still list it until you delete it there too.",
      confirmLabel: "Remove passkey",
      danger: true,
    });
    if (!sure) return;
    msg.clear();
    try {
      await api.deletePasskey(passkey.id);
    } catch (error) {
      if (error.status === 401) return;
      msg.show(`Could not remove the passkey “${passkey.name}”: ${error.message}`);
      msg.el.focus();
      return load();
    }
    const done = `Removed the passkey “${passkey.name}”. It no longer signs you in.`;
    msg.show(done, "success");
    await load();
    msg.el.focus();
    changed(done);
  }

  function addStep() {
    const name = field(
      "Name of the passkey",
      {
        type: "text",
        name: "passkey-name",
        autocomplete: "off",
        maxlength: String(PASSKEY_NAME_MAX),
        value: defaultPasskeyName(),
        "data-autofocus": true,
      },
      "So you can tell your passkeys apart: where it is kept, such as “Work laptop” or “YubiKey”. At most 64 characters.",
    );
    const submit = h("button", { type: "submit", class: "primary" }, "Create passkey");
    const cancel = h("button", { type: "button", onclick: () => back() }, "Cancel");
    const onsubmit = () =>
      busy(submit, async () => {
        msg.clear();
        const chosen = name.input.value.trim();
        const problem = passkeyNameProblem(chosen);
        if (problem) return name.setError(problem);
        let start;
        try {
          start = (await api.beginPasskey()).data;
        } catch (error) {
          return refused(error);
        }
        let credential;
        try {
          credential = await createPasskey(start.publicKey);
        } catch (error) {
          const trouble = ceremonyProblem(error, "create");
          return msg.show(trouble.text, trouble.kind);
        }
        let added;
        try {
          added = (await api.finishPasskey(chosen, credential, start.challenge_id)).data;
        } catch (error) {
          return refused(error);
        }
        const done = `Added the passkey “${added.name}”. To use it, choose Sign in with a passkey on the login page.`;
        msg.show(done, "success");
        await load();
        msg.el.focus();
        changed(done);
      });

    function refused(error) {
      if (error.status === 401) return;
      if (error.status === 404 && error.code === "not_enabled") return replace(body, ...notSetUp());
      const issue = error.forField("name");
      if (issue) return name.setError(`The name ${issue}.`);
      if (error.code === "invalid_credential") {
        return msg.show(
          "Gatehouse did not accept the new passkey (it may already be one of yours, or the dialog took longer than 5 minutes). Try again.",
        );
      }
      msg.show(error.message);
    }

    return [
      h("h3", { tabindex: "-1" }, "Add a passkey"),
      h(
        "p",
        { class: "muted" },
        "Name it, then follow your browser: it asks where to keep the passkey and how to unlock it.",
      ),
      form(onsubmit, name.row, h("div", { class: "actions" }, submit, cancel)),
    ];
  }

  /** Back to the list (after Cancel): read afresh, the focus on its first button. */
  function back() {
    msg.clear();
    replace(body, h("p", { class: "muted" }, "Loading…"));
    load().then(() => body.querySelector("button")?.focus());
  }

  load();
  return h(
    "section",
    { class: "panel narrow-form", "aria-labelledby": "passkeys-title" },
    h("div", { class: "settings-head" }, h("h2", { id: "passkeys-title" }, "Passkeys")),
    msg.el,
    body,
  );
}

const REQUIRED_TEXT =
  "Admins must turn on two-step sign-in on this server: the admin pages open once it is on.";
/** The same, on a server that offers passkeys (either will do). */
const REQUIRED_PASSKEYS_TEXT =
  "Admins must turn on two-step sign-in on this server, or add a passkey: the admin pages open once they have one of them.";

function securityView(notice) {
  const me = state.me;
  const msg = noticeBox(notice);
  msg.el.tabIndex = -1;
  const required = messageBox();
  if (enrolmentDue()) required.show(REQUIRED_TEXT, "info");
  const onOff = h("span", { class: "pill off", hidden: true });
  const body = h("div", { class: "mfa-body" }, h("p", { class: "muted" }, "Loading…"));

  /** Shows a step of the panel and moves the focus to its heading (or its first field). */
  function show(...children) {
    replace(body, ...children);
    (body.querySelector("[data-autofocus]") ?? body.querySelector("h3"))?.focus();
  }

  async function load() {
    let status;
    try {
      status = (await api.mfaStatus()).data;
    } catch (error) {
      if (error.status !== 401) {
        replace(body);
        msg.show(`Could not read your two-step sign-in: ${error.message}`);
      }
      return;
    }
    onOff.className = status.totp_enabled ? "pill on" : "pill off";
    onOff.textContent = status.totp_enabled ? "On" : "Off";
    onOff.hidden = false;
    replace(body, status.totp_enabled ? onPanel(status) : offPanel());
  }

  /** Back to the panel's overview (after Cancel, or a change): read afresh. */
  function overview() {
    replace(body, h("p", { class: "muted" }, "Loading…"));
    load().then(() => body.querySelector("button")?.focus());
  }

  function offPanel() {
    return [
      h(
        "p",
        {},
        "Two-step sign-in asks for a second proof after your password: a 6-digit code from an authenticator app on your phone (such as Aegis, Google Authenticator, Microsoft Authenticator or 1Password). Someone who learns your password still cannot sign in.",
      ),
      h(
        "button",
        { type: "button", class: "primary", onclick: () => show(...passwordStep()) },
        "Turn on two-step sign-in",
      ),
    ];
  }

  function onPanel(status) {
    const left = Number(status.recovery_codes_left) || 0;
    return [
      h("p", {}, "When you log in, Gatehouse asks for the code from your authenticator app after your password."),
      h(
        "p",
        { class: left <= 3 ? "recovery-left low" : "recovery-left", "data-left": String(left) },
        left === 0
          ? "No recovery codes left. Make new ones, in case you lose your phone."
          : `${recoveryCodes(left)} left.`,
        left > 0 && left <= 3 ? " Make new ones before you run out." : "",
      ),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", onclick: () => show(...renewStep()) }, "New recovery codes"),
        h("button", { type: "button", class: "danger", onclick: () => show(...turnOffStep()) }, "Turn off two-step sign-in"),
      ),
    ];
  }

  const cancel = () => h("button", { type: "button", onclick: overview }, "Cancel");

  // Turning it on, 1 of 3: the password.
  function passwordStep() {
    const password = currentPasswordField({ "data-autofocus": true });
    const submit = h("button", { type: "submit", class: "primary" }, "Continue");
    const onsubmit = () =>
      busy(submit, async () => {
        msg.clear();
        if (!password.input.value) return password.setError("Enter your current password.");
        let enrolment;
        try {
          enrolment = (await api.beginTotp(password.input.value)).data;
        } catch (error) {
          if (error.status === 401) return;
          if (error.code === "invalid_password") return password.setError(error.message);
          if (error.code === "mfa_already_enabled") {
            overview();
            return msg.show(error.message, "info");
          }
          return msg.show(error.message);
        }
        show(...scanStep(enrolment));
      });
    return [
      h("h3", { tabindex: "-1" }, "Turn on two-step sign-in"),
      h("p", { class: "muted" }, "Step 1 of 3: enter your password to begin."),
      form(onsubmit, password.row, h("div", { class: "actions" }, submit, cancel())),
    ];
  }

  // 2 of 3: the QR code (and the key as text), then the app's first code.
  function scanStep(enrolment) {
    const copied = h("p", { class: "copied", role: "status", "aria-live": "polite" });
    const key = h("code", { class: "secret totp-key", "data-secret": "key" }, groupsOfFour(enrolment.secret));
    const code = appCodeField(
      "Code from the app",
      "The 6-digit code the app shows for Gatehouse now: it checks that the app is set up.",
    );
    const submit = h("button", { type: "submit", class: "primary" }, "Turn on");
    const onsubmit = () =>
      busy(submit, async () => {
        msg.clear();
        const typed = code.input.value.trim();
        const problem = totpProblem(typed);
        if (problem) return code.setError(problem);
        let codes;
        try {
          codes = (await api.confirmTotp(typed.replace(/\s/g, ""))).data.recovery_codes;
        } catch (error) {
          if (error.status === 401) return;
          if (error.code === "invalid_code") {
            return code.setError(
              `${error.message} Enter the code the app shows now; if it is refused again, check that the phone's clock is right.`,
            );
          }
          if (error.code === "mfa_not_enabled" || error.code === "mfa_already_enabled") {
            overview();
            return msg.show(`${error.message} Start again if you still want to turn it on.`, "info");
          }
          return msg.show(error.message);
        }
        // On from now: the panel's head says so, and the admins' requirement is met.
        onOff.className = "pill on";
        onOff.textContent = "On";
        required.clear();
        show(...codesStep(codes, "on"));
      });
    return [
      h("h3", { tabindex: "-1" }, "Scan the QR code"),
      h(
        "p",
        { class: "muted" },
        "Step 2 of 3: in your authenticator app, add an account and scan this code with the phone's camera.",
      ),
      h(
        "div",
        { class: "qr" },
        qrCanvas(enrolment.otpauth_uri, "QR code for your authenticator app: scan it, or enter the key below"),
      ),
      h("p", {}, "Cannot scan it? Enter this key in the app instead (a time-based code, 6 digits):"),
      h(
        "div",
        { class: "secret-row" },
        h("span", { class: "secret-label" }, "Key"),
        key,
        h(
          "button",
          { type: "button", "aria-label": "Copy the key", onclick: () => copy(enrolment.secret, key, "key", copied) },
          "Copy",
        ),
      ),
      copied,
      form(onsubmit, code.row, h("div", { class: "actions" }, submit, cancel())),
    ];
  }

  // 3 of 3 (and after "New recovery codes"): the codes, this once.
  function codesStep(codes, why) {
    const copied = h("p", { class: "copied", role: "status", "aria-live": "polite" });
    const list = h(
      "ol",
      { class: "recovery-codes", "aria-label": "Your recovery codes" },
      codes.map((c) => h("li", {}, h("code", {}, c))),
    );
    const text = [
      `Gatehouse recovery codes for ${me.email}`,
      `Made ${formatDate(new Date())} (${location.host}).`,
      "Each code signs you in once in place of the code from your authenticator app.",
      "",
      ...codes,
      "",
    ].join("\n");
    const saved = () => {
      if (why === "on") {
        notify("Two-step sign-in is on: from now on you log in with your password and a code from the app.");
        // An admin held back by the requirement goes on to the admin pages.
        if (state.enrolmentRequired && me.is_admin) return go(home());
      } else {
        notify("Your new recovery codes are ready. The old ones no longer work.");
      }
      render();
    };
    return [
      h("h3", { tabindex: "-1" }, why === "on" ? "Two-step sign-in is on: save your recovery codes" : "Your new recovery codes"),
      h(
        "p",
        { class: "once" },
        "These codes are shown only this once. Keep them somewhere safe, away from your phone: each one signs you in once if you cannot use your authenticator app.",
      ),
      list,
      h(
        "div",
        { class: "actions" },
        h(
          "button",
          {
            type: "button",
            "aria-label": "Download the recovery codes",
            onclick: () => {
              download(text, "gatehouse-recovery-codes.txt");
              copied.textContent = "Downloaded gatehouse-recovery-codes.txt.";
            },
          },
          "Download",
        ),
        h(
          "button",
          {
            type: "button",
            "aria-label": "Copy the recovery codes",
            onclick: () => copy(codes.join("\n"), list, "recovery codes", copied),
          },
          "Copy",
        ),
      ),
      copied,
      h("button", { type: "button", class: "primary", onclick: saved }, "I saved them"),
    ];
  }

  function renewStep() {
    const password = currentPasswordField({ "data-autofocus": true });
    const submit = h("button", { type: "submit", class: "primary" }, "Make new codes");
    const onsubmit = () =>
      busy(submit, async () => {
        msg.clear();
        if (!password.input.value) return password.setError("Enter your current password.");
        let codes;
        try {
          codes = (await api.renewRecoveryCodes(password.input.value)).data.recovery_codes;
        } catch (error) {
          if (error.status === 401) return;
          if (error.code === "invalid_password") return password.setError(error.message);
          if (error.code === "mfa_not_enabled") {
            overview();
            return msg.show(error.message, "info");
          }
          return msg.show(error.message);
        }
        show(...codesStep(codes, "renewed"));
      });
    return [
      h("h3", { tabindex: "-1" }, "New recovery codes"),
      h("p", { class: "muted" }, "Your current recovery codes stop working at once, and you get 10 new ones."),
      form(onsubmit, password.row, h("div", { class: "actions" }, submit, cancel())),
    ];
  }

  function turnOffStep() {
    const password = currentPasswordField({ "data-autofocus": true });
    const code = field(
      "Code from the app, or a recovery code",
      {
        type: "text",
        name: "code",
        autocomplete: "one-time-code",
        autocapitalize: "off",
        spellcheck: "false",
        maxlength: "32",
      },
      "The 6-digit code your authenticator app shows now, or one of your unused recovery codes.",
    );
    const submit = h("button", { type: "submit", class: "danger solid" }, "Turn off");
    const onsubmit = () =>
      busy(submit, async () => {
        msg.clear();
        if (!password.input.value) return password.setError("Enter your current password.");
        const typed = code.input.value.trim();
        if (!typed) return code.setError("Enter the code from your app, or a recovery code.");
        try {
          await api.disableTotp(password.input.value, typed);
        } catch (error) {
          if (error.status === 401) return;
          if (error.code === "invalid_password") return password.setError(error.message);
          if (error.code === "invalid_code") return code.setError(error.message);
          if (error.code === "mfa_not_enabled") {
            overview();
            return msg.show(error.message, "info");
          }
          return msg.show(error.message);
        }
        notify("Two-step sign-in is off: your password alone signs you in now. Your recovery codes no longer work.");
        render();
      });
    return [
      h("h3", { tabindex: "-1" }, "Turn off two-step sign-in"),
      h(
        "p",
        { class: "muted" },
        "Your password alone will protect your account. To be sure it is you, enter your password and a code.",
      ),
      form(onsubmit, password.row, code.row, h("div", { class: "actions" }, submit, cancel())),
    ];
  }

  // The server offers passkeys: a passkey meets the admins' requirement too.
  let passkeysOn = false;
  function passkeysOffered() {
    passkeysOn = true;
    if (enrolmentDue()) required.show(REQUIRED_PASSKEYS_TEXT, "info");
  }

  /**
   * After a passkey was added or removed (`done` says which): who is signed in, read again
   * (`mfa_enabled` may have changed), and the admins' requirement shown or cleared to
   * match. An admin whom the requirement held back goes on to the admin pages.
   */
  async function passkeysChanged(done) {
    const due = enrolmentDue();
    try {
      state.me = (await api.me()).data;
    } catch {
      return; // the next view reads it anyway
    }
    if (due && !enrolmentDue()) {
      notify(`${done} The admin pages are open to you now.`);
      return go(home());
    }
    if (enrolmentDue()) required.show(passkeysOn ? REQUIRED_PASSKEYS_TEXT : REQUIRED_TEXT, "info");
    else required.clear();
  }

  load();
  return h(
    "div",
    { class: "stack" },
    heading("Security"),
    required.el,
    msg.el,
    h(
      "section",
      { class: "panel narrow-form", "aria-labelledby": "mfa-title" },
      h("div", { class: "settings-head" }, h("h2", { id: "mfa-title" }, "Two-step sign-in"), onOff),
      body,
    ),
    passkeysPanel(passkeysChanged, passkeysOffered),
  );
}

// ---- sessions -------------------------------------------------------------------------

const BROWSERS = [
  [/\bEdg(?:e|A|iOS)?\/(\d+)/, "Edge"],
  [/\bOPR\/(\d+)/, "Opera"],
  [/\bSamsungBrowser\/(\d+)/, "Samsung Internet"],
  [/\bVivaldi\/(\d+)/, "Vivaldi"],
  [/\b(?:Firefox|FxiOS)\/(\d+)/, "Firefox"],
  [/\bHeadlessChrome\/(\d+)/, "Headless Chrome"],
  [/\bChromium\/(\d+)/, "Chromium"],
  [/\b(?:Chrome|CriOS)\/(\d+)/, "Chrome"],
  [/\bVersion\/(\d+)[^ ]* (?:Mobile\/\S+ )?Safari\//, "Safari"],
];

const SYSTEMS = [
  [/\biPad\b/, "iPadOS"],
  [/\b(?:iPhone|iPod)\b/, "iOS"],
  [/\bAndroid\b/, "Android"],
  [/\bCrOS\b/, "ChromeOS"],
  [/\bWindows\b/, "Windows"],
  [/\bMac OS X\b|\bMacintosh\b/, "macOS"],
  [/\bLinux\b/, "Linux"],
];

/**
 * A user agent as people read it: "Firefox 128 on Windows", "Safari 17 on iOS",
 * "curl 8.5.0"; the whole string stays in the element's title.
 */
function deviceName(agent) {
  const ua = (agent ?? "").trim();
  if (!ua) return "Unknown browser or app";
  const system = SYSTEMS.find(([pattern]) => pattern.test(ua))?.[1];
  for (const [pattern, name] of BROWSERS) {
    const found = pattern.exec(ua);
    if (found) return system ? `${name} ${found[1]} on ${system}` : `${name} ${found[1]}`;
  }
  // Not a browser: its first product and version ("curl/8.5.0", "python-requests/2.32").
  const product = /^([A-Za-z][\w.-]{0,39})(?:\/([\w.-]{1,20}))?/.exec(ua);
  if (product) {
    const named = product[2] ? `${product[1]} ${product[2]}` : product[1];
    return system && !product[2] ? `${named} on ${system}` : named;
  }
  return ua.length > 40 ? `${ua.slice(0, 40)}…` : ua;
}

/** A session's browser or app: its short name, the whole user agent in the title. */
function device(entry) {
  return h("span", { class: "device", title: entry.user_agent || null }, deviceName(entry.user_agent));
}

/** "1 session" / "2 sessions". */
function sessions(n) {
  return `${n} ${n === 1 ? "session" : "sessions"}`;
}

/** The mark on this tab's own session. */
function thisDevice() {
  return h("span", { class: "pill current" }, "This device");
}

/**
 * A list read a page at a time: its Previous/Next pager, answers that came back after a
 * newer request dropped, and a page left empty past the end (after a removal) moved back
 * to the last one. `read({ limit, offset })` fetches a page; `show(items, total, offset)`
 * draws it. Returns the pager, `load()` (reads the current page again) and `first()`
 * (back to the first page on the next load).
 */
function pagedList(read, msg, show) {
  const previous = h("button", { type: "button" }, "Previous page");
  const next = h("button", { type: "button" }, "Next page");
  const pager = h("div", { class: "pager", hidden: true }, previous, next);
  let offset = 0;
  let loads = 0;
  previous.addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE_SIZE);
    load();
  });
  next.addEventListener("click", () => {
    offset += PAGE_SIZE;
    load();
  });

  async function load() {
    const ticket = ++loads;
    let page;
    try {
      page = await read({ limit: PAGE_SIZE, offset });
    } catch (error) {
      if (ticket === loads && error.status !== 401) msg.show(error.message);
      return;
    }
    if (ticket !== loads) return;
    const total = Number(page.headers.get("X-Total-Count") ?? page.data.length);
    if (page.data.length === 0 && offset > 0 && total > 0) {
      offset = Math.floor((total - 1) / PAGE_SIZE) * PAGE_SIZE;
      return load();
    }
    show(page.data, total, offset);
    pager.hidden = total <= PAGE_SIZE;
    previous.disabled = offset === 0;
    next.disabled = offset + page.data.length >= total;
    updateBadge();
  }

  return {
    pager,
    load,
    first() {
      offset = 0;
    },
  };
}

function sessionsView(notice) {
  const msg = noticeBox(notice);
  msg.el.tabIndex = -1;
  const summary = h("p", { class: "summary", role: "status", "aria-live": "polite" });
  const rows = h("tbody");
  const endOthers = h("button", { type: "button", class: "danger", disabled: true }, "End all other sessions");
  let others = 0;
  const { pager, load } = pagedList(api.mySessions, msg, (items, total, offset) => {
    replace(rows, items.map(sessionRow));
    if (items.length === 0) {
      replace(rows, h("tr", {}, h("td", { colspan: "6", class: "muted" }, "No sessions.")));
    }
    // Every session but this one (which is on the list, whatever the page).
    others = Math.max(0, total - 1);
    endOthers.disabled = others === 0;
    summary.textContent =
      total === 1 ? "You are signed in here only." : pageSummary(total, offset, items.length, "session", "sessions");
  });

  async function act(work, done, failed) {
    msg.clear();
    try {
      await work();
    } catch (error) {
      if (error.status === 401) return;
      msg.show(`${failed}: ${error.message}`);
      msg.el.focus();
      load();
      return;
    }
    msg.show(done, "success");
    await load();
    msg.el.focus();
  }

  endOthers.addEventListener("click", async () => {
    const sure = await confirmDialog({
      title: "End all other sessions?",
      text: `Every other browser and app signed in to your account (${sessions(others)}) is signed out at once and has to log in again. This one stays signed in.`,
      confirmLabel: "End all other sessions",
      danger: true,
    });
    if (!sure) return;
    await act(() => api.endMyOtherSessions(), "Ended all your other sessions.", "Could not end your other sessions");
  });

  function sessionRow(entry) {
    const name = deviceName(entry.user_agent);
    const where = entry.address ?? "an unknown address";
    // Two sessions may share a browser and an address: the label tells them apart by date.
    const since = new Date(entry.created_at);
    const when = Number.isNaN(since.getTime()) ? "" : `, signed in ${formatDate(since)}`;
    return h(
      "tr",
      { "data-id": String(entry.id), "data-current": String(Boolean(entry.current)) },
      h(
        "td",
        { class: "device-cell", "data-label": "Browser or app" },
        device(entry),
        entry.current ? [" ", thisDevice()] : null,
      ),
      h("td", { "data-label": "Address" }, entry.address ?? h("span", { class: "none" }, "—")),
      h("td", { "data-label": "Signed in" }, time(entry.created_at)),
      h("td", { "data-label": "Last used" }, time(entry.last_used_at)),
      h("td", { "data-label": "Expires" }, time(entry.expires_at)),
      h(
        "td",
        { "data-label": "Actions" },
        entry.current
          ? h("span", { class: "muted" }, "Log out to end it")
          : h(
              "div",
              { class: "actions" },
              h(
                "button",
                {
                  type: "button",
                  class: "danger",
                  "aria-label": `End: ${name} at ${where}${when}`,
                  onclick: () =>
                    act(
                      () => api.endMySession(entry.id),
                      `Ended the session of ${name} at ${where}.`,
                      "Could not end the session",
                    ),
                },
                "End",
              ),
            ),
      ),
    );
  }

  load();
  return h(
    "div",
    { class: "stack" },
    heading("Sessions"),
    msg.el,
    h(
      "p",
      { class: "muted" },
      "Everywhere you are signed in, newest first. Ending a session signs that browser or app out at once.",
    ),
    h(
      "section",
      { "aria-label": "Your sessions" },
      h("div", { class: "list-head" }, summary, endOthers),
      h(
        "table",
        { class: "list sessions" },
        h("caption", { class: "visually-hidden" }, "Your sessions, newest first"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Browser or app", "Address", "Signed in", "Last used", "Expires", "Actions"].map((t) =>
              h("th", { scope: "col" }, t),
            ),
          ),
        ),
        rows,
      ),
      pager,
    ),
  );
}

/**
 * A user's sessions (admin), with "Sign out everywhere" behind a confirmation. Resolves
 * true when the admin signed themselves out that way.
 */
function userSessionsDialog(user) {
  const isMe = user.id === state.me.id;
  return dialog(({ titleId, close }) => {
    const msg = messageBox();
    const summary = h("p", { class: "summary", role: "status", "aria-live": "polite" }, "Loading…");
    const list = h("ul", { class: "session-list" });
    const everywhere = h(
      "button",
      { type: "button", class: "danger solid", disabled: true },
      "Sign out everywhere",
    );
    let count = 0;

    async function load() {
      let page;
      try {
        page = await api.userSessions(user.id, { limit: PAGE_SIZE });
      } catch (error) {
        summary.textContent = "";
        if (error.status !== 401) msg.show(`Could not list the sessions: ${error.message}`);
        return;
      }
      count = Number(page.headers.get("X-Total-Count") ?? page.data.length);
      replace(
        list,
        page.data.map((entry) =>
          h(
            "li",
            { "data-id": String(entry.id) },
            h("div", { class: "session-title" }, device(entry), entry.current ? [" ", thisDevice()] : null),
            h(
              "p",
              { class: "session-facts" },
              entry.address ?? "Unknown address",
              " · signed in ",
              time(entry.created_at),
              " · last used ",
              time(entry.last_used_at),
              " · expires ",
              time(entry.expires_at),
            ),
          ),
        ),
      );
      if (count === 0) {
        summary.textContent = "No sessions: they are not signed in anywhere.";
      } else if (count > page.data.length) {
        summary.textContent = `${sessions(count)}, the newest ${page.data.length} shown.`;
      } else {
        summary.textContent = `${sessions(count)}, newest first.`;
      }
      everywhere.disabled = count === 0;
    }

    everywhere.addEventListener("click", async () => {
      const sure = await confirmDialog({
        title: ["Sign ", address(user.email), " out everywhere?"],
        text: isMe
          ? `All your ${sessions(count)} end at once, this one included: you will have to log in again.`
          : `All their ${sessions(count)} end at once: every browser and app signed in to the account has to log in again. The account and its password stay as they are.`,
        confirmLabel: "Sign out everywhere",
        danger: true,
      });
      if (!sure) return;
      msg.clear();
      try {
        await api.endUserSessions(user.id);
      } catch (error) {
        if (error.status === 401) return;
        msg.show(`Could not sign ${user.email} out everywhere: ${error.message}`);
        load();
        return;
      }
      if (isMe) return close(true);
      msg.show(`Signed ${user.email} out everywhere.`, "success");
      await load();
    });

    load();
    return [
      h("h2", { id: titleId }, "Sessions of ", address(user.email)),
      msg.el,
      summary,
      list,
      h(
        "div",
        { class: "dialog-actions" },
        h("button", { type: "button", "data-autofocus": true, onclick: () => close(false) }, "Close"),
        everywhere,
      ),
    ];
  }, "wide");
}

// ---- dialogs --------------------------------------------------------------------------

let dialogIds = 0;

/**
 * A modal dialog (of class `kind`, if given); resolves with what `close(value)` was given
 * (false on Escape).
 */
function dialog(build, kind = null) {
  return new Promise((resolve) => {
    const titleId = `dialog-${++dialogIds}`;
    const opener = document.activeElement;
    let result = false;
    const el = h("dialog", { "aria-labelledby": titleId, class: kind });
    const close = (value) => {
      result = value;
      el.close();
    };
    el.addEventListener("close", () => {
      el.remove();
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(result);
    });
    replace(el, build({ titleId, close }));
    document.body.append(el);
    el.showModal();
    el.querySelector("[data-autofocus]")?.focus();
  });
}

function confirmDialog({ title, text, confirmLabel, danger = false }) {
  return dialog(({ titleId, close }) => [
    h("h2", { id: titleId }, title),
    h("p", {}, text),
    h(
      "div",
      { class: "dialog-actions" },
      h("button", { type: "button", "data-autofocus": true, onclick: () => close(false) }, "Cancel"),
      h(
        "button",
        { type: "button", class: danger ? "danger solid" : "primary", onclick: () => close(true) },
        confirmLabel,
      ),
    ),
  ]);
}

function resetPasswordDialog(user) {
  return dialog(({ titleId, close }) => {
    const msg = messageBox();
    const password = newPasswordFields("New password", "Repeat the new password", {
      "data-autofocus": true,
    });
    const submit = h("button", { type: "submit", class: "primary" }, "Reset password");
    const onsubmit = () =>
      busy(submit, async () => {
        msg.clear();
        const chosen = password.value();
        if (chosen === null) return;
        try {
          await api.resetPassword(user.id, chosen);
          close(true);
        } catch (error) {
          const issue = error.forField("password");
          if (issue) password.input.setError(issue);
          else msg.show(error.message);
        }
      });
    return form(
      onsubmit,
      h("h2", { id: titleId }, "Reset the password of ", address(user.email)),
      h("p", { class: "muted" }, "They are signed out everywhere and log in with the new password."),
      msg.el,
      ...password.rows,
      h(
        "div",
        { class: "dialog-actions" },
        h("button", { type: "button", onclick: () => close(false) }, "Cancel"),
        submit,
      ),
    );
  });
}

/**
 * Asks for an optional note to the applicants being turned down; resolves with
 * {note} (an empty note for none), or false when cancelled.
 */
function rejectDialog(title, text) {
  return dialog(({ titleId, close }) => {
    const note = textField(
      "Note to the applicant (optional)",
      { name: "note", rows: "4", "data-autofocus": true },
      "They see it when they try to log in. At most 500 characters.",
    );
    return form(
      () => close({ note: note.input.value.trim() }),
      h("h2", { id: titleId }, title),
      h("p", {}, text),
      note.row,
      h(
        "div",
        { class: "dialog-actions" },
        h("button", { type: "button", onclick: () => close(false) }, "Cancel"),
        h("button", { type: "submit", class: "danger solid" }, "Reject"),
      ),
    );
  });
}

// ---- the users page -------------------------------------------------------------------

function select(label, name, options, value, id = `filter-${name}`) {
  const el = h(
    "select",
    { id, name },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
  );
  return { row: h("div", { class: "field" }, h("label", { for: id }, label), el), el };
}

/** "3 users", "Users 51–100 of 120", "No users found." for a page of a list. */
function pageSummary(total, offset, shown, one, many) {
  if (total === 0) return `No ${many} found.`;
  if (total <= PAGE_SIZE) return `${total} ${total === 1 ? one : many}`;
  const noun = many[0].toUpperCase() + many.slice(1);
  return `${noun} ${offset + 1}–${offset + shown} of ${total}`;
}

/** "1 user" / "2 users". */
function users(n) {
  return `${n} ${n === 1 ? "user" : "users"}`;
}

function usersView(notice) {
  const filters = state.users;
  const msg = noticeBox(notice);
  msg.el.tabIndex = -1;
  const search = field("Search by email", {
    type: "search",
    name: "q",
    autocomplete: "off",
    spellcheck: "false",
    value: filters.q,
  });
  const status = select(
    "Status",
    "status",
    [
      ["", "Any status"],
      ["pending", "Pending"],
      ["approved", "Approved"],
      ["disabled", "Disabled"],
      ["rejected", "Rejected"],
    ],
    filters.status,
  );
  const role = select(
    "Role",
    "role",
    [
      ["", "Any role"],
      ["true", "Admins"],
      ["false", "Users"],
    ],
    filters.role,
  );
  const summary = h("p", { class: "summary", role: "status", "aria-live": "polite" });
  const rows = h("tbody");
  const previous = h("button", { type: "button" }, "Previous page");
  const next = h("button", { type: "button" }, "Next page");
  const pager = h("div", { class: "pager", hidden: true }, previous, next);
  let loads = 0;
  let searchTimer = null;
  // Whether the server mails, and so verifies addresses (asked once): the verified mark
  // shows only then. Without a mailer nobody can verify, and it would say nothing.
  let mails = null;

  // Pending users picked for a bulk decision (id → email), and every user on the page.
  const selected = new Map();
  let shown = [];
  const selectAll = h("input", { type: "checkbox", name: "select-all" });
  const selectAllLabel = h(
    "label",
    { class: "select-all", hidden: true },
    selectAll,
    h("span", { class: "select-all-text" }, "Select all pending users on this page"),
  );
  const selectedCount = h("span", { class: "selected-count", role: "status", "aria-live": "polite" });
  const approveSelected = h("button", { type: "button", class: "primary" }, "Approve selected");
  const rejectSelected = h("button", { type: "button", class: "danger" }, "Reject selected…");
  const bulk = h(
    "div",
    { class: "bulk", role: "group", "aria-label": "Decide on the selected users", hidden: true },
    selectedCount,
    approveSelected,
    rejectSelected,
  );

  const refilter = () => {
    filters.q = search.input.value.trim();
    filters.status = status.el.value;
    filters.role = role.el.value;
    filters.offset = 0;
    load();
  };
  search.input.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(refilter, 250);
  });
  status.el.addEventListener("change", refilter);
  role.el.addEventListener("change", refilter);
  previous.addEventListener("click", () => {
    filters.offset = Math.max(0, filters.offset - PAGE_SIZE);
    load();
  });
  next.addEventListener("click", () => {
    filters.offset += PAGE_SIZE;
    load();
  });

  const pendingBoxes = () => [...rows.querySelectorAll("input[name=selected]")];

  function updateBulk() {
    const boxes = pendingBoxes();
    const n = selected.size;
    bulk.hidden = boxes.length === 0;
    selectAllLabel.hidden = boxes.length === 0;
    selectedCount.textContent = `${n} selected`;
    approveSelected.disabled = n === 0;
    rejectSelected.disabled = n === 0;
    selectAll.checked = n > 0 && n === boxes.length;
    selectAll.indeterminate = n > 0 && n < boxes.length;
  }
  selectAll.addEventListener("change", () => {
    const on = selectAll.checked;
    for (const box of pendingBoxes()) {
      box.checked = on;
      box.dispatchEvent(new Event("change"));
    }
  });

  async function decide(decision, note = "") {
    const ids = [...selected.keys()];
    const emails = [...selected.values()];
    const verb = decision === "approve" ? "approve" : "reject";
    msg.clear();
    try {
      await api.decideUsers(ids, decision, note);
    } catch (error) {
      if (error.status === 401) return;
      // The API names the ids at fault (gone, or decided meanwhile); say who they are.
      const known = new Map(shown.map((u) => [u.id, u.email]));
      const named = error.ids.map((id) => known.get(id)).filter(Boolean);
      const reason = named.length ? `${error.message.replace(/\.$/, "")} (${named.join(", ")}).` : error.message;
      const nothing = error.status === 404 || error.status === 409 ? " Nothing was changed." : "";
      msg.show(`Could not ${verb} the selected users: ${reason}${nothing}`);
      selected.clear();
      msg.el.focus();
      load();
      return;
    }
    selected.clear();
    msg.show(`${verb === "approve" ? "Approved" : "Rejected"} ${users(ids.length)}: ${emails.join(", ")}.`, "success");
    await load();
    msg.el.focus();
  }
  approveSelected.addEventListener("click", () => decide("approve"));
  rejectSelected.addEventListener("click", async () => {
    const n = selected.size;
    const answer = await rejectDialog(
      `Reject ${users(n)}?`,
      `${[...selected.values()].join(", ")} cannot log in; they see your note if they try.`,
    );
    if (answer) await decide("reject", answer.note);
  });

  async function load() {
    const ticket = ++loads;
    let page;
    let activeAdmins;
    try {
      const [list, admins, mailing] = await Promise.all([
        api.listUsers({
          limit: PAGE_SIZE,
          offset: filters.offset,
          status: filters.status,
          is_admin: filters.role,
          q: filters.q,
        }),
        api.listUsers({ status: "approved", is_admin: "true", limit: 0 }),
        // Unknown (the settings could not be read): the mark shows.
        mails ?? api.mailSettings().then(({ data }) => data?.configured !== false, () => true),
      ]);
      page = list;
      activeAdmins = Number(admins.headers.get("X-Total-Count"));
      mails = mailing;
    } catch (error) {
      if (ticket === loads && error.status !== 401) msg.show(error.message);
      return;
    }
    if (ticket !== loads) return;
    const total = Number(page.headers.get("X-Total-Count"));
    if (page.data.length === 0 && filters.offset > 0 && total > 0) {
      filters.offset = Math.floor((total - 1) / PAGE_SIZE) * PAGE_SIZE;
      return load();
    }
    shown = page.data;
    // A selection survives a reload for the users still pending on the page.
    const stillPending = new Set(shown.filter((u) => u.status === "pending").map((u) => u.id));
    for (const id of [...selected.keys()]) if (!stillPending.has(id)) selected.delete(id);
    replace(rows, shown.map((user) => userRow(user, activeAdmins)));
    if (shown.length === 0) {
      replace(
        rows,
        h("tr", {}, h("td", { colspan: "7", class: "muted" }, "No users match these filters.")),
      );
    }
    summary.textContent = pageSummary(total, filters.offset, shown.length, "user", "users");
    const last = filters.offset + shown.length;
    pager.hidden = total <= PAGE_SIZE;
    previous.disabled = filters.offset === 0;
    next.disabled = last >= total;
    updateBulk();
    updateBadge();
  }

  /** After an action: reload the list; for a change to oneself, the whole view. */
  async function settle(user, text) {
    if (user.id === state.me.id) {
      notify(text);
      return render();
    }
    msg.show(text, "success");
    await load();
    msg.el.focus();
  }

  async function act(user, verb, work, done) {
    msg.clear();
    try {
      await work();
    } catch (error) {
      if (error.status === 401) return;
      msg.show(`Could not ${verb} ${user.email}: ${error.message}`);
      msg.el.focus();
      load();
      return;
    }
    await settle(user, done);
  }

  function userRow(user, activeAdmins) {
    const isMe = user.id === state.me.id;
    const lastAdmin = user.is_admin && user.status === "approved" && activeAdmins <= 1;
    const noteId = `last-admin-${user.id}`;
    const guard = lastAdmin
      ? { disabled: true, "aria-describedby": noteId, title: "The last active admin cannot lose access" }
      : {};
    const button = (label, attrs, onclick) =>
      h(
        "button",
        { type: "button", "aria-label": `${label}: ${user.email}`, ...attrs, onclick },
        label,
      );
    const update = (verb, changes, done) => () =>
      act(user, verb, () => api.updateUser(user.id, changes), done);
    const selfCheck = (verb, consequence, then) => async () => {
      if (
        isMe &&
        !(await confirmDialog({
          title: `${verb} your own account?`,
          text: consequence,
          confirmLabel: verb,
          danger: true,
        }))
      ) {
        return;
      }
      then();
    };

    const actions = [];
    if (user.status === "pending") {
      actions.push(button("Approve", { class: "primary" }, update("approve", { status: "approved" }, `Approved ${user.email}.`)));
      actions.push(
        button("Reject", { class: "danger" }, async () => {
          const answer = await rejectDialog(
            ["Reject ", address(user.email), "?"],
            "They cannot log in; they see your note if they try.",
          );
          if (!answer) return;
          const changes = answer.note ? { status: "rejected", note: answer.note } : { status: "rejected" };
          await act(user, "reject", () => api.updateUser(user.id, changes), `Rejected ${user.email}.`);
        }),
      );
    }
    if (user.status === "rejected") {
      actions.push(button("Approve", { class: "primary" }, update("approve", { status: "approved" }, `Approved ${user.email}.`)));
      actions.push(
        button("Back to pending", {}, update("return", { status: "pending" }, `${user.email} is pending again.`)),
      );
    } else if (user.status === "disabled") {
      actions.push(button("Enable", {}, update("enable", { status: "approved" }, `Enabled ${user.email}.`)));
    } else {
      actions.push(
        button(
          "Disable",
          guard,
          selfCheck(
            "Disable",
            "You will be signed out and cannot log in again until another admin enables you.",
            update("disable", { status: "disabled" }, `Disabled ${user.email}.`),
          ),
        ),
      );
    }
    if (user.is_admin) {
      actions.push(
        button(
          "Demote",
          guard,
          selfCheck(
            "Demote",
            "You will no longer be an admin and lose access to this page.",
            update("demote", { is_admin: false }, `${user.email} is no longer an admin.`),
          ),
        ),
      );
    } else {
      actions.push(button("Make admin", {}, update("promote", { is_admin: true }, `${user.email} is now an admin.`)));
    }
    actions.push(
      button("Reset password", {}, async () => {
        if (await resetPasswordDialog(user)) {
          await settle(user, `The password of ${user.email} has been reset. Their sessions were signed out.`);
        }
      }),
    );
    // Only with a second factor: the user's authenticator app, recovery codes and passkeys
    // go, and so do their sessions.
    if (user.mfa_enabled) {
      actions.push(
        button("Reset two-step sign-in", {}, async () => {
          const sure = await confirmDialog({
            title: ["Reset two-step sign-in of ", address(user.email), "?"],
            text: isMe
              ? "Your authenticator app and recovery codes stop working, and you are signed out everywhere, this browser included. You log in with your password alone, and can turn two-step sign-in on again."
              : "Their authenticator app and recovery codes stop working, and they are signed out everywhere. They log in with their password alone, and can turn two-step sign-in on again. Do this only when you are sure who asks (a lost phone, say).",
            confirmLabel: "Reset two-step sign-in",
            danger: true,
          });
          if (!sure) return;
          await act(
            user,
            "reset two-step sign-in of",
            () => api.resetUserMfa(user.id),
            `Reset two-step sign-in of ${user.email}: they log in with their password alone, and were signed out everywhere.`,
          );
        }),
      );
    }
    // Only an approved user can be signed in anywhere.
    if (user.status === "approved") {
      actions.push(
        button("Sessions", {}, async () => {
          if (await userSessionsDialog(user)) {
            session.clear();
            state.me = null;
            notify("You signed yourself out everywhere, this browser included. Log in again to go on.", "info");
            go("login");
          }
        }),
      );
    }
    actions.push(
      button("Delete", { ...guard, class: "danger" }, async () => {
        const sure = await confirmDialog({
          title: ["Delete ", address(user.email), "?"],
          text: isMe
            ? "This deletes your own account. It cannot be undone."
            : "The account and its access are removed for good. This cannot be undone.",
          confirmLabel: "Delete",
          danger: true,
        });
        if (sure) await act(user, "delete", () => api.deleteUser(user.id), `Deleted ${user.email}.`);
      }),
    );

    // A pending user can be picked for a bulk decision.
    let pick = null;
    if (user.status === "pending") {
      const box = h("input", {
        type: "checkbox",
        name: "selected",
        value: String(user.id),
        checked: selected.has(user.id),
        onchange: (event) => {
          if (event.target.checked) selected.set(user.id, user.email);
          else selected.delete(user.id);
          updateBulk();
        },
      });
      pick = h("label", { class: "pick" }, box, h("span", { class: "visually-hidden" }, `Select ${user.email}`));
    }
    // Why they asked (pending and rejected users), and the note they were rejected with.
    const asked = user.reason && (user.status === "pending" || user.status === "rejected");
    const noted = user.decision_note && user.status === "rejected";

    return h(
      "tr",
      { "data-email": user.email, "data-status": user.status },
      h("td", { class: "select" }, pick),
      h(
        "td",
        { class: "email", "data-label": "Email" },
        h(
          "div",
          { class: "email-text" },
          user.email,
          isMe ? h("span", { class: "you" }, " (you)") : null,
          mails ? [" ", verifiedMark(user)] : null,
          user.mfa_enabled ? [" ", h("span", { class: "mark mfa", title: "Two-step sign-in is on" }, "MFA")] : null,
        ),
        asked ? h("p", { class: "reason" }, h("span", { class: "reason-label" }, "Reason: "), user.reason) : null,
        noted
          ? h("p", { class: "reason" }, h("span", { class: "reason-label" }, "Rejected with the note: "), user.decision_note)
          : null,
      ),
      h("td", { "data-label": "Status" }, h("span", { class: `pill ${user.status}` }, statusName(user.status))),
      h("td", { "data-label": "Role" }, roleName(user)),
      h("td", { "data-label": "Created" }, time(user.created_at)),
      h("td", { "data-label": "Approved" }, time(user.approved_at)),
      h(
        "td",
        { "data-label": "Actions" },
        h("div", { class: "actions" }, actions),
        lastAdmin
          ? h(
              "p",
              { class: "note", id: noteId },
              "The last active admin cannot be disabled, demoted or deleted: make another approved user an admin first.",
            )
          : null,
      ),
    );
  }

  load();
  return h(
    "div",
    {},
    heading("Users"),
    msg.el,
    h(
      "form",
      { class: "toolbar", role: "search", novalidate: true, onsubmit: (e) => { e.preventDefault(); refilter(); } },
      search.row,
      status.row,
      role.row,
    ),
    summary,
    bulk,
    h(
      "table",
      { class: "list users" },
      h("caption", { class: "visually-hidden" }, "Users, newest first"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col", class: "select" }, selectAllLabel),
          ["Email", "Status", "Role", "Created", "Approved", "Actions"].map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      rows,
    ),
    pager,
  );
}

/** Whether a user's email address is verified, in words (not only a colour). */
function verifiedMark(user) {
  return user.email_verified
    ? h("span", { class: "mark verified", title: "The email address is verified" }, "verified")
    : h("span", { class: "mark unverified", title: "The email address is not verified yet" }, "unverified");
}

// ---- the invitations page -------------------------------------------------------------

const EXPIRY = [
  ["1h", "1 hour"],
  ["1d", "1 day"],
  ["7d", "7 days"],
  ["30d", "30 days"],
  ["90d", "90 days"],
];

const INVITATION_STATUS = { active: "Active", used: "Used", expired: "Expired", revoked: "Revoked" };

function invitationsView(notice) {
  const filters = state.invitations;
  const msg = noticeBox(notice);
  msg.el.tabIndex = -1;

  // The form.
  const email = field(
    "Email (optional)",
    { type: "email", name: "email", autocomplete: "off", spellcheck: "false" },
    "Only this address can register with it. Leave it empty for anyone with the code.",
  );
  const makeAdmin = h("input", { type: "checkbox", name: "is_admin" });
  const adminRow = h(
    "div",
    { class: "field check" },
    h("label", {}, makeAdmin, h("span", {}, "Make them an admin")),
  );
  const expires = select("Expires in", "expires_in", EXPIRY, "7d", "invite-expires");
  const USES_HINT = "How many people can register with it: 1 to 1000.";
  const uses = field(
    "Uses",
    { type: "number", name: "max_uses", min: "1", max: "1000", step: "1", value: "1", inputmode: "numeric" },
    USES_HINT,
  );
  const note = textField(
    "Note (optional)",
    { name: "note", rows: "2" },
    "Who it is for, or why. Only administrators see it.",
  );
  const syncUses = () => {
    const bound = email.input.value.trim() !== "";
    uses.input.disabled = bound;
    if (bound) {
      uses.input.value = "1";
      uses.setError(null);
    }
    uses.hint.textContent = bound ? "An invitation for one address can be used once." : USES_HINT;
  };
  email.input.addEventListener("input", syncUses);
  const submit = h("button", { type: "submit", class: "primary" }, "Create invitation");

  const created = h("section", { class: "panel created", "aria-labelledby": "created-title", hidden: true });

  const onsubmit = (event) =>
    busy(submit, async () => {
      msg.clear();
      const body = { is_admin: makeAdmin.checked, expires_in: expires.el.value };
      const address = email.input.value.trim();
      if (address) {
        body.email = address;
      } else {
        const n = Number(uses.input.value);
        if (!Number.isInteger(n) || n < 1 || n > 1000) return uses.setError("Enter a whole number from 1 to 1000.");
        body.max_uses = n;
      }
      const text = note.input.value.trim();
      if (text) body.note = text;
      let invitation;
      try {
        invitation = (await api.createInvitation(body)).data;
      } catch (error) {
        if (error.status === 401) return;
        const problems = [
          [email, error.forField("email")],
          [uses, error.forField("max_uses")],
          [note, error.forField("note")],
        ].filter(([, problem]) => problem);
        for (const [f, problem] of problems) f.setError(problem);
        const other = error.forField("expires_in");
        if (problems.length === 0) msg.show(`Could not create the invitation: ${other ?? error.message}`);
        return;
      }
      event.target.reset();
      uses.input.value = "1";
      syncUses();
      showCreated(invitation);
      filters.offset = 0;
      load();
    });

  /** The code and the link, this once, with Copy buttons. */
  function showCreated(invitation) {
    const link =
      invitation.url ??
      `${location.origin}${location.pathname}#/register?invitation=${encodeURIComponent(invitation.code)}`;
    const copied = h("p", { class: "copied", role: "status", "aria-live": "polite" });
    const secret = (label, text, what) => {
      const value = h("code", { class: "secret", "data-secret": what }, text);
      return h(
        "div",
        { class: "secret-row" },
        h("span", { class: "secret-label" }, label),
        value,
        h(
          "button",
          { type: "button", "aria-label": `Copy the ${what}`, onclick: () => copy(text, value, what, copied) },
          "Copy",
        ),
      );
    };
    replace(
      created,
      h("h2", { id: "created-title", tabindex: "-1" }, "Invitation created"),
      h(
        "p",
        { class: "once" },
        "Copy the code or the link now and send it to the person you invite: the code is shown only this once.",
      ),
      h("p", { class: "muted" }, describeInvitation(invitation)),
      secret("Code", invitation.code, "code"),
      secret("Link", link, "link"),
      copied,
      h(
        "button",
        {
          type: "button",
          onclick: () => {
            replace(created);
            created.hidden = true;
            submit.focus();
          },
        },
        "Done",
      ),
    );
    created.hidden = false;
    created.querySelector("h2").focus();
  }

  // The list.
  const status = select(
    "Status",
    "status",
    [["", "Any status"], ...Object.entries(INVITATION_STATUS)],
    filters.status,
  );
  const summary = h("p", { class: "summary", role: "status", "aria-live": "polite" });
  const rows = h("tbody");
  const previous = h("button", { type: "button" }, "Previous page");
  const next = h("button", { type: "button" }, "Next page");
  const pager = h("div", { class: "pager", hidden: true }, previous, next);
  let loads = 0;
  status.el.addEventListener("change", () => {
    filters.status = status.el.value;
    filters.offset = 0;
    load();
  });
  previous.addEventListener("click", () => {
    filters.offset = Math.max(0, filters.offset - PAGE_SIZE);
    load();
  });
  next.addEventListener("click", () => {
    filters.offset += PAGE_SIZE;
    load();
  });

  async function load() {
    const ticket = ++loads;
    let page;
    try {
      page = await api.listInvitations({ limit: PAGE_SIZE, offset: filters.offset, status: filters.status });
    } catch (error) {
      if (ticket === loads && error.status !== 401) msg.show(error.message);
      return;
    }
    if (ticket !== loads) return;
    const total = Number(page.headers.get("X-Total-Count"));
    if (page.data.length === 0 && filters.offset > 0 && total > 0) {
      filters.offset = Math.floor((total - 1) / PAGE_SIZE) * PAGE_SIZE;
      return load();
    }
    replace(rows, page.data.map(invitationRow));
    if (page.data.length === 0) {
      const none = filters.status ? "No invitations match this filter." : "No invitations yet.";
      replace(rows, h("tr", {}, h("td", { colspan: "7", class: "muted" }, none)));
    }
    summary.textContent = pageSummary(total, filters.offset, page.data.length, "invitation", "invitations");
    const last = filters.offset + page.data.length;
    pager.hidden = total <= PAGE_SIZE;
    previous.disabled = filters.offset === 0;
    next.disabled = last >= total;
    updateBadge();
  }

  function invitationRow(invitation) {
    const who = invitation.email ?? "anyone";
    const revoke = async () => {
      const sure = await confirmDialog({
        title: "Revoke this invitation?",
        text: ["Nobody can register with its code any more (it was for ", who === "anyone" ? who : address(who), "). It stays in the list, marked revoked."],
        confirmLabel: "Revoke",
        danger: true,
      });
      if (!sure) return;
      msg.clear();
      try {
        await api.revokeInvitation(invitation.id);
      } catch (error) {
        if (error.status === 401) return;
        msg.show(`Could not revoke the invitation: ${error.message}`);
        msg.el.focus();
        load();
        return;
      }
      msg.show(`Revoked the invitation for ${who}.`, "success");
      await load();
      msg.el.focus();
    };
    return h(
      "tr",
      { "data-id": String(invitation.id), "data-status": invitation.status },
      h(
        "td",
        { class: "email", "data-label": "For" },
        h("div", { class: "email-text" }, invitation.email ?? h("span", { class: "muted" }, "Anyone")),
      ),
      h("td", { "data-label": "Role" }, roleName(invitation)),
      h("td", { "data-label": "Uses" }, `${invitation.uses} of ${invitation.max_uses}`),
      h("td", { "data-label": "Expires" }, time(invitation.expires_at)),
      h(
        "td",
        { "data-label": "Status" },
        h("span", { class: `pill ${invitation.status}` }, INVITATION_STATUS[invitation.status] ?? invitation.status),
      ),
      h(
        "td",
        { "data-label": "Note" },
        invitation.note ? h("p", { class: "reason" }, invitation.note) : h("span", { class: "none" }, "—"),
      ),
      h(
        "td",
        { "data-label": "Actions" },
        invitation.status === "active"
          ? h(
              "div",
              { class: "actions" },
              h(
                "button",
                {
                  type: "button",
                  class: "danger",
                  "aria-label": `Revoke: invitation ${invitation.id} for ${who}`,
                  onclick: revoke,
                },
                "Revoke",
              ),
            )
          : null,
      ),
    );
  }

  load();
  return h(
    "div",
    { class: "stack" },
    heading("Invitations"),
    msg.el,
    h(
      "p",
      { class: "muted" },
      "Whoever registers with an invitation's code is approved at once, without waiting in the queue.",
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "new-invitation-title" },
      h("h2", { id: "new-invitation-title" }, "New invitation"),
      form(onsubmit, h("div", { class: "invite-form" }, email.row, expires.row, uses.row, adminRow, note.row), submit),
    ),
    created,
    h(
      "section",
      { "aria-labelledby": "invitations-title" },
      h("h2", { id: "invitations-title" }, "All invitations"),
      h("div", { class: "toolbar narrow-toolbar" }, status.row),
      summary,
      h(
        "table",
        { class: "list invitations" },
        h("caption", { class: "visually-hidden" }, "Invitations, newest first"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["For", "Role", "Uses", "Expires", "Status", "Note", "Actions"].map((t) => h("th", { scope: "col" }, t)),
          ),
        ),
        rows,
      ),
      pager,
    ),
  );
}

/** "For anyone · as a user · up to 3 uses · expires 12 May 2025, 10:00". */
function describeInvitation(invitation) {
  const expires = new Date(invitation.expires_at);
  return [
    invitation.email ? `For ${invitation.email}` : "For anyone with the code",
    invitation.is_admin ? "as an admin" : "as a user",
    invitation.max_uses === 1 ? "1 use" : `up to ${invitation.max_uses} uses`,
    `expires ${Number.isNaN(expires.getTime()) ? invitation.expires_at : formatDate(expires)}`,
  ].join(" · ");
}

// ---- the webhooks page ----------------------------------------------------------------

/** The event types an endpoint can be sent, in the API's order, with what each means. */
const EVENT_TYPES = [
  ["user.registered", "Someone registered"],
  ["user.created", "An admin created an account"],
  ["user.approved", "An account was approved"],
  ["user.rejected", "A registration was turned down"],
  ["user.disabled", "An account was disabled"],
  ["user.enabled", "An account was enabled again"],
  ["user.promoted", "A user was made an admin"],
  ["user.demoted", "An admin was made a user"],
  ["user.deleted", "An account was deleted"],
  ["user.password_reset", "An admin reset a password"],
  ["invitation.used", "Someone registered with an invitation"],
  ["webhook.test", "A test event (Send test event reaches it either way)"],
];

const DELIVERY_STATUS = { pending: "Pending", delivered: "Delivered", failed: "Failed" };
const DELIVERIES_PAGE = 20;
/** After "Send test event": how often, and how many times, the log looks for the result. */
const FOLLOW_EVERY_MS = 1_000;
const FOLLOW_TIMES = 15;

let eventFields = 0;

/**
 * The events of an endpoint as checkboxes: "All events" (then every box is ticked and
 * locked), or some of them. Its hint and error are tied to the group with
 * aria-describedby. Returns {row, value(), setError, reset()}.
 */
function eventsField(chosen = []) {
  const id = `events-${++eventFields}`;
  const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  const all = h("input", { type: "checkbox", name: "events-all", value: "*" });
  const boxes = EVENT_TYPES.map(([name]) => h("input", { type: "checkbox", name: "events", value: name }));
  // The boxes ticked by hand, put back when "All events" is unticked.
  let picked = new Set();
  const row = h(
    "fieldset",
    { class: "events-field", "aria-describedby": `${id}-hint ${id}-error` },
    h("legend", {}, "Events"),
    h(
      "p",
      { class: "hint", id: `${id}-hint` },
      "What it is sent. All events includes types added later.",
    ),
    h("label", { class: "event-choice all-events" }, all, h("span", {}, "All events")),
    h(
      "div",
      { class: "event-grid" },
      EVENT_TYPES.map(([name, what], i) =>
        h(
          "label",
          { class: "event-choice" },
          boxes[i],
          h("span", {}, h("code", { class: "event-name" }, name), h("span", { class: "event-what" }, what)),
        ),
      ),
    ),
    error,
  );
  const setError = (message) => {
    error.textContent = message ?? "";
    error.hidden = !message;
    row.classList.toggle("invalid", Boolean(message));
  };
  const sync = () => {
    for (const box of boxes) {
      box.disabled = all.checked;
      box.checked = all.checked || picked.has(box.value);
    }
  };
  const set = (names) => {
    all.checked = names.includes("*");
    picked = new Set(names.filter((name) => name !== "*"));
    sync();
  };
  all.addEventListener("change", () => {
    setError(null);
    sync();
  });
  for (const box of boxes) {
    box.addEventListener("change", () => {
      setError(null);
      if (box.checked) picked.add(box.value);
      else picked.delete(box.value);
    });
  }
  set(chosen);
  return {
    row,
    setError,
    reset: () => set([]),
    value: () => (all.checked ? ["*"] : boxes.filter((box) => box.checked).map((box) => box.value)),
  };
}

/** The address field of the add and edit forms. */
function webhookUrlField(attrs = {}) {
  return field(
    "URL",
    {
      type: "url",
      name: "url",
      autocomplete: "off",
      autocapitalize: "off",
      spellcheck: "false",
      ...attrs,
    },
    "Where Gatehouse sends a signed POST for each event: an http or https address.",
  );
}

function webhookDescriptionField(attrs = {}) {
  return textField(
    "Description (optional)",
    { name: "description", rows: "2", ...attrs },
    "Whose receiver it is, or what for. Only administrators see it.",
  );
}

/**
 * Reads the three fields of a webhook form into a request body, or marks what is missing
 * and returns null. `clear`: send `"description": null` for an empty one (an edit).
 */
function webhookBody(url, events, description, { clear = false } = {}) {
  const address = url.input.value.trim();
  const chosen = events.value();
  if (!address) url.setError("Enter the address to send events to.");
  if (chosen.length === 0) events.setError("Choose at least one event, or All events.");
  if (!address || chosen.length === 0) return null;
  const body = { url: address, events: chosen };
  const text = description.input.value.trim();
  if (text) body.description = text;
  else if (clear) body.description = null;
  return body;
}

/** Puts a refused webhook's reasons under their fields; false when none was for a field. */
function webhookProblems(error, url, events, description) {
  if (error.code === "invalid_url") {
    url.setError(error.message);
    return true;
  }
  const problems = [
    [url, error.forField("url")],
    [events, error.forField("events")],
    [description, error.forField("description")],
  ].filter(([, problem]) => problem);
  for (const [f, problem] of problems) f.setError(problem);
  return problems.length > 0;
}

/** An endpoint's events as people read them: "All events" or the list of names. */
function eventNames(events) {
  if (events.includes("*")) return h("span", { class: "all-events-text" }, "All events");
  return h(
    "ul",
    { class: "event-list" },
    events.map((name) => h("li", {}, h("code", { class: "event-name" }, name))),
  );
}

/**
 * A signing secret, shown this once, with a Copy button: after a creation and after a
 * rotation. Nothing keeps it: when the dialog closes it is gone from the page.
 */
function secretDialog(title, webhook) {
  return dialog(({ titleId, close }) => {
    const copied = h("p", { class: "copied", role: "status", "aria-live": "polite" });
    const value = h("code", { class: "secret", "data-secret": "secret" }, webhook.secret);
    return [
      h("h2", { id: titleId }, title),
      h("p", { class: "muted" }, "For ", h("span", { class: "address" }, webhook.url)),
      h(
        "p",
        { class: "once" },
        "Copy the signing secret now and give it to the receiver: you will not see it again.",
      ),
      h(
        "p",
        {},
        "The receiver checks the webhook-signature header of every delivery with it. If it is lost, rotate the secret to get a new one.",
      ),
      h(
        "div",
        { class: "secret-row" },
        h("span", { class: "secret-label" }, "Secret"),
        value,
        h(
          "button",
          {
            type: "button",
            "aria-label": "Copy the secret",
            "data-autofocus": true,
            onclick: () => copy(webhook.secret, value, "secret", copied),
          },
          "Copy",
        ),
      ),
      copied,
      h(
        "div",
        { class: "dialog-actions" },
        h("button", { type: "button", class: "primary", onclick: () => close(true) }, "Done"),
      ),
    ];
  }, "wide secret-dialog");
}

/** Edits an endpoint's address, events and description; resolves with it as changed, or false. */
function editWebhookDialog(webhook) {
  return dialog(({ titleId, close }) => {
    const msg = messageBox();
    const url = webhookUrlField({ value: webhook.url, "data-autofocus": true });
    const events = eventsField(webhook.events);
    const description = webhookDescriptionField({ value: webhook.description ?? "" });
    const submit = h("button", { type: "submit", class: "primary" }, "Save changes");
    const onsubmit = () =>
      busy(submit, async () => {
        msg.clear();
        const body = webhookBody(url, events, description, { clear: true });
        if (!body) return;
        // An address left as it was is not sent (nor checked, nor looked up) again.
        if (body.url === webhook.url) delete body.url;
        try {
          close((await api.updateWebhook(webhook.id, body)).data);
        } catch (error) {
          if (error.status === 401) return;
          if (!webhookProblems(error, url, events, description)) msg.show(error.message);
        }
      });
    return form(
      onsubmit,
      h("h2", { id: titleId }, "Edit webhook"),
      msg.el,
      url.row,
      events.row,
      description.row,
      h(
        "div",
        { class: "dialog-actions" },
        h("button", { type: "button", onclick: () => close(false) }, "Cancel"),
        submit,
      ),
    );
  }, "wide");
}

function webhooksView(notice) {
  const msg = noticeBox(notice);
  msg.el.tabIndex = -1;
  // The endpoints whose deliveries log is open: it stays open when the list is read again.
  const open = new Set();

  // The form.
  const url = webhookUrlField();
  const events = eventsField();
  const description = webhookDescriptionField();
  const submit = h("button", { type: "submit", class: "primary" }, "Add webhook");
  const addForm = form(
    async () => {
      const webhook = await busy(submit, async () => {
        msg.clear();
        const body = webhookBody(url, events, description);
        if (!body) return null;
        try {
          return (await api.createWebhook(body)).data;
        } catch (error) {
          if (error.status === 401) return null;
          if (!webhookProblems(error, url, events, description)) {
            msg.show(`Could not add the webhook: ${error.message}`);
          }
          return null;
        }
      });
      if (!webhook) return;
      addForm.reset();
      events.reset();
      first();
      load();
      await secretDialog("Webhook added", webhook);
      msg.show(`Added a webhook for ${webhook.url}.`, "success");
      msg.el.focus();
    },
    h("div", { class: "webhook-form" }, h("div", {}, url.row, description.row), events.row),
    submit,
  );

  // The list.
  const summary = h("p", { class: "summary", role: "status", "aria-live": "polite" });
  const list = h("div", { class: "webhooks" });
  const { pager, load, first } = pagedList(api.listWebhooks, msg, (items, total, offset) => {
    replace(list, items.map(webhookCard));
    if (items.length === 0) {
      replace(list, h("p", { class: "panel muted" }, "No webhooks yet."));
    }
    summary.textContent = pageSummary(total, offset, items.length, "webhook", "webhooks");
  });

  /** Runs an action; says how it went; reads the list again. */
  async function act(work, done, failed) {
    msg.clear();
    try {
      await work();
    } catch (error) {
      if (error.status === 401) return;
      msg.show(`${failed}: ${error.message}`);
      msg.el.focus();
      load();
      return;
    }
    msg.show(done, "success");
    await load();
    msg.el.focus();
  }

  function webhookCard(webhook) {
    const titleId = `webhook-${webhook.id}-title`;
    const log = deliveriesLog(webhook);
    const button = (label, attrs, onclick) =>
      h("button", { type: "button", "aria-label": `${label}: ${webhook.url}`, ...attrs, onclick }, label);

    const edit = async () => {
      const changed = await editWebhookDialog(webhook);
      if (!changed) return;
      msg.show(`Saved the webhook for ${changed.url}.`, "success");
      await load();
      msg.el.focus();
    };
    const toggle = () =>
      webhook.active
        ? act(
            () => api.updateWebhook(webhook.id, { active: false }),
            `Disabled the webhook for ${webhook.url}: nothing is sent to it until it is enabled again.`,
            `Could not disable the webhook for ${webhook.url}`,
          )
        : act(
            () => api.updateWebhook(webhook.id, { active: true }),
            `Enabled the webhook for ${webhook.url}.`,
            `Could not enable the webhook for ${webhook.url}`,
          );
    const sendTest = async () => {
      msg.clear();
      let queued;
      try {
        queued = (await api.testWebhook(webhook.id)).data;
      } catch (error) {
        if (error.status === 401) return;
        msg.show(`Could not send a test event to ${webhook.url}: ${error.message}`);
        if (error.status === 404) load();
        return;
      }
      msg.show(
        webhook.active
          ? `Sent a test event to ${webhook.url}: see its deliveries log.`
          : `The webhook for ${webhook.url} is disabled: the test event is logged as failed, not sent.`,
        webhook.active ? "success" : "info",
      );
      log.show();
      log.follow(queued.event_id);
    };
    const rotate = async () => {
      const sure = await confirmDialog({
        title: "Rotate the signing secret?",
        text: [
          "The secret of ",
          h("span", { class: "address" }, webhook.url),
          " stops working at once: every delivery from now on, retries included, is signed with a new one, shown once. Give it to the receiver.",
        ],
        confirmLabel: "Rotate secret",
        danger: true,
      });
      if (!sure) return;
      msg.clear();
      let rotated;
      try {
        rotated = (await api.rotateWebhookSecret(webhook.id)).data;
      } catch (error) {
        if (error.status === 401) return;
        msg.show(`Could not rotate the secret of ${webhook.url}: ${error.message}`);
        msg.el.focus();
        load();
        return;
      }
      await secretDialog("New signing secret", rotated);
      msg.show(`Rotated the signing secret of ${webhook.url}: the old one no longer works.`, "success");
      msg.el.focus();
    };
    const remove = async () => {
      const sure = await confirmDialog({
        title: "Delete this webhook?",
        text: [
          "Nothing more is sent to ",
          h("span", { class: "address" }, webhook.url),
          ", and its deliveries log goes with it. This cannot be undone.",
        ],
        confirmLabel: "Delete",
        danger: true,
      });
      if (!sure) return;
      open.delete(webhook.id);
      await act(
        () => api.deleteWebhook(webhook.id),
        `Deleted the webhook for ${webhook.url}.`,
        `Could not delete the webhook for ${webhook.url}`,
      );
    };

    return h(
      "article",
      {
        class: "panel webhook",
        "aria-labelledby": titleId,
        "data-id": String(webhook.id),
        "data-active": String(webhook.active),
      },
      h(
        "div",
        { class: "webhook-head" },
        h("h3", { id: titleId, class: "webhook-url" }, webhook.url),
        webhook.active
          ? h("span", { class: "pill active" }, "Active")
          : h("span", { class: "pill disabled" }, "Disabled"),
      ),
      webhook.description ? h("p", { class: "reason webhook-description" }, webhook.description) : null,
      h(
        "dl",
        { class: "details webhook-facts" },
        h("dt", {}, "Events"),
        h("dd", { class: "webhook-events" }, eventNames(webhook.events)),
        h("dt", {}, "Added"),
        h("dd", {}, time(webhook.created_at)),
      ),
      h(
        "div",
        { class: "actions" },
        button("Edit", {}, edit),
        button(webhook.active ? "Disable" : "Enable", {}, toggle),
        button("Send test event", {}, sendTest),
        button("Rotate secret", {}, rotate),
        button("Delete", { class: "danger" }, remove),
        log.toggle,
      ),
      log.el,
    );
  }

  /**
   * An endpoint's deliveries log, newest first, 20 at a time, behind a Show/Hide button,
   * with a Refresh button. `follow(eventId)` reads it again every second until that event
   * is no longer pending (for at most 15 s).
   */
  function deliveriesLog(webhook) {
    const id = `webhook-${webhook.id}-deliveries`;
    const toggle = h(
      "button",
      {
        type: "button",
        "aria-expanded": "false",
        "aria-controls": id,
        "aria-label": `Deliveries: ${webhook.url}`,
      },
      "Deliveries",
    );
    const status = h("p", { class: "summary", role: "status", "aria-live": "polite" });
    const problem = messageBox();
    const rows = h("tbody");
    const refresh = h(
      "button",
      { type: "button", "aria-label": `Refresh the deliveries: ${webhook.url}` },
      "Refresh",
    );
    const newer = h("button", { type: "button" }, "Newer");
    const older = h("button", { type: "button" }, "Older");
    const pager = h("div", { class: "pager", hidden: true }, newer, older);
    const el = h(
      "section",
      { class: "deliveries", id, "aria-labelledby": `${id}-title`, hidden: true },
      h(
        "div",
        { class: "list-head" },
        h("h4", { id: `${id}-title` }, "Deliveries"),
        refresh,
      ),
      problem.el,
      status,
      h(
        "table",
        { class: "list deliveries" },
        h("caption", { class: "visually-hidden" }, `Deliveries to ${webhook.url}, newest first`),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Status", "Event", "Attempts", "Last answer", "Last error", "Last attempt", "Next attempt", "Created"].map(
              (t) => h("th", { scope: "col" }, t),
            ),
          ),
        ),
        rows,
      ),
      pager,
    );
    let from = 0;
    let reads = 0;
    let following = null;

    async function read() {
      const ticket = ++reads;
      let page;
      try {
        page = await api.webhookDeliveries(webhook.id, { limit: DELIVERIES_PAGE, offset: from });
      } catch (error) {
        if (ticket === reads && error.status !== 401) problem.show(`Could not read the deliveries: ${error.message}`);
        return null;
      }
      if (ticket !== reads) return null;
      problem.clear();
      const total = Number(page.headers.get("X-Total-Count") ?? page.data.length);
      if (page.data.length === 0 && from > 0 && total > 0) {
        from = Math.floor((total - 1) / DELIVERIES_PAGE) * DELIVERIES_PAGE;
        return read();
      }
      replace(rows, page.data.map(deliveryRow));
      if (page.data.length === 0) {
        replace(rows, h("tr", {}, h("td", { colspan: "8", class: "muted" }, "Nothing sent yet.")));
      }
      if (total === 0) status.textContent = "No deliveries yet.";
      else if (total <= DELIVERIES_PAGE) status.textContent = `${total} ${total === 1 ? "delivery" : "deliveries"}, newest first.`;
      else status.textContent = `Deliveries ${from + 1}–${from + page.data.length} of ${total}, newest first.`;
      pager.hidden = total <= DELIVERIES_PAGE;
      newer.disabled = from === 0;
      older.disabled = from + page.data.length >= total;
      return page.data;
    }

    function show() {
      open.add(webhook.id);
      el.hidden = false;
      toggle.setAttribute("aria-expanded", "true");
      read();
    }
    function hide() {
      open.delete(webhook.id);
      el.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
      clearTimeout(following);
    }
    toggle.addEventListener("click", () => (el.hidden ? show() : hide()));
    refresh.addEventListener("click", () => busy(refresh, read));
    newer.addEventListener("click", () => {
      from = Math.max(0, from - DELIVERIES_PAGE);
      read();
    });
    older.addEventListener("click", () => {
      from += DELIVERIES_PAGE;
      read();
    });

    function follow(eventId, left = FOLLOW_TIMES) {
      clearTimeout(following);
      following = setTimeout(async () => {
        if (!el.isConnected || el.hidden) return;
        const shown = await read();
        const entry = shown?.find((d) => d.event_id === eventId);
        if (left > 1 && (!entry || entry.status === "pending")) follow(eventId, left - 1);
      }, FOLLOW_EVERY_MS);
    }

    if (open.has(webhook.id)) show();
    return { el, toggle, show, follow };
  }

  function deliveryRow(delivery) {
    return h(
      "tr",
      { "data-id": String(delivery.id), "data-event-id": delivery.event_id, "data-status": delivery.status },
      h(
        "td",
        { "data-label": "Status" },
        h("span", { class: `pill ${delivery.status}` }, DELIVERY_STATUS[delivery.status] ?? delivery.status),
      ),
      h(
        "td",
        { class: "delivery-event", "data-label": "Event" },
        h("code", { class: "event-name" }, delivery.event_type),
        h("span", { class: "event-id", title: "The webhook-id header of its attempts" }, delivery.event_id),
      ),
      h("td", { "data-label": "Attempts" }, String(delivery.attempts)),
      h(
        "td",
        { "data-label": "Last answer" },
        delivery.last_status_code === null || delivery.last_status_code === undefined
          ? h("span", { class: "none" }, "—")
          : `HTTP ${delivery.last_status_code}`,
      ),
      h(
        "td",
        { "data-label": "Last error" },
        delivery.last_error ? h("p", { class: "reason" }, delivery.last_error) : h("span", { class: "none" }, "—"),
      ),
      h("td", { "data-label": "Last attempt" }, time(delivery.last_attempt_at)),
      h("td", { "data-label": "Next attempt" }, time(delivery.next_attempt_at)),
      h("td", { "data-label": "Created" }, time(delivery.created_at)),
    );
  }

  load();
  return h(
    "div",
    { class: "stack" },
    heading("Webhooks"),
    msg.el,
    h(
      "p",
      { class: "muted" },
      "Gatehouse sends each endpoint a signed POST when something happens to a user: a registration, an approval, a deletion… Failed deliveries are tried again.",
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "new-webhook-title" },
      h("h2", { id: "new-webhook-title" }, "Add a webhook"),
      addForm,
    ),
    h(
      "section",
      { "aria-labelledby": "webhooks-title" },
      h("h2", { id: "webhooks-title" }, "Endpoints"),
      summary,
      list,
      pager,
    ),
  );
}

// ---- the settings page ----------------------------------------------------------------

/** How the SMTP connection is protected (the API's `security`), in words. */
const MAIL_SECURITY = {
  starttls: "STARTTLS required",
  tls: "TLS",
  opportunistic: "STARTTLS when offered",
  none: "none — plain SMTP, for a local relay",
};

/** A number of seconds as people say it: "1 minute", "15 minutes", "1 hour", "90 seconds". */
function duration(seconds) {
  const units = [
    [86_400, "day", "days"],
    [3_600, "hour", "hours"],
    [60, "minute", "minutes"],
    [1, "second", "seconds"],
  ];
  const [size, one, many] = units.find(([size]) => seconds >= size && seconds % size === 0) ?? units.at(-1);
  const n = seconds / size;
  return `${n} ${n === 1 ? one : many}`;
}

/** A setting's name, as it is written in the server's environment. */
function setting(name) {
  return h("code", { class: "setting-name" }, name);
}

function settingsView(notice) {
  const msg = noticeBox(notice);
  msg.el.tabIndex = -1;
  const onOff = h("span", { class: "pill off", hidden: true });
  const mail = h("div", { class: "mail-settings" }, h("p", { class: "muted" }, "Loading…"));

  async function load() {
    let settings;
    try {
      settings = (await api.mailSettings()).data;
    } catch (error) {
      if (error.status !== 401) {
        replace(mail);
        msg.show(`Could not read the mail settings: ${error.message}`);
      }
      return;
    }
    onOff.className = settings.configured ? "pill on" : "pill off";
    onOff.textContent = settings.configured ? "On" : "Off";
    onOff.hidden = false;
    replace(mail, settings.configured ? mailFacts(settings) : noMail());
    updateBadge();
  }

  function noMail() {
    return [
      h(
        "p",
        { class: "message info", role: "status", "data-mail": "off" },
        "Mail is not configured: Gatehouse sends no mail. Admins hear of new sign-ups only here in the console, applicants learn of your decision only when they log in, and an invitation reaches people only as the code or link you pass on.",
      ),
      h(
        "p",
        {},
        "Two settings of the server turn it on: ",
        setting("GATEHOUSE_SMTP_URL"),
        " (the SMTP server, its security and how to sign in to it) and ",
        setting("GATEHOUSE_MAIL_FROM"),
        " (the sender). Set both and restart Gatehouse.",
      ),
    ];
  }

  function mailFacts(settings) {
    const fact = (label, key, ...value) => [h("dt", {}, label), h("dd", { "data-setting": key }, ...value)];
    const server = settings.port === null || settings.port === undefined ? settings.host : `${settings.host}:${settings.port}`;
    return [
      h(
        "dl",
        { class: "details settings-facts" },
        fact("Server", "server", server ?? h("span", { class: "none" }, "—")),
        fact("Security", "security", MAIL_SECURITY[settings.security] ?? settings.security ?? "—"),
        fact(
          "Signs in to the server",
          "authenticated",
          settings.authenticated ? "yes" : "no",
          h(
            "span",
            { class: "muted" },
            settings.authenticated
              ? " — with a user name and password, which are never shown"
              : " — the server takes mail without a password",
          ),
        ),
        fact("Sender", "from", settings.from ? h("span", { class: "address" }, settings.from) : h("span", { class: "none" }, "—")),
        fact(
          "Links point to",
          "public_url",
          settings.public_url
            ? h("span", { class: "address" }, settings.public_url)
            : [h("span", { class: "muted" }, "not set: mails carry no links"), " (", setting("GATEHOUSE_PUBLIC_URL"), ")"],
        ),
        fact("Admin digest", "digest", `at most every ${duration(settings.admin_digest_interval_seconds)}, per admin`),
      ),
      h(
        "p",
        {},
        "What is mailed: the admin digest (who waits for approval, to every active admin), applicants' decisions (approved or not, with your note) and invitations bound to an email (their code and link).",
      ),
      h(
        "p",
        { class: "muted" },
        "To check the set-up, run ",
        h("code", {}, "gatehouse mail test ADDRESS"),
        " on the server: it sends one mail at once and prints the SMTP server's answer.",
      ),
    ];
  }

  load();
  return h(
    "div",
    { class: "stack" },
    heading("Settings"),
    msg.el,
    h(
      "p",
      { class: "muted" },
      "How this server is set up. The settings are changed in the server's environment or configuration file, not here.",
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "mail-title" },
      h("div", { class: "settings-head" }, h("h2", { id: "mail-title" }, "Mail"), onOff),
      mail,
    ),
  );
}

/**
 * Copies `text` to the clipboard and says so in `status`; where the clipboard cannot be
 * used, selects the text shown in `el` so that the usual keys copy it.
 */
async function copy(text, el, what, status) {
  status.textContent = "";
  try {
    if (!navigator.clipboard?.writeText) throw new Error("no clipboard");
    await navigator.clipboard.writeText(text);
    status.textContent = `Copied the ${what}.`;
  } catch {
    getSelection()?.selectAllChildren(el);
    status.textContent = `The ${what} is selected: press Ctrl+C (⌘C on a Mac) to copy it.`;
  }
}

// ---- QR codes ---------------------------------------------------------------------------

// A QR code (ISO/IEC 18004) for an authenticator app to scan, made here so that the secret
// it holds goes to no other code and no other host: byte mode (the text as UTF-8), error
// correction level M, the smallest version that holds the text (1 to 40), the mask with the
// lowest penalty. The browser tests decode what the page shows with a QR reader.

// Level M, per version (1 to 40): error correction codewords per block, and blocks.
const QR_ECC_PER_BLOCK = [
  0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28,
  28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28,
];
const QR_BLOCKS = [
  0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23, 25,
  26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49,
];
const QR_MASKS = [
  (x, y) => (x + y) % 2 === 0,
  (x, y) => y % 2 === 0,
  (x, y) => x % 3 === 0,
  (x, y) => (x + y) % 3 === 0,
  (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0,
  (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
  (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
  (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
];

/** The modules of a version that carry data and error correction (not patterns or formats). */
function qrDataModules(version) {
  let n = (16 * version + 128) * version + 64;
  if (version >= 2) {
    const align = Math.floor(version / 7) + 2;
    n -= (25 * align - 10) * align - 55;
    if (version >= 7) n -= 36;
  }
  return n;
}

function qrDataCodewords(version) {
  return Math.floor(qrDataModules(version) / 8) - QR_ECC_PER_BLOCK[version] * QR_BLOCKS[version];
}

/** The centres of the alignment patterns, on both axes. */
function qrAlignment(version) {
  if (version === 1) return [];
  const count = Math.floor(version / 7) + 2;
  const step = Math.floor((version * 8 + count * 3 + 5) / (count * 4 - 4)) * 2;
  const centres = [6];
  for (let at = version * 4 + 10; centres.length < count; at -= step) centres.splice(1, 0, at);
  return centres;
}

/** Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x^2 + 1. */
function gfTimes(x, y) {
  let z = 0;
  for (let i = 7; i >= 0; i -= 1) {
    z = (z << 1) ^ ((z >>> 7) * 0x11d);
    z ^= ((y >>> i) & 1) * x;
  }
  return z;
}

/** Reed-Solomon error correction: the `degree` codewords that follow `data`. */
function reedSolomon(data, degree) {
  const divisor = new Array(degree).fill(0);
  divisor[degree - 1] = 1;
  let root = 1;
  for (let i = 0; i < degree; i += 1) {
    for (let j = 0; j < degree; j += 1) {
      divisor[j] = gfTimes(divisor[j], root);
      if (j + 1 < degree) divisor[j] ^= divisor[j + 1];
    }
    root = gfTimes(root, 0x02);
  }
  const rest = new Array(degree).fill(0);
  for (const byte of data) {
    const factor = byte ^ rest.shift();
    rest.push(0);
    divisor.forEach((coefficient, i) => {
      rest[i] ^= gfTimes(coefficient, factor);
    });
  }
  return rest;
}

/** The codewords of `bytes` at `version`: data, padding, error correction, interleaved. */
function qrCodewords(bytes, version) {
  const capacity = qrDataCodewords(version) * 8;
  const bits = [];
  const put = (value, length) => {
    for (let i = length - 1; i >= 0; i -= 1) bits.push((value >>> i) & 1);
  };
  put(0b0100, 4); // byte mode
  put(bytes.length, version < 10 ? 8 : 16);
  for (const byte of bytes) put(byte, 8);
  put(0, Math.min(4, capacity - bits.length)); // the terminator
  put(0, (8 - (bits.length % 8)) % 8);
  const data = [];
  for (let i = 0; i < bits.length; i += 8) data.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
  for (let pad = 0xec; data.length < capacity / 8; pad ^= 0xec ^ 0x11) data.push(pad);

  const blocks = QR_BLOCKS[version];
  const ecc = QR_ECC_PER_BLOCK[version];
  const total = Math.floor(qrDataModules(version) / 8);
  const short = blocks - (total % blocks); // blocks one data codeword shorter than the rest
  const shortLength = Math.floor(total / blocks);
  const split = [];
  for (let i = 0, at = 0; i < blocks; i += 1) {
    const part = data.slice(at, at + shortLength - ecc + (i < short ? 0 : 1));
    at += part.length;
    const correction = reedSolomon(part, ecc);
    if (i < short) part.push(null);
    split.push(part.concat(correction));
  }
  const out = [];
  for (let i = 0; i < split[0].length; i += 1) {
    for (const part of split) if (part[i] !== null) out.push(part[i]);
  }
  return out;
}

/** How hard a symbol is to read (the standard's four penalty rules): lower is better. */
function qrPenalty(dark) {
  const size = dark.length;
  let penalty = 0;
  const finderLike = ["10111010000", "00001011101"];
  for (let i = 0; i < size; i += 1) {
    for (const line of [dark[i], dark.map((row) => row[i])]) {
      let run = 1;
      for (let j = 1; j <= size; j += 1) {
        if (j < size && line[j] === line[j - 1]) {
          run += 1;
        } else {
          if (run >= 5) penalty += run - 2;
          run = 1;
        }
      }
      // Light beyond the edges: the quiet zone.
      const text = `0000${line.map(Number).join("")}0000`;
      for (const pattern of finderLike) {
        for (let at = text.indexOf(pattern); at >= 0; at = text.indexOf(pattern, at + 1)) penalty += 40;
      }
    }
  }
  let darkCount = 0;
  for (let y = 0; y < size; y += 1) {
    for (let x = 0; x < size; x += 1) {
      if (dark[y][x]) darkCount += 1;
      const c = dark[y][x];
      if (x + 1 < size && y + 1 < size && c === dark[y][x + 1] && c === dark[y + 1][x] && c === dark[y + 1][x + 1]) {
        penalty += 3;
      }
    }
  }
  const all = size * size;
  return penalty + (Math.ceil(Math.abs(darkCount * 20 - all * 10) / all) - 1) * 10;
}

/** The QR code of `text` as rows of modules (true: dark), without the quiet zone. */
export function qrModules(text) {
  const bytes = new TextEncoder().encode(text);
  let version = 1;
  while (4 + (version < 10 ? 8 : 16) + bytes.length * 8 > qrDataCodewords(version) * 8) {
    version += 1;
    if (version > 40) throw new RangeError("The text is too long for a QR code.");
  }
  const size = version * 4 + 17;
  const dark = Array.from({ length: size }, () => new Array(size).fill(false));
  const fixed = Array.from({ length: size }, () => new Array(size).fill(false));
  const set = (x, y, on) => {
    dark[y][x] = on;
    fixed[y][x] = true;
  };

  // The timing patterns, the three finder patterns (with their separators), alignment.
  for (let i = 0; i < size; i += 1) {
    set(6, i, i % 2 === 0);
    set(i, 6, i % 2 === 0);
  }
  for (const [cx, cy] of [[3, 3], [size - 4, 3], [3, size - 4]]) {
    for (let dy = -4; dy <= 4; dy += 1) {
      for (let dx = -4; dx <= 4; dx += 1) {
        const [x, y] = [cx + dx, cy + dy];
        const ring = Math.max(Math.abs(dx), Math.abs(dy));
        if (x >= 0 && x < size && y >= 0 && y < size) set(x, y, ring !== 2 && ring !== 4);
      }
    }
  }
  const centres = qrAlignment(version);
  const last = centres.length - 1;
  centres.forEach((cx, i) =>
    centres.forEach((cy, j) => {
      if ((i === 0 && j === 0) || (i === 0 && j === last) || (i === last && j === 0)) return;
      for (let dy = -2; dy <= 2; dy += 1) {
        for (let dx = -2; dx <= 2; dx += 1) set(cx + dx, cy + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
      }
    }),
  );

  // The format (level M is 00, then the mask), twice, and the dark module.
  const format = (mask) => {
    let rest = mask;
    for (let i = 0; i < 10; i += 1) rest = (rest << 1) ^ ((rest >>> 9) * 0x537);
    const bits = ((mask << 10) | rest) ^ 0x5412;
    const bit = (i) => ((bits >>> i) & 1) === 1;
    for (let i = 0; i <= 5; i += 1) set(8, i, bit(i));
    set(8, 7, bit(6));
    set(8, 8, bit(7));
    set(7, 8, bit(8));
    for (let i = 9; i < 15; i += 1) set(14 - i, 8, bit(i));
    for (let i = 0; i < 8; i += 1) set(size - 1 - i, 8, bit(i));
    for (let i = 8; i < 15; i += 1) set(8, size - 15 + i, bit(i));
    set(8, size - 8, true);
  };
  format(0); // reserves its modules
  if (version >= 7) {
    let rest = version;
    for (let i = 0; i < 12; i += 1) rest = (rest << 1) ^ ((rest >>> 11) * 0x1f25);
    const bits = (version << 12) | rest;
    for (let i = 0; i < 18; i += 1) {
      const on = ((bits >>> i) & 1) === 1;
      const [a, b] = [size - 11 + (i % 3), Math.floor(i / 3)];
      set(a, b, on);
      set(b, a, on);
    }
  }

  // The codewords, in two-module columns zigzagging up and down from the right.
  const codewords = qrCodewords(bytes, version);
  let i = 0;
  for (let right = size - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5; // the vertical timing pattern
    const upward = ((right + 1) & 2) === 0;
    for (let vertical = 0; vertical < size; vertical += 1) {
      const y = upward ? size - 1 - vertical : vertical;
      for (const x of [right, right - 1]) {
        if (!fixed[y][x] && i < codewords.length * 8) {
          dark[y][x] = ((codewords[i >>> 3] >>> (7 - (i & 7))) & 1) === 1;
          i += 1;
        }
      }
    }
  }

  // The mask that reads best.
  const flip = (mask) => {
    for (let y = 0; y < size; y += 1) {
      for (let x = 0; x < size; x += 1) if (!fixed[y][x] && QR_MASKS[mask](x, y)) dark[y][x] = !dark[y][x];
    }
  };
  let best = 0;
  let lowest = Infinity;
  for (let mask = 0; mask < 8; mask += 1) {
    flip(mask);
    format(mask);
    const penalty = qrPenalty(dark);
    if (penalty < lowest) [best, lowest] = [mask, penalty];
    flip(mask);
  }
  flip(best);
  format(best);
  return dark;
}

/**
 * The QR code of `text` on a canvas (black on white whatever the theme, as scanners want),
 * with its quiet zone of 4 modules, each module a whole number of pixels; `label` is what
 * it is for people who cannot see it.
 */
export function qrCanvas(text, label) {
  const modules = qrModules(text);
  const quiet = 4;
  const count = modules.length + 2 * quiet;
  const scale = Math.max(3, Math.floor(232 / count));
  const canvas = h("canvas", {
    class: "qr-code",
    width: count * scale,
    height: count * scale,
    role: "img",
    "aria-label": label,
  });
  const g = canvas.getContext("2d");
  g.fillStyle = "#ffffff";
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = "#000000";
  modules.forEach((row, y) =>
    row.forEach((on, x) => {
      if (on) g.fillRect((x + quiet) * scale, (y + quiet) * scale, scale, scale);
    }),
  );
  return canvas;
}

// ---- start ----------------------------------------------------------------------------

document.getElementById("skip")?.addEventListener("click", (event) => {
  event.preventDefault();
  (main.querySelector("h1") ?? main).focus();
});
window.addEventListener("hashchange", render);
render();
