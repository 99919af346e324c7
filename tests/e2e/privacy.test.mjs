// A shopper's rights, in the browser and in both topologies: a copy of their data from the
// account page (mailed when ready, downloaded as one archive), then the account deleted and the
// erasure reported complete by every part of the shop on the admin's page. The person's e-mail,
// name and street are written to erased-person.json, for .ci/multi-topology.sh to search every
// database for them.
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

import {
  browserTest, assert, apiOk, apiCustomer, productsInStock, mailbox, login, loginAsAdmin, pageText,
  uniqueSuffix, ARTIFACTS, PASSWORD,
} from './lib.mjs';

browserTest('a shopper downloads a copy of their data, then erases the account everywhere', async ({ page, shot, otherUser }) => {
  const suffix = uniqueSuffix();
  const name = `Quillon Erasmus ${suffix}`;
  const street = `Vanishing Road ${suffix}`;
  const customer = await apiCustomer({ prefix: 'erase', name });
  const me = await apiOk('GET', '/api/v1/users/me', { token: customer.token });
  const [product] = await productsInStock({ count: 1, minAvailable: 2 });
  const card = await apiOk('POST', '/api/v1/payments/methods', {
    token: customer.token,
    body: { card_number: '4242424242424242', exp_month: 12, exp_year: new Date().getFullYear() + 3, cvc: '123', holder_name: name },
  });
  await apiOk('POST', '/api/v1/orders', {
    token: customer.token,
    headers: { 'idempotency-key': randomUUID() },
    body: {
      items: [{ sku: product.sku, quantity: 1 }],
      shipping_address: { name, line1: street, city: 'Utrecht', postal_code: '3511 AB', country: 'NL' },
      shipping_method: 'standard',
      payment_method: card.id,
    },
  });

  // A copy of the data: requested on the account page, mailed when ready, downloaded there.
  await login(page, customer.email, customer.password);
  await page.goto('/account/privacy');
  await page.getByRole('button', { name: 'Request a copy of my data' }).click();
  assert.match(await pageText(page), /We are gathering your data/);
  await mailbox(customer.email, { subject: 'Your data export is ready', timeoutMs: 30_000 });
  await page.reload();
  const link = page.getByRole('link', { name: /^Download/ });
  await link.waitFor();
  await shot('export-ready');
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  assert.match(download.suggestedFilename(), /^emporium-export-.*\.tar\.gz$/);
  const bytes = await readFile(await download.path());
  assert.ok(bytes.length > 200 && bytes[0] === 0x1f && bytes[1] === 0x8b, 'a gzip archive');

  // Erasure: the account page deletes the account; every part of the shop reports on the admin page.
  await page.goto('/account/delete');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Delete my account' }).click();
  await page.waitForURL((url) => url.pathname === '/');
  assert.match(await pageText(page), /Your account is deleted/);

  const admin = await (await otherUser()).newPage();
  await loginAsAdmin(admin);
  const report = `/admin/users/${me.id}/privacy`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    await admin.goto(report);
    if ((await pageText(admin)).includes('Erased everywhere on')) break;
    assert.ok(Date.now() < deadline, `the erasure did not complete: ${await pageText(admin)}`);
    await admin.waitForTimeout(300);
  }
  await shot('erasure-complete', admin);
  const steps = await admin.getByTestId('erasure-steps').locator('tbody th').allTextContents();
  assert.deepEqual([...steps].sort(), ['cart', 'catalog', 'identity', 'notifications', 'ordering', 'payments']);
  const text = await pageText(admin);
  assert.ok(!text.includes(customer.email) && !text.includes(name), 'the report names no one');

  await writeFile(
    path.join(ARTIFACTS, 'erased-person.json'),
    JSON.stringify({ email: customer.email, name, street }),
  );
});
