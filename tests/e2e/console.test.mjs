// The built-in trace and log console: a request made through the API shows up in Traces, the
// route filter finds it, its waterfall opens with the request span on top, its log line links
// back to the trace, and the status page draws its 15-minute charts.
import { browserTest, assert, api, loginAsAdmin, BASE_URL } from './lib.mjs';

browserTest('admin follows a request from the traces list to its waterfall and its log lines, and sees the status charts', async ({ page, shot }) => {
  const res = await api('GET', '/api/v1/catalog/products?limit=1');
  assert.equal(res.status, 200);
  const traceId = res.headers.get('x-trace-id');
  assert.match(traceId ?? '', /^[0-9a-f]{32}$/, 'no x-trace-id on the API answer');

  await loginAsAdmin(page, { next: '/admin' });
  await page.getByTestId('admin-nav').getByRole('link', { name: 'Traces' }).click();
  await page.getByRole('heading', { level: 1, name: 'Traces' }).waitFor();
  await page.getByLabel('Route').fill('/api/v1/catalog/products');
  await page.getByLabel('Status').selectOption('ok');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/\/admin\/traces\?route=/);
  const row = page.locator(`[data-testid="trace-row"][data-trace-id="${traceId}"]`);
  await row.waitFor();
  assert.equal(await row.getAttribute('data-error'), 'false');
  await shot('traces-filtered');

  await row.getByRole('link').click();
  await page.waitForURL(new RegExp(`/admin/traces/${traceId}$`));
  const spans = page.getByTestId('span-row');
  assert.ok((await spans.count()) >= 2, 'the waterfall has the request and its queries');
  assert.equal(await spans.first().getAttribute('data-depth'), '0');
  assert.match(await spans.first().innerText(), /GET \/api\/v1\/catalog\/products/);
  await spans.first().locator('summary').click();
  assert.match(await spans.first().locator('.span-attributes').innerText(), /http\.route/);
  await shot('waterfall');

  await page.getByTestId('trace-logs-link').click();
  await page.waitForURL(/\/admin\/logs\?trace_id=/);
  const line = page.getByTestId('log-row').filter({ hasText: 'GET /api/v1/catalog/products -> 200' }).first();
  await line.waitFor();
  await shot('logs-of-trace');
  await line.getByTestId('log-trace-link').click();
  await page.waitForURL(new RegExp(`/admin/traces/${traceId}$`));

  // The charts need two samples 10 s apart: wait for a drawn line.
  await page.goto(`${BASE_URL}/admin/status`);
  const charts = page.getByTestId('status-charts');
  await charts.waitFor();
  let drawn = 0;
  for (let i = 0; i < 30 && drawn === 0; i++) {
    await page.waitForTimeout(1000);
    if (i % 10 === 9) await page.reload();
    drawn = await page.locator('[data-testid="chart-requests_per_second"] polyline').count();
  }
  assert.ok(drawn > 0, 'the request-rate chart drew no line within 30 s');
  assert.equal(await charts.getAttribute('data-drawn'), 'true');
  await shot('status-charts');
});
