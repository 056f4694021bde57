// The audex console: one page that signs in with an API key once, then
// reads the API's own routes with its session (the HttpOnly cookie the
// server set, and the CSRF token it answered, in X-CSRF-Token). The view
// is in the path (/console/events, /console/events/{id}, /console/summary,
// /console/exports, /console/exports/{id}, /console/streams,
// /console/streams/{id}, /console/admin, /console/purges/{id}) and the
// events and summary views' filters are the list route's own parameters,
// in the page's URL.

const main = document.getElementById('main');
const header = document.getElementById('top');
let session = null;

// The list route's filters, in the order the form shows them, with their
// labels and the values route field that fills a picker.
const FILTERS = [
  ['since', 'Since'], ['until', 'Until'],
  ['action', 'Action', 'action'], ['action_prefix', 'Action prefix'],
  ['actor_id', 'Actor'], ['actor_type', 'Actor type', 'actor_type'],
  ['target_id', 'Target'], ['target_type', 'Target type', 'target_type'],
  ['resource_prefix', 'Resource prefix'], ['success', 'Result'],
  ['source_ip', 'Source IP or CIDR'], ['request_id', 'Request id'],
];

// Quick choices of the time range: how far back since goes.
const RANGES = [['Last hour', 3600e3], ['24 hours', 86400e3], ['7 days', 7 * 86400e3], ['30 days', 30 * 86400e3], ['Any time', 0]];

const PAGE = 100;

// APIError is an answer in the API's error shape.
class APIError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
  }
}

// request calls a route of the API with the console's session and
// returns its answer; an error answer throws an APIError (and a 401 of
// the session shows the sign-in).
async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (session) headers['X-CSRF-Token'] = session.csrf_token;
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (!res.ok) {
    const err = new APIError(res.status, await res.json().catch(() => null));
    if (res.status === 401 && session) {
      session = null;
      showSignIn('Your session has ended: sign in again.');
    }
    throw err;
  }
  return res;
}

// api is request for a JSON answer (null for 204).
async function api(method, path, body) {
  const res = await request(method, path, body);
  return res.status === 204 ? null : res.json();
}

// download saves the streaming download (POST /v1/audit/export) of the
// events view's filters and range as a file. The browser holds the file
// until it is saved.
async function download(params, format) {
  const body = {
    format,
    since: params.get('since') || '1970-01-01',
    until: params.get('until') || new Date().toISOString(),
  };
  const filters = {};
  for (const [name] of FILTERS) {
    const v = params.get(name);
    if (v === null || v === '' || name === 'since' || name === 'until') continue;
    if (name === 'action') filters.action = v.split(',').map((a) => a.trim());
    else if (name === 'success') filters.success = v === 'true';
    else filters[name] = v;
  }
  if (Object.keys(filters).length) body.filters = filters;
  const res = await request('POST', '/v1/audit/export', body);
  const name = /filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') || '')?.[1] || `audex.${format}`;
  const url = URL.createObjectURL(await res.blob());
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60e3);
}

// h builds an element: attributes (on* are listeners) and children.
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// link is an anchor that the page routes itself.
function link(href, text, attrs = {}) {
  return h('a', { href, 'data-nav': true, ...attrs }, text);
}

function navigate(url, replace) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  route();
}

document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[data-nav]');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', route);

document.getElementById('sign-out').addEventListener('click', async () => {
  try {
    await api('DELETE', '/console/session');
  } catch (e) {
    // The session is gone either way.
  }
  session = null;
  history.pushState(null, '', '/console/');
  showSignIn('Signed out.');
});

function can(scope) {
  return session.scopes.includes(scope);
}

function showHeader() {
  header.hidden = false;
  header.querySelector('nav a[data-view="exports"]').hidden = !can('audit:export');
  header.querySelector('nav a[data-view="streams"]').hidden = !can('audit:export');
  header.querySelector('nav a[data-view="admin"]').hidden = !can('audit:admin');
  const who = document.getElementById('who');
  who.textContent = `${session.tenant_id} · ${session.key_name || session.key_id}`;
  who.title = `Scopes: ${session.scopes.join(', ')}`;
}

function showSignIn(message) {
  header.hidden = true;
  const input = h('input', { type: 'password', id: 'key', name: 'key', autocomplete: 'off', required: true, 'aria-describedby': 'key-help' });
  const error = h('p', { class: 'error', role: 'alert', id: 'sign-in-message' }, message || '');
  // Without its script the form would post the key as a form, which the
  // session route refuses: the key never ends up in a URL.
  const form = h('form', { id: 'sign-in', class: 'card', method: 'post', action: '/console/session' },
    h('h1', {}, 'Sign in to audex'),
    h('label', { for: 'key' }, 'API key'), input,
    h('p', { id: 'key-help', class: 'muted' }, 'The console keeps a session on the server; the key is not stored in this browser.'),
    h('button', { type: 'submit' }, 'Sign in'), error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    try {
      session = await api('POST', '/console/session', { key: input.value });
      input.value = '';
      showHeader();
      route();
    } catch (e) {
      error.textContent = e.message;
    }
  });
  main.replaceChildren(form);
  input.focus();
}

// showFailure shows why a view could not load: the API's message, or
// notFound for a 404 and refused for a 403 (when given), with a link back
// ([href, text]) and the message's element id. Nothing when the session
// has ended: api() showed the sign-in.
function showFailure(title, err, notFound, back, refused, id) {
  if (!session) return;
  let message = err.message;
  if (err.status === 404 && notFound) message = notFound;
  if (err.status === 403 && refused) message = refused;
  main.replaceChildren(...[h('h1', {}, title), h('p', { class: 'error', role: 'alert', id }, message),
    back ? link(...back) : null].filter((x) => x));
}

// fieldList is a list of named values (those not null, undefined or
// empty), each dd marked with its name.
function fieldList(pairs, attrs = {}) {
  return h('dl', { class: 'event', ...attrs }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => [h('dt', {}, k), h('dd', { 'data-field': k }, String(v))]));
}

// showLive shows one export, stream or purge: load() fetches it (fail
// shows why it could not), and draw(item, refresh) renders it and says
// whether it is still live; a live one is fetched again every `every` ms
// while the page stays on view. refresh(notice) fetches and draws it at
// once, with notice (what an action on it could not do) above it. Once it
// is shown, a fetch that fails for a passing reason (the network, 429, a
// 5xx) leaves it on view with a notice, and is tried again.
async function showLive(view, every, load, fail, draw) {
  stopPolling();
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  let shown = false;
  const notify = (text) => {
    main.querySelector('#live-error')?.remove();
    main.querySelector('h1')?.after(h('p', { class: 'error', role: 'alert', id: 'live-error' }, text));
  };
  const refresh = async (notice) => {
    stopPolling();
    let item;
    try {
      item = await load();
    } catch (err) {
      if (!shown || err.status === 401 || err.status === 403 || err.status === 404) {
        fail(err);
        return;
      }
      if (location.pathname !== view) return;
      notify(`Could not refresh: ${err.message}. Trying again.`);
      pollTimer = setTimeout(refresh, every);
      return;
    }
    if (location.pathname !== view) return; // the reader moved on
    shown = true;
    const live = draw(item, refresh);
    if (notice) notify(notice);
    if (live) pollTimer = setTimeout(refresh, every);
  };
  await refresh();
}

function route() {
  stopPolling();
  if (!session) {
    showSignIn();
    return;
  }
  const rest = location.pathname.replace(/^\/console\/?/, '');
  const [view, ...more] = rest.split('/');
  for (const a of header.querySelectorAll('nav a')) {
    if (a.dataset.view === (view || 'events')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const id = more.join('/');
  if (view === 'events' && id !== '') {
    showEvent(decodeURIComponent(id));
  } else if (view === 'exports' && id !== '') {
    showExport(decodeURIComponent(id));
  } else if (view === 'exports') {
    showExports();
  } else if (view === 'streams' && id !== '') {
    showStream(decodeURIComponent(id));
  } else if (view === 'streams') {
    showStreams();
  } else if (view === 'summary') {
    showSummary();
  } else if (view === 'admin') {
    showAdmin();
  } else if (view === 'purges' && id !== '') {
    showPurge(decodeURIComponent(id));
  } else {
    showEvents();
  }
}

// ---- Events -------------------------------------------------------------

let filterValues = null; // GET /v1/audit/filters' values, once a session

async function pickerValues() {
  if (!filterValues) {
    try {
      filterValues = (await api('GET', '/v1/audit/filters')).values;
    } catch (e) {
      filterValues = {};
    }
  }
  return filterValues;
}

function when(t) {
  return t.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC');
}

function party(p) {
  if (!p) return '';
  const name = p.name ? ` (${p.name})` : '';
  return `${p.id ?? ''}${name}`;
}

function result(e) {
  if (e.success === true) return h('span', { class: 'ok' }, 'success');
  if (e.success === false) return h('span', { class: 'failed' }, 'failure');
  return '';
}

function eventRow(e) {
  const href = `/console/events/${encodeURIComponent(e.id)}`;
  return h('tr', { 'data-id': e.id },
    h('td', {}, link(href, when(e.occurred_at), { 'aria-label': `Event ${e.id}` })),
    h('td', {}, e.action),
    h('td', {}, party(e.actor)),
    h('td', {}, party(e.target)),
    h('td', {}, e.source_ip ?? ''),
    h('td', {}, result(e)));
}

// filterForm is the list filters' form with params' values and the quick
// time ranges above it; applying it opens view (a path) with the filters.
async function filterForm(params, view) {
  const values = await pickerValues();
  const field = ([name, label, picker]) => {
    const id = `f-${name}`;
    let input;
    if (name === 'success') {
      input = h('select', { id, name },
        h('option', { value: '' }, 'Any'), h('option', { value: 'true' }, 'Success'), h('option', { value: 'false' }, 'Failure'));
    } else if (picker && name !== 'action') {
      input = h('select', { id, name }, h('option', { value: '' }, 'Any'),
        (values[picker] || []).map((v) => h('option', { value: v }, v)));
    } else {
      input = h('input', { id, name, type: 'text', list: picker ? `${id}-values` : null, placeholder: name === 'since' || name === 'until' ? '2026-04-01 or RFC 3339' : null });
    }
    input.value = params.get(name) ?? '';
    if (input.tagName === 'SELECT' && input.value !== (params.get(name) ?? '')) {
      input.append(h('option', { value: params.get(name) }, params.get(name)));
      input.value = params.get(name);
    }
    const list = picker && name === 'action' ? h('datalist', { id: `${id}-values` }, (values[picker] || []).map((v) => h('option', { value: v }))) : null;
    return h('div', { class: 'field' }, h('label', { for: id }, label), input, list);
  };
  const form = h('form', { id: 'filters', class: 'filters', role: 'search' }, FILTERS.map(field),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Apply'), link(view, 'Clear')));
  const ranges = h('div', { class: 'ranges', role: 'group', 'aria-label': 'Time range' },
    RANGES.map(([label, ms]) => h('button', {
      type: 'button',
      onclick: () => {
        form.elements.since.value = ms ? new Date(Date.now() - ms).toISOString() : '';
        form.elements.until.value = '';
        form.requestSubmit();
      },
    }, label)));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [name] of FILTERS) {
      const v = form.elements[name].value.trim();
      if (v !== '') next.set(name, v);
    }
    const q = next.toString();
    navigate(`${view}${q ? `?${q}` : ''}`);
  });
  return [ranges, form];
}

async function showEvents() {
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  const params = new URLSearchParams(location.search);
  const [ranges, form] = await filterForm(params, '/console/events');

  const body = h('tbody');
  const table = h('table', { id: 'events' },
    h('caption', { class: 'visually-hidden' }, 'Events, newest first'),
    h('thead', {}, h('tr', {}, ['Occurred', 'Action', 'Actor', 'Target', 'Source IP', 'Result'].map((c) => h('th', { scope: 'col' }, c)))),
    body);
  const status = h('p', { id: 'events-status', role: 'status', class: 'muted' }, 'Loading…');
  const more = h('button', { type: 'button', id: 'more', hidden: true }, 'Load more');
  // The download of this view (with audit:export): its filters and range.
  const downloadError = h('span', { class: 'error', role: 'alert', id: 'download-error' });
  const downloadFormat = h('select', { id: 'download-format', 'aria-label': 'Download format' },
    [['csv', 'CSV'], ['ndjson', 'NDJSON'], ['json', 'JSON']].map(([v, label]) => h('option', { value: v }, label)));
  const downloads = can('audit:export') ? h('div', { class: 'ranges', id: 'download' }, downloadFormat,
    h('button', {
      type: 'button', id: 'download-button',
      onclick: async () => {
        downloadError.textContent = '';
        try {
          await download(params, downloadFormat.value);
        } catch (e) {
          if (session) downloadError.textContent = e.message;
        }
      },
    }, 'Download these events'), downloadError) : null;
  main.replaceChildren(...[h('h1', {}, 'Events'), ranges, form, downloads, status, h('div', { class: 'scroll' }, table), more].filter((x) => x));

  let cursor = null;
  let shown = 0;
  let loading = false;
  const load = async () => {
    if (loading) return;
    loading = true;
    more.disabled = true;
    const q = new URLSearchParams(params);
    q.set('limit', String(PAGE));
    if (cursor) q.set('cursor', cursor);
    try {
      const page = await api('GET', `/v1/audit/events?${q}`);
      body.append(...page.events.map(eventRow));
      shown += page.events.length;
      cursor = page.has_more ? page.next_cursor : null;
      more.hidden = !cursor;
      status.textContent = `${shown.toLocaleString('en')} event${shown === 1 ? '' : 's'}${cursor ? '' : ', all shown'}`;
      status.dataset.done = cursor ? 'false' : 'true';
      // When the view's first page shows, for the benchmark to read.
      if (performance.getEntriesByName('audex:first-page').length === 0) performance.mark('audex:first-page');
    } catch (e) {
      status.textContent = e.status === 403 ? 'This key may not read events (it lacks audit:read).' : e.message;
      status.classList.add('error');
      more.hidden = true;
    } finally {
      loading = false;
      more.disabled = false;
    }
  };
  more.addEventListener('click', load);
  // Following the cursor as the reader scrolls to the end of the table.
  const seen = new IntersectionObserver((entries) => {
    if (entries.some((en) => en.isIntersecting) && cursor && main.contains(more)) load();
  });
  seen.observe(more);
  await load();
}

// ---- One event ------------------------------------------------------------

async function showEvent(id) {
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  let e;
  try {
    e = await api('GET', `/v1/audit/events/${encodeURIComponent(id)}`);
  } catch (err) {
    showFailure('Event', err, `No event ${id} in this tenant.`, ['/console/events', 'All events']);
    return;
  }
  const rows = [
    ['id', e.id], ['occurred_at', e.occurred_at], ['received_at', e.received_at], ['action', e.action],
    ['actor', party(e.actor) + (e.actor.type ? ` [${e.actor.type}]` : '')],
    ['target', e.target ? party(e.target) + (e.target.type ? ` [${e.target.type}]` : '') : ''],
    ['resource', e.resource], ['source_ip', e.source_ip], ['user_agent', e.user_agent], ['request_id', e.request_id],
    ['method', e.method], ['path', e.path], ['status_code', e.status_code], ['success', e.success], ['duration_ms', e.duration_ms],
  ];
  const trails = h('p', { class: 'trails' },
    link(`/console/events?actor_id=${encodeURIComponent(e.actor.id)}`, `Trail of actor ${e.actor.id}`, { id: 'actor-trail' }),
    e.target?.id ? link(`/console/events?target_id=${encodeURIComponent(e.target.id)}`, `Trail of target ${e.target.id}`, { id: 'target-trail' }) : null);
  main.replaceChildren(
    h('h1', {}, `Event ${e.id}`),
    fieldList(rows, { id: 'event' }),
    trails,
    h('h2', {}, 'JSON'),
    h('pre', { id: 'event-json', tabindex: '0' }, JSON.stringify(e, null, 2)),
    link('/console/events', 'All events'));
  main.focus();
}

// ---- Summary --------------------------------------------------------------

const DAY = 86400e3;

// Charts draw at most this many days one by one, zeros included; a wider
// window draws only its days with events.
const MOST_CHART_DAYS = 1000;

let chartLibrary = null; // the vendored uPlot, loaded with the first chart

// loadCharts loads uPlot (served from the console's own assets) once.
function loadCharts() {
  chartLibrary ??= new Promise((resolve, reject) => {
    document.head.append(h('link', { rel: 'stylesheet', href: '/console/assets/uplot.min.css' }));
    document.head.append(h('script', {
      src: '/console/assets/uplot.iife.min.js',
      onload: () => resolve(window.uPlot),
      onerror: () => { chartLibrary = null; reject(new Error('The chart library did not load.')); },
    }));
  });
  return chartLibrary;
}

// eventsHref is the events view of params with more filters set.
function eventsHref(params, more) {
  const q = new URLSearchParams(params);
  for (const [k, v] of Object.entries(more)) q.set(k, v);
  return `/console/events?${q}`;
}

// dayHref is the events view of params narrowed to the UTC day that
// starts at start (ms) within the summary's window.
function dayHref(params, sum, start) {
  return eventsHref(params, {
    since: new Date(Math.max(start, Date.parse(sum.since))).toISOString(),
    until: new Date(Math.min(start + DAY, Date.parse(sum.until))).toISOString(),
  });
}

// chartDays is the chart's data from a summary: [day starts in seconds,
// events, failed], every day of the window when it has at most
// MOST_CHART_DAYS, else its days with events.
function chartDays(sum) {
  const byDay = new Map(sum.events_per_day.map((d) => [Date.parse(`${d.day}T00:00:00Z`), d]));
  let days = [...byDay.keys()];
  const first = Math.floor(Date.parse(sum.since) / DAY) * DAY;
  const end = Date.parse(sum.until);
  if ((end - first) / DAY <= MOST_CHART_DAYS) {
    days = [];
    for (let t = first; t < end; t += DAY) days.push(t);
  }
  return [days.map((t) => t / 1000), days.map((t) => byDay.get(t)?.events ?? 0), days.map((t) => byDay.get(t)?.failed ?? 0)];
}

// drawChart draws the events and failures per day into el, a day's bar
// opening that day's events.
async function drawChart(el, sum, params) {
  const uPlot = await loadCharts();
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  const axis = { stroke: color('--muted'), grid: { stroke: color('--line'), width: 1 }, ticks: { stroke: color('--line') } };
  const width = () => Math.max(280, el.clientWidth);
  const data = chartDays(sum);
  const day = (seconds) => new Date(seconds * 1000).toISOString().slice(0, 10);
  const chart = new uPlot({
    width: width(),
    height: 260,
    padding: [12, 36, 0, 0], // room for the last day's label
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, Math.ceil(max * 1.1))] } },
    axes: [
      { ...axis, space: 90, incrs: [1, 2, 7, 14, 28, 91, 182, 364].map((d) => d * 86400), values: (u, splits) => splits.map((v) => day(v)) },
      { ...axis, size: 60 },
    ],
    series: [
      { label: 'Day (UTC)', value: (u, v) => (v === null ? '' : day(v)) },
      { label: 'Events', stroke: color('--accent'), fill: color('--accent'), paths: uPlot.paths.bars({ size: [0.8, 60] }), points: { show: false } },
      { label: 'Failed', stroke: color('--failed'), fill: color('--failed'), paths: uPlot.paths.bars({ size: [0.4, 30] }), points: { show: false } },
    ],
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
  }, data, el);
  el.uplot = chart; // for the tests and the benchmark to read
  chart.over.addEventListener('click', () => {
    const i = chart.cursor.idx;
    if (i === null || i === undefined) return;
    navigate(dayHref(params, sum, data[0][i] * 1000));
  });
  const resize = new ResizeObserver(() => {
    if (!el.isConnected) resize.disconnect();
    else if (chart.width !== width()) chart.setSize({ width: width(), height: 260 });
  });
  resize.observe(el);
}

// topTable is one top list: its values, each opening the events view
// filtered by it, and their counts.
function topTable(id, title, entries, filter) {
  return h('section', { class: 'top' }, h('h2', { id: `${id}-title` }, title),
    entries.length === 0 ? h('p', { class: 'muted' }, 'None in this range.')
      : h('table', { id, 'aria-labelledby': `${id}-title` },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col', class: 'num' }, 'Events'))),
        h('tbody', {}, entries.map(([value, n]) => h('tr', {},
          h('td', {}, link(filter(value), value)), h('td', { class: 'num' }, n.toLocaleString('en')))))));
}

async function showSummary() {
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  const params = new URLSearchParams(location.search);
  // The summary, the pickers' values and the chart library load at once.
  const counting = api('GET', `/v1/audit/summary?${params}`);
  counting.catch(() => {}); // its failure is shown below
  loadCharts().catch(() => {}); // drawChart says why it did not load
  const [ranges, form] = await filterForm(params, '/console/summary');
  const status = h('p', { id: 'summary-status', role: 'status', class: 'muted' }, 'Counting…');
  main.replaceChildren(h('h1', {}, 'Summary'), ranges, form, status);
  let sum;
  try {
    sum = await counting;
  } catch (e) {
    if (!session) return;
    status.textContent = e.status === 403 ? 'This key may not read events (it lacks audit:read).' : e.message;
    status.classList.replace('muted', 'error');
    return;
  }
  if (location.pathname !== '/console/summary') return;
  // The links open the events of the same window and filters.
  const view = new URLSearchParams(params);
  view.set('since', sum.since);
  view.set('until', sum.until);
  status.textContent = `From ${when(sum.since)} to ${when(sum.until)}`;
  status.dataset.done = 'true';
  const totals = h('dl', { id: 'totals', class: 'totals' },
    [['total', 'Events', sum.total_events, {}], ['successful', 'Succeeded', sum.successful_events, { success: 'true' }],
      ['failed', 'Failed', sum.failed_events, { success: 'false' }]].map(([key, label, n, more]) => h('div', {},
      h('dt', {}, label), h('dd', { 'data-field': key }, link(eventsHref(view, more), n.toLocaleString('en'))))));
  const chart = h('div', { id: 'summary-chart', class: 'chart', role: 'img', 'aria-label': 'Events and failed events per day (UTC); the table below has the numbers' });
  const days = h('details', { id: 'days' }, h('summary', {}, 'Days as a table'),
    h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Day (UTC)', 'Events', 'Failed'].map((c, i) => h('th', { scope: 'col', class: i ? 'num' : null }, c)))),
      h('tbody', {}, sum.events_per_day.map((d) => h('tr', { 'data-day': d.day },
        h('td', {}, link(dayHref(view, sum, Date.parse(`${d.day}T00:00:00Z`)), d.day)),
        h('td', { class: 'num' }, d.events.toLocaleString('en')), h('td', { class: 'num' }, d.failed.toLocaleString('en'))))))));
  const actions = Object.entries(sum.actions_breakdown).sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0)).slice(0, 10);
  const tops = h('div', { class: 'tops' },
    topTable('top-actions', 'Top actions', actions, (v) => eventsHref(view, { action: v })),
    topTable('top-actors', 'Top actors', sum.top_actors.map((c) => [c.actor_id, c.count]), (v) => eventsHref(view, { actor_id: v })),
    topTable('top-targets', 'Top targets', sum.top_targets.map((c) => [c.target_id, c.count]), (v) => eventsHref(view, { target_id: v })),
    topTable('top-resources', 'Top resources', sum.top_resources.map((c) => [c.resource, c.count]), (v) => eventsHref(view, { resource_prefix: v })),
    topTable('top-source-ips', 'Top source IPs', sum.top_source_ips.map((c) => [c.source_ip, c.count]), (v) => eventsHref(view, { source_ip: v })));
  main.replaceChildren(h('h1', {}, 'Summary'), ranges, form, status, totals, h('h2', {}, 'Events per day'), chart, days, tops);
  try {
    await drawChart(chart, sum, view);
    // When the chart is drawn, for the benchmark to read.
    performance.mark('audex:summary-drawn');
    chart.dataset.drawn = 'true';
  } catch (e) {
    chart.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
  }
}

// ---- Exports ------------------------------------------------------------

// The list filters an export job takes (its filters object), with labels.
const EXPORT_FILTERS = [['action', 'Action'], ['action_prefix', 'Action prefix'], ['actor_id', 'Actor'],
  ['target_id', 'Target'], ['resource_prefix', 'Resource prefix'], ['source_ip', 'Source IP or CIDR']];

let pollTimer = null; // the export view's progress poll

function stopPolling() {
  clearTimeout(pollTimer);
  pollTimer = null;
}

function exportRow(e) {
  return h('tr', { 'data-id': e.export_id },
    h('td', {}, link(`/console/exports/${encodeURIComponent(e.export_id)}`, e.export_id)),
    h('td', { class: `status-${e.status}` }, e.status),
    h('td', {}, `${when(e.since)} – ${when(e.until)}`),
    h('td', {}, e.format + (e.compression === 'gzip' ? ' + gzip' : '')),
    h('td', {}, e.destination.name),
    h('td', {}, (e.record_count ?? e.progress.records_exported).toLocaleString('en')),
    h('td', {}, when(e.created_at)));
}

async function showExports() {
  stopPolling();
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  let destinations = [];
  let page;
  try {
    [destinations, page] = await Promise.all([
      api('GET', '/v1/audit/destinations').then((d) => d.destinations.filter((x) => x.exports)),
      api('GET', '/v1/audit/exports?limit=50'),
    ]);
  } catch (e) {
    showFailure('Exports', e, '', null, 'This key may not export (it lacks audit:export).', 'exports-error');
    return;
  }
  const day = 86400e3;
  const field = (name, label, input) => h('div', { class: 'field' }, h('label', { for: `x-${name}` }, label), input);
  const form = h('form', { id: 'new-export', class: 'filters' },
    field('since', 'Since', h('input', { id: 'x-since', name: 'since', required: true, value: new Date(Date.now() - day).toISOString() })),
    field('until', 'Until', h('input', { id: 'x-until', name: 'until', required: true, value: new Date().toISOString() })),
    field('destination', 'Destination', h('select', { id: 'x-destination', name: 'destination' },
      destinations.map((d) => h('option', { value: d.name }, `${d.name} (${d.type})`)))),
    field('format', 'Format', h('select', { id: 'x-format', name: 'format' },
      ['jsonl', 'csv', 'parquet'].map((f) => h('option', { value: f }, f)))),
    field('compression', 'Compression', h('select', { id: 'x-compression', name: 'compression' },
      ['none', 'gzip'].map((c) => h('option', { value: c }, c)))),
    EXPORT_FILTERS.map(([name, label]) => field(name, label, h('input', { id: `x-${name}`, name, type: 'text' }))),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create export')));
  const error = h('p', { class: 'error', role: 'alert', id: 'new-export-error' });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const el = form.elements;
    const filters = {};
    for (const [name] of EXPORT_FILTERS) {
      const v = el[name].value.trim();
      if (v !== '') filters[name] = name === 'action' ? v.split(',').map((a) => a.trim()) : v;
    }
    try {
      const created = await api('POST', '/v1/audit/exports', {
        since: el.since.value.trim(), until: el.until.value.trim(), format: el.format.value,
        compression: el.compression.value, destination: { name: el.destination.value },
        ...(Object.keys(filters).length ? { filters } : {}),
      });
      navigate(`/console/exports/${encodeURIComponent(created.export_id)}`);
    } catch (e) {
      error.textContent = e.message;
    }
  });
  const table = h('table', { id: 'exports' },
    h('caption', { class: 'visually-hidden' }, 'Export jobs, newest first'),
    h('thead', {}, h('tr', {}, ['Export', 'Status', 'Range', 'Format', 'Destination', 'Records', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, page.exports.map(exportRow)));
  main.replaceChildren(h('h1', {}, 'Exports'), h('h2', {}, 'New export'), form, error,
    h('h2', {}, 'Recent exports'), page.exports.length ? h('div', { class: 'scroll' }, table) : h('p', { class: 'muted' }, 'No exports yet.'));
}

async function showExport(id) {
  const path = `/v1/audit/exports/${encodeURIComponent(id)}`;
  await showLive(`/console/exports/${encodeURIComponent(id)}`, 1000, () => api('GET', path),
    (err) => showFailure('Export', err, `No export ${id} in this tenant.`, ['/console/exports', 'All exports']), (e, refresh) => {
    const live = e.status === 'queued' || e.status === 'running';
    const percent = e.progress.percent ?? 0;
    const cancel = live ? h('button', {
      type: 'button', id: 'cancel-export',
      onclick: async () => {
        try {
          await api('POST', `${path}/cancel`);
        } catch (err) {
          refresh(`Could not cancel: ${err.message}`);
          return;
        }
        refresh();
      },
    }, 'Cancel export') : null;
    const files = e.files.length ? h('table', { id: 'export-files' },
      h('thead', {}, h('tr', {}, ['Part', 'Records', 'Bytes', 'SHA-256'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, e.files.map((f) => h('tr', {}, h('td', {}, f.key), h('td', {}, f.records.toLocaleString('en')),
        h('td', {}, f.size_bytes.toLocaleString('en')), h('td', { class: 'hash' }, f.sha256))))) : null;
    main.replaceChildren(...[
      h('h1', {}, `Export ${e.export_id}`),
      h('p', {}, 'Status: ', h('strong', { id: 'export-status', class: `status-${e.status}` }, e.status),
        e.error ? h('span', { class: 'error' }, ` (${e.error.message ?? e.error.code ?? ''})`) : null),
      h('progress', { id: 'export-progress', max: '100', value: String(percent), 'aria-label': 'Progress' }),
      h('p', { id: 'export-records' }, `${e.progress.records_exported.toLocaleString('en')} records in ${e.progress.parts_written} part${e.progress.parts_written === 1 ? '' : 's'} (${percent}%)`),
      cancel,
      fieldList([['range', `${e.since} – ${e.until}`], ['format', e.format + (e.compression === 'gzip' ? ' + gzip' : '')],
        ['destination', `${e.destination.name} (${e.destination.type})`], ['filters', JSON.stringify(e.filters ?? {})],
        ['as_of', e.as_of], ['manifest', e.manifest_key]]),
      files,
      h('h2', {}, 'Status (JSON)'),
      h('pre', { id: 'export-json', tabindex: '0' }, JSON.stringify(e, null, 2)),
      link('/console/exports', 'All exports')].filter((x) => x));
    return live;
  });
}

// ---- Streams --------------------------------------------------------------

function streamRow(st) {
  return h('tr', { 'data-id': st.stream_id },
    h('td', {}, link(`/console/streams/${encodeURIComponent(st.stream_id)}`, st.stream_id)),
    h('td', { class: `status-${st.status}` }, st.status),
    h('td', {}, st.destination.name),
    h('td', {}, st.format + (st.compression === 'gzip' ? ' + gzip' : '')),
    h('td', {}, `${Math.round(st.lag_seconds)} s`),
    h('td', {}, st.batches_delivered.toLocaleString('en')),
    h('td', {}, st.events_delivered.toLocaleString('en')));
}

async function showStreams() {
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  let page;
  try {
    page = await api('GET', '/v1/audit/streams?limit=100');
  } catch (e) {
    showFailure('Streams', e, '', null, 'This key may not read streams (it lacks audit:export).', 'streams-error');
    return;
  }
  const table = h('table', { id: 'streams' },
    h('caption', { class: 'visually-hidden' }, 'Streams'),
    h('thead', {}, h('tr', {}, ['Stream', 'Status', 'Destination', 'Format', 'Lag', 'Batches', 'Events'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, page.streams.map(streamRow)));
  main.replaceChildren(h('h1', {}, 'Streams'),
    page.streams.length ? h('div', { class: 'scroll' }, table) : h('p', { class: 'muted' }, 'No streams. Streams are created through the API or audexctl.'));
}

async function showStream(id) {
  const path = `/v1/audit/streams/${encodeURIComponent(id)}`;
  await showLive(`/console/streams/${encodeURIComponent(id)}`, 2000, () => Promise.all([api('GET', path), api('GET', `${path}/batches?limit=100`)]),
    (err) => showFailure('Stream', err, `No stream ${id} in this tenant.`, ['/console/streams', 'All streams']), ([st, batches], refresh) => {
    const toggle = st.status === 'active' ? 'paused' : 'active';
    const button = h('button', {
      type: 'button', id: 'stream-toggle',
      onclick: async () => {
        try {
          await api('PATCH', path, { status: toggle });
        } catch (err) {
          refresh(`Could not ${toggle === 'paused' ? 'pause' : 'resume'}: ${err.message}`);
          return;
        }
        refresh();
      },
    }, toggle === 'paused' ? 'Pause' : 'Resume');
    const rows = batches.batches.map((bt) => h('tr', { 'data-seq': String(bt.seq) },
      h('td', {}, String(bt.seq)), h('td', {}, when(bt.through)), h('td', {}, bt.record_count.toLocaleString('en')),
      h('td', {}, String(bt.files.length)), h('td', {}, bt.manifest_key)));
    main.replaceChildren(...[
      h('h1', {}, `Stream ${st.stream_id}`),
      h('p', {}, 'Status: ', h('strong', { id: 'stream-status', class: `status-${st.status}` }, st.status),
        st.error ? h('span', { class: 'error' }, ` (${st.error.message ?? st.error.code ?? ''})`) : null),
      button,
      fieldList([['destination', `${st.destination.name} (${st.destination.type})`], ['format', st.format + (st.compression === 'gzip' ? ' + gzip' : '')],
        ['filters', JSON.stringify(st.filters ?? {})], ['interval', `${st.interval_seconds} s`], ['watermark', st.watermark],
        ['lag', `${Math.round(st.lag_seconds)} s`], ['batches_delivered', st.batches_delivered],
        ['events_delivered', st.events_delivered], ['last_batch_at', st.last_batch_at]]),
      h('h2', {}, batches.has_more ? 'The first 100 batches' : 'Batches'),
      rows.length ? h('div', { class: 'scroll' }, h('table', { id: 'stream-batches' },
        h('thead', {}, h('tr', {}, ['Batch', 'Through', 'Records', 'Parts', 'Manifest'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows))) : h('p', { class: 'muted' }, 'No batch delivered yet.'),
      link('/console/streams', 'All streams')].filter((x) => x));
    return st.status === 'active';
  });
}

// ---- Admin ----------------------------------------------------------------

async function showAdmin() {
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  let policy;
  let receipts;
  try {
    [policy, receipts] = await Promise.all([
      api('GET', '/v1/audit/retention'),
      api('GET', '/v1/audit/events?action=audit.purge_created&limit=20').catch(() => null),
    ]);
  } catch (e) {
    showFailure('Admin', e, '', null, 'This key may not administer the tenant (it lacks audit:admin).', 'admin-error');
    return;
  }

  // Retention: a number of days, or keep forever.
  const days = h('input', { id: 'retain-days', name: 'retain_days', type: 'number', min: '1', max: '36500', value: policy.retain_days ?? '' });
  const forever = h('input', { id: 'retain-forever', type: 'checkbox' });
  forever.checked = policy.retain_days === null;
  days.disabled = forever.checked;
  forever.addEventListener('change', () => { days.disabled = forever.checked; });
  const retentionStatus = h('p', { id: 'retention-status', role: 'status', class: 'muted' },
    policy.retain_days === null ? 'Events are kept forever.' : `Events are kept ${policy.retain_days} days.`);
  const retention = h('form', { id: 'retention', class: 'filters' },
    h('div', { class: 'field' }, h('label', { for: 'retain-days' }, 'Keep events (days)'), days),
    h('div', { class: 'field check' }, forever, h('label', { for: 'retain-forever' }, 'Keep forever')),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save policy')));
  retention.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const body = { retain_days: forever.checked ? null : Number(days.value) };
      const saved = await api('PUT', '/v1/audit/retention', body);
      retentionStatus.textContent = saved.retain_days === null ? 'Saved: events are kept forever.' : `Saved: events are kept ${saved.retain_days} days.`;
      retentionStatus.classList.remove('error');
    } catch (e) {
      retentionStatus.textContent = e.message;
      retentionStatus.classList.add('error');
    }
  });

  // Purge: a dry run first, then the purge of what it counted.
  const before = h('input', { id: 'purge-before', name: 'before', required: true, placeholder: '2026-01-01 or RFC 3339' });
  const purgeStatus = h('p', { id: 'purge-status', role: 'status' });
  const confirm = h('button', { type: 'button', id: 'purge-confirm', hidden: true });
  const purge = h('form', { id: 'purge', class: 'filters' },
    h('div', { class: 'field' }, h('label', { for: 'purge-before' }, 'Delete events that occurred before'), before),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Dry run')));
  before.addEventListener('input', () => { confirm.hidden = true; purgeStatus.textContent = ''; });
  purge.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    confirm.hidden = true;
    try {
      const dry = await api('POST', '/v1/audit/purge', { before: before.value.trim(), dry_run: true });
      purgeStatus.textContent = `A purge would delete ${dry.deleted.toLocaleString('en')} events.`;
      purgeStatus.dataset.deleted = String(dry.deleted);
      confirm.textContent = `Delete ${dry.deleted.toLocaleString('en')} events before ${before.value.trim()}`;
      confirm.hidden = false;
    } catch (e) {
      purgeStatus.textContent = e.message;
    }
  });
  confirm.addEventListener('click', async () => {
    try {
      const created = await api('POST', '/v1/audit/purge', { before: before.value.trim() });
      navigate(`/console/purges/${encodeURIComponent(created.purge_id)}`);
    } catch (e) {
      purgeStatus.textContent = e.message;
    }
  });

  const receiptList = receipts && receipts.events.length
    ? h('ul', { id: 'purge-receipts' }, receipts.events.map((e) => h('li', {},
      link(`/console/purges/${encodeURIComponent(e.target.id)}`, e.target.id), ` requested ${when(e.occurred_at)}`)))
    : h('p', { class: 'muted' }, receipts ? 'No purges yet.' : 'Purge receipts need audit:read.');
  main.replaceChildren(h('h1', {}, 'Admin'),
    h('h2', {}, 'Retention'), retentionStatus, retention,
    h('h2', {}, 'Purge'), purge, purgeStatus, confirm,
    h('h2', {}, 'Purges'), receiptList);
}

async function showPurge(id) {
  await showLive(`/console/purges/${encodeURIComponent(id)}`, 1000, () => api('GET', `/v1/audit/purges/${encodeURIComponent(id)}`),
    (err) => showFailure('Purge', err, `No purge ${id} in this tenant.`, ['/console/admin', 'Admin']), (p) => {
    main.replaceChildren(h('h1', {}, `Purge ${p.purge_id}`),
      h('p', {}, 'Status: ', h('strong', { id: 'purge-state', class: `status-${p.status}` }, p.status)),
      fieldList([['reason', p.reason], ['before', p.before], ['deleted', p.deleted], ['created_at', p.created_at],
        ['started_at', p.started_at], ['completed_at', p.completed_at], ['error', p.error]]),
      link('/console/admin', 'Admin'));
    return p.status === 'queued' || p.status === 'running';
  });
}

// ---- Start ----------------------------------------------------------------

(async () => {
  try {
    session = await api('GET', '/console/session');
    showHeader();
  } catch (e) {
    session = null;
  }
  if (location.pathname === '/console/' || location.pathname === '/console') {
    history.replaceState(null, '', '/console/events' + location.search);
  }
  route();
})();
