// The rig's memory set-ups, which the hotplug and migration suites build on: two NUMA
// nodes, a Movable DIMM that offlines, and memory hot-added over QMP while the guest runs.
// And the rig's net: on every kernel of the matrix, a guest whose kernel reports a problem
// fails even though its command succeeded, for each kind of report that kernel can make.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

import { matrixKernels } from './vm/matrix.js';
import { Qmp } from './vm/qmp.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runSh = path.join(top, 'test/vm/run.sh');
const kernel = '6.1';

t.test('--numa: the guest has two NUMA nodes', async (t) => {
  await t.spawn('bash', [runSh, '--timeout', '300', '--numa', kernel, '--', 'sh', '-c',
    'n=$(ls -d /sys/devices/system/node/node[0-9]* | wc -l); ' +
    'echo 1..1; [ "$n" = 2 ] && echo "ok 1 - two nodes" || echo "not ok 1 - $n nodes"'],
  { cwd: top }, 'numa guest');
});

t.test('--dimm: its memory is Movable and goes offline', async (t) => {
  await t.spawn('bash', [runSh, '--timeout', '300', '--dimm', '512M', kernel, '--', 'sh', '-c',
    'b=$(test/vm/guest movable-blocks); echo 1..2; ' +
    '[ $(echo $b | wc -w) -ge 4 ] && echo "ok 1 - Movable blocks: $(echo $b)" || echo "not ok 1 - Movable: $b"; ' +
    'for x in $b; do echo offline > /sys/devices/system/memory/$x/state || f=1; done; ' +
    '[ -z "$f" ] && echo "ok 2 - every Movable block offlined" || echo "not ok 2 - offlining failed"'],
  { cwd: top }, 'dimm guest');
});

t.test('--qmp: memory hot-added while the guest runs', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfnic-qmp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'qmp.sock');
  const guest = spawn('bash', [runSh, '--timeout', '300', '--dimm', '256M', '--qmp', sock, kernel, '--',
    'test/guest/memory-hotadd.sh'], { cwd: top, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const ready = new Promise<void>((resolve) => {
    guest.stdout.setEncoding('utf8');
    guest.stdout.on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('ready-for-hotadd')) resolve();
    });
  });
  const exited = new Promise<number | null>((resolve) => guest.on('close', resolve));
  await Promise.race([ready, exited]);
  const qmp = await Qmp.connect(sock);
  await qmp.execute('object-add', { 'qom-type': 'memory-backend-ram', id: 'hotmem1', size: 256 << 20 });
  await qmp.execute('device_add', { driver: 'pc-dimm', id: 'hotdimm1', memdev: 'hotmem1' });
  const devices = await qmp.execute('query-memory-devices');
  t.match(JSON.stringify(devices), /hotdimm1/, 'QEMU lists the hot-added DIMM');
  qmp.close();
  t.equal(await exited, 0, 'the guest ran to the end');
  for (const line of out.split('\n').filter((l) => /^(not )?ok /.test(l))) {
    t.ok(line.startsWith('ok '), `guest: ${line.replace(/^(not )?ok \d+ - /, '')}`);
  }
  t.match(out, /^ok 3 /m, 'the guest reported all three checks');
});

// What each kind of rig_splat (test/guest/kmod) makes the kernel print, as the rig shows it.
// In the order the module makes them: a KASAN report turns lockdep off, so it comes last.
const reports: Record<string, RegExp> = {
  lockdep: /WARNING: possible circular locking dependency detected/,
  sleep: /BUG: sleeping function called from invalid context at [^]*rig_sleep/,
  warn: /WARNING:.*rig_splat/,
  leak: /pfnic-rig: kmemleak: [^]*rig_leak/,
  kasan: /BUG: KASAN: slab-out-of-bounds in rig_kasan/,
};
const release = new Set(matrixKernels(top, { debug: false }));

for (const k of matrixKernels(top, { debug: true })) {
  // a release kernel has no checkers: only WARN_ON reports there
  const kinds = release.has(k) ? ['warn'] : Object.keys(reports);
  t.test(`kernel ${k}: a guest whose kernel reports ${kinds.join(', ')} fails`, async (t) => {
    const { status, stderr } = await new Promise<{ status: number; stderr: string }>((resolve) => {
      execFile('bash', [runSh, '--timeout', '300', k, '--', 'test/vm/guest', 'splat', kinds.join(',')],
        { cwd: top, maxBuffer: 64 << 20 }, (error, _stdout, stderr) => {
          resolve({ status: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stderr });
        });
    });
    t.equal(status, 126, 'the command succeeded, and the rig failed the guest for what the kernel said');
    for (const kind of kinds) t.match(stderr, reports[kind]!, `the rig shows the ${kind} report`);
  });
}
