// The admin's tools of SPEC §12 in a real browser: Send test from an unsaved form (status,
// latency and the receiver's answer shown in place, nothing saved), a pending delivery that
// turns succeeded without a reload, times in the webhook's zone with the zone named, the
// Calls page found by customer number, and the webhook list, log and Calls at 1280 px with
// no table clipped. Screenshots land in tests/browser/screenshots/.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { api, launchBrowser, screenshots, startCallhook } from "./harness.mjs";

const DID = "+918065251305";
let app, receiver, browser, page;

/**
 * A receiver on loopback that answers 500 while `failing`, else 200 with a small body. While
 * `gate` is a promise, it answers once that promise is settled (as `failing` says then).
 */
async function switchableReceiver() {
  const state = { failing: false, requests: 0, gate: null };
  const server = createServer((req, res) => {
    req.on("data", () => {});
    req.on("end", async () => {
      state.requests += 1;
      if (state.gate) await state.gate;
      if (state.failing) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end("CRM is down");
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ ticket: "T-1042" }));
      }
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${server.address().port}/hooks/calls`,
    state,
    stop: () => new Promise((ok) => server.close(ok)),
  };
}

async function shot(name) {
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  await page.screenshot({ path: join(screenshots, name), fullPage: true });
}

/** Every table container of the page whose content is wider than the container shows. */
async function clippedTables() {
  return page.evaluate(() => Array.from(document.querySelectorAll(".table-card"))
    .filter((el) => el.scrollWidth > el.clientWidth)
    .map((el) => `${el.id || el.className}: ${el.scrollWidth} > ${el.clientWidth}`));
}

const label = (name) => page.getByLabel(name, { exact: true });
const call = (id, customer, at) => ({
  id: `${id}-r`, type: "call.received", occurred_at: at,
  call: { call_id: id, call_type: "inbound", did_number: DID, customer_number: customer, started_at: at },
});

describe("the admin's tools", () => {
  before(async () => {
    app = await startCallhook();
    receiver = await switchableReceiver();
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, timezoneId: "America/New_York" });
    context.setDefaultTimeout(20_000);
    page = await context.newPage();
    await page.goto(app.base + "/signin");
    await label("Email").fill(app.email);
    await label("Password").fill(app.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Webhook", exact: true }).waitFor();
    assert.equal((await api(app.base, app.apiKey, "POST", "/v1/numbers", { number: DID })).status, 201);
  });

  after(async () => {
    await browser?.close();
    await receiver?.stop();
    await app?.stop();
  });

  it("sends a test from an unsaved form and shows the answer in place", async () => {
    await page.goto(app.base + "/webhooks/new");
    await label("Name").fill("CRM before saving");
    await label("URL").fill(receiver.url);
    // The page is not reloaded: a mark left on it survives the test.
    await page.evaluate(() => { window.stillHere = true; });
    await page.getByRole("button", { name: "Send test" }).click();
    const result = page.locator("#test-result .test-result");
    await result.getByText(/^Test delivered: 200 OK in \d+(\.\d)? m?s$/).waitFor();
    await result.getByText('"ticket": "T-1042"').waitFor();
    assert.equal(await page.evaluate(() => window.stillHere), true);
    assert.equal(receiver.state.requests, 1);
    await shot("tools-01-send-test-unsaved.png");

    receiver.state.failing = true;
    await page.getByRole("button", { name: "Send test" }).click();
    await result.getByText(/Test failed: the receiver answered 500 Internal Server Error/).waitFor();
    await result.getByText("CRM is down").waitFor();
    receiver.state.failing = false;

    // A form that is not valid yet is not sent: the fields to fix show instead.
    await label("URL").fill("crm.example.com/hooks");
    await page.getByRole("button", { name: "Send test" }).click();
    await result.getByText("Not sent: fix the form first.").waitFor();
    await result.getByText(/^url: /).waitFor();
    assert.equal(receiver.state.requests, 2);

    const list = await api(app.base, app.apiKey, "GET", "/v1/webhooks");
    assert.deepEqual(list.json.data, [], "nothing was saved");
  });

  let webhookUrl;

  it("shows a pending delivery turn succeeded without a reload, in the webhook's zone", async () => {
    receiver.state.failing = true;
    const made = await api(app.base, app.apiKey, "POST", "/v1/webhooks", {
      name: "CRM", trigger: "call_received", url: receiver.url, time_zone: "Asia/Kolkata",
    });
    assert.equal(made.status, 201, made.text);
    webhookUrl = `${app.base}/webhooks/${made.json.id}`;
    const now = new Date().toISOString();
    const posted = await api(app.base, app.apiKey, "POST", "/v1/events", call("live-1", "+919812345678", now));
    assert.equal(posted.status, 202, posted.text);
    // The first attempt fails; the retry comes about 5 seconds later.
    for (let i = 0; receiver.state.requests < 3; i++) {
      assert.ok(i < 100, "the first attempt was made");
      await new Promise((ok) => setTimeout(ok, 100));
    }
    // The retry succeeds, but its answer waits until the page has shown the failed attempt:
    // however long the page takes to load, the retry neither fails nor finishes before.
    let open;
    receiver.state.gate = new Promise((ok) => { open = ok; });
    receiver.state.failing = false;
    await page.goto(webhookUrl);
    const row = page.locator("#log tbody tr").first();
    await row.locator(".badge", { hasText: /Pending|Retrying/ }).waitFor();
    await row.getByText("500 Internal Server Error").waitFor();
    await page.evaluate(() => { window.stillHere = true; });
    receiver.state.gate = null;
    open();
    await row.locator(".badge", { hasText: "Succeeded" }).waitFor({ timeout: 20_000 });
    await row.getByText("200 OK").waitFor();
    assert.equal(await row.locator('[data-live="attempts"]').textContent(), "2");
    // Its time in the webhook's zone, named, whatever the reader's own zone (New York here).
    assert.match(await row.locator("time").textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d Asia\/Kolkata$/);
    assert.equal(await page.evaluate(() => window.stillHere), true, "no reload");
    await shot("tools-02-log-1280.png");
    assert.deepEqual(await clippedTables(), []);
    await row.getByRole("link", { name: /View delivery/ }).click();
    await page.locator(".attempt time, time").first().waitFor();
    const times = await page.locator("main time").allTextContents();
    assert.ok(times.length > 0 && times.every((t) => t.endsWith(" Asia/Kolkata")), times.join(" | "));
  });

  it("finds calls by the customer's number, with their times in UTC named", async () => {
    const at = (h) => `2026-11-27T0${h}:00:00Z`;
    for (const e of [call("asha-1", "+919812340001", at(4)), call("ravi-1", "+919812340002", at(5)), call("asha-2", "+919812340001", at(6))]) {
      const r = await api(app.base, app.apiKey, "POST", "/v1/events", e);
      assert.equal(r.status, 202, r.text);
    }
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Calls", exact: true }).click();
    const rows = page.locator("table.calls tbody tr");
    await rows.first().waitFor();
    assert.equal(await rows.count(), 4);
    await label("Number").fill("+91 98123 40001");
    await page.getByRole("button", { name: "Find" }).click();
    await page.waitForURL(/number=/);
    assert.equal(await rows.count(), 2);
    assert.deepEqual(await rows.locator("td[data-label='Call ID']").allTextContents(), ["asha-2", "asha-1"]);
    await rows.first().getByText("2026-11-27 06:00:00 UTC").waitFor();
    await shot("tools-03-calls-1280.png");
    assert.deepEqual(await clippedTables(), []);

    await label("Number").fill("12345");
    await page.getByRole("button", { name: "Find" }).click();
    await page.getByText(/^Number: .*E\.164/).waitFor();
  });

  it("fits the webhook list at 1280 px", async () => {
    await page.goto(app.base + "/webhooks");
    await page.locator("table").first().waitFor();
    await shot("tools-04-list-1280.png");
    assert.deepEqual(await clippedTables(), []);
  });
});
