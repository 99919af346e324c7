// A declined card: the checkout says so clearly, nothing is charged, the reserved units go back
// to stock, the cart is kept, and another card then places the order.
import {
  browserTest, assert, apiCustomer, productsInStock, stockOf, login, addToCart, fillCheckout,
  waitForOrderStatus, CARD_DECLINED, CARD_OK,
} from './lib.mjs';

/** Polls the stock of `sku` until `check` holds (the reservation is released asynchronously). */
async function stockSettles(sku, check, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let stock;
  while (Date.now() < deadline) {
    stock = await stockOf(sku);
    if (check(stock)) return stock;
    await new Promise((r) => setTimeout(r, 250));
  }
  return stock;
}

browserTest('a declined card shows a clear message and the stock is back', async ({ page, shot }) => {
  const customer = await apiCustomer({ prefix: 'declined' });
  const [product] = await productsInStock({ count: 1, minAvailable: 5 });
  const before = await stockOf(product.sku);

  await login(page, customer.email, customer.password);
  await addToCart(page, product.slug, 2);
  await page.locator(`[data-testid="cart-line"][data-sku="${product.sku}"]`).waitFor();

  await page.getByRole('link', { name: 'Proceed to checkout' }).click();
  await page.waitForURL('**/checkout');
  await fillCheckout(page, { card: CARD_DECLINED });
  await page.getByRole('button', { name: 'Place order' }).click();

  const error = page.getByTestId('checkout-error');
  await error.waitFor();
  const message = await error.innerText();
  assert.match(message, /Your card was declined/, `unclear message: ${message}`);
  assert.match(message, /Nothing was charged/);
  assert.equal(await error.getAttribute('role'), 'alert', 'the error is not announced to screen readers');
  assert.equal(new URL(page.url()).pathname, '/checkout', 'a declined card left the checkout page');
  // The typed card number is not echoed back into the page.
  assert.equal(await page.getByLabel('Card number').inputValue(), '');
  assert.ok(!(await page.content()).includes(CARD_DECLINED.replace(/\s/g, '')), 'the full card number is in the page');
  await shot('declined');

  // Stock: the reservation was released, so what is available is what it was.
  const after = await stockSettles(product.sku, (s) => s.available === before.available);
  assert.equal(after.available, before.available, `available ${before.available} before, ${after.available} after`);
  assert.equal(after.on_hand, before.on_hand, 'units left the warehouse for a declined order');

  // The cart kept its line, so another card can be tried at once.
  await page.goto('/cart');
  await page.locator(`[data-testid="cart-line"][data-sku="${product.sku}"]`).waitFor();
  await shot('cart-kept');
  await page.getByRole('link', { name: 'Proceed to checkout' }).click();
  await page.waitForURL('**/checkout');
  await fillCheckout(page, { card: CARD_OK });
  await page.getByRole('button', { name: 'Place order' }).click();
  await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
  await waitForOrderStatus(page, 'confirmed');
  await shot('retried-confirmed');
  const committed = await stockSettles(product.sku, (s) => s.on_hand === before.on_hand - 2);
  assert.equal(committed.on_hand, before.on_hand - 2, 'the paid order did not take its two units');
});
