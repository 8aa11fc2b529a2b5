// The API on this host, which has no RDMA devices (the in-VM suite covers real ones):
// routes, error replies and the OpenAPI document.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';

import { buildApp } from '../api/src/app.js';
import { tokenDigest, type Credential } from '../api/src/auth.js';
import { withoutSecrets } from '../api/src/routes/mrs.js';
import { EventHub, type Mr } from '../control/src/index.js';

t.test('the API', async (t) => {
  const app = await buildApp();
  t.teardown(() => app.close());

  const health = await app.inject({ method: 'GET', url: '/v1/health' });
  t.equal(health.statusCode, 200, 'health answers 200');
  t.match(health.json(), { status: 'ok', version: /^\d+\.\d+\.\d+$/ }, 'health says ok with the version');

  const list = await app.inject({ method: 'GET', url: '/v1/devices' });
  t.equal(list.statusCode, 200, 'the device list answers 200');
  t.ok(Array.isArray(list.json()), 'the device list is an array');

  const missing = await app.inject({ method: 'GET', url: '/v1/devices/nosuchdev0' });
  t.equal(missing.statusCode, 404, 'an unknown device is 404');
  t.match(missing.json(), {
    statusCode: 404, error: 'Not Found', message: 'no RDMA device named "nosuchdev0"',
  }, 'the 404 names the missing device');

  for (const bad of ['a%20b', 'x'.repeat(64), 'rxe0%00', '%2e%2e%2fetc']) {
    const res = await app.inject({ method: 'GET', url: `/v1/devices/${bad}` });
    t.equal(res.statusCode, 400, `a malformed name (${bad.slice(0, 20)}) is 400`);
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', message: /params\/name/ },
      'the 400 says which parameter is wrong');
  }

  const mrs = await app.inject({ method: 'GET', url: '/v1/mrs' });
  t.equal(mrs.statusCode, 200, 'the MR list answers 200 on a host without RDMA');
  t.same(mrs.json(), [], 'and it is empty');
  for (const [url, where] of [
    ['/v1/mrs?kind=fast', /querystring\/kind/], ['/v1/mrs?pid=-1', /querystring\/pid/],
    ['/v1/mrs?pid=12x', /querystring\/pid/], ['/v1/mrs?device=a%20b', /querystring\/device/],
    ['/v1/mrs?devic=pfnic0', /additional/], ['/v1/mrs/pfnic0/abc', /params\/mrn/],
    ['/v1/mrs/pfnic0/4294967296', /params\/mrn/], ['/v1/mrs/a%20b/1', /params\/device/],
  ] as const) {
    const res = await app.inject({ method: 'GET', url });
    t.equal(res.statusCode, 400, `${url} is 400`);
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', message: where }, 'saying what is wrong');
  }
  const noMr = await app.inject({ method: 'GET', url: '/v1/mrs/pfnic0/7' });
  t.equal(noMr.statusCode, 404, 'an MR that is not there is 404');
  t.match(noMr.json(), { statusCode: 404, error: 'Not Found', message: 'no MR 7 on RDMA device "pfnic0"' },
    'the 404 names it');

  const blocks = await app.inject({ method: 'GET', url: '/v1/memory/blocks' });
  t.equal(blocks.statusCode, 200, 'the memory blocks answer 200');
  const list0 = blocks.json() as { block: number; online: boolean; size: string }[];
  t.ok(Array.isArray(list0) && list0.every((b) => Number.isInteger(b.block) && /^0x/.test(b.size)),
    `they are this host's (${list0.length} blocks)`);
  const noBlock = await app.inject({ method: 'GET', url: '/v1/memory/blocks/999999999' });
  t.equal(noBlock.statusCode, 404, 'a block the host does not have is 404');
  const off = await app.inject({ method: 'POST', url: '/v1/memory/blocks/0/offline' });
  t.equal(off.statusCode, 403, 'without an admin token configured, offlining is off (403)');
  t.match(off.json(), { message: /PFNIC_API_TOKEN/ }, 'and the 403 says how to turn it on');

  const unknownRoute = await app.inject({ method: 'GET', url: '/v1/nothing' });
  t.equal(unknownRoute.statusCode, 404, 'an unknown route is 404');
  t.match(unknownRoute.json(), { message: /GET \/v1\/nothing/ }, 'and says which');

  const docs = await app.inject({ method: 'GET', url: '/docs/json' });
  t.equal(docs.statusCode, 200, 'the OpenAPI document is served');
  const spec = docs.json() as { openapi: string; paths: Record<string, unknown> };
  t.match(spec.openapi, /^3\./, 'it is OpenAPI 3');
  t.ok(spec.paths['/v1/devices'] && spec.paths['/v1/devices/{name}'] && spec.paths['/v1/health'] &&
    spec.paths['/v1/mrs'] && spec.paths['/v1/mrs/{device}/{mrn}'], 'it documents every route');
  const ui = await app.inject({ method: 'GET', url: '/docs/' });
  t.equal(ui.statusCode, 200, 'the docs page is served');
  t.match(ui.headers['content-type'], /text\/html/, 'as HTML');
});

t.test('the routes that change the host need the bearer token', async (t) => {
  const token = 'a-test-token-of-some-length';
  const app = await buildApp({ token });
  t.teardown(() => app.close());
  // block 999999999 does not exist: even an accepted request changes nothing on this host
  const url = '/v1/memory/blocks/999999999/offline';
  const none = await app.inject({ method: 'POST', url });
  t.equal(none.statusCode, 401, 'no Authorization header: 401');
  t.equal(none.headers['www-authenticate'], 'Bearer realm="pfnic"', 'with a Bearer challenge');
  for (const auth of ['Bearer wrong-token-wrong-token', `Basic ${token}`, `Bearer ${token}x`, 'Bearer', `Bearer  ${token}`]) {
    const res = await app.inject({ method: 'POST', url, headers: { authorization: auth } });
    t.equal(res.statusCode, 401, `"${auth.slice(0, 12)}...": 401`);
    t.notMatch(res.body, token, 'the reply never holds the token');
  }
  const ok = await app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${token}` } });
  t.equal(ok.statusCode, 404, 'the right token gets through: the block is missing, 404');
  const onlineBad = await app.inject({
    method: 'POST', url: '/v1/memory/blocks/1/online?zone=fast', headers: { authorization: `Bearer ${token}` },
  });
  t.equal(onlineBad.statusCode, 400, 'online into a zone that is not movable or kernel: 400');
  const badBlock = await app.inject({
    method: 'POST', url: '/v1/memory/blocks/-1/offline', headers: { authorization: `Bearer ${token}` },
  });
  t.equal(badBlock.statusCode, 400, 'a block number that is not one: 400');
});

t.test('production manners: security headers and a rate limit', async (t) => {
  const app = await buildApp({ rateLimit: 5 });
  t.teardown(() => app.close());
  const first = await app.inject({ method: 'GET', url: '/v1/health' });
  t.match(first.headers['content-security-policy'], /default-src 'self'/, 'a content security policy');
  t.notMatch(first.headers['content-security-policy'], /upgrade-insecure-requests/,
    'that does not push a plain-HTTP server\'s pages to HTTPS');
  t.equal(first.headers['x-content-type-options'], 'nosniff', 'no content sniffing');
  t.ok(first.headers['strict-transport-security'], 'HSTS for whoever puts TLS in front');
  t.notOk(first.headers['x-powered-by'], 'nothing says what serves it');
  t.equal(first.headers['x-ratelimit-limit'], '5', 'the limit is announced');
  for (let i = 0; i < 4; i++) await app.inject({ method: 'GET', url: '/v1/health' });
  const over = await app.inject({ method: 'GET', url: '/v1/health' });
  t.equal(over.statusCode, 429, 'the sixth request in a minute: 429');
  t.match(over.json(), { statusCode: 429, error: 'Too Many Requests', message: /more than 5 requests .* try again in \d+ s/ },
    'saying what the limit is and when to come back');
  t.ok(Number(over.headers['retry-after']) > 0, 'with Retry-After');
});

const reader = 'r'.repeat(12) + '-reader-token';
const admin = 'a'.repeat(12) + '-admin-token';
const credentials: Credential[] = [
  { name: 'grafana', role: 'read', sha256: tokenDigest(reader) },
  { name: 'ops', role: 'admin', sha256: tokenDigest(admin) },
];
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

t.test('roles: who may read, who may change the host', async (t) => {
  const lines: string[] = [];
  const app = await buildApp({
    credentials, anonymousRead: false, trustProxy: '127.0.0.1',
    logger: { level: 'info', stream: new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } }) },
  });
  t.teardown(() => app.close());
  const anonymous = await app.inject({ method: 'GET', url: '/v1/devices' });
  t.equal(anonymous.statusCode, 401, 'anonymous_read off: a read without a token is 401');
  t.equal(anonymous.headers['www-authenticate'], 'Bearer realm="pfnic"', 'with a Bearer challenge');
  t.match(anonymous.json(), { message: /send "Authorization: Bearer <token>"/ }, 'saying what to send');
  for (const url of ['/v1/health', '/', '/dashboard.js', '/vendor/uplot/uPlot.esm.js', '/docs/json']) {
    const res = await app.inject({ method: 'GET', url });
    t.equal(res.statusCode, 200, `${url} needs no token`);
  }
  t.equal((await app.inject({ method: 'GET', url: '/v1/ready' })).statusCode, 401, 'readiness, which names devices, needs one');
  t.equal((await app.inject({ method: 'GET', url: '/vendor/uplot/uPlot.cjs.js' })).statusCode, 404,
    'of the chart library, only what the dashboard loads is served');
  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 401, '/metrics needs one');
  t.equal((await app.inject({ method: 'GET', url: '/v1/events/history' })).statusCode, 401, 'so does the event history');
  for (const token of [reader, admin]) {
    const res = await app.inject({ method: 'GET', url: '/v1/devices', headers: bearer(token) });
    t.equal(res.statusCode, 200, `the ${token === admin ? 'admin' : 'reader'}'s token reads`);
  }
  t.equal((await app.inject({ method: 'GET', url: '/v1/devices', headers: { authorization: `bEaReR ${reader}` } })).statusCode, 200,
    'the scheme\'s name in any case');
  const wrong = await app.inject({ method: 'GET', url: '/v1/devices', headers: bearer(`${reader}x`) });
  t.equal(wrong.statusCode, 401, 'a token the server was not given is 401, even to read');
  t.equal(wrong.headers['www-authenticate'], 'Bearer realm="pfnic", error="invalid_token"', 'an invalid_token challenge');
  const url = '/v1/memory/blocks/999999999/offline';
  const byReader = await app.inject({ method: 'POST', url, headers: bearer(reader) });
  t.equal(byReader.statusCode, 403, 'a reader may not take memory offline: 403');
  t.match(byReader.json(), { message: /"grafana" may read; this route needs an admin/ }, 'naming the token and what it lacks');
  t.equal(byReader.headers['www-authenticate'], 'Bearer realm="pfnic", error="insufficient_scope"', 'an insufficient_scope challenge');
  const byAdmin = await app.inject({
    method: 'POST', url, headers: { ...bearer(admin), 'x-forwarded-for': '203.0.113.7' }, remoteAddress: '127.0.0.1',
  });
  t.equal(byAdmin.statusCode, 404, 'an admin gets through (the block is missing: 404)');
  const audit = lines.map((l) => JSON.parse(l) as { audit?: Record<string, unknown> }).find((l) => l.audit)?.audit;
  t.match(audit, { action: 'offline', block: 999999999, by: 'ops', from: '203.0.113.7', outcome: 'refused' },
    'the audit log names the token and, through the trusted proxy, the client');
  t.notOk(lines.some((l) => l.includes(admin) || l.includes(reader)), 'the log never holds a token');
});

t.test('anonymous callers read without MR keys by default', async (t) => {
  const hub = new EventHub({ path: '/nonexistent/pfnic-events' });
  const app = await buildApp({ credentials, events: hub });
  t.teardown(() => app.close());
  hub.publish({
    time: new Date().toISOString(), type: 'invalidate', reason: 'clear', device: 'pfnic0', port: null, netdev: null, mrn: 3,
    lkey: '0x1a2b', pid: 100, start: '0x1000', end: '0x2000', pages: 1, node: null, block: null, offlining: false, lost: null,
  });
  const history = async (headers: Record<string, string>) =>
    ((await app.inject({ method: 'GET', url: '/v1/events/history', headers })).json() as { events: { lkey: string | null }[] }).events;
  t.match(await history({}), [{ lkey: null }], 'an event seen by an anonymous caller names its MR without its key');
  t.match(await history(bearer(reader)), [{ lkey: null }], 'so does one a reader sees');
  t.match(await history(bearer(admin)), [{ lkey: '0x1a2b' }], 'an admin sees the key');
  t.equal((await app.inject({ method: 'GET', url: '/v1/mrs' })).statusCode, 200, 'anonymous_read on: a read needs no token');
  t.equal((await app.inject({ method: 'POST', url: '/v1/memory/blocks/1/offline' })).statusCode, 401,
    'changing the host still does');
  const mr: Mr = {
    device: 'pfnic0', mrn: 3, kind: 'explicit', length: '0x1000', iova: '0x7f0000001000', lkey: '0x1a2b', rkey: '0x3c4d',
    pdn: 1, pid: 100, owner: 'app', state: 'active', mapped_pages: 1, suspended_pages: 0, translation_tables: 1,
    last_invalidation: 'none', pinned_blocks: null, counters: { page_faults: 1 }, details: { odp: 'explicit' },
  };
  t.same(withoutSecrets(mr), { ...mr, iova: null, lkey: null, rkey: null },
    'what callers other than admins see of an MR: no keys, no address, the rest as it is');
});

t.test('HTTPS with the settings\' certificate', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfnic-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const app = await buildApp({ tls: { cert: readFileSync(cert), key: readFileSync(key) } });
  t.teardown(() => app.close());
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/v1/health', ca: readFileSync(cert) }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(answer.status, 200, 'the server answers over TLS, with the certificate it was given');
  t.match(JSON.parse(answer.body), { status: 'ok' }, 'the health reply');
});

t.test('the OpenAPI document is complete', async (t) => {
  const app = await buildApp();
  t.teardown(() => app.close());
  const spec = (await app.inject({ method: 'GET', url: '/docs/json' })).json() as {
    paths: Record<string, Record<string, { operationId?: string; responses: Record<string, { content?: Record<string, { schema: unknown }> }>; security?: unknown[] }>>;
  };
  const ids = new Set<string>();
  const missing: string[] = [];
  for (const [route, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const name = `${method.toUpperCase()} ${route}`;
      if (!op.operationId) missing.push(`${name}: no operationId`);
      else if (ids.has(op.operationId)) missing.push(`${name}: operationId ${op.operationId} twice`);
      else ids.add(op.operationId);
      const codes = Object.keys(op.responses);
      if (!codes.some((c) => c.startsWith('2'))) missing.push(`${name}: no 2xx reply`);
      for (const c of ['429', '500']) if (!codes.includes(c)) missing.push(`${name}: no ${c}`);
      const open = route === '/v1/health';
      if (!open) for (const c of ['401', '403']) if (!codes.includes(c)) missing.push(`${name}: no ${c}`);
      if (!open && !op.security) missing.push(`${name}: no security`);
    }
  }
  t.same(missing, [], `every operation has an id, its replies and its errors (${ids.size} operations)`);
  t.ok(ids.size >= 13, 'every route is in it');

  // shared schemas: each titled one once, in components, and every $ref leads somewhere
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json() as { components: { schemas: Record<string, unknown> } };
  const names = Object.keys(doc.components.schemas);
  for (const name of ['Mr', 'Device', 'Port', 'MemoryBlock', 'Event', 'Problem', 'UmmunotifyState', 'UmmunotifyFile']) {
    t.ok(names.includes(name), `components.schemas has ${name}`);
  }
  const refs: string[] = [];
  const titledInline: string[] = [];
  const walk = (node: unknown, inComponents: boolean): void => {
    if (Array.isArray(node)) { node.forEach((n) => walk(n, inComponents)); return; }
    if (typeof node !== 'object' || node === null) return;
    const o = node as Record<string, unknown>;
    if (typeof o.$ref === 'string') refs.push(o.$ref);
    if (!inComponents && typeof o.title === 'string' && names.includes(o.title) &&
      JSON.stringify(o) === JSON.stringify(doc.components.schemas[o.title])) titledInline.push(o.title);
    for (const v of Object.values(o)) walk(v, inComponents);
  };
  walk((doc as unknown as { paths: unknown }).paths, false);
  walk(doc.components.schemas, true);
  t.ok(refs.length > ids.size, `operations refer to them (${refs.length} references)`);
  t.same(refs.filter((r) => !names.includes(r.replace('#/components/schemas/', ''))), [], 'every reference resolves');
  t.same(titledInline, [], 'no shared schema is also written out in an operation');
  t.ok((doc.components.schemas.Mr as { required?: string[] }).required?.includes('mrn'),
    'the shared Mr is the whole MR, not the partial one a page of fields gives');
  const problem = (spec.paths['/v1/devices']!.get!.responses['429']!.content!['application/json']!.schema) as { $ref?: string };
  t.equal(problem.$ref, '#/components/schemas/Problem', 'a problem reply refers to the one Problem');
});

t.test('errors are problem documents', async (t) => {
  const app = await buildApp({ rateLimit: 2 });
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/v1/devices/a%20b' });
  t.match(res.headers['content-type'], /^application\/problem\+json/, 'as application/problem+json');
  t.match(res.json(), {
    type: 'about:blank', title: 'Bad Request', status: 400, detail: /params\/name/, instance: '/v1/devices/a%20b',
    statusCode: 400, error: 'Bad Request', message: /params\/name/,
  }, 'RFC 9457\'s fields, and the first version\'s');
  const nowhere = await app.inject({ method: 'GET', url: '/nowhere/else' });
  t.match(nowhere.json(), { status: 404, detail: 'no route GET /nowhere/else' }, 'and for a route that is not there');
  const over = await app.inject({ method: 'GET', url: '/v1/health' });
  t.equal(over.statusCode, 429, 'over the rate limit: 429');
  t.match(over.json(), { status: 429, title: 'Too Many Requests', detail: /more than 2 requests/ }, 'a problem document too');
});
