// End-to-end tests of the console (and of /docs under its policy): the real `gatehouse`
// binary on a fresh SQLite database, driven in Debian's headless Chromium through
// playwright-core. `.ci/run` runs them;
// by hand: `cargo build -p gatehouse && npm ci && npm test` in this folder (README.md).
//
// Environment: GATEHOUSE_BIN (default: target/debug/gatehouse of this checkout),
// CHROMIUM (default /usr/bin/chromium), GATEHOUSE_SCREENSHOTS_DIR (when set, the
// screenshots of the main pages are written there; docs/console/ holds the committed ones).
//
// The steps run in order and share one server: the first user, a second one, approval...
// The renewal of short-lived access tokens has a second server of its own, whose tokens live
// 3 seconds. The main server may send webhooks to this machine
// (GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=true), where a receiver of the tests' own takes them; a
// third server, without that setting, refuses such addresses. Recovery and email
// verification have a server of their own with a mailer, whose mail goes to an SMTP server
// the tests run on 127.0.0.1 (smtp-sink.mjs), where they read the codes. Two-step sign-in
// has one with GATEHOUSE_REQUIRE_MFA_FOR_ADMINS=true: the tests compute the authenticator
// app's codes themselves (RFC 6238) and read the page's QR codes with jsQR. Passkeys have
// one with GATEHOUSE_PUBLIC_URL=http://localhost:PORT, whose pages are opened at that
// origin (WebAuthn works on domain names only), with Chromium's virtual authenticator
// (the DevTools protocol's WebAuthn domain) in place of a phone or a security key.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import jsQR from "jsqr";
import { codeIn, startSmtpSink } from "./smtp-sink.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../../../..");
const binary =
  process.env.GATEHOUSE_BIN ??
  path.join(process.env.CARGO_TARGET_DIR ?? path.join(root, "target"), "debug", "gatehouse");
const shotsDir = process.env.GATEHOUSE_SCREENSHOTS_DIR
  ? path.resolve(process.env.GATEHOUSE_SCREENSHOTS_DIR)
  : null;

const ADMIN = "admin@example.com";
const BOB = "bob@example.com";
const PASSWORD = "tr0mbone-kettle";
const BOB_PASSWORD = "s4xophone-teapot";
const BOB_NEW_PASSWORD = "c3llo-marmalade";
const CAROL = "carol@example.com";
const DAVE = "dave@example.org";
const ERIN = "erin@example.net";
const FRAN = "fran@example.com";
const FRAN_REASON = "I run the Tuesday book club\nand book the rooms for it.";
const FRAN_NOTE = "Sorry: the club's list is full.\nAsk again in the spring.";
const JO = "jo@example.com";

/**
 * An address of `bytes` bytes built as the API's rules allow (crates/domain/src/email.rs): a
 * local part of 64 characters, domain labels of at most 63, no place to break a line.
 */
function longAddress(bytes) {
  const fill = (text, length) => text.repeat(Math.ceil(length / text.length)).slice(0, length);
  const local = `${fill("long.local.part.", 63)}x`;
  const labels = [fill("department", 63), fill("subsidiary", 63)];
  const third = bytes - local.length - 1 - labels.join(".").length - 1 - ".example".length;
  return `${local}@${labels.join(".")}.${fill("region", third)}.example`;
}
/** The longest address the API accepts. */
const LONG = longAddress(254);

let server;
let browser;
/** Everything each page saw, checked at the end. */
const watched = [];

// ---- the server -----------------------------------------------------------------------

async function startServer(env = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "gatehouse-browser-"));
  const child = spawn(binary, ["serve"], {
    env: {
      PATH: process.env.PATH,
      GATEHOUSE_BIND: "127.0.0.1:0",
      GATEHOUSE_DATABASE_URL: `sqlite://${dir}/gatehouse.db`,
      GATEHOUSE_BCRYPT_COST: "4",
      GATEHOUSE_LOG_FORMAT: "json",
      RUST_LOG: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let logs = "";
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening on" in 60 s:\n${logs}`)), 60_000);
    const read = (chunk) => {
      logs += chunk;
      const found = /listening on (http:\/\/[0-9.:]+)/.exec(logs);
      if (found) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    };
    child.stdout.on("data", read);
    child.stderr.on("data", read);
    child.on("error", (error) => reject(new Error(`cannot start ${binary}: ${error.message}`)));
    child.on("exit", (code) => reject(new Error(`gatehouse exited (${code}):\n${logs}`)));
  });
  return {
    url,
    logs: () => logs,
    stop() {
      child.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- the webhook receiver ----------------------------------------------------------------

/**
 * An HTTP server on 127.0.0.1 that keeps every request it gets ({method, path, headers,
 * body (the exact bytes)}) and answers each with `answer` (200).
 */
async function startReceiver() {
  const receiver = { received: [], answer: 200, url: null };
  const http = createServer((request, response) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      receiver.received.push({
        method: request.method,
        path: request.url,
        headers: request.headers,
        body: Buffer.concat(chunks),
      });
      response.writeHead(receiver.answer, { "Content-Type": "text/plain" });
      response.end("thanks");
    });
  });
  await new Promise((resolve, reject) => {
    http.once("error", reject);
    http.listen(0, "127.0.0.1", resolve);
  });
  receiver.url = `http://127.0.0.1:${http.address().port}`;
  receiver.stop = () => {
    http.closeAllConnections();
    http.close();
  };
  return receiver;
}

/**
 * Whether a delivery is signed with `secret` as Standard Webhooks says: `v1,` and the base64
 * HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}", keyed with the base64-decoded
 * part of the secret after "whsec_".
 */
function signedWith(delivery, secret) {
  const id = delivery.headers["webhook-id"];
  const timestamp = delivery.headers["webhook-timestamp"];
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const mac = createHmac("sha256", key)
    .update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`), delivery.body]))
    .digest("base64");
  return (delivery.headers["webhook-signature"] ?? "").split(" ").includes(`v1,${mac}`);
}

// ---- the browser ----------------------------------------------------------------------

/** A page in a browser context of its own, on `on` (the main server unless told). */
async function newPage({ width = 1280, height = 860, on = server, userAgent } = {}) {
  const context = await browser.newContext({
    baseURL: on.url,
    viewport: { width, height },
    colorScheme: "light",
    locale: "en-GB",
    timezoneId: "UTC",
    userAgent,
  });
  const page = await context.newPage();
  watch(page, on);
  return page;
}

/** Records what `page` (on `on`) asks for and every error it sees, for the last test. */
function watch(page, on = server) {
  page.setDefaultTimeout(10_000);
  const seen = { origin: new URL(on.url).origin, requests: [], problems: [] };
  watched.push(seen);
  page.on("request", (request) => seen.requests.push(request.url()));
  page.on("pageerror", (error) => seen.problems.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    const text = message.text();
    if (/Content Security Policy|Refused to/i.test(text)) seen.problems.push(`CSP: ${text}`);
  });
  return seen;
}

async function shot(page, name, { fullPage = true } = {}) {
  if (!shotsDir) return;
  mkdirSync(shotsDir, { recursive: true });
  await page.screenshot({ path: path.join(shotsDir, `${name}.png`), fullPage });
}

const heading = (page, name) => page.getByRole("heading", { level: 1, name, exact: true });
const button = (page, name) => page.getByRole("button", { name, exact: true });
const input = (page, label) => page.getByLabel(label, { exact: true });
const row = (page, email) => page.locator(`tr[data-email="${email}"]`);
const message = (page, text) => page.locator(".message").filter({ hasText: text });

async function logIn(page, email, password) {
  await page.goto("/#/login");
  await heading(page, "Log in").waitFor();
  await input(page, "Email").fill(email);
  await input(page, "Password").fill(password);
  await button(page, "Log in").click();
}

/** The page fits the window's width: no sideways scrolling. */
async function assertNoSidewaysScroll(page, where) {
  const { scrollWidth, clientWidth } = await page.evaluate(() => {
    const { scrollWidth, clientWidth } = document.scrollingElement;
    return { scrollWidth, clientWidth };
  });
  assert.ok(
    scrollWidth <= clientWidth,
    `${where}: the page is ${scrollWidth - clientWidth}px wider than the window`,
  );
}

/** Every button in `scope` lies wholly inside the window (after scrolling `scope` into view). */
async function assertButtonsInWindow(page, scope, where) {
  await scope.evaluate((el) => el.scrollIntoView({ block: "nearest" }));
  const { width, height } = page.viewportSize();
  const buttons = await scope.getByRole("button").all();
  assert.ok(buttons.length > 0, `${where}: no buttons`);
  for (const b of buttons) {
    const name = await b.getAttribute("aria-label") ?? (await b.textContent());
    const box = await b.boundingBox();
    assert.ok(box, `${where}: ${name} is not shown`);
    assert.ok(
      box.x >= 0 && box.y >= 0 && box.x + box.width <= width && box.y + box.height <= height,
      `${where}: ${name} is not wholly inside the ${width}x${height} window: ${JSON.stringify(box)}`,
    );
  }
}

/**
 * `locator` shows the whole of `text`: its text is all of it, no box from it up to its dialog
 * (or the page) scrolls or clips it sideways or ends it with an ellipsis, and every line of
 * it lies between the left and right edges of that dialog and of the window.
 */
async function assertReadable(locator, text, where) {
  const seen = await locator.evaluate((el) => {
    const frame = el.closest("dialog") ?? document.body;
    const cut = [];
    for (let node = el; node !== frame.parentElement; node = node.parentElement) {
      const name = `${node.tagName.toLowerCase()}.${node.className}`;
      if (node.clientWidth > 0 && node.scrollWidth > node.clientWidth) {
        cut.push(`${name} is ${node.scrollWidth}px wide in ${node.clientWidth}px`);
      }
      const style = getComputedStyle(node);
      if (style.textOverflow === "ellipsis" && style.overflowX !== "visible") {
        cut.push(`${name} ends in an ellipsis`);
      }
    }
    const outer = frame.getBoundingClientRect();
    const lines = [...el.getClientRects()];
    const outside = lines.filter(
      (r) => r.left < Math.max(0, outer.left) - 0.5 || r.right > Math.min(innerWidth, outer.right) + 0.5,
    );
    return { text: el.textContent, cut, outside: outside.length, lines: lines.length };
  });
  assert.equal(seen.text, text, `${where}: the text`);
  assert.deepEqual(seen.cut, [], `${where}: cut off`);
  assert.equal(seen.outside, 0, `${where}: ${seen.outside} of ${seen.lines} lines outside`);
}

/** Every input and select on the page has a label. */
async function assertLabelled(page, where) {
  const unlabelled = await page.$$eval("input, select", (elements) =>
    elements.filter((e) => e.labels.length === 0).map((e) => e.outerHTML),
  );
  assert.deepEqual(unlabelled, [], `${where}: inputs without a label`);
}

/** The badge's number, or null while it is hidden. */
async function badge(page) {
  const el = page.locator("#pending-badge");
  if (!(await el.isVisible())) return null;
  return Number((await el.locator("[aria-hidden]").textContent()).trim());
}

async function eventually(check, what, timeout = 10_000) {
  const start = Date.now();
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() - start > timeout) {
        error.message = `${what}: ${error.message}`;
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Calls the API from the page with its own session (for setting up a race). */
function apiFromPage(page, method, url, body) {
  return page.evaluate(
    async ({ method, url, body }) => {
      const response = await fetch(url, {
        method,
        headers: {
          Authorization: `Bearer ${sessionStorage.getItem("gatehouse.token")}`,
          "Content-Type": "application/json",
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return response.status;
    },
    { method, url, body },
  );
}

/** A user's id, asked by the page with its admin's session. */
function userId(page, email) {
  return page.evaluate(async (email) => {
    const response = await fetch(`/api/auth/users?q=${encodeURIComponent(email)}`, {
      headers: { Authorization: `Bearer ${sessionStorage.getItem("gatehouse.token")}` },
    });
    return (await response.json()).find((user) => user.email === email).id;
  }, email);
}

/** Logs in through the API (not a page): the status and the answer's body. */
async function apiLogin(email, password, { on = server, userAgent } = {}) {
  const headers = { "Content-Type": "application/json" };
  if (userAgent) headers["User-Agent"] = userAgent;
  const response = await fetch(`${on.url}/api/auth/login`, {
    method: "POST",
    headers,
    body: JSON.stringify({ email, password }),
  });
  return { status: response.status, body: await response.json() };
}

/** Calls the API from here (not a page) with `token`: the status and the body (or null). */
async function apiCall(on, method, url, token, body) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`${on.url}${url}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** Presents a refresh token from here, as another client (or a thief) would. */
function apiRefresh(on, refreshToken) {
  return apiCall(on, "POST", "/api/auth/token", null, {
    grant_type: "refresh_token",
    refresh_token: refreshToken,
  });
}

/** The tokens a page keeps in its tab. */
function kept(page) {
  return page.evaluate(() => ({
    token: sessionStorage.getItem("gatehouse.token"),
    refresh: sessionStorage.getItem("gatehouse.refresh"),
  }));
}

/** The renewals (POST /api/auth/token) `page` makes from now on, as they go out. */
function renewalsOf(page) {
  const renewals = [];
  page.on("request", (request) => {
    if (request.method() === "POST" && new URL(request.url()).pathname === "/api/auth/token") {
      renewals.push(JSON.parse(request.postData() ?? "null"));
    }
  });
  return renewals;
}

/** Runs `check` with the page at phone width, then puts the width back. */
async function atPhoneWidth(page, check) {
  const before = page.viewportSize();
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    await check();
  } finally {
    await page.setViewportSize(before);
  }
}

// ---- the steps --------------------------------------------------------------------------

let admin; // the first user's page
let bob; // the second user's page
let bobId;
let receiver; // where the main server's webhooks go

before(async () => {
  receiver = await startReceiver();
  server = await startServer({
    GATEHOUSE_WEBHOOK_ALLOW_PRIVATE: "true",
    GATEHOUSE_WEBHOOK_RETRY_DELAYS: "200ms",
    GATEHOUSE_WEBHOOK_TIMEOUT: "1s",
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  server?.stop();
  quick?.stop();
  receiver?.stop();
  mailing?.stop();
  sink?.stop();
  strict?.stop();
  keyed?.stop();
});

test("an unauthenticated visit lands on the login page, under a strict CSP", async () => {
  admin = await newPage();
  const response = await admin.goto("/");
  const csp = response.headers()["content-security-policy"];
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self';/);
  assert.doesNotMatch(csp, /unsafe/);
  assert.equal(response.headers()["x-frame-options"], "DENY");
  await heading(admin, "Log in").waitFor();
  assert.match(admin.url(), /#\/login$/);
  await assertLabelled(admin, "login");
  await shot(admin, "login");

  await admin.goto("/#/users");
  await heading(admin, "Log in").waitFor();
  assert.match(admin.url(), /#\/login$/, "a signed-in page sends strangers to log in");
});

test("the first user registers (password typed twice) and lands in the console as admin", async () => {
  await admin.getByRole("link", { name: "Create an account" }).click();
  await heading(admin, "Create an account").waitFor();
  await assertLabelled(admin, "register");
  await input(admin, "Email").fill(ADMIN);
  await input(admin, "Password").fill(PASSWORD);
  await input(admin, "Repeat the password").fill(`${PASSWORD}x`);
  await button(admin, "Create account").click();
  await admin.getByText("The two passwords are not the same.").waitFor();
  assert.equal(await input(admin, "Repeat the password").getAttribute("aria-invalid"), "true");
  await shot(admin, "register");

  await input(admin, "Repeat the password").fill(PASSWORD);
  await button(admin, "Create account").click();
  await heading(admin, "Users").waitFor();
  await message(admin, "You are the first user, so you are the administrator").waitFor();
  await admin.getByText(`Signed in as ${ADMIN} (admin)`).waitFor();
  await row(admin, ADMIN).waitFor();
  assert.equal(await badge(admin), null, "nobody is pending");
});

test("the last active admin's disable, demote and delete buttons are disabled, with the reason", async () => {
  const own = row(admin, ADMIN);
  for (const action of ["Disable", "Demote", "Delete"]) {
    const b = own.getByRole("button", { name: `${action}: ${ADMIN}`, exact: true });
    assert.equal(await b.isDisabled(), true, action);
    const describedBy = await b.getAttribute("aria-describedby");
    const note = await admin.locator(`#${describedBy}`).textContent();
    assert.match(note, /last active admin cannot be disabled, demoted or deleted/);
  }
  assert.equal(
    await own.getByRole("button", { name: `Reset password: ${ADMIN}`, exact: true }).isDisabled(),
    false,
  );
});

test("the session survives a reload", async () => {
  await admin.reload();
  await heading(admin, "Users").waitFor();
  await row(admin, ADMIN).waitFor();
});

test("a second user registers and is told the account awaits approval", async () => {
  bob = await newPage();
  await bob.goto("/#/register");
  await heading(bob, "Create an account").waitFor();
  await input(bob, "Email").fill(BOB);
  await input(bob, "Password").fill(BOB_PASSWORD);
  await input(bob, "Repeat the password").fill(BOB_PASSWORD);
  await button(bob, "Create account").click();
  await heading(bob, "Your account awaits approval").waitFor();
  await bob.getByText(BOB, { exact: true }).waitFor();
  await shot(bob, "pending");

  // Logging in before approval leads to the same page.
  await logIn(bob, BOB, BOB_PASSWORD);
  await heading(bob, "Your account awaits approval").waitFor();
});

test("the pending badge counts sign-ups", async () => {
  await admin.getByRole("link", { name: /^Users/ }).click();
  await eventually(async () => assert.equal(await badge(admin), 1), "badge shows 1");
  await row(admin, BOB).waitFor();
  const label = await admin.locator("#pending-badge").textContent();
  assert.match(label, /1 pending/, "screen readers hear what the number means");
});

test("an admin filters by status, searches by email and approves", async () => {
  // A few more users make filtering mean something (and the screenshot fuller); two say
  // why they ask.
  const reasons = {
    [CAROL]: "Treasurer of the allotment society.",
    [DAVE]: "New volunteer at the front desk;\nSam asked me to sign up.",
  };
  for (const email of [CAROL, DAVE, ERIN]) {
    const body = { email, password: PASSWORD, reason: reasons[email] };
    assert.equal(await apiFromPage(admin, "POST", "/api/auth/register", body), 201);
  }
  await admin.getByLabel("Status").selectOption("pending");
  await eventually(async () => assert.equal(await admin.locator("tbody tr").count(), 4), "4 pending");
  await input(admin, "Search by email").fill("bob");
  await eventually(async () => assert.equal(await admin.locator("tbody tr").count(), 1), "1 bob");
  await row(admin, BOB).waitFor();
  await eventually(async () => assert.equal(await badge(admin), 4), "badge shows 4");

  await button(admin, `Approve: ${BOB}`).click();
  await message(admin, `Approved ${BOB}.`).waitFor();
  await admin.getByText("No users match these filters.").waitFor();
  await eventually(async () => assert.equal(await badge(admin), 3), "badge shows 3");

  await input(admin, "Search by email").fill("");
  await admin.getByLabel("Status").selectOption("");
  await eventually(async () => assert.equal(await admin.locator("tbody tr").count(), 5), "all 5");
  const approved = await row(admin, BOB).locator('td[data-label="Status"]').textContent();
  assert.equal(approved.trim(), "Approved");
  await assertLabelled(admin, "users");
  await shot(admin, "users");
  bobId = await userId(admin, BOB);
});

test("the approved user logs in and sees no admin pages", async () => {
  await logIn(bob, BOB, BOB_PASSWORD);
  await heading(bob, "Your account").waitFor();
  await bob.getByText(`Signed in as ${BOB}`, { exact: true }).waitFor();
  assert.equal(await bob.getByRole("link", { name: /^Users/ }).count(), 0);
  assert.equal(await bob.getByRole("link", { name: "Webhooks" }).count(), 0);
  await bob.goto("/#/users");
  await heading(bob, "Your account").waitFor();
  await bob.goto("/#/webhooks");
  await heading(bob, "Your account").waitFor();
  await assertLabelled(bob, "account");
  await shot(bob, "account");
});

test("a non-admin sees no Settings link, and typing #/settings lands on their account page", async () => {
  await heading(bob, "Your account").waitFor();
  assert.equal(await bob.getByRole("link", { name: "Settings", exact: true }).count(), 0);
  await bob.goto("/#/settings");
  await heading(bob, "Your account").waitFor();
  // The heading was there before: wait for the redirect itself.
  await eventually(async () => assert.match(bob.url(), /#\/account$/), "lands on the account page");
  assert.equal(await bob.getByRole("heading", { name: "Mail", exact: true }).count(), 0);
  const { token } = await kept(bob);
  assert.equal((await apiCall(server, "GET", "/api/auth/settings/mail", token)).status, 403);
});

test("a browser that logged in before is not locked out by guesses from elsewhere", async () => {
  const stored = await bob.evaluate((key) => localStorage.getItem(key), `gatehouse.device.${BOB}`);
  assert.match(stored ?? "", /^[0-9a-f]{64}$/, "the login's device token is kept per account");
  // Someone else guesses until the account is locked for logins without a device token.
  for (let i = 0; i < 6; i += 1) {
    await fetch(`${server.url}/api/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: BOB, password: `wrong guess ${i}` }),
    });
  }
  const locked = await fetch(`${server.url}/api/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: BOB, password: BOB_PASSWORD }),
  });
  assert.equal(locked.status, 429, "without a device token the account is locked");
  // This browser presents its device token and gets in.
  await button(bob, "Log out").click();
  await heading(bob, "Log in").waitFor();
  await logIn(bob, BOB, BOB_PASSWORD);
  await heading(bob, "Your account").waitFor();
});

test("disabling a user ends their session at their next step, and they cannot log in", async () => {
  await button(admin, `Disable: ${BOB}`).click();
  await message(admin, `Disabled ${BOB}.`).waitFor();

  await bob.getByRole("link", { name: "Account", exact: true }).click();
  await heading(bob, "Log in").waitFor();
  await message(bob, "Your session has ended").waitFor();
  await input(bob, "Email").fill(BOB);
  await input(bob, "Password").fill(BOB_PASSWORD);
  await button(bob, "Log in").click();
  await message(bob, "Account disabled.").waitFor();

  await button(admin, `Enable: ${BOB}`).click();
  await message(admin, `Enabled ${BOB}.`).waitFor();
});

test("an admin resets a password in a dialog (typed twice); the old one stops working", async () => {
  await button(admin, `Reset password: ${BOB}`).click();
  const dialog = admin.getByRole("dialog");
  await dialog.getByRole("heading", { name: `Reset the password of ${BOB}` }).waitFor();
  await input(dialog, "New password").fill(BOB_NEW_PASSWORD);
  await input(dialog, "Repeat the new password").fill("something-else");
  await button(dialog, "Reset password").click();
  await dialog.getByText("The two passwords are not the same.").waitFor();
  // The server's own policy speaks through the dialog.
  await input(dialog, "New password").fill("password123");
  await input(dialog, "Repeat the new password").fill("password123");
  await button(dialog, "Reset password").click();
  await dialog.locator(".field-error").filter({ hasText: /common/i }).waitFor();
  await input(dialog, "New password").fill(BOB_NEW_PASSWORD);
  await input(dialog, "Repeat the new password").fill(BOB_NEW_PASSWORD);
  await shot(admin, "reset-password");
  await button(dialog, "Reset password").click();
  await dialog.waitFor({ state: "detached" });
  await message(admin, `The password of ${BOB} has been reset`).waitFor();

  await logIn(bob, BOB, BOB_PASSWORD);
  await message(bob, "Incorrect email or password.").waitFor();
  await logIn(bob, BOB, BOB_NEW_PASSWORD);
  await heading(bob, "Your account").waitFor();
});

test("a user changes their own password on the account page", async () => {
  await input(bob, "Current password").fill("not-my-password");
  await input(bob, "New password").fill(PASSWORD);
  await input(bob, "Repeat the new password").fill(PASSWORD);
  await button(bob, "Change password").click();
  await bob.getByText("Current password is incorrect.").waitFor();
  assert.equal(await input(bob, "Current password").getAttribute("aria-invalid"), "true");

  await input(bob, "Current password").fill(BOB_NEW_PASSWORD);
  await button(bob, "Change password").click();
  await message(bob, "Your password has been changed.").waitFor();
  // The fresh token from the change keeps the page working.
  await bob.reload();
  await heading(bob, "Your account").waitFor();
  await button(bob, "Log out").click();
  await logIn(bob, BOB, PASSWORD);
  await heading(bob, "Your account").waitFor();
});

test("a second admin releases the last-admin guard, and demoting them restores it", async () => {
  await button(admin, `Make admin: ${BOB}`).click();
  await message(admin, `${BOB} is now an admin.`).waitFor();
  await eventually(
    async () => assert.equal(await button(admin, `Demote: ${ADMIN}`).isDisabled(), false),
    "two admins: the first can be demoted",
  );
  assert.equal(await row(admin, ADMIN).locator(".note").count(), 0);

  await button(admin, `Demote: ${BOB}`).click();
  await message(admin, `${BOB} is no longer an admin.`).waitFor();
  await eventually(
    async () => assert.equal(await button(admin, `Demote: ${ADMIN}`).isDisabled(), true),
    "one admin again",
  );
});

test("a refused change shows the API's reason in words", async () => {
  // The page shows two active admins; bob is then disabled behind its back, so deleting
  // the first admin would leave none: the server refuses and the page says why.
  await button(admin, `Make admin: ${BOB}`).click();
  await message(admin, `${BOB} is now an admin.`).waitFor();
  await eventually(
    async () => assert.equal(await button(admin, `Delete: ${ADMIN}`).isDisabled(), false),
    "two admins",
  );
  assert.equal(await apiFromPage(admin, "PUT", `/api/auth/users/${bobId}`, { status: "disabled" }), 200);
  await button(admin, `Delete: ${ADMIN}`).click();
  const dialog = admin.getByRole("dialog");
  await dialog.getByText("This deletes your own account").waitFor();
  await button(dialog, "Delete").click();
  await message(admin, `Could not delete ${ADMIN}: Cannot delete last admin.`).waitFor();
  await eventually(
    async () => assert.equal(await button(admin, `Delete: ${ADMIN}`).isDisabled(), true),
    "the guard is back after the reload",
  );
  await heading(admin, "Users").waitFor();
});

test("deleting asks first", async () => {
  await button(admin, `Delete: ${BOB}`).click();
  const dialog = admin.getByRole("dialog");
  await dialog.getByRole("heading", { name: `Delete ${BOB}?` }).waitFor();
  await button(dialog, "Cancel").click();
  await dialog.waitFor({ state: "detached" });
  await row(admin, BOB).waitFor();

  await button(admin, `Delete: ${BOB}`).click();
  await button(admin.getByRole("dialog"), "Delete").click();
  await message(admin, `Deleted ${BOB}.`).waitFor();
  await row(admin, BOB).waitFor({ state: "detached" });
});

test("a 254-byte address wraps: in the table, the dialogs and the header, cut off nowhere", async () => {
  const [local, domain] = LONG.split("@");
  assert.equal(Buffer.byteLength(LONG), 254);
  assert.equal(local.length, 64);
  assert.ok(domain.split(".").every((label) => label.length <= 63));
  // One byte more is refused: this is the longest address there can be.
  assert.equal(
    await apiFromPage(admin, "POST", "/api/auth/register", { email: longAddress(255), password: PASSWORD }),
    422,
  );

  // Registering at phone width: the pending page shows the whole address.
  const long = await newPage({ width: 390, height: 844 });
  await long.goto("/#/register");
  await heading(long, "Create an account").waitFor();
  await input(long, "Email").fill(LONG);
  await input(long, "Password").fill(PASSWORD);
  await input(long, "Repeat the password").fill(PASSWORD);
  await button(long, "Create account").click();
  await heading(long, "Your account awaits approval").waitFor();
  await assertReadable(long.locator("main .address"), LONG, "pending page");
  await assertNoSidewaysScroll(long, "pending page");

  // The users table at desktop width: the email wraps, the actions stay on the screen.
  await admin.getByRole("link", { name: /^Users/ }).click();
  const own = row(admin, LONG);
  await own.waitFor();
  for (const state of ["pending", "approved"]) {
    await assertNoSidewaysScroll(admin, `users, ${state}`);
    await assertButtonsInWindow(admin, own, `users, ${state}`);
    await assertReadable(own.locator("td.email"), LONG, `users, ${state}`);
    if (state === "pending") {
      await button(admin, `Approve: ${LONG}`).click();
      await message(admin, `Approved ${LONG}.`).waitFor();
      await assertNoSidewaysScroll(admin, "the message");
    }
  }

  await button(admin, `Reset password: ${LONG}`).click();
  let dialog = admin.getByRole("dialog");
  await dialog.getByRole("heading", { name: `Reset the password of ${LONG}` }).waitFor();
  await assertReadable(dialog.locator(".address"), LONG, "reset password dialog");
  await assertButtonsInWindow(admin, dialog, "reset password dialog");
  await assertNoSidewaysScroll(admin, "reset password dialog");
  await button(dialog, "Cancel").click();
  await dialog.waitFor({ state: "detached" });

  // Narrower: a tight table (the cards start below 720 px), and the cards.
  for (const width of [768, 390]) {
    await admin.setViewportSize({ width, height: 860 });
    await assertNoSidewaysScroll(admin, `users at ${width}px`);
    await assertButtonsInWindow(admin, own, `users at ${width}px`);
    await assertReadable(own.locator("td.email"), LONG, `users at ${width}px`);
  }
  await admin.setViewportSize({ width: 1280, height: 860 });

  // Signed in as that user: the header and the account page.
  for (const width of [1280, 390]) {
    await long.setViewportSize({ width, height: 860 });
    if (width === 1280) await logIn(long, LONG, PASSWORD);
    await heading(long, "Your account").waitFor();
    await assertReadable(long.locator(".who .address"), LONG, `header at ${width}px`);
    await assertReadable(long.locator("dd.address"), LONG, `account at ${width}px`);
    await assertNoSidewaysScroll(long, `account at ${width}px`);
    await assertButtonsInWindow(long, long.locator("header"), `header at ${width}px`);
  }
  await long.context().close();

  await button(admin, `Delete: ${LONG}`).click();
  dialog = admin.getByRole("dialog");
  await dialog.getByRole("heading", { name: `Delete ${LONG}?` }).waitFor();
  await assertReadable(dialog.locator(".address"), LONG, "delete confirmation");
  await assertButtonsInWindow(admin, dialog, "delete confirmation");
  await assertNoSidewaysScroll(admin, "delete confirmation");
  await button(dialog, "Delete").click();
  await message(admin, `Deleted ${LONG}.`).waitFor();
  await own.waitFor({ state: "detached" });
});

test("keyboard only: log in with Tab and Enter, with a visible focus ring", async () => {
  const page = await newPage();
  await page.goto("/");
  await heading(page, "Log in").waitFor();
  const focused = () => page.evaluate(() => document.activeElement?.getAttribute("name"));
  assert.equal(await focused(), "email", "the first field has the focus");
  await page.keyboard.type(ADMIN);
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "password");
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, "none", "the focused field shows it");
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await heading(page, "Users").waitFor();
  await page.context().close();
});

test("readable at phone width: no sideways scrolling", async () => {
  const phone = await newPage({ width: 390, height: 844 });
  await logIn(phone, ADMIN, PASSWORD);
  await heading(phone, "Users").waitFor();
  await row(phone, ADMIN).waitFor();
  const overflow = await phone.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  await shot(phone, "users-phone");
  await phone.context().close();
});

// ---- the approval queue and invitations -------------------------------------------------

let fran; // an applicant with a reason, then rejected
let invitationCode;
let invitationLink;

test("a registration's reason shows in the pending queue", async () => {
  fran = await newPage();
  await fran.goto("/#/register");
  await heading(fran, "Create an account").waitFor();
  const reason = input(fran, "Why do you want an account?");
  assert.equal(await reason.getAttribute("maxlength"), "500");
  await fran.getByText("Shown to the administrators").waitFor();
  await input(fran, "Email").fill(FRAN);
  await input(fran, "Password").fill(PASSWORD);
  await input(fran, "Repeat the password").fill(PASSWORD);
  await reason.fill(FRAN_REASON);
  await button(fran, "Create account").click();
  await heading(fran, "Your account awaits approval").waitFor();

  await admin.getByRole("link", { name: /^Users/ }).click();
  await heading(admin, "Users").waitFor();
  await admin.getByLabel("Status").selectOption("pending");
  await eventually(async () => assert.equal(await admin.locator("tbody tr").count(), 4), "4 pending");
  const shown = row(admin, FRAN).locator(".reason");
  assert.equal(await shown.textContent(), `Reason: ${FRAN_REASON}`);
  assert.match(await shown.innerText(), /book club\nand book/, "its line breaks are kept");
  await eventually(async () => assert.equal(await badge(admin), 4), "badge shows 4");
});

test("an admin rejects an applicant with a note, and their login shows it", async () => {
  await button(admin, `Reject: ${FRAN}`).click();
  let dialog = admin.getByRole("dialog");
  await dialog.getByRole("heading", { name: `Reject ${FRAN}?` }).waitFor();
  const note = input(dialog, "Note to the applicant (optional)");
  assert.equal(await note.getAttribute("maxlength"), "500");
  await note.fill(FRAN_NOTE);
  await shot(admin, "reject-dialog");
  await button(dialog, "Reject").click();
  await dialog.waitFor({ state: "detached" });
  await message(admin, `Rejected ${FRAN}.`).waitFor();
  await row(admin, FRAN).waitFor({ state: "detached" });
  await eventually(async () => assert.equal(await badge(admin), 3), "a rejected user is not pending");

  // Rejected users have their own filter, their own actions, and show why and what was said.
  await admin.getByLabel("Status").selectOption("rejected");
  const rejected = row(admin, FRAN);
  await rejected.waitFor();
  assert.equal((await rejected.locator('td[data-label="Status"]').textContent()).trim(), "Rejected");
  await rejected.getByText(`Rejected with the note: ${FRAN_NOTE}`).waitFor();
  await button(admin, `Approve: ${FRAN}`).waitFor();
  await button(admin, `Back to pending: ${FRAN}`).waitFor();
  assert.equal(await button(admin, `Reject: ${FRAN}`).count(), 0);
  assert.equal(await rejected.getByRole("checkbox").count(), 0, "only pending users can be picked");

  // The applicant's login: the note, with its line breaks, and no session.
  await logIn(fran, FRAN, PASSWORD);
  await heading(fran, "Your registration was declined").waitFor();
  const shown = fran.locator(".decision-note");
  assert.equal(await shown.textContent(), FRAN_NOTE);
  assert.match(await shown.innerText(), /full\.\nAsk again/);
  assert.equal(await fran.evaluate(() => sessionStorage.getItem("gatehouse.token")), null);
  assert.equal(await fran.locator("#nav").isVisible(), false, "not signed in");
  await shot(fran, "rejected");
  await atPhoneWidth(fran, () => assertNoSidewaysScroll(fran, "rejected page at phone width"));

  // Back to pending, then rejected again without a note: no reason was given.
  await button(admin, `Back to pending: ${FRAN}`).click();
  await message(admin, `${FRAN} is pending again.`).waitFor();
  await rejected.waitFor({ state: "detached" });
  await admin.getByLabel("Status").selectOption("pending");
  await button(admin, `Reject: ${FRAN}`).click();
  dialog = admin.getByRole("dialog");
  await button(dialog, "Reject").click();
  await message(admin, `Rejected ${FRAN}.`).waitFor();
  await logIn(fran, FRAN, PASSWORD);
  await heading(fran, "Your registration was declined").waitFor();
  await fran.getByText("No reason was given.").waitFor();
  await fran.context().close();
});

test("an admin selects pending users and approves them at once; they can log in", async () => {
  await eventually(async () => assert.equal(await admin.locator("tbody tr").count(), 3), "3 pending");
  const pick = (email) => admin.getByLabel(`Select ${email}`, { exact: true });
  const bar = admin.locator(".bulk");
  await bar.getByText("0 selected").waitFor();
  assert.equal(await button(admin, "Approve selected").isDisabled(), true);
  await pick(CAROL).check();
  await pick(DAVE).check();
  await bar.getByText("2 selected").waitFor();
  assert.equal(await button(admin, "Approve selected").isDisabled(), false);
  await assertLabelled(admin, "users with pending rows");
  await atPhoneWidth(admin, async () => {
    await assertNoSidewaysScroll(admin, "pending queue at phone width");
    await assertButtonsInWindow(admin, row(admin, CAROL), "pending row at phone width");
    await admin.getByLabel("Select all pending users on this page").waitFor();
    assert.ok(await admin.getByText("Select all pending users on this page").isVisible());
  });
  await shot(admin, "pending-queue");

  // Dave is approved behind the page's back: the bulk approval changes nothing and says who.
  assert.equal(
    await apiFromPage(admin, "PUT", `/api/auth/users/${await userId(admin, DAVE)}`, { status: "approved" }),
    200,
  );
  await button(admin, "Approve selected").click();
  const refused = message(admin, "Could not approve the selected users");
  await refused.waitFor();
  assert.match(await refused.textContent(), new RegExp(`not pending: \\d+ \\(${DAVE}\\)\\. Nothing was changed\\.`));
  await row(admin, DAVE).waitFor({ state: "detached" });
  await eventually(async () => assert.equal(await admin.locator("tbody tr").count(), 2), "2 pending");
  assert.equal(await row(admin, CAROL).getAttribute("data-status"), "pending");

  // Select all (carol and erin), approve.
  const all = admin.getByLabel("Select all pending users on this page");
  await all.check();
  await bar.getByText("2 selected").waitFor();
  assert.equal(await pick(CAROL).isChecked(), true);
  assert.equal(await pick(ERIN).isChecked(), true);
  await pick(ERIN).uncheck();
  assert.equal(await all.evaluate((el) => el.indeterminate), true, "some are picked");
  await all.check();
  await button(admin, "Approve selected").click();
  await message(admin, "Approved 2 users:").waitFor();
  await admin.getByText("No users match these filters.").waitFor();
  await eventually(async () => assert.equal(await badge(admin), null), "nobody is pending");

  for (const email of [CAROL, ERIN]) {
    const page = await newPage();
    await logIn(page, email, PASSWORD);
    await heading(page, "Your account").waitFor();
    await page.context().close();
  }
});

test("an admin rejects selected users with one note", async () => {
  for (const email of ["gil@example.com", "hal@example.com"]) {
    assert.equal(
      await apiFromPage(admin, "POST", "/api/auth/register", { email, password: PASSWORD }),
      201,
    );
  }
  await admin.getByRole("link", { name: /^Users/ }).click();
  await eventually(async () => assert.equal(await admin.locator("tbody tr").count(), 2), "2 pending");
  await admin.getByLabel("Select all pending users on this page").check();
  await button(admin, "Reject selected…").click();
  const dialog = admin.getByRole("dialog");
  await dialog.getByRole("heading", { name: "Reject 2 users?" }).waitFor();
  await input(dialog, "Note to the applicant (optional)").fill("We only admit staff.");
  await button(dialog, "Reject").click();
  await message(admin, "Rejected 2 users:").waitFor();
  const login = await apiLogin("gil@example.com", PASSWORD);
  assert.equal(login.status, 403);
  assert.equal(login.body.code, "account_rejected");
  assert.equal(login.body.note, "We only admit staff.");
  await admin.getByLabel("Status").selectOption("");
});

test("the Invitations page creates an invitation and shows its code and link once", async () => {
  await admin.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
  await admin.getByRole("link", { name: "Invitations", exact: true }).click();
  await heading(admin, "Invitations").waitFor();
  await admin.getByText("No invitations yet.").waitFor();
  await assertLabelled(admin, "invitations");

  await admin.getByLabel("Expires in").selectOption("1d");
  await input(admin, "Note (optional)").fill("For Jo, the new treasurer");
  await button(admin, "Create invitation").click();
  const panel = admin.locator(".created");
  await panel.getByRole("heading", { name: "Invitation created" }).waitFor();
  await panel.getByText("the code is shown only this once").waitFor();
  await panel.getByText("For anyone with the code · as a user · 1 use · expires").waitFor();
  invitationCode = (await panel.locator('[data-secret="code"]').textContent()).trim();
  invitationLink = (await panel.locator('[data-secret="link"]').textContent()).trim();
  assert.match(invitationCode, /^[0-9a-z]{16,}$/);
  assert.equal(invitationLink, `${server.url}/#/register?invitation=${invitationCode}`);
  await button(panel, "Copy the code").waitFor();
  await button(panel, "Copy the link").click();
  await panel.getByText("Copied the link.").waitFor();
  assert.equal(await admin.evaluate(() => navigator.clipboard.readText()), invitationLink);
  await button(panel, "Copy the code").click();
  await panel.getByText("Copied the code.").waitFor();
  await shot(admin, "invitation-created");

  // The list shows it, active; the form is ready for the next one.
  const listed = admin.locator("tbody tr").filter({ hasText: "For Jo, the new treasurer" });
  await listed.waitFor();
  assert.equal(await listed.getAttribute("data-status"), "active");
  assert.equal((await listed.locator('td[data-label="For"]').textContent()).trim(), "Anyone");
  assert.equal((await listed.locator('td[data-label="Uses"]').textContent()).trim(), "0 of 1");
  assert.equal((await listed.locator('td[data-label="Status"]').textContent()).trim(), "Active");
  assert.equal(await input(admin, "Note (optional)").inputValue(), "");
  assert.equal(await input(admin, "Uses").inputValue(), "1");
  assert.equal(await admin.getByLabel("Expires in").inputValue(), "7d");

  // Shown once: after leaving the page, the code is nowhere.
  await admin.getByRole("link", { name: /^Users/ }).click();
  await heading(admin, "Users").waitFor();
  await admin.getByRole("link", { name: "Invitations", exact: true }).click();
  await heading(admin, "Invitations").waitFor();
  await listed.waitFor();
  assert.equal(await admin.getByText(invitationCode).count(), 0, "the code is not shown again");
  assert.equal(await admin.locator(".created").isVisible(), false);
});

test("an invitation for one address is used once; revoking one marks it revoked", async () => {
  await input(admin, "Email (optional)").fill("ivy@example.com");
  assert.equal(await input(admin, "Uses").isDisabled(), true, "an address's invitation is used once");
  assert.equal(await input(admin, "Uses").inputValue(), "1");
  await admin.getByLabel("Make them an admin").check();
  await input(admin, "Note (optional)").fill("Ivy, our second admin");
  await button(admin, "Create invitation").click();
  await admin.locator(".created").getByText("For ivy@example.com · as an admin · 1 use").waitFor();
  const ivy = admin.locator("tbody tr").filter({ hasText: "Ivy, our second admin" });
  await ivy.waitFor();
  assert.equal((await ivy.locator('td[data-label="For"]').textContent()).trim(), "ivy@example.com");
  assert.equal((await ivy.locator('td[data-label="Role"]').textContent()).trim(), "Admin");
  assert.equal(await input(admin, "Uses").isDisabled(), false, "the form is reset");

  // One more for anyone, many uses, for the record.
  await input(admin, "Uses").fill("25");
  await admin.getByLabel("Expires in").selectOption("30d");
  await input(admin, "Note (optional)").fill("Choir members\nspring term");
  await button(admin, "Create invitation").click();
  const choir = admin.locator("tbody tr").filter({ hasText: "Choir members" });
  await choir.waitFor();
  assert.equal((await choir.locator('td[data-label="Uses"]').textContent()).trim(), "0 of 25");

  await ivy.getByRole("button", { name: /^Revoke/ }).click();
  const dialog = admin.getByRole("dialog");
  await dialog.getByRole("heading", { name: "Revoke this invitation?" }).waitFor();
  await button(dialog, "Revoke").click();
  await message(admin, "Revoked the invitation for ivy@example.com.").waitFor();
  await eventually(async () => assert.equal(await ivy.getAttribute("data-status"), "revoked"), "revoked");
  assert.equal((await ivy.locator('td[data-label="Status"]').textContent()).trim(), "Revoked");
  assert.equal(await ivy.getByRole("button").count(), 0, "a revoked invitation cannot be revoked again");

  await admin.getByLabel("Status").selectOption("revoked");
  await eventually(async () => assert.equal(await admin.locator("tbody tr").count(), 1), "1 revoked");
  await admin.getByLabel("Status").selectOption("");
  await eventually(async () => assert.equal(await admin.locator("tbody tr").count(), 3), "all 3");
});

test("the invitation link opens registration with the code filled in and lands signed in", async () => {
  const jo = await newPage();
  const carried = [];
  jo.on("request", (request) => {
    if ((request.postData() ?? "").includes(invitationCode)) carried.push(new URL(request.url()).pathname);
  });
  await jo.goto(invitationLink);
  await heading(jo, "Create an account").waitFor();
  assert.equal(await input(jo, "Invitation code").inputValue(), invitationCode);
  await message(jo, "You were invited").waitFor();
  await assertLabelled(jo, "invited registration");
  await input(jo, "Email").fill(JO);
  await input(jo, "Password").fill(PASSWORD);
  await input(jo, "Repeat the password").fill(PASSWORD);
  await shot(jo, "register-invited");
  await button(jo, "Create account").click();
  await heading(jo, "Your account").waitFor();
  await message(jo, "You were invited, so your account is ready.").waitFor();
  await jo.getByText(`Signed in as ${JO}`, { exact: true }).waitFor();
  await jo.locator("dd").filter({ hasText: /^Approved$/ }).waitFor();
  // The code went to the registration call and nowhere else.
  assert.deepEqual(carried, ["/api/auth/register"]);
  for (const seen of watched) {
    for (const url of seen.requests) {
      assert.ok(!url.split("#")[0].includes(invitationCode), `the code in a request's URL: ${url}`);
    }
  }
  await jo.context().close();

  // The admin sees it used.
  await admin.getByRole("link", { name: "Invitations", exact: true }).click();
  const listed = admin.locator("tbody tr").filter({ hasText: "For Jo, the new treasurer" });
  await eventually(async () => assert.equal(await listed.getAttribute("data-status"), "used"), "used");
  assert.equal((await listed.locator('td[data-label="Uses"]').textContent()).trim(), "1 of 1");
  assert.equal((await listed.locator('td[data-label="Status"]').textContent()).trim(), "Used");
  assert.equal(await listed.getByRole("button").count(), 0);
  await shot(admin, "invitations");

  // A used code does not work twice: the error is on the code's field.
  const late = await newPage();
  await late.goto(invitationLink);
  await heading(late, "Create an account").waitFor();
  await input(late, "Email").fill("kim@example.com");
  await input(late, "Password").fill(PASSWORD);
  await input(late, "Repeat the password").fill(PASSWORD);
  await button(late, "Create account").click();
  await late.locator(".field-error").filter({ hasText: "Invalid invitation." }).waitFor();
  assert.equal(await input(late, "Invitation code").getAttribute("aria-invalid"), "true");
  await heading(late, "Create an account").waitFor();
  await late.context().close();
});

test("the invitations page is readable at phone width, its link included", async () => {
  await atPhoneWidth(admin, async () => {
    await input(admin, "Note (optional)").fill("At phone width");
    await button(admin, "Create invitation").click();
    const panel = admin.locator(".created");
    await panel.getByRole("heading", { name: "Invitation created" }).waitFor();
    const link = panel.locator('[data-secret="link"]');
    await assertReadable(link, (await link.textContent()).trim(), "the link at phone width");
    await assertButtonsInWindow(admin, panel, "the created panel at phone width");
    await assertNoSidewaysScroll(admin, "invitations at phone width");
    await assertButtonsInWindow(
      admin,
      admin.locator("tbody tr").filter({ hasText: "At phone width" }),
      "an invitation's row at phone width",
    );
    await button(panel, "Done").click();
    assert.equal(await panel.isVisible(), false);
  });
});

// ---- webhooks -----------------------------------------------------------------------------

const MAX = "max@example.com";
const NIA = "nia@example.com";
let hookUrl; // the endpoint's address (changed by the edit)
let hookSecret; // its signing secret (changed by the rotation)

/** The webhook's card on the Webhooks page. */
const hookCard = (page, url) =>
  page.locator("article.webhook").filter({ has: page.getByRole("heading", { level: 3, name: url, exact: true }) });
/** A checkbox of the events field (in `scope`: the page or a dialog), by its event type. */
const eventBox = (scope, type) => scope.locator(`input[type="checkbox"][value="${type}"]`);

/** The requests the receiver got from `from` on, once there are `count` of them. */
async function receivedSince(from, count, what) {
  return eventually(
    async () => {
      const got = receiver.received.slice(from);
      assert.equal(got.length, count);
      return got;
    },
    what,
  );
}

/** The delivery of event `eventId` in `card`'s log, once Refresh shows it as `status`. */
async function loggedAs(card, eventId, status) {
  const entry = card.locator(`tr[data-event-id="${eventId}"]`);
  await eventually(async () => {
    await card.getByRole("button", { name: /^Refresh the deliveries/ }).click();
    assert.equal(await entry.getAttribute("data-status", { timeout: 1_000 }), status);
  }, `${eventId} ${status} in the log`);
  return entry;
}

/** The text of each cell of a deliveries log's row, by its column. */
async function cells(entry) {
  const out = {};
  for (const cell of await entry.locator("td").all()) {
    out[await cell.getAttribute("data-label")] = (await cell.innerText()).trim();
  }
  return out;
}

test("the Webhooks page adds an endpoint and shows its signing secret once", async () => {
  await admin.getByRole("link", { name: "Webhooks", exact: true }).click();
  await heading(admin, "Webhooks").waitFor();
  assert.equal(await admin.getByRole("link", { name: "Webhooks", exact: true }).getAttribute("aria-current"), "page");
  await admin.getByText("No webhooks yet.").waitFor();
  await assertLabelled(admin, "webhooks");

  // Nothing filled in: each field says what it needs, and nothing is asked of the server.
  const asked = [];
  const count = (request) => {
    if (new URL(request.url()).pathname === "/api/auth/webhooks" && request.method() === "POST") asked.push(1);
  };
  admin.on("request", count);
  await button(admin, "Add webhook").click();
  await admin.getByText("Enter the address to send events to.").waitFor();
  await admin.getByText("Choose at least one event, or All events.").waitFor();
  assert.equal(await input(admin, "URL").getAttribute("aria-invalid"), "true");
  assert.deepEqual(asked, []);
  admin.off("request", count);

  // An address the server refuses: its reason, under the field.
  await input(admin, "URL").fill("ftp://files.example.com/drop");
  assert.equal(await admin.getByText("Enter the address to send events to.").count(), 0, "typing clears the error");
  await eventBox(admin, "user.created").check();
  await button(admin, "Add webhook").click();
  await admin.locator(".field-error").filter({ hasText: "url must be http or https." }).waitFor();
  assert.equal(await input(admin, "URL").getAttribute("aria-invalid"), "true");
  await admin.getByText("No webhooks yet.").waitFor();

  hookUrl = `${receiver.url}/hooks/gatehouse`;
  await input(admin, "URL").fill(hookUrl);
  await eventBox(admin, "user.approved").check();
  await input(admin, "Description (optional)").fill("The CRM's receiver");
  await button(admin, "Add webhook").click();
  const dialog = admin.getByRole("dialog", { name: "Webhook added" });
  await dialog.getByText("you will not see it again").waitFor();
  await dialog.getByText(hookUrl).waitFor();
  hookSecret = (await dialog.locator('[data-secret="secret"]').textContent()).trim();
  assert.match(hookSecret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  assert.equal(
    await admin.evaluate(() => document.activeElement?.getAttribute("aria-label")),
    "Copy the secret",
    "the focus is on Copy",
  );
  await button(dialog, "Copy the secret").click();
  await dialog.getByText("Copied the secret.").waitFor();
  assert.equal(await admin.evaluate(() => navigator.clipboard.readText()), hookSecret);
  await assertButtonsInWindow(admin, dialog, "the secret dialog");
  await shot(admin, "webhook-secret", { fullPage: false }); // the dialog, over the page it covers
  await button(dialog, "Done").click();
  await dialog.waitFor({ state: "detached" });
  await message(admin, `Added a webhook for ${hookUrl}.`).waitFor();

  // Listed: its address, events, state and description; the form is ready for another.
  const card = hookCard(admin, hookUrl);
  await card.waitFor();
  assert.equal(await card.getAttribute("data-active"), "true");
  assert.deepEqual(await card.locator(".webhook-events li").allTextContents(), ["user.created", "user.approved"]);
  await card.locator(".pill").filter({ hasText: /^Active$/ }).waitFor();
  await card.getByText("The CRM's receiver").waitFor();
  await admin.getByText("1 webhook", { exact: true }).waitFor();
  assert.equal(await input(admin, "URL").inputValue(), "");
  assert.equal(await eventBox(admin, "user.approved").isChecked(), false);
  assert.equal(await input(admin, "Description (optional)").inputValue(), "");

  // Shown once: not after a reload, not by the API.
  await admin.reload();
  await heading(admin, "Webhooks").waitFor();
  await card.waitFor();
  assert.ok(!(await admin.content()).includes(hookSecret.slice("whsec_".length)), "the secret is not shown again");
  const listed = await admin.evaluate(async () => {
    const response = await fetch("/api/auth/webhooks", {
      headers: { Authorization: `Bearer ${sessionStorage.getItem("gatehouse.token")}` },
    });
    return response.text();
  });
  assert.ok(listed.includes(hookUrl) && !listed.includes("whsec_"), listed);
});

test("a test event reaches the receiver, signed with the secret, and the log shows it delivered", async () => {
  const card = hookCard(admin, hookUrl);
  const from = receiver.received.length;
  const toggle = button(card, `Deliveries: ${hookUrl}`);
  assert.equal(await toggle.getAttribute("aria-expanded"), "false");
  await button(card, `Send test event: ${hookUrl}`).click();
  await message(admin, `Sent a test event to ${hookUrl}: see its deliveries log.`).waitFor();
  // The log opens by itself.
  assert.equal(await toggle.getAttribute("aria-expanded"), "true");
  await card.getByRole("heading", { name: "Deliveries", exact: true }).waitFor();

  const [got] = await receivedSince(from, 1, "the receiver got the test event");
  assert.equal(got.method, "POST");
  assert.equal(got.path, "/hooks/gatehouse");
  assert.match(got.headers["content-type"], /^application\/json/);
  assert.match(got.headers["webhook-id"], /^msg_[0-9a-f]{32}$/);
  assert.ok(Math.abs(Number(got.headers["webhook-timestamp"]) - Date.now() / 1000) < 60, "a timestamp of now");
  assert.match(got.headers["webhook-signature"], /^v1,[A-Za-z0-9+/]{43}=$/);
  assert.ok(signedWith(got, hookSecret), "signed with the secret the dialog showed");
  assert.ok(!signedWith(got, `whsec_${Buffer.alloc(32).toString("base64")}`), "and not with another");
  const event = JSON.parse(got.body.toString("utf8"));
  assert.equal(event.type, "webhook.test");
  assert.equal(event.id, got.headers["webhook-id"]);
  assert.equal(event.data.user.email, ADMIN);

  const entry = await loggedAs(card, event.id, "delivered");
  const shown = await cells(entry);
  assert.equal(shown.Status, "Delivered");
  assert.match(shown.Event, /^webhook\.test\s+msg_[0-9a-f]{32}$/);
  assert.equal(shown.Attempts, "1");
  assert.equal(shown["Last answer"], "HTTP 200");
  assert.equal(shown["Last error"], "—");
  assert.equal(shown["Next attempt"], "—");
  for (const label of ["Last attempt", "Created"]) {
    assert.equal(await entry.locator(`td[data-label="${label}"] time`).count(), 1, label);
  }
  await card.getByText("1 delivery, newest first.").waitFor();
  await shot(admin, "webhooks");

  // The log closes and opens again with its button.
  await toggle.click();
  assert.equal(await toggle.getAttribute("aria-expanded"), "false");
  assert.equal(await card.locator("section.deliveries").isVisible(), false);
  await toggle.click();
  await entry.waitFor();
});

test("an admin edits an endpoint's events, address and description; events follow the change", async () => {
  const card = hookCard(admin, hookUrl);
  await button(card, `Edit: ${hookUrl}`).click();
  const dialog = admin.getByRole("dialog", { name: "Edit webhook" });
  await dialog.waitFor();
  assert.equal(await input(dialog, "URL").inputValue(), hookUrl);
  assert.equal(await input(dialog, "Description (optional)").inputValue(), "The CRM's receiver");
  for (const type of ["user.created", "user.approved"]) assert.equal(await eventBox(dialog, type).isChecked(), true, type);
  assert.equal(await eventBox(dialog, "user.deleted").isChecked(), false);
  await assertLabelled(admin, "the edit dialog");

  // No event left: refused before asking.
  await eventBox(dialog, "user.created").uncheck();
  await eventBox(dialog, "user.approved").uncheck();
  await button(dialog, "Save changes").click();
  await dialog.getByText("Choose at least one event, or All events.").waitFor();

  // All events: every box ticked and locked.
  await dialog.getByLabel("All events", { exact: true }).check();
  assert.equal(await dialog.getByText("Choose at least one event, or All events.").count(), 0);
  assert.equal(await eventBox(dialog, "user.deleted").isChecked(), true);
  assert.equal(await eventBox(dialog, "user.deleted").isDisabled(), true);

  // A refused address: the server's reason under the field, and the dialog stays.
  await input(dialog, "URL").fill(`http://someone:secret@127.0.0.1:${new URL(receiver.url).port}/hooks/v2`);
  await button(dialog, "Save changes").click();
  await dialog.locator(".field-error").filter({ hasText: "url must not carry credentials." }).waitFor();
  assert.equal(await input(dialog, "URL").getAttribute("aria-invalid"), "true");

  const newUrl = `${receiver.url}/hooks/v2`;
  await input(dialog, "URL").fill(newUrl);
  await input(dialog, "Description (optional)").fill("The CRM's receiver, version 2");
  await button(dialog, "Save changes").click();
  await dialog.waitFor({ state: "detached" });
  await message(admin, `Saved the webhook for ${newUrl}.`).waitFor();
  hookUrl = newUrl;
  const changed = hookCard(admin, hookUrl);
  await changed.waitFor();
  assert.equal((await changed.locator(".webhook-events").textContent()).trim(), "All events");
  await changed.getByText("The CRM's receiver, version 2").waitFor();
  assert.equal(await admin.locator("article.webhook").count(), 1);

  // An event of the new subscription goes to the new address; Refresh brings it into the log.
  const from = receiver.received.length;
  assert.equal(await apiFromPage(admin, "POST", "/api/auth/users", { email: MAX, password: PASSWORD }), 201);
  const [got] = await receivedSince(from, 1, "the user.created event");
  assert.equal(got.path, "/hooks/v2");
  assert.ok(signedWith(got, hookSecret));
  const event = JSON.parse(got.body.toString("utf8"));
  assert.equal(event.type, "user.created");
  assert.equal(event.data.user.email, MAX);
  assert.equal(await changed.locator(`tr[data-event-id="${event.id}"]`).count(), 0, "not before Refresh");
  const entry = await loggedAs(changed, event.id, "delivered");
  assert.match((await cells(entry)).Event, /^user\.created/);
  await changed.getByText("2 deliveries, newest first.").waitFor();
  assert.equal(await changed.locator("tbody tr").first().getAttribute("data-event-id"), event.id, "newest first");
});

test("a disabled endpoint is sent nothing: its test event is logged as failed; enabling it again", async () => {
  let card = hookCard(admin, hookUrl);
  const from = receiver.received.length;
  await button(card, `Disable: ${hookUrl}`).click();
  await message(admin, `Disabled the webhook for ${hookUrl}: nothing is sent to it until it is enabled again.`).waitFor();
  card = hookCard(admin, hookUrl);
  await eventually(async () => assert.equal(await card.getAttribute("data-active"), "false"), "disabled");
  await card.locator(".pill").filter({ hasText: /^Disabled$/ }).waitFor();
  await button(card, `Enable: ${hookUrl}`).waitFor();

  // A user event is not sent; the test event is logged, failed, and not sent either.
  assert.equal(await apiFromPage(admin, "POST", "/api/auth/users", { email: NIA, password: PASSWORD }), 201);
  await button(card, `Send test event: ${hookUrl}`).click();
  await message(admin, `The webhook for ${hookUrl} is disabled: the test event is logged as failed, not sent.`).waitFor();
  const newest = card.locator("section.deliveries tbody tr").first();
  await eventually(async () => {
    await button(card, `Refresh the deliveries: ${hookUrl}`).click();
    assert.equal(await newest.getAttribute("data-status", { timeout: 1_000 }), "failed");
  }, "the failed test event");
  const shown = await cells(newest);
  assert.equal(shown.Status, "Failed");
  assert.match(shown.Event, /^webhook\.test/);
  assert.equal(shown.Attempts, "0");
  assert.equal(shown["Last answer"], "—");
  assert.equal(shown["Last error"], "the endpoint was disabled");
  assert.equal(shown["Next attempt"], "—");
  await card.getByText("3 deliveries, newest first.").waitFor();
  await admin.waitForTimeout(1_500); // longer than the dispatcher's poll
  assert.equal(receiver.received.length, from, "nothing was sent");

  await button(card, `Enable: ${hookUrl}`).click();
  await message(admin, `Enabled the webhook for ${hookUrl}.`).waitFor();
  await eventually(async () => assert.equal(await card.getAttribute("data-active"), "true"), "enabled");
  await card.locator(".pill").filter({ hasText: /^Active$/ }).waitFor();
  await button(card, `Disable: ${hookUrl}`).waitFor();
});

test("rotating the secret asks first, shows the new one once, and deliveries are signed with it", async () => {
  const card = hookCard(admin, hookUrl);
  await button(card, `Rotate secret: ${hookUrl}`).click();
  let confirm = admin.getByRole("dialog", { name: "Rotate the signing secret?" });
  await confirm.getByText("stops working at once").waitFor();
  await button(confirm, "Cancel").click();
  await confirm.waitFor({ state: "detached" });

  await button(card, `Rotate secret: ${hookUrl}`).click();
  confirm = admin.getByRole("dialog", { name: "Rotate the signing secret?" });
  await button(confirm, "Rotate secret").click();
  const shown = admin.getByRole("dialog", { name: "New signing secret" });
  await shown.getByText("you will not see it again").waitFor();
  const rotated = (await shown.locator('[data-secret="secret"]').textContent()).trim();
  assert.match(rotated, /^whsec_[A-Za-z0-9+/]{43}=$/);
  assert.notEqual(rotated, hookSecret);
  await button(shown, "Done").click();
  await shown.waitFor({ state: "detached" });
  await message(admin, `Rotated the signing secret of ${hookUrl}: the old one no longer works.`).waitFor();
  assert.ok(!(await admin.content()).includes(rotated.slice("whsec_".length)), "gone from the page");

  const from = receiver.received.length;
  await button(card, `Send test event: ${hookUrl}`).click();
  const [got] = await receivedSince(from, 1, "the test event");
  assert.ok(signedWith(got, rotated), "signed with the new secret");
  assert.ok(!signedWith(got, hookSecret), "not with the old one");
  hookSecret = rotated;
  // Followed by the log without a click.
  const entry = card.locator(`tr[data-event-id="${got.headers["webhook-id"]}"]`);
  await eventually(async () => assert.equal(await entry.getAttribute("data-status", { timeout: 1_000 }), "delivered"), "delivered");
});

test("the webhooks page by keyboard, and at phone width", async () => {
  // Add one with the keyboard alone: All events with Space, the button with Enter.
  const focused = () => admin.evaluate(() => document.activeElement?.getAttribute("name") ?? document.activeElement?.textContent);
  await input(admin, "URL").focus();
  await admin.keyboard.type(`${receiver.url}/hooks/keyboard`);
  await admin.keyboard.press("Tab");
  assert.equal(await focused(), "description");
  await admin.keyboard.type("Typed without a mouse");
  await admin.keyboard.press("Tab");
  assert.equal(await focused(), "events-all");
  const outline = await admin.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, "none", "the focused checkbox shows it");
  await admin.keyboard.press("Space");
  assert.equal(await admin.getByLabel("All events", { exact: true }).isChecked(), true);
  await admin.keyboard.press("Tab"); // the locked boxes are skipped
  assert.equal(await focused(), "Add webhook");
  await admin.keyboard.press("Enter");
  const dialog = admin.getByRole("dialog", { name: "Webhook added" });
  await dialog.waitFor();
  await admin.keyboard.press("Tab");
  assert.equal(await focused(), "Done");
  await admin.keyboard.press("Enter");
  await dialog.waitFor({ state: "detached" });
  const second = hookCard(admin, `${receiver.url}/hooks/keyboard`);
  await second.waitFor();
  assert.equal((await second.locator(".webhook-events").textContent()).trim(), "All events");
  await admin.getByText("2 webhooks", { exact: true }).waitFor();

  await atPhoneWidth(admin, async () => {
    await assertNoSidewaysScroll(admin, "webhooks at phone width");
    const card = hookCard(admin, hookUrl);
    // Each in the middle of the window first (a bottom edge on the window's can fall a
    // fraction of a pixel past it).
    const centred = async (scope) => {
      await scope.evaluate((el) => el.scrollIntoView({ block: "center" }));
      return scope;
    };
    await assertButtonsInWindow(admin, await centred(card.locator(".actions")), "a webhook's actions at phone width");
    await assertReadable(card.locator("h3"), hookUrl, "the address at phone width");
    await assertButtonsInWindow(admin, await centred(card.locator(".deliveries .list-head")), "the log's Refresh at phone width");
    await assertReadable(
      card.locator("tbody tr").first().locator(".event-id"),
      (await card.locator("tbody tr").first().getAttribute("data-event-id")),
      "an event id at phone width",
    );
    await button(second, `Edit: ${receiver.url}/hooks/keyboard`).click();
    const edit = admin.getByRole("dialog", { name: "Edit webhook" });
    await edit.waitFor();
    await assertNoSidewaysScroll(admin, "the edit dialog at phone width");
    await button(edit, "Cancel").click();
    await edit.waitFor({ state: "detached" });
  });
});

test("a server that refuses private addresses says why under the URL field", async () => {
  const strict = await startServer();
  try {
    assert.equal(
      (await apiCall(strict, "POST", "/api/auth/register", undefined, { email: ADMIN, password: PASSWORD })).status,
      201,
    );
    const page = await newPage({ on: strict });
    await logIn(page, ADMIN, PASSWORD);
    await heading(page, "Users").waitFor();
    await page.getByRole("link", { name: "Webhooks", exact: true }).click();
    await heading(page, "Webhooks").waitFor();
    await page.getByText("No webhooks yet.").waitFor();
    const from = receiver.received.length;
    for (const [address, shown] of [
      ["http://10.0.0.1/hooks", "url points to 10.0.0.1, a loopback, private, link-local or otherwise non-public address."],
      [`${receiver.url}/hooks`, "url points to 127.0.0.1, a loopback, private, link-local or otherwise non-public address."],
    ]) {
      await input(page, "URL").fill(address);
      await eventBox(page, "user.approved").check();
      await button(page, "Add webhook").click();
      const error = page.locator(".field-error").filter({ hasText: shown });
      await error.waitFor();
      assert.equal((await error.textContent()).trim(), shown);
      assert.equal(await input(page, "URL").getAttribute("aria-invalid"), "true");
      // Tied to the field, for screen readers.
      const described = await input(page, "URL").getAttribute("aria-describedby");
      assert.ok(described.split(" ").includes(await error.getAttribute("id")), described);
      assert.equal(await page.getByRole("dialog").count(), 0);
      await page.getByText("No webhooks yet.").waitFor();
    }
    assert.equal(receiver.received.length, from);
    await page.context().close();
    assert.doesNotMatch(strict.logs(), /"panicked|ERROR/, "the strict server logged no error");
  } finally {
    strict.stop();
  }
});

test("deleting a webhook asks first; it is gone with its log and sent nothing more", async () => {
  const card = hookCard(admin, hookUrl);
  await button(card, `Delete: ${hookUrl}`).click();
  let confirm = admin.getByRole("dialog", { name: "Delete this webhook?" });
  await confirm.getByText("This cannot be undone.").waitFor();
  await button(confirm, "Cancel").click();
  await confirm.waitFor({ state: "detached" });
  assert.equal(await admin.locator("article.webhook").count(), 2);

  await button(card, `Delete: ${hookUrl}`).click();
  confirm = admin.getByRole("dialog", { name: "Delete this webhook?" });
  await button(confirm, "Delete").click();
  await message(admin, `Deleted the webhook for ${hookUrl}.`).waitFor();
  await eventually(async () => assert.equal(await admin.locator("article.webhook").count(), 1), "one left");

  // The other one by keyboard: Delete, then Tab from Cancel to Delete.
  const keyboard = `${receiver.url}/hooks/keyboard`;
  await button(admin, `Delete: ${keyboard}`).focus();
  await admin.keyboard.press("Enter");
  confirm = admin.getByRole("dialog", { name: "Delete this webhook?" });
  await confirm.waitFor();
  await admin.keyboard.press("Tab");
  await admin.keyboard.press("Enter");
  await message(admin, `Deleted the webhook for ${keyboard}.`).waitFor();
  await admin.getByText("No webhooks yet.").waitFor();

  const from = receiver.received.length;
  const id = await userId(admin, NIA);
  assert.equal(await apiFromPage(admin, "PUT", `/api/auth/users/${id}`, { status: "disabled" }), 200);
  await admin.waitForTimeout(1_500);
  assert.equal(receiver.received.length, from, "nothing is sent after the deletion");
});

// ---- settings ------------------------------------------------------------------------------

/** The Settings page's facts about mail: {server, security, …} by each value's data-setting. */
async function mailFacts(page) {
  const out = {};
  for (const dd of await page.locator(".settings-facts dd").all()) {
    out[await dd.getAttribute("data-setting")] = (await dd.innerText()).trim();
  }
  return out;
}

test("the Settings page says mail is not configured, and which two settings turn it on", async () => {
  const link = admin.getByRole("link", { name: "Settings", exact: true });
  // The last entry of the navigation.
  assert.equal(await admin.locator("nav li").last().innerText(), "Settings");
  await link.click();
  await heading(admin, "Settings").waitFor();
  assert.match(admin.url(), /#\/settings$/);
  assert.equal(await link.getAttribute("aria-current"), "page");
  const mail = admin.getByRole("region", { name: "Mail" });
  await mail.getByText("Mail is not configured: Gatehouse sends no mail.").waitFor();
  await mail.getByText("Off", { exact: true }).waitFor();
  const text = await mail.innerText();
  assert.match(text, /GATEHOUSE_SMTP_URL/);
  assert.match(text, /GATEHOUSE_MAIL_FROM/);
  assert.equal(await admin.locator(".settings-facts").count(), 0);
  assert.equal(await admin.locator(".message.error").count(), 0);
});

test("with a mailer set, the Settings page shows the server, its security and sender, never its credentials", async () => {
  const mailing = await startServer({
    GATEHOUSE_SMTP_URL: "smtp://mailer:s3cret-pw@127.0.0.1:2525?tls=required",
    GATEHOUSE_MAIL_FROM: "Gatehouse <auth@example.com>",
    GATEHOUSE_ADMIN_DIGEST_INTERVAL: "15m",
  });
  try {
    assert.equal(
      (await apiCall(mailing, "POST", "/api/auth/register", undefined, { email: ADMIN, password: PASSWORD })).status,
      201,
    );
    const page = await newPage({ on: mailing });
    const answer = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/auth/settings/mail");
    await logIn(page, ADMIN, PASSWORD);
    await heading(page, "Users").waitFor();
    await page.getByRole("link", { name: "Settings", exact: true }).click();
    await heading(page, "Settings").waitFor();
    const response = await answer;
    assert.equal(response.status(), 200);
    const raw = await response.text();
    const body = JSON.parse(raw);
    assert.equal(body.configured, true);
    assert.equal(body.authenticated, true);

    const mail = page.getByRole("region", { name: "Mail" });
    await mail.locator(".settings-facts").waitFor();
    await mail.getByText("On", { exact: true }).waitFor();
    const facts = await mailFacts(page);
    assert.equal(facts.server, "127.0.0.1:2525");
    assert.equal(facts.security, "STARTTLS required");
    assert.match(facts.authenticated, /^yes\b/);
    assert.equal(facts.from, "Gatehouse <auth@example.com>");
    assert.match(facts.public_url, /^not set: mails carry no links/);
    assert.equal(facts.digest, "at most every 15 minutes, per admin");
    const text = await mail.innerText();
    assert.match(text, /the admin digest/);
    assert.match(text, /applicants' decisions/);
    assert.match(text, /invitations bound to an email/);
    assert.match(text, /gatehouse mail test ADDRESS/);

    // The credentials are nowhere: not in the API's answer, not on the page, not in the log.
    const shown = await page.locator("body").innerText();
    const html = await page.content();
    for (const secret of ["s3cret-pw", "mailer"]) {
      assert.ok(!raw.includes(secret), `the API's answer holds ${secret}`);
      assert.ok(!shown.includes(secret), `the page's text holds ${secret}`);
      assert.ok(!html.includes(secret), `the page holds ${secret}`);
    }
    assert.ok(!mailing.logs().includes("s3cret-pw"), "the password is not logged");
    await shot(page, "settings-mail");

    await atPhoneWidth(page, async () => {
      await assertNoSidewaysScroll(page, "settings at phone width");
      await assertReadable(mail.locator('[data-setting="from"] .address'), "Gatehouse <auth@example.com>", "the sender at phone width");
    });
    await page.context().close();
    assert.doesNotMatch(mailing.logs(), /"panicked|ERROR/, "the mailing server logged no error");
  } finally {
    mailing.stop();
  }
});

test("logout ends the session", async () => {
  await button(admin, "Log out").click();
  await heading(admin, "Log in").waitFor();
  await message(admin, "You have logged out.").waitFor();
  await admin.reload();
  await heading(admin, "Log in").waitFor();
});

// ---- sessions and refresh tokens ----------------------------------------------------------

const CHROME_UA =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const FIREFOX_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";
const IPHONE_UA =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

const LEE = "lee@example.com";
let lee; // lee's browser, with a session among others
let quick; // the server whose access tokens live 3 seconds
let quickPage;
let quickSeen; // what it asked for

test("a refused access token is renewed once and the call tried again; calls at once share one renewal", async () => {
  await logIn(admin, ADMIN, PASSWORD);
  await heading(admin, "Users").waitFor();
  const first = await kept(admin);
  assert.ok(first.token && first.refresh, "both tokens are kept in the tab");
  const local = await admin.evaluate(() => Object.keys(localStorage));
  assert.deepEqual(local.filter((key) => !key.startsWith("gatehouse.device.")), [], "nothing else in localStorage");

  // The access token goes bad (as an expired one would): the next view renews it once, and works.
  const renewals = renewalsOf(admin);
  await admin.evaluate(() => sessionStorage.setItem("gatehouse.token", "not-a-valid-token"));
  await admin.getByRole("link", { name: "Account", exact: true }).click();
  await heading(admin, "Your account").waitFor();
  assert.deepEqual(renewals, [{ grant_type: "refresh_token", refresh_token: first.refresh }]);
  const second = await kept(admin);
  assert.notEqual(second.token, "not-a-valid-token");
  assert.notEqual(second.refresh, first.refresh, "the refresh token is single-use: a new one came");

  // Five calls at once with a bad token: one renewal for all five, and all five answered.
  await admin.evaluate(() => sessionStorage.setItem("gatehouse.token", "not-a-valid-token"));
  const statuses = await admin.evaluate(async () => {
    const { api } = await import("/console/api.js");
    return Promise.all([1, 2, 3, 4, 5].map(() => api.me().then(() => 200, (error) => error.status)));
  });
  assert.deepEqual(statuses, [200, 200, 200, 200, 200]);
  assert.equal(renewals.length, 2, "one more renewal");
  assert.equal(renewals[1].refresh_token, second.refresh);

  // The session is still whole (no refresh token was presented twice).
  await admin.reload();
  await heading(admin, "Your account").waitFor();
  assert.equal(renewals.length, 2);
});

test("a tab that comes back into view after its renewal time renews at once", async () => {
  const renewals = renewalsOf(admin);
  assert.equal(await admin.evaluate(() => document.visibilityState), "visible");
  const renewAt = () => admin.evaluate(() => Number(sessionStorage.getItem("gatehouse.renew_at")));
  // The default access token lives 15 minutes: renewed after 12.
  const soon = (await renewAt()) - Date.now();
  assert.ok(soon > 11 * 60_000 && soon <= 12 * 60_000, `renewed in ${soon} ms`);
  // As if the tab had been in the background past that time (its timer held back).
  await admin.evaluate(() => {
    sessionStorage.setItem("gatehouse.renew_at", String(Date.now() - 1000));
    document.dispatchEvent(new Event("visibilitychange"));
  });
  await eventually(async () => assert.equal(renewals.length, 1), "renewed on coming back");
  await eventually(async () => assert.ok((await renewAt()) > Date.now() + 11 * 60_000), "the next one set");
  await admin.getByRole("link", { name: /^Users/ }).click();
  await heading(admin, "Users").waitFor();
});

test("a copied tab gives the session up to its original instead of spending its refresh token", async () => {
  // "Duplicate tab" copies the tab's sessionStorage into the new one, refresh token included.
  const copied = await admin.evaluate(() => JSON.stringify({ ...sessionStorage }));
  const copy = await admin.context().newPage();
  watch(copy);
  const renewals = renewalsOf(copy);
  await copy.addInitScript((entries) => {
    if (sessionStorage.length === 0 && !window.name) {
      window.name = "copied";
      for (const [key, value] of Object.entries(JSON.parse(entries))) sessionStorage.setItem(key, value);
    }
  }, copied);
  await copy.goto("/#/users");
  await heading(copy, "Log in").waitFor();
  await message(copy, "This tab is a copy of another signed-in tab").waitFor();
  assert.deepEqual(await kept(copy), { token: null, refresh: null });
  assert.equal(renewals.length, 0, "the copy never spent the refresh token");
  await copy.close();

  // The original goes on: its session was not ended (not logged out, no token reused).
  await admin.getByRole("link", { name: "Account", exact: true }).click();
  await heading(admin, "Your account").waitFor();
  await admin.evaluate(() => sessionStorage.setItem("gatehouse.token", "not-a-valid-token"));
  await admin.getByRole("link", { name: /^Users/ }).click();
  await heading(admin, "Users").waitFor();
});

test("the Sessions page lists your sessions, marks this device, and ends the others", async () => {
  // A new user (created by the admin) with two sessions from elsewhere.
  assert.equal(await apiFromPage(admin, "POST", "/api/auth/users", { email: LEE, password: PASSWORD }), 201);
  const firefox = await apiLogin(LEE, PASSWORD, { userAgent: FIREFOX_UA });
  assert.equal(firefox.status, 200);
  const iphone = await apiLogin(LEE, PASSWORD, { userAgent: IPHONE_UA });
  assert.equal(iphone.status, 200);
  for (const key of ["access_token", "refresh_token", "device_token"]) {
    assert.equal(typeof firefox.body[key], "string", key);
  }
  assert.equal(firefox.body.token_type, "bearer");
  assert.equal(firefox.body.expires_in, 900, "the access token lives 15 minutes by default");
  assert.ok(firefox.body.refresh_expires_in > firefox.body.expires_in, "refresh_expires_in");

  lee = await newPage({ userAgent: CHROME_UA });
  await logIn(lee, LEE, PASSWORD);
  await heading(lee, "Your account").waitFor();
  await lee.getByRole("link", { name: "Sessions", exact: true }).click();
  await heading(lee, "Sessions").waitFor();
  assert.equal(await lee.getByRole("link", { name: "Sessions", exact: true }).getAttribute("aria-current"), "page");
  const rows = lee.locator("table.sessions tbody tr");
  await eventually(async () => assert.equal(await rows.count(), 3), "3 sessions");
  await lee.getByText("3 sessions", { exact: true }).waitFor();
  // Newest first, each named readably, the whole user agent in its title.
  assert.deepEqual(await rows.locator(".device").allTextContents(), [
    "Chrome 131 on Linux",
    "Safari 17 on iOS",
    "Firefox 128 on Windows",
  ]);
  assert.equal(await rows.locator(".device").nth(2).getAttribute("title"), FIREFOX_UA);
  const current = lee.locator('tr[data-current="true"]');
  assert.equal(await current.count(), 1);
  assert.equal(await current.locator(".device").textContent(), "Chrome 131 on Linux");
  await current.getByText("This device", { exact: true }).waitFor();
  assert.equal(await current.getByRole("button").count(), 0, "this one ends with Log out");
  assert.equal(await lee.locator("tr", { hasText: "This device" }).count(), 1);
  for (const r of await rows.all()) {
    assert.equal((await r.locator('td[data-label="Address"]').textContent()).trim(), "127.0.0.1");
    for (const label of ["Signed in", "Last used", "Expires"]) {
      assert.equal(await r.locator(`td[data-label="${label}"] time`).count(), 1, label);
    }
  }
  await shot(lee, "sessions");
  await atPhoneWidth(lee, async () => {
    await assertNoSidewaysScroll(lee, "sessions at phone width");
    await assertButtonsInWindow(lee, rows.nth(2), "a session at phone width");
  });

  // Ending one signs it out at once: its access token and its refresh token stop working.
  assert.equal((await apiCall(server, "GET", "/api/auth/me", firefox.body.access_token)).status, 200);
  await lee.getByRole("button", { name: /^End: Firefox 128 on Windows at 127\.0\.0\.1, signed in \d/ }).click();
  await message(lee, "Ended the session of Firefox 128 on Windows at 127.0.0.1.").waitFor();
  await eventually(async () => assert.equal(await rows.count(), 2), "2 sessions");
  assert.equal(await lee.locator("tr", { hasText: "Firefox" }).count(), 0);
  assert.equal((await apiCall(server, "GET", "/api/auth/me", firefox.body.access_token)).status, 401);
  const refused = await apiRefresh(server, firefox.body.refresh_token);
  assert.equal(refused.status, 400);
  assert.equal(refused.body.code, "invalid_grant");
  assert.equal(refused.body.error, "invalid_grant");
  assert.equal((await apiCall(server, "GET", "/api/auth/me", iphone.body.access_token)).status, 200);

  // Ending all the others asks first.
  await button(lee, "End all other sessions").click();
  let dialog = lee.getByRole("dialog");
  await dialog.getByRole("heading", { name: "End all other sessions?" }).waitFor();
  await dialog.getByText("(1 session)").waitFor();
  await button(dialog, "Cancel").click();
  await dialog.waitFor({ state: "detached" });
  assert.equal(await rows.count(), 2);
  await button(lee, "End all other sessions").click();
  dialog = lee.getByRole("dialog");
  await button(dialog, "End all other sessions").click();
  await message(lee, "Ended all your other sessions.").waitFor();
  await eventually(async () => assert.equal(await rows.count(), 1), "this one only");
  await lee.getByText("You are signed in here only.").waitFor();
  assert.equal(await button(lee, "End all other sessions").isDisabled(), true);
  assert.equal((await apiCall(server, "GET", "/api/auth/me", iphone.body.access_token)).status, 401);
  assert.equal((await apiRefresh(server, iphone.body.refresh_token)).status, 400);

  // This one goes on.
  await lee.getByRole("link", { name: "Account", exact: true }).click();
  await heading(lee, "Your account").waitFor();
});

test("an admin signs a user out everywhere: their browser lands on the login page at its next step", async () => {
  const elsewhere = await apiLogin(LEE, PASSWORD, { userAgent: FIREFOX_UA });
  assert.equal(elsewhere.status, 200);
  await admin.getByRole("link", { name: /^Users/ }).click();
  await heading(admin, "Users").waitFor();
  assert.equal(await button(admin, `Sessions: ${FRAN}`).count(), 0, "a rejected user has no sessions to see");
  await button(admin, `Sessions: ${LEE}`).click();
  const list = admin.getByRole("dialog", { name: `Sessions of ${LEE}` });
  await list.getByText("2 sessions, newest first.").waitFor();
  assert.deepEqual(await list.locator(".device").allTextContents(), ["Firefox 128 on Windows", "Chrome 131 on Linux"]);
  assert.equal(await list.getByText("This device").count(), 0, "none of them is the admin's");
  await assertButtonsInWindow(admin, list, "a user's sessions");
  await shot(admin, "user-sessions", { fullPage: false }); // the dialog, over the window it covers

  // A confirmation first; cancelled, nothing happens.
  await button(list, "Sign out everywhere").click();
  const confirm = admin.getByRole("dialog", { name: `Sign ${LEE} out everywhere?` });
  await confirm.getByText("All their 2 sessions end at once").waitFor();
  await button(confirm, "Cancel").click();
  await confirm.waitFor({ state: "detached" });
  assert.equal((await apiCall(server, "GET", "/api/auth/me", elsewhere.body.access_token)).status, 200);

  await button(list, "Sign out everywhere").click();
  await button(confirm, "Sign out everywhere").click();
  await confirm.waitFor({ state: "detached" });
  await message(list, `Signed ${LEE} out everywhere.`).waitFor();
  await list.getByText("No sessions: they are not signed in anywhere.").waitFor();
  assert.equal(await button(list, "Sign out everywhere").isDisabled(), true);
  assert.equal((await apiCall(server, "GET", "/api/auth/me", elsewhere.body.access_token)).status, 401);
  assert.equal((await apiRefresh(server, elsewhere.body.refresh_token)).status, 400);
  await button(list, "Close").click();
  await list.waitFor({ state: "detached" });

  // Carol's browser: her next step is refused, one renewal is refused too, and she is on the
  // login page with a word of why (no error, no dialog, no loop).
  const renewals = renewalsOf(lee);
  await lee.getByRole("link", { name: "Sessions", exact: true }).click();
  await heading(lee, "Log in").waitFor();
  await message(lee, "Your session has ended. Please log in again.").waitFor();
  assert.equal(renewals.length, 1);
  assert.deepEqual(await kept(lee), { token: null, refresh: null });
  assert.equal(await lee.locator("#nav").isVisible(), false);
  assert.equal(await lee.locator(".message.error").count(), 0);
  await lee.context().close();

  // The admin's own sessions: this one is marked; signing themselves out everywhere ends it too.
  await button(admin, `Sessions: ${ADMIN}`).click();
  const own = admin.getByRole("dialog", { name: `Sessions of ${ADMIN}` });
  await own.locator("li", { hasText: "This device" }).waitFor();
  await button(own, "Sign out everywhere").click();
  const sure = admin.getByRole("dialog", { name: `Sign ${ADMIN} out everywhere?` });
  await sure.getByText("this one included").waitFor();
  await button(sure, "Sign out everywhere").click();
  await heading(admin, "Log in").waitFor();
  await message(admin, "You signed yourself out everywhere").waitFor();
  assert.deepEqual(await kept(admin), { token: null, refresh: null });
  assert.equal(await admin.getByRole("dialog").count(), 0);
});

test("with 3-second access tokens, the console renews them in the background and goes on working", async () => {
  quick = await startServer({ GATEHOUSE_TOKEN_TTL: "3s" });
  const registered = await apiCall(quick, "POST", "/api/auth/register", undefined, { email: ADMIN, password: PASSWORD });
  assert.equal(registered.status, 201);
  quickPage = await newPage({ on: quick });
  quickSeen = watched.at(-1);
  const renewals = renewalsOf(quickPage);
  const answer = quickPage.waitForResponse((r) => new URL(r.url()).pathname === "/api/auth/login");
  await logIn(quickPage, ADMIN, PASSWORD);
  const login = await (await answer).json();
  assert.equal(login.expires_in, 3);
  await heading(quickPage, "Users").waitFor();

  // Past the access token's lifetime, without a click.
  await quickPage.waitForTimeout(5_000);
  assert.ok(renewals.length >= 2, `renewed ${renewals.length} times in 5 s`);
  assert.equal((await apiCall(quick, "GET", "/api/auth/me", login.access_token)).status, 401, "the first token has expired");
  // Each renewal spent the refresh token the one before it got: never one twice.
  const presented = renewals.map((body) => body.refresh_token);
  assert.equal(presented[0], login.refresh_token);
  assert.equal(new Set(presented).size, presented.length);

  // The API still answers the page: its sessions, one (renewals start none), this device.
  await quickPage.getByRole("link", { name: "Sessions", exact: true }).click();
  await heading(quickPage, "Sessions").waitFor();
  await quickPage.locator('tr[data-current="true"]').getByText("This device").waitFor();
  assert.equal(await quickPage.locator("table.sessions tbody tr").count(), 1);
  await quickPage.getByRole("link", { name: /^Users/ }).click();
  await row(quickPage, ADMIN).waitFor();
});

test("a refused renewal signs the tab out cleanly: the login page, a short message, no loop", async () => {
  const seen = quickSeen;
  // Another session of the same user ends every other one, this tab's included.
  const other = await apiLogin(ADMIN, PASSWORD, { on: quick });
  const before = await kept(quickPage);
  assert.equal((await apiCall(quick, "DELETE", "/api/auth/me/sessions", other.body.access_token)).status, 204);
  assert.equal((await apiCall(quick, "GET", "/api/auth/me", before.token)).status, 401, "ended at once");
  // No click: the next renewal is refused, and the login page says why.
  await heading(quickPage, "Log in").waitFor();
  await message(quickPage, "Your session has ended. Please log in again.").waitFor();
  assert.deepEqual(await kept(quickPage), { token: null, refresh: null });
  assert.equal(await quickPage.locator(".message.error").count(), 0);
  assert.equal(await quickPage.getByRole("dialog").count(), 0);
  // Nothing more is asked: no renewal, no retry (longer than a renewal's period).
  const asked = seen.requests.length;
  await quickPage.waitForTimeout(2_000);
  assert.deepEqual(seen.requests.slice(asked), []);

  // A refresh token presented twice ends the whole session: here, the login's, spent by the
  // tab's first renewal and then presented again from elsewhere.
  // Wait for the renewal's answer, not its request: presented while the tab's renewal is still
  // on its way, the token could be spent here first, and the tab's renewal be the reuse.
  const renewed = quickPage.waitForResponse(
    (r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/api/auth/token",
    { timeout: 10_000 },
  );
  await logIn(quickPage, ADMIN, PASSWORD);
  await heading(quickPage, "Users").waitFor();
  const renewal = await renewed;
  assert.equal(renewal.status(), 200, "the tab's renewal went through");
  const spent = JSON.parse(renewal.request().postData() ?? "null").refresh_token; // the login's
  const reused = await apiRefresh(quick, spent);
  assert.equal(reused.status, 400);
  assert.equal(reused.body.code, "invalid_grant");
  await heading(quickPage, "Log in").waitFor();
  await message(quickPage, "Your session has ended. Please log in again.").waitFor();
  assert.deepEqual(await kept(quickPage), { token: null, refresh: null });
  await quickPage.context().close();
});

// ---- recovery and email verification ------------------------------------------------------

const ANN = "ann@example.org"; // of a domain whose users are approved once verified
const ANN_NEW_PASSWORD = "v1olin-crumpet";
const SAM = "sam@example.com";
const VERIFY_SUBJECT = "Verify your email address";
const RESET_SUBJECT = "Your password reset code";
const ON_ITS_WAY = "If that address is registered, a code is on its way. Check your mail.";

let sink; // the SMTP server the mailing server sends to
let mailing; // a server with a mailer, requiring verified addresses
let mailAdmin; // its first user's page

/** The code of the newest mail to `to` with `subject`, once there are `count` of them. */
function mailedCode(to, subject, count = 1) {
  return eventually(
    () => {
      const mails = sink.to(to, subject);
      assert.ok(mails.length >= count, `${mails.length} of ${count} mails`);
      const code = codeIn(mails.at(-1));
      assert.match(code ?? "", /^[0-9A-Z]{4}-[0-9A-Z]{4}$/, "the mail has a code");
      return code;
    },
    `"${subject}" to ${to}`,
    20_000,
  );
}

/** A well-formed code that is not `code`. */
const otherThan = (code) => (code === "ZZZZ-ZZZZ" ? "YYYY-YYYY" : "ZZZZ-ZZZZ");

const fieldError = (page, text) => page.locator(".field-error").filter({ hasText: text });

test("without a mailer, Forgot password? says that recovery is not set up", async () => {
  const page = await newPage();
  await page.goto("/#/login");
  await heading(page, "Log in").waitFor();
  await input(page, "Email").fill(BOB);
  await page.getByRole("link", { name: "Forgot password?", exact: true }).click();
  await heading(page, "Forgot your password?").waitFor();
  assert.match(page.url(), /#\/forgot$/);
  const off = message(page, "Password recovery is not set up on this server");
  await off.waitFor();
  assert.match(await off.innerText(), /Ask an administrator to reset your password\./);
  assert.equal(await off.getAttribute("role"), "alert");
  assert.equal(await button(page, "Send me a code").isVisible(), false, "nothing to send");
  const answer = await apiCall(server, "POST", "/api/auth/password/forgot", null, { email: BOB });
  assert.equal(answer.status, 404);
  assert.equal(answer.body.code, "not_enabled");
  await page.getByRole("link", { name: "Back to log in" }).click();
  await heading(page, "Log in").waitFor();
  assert.equal(await input(page, "Email").inputValue(), BOB, "the address typed before is kept");
  await page.context().close();
});

test("with a mailer, registering leads to a check-your-mail step; the mailed code verifies the address", async () => {
  sink = await startSmtpSink();
  mailing = await startServer({
    GATEHOUSE_SMTP_URL: sink.url,
    GATEHOUSE_MAIL_FROM: "auth@example.com",
    GATEHOUSE_WEBHOOK_RETRY_DELAYS: "200ms,300ms",
    GATEHOUSE_REQUIRE_VERIFIED_EMAIL: "true",
    GATEHOUSE_AUTO_APPROVE_DOMAINS: "example.org",
  });
  mailAdmin = await newPage({ on: mailing });
  await mailAdmin.goto("/#/register");
  await heading(mailAdmin, "Create an account").waitFor();
  await input(mailAdmin, "Email").fill(ADMIN);
  await input(mailAdmin, "Password").fill(PASSWORD);
  await input(mailAdmin, "Repeat the password").fill(PASSWORD);
  await button(mailAdmin, "Create account").click();
  await heading(mailAdmin, "Check your mail").waitFor();
  assert.match(mailAdmin.url(), /#\/verify$/);
  assert.equal(await mailAdmin.locator("main strong.address").innerText(), ADMIN);
  assert.equal(await mailAdmin.evaluate(() => document.activeElement?.getAttribute("name")), "code");
  await assertLabelled(mailAdmin, "the verification step");
  const first = await mailedCode(ADMIN, VERIFY_SUBJECT);
  assert.equal(sink.to(ADMIN, VERIFY_SUBJECT)[0].from, "auth@example.com");

  // Too short: said before anything is sent. A wrong code: the API's one answer.
  await input(mailAdmin, "Code").fill("ABCD");
  await button(mailAdmin, "Verify").click();
  await fieldError(mailAdmin, "The code has 8 characters, such as ABCD-EFGH.").waitFor();
  await input(mailAdmin, "Code").fill(otherThan(first));
  await button(mailAdmin, "Verify").click();
  await fieldError(mailAdmin, "The code is invalid or has expired.").waitFor();
  assert.equal(await input(mailAdmin, "Code").getAttribute("aria-invalid"), "true");

  // A new code, mailed on request.
  await button(mailAdmin, "Send a new code").click();
  await message(mailAdmin, ON_ITS_WAY).waitFor();
  const second = await mailedCode(ADMIN, VERIFY_SUBJECT, 2);
  // Typed as people do: small letters, no hyphen.
  await input(mailAdmin, "Code").fill(second.replace("-", "").toLowerCase());
  await shot(mailAdmin, "verify-email");
  await button(mailAdmin, "Verify").click();
  // Verified, and so the first user's login (which needs it here) goes through.
  await heading(mailAdmin, "Users").waitFor();
  await message(
    mailAdmin,
    "Your email address is verified. Welcome! You are the first user, so you are the administrator.",
  ).waitFor();
  const me = await apiCall(mailing, "GET", "/api/auth/me", (await kept(mailAdmin)).token);
  assert.equal(me.body.email_verified, true);
});

test("a user of an auto-approved domain is signed in as soon as the address is verified", async () => {
  const ann = await newPage({ on: mailing });
  await ann.goto("/#/register");
  await heading(ann, "Create an account").waitFor();
  await input(ann, "Email").fill(ANN);
  await input(ann, "Password").fill(PASSWORD);
  await input(ann, "Repeat the password").fill(PASSWORD);
  await button(ann, "Create account").click();
  await heading(ann, "Check your mail").waitFor();
  await input(ann, "Code").fill(await mailedCode(ANN, VERIFY_SUBJECT));
  await button(ann, "Verify").click();
  await heading(ann, "Your account").waitFor();
  await message(ann, "Your email address is verified. Welcome! Your account is ready.").waitFor();
  await ann.getByText(`Signed in as ${ANN}`, { exact: true }).waitFor();
  await ann.context().close();
});

test("the users list and the approval queue mark each address verified or unverified", async () => {
  assert.equal(
    (await apiCall(mailing, "POST", "/api/auth/register", null, { email: SAM, password: PASSWORD })).status,
    201,
  );
  await mailAdmin.getByRole("link", { name: /^Users/ }).click();
  await row(mailAdmin, SAM).waitFor();
  const mark = (email) => row(mailAdmin, email).locator(".mark");
  assert.equal(await mark(ADMIN).innerText(), "verified");
  assert.equal(await mark(ANN).innerText(), "verified");
  assert.equal(await mark(SAM).innerText(), "unverified");
  assert.match(await mark(SAM).getAttribute("title"), /not verified/);
  // In words, inside the cell of the address (what a screen reader reads with it).
  assert.match(await row(mailAdmin, SAM).locator("td.email").innerText(), new RegExp(`^${SAM}\\s+unverified$`));
  await shot(mailAdmin, "users-verified");

  // The approval queue.
  await mailAdmin.getByLabel("Status").selectOption("pending");
  await eventually(async () => assert.equal(await mailAdmin.locator("tbody tr").count(), 1), "1 pending");
  assert.equal(await mark(SAM).innerText(), "unverified");
  await atPhoneWidth(mailAdmin, () => assertNoSidewaysScroll(mailAdmin, "the marks at phone width"));
});

test("a login refused for an unverified address leads to the code step, then to the pending page", async () => {
  const sam = await newPage({ on: mailing });
  await logIn(sam, SAM, PASSWORD);
  await heading(sam, "Check your mail").waitFor();
  await sam.getByText("has to be verified before you can log in", { exact: false }).waitFor();
  assert.equal(await sam.locator("main strong.address").innerText(), SAM);
  await input(sam, "Code").fill(await mailedCode(SAM, VERIFY_SUBJECT));
  await button(sam, "Verify").click();
  await heading(sam, "Your account awaits approval").waitFor();
  await message(sam, "Your email address is verified. Your account now waits for an administrator's approval.").waitFor();
  assert.deepEqual(await kept(sam), { token: null, refresh: null }, "not signed in");
  await sam.context().close();

  await mailAdmin.getByRole("link", { name: /^Users/ }).click();
  await eventually(
    async () => assert.equal(await row(mailAdmin, SAM).locator(".mark").innerText(), "verified"),
    "the queue shows the address verified",
  );
});

test("Forgot password?: the code by mail, a new password typed twice, and back to log in", async () => {
  const page = await newPage({ on: mailing });
  const old = await apiLogin(ANN, PASSWORD, { on: mailing });
  assert.equal(old.status, 200);
  await page.goto("/#/login");
  await heading(page, "Log in").waitFor();
  await input(page, "Email").fill(ANN);
  await page.getByRole("link", { name: "Forgot password?", exact: true }).click();
  await heading(page, "Forgot your password?").waitFor();
  assert.equal(await input(page, "Email").inputValue(), ANN, "the address typed on the login page");
  await assertLabelled(page, "forgot password");

  // A malformed address: the API's 422, under the field.
  await input(page, "Email").fill("ann-at-example.org");
  await button(page, "Send me a code").click();
  await page.locator(".field-error:visible").waitFor();
  assert.equal(await input(page, "Email").getAttribute("aria-invalid"), "true");

  await input(page, "Email").fill(ANN);
  await button(page, "Send me a code").click();
  await heading(page, "Set a new password").waitFor();
  assert.match(page.url(), /#\/reset$/);
  await message(page, ON_ITS_WAY).waitFor();
  assert.equal(await input(page, "Email").inputValue(), ANN);
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("name")), "code");
  await assertLabelled(page, "set a new password");
  const code = await mailedCode(ANN, RESET_SUBJECT);

  // The password policy speaks first (the code is not spent); then a wrong code.
  await input(page, "Code").fill(code);
  await input(page, "New password").fill("password123");
  await input(page, "Repeat the new password").fill("password123");
  await button(page, "Set new password").click();
  await fieldError(page, /common/i).waitFor();
  await input(page, "Code").fill(otherThan(code));
  await input(page, "New password").fill(ANN_NEW_PASSWORD);
  await input(page, "Repeat the new password").fill(ANN_NEW_PASSWORD);
  await button(page, "Set new password").click();
  await fieldError(page, "The code is invalid or has expired.").waitFor();
  // The two passwords must match.
  await input(page, "Code").fill(code);
  await input(page, "Repeat the new password").fill(`${ANN_NEW_PASSWORD}x`);
  await button(page, "Set new password").click();
  await page.getByText("The two passwords are not the same.").waitFor();
  await input(page, "Repeat the new password").fill(ANN_NEW_PASSWORD);
  await shot(page, "forgot-password");
  await button(page, "Set new password").click();

  await heading(page, "Log in").waitFor();
  await message(page, "Your new password is set").waitFor();
  assert.equal(await input(page, "Email").inputValue(), ANN, "the address is filled in");
  await input(page, "Password").fill(ANN_NEW_PASSWORD);
  await button(page, "Log in").click();
  await heading(page, "Your account").waitFor();

  // The old password and the session from before are gone; the code works once.
  assert.equal((await apiLogin(ANN, PASSWORD, { on: mailing })).status, 401);
  assert.equal((await apiRefresh(mailing, old.body.refresh_token)).status, 400);
  const again = await apiCall(mailing, "POST", "/api/auth/password/reset", null, {
    email: ANN,
    code,
    new_password: PASSWORD,
  });
  assert.equal(again.status, 400);
  assert.equal(again.body.code, "invalid_code");
  await page.context().close();
});

test("the Forgot password? page and the code step read at phone width", async () => {
  const page = await newPage({ on: mailing, width: 390, height: 844 });
  await page.goto("/#/forgot");
  await heading(page, "Forgot your password?").waitFor();
  await assertNoSidewaysScroll(page, "forgot password at phone width");
  await page.goto("/#/verify");
  await heading(page, "Verify your email address").waitFor();
  await assertLabelled(page, "the code page opened by itself");
  await assertNoSidewaysScroll(page, "the code page at phone width");
  await page.context().close();
});

// ---- two-step sign-in (TOTP) --------------------------------------------------------------

const KIM = "kim@example.com";
let strict; // a server that requires admins to have two-step sign-in
let guarded; // its first user's (the admin's) page
let adminSecret; // the admin's TOTP secret (base 32)
let adminCodes; // the admin's recovery codes (the newest set)
let kimSecret;
let kimCodes;
let kim; // kim's browser
let decoder; // a blank page of no server's: PNG screenshots into pixels for the QR reader

/** RFC 4648 base 32 (no padding) to bytes. */
function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const bytes = [];
  let value = 0;
  let bits = 0;
  for (const c of text.toUpperCase()) {
    value = ((value << 5) | alphabet.indexOf(c)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bytes.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(bytes);
}

/** The RFC 6238 code of a base 32 `secret` at time step `step`: HMAC-SHA1, 6 digits. */
function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

const timeStep = () => Math.floor(Date.now() / 30_000);
/** The last time step whose code was used, per secret: the server takes each step once. */
const usedSteps = new Map();

/**
 * A code the server takes now: of the current step or the next (it accepts ±1 step), after
 * the last one used with this secret; waits for the clock when both are used.
 */
async function freshCode(secret) {
  for (;;) {
    const now = timeStep();
    const step = Math.max(now, (usedSteps.get(secret) ?? now - 1) + 1);
    if (step <= now + 1) {
      usedSteps.set(secret, step);
      return totp(secret, step);
    }
    await new Promise((resolve) => setTimeout(resolve, (now + 1) * 30_000 - Date.now() + 100));
  }
}

/** Six digits that are no code of `secret` anywhere near now. */
function wrongCode(secret) {
  const near = new Set([-2, -1, 0, 1, 2].map((d) => totp(secret, timeStep() + d)));
  for (let n = 135_791; ; n += 1) {
    const code = String(n).padStart(6, "0");
    if (!near.has(code)) return code;
  }
}

/** The text of the QR code `locator` shows, read from a screenshot of it by a QR reader. */
async function readQr(locator) {
  const png = await locator.screenshot();
  decoder ??= await browser.newPage();
  const image = await decoder.evaluate(async (data) => {
    const img = new Image();
    img.src = `data:image/png;base64,${data}`;
    await img.decode();
    const canvas = document.createElement("canvas");
    canvas.width = img.width;
    canvas.height = img.height;
    const g = canvas.getContext("2d");
    g.drawImage(img, 0, 0);
    return { width: img.width, height: img.height, data: Array.from(g.getImageData(0, 0, img.width, img.height).data) };
  }, png.toString("base64"));
  const found = jsQR(Uint8ClampedArray.from(image.data), image.width, image.height);
  return found ? Buffer.from(found.binaryData).toString("utf8") : null;
}

/** The recovery codes a page shows. */
async function shownCodes(page) {
  return (await page.locator(".recovery-codes li").allTextContents()).map((c) => c.trim());
}

const h3 = (page, name) => page.getByRole("heading", { level: 3, name, exact: true });

test("the TOTP helpers of these tests follow RFC 6238", () => {
  // RFC 6238, appendix B: the SHA-1 secret "12345678901234567890", T = 59 s and 1111111109 s
  // (8 digits there: 94287082 and 07081804).
  const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
  assert.equal(base32(secret).toString(), "12345678901234567890");
  assert.equal(totp(secret, 1), "287082");
  assert.equal(totp(secret, Math.floor(1111111109 / 30)), "081804");
});

test("the console's QR codes read back as their text, from the smallest size to the longest login URI", async () => {
  strict = await startServer({ GATEHOUSE_REQUIRE_MFA_FOR_ADMINS: "true" });
  const page = await newPage({ on: strict });
  await page.goto("/#/login");
  await heading(page, "Log in").waitFor();
  const uri = (account) =>
    `otpauth://totp/Gatehouse:${encodeURIComponent(account)}?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Gatehouse&algorithm=SHA1&digits=6&period=30`;
  const texts = [
    "A",
    "Gatehouse",
    "otpauth://totp/x",
    uri("jo@example.com"),
    uri("zoë.günther@exämple.com"), // UTF-8: more bytes than characters
    `${uri("someone@example.com")}&${"x".repeat(100)}`, // past version 9: a 16-bit length
    uri(LONG), // the longest address there can be
  ];
  const sizes = await page.evaluate(async (texts) => {
    const { qrCanvas } = await import("/console/app.js");
    return texts.map((text, i) => {
      const canvas = qrCanvas(text, `test ${i}`);
      canvas.dataset.test = String(i);
      document.body.append(canvas);
      return canvas.width;
    });
  }, texts);
  for (const [i, text] of texts.entries()) {
    assert.equal(await readQr(page.locator(`canvas[data-test="${i}"]`)), text, `QR code ${i} (${sizes[i]} px)`);
  }
  assert.ok(new Set(sizes).size >= 4, `several versions: ${sizes}`);
  await page.context().close();
});

test("with admins required to use two-step sign-in, an admin without it is led to turn it on; their own pages stay open", async () => {
  assert.equal(
    (await apiCall(strict, "POST", "/api/auth/register", undefined, { email: ADMIN, password: PASSWORD })).status,
    201,
  );
  guarded = await newPage({ on: strict });
  await guarded.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: strict.url });
  await logIn(guarded, ADMIN, PASSWORD);
  // The users page's calls are refused (403 mfa_enrollment_required): the prompt takes its place.
  await heading(guarded, "Admins must turn on two-step sign-in").waitFor();
  assert.equal(await guarded.locator(".message.error").count(), 0, "no generic error");
  await guarded.getByRole("link", { name: "Invitations", exact: true }).click();
  await heading(guarded, "Admins must turn on two-step sign-in").waitFor();
  await guarded.getByRole("link", { name: "Account", exact: true }).click();
  await heading(guarded, "Your account").waitFor();
  await guarded.getByRole("link", { name: "Sessions", exact: true }).click();
  await heading(guarded, "Sessions").waitFor();
  await guarded.getByRole("link", { name: /^Users/ }).click();
  await heading(guarded, "Admins must turn on two-step sign-in").waitFor();
  await guarded.getByRole("link", { name: "Turn on two-step sign-in", exact: true }).click();
  await heading(guarded, "Security").waitFor();
  await message(guarded, "Admins must turn on two-step sign-in on this server").waitFor();
  await guarded.locator(".pill.off").filter({ hasText: "Off" }).waitFor();
});

test("turning on two-step sign-in: the password, a QR code that reads as the otpauth URI, the app's first code, recovery codes once", async () => {
  await button(guarded, "Turn on two-step sign-in").click();
  await h3(guarded, "Turn on two-step sign-in").waitFor();
  await input(guarded, "Current password").fill("not-my-password");
  await button(guarded, "Continue").click();
  await guarded.locator(".field-error").filter({ hasText: "Current password is incorrect." }).waitFor();

  const begun = guarded.waitForResponse(
    (r) => new URL(r.url()).pathname === "/api/auth/me/mfa/totp" && r.request().method() === "POST",
  );
  await input(guarded, "Current password").fill(PASSWORD);
  await button(guarded, "Continue").click();
  const enrolment = await (await begun).json();
  adminSecret = enrolment.secret;
  assert.match(adminSecret, /^[A-Z2-7]{16,}$/);
  assert.match(enrolment.otpauth_uri, /^otpauth:\/\/totp\/.*[?&]secret=/);
  await h3(guarded, "Scan the QR code").waitFor();
  // The page's QR code reads (from a screenshot, as a phone's camera would) as the URI.
  const qr = guarded.getByRole("img", { name: /^QR code for your authenticator app/ });
  assert.equal(await readQr(qr), enrolment.otpauth_uri);
  assert.equal(
    await guarded.locator('[data-secret="key"]').textContent(),
    adminSecret.match(/.{1,4}/g).join(" "),
    "the key, in groups of four",
  );
  await button(guarded, "Copy the key").click();
  await guarded.getByText("Copied the key.").waitFor();
  assert.equal(await guarded.evaluate(() => navigator.clipboard.readText()), adminSecret);
  const code = input(guarded, "Code from the app");
  assert.equal(await code.getAttribute("autocomplete"), "one-time-code");
  assert.equal(await code.getAttribute("inputmode"), "numeric");
  await assertLabelled(guarded, "the security page's QR step");
  await shot(guarded, "security");
  await atPhoneWidth(guarded, async () => {
    await assertNoSidewaysScroll(guarded, "the QR step at phone width");
    const box = await qr.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 390, "the QR code fits the phone's width");
  });

  await code.fill("12345");
  await button(guarded, "Turn on").click();
  await guarded.locator(".field-error").filter({ hasText: "The code has 6 digits" }).waitFor();
  await code.fill(wrongCode(adminSecret));
  await button(guarded, "Turn on").click();
  await guarded.locator(".field-error").filter({ hasText: "The code is invalid" }).waitFor();
  await code.fill(await freshCode(adminSecret));
  await button(guarded, "Turn on").click();
  await h3(guarded, "Two-step sign-in is on: save your recovery codes").waitFor();
  adminCodes = await shownCodes(guarded);
  assert.equal(adminCodes.length, 10);
  for (const c of adminCodes) assert.match(c, /^[0-9A-Z]{5}-[0-9A-Z]{5}$/);
  assert.equal(new Set(adminCodes).size, 10);
  await guarded.getByText("These codes are shown only this once.").waitFor();

  const [file] = await Promise.all([
    guarded.waitForEvent("download"),
    button(guarded, "Download the recovery codes").click(),
  ]);
  assert.equal(file.suggestedFilename(), "gatehouse-recovery-codes.txt");
  const saved = readFileSync(await file.path(), "utf8");
  assert.match(saved, new RegExp(`^Gatehouse recovery codes for ${ADMIN.replace(".", "\\.")}\n`));
  assert.deepEqual(saved.trim().split("\n").slice(-10), adminCodes);
  await button(guarded, "Copy the recovery codes").click();
  await guarded.getByText("Copied the recovery codes.").waitFor();
  assert.equal(await guarded.evaluate(() => navigator.clipboard.readText()), adminCodes.join("\n"));
  await shot(guarded, "mfa-recovery-codes");
  await atPhoneWidth(guarded, () => assertNoSidewaysScroll(guarded, "the recovery codes at phone width"));

  // Saved: on to the admin pages, which open now; the codes are not shown again.
  await button(guarded, "I saved them").click();
  await heading(guarded, "Users").waitFor();
  await message(guarded, "Two-step sign-in is on").waitFor();
  await row(guarded, ADMIN).locator(".mark.mfa").filter({ hasText: "MFA" }).waitFor();
  await guarded.getByRole("link", { name: "Security", exact: true }).click();
  await heading(guarded, "Security").waitFor();
  await guarded.getByText("10 recovery codes left.").waitFor();
  assert.equal(await guarded.locator(".pill.on").textContent(), "On");
  assert.equal(await message(guarded, "Admins must turn on").count(), 0);
  const text = await guarded.locator("body").innerText();
  for (const c of adminCodes) assert.ok(!text.includes(c), "a recovery code is shown once only");
  assert.ok(!text.replace(/\s/g, "").includes(adminSecret), "the secret is shown once only");
});

test("logging in again: the password, then the code from the app (a wrong one refused first)", async () => {
  await button(guarded, "Log out").click();
  await heading(guarded, "Log in").waitFor();
  await logIn(guarded, ADMIN, PASSWORD);
  await heading(guarded, "Two-step sign-in").waitFor();
  assert.deepEqual(await kept(guarded), { token: null, refresh: null }, "no session before the second step");
  const code = input(guarded, "Authentication code");
  assert.equal(await code.getAttribute("autocomplete"), "one-time-code");
  assert.equal(await code.getAttribute("inputmode"), "numeric");
  assert.equal(await guarded.evaluate(() => document.activeElement?.name), "code", "the code's field has the focus");
  await assertLabelled(guarded, "the second step");
  await shot(guarded, "login-second-step");

  await code.fill(wrongCode(adminSecret));
  await button(guarded, "Verify").click();
  await guarded.locator(".field-error").filter({ hasText: "That code is not right" }).waitFor();
  await guarded.locator(".field-error").filter({ hasText: "4 tries left" }).waitFor();
  assert.equal(await code.getAttribute("aria-invalid"), "true");
  await code.fill(await freshCode(adminSecret));
  await button(guarded, "Verify").click();
  await heading(guarded, "Users").waitFor();
  await guarded.getByText(`Signed in as ${ADMIN} (admin)`).waitFor();
  const tokens = await kept(guarded);
  assert.ok(tokens.token && tokens.refresh, "the second step's tokens are kept as a login's");
  const device = await guarded.evaluate((key) => localStorage.getItem(key), `gatehouse.device.${ADMIN}`);
  assert.match(device ?? "", /^[0-9a-f]{64}$/, "and its device token");
});

test("a recovery code signs in in place of the app's code, once", async () => {
  await button(guarded, "Log out").click();
  await logIn(guarded, ADMIN, PASSWORD);
  await heading(guarded, "Two-step sign-in").waitFor();
  await button(guarded, "Use a recovery code instead").click();
  const code = input(guarded, "Recovery code");
  assert.equal(await code.getAttribute("inputmode"), "text");
  await guarded.getByText("One of the recovery codes you saved").waitFor();
  await code.fill("ABCDE");
  await button(guarded, "Verify").click();
  await guarded.locator(".field-error").filter({ hasText: "A recovery code has 10 characters" }).waitFor();
  // Small letters and no hyphen are forgiven.
  await code.fill(adminCodes[0].replace("-", "").toLowerCase());
  await button(guarded, "Verify").click();
  await heading(guarded, "Users").waitFor();
  await guarded.getByRole("link", { name: "Security", exact: true }).click();
  await guarded.getByText("9 recovery codes left.").waitFor();

  // A spent code is refused; another one works.
  await button(guarded, "Log out").click();
  await logIn(guarded, ADMIN, PASSWORD);
  await heading(guarded, "Two-step sign-in").waitFor();
  await button(guarded, "Use a recovery code instead").click();
  await input(guarded, "Recovery code").fill(adminCodes[0]);
  await button(guarded, "Verify").click();
  await guarded.locator(".field-error").filter({ hasText: "That recovery code is not right, or it was used already." }).waitFor();
  await input(guarded, "Recovery code").fill(adminCodes[1]);
  await button(guarded, "Verify").click();
  await heading(guarded, "Users").waitFor();
});

test("new recovery codes: the password, ten new ones shown once, the old ones dead", async () => {
  await guarded.getByRole("link", { name: "Security", exact: true }).click();
  await guarded.getByText("8 recovery codes left.").waitFor();
  await button(guarded, "New recovery codes").click();
  await h3(guarded, "New recovery codes").waitFor();
  await input(guarded, "Current password").fill(PASSWORD);
  await button(guarded, "Make new codes").click();
  await h3(guarded, "Your new recovery codes").waitFor();
  const fresh = await shownCodes(guarded);
  assert.equal(fresh.length, 10);
  assert.ok(fresh.every((c) => !adminCodes.includes(c)), "a new set");
  const old = adminCodes[2];
  adminCodes = fresh;
  await button(guarded, "I saved them").click();
  await message(guarded, "Your new recovery codes are ready. The old ones no longer work.").waitFor();
  await guarded.getByText("10 recovery codes left.").waitFor();

  // An old code opens nothing now (through the API, as another client would).
  const first = await apiLogin(ADMIN, PASSWORD, { on: strict });
  assert.equal(first.status, 200);
  assert.equal(first.body.mfa_required, true);
  assert.equal(first.body.access_token, undefined);
  const second = await apiCall(strict, "POST", "/api/auth/login/mfa", null, { mfa_token: first.body.mfa_token, code: old });
  assert.equal(second.status, 401);
  assert.equal(second.body.code, "invalid_code");
});

test("a second step left for 5 minutes has expired: the page says so before sending anything", async () => {
  const page = await newPage({ on: strict });
  await page.clock.install();
  await logIn(page, ADMIN, PASSWORD);
  await heading(page, "Two-step sign-in").waitFor();
  await page.clock.fastForward("05:01");
  const sent = [];
  page.on("request", (request) => {
    if (new URL(request.url()).pathname === "/api/auth/login/mfa") sent.push(request.url());
  });
  await input(page, "Authentication code").fill(wrongCode(adminSecret));
  await button(page, "Verify").click();
  await message(page, "This sign-in has expired: the second step must follow the password within 5 minutes.").waitFor();
  assert.deepEqual(sent, [], "a dead token is not sent (it would count as a failure)");
  await page.getByRole("link", { name: "Back to log in" }).click();
  await heading(page, "Log in").waitFor();
  assert.equal(await input(page, "Email").inputValue(), ADMIN);
  await page.context().close();
});

test("five wrong codes end the second step: the page says so and leads back to the password", async () => {
  assert.equal(await apiFromPage(guarded, "POST", "/api/auth/users", { email: KIM, password: PASSWORD }), 201);
  // Kim turns two-step sign-in on through the API.
  const login = await apiLogin(KIM, PASSWORD, { on: strict });
  const token = login.body.access_token;
  const begun = await apiCall(strict, "POST", "/api/auth/me/mfa/totp", token, { password: PASSWORD });
  assert.equal(begun.status, 200);
  kimSecret = begun.body.secret;
  const confirmed = await apiCall(strict, "POST", "/api/auth/me/mfa/totp/confirm", token, { code: await freshCode(kimSecret) });
  assert.equal(confirmed.status, 200);
  kimCodes = confirmed.body.recovery_codes;

  kim = await newPage({ on: strict });
  await logIn(kim, KIM, PASSWORD);
  await heading(kim, "Two-step sign-in").waitFor();
  for (let left = 4; left >= 1; left -= 1) {
    await input(kim, "Authentication code").fill(wrongCode(kimSecret));
    await button(kim, "Verify").click();
    await kim.locator(".field-error").filter({ hasText: `${left} ${left === 1 ? "try" : "tries"} left` }).waitFor();
  }
  await input(kim, "Authentication code").fill(wrongCode(kimSecret));
  await button(kim, "Verify").click();
  await message(kim, "That was 5 wrong codes: this sign-in has ended. Log in again with your password").waitFor();
  assert.equal(await input(kim, "Authentication code").isVisible(), false, "no more tries here");
  await button(kim, "Log in again").click();
  await heading(kim, "Log in").waitFor();
  assert.equal(await input(kim, "Email").inputValue(), KIM, "the address is filled in");

  // The fifth failure locks the account a moment (1 s); then the password and a recovery code.
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  await input(kim, "Password").fill(PASSWORD);
  await button(kim, "Log in").click();
  await heading(kim, "Two-step sign-in").waitFor();
  await button(kim, "Use a recovery code instead").click();
  await input(kim, "Recovery code").fill(kimCodes[0]);
  await button(kim, "Verify").click();
  await heading(kim, "Your account").waitFor();
  assert.equal(await kim.locator('dd[data-field="mfa"]').textContent(), "On · Manage it");
});

test("an admin resets a user's two-step sign-in: asked first; the user is signed out and logs in with the password alone", async () => {
  await guarded.getByRole("link", { name: /^Users/ }).click();
  await heading(guarded, "Users").waitFor();
  await row(guarded, KIM).locator(".mark.mfa").waitFor();
  await button(guarded, `Reset two-step sign-in: ${KIM}`).click();
  const dialog = guarded.getByRole("dialog");
  await dialog.getByRole("heading", { name: `Reset two-step sign-in of ${KIM}?` }).waitFor();
  await button(dialog, "Cancel").click();
  await dialog.waitFor({ state: "detached" });
  await row(guarded, KIM).locator(".mark.mfa").waitFor();

  await button(guarded, `Reset two-step sign-in: ${KIM}`).click();
  await button(guarded.getByRole("dialog"), "Reset two-step sign-in").click();
  await message(guarded, `Reset two-step sign-in of ${KIM}`).waitFor();
  await row(guarded, KIM).locator(".mark.mfa").waitFor({ state: "detached" });
  assert.equal(await button(guarded, `Reset two-step sign-in: ${KIM}`).count(), 0, "only for users with it on");

  // Kim's browser is signed out at its next step; the password alone signs in now.
  await kim.getByRole("link", { name: "Security", exact: true }).click();
  await heading(kim, "Log in").waitFor();
  await message(kim, "Your session has ended").waitFor();
  await logIn(kim, KIM, PASSWORD);
  await heading(kim, "Your account").waitFor();
  await kim.getByRole("link", { name: "Security", exact: true }).click();
  await heading(kim, "Security").waitFor();
  await kim.locator(".pill.off").filter({ hasText: "Off" }).waitFor();
  await button(kim, "Turn on two-step sign-in").waitFor();
  await kim.context().close();
});

test("turning it off takes the password and a code; an admin is then asked to turn it on again", async () => {
  await guarded.getByRole("link", { name: "Security", exact: true }).click();
  await heading(guarded, "Security").waitFor();
  await button(guarded, "Turn off two-step sign-in").click();
  await h3(guarded, "Turn off two-step sign-in").waitFor();
  await assertLabelled(guarded, "the turn-off form");
  await input(guarded, "Current password").fill(PASSWORD);
  await input(guarded, "Code from the app, or a recovery code").fill("ZZZZZ-ZZZZZ");
  await button(guarded, "Turn off").click();
  await guarded.locator(".field-error").filter({ hasText: "The code is invalid" }).waitFor();
  await button(guarded, "Cancel").click();
  await guarded.getByText("10 recovery codes left.").waitFor();

  await button(guarded, "Turn off two-step sign-in").click();
  await input(guarded, "Current password").fill(PASSWORD);
  await input(guarded, "Code from the app, or a recovery code").fill(adminCodes[0]);
  await button(guarded, "Turn off").click();
  await message(guarded, "Two-step sign-in is off").waitFor();
  await guarded.locator(".pill.off").filter({ hasText: "Off" }).waitFor();
  await message(guarded, "Admins must turn on two-step sign-in on this server").waitFor();
  await guarded.getByRole("link", { name: /^Users/ }).click();
  await heading(guarded, "Admins must turn on two-step sign-in").waitFor();
  // The next login asks for the password only.
  await button(guarded, "Log out").click();
  await logIn(guarded, ADMIN, PASSWORD);
  await heading(guarded, "Admins must turn on two-step sign-in").waitFor();
  await guarded.context().close();
});

test("the second step without a login (a reload) goes back to the login page", async () => {
  const page = await newPage({ on: strict });
  await page.goto("/#/two-step");
  await heading(page, "Log in").waitFor();
  await eventually(async () => assert.match(page.url(), /#\/login$/), "lands on the login page");
  await page.context().close();
});

// ---- passkeys ---------------------------------------------------------------------------

let keyed; // a server with passkeys on: GATEHOUSE_PUBLIC_URL=http://localhost:PORT
let keyedAt; // the same server, as the pages open it: at http://localhost:PORT
let keyPage; // its first user's (the admin's) page
let keyAuthenticator; // that browser's virtual authenticator

/** A TCP port free on 127.0.0.1 a moment ago. */
async function freePort() {
  const probe = createServer();
  await new Promise((resolve, reject) => {
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", resolve);
  });
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * Chromium's virtual authenticator in `page`'s browser (the DevTools protocol's WebAuthn
 * domain): a platform authenticator that keeps discoverable credentials and verifies its
 * user, and answers by itself, unless `options` say otherwise.
 */
async function virtualAuthenticator(page, options = {}) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
      ...options,
    },
  });
  return {
    id: authenticatorId,
    /** The credentials it holds. */
    async credentials() {
      return (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
    },
    /** Whether it verifies its user from now on (false: the user fails the check). */
    userVerified(isUserVerified) {
      return cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified });
    },
  };
}

/** Calls the API from the page with its own session: the status and the body (or null). */
function apiJsonFromPage(page, method, url) {
  return page.evaluate(
    async ({ method, url }) => {
      const response = await fetch(url, {
        method,
        headers: { Authorization: `Bearer ${sessionStorage.getItem("gatehouse.token")}` },
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    },
    { method, url },
  );
}

const passkeysPanel = (page) => page.locator("section").filter({ has: page.locator("#passkeys-title") });
const passkeyItems = (page) => passkeysPanel(page).locator(".passkey-list li");

test("at an IP address the login page offers no passkey; at localhost on a server without them, it says they are not set up", async () => {
  // The main server (no GATEHOUSE_PUBLIC_URL) at 127.0.0.1: WebAuthn never works at an IP.
  const page = await newPage();
  await page.goto("/#/login");
  await heading(page, "Log in").waitFor();
  await button(page, "Log in").waitFor();
  assert.equal(await button(page, "Sign in with a passkey").count(), 0, "no passkey button at 127.0.0.1");
  await page.context().close();

  // The same server at localhost: the page cannot know the server's set-up before asking.
  const local = { ...server, url: server.url.replace("127.0.0.1", "localhost") };
  const there = await newPage({ on: local });
  await there.goto("/#/login");
  await heading(there, "Log in").waitFor();
  const started = there.waitForResponse((r) => new URL(r.url()).pathname === "/api/auth/login/passkey/start");
  await button(there, "Sign in with a passkey").click();
  assert.equal((await started).status(), 404);
  await message(there, "Passkeys are not set up on this server. Log in with your email and password.").waitFor();
  await button(there, "Sign in with a passkey").waitFor({ state: "hidden" });
  assert.equal(await there.locator(".message.error").count(), 0, "said calmly, not as an error");

  // Signed in there, the Security page says so too, and offers no button.
  await logIn(there, ADMIN, PASSWORD);
  await heading(there, "Users").waitFor();
  await there.getByRole("link", { name: "Security", exact: true }).click();
  await heading(there, "Security").waitFor();
  await passkeysPanel(there).getByText("Passkeys are not set up on this server.").waitFor();
  await passkeysPanel(there).getByText("GATEHOUSE_PUBLIC_URL", { exact: false }).waitFor();
  assert.equal(await button(there, "Add a passkey").count(), 0);
  await there.context().close();
});

test("a passkey is added on the Security page: named, made by the authenticator, listed, and mfa_enabled turns on", async () => {
  const port = await freePort();
  keyed = await startServer({
    GATEHOUSE_BIND: `127.0.0.1:${port}`,
    GATEHOUSE_PUBLIC_URL: `http://localhost:${port}`,
  });
  keyedAt = { ...keyed, url: `http://localhost:${port}` };
  assert.equal(
    (await apiCall(keyed, "POST", "/api/auth/register", undefined, { email: ADMIN, password: PASSWORD })).status,
    201,
  );
  keyPage = await newPage({ on: keyedAt });
  keyAuthenticator = await virtualAuthenticator(keyPage);
  await logIn(keyPage, ADMIN, PASSWORD);
  await heading(keyPage, "Users").waitFor();
  await keyPage.getByRole("link", { name: "Security", exact: true }).click();
  await heading(keyPage, "Security").waitFor();
  await passkeysPanel(keyPage).getByText("You have no passkeys yet.").waitFor();

  await button(keyPage, "Add a passkey").click();
  await h3(keyPage, "Add a passkey").waitFor();
  await assertLabelled(keyPage, "the passkey's name");
  const name = input(keyPage, "Name of the passkey");
  // A name to start from: this browser and system, without the version.
  assert.match(await name.inputValue(), /^(Headless )?Chrome on Linux$/);
  assert.equal(await name.evaluate((el) => el === document.activeElement), true, "the name has the focus");
  // No name: said under the field, nothing sent.
  let sent = 0;
  keyPage.on("request", (r) => {
    if (new URL(r.url()).pathname.startsWith("/api/auth/me/passkeys/register")) sent += 1;
  });
  await name.fill("   ");
  await button(keyPage, "Create passkey").click();
  await keyPage.locator(".field-error").filter({ hasText: "Enter a name for the passkey." }).waitFor();
  assert.equal(sent, 0, "nothing sent for an empty name");
  // Cancel goes back to the list.
  await button(keyPage, "Cancel").click();
  await button(keyPage, "Add a passkey").waitFor();

  await button(keyPage, "Add a passkey").click();
  await input(keyPage, "Name of the passkey").fill("  Test key ");
  const finished = keyPage.waitForResponse(
    (r) => new URL(r.url()).pathname === "/api/auth/me/passkeys/register/finish",
  );
  await button(keyPage, "Create passkey").click();
  assert.equal((await finished).status(), 201);
  const body = JSON.parse((await finished).request().postData());
  assert.equal(body.name, "Test key", "the name is sent trimmed");
  assert.equal(typeof body.challenge_id, "string");
  assert.equal(body.credential.type, "public-key");
  assert.match(body.credential.rawId, /^[A-Za-z0-9_-]+$/, "base 64, URL-safe, unpadded");
  assert.match(body.credential.response.attestationObject, /^[A-Za-z0-9_-]+$/);

  await message(keyPage, "Added the passkey “Test key”.").waitFor();
  assert.equal(await keyPage.locator(".message.error").count(), 0);
  await eventually(async () => assert.equal(await passkeyItems(keyPage).count(), 1), "one passkey listed");
  const item = passkeyItems(keyPage).first();
  assert.equal(await item.locator(".passkey-name").textContent(), "Test key");
  assert.match(await item.textContent(), /Added .+ · not used yet/);
  await button(keyPage, "Remove: Test key").waitFor();

  // The API agrees, and so does the authenticator.
  const listed = await apiJsonFromPage(keyPage, "GET", "/api/auth/me/passkeys");
  assert.equal(listed.status, 200);
  assert.equal(listed.body.length, 1);
  assert.equal(listed.body[0].name, "Test key");
  assert.equal(listed.body[0].last_used_at, null);
  assert.equal(String(listed.body[0].id), await item.getAttribute("data-id"));
  const me = await apiJsonFromPage(keyPage, "GET", "/api/auth/me");
  assert.equal(me.body.mfa_enabled, true, "a passkey is a second factor");
  const mfa = await apiJsonFromPage(keyPage, "GET", "/api/auth/me/mfa");
  assert.equal(mfa.body.totp_enabled, false);
  // The app's panel still says what it says of the app: off.
  await keyPage.locator(".pill.off").filter({ hasText: "Off" }).waitFor();
  const held = await keyAuthenticator.credentials();
  assert.equal(held.length, 1, "the authenticator holds one credential");
  assert.equal(held[0].isResidentCredential, true, "a discoverable one");
  assert.equal(held[0].rpId, "localhost");

  await atPhoneWidth(keyPage, () => assertNoSidewaysScroll(keyPage, "the passkeys at phone width"));
  await shot(keyPage, "security-passkeys");
  // The account page says a second factor is on.
  await keyPage.getByRole("link", { name: "Account", exact: true }).click();
  await heading(keyPage, "Your account").waitFor();
  assert.match(await keyPage.locator('[data-field="mfa"]').textContent(), /^On/);
});

test("Sign in with a passkey: no address, no password, signed in as its account like after a password", async () => {
  await button(keyPage, "Log out").click();
  await heading(keyPage, "Log in").waitFor();
  // As a visitor finds it (without the word on logging out).
  await keyPage.reload();
  await heading(keyPage, "Log in").waitFor();
  await button(keyPage, "Sign in with a passkey").waitFor();
  await assertLabelled(keyPage, "login with a passkey");
  await shot(keyPage, "login-passkey");
  await keyPage.evaluate((key) => localStorage.removeItem(key), `gatehouse.device.${ADMIN}`);
  const finished = keyPage.waitForResponse((r) => new URL(r.url()).pathname === "/api/auth/login/passkey/finish");
  await button(keyPage, "Sign in with a passkey").click();
  assert.equal((await finished).status(), 200);
  const sent = JSON.parse((await finished).request().postData());
  assert.deepEqual(Object.keys(sent).sort(), ["challenge_id", "credential"]);
  assert.match(sent.credential.response.userHandle, /^[A-Za-z0-9_-]+$/, "the passkey names its account");
  await heading(keyPage, "Users").waitFor();
  await keyPage.getByText(`Signed in as ${ADMIN} (admin)`).waitFor();
  const { token, refresh } = await kept(keyPage);
  assert.ok(token && refresh, "both tokens kept, as after a password");
  const device = await keyPage.evaluate((key) => localStorage.getItem(key), `gatehouse.device.${ADMIN}`);
  assert.ok(device, "the device token is kept for the account");

  const listed = await apiJsonFromPage(keyPage, "GET", "/api/auth/me/passkeys");
  assert.ok(listed.body[0].last_used_at, "last_used_at is set");
  await keyPage.getByRole("link", { name: "Security", exact: true }).click();
  await heading(keyPage, "Security").waitFor();
  assert.match(await passkeyItems(keyPage).first().textContent(), /Added .+ · last used .+/);
  // The session survives a reload, as any.
  await keyPage.reload();
  await heading(keyPage, "Security").waitFor();
});

test("a cancelled passkey dialog is said calmly: nothing added, nobody signed in, the page goes on", async () => {
  // The authenticator's user fails its check: the browser answers NotAllowedError, as when
  // the person closes the dialog.
  await keyAuthenticator.userVerified(false);
  await button(keyPage, "Add a passkey").click();
  await input(keyPage, "Name of the passkey").fill("Second key");
  await button(keyPage, "Create passkey").click();
  await message(keyPage, "No passkey was added: the browser's passkey dialog was closed, or it timed out.").waitFor();
  assert.equal(await keyPage.locator(".message.error").count(), 0, "not an error");
  // Still on the step, to try again.
  await button(keyPage, "Create passkey").waitFor();
  assert.equal((await apiJsonFromPage(keyPage, "GET", "/api/auth/me/passkeys")).body.length, 1);
  assert.equal((await keyAuthenticator.credentials()).length, 1);
  await button(keyPage, "Cancel").click();
  await button(keyPage, "Remove: Test key").waitFor();
  assert.equal(await passkeyItems(keyPage).count(), 1);

  await button(keyPage, "Log out").click();
  await heading(keyPage, "Log in").waitFor();
  await button(keyPage, "Sign in with a passkey").click();
  await message(keyPage, "No passkey was used: the browser's passkey dialog was closed, or it timed out.").waitFor();
  assert.equal(await keyPage.locator(".message.error").count(), 0, "not an error");
  assert.equal((await kept(keyPage)).token, null, "nobody signed in");
  assert.match(keyPage.url(), /#\/login$/);
  await button(keyPage, "Sign in with a passkey").waitFor();

  await keyAuthenticator.userVerified(true);
  await button(keyPage, "Sign in with a passkey").click();
  await heading(keyPage, "Users").waitFor();
});

test("removing a passkey asks first; it is gone from the page and the API, and no longer signs in", async () => {
  await keyPage.getByRole("link", { name: "Security", exact: true }).click();
  await heading(keyPage, "Security").waitFor();
  await button(keyPage, "Remove: Test key").click();
  const dialog = keyPage.getByRole("dialog");
  await dialog.getByRole("heading", { name: "Remove the passkey “Test key”?" }).waitFor();
  await button(dialog, "Cancel").click();
  await dialog.waitFor({ state: "detached" });
  assert.equal(await passkeyItems(keyPage).count(), 1);
  assert.equal((await apiJsonFromPage(keyPage, "GET", "/api/auth/me/passkeys")).body.length, 1);

  await button(keyPage, "Remove: Test key").click();
  await button(keyPage.getByRole("dialog"), "Remove passkey").click();
  await message(keyPage, "Removed the passkey “Test key”.").waitFor();
  await passkeysPanel(keyPage).getByText("You have no passkeys yet.").waitFor();
  assert.equal(await passkeyItems(keyPage).count(), 0);
  assert.deepEqual((await apiJsonFromPage(keyPage, "GET", "/api/auth/me/passkeys")).body, []);
  assert.equal((await apiJsonFromPage(keyPage, "GET", "/api/auth/me")).body.mfa_enabled, false);

  // The authenticator still holds it, but Gatehouse no longer knows it.
  assert.equal((await keyAuthenticator.credentials()).length, 1);
  await button(keyPage, "Log out").click();
  await heading(keyPage, "Log in").waitFor();
  const finished = keyPage.waitForResponse((r) => new URL(r.url()).pathname === "/api/auth/login/passkey/finish");
  await button(keyPage, "Sign in with a passkey").click();
  assert.equal((await finished).status(), 401);
  await message(keyPage, "That passkey is not known here").waitFor();
  assert.equal(await keyPage.locator(".message.error").count(), 1);
  assert.equal((await kept(keyPage)).token, null, "nobody signed in");
  await heading(keyPage, "Log in").waitFor();
  assert.match(keyPage.url(), /#\/login$/);
  await keyPage.context().close();
});

test("a passkey of an account that cannot sign in gets what a password login gets: disabled, pending, declined", async () => {
  const PAT = "pat@example.com";
  const adminToken = (await apiLogin(ADMIN, PASSWORD, { on: keyed })).body.access_token;
  const made = await apiCall(keyed, "POST", "/api/auth/register", undefined, { email: PAT, password: BOB_PASSWORD });
  assert.equal(made.status, 201);
  const setStatus = async (status, note) => {
    const body = note ? { status, note } : { status };
    const answer = await apiCall(keyed, "PUT", `/api/auth/users/${made.body.id}`, adminToken, body);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
  };
  await setStatus("approved");
  const page = await newPage({ on: keyedAt });
  await virtualAuthenticator(page);
  await logIn(page, PAT, BOB_PASSWORD);
  await heading(page, "Your account").waitFor();
  await page.getByRole("link", { name: "Security", exact: true }).click();
  await button(page, "Add a passkey").click();
  await input(page, "Name of the passkey").fill("Pat's phone");
  await button(page, "Create passkey").click();
  await button(page, "Remove: Pat's phone").waitFor();
  await button(page, "Log out").click();
  await heading(page, "Log in").waitFor();

  await setStatus("disabled");
  await button(page, "Sign in with a passkey").click();
  await message(page, "Account disabled.").waitFor();
  assert.equal((await kept(page)).token, null, "nobody signed in");

  await setStatus("pending");
  await button(page, "Sign in with a passkey").click();
  await heading(page, "Your account awaits approval").waitFor();
  assert.equal((await kept(page)).token, null, "nobody signed in");

  await setStatus("rejected", "No room this term.");
  await page.getByRole("link", { name: "Back to log in" }).click();
  await button(page, "Sign in with a passkey").click();
  await heading(page, "Your registration was declined").waitFor();
  assert.equal(await page.locator(".decision-note").textContent(), "No room this term.");
  assert.equal((await kept(page)).token, null, "nobody signed in");

  // Approved again, the same passkey signs in.
  await setStatus("approved");
  await page.getByRole("link", { name: "Back to log in" }).click();
  await button(page, "Sign in with a passkey").click();
  await heading(page, "Your account").waitFor();
  await page.getByText(`Signed in as ${PAT}`).waitFor();
  await page.context().close();
});

test("without the browser's JSON helpers, the console converts the options and credentials itself", async () => {
  // A browser without PublicKeyCredential.parseCreationOptionsFromJSON,
  // .parseRequestOptionsFromJSON and PublicKeyCredential#toJSON (older ones).
  const page = await newPage({ on: keyedAt });
  await page.addInitScript(() => {
    delete PublicKeyCredential.parseCreationOptionsFromJSON;
    delete PublicKeyCredential.parseRequestOptionsFromJSON;
    delete PublicKeyCredential.prototype.toJSON;
  });
  const authenticator = await virtualAuthenticator(page);
  await logIn(page, ADMIN, PASSWORD);
  await heading(page, "Users").waitFor();
  assert.equal(
    await page.evaluate(() => typeof PublicKeyCredential.parseCreationOptionsFromJSON),
    "undefined",
  );
  await page.getByRole("link", { name: "Security", exact: true }).click();
  await button(page, "Add a passkey").click();
  await input(page, "Name of the passkey").fill("Older browser");
  await button(page, "Create passkey").click();
  await message(page, "Added the passkey “Older browser”.").waitFor();
  await button(page, "Remove: Older browser").waitFor();
  assert.equal((await authenticator.credentials()).length, 1);

  await button(page, "Log out").click();
  await button(page, "Sign in with a passkey").click();
  await heading(page, "Users").waitFor();
  await page.getByText(`Signed in as ${ADMIN} (admin)`).waitFor();
  const listed = await apiJsonFromPage(page, "GET", "/api/auth/me/passkeys");
  assert.equal(listed.body.length, 1);
  assert.ok(listed.body[0].last_used_at);
  await page.context().close();
});

test("the API docs page works under the console's CSP: no script refused, no other host", async () => {
  // Its own page: the viewer's style sheet has a few data: icons, which the policy holds
  // back (img-src 'self'); that is the only thing it may refuse.
  const context = await browser.newContext({ baseURL: server.url });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const problems = [];
  const requests = [];
  page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    const text = message.text();
    if (/Content Security Policy|Refused to/i.test(text) && !/the image 'data:/i.test(text)) {
      problems.push(`CSP: ${text}`);
    }
  });
  page.on("request", (request) => requests.push(request.url()));
  const response = await page.goto("/docs");
  assert.equal(response.headers()["x-frame-options"], "DENY");
  assert.match(response.headers()["content-security-policy"], /script-src 'self';/);
  await page.getByText("Gatehouse API").first().waitFor();
  // Every operation of the document is listed (the API's; the static files are not in it).
  const doc = await (await context.request.get("/api/openapi.json")).json();
  const methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
  const operations = Object.values(doc.paths)
    .flatMap((item) => Object.keys(item).filter((key) => methods.includes(key))).length;
  assert.ok(operations >= 15, `the document has the API's operations (${operations})`);
  await eventually(
    async () => assert.equal(await page.locator(".opblock").count(), operations),
    "the operations are listed",
  );
  // The viewer still calls the API (connect-src 'self'): try GET /healthz.
  const healthz = page.locator(".opblock").filter({ has: page.locator('[data-path="/healthz"]') });
  await healthz.locator(".opblock-summary").click();
  await healthz.getByRole("button", { name: "Try it out" }).click();
  await healthz.getByRole("button", { name: "Execute" }).click();
  const status = healthz.locator(".live-responses-table tbody .response-col_status").first();
  await eventually(async () => assert.equal((await status.textContent()).trim(), "200"), "Try it out");
  assert.deepEqual(problems, []);
  const origin = new URL(server.url).origin;
  for (const url of requests.filter((u) => !u.startsWith("data:"))) {
    assert.equal(new URL(url).origin, origin, url);
  }
  await context.close();
});

test("no page put a token in a URL, talked to another host, broke the CSP or threw", async () => {
  for (const seen of watched) {
    assert.deepEqual(seen.problems, []);
    for (const url of seen.requests) {
      assert.equal(new URL(url).origin, seen.origin, url);
      assert.doesNotMatch(url, /eyJ|access_token|refresh_token|[?&](token|password)=/i, url);
    }
  }
  assert.ok(watched.length >= 3);
  for (const each of [server, quick, mailing, strict, keyed].filter(Boolean)) {
    assert.doesNotMatch(each.logs(), /"panicked|ERROR/, "the server logged no error");
  }
});
