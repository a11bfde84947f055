// Drawing shared by the live page (dashboard.js) and the job report (report.js): DOM helpers
// that only ever set text (never innerHTML with data), colours, bars, the task stream canvas and
// the throughput chart (uPlot).
'use strict';
var DT = (function () {
  // An element with attributes and text; `children` appended in order.
  function el(tag, attrs, text, children) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    (children || []).forEach(function (c) { e.appendChild(c); });
    return e;
  }
  function td(text, cls) { return el('td', cls ? {'class': cls} : null, text); }
  function num(v) { return typeof v === 'number' && isFinite(v) ? v : 0; }
  function replaceRows(table, rows) {
    var body = document.querySelector(table + ' tbody');
    var fresh = document.createElement('tbody');
    rows.forEach(function (r) { fresh.appendChild(r); });
    body.parentNode.replaceChild(fresh, body);
  }
  function bytes(n) {
    n = num(n);
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + ' ' + units[i];
  }
  function seconds(s) {
    s = num(s);
    if (s < 1) return (s * 1000).toFixed(1) + ' ms';
    if (s < 120) return s.toFixed(2) + ' s';
    if (s < 7200) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(2) + ' h';
  }
  function clock(ms) { return ms ? new Date(ms).toLocaleTimeString() : ''; }
  // A stable colour per task name.
  function colour(name) {
    var h = 0;
    name = String(name);
    for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return 'hsl(' + (h % 360) + ',62%,52%)';
  }
  // A horizontal stacked bar: parts [{value, cls, title}] over `total`.
  function bar(parts, total) {
    var outer = el('div', {'class': 'bar'});
    total = Math.max(num(total), parts.reduce(function (a, p) { return a + num(p.value); }, 0));
    parts.forEach(function (p) {
      if (!(num(p.value) > 0) || !(total > 0)) return;
      var seg = el('div', {'class': 'seg ' + p.cls, title: p.title || ''});
      seg.style.width = (100 * num(p.value) / total).toFixed(2) + '%';
      outer.appendChild(seg);
    });
    return outer;
  }
  function card(label, value, id) {
    var attrs = {'class': 'card'};
    if (id) attrs.id = id;
    return el('div', attrs, null, [el('div', {'class': 'value'}, value), el('div', {'class': 'label'}, label)]);
  }

  // The task stream: one row per (worker, thread), a box per run between t0 and t1 (ms).
  function taskStream(canvas, legend, runs, t0, t1) {
    var rows = {}, names = {};
    runs.forEach(function (r) { rows[r.worker + '\u0000' + num(r.thread)] = [String(r.worker), num(r.thread)]; names[r.name] = true; });
    var keys = Object.keys(rows).sort(function (a, b) {
      var x = rows[a], y = rows[b];
      return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1];
    });
    var rowH = 14, labelW = 110, ratio = window.devicePixelRatio || 1;
    var width = Math.max(320, canvas.parentNode.clientWidth || 800);
    var height = Math.max(40, keys.length * rowH + 18);
    canvas.style.width = width + 'px';
    canvas.style.height = height + 'px';
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    var g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    g.font = '11px sans-serif';
    g.textBaseline = 'middle';
    var index = {};
    keys.forEach(function (k, i) {
      index[k] = i;
      g.fillStyle = i % 2 ? '#f4f6f8' : '#fff';
      g.fillRect(labelW, i * rowH, width - labelW, rowH);
      g.fillStyle = '#444';
      g.fillText((rows[k][0] + ' #' + rows[k][1]).slice(0, 18), 2, i * rowH + rowH / 2);
    });
    var span = Math.max(1, t1 - t0), plotW = width - labelW;
    runs.forEach(function (r) {
      var i = index[r.worker + '\u0000' + num(r.thread)];
      var x0 = labelW + plotW * (num(r.start_ms) - t0) / span;
      var x1 = labelW + plotW * (num(r.stop_ms) - t0) / span;
      x0 = Math.max(labelW, x0);
      if (x1 < labelW) return;
      g.fillStyle = colour(r.name);
      g.fillRect(x0, i * rowH + 1, Math.max(1, x1 - x0), rowH - 2);
      if (r.erred) { g.strokeStyle = '#c00'; g.lineWidth = 2; g.strokeRect(x0, i * rowH + 1, Math.max(1, x1 - x0), rowH - 2); }
    });
    // Time axis: the span's ends.
    g.fillStyle = '#666';
    var yAxis = keys.length * rowH + 9;
    g.fillText(clock(t0), labelW, yAxis);
    var end = clock(t1);
    g.fillText(end, width - g.measureText(end).width - 2, yAxis);
    if (legend) {
      var items = Object.keys(names).sort().map(function (n) {
        var sw = el('span', {'class': 'swatch'});
        sw.style.background = colour(n);
        return el('span', {'class': 'legend-item'}, null, [sw, el('span', null, n)]);
      });
      legend.replaceChildren.apply(legend, items);
    }
  }

  // Throughput over time with uPlot: `points` is [[t_ms, per_s], ...]. Returns the chart, to be
  // passed back for the next update.
  function throughput(container, chart, points) {
    var xs = points.map(function (p) { return num(p[0]) / 1000; });
    var ys = points.map(function (p) { return num(p[1]); });
    var width = Math.max(320, container.clientWidth || 800);
    if (typeof uPlot === 'undefined') { container.textContent = 'chart library missing'; return null; }
    if (!chart) {
      chart = new uPlot({
        width: width, height: 180,
        series: [{}, {label: 'tasks/s', stroke: '#2a7ab0', fill: 'rgba(42,122,176,0.15)', width: 1.5}],
        axes: [{}, {size: 60}],
        legend: {show: true},
        cursor: {drag: {x: false, y: false}}
      }, [xs, ys], container);
    } else {
      if (Math.abs(chart.width - width) > 4) chart.setSize({width: width, height: 180});
      chart.setData([xs, ys]);
    }
    return chart;
  }

  function errorRows(errors) {
    return errors.slice().reverse().map(function (e) {
      return el('tr', {'class': 'error', 'data-name': String(e.name || '')}, null, [
        td(clock(e.time_ms)), td(e.name), td(e.worker), td(e.key, 'key'),
        el('td', null, null, [el('pre', null, e.message)])]);
    });
  }

  function flushPendingErrors() {
    (window.__pendingErrors || []).forEach(function (t) { window.__noteError(t); });
    window.__pendingErrors = [];
  }

  return {el: el, td: td, num: num, replaceRows: replaceRows, bytes: bytes, seconds: seconds, clock: clock,
          colour: colour, bar: bar, card: card, taskStream: taskStream, throughput: throughput,
          errorRows: errorRows, flushPendingErrors: flushPendingErrors};
})();
