// The dashboard: what the control plane's API says, live, at any number of MRs. Plain DOM
// (text only: nothing from the server becomes markup); the MR table is a page the server
// filters, sorts and cuts; rates come from the server's sums of the MRs' counters, drawn by
// uPlot; the server-sent event stream is read with fetch (an EventSource cannot send a token)
// and resumed from the last event's id. Replies carry ETags: polling what did not change costs
// a 304.
import uPlot from './vendor/uplot/uPlot.esm.js';

const $ = (id) => document.getElementById(id);
const WINDOW_S = 300;
const PAGE = 50;
const state = {
  samples: [],            // { t, faults, invals } per second
  lastTotals: null,       // { t, faults, invals } of the last summary
  events: 0,
  sort: 'device',
  cursors: [undefined],   // the cursor of each page up to the one shown
  next: null,
  owners: new Map(),      // "device/mrn" -> Promise<{ owner, pid } | null>
};

// The token is kept for this tab only: it is gone when the tab is closed.
const TOKEN_KEY = 'pfnic-token';
const token = () => $('token').value.trim();
const authHeaders = () => (token() ? { authorization: `Bearer ${token()}` } : {});

class NeedsToken extends Error {}

/** What the page says of its access: nothing when reads work, why not when they do not. */
function showAuth(problem) {
  const out = $('auth-state');
  out.textContent = problem ?? '';
  out.className = problem ? 'needed' : '';
}

async function get(url) {
  const res = await fetch(url, { headers: authHeaders() });
  if (res.status === 401) {
    const body = await res.json().catch(() => ({}));
    showAuth(token() ? `the server refused this token: ${body.detail ?? res.status}` : 'this server asks for a token to read');
    throw new NeedsToken(`${url}: ${res.status}`);
  }
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new Error(`${url}: ${body.detail ?? res.status}`);
  }
  showAuth(null);
  return res;
}

const getJson = async (url) => (await get(url)).json();

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text ?? '';
  if (cls) td.className = cls;
  return td;
}

function fill(table, rows, render) {
  const body = $(table).tBodies[0];
  const fresh = document.createElement('tbody');
  for (const r of rows) render(fresh.insertRow(), r);
  body.replaceWith(fresh);
}

const bytes = (hex) => {
  if (hex === null || hex === undefined) return '';
  const n = BigInt(hex);
  if (n === 0xffffffffffffffffn) return 'all memory';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n), u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${v % 1 ? v.toFixed(1) : v} ${units[u]}`;
};

async function refreshDevices() {
  const devices = await getJson('/v1/devices');
  const rows = devices.flatMap((d) => d.ports.map((p) => ({ d, p })));
  fill('devices', rows, (row, { d, p }) => {
    cell(row, d.name);
    cell(row, d.transport);
    cell(row, p.port);
    cell(row, p.state, `state-${p.state.toLowerCase()}`);
    cell(row, p.link_layer);
    cell(row, p.netdev);
    cell(row, p.active_mtu);
    cell(row, d.odp.general_caps.names.join(' ') || 'none');
  });
}

// ---- rates, from the server's sums of the MRs' counters (they only grow)

let chart;

function drawRates() {
  const box = $('rates');
  const xs = state.samples.map((s) => s.t);
  const data = [xs, state.samples.map((s) => s.faults), state.samples.map((s) => s.invals)];
  if (!chart) {
    chart = new uPlot({
      width: Math.max(300, box.clientWidth || 600),
      height: 180,
      scales: { x: { time: true } },
      series: [
        {},
        { label: 'faulted in', stroke: '#2d6cdf', width: 2, value: (_u, v) => (v === null ? '' : v.toFixed(0)) },
        { label: 'invalidated', stroke: '#b54708', width: 2, value: (_u, v) => (v === null ? '' : v.toFixed(0)) },
      ],
      axes: [{}, { label: 'pages/s', size: 60 }],
    }, data, box);
    new ResizeObserver(() => chart.setSize({ width: Math.max(300, box.clientWidth), height: 180 })).observe(box);
  } else {
    chart.setData(data);
  }
  // what the chart holds, for whoever checks it from outside the canvas
  box.dataset.samples = String(state.samples.length);
  box.dataset.maxInvals = String(Math.max(0, ...state.samples.map((s) => s.invals)));
  box.dataset.maxFaults = String(Math.max(0, ...state.samples.map((s) => s.faults)));
  const last = state.samples[state.samples.length - 1];
  if (last) $('rate-now').textContent = `now: ${last.faults.toFixed(0)} faulted in, ${last.invals.toFixed(0)} invalidated per second`;
}

async function refreshRates() {
  const summary = await getJson('/v1/mrs/summary');
  // The sums move when the server reads MRs again: those events name at once, the rest at its
  // own pace. A rate is what they moved by over the time since they last moved.
  const t = Date.now() / 1000;
  let faults = 0, invals = 0;
  for (const k of summary.totals) {
    faults += (k.counters.page_faults ?? 0) + (k.counters.page_prefetch ?? 0);
    invals += k.counters.page_invalidations ?? 0;
  }
  const prev = state.lastTotals;
  $('mr-count').textContent = `(${summary.mrs})`;
  if (!prev) {
    state.samples.push({ t, faults: 0, invals: 0 });
    state.lastTotals = { t, faults, invals };
  } else if (faults !== prev.faults || invals !== prev.invals) {
    const dt = Math.max(0.5, t - prev.t);
    state.samples.push({ t, faults: Math.max(0, faults - prev.faults) / dt, invals: Math.max(0, invals - prev.invals) / dt });
    state.lastTotals = { t, faults, invals };
  } else if (t - prev.t > 10) {
    // still for a while: nothing happened
    state.samples.push({ t, faults: 0, invals: 0 });
    state.lastTotals = { t, faults, invals };
  }
  const now = Date.now() / 1000;
  state.samples = state.samples.filter((s) => now - s.t <= WINDOW_S);
  drawRates();
}

// ---- the MR table: one page, as the server sorts and cuts it

const MR_FIELDS = 'device,mrn,kind,state,length,mapped_pages,suspended_pages,counters,owner,pid,pinned_blocks';

async function refreshMrs() {
  const cursor = state.cursors[state.cursors.length - 1];
  const q = new URLSearchParams({ limit: String(PAGE), sort: state.sort, fields: MR_FIELDS });
  if (cursor) q.set('cursor', cursor);
  let res;
  try {
    res = await get(`/v1/mrs?${q}`);
  } catch (err) {
    if (cursor && /invalid querystring: cursor/.test(err.message)) {
      // the server restarted or the order changed: back to the first page
      state.cursors = [undefined];
      return refreshMrs();
    }
    throw err;
  }
  const mrs = await res.json();
  const total = Number(res.headers.get('x-total-count') ?? mrs.length);
  const link = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '');
  state.next = link ? new URL(link[1], location.href).searchParams.get('cursor') : null;
  const first = (state.cursors.length - 1) * PAGE;
  $('mr-range').textContent = mrs.length ? `${first + 1}–${first + mrs.length} of ${total}` : `none of ${total}`;
  $('mr-prev').disabled = state.cursors.length <= 1;
  $('mr-first').disabled = state.cursors.length <= 1;
  $('mr-next').disabled = state.next === null;
  for (const m of mrs) if (m.owner) state.owners.set(`${m.device}/${m.mrn}`, Promise.resolve({ owner: m.owner, pid: m.pid }));
  fill('mrs', mrs, (row, m) => {
    row.dataset.mr = `${m.device}/${m.mrn}`;
    cell(row, m.device);
    cell(row, m.mrn);
    cell(row, m.kind, `kind-${m.kind}`);
    cell(row, m.state ?? '', m.state ? `state-${m.state}` : '');
    cell(row, bytes(m.length));
    cell(row, m.mapped_pages ?? '');
    cell(row, m.suspended_pages ?? '');
    cell(row, m.counters.page_faults ?? '');
    cell(row, m.counters.page_invalidations ?? '');
    cell(row, m.counters.migrations ?? '');
    cell(row, m.owner ? `${m.owner} (${m.pid ?? 'kernel'})` : (m.pid ?? ''));
    cell(row, m.pinned_blocks ? m.pinned_blocks.join(' ') : '');
  });
  for (const th of $('mrs').tHead.rows[0].cells) {
    const key = th.dataset.sort;
    th.className = key && state.sort.replace(/^-/, '') === key ? (state.sort.startsWith('-') ? 'sorted desc' : 'sorted asc') : '';
  }
}

// Refetches the page shown soon, once however many events ask
let pageSoon;
function refreshMrsSoon() {
  if (pageSoon) return;
  pageSoon = setTimeout(() => { pageSoon = undefined; refreshMrs().catch(() => {}); }, 1000);
}

function pageTo(cursors) {
  state.cursors = cursors;
  refreshMrs().catch((err) => { $('updated').textContent = `(${err.message})`; });
}

$('mr-next').addEventListener('click', () => { if (state.next) pageTo([...state.cursors, state.next]); });
$('mr-prev').addEventListener('click', () => { if (state.cursors.length > 1) pageTo(state.cursors.slice(0, -1)); });
$('mr-first').addEventListener('click', () => pageTo([undefined]));
for (const th of $('mrs').tHead.rows[0].cells) {
  const key = th.dataset.sort;
  if (!key) continue;
  th.tabIndex = 0;
  th.addEventListener('click', () => {
    // numbers read best largest first; names in order
    const numeric = !['device', 'kind', 'state', 'owner'].includes(key);
    const current = state.sort.replace(/^-/, '');
    state.sort = current === key ? (state.sort.startsWith('-') ? key : `-${key}`) : (numeric ? `-${key}` : key);
    pageTo([undefined]);
  });
}

// ---- ummunotify: what processes watch, by process

async function refreshUmmunotify() {
  const u = await getJson('/v1/ummunotify');
  $('umn-summary').textContent = u.loaded
    ? `(${u.totals.processes} processes, ${u.totals.ranges} ranges, ${u.totals.changed} changed and unread)`
    : '(the module is not loaded)';
  fill('ummunotify', u.processes, (row, p) => {
    row.dataset.pid = p.pid;
    cell(row, p.pid || '(gone)');
    cell(row, p.command ?? '');
    cell(row, p.files);
    cell(row, p.ranges);
    cell(row, bytes(`0x${p.watched_bytes.toString(16)}`));
    cell(row, p.changed);
    cell(row, p.range_changes);
    cell(row, p.events_read);
  });
}

// ---- memory blocks

async function refreshBlocks() {
  const blocks = await getJson('/v1/memory/blocks');
  fill('blocks', blocks, (row, b) => {
    row.dataset.block = b.block;
    cell(row, b.block);
    cell(row, b.node ?? '');
    cell(row, b.state, `state-${b.state}`);
    cell(row, b.online ? b.zone : `(${b.valid_zones.join(' ')})`);
    cell(row, b.start);
    const td = row.insertCell();
    const button = document.createElement('button');
    button.textContent = b.online ? 'offline' : 'online';
    button.addEventListener('click', () => act(b, b.online ? 'offline' : 'online?zone=movable'));
    td.append(button);
  });
}

async function act(block, what) {
  const verb = what.split('?')[0];
  const out = $('action-result');
  const where = block.node === null ? '' : ` of node ${block.node}`;
  if (!confirm(`Take memory block ${block.block}${where} ${verb}? Its pages ${verb === 'offline'
    ? 'move out first: ODP MRs follow them, a pinned MR in it makes it fail' : 'become usable again'}.`)) {
    out.textContent = `block ${block.block}: left ${block.state}`;
    return;
  }
  out.textContent = `block ${block.block}: ${verb}…`;
  try {
    const res = await fetch(`/v1/memory/blocks/${block.block}/${what}`, { method: 'POST', headers: authHeaders() });
    const body = await res.json();
    out.textContent = res.ok ? `block ${block.block} is ${body.state}` : `block ${block.block}: ${body.detail ?? body.message}`;
  } catch (err) {
    out.textContent = `block ${block.block}: ${err.message}`;
  }
  await refreshBlocks();
}

// ---- events

/** An MR's owner, asked of the server once per MR (events name MRs the page may not show). */
function ownerOf(device, mrn) {
  const key = `${device}/${mrn}`;
  let known = state.owners.get(key);
  if (!known) {
    known = getJson(`/v1/mrs/${encodeURIComponent(device)}/${mrn}`).then((m) => ({ owner: m.owner, pid: m.pid }), () => {
      // asked again later, not at every event that names it
      setTimeout(() => state.owners.delete(key), 30_000);
      return null;
    });
    state.owners.set(key, known);
    if (state.owners.size > 5000) state.owners.delete(state.owners.keys().next().value);
  }
  return known;
}

const mrName = (e, who) => `${e.device} mrn ${e.mrn}${who?.owner ? ` (${who.owner}, pid ${who.pid ?? e.pid})` : ''}`;

function describe(e, who) {
  const time = e.time.slice(11, 23);
  switch (e.type) {
  case 'invalidate':
  case 'migrate': {
    const from = e.offlining ? ` out of block ${e.block} (node ${e.node}), which is going offline` : '';
    return `${time} ${e.type} (${e.reason}): ${mrName(e, who)}, ${e.pages} pages at ${e.start}${from}`;
  }
  case 'memory':
    return `${time} memory block ${e.block} (node ${e.node}): ${e.reason}`;
  case 'pinned':
    return `${time} pinned: ${mrName(e, who)} holds ${e.pages} pages of block ${e.block}, which cannot go offline`;
  case 'mr':
    return `${time} MR ${e.reason}: ${mrName(e, who)}`;
  case 'lost':
    return `${time} lost: the kernel could not keep ${e.lost} records`;
  case 'device': {
    const where = [e.port !== null ? `port ${e.port}` : '', e.netdev ? `netdev ${e.netdev}` : ''].filter(Boolean).join(', ');
    return `${time} device ${e.device ?? '?'}: ${e.reason}${where ? ` (${where})` : ''}`;
  }
  case 'async':
    return `${time} ${e.device ?? '?'}${e.port !== null ? ` port ${e.port}` : ''}: ${e.reason.replaceAll('_', ' ')}`;
  default:
    return `${time} ${e.type}`;
  }
}

function addEvent(e) {
  const li = document.createElement('li');
  li.value = e.id;
  li.className = e.type;
  const namesMr = e.device !== null && e.mrn !== null && e.type !== 'mr';
  li.textContent = describe(e, null);
  if (namesMr) ownerOf(e.device, e.mrn).then((who) => { if (who) li.textContent = describe(e, who); });
  const list = $('events');
  list.prepend(li);
  while (list.children.length > 500) list.lastElementChild.remove();
  $('event-count').textContent = `(${++state.events})`;
}

function onEvent(e) {
  addEvent(e);
  if (e.type === 'memory') refreshBlocks().catch(() => {});
  if (e.type === 'device' || e.type === 'async') refreshDevices().catch(() => {});
  if (e.type === 'mr' && e.reason === 'removed') state.owners.delete(`${e.device}/${e.mrn}`);
  // the page shown changes with an MR that came, went or changed state, or one of its own
  if (e.type === 'mr' || (e.mrn !== null && $('mrs').querySelector(`tr[data-mr="${CSS.escape(`${e.device}/${e.mrn}`)}"]`))) {
    refreshMrsSoon();
  }
}

function onGap(g) {
  const li = document.createElement('li');
  li.textContent = g.missed === null || g.missed === undefined
    ? '(events may have happened while this page was away: the server restarted or lost its place)'
    : `(${g.missed} events happened while this page was away)`;
  $('events').prepend(li);
}

/** One server-sent event's fields ("id", "event", "data") from its lines. */
function parseFrame(text) {
  const f = { data: [] };
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) continue;
    const at = line.indexOf(':');
    const name = at < 0 ? line : line.slice(0, at);
    const value = at < 0 ? '' : line.slice(at + 1).replace(/^ /, '');
    if (name === 'data') f.data.push(value);
    else f[name] = value;
  }
  return f;
}

function showStream(text, cls) {
  const pill = $('stream');
  pill.textContent = `events: ${text}`;
  pill.className = `pill ${cls}`;
}

// The stream, as EventSource would read it, with the token: on any end it comes back after
// the server's retry time, from the last id it saw.
const stream = { lastId: null, retryMs: 2000, abort: null };

async function listen() {
  const ac = new AbortController();
  stream.abort = ac;
  try {
    const headers = { ...authHeaders(), accept: 'text/event-stream' };
    if (stream.lastId !== null) headers['last-event-id'] = stream.lastId;
    const res = await fetch('/v1/events', { headers, signal: ac.signal });
    if (res.status === 401) {
      showAuth(token() ? 'the server refused this token' : 'this server asks for a token to read');
      showStream('needs a token', 'error');
      return;  // the token field's change starts it again
    }
    if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
    showStream('live', 'open');
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const f = parseFrame(buf.slice(0, end));
        buf = buf.slice(end + 2);
        if (f.retry !== undefined && /^\d+$/.test(f.retry)) stream.retryMs = Number(f.retry);
        if (f.id !== undefined) stream.lastId = f.id;
        if (!f.data.length) continue;
        const data = JSON.parse(f.data.join('\n'));
        if (f.event === 'gap') onGap(data);
        else onEvent(data);
      }
    }
  } catch (err) {
    if (ac.signal.aborted) return;
    $('updated').textContent = `(${err.message})`;
  }
  if (stream.abort === ac && !ac.signal.aborted) {
    showStream('reconnecting…', 'absent');
    setTimeout(() => { if (stream.abort === ac) listen(); }, stream.retryMs);
  }
}

function restartStream() {
  stream.abort?.abort();
  listen();
}

async function refreshChannel() {
  const h = await getJson('/v1/events/history?limit=1');
  const pill = $('channel');
  pill.textContent = `event channel: ${h.channel.state}`;
  pill.className = `pill ${h.channel.state}`;
}

// Runs fn every ms, or less often when it is costly: the page waits at least four times as
// long as the last answer took.
async function tick(fn, ms) {
  const started = performance.now();
  try {
    await fn();
  } catch (err) {
    // a missing token is said once, next to the token field
    if (!(err instanceof NeedsToken)) $('updated').textContent = `(${err.message})`;
  }
  setTimeout(() => tick(fn, ms), Math.max(ms, 4 * (performance.now() - started)));
}

$('host').textContent = location.host;
$('token').value = sessionStorage.getItem(TOKEN_KEY) ?? '';
$('token-form').addEventListener('submit', (e) => e.preventDefault());
// a new token takes effect once typing (or pasting) pauses
let typing;
$('token').addEventListener('input', () => {
  clearTimeout(typing);
  typing = setTimeout(() => {
    sessionStorage.setItem(TOKEN_KEY, token());
    restartStream();
    Promise.allSettled([refreshDevices(), refreshMrs(), refreshBlocks(), refreshUmmunotify(), refreshChannel(), refreshRates()]);
  }, 400);
});
listen();
tick(refreshDevices, 10_000);
tick(async () => { await refreshRates(); $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`; }, 2_000);
tick(refreshMrs, 5_000);
tick(refreshBlocks, 5_000);
tick(refreshUmmunotify, 5_000);
tick(refreshChannel, 5_000);
