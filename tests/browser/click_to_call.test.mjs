// Click-to-call from the Calls page in a real browser (SPEC §15, issue 17): callhook runs a
// connector that places calls through a scripted Asterisk; the admin opens the Call form,
// picks the caller id from My Numbers and places a call; the page shows the request's state
// changing on its own as the PBX rings the agent, then the customer, and they talk; the
// webhook for answered_by_customer gets the request's reference. Screenshots land in
// tests/browser/screenshots/.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { api, launchBrowser, screenshots, startCallhook, startFakeAmi, startReceiver } from "./harness.mjs";

const DID = "+918065251305";
const CUSTOMER = "+919812345678";
let app, ami, receiver, browser, page;

const label = (name) => page.getByLabel(name, { exact: true });
const state = () => page.locator("#c2c-state");

async function shot(name) {
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  await page.screenshot({ path: join(screenshots, name), fullPage: true });
}

describe("click-to-call from the Calls page", () => {
  before(async () => {
    app = await startCallhook();
    ami = await startFakeAmi();
    receiver = await startReceiver();
    const number = await api(app.base, app.apiKey, "POST", "/v1/numbers", { number: DID, label: "Sales line" });
    assert.equal(number.status, 201, number.text);
    const hook = await api(app.base, app.apiKey, "POST", "/v1/webhooks",
      { name: "CRM: customer answered", trigger: "answered_by_customer", url: receiver.url });
    assert.equal(hook.status, 201, hook.text);
    await app.restart({
      config: [
        "[[connectors]]",
        'kind = "asterisk_ami"',
        'name = "pbx1"',
        'host = "127.0.0.1"',
        `port = ${ami.port}`,
        'username = "callhook"',
        'password = "s3cret"',
        `account = "${app.accountId}"`,
        'extension_names = { "101" = "Asha" }',
        "originate = true",
        'originate_channel = "PJSIP/{extension}"',
        'originate_context = "callhook-click-to-call"',
        "",
      ].join("\n"),
    });
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, timezoneId: "Asia/Kolkata" });
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
    await receiver?.stop();
    await app?.stop();
    await ami?.stop();
  });

  it("places a call from the Call form and follows its state without a reload", async () => {
    await page.goto(app.base + "/calls");
    // The connector is logged in to the PBX.
    const connectors = page.getByRole("table", { name: /PBX connectors/ });
    for (let i = 0; !(await connectors.getByText("Connected", { exact: true }).isVisible()); i++) {
      assert.ok(i < 50, "the connector never connected");
      await new Promise((ok) => setTimeout(ok, 200));
      await page.reload();
    }
    await page.locator("summary", { hasText: "Call" }).click();
    await label("Agent extension").fill("101");
    await label("Customer number").fill("98123 45678");
    await label("Caller ID").selectOption({ label: `${DID} · Sales line` });
    await page.getByRole("button", { name: "Place call" }).click();
    // A number that is not E.164 is named at its input; what was typed stays.
    await page.locator("#customer_number-error").waitFor();
    assert.match(await page.locator("#customer_number-error").textContent(), /E\.164/);
    assert.equal(await label("Agent extension").inputValue(), "101");
    assert.equal(await label("Caller ID").inputValue(), DID);
    await label("Customer number").fill(CUSTOMER);
    await shot("20-call-form.png");
    await page.getByRole("button", { name: "Place call" }).click();

    // The request's card; from here on the page is never loaded again.
    const card = page.locator("#click-to-call");
    await card.waitFor();
    await page.evaluate(() => { window.stillThisPage = true; });
    await ami.originated();
    await state().filter({ hasText: "Ringing the agent" }).waitFor();
    await shot("21-call-ringing-agent.png");
    ami.advance();
    await state().filter({ hasText: "Ringing the customer" }).waitFor();
    ami.advance();
    await state().filter({ hasText: "Answered" }).waitFor();
    for (const step of ["queued", "ringing_agent", "ringing_customer", "end"]) {
      assert.match(await card.locator(`li[data-step="${step}"]`).getAttribute("class"), /done/, step);
    }
    await card.getByRole("link", { name: "1790700000.1" }).waitFor();
    assert.equal(await page.evaluate(() => window.stillThisPage), true, "the page was not reloaded");
    await shot("22-call-answered.png");

    // What callhook asked of the PBX, and the webhook the customer's answer caused.
    const reference = (await card.locator("dt", { hasText: "Reference" }).locator("+ dd").textContent()).trim();
    assert.match(reference, /^c2c_/);
    const o = ami.originates[0];
    assert.match(o.text, /Channel: PJSIP\/101\r\n/);
    assert.match(o.text, /Context: callhook-click-to-call\r\n/);
    assert.match(o.text, new RegExp(`Exten: \\${CUSTOMER}\r\n`));
    assert.match(o.text, new RegExp(`CallerID: <\\${DID}>\r\n`));
    assert.equal(o.ref, reference);
    assert.equal(ami.originates.length, 1);
    ami.advance();
    for (let i = 0; !receiver.requests.some((r) => JSON.parse(r.body).trigger === "answered_by_customer"); i++) {
      assert.ok(i < 75, "answered_by_customer never arrived");
      await new Promise((ok) => setTimeout(ok, 200));
    }
    const got = JSON.parse(receiver.requests.find((r) => JSON.parse(r.body).trigger === "answered_by_customer").body);
    assert.equal(got.ref_id, reference);
    assert.equal(got.extension, "101");
    assert.equal(got.customer_number, CUSTOMER);
    assert.equal(got.did_number, DID);
  });
});
