// Temporary: proves the harness (server, Chromium, screenshots) until the page journeys land.
import { browserTest, assert } from './lib.mjs';

browserTest('smoke: the API docs page opens', async ({ page, shot }) => {
  const res = await page.goto('/docs');
  assert.equal(res.status(), 200);
  await shot('docs');
});
