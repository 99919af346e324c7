// Checkout in Stripe mode, in a real browser: the card is typed into Stripe.js's own form (here
// localstripe's Stripe.js, started by run.sh with E2E_PAYMENTS=stripe), turned into a token in the
// browser, and only the token reaches Emporium. A card Stripe declines fails the order clearly;
// the next card places it. Skipped in the simulated-payments run.
import test from 'node:test';
import {
  browserTest, assert, apiOk, adminToken, apiCustomer, productsInStock, login, addToCart, waitForOrderStatus,
  ADDRESS, BASE_URL,
} from './lib.mjs';

const STRIPE_OK = '4242424242424242';
/** Declines when charged, in Stripe and in localstripe. */
const STRIPE_DECLINED = '4000000000000341';

/** Types a card into the Stripe card form mounted on the checkout page. */
async function typeCard(page, number) {
  await page.getByRole('radio', { name: 'Use a new card' }).check();
  const form = page.locator('[data-stripe-card]');
  await form.getByPlaceholder('number').fill(number);
  await form.getByPlaceholder('exp_month').fill('12');
  await form.getByPlaceholder('exp_year').fill(String((new Date().getFullYear() + 3) % 100));
  await form.getByPlaceholder('cvc').fill('123');
  await form.getByPlaceholder('postal_code').fill('10115');
}

async function fillAddress(page) {
  await page.getByLabel('Full name').fill(ADDRESS.name);
  await page.getByLabel('Address line 1').fill(ADDRESS.line1);
  await page.getByLabel('City').fill(ADDRESS.city);
  await page.getByLabel('Postal code').fill(ADDRESS.postal_code);
  await page.getByLabel('Country').selectOption(ADDRESS.country);
  await page.getByRole('radio', { name: /^Standard/ }).check();
}

if (process.env.E2E_PAYMENTS !== 'stripe') {
  test('checkout through Stripe.js', { skip: 'payments are simulated in this run (E2E_PAYMENTS=stripe runs it)' }, () => {});
} else {
  browserTest('checkout through Stripe.js never sends the card to Emporium', async ({ page, shot }) => {
    const customer = await apiCustomer({ prefix: 'stripe' });
    const [product] = await productsInStock({ count: 1, minAvailable: 3 });
    // Everything the browser sends to Emporium, to prove no card number is among it.
    const sentToShop = [];
    page.on('request', (request) => {
      if (request.url().startsWith(BASE_URL)) sentToShop.push(`${request.url()} ${request.postData() ?? ''}`);
    });

    await login(page, customer.email, customer.password);
    await addToCart(page, product.slug, 1);
    await page.goto('/checkout');
    assert.equal(await page.getByLabel('Card number').count(), 0, 'the shop renders no card number field of its own');
    const policy = (await page.request.get('/checkout')).headers()['content-security-policy'] ?? '';
    assert.match(policy, /script-src 'self' http:\/\/127\.0\.0\.1:\d+;/, `Stripe.js is allowed by origin: ${policy}`);

    // Declined by Stripe when charged: a clear message, and nothing to retry with the same card.
    await fillAddress(page);
    await typeCard(page, STRIPE_DECLINED);
    await shot('stripe-card-form');
    await page.getByRole('button', { name: 'Place order' }).click();
    const error = page.getByTestId('checkout-error');
    // Stripe.js itself may refuse the card (shown beside its form): say so instead of timing out.
    const refusedByStripeJs = page.locator('[data-card-error]:not([hidden])');
    await error.or(refusedByStripeJs).first().waitFor();
    if (!(await error.isVisible())) assert.fail(`Stripe.js refused the card: ${await refusedByStripeJs.innerText()}`);
    assert.match(await error.innerText(), /declined/i);
    await shot('declined-by-stripe');

    // Another card places the order.
    await page.goto('/checkout');
    await fillAddress(page);
    await typeCard(page, STRIPE_OK);
    await page.getByRole('button', { name: 'Place order' }).click();
    await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
    await waitForOrderStatus(page, 'confirmed');
    await shot('confirmed-through-stripe');

    const orderId = new URL(page.url()).pathname.split('/').pop();
    const payments = await apiOk('GET', `/api/v1/payments?order_id=${orderId}`, { token: await adminToken() });
    assert.equal(payments.items[0].status, 'captured');
    assert.equal(payments.items[0].last4, '4242');
    const leaked = sentToShop.filter((line) => line.includes(STRIPE_OK) || line.includes(STRIPE_DECLINED));
    assert.deepEqual(leaked, [], 'a card number was sent to the shop');
    assert.ok(sentToShop.some((line) => /provider_token=(pm|tok)_/.test(line)), 'the token was sent instead');
  });
}
