// The operators' console: sign in, then keep a live picture of every venue from the event stream.
//
// Data flow: GET /v1/pois (names, geofences) once; GET /v1/live/stream (fetch + SSE parser) for live
// changes, starting with a snapshot; GET /v1/live/summary every 10 seconds and shortly after activity
// (active sessions are not streamed; it also resynchronises the nightly counters); GET
// /v1/live/alerts to resynchronise alerts; GET /v1/live/pois/{id}/history for the sparklines.
// The access token lives in sessionStorage only: closing the tab signs the operator out.

import { LiveStream } from './sse.js';
import { LANGS, translate } from './i18n.js';
import { VenueMap } from './map.js';

const TOKEN_KEY = 'tourapi.ops.auth';
const PREFS_KEY = 'tourapi.ops.prefs';
const LEVELS = ['comfortable', 'busy', 'crowded', 'full'];
const TZ = 'Asia/Shanghai';
const SUMMARY_EVERY_MS = 10000;
const SUMMARY_AFTER_EVENT_MS = 1200;
const ALERTS_EVERY_MS = 30000;
const HISTORY_EVERY_MS = 5 * 60000;
const CATALOGUE_EVERY_MS = 10 * 60000;
const TREND_MS = 2 * 3600000;
const FEED_MAX = 40;
const ALERTS_SHOWN = 3;

const state = {
  config: {},
  lang: 'en',
  large: false,
  sort: 'crowded',
  auth: null, // {token, expiresAt, user, role}
  venues: new Map(), // poi_id -> {names: {lang: name}, geofence, capacity}
  live: new Map(), // poi_id -> {occupancy, capacity, level, entries, checkins, unique}
  history: new Map(), // poi_id -> [{t, occupancy}]
  active: { total: 0, byRoute: {} },
  routeNames: {}, // lang -> {route_id: name}
  alerts: new Map(), // id -> alert
  feed: [], // {kind, params, at}
  night: null,
  lastData: null,
  alertsExpanded: false,
  selected: null,
  wasDropped: false, // the live connection dropped and has not come back yet
};

let stream = null;
let map = null;
let timers = [];
let summaryTimer = null;
let lastSummaryAt = 0;
let renderPending = false;
let quiet = true; // no flashing until the first data has been drawn (and after a language change)
let started = false;

const $ = (selector, root = document) => root.querySelector(selector);
const t = (key, params) => translate(state.lang, key, params);
const number = (n) => new Intl.NumberFormat(state.lang === 'en' ? 'en-US' : 'zh-CN').format(n);
const time = (when, seconds = true) => new Intl.DateTimeFormat(state.lang === 'en' ? 'en-GB' : 'zh-CN', {
  timeZone: TZ, hour: '2-digit', minute: '2-digit', ...(seconds ? { second: '2-digit' } : {}), hour12: false,
}).format(when);

class HttpError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

// ---- preferences (not secrets: localStorage) --------------------------------------------------------------

function loadPrefs() {
  try {
    const saved = JSON.parse(localStorage.getItem(PREFS_KEY) || '{}');
    state.lang = saved.lang;
    state.large = saved.large === true;
    state.sort = saved.sort;
  } catch { /* ignore a corrupt preference */ }
  const params = new URLSearchParams(location.search); // kiosk set-up: /ops?lang=zh-Hans&large=1
  if (LANGS.includes(params.get('lang'))) state.lang = params.get('lang');
  if (params.has('large')) state.large = params.get('large') !== '0';
  if (!LANGS.includes(state.lang)) state.lang = 'en';
  if (!['crowded', 'name'].includes(state.sort)) state.sort = 'crowded';
}

function savePrefs() {
  localStorage.setItem(PREFS_KEY, JSON.stringify({ lang: state.lang, large: state.large, sort: state.sort }));
}

function applyPrefs() {
  document.documentElement.lang = state.lang;
  document.documentElement.classList.toggle('large', state.large);
  $('#large-toggle').setAttribute('aria-pressed', String(state.large));
  $('#sort').value = state.sort;
  for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll('[data-i18n-label]')) {
    node.setAttribute('aria-label', t(node.dataset.i18nLabel));
    node.title = t(node.dataset.i18nLabel);
  }
  document.title = `${t('title')} · tourapi`;
  $('#lang-toggle').setAttribute('lang', state.lang === 'en' ? 'zh-Hans' : 'en');
}

// ---- auth --------------------------------------------------------------------------------------------------

function readAuth() {
  try {
    const auth = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || 'null');
    return auth && auth.token && auth.expiresAt > Date.now() + 5000 ? auth : null;
  } catch {
    return null;
  }
}

async function signIn(username, password) {
  const response = await fetch('/v1/auth/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ username, password }),
    cache: 'no-store',
  });
  if (response.status === 401 || response.status === 422 || response.status === 400) throw new Error(t('badLogin'));
  if (!response.ok) throw new Error(await problemDetail(response));
  const token = await response.json();
  const me = await fetch('/v1/auth/me', { headers: { Authorization: `Bearer ${token.access_token}` } });
  const who = me.ok ? await me.json() : null;
  if (!who || !['operator', 'admin'].includes(who.role)) throw new Error(t('notOperator'));
  return { token: token.access_token, expiresAt: Date.now() + token.expires_in * 1000, user: who.username, role: who.role };
}

async function problemDetail(response) {
  try {
    return (await response.json()).detail || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

function showLogin(message = '') {
  const overlay = $('#login');
  overlay.hidden = false;
  document.body.classList.add('signed-out');
  $('#login-error').textContent = message;
  $('#login-error').hidden = !message;
  setTimeout(() => ($('#username').value ? $('#password') : $('#username')).focus(), 0);
}

function signOut(reason = null) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.auth = null;
  stopConsole();
  showLogin(reason ? t(reason) : '');
}

// ---- API ---------------------------------------------------------------------------------------------------

async function api(path, { method = 'GET', json } = {}) {
  const headers = { Accept: 'application/json' };
  if (state.auth) headers.Authorization = `Bearer ${state.auth.token}`;
  if (json !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method, headers, cache: 'no-store', body: json === undefined ? undefined : JSON.stringify(json),
  });
  if (response.status === 401 && state.auth) {
    signOut('expired');
    throw new HttpError(401, t('expired'));
  }
  if (!response.ok) throw new HttpError(response.status, await problemDetail(response));
  return response.status === 204 ? null : response.json();
}

async function loadCatalogue() {
  let url = '/v1/pois?limit=500&lang=en';
  const venues = new Map();
  while (url) {
    const page = await api(url);
    for (const feature of page.features) {
      const p = feature.properties;
      const names = { ...(p.i18n && p.i18n.name ? p.i18n.name : {}) };
      if (!names.en) names.en = p.name;
      venues.set(feature.id, { names, geofence: p.geofence, capacity: p.capacity, category: p.category });
    }
    const next = (page.links || []).find((link) => link.rel === 'next');
    url = next ? next.href : null;
  }
  state.venues = venues;
  map.setVenues([...venues].map(([id, v]) => ({ id, geometry: v.geofence })));
  for (const [id, live] of state.live) map.update(id, live);
  map.select(state.selected);
}

async function loadRoutes(lang = state.lang) {
  try {
    const listing = await api(`/v1/routes?limit=200&lang=${encodeURIComponent(lang)}`);
    const names = {};
    for (const route of listing.routes || listing.features || []) {
      const id = route.id;
      names[id] = route.name || (route.properties && route.properties.name) || id;
    }
    state.routeNames[lang] = names;
    renderSoon();
  } catch { /* route names are a nicety: ids are shown instead */ }
}

async function refreshSummary() {
  clearTimeout(summaryTimer);
  summaryTimer = null;
  lastSummaryAt = Date.now();
  try {
    applySummary(await api('/v1/live/summary'));
  } catch { /* the stream status shows connectivity; the next poll retries */ }
}

// Shortly after stream activity (coalesced): active sessions and nightly totals, authoritative.
function summarySoon() {
  if (summaryTimer) return;
  const wait = Math.max(150, SUMMARY_AFTER_EVENT_MS - (Date.now() - lastSummaryAt));
  summaryTimer = setTimeout(refreshSummary, wait);
}

async function refreshAlerts() {
  try {
    const open = await api('/v1/live/alerts?status=open');
    state.alerts = new Map(open.map((alert) => [alert.id, alert]));
    renderSoon();
  } catch { /* retried on the next interval */ }
}

async function refreshHistory(ids = [...state.venues.keys()]) {
  const queue = [...ids];
  const worker = async () => {
    while (queue.length && state.auth) {
      const id = queue.shift();
      try {
        const body = await api(`/v1/live/pois/${encodeURIComponent(id)}/history?hours=2`);
        state.history.set(id, body.series.map((point) => ({ t: Date.parse(point.t), occupancy: point.occupancy })));
      } catch { /* keep the old series */ }
    }
    renderSoon();
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

async function acknowledge(ids, button) {
  button.disabled = true;
  button.textContent = t('acknowledging');
  const item = button.closest('[data-alert-id]');
  try {
    for (const id of String(ids).split(',').map(Number)) {
      const alert = await api(`/v1/live/alerts/${id}/ack`, { method: 'POST' });
      const removed = state.alerts.delete(id); // false if the stream's alert_ack came first (and said so)
      if (!state.alerts.size) state.alertsExpanded = false;
      if (removed && ![...state.alerts.values()].some((a) => a.poi_id === alert.poi_id)) {
        addFeed('ack', { poi: alert.poi_id, who: alert.acked_by || state.auth.user });
      }
    }
    renderSoon();
  } catch (err) {
    button.disabled = false;
    button.textContent = t('acknowledge');
    if (item) $('.alert-error', item).textContent = t('ackFailed', { reason: err.message });
    renderSoon();
  }
}

// ---- live state --------------------------------------------------------------------------------------------

function liveOf(id) {
  let live = state.live.get(id);
  if (!live) {
    live = { occupancy: 0, capacity: 0, level: 'comfortable', entries: 0, checkins: 0, unique: 0 };
    state.live.set(id, live);
  }
  return live;
}

function applySummary(summary) {
  const seen = new Set();
  let unknown = false;
  for (const poi of summary.pois) {
    seen.add(poi.poi_id);
    Object.assign(liveOf(poi.poi_id), {
      occupancy: poi.occupancy, capacity: poi.capacity, level: poi.level, entries: poi.entries_tonight,
      checkins: poi.checkins_tonight, unique: poi.unique_visitors_tonight,
    });
    if (!state.venues.has(poi.poi_id)) unknown = true;
  }
  for (const id of [...state.live.keys()]) if (!seen.has(id)) state.live.delete(id);
  state.active = { total: summary.active_sessions.total, byRoute: summary.active_sessions.by_route || {} };
  state.night = summary.night;
  state.lastData = Date.now();
  if (unknown && map) loadCatalogue().then(renderSoon).catch(() => {});
  renderSoon();
}

const EVENT_KINDS = new Set(['snapshot', 'occupancy', 'crowd_level', 'checkin', 'alert', 'alert_ack']);

function onEvent(event) {
  if (!EVENT_KINDS.has(event.event)) return; // an event kind this console does not know (yet)
  const data = JSON.parse(event.data);
  switch (event.event) {
    case 'snapshot':
      applySummary(data);
      lastSummaryAt = Date.now();
      break;
    case 'occupancy':
      for (const row of data.pois) {
        const live = liveOf(row.poi_id);
        live.occupancy = row.occupancy;
        live.capacity = row.capacity;
        live.level = row.level;
        live.entries += row.enters || 0;
        live.checkins += row.checkins || 0;
      }
      summarySoon();
      break;
    case 'crowd_level': {
      const live = liveOf(data.poi_id);
      live.level = data.to;
      live.capacity = data.capacity;
      addFeed('level', { poi: data.poi_id, from: data.from, to: data.to });
      break;
    }
    case 'checkin':
      for (const row of data.pois) addCheckins(row.poi_id, row.count);
      break;
    case 'alert':
      if (!data.acked_at) state.alerts.set(data.id, data);
      addFeed('alert', { poi: data.poi_id, level: data.level, occupancy: data.occupancy, capacity: data.capacity });
      break;
    case 'alert_ack':
      if (state.alerts.delete(data.id)) addFeed('ack', { poi: data.poi_id, who: data.acked_by || '?' });
      break;
    default:
      return;
  }
  state.lastData = Date.now();
  renderSoon();
}

function onStatus(status) {
  const pill = $('#conn');
  pill.dataset.state = status;
  $('.conn-text', pill).textContent = t(`conn.${status}`);
  document.body.classList.toggle('stale', status !== 'live');
  if (status === 'live' && state.wasDropped) {
    addFeed('reconnected', {});
    state.wasDropped = false;
    refreshSummary();
    refreshAlerts();
  } else if (status === 'reconnecting' && !state.wasDropped && stream && stream.connections > 0) {
    state.wasDropped = true;
    addFeed('dropped', {});
  }
  renderSoon();
}

function addFeed(kind, params) {
  state.feed.unshift({ kind, params, at: Date.now() });
  state.feed.length = Math.min(state.feed.length, FEED_MAX);
}

// Check-ins come every second on a busy night: one line per venue and minute, counting up.
function addCheckins(poi, n) {
  const recent = state.feed.slice(0, 8).find((entry) => entry.kind === 'checkin' && entry.params.poi === poi
    && Date.now() - entry.since < 60000);
  if (recent) {
    recent.params.n += n;
    recent.at = Date.now();
    state.feed.splice(state.feed.indexOf(recent), 1);
    state.feed.unshift(recent);
  } else {
    addFeed('checkin', { poi, n });
    state.feed[0].since = Date.now();
  }
}

// ---- start / stop ------------------------------------------------------------------------------------------

async function startConsole() {
  if (started) stopConsole();
  started = true;
  $('#login').hidden = true;
  document.body.classList.remove('signed-out');
  $('#user').textContent = t('signedInAs', { user: state.auth.user });
  timers.push(setTimeout(() => signOut('expired'), Math.max(0, state.auth.expiresAt - Date.now())));
  try {
    await loadCatalogue();
  } catch (err) {
    if (!state.auth) return;
    showBanner(t('serverDown'));
    timers.push(setTimeout(() => state.auth && startConsole(), 5000));
    return;
  }
  showBanner('');
  stream = new LiveStream({
    url: '/v1/live/stream',
    token: () => (state.auth ? state.auth.token : ''),
    onEvent,
    onStatus,
    onAuthError: () => signOut('expired'),
  });
  window.tourapiConsole.stream = stream;
  stream.start();
  refreshAlerts();
  loadRoutes();
  refreshHistory();
  timers.push(setInterval(() => {
    if (Date.now() - lastSummaryAt >= SUMMARY_EVERY_MS - 100) refreshSummary();
  }, 1000));
  timers.push(setInterval(refreshAlerts, ALERTS_EVERY_MS));
  timers.push(setInterval(() => refreshHistory(), HISTORY_EVERY_MS));
  timers.push(setInterval(() => loadCatalogue().then(renderSoon).catch(() => {}), CATALOGUE_EVERY_MS));
  renderSoon();
}

function stopConsole() {
  started = false;
  for (const timer of timers) {
    clearTimeout(timer);
    clearInterval(timer);
  }
  timers = [];
  clearTimeout(summaryTimer);
  summaryTimer = null;
  if (stream) stream.stop();
  stream = null;
}

function showBanner(text) {
  const banner = $('#notice');
  banner.textContent = text;
  banner.hidden = !text;
}

// ---- rendering ---------------------------------------------------------------------------------------------

function renderSoon() {
  if (renderPending) return;
  renderPending = true;
  setTimeout(() => {
    renderPending = false;
    render();
  }, 30);
}

function render() {
  renderHeader();
  renderKpis();
  renderAlerts();
  renderTable();
  renderMap();
  renderRoutes();
  renderFeed();
  if (state.lastData) quiet = false;
}

const venueName = (id) => {
  const venue = state.venues.get(id);
  if (!venue) return t('unknownVenue', { id });
  return venue.names[state.lang] || venue.names.en || id;
};
const levelText = (level) => t(`level.${level}`);
const percent = (occupancy, capacity) => (capacity > 0 ? Math.round((occupancy / capacity) * 100) : 0);

// Only the numbers an operator watches glow when they change (occupancy, check-ins, open alerts):
// on a busy night everything else changes all the time.
function setText(node, text, flash = true) {
  if (node.textContent === text) return;
  node.textContent = text;
  if (flash && !quiet) {
    node.classList.remove('flash');
    void node.offsetWidth; // restart the animation
    node.classList.add('flash');
  }
}

function renderHeader() {
  $('#night').textContent = state.night ? t('night', { date: state.night }) : '';
  $('#updated').textContent = state.lastData ? t('updated', { time: time(state.lastData) }) : '';
}

function renderKpis() {
  let entries = 0;
  let checkins = 0;
  let busy = 0;
  let busiest = null;
  let busiestRatio = 0;
  for (const [id, live] of state.live) {
    entries += live.entries;
    checkins += live.checkins;
    if (live.level !== 'comfortable') busy += 1;
    const ratio = live.capacity > 0 ? live.occupancy / live.capacity : 0;
    if (live.occupancy > 0 && ratio > busiestRatio) {
      busiest = id;
      busiestRatio = ratio;
    }
  }
  setText($('#kpi-active'), number(state.active.total), false);
  setText($('#kpi-busiest'), busiest ? `${Math.round(busiestRatio * 100)}%` : '–', false);
  $('#kpi-busiest-name').textContent = busiest ? venueName(busiest) : t('kpi.busiest');
  $('#kpi-busiest').closest('.kpi').dataset.level = busiest ? state.live.get(busiest).level : 'comfortable';
  setText($('#kpi-entries'), number(entries), false);
  setText($('#kpi-checkins'), number(checkins), false);
  setText($('#kpi-alerts'), number(state.alerts.size));
  setText($('#kpi-busy'), number(busy), false);
  $('#kpi-alerts').closest('.kpi').classList.toggle('hot', state.alerts.size > 0);
  $('#kpi-busy').closest('.kpi').classList.toggle('warm', busy > 0);
}

function sortedVenueIds() {
  const ids = [...new Set([...state.live.keys()].filter((id) => state.venues.has(id) || state.live.get(id)))];
  const collator = new Intl.Collator(state.lang === 'en' ? 'en' : 'zh-Hans-CN-u-co-pinyin');
  const byName = (a, b) => collator.compare(venueName(a), venueName(b));
  if (state.sort === 'name') return ids.sort(byName);
  const ratio = (id) => {
    const live = state.live.get(id);
    return live.capacity > 0 ? live.occupancy / live.capacity : live.occupancy;
  };
  return ids.sort((a, b) => ratio(b) - ratio(a) || state.live.get(b).occupancy - state.live.get(a).occupancy
    || byName(a, b));
}

function renderTable() {
  const body = $('#venues tbody');
  const rows = new Map([...body.children].map((row) => [row.dataset.poi, row]));
  const order = sortedVenueIds();
  for (const id of order) {
    let row = rows.get(id);
    if (!row) {
      row = $('#venue-row').content.firstElementChild.cloneNode(true);
      row.dataset.poi = id;
      row.addEventListener('click', () => selectVenue(id, false));
      rows.set(id, row);
    }
    fillRow(row, id, state.live.get(id));
  }
  for (const [id, row] of rows) if (!state.live.has(id)) { row.remove(); rows.delete(id); }
  const current = [...body.children].map((row) => row.dataset.poi);
  if (current.join('|') !== order.join('|')) for (const id of order) body.appendChild(rows.get(id));
}

function fillRow(row, id, live) {
  const pct = percent(live.occupancy, live.capacity);
  row.dataset.level = live.level;
  row.className = `level-${live.level}${id === state.selected ? ' selected' : ''}`;
  setText($('.name', row), venueName(id), false);
  $('.name', row).title = venueName(id);
  $('.chip', row).className = `chip level-${live.level}`;
  setText($('.chip-text', row), levelText(live.level), false);
  setText($('[data-field="occupancy"]', row), number(live.occupancy));
  setText($('[data-field="capacity"]', row), number(live.capacity), false);
  setText($('[data-field="percent"]', row), `${pct}%`, false);
  $('.fill', row).style.width = `${Math.min(100, pct)}%`;
  setText($('[data-field="entries"]', row), number(live.entries), false);
  setText($('[data-field="checkins"]', row), number(live.checkins));
  setText($('[data-field="unique"]', row), number(live.unique), false);
  drawSparkline($('svg.spark', row), id, live);
}

function drawSparkline(svg, id, live) {
  const now = Date.now();
  const start = now - TREND_MS;
  const points = (state.history.get(id) || []).filter((p) => p.t >= start - 300000 && p.t < now - 1000);
  points.push({ t: now, occupancy: live.occupancy });
  const peak = Math.max(4, ...points.map((p) => p.occupancy));
  const top = peak * 1.15;
  const x = (tm) => Math.max(0, ((tm - start) / TREND_MS) * 120).toFixed(1);
  const y = (v) => (30 - (v / top) * 28).toFixed(1);
  const line = points.map((p) => `${x(p.t)},${y(p.occupancy)}`).join(' ');
  $('.line', svg).setAttribute('points', line);
  $('.area', svg).setAttribute('d', `M${x(points[0].t)},30L${line.replaceAll(' ', 'L')}L120,30Z`);
  const busyAt = live.capacity * 0.8;
  const mark = $('.busy-line', svg);
  mark.classList.toggle('hidden', !(live.capacity > 0 && busyAt <= top));
  mark.setAttribute('y1', y(busyAt));
  mark.setAttribute('y2', y(busyAt));
  const dot = $('.now', svg);
  dot.setAttribute('cy', y(live.occupancy));
  svg.setAttribute('class', `spark level-${live.level}`);
  svg.setAttribute('aria-label', `${venueName(id)}: ${points.map((p) => p.occupancy).join(', ')}`);
}

function renderMap() {
  if (!map) return;
  for (const [id, live] of state.live) map.update(id, live);
}

function renderRoutes() {
  const list = $('#routes');
  const entries = Object.entries(state.active.byRoute).sort((a, b) => b[1] - a[1]);
  const names = state.routeNames[state.lang] || state.routeNames.en || {};
  $('#routes-empty').hidden = entries.some(([, n]) => n > 0);
  const max = Math.max(1, ...entries.map(([, n]) => n));
  const existing = new Map([...list.children].map((item) => [item.dataset.route, item]));
  syncChildren(list, entries.map(([id, n]) => {
    let item = existing.get(id);
    if (!item) {
      item = $('#route-row').content.firstElementChild.cloneNode(true);
      item.dataset.route = id;
    }
    $('.route-name', item).textContent = names[id] || id;
    $('.route-count', item).textContent = number(n);
    $('.route-fill', item).style.width = `${(n / max) * 100}%`;
    return item;
  }));
}

// One line per venue: its most severe (then newest) open alert; acknowledging the line acknowledges
// every open alert of that venue (the operator has seen the situation there).
function alertGroups() {
  const byVenue = new Map();
  for (const alert of state.alerts.values()) {
    if (!byVenue.has(alert.poi_id)) byVenue.set(alert.poi_id, []);
    byVenue.get(alert.poi_id).push(alert);
  }
  const rank = (a, b) => LEVELS.indexOf(b.level) - LEVELS.indexOf(a.level) || Date.parse(b.raised_at) - Date.parse(a.raised_at);
  const groups = [...byVenue.values()].map((alerts) => alerts.sort(rank));
  return groups.sort((a, b) => rank(a[0], b[0]));
}

function renderAlerts() {
  const section = $('#alerts');
  const groups = alertGroups();
  section.hidden = groups.length === 0;
  const shown = state.alertsExpanded ? groups : groups.slice(0, ALERTS_SHOWN);
  const list = $('#alert-list');
  const existing = new Map([...list.children].map((item) => [item.dataset.poi, item]));
  const items = shown.map((alerts) => {
    const top = alerts[0];
    let item = existing.get(top.poi_id);
    if (!item) {
      item = $('#alert-row').content.firstElementChild.cloneNode(true);
      item.dataset.poi = top.poi_id;
      $('.ack', item).addEventListener('click', (event) => acknowledge(item.dataset.alertIds, event.currentTarget));
    }
    item.dataset.alertId = top.id;
    item.dataset.alertIds = alerts.map((alert) => alert.id).join(',');
    item.className = `alert level-${top.level}`;
    $('.alert-text', item).textContent = t('alertText', {
      venue: venueName(top.poi_id), level: levelText(top.level), occupancy: number(top.occupancy),
      capacity: number(top.capacity), percent: `${percent(top.occupancy, top.capacity)}%`,
    });
    const notes = [t('alertRaised', { time: time(Date.parse(top.raised_at), false) })];
    if (alerts.length > 1) notes.push(t('alertEarlier', { n: alerts.length - 1 }));
    if (top.cleared_at) notes.push(t('alertCleared'));
    $('.alert-time', item).textContent = notes.join(' · ');
    const button = $('.ack', item);
    if (!button.disabled) button.textContent = t('acknowledge');
    return item;
  });
  syncChildren(list, items);
  const more = $('#alerts-more');
  more.hidden = groups.length <= ALERTS_SHOWN;
  more.textContent = state.alertsExpanded ? t('fewerAlerts') : t('moreAlerts', { n: groups.length - ALERTS_SHOWN });
}

const feedNodes = new WeakMap(); // feed entry -> its <li>, so old lines are not redrawn (or re-animated)

function renderFeed() {
  const list = $('#feed');
  $('#feed-empty').hidden = state.feed.length > 0;
  syncChildren(list, state.feed.map((entry) => {
    let item = feedNodes.get(entry);
    if (!item) {
      item = $('#feed-row').content.firstElementChild.cloneNode(true);
      feedNodes.set(entry, item);
    }
    const p = entry.params;
    item.dataset.kind = entry.kind;
    if (p.to || p.level) item.classList.add(`level-${p.to || p.level}`);
    $('.feed-time', item).textContent = time(entry.at);
    const key = entry.kind === 'checkin' && p.n === 1 ? 'feed.checkin1' : `feed.${entry.kind}`;
    $('.feed-text', item).textContent = t(key, {
      ...p,
      venue: p.poi ? venueName(p.poi) : '',
      from: p.from ? levelText(p.from) : '',
      to: p.to ? levelText(p.to) : '',
      level: p.level ? levelText(p.level) : '',
      occupancy: p.occupancy !== undefined ? number(p.occupancy) : '',
      capacity: p.capacity !== undefined ? number(p.capacity) : '',
    });
    return item;
  }));
}

// Make parent's children exactly `nodes`, moving only what changed (re-inserting a node restarts its
// CSS animations, which would make a list flicker on every update).
function syncChildren(parent, nodes) {
  const keep = new Set(nodes);
  for (const child of [...parent.children]) if (!keep.has(child)) child.remove();
  nodes.forEach((node, i) => {
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
  });
}

function selectVenue(id, fromMap) {
  state.selected = state.selected === id ? null : id;
  if (map) map.select(state.selected);
  renderSoon();
  if (fromMap && state.selected) {
    const row = $(`#venues tbody tr[data-poi="${CSS.escape(id)}"]`);
    if (row) row.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  }
}

// ---- wiring ------------------------------------------------------------------------------------------------

function bindUi() {
  $('#login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = $('#login-submit');
    button.disabled = true;
    try {
      state.auth = await signIn($('#username').value.trim(), $('#password').value);
      sessionStorage.setItem(TOKEN_KEY, JSON.stringify(state.auth));
      $('#password').value = '';
      await startConsole();
    } catch (err) {
      showLogin(err instanceof TypeError ? t('serverDown') : err.message);
    } finally {
      button.disabled = false;
    }
  });
  $('#sign-out').addEventListener('click', () => signOut());
  $('#conn').addEventListener('click', () => stream && stream.reconnectNow());
  $('#lang-toggle').addEventListener('click', () => {
    state.lang = state.lang === 'en' ? 'zh-Hans' : 'en';
    savePrefs();
    applyPrefs();
    if (state.auth) {
      $('#user').textContent = t('signedInAs', { user: state.auth.user });
      if (!state.routeNames[state.lang]) loadRoutes();
    }
    onStatus(stream ? stream.status : 'stopped');
    if (map) map.refreshTexts();
    quiet = true; // a language change is not news: no flashing
    render();
  });
  $('#large-toggle').addEventListener('click', () => {
    state.large = !state.large;
    savePrefs();
    applyPrefs();
    if (map) map.layout();
  });
  $('#sort').addEventListener('change', (event) => {
    state.sort = event.target.value;
    savePrefs();
    render();
  });
  $('#zoom-in').addEventListener('click', () => map && map.zoomBy(1.6));
  $('#zoom-out').addEventListener('click', () => map && map.zoomBy(1 / 1.6));
  $('#zoom-reset').addEventListener('click', () => map && map.resetZoom());
  $('#alerts-more').addEventListener('click', () => {
    state.alertsExpanded = !state.alertsExpanded;
    renderAlerts();
  });
}

async function main() {
  loadPrefs();
  applyPrefs();
  bindUi();
  onStatus('stopped');
  try {
    const response = await fetch('/ops/config.json', { cache: 'no-store' });
    if (response.ok) state.config = await response.json();
  } catch { /* defaults: no basemap */ }
  map = new VenueMap($('#map'), {
    tileUrl: state.config.tile_url || null,
    onSelect: (id) => selectVenue(id, true),
    label: venueName,
    levelText,
    scaleText: (n) => t('scale', { n }),
  });
  $('#map-caption').hidden = Boolean(state.config.tile_url);
  setInterval(renderHeader, 1000);
  state.auth = readAuth();
  if (state.auth) await startConsole();
  else showLogin();
}

// For diagnosis in the browser's console (and the end-to-end test): the live stream and state.
window.tourapiConsole = { state, stream: null, reconnect: () => stream && stream.reconnectNow() };

main();
