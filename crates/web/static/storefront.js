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
    // Filters: changing the sort applies it at once.
    var sort = document.querySelector('form[data-testid="facets"] select[name="sort"]');
    if (sort) {
      sort.addEventListener('change', function () { sort.form.requestSubmit(); });
    }
  });
})();
