// Admin console: keeps the live status panel current by polling /admin/status.json.
// The page is complete without it (server-rendered); this only refreshes the figures in place.
(function () {
  'use strict';
  var REFRESH_MS = 3000;

  function setText(row, testid, text) {
    var cell = row.querySelector('[data-testid="' + testid + '"]');
    if (cell && cell.textContent !== text) { cell.textContent = text; }
  }

  function detailOf(context) {
    if (context.error) { return context.error; }
    return (context.checks || []).map(function (c) { return c.name + ': ' + c.status; }).join(', ');
  }

  function apply(panel, status) {
    (status.contexts || []).forEach(function (c) {
      var row = panel.querySelector('tr[data-context="' + c.context + '"]');
      if (!row) { return; }
      row.setAttribute('data-state', c.state);
      var badge = row.querySelector('[data-testid="state"]');
      if (badge) {
        badge.textContent = c.state;
        badge.classList.toggle('badge-ok', c.state === 'ready');
        badge.classList.toggle('badge-bad', c.state !== 'ready');
      }
      setText(row, 'detail', detailOf(c));
      setText(row, 'rps', c.display.requests_per_second);
      setText(row, 'error-rate', c.display.error_rate);
      setText(row, 'p95', c.display.p95);
      setText(row, 'requests-total', String(c.requests_total));
      setText(row, 'window', c.window);
    });
    var orders = panel.querySelector('[data-testid="orders-today"]');
    if (orders) {
      orders.textContent = status.orders_today === null || status.orders_today === undefined
        ? '— (your role may not list orders)'
        : String(status.orders_today) + (status.orders_today_more ? '+' : '');
    }
    var updated = panel.querySelector('[data-testid="status-updated"]');
    if (updated && status.generated_at) {
      updated.setAttribute('datetime', status.generated_at);
      updated.textContent = new Date(status.generated_at).toLocaleTimeString();
    }
    panel.removeAttribute('data-stale');
  }

  function poll(panel) {
    var url = panel.getAttribute('data-status-url');
    fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok) { throw new Error('status ' + r.status); }
        return r.json();
      })
      .then(function (status) { apply(panel, status); })
      .catch(function () { panel.setAttribute('data-stale', 'true'); })
      .then(function () {
        if (!document.hidden) { window.setTimeout(function () { poll(panel); }, REFRESH_MS); }
      });
  }

  document.addEventListener('DOMContentLoaded', function () {
    var panels = document.querySelectorAll('[data-status-panel]');
    Array.prototype.forEach.call(panels, function (panel) {
      window.setTimeout(function () { poll(panel); }, REFRESH_MS);
      document.addEventListener('visibilitychange', function () {
        if (!document.hidden) { poll(panel); }
      });
    });
  });
})();
