// A shopper who uses only the keyboard: registers, confirms the address, signs in, searches,
// adds a product to the cart and checks out with the test card, ending on a confirmed order.
// No mouse and no element.click(): only Tab, Shift+Tab, Enter, Space, arrow keys and typing
// (page.goto only for the e-mail's link, which the shopper opens from their mail program).
// Every control focused on the way must show where the focus is (:focus-visible with an outline
// of 3:1 contrast against what surrounds it, or a box-shadow).
import {
  browserTest, assert, productsInStock, mailbox, linkIn, uniqueEmail, waitForOrderStatus, ADDRESS, CARD_OK,
  PASSWORD,
} from './lib.mjs';

/** What the focused element is and whether its focus is visible. */
function focusState() {
  const el = document.activeElement;
  if (!el || el === document.body) return { none: true };
  const s = getComputedStyle(el);
  const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
  const shadow = s.boxShadow && s.boxShadow !== 'none';
  // WCAG 1.4.11: the outline (drawn around the element, over its parent's background) stands
  // out from that background by 3:1 at least.
  const rgb = (c) => (c.match(/[\d.]+/g) ?? []).map(Number);
  const luminance = ([r, g, b]) => {
    const lin = (v) => ((v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  let background = [255, 255, 255];
  for (let n = el.parentElement; n; n = n.parentElement) {
    const c = rgb(getComputedStyle(n).backgroundColor);
    if (c.length === 3 || c[3] > 0.9) { background = c.slice(0, 3); break; }
  }
  const [hi, lo] = [luminance(rgb(s.outlineColor).slice(0, 3)), luminance(background)].sort((a, b) => b - a);
  const contrast = outline ? (hi + 0.05) / (lo + 0.05) : Infinity;
  const text = (el.getAttribute('aria-label') || el.labels?.[0]?.textContent || el.textContent || '').trim().replace(/\s+/g, ' ');
  return {
    none: false,
    tag: el.tagName.toLowerCase(),
    id: el.id,
    type: el.getAttribute('type') ?? '',
    name: el.getAttribute('name') ?? '',
    href: el.getAttribute('href') ?? '',
    text: text.slice(0, 60),
    focusVisible: el.matches(':focus-visible'),
    shown: (outline && contrast >= 3) || shadow,
    contrast: Math.round(contrast * 100) / 100,
  };
}

const describe = (f) => `<${f.tag}${f.id ? ` id=${f.id}` : ''}${f.name ? ` name=${f.name}` : ''}${f.href ? ` href=${f.href}` : ''}> "${f.text}"`;

/**
 * Presses Tab (Shift+Tab with `back`) until the focused element satisfies `want` (given the
 * focusState), at most `limit` times; every element the focus lands on is checked for a visible
 * focus indicator. Returns the state of the element reached.
 */
async function tabTo(page, want, { back = false, limit = 80, what = 'the element', seen } = {}) {
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
    const f = await page.evaluate(focusState);
    if (f.none) continue;
    seen?.add(describe(f));
    if (!f.focusVisible || !f.shown) {
      assert.fail(`${new URL(page.url()).pathname}: focus on ${describe(f)} is not visible (focus-visible ${f.focusVisible}; outline contrast ${f.contrast}:1, 3:1 needed, or a shadow)`);
    }
    if (want(f)) return f;
  }
  const f = await page.evaluate(focusState);
  assert.fail(`${new URL(page.url()).pathname}: ${back ? 'Shift+' : ''}Tab never reached ${what}; focus is on ${f.none ? 'nothing' : describe(f)}`);
}

/** Presses Enter (or `key`) on the focused element and waits for the navigation it starts. */
async function pressAndWait(page, urlTest, key = 'Enter') {
  await Promise.all([page.waitForURL(urlTest), page.keyboard.press(key)]);
  await page.waitForLoadState('domcontentloaded');
}

const isField = (id) => (f) => f.id === id;
const isButton = (label) => (f) => (f.tag === 'button' || f.type === 'submit') && f.text === label;
const isLink = (label) => (f) => f.tag === 'a' && f.text === label;

browserTest('a keyboard alone registers, searches, adds to the cart and checks out', async ({ page, shot }) => {
  const [product] = await productsInStock({ count: 1, minAvailable: 3 });
  const email = uniqueEmail('keyboard');
  const focused = new Set();
  const opts = (what, more = {}) => ({ what, seen: focused, ...more });

  // ---- Register: from the home page, through the header's link.
  await page.goto('/');
  await tabTo(page, isLink('Register'), opts('the Register link'));
  await pressAndWait(page, '**/register');
  await tabTo(page, isField('name'), opts('the name field'));
  await page.keyboard.type('Keyboard Shopper');
  for (const [id, text] of [['email', email], ['password', PASSWORD], ['password_confirm', PASSWORD]]) {
    const f = await tabTo(page, (x) => x.tag === 'input', opts(`the ${id} field`, { limit: 3 }));
    assert.equal(f.id, id, `Tab from the previous field reached ${describe(f)}, not #${id}`);
    await page.keyboard.type(text);
  }
  // Back up one field and forward again: Shift+Tab follows the same order in reverse.
  const back = await tabTo(page, (x) => x.tag === 'input', opts('the password field', { back: true, limit: 3 }));
  assert.equal(back.id, 'password', `Shift+Tab from the repeat field reached ${describe(back)}`);
  await tabTo(page, isButton('Create account'), opts('Create account', { limit: 10 }));
  await shot('register-button-focused');
  await page.keyboard.press('Enter');
  await page.getByTestId('registration-success').waitFor();

  // ---- Confirm the address: the link from the mail, then the page's button (Space presses it).
  const mail = await mailbox(email, { subject: /confirm your e-?mail/i });
  const link = linkIn(mail.body, '/verify-email');
  assert.ok(link, 'the verification mail has no /verify-email link');
  await page.goto(link);
  await tabTo(page, isButton('Confirm my e-mail address'), opts('the confirm button'));
  // Confirmed, it sends the shopper to the sign-in form.
  await pressAndWait(page, (url) => url.pathname === '/login', 'Space');
  assert.match(await page.getByTestId('flash').innerText(), /confirmed/i);

  // ---- Sign in.
  await tabTo(page, isField('email'), opts('the e-mail field'));
  await page.keyboard.type(email);
  await tabTo(page, isField('password'), opts('the password field', { limit: 1 }));
  await page.keyboard.type(PASSWORD);
  await pressAndWait(page, (url) => url.pathname !== '/login');
  assert.match(await page.getByTestId('flash').innerText(), /welcome/i);

  // ---- Search from the header, open the product from the results.
  await tabTo(page, isField('site-search-q'), opts('the search box'));
  await page.keyboard.type(product.name);
  await pressAndWait(page, (url) => url.pathname === '/search');
  await page.getByRole('heading', { level: 1 }).waitFor();
  const productHref = `/p/${product.slug}`;
  await tabTo(page, (f) => f.tag === 'a' && decodeURIComponent(f.href) === productHref, opts(`the link to ${productHref}`, { limit: 150 }));
  await shot('search-result-focused');
  await pressAndWait(page, (url) => decodeURIComponent(url.pathname) === productHref);

  // ---- Add to cart: quantity 2.
  await tabTo(page, isField('quantity'), opts('the quantity field'));
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.type('2');
  await tabTo(page, isButton('Add to cart'), opts('Add to cart', { limit: 5 }));
  await pressAndWait(page, '**/cart');
  const line = page.locator(`[data-testid="cart-line"][data-sku="${product.sku}"]`);
  assert.equal(await line.getByRole('spinbutton').inputValue(), '2');

  // ---- Checkout.
  await tabTo(page, isLink('Proceed to checkout'), opts('Proceed to checkout'));
  await pressAndWait(page, '**/checkout');
  await tabTo(page, isField('name'), opts('the full-name field'));
  await page.keyboard.type(ADDRESS.name);
  await tabTo(page, isField('line1'), opts('address line 1', { limit: 1 }));
  await page.keyboard.type(ADDRESS.line1);
  await tabTo(page, isField('city'), opts('the city field', { limit: 2 }));
  await page.keyboard.type(ADDRESS.city);
  await tabTo(page, isField('postal_code'), opts('the postal code field', { limit: 1 }));
  await page.keyboard.type(ADDRESS.postal_code);
  await tabTo(page, isField('country'), opts('the country list', { limit: 1 }));
  await page.keyboard.type('Netherlands'); // type-ahead in a closed list selects the match
  assert.equal(await page.locator('#country').inputValue(), ADDRESS.country, 'typing did not choose the Netherlands');

  // The shipping methods are one radio group: Tab enters it at the chosen one, arrows move.
  const method = await tabTo(page, (f) => f.name === 'shipping_method', opts('the shipping methods', { limit: 3 }));
  if (!/^Standard/.test(method.text)) {
    for (let i = 0; i < 5; i++) {
      await page.keyboard.press('ArrowDown');
      if (/^Standard/.test((await page.evaluate(focusState)).text)) break;
    }
  }
  await page.keyboard.press('Space');
  assert.equal(await page.getByRole('radio', { name: /^Standard/ }).isChecked(), true, 'Standard shipping is not chosen');

  // The payment radios: a new card (the only choice of a new customer).
  const pay = await tabTo(page, (f) => f.name === 'payment_method', opts('the payment choices', { limit: 5 }));
  assert.equal(pay.id, 'pm-new');
  await page.keyboard.press('Space');
  await tabTo(page, isField('card_number'), opts('the card number', { limit: 2 }));
  await page.keyboard.type(CARD_OK);
  await tabTo(page, isField('exp_month'), opts('the expiry month', { limit: 2 }));
  await page.keyboard.type('12');
  await tabTo(page, isField('exp_year'), opts('the expiry year', { limit: 1 }));
  await page.keyboard.type(String(new Date().getFullYear() + 3));
  await tabTo(page, isField('cvc'), opts('the CVC', { limit: 1 }));
  await page.keyboard.type('123');

  // Pressed at once: a re-quote still due or on its way is waited for by the page itself, which
  // then places the order (tests/e2e/requote.test.mjs).
  await tabTo(page, isButton('Place order'), opts('Place order', { limit: 5 }));
  await shot('place-order-focused');
  await pressAndWait(page, /\/orders\/[0-9a-f-]{36}$/);
  const flash = await page.getByTestId('flash').innerText();
  assert.match(flash, /Thank you! Your order EMP-\S+ is confirmed/, `unexpected flash: ${flash}`);
  await waitForOrderStatus(page, 'confirmed');
  await shot('order-confirmed');
  console.log(`keyboard journey: ${focused.size} distinct controls focused, each with a visible focus`);
});
