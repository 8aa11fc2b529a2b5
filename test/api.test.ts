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
