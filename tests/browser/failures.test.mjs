// Seeing and fixing failures (SPEC §12) in a real browser: a webhook whose receiver answers
// 500 stands out in the list; its page opens with a banner saying since when and what went
// wrong; the log filters by error kind and finds a call by the customer's number; once the
// receiver is fixed, "Retry all matching" sends the failed deliveries again and they succeed.
// Screenshots land in tests/browser/screenshots/.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { api, launchBrowser, screenshots, startCallhook } from "./harness.mjs";

let app, rx, browser, page, webhookId;

const label = (name) => page.getByLabel(name, { exact: true });
async function shot(name) {
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  await page.screenshot({ path: join(screenshots, name), fullPage: true });
}

/** A receiver on loopback that answers `rx.status` and keeps what it got. */
async function startFlakyReceiver() {
  const state = { status: 500, requests: [] };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      state.requests.push({ body, status: state.status });
      res.writeHead(state.status, { "content-type": "text/plain" });
      res.end(state.status === 200 ? "ok" : "CRM is down");
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  state.url = `http://127.0.0.1:${server.address().port}/hooks/calls`;
  state.stop = () => new Promise((ok) => server.close(ok));
  return state;
}

const DID = "+918065251305";
const customers = ["+919800000001", "+919800000002", "+919800000003"];

describe("failing webhooks", () => {
  before(async () => {
    // The next attempt an hour away: with the default schedule's 5 s (±20 %) it could land
    // after the receiver is fixed and before "Retry all matching", which then finds fewer than
    // three failed deliveries to send.
    app = await startCallhook({ env: { CALLHOOK_RETRY_SCHEDULE: "1h,1h" } });
    rx = await startFlakyReceiver();
    const made = await api(app.base, app.apiKey, "POST", "/v1/webhooks",
      { name: "CRM", trigger: "call_received", url: rx.url });
    assert.equal(made.status, 201, made.text);
    webhookId = made.json.id;
    const healthy = await api(app.base, app.apiKey, "POST", "/v1/webhooks",
      { name: "Data store", trigger: "call_missed", url: rx.url.replace("/hooks/calls", "/store") });
    assert.equal(healthy.status, 201, healthy.text);
    const events = customers.map((c, i) => ({
      id: `ev-fail-${i}`, type: "call.received", occurred_at: "2026-11-27T04:00:00Z",
      call: { call_id: `1732680000.40${i}`, call_type: "inbound", did_number: DID, customer_number: c },
    }));
    const posted = await api(app.base, app.apiKey, "POST", "/v1/events", events);
    assert.equal(posted.status, 202, posted.text);
    // Each has had its first attempt and waits for its next (an hour away).
    const until = Date.now() + 20_000;
    for (;;) {
      const { json } = await api(app.base, app.apiKey, "GET", `/v1/webhooks/${webhookId}/deliveries?status=retrying`);
      if (json.data.length === 3) break;
      assert.ok(Date.now() < until, JSON.stringify(json));
      await new Promise((ok) => setTimeout(ok, 200));
    }
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    await page.goto(app.base + "/signin");
    await label("Email").fill(app.email);
    await label("Password").fill(app.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Webhook", exact: true }).waitFor();
  });

  after(async () => {
    await browser?.close();
    await rx?.stop();
    await app?.stop();
  });

  it("marks the failing webhook in the list", async () => {
    const failing = page.locator("tbody tr", { hasText: "CRM" });
    assert.equal(await failing.getAttribute("data-state"), "failing");
    await failing.getByText("Failing", { exact: true }).waitFor();
    await failing.getByText("HTTP status: answered 500 Internal Server Error").waitFor();
    const other = page.locator("tbody tr", { hasText: "Data store" });
    assert.equal(await other.getAttribute("data-state"), "idle");
    const red = await failing.locator("td").first().evaluate((td) => getComputedStyle(td).backgroundColor);
    const plain = await other.locator("td").first().evaluate((td) => getComputedStyle(td).backgroundColor);
    assert.notEqual(red, plain, "the failing row is tinted");
    await shot("60-failing-list.png");
  });

  it("opens the webhook's page with a banner", async () => {
    await page.getByRole("link", { name: "CRM", exact: true }).click();
    const banner = page.locator("#failing");
    await banner.getByText(/Failing since/).waitFor();
    await banner.getByText("HTTP status: answered 500 Internal Server Error").waitFor();
    await banner.getByRole("button", { name: "Retry 3 failed deliveries" }).waitFor();
    const rows = page.locator("#log tbody tr");
    assert.equal(await rows.count(), 3);
    await rows.first().getByText("Retrying").waitFor();
    await rows.first().getByText("HTTP status").waitFor();
    await shot("61-failing-banner.png");
  });

  it("filters the log by error kind and finds a call by its customer's number", async () => {
    await page.getByLabel("Error kind").selectOption("dns");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.getByText("No deliveries match.").waitFor();
    await page.getByLabel("Error kind").selectOption("http_status");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.locator("#log tbody tr").nth(2).waitFor();
    assert.equal(await page.locator("#log tbody tr").count(), 3);
    await page.getByLabel("Search").fill(customers[1]);
    await page.getByRole("button", { name: "Filter" }).click();
    await page.locator("#log tbody tr").first().getByText("1732680000.401").waitFor();
    assert.equal(await page.locator("#log tbody tr").count(), 1);
    // The filters stay in the form, and the failure groups list one group of three.
    assert.equal(await page.getByLabel("Search").inputValue(), customers[1]);
    await page.getByRole("link", { name: "Failures (3)" }).click();
    const group = page.locator("#failure-groups tbody tr");
    await group.getByText("answered 500 Internal Server Error").waitFor();
    await group.getByRole("button", { name: "Retry these 3" }).waitFor();
    await shot("62-failure-groups.png");
  });

  it("retries all matching once the receiver is fixed", async () => {
    rx.status = 200;
    await page.goto(`${app.base}/webhooks/${webhookId}?error_kind=http_status#log`);
    const before = rx.requests.length;
    await page.getByRole("button", { name: "Retry all matching" }).click();
    await page.getByText("3 deliveries retried.").waitFor();
    const until = Date.now() + 20_000;
    while ((await page.locator("#log tbody tr", { hasText: "Succeeded" }).count()) < 3) {
      assert.ok(Date.now() < until, "the retried deliveries did not succeed");
      await new Promise((ok) => setTimeout(ok, 300));
      await page.goto(`${app.base}/webhooks/${webhookId}#log`);
    }
    const sent = rx.requests.slice(before).filter((r) => r.status === 200);
    assert.equal(sent.length, 3, "each sent once more");
    // The page reads the webhook and its log one after the other: a render that straddles the
    // commit of the last success can show the log already succeeded and the banner still up.
    // The next render has it gone.
    while ((await page.locator("#failing").count()) > 0) {
      assert.ok(Date.now() < until, "the banner is gone once it delivers");
      await new Promise((ok) => setTimeout(ok, 300));
      await page.goto(`${app.base}/webhooks/${webhookId}#log`);
    }
    await shot("63-retried.png");
    await page.goto(app.base + "/webhooks");
    assert.equal(await page.locator("tbody tr", { hasText: "CRM" }).getAttribute("data-state"), "healthy");
  });

  it("refuses a retry without the CSRF token", async () => {
    const r = await page.request.post(`${app.base}/webhooks/${webhookId}/retry`, { form: {} });
    assert.equal(r.status(), 403);
  });
});
