// The Alerts page (SPEC §12) in a real browser: an admin saves an alert URL (after fixing a
// bad one), a webhook whose receiver refuses connections fails, and the alert shows in the
// page's log as delivered, signed, to the alert receiver. The secret is revealed on request
// only; a form without the CSRF token is refused. Screenshots land in tests/browser/screenshots/.

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { api, launchBrowser, screenshots, startCallhook, startReceiver } from "./harness.mjs";

let app, alerts, browser, page;

const label = (name) => page.getByLabel(name, { exact: true });
async function shot(name) {
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  await page.screenshot({ path: join(screenshots, name), fullPage: true });
}

/** A loopback port nothing listens on: connections to it are refused. */
async function closedPort() {
  const server = createServer();
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

describe("the Alerts page", () => {
  before(async () => {
    app = await startCallhook();
    alerts = await startReceiver();
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    page.on("dialog", (d) => d.accept());
    await page.goto(app.base + "/signin");
    await label("Email").fill(app.email);
    await label("Password").fill(app.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Webhook", exact: true }).waitFor();
  });

  after(async () => {
    await browser?.close();
    await alerts?.stop();
    await app?.stop();
  });

  it("saves an alert URL, naming a bad one", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Alerts", exact: true }).click();
    await page.getByRole("heading", { name: /Alerts/ }).first().waitFor();
    await page.getByText("No alerts yet.").waitFor();
    await label("Alert URL").fill("ftp://ops.example.com/");
    await label("Alert after").fill("ten minutes");
    await page.getByRole("button", { name: "Save" }).click();
    await page.locator("#alert_url-error").waitFor();
    await page.locator("#alert_after-error").waitFor();
    await label("Alert URL").fill(alerts.url);
    await label("Alert after").fill("0s");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("Alert settings saved.").waitFor();
    assert.equal(await label("Alert URL").inputValue(), alerts.url);
    assert.equal(await label("Alert after").inputValue(), "0s");
  });

  it("reveals the secret only when asked", async () => {
    const box = page.locator("#secret-value");
    assert.ok(!(await page.content()).match(/whsec_[A-Za-z0-9+/=]{20,}/), "the secret is not in the page");
    await page.getByRole("button", { name: "Reveal" }).click();
    await page.waitForFunction(() => /^whsec_[A-Za-z0-9+/=]{20,}$/.test(document.querySelector("#secret-value").textContent.trim()));
    const secret = (await box.textContent()).trim();
    const { json } = await api(app.base, app.apiKey, "GET", "/v1/account");
    assert.equal(secret, json.alert_secret);
  });

  it("shows an alert in its log once a webhook fails", async () => {
    const port = await closedPort();
    const made = await api(app.base, app.apiKey, "POST", "/v1/webhooks",
      { name: "CRM (down)", trigger: "call_received", url: `http://127.0.0.1:${port}/hook` });
    assert.equal(made.status, 201, made.text);
    const posted = await api(app.base, app.apiKey, "POST", "/v1/events", {
      type: "call.received", occurred_at: "2026-11-27T04:00:00Z",
      call: { call_id: "1732680000.3001", call_type: "inbound", did_number: "+918065251305" },
    });
    assert.equal(posted.status, 202, posted.text);
    const row = page.locator("#log tbody tr", { hasText: "webhook.failing" });
    const until = Date.now() + 20_000;
    while (!(await row.count()) || !(await row.getByText("Succeeded").count())) {
      assert.ok(Date.now() < until, "no delivered alert in the log");
      await new Promise((ok) => setTimeout(ok, 300));
      await page.reload();
    }
    await row.getByRole("link", { name: "CRM (down)" }).waitFor();
    const box = await page.locator("#log table").boundingBox();
    assert.ok(box.x + box.width <= 1280, `the log fits at 1280 px: ${JSON.stringify(box)}`);
    const got = alerts.requests.map((r) => JSON.parse(r.body));
    const failing = got.find((b) => b.type === "webhook.failing");
    assert.ok(failing, JSON.stringify(got));
    assert.equal(failing.webhook.id, made.json.id);
    assert.ok(alerts.requests[0].headers["webhook-signature"].startsWith("v1,"));
    await shot("50-alerts.png");
  });

  it("refuses a form without the CSRF token", async () => {
    const r = await page.request.post(app.base + "/alerts", { form: { alert_url: "", alert_after: "0s" } });
    assert.equal(r.status(), 403);
    const { json } = await api(app.base, app.apiKey, "GET", "/v1/account");
    assert.equal(json.alert_url, alerts.url, "unchanged");
  });
});
