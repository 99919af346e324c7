// Shared harness of the browser tests: Debian's Chromium driven by playwright-core, a fresh
// browser context per test, screenshots under target/e2e/<test>/, and helpers for the journeys
// (mailbox, register, login, JSON API calls as admin).
//
// Run through tests/e2e/run.sh, which starts a server and sets E2E_BASE_URL, E2E_ADMIN_EMAIL and
// E2E_ADMIN_PASSWORD.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, appendFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';

export { assert };

export const BASE_URL = (process.env.E2E_BASE_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
export const ADMIN_EMAIL = process.env.E2E_ADMIN_EMAIL ?? 'admin@e2e.test';
export const ADMIN_PASSWORD = process.env.E2E_ADMIN_PASSWORD ?? '';

/** Test cards of the simulated payment provider (crates/payments/src/api.rs). */
export const CARD_OK = '4242 4242 4242 4242';
export const CARD_DECLINED = '4000 0000 0000 0002';

/** A password the identity context accepts (12+ characters, not a common one). */
export const PASSWORD = 'Plum-Harbour-Lantern-42';

const PAGE_TIMEOUT_MS = 15_000;
const TEST_TIMEOUT_MS = 120_000;

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ARTIFACTS = process.env.E2E_ARTIFACTS ?? path.join(repoRoot, 'target', 'e2e');

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let browser;

// One browser per test file (launching costs a second or two); every test gets its own context,
// so cookies, storage and cache never leak from one journey into the next.
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.E2E_CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    headless: true,
  });
});

after(async () => {
  await browser?.close();
});

/** A file-system-safe name for a test. */
function slug(name) {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 80);
}

/**
 * Declares a browser test. `fn` receives `{ page, context, shot, dir, dialogs, newPage }`:
 * - `shot(name)` saves `target/e2e/<test>/<nn>-<name>.png` (full page);
 * - `dialogs` lists every JavaScript dialog (alert/confirm/prompt) the pages opened (confirms
 *   are accepted, as the person who clicked would; the others dismissed);
 * - `newPage()` opens another tab in the same context;
 * - `otherUser()` opens a second, separate browser context (another person, own cookies).
 * A failing test leaves `failure.png` and `failure.html` of the page it was on; uncaught page
 * errors (JavaScript exceptions) fail the test; console errors are written to `console.log`.
 */
export function browserTest(name, fn) {
  test(name, { timeout: TEST_TIMEOUT_MS }, async () => {
    const dir = path.join(ARTIFACTS, slug(name));
    await mkdir(dir, { recursive: true });
    const contexts = [];
    const openContext = async () => {
      const c = await browser.newContext({
        baseURL: BASE_URL,
        viewport: { width: 1280, height: 900 },
        locale: 'en-GB',
        timezoneId: 'Europe/Amsterdam',
      });
      c.setDefaultTimeout(PAGE_TIMEOUT_MS);
      c.setDefaultNavigationTimeout(PAGE_TIMEOUT_MS);
      c.on('page', watch);
      contexts.push(c);
      return c;
    };

    const pageErrors = [];
    const dialogs = [];
    const watch = (p) => {
      p.on('pageerror', (err) => pageErrors.push(`${p.url()}: ${err.message}`));
      p.on('console', (msg) => {
        if (msg.type() === 'error') {
          appendFile(path.join(dir, 'console.log'), `${p.url()}: ${msg.text()}\n`).catch(() => {});
        }
      });
      // A person who clicked a button marked data-confirm means it: confirms are accepted.
      // Every dialog is recorded, so a test can tell that no script opened an alert.
      p.on('dialog', async (d) => {
        dialogs.push({ type: d.type(), message: d.message(), url: p.url() });
        await (d.type() === 'confirm' ? d.accept() : d.dismiss()).catch(() => {});
      });
    };
    const context = await openContext();
    const page = await context.newPage();

    let shots = 0;
    const shot = async (label, target = page) => {
      shots += 1;
      const file = path.join(dir, `${String(shots).padStart(2, '0')}-${slug(label)}.png`);
      await target.screenshot({ path: file, fullPage: true });
      return file;
    };

    try {
      await fn({ page, context, shot, dir, dialogs, newPage: () => context.newPage(), otherUser: openContext });
      assert.deepEqual(pageErrors, [], 'the pages threw JavaScript errors');
    } catch (err) {
      for (const [i, p] of contexts.flatMap((c) => c.pages()).entries()) {
        const suffix = i === 0 ? '' : `-tab${i}`;
        await p.screenshot({ path: path.join(dir, `failure${suffix}.png`), fullPage: true }).catch(() => {});
        const html = await p.content().catch(() => '');
        await writeFile(path.join(dir, `failure${suffix}.html`), `<!-- ${p.url()} -->\n${html}`).catch(() => {});
      }
      if (pageErrors.length) err.message += `\npage errors:\n  ${pageErrors.join('\n  ')}`;
      err.message += `\n(artifacts in ${path.relative(repoRoot, dir)}; last URL ${page.url()})`;
      throw err;
    } finally {
      for (const c of contexts) await c.close();
    }
  });
}

/** An address no other test (or earlier run against the same server) has used. */
export function uniqueEmail(prefix = 'shopper') {
  return `${prefix}-${Date.now().toString(36)}-${randomUUID().slice(0, 8)}@e2e.test`;
}

/** A unique suffix for names, SKUs and slugs created by a test. */
export function uniqueSuffix() {
  return `${Date.now().toString(36)}${randomUUID().slice(0, 4)}`.toUpperCase();
}

// ---- JSON API (for setup and for checking what the pages claim) ----

/**
 * Calls the JSON API. Returns `{ status, headers, body }` (body parsed when JSON).
 * `token` adds a bearer; `body` is sent as JSON.
 */
export async function api(method, apiPath, { token, body, headers = {} } = {}) {
  const h = { accept: 'application/json', ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  const res = await fetch(`${BASE_URL}${apiPath}`, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
    redirect: 'manual',
  });
  const text = await res.text();
  let parsed = text;
  if ((res.headers.get('content-type') ?? '').includes('json') && text) parsed = JSON.parse(text);
  return { status: res.status, headers: res.headers, body: parsed };
}

/** Like `api`, but fails the test unless the status is 2xx; returns the body. */
export async function apiOk(method, apiPath, options) {
  const res = await api(method, apiPath, options);
  assert.ok(
    res.status >= 200 && res.status < 300,
    `${method} ${apiPath} answered ${res.status}: ${JSON.stringify(res.body)}`,
  );
  return res.body;
}

/** An access token for `email` (the API login, not the browser's). */
export async function apiLogin(email, password) {
  const body = await apiOk('POST', '/api/v1/auth/login', { body: { email, password } });
  return body.access_token;
}

let adminTokenCache;
/** An admin access token (cached for a few minutes: access tokens are short-lived). */
export async function adminToken() {
  if (!adminTokenCache || Date.now() - adminTokenCache.at > 4 * 60_000) {
    assert.ok(ADMIN_PASSWORD, 'E2E_ADMIN_PASSWORD is not set (run the suite through tests/e2e/run.sh)');
    adminTokenCache = { token: await apiLogin(ADMIN_EMAIL, ADMIN_PASSWORD), at: Date.now() };
  }
  return adminTokenCache.token;
}

/** Stock of one SKU: `{ sku, on_hand, reserved, available, ... }`. */
export async function stockOf(sku) {
  const body = await apiOk('GET', `/api/v1/inventory?sku=${encodeURIComponent(sku)}`);
  const items = body.items ?? body.levels ?? body.stock ?? body;
  const item = Array.isArray(items) ? items.find((i) => i.sku === sku) : undefined;
  assert.ok(item, `no stock entry for ${sku} in ${JSON.stringify(body)}`);
  return item;
}

/**
 * Polls the development mailbox until a message to `email` arrives whose subject matches
 * `subject` (a RegExp or substring); returns it (`{ to, subject, body, sent_at }`).
 */
export async function mailbox(email, { subject, timeoutMs = 15_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  const matches = (m) =>
    subject === undefined || (subject instanceof RegExp ? subject.test(m.subject) : m.subject.includes(subject));
  let seen = [];
  while (Date.now() < deadline) {
    const res = await api('GET', `/api/v1/dev/mailbox?to=${encodeURIComponent(email)}`);
    assert.equal(res.status, 200, `the dev mailbox answered ${res.status} (is this embedded mode?)`);
    seen = res.body;
    const found = seen.find(matches);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(
    `no mail to ${email} matching ${subject} within ${timeoutMs} ms; got: ${JSON.stringify(seen.map((m) => m.subject))}`,
  );
}

/**
 * The first link in `text` (absolute or site-relative) whose path is exactly `pathname`, as a
 * path plus query on the server under test (whatever public URL the mail was written with).
 */
export function linkIn(text, pathname) {
  for (const m of text.matchAll(/(?:https?:\/\/[^\s"'<>/]+)?\/[^\s"'<>]*/g)) {
    const raw = m[0].replace(/&amp;/g, '&').replace(/[.,;:)]+$/, '');
    let url;
    try {
      url = new URL(raw, BASE_URL);
    } catch {
      continue;
    }
    if (url.pathname === pathname) return `${url.pathname}${url.search}`;
  }
  return undefined;
}

// ---- Browser journeys shared by several tests ----

/** Fills the registration form and submits it. */
export async function register(page, { email, password = PASSWORD, name = 'E2E Shopper' }) {
  await page.goto('/register');
  const form = page.locator('form').filter({ has: page.getByRole('button', { name: 'Create account' }) });
  await form.getByLabel('Your name').fill(name);
  await form.getByLabel('E-mail address').fill(email);
  await form.getByLabel('Password', { exact: true }).fill(password);
  await form.getByLabel('Repeat password').fill(password);
  await form.getByRole('button', { name: 'Create account' }).click();
  await page.waitForLoadState('domcontentloaded');
}

/** Opens the verification link of the newest verification mail to `email` and confirms it. */
export async function verifyEmail(page, email) {
  const mail = await mailbox(email, { subject: /confirm your e-?mail/i });
  const link = linkIn(mail.body, '/verify-email');
  assert.ok(link, `the verification mail has no /verify-email link:\n${mail.body}`);
  await page.goto(link);
  // GET shows a confirm form (so mail scanners that prefetch links verify nothing); POST verifies.
  await page.getByRole('button', { name: 'Confirm my e-mail address' }).click();
  await page.waitForLoadState('domcontentloaded');
  return link;
}

/** Logs in through the login form (optionally at `/login?next=...`), ending on the page it lands on. */
export async function login(page, email, password = PASSWORD, { next } = {}) {
  await page.goto(next === undefined ? '/login' : `/login?next=${encodeURIComponent(next)}`);
  const form = page.locator('form').filter({ has: page.getByRole('button', { name: 'Sign in' }) });
  await form.getByLabel('E-mail address').fill(email);
  await form.getByLabel('Password').fill(password);
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login'),
    form.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  if (res.status() !== 303) {
    // Refused: say why (the form's own error), rather than time out waiting to leave /login.
    await page.waitForLoadState('domcontentloaded');
    const why = await page.locator('[data-testid^="error-"], [data-testid="login-unverified"]').allInnerTexts();
    assert.fail(`signing in as ${email} answered ${res.status()}: ${why.join(' / ') || '(no message on the page)'}`);
  }
  await page.waitForURL((url) => url.pathname !== '/login');
}

/** Registers, verifies and logs in a new customer through the pages; returns the e-mail. */
export async function newCustomer(page, { prefix = 'shopper', name = 'E2E Shopper' } = {}) {
  const email = uniqueEmail(prefix);
  await register(page, { email, name });
  await verifyEmail(page, email);
  await login(page, email);
  return email;
}

/** Logs in the admin created by run.sh through the login form. */
export async function loginAsAdmin(page, { next } = {}) {
  assert.ok(ADMIN_PASSWORD, 'E2E_ADMIN_PASSWORD is not set (run the suite through tests/e2e/run.sh)');
  await login(page, ADMIN_EMAIL, ADMIN_PASSWORD, { next });
}

/** The body text of the page, whitespace collapsed (for assertions on messages). */
export async function pageText(page) {
  return (await page.locator('body').innerText()).replace(/\s+/g, ' ');
}

// ---- Setup through the JSON API (what a test needs but does not itself test) ----

/** The single-use token of a verification or reset mail: from its link, else its token line. */
export function tokenIn(mailBody) {
  const fromLink = mailBody.match(/[?&]token=([A-Za-z0-9_-]+)/);
  if (fromLink) return fromLink[1];
  const line = mailBody.match(/^\s*([A-Za-z0-9_-]{32,})\s*$/m);
  assert.ok(line, `no token in the mail:\n${mailBody}`);
  return line[1];
}

/** Registers and verifies a customer through the API; returns `{ email, password, token }`. */
export async function apiCustomer({ prefix = 'api-customer', name = 'API Customer' } = {}) {
  const email = uniqueEmail(prefix);
  await apiOk('POST', '/api/v1/auth/register', { body: { email, password: PASSWORD, name } });
  const mail = await mailbox(email, { subject: /confirm your e-?mail/i });
  await apiOk('POST', '/api/v1/auth/verify-email', { body: { token: tokenIn(mail.body) } });
  return { email, password: PASSWORD, token: await apiLogin(email, PASSWORD) };
}

/** Active demo products with at least `minAvailable` units, cheapest first. */
export async function productsInStock({ minAvailable = 5, count = 2, query } = {}) {
  const list = query
    ? await apiOk('GET', `/api/v1/catalog/search?q=${encodeURIComponent(query)}&limit=50`)
    : await apiOk('GET', '/api/v1/catalog/products?limit=100&sort=price_asc');
  const skus = list.items.map((p) => p.sku);
  assert.ok(skus.length, 'the catalog has no products (is the demo data loaded?)');
  const stock = await apiOk('GET', `/api/v1/inventory?${skus.map((s) => `sku=${encodeURIComponent(s)}`).join('&')}`);
  const available = new Map(stock.items.map((s) => [s.sku, s.available]));
  const picked = list.items.filter((p) => (available.get(p.sku) ?? 0) >= minAvailable).slice(0, count);
  assert.equal(picked.length, count, `fewer than ${count} products with ${minAvailable}+ units in stock`);
  return picked;
}

export const ADDRESS = {
  name: 'Ada Lovelace',
  line1: 'Keizersgracht 123',
  city: 'Amsterdam',
  postal_code: '1015 CJ',
  country: 'NL',
};

/**
 * Places a paid order through the API as `token`'s user: `items` is `[{ sku, quantity }]`.
 * Returns the order (status `confirmed` once the payment was captured).
 */
export async function apiOrder(token, items, { card = CARD_OK.replace(/\s/g, '') } = {}) {
  const method = await apiOk('POST', '/api/v1/payments/methods', {
    token,
    body: { card_number: card, exp_month: 12, exp_year: new Date().getFullYear() + 3, cvc: '123', holder_name: 'Ada Lovelace' },
  });
  const order = await apiOk('POST', '/api/v1/orders', {
    token,
    headers: { 'idempotency-key': randomUUID() },
    body: { items, shipping_address: ADDRESS, shipping_method: 'standard', payment_method: method.id },
  });
  return order;
}

// ---- Checkout and orders in the browser ----

/** Fills the new-card fields of the checkout form. */
export async function fillCard(page, number) {
  await page.getByRole('radio', { name: 'Use a new card' }).check();
  await page.getByLabel('Card number').fill(number);
  await page.getByLabel('Expiry month').fill('12');
  await page.getByLabel('Expiry year').fill(String(new Date().getFullYear() + 3));
  await page.getByLabel('CVC').fill('123');
}

/** Fills the checkout form on /checkout: the address, standard shipping and a new card. */
export async function fillCheckout(page, { card = CARD_OK, name = ADDRESS.name } = {}) {
  await page.getByLabel('Full name').fill(name);
  await page.getByLabel('Address line 1').fill(ADDRESS.line1);
  await page.getByLabel('City').fill(ADDRESS.city);
  await page.getByLabel('Postal code').fill(ADDRESS.postal_code);
  await page.getByLabel('Country').selectOption(ADDRESS.country);
  await page.getByRole('radio', { name: /^Standard/ }).check();
  await fillCard(page, card);
}

/** Adds `quantity` of the product with `slug` to the cart from its page (ends on /cart). */
export async function addToCart(page, slug, quantity = 1) {
  await page.goto(`/p/${encodeURIComponent(slug)}`);
  await page.getByLabel('Quantity').fill(String(quantity));
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.waitForURL('**/cart');
}

/** Waits, reloading as the pending-order page itself does, until the order shows `status`. */
export async function waitForOrderStatus(page, status, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const shown = await page.getByTestId('order-status').getAttribute('data-status');
    if (shown === status) return;
    if (Date.now() > deadline) assert.fail(`the order stayed ${shown}, expected ${status}`);
    await page.waitForTimeout(500);
    await page.reload();
  }
}

export function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
