// rebind dashboard: live per-replica load (uPlot), member tables, the
// planner's last decision and the most recent bindings, the decision feed,
// and the strategy/granularity controls. State arrives as
// Server-Sent Events from /api/events; nothing is polled. Text from the
// network is only ever set as textContent.
'use strict';

/** Seconds of history kept per chart. */
const HISTORY_S = 300;
const COLORS = ['#2456a6', '#d1495b', '#1f7a3a', '#e09f3e', '#6a4c93', '#00798c', '#8c564b', '#c2185b', '#546e7a', '#9e9d24'];
const TOKEN_KEY = 'rebind-token';

const groups = new Map(); // name -> view
let meta = { strategies: [], granularities: [], authRequired: false };

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'text') node.textContent = v;
    else if (k === 'class') node.className = v;
    else if (k === 'style') node.style.cssText = v; // CSSOM: allowed by the page's CSP
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function fmt(n, digits = 1) {
  if (!Number.isFinite(n)) return '-';
  return Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(digits);
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

async function post(path, body) {
  const headers = { 'content-type': 'application/json' };
  if (token()) headers.authorization = `Bearer ${token()}`;
  const res = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body) });
  const answer = await res.json().catch(() => ({}));
  // The balancer's own words say what to do (set a token, opt in, add a host): show them whole.
  if (!res.ok) throw new Error(`refused (HTTP ${res.status}): ${answer.error || res.statusText || 'no reason given'}`);
  return answer;
}

function colorOf(view, memberId) {
  if (!view.colors.has(memberId)) view.colors.set(memberId, COLORS[view.colors.size % COLORS.length]);
  return view.colors.get(memberId);
}

function createGroupView(snapshot) {
  const node = document.getElementById('group-template').content.firstElementChild.cloneNode(true);
  node.dataset.group = snapshot.name;
  node.querySelector('.name').textContent = snapshot.name;
  const view = {
    node,
    name: snapshot.name,
    times: [],
    series: new Map(), // memberId -> values aligned with times
    labels: new Map(), // memberId -> label
    colors: new Map(),
    plot: null,
    plotKey: '',
    kind: 'load',
    result: node.querySelector('.result'),
  };
  const strategy = node.querySelector('select[name=strategy]');
  for (const s of meta.strategies) strategy.append(el('option', { value: s, text: s }));
  const granularity = node.querySelector('select[name=granularity]');
  for (const g of meta.granularities) granularity.append(el('option', { value: g, text: g }));
  const say = (ok, text) => {
    view.result.dataset.ok = String(ok);
    // A refusal is announced at once (role alert), a success politely.
    view.result.setAttribute('role', ok ? 'status' : 'alert');
    view.result.textContent = text;
  };
  node.querySelector('.strategy-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const raw = form.params.value.trim();
    let params;
    try {
      params = raw === '' ? undefined : JSON.parse(raw);
    } catch (err) {
      say(false, `params are not JSON: ${err.message}`);
      return;
    }
    try {
      const g = await post(`/api/groups/${encodeURIComponent(view.name)}/strategy`, { strategy: form.strategy.value, params });
      say(true, `strategy is now ${g.strategy}`);
      updateGroup(view, g);
    } catch (err) {
      say(false, err.message);
    }
  });
  node.querySelector('.granularity-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const g = await post(`/api/groups/${encodeURIComponent(view.name)}/granularity`, { granularity: e.currentTarget.granularity.value });
      say(true, `granularity is now ${g.granularity}`);
      updateGroup(view, g);
    } catch (err) {
      say(false, err.message);
    }
  });
  node.querySelector('.load-kind').addEventListener('change', (e) => {
    view.kind = e.currentTarget.value;
    view.times = [];
    view.series.clear();
    view.plotKey = '';
  });
  document.getElementById('groups').append(node);
  view.editing = false;
  for (const input of node.querySelectorAll('select, input')) {
    input.addEventListener('focus', () => (view.editing = true));
    input.addEventListener('blur', () => (view.editing = false));
  }
  return view;
}

/** Header line, controls (unless being edited), counters. */
function updateGroup(view, g) {
  const n = view.node;
  n.querySelector('.summary').textContent =
    `${g.memberCount} member${g.memberCount === 1 ? '' : 's'} · ${g.granularity} · ${g.strategy} · metric ${g.metric} · reports every ${g.reportIntervalMs} ms`;
  n.dataset.strategy = g.strategy;
  n.dataset.granularity = g.granularity;
  if (!view.editing) {
    n.querySelector('select[name=strategy]').value = g.strategy;
    n.querySelector('input[name=params]').value = Object.keys(g.params).length ? JSON.stringify(g.params) : '';
    n.querySelector('select[name=granularity]').value = g.granularity;
  }
  const c = g.counters;
  const counters = [
    ['binds', c.binds],
    ['re-binds', c.rebinds + c.movesSent],
    ['forwards (balancer)', c.forwards],
    ['forwards (replicas)', c.replicaForwards],
    ['proxied calls', c.proxiedCalls],
    ['advisories', c.advisories],
    ['reports', c.reports],
    ['reconnects', c.reattaches],
  ];
  n.querySelector('.counters').replaceChildren(...counters.map(([k, v]) => el('div', {}, [el('dt', { text: k }), el('dd', { text: String(v) })])));
}

function updateMembers(view, g) {
  const rows = g.members.map((m) =>
    el('tr', { 'data-member': m.id }, [
      el('td', {}, [el('span', { class: 'swatch', style: `background:${colorOf(view, m.id)}` }), m.id]),
      el('td', { text: m.address }),
      el('td', { class: `state-${m.state}`, text: m.state }),
      el('td', { class: 'num', text: fmt(m.rawLoad) }),
      el('td', { class: 'num', text: fmt(m.load) }),
      el('td', { class: 'num', text: fmt(m.callsPerS) }),
      el('td', { class: 'num', text: String(m.inFlight) }),
      el('td', { class: 'num', text: String(m.clients) }),
      el('td', { class: 'num', text: `${(m.lastReportAgeMs / 1000).toFixed(1)} s ago` }),
    ]),
  );
  view.node.querySelector('.members tbody').replaceChildren(...rows);
}

/** A time span for people, from milliseconds. */
function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** Rows shown of the last plan's moves (the snapshot carries up to 100). */
const PLAN_MOVES_SHOWN = 20;

/** The last plan (age, moves, expected gain), clients by binding size, and the most recent bindings. */
function updateLedger(view, g, nowMs) {
  const n = view.node;
  const plan = g.lastPlan;
  const planLine = n.querySelector('.plan');
  const movesTable = n.querySelector('.plan-moves');
  if (plan === null || plan === undefined) {
    planLine.textContent = 'no plan yet';
    planLine.dataset.moves = '';
    movesTable.hidden = true;
  } else {
    const before = plan.dispersionBefore;
    const after = plan.dispersionAfter;
    const removed = before > 0 ? ` (${Math.round((100 * (after - before)) / before)} %)` : '';
    planLine.textContent =
      `last plan ${ago(nowMs - plan.atUnixMs)}: ${plan.moveCount} move${plan.moveCount === 1 ? '' : 's'}, ` +
      `expected gain ${fmt(before - after)} (dispersion ${fmt(before)} → ${fmt(after)}${removed}, ${g.metric}²)`;
    planLine.dataset.moves = String(plan.moveCount);
    const label = (id, address) => (address ? `${id} ${address}` : `${id} (left)`);
    const rows = plan.moves.slice(0, PLAN_MOVES_SHOWN).map((m) =>
      el('tr', {}, [
        el('td', { text: m.clientId }),
        el('td', { text: label(m.fromMemberId, m.fromAddress) }),
        el('td', { text: label(m.toMemberId, m.toAddress) }),
        el('td', { class: 'num', text: fmt(m.load) }),
      ]),
    );
    if (plan.moveCount > rows.length) rows.push(el('tr', {}, [el('td', { colspan: '4', class: 'muted', text: `… ${plan.moveCount - rows.length} more` })]));
    n.querySelector('.plan-moves tbody').replaceChildren(...rows);
    movesTable.hidden = false;
  }
  const sizes = (g.bindingSizes || []).flatMap((count, size) => (size > 0 && count > 0 ? [`${size} member${size === 1 ? '' : 's'}: ${count}`] : []));
  n.querySelector('.binding-sizes').textContent =
    `${g.bindingCount} remembered${sizes.length ? ` · ${sizes.join(', ')}` : ''}${g.bindings.length < g.bindingCount ? ` · ${g.bindings.length} most recent shown` : ''}`;
  const rows = g.bindings.map((b) =>
    el('tr', { 'data-client': b.clientId, 'data-via': b.via }, [
      el('td', { text: b.clientId }),
      el('td', {}, b.members.map((m) => el('span', { class: 'share', title: m.memberId, text: `${m.address || `${m.memberId} (left)`}=${m.permille}` }))),
      el('td', { class: `via-${b.via}`, text: b.via }),
      el('td', { class: 'num', text: ago(nowMs - b.sinceUnixMs) }),
    ]),
  );
  n.querySelector('.bindings tbody').replaceChildren(...rows);
}

/** Appends one point per member and redraws (a new uPlot when the member set changed). */
function updateChart(view, g, nowMs) {
  const t = nowMs / 1000;
  view.times.push(t);
  const present = new Set();
  for (const m of g.members) {
    present.add(m.id);
    view.labels.set(m.id, `${m.id} ${m.address}`);
    if (!view.series.has(m.id)) view.series.set(m.id, new Array(view.times.length - 1).fill(null));
    view.series.get(m.id).push(m[view.kind]);
  }
  for (const [id, values] of view.series) if (!present.has(id)) values.push(null);
  // Drop history older than HISTORY_S, and series with nothing left.
  while (view.times.length > 0 && view.times[0] < t - HISTORY_S) {
    view.times.shift();
    for (const values of view.series.values()) values.shift();
  }
  for (const [id, values] of view.series) if (values.every((v) => v === null)) view.series.delete(id);

  const ids = [...view.series.keys()];
  const key = `${view.kind}|${ids.join(',')}`;
  const chart = view.node.querySelector('.chart');
  const data = [view.times, ...ids.map((id) => view.series.get(id))];
  if (key !== view.plotKey || view.plot === null) {
    view.plot?.destroy();
    chart.replaceChildren();
    const units = { load: g.metric, rawLoad: g.metric, callsPerS: 'calls/s' }[view.kind];
    view.plot = new uPlot(
      {
        width: Math.max(320, chart.clientWidth || 800),
        height: 240,
        scales: { x: { time: true } },
        axes: [{}, { label: units, size: 60 }],
        series: [{}, ...ids.map((id) => ({ label: view.labels.get(id), stroke: colorOf(view, id), width: 2, spanGaps: false }))],
        legend: { live: false },
      },
      data,
      chart,
    );
    view.plotKey = key;
  } else {
    view.plot.setData(data);
  }
  chart.dataset.points = String(view.times.length);
  chart.dataset.series = ids.join(',');
}

function applySnapshot(snapshot) {
  const seen = new Set();
  for (const g of snapshot.groups) {
    seen.add(g.name);
    let view = groups.get(g.name);
    if (view === undefined) {
      view = createGroupView(g);
      groups.set(g.name, view);
    }
    updateGroup(view, g);
    updateMembers(view, g);
    updateLedger(view, g, snapshot.nowMs);
    updateChart(view, g, snapshot.nowMs);
  }
  for (const [name, view] of groups) {
    if (!seen.has(name)) {
      view.plot?.destroy();
      view.node.remove();
      groups.delete(name);
    }
  }
}

function addDecision(d, atTop = true) {
  const item = el('li', { 'data-kind': d.kind }, [
    el('time', { datetime: new Date(d.atMs).toISOString(), text: new Date(d.atMs).toLocaleTimeString() }),
    el('span', { class: 'kind', text: d.kind }),
    el('span', { class: 'feed-group', text: d.group }),
    el('span', { class: 'text', text: d.text }),
  ]);
  const feed = document.getElementById('feed');
  if (atTop) feed.prepend(item);
  else feed.append(item);
  while (feed.children.length > 200) feed.lastElementChild.remove();
}

function setLive(state, text) {
  const live = document.getElementById('live');
  live.dataset.state = state;
  live.textContent = text;
}

async function start() {
  const state = await (await fetch('/api/state')).json();
  meta = state;
  document.getElementById('addresses').textContent = `data ${state.address} · control ${state.controlAddress}`;
  if (state.changes === 'disabled') document.getElementById('changes-off').hidden = false;
  if (state.authRequired) {
    const section = document.getElementById('auth');
    section.hidden = false;
    const input = document.getElementById('token');
    input.value = token();
    input.addEventListener('change', () => sessionStorage.setItem(TOKEN_KEY, input.value.trim()));
  }
  for (const d of [...state.decisions].reverse()) addDecision(d, false);
  applySnapshot(state);
  const events = new EventSource('/api/events');
  events.addEventListener('open', () => setLive('live', 'live'));
  events.addEventListener('error', () => setLive('reconnecting', 'reconnecting…'));
  events.addEventListener('snapshot', (e) => applySnapshot(JSON.parse(e.data)));
  events.addEventListener('decision', (e) => addDecision(JSON.parse(e.data)));
  window.addEventListener('resize', () => {
    for (const view of groups.values()) view.plot?.setSize({ width: Math.max(320, view.node.querySelector('.chart').clientWidth), height: 240 });
  });
}

start().catch((err) => setLive('reconnecting', `failed to load: ${err.message}`));
