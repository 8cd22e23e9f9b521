// Shaping the request in a real browser (SPEC §11, issue 12): build a custom body with the
// parameter picker, watch the preview follow, save, send a test, and see the receiver's body
// in the attempt. Screenshots land in tests/browser/screenshots/.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { launchBrowser, screenshots, startCallhook, startReceiver } from "./harness.mjs";

let app, receiver, browser, page;

const label = (name) => page.getByLabel(name, { exact: true });
const bodyFields = () => page.getByRole("group", { name: /Body fields/ });

async function shot(name) {
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  await page.screenshot({ path: join(screenshots, name), fullPage: true });
}

describe("shaping the request", () => {
  before(async () => {
    app = await startCallhook();
    receiver = await startReceiver();
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
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
  });

  it("lists the chosen trigger's parameters beside the picker", async () => {
    await page.goto(app.base + "/webhooks/new");
    await label("Trigger").selectOption({ label: "Call missed" });
    const picker = page.locator("#param-picker");
    await picker.getByRole("button", { name: "$missed_extensions" }).waitFor();
    assert.equal(await picker.getByRole("button", { name: "$digit", exact: true }).isVisible(), false);
    await label("Trigger").selectOption({ label: "DTMF option" });
    await picker.getByRole("button", { name: "$digit", exact: true }).waitFor();
    assert.equal(await picker.getByRole("button", { name: "$missed_extensions" }).isVisible(), false);
    await label("Trigger").selectOption({ label: "Call missed" });
  });

  it("builds a custom body with the picker and the preview follows", async () => {
    await label("Name").fill("CRM: leads");
    await label("URL").fill(receiver.url);
    await page.getByLabel("Only your fields").check();
    await page.getByRole("button", { name: "Add field" }).click();
    const keys = bodyFields().getByLabel("Key", { exact: true });
    const values = bodyFields().getByLabel("Value", { exact: true });
    await keys.nth(0).fill("phone");
    await values.nth(0).click();
    await page.locator("#param-picker").getByRole("button", { name: "$customer_number" }).click();
    assert.equal(await values.nth(0).inputValue(), "$customer_number");
    await page.getByRole("button", { name: "Add field" }).click();
    await keys.nth(1).fill("lead.ref");
    await values.nth(1).fill("call-x");
    // A reference put before letters is braced, so it cannot run into them.
    await values.nth(1).evaluate((el) => el.setSelectionRange(5, 5));
    await page.locator("#param-picker").getByRole("button", { name: "$call_id" }).click();
    assert.equal(await values.nth(1).inputValue(), "call-${call_id}x");
    await label("Time format").selectOption("local");

    const preview = page.locator("#preview");
    await preview.getByText(/"phone": "\+91/).waitFor();
    await preview.getByText(/"lead": \{/).waitFor();
    await preview.getByText(/"ref": "call-/).waitFor();
    // A custom body carries only the rows: no standard parameter shows.
    assert.equal(await preview.getByText(/"event_id"/).count(), 0);
    await shot("10-shaping-form.png");

    // A reference the trigger does not have is shown where it was typed.
    await page.getByRole("button", { name: "Add field" }).click();
    await keys.nth(2).fill("oops");
    await values.nth(2).fill("$digit");
    await page.getByRole("button", { name: "Save" }).click();
    const error = page.locator("#body-value-2-error");
    await error.waitFor();
    assert.match(await error.textContent(), /\$digit is not a parameter of call_missed/);
    await bodyFields().getByRole("button", { name: "Remove field 3" }).click();
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("Webhook created.").waitFor();
  });

  it("sends a test and shows the receiver's body in the attempt", async () => {
    await page.getByRole("button", { name: "Send test" }).click();
    await page.getByText(/Test delivered: 200 OK/).waitFor();
    const got = receiver.requests.at(-1);
    const body = JSON.parse(got.body);
    assert.deepEqual(Object.keys(body), ["phone", "lead"]);
    assert.match(body.phone, /^\+\d+$/);
    assert.match(body.lead.ref, /^call-test_\w+x$/);
    // The delivery's page shows the request exactly as the receiver got it.
    await page.getByRole("link", { name: "See the request and response" }).click();
    await page.getByText(/"ref": "call-test_/).first().waitFor();
    await shot("11-shaping-attempt.png");
  });
});
