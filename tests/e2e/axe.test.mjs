// axe-core on every page of the shop and the admin console, at a desktop and a phone width:
// no WCAG 2.0/2.1/2.2 A or AA violation that axe can detect. The storefront anonymous and
// signed in (with an order, a saved address and card, and a return), then the admin console
// with every page of its navigation and a record of each kind.
//
// axe is not a page script: its source is evaluated through the DevTools protocol, which the
// pages' `script-src 'self'` policy does not govern, so the CSP stays on while it runs.
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  browserTest, assert, api, apiOk, apiCustomer, apiOrder, adminToken, productsInStock, login, loginAsAdmin,
  addToCart, uniqueSuffix, ADDRESS,
} from './lib.mjs';

const require = createRequire(import.meta.url);
const AXE_SOURCE = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');

/** WCAG 2.0, 2.1 and 2.2, levels A and AA (axe has no 2.2 A rules; `wcag22aa` is the new one). */
const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];

/**
 * Rules switched off, each with the reason it cannot apply here. Empty: every rule of the tags
 * runs on every page.
 */
const DISABLED_RULES = {};

const WIDTHS = [
  { name: 'desktop', width: 1280, height: 800 },
  { name: 'mobile', width: 390, height: 844 },
];
const DESKTOP = { width: WIDTHS[0].width, height: WIDTHS[0].height };

/**
 * Runs axe on the page at each width (resizing, not reloading: the media queries follow the
 * viewport) and returns the violations as readable lines.
 */
async function violationsOf(page, label) {
  const found = [];
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
  for (const w of WIDTHS) {
    await page.setViewportSize({ width: w.width, height: w.height });
    const violations = await page.evaluate(
      async ({ tags, disabled }) => {
        const rules = Object.fromEntries(disabled.map((id) => [id, { enabled: false }]));
        const result = await window.axe.run(document, {
          runOnly: { type: 'tag', values: tags },
          rules,
          resultTypes: ['violations'],
        });
        return result.violations.map((v) => ({
          id: v.id,
          impact: v.impact,
          help: v.help,
          nodes: v.nodes.map((n) => ({
            target: n.target.join(' '),
            summary: (n.failureSummary ?? '').split('\n').slice(1, 3).map((s) => s.trim()).join(' / '),
          })),
        }));
      },
      { tags: TAGS, disabled: Object.keys(DISABLED_RULES) },
    );
    for (const v of violations) {
      const nodes = v.nodes
        .slice(0, 5)
        .map((n) => `      ${n.target}${n.summary ? ` — ${n.summary}` : ''}`)
        .join('\n');
      const more = v.nodes.length > 5 ? `\n      … and ${v.nodes.length - 5} more` : '';
      found.push(`${label} @ ${w.name} ${w.width}px: ${v.id} (${v.impact}) ${v.help}\n${nodes}${more}`);
    }
  }
  await page.setViewportSize(DESKTOP);
  return found;
}

/**
 * Opens each path on `page` and audits it; `expect` maps a path to the status it should answer
 * (200 unless said). Returns every violation; `artifact` names the JSON report.
 */
async function auditAll(page, paths, { dir, expect = {} } = {}) {
  const problems = [];
  const started = Date.now();
  for (const p of paths) {
    const res = await page.goto(p);
    const want = expect[p] ?? 200;
    assert.equal(res.status(), want, `${p} answered ${res.status()}, expected ${want}`);
    problems.push(...(await violationsOf(page, p)));
  }
  if (dir) {
    await writeFile(path.join(dir, 'axe-violations.txt'), problems.join('\n\n') || 'none\n');
  }
  console.log(`axe: ${paths.length} pages × ${WIDTHS.length} widths in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return problems;
}

function assertClean(problems) {
  assert.ok(problems.length === 0, `axe found ${problems.length} violation(s):\n\n${problems.join('\n\n')}`);
}

/** The first link on the current page whose href matches `re` (a path), or fails. */
async function firstLink(page, re, what) {
  const hrefs = await page.locator('a[href]').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  const href = hrefs.find((h) => re.test(h));
  assert.ok(href, `${page.url()} links to no ${what}`);
  return href;
}

browserTest('axe: storefront pages signed out have no WCAG A/AA violations', async ({ page, dir }) => {
  const [product] = await productsInStock({ count: 1, minAvailable: 1 });
  await page.setViewportSize(DESKTOP);
  await page.goto('/');
  const category = await firstLink(page, /^\/c\/[^/?]+$/, 'category');
  const paths = [
    '/', '/login', '/register', '/forgot-password', '/reset-password?token=a11y-not-a-token',
    '/verify-email?token=a11y-not-a-token', '/verify-email', `/p/${encodeURIComponent(product.slug)}`, category,
    `/search?q=${encodeURIComponent(product.name.split(/\s+/)[0])}`, '/search?q=zzqxj-nothing-matches', '/cart',
    '/p/a11y-no-such-product',
  ];
  const problems = await auditAll(page, paths, { dir, expect: { '/p/a11y-no-such-product': 404 } });

  // A form answered with its errors (every field marked invalid and described).
  await page.goto('/register');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForLoadState('domcontentloaded');
  problems.push(...(await violationsOf(page, '/register (refused)')));
  assertClean(problems);
});

browserTest('axe: storefront and account pages signed in have no WCAG A/AA violations', async ({ page, dir }) => {
  const customer = await apiCustomer({ prefix: 'axe' });
  const [first, second] = await productsInStock({ count: 2, minAvailable: 3 });
  const admin = await adminToken();

  // An order that stays confirmed, and one delivered with a return requested: both detail pages.
  const confirmed = await apiOrder(customer.token, [{ sku: first.sku, quantity: 1 }]);
  const delivered = await apiOrder(customer.token, [{ sku: second.sku, quantity: 1 }]);
  await apiOk('POST', `/api/v1/orders/${delivered.id}/ship`, {
    token: admin, body: { carrier: 'DHL', tracking_number: 'JD0146000062' },
  });
  await apiOk('POST', `/api/v1/orders/${delivered.id}/deliver`, { token: admin });
  await apiOk('POST', `/api/v1/orders/${delivered.id}/returns`, {
    token: customer.token, body: { reason: 'Does not fit', lines: [{ sku: second.sku, quantity: 1 }] },
  });
  const address = await apiOk('POST', '/api/v1/users/me/addresses', {
    token: customer.token, body: { label: 'Home', address: ADDRESS },
  });

  await page.setViewportSize(DESKTOP);
  await login(page, customer.email, customer.password);
  await addToCart(page, first.slug, 1);
  const paths = [
    '/', '/cart', '/checkout', '/orders', `/orders/${confirmed.id}`, `/orders/${delivered.id}`,
    `/p/${encodeURIComponent(first.slug)}`, '/account', '/account/password', '/account/sessions',
    '/account/addresses', `/account/addresses/${address.id}/edit`, '/account/cards', '/account/notifications',
    '/account/delete', '/account/privacy',
  ];
  const problems = await auditAll(page, paths, { dir });

  // Every page of the account navigation is among those audited.
  await page.goto('/account');
  const accountLinks = await page.getByRole('navigation', { name: 'Account' }).locator('a')
    .evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  assert.deepEqual(accountLinks.filter((h) => !paths.includes(h)), [], 'account pages the audit does not visit');

  // The checkout answered with its errors.
  await page.goto('/checkout');
  await page.getByLabel('Full name').fill('');
  await page.getByRole('button', { name: 'Update totals' }).click();
  await page.waitForLoadState('domcontentloaded');
  problems.push(...(await violationsOf(page, '/checkout (refused)')));
  assertClean(problems);
});

browserTest('axe: every admin console page has no WCAG A/AA violations', async ({ page, dir }) => {
  const admin = await adminToken();
  const customer = await apiCustomer({ prefix: 'axe-admin' });
  const [product] = await productsInStock({ count: 1, minAvailable: 3 });

  // A webhook endpoint (deleted at the end) that an order's events give a message to show.
  const endpoint = await apiOk('POST', '/api/v1/notifications/webhooks/endpoints', {
    token: admin,
    body: { url: `https://hooks.example.com/a11y-${randomUUID()}`, description: 'axe audit', event_types: ['ordering.order.*'] },
  });
  try {
    const order = await apiOrder(customer.token, [{ sku: product.sku, quantity: 1 }]);
    const customerId = (await apiOk('GET', '/api/v1/users/me', { token: customer.token })).id;
    // A request of its own (console.test.mjs traces `products?limit=1`, and wants it uncached).
    const trace = (await api('GET', `/api/v1/catalog/search?q=a11y${uniqueSuffix()}`)).headers.get('x-trace-id');

    await page.setViewportSize(DESKTOP);
    await loginAsAdmin(page, { next: '/admin' });
    const nav = await page.getByTestId('admin-nav').locator('a')
      .evaluateAll((as) => as.map((a) => a.getAttribute('href')));

    await page.goto('/admin/products');
    const productPage = await firstLink(page, /^\/admin\/products\/[0-9a-f-]{36}$/, 'product');
    await page.goto('/admin/categories');
    const categoryPage = await firstLink(page, /^\/admin\/categories\/[^/]+$/, 'category');

    // The endpoint's page lists the order's message once the event reached notifications.
    let messagePage;
    for (let i = 0; i < 40 && !messagePage; i++) {
      await page.goto(`/admin/webhooks/${endpoint.id}`);
      const hrefs = await page.locator('a[href*="/messages/"]').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
      messagePage = hrefs[0];
      if (!messagePage) await page.waitForTimeout(250);
    }
    assert.ok(messagePage, 'the webhook endpoint got no message for the order within 10 s');

    // The API request's trace, once its spans reached the console's store.
    let tracePage;
    for (let i = 0; i < 40 && trace && !tracePage; i++) {
      const res = await page.goto(`/admin/traces/${trace}`);
      if (res.status() === 200 && (await page.getByTestId('span-row').count()) > 0) tracePage = `/admin/traces/${trace}`;
      else await page.waitForTimeout(250);
    }
    assert.ok(tracePage, `the trace ${trace} of an API request never showed in the console`);

    const paths = [
      ...nav,
      '/admin/products/new', productPage, categoryPage, `${categoryPage}/delete`,
      '/admin/inventory/low-stock', `/admin/inventory/${encodeURIComponent(product.sku)}`,
      `/admin/orders/${order.id}`, `/admin/webhooks/${endpoint.id}`, messagePage,
      tracePage, `/admin/users/${customerId}/privacy`,
    ];
    const problems = await auditAll(page, [...new Set(paths)], { dir });
    assertClean(problems);
  } finally {
    await api('DELETE', `/api/v1/notifications/webhooks/endpoints/${endpoint.id}`, { token: admin });
  }
});
