// The web app in a real browser (Debian's Chromium, driven by playwright-core) against the local
// stack named by WEBHOOKS_STACK_FILE, with a real receiver on 127.0.0.1. A person signs in with a
// key, sets a webhook up through the form, watches its delivery in the log, switches it off and on
// again; customer-controlled strings must stay text. Screenshots go to target/browser/.
//
// Run through infra/browser-test.sh, which installs what this needs.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac, createPublicKey, randomBytes, verify } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const ARTIFACTS = join(ROOT, "target/browser");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
// No sandbox (root in CI); nothing that reaches out to the internet, which is closed here.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
/** How long the pipeline (ingest -> matcher -> delivery -> log) may take locally. */
const DELIVERY_WAIT_MS = 30_000;
const XSS_NAME = "<img src=x onerror=alert(1)>";
const XSS_BODY = "<img src=x onerror=alert(2)>";

const stackFile = process.env.WEBHOOKS_STACK_FILE;
assert.ok(stackFile, "WEBHOOKS_STACK_FILE names the local stack's stack.json");
const stack = JSON.parse(readFileSync(stackFile, "utf8"));
const API = stack.api_url.replace(/\/$/, "");

// ------------------------------------------------------------------ helpers

async function call(method, path, key, body, contentType = "application/json") {
  const headers = {};
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = contentType;
  const response = await fetch(`${API}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** A receiver on 127.0.0.1:0 that records requests and answers `receiver.status` (200 unless told). */
async function startReceiver() {
  const receiver = { requests: [], status: 200, body: "ok" };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      receiver.requests.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(receiver.status, { "content-type": "text/html" });
      res.end(receiver.body);
    });
  });
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  receiver.url = `http://127.0.0.1:${server.address().port}/hook`;
  receiver.close = () => new Promise((done) => server.close(done));
  return receiver;
}

/** Standard Webhooks: v1,base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")) among the signatures. */
function verifySignature(secret, request) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const signed = `${request.headers["webhook-id"]}.${request.headers["webhook-timestamp"]}.${request.body}`;
  const expected = `v1,${createHmac("sha256", key).update(signed).digest("base64")}`;
  return request.headers["webhook-signature"].split(" ").includes(expected);
}

/** Standard Webhooks v1a: v1a,base64(Ed25519 signature of "{id}.{timestamp}.{body}") among the
 * signatures, checked with Node's own Ed25519 (OpenSSL), not the service's implementation. */
function verifyPublicKeySignature(publicKey, request) {
  const raw = Buffer.from(publicKey.replace(/^whpk_/, ""), "base64");
  // SubjectPublicKeyInfo of an Ed25519 key (RFC 8410): a fixed 12-byte prefix, then the 32 bytes.
  const der = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), raw]);
  const key = createPublicKey({ key: der, format: "der", type: "spki" });
  const signed = Buffer.from(`${request.headers["webhook-id"]}.${request.headers["webhook-timestamp"]}.${request.body}`);
  return request.headers["webhook-signature"]
    .split(" ")
    .filter((entry) => entry.startsWith("v1a,"))
    .some((entry) => verify(null, signed, key, Buffer.from(entry.slice(4), "base64")));
}

async function eventually(what, check, timeoutMs = DELIVERY_WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ------------------------------------------------------------------ the session

const suffix = randomBytes(4).toString("hex");
const acme = `acme-${suffix}`;
const globex = `globex-${suffix}`;
let key;
let receiver;
let context;
let page;
let userDataDir;
const dialogs = [];
const problems = [];

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  receiver = await startReceiver();
  // GIVEN a customer key for two companies, made by the admin over HTTP (not through the UI)
  const created = await call("POST", "/v1/api-keys", stack.admin_key, {
    name: `Browser test ${suffix}`,
    companies: [acme, globex],
    permissions: ["manage", "publish"],
  });
  assert.equal(created.status, 201, created.text);
  key = created.json.key;

  userDataDir = mkdtempSync(join(tmpdir(), "webhooks-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: DESKTOP,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);
  page.on("dialog", async (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    await dialog.dismiss();
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && /Content Security Policy|Refused to/i.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
});

after(async () => {
  await context?.close();
  await receiver?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

const shot = (name) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
const card = (name) => page.locator("li.webhook", { has: page.getByRole("heading", { name, exact: true }) });
/** The id of the webhook whose card is named `name`. */
const webhookId = async (name) => (await card(name).getAttribute("id")).replace(/^webhook-/, "");

// ------------------------------------------------------------------ tests

test("the page and its assets are public and locked down", async () => {
  const index = await call("GET", "/");
  assert.equal(index.status, 200);
  assert.match(index.headers.get("content-type"), /^text\/html/);
  const assets = [...index.text.matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((m) => m[1]);
  assert.ok(assets.some((a) => a.includes("app.js")) && assets.some((a) => a.includes("app.css")), assets.join(" "));
  assert.doesNotMatch(index.text, /<script>|<style|\sstyle=|\son[a-z]+=/i, "no inline script, style or handler");
  for (const response of [index, ...(await Promise.all(assets.map((a) => call("GET", a))))]) {
    assert.equal(response.status, 200);
    const csp = response.headers.get("content-security-policy") ?? "";
    assert.match(csp, /^default-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe/);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    assert.equal(response.headers.get("referrer-policy"), "no-referrer");
    assert.equal(response.headers.get("x-frame-options"), "DENY");
  }
});

test("a person sets a webhook up and watches it deliver", async (t) => {
  let secret;
  const eventId = `evt-browser-${suffix}`;

  await t.test("asks for a key, refuses a wrong one, keeps a good one in the tab only", async () => {
    await page.goto(`${API}/`);
    const keyInput = page.getByLabel("API key", { exact: true });
    await keyInput.waitFor();
    await shot("desktop-1-sign-in");
    await keyInput.fill(`whk_${"x".repeat(40)}`);
    await keyInput.press("Enter");
    await page.getByText("This key was not accepted").waitFor();
    // Keyboard only: the field, Enter.
    await keyInput.fill(key);
    await keyInput.press("Enter");
    await page.locator("#key-companies").getByText(acme).waitFor();
    await page.locator("#key-companies").getByText(globex).waitFor();
    const stored = await page.evaluate(() => ({ session: Object.values(sessionStorage), local: Object.values(localStorage) }));
    assert.deepEqual(stored.session, [key]);
    assert.deepEqual(stored.local, []);
    // A reload keeps the session.
    await page.reload();
    await page.locator("#key-companies").getByText(acme).waitFor();
  });

  await t.test("focus is visible when moving with Tab", async () => {
    await page.locator("body").click({ position: { x: 5, y: 300 } });
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    const outline = await page.evaluate(() => {
      const style = getComputedStyle(document.activeElement);
      return { tag: document.activeElement.tagName, style: style.outlineStyle, width: style.outlineWidth };
    });
    assert.notEqual(outline.tag, "BODY");
    assert.notEqual(outline.style, "none", JSON.stringify(outline));
  });

  await t.test("creates a webhook for one event in one project through the form", async () => {
    await page.getByRole("link", { name: "New webhook" }).click();
    const created = page.locator('input[type="checkbox"][value="TODO_CREATED"]');
    await created.waitFor();
    // Six groups, each with "all in this group".
    assert.equal(await page.locator("#event-groups fieldset.event-group").count(), 6);
    assert.equal(await page.getByLabel("All in this group").count(), 6);
    assert.equal(await page.locator('#event-groups input[name="events"]').count(), 37);

    await page.getByLabel("Address (URL) that receives the events").fill(receiver.url);
    await page.getByLabel(/^Name/).fill("Orders");
    await page.getByLabel(/^Description/).fill("New records of project p1");

    // Picking a type shows, under its group, the body a receiver gets for it (the API's example).
    const example = page.locator("#event-example");
    const tag = page.getByRole("checkbox", { name: /A tag was created\. TAG_CREATED/ });
    await tag.check();
    await example.getByRole("heading", { name: "Example: TAG_CREATED" }).waitFor();
    assert.equal(await page.locator('fieldset.event-group[data-group="tag"] #event-example').count(), 1);
    await tag.uncheck();
    await page.getByRole("checkbox", { name: /A record was created\. TODO_CREATED/ }).check();
    assert.equal(await created.isChecked(), true);
    await example.getByRole("heading", { name: "Example: TODO_CREATED" }).waitFor();
    assert.equal(await page.locator('fieldset.event-group[data-group="record"] #event-example').count(), 1);
    const body = example.locator("pre.example-body");
    await body.filter({ hasText: '"type": "TODO_CREATED"' }).waitFor();
    const described = await call("GET", "/v1/event-types/TODO_CREATED", key);
    assert.equal(described.status, 200, described.text);
    assert.deepEqual(JSON.parse(await body.textContent()), described.json.example);
    await example.locator("summary").click();
    assert.deepEqual(JSON.parse(await example.locator("pre.example-schema").textContent()), described.json.schema);
    await shot("desktop-2a-event-example");
    await page.getByLabel("Only the companies and projects I choose").check();
    const company = page.locator(`fieldset.company[data-company="${acme}"]`);
    await company.getByRole("checkbox", { name: `Company ${acme}` }).check();
    await company.getByLabel("Only some projects").check();
    await company.getByLabel("Project ids").fill("p1");
    // A header the service owns: the API refuses it, and says so next to that header.
    await page.getByRole("button", { name: "Add a header" }).click();
    await page.getByLabel("Header name").last().fill("Host");
    await page.getByLabel("Value").last().fill("example.com");
    await shot("desktop-2-new-webhook");
    await page.getByRole("button", { name: "Create webhook" }).click();
    const headerRow = page.locator(".header-row").last();
    await headerRow.locator(".field-error").getByText("sets this header itself").waitFor();
    assert.equal(await headerRow.getByLabel("Header name").getAttribute("aria-invalid"), "true");
    await page.getByRole("alert").getByText("The webhook was not saved").waitFor();

    await page.getByLabel("Header name").last().fill("X-Receiver-Token");
    await page.getByRole("button", { name: "Create webhook" }).click();

    // The secret, once, with a copy button and how to verify.
    const dialog = page.getByRole("dialog", { name: "Signing secret" });
    await dialog.waitFor();
    secret = await dialog.getByLabel("Secret").inputValue();
    assert.match(secret, /^whsec_[A-Za-z0-9+/=]+$/);
    await dialog.getByRole("button", { name: "Copy" }).click();
    await dialog.locator("#secret-copied").filter({ hasText: /Copied|Ctrl\+C/ }).waitFor();
    await dialog.getByText("How to verify a request").click();
    await shot("desktop-3-secret");
    await dialog.getByRole("button", { name: "I have saved it" }).click();
    await dialog.waitFor({ state: "hidden" });
    assert.equal(await page.locator("#secret-value").inputValue(), "", "the secret leaves the page");

    const orders = card("Orders");
    await orders.waitFor();
    await orders.locator(".badge").getByText("Active").waitFor();
    assert.equal(await orders.locator(".url").textContent(), receiver.url);
    await orders.getByText("TODO_CREATED").waitFor();
    await orders.getByText(`${acme}: project p1`).waitFor();
  });

  await t.test("a matching event is delivered, signed with the secret shown, and shows in the log", async () => {
    const event = (id, project) => ({
      specversion: "1.0", id, source: `app/companies/${acme}/projects/${project}`, type: "TODO_CREATED",
      companyid: acme, projectid: project, data: { currentValue: { id, title: "Ship it" } },
    });
    const other = await call("POST", "/v1/events", key, event(`${eventId}-other`, "p2"), "application/cloudevents+json");
    assert.equal(other.status, 202, other.text);
    const published = await call("POST", "/v1/events", key, event(eventId, "p1"), "application/cloudevents+json");
    assert.equal(published.status, 202, published.text);

    const request = await eventually("the delivery at the receiver", () => receiver.requests.find((r) => r.body.includes(eventId)));
    assert.ok(verifySignature(secret, request), "signed with the secret the dialog showed");
    assert.equal(request.headers["x-receiver-token"], "example.com");

    await card("Orders").getByRole("link", { name: "Deliveries" }).click();
    await page.getByRole("heading", { name: "Deliveries of “Orders”" }).waitFor();
    const row = page.locator("#deliveries-rows tr", { hasText: eventId });
    await eventually("the delivery in the log", async () => {
      if ((await row.count()) > 0) return true;
      await page.getByRole("button", { name: "Refresh" }).click();
      await page.waitForTimeout(300);
      return false;
    });
    await row.locator(".badge").getByText("Succeeded").waitFor();
    await row.getByText("HTTP 200").waitFor();
    assert.equal(await page.locator("#deliveries-rows tr", { hasText: `${eventId}-other` }).count(), 0, "p2 is not in the scope");
    await shot("desktop-4-deliveries");
    await row.getByRole("button", { name: `Send event ${eventId} again` }).click();
    await row.getByText("Queued").waitFor();
    await eventually("the redelivery", () => receiver.requests.filter((r) => r.body.includes(eventId)).length >= 2);
  });

  await t.test("disable, then enable with the health check's result", async () => {
    await page.getByRole("link", { name: "Back to webhooks" }).click();
    const orders = card("Orders");
    await orders.getByRole("button", { name: "Disable", exact: true }).click();
    await orders.locator(".badge").getByText("Disabled").waitFor();
    await orders.getByText("Switched off by hand").waitFor();

    // The receiver is down: the health check fails, the webhook stays as it was.
    receiver.status = 500;
    receiver.body = XSS_BODY;
    await orders.getByRole("button", { name: "Enable", exact: true }).click();
    await orders.locator(".result").getByText(/Health check failed: your system answered HTTP 500 in \d+ ms/).waitFor();
    await orders.locator(".badge").getByText("Disabled").waitFor();
    await shot("desktop-5-health-check-failed");

    receiver.status = 200;
    receiver.body = "ok";
    await orders.getByRole("button", { name: "Enable", exact: true }).click();
    await orders.locator(".result").getByText("Health check passed").waitFor();
    await orders.locator(".badge").getByText("Active").waitFor();
    const focused = await page.evaluate(() => document.activeElement?.textContent);
    assert.equal(focused, "Disable", "focus stays on the on/off button");

    await orders.getByRole("button", { name: "Send test", exact: true }).click();
    await orders.locator(".result").getByText(/Test delivered: your system answered HTTP 200/).waitFor();
  });

  await t.test("sends a test event of a chosen type, signed, with that type's example", async () => {
    const orders = card("Orders");
    const webhookId = (await orders.getAttribute("id")).replace(/^webhook-/, "");
    // Orders receives TODO_CREATED only: the health check, or that type.
    const choice = orders.getByLabel("Test event to send");
    assert.deepEqual(await choice.locator("option").evaluateAll((options) => options.map((o) => o.value)), ["", "TODO_CREATED"]);
    const before = receiver.requests.length;
    await choice.selectOption("TODO_CREATED");
    await orders.getByRole("button", { name: "Send test", exact: true }).click();
    await orders.locator(".result").getByText(/Test event TODO_CREATED delivered: your system answered HTTP 200/).waitFor();
    await shot("desktop-5a-typed-test");

    // The API answered once the receiver had answered: the request is there.
    const described = await call("GET", "/v1/event-types/TODO_CREATED", key);
    const sent = receiver.requests.slice(before).filter((r) => r.body.includes(described.json.example.event_id));
    assert.equal(sent.length, 1);
    assert.ok(verifySignature(secret, sent[0]), "signed with the webhook's secret");
    assert.match(sent[0].headers["webhook-id"], /^msg_[0-9a-z]{26}$/);
    assert.deepEqual(JSON.parse(sent[0].body), { ...described.json.example, webhook_id: webhookId });

    // In the log it is a test: not kept, so not offered for sending again.
    await orders.getByRole("link", { name: "Deliveries" }).click();
    const row = page.locator("#deliveries-rows tr", { hasText: described.json.example.event_id });
    await row.getByText("(test)").waitFor();
    assert.equal(await row.getByRole("button").count(), 0);
    await page.getByRole("link", { name: "Back to webhooks" }).click();
  });

  await t.test("a failed health check's response body shows as text in the log", async () => {
    await card("Orders").getByRole("link", { name: "Deliveries" }).click();
    const failed = page.locator("#deliveries-rows tr", { hasText: "HTTP 500" }).first();
    await failed.waitFor();
    await failed.getByText("Response from your system").click();
    assert.equal(await failed.locator("pre.response-body").textContent(), XSS_BODY);
    assert.equal(await page.locator("#deliveries-rows img").count(), 0);
    await page.getByRole("link", { name: "Back to webhooks" }).click();
  });

  await t.test("a new signing secret, or a clear message when the service cannot make one", async (st) => {
    const orders = card("Orders");
    await orders.getByRole("button", { name: "New secret", exact: true }).click();
    const confirm = page.getByRole("dialog", { name: "Create a new signing secret?" });
    await confirm.getByRole("button", { name: "Create new secret" }).click();
    const secretDialog = page.getByRole("dialog", { name: "Signing secret" });
    await Promise.race([secretDialog.waitFor(), orders.locator(".result").getByText("Could not create a new secret").waitFor()]);
    if (await secretDialog.isVisible()) {
      const rotated = await secretDialog.getByLabel("Secret").inputValue();
      assert.match(rotated, /^whsec_/);
      assert.notEqual(rotated, secret);
      await secretDialog.getByRole("button", { name: "I have saved it" }).click();
      st.diagnostic("rotated: the new secret was shown");
    } else {
      st.diagnostic(`not rotated: ${await orders.locator(".result").textContent()}`);
    }
  });

  await t.test("names, descriptions and URLs from customers are text, never markup", async () => {
    const created = await call("POST", "/v1/webhooks", key, {
      url: `${receiver.url}?a=<b>&c="d"`,
      name: XSS_NAME,
      description: "<script>alert(3)</script>",
      events: ["TAG_CREATED"],
    });
    assert.equal(created.status, 201, created.text);
    await page.getByRole("button", { name: "Refresh" }).click();
    const hostile = card(XSS_NAME);
    await hostile.waitFor();
    assert.equal(await hostile.getByRole("heading").textContent(), XSS_NAME);
    await hostile.getByText("<script>alert(3)</script>").waitFor();
    assert.equal(await page.locator("#webhooks img, #webhooks script").count(), 0);
    await shot("desktop-6-list");

    // Deleting asks first.
    await hostile.getByRole("button", { name: "Delete", exact: true }).click();
    const confirm = page.getByRole("dialog", { name: "Delete this webhook?" });
    await confirm.getByRole("button", { name: "Cancel" }).click();
    await hostile.waitFor();
    await hostile.getByRole("button", { name: "Delete", exact: true }).click();
    await confirm.getByRole("button", { name: "Delete webhook" }).click();
    await hostile.waitFor({ state: "detached" });
    assert.equal((await call("GET", `/v1/webhooks/${created.json.id}`, key)).status, 404);
  });

  await t.test("sets a pace in requests per second, refuses one out of range, and removes it", async () => {
    // The key's own publish limit is shown with its permissions.
    await page.locator("#key-permissions").getByText(/publish events \(up to \d+ per second, bursts of \d+\)/).waitFor();
    await card("Orders").getByText("No limit").waitFor();
    const ordersPath = `/v1/webhooks/${await webhookId("Orders")}`;
    await card("Orders").getByRole("link", { name: "Edit" }).click();
    await page.getByRole("heading", { name: "Edit webhook" }).waitFor();
    const pace = page.getByLabel(/^At most this many requests per second/);
    assert.equal(await pace.inputValue(), "");
    await pace.fill("1001");
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.locator("#wh-rate-limit-error").getByText("from 1 to 1000").waitFor();
    assert.equal(await pace.getAttribute("aria-invalid"), "true");
    assert.equal((await call("GET", ordersPath, key)).json.rate_limit, null, "nothing saved");
    await pace.fill("5");
    await page.getByRole("button", { name: "Save changes" }).click();
    await card("Orders").getByText("At most 5 requests per second; more wait their turn").waitFor();
    assert.equal((await call("GET", ordersPath, key)).json.rate_limit, 5);
    await card("Orders").getByRole("link", { name: "Edit" }).click();
    await page.getByRole("heading", { name: "Edit webhook" }).waitFor();
    assert.equal(await pace.inputValue(), "5");
    await pace.fill("");
    await page.getByRole("button", { name: "Save changes" }).click();
    await card("Orders").getByText("No limit").waitFor();
    assert.equal((await call("GET", ordersPath, key)).json.rate_limit, null);
  });

  await t.test("fits a phone's width", async () => {
    await page.setViewportSize(PHONE);
    const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
    await page.getByRole("button", { name: "Refresh" }).click();
    await card("Orders").waitFor();
    await page.waitForFunction(() => !document.querySelector("#refresh-list").disabled);
    assert.ok(await fits(), "the list has no sideways scrolling");
    await shot("phone-1-list");
    await card("Orders").getByRole("link", { name: "Edit" }).click();
    await page.getByRole("heading", { name: "Edit webhook" }).waitFor();
    assert.equal(await page.getByLabel(/^Name/).inputValue(), "Orders");
    assert.equal(await page.locator(`fieldset.company[data-company="${acme}"]`).getByLabel("Project ids").inputValue(), "p1");
    assert.ok(await fits(), "the form has no sideways scrolling");
    await shot("phone-2-edit");
    await page.getByRole("link", { name: "Cancel" }).click();
    await card("Orders").getByRole("link", { name: "Deliveries" }).click();
    await page.locator("#deliveries-rows tr").first().waitFor();
    assert.ok(await fits(), "the log has no sideways scrolling");
    await shot("phone-3-deliveries");
    await page.setViewportSize(DESKTOP);
  });

  await t.test("a double submit of the form creates one webhook, shown once", async () => {
    await page.getByRole("link", { name: "Back to webhooks" }).click();
    await page.getByRole("link", { name: "New webhook" }).click();
    await page.locator('input[type="checkbox"][value="TODO_CREATED"]').waitFor();
    await page.getByLabel("Address (URL) that receives the events").fill(receiver.url);
    await page.getByLabel(/^Name/).fill("Double click");
    await page.getByRole("checkbox", { name: /A tag was created\. TAG_CREATED/ }).check();
    const keys = [];
    let sent;
    const onRequest = (request) => {
      if (request.method() === "POST" && new URL(request.url()).pathname === "/v1/webhooks") {
        keys.push(request.headers()["idempotency-key"]);
        sent = request.postData();
      }
    };
    page.on("request", onRequest);
    // Two submits before any answer (the button is busy after the first: submit the form itself).
    await page.evaluate(() => {
      const form = document.getElementById("editor-form");
      form.requestSubmit();
      form.requestSubmit();
    });
    const dialog = page.getByRole("dialog", { name: "Signing secret" });
    await dialog.waitFor();
    const secret = await dialog.getByLabel("Secret").inputValue();
    await dialog.getByRole("button", { name: "I have saved it" }).click();
    await dialog.waitFor({ state: "hidden" });
    await card("Double click").waitFor();
    page.off("request", onRequest);

    assert.equal(keys.length, 2, "both submits reached the API");
    assert.match(keys[0] ?? "", /^[0-9a-f]{32}$/);
    assert.equal(keys[1], keys[0], "with one Idempotency-Key");
    const listed = await call("GET", "/v1/webhooks?limit=100", key);
    const doubles = listed.json.data.filter((w) => w.name === "Double click");
    assert.equal(doubles.length, 1, "one webhook was created");
    assert.equal(await card("Double click").count(), 1);
    assert.equal(await dialog.isVisible(), false, "the secret was shown once");
    // A repeat of that request gets the same webhook and secret back, marked as a replay.
    const replay = await fetch(`${API}/v1/webhooks`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", "idempotency-key": keys[0] },
      body: sent,
    });
    assert.equal(replay.status, 201);
    assert.equal(replay.headers.get("idempotent-replayed"), "true");
    const replayed = await replay.json();
    assert.equal(replayed.id, doubles[0].id);
    assert.equal(replayed.secret, secret);
  });

  await t.test("chooses public-key signatures, copies the public key, and switches back to a secret", async () => {
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(API).origin });
    await page.getByRole("link", { name: "New webhook" }).click();
    await page.locator('input[type="checkbox"][value="TODO_CREATED"]').waitFor();
    await page.getByLabel("Address (URL) that receives the events").fill(receiver.url);
    await page.getByLabel(/^Name/).fill("Key pair");
    await page.getByRole("checkbox", { name: /A tag was created\. TAG_CREATED/ }).check();
    // The scheme selector: a shared secret unless chosen otherwise.
    assert.equal(await page.getByRole("radio", { name: /^Shared secret/ }).isChecked(), true);
    await page.getByRole("radio", { name: /^Public key/ }).check();
    await page.getByRole("button", { name: "Create webhook" }).click();
    // No secret to show: the card carries the public key, with a copy button.
    const item = card("Key pair");
    await item.waitFor();
    assert.equal(await page.getByRole("dialog", { name: "Signing secret" }).isVisible(), false);
    const listed = await call("GET", "/v1/webhooks?limit=100", key);
    const webhook = listed.json.data.find((w) => w.name === "Key pair");
    assert.equal(webhook.signature_scheme, "v1a");
    assert.match(webhook.public_key, /^whpk_[A-Za-z0-9+/]{43}=$/);
    assert.equal(await item.locator("code.public-key").textContent(), webhook.public_key);
    await shot("desktop-5-public-key");
    await item.getByRole("button", { name: "Copy public key" }).click();
    await item.getByText("Public key copied.").waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), webhook.public_key);
    // The copied key verifies what the webhook receives (a test send), with another Ed25519.
    const before = receiver.requests.length;
    const tested = await call("POST", `/v1/webhooks/${webhook.id}/test`, key);
    assert.equal(tested.status, 200, tested.text);
    const request = await eventually("the test request", () => receiver.requests.slice(before).find((r) => r.body.includes(webhook.id)));
    assert.match(request.headers["webhook-signature"], /^v1a,[A-Za-z0-9+/]{86}==$/);
    assert.ok(verifyPublicKeySignature(webhook.public_key, request), request.headers["webhook-signature"]);

    // Switching to a shared secret through the form shows the new secret once.
    await item.getByRole("link", { name: "Edit" }).click();
    const v1a = page.getByRole("radio", { name: /^Public key/ });
    await v1a.waitFor();
    assert.equal(await v1a.isChecked(), true);
    await page.getByRole("radio", { name: /^Shared secret/ }).check();
    await page.getByRole("button", { name: "Save changes" }).click();
    const dialog = page.getByRole("dialog", { name: "Signing secret" });
    await dialog.waitFor();
    const secret = await dialog.getByLabel("Secret").inputValue();
    assert.match(secret, /^whsec_/);
    await dialog.getByRole("button", { name: "I have saved it" }).click();
    await card("Key pair").getByText("Shared secret (v1, HMAC-SHA256)").waitFor();
    const switched = await call("GET", `/v1/webhooks/${webhook.id}`, key);
    assert.equal(switched.json.signature_scheme, "v1");
    assert.equal(switched.json.public_key, null);
  });

  await t.test("signing out forgets the key", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API key", { exact: true }).waitFor();
    assert.deepEqual(await page.evaluate(() => Object.keys(sessionStorage)), []);
  });
});

test("a person sends a webhook only the events that meet conditions on the body", async (t) => {
  const narrow = await startReceiver();
  const todo = (id, status) => ({
    specversion: "1.0", id, source: `app/companies/${acme}/projects/p1`, type: "TODO_CREATED",
    companyid: acme, projectid: "p1", data: { currentValue: { id, status } },
  });
  const publish = async (...events) => {
    const r = await call("POST", "/v1/events", key, events, "application/cloudevents-batch+json");
    assert.equal(r.status, 202, r.text);
  };
  const card = page.locator("li.webhook", { has: page.getByRole("heading", { name: "Open records", exact: true }) });
  t.after(() => narrow.close());

  await t.test("adds conditions in the form; a wrong field is marked where it was typed", async () => {
    await page.goto(`${API}/`);
    const keyInput = page.getByLabel("API key", { exact: true });
    if (await keyInput.isVisible()) {
      await keyInput.fill(key);
      await keyInput.press("Enter");
    }
    await page.getByRole("link", { name: "New webhook" }).click();
    await page.getByRole("checkbox", { name: /A record was created\. TODO_CREATED/ }).check();
    await page.getByLabel("Address (URL) that receives the events").fill(narrow.url);
    await page.getByLabel(/^Name/).fill("Open records");

    // "status is one of open, in_progress", and a field no body has a path like.
    await page.getByRole("button", { name: "Add a condition" }).click();
    const rows = page.locator(".filter-row");
    await rows.nth(0).getByLabel("Field", { exact: true }).fill("data.currentValue.status");
    await rows.nth(0).getByLabel("Condition", { exact: true }).selectOption({ label: "is one of" });
    await rows.nth(0).getByText("Separate several with commas.").waitFor();
    await rows.nth(0).getByLabel("Compared with", { exact: true }).fill("open, in_progress");
    await page.getByRole("button", { name: "Add a condition" }).click();
    await rows.nth(1).getByLabel("Field", { exact: true }).fill("data..status");
    await rows.nth(1).getByLabel("Condition", { exact: true }).selectOption({ label: "is present" });
    assert.equal(await rows.nth(1).getByLabel("Compared with", { exact: true }).isVisible(), false, "“is present” takes no value");
    await shot("desktop-7-conditions");
    await page.getByRole("button", { name: "Create webhook" }).click();
    await rows.nth(1).locator(".field-error").getByText("path").waitFor();
    assert.equal(await rows.nth(1).getByLabel("Field", { exact: true }).getAttribute("aria-invalid"), "true");
    assert.equal(await rows.nth(0).getByLabel("Field", { exact: true }).getAttribute("aria-invalid"), null);

    await rows.nth(1).getByRole("button", { name: "Remove this condition" }).click();
    await page.getByRole("button", { name: "Create webhook" }).click();
    const dialog = page.getByRole("dialog", { name: "Signing secret" });
    await dialog.getByRole("button", { name: "I have saved it" }).click();
    await card.waitFor();
    // Shown in plain words.
    await card.getByText("Only when").waitFor();
    assert.equal(
      await card.locator("dd", { hasText: "is one of" }).textContent(),
      "data.currentValue.status is one of “open”, “in_progress”",
    );
  });

  await t.test("only the events that meet them are sent", async () => {
    const [done, open] = [`evt-done-${suffix}`, `evt-open-${suffix}`];
    await publish(todo(done, "done"), todo(open, "open"));
    await eventually("the open record at the receiver", () => narrow.requests.some((r) => r.body.includes(open)));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(narrow.requests.filter((r) => r.body.includes(done)).length, 0, "the done record is not sent");
  });

  await t.test("edits a condition: the form shows it as saved, the card and the next events follow", async () => {
    await card.getByRole("link", { name: "Edit" }).click();
    await page.getByRole("heading", { name: "Edit webhook" }).waitFor();
    const row = page.locator(".filter-row");
    assert.equal(await row.count(), 1);
    assert.equal(await row.getByLabel("Field", { exact: true }).inputValue(), "data.currentValue.status");
    assert.equal(await row.getByLabel("Condition", { exact: true }).inputValue(), "in");
    assert.equal(await row.getByLabel("Compared with", { exact: true }).inputValue(), "open, in_progress");
    await row.getByLabel("Condition", { exact: true }).selectOption({ label: "is" });
    await row.getByLabel("Compared with", { exact: true }).fill("done");
    await page.getByRole("button", { name: "Save changes" }).click();
    await card.locator("dd", { hasText: "data.currentValue.status is “done”" }).waitFor();
    const listed = await call("GET", "/v1/webhooks?limit=100", key);
    const saved = listed.json.data.find((w) => w.name === "Open records");
    assert.deepEqual(saved.filters, [{ path: "data.currentValue.status", op: "eq", value: "done" }]);

    const [done, open] = [`evt-done2-${suffix}`, `evt-open2-${suffix}`];
    await publish(todo(open, "open"), todo(done, "done"));
    await eventually("the done record at the receiver", () => narrow.requests.some((r) => r.body.includes(done)));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(narrow.requests.filter((r) => r.body.includes(open)).length, 0, "the open record is not sent any more");
  });
});

test("the delivery log filters by type and time, and sends events again since a time", async () => {
  // GIVEN a webhook for two types whose receiver got one event of each
  const second = await startReceiver();
  try {
    const created = await call("POST", "/v1/webhooks", key, {
      url: second.url, name: "Replays", events: ["TODO_CREATED", "TAG_CREATED"],
    });
    assert.equal(created.status, 201, created.text);
    const id = created.json.id;
    const ids = { TODO_CREATED: `evt-todo-${suffix}`, TAG_CREATED: `evt-tag-${suffix}` };
    for (const [type, eventId] of Object.entries(ids)) {
      const event = { specversion: "1.0", id: eventId, source: `app/companies/${acme}/projects/p9`, type, companyid: acme, projectid: "p9", data: {} };
      const published = await call("POST", "/v1/events", key, event, "application/cloudevents+json");
      assert.equal(published.status, 202, published.text);
    }
    await eventually("both deliveries", () => Object.values(ids).every((e) => second.requests.some((r) => r.body.includes(e))));

    await page.goto(`${API}/#/webhooks/${encodeURIComponent(id)}/deliveries`);
    const keyInput = page.getByLabel("API key", { exact: true });
    if (await keyInput.isVisible()) {
      await keyInput.fill(key);
      await keyInput.press("Enter");
    }
    await page.getByRole("heading", { name: "Deliveries of “Replays”" }).waitFor();
    const rows = page.locator("#deliveries-rows tr");
    await eventually("both in the log", async () => {
      if ((await rows.count()) >= 2) return true;
      await page.getByRole("button", { name: "Refresh" }).click();
      await page.waitForTimeout(300);
      return false;
    });

    // WHEN a type is chosen THEN only its entries show
    await page.getByLabel("Event type", { exact: true }).selectOption("TAG_CREATED");
    await page.locator("#deliveries-rows tr", { hasText: ids.TODO_CREATED }).waitFor({ state: "detached" });
    await page.locator("#deliveries-rows tr", { hasText: ids.TAG_CREATED }).waitFor();
    assert.equal(await rows.count(), 1);
    await shot("desktop-7-log-by-type");
    // AND a time range after them shows none, with a message that says why
    await page.getByLabel("From", { exact: true }).fill(localInput(new Date(Date.now() + 3_600_000)));
    await page.getByLabel("From", { exact: true }).dispatchEvent("change");
    await page.getByText("No deliveries match these filters.").waitFor();
    await page.getByLabel("From", { exact: true }).fill("");
    await page.getByLabel("From", { exact: true }).dispatchEvent("change");
    await page.getByLabel("Event type", { exact: true }).selectOption("");
    await eventually("both again", async () => (await rows.count()) >= 2);

    // WHEN "what failed" is sent again THEN nothing is, since both were delivered
    await page.getByLabel("Since", { exact: true }).fill(localInput(new Date(Date.now() - 600_000)));
    const result = page.locator("#replay-result");
    await page.getByRole("button", { name: "Send again everything that failed since then", exact: true }).click();
    await result.getByText("Nothing failed since then.").waitFor();
    // AND "everything" sends each event once more, with its webhook-id
    const before = second.requests.length;
    const first = Object.fromEntries(Object.values(ids).map((e) => [e, second.requests.find((r) => r.body.includes(e)).headers["webhook-id"]]));
    await page.getByRole("button", { name: "Send again everything since then", exact: true }).click();
    await result.getByText("2 events are being sent again").waitFor();
    await shot("desktop-8-replayed");
    await eventually("the events again", () => second.requests.length >= before + 2);
    for (const [eventId, webhookId] of Object.entries(first)) {
      const again = second.requests.slice(before).filter((r) => r.body.includes(eventId));
      assert.equal(again.length, 1, eventId);
      assert.equal(again[0].headers["webhook-id"], webhookId);
    }

    // AND a disabled webhook is not sent anything, and the page says why
    assert.equal((await call("POST", `/v1/webhooks/${id}/disable`, key)).status, 200);
    await page.getByRole("button", { name: "Send again everything since then", exact: true }).click();
    await result.getByText("This webhook is disabled: enable it first.").waitFor();
    await call("DELETE", `/v1/webhooks/${id}`, key);
  } finally {
    await second.close();
  }
});

/** A `datetime-local` value in the browser's time zone (the page's and this process's agree). */
function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

test("no script ran from data and nothing broke the policy", () => {
  assert.deepEqual(dialogs, [], "no alert, confirm or prompt fired");
  assert.deepEqual(problems, []);
});
