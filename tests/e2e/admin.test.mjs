// The admin console: create a product (after a validation error that keeps what was typed),
// restock it, ship one order with a tracking number, refund another, and watch the live status
// page show every context healthy.
import {
  browserTest, assert, apiOk, apiCustomer, apiOrder, productsInStock, stockOf, adminToken, loginAsAdmin,
  uniqueSuffix, pageText,
} from './lib.mjs';

const CONTEXTS = ['identity', 'catalog', 'inventory', 'cart', 'ordering', 'payments', 'notifications'];

browserTest('admin creates and restocks a product, ships and refunds orders, sees every context healthy', async ({ page, shot }) => {
  // Two paid orders to work on, placed through the API by a customer.
  const customer = await apiCustomer({ prefix: 'admin-orders' });
  const [first, second] = await productsInStock({ count: 2, minAvailable: 3 });
  const toShip = await apiOrder(customer.token, [{ sku: first.sku, quantity: 1 }]);
  const toRefund = await apiOrder(customer.token, [{ sku: second.sku, quantity: 1 }]);
  assert.equal(toShip.status, 'confirmed');
  assert.equal(toRefund.status, 'confirmed');

  await loginAsAdmin(page, { next: '/admin' });
  assert.equal(new URL(page.url()).pathname, '/admin');
  await shot('dashboard');

  // ---- A new product: first with a bad price, which re-renders the form with what was typed.
  await page.getByTestId('admin-nav').getByRole('link', { name: 'Products' }).click();
  await page.getByRole('heading', { level: 1, name: 'Products' }).waitFor();
  await page.getByRole('link', { name: 'New product' }).click();
  await page.getByRole('heading', { level: 1, name: 'New product' }).waitFor();

  const suffix = uniqueSuffix();
  const name = `E2E Storm Lantern ${suffix}`;
  const sku = `E2E-LANTERN-${suffix}`;
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('SKU').fill(sku);
  await page.getByLabel('Brand').fill('E2E Works');
  await page.getByLabel('Status').selectOption('active');
  await page.getByLabel('Price', { exact: true }).fill('twelve euros');
  await page.getByLabel('Description').fill('A lantern that survives the browser tests.');
  await page.getByLabel('Attributes').fill('color: green\nmaterial: steel');
  const [invalid] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/admin/products'),
    page.getByRole('button', { name: 'Create product' }).click(),
  ]);
  assert.equal(invalid.status(), 422, 'a bad price was not answered with 422');
  const priceError = page.getByTestId('error-price');
  await priceError.waitFor();
  assert.ok((await priceError.innerText()).trim().length > 0, 'the price error says nothing');
  assert.equal(await page.getByLabel('Price', { exact: true }).getAttribute('aria-invalid'), 'true');
  assert.equal(await page.getByLabel('Name').inputValue(), name, 'the typed name was lost');
  assert.equal(await page.getByLabel('SKU').inputValue(), sku, 'the typed SKU was lost');
  assert.equal(await page.getByLabel('Brand').inputValue(), 'E2E Works');
  assert.equal(await page.getByLabel('Status').inputValue(), 'active');
  assert.equal(await page.getByLabel('Price', { exact: true }).inputValue(), 'twelve euros');
  assert.match(await page.getByLabel('Attributes').inputValue(), /material: steel/);
  await shot('product-validation-error');

  await page.getByLabel('Price', { exact: true }).fill('12.50');
  await page.getByRole('button', { name: 'Create product' }).click();
  await page.waitForURL(/\/admin\/products\/[0-9a-f-]{36}$/);
  assert.match(await page.getByTestId('flash').innerText(), /created/i);
  await page.getByRole('heading', { level: 1, name: `Edit ${name}` }).waitFor();
  await shot('product-created');
  const created = await apiOk('GET', `/api/v1/catalog/products/by-sku?sku=${encodeURIComponent(sku)}`, {
    token: await adminToken(),
  });
  const product = created.items[0];
  assert.ok(product, `the API does not know ${sku}: ${JSON.stringify(created)}`);
  assert.equal(product.price.amount, 1250);
  assert.equal(product.status, 'active');

  // ---- Restock it. Inventory learns of new products through the event bus: reload until it has.
  await page.goto(`/admin/inventory/${encodeURIComponent(sku)}`);
  for (let i = 0; i < 20 && (await page.getByTestId('no-stock').count()) > 0; i++) {
    await page.waitForTimeout(500);
    await page.reload();
  }
  await page.getByTestId('on-hand').waitFor();
  const onHandBefore = Number(await page.getByTestId('on-hand').innerText());
  await page.getByLabel('Adjustment').selectOption('restock');
  await page.getByLabel('Quantity').fill('25');
  await page.getByLabel('Reason').fill('E2E: first delivery');
  await page.getByRole('button', { name: 'Adjust stock' }).click();
  await page.getByTestId('movements').waitFor();
  assert.equal(Number(await page.getByTestId('on-hand').innerText()), onHandBefore + 25);
  assert.match(await page.getByTestId('movements').innerText(), /E2E: first delivery/);
  await shot('restocked');
  assert.equal((await stockOf(sku)).on_hand, onHandBefore + 25, 'the API disagrees with the page');

  // The shop sells it now.
  await page.goto(`/p/${encodeURIComponent(product.slug)}`);
  assert.equal((await page.getByTestId('product-name').innerText()).trim(), name);
  assert.match(await page.getByTestId('product-price').innerText(), /12\.50/);
  assert.equal(await page.getByTestId('stock-status').getAttribute('data-stock'), 'in_stock');
  await shot('product-in-shop');

  // ---- Ship the first order with a tracking number.
  await page.goto('/admin/orders');
  await page.getByTestId('admin-orders').waitFor();
  await page.locator(`[data-testid="order-row"][data-order-id="${toShip.id}"]`).getByRole('link', { name: toShip.number }).click();
  await page.getByRole('heading', { level: 1, name: `Order ${toShip.number}` }).waitFor();
  assert.equal(await page.getByTestId('order-status').getAttribute('data-status'), 'confirmed');
  await page.getByLabel('Carrier').fill('DHL');
  const tracking = `JD0146${suffix}`;
  await page.getByLabel('Tracking number').fill(tracking);
  await page.getByRole('button', { name: 'Mark shipped' }).click();
  await page.getByTestId('tracking').waitFor();
  assert.equal(await page.getByTestId('order-status').getAttribute('data-status'), 'shipped');
  assert.match(await page.getByTestId('tracking').innerText(), new RegExp(`DHL\\s+${tracking}`));
  await shot('order-shipped');
  const shipped = await apiOk('GET', `/api/v1/orders/${toShip.id}`, { token: customer.token });
  assert.equal(shipped.status, 'shipped');
  assert.equal(shipped.tracking?.tracking_number, tracking);

  // ---- Refund the second one in full (the amount left empty means everything).
  await page.goto(`/admin/orders/${toRefund.id}`);
  await page.getByRole('heading', { level: 1, name: `Order ${toRefund.number}` }).waitFor();
  const total = (await page.getByTestId('order-total').innerText()).trim();
  await page.getByLabel('Refund reason').fill('Arrived damaged');
  await page.getByRole('button', { name: 'Refund', exact: true }).click();
  await page.waitForFunction(
    () => document.querySelector('[data-testid="order-status"]')?.getAttribute('data-status') === 'refunded',
    null,
    { timeout: 15_000 },
  );
  assert.equal((await page.getByTestId('order-refunded').innerText()).trim(), total, 'the refund is not the whole total');
  assert.match(await page.getByTestId('timeline').innerText(), /refunded/);
  await shot('order-refunded');
  const refunded = await apiOk('GET', `/api/v1/orders/${toRefund.id}`, { token: customer.token });
  assert.equal(refunded.status, 'refunded');

  // ---- Live status: every context healthy, and the figures refresh themselves.
  await page.getByTestId('admin-nav').getByRole('link', { name: /status/i }).click();
  await page.getByTestId('status-table').waitFor();
  for (const context of CONTEXTS) {
    const row = page.getByTestId(`status-${context}`);
    assert.equal(await row.getAttribute('data-state'), 'ready', `${context} is not ready: ${await row.innerText()}`);
  }
  const stamp = page.getByTestId('status-updated');
  const firstStamp = await stamp.getAttribute('datetime');
  await page.waitForFunction(
    (before) => document.querySelector('[data-testid="status-updated"]')?.getAttribute('datetime') !== before,
    firstStamp,
    { timeout: 10_000 },
  );
  assert.ok(Number((await page.getByTestId('orders-today').innerText()).replace(/\D/g, '')) >= 2, 'orders today misses the two orders');
  assert.doesNotMatch(await pageText(page), /unavailable|unreachable/i);
  await shot('status');
});
