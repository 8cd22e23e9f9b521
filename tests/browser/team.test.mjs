// The story of issue 14 in a real browser (SPEC §13): the owner invites a viewer from the Users
// page and gets the one-time sign-up link; the viewer opens it in a second browser context,
// chooses a password, sees the webhook and its delivery log, finds no button to change
// anything and no secret; a form the viewer's own page posts with their valid session and
// CSRF token is refused with 403 all the same; the link does not work twice; the owner reads
// it all in the Audit page. Screenshots land in tests/browser/screenshots/ (30-…).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { api, launchBrowser, screenshots, startCallhook, startReceiver } from "./harness.mjs";

const VIEWER = "support@acme.example";
const VIEWER_PASSWORD = "support desk password";
let app, receiver, browser, owner, viewer, webhookId, link;

async function shot(page, name) {
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  await page.screenshot({ path: join(screenshots, name), fullPage: true });
}

async function context() {
  const c = await browser.newContext({ viewport: { width: 1360, height: 900 }, timezoneId: "Asia/Kolkata" });
  c.setDefaultTimeout(15_000);
  const page = await c.newPage();
  page.on("dialog", (d) => d.accept());
  return page;
}

const nav = (page) => page.getByRole("navigation", { name: "Main" });

describe("a team", () => {
  before(async () => {
    app = await startCallhook();
    receiver = await startReceiver();
    browser = await launchBrowser();
    // A webhook with a secret header and one delivery in its log, made through the API.
    const made = await api(app.base, app.apiKey, "POST", "/v1/webhooks", {
      name: "CRM: every call", trigger: "call_received", url: receiver.url,
      headers: [{ key: "X-Api-Key", value: "s3cr3t-of-the-crm" }],
    });
    assert.equal(made.status, 201, made.text);
    webhookId = made.json.id;
    const posted = await api(app.base, app.apiKey, "POST", "/v1/events", {
      type: "call.received", occurred_at: new Date().toISOString(),
      call: { call_id: "1732680000.2001", call_type: "inbound", did_number: "+918065251305" },
    });
    assert.equal(posted.status, 202, posted.text);
    owner = await context();
    viewer = await context();
  });

  after(async () => {
    await browser?.close();
    await receiver?.stop();
    await app?.stop();
  });

  it("lets the owner invite a viewer and shows the one-time link", async () => {
    await owner.goto(app.base + "/signin");
    await owner.getByLabel("Email", { exact: true }).fill(app.email);
    await owner.getByLabel("Password", { exact: true }).fill(app.password);
    await owner.getByRole("button", { name: "Sign in" }).click();
    await owner.getByRole("heading", { name: "Webhook", exact: true }).waitFor();
    // The first start's admin is the account's owner: Users and Audit are theirs.
    await owner.locator(".role-tag", { hasText: "Owner" }).waitFor();
    await nav(owner).getByRole("link", { name: "Users", exact: true }).click();
    await owner.getByRole("heading", { name: "Users", exact: true }).waitFor();
    await owner.getByLabel("Email", { exact: true }).fill("not an email");
    await owner.getByRole("button", { name: "Invite user" }).click();
    await owner.locator("#invite-email-error").waitFor();
    await owner.getByLabel("Email", { exact: true }).fill(VIEWER);
    await owner.getByLabel("Role", { exact: true }).selectOption("viewer");
    await owner.getByRole("button", { name: "Invite user" }).click();
    await owner.getByText(`${VIEWER} is invited.`).waitFor();
    link = (await owner.locator("#made-link").textContent()).trim();
    assert.match(link, new RegExp(`^${app.base}/invite/[A-Za-z0-9_-]{40,}$`));
    const row = owner.locator("tbody tr", { hasText: VIEWER });
    await row.getByText("Pending").waitFor();
    await shot(owner, "30-users-invited.png");
  });

  it("lets the viewer sign up through the link in another browser", async () => {
    await viewer.goto(link);
    await viewer.getByRole("heading", { name: "Sign up" }).waitFor();
    await viewer.getByText(VIEWER).waitFor();
    await viewer.getByLabel("Password", { exact: true }).fill("short");
    await viewer.getByLabel("Password again").fill("short");
    await viewer.getByRole("button", { name: "Sign up" }).click();
    await viewer.locator("#password-error").waitFor();
    await shot(viewer, "31-signup-error.png");
    await viewer.getByLabel("Password", { exact: true }).fill(VIEWER_PASSWORD);
    await viewer.getByLabel("Password again").fill(VIEWER_PASSWORD);
    await viewer.getByRole("button", { name: "Sign up" }).click();
    await viewer.getByText("Welcome to callhook.").waitFor();
    await viewer.locator(".role-tag", { hasText: "Viewer" }).waitFor();
    await shot(viewer, "32-viewer-webhooks.png");
  });

  it("shows the viewer the delivery log and no button to change anything", async () => {
    // No Users, Audit or API keys for a viewer; no Add Webhook.
    for (const name of ["Users", "Audit", "API keys"]) {
      assert.equal(await nav(viewer).getByRole("link", { name, exact: true }).count(), 0, name);
    }
    assert.equal(await viewer.getByRole("link", { name: "Add Webhook" }).count(), 0);
    await viewer.getByRole("link", { name: "CRM: every call" }).click();
    const row = viewer.locator("#log tbody tr", { hasText: "1732680000.2001" });
    await row.waitFor();
    for (const name of ["Send test", "Disable", "Rotate secret", "Reveal", "Copy"]) {
      assert.equal(await viewer.getByRole("button", { name, exact: true }).count(), 0, name);
    }
    for (const name of ["Edit", "Delete"]) {
      assert.equal(await viewer.getByRole("link", { name, exact: true }).count(), 0, name);
    }
    const html = await viewer.content();
    assert.ok(!html.includes("s3cr3t-of-the-crm"), "the header's value is masked");
    assert.ok(!html.includes("whsec_"), "no signing secret");
    await viewer.getByText("Only admins and owners see the secret.").waitFor();
    await shot(viewer, "33-viewer-webhook.png");
    await row.getByRole("link", { name: /View delivery/ }).click();
    await viewer.getByRole("heading", { name: /^Delivery/ }).waitFor();
    assert.equal(await viewer.getByRole("button", { name: "Resend" }).count(), 0);
    assert.ok(!(await viewer.content()).includes("s3cr3t-of-the-crm"));
    await shot(viewer, "34-viewer-delivery.png");
    await nav(viewer).getByRole("link", { name: "Numbers", exact: true }).click();
    assert.equal(await viewer.getByRole("button", { name: "Add number" }).count(), 0);
    await nav(viewer).getByRole("link", { name: "Calls", exact: true }).click();
    assert.equal(await viewer.getByText("Place a call").count(), 0);
  });

  it("refuses a form the viewer posts with a valid session and CSRF token", async () => {
    await viewer.goto(`${app.base}/webhooks/${webhookId}`);
    // The page's own token (every signed-in page carries it for Sign out), in a form the
    // page never offers: the server refuses it, whatever the page shows.
    const refused = viewer.waitForResponse((r) => r.url().endsWith(`/webhooks/${webhookId}/delete`));
    await viewer.evaluate((id) => {
      const csrf = document.querySelector('input[name="csrf"]').value;
      const form = document.createElement("form");
      form.method = "post";
      form.action = `/webhooks/${id}/delete`;
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "csrf";
      input.value = csrf;
      form.append(input);
      document.body.append(form);
      form.submit();
    }, webhookId);
    assert.equal((await refused).status(), 403);
    await viewer.getByRole("heading", { name: "Not allowed" }).waitFor();
    await viewer.getByText("Changes need the admin or owner role").waitFor();
    await shot(viewer, "35-viewer-forged-post.png");
    // The same with the browser's own request context: 403, and the webhook is still there.
    await viewer.goto(`${app.base}/webhooks/${webhookId}`);
    const csrf = await viewer.locator('input[name="csrf"]').first().inputValue();
    for (const path of [`/webhooks/${webhookId}/disable`, "/numbers", "/users"]) {
      const r = await viewer.request.post(app.base + path, {
        form: { csrf, number: "+918065251399", email: "mallory@acme.example", role: "owner" }, maxRedirects: 0,
      });
      assert.equal(r.status(), 403, path);
    }
    const still = await api(app.base, app.apiKey, "GET", `/v1/webhooks/${webhookId}`);
    assert.equal(still.status, 200);
    assert.equal(still.json.enabled, true);
  });

  it("does not let the link be used twice", async () => {
    const page = await context();
    const resp = await page.goto(link);
    assert.equal(resp.status(), 404);
    await page.getByRole("heading", { name: "This link does not work" }).waitFor();
    await shot(page, "36-link-used.png");
    await page.context().close();
  });

  it("shows the owner the audit log", async () => {
    await nav(owner).getByRole("link", { name: "Audit", exact: true }).click();
    await owner.getByRole("heading", { name: "Audit", exact: true }).waitFor();
    await owner.getByRole("cell", { name: "user.sign_up" }).waitFor();
    await owner.getByRole("cell", { name: "user.invite" }).waitFor();
    await owner.getByRole("cell", { name: "webhook.create" }).waitFor();
    assert.ok(!(await owner.content()).includes("s3cr3t-of-the-crm"), "no header value in the log");
    await shot(owner, "37-audit.png");
    await owner.getByLabel("Action").selectOption("user.invite");
    await owner.getByRole("button", { name: "Filter" }).click();
    await owner.getByRole("cell", { name: "user.invite" }).waitFor();
    assert.equal(await owner.getByRole("cell", { name: "webhook.create" }).count(), 0);
  });

  it("changes the viewer's password from the account menu and signs out the other sessions", async () => {
    const second = await context();
    await second.goto(app.base + "/signin");
    await second.getByLabel("Email", { exact: true }).fill(VIEWER);
    await second.getByLabel("Password", { exact: true }).fill(VIEWER_PASSWORD);
    await second.getByRole("button", { name: "Sign in" }).click();
    await second.getByRole("heading", { name: "Webhook", exact: true }).waitFor();
    await viewer.getByRole("link", { name: "Change password" }).click();
    await viewer.getByLabel("Current password").fill(VIEWER_PASSWORD);
    await viewer.getByLabel("New password", { exact: true }).fill("a brand new desk password");
    await viewer.getByLabel("New password again").fill("a brand new desk password");
    await viewer.getByRole("button", { name: "Change password" }).click();
    await viewer.getByText("Password changed.").waitFor();
    await shot(viewer, "38-password-changed.png");
    await second.goto(app.base + "/webhooks");
    assert.match(second.url(), /\/signin/);
    await second.context().close();
  });
});
