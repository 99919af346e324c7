// Browser shoppers beside the Locust mix (as the OpenTelemetry demo runs a few real browsers):
// N headless Chromium shoppers, driven by playwright-core from tests/e2e (installed by
// .ci/install-e2e.sh), each signed in as its own pool user, loop until the deadline through
// home → search → product page → add to cart → checkout with the 4242… card → confirmed order.
//
//   node bench/locust/shoppers.mjs BASE_URL POOL.json SECONDS SHOPPERS OUT.json
//
// Writes {shoppers, journeys, failures, steps: {name: {count, p50, p95}}, errors} to OUT.json.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(path.join(root, 'tests', 'e2e', 'package.json'));
const { chromium } = require('playwright-core');

const [base, poolFile, seconds, count, outFile] = process.argv.slice(2);
const pool = JSON.parse(readFileSync(poolFile, 'utf8'));
const deadline = Date.now() + Number(seconds) * 1000;
const shoppers = Number(count);
const bySku = new Map(pool.products.map((p) => [p.sku, p]));
const buyable = pool.buy_skus.map((s) => bySku.get(s)).filter((p) => p && p.slug);
const timings = {};
const errors = [];
let journeys = 0;
let failures = 0;

async function step(name, fn) {
  const t = performance.now();
  const r = await fn();
  (timings[name] ??= []).push(performance.now() - t);
  return r;
}

const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];

async function shopper(browser, user) {
  const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 900 }, locale: 'en-GB' });
  context.setDefaultTimeout(20_000);
  const page = await context.newPage();
  await page.goto('/login');
  const form = page.locator('form').filter({ has: page.getByRole('button', { name: 'Sign in' }) });
  await form.getByLabel('E-mail address').fill(user.email);
  await form.getByLabel('Password').fill(user.password);
  await form.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.pathname !== '/login');
  while (Date.now() < deadline) {
    try {
      const t = performance.now();
      await step('home page', () => page.goto('/'));
      await step('search (header search box)', async () => {
        await page.getByRole('searchbox', { name: 'Search products' }).fill(pick(pool.words));
        await page.getByRole('search').getByRole('button', { name: 'Search' }).click();
        await page.waitForURL(/\/search\?/);
      });
      const product = pick(buyable);
      await step('product page', async () => {
        await page.goto(`/p/${encodeURIComponent(product.slug)}`);
        await page.getByTestId('product-name').waitFor();
      });
      await step('add to cart', async () => {
        await page.getByLabel('Quantity').fill('1');
        await page.getByRole('button', { name: 'Add to cart' }).click();
        await page.waitForURL('**/cart');
      });
      await step('checkout page', async () => {
        await page.getByRole('link', { name: 'Proceed to checkout' }).click();
        await page.waitForURL('**/checkout');
      });
      await page.getByLabel('Full name').fill('Browser Shopper');
      await page.getByLabel('Address line 1').fill('12 Analytical Row');
      await page.getByLabel('City').fill('Berlin');
      await page.getByLabel('Postal code').fill('10115');
      await page.getByLabel('Country').selectOption('DE');
      await page.getByRole('radio', { name: /^Standard/ }).check();
      const fillCard = async () => {
        await page.getByRole('radio', { name: 'Use a new card' }).check();
        await page.getByLabel('Card number').fill('4242 4242 4242 4242');
        await page.getByLabel('Expiry month').fill('12');
        await page.getByLabel('Expiry year').fill(String(new Date().getFullYear() + 3));
        await page.getByLabel('CVC').fill('123');
      };
      await fillCard();
      // As a shopper does (and tests/e2e/shopper.test.mjs): see the total, then place the order.
      await step('update totals (quote)', async () => {
        await page.getByRole('button', { name: 'Update totals' }).click();
        await page.getByTestId('quote-total').waitFor();
      });
      await fillCard(); // the card number is never echoed back into the page
      await step('place order → confirmation page', async () => {
        await page.getByRole('button', { name: 'Place order' }).click();
        await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
      });
      const flash = await page.getByTestId('flash').innerText();
      if (!/confirmed/i.test(flash)) throw new Error(`order not confirmed: ${flash}`);
      (timings['whole journey'] ??= []).push(performance.now() - t);
      journeys += 1;
    } catch (err) {
      failures += 1;
      errors.push(`${user.email} at ${page.url()}: ${String(err.message ?? err).split('\n')[0]}`);
      if (failures === 1) {
        writeFileSync(`${outFile}.failure.html`, await page.content().catch(() => ''));
        await page.screenshot({ path: `${outFile}.failure.png`, fullPage: true }).catch(() => {});
      }
      // Start the next journey from a clean cart.
      await page.goto('/cart').catch(() => {});
    }
  }
  await context.close();
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

const browser = await chromium.launch({
  executablePath: process.env.E2E_CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  headless: true,
});
try {
  const users = pool.browser_users ?? [];
  if (users.length < shoppers) throw new Error(`the pool has ${users.length} browser users, ${shoppers} wanted`);
  await Promise.all(users.slice(0, shoppers).map((u) => shopper(browser, u).catch((err) => {
    failures += 1;
    errors.push(`${u.email}: ${String(err.message ?? err).split('\n')[0]}`);
  })));
} finally {
  await browser.close();
}
const steps = Object.fromEntries(Object.entries(timings).map(([k, xs]) => [k, {
  count: xs.length, p50: quantile(xs, 0.5), p95: quantile(xs, 0.95),
}]));
writeFileSync(outFile, JSON.stringify({ shoppers, journeys, failures, steps, errors }, null, 2));
console.log(`browser shoppers: ${journeys} journeys, ${failures} failed`);
if (failures) for (const e of errors.slice(0, 5)) console.log(`  ${e}`);
