// Keyboard use, labelled controls, one heading per page, and a phone-sized screen: what every
// page must offer, checked on the pages of each area.
import {
  browserTest, assert, apiCustomer, productsInStock, login, loginAsAdmin, addToCart, PASSWORD,
} from './lib.mjs';

/** Problems a page has: unlabelled controls, not exactly one h1, missing landmarks. */
async function structuralProblems(page) {
  return page.evaluate(() => {
    const problems = [];
    const controls = document.querySelectorAll('input:not([type=hidden]), select, textarea');
    for (const el of controls) {
      const named = el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
      if (!named) problems.push(`unlabelled ${el.tagName.toLowerCase()} name=${el.getAttribute('name')}`);
    }
    for (const el of document.querySelectorAll('[aria-describedby]')) {
      for (const id of el.getAttribute('aria-describedby').split(/\s+/).filter(Boolean)) {
        if (!document.getElementById(id)) problems.push(`aria-describedby points at missing #${id}`);
      }
    }
    const h1 = document.querySelectorAll('h1').length;
    if (h1 !== 1) problems.push(`${h1} h1 elements`);
    for (const landmark of ['header', 'nav', 'main', 'footer']) {
      if (!document.querySelector(landmark)) problems.push(`no <${landmark}>`);
    }
    for (const b of document.querySelectorAll('button')) {
      if (!b.textContent.trim() && !b.getAttribute('aria-label')) problems.push('a button without a name');
    }
    return problems;
  });
}

/** Whether the page scrolls sideways (content wider than the screen). */
async function overflowsSideways(page) {
  return page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
}

browserTest('pages have labelled controls, one h1 and landmarks, and fit a phone screen', async ({ page, shot, otherUser }) => {
  const customer = await apiCustomer({ prefix: 'a11y' });
  const [product] = await productsInStock({ count: 1, minAvailable: 2 });

  const anonymous = ['/', '/login', '/register', '/forgot-password', `/p/${product.slug}`, '/search?q=a', '/cart'];
  const problems = [];
  const check = async (p, path) => {
    const res = await p.goto(path);
    assert.ok(res.ok(), `${path} answered ${res.status()}`);
    for (const problem of await structuralProblems(p)) problems.push(`${path}: ${problem}`);
  };
  for (const path of anonymous) await check(page, path);

  await login(page, customer.email, customer.password);
  await addToCart(page, product.slug, 1);
  for (const path of ['/cart', '/checkout', '/orders', '/account', '/account/password', '/account/sessions', '/account/notifications', '/account/addresses', '/account/cards']) {
    await check(page, path);
  }

  const adminPage = await (await otherUser()).newPage();
  await loginAsAdmin(adminPage);
  for (const path of ['/admin', '/admin/products', '/admin/products/new', '/admin/inventory', '/admin/orders', '/admin/users', '/admin/status', '/admin/rates']) {
    await check(adminPage, path);
  }
  assert.deepEqual(problems, [], 'accessibility problems');

  // A phone: nothing scrolls sideways, and the key pages still read.
  await page.setViewportSize({ width: 390, height: 844 });
  const wide = [];
  for (const [name, path] of [['home', '/'], ['product', `/p/${product.slug}`], ['cart', '/cart'], ['checkout', '/checkout']]) {
    await page.goto(path);
    if (await overflowsSideways(page)) wide.push(path);
    await shot(`phone-${name}`);
  }
  assert.deepEqual(wide, [], 'pages wider than a phone screen');
});

browserTest('a keyboard alone signs in and adds to the cart', async ({ page, shot }) => {
  const customer = await apiCustomer({ prefix: 'keyboard' });
  const [product] = await productsInStock({ count: 1, minAvailable: 2 });

  await page.goto('/login');
  // The first Tab reaches the skip link, which moves focus to the main content.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent.trim()), 'Skip to content');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'main');

  // From the main content, Tab order reaches the e-mail, then the password field.
  await tabUntil(page, (el) => el.id === 'email');
  await page.keyboard.type(customer.email);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'password', 'Tab from e-mail does not reach password');
  await page.keyboard.type(PASSWORD);
  await shot('login-by-keyboard');
  await Promise.all([page.waitForURL((url) => url.pathname !== '/login'), page.keyboard.press('Enter')]);
  assert.match(await page.getByTestId('flash').innerText(), /welcome/i);

  // The product page: Tab to the quantity, type it, Tab to the button, Enter.
  await page.goto(`/p/${product.slug}`);
  await tabUntil(page, (el) => el.id === 'quantity');
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.type('2');
  await tabUntil(page, (el) => el.tagName === 'BUTTON' && el.textContent.trim() === 'Add to cart');
  const focusVisible = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
  });
  assert.ok(focusVisible, 'the focused button shows no focus outline');
  await shot('focused-add-to-cart');
  await Promise.all([page.waitForURL('**/cart'), page.keyboard.press('Enter')]);
  const line = page.locator(`[data-testid="cart-line"][data-sku="${product.sku}"]`);
  assert.equal(await line.getByRole('spinbutton').inputValue(), '2');
});

/** Presses Tab until the focused element satisfies `test` (at most 40 times). */
async function tabUntil(page, test) {
  const source = `(${test.toString()})(document.activeElement)`;
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(source)) return;
  }
  const at = await page.evaluate(() => document.activeElement.outerHTML.slice(0, 120));
  assert.fail(`Tab never reached the element; focus is on ${at}`);
}
