// "Place order" pressed while the checkout is re-quoting its total: the press is held until the
// quote lands, never lost. The order goes when the total is still the one shown at the press, and
// a total that changed is shown to confirm first. Quotes are held back here (the browser's
// requests to /checkout/quote wait until the test lets them go), so each press surely lands
// while one is on its way.
import {
  browserTest, assert, apiCustomer, productsInStock, login, addToCart, fillCheckout, waitForOrderStatus,
} from './lib.mjs';

browserTest('"Place order" pressed while the total is re-quoted waits for it and asks again if it changed', async ({ page, shot }) => {
  const customer = await apiCustomer({ prefix: 'requote' });
  const [product] = await productsInStock({ count: 1, minAvailable: 3 });
  await login(page, customer.email, customer.password);
  await addToCart(page, product.slug, 1);
  await page.goto('/checkout');
  await fillCheckout(page);
  const total = page.locator('[data-pay-shown] [data-figure="total"]');
  const place = page.getByRole('button', { name: 'Place order' });
  await place.waitFor();
  await page.waitForFunction(() => !document.querySelector('[data-place-order]').disabled);

  const waiting = [];
  await page.route('**/checkout/quote', async (route) => {
    await new Promise((resolve) => waiting.push(resolve));
    await route.continue();
  });
  const quoteOnItsWay = async () => {
    const deadline = Date.now() + 10_000;
    while (waiting.length === 0) {
      assert.ok(Date.now() < deadline, 'no quote was asked for');
      await page.waitForTimeout(50);
    }
  };
  const release = () => { while (waiting.length) waiting.shift()(); };
  const placed = [];
  page.on('request', (request) => {
    if (request.method() === 'POST' && new URL(request.url()).pathname === '/checkout'
      && /(^|&)action=place(&|$)/.test(request.postData() ?? '')) placed.push(request.url());
  });

  // Another shipping method changes the total: pressed meanwhile, nothing is placed and the new
  // total is shown to confirm.
  const before = await total.innerText();
  await page.getByRole('radio', { name: /^Express/ }).check();
  await quoteOnItsWay();
  assert.equal(await place.isEnabled(), true, '"Place order" is disabled while quoting: a press would be lost');
  await place.click();
  release();
  const note = page.locator('[data-pay-problem]');
  await note.filter({ hasText: 'The total is now' }).waitFor();
  const after = await total.innerText();
  assert.notEqual(after, before, 'express shipping left the total as it was');
  assert.ok((await note.innerText()).includes(`The total is now ${after}.`), await note.innerText());
  assert.deepEqual(placed, [], 'an order was posted with a total the shopper had not seen');
  assert.equal(new URL(page.url()).pathname, '/checkout');
  await shot('total-changed-asks-again');

  // The city typed just before the press: its re-quote is due when "Place order" is pressed. The
  // press waits for it and, the total being the same, places the order.
  await page.getByLabel('City').fill('Amsterdam-Centrum');
  await place.click();
  await quoteOnItsWay();
  assert.deepEqual(placed, [], 'the order went before its quote landed');
  release();
  await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
  assert.equal(placed.length, 1, 'the held press posted the order more or less than once');
  await waitForOrderStatus(page, 'confirmed');
  await shot('held-press-placed');
  await page.unroute('**/checkout/quote');
});
