// After the first order: a forgotten password reset through the mailed link, and a review written
// after delivery that the shop marks as a verified purchase.
import {
  browserTest, assert, apiOk, apiCustomer, apiOrder, adminToken, productsInStock, mailbox, linkIn, login,
  pageText,
} from './lib.mjs';

browserTest('a forgotten password is reset through the mailed link', async ({ page, shot }) => {
  const customer = await apiCustomer({ prefix: 'reset' });

  await page.goto('/login');
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.getByRole('heading', { level: 1, name: 'Forgot your password?' }).waitFor();
  await page.getByLabel('E-mail address').fill(customer.email);
  await page.getByRole('button', { name: 'Send reset link' }).click();
  await page.getByTestId('reset-requested').waitFor();
  await shot('reset-requested');

  const mail = await mailbox(customer.email, { subject: 'Reset your password' });
  const link = linkIn(mail.body, '/reset-password');
  assert.ok(link, `the reset mail has no /reset-password link:\n${mail.body}`);
  await page.goto(link);
  const fresh = 'Quartz-Meadow-Violin-77';

  // A mismatched repeat is refused with the field named, keeping the user on the form.
  await page.getByLabel('New password', { exact: true }).fill(fresh);
  await page.getByLabel('Repeat new password').fill(`${fresh}x`);
  await page.getByRole('button', { name: 'Set new password' }).click();
  await page.getByTestId('error-new_password_confirm').waitFor();
  await shot('reset-mismatch');

  await page.getByLabel('New password', { exact: true }).fill(fresh);
  await page.getByLabel('Repeat new password').fill(fresh);
  await page.getByRole('button', { name: 'Set new password' }).click();
  await page.waitForURL((url) => url.pathname !== '/reset-password');
  await shot('reset-done');

  // The old password no longer works; the new one does.
  await page.goto('/login');
  await page.getByLabel('E-mail address').fill(customer.email);
  await page.getByLabel('Password').fill(customer.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('error-_form').waitFor();
  await login(page, customer.email, fresh);
  assert.match(await page.getByTestId('flash').innerText(), /welcome/i);
});

browserTest('a delivered order lets the customer review the product as a verified purchase', async ({ page, shot }) => {
  const customer = await apiCustomer({ prefix: 'reviewer', name: 'Rita Reviewer' });
  const [product] = await productsInStock({ count: 1, minAvailable: 2 });
  const order = await apiOrder(customer.token, [{ sku: product.sku, quantity: 1 }]);
  const admin = await adminToken();
  await apiOk('POST', `/api/v1/orders/${order.id}/ship`, { token: admin, body: { carrier: 'DHL', tracking_number: 'JD0146E2E' } });
  await apiOk('POST', `/api/v1/orders/${order.id}/deliver`, { token: admin });

  await login(page, customer.email, customer.password);

  // The order page shows its history and tracking.
  await page.goto(`/orders/${order.id}`);
  assert.equal(await page.getByTestId('order-status').getAttribute('data-status'), 'delivered');
  assert.match(await page.getByTestId('order-tracking').innerText(), /JD0146E2E/);
  assert.match(await page.getByTestId('order-timeline').innerText(), /Shipped[\s\S]*Delivered/i);
  await shot('order-delivered');

  await page.goto(`/p/${product.slug}`);
  // An empty review is refused with the fields named.
  await page.getByRole('button', { name: 'Submit review' }).click();
  await page.getByTestId('error-rating').waitFor();

  const title = `Sturdy and honest ${Date.now()}`;
  await page.getByLabel('Rating').selectOption('4');
  await page.getByLabel('Title').fill(title);
  await page.getByLabel('Review', { exact: true }).fill('Arrived quickly, does what it says.');
  await page.getByRole('button', { name: 'Submit review' }).click();
  await page.waitForURL(/#reviews$/);
  assert.match(await page.getByTestId('flash').innerText(), /thank you/i);
  const review = page.getByTestId('review').filter({ hasText: title });
  await review.getByTestId('verified-purchase').waitFor();
  assert.match(await pageText(page), /You have reviewed this product/);
  await shot('reviewed');
});
