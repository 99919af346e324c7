// The shopper's journey: register, verify through the mailbox, sign in, search, filter by a
// facet, add two products, check out with the success card, see the order confirmed and the
// confirmation e-mail, find the order in the history.
import {
  browserTest, assert, apiOk, mailbox, register, verifyEmail, login, uniqueEmail, pageText, fillCard,
  fillCheckout, waitForOrderStatus, escapeRegExp, CARD_OK,
} from './lib.mjs';

/**
 * A search word and a brand facet under it with at least two products in stock, found through
 * the API so the test does not hard-code the demo catalog: the word is an attribute value
 * (colour, material) shared across brands, so ticking one brand visibly narrows the results.
 */
async function searchScenario() {
  const all = await apiOk('GET', '/api/v1/catalog/products?limit=100');
  const skus = all.items.map((p) => `sku=${encodeURIComponent(p.sku)}`).join('&');
  const stock = await apiOk('GET', `/api/v1/inventory?${skus}`);
  const available = new Map(stock.items.map((s) => [s.sku, s.available]));
  const words = [...new Set(all.items.flatMap((p) => Object.values(p.attributes ?? {})))].filter((w) => w.length > 3);
  for (const word of words) {
    const found = await apiOk('GET', `/api/v1/catalog/search?q=${encodeURIComponent(word)}&limit=100`);
    const brands = new Set(found.items.map((p) => p.brand));
    if (brands.size < 2) continue;
    for (const brand of brands) {
      const inStock = found.items.filter((p) => p.brand === brand && (available.get(p.sku) ?? 0) >= 3);
      if (inStock.length >= 2) return { word, brand, products: inStock.slice(0, 2), total: found.total };
    }
  }
  assert.fail('no search word in the demo catalog has a brand with two products in stock');
}

browserTest('shopper registers, verifies, searches, filters, checks out and is confirmed', async ({ page, shot }) => {
  const scenario = await searchScenario();
  const email = uniqueEmail('shopper');

  // Home: featured products and categories.
  await page.goto('/');
  assert.ok((await page.getByTestId('product-card').count()) > 0, 'the home page shows no products');
  await shot('home');

  // Register, then confirm the address through the link in the mail.
  await register(page, { email, name: 'Grace Hopper' });
  await page.getByTestId('registration-success').waitFor();
  await shot('registered');
  await verifyEmail(page, email);
  assert.match(await pageText(page), /confirmed/i, 'no confirmation after following the mail link');
  await shot('email-verified');

  await login(page, email);
  assert.match(await page.getByTestId('flash').innerText(), /welcome/i);

  // Search through the header's search box.
  await page.getByRole('searchbox', { name: 'Search products' }).fill(scenario.word);
  await page.getByRole('search').getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/\/search\?/);
  await page.getByRole('heading', { level: 1, name: new RegExp(scenario.word, 'i') }).waitFor();
  const unfiltered = await page.getByTestId('product-card').count();
  assert.ok(unfiltered > 0, `no results for ${scenario.word}`);
  await shot('search-results');

  // Narrow the results with the brand facet.
  const facets = page.getByTestId('facets');
  await facets.getByRole('checkbox', { name: new RegExp(`^${scenario.brand}\\b`) }).check();
  await facets.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForURL(/brand=/);
  const cards = page.getByTestId('product-card');
  const filtered = await cards.count();
  assert.ok(filtered >= 2 && filtered < unfiltered, `the brand filter left ${filtered} of ${unfiltered} products`);
  for (const brand of await cards.locator('.product-card-brand').allInnerTexts()) {
    assert.equal(brand.trim(), scenario.brand, 'a product of another brand survived the brand filter');
  }
  await shot('search-filtered');
  const resultsUrl = page.url();

  // Add the two products from their pages.
  for (const [i, product] of scenario.products.entries()) {
    await page.goto(resultsUrl);
    await page.locator(`[data-testid="product-card"][data-sku="${product.sku}"]`).getByRole('link').first().click();
    await page.getByTestId('product-name').waitFor();
    assert.equal((await page.getByTestId('product-name').innerText()).trim(), product.name);
    assert.notEqual(await page.getByTestId('stock-status').getAttribute('data-stock'), 'out');
    if (i === 0) await shot('product');
    await page.getByLabel('Quantity').fill('1');
    await page.getByRole('button', { name: 'Add to cart' }).click();
    await page.waitForURL('**/cart');
    assert.match(await page.getByTestId('flash').innerText(), new RegExp(`Added 1 × ${escapeRegExp(product.name)}`));
  }

  // Cart: both lines, no problems flagged.
  const lines = page.getByTestId('cart-line');
  assert.equal(await lines.count(), 2);
  for (const product of scenario.products) {
    await page.locator(`[data-testid="cart-line"][data-sku="${product.sku}"]`).waitFor();
  }
  assert.equal(await page.getByTestId('line-problem').count(), 0, 'the cart flags a problem');
  await shot('cart');

  // Checkout: address, shipping, a new card; preview the totals, then place the order.
  await page.getByRole('link', { name: 'Proceed to checkout' }).click();
  await page.waitForURL('**/checkout');
  await fillCheckout(page, { card: CARD_OK, name: 'Grace Hopper' });
  await page.getByRole('button', { name: 'Update totals' }).click();
  await page.getByTestId('quote-total').waitFor();
  const quotedTotal = (await page.getByTestId('quote-total').innerText()).trim();
  await shot('checkout');

  // The card number is never echoed back into the page, so it is typed again.
  await fillCard(page, CARD_OK);
  await page.getByRole('button', { name: 'Place order' }).click();
  await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
  const flash = await page.getByTestId('flash').innerText();
  assert.match(flash, /Thank you! Your order EMP-\S+ is confirmed/, `unexpected flash: ${flash}`);
  await waitForOrderStatus(page, 'confirmed');
  const number = (await page.getByTestId('order-number').innerText()).trim();
  assert.equal((await page.getByTestId('order-total').innerText()).trim(), quotedTotal, 'the order total differs from the quote');
  assert.equal(await page.getByTestId('order-lines').locator('tbody tr').count(), 2);
  await shot('confirmation');

  // The invoice of the paid order downloads as a PDF.
  const invoice = await page.request.get(await page.getByTestId('invoice-link').getAttribute('href'));
  assert.equal(invoice.status(), 200);
  assert.match(invoice.headers()['content-type'] ?? '', /application\/pdf/);
  assert.equal((await invoice.body()).subarray(0, 5).toString(), '%PDF-');

  // The confirmation e-mail arrived.
  const mail = await mailbox(email, { subject: `Order ${number} confirmed` });
  assert.ok(mail.body.includes(number), 'the confirmation mail does not name the order');

  // Order history lists it.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Orders' }).click();
  await page.waitForURL('**/orders');
  const row = page.getByTestId('order-row').filter({ hasText: number });
  assert.equal(await row.getAttribute('data-status'), 'confirmed');
  await shot('order-history');
});
