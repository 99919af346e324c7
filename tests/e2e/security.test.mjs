// What a browser must not be able to do: a customer reaching admin pages, a form posted with a
// forged or missing CSRF token, script smuggled in through a product name, and an open redirect
// after sign-in.
import {
  browserTest, assert, api, apiOk, apiCustomer, adminToken, login, loginAsAdmin, productsInStock,
  stockOf, uniqueSuffix, BASE_URL,
} from './lib.mjs';

// The admin console's pages, listed so a page dropped from the navigation is still checked; the
// test adds whatever else the admin's own navigation links to, and detail pages of real records.
const ADMIN_PAGES = [
  '/admin', '/admin/products', '/admin/products/new', '/admin/categories', '/admin/inventory',
  '/admin/inventory/low-stock', '/admin/orders', '/admin/users', '/admin/audit', '/admin/dead-letters',
  '/admin/notifications', '/admin/status', '/admin/status.json',
];

/** Every /admin link an admin sees on the dashboard and in the admin navigation. */
async function adminLinks(page) {
  await loginAsAdmin(page, { next: '/admin' });
  const hrefs = await page.$$eval('a[href^="/admin"]', (as) => as.map((a) => a.getAttribute('href')));
  return hrefs.map((h) => h.split('#')[0]).filter((h) => !h.includes('?'));
}

browserTest('a customer gets 403 on every admin page', async ({ page, shot, otherUser }) => {
  const adminPage = await (await otherUser()).newPage();
  const [product] = await productsInStock({ count: 1, minAvailable: 1 });
  const pages = new Set([
    ...ADMIN_PAGES,
    ...(await adminLinks(adminPage)),
    `/admin/products/${product.id}`,
    `/admin/inventory/${product.sku}`,
  ]);
  const orders = await apiOk('GET', '/api/v1/orders/admin/orders?limit=1', { token: await adminToken() });
  if (orders.items?.length) pages.add(`/admin/orders/${orders.items[0].id}`);

  const customer = await apiCustomer({ prefix: 'not-admin' });
  await login(page, customer.email, customer.password);
  assert.equal(
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).count(),
    0,
    'a customer is offered the admin link',
  );

  const refused = [];
  for (const path of [...pages].sort()) {
    const res = await page.goto(path);
    if (res.status() !== 403) refused.push(`${path} answered ${res.status()}`);
    else if (!path.endsWith('.json')) {
      const error = page.getByTestId('error-page');
      assert.equal(await error.getAttribute('data-status'), '403', `${path}: no 403 error page`);
      assert.doesNotMatch(await page.content(), /admin-nav|data-testid="admin-/, `${path} leaks admin markup`);
    }
    if (path === '/admin/products') await shot('admin-403');
  }
  assert.deepEqual(refused, [], 'admin pages a customer could open');

  // Posting to an admin action with the customer's own valid CSRF token is refused too.
  await page.goto('/cart');
  const csrf = await page.locator('input[name="_csrf"]').first().inputValue();
  const post = await page.request.post('/admin/products', {
    form: { _csrf: csrf, name: 'Sneaky', sku: `SNEAKY-${uniqueSuffix()}`, price: '1.00', status: 'active' },
    maxRedirects: 0,
  });
  assert.equal(post.status(), 403, 'a customer could post to an admin action');
});

browserTest('a forged or missing CSRF token is refused', async ({ page, shot }) => {
  const customer = await apiCustomer({ prefix: 'csrf' });
  const [product] = await productsInStock({ count: 1, minAvailable: 2 });
  await login(page, customer.email, customer.password);

  for (const attack of ['forged', 'missing']) {
    await page.goto(`/p/${encodeURIComponent(product.slug)}`);
    const form = page.locator('form').filter({ has: page.getByRole('button', { name: 'Add to cart' }) });
    const field = form.locator('input[name="_csrf"]');
    if (attack === 'forged') {
      const real = await field.inputValue();
      assert.ok(real.length >= 16, 'the form carries no real CSRF token');
      // Same length and alphabet, different value: what a cross-site page would have to guess.
      const forged = [...real].map((c) => (c === 'A' ? 'B' : 'A')).join('');
      await field.evaluate((el, v) => { el.value = v; }, forged);
    } else {
      await field.evaluate((el) => el.remove());
    }
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/cart/add'),
      form.getByRole('button', { name: 'Add to cart' }).click(),
    ]);
    assert.equal(res.status(), 403, `a ${attack} CSRF token was accepted`);
    await page.getByTestId('error-page').waitFor();
    await shot(`csrf-${attack}`);
  }

  // Nothing reached the cart.
  const cart = await apiOk('GET', '/api/v1/cart', { token: customer.token });
  assert.equal((cart.items ?? []).length, 0, 'a refused form still changed the cart');

  // The same form with its real token works (so the refusals above were about the token).
  await page.goto(`/p/${encodeURIComponent(product.slug)}`);
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.waitForURL('**/cart');
  await page.locator(`[data-testid="cart-line"][data-sku="${product.sku}"]`).waitFor();
});

browserTest('a product named <script> renders as text everywhere', async ({ page, shot, dialogs, otherUser }) => {
  const token = await adminToken();
  const suffix = uniqueSuffix();
  const name = '<script>alert(1)</script>';
  const sku = `XSS-${suffix}`;
  const slug = `xss-${suffix.toLowerCase()}`;
  await apiOk('POST', '/api/v1/catalog/products', {
    token,
    body: {
      sku,
      name,
      slug,
      status: 'active',
      brand: '<img src=x onerror=alert(2)>',
      description: '"><svg onload=alert(3)> & <b>not bold</b>',
      attributes: { color: '<i onmouseover=alert(4)>red</i>' },
      price: { amount: 999, currency: 'EUR' },
    },
  });
  // Inventory learns of the product through the bus; then give it stock so it can be carted.
  for (let i = 0; ; i++) {
    const res = await api('POST', `/api/v1/inventory/${sku}/adjustments`, {
      token,
      body: { kind: 'restock', quantity: 5, reason: 'E2E escaping test' },
    });
    if (res.status < 300) break;
    assert.ok(i < 40 && res.status === 404, `restocking ${sku}: ${res.status} ${JSON.stringify(res.body)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal((await stockOf(sku)).available, 5);

  const customer = await apiCustomer({ prefix: 'xss' });
  await login(page, customer.email, customer.password);

  // Product page: the name is the heading's text, not markup.
  await page.goto(`/p/${slug}`);
  assert.equal(await page.getByTestId('product-name').innerText(), name);
  assert.match(await page.locator('body').innerText(), /not bold/);
  await shot('product');

  // Search results and the cart show it as text as well.
  await page.goto(`/search?q=${encodeURIComponent('alert')}`);
  await page.locator(`[data-testid="product-card"][data-sku="${sku}"]`).waitFor();
  assert.match(await page.locator(`[data-testid="product-card"][data-sku="${sku}"]`).innerText(), /<script>alert\(1\)<\/script>/);
  await shot('search');
  await page.goto(`/p/${slug}`);
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.waitForURL('**/cart');
  assert.match(await page.locator(`[data-testid="cart-line"][data-sku="${sku}"]`).innerText(), /<script>alert\(1\)<\/script>/);
  await shot('cart');

  // And the admin console, in another browser.
  const adminPage = await (await otherUser()).newPage();
  await loginAsAdmin(adminPage, { next: '/admin/products?q=alert' });
  await adminPage.locator(`[data-testid="product-row"][data-sku="${sku}"]`).waitFor();
  await shot('admin-products', adminPage);
  await adminPage.locator(`[data-testid="product-row"][data-sku="${sku}"]`).getByRole('link').first().click();
  assert.equal(await adminPage.getByLabel('Name').inputValue(), name);
  await shot('admin-edit', adminPage);

  for (const p of [page, adminPage]) {
    const injected = await p.evaluate(() => ({
      scripts: [...document.scripts].filter((s) => s.textContent.includes('alert(')).length,
      handlers: document.querySelectorAll('[onerror],[onload],[onmouseover]').length,
    }));
    assert.deepEqual(injected, { scripts: 0, handlers: 0 }, `markup from the product data is live on ${p.url()}`);
  }
  assert.deepEqual(dialogs, [], 'a script from the product data ran');
});

browserTest('sign-in does not redirect off-site', async ({ page, context, shot }) => {
  const customer = await apiCustomer({ prefix: 'redirect' });
  // Should the app redirect off-site, the browser must not leave the machine: answer locally.
  const leftSite = [];
  await page.route((url) => url.hostname.endsWith('evil.example'), (route) => {
    leftSite.push(route.request().url());
    return route.fulfill({ status: 200, contentType: 'text/html', body: '<h1>evil</h1>' });
  });

  const origin = new URL(BASE_URL).origin;
  for (const next of ['https://evil.example/', '//evil.example/', '/\\evil.example/', 'https:evil.example']) {
    await login(page, customer.email, customer.password, { next });
    assert.equal(new URL(page.url()).origin, origin, `next=${next} sent the browser to ${page.url()}`);
    assert.deepEqual(leftSite, [], `next=${next} redirected off-site`);
    await context.clearCookies(); // signed out, for the next attempt
  }
  await shot('after-login');

  // A local `next` is still honoured.
  await login(page, customer.email, customer.password, { next: '/orders' });
  assert.equal(new URL(page.url()).pathname, '/orders');
});
