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

  const unknownRoute = await app.inject({ method: 'GET', url: '/v1/nothing' });
  t.equal(unknownRoute.statusCode, 404, 'an unknown route is 404');
  t.match(unknownRoute.json(), { message: /GET \/v1\/nothing/ }, 'and says which');

  const docs = await app.inject({ method: 'GET', url: '/docs/json' });
  t.equal(docs.statusCode, 200, 'the OpenAPI document is served');
  const spec = docs.json() as { openapi: string; paths: Record<string, unknown> };
  t.match(spec.openapi, /^3\./, 'it is OpenAPI 3');
  t.ok(spec.paths['/v1/devices'] && spec.paths['/v1/devices/{name}'] && spec.paths['/v1/health'],
    'it documents every route');
  const ui = await app.inject({ method: 'GET', url: '/docs/' });
  t.equal(ui.statusCode, 200, 'the docs page is served');
  t.match(ui.headers['content-type'], /text\/html/, 'as HTML');
});
