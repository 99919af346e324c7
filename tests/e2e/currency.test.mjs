// Display currencies in a real browser: the footer picker converts browsing prices into the
// chosen currency (marked ≈, with the rate's date), checkout shows and charges the shop's
// currency and says so, and the address book feeds checkout.
import {
  browserTest, assert, apiOk, api, adminToken, apiCustomer, productsInStock, login, addToCart,
} from './lib.mjs';

const usd = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const yen = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

browserTest('prices show in two display currencies while checkout charges euros', async ({ page, shot }) => {
  const admin = await adminToken();
  // Rates chosen so the expected figures are exact: $2 and ¥100 per euro. No GBP rate: the
  // other tests' browsers (en-GB) keep seeing euros.
  for (const [currency, rate] of [['USD', '2'], ['JPY', '100']]) {
    await apiOk('PUT', `/api/v1/catalog/rates/${currency}`, { token: admin, body: { rate, as_of: '2026-12-03' } });
  }
  try {
    const customer = await apiCustomer({ prefix: 'currency' });
    const [product] = await productsInStock({ count: 1, minAvailable: 2 });
    const cents = product.price.amount;
    await login(page, customer.email, customer.password);

    // Pages read the rates at most every 10 s: wait until this server's pages have the new ones.
    const picker = page.getByLabel('Show prices in');
    for (const deadline = Date.now() + 20_000; ;) {
      await page.goto(`/p/${encodeURIComponent(product.slug)}`);
      if (await picker.count()) break;
      assert.ok(Date.now() < deadline, 'the currency picker never appeared after rates were set');
      await page.waitForTimeout(1000);
    }
    await picker.selectOption('USD');
    await page.getByRole('button', { name: 'Show', exact: true }).click();
    await page.waitForURL(`**/p/${encodeURIComponent(product.slug)}`);
    const dollars = `≈ $${usd.format((cents * 2) / 100)}`;
    assert.ok((await page.locator('main').innerText()).includes(dollars), `the product page shows ${dollars}`);
    assert.match(await page.getByTestId('display-note').innerText(), /2026-12-03/);
    await shot('product-in-dollars');

    await page.getByLabel('Show prices in').selectOption('JPY');
    await page.getByRole('button', { name: 'Show', exact: true }).click();
    await page.waitForURL(`**/p/${encodeURIComponent(product.slug)}`);
    const yens = `≈ ¥${yen.format(cents)}`;
    assert.ok((await page.locator('main').innerText()).includes(yens), `the product page shows ${yens}`);

    await addToCart(page, product.slug, 1);
    assert.ok((await page.locator('main').innerText()).includes(yens), 'the cart converts too');
    await shot('cart-in-yen');

    await page.goto('/checkout');
    const charge = await page.getByTestId('charge-currency').innerText();
    assert.match(charge, /charged in EUR/);
    const main = await page.locator('main').innerText();
    assert.ok(!main.includes('≈'), 'checkout shows what is charged, not conversions');
    assert.ok(main.includes('€'), 'checkout shows euros');
    await shot('checkout-in-euros');
  } finally {
    for (const currency of ['USD', 'JPY']) {
      await api('DELETE', `/api/v1/catalog/rates/${currency}`, { token: admin });
    }
  }
});

browserTest('a saved address fills the checkout form', async ({ page }) => {
  const customer = await apiCustomer({ prefix: 'address-book' });
  const [product] = await productsInStock({ count: 1, minAvailable: 2 });
  await login(page, customer.email, customer.password);
  await page.goto('/account/addresses');
  await page.getByLabel('Label, e.g. Home (optional)').fill('Home');
  await page.getByLabel('Full name').fill('Ada Lovelace');
  await page.getByLabel('Address line 1').fill('Unter den Linden 5');
  await page.getByLabel('City').fill('Berlin');
  await page.getByLabel('Postal code').fill('10117');
  await page.getByLabel('Country').selectOption('DE');
  await page.getByRole('button', { name: 'Save address' }).click();
  await page.getByTestId('default-address').waitFor();

  await addToCart(page, product.slug, 1);
  await page.goto('/checkout');
  assert.equal(await page.getByLabel('Address line 1').inputValue(), 'Unter den Linden 5');
  assert.equal(await page.getByLabel('City').inputValue(), 'Berlin');
  assert.equal(await page.getByTestId('saved-address').count(), 1);
});
