// Liveness and readiness: with the addon the server reads the kernel through missing, it
// still starts and says it is alive, and /v1/ready says it is not ready, and why. With the
// addon (this host: no RDMA devices), it is ready.
import t from 'tap';

t.test('without the addon: alive, not ready, saying why', async (t) => {
  const saved = process.env.PFNIC_ADDON;
  process.env.PFNIC_ADDON = '/nonexistent/pfnic_addon.node';
  t.teardown(() => {
    if (saved === undefined) delete process.env.PFNIC_ADDON;
    else process.env.PFNIC_ADDON = saved;
  });
  // a process of its own (tap runs each file in one), so the addon is not loaded yet
  const { buildApp } = await import('../api/src/app.js');
  const app = await buildApp();
  t.teardown(() => app.close());
  const health = await app.inject({ method: 'GET', url: '/v1/health' });
  t.equal(health.statusCode, 200, '/v1/health answers 200');
  const ready = await app.inject({ method: 'GET', url: '/v1/ready' });
  t.equal(ready.statusCode, 503, '/v1/ready answers 503');
  t.match(ready.json(), {
    status: 'not_ready', addon: { state: 'missing', message: /not built.*nonexistent/ }, devices: { state: /error|reading/ },
  }, 'naming the missing addon');
  const devices = await app.inject({ method: 'GET', url: '/v1/devices' });
  t.equal(devices.statusCode, 503, 'the device list is 503, not an empty list');
  t.match(devices.json(), { status: 503, detail: /devices cannot be read: .*not built/ }, 'saying why');
});
