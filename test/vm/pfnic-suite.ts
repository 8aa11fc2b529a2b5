// The pfnic suite of one kernel, each group in a fresh guest with rxe0 and pfnic0 on the same
// dummy netdev: unmodified verbs peers (ibv_rc_pingpong, perftest) with and without ODP, the
// project's data-verifying traffic suite on a two-node guest, what rdma netlink shows of MRs,
// bad input of every kind, what the driver keeps safe when its objects are acted on at bad
// moments, a slice of the fuzzer, the device and module going away under live users, and
// memory hot-unplugged under live ODP traffic. Run by vm-pfnic.test.ts on the release
// kernels and by vm-debug.test.ts on the debug kernel.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';

import { runGroups, type Group } from './groups.js';
import { timeScale } from './matrix.js';
import { Qmp } from './qmp.js';

const setup = 'test/vm/guest rxe >/dev/null && test/vm/guest pfnic netdev=d0';
const tests = 'build/cmake/tests';

const groups: Group[] = [
  { name: 'unmodified peers on pfnic0', options: [], command: `${setup} && exec test/guest/peers.sh pfnic0` },
  {
    name: 'data-verifying traffic on pfnic0',
    options: ['--numa'],
    command: `${setup} && exec build/cmake/tests/pfnic_traffic -d pfnic0 -g 1 --strict`,
    needs: [`${tests}/pfnic_traffic`],
  },
  {
    name: 'data-verifying traffic through a shared receive queue on pfnic0',
    options: ['--numa'],
    command: `${setup} && exec build/cmake/tests/pfnic_traffic -d pfnic0 -g 1 --srq --strict`,
    needs: [`${tests}/pfnic_traffic`],
  },
  {
    name: 'UD datagrams on pfnic0, every byte checked',
    options: ['--numa'],
    command: `${setup} && exec build/cmake/tests/pfnic_ud -d pfnic0 -g 1`,
    needs: [`${tests}/pfnic_ud`],
  },
  {
    name: 'MR state and counters through rdma netlink',
    options: ['--numa'],
    command: `${setup} && exec build/cmake/tests/pfnic_mrstate -d pfnic0 -g 1`,
    needs: [`${tests}/pfnic_mrstate`],
  },
  {
    name: 'bad input gets the spec\'s errors',
    options: [],
    command: `${setup} && exec build/cmake/tests/pfnic_badinput -d pfnic0 -g 1`,
    needs: [`${tests}/pfnic_badinput`],
  },
  {
    name: 'safety: faults across a reset, flushes during copies, pages only RDMA wrote, QPN reuse, namespaces, progress, limits',
    options: [],
    // swap on zram, for the case whose pages must be swapped out and in
    command: `${setup} && modprobe zram && echo 512M > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && `
      + `swapon /dev/zram0 && exec build/cmake/tests/pfnic_safety -d pfnic0 -g 1`,
    needs: [`${tests}/pfnic_safety`],
  },
  {
    // a slice of the fuzzer, the same calls each run; test/fuzz.sh runs a million and more
    name: 'fuzz: 3 processes of 10,000 random calls at the user surface while memory churns',
    options: ['--numa'],
    command: `${setup} && test/vm/guest ummunotify && exec test/guest/fuzz.sh 1 10000 3 2`,
    needs: [`${tests}/pfnic_fuzz`],
  },
  { name: 'removal under live users', options: [], command: `${setup} && exec test/guest/lifecycle.sh` },
];

// Memory offlined and the DIMM removed under live ODP traffic (build/cmake/tests/
// pfnic_hotplug --unplug): the guest says when its blocks are offline, and the host then
// removes the DIMM over QMP while the traffic runs on.
async function hotUnplug(t: Test, top: string, kernel: string): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfnic-unplug-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'qmp.sock');
  const guest = spawn('bash', [path.join(top, 'test/vm/run.sh'), '--timeout', String(300 * timeScale(top, kernel)), '--numa',
    '--dimm', '384M', '--qmp', sock, kernel, '--', 'sh', '-c',
    `${setup} && exec build/cmake/tests/pfnic_hotplug -d pfnic0 -g 1 --unplug`],
  { cwd: top, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const ready = new Promise<boolean>((resolve) => {
    guest.stdout.setEncoding('utf8');
    guest.stdout.on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('ready-for-unplug')) resolve(true);
    });
  });
  const exited = new Promise<number | null>((resolve) => guest.on('close', resolve));
  if (await Promise.race([ready, exited.then(() => false)])) {
    const qmp = await Qmp.connect(sock);
    await qmp.execute('device_del', { id: 'dimm0' });
    qmp.close();
  }
  const status = await exited;
  for (const line of out.split('\n')) {
    if (/^(not )?ok /.test(line)) t.ok(line.startsWith('ok '), `guest: ${line.replace(/^(not )?ok \d+ - /, '')}`);
    else if (line.startsWith('# ') || line.startsWith('Bail out!')) t.comment(line.replace(/^# /, ''));
  }
  t.equal(status, 0, 'the guest ran to the end and every check passed');
  t.match(out, /^1\.\.(\d+)$/m, 'the guest printed its plan');
  const plan = Number(/^1\.\.(\d+)$/m.exec(out)?.[1] ?? -1);
  t.equal(out.split('\n').filter((l) => /^ok /.test(l)).length, plan, 'every planned check ran and passed');
}

/** Runs the pfnic suite in guests of @p kernel, as subtests of @p t. */
export async function pfnicSuite(t: Test, top: string, kernel: string): Promise<void> {
  await runGroups(t, top, kernel, groups);
  const started = Date.now();
  await t.test('hot-unplug under live ODP traffic', (t) => hotUnplug(t, top, kernel));
  t.comment(`kernel ${kernel}: hot-unplug under live ODP traffic took ${Math.round((Date.now() - started) / 1000)} s`);
}
