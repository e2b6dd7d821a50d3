// /docs and /redoc in a real browser: headless Chromium (Debian's package, installed by
// scripts/setup.sh) driven by playwright-core. Swagger UI signs a user up through "Try it
// out", authorizes with the returned token and reads GET /users/me; ReDoc renders the
// operations. Neither page may log an error or trip its Content-Security-Policy.
// Screenshots go to test-artifacts/ (not committed).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startWorker, uniqueName, ROOT, STRONG_PASSWORD } from "./helpers.mjs";

const ARTIFACTS = join(ROOT, "test-artifacts");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

describe("API docs in a browser", () => {
  let worker;
  let browser;
  let base;
  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    // npm test installs it; a suite run on its own says how instead of a launch stack trace.
    if (!existsSync(CHROMIUM)) {
      throw new Error(`no Chromium at ${CHROMIUM}: run \`bash scripts/setup.sh --browser\` (or set CHROMIUM_PATH)`);
    }
    worker = await startWorker();
    // The Worker trusts the Host `localhost` only; the browser must use that name.
    base = `http://localhost:${(await worker.mf.ready).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
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
    await worker?.dispose();
  });

  /** A page that records console errors, page errors and requests leaving the origin. */
  async function open(path) {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
    const problems = [];
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()}`);
    });
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`${response.status()} for ${response.url()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("request", (request) => {
      const url = request.url();
      if (!url.startsWith(base) && !url.startsWith("data:") && !url.startsWith("blob:")) {
        problems.push(`request to another origin: ${url}`);
      }
    });
    const response = await page.goto(base + path, { waitUntil: "load" });
    assert.equal(response.status(), 200);
    return { page, problems, response };
  }

  test("Swagger UI: sign up through Try it out, authorize, read /users/me", async () => {
    const { page, problems, response } = await open("/docs");
    assert.match(response.headers()["content-security-policy"], /script-src 'self';/);

    const signup = page.locator("#operations-auth-signup");
    await signup.locator(".opblock-summary").click();
    await signup.locator("button.try-out__btn").click();
    const username = uniqueName("browser");
    await signup
      .locator("textarea.body-param__text")
      .fill(JSON.stringify({ username, password: STRONG_PASSWORD }));
    await signup.locator("button.execute").click();
    const signupStatus = signup.locator(".live-responses-table tbody .response-col_status").first();
    await signupStatus.waitFor();
    assert.equal((await signupStatus.innerText()).trim(), "201");
    const signupBody = JSON.parse(await signup.locator(".live-responses-table .microlight").first().innerText());
    assert.equal(signupBody.user.username, username);
    await page.screenshot({ path: join(ARTIFACTS, "docs-signup.png"), fullPage: false });

    await page.locator(".auth-wrapper button.authorize").click();
    const modal = page.locator(".dialog-ux .modal-ux");
    const bearer = modal.locator(".auth-container", { hasText: "bearerAuth" });
    await bearer.locator("input").fill(signupBody.access_token);
    await bearer.locator("button.authorize").click();
    await bearer.locator("button.btn-done").click();

    const me = page.locator("#operations-users-get_me");
    await me.locator(".opblock-summary").click();
    await me.locator("button.try-out__btn").click();
    await me.locator("button.execute").click();
    const meStatus = me.locator(".live-responses-table tbody .response-col_status").first();
    await meStatus.waitFor();
    assert.equal((await meStatus.innerText()).trim(), "200");
    const meBody = JSON.parse(await me.locator(".live-responses-table .microlight").first().innerText());
    assert.equal(meBody.username, username);
    assert.equal(meBody.id, signupBody.user.id);
    await me.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(ARTIFACTS, "docs-users-me.png"), fullPage: false });

    assert.deepEqual(problems, []);
    await page.close();
  });

  test("ReDoc renders the operations", async () => {
    const { page, problems, response } = await open("/redoc");
    assert.match(response.headers()["content-security-policy"], /worker-src blob:/);
    for (const summary of ["Create an account and sign in", "Sign in with a username or email and a password", "The signed-in account"]) {
      await page.locator("h2", { hasText: summary }).first().waitFor({ timeout: 20_000 });
    }
    const operations = await page.locator("[data-section-id^='operation/']").count();
    const documented = Object.values((await worker.request("GET", "/openapi.json")).json.paths).reduce(
      (count, item) => count + Object.keys(item).length,
      0,
    );
    assert.equal(operations, documented, "one section per documented operation");
    await page.screenshot({ path: join(ARTIFACTS, "redoc.png"), fullPage: false });
    // ReDoc's CDN logo is rewritten to an inline image at build time (scripts/build.sh), so
    // this page, too, makes no request elsewhere and trips no CSP rule.
    assert.deepEqual(problems, []);
    await page.close();
  });
});
