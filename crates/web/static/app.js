// Progressive enhancement shared by every page. Everything works without it.
(function () {
  'use strict';
  // Ask before destructive actions (buttons with data-confirm="message").
  document.addEventListener('submit', function (event) {
    var button = event.submitter;
    var message = (button && button.getAttribute('data-confirm')) || event.target.getAttribute('data-confirm');
    if (message && !window.confirm(message)) {
      event.preventDefault();
      return;
    }
    // Prevent double submission (double charge, double refund): the server is idempotent
    // anyway, this just keeps the page honest while it waits.
    if (button && !event.defaultPrevented) {
      window.setTimeout(function () { button.disabled = true; }, 0);
    }
  });
  // Move focus to the first field with an error, so keyboard and screen-reader users land on it.
  document.addEventListener('DOMContentLoaded', function () {
    // Times are rendered in UTC (zone named); show them in the shopper's own time zone.
    document.querySelectorAll('time[data-local-time]').forEach(function (el) {
      var at = new Date(el.getAttribute('datetime'));
      if (isNaN(at.getTime())) return;
      try {
        el.title = el.textContent;
        el.textContent = at.toLocaleString(undefined, {
          day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short'
        });
      } catch (e) { /* keep the UTC text */ }
    });
    var invalid = document.querySelector('[aria-invalid="true"]');
    if (invalid) { invalid.focus(); }
  });
})();
