// The Gatehouse console: log in, register, wait for approval, manage users.
// Views are chosen by the part of the URL after "#/" (never holding a token); every view
// asks the API who is signed in first, so a user disabled or demoted a moment ago sees
// the effect on the next click, and the server's rules stay the only rules.

import { api, session, whenSessionEnds } from "./api.js";
import { h, replace, field, messageBox, time } from "./dom.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");

const state = {
  me: null,
  // A message for the next view (after a redirect), and the email of a pending sign-up.
  notice: null,
  pendingEmail: null,
  badgeTimer: null,
  renders: 0,
  users: { q: "", status: "", role: "", offset: 0 },
};

const PAGE_SIZE = 50;
const BADGE_REFRESH_MS = 30_000;

const routes = {
  login: { title: "Log in", public: true, view: loginView },
  register: { title: "Create an account", public: true, view: registerView },
  pending: { title: "Awaiting approval", public: true, view: pendingView },
  account: { title: "Your account", view: accountView },
  users: { title: "Users", admin: true, view: usersView },
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

whenSessionEnds(() => {
  state.me = null;
  notify("Your session has ended. Please log in again.", "info");
  go("login");
});

// ---- rendering ------------------------------------------------------------------------

async function render() {
  const ticket = ++state.renders;
  clearInterval(state.badgeTimer);
  const name = location.hash.replace(/^#\/?/, "");
  const route = routes[name];

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

  if (!route) return go(state.me ? home() : "login");
  if (!route.public && !state.me) return go("login");
  if (state.me && (name === "login" || name === "register")) return go(home());
  if (route.admin && !state.me.is_admin) return go(home());

  renderNav(name);
  document.title = `${route.title} · Gatehouse`;
  const notice = state.notice;
  state.notice = null;
  replace(main, route.view(notice));
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
      h("li", {}, link("account", "Account")),
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
  if (me.is_admin) {
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
  try {
    await api.logout();
  } catch {
    // Signed out locally either way; the token expires on its own.
  }
  session.token = null;
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
  const submit = h("button", { type: "submit", class: "primary full" }, "Log in");
  const onsubmit = () =>
    busy(submit, async () => {
      msg.clear();
      const address = email.input.value.trim();
      if (!address) return email.setError("Enter your email address.");
      if (!password.input.value) return password.setError("Enter your password.");
      try {
        const { data } = await api.login(address, password.input.value);
        session.token = data.access_token;
        go(""); // the default view for whoever this is
      } catch (error) {
        if (error.code === "account_pending") {
          state.pendingEmail = address;
          go("pending");
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
    h("p", {}, "No account yet? ", h("a", { href: "#/register" }, "Create an account")),
  );
}

function registerView(notice) {
  const msg = noticeBox(notice);
  const email = emailField();
  const password = newPasswordFields("Password", "Repeat the password", {
    name: "password",
    required: true,
  });
  const submit = h("button", { type: "submit", class: "primary full" }, "Create account");
  const onsubmit = () =>
    busy(submit, async () => {
      msg.clear();
      const address = email.input.value.trim();
      if (!address) return email.setError("Enter your email address.");
      const chosen = password.value();
      if (chosen === null) return;
      let user;
      try {
        user = (await api.register(address, chosen)).data;
      } catch (error) {
        if (error.status === 409) return email.setError(error.message);
        const emailProblem = error.forField("email");
        const passwordIssue = error.forField("password");
        if (emailProblem) email.setError(emailProblem);
        if (passwordIssue) password.input.setError(passwordIssue);
        if (!emailProblem && !passwordIssue) msg.show(error.message);
        return;
      }
      if (user.status !== "approved") {
        state.pendingEmail = user.email;
        return go("pending");
      }
      // The first user: an approved admin at once.
      try {
        const { data } = await api.login(address, chosen);
        session.token = data.access_token;
        notify("Welcome! You are the first user, so you are the administrator.");
        go("users");
      } catch (error) {
        notify(`Your account was created, but logging in failed: ${error.message}`, "error");
        go("login");
      }
    });
  return h(
    "section",
    { class: "narrow panel" },
    heading("Create an account"),
    msg.el,
    form(onsubmit, email.row, ...password.rows, submit),
    h("p", {}, "Already registered? ", h("a", { href: "#/login" }, "Log in")),
  );
}

function pendingView() {
  const who = state.pendingEmail;
  return h(
    "section",
    { class: "narrow panel stack" },
    heading("Your account awaits approval"),
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

// ---- the signed-in user's account -----------------------------------------------------

function roleName(user) {
  return user.is_admin ? "Admin" : "User";
}

function statusName(status) {
  return { pending: "Pending", approved: "Approved", disabled: "Disabled" }[status] ?? status;
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
          session.token = data.access_token;
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

// ---- dialogs --------------------------------------------------------------------------

let dialogIds = 0;

/** A modal dialog; resolves with what `close(value)` was given (false on Escape). */
function dialog(build) {
  return new Promise((resolve) => {
    const titleId = `dialog-${++dialogIds}`;
    const opener = document.activeElement;
    let result = false;
    const el = h("dialog", { "aria-labelledby": titleId });
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

// ---- the users page -------------------------------------------------------------------

function select(label, name, options, value) {
  const id = `filter-${name}`;
  const el = h(
    "select",
    { id, name },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
  );
  return { row: h("div", { class: "field" }, h("label", { for: id }, label), el), el };
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

  async function load() {
    const ticket = ++loads;
    let page;
    let activeAdmins;
    try {
      const [list, admins] = await Promise.all([
        api.listUsers({
          limit: PAGE_SIZE,
          offset: filters.offset,
          status: filters.status,
          is_admin: filters.role,
          q: filters.q,
        }),
        api.listUsers({ status: "approved", is_admin: "true", limit: 0 }),
      ]);
      page = list;
      activeAdmins = Number(admins.headers.get("X-Total-Count"));
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
    replace(rows, page.data.map((user) => userRow(user, activeAdmins)));
    if (page.data.length === 0) {
      replace(
        rows,
        h("tr", {}, h("td", { colspan: "6", class: "muted" }, "No users match these filters.")),
      );
    }
    const first = filters.offset + 1;
    const last = filters.offset + page.data.length;
    summary.textContent =
      total === 0
        ? "No users found."
        : total <= PAGE_SIZE
          ? `${total} ${total === 1 ? "user" : "users"}`
          : `Users ${first}–${last} of ${total}`;
    pager.hidden = total <= PAGE_SIZE;
    previous.disabled = filters.offset === 0;
    next.disabled = last >= total;
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
    }
    if (user.status === "disabled") {
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

    return h(
      "tr",
      { "data-email": user.email },
      h(
        "td",
        { class: "email", "data-label": "Email" },
        h(
          "div",
          { class: "email-text" },
          user.email,
          isMe ? h("span", { class: "you" }, " (you)") : null,
        ),
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
    h(
      "table",
      { class: "users" },
      h("caption", { class: "visually-hidden" }, "Users, newest first"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Email", "Status", "Role", "Created", "Approved", "Actions"].map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      rows,
    ),
    pager,
  );
}

// ---- start ----------------------------------------------------------------------------

document.getElementById("skip")?.addEventListener("click", (event) => {
  event.preventDefault();
  (main.querySelector("h1") ?? main).focus();
});
window.addEventListener("hashchange", render);
render();
