// The content security policy holds on every page: a signed-in admin opens each page of the
// web page (and works the webhook form, whose preview is scripted), and the browser reports
// no CSP violation, neither as a `securitypolicyviolation` event nor on the console. A
// control first shows that a violation would be seen.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { api, launchBrowser, startCallhook, startReceiver } from "./harness.mjs";

const NUMBER = "+918065251305";
let app, receiver, browser, context, page;
const violations = [];

describe("the content security policy", () => {
  before(async () => {
    app = await startCallhook();
    receiver = await startReceiver();
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(15_000);
    await context.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) => {
        console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    page = await context.newPage();
    page.on("dialog", (d) => d.accept());
    page.on("console", (m) => {
      if (/content security policy|csp violation/i.test(m.text())) violations.push(`${page.url()}: ${m.text()}`);
    });
  });

  after(async () => {
    await browser?.close();
    await receiver?.stop();
    await app?.stop();
  });

  it("would see a violation", async () => {
    await page.goto(app.base + "/signin");
    await page.evaluate(() => {
      const s = document.createElement("script");
      s.textContent = "window.__inline = 1";
      document.body.append(s);
    });
    await page.waitForTimeout(200);
    assert.equal(await page.evaluate(() => window.__inline), undefined, "the inline script was blocked");
    assert.ok(violations.length > 0, "the blocked inline script was reported");
    violations.length = 0;
  });

  it("is never violated on any page", async () => {
    await page.goto(app.base + "/signin");
    await page.getByLabel("Email", { exact: true }).fill(app.email);
    await page.getByLabel("Password", { exact: true }).fill(app.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Webhook", exact: true }).waitFor();

    assert.equal((await api(app.base, app.apiKey, "POST", "/v1/numbers", { number: NUMBER })).status, 201);
    const hook = await api(app.base, app.apiKey, "POST", "/v1/webhooks", {
      name: "CRM", trigger: "call_received", url: receiver.url,
      headers: [{ key: "X-Api-Key", value: "s3cr3t" }],
    });
    assert.equal(hook.status, 201, hook.text);
    const id = hook.json.id;
    const now = new Date().toISOString();
    const ev = await api(app.base, app.apiKey, "POST", "/v1/events", {
      type: "call.received", occurred_at: now,
      call: { call_id: "csp-call-1", call_type: "inbound", did_number: NUMBER, started_at: now },
    });
    assert.equal(ev.status, 202, ev.text);
    let deliveries;
    for (let i = 0; i < 50; i++) {
      deliveries = await api(app.base, app.apiKey, "GET", `/v1/webhooks/${id}/deliveries`);
      if (deliveries.json.data.length > 0) break;
      await new Promise((ok) => setTimeout(ok, 200));
    }
    const delivery = deliveries.json.data[0].id;

    const pages = [
      "/webhooks", "/webhooks/new", `/webhooks/${id}`, `/webhooks/${id}/edit`, `/webhooks/${id}/secret`,
      "/numbers", "/api-keys", "/calls", "/calls/csp-call-1", `/deliveries/${delivery}`, "/no-such-page",
    ];
    for (const path of pages) {
      await page.goto(app.base + path);
      await page.waitForLoadState("networkidle");
    }
    // The form's scripted parts: a header row, the live preview.
    await page.goto(app.base + "/webhooks/new");
    await page.getByRole("button", { name: "Add header" }).click();
    await page.getByLabel("URL", { exact: true }).fill("https://crm.example.com/hook");
    await page.waitForLoadState("networkidle");
    await page.goto(app.base + "/signin");
    assert.deepEqual(violations, []);
  });
});
