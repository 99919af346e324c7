// Built-in console: draws the status page's 15-minute charts (request rate, 5xx share, p95 per
// context) as inline SVG from /admin/status/history.json, every 10 seconds. No libraries: the
// Content-Security-Policy allows scripts from this site only, and SVG attributes are not styles.
(function () {
  'use strict';
  var SVG = 'http://www.w3.org/2000/svg';
  var WIDTH = 300;
  var HEIGHT = 100;
  var WINDOW_SECONDS = 15 * 60;

  function el(name, attrs) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    return node;
  }

  function format(metric, value) {
    if (metric === 'error_rate') { return (value * 100).toFixed(1) + ' %'; }
    if (metric === 'p95_ms') { return value < 10 ? value.toFixed(1) + ' ms' : value.toFixed(0) + ' ms'; }
    return value.toFixed(1) + '/s';
  }

  function draw(chart, history) {
    var metric = chart.getAttribute('data-metric');
    var svg = chart.querySelector('svg');
    var legend = chart.querySelector('.chart-legend');
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    while (legend.firstChild) { legend.removeChild(legend.firstChild); }
    var now = Date.now() / 1000;
    var names = Object.keys(history.contexts || {});
    var max = 0;
    var points = 0;
    names.forEach(function (name) {
      history.contexts[name].forEach(function (p) {
        var v = p[metric];
        if (typeof v === 'number' && isFinite(v)) { max = Math.max(max, v); points += 1; }
      });
    });
    if (max <= 0) { max = metric === 'error_rate' ? 0.01 : 1; }
    svg.appendChild(el('line', { x1: 0, y1: HEIGHT, x2: WIDTH, y2: HEIGHT, 'class': 'axis' }));
    var top = el('text', { x: 2, y: 10 });
    top.textContent = format(metric, max);
    svg.appendChild(top);
    names.forEach(function (name, i) {
      var coords = history.contexts[name]
        .filter(function (p) { return typeof p[metric] === 'number' && isFinite(p[metric]); })
        .map(function (p) {
          var x = WIDTH - ((now - p.at) / WINDOW_SECONDS) * WIDTH;
          var y = HEIGHT - (p[metric] / max) * (HEIGHT - 12);
          return Math.max(0, x).toFixed(1) + ',' + y.toFixed(1);
        });
      if (coords.length === 1) { coords.push(coords[0]); }
      if (coords.length) {
        var line = el('polyline', { points: coords.join(' '), 'class': 'series-' + (i % 7), 'data-context': name });
        var title = el('title');
        title.textContent = name;
        line.appendChild(title);
        svg.appendChild(line);
      }
      var item = document.createElement('li');
      var swatch = document.createElement('span');
      swatch.className = 'swatch series-' + (i % 7);
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(name));
      legend.appendChild(item);
    });
    chart.setAttribute('data-points', String(points));
    var empty = chart.querySelector('[data-empty]');
    if (empty) { empty.hidden = points > 0; }
  }

  function refresh(charts) {
    fetch(charts.getAttribute('data-history-url'), { credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok) { throw new Error('history ' + r.status); }
        return r.json();
      })
      .then(function (history) {
        charts.querySelectorAll('[data-metric]').forEach(function (chart) { draw(chart, history); });
        charts.setAttribute('data-drawn', 'true');
      })
      .catch(function () { charts.setAttribute('data-drawn', 'failed'); });
  }

  document.addEventListener('DOMContentLoaded', function () {
    var charts = document.querySelector('[data-status-charts]');
    if (!charts) { return; }
    refresh(charts);
    setInterval(function () { refresh(charts); }, 10000);
  });
})();
