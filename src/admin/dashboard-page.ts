/**
 * The dashboard's static page: HTML, CSS and the browser script, as strings so they ship inside
 * dist/ with the compiled server (the runtime image has no src/). The charting library, uPlot, is
 * not copied here: dashboard.ts serves it from node_modules.
 *
 * The browser script is plain ES2020 for the browser (not type-checked with the server code): it
 * must contain no backtick and no dollar-brace sequence, since it lives in a template literal. Its
 * syntax is checked by test/admin/dashboard.test.ts, its behaviour in a real Chromium by
 * test/admin/dashboard-browser.test.ts.
 *
 * Everything is built with createElement/textContent, never innerHTML: node ids and NACK messages
 * come from proxies.
 */

export const DASHBOARD_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fulcrum · dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="dashboard/uplot.min.css">
<link rel="stylesheet" href="dashboard/dashboard.css">
<script src="dashboard/uplot.iife.min.js" defer></script>
<script src="dashboard/dashboard.js" defer></script>
</head>
<body>
<header>
  <h1>fulcrum</h1>
  <span id="status" class="status" role="status" aria-live="polite">starting…</span>
  <span class="spacer"></span>
  <form id="token-form" autocomplete="off">
    <label for="token">Bearer token</label>
    <input id="token" type="password" placeholder="only if the API needs one" size="22">
    <button type="submit">Use</button>
    <button type="button" id="token-clear">Clear</button>
  </form>
  <a href="docs">API docs</a>
</header>
<main>
  <div id="cluster-tools" class="tools">
    <input id="filter" type="search" placeholder="filter clusters by name" aria-label="Filter clusters by name" size="28">
    <span id="cluster-count" class="muted"></span>
  </div>
  <section id="clusters" aria-label="Clusters"></section>
  <section id="proxies-section" class="card" aria-label="Proxies">
    <h2>Proxies <span id="proxy-count" class="muted"></span></h2>
    <table id="proxies" class="grid">
      <thead><tr><th>node id</th><th>node cluster</th><th>protocol</th><th>connected since</th><th>CDS</th><th>EDS</th><th>LDS</th><th>RDS</th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="proxies-empty" class="muted">No proxy connected.</p>
    <p id="proxies-more" class="muted" hidden></p>
  </section>
</main>
<noscript>The dashboard needs JavaScript; the JSON API is at <a href="docs">/docs</a>.</noscript>
</body>
</html>
`;

export const DASHBOARD_CSS = String.raw`:root {
  --bg: #f5f6f8; --card: #fff; --text: #1d2330; --muted: #6b7280; --line: #e3e6eb;
  --ok: #15803d; --ok-bg: #dcfce7; --warn: #a16207; --warn-bg: #fef9c3; --bad: #b91c1c; --bad-bg: #fee2e2;
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); }
header { display: flex; align-items: center; gap: 12px; padding: 10px 20px; background: #1d2330; color: #fff; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; letter-spacing: .5px; }
header a { color: #c7d2fe; }
header input { padding: 3px 6px; border-radius: 4px; border: 1px solid #4b5563; background: #111827; color: #fff; }
header button { padding: 3px 8px; border-radius: 4px; border: 1px solid #4b5563; background: #374151; color: #fff; cursor: pointer; }
header label { color: #d1d5db; margin-right: 4px; }
.spacer { flex: 1; }
.status { font-size: 13px; color: #d1d5db; }
.status.error { color: #fca5a5; font-weight: 600; }
main { padding: 16px 20px; display: flex; flex-direction: column; gap: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
h2 { font-size: 16px; margin: 0 0 8px; }
h3 { font-size: 13px; margin: 0 0 4px; color: var(--muted); font-weight: 600; }
.muted { color: var(--muted); font-weight: normal; }
#clusters { display: flex; flex-direction: column; gap: 16px; }
.cluster-meta { display: flex; gap: 8px; flex-wrap: wrap; margin-bottom: 8px; }
.pill { font-size: 12px; padding: 1px 8px; border-radius: 10px; background: #eef2ff; color: #3730a3; }
.pill.bad { background: var(--bad-bg); color: var(--bad); }
.pill.warn { background: var(--warn-bg); color: var(--warn); }
.tools { display: flex; align-items: center; gap: 12px; }
.tools input { padding: 4px 8px; border-radius: 4px; border: 1px solid var(--line); }
.pill.owner-kubernetes { background: #e0f2fe; color: #075985; font-weight: 600; }
.operations { font-size: 12px; color: var(--muted); margin: 0 0 8px; }
.notice { margin: 8px 0; padding: 8px 12px; border-radius: 6px; background: var(--warn-bg); color: var(--warn); font-size: 13px; }
.notice ul { margin: 4px 0 0 18px; padding: 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 12px; margin-bottom: 8px; }
.chart { min-width: 0; }
table.grid { border-collapse: collapse; width: 100%; font-size: 13px; }
table.grid th { text-align: left; color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--line); padding: 4px 8px; }
table.grid td { border-bottom: 1px solid var(--line); padding: 4px 8px; vertical-align: top; }
table.grid td.num { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: baseline; }
.badge { display: inline-block; font-size: 11px; font-weight: 700; padding: 1px 6px; border-radius: 4px; }
.badge.SYNCED, .badge.HEALTHY { color: var(--ok); background: var(--ok-bg); }
.badge.STALE, .badge.DRAINING, .badge.DEGRADED, .badge.UNKNOWN { color: var(--warn); background: var(--warn-bg); }
.badge.NACKED, .badge.UNHEALTHY, .badge.TIMEOUT { color: var(--bad); background: var(--bad-bg); }
.badge.NOT_SENT { color: var(--muted); background: #f3f4f6; }
.nack, .refused { color: var(--bad); font-size: 12px; margin-top: 2px; max-width: 380px; overflow-wrap: anywhere; }
.uplot { font-family: inherit; }
.uplot .u-legend { font-size: 12px; }
.uplot .u-legend .u-series > * { padding: 1px 4px; }
`;

export const DASHBOARD_JS = String.raw`'use strict';
(function () {
  var WINDOW_SECONDS = 300;      // the rolling window kept client-side
  var POLL_MS = 1000;
  // A cluster's weights (every endpoint, explained) are polled only while its card is on or near
  // the screen, at most MAX_LIVE at a time: at 1,000 clusters of 100 endpoints, polling them all
  // read 7 MB a second and kept the server busy. The list itself is GET /v1/weights, one line each.
  var MAX_LIVE = 12;
  var NEAR_SCREEN = '600px 0px';   // "near": within this margin of the viewport
  var MANY_CLUSTERS = 500;         // above this, the list is re-read every LIST_EVERY polls, not every poll
  var LIST_EVERY = 5;
  // 10,000 proxies are a 7 MB answer: the table asks for at most MANY_PROXIES + 1 streams; past
  // MANY_PROXIES it is re-read every LIST_EVERY polls and shows PROXY_ROWS, NACKED and STALE first
  // (asked for by state: GET /v1/proxies?state=…&limit=…).
  var MANY_PROXIES = 500;
  var PROXY_ROWS = 200;
  var KEEP_VIEWS = 2 * MAX_LIVE;   // charts kept for cards scrolled past (the nearest first), the rest dropped
  var REQUEST_TIMEOUT_MS = 20000;
  var CHART_HEIGHT = 180;
  var TOKEN_KEY = 'fulcrum.dashboard.token';
  var PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4d7c0f', '#9333ea', '#ea580c'];
  var XDS_TYPES = ['CDS', 'EDS', 'LDS', 'RDS'];
  var METRICS = [
    // The share of the cluster (%), the one weight unit that compares across clusters and policies.
    { key: 'weight', title: 'Weight share', unit: '%', pick: function (e) { return num(e.share); } },
    { key: 'cpu', title: 'Utilization (cpu)', unit: '%', pick: function (e) {
      var inp = e.explanation && e.explanation.inputs;
      if (!inp) return null;
      var v = num(inp.cpu);
      if (v === null) v = num(inp.utilization);
      return v === null ? null : v * 100;
    } },
    { key: 'latency', title: 'Latency', unit: 'ms', pick: function (e) {
      var inp = e.explanation && e.explanation.inputs;
      if (!inp) return null;
      var v = num(inp.latencyMs);
      return v === null ? num(inp.probeLatencyMs) : v;
    } },
  ];

  var cards = new Map();         // name -> card: its section, its GET /v1/weights line, and (while polled) its charts
  var observer = null;
  var filterText = '';
  var polls = 0;
  var live = 0;                  // clusters polled in the last poll
  var proxyCount = 0;            // streams in the last proxies answer
  var listError = null;          // the last list read's failure, until one succeeds

  function num(v) { return typeof v === 'number' && isFinite(v) ? v : null; }
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'className') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function fmt(v, digits, unit) {
    if (v === null || v === undefined) return '–';
    return v.toFixed(digits) + (unit || '');
  }
  /** 100000 as 100k, 2500000 as 2.5M: axis labels stay short. */
  function compact(v) {
    var a = Math.abs(v);
    if (a >= 1e6) return +(v / 1e6).toFixed(2) + 'M';
    if (a >= 1e4) return +(v / 1e3).toFixed(1) + 'k';
    return String(+v.toFixed(3));
  }
  function colorOf(i) { return PALETTE[i % PALETTE.length]; }

  // ── token ────────────────────────────────────────────────────────────────────────────────
  function token() { try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; } }
  function setToken(t) {
    try { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* storage disabled */ }
  }

  function HttpError(status, message) { this.status = status; this.message = message; }

  function getJson(path) {
    var headers = { accept: 'application/json' };
    var t = token();
    if (t) headers.authorization = 'Bearer ' + t;
    // A request that hangs (a stalled server, a lost connection) must not stall every poll after it.
    // The timer covers the body too: a big answer can stall while it is read.
    var abort = new AbortController();
    var timer = setTimeout(function () { abort.abort(new Error(path + ': no answer within ' + (REQUEST_TIMEOUT_MS / 1000) + ' s')); }, REQUEST_TIMEOUT_MS);
    return fetch(path, { headers: headers, cache: 'no-store', signal: abort.signal }).then(function (res) {
      return res.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        if (!res.ok) throw new HttpError(res.status, (body && body.message) || res.statusText || ('HTTP ' + res.status));
        return body;
      });
    }).finally(function () { clearTimeout(timer); });
  }

  // ── status line ──────────────────────────────────────────────────────────────────────────
  function showStatus(error) {
    var s = $('status');
    if (error) {
      s.className = 'status error';
      s.textContent = error.status === 401 || error.status === 403
        ? 'API refused (' + error.status + '): ' + error.message + ' — enter a token'
        : 'update failed: ' + (error.message || String(error));
    } else {
      s.className = 'status';
      s.textContent = 'live · updated ' + new Date().toLocaleTimeString() + ' · ' + cards.size + ' cluster(s), ' + live + ' charted (on or near the screen) · window ' + (WINDOW_SECONDS / 60) + ' min';
    }
    document.body.setAttribute('data-polls', String(polls));
  }

  // ── clusters ─────────────────────────────────────────────────────────────────────────────
  function chartWidth(view) {
    var w = view.chartsEl.clientWidth;
    var cols = Math.max(1, Math.min(METRICS.length, Math.floor((w + 12) / 312)));
    return Math.max(240, Math.floor((w - 12 * (cols - 1)) / cols));
  }

  function matches(name) { return filterText === '' || name.toLowerCase().indexOf(filterText) >= 0; }

  /** A cluster's card: its name, its line's pills, and room for its charts once it is polled. */
  function makeCard(name) {
    var section = el('section', { className: 'card cluster', 'data-cluster': name });
    var card = { name: name, section: section, meta: el('div', { className: 'cluster-meta' }), ops: el('div', { className: 'operations' }),
      notice: el('div', { className: 'notice missing-signals' }), detail: el('div', { className: 'detail' }),
      line: null, shown: '', setpoint: null, view: null, near: false, leftAt: 0, polledAt: -1 };
    card.notice.hidden = true;
    [el('h2', { text: name }), card.meta, card.ops, card.notice, card.detail].forEach(function (c) { section.appendChild(c); });
    section.hidden = !matches(name);
    if (observer) observer.observe(section);
    return card;
  }

  /** The charts and the endpoint table of a polled card. */
  function makeView(card) {
    var charts = el('div', { className: 'charts' });
    var table = el('table', { className: 'grid endpoints' });
    var head = el('tr');
    ['endpoint', 'health', 'weight', 'static', 'share', 'cpu', 'latency', 'rps', 'inflight', 'freshness', 'safety rules'].forEach(function (h) {
      head.appendChild(el('th', { text: h }));
    });
    table.appendChild(el('thead', null, [head]));
    var tbody = el('tbody');
    table.appendChild(tbody);
    card.detail.appendChild(charts);
    card.detail.appendChild(table);
    var view = { name: card.name, chartsEl: charts, tbody: tbody, times: [], keys: [], series: new Map(), charts: [] };
    METRICS.forEach(function (m) {
      var box = el('div', { className: 'chart', 'data-metric': m.key, 'data-points': '0' });
      box.appendChild(el('h3', { text: m.title + (m.unit ? ' (' + m.unit + ')' : '') }));
      var plotEl = el('div');
      box.appendChild(plotEl);
      charts.appendChild(box);
      view.charts.push({ metric: m, box: box, plotEl: plotEl, plot: null });
    });
    return view;
  }

  function plotOptions(view, metric, width) {
    var series = [{ label: 'time' }];
    view.keys.forEach(function (k, i) {
      series.push({ label: k, stroke: colorOf(i), width: 2, spanGaps: false,
        value: function (u, v) { return v === null || v === undefined ? '–' : v.toFixed(1) + metric.unit; } });
    });
    var y = metric.unit === '%'
      ? { range: function (u, min, max) { return [0, Math.max(100, max === null ? 100 : max)]; } }
      : { range: function (u, min, max) { return [0, max === null || max <= 0 ? 1 : max * 1.1]; } };
    return {
      width: width,
      height: CHART_HEIGHT,
      series: series,
      scales: { x: { time: true }, y: y },
      axes: [{}, { size: 56, values: function (u, vals) { return vals.map(function (v) { return compact(v) + metric.unit; }); } }],
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
    };
  }

  function dataOf(view, metric) {
    var data = [view.times];
    view.keys.forEach(function (k) { data.push(view.series.get(k)[metric.key]); });
    return data;
  }

  function rebuildPlots(view) {
    var width = chartWidth(view);
    view.charts.forEach(function (c) {
      if (c.plot) c.plot.destroy();
      c.plot = new uPlot(plotOptions(view, c.metric, width), dataOf(view, c.metric), c.plotEl);
    });
  }

  function record(view, body, gap) {
    var now = Date.now() / 1000;
    var seen = new Set();
    var added = false;
    var last = view.times[view.times.length - 1];
    // Not polled in the previous poll (off screen, then back): a null point, so that no line is drawn across the gap.
    if (last !== undefined && gap) {
      view.times.push(last + 0.001);
      view.series.forEach(function (s) { METRICS.forEach(function (m) { s[m.key].push(null); }); });
    }
    var n = view.times.length;
    view.times.push(now);
    body.endpoints.forEach(function (e) {
      seen.add(e.endpoint);
      var s = view.series.get(e.endpoint);
      if (!s) {
        s = {};
        METRICS.forEach(function (m) { s[m.key] = new Array(n).fill(null); });
        view.series.set(e.endpoint, s);
        view.keys.push(e.endpoint);
        added = true;
      }
      METRICS.forEach(function (m) { s[m.key].push(m.pick(e)); });
    });
    view.series.forEach(function (s, k) {
      if (!seen.has(k)) METRICS.forEach(function (m) { s[m.key].push(null); });
    });
    // Trim the window; forget endpoints with nothing left in it.
    var drop = 0;
    while (drop < view.times.length && view.times[drop] < now - WINDOW_SECONDS) drop++;
    if (drop > 0) {
      view.times.splice(0, drop);
      view.series.forEach(function (s) { METRICS.forEach(function (m) { s[m.key].splice(0, drop); }); });
    }
    var removed = false;
    view.keys = view.keys.filter(function (k) {
      var s = view.series.get(k);
      var any = METRICS.some(function (m) { return s[m.key].some(function (v) { return v !== null; }); });
      if (!any && !seen.has(k)) { view.series.delete(k); removed = true; }
      return any || seen.has(k);
    });
    if (added || removed || !view.charts[0].plot) rebuildPlots(view);
    else view.charts.forEach(function (c) { c.plot.setData(dataOf(view, c.metric)); });
    view.charts.forEach(function (c) {
      var points = 0;
      view.keys.forEach(function (k) { view.series.get(k)[c.metric.key].forEach(function (v) { if (v !== null) points++; }); });
      c.box.setAttribute('data-points', String(points));
    });
  }

  /** The card's pills, from its GET /v1/weights line (and the setpoint of its last poll): redrawn only when they change. */
  function renderLine(card) {
    var line = card.line;
    var pills = [];
    if (line.owner) pills.push(['owner ' + line.owner, 'owner owner-' + line.owner]);
    pills.push(['lb ' + line.lbPolicy, '']);
    pills.push(['weighting ' + line.policy, '']);
    if (card.setpoint !== null) pills.push(['setpoint ' + (card.setpoint * 100).toFixed(1) + '%', '']);
    pills.push([line.endpoints + ' endpoint' + (line.endpoints === 1 ? '' : 's') + ', ' + line.inRotation + ' in rotation', '']);
    if (line.unhealthy > 0) pills.push([line.unhealthy + ' unhealthy', 'bad']);
    if (line.draining > 0) pills.push([line.draining + ' draining', 'warn']);
    if (line.missingSignals > 0) pills.push([line.missingSignals + ' without signals', 'warn']);
    if (!line.computed) pills.push(['engine not run yet', '']);
    if (line.failStatic) pills.push(['FAIL STATIC: every endpoint would be out', 'bad']);
    // Nothing routable: proxies are sent the best endpoints left as UNKNOWN, whatever the counts above say.
    if (line.lastResort) pills.push([LAST_RESORT[line.lastResort] || 'NOTHING ROUTABLE', 'bad']);
    var shown = JSON.stringify(pills);
    if (shown === card.shown) return;
    card.shown = shown;
    card.meta.textContent = '';
    pills.forEach(function (p) { card.meta.appendChild(el('span', { className: 'pill ' + p[1], text: p[0] })); });
    card.ops.textContent = OPERATIONS[line.owner] || '';
  }

  /** What only a polled cluster's answer says: the setpoint, and which endpoints miss which signal. */
  function renderDetailMeta(card, body) {
    card.setpoint = num(body.setpoint);
    if (card.line) renderLine(card);
    card.notice.textContent = '';
    card.notice.hidden = !body.missingSignals;
    if (body.missingSignals) renderMissing(card.notice, body.missingSignals);
  }

  var LAST_RESORT = {
    DEGRADED: 'NOTHING ROUTABLE: the DEGRADED endpoints are sent to proxies as UNKNOWN',
    DRAINING: 'NOTHING ROUTABLE: the DRAINING endpoints are sent to proxies as UNKNOWN',
    ALL: 'NOTHING ROUTABLE: every endpoint (UNHEALTHY ones too) is sent to proxies as UNKNOWN'
  };

  // What an operator may do to a cluster, by who owns it (the admin API refuses the rest with a 409 saying so).
  var OPERATIONS = {
    kubernetes: 'Discovered from a Kubernetes Service, which owns its spec (change it with the Service\'s fulcrum.io/* annotations). ' +
      'Allowed here: drain, disable and enable endpoints, and change the balancing policy (PATCH /v1/clusters/{name}/policy); ' +
      'both are kept as overrides across restarts and re-discovery (GET /v1/overrides, DELETE to undo).',
    file: 'Defined in the config file (edit the file to change it). Allowed here: drain, disable and enable endpoints.',
    api: 'Created through the admin API: every operation is allowed (PUT, PATCH, DELETE, policy, endpoints, drain / disable / enable).'
  };

  // A policy that steers on a signal nobody sends does nothing: say which, for whom, and how to send it.
  function renderMissing(box, m) {
    box.appendChild(el('strong', { text: 'No ' + m.signals.join(' or ') + ' signal from ' + m.endpoints.length + ' of ' + m.of + ' endpoints: ' + m.effect + '.' }));
    box.appendChild(el('div', { text: 'Endpoints: ' + m.endpoints.slice(0, 10).join(', ') + (m.endpoints.length > 10 ? ', …' : '') }));
    var how = el('ul');
    m.howToProvide.forEach(function (h) { how.appendChild(el('li', { text: h })); });
    box.appendChild(how);
  }

  function renderEndpoints(view, body) {
    view.tbody.textContent = '';
    body.endpoints.forEach(function (e) {
      var ex = e.explanation || {};
      var inp = ex.inputs || {};
      var i = view.keys.indexOf(e.endpoint);
      var weight = num(e.weight);
      var cpu = num(inp.cpu);
      var lat = num(inp.latencyMs);
      var tr = el('tr', { 'data-endpoint': e.endpoint, 'data-weight': weight === null ? '' : String(weight) });
      var name = el('td');
      var swatch = el('span', { className: 'swatch' });
      swatch.style.background = colorOf(i < 0 ? 0 : i);   // CSSOM: allowed by the CSP, a style attribute is not
      name.appendChild(swatch);
      name.appendChild(document.createTextNode(e.endpoint));
      tr.appendChild(name);
      var health = el('td');
      health.appendChild(el('span', { className: 'badge ' + (e.health || 'UNKNOWN'), text: e.health || '–' }));
      tr.appendChild(health);
      tr.appendChild(el('td', { className: 'num weight', text: weight === null ? '–' : String(weight) }));
      tr.appendChild(el('td', { className: 'num', text: num(e.staticWeight) === null ? '–' : String(e.staticWeight) }));
      tr.appendChild(el('td', { className: 'num', text: num(e.share) === null ? '–' : e.share.toFixed(1) + '%' }));
      tr.appendChild(el('td', { className: 'num', text: cpu === null ? '–' : (cpu * 100).toFixed(1) + '%' }));
      tr.appendChild(el('td', { className: 'num', text: fmt(lat, 1, ' ms') }));
      tr.appendChild(el('td', { className: 'num', text: fmt(num(inp.rps), 1) }));
      tr.appendChild(el('td', { className: 'num', text: fmt(num(inp.inflight), 0) }));
      tr.appendChild(el('td', { text: ex.freshness || '–' }));
      tr.appendChild(el('td', { text: (ex.rules || []).join(', ') || '–' }));
      view.tbody.appendChild(tr);
    });
  }

  function showCluster(card, body) {
    if (!card.view) card.view = makeView(card);
    record(card.view, body, card.polledAt !== polls - 1);
    card.polledAt = polls;
    renderDetailMeta(card, body);
    renderEndpoints(card.view, body);
  }

  /** A card's charts and table dropped (off screen for the whole window): its memory back. */
  function dropDetail(card) {
    if (!card.view) return;
    card.view.charts.forEach(function (c) { if (c.plot) c.plot.destroy(); });
    card.detail.textContent = '';
    card.view = null;
    card.setpoint = null;
    card.notice.hidden = true;
    if (card.line) renderLine(card);
  }

  function dropCard(name) {
    var card = cards.get(name);
    if (!card) return;
    dropDetail(card);
    if (observer) observer.unobserve(card.section);
    card.section.remove();
    cards.delete(name);
  }

  /** Every cluster's line (GET /v1/weights): cards added, removed and their pills redrawn, in the answer's (name) order. */
  function refreshList() {
    return getJson('v1/weights').then(function (body) {
      listError = null;
      var names = new Set(body.clusters.map(function (l) { return l.cluster; }));
      Array.from(cards.keys()).forEach(function (n) { if (!names.has(n)) dropCard(n); });
      var added = false;
      body.clusters.forEach(function (line) {
        var card = cards.get(line.cluster);
        if (!card) { card = makeCard(line.cluster); cards.set(line.cluster, card); added = true; }
        card.line = line;
        renderLine(card);
      });
      if (added) {
        var root = $('clusters');
        body.clusters.forEach(function (line) { root.appendChild(cards.get(line.cluster).section); });
        // The observer reports after the next frame: new cards on screen are polled in this poll.
        cards.forEach(function (card) { if (!card.view && !card.near) card.near = isNear(card.section); });
      }
      showCount();
    }, function (err) {
      // The cards already listed are still polled; the failure is shown until a list read succeeds.
      listError = err;
    });
  }

  function showCount() {
    var shown = 0;
    cards.forEach(function (card) { if (!card.section.hidden) shown++; });
    $('cluster-count').textContent = filterText === '' ? cards.size + ' cluster(s)' : shown + ' of ' + cards.size + ' cluster(s) match';
  }

  /** Within NEAR_SCREEN of the screen, as the observer reports it. */
  function isNear(section) {
    return !section.hidden && offScreen(section) < parseInt(NEAR_SCREEN, 10);
  }

  /** How far a section is from the screen, px (0 when on it). */
  function offScreen(section) {
    var r = section.getBoundingClientRect();
    return Math.max(0, r.top - window.innerHeight, -r.bottom);
  }

  /** The cards to poll: on or near the screen, not filtered out, the nearest MAX_LIVE (on screen first, then in page order). */
  function liveCards() {
    var near = [];
    cards.forEach(function (card) { if (card.near && !card.section.hidden) near.push({ card: card, away: offScreen(card.section) }); });
    near.sort(function (a, b) { return a.away - b.away; });
    return near.slice(0, MAX_LIVE).map(function (x) { return x.card; });
  }

  /** Charts off screen for the whole window show nothing any more; past KEEP_VIEWS, the longest off screen go first. */
  function forgetFarCards() {
    var now = Date.now();
    var kept = [];
    cards.forEach(function (card) {
      if (!card.view || card.near) return;
      if (now - card.leftAt > WINDOW_SECONDS * 1000) dropDetail(card);
      else kept.push(card);
    });
    var charted = 0;
    cards.forEach(function (card) { if (card.view) charted++; });
    kept.sort(function (a, b) { return a.leftAt - b.leftAt; });
    for (var i = 0; i < kept.length && charted > KEEP_VIEWS; i++, charted--) dropDetail(kept[i]);
  }

  function pollCluster(card) {
    return getJson('v1/weights/' + encodeURIComponent(card.name)).then(function (body) {
      if (cards.get(card.name) === card) showCluster(card, body);
    }, function (err) {
      if (err && err.status === 404) {
        if (cards.get(card.name) === card) { dropCard(card.name); showCount(); }
        return;
      }
      throw err;
    });
  }

  // ── proxies ──────────────────────────────────────────────────────────────────────────────
  /** 0 when a type is NACKED, 1 when one is STALE, else 2: the streams to look at first. */
  function trouble(p) {
    var states = XDS_TYPES.map(function (t) { return (p.types[t] || {}).state; });
    return states.indexOf('NACKED') >= 0 ? 0 : states.indexOf('STALE') >= 0 ? 1 : 2;
  }

  /** The proxies table: every stream up to MANY_PROXIES, else the NACKED, the STALE and the first streams, PROXY_ROWS of them. */
  function readProxies() {
    return getJson('v1/proxies?limit=' + (MANY_PROXIES + 1)).then(function (first) {
      if (first.count <= MANY_PROXIES) return renderProxies(first.count, first.proxies);
      var troubled = ['NACKED', 'STALE'].map(function (state) { return getJson('v1/proxies?state=' + state + '&limit=' + PROXY_ROWS); });
      return Promise.all(troubled).then(function (lists) {
        renderProxies(first.count, troubledFirst(lists[0].proxies.concat(lists[1].proxies, first.proxies)));
      });
    });
  }

  /** Each stream once (three answers, read at slightly different times), NACKED then STALE first, each group in listing order. */
  function troubledFirst(streams) {
    var seen = new Set();
    var once = streams.filter(function (p) {
      var id = p.replica + ' ' + p.streamId;
      return seen.has(id) ? false : (seen.add(id), true);
    });
    var text = function (a, b) { return a < b ? -1 : a > b ? 1 : 0; };
    // The API's listing order, field by field (node ids are arbitrary strings).
    var listing = function (a, b) {
      return text(a.nodeId, b.nodeId) || text(a.replica, b.replica) || Date.parse(a.connectedSince) - Date.parse(b.connectedSince) || a.streamId - b.streamId;
    };
    return once.map(function (p) { return { p: p, t: trouble(p) }; })
      .sort(function (a, b) { return a.t - b.t || listing(a.p, b.p); })
      .slice(0, PROXY_ROWS).map(function (x) { return x.p; });
  }

  function renderProxies(count, shown) {
    var tbody = $('proxies').tBodies[0];
    tbody.textContent = '';
    proxyCount = count;
    $('proxy-count').textContent = '(' + count + ' stream' + (count === 1 ? '' : 's') + ')';
    $('proxies-empty').hidden = shown.length > 0;
    var many = count > MANY_PROXIES;
    $('proxies-more').hidden = !many;
    $('proxies-more').textContent = 'Showing ' + shown.length + ' of ' + count + ' streams, NACKED and STALE first; every one: GET /v1/proxies (?state=NACKED: the troubled ones).';
    shown.forEach(function (p) {
      var tr = el('tr', { 'data-node': p.nodeId });
      tr.appendChild(el('td', { text: p.nodeId }));
      tr.appendChild(el('td', { text: p.nodeCluster || '–' }));
      tr.appendChild(el('td', { text: p.protocol + ' · ' + p.service.replace(/^.*\./, '') }));
      tr.appendChild(el('td', { text: new Date(p.connectedSince).toLocaleTimeString() }));
      XDS_TYPES.forEach(function (t) {
        var sync = p.types[t] || { state: 'NOT_SENT' };
        var td = el('td', { 'data-type': t, 'data-state': sync.state });
        td.appendChild(el('span', { className: 'badge ' + sync.state, text: sync.state, title: sync.ackedVersion ? 'acked ' + sync.ackedVersion : '' }));
        if (sync.state === 'NACKED' && sync.lastNack) td.appendChild(el('div', { className: 'nack', text: sync.lastNack.message }));
        if (sync.state === 'NACKED' && sync.rejected && sync.rejected.length) td.appendChild(el('div', { className: 'refused', text: 'refused: ' + sync.rejected.join(', ') }));
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
  }

  // ── the loop ─────────────────────────────────────────────────────────────────────────────
  function poll() {
    var every = cards.size > MANY_CLUSTERS ? LIST_EVERY : 1;
    var list = polls % every === 0 || cards.size === 0 ? refreshList() : Promise.resolve();
    return list.then(function () {
      var polled = liveCards();
      live = polled.length;
      var work = polled.map(pollCluster);
      // Past 500 clusters the list is read on polls 0 mod LIST_EVERY: the proxies on 2 mod LIST_EVERY.
      if (proxyCount <= MANY_PROXIES || polls % LIST_EVERY === 2) work.push(readProxies());
      // Every request settles (answers or times out) before the next poll: polls never overlap.
      return Promise.allSettled(work).then(function (outcomes) {
        var failed = outcomes.filter(function (o) { return o.status === 'rejected'; })[0];
        if (failed) throw failed.reason;
      });
    }).then(function () {
      forgetFarCards();
      polls++;
      showStatus(listError);
    }, function (err) {
      forgetFarCards();
      polls++;
      showStatus(err);
    }).then(function () {
      setTimeout(poll, POLL_MS);
    });
  }

  function resize() {
    cards.forEach(function (card) {
      var view = card.view;
      if (!view) return;
      var w = chartWidth(view);
      view.charts.forEach(function (c) { if (c.plot) c.plot.setSize({ width: w, height: CHART_HEIGHT }); });
    });
  }

  function start() {
    var input = $('token');
    input.value = token();
    $('token-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      setToken(input.value.trim());
    });
    $('filter').addEventListener('input', function () {
      filterText = $('filter').value.trim().toLowerCase();
      cards.forEach(function (card) { card.section.hidden = !matches(card.name); });
      showCount();
    });
    $('token-clear').addEventListener('click', function () {
      input.value = '';
      setToken('');
    });
    var timer = null;
    window.addEventListener('resize', function () {
      clearTimeout(timer);
      timer = setTimeout(resize, 100);
    });
    observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        var card = cards.get(entry.target.getAttribute('data-cluster'));
        if (!card) return;
        if (card.near && !entry.isIntersecting) card.leftAt = Date.now();
        card.near = entry.isIntersecting;
      });
    }, { rootMargin: NEAR_SCREEN });
    if (typeof uPlot !== 'function') {
      showStatus(new Error('the chart library did not load'));
      return;
    }
    poll();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
`;
