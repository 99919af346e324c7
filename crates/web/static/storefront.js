// Storefront enhancements. Every page works without them.
(function () {
  'use strict';
  // A product picture that does not load (an unreachable image host) shows the generated
  // placeholder instead of a broken image. `error` does not bubble: listen while capturing.
  document.addEventListener('error', function (event) {
    var img = event.target;
    if (img && img.tagName === 'IMG' && img.dataset.fallback && img.src !== img.dataset.fallback) {
      img.src = img.dataset.fallback;
    }
  }, true);

  document.addEventListener('DOMContentLoaded', function () {
    // Images that failed before this script ran.
    document.querySelectorAll('img[data-fallback]').forEach(function (img) {
      if (img.complete && img.naturalWidth === 0 && img.src !== img.dataset.fallback) {
        img.src = img.dataset.fallback;
      }
    });
    // Checkout: the new-card fields only matter when "Use a new card" is chosen.
    var newCard = document.querySelector('[data-new-card]');
    if (newCard) {
      var radios = document.querySelectorAll('input[name="payment_method"]');
      var sync = function () {
        var chosen = document.querySelector('input[name="payment_method"]:checked');
        newCard.hidden = !!chosen && chosen.value !== 'new';
      };
      radios.forEach(function (r) { r.addEventListener('change', sync); });
      sync();
    }
    // Checkout: the total to pay follows the country, shipping method and coupon. "Place order"
    // is disabled only while there is no total at all. Pressed while a new quote is due or on its
    // way, it is held until the quote lands: the order goes if the total is still the one shown
    // when it was pressed, and otherwise the new total is shown to confirm. (Disabling it while
    // quoting lost presses that landed in that window; ordering refuses a stale total anyway.)
    var checkout = document.querySelector('form[data-checkout]');
    if (checkout && window.fetch && window.URLSearchParams) {
      var place = checkout.querySelector('[data-place-order]');
      var shown = checkout.querySelector('[data-pay-shown]');
      var problem = checkout.querySelector('[data-pay-problem]');
      var quoteBox = document.querySelector('[data-testid="quote"]');
      var pending = 0;
      var inFlight = false;
      // The total shown when "Place order" was pressed, while that press waits for the quote on
      // its way (null when none waits).
      var heldTotal = null;
      var setFigure = function (name, text) {
        document.querySelectorAll('[data-figure="' + name + '"]').forEach(function (el) { el.textContent = text || ''; });
      };
      var expectedTotal = checkout.querySelector('[data-expected-total]');
      // A re-quote due after typing stops (see `later`).
      var timer = null;
      var requote = function () {
        clearTimeout(timer);
        timer = null;
        var mine = ++pending;
        inFlight = true;
        var data = new URLSearchParams(new FormData(checkout));
        ['card_number', 'cvc', 'exp_month', 'exp_year'].forEach(function (k) { data.delete(k); });
        fetch(checkout.dataset.quoteUrl, {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'accept': 'application/json' },
          body: data.toString()
        }).then(function (r) {
          return r.json().then(function (body) { return { ok: r.ok, body: body }; });
        }).then(function (answer) {
          if (mine !== pending) return;
          inFlight = false;
          var q = answer.body;
          var pressedAt = heldTotal;
          heldTotal = null;
          if (!answer.ok) {
            expectedTotal.value = '';
            place.disabled = true;
            shown.hidden = true;
            problem.hidden = false;
            problem.textContent = (q.message || 'The total could not be worked out.') + ' Check the details above.';
            if (quoteBox) quoteBox.hidden = true;
            return;
          }
          ['subtotal', 'shipping', 'tax', 'tax_label', 'total', 'discount'].forEach(function (k) { setFigure(k, q[k]); });
          var discountRow = document.querySelector('[data-row="discount"]');
          if (discountRow) discountRow.hidden = !q.discount;
          expectedTotal.value = q.expected_total;
          checkout.querySelector('[data-expected-currency]').value = q.expected_currency || '';
          shown.hidden = false;
          problem.hidden = true;
          if (quoteBox) quoteBox.hidden = false;
          place.disabled = false;
          if (pressedAt === null) return;
          if (String(q.expected_total) === pressedAt) {
            checkout.requestSubmit(place);
          } else {
            problem.hidden = false;
            problem.textContent = 'The total is now ' + q.total + '. Check it and press “Place order” again.';
          }
        }).catch(function () {
          if (mine !== pending) return;
          inFlight = false;
          heldTotal = null;
          // Offline or a hiccup: the no-script path ("Update totals") still works.
          place.disabled = true;
          shown.hidden = true;
          problem.hidden = false;
          problem.textContent = 'The total could not be updated. Press “Update totals”.';
        });
      };
      var later = function () { clearTimeout(timer); timer = setTimeout(requote, 300); };
      // Registered before any other submit listener (Stripe's below), so a held press stops here.
      checkout.addEventListener('submit', function (event) {
        if (event.submitter !== place || (!inFlight && timer === null)) return;
        event.preventDefault();
        event.stopImmediatePropagation();
        heldTotal = expectedTotal.value;
        if (timer !== null) requote();
      });
      checkout.querySelectorAll('select[name="country"], input[name="shipping_method"]').forEach(function (el) {
        el.addEventListener('change', requote);
      });
      var coupon = checkout.querySelector('input[name="coupon"]');
      if (coupon) {
        coupon.addEventListener('change', requote);
        coupon.addEventListener('input', later);
      }
      // Address lines do not change the total today, but a re-quote keeps what is shown honest
      // should that ever change (and costs one small request after typing stops).
      ['line1', 'city', 'postal_code'].forEach(function (name) {
        var el = checkout.querySelector('input[name="' + name + '"]');
        if (el) el.addEventListener('change', later);
      });
    }
    // Stripe mode: the card is typed into Stripe's own form (Stripe.js). On "Place order" with a
    // new card, Stripe turns it into a token in the browser and only the token is posted.
    var stripeCard = document.querySelector('[data-stripe-card]');
    var payForm = document.querySelector('form[data-checkout]');
    if (stripeCard && payForm && typeof window.Stripe === 'function') {
      var stripe = window.Stripe(stripeCard.dataset.publishableKey);
      var card = stripe.elements().create('card');
      card.mount(stripeCard);
      var tokenField = payForm.querySelector('[data-provider-token]');
      var cardError = payForm.querySelector('[data-card-error]');
      var tokenise = function () {
        var viaMethod = typeof stripe.createPaymentMethod === 'function'
          ? stripe.createPaymentMethod({ type: 'card', card: card }) : undefined;
        return Promise.resolve(viaMethod).then(function (result) {
          if (result && result.error) throw result.error;
          if (result && result.paymentMethod) return result.paymentMethod.id;
          // Stripe.js builds without createPaymentMethod (localstripe's) offer createToken.
          return stripe.createToken(card).then(function (answer) {
            if (answer.error) throw answer.error;
            return answer.token.id;
          });
        });
      };
      payForm.addEventListener('submit', function (event) {
        var submitter = event.submitter;
        var chosen = payForm.querySelector('input[name="payment_method"]:checked');
        var placing = submitter && submitter.value === 'place';
        if (!placing || (chosen && chosen.value !== 'new') || tokenField.value) return;
        event.preventDefault();
        cardError.hidden = true;
        submitter.disabled = true;
        tokenise().then(function (token) {
          tokenField.value = token;
          submitter.disabled = false;
          payForm.requestSubmit(submitter);
        }).catch(function (error) {
          submitter.disabled = false;
          cardError.textContent = (error && error.message) || 'The card could not be read. Check it and try again.';
          cardError.hidden = false;
        });
      });
    }
    // Filters: changing the sort applies it at once.
    var sort = document.querySelector('form[data-testid="facets"] select[name="sort"]');
    if (sort) {
      sort.addEventListener('change', function () { sort.form.requestSubmit(); });
    }
  });
})();
