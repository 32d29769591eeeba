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

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

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

async function startServer() {
  const dir = mkdtempSync(path.join(tmpdir(), "gatehouse-browser-"));
  const child = spawn(binary, ["serve"], {
    env: {
      PATH: process.env.PATH,
      GATEHOUSE_BIND: "127.0.0.1:0",
      GATEHOUSE_DATABASE_URL: `sqlite://${dir}/gatehouse.db`,
      GATEHOUSE_BCRYPT_COST: "4",
      GATEHOUSE_LOG_FORMAT: "json",
      RUST_LOG: "info",
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

// ---- the browser ----------------------------------------------------------------------

async function newPage({ width = 1280, height = 860 } = {}) {
  const context = await browser.newContext({
    baseURL: server.url,
    viewport: { width, height },
    colorScheme: "light",
    locale: "en-GB",
    timezoneId: "UTC",
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const seen = { requests: [], problems: [] };
  watched.push(seen);
  page.on("request", (request) => seen.requests.push(request.url()));
  page.on("pageerror", (error) => seen.problems.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    const text = message.text();
    if (/Content Security Policy|Refused to/i.test(text)) seen.problems.push(`CSP: ${text}`);
  });
  return page;
}

async function shot(page, name) {
  if (!shotsDir) return;
  mkdirSync(shotsDir, { recursive: true });
  await page.screenshot({ path: path.join(shotsDir, `${name}.png`), fullPage: true });
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

// ---- the steps --------------------------------------------------------------------------

let admin; // the first user's page
let bob; // the second user's page
let bobId;

before(async () => {
  server = await startServer();
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
  // A few more users make filtering mean something (and the screenshot fuller).
  for (const email of ["carol@example.com", "dave@example.org", "erin@example.net"]) {
    assert.equal(
      await apiFromPage(admin, "POST", "/api/auth/register", { email, password: PASSWORD }),
      201,
    );
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
  const approved = await row(admin, BOB).locator("td").nth(1).textContent();
  assert.equal(approved.trim(), "Approved");
  await assertLabelled(admin, "users");
  await shot(admin, "users");
  bobId = await admin.evaluate(async (email) => {
    const response = await fetch(`/api/auth/users?q=${encodeURIComponent(email)}`, {
      headers: { Authorization: `Bearer ${sessionStorage.getItem("gatehouse.token")}` },
    });
    return (await response.json())[0].id;
  }, BOB);
});

test("the approved user logs in and sees no admin pages", async () => {
  await logIn(bob, BOB, BOB_PASSWORD);
  await heading(bob, "Your account").waitFor();
  await bob.getByText(`Signed in as ${BOB}`, { exact: true }).waitFor();
  assert.equal(await bob.getByRole("link", { name: /^Users/ }).count(), 0);
  await bob.goto("/#/users");
  await heading(bob, "Your account").waitFor();
  await assertLabelled(bob, "account");
  await shot(bob, "account");
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

test("logout ends the session", async () => {
  await button(admin, "Log out").click();
  await heading(admin, "Log in").waitFor();
  await message(admin, "You have logged out.").waitFor();
  await admin.reload();
  await heading(admin, "Log in").waitFor();
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
  const origin = new URL(server.url).origin;
  for (const seen of watched) {
    assert.deepEqual(seen.problems, []);
    for (const url of seen.requests) {
      assert.equal(new URL(url).origin, origin, url);
      assert.doesNotMatch(url, /eyJ|access_token|[?&](token|password)=/i, url);
    }
  }
  assert.ok(watched.length >= 3);
  assert.doesNotMatch(server.logs(), /"panicked|ERROR/, "the server logged no error");
});
