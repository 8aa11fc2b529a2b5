// The API on this host, which has no RDMA devices (the in-VM suite covers real ones):
// routes, error replies and the OpenAPI document.
import t from 'tap';

import { buildApp } from '../api/src/app.js';

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
  t.same(missing.json(), {
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
  t.same(noMr.json(), { statusCode: 404, error: 'Not Found', message: 'no MR 7 on RDMA device "pfnic0"' },
    'the 404 names it');

  const blocks = await app.inject({ method: 'GET', url: '/v1/memory/blocks' });
  t.equal(blocks.statusCode, 200, 'the memory blocks answer 200');
  const list0 = blocks.json() as { block: number; online: boolean; size: string }[];
  t.ok(Array.isArray(list0) && list0.every((b) => Number.isInteger(b.block) && /^0x/.test(b.size)),
    `they are this host's (${list0.length} blocks)`);
  const noBlock = await app.inject({ method: 'GET', url: '/v1/memory/blocks/999999999' });
  t.equal(noBlock.statusCode, 404, 'a block the host does not have is 404');
  const off = await app.inject({ method: 'POST', url: '/v1/memory/blocks/0/offline' });
  t.equal(off.statusCode, 403, 'without a token configured, offlining is off (403)');
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
  for (const auth of ['Bearer wrong-token-wrong-token', `Basic ${token}`, `Bearer ${token}x`, 'Bearer', `bearer ${token}`]) {
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
