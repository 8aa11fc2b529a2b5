// The dashboard: what the control plane's API says, live. Plain DOM (text only: nothing
// from the server becomes markup), an SVG chart, and the server-sent event stream, which
// the browser resumes with Last-Event-ID when it reconnects.
const $ = (id) => document.getElementById(id);
const state = { mrs: new Map(), samples: [], events: 0 };
const WINDOW_S = 300;

async function getJson(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return res.json();
}

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
  if (hex === null) return '';
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

async function refreshMrs() {
  const mrs = await getJson('/v1/mrs');
  const now = performance.now() / 1000;
  // rates from each MR's own counters: an MR that comes or goes does not make a jump
  let faults = 0, invals = 0;
  const prev = state.mrs;
  const next = new Map();
  for (const m of mrs) {
    const key = `${m.device}/${m.mrn}/${m.lkey}`;
    next.set(key, m);
    const p = prev.get(key);
    if (p) {
      // pages mapped in on a fault or by a prefetch
      const mapped = (c) => (c.page_faults ?? 0) + (c.page_prefetch ?? 0);
      faults += Math.max(0, mapped(m.counters) - mapped(p.counters));
      invals += Math.max(0, (m.counters.page_invalidations ?? 0) - (p.counters.page_invalidations ?? 0));
    }
  }
  const last = state.samples[state.samples.length - 1];
  if (last && prev.size) {
    const dt = now - last.t;
    state.samples.push({ t: now, faults: faults / dt, invals: invals / dt });
  } else {
    state.samples.push({ t: now, faults: 0, invals: 0 });
  }
  state.samples = state.samples.filter((s) => now - s.t <= WINDOW_S);
  state.mrs = next;
  $('mr-count').textContent = `(${mrs.length})`;
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
  drawRates();
}

function drawRates() {
  const svg = $('rates');
  const w = 600, h = 160, pad = 24;
  const now = performance.now() / 1000;
  const max = Math.max(1, ...state.samples.map((s) => Math.max(s.faults, s.invals)));
  const x = (t) => pad + (w - 2 * pad) * (1 - (now - t) / WINDOW_S);
  const y = (v) => h - pad - (h - 2 * pad) * (v / max);
  const line = (k) => state.samples.map((s) => `${x(s.t).toFixed(1)},${y(s[k]).toFixed(1)}`).join(' ');
  const ns = 'http://www.w3.org/2000/svg';
  const el = (name, attrs, text) => {
    const e = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  svg.replaceChildren(
    el('line', { class: 'axis', x1: pad, y1: h - pad, x2: w - pad, y2: h - pad }),
    el('text', { x: pad, y: 12 }, `${Math.round(max)} pages/s`),
    el('text', { x: pad, y: h - 6 }, '5 min ago'),
    el('text', { x: w - pad - 20, y: h - 6 }, 'now'),
    el('polyline', { class: 'faults', points: line('faults') }),
    el('polyline', { class: 'invals', points: line('invals') }),
  );
  const last = state.samples[state.samples.length - 1];
  if (last) $('rate-now').textContent = `now: ${last.faults.toFixed(0)} faulted in, ${last.invals.toFixed(0)} invalidated per second`;
}

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
    button.addEventListener('click', () => act(b.block, b.online ? 'offline' : 'online?zone=movable'));
    td.append(button);
  });
}

async function act(block, what) {
  const token = $('token').value.trim();
  const out = $('action-result');
  out.textContent = `block ${block}: ${what.split('?')[0]}…`;
  try {
    const res = await fetch(`/v1/memory/blocks/${block}/${what}`, {
      method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    const body = await res.json();
    out.textContent = res.ok ? `block ${block} is ${body.state}` : `block ${block}: ${body.message}`;
  } catch (err) {
    out.textContent = `block ${block}: ${err.message}`;
  }
  await refreshBlocks();
}

function mrName(device, mrn) {
  for (const m of state.mrs.values()) {
    if (m.device === device && m.mrn === mrn && m.owner) return `${device} mrn ${mrn} (${m.owner}, pid ${m.pid})`;
  }
  return `${device} mrn ${mrn}`;
}

function describe(e) {
  const time = e.time.slice(11, 23);
  switch (e.type) {
  case 'invalidate':
  case 'migrate': {
    const from = e.offlining ? ` out of block ${e.block} (node ${e.node}), which is going offline` : '';
    return `${time} ${e.type} (${e.reason}): ${mrName(e.device, e.mrn)}, ${e.pages} pages at ${e.start}${from}`;
  }
  case 'memory':
    return `${time} memory block ${e.block} (node ${e.node}): ${e.reason}`;
  case 'pinned':
    return `${time} pinned: ${mrName(e.device, e.mrn)} holds ${e.pages} pages of block ${e.block}, which cannot go offline`;
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
  li.textContent = describe(e);
  const list = $('events');
  list.prepend(li);
  while (list.children.length > 500) list.lastElementChild.remove();
  $('event-count').textContent = `(${++state.events})`;
}

function listen() {
  const source = new EventSource('/v1/events');
  for (const type of ['invalidate', 'migrate', 'memory', 'pinned', 'lost', 'device', 'async']) {
    source.addEventListener(type, (m) => {
      const e = JSON.parse(m.data);
      addEvent(e);
      if (e.type === 'memory') refreshBlocks().catch(() => {});
      if (e.type === 'device' || e.type === 'async') refreshDevices().catch(() => {});
    });
  }
  source.addEventListener('gap', (m) => {
    const { missed } = JSON.parse(m.data);
    const li = document.createElement('li');
    li.textContent = `(${missed} events happened while this page was away)`;
    $('events').prepend(li);
  });
}

async function refreshChannel() {
  const h = await getJson('/v1/events/history?limit=1');
  const pill = $('channel');
  pill.textContent = `event channel: ${h.channel.state}`;
  pill.className = `pill ${h.channel.state}`;
}

// Runs fn every ms, or less often when it is costly: a host with 10,000 MRs takes the
// kernel seconds to list, and polling it back to back slowed RDMA traffic by a quarter
// (test/guest/api-bench.ts), so the page waits at least four times as long as the last
// answer took.
async function tick(fn, ms) {
  const started = performance.now();
  try {
    await fn();
  } catch (err) {
    $('updated').textContent = `(${err.message})`;
  }
  setTimeout(() => tick(fn, ms), Math.max(ms, 4 * (performance.now() - started)));
}

$('host').textContent = location.host;
$('token-form').addEventListener('submit', (e) => e.preventDefault());
listen();
tick(refreshDevices, 10_000);
tick(async () => { await refreshMrs(); $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`; }, 2_000);
tick(refreshBlocks, 5_000);
tick(refreshChannel, 5_000);
