// The story of issue 5 in a real browser: a new admin signs in, adds a number, creates a
// webhook with two headers through the form (after fixing a bad URL), sends a test, sees a
// call event's delivery and its attempt, resends it, rotates the secret, disables and
// deletes the webhook. Also: a form without a valid CSRF token is refused, another
// account's webhook is 404, and the pages read at phone width. Screenshots land in
// tests/browser/screenshots/.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { api, launchBrowser, screenshots, startCallhook, startReceiver } from "./harness.mjs";

const NUMBER = "+918065251305";
let app, receiver, browser, page;

async function shot(name) {
  // From the top, with nothing focused, as a person first sees the page.
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  await page.screenshot({ path: join(screenshots, name), fullPage: true });
}
const label = (name) => page.getByLabel(name, { exact: true });
const navLink = (name) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });

/** Reloads until `locator` shows, for what the dispatcher does in the background. */
async function reloadUntil(locator, seconds = 15) {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    if (await locator.count() > 0 && await locator.first().isVisible()) return;
    if (Date.now() > until) assert.fail(`gave up waiting for ${locator}`);
    await new Promise((ok) => setTimeout(ok, 300));
    await page.reload();
  }
}

describe("the web page", () => {
  before(async () => {
    app = await startCallhook();
    receiver = await startReceiver();
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, timezoneId: "Asia/Kolkata" });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    page.on("dialog", (d) => d.accept());
  });

  after(async () => {
    await browser?.close();
    await receiver?.stop();
    await app?.stop();
  });

  let webhookUrl;

  it("sends a visitor to sign in, and signs the admin in", async () => {
    await page.goto(app.base + "/");
    assert.match(page.url(), /\/signin$/);
    await shot("00-signin.png");
    await label("Email").fill(app.email);
    await label("Password").fill("not the password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("That email and password do not match").waitFor();
    await label("Password").fill(app.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Webhook", exact: true }).waitFor();
    assert.match(page.url(), /\/webhooks$/);
    await page.getByRole("heading", { name: "No webhooks yet" }).waitFor();
    await shot("01-list-empty.png");
  });

  it("has the side navigation of the spec", async () => {
    const nav = page.getByRole("navigation", { name: "Main" });
    for (const name of ["Webhook", "Numbers", "API keys", "Calls"]) {
      await nav.getByRole("link", { name, exact: true }).waitFor();
    }
    await nav.getByText("Services").waitFor();
  });

  it("adds a number under Numbers", async () => {
    await navLink("Numbers").click();
    await label("Number").fill("12345");
    await page.getByRole("button", { name: "Add number" }).click();
    await page.locator("#number-error").waitFor();
    await label("Number").fill(NUMBER);
    await label("Label").fill("Sales line");
    await page.getByRole("button", { name: "Add number" }).click();
    await page.getByText("Number added.").waitFor();
    await page.getByRole("cell", { name: NUMBER, exact: true }).waitFor();
  });

  it("names every field of the form as the product does", async () => {
    await navLink("Webhook").click();
    await page.getByRole("link", { name: "Add Webhook" }).first().click();
    for (const name of ["Name", "Trigger", "URL", "Request", "Content-Type", "Time Zone"]) {
      assert.equal(await label(name).count(), 1, `one field labelled ${name}`);
    }
    assert.equal(await page.getByLabel("Description").count(), 1);
    await page.getByRole("group", { name: "Call Type" }).waitFor();
    await page.getByRole("group", { name: "My Numbers" }).waitFor();
    const triggers = await label("Trigger").locator("option").allTextContents();
    assert.equal(triggers.length, 11);
    assert.ok(triggers.includes("Call answered by customer (Click to Call)"));
  });

  it("shows a bad URL next to its field, keeps what was typed, and saves once fixed", async () => {
    await label("Name").fill("CRM: new calls");
    await page.getByLabel("Description").fill("Opens a ticket for every call");
    await label("Trigger").selectOption({ label: "Call received on server" });
    await label("URL").fill("crm.example.com/hooks");
    await label("Request").selectOption("POST");
    await label("Content-Type").selectOption("application/json");
    await page.getByRole("group", { name: "My Numbers" }).getByLabel(NUMBER).check();
    await label("Time Zone").fill("Asia/Kolkata");
    await page.getByRole("button", { name: "Add header" }).click();
    await label("Key").nth(0).fill("X-Api-Key");
    await label("Value").nth(0).fill("s3cr3t");
    await page.getByRole("button", { name: "Add header" }).click();
    await label("Key").nth(1).fill("X-Tenant");
    await label("Value").nth(1).fill("acme");
    // The live preview follows the form: the zone's offset and the custom headers show.
    const preview = page.locator("#preview");
    await preview.getByText("+05:30").first().waitFor();
    await preview.getByText("X-Tenant:").waitFor();
    await label("Request").selectOption("GET");
    await preview.getByText(/^GET /).waitFor();
    await label("Request").selectOption("POST");
    await preview.getByText(/^POST /).waitFor();

    await page.getByRole("button", { name: "Save" }).click();
    const error = page.locator("#url-error");
    await error.waitFor();
    assert.match(await error.textContent(), /not an absolute URL/);
    assert.equal(await label("URL").getAttribute("aria-invalid"), "true");
    assert.equal(await label("Name").inputValue(), "CRM: new calls");
    assert.equal(await label("Key").count(), 2);
    assert.equal(await label("Value").nth(1).inputValue(), "acme");
    await shot("03-form-error.png");

    await label("URL").fill(receiver.url);
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("Webhook created.").waitFor();
    webhookUrl = page.url().replace(/\?.*$/, "");
    assert.match(webhookUrl, /\/webhooks\/wh_/);
  });

  it("sends a test to the receiver and shows that it succeeded", async () => {
    await page.getByRole("button", { name: "Send test" }).click();
    await page.getByText(/Test delivered: 200 OK/).waitFor();
    const got = receiver.requests.at(-1);
    assert.equal(got.headers["x-api-key"], "s3cr3t");
    assert.equal(got.headers["x-tenant"], "acme");
    assert.match(got.headers["webhook-signature"], /^v1,/);
    assert.equal(JSON.parse(got.body).time_zone, "Asia/Kolkata");
    await shot("04-webhook-test.png");
  });

  it("shows a call event's delivery and its attempt in the log", async () => {
    const posted = await api(app.base, app.apiKey, "POST", "/v1/events", {
      id: "evt-browser-1",
      type: "call.received",
      occurred_at: new Date().toISOString(),
      call: { call_id: "1732680000.1042", call_type: "inbound", did_number: NUMBER, customer_number: "+919812345678" },
    });
    assert.equal(posted.status, 202, posted.text);
    const row = page.locator("#log tbody tr", { hasText: "1732680000.1042" });
    await reloadUntil(row.filter({ hasText: "Succeeded" }));
    await shot("05-webhook-log.png");
    await row.getByRole("link", { name: /View delivery/ }).click();
    await page.getByRole("heading", { name: "Attempt 1" }).waitFor();
    await page.getByText("200 OK").first().waitFor();
    await page.getByText("X-Api-Key:").first().waitFor();
    await shot("06-delivery-attempts.png");
  });

  it("resends the delivery", async () => {
    const before = receiver.requests.length;
    await page.getByRole("button", { name: "Resend" }).click();
    await page.getByText("Delivery queued to be sent again now.").waitFor();
    await reloadUntil(page.getByRole("heading", { name: "Attempt 2" }));
    assert.ok(receiver.requests.length > before);
  });

  it("reveals and rotates the signing secret", async () => {
    await page.goto(webhookUrl);
    await page.getByRole("button", { name: "Reveal" }).click();
    const secret = page.locator("#secret-value");
    await page.getByText(/^whsec_[A-Za-z0-9+/=]{20,}$/).waitFor();
    const old = await secret.textContent();
    await page.getByRole("button", { name: "Rotate secret" }).click();
    await page.getByText("Secret rotated.").waitFor();
    await page.getByText("The previous secret also signs until").waitFor();
    await page.getByRole("button", { name: "Reveal" }).click();
    await page.getByText(/^whsec_[A-Za-z0-9+/=]{20,}$/).waitFor();
    assert.notEqual(await secret.textContent(), old);
  });

  it("lists the webhook with its status and success rate", async () => {
    await navLink("Webhook").click();
    const row = page.locator("tbody tr", { hasText: "CRM: new calls" });
    await row.getByText("Call received on server").waitFor();
    await row.getByText("Healthy").waitFor(); // the list shows health (SPEC §12), which names a disabled webhook too
    await row.getByText("100%").waitFor();
    await shot("02-list.png");
  });

  it("refuses a form without this session's CSRF token", async () => {
    const form = { name: "sneaky", trigger: "call_received", url: "https://crm.example.com/x", call_types: "inbound" };
    const none = await page.request.post(app.base + "/webhooks", { form, maxRedirects: 0 });
    assert.equal(none.status(), 403);
    const wrong = await page.request.post(app.base + "/webhooks", { form: { ...form, csrf: "forged" }, maxRedirects: 0 });
    assert.equal(wrong.status(), 403);
    const webhooks = await api(app.base, app.apiKey, "GET", "/v1/webhooks");
    assert.ok(!webhooks.json.data.some((w) => w.name === "sneaky"));
  });

  it("answers 404 for another account's webhook", async () => {
    const other = await api(app.base, app.operatorToken, "POST", "/v1/accounts", { name: "Other Co" });
    assert.equal(other.status, 201, other.text);
    const theirs = await api(app.base, other.json.api_key.key, "POST", "/v1/webhooks", {
      name: "Theirs", trigger: "call_missed", url: "https://other.example.com/hook",
    });
    assert.equal(theirs.status, 201, theirs.text);
    const resp = await page.goto(`${app.base}/webhooks/${theirs.json.id}`);
    assert.equal(resp.status(), 404);
    await page.getByRole("heading", { name: "Page not found" }).waitFor();
    const edit = await page.goto(`${app.base}/webhooks/${theirs.json.id}/edit`);
    assert.equal(edit.status(), 404);
  });

  it("reads at phone width", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(app.base + "/webhooks");
    await shot("07-phone-list.png");
    await page.goto(webhookUrl + "/edit");
    await shot("08-phone-form.png");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the form is ${overflow}px wider than the phone`);
    await page.setViewportSize({ width: 1360, height: 900 });
  });

  it("can be used from the keyboard", async () => {
    await page.goto(app.base + "/webhooks");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent.trim()), "Skip to content");
    await page.goto(webhookUrl);
    await page.getByRole("button", { name: "Send test" }).focus();
    await page.keyboard.press("Enter");
    await page.getByText(/Test delivered: 200 OK/).waitFor();
  });

  it("disables and deletes the webhook", async () => {
    await page.goto(webhookUrl);
    await page.getByRole("button", { name: "Disable" }).click();
    await page.getByText("Webhook disabled.").waitFor();
    await page.getByText("This webhook is disabled.").waitFor();
    await navLink("Webhook").click();
    await page.locator("tbody tr", { hasText: "CRM: new calls" }).getByText("Disabled", { exact: true }).waitFor();
    await page.getByRole("link", { name: "CRM: new calls" }).click();
    await page.getByRole("link", { name: "Delete" }).click();
    await page.getByRole("button", { name: "Delete webhook" }).click();
    await page.getByText("Webhook deleted.").waitFor();
    await page.getByRole("heading", { name: "No webhooks yet" }).waitFor();
  });

  it("signs out", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await page.goto(app.base + "/webhooks");
    assert.match(page.url(), /\/signin/);
  });
});
