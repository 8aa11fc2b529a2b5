// The pfnic suite of one kernel, each group in a fresh guest with rxe0 and pfnic0 on the same
// dummy netdev: unmodified verbs peers (ibv_rc_pingpong, perftest) with and without ODP, the
// project's data-verifying traffic suite on a two-node guest, what rdma netlink shows of MRs,
// bad input of every kind, the RDMA ecosystem's software (rdma_cm's tools, libfabric, UCX,
// Open MPI, NVMe over Fabrics; each device on a netdev of its own there) and rdma-core's pyverbs tests, what
// the driver keeps safe when its objects are acted on at bad moments, a slice of the fuzzer,
// the device and module going away under live users, memory hot-unplugged under live ODP
// traffic, and on the newest and the debug kernel a slice of the race soak. Run by vm-pfnic.test.ts on the release kernels and by vm-debug.test.ts on the
// debug kernel, where the groups of a bundle share a guest (test/vm/groups.ts).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';

import { runGroups, setupCommand, type Group, type Step } from './groups.js';
import { fullTier, groupSeconds, isDebugKernel, newestKernel, timeScale } from './matrix.js';
import { Qmp } from './qmp.js';

const tests = 'build/cmake/tests';
const devices: Step[] = ['rxe', 'pfnic'];

const groups: Group[] = [
  {
    name: 'unmodified peers on pfnic0',
    options: [],
    setup: devices,
    command: 'test/guest/peers.sh pfnic0',
    debugBundle: 'verbs',
    // rdma-core's and perftest's programs drive the provider; the kernel paths under them
    // are the traffic and ecosystem groups', on every kernel and under the checkers
    newestOnly: true,
    releaseOnly: true,
  },
  {
    name: 'data-verifying traffic on pfnic0',
    everyKernel: true,
    options: ['--numa'],
    setup: devices,
    command: `${tests}/pfnic_traffic -d pfnic0 -g 1 --strict`,
    needs: [`${tests}/pfnic_traffic`],
    debugBundle: 'verbs',
  },
  {
    name: 'data-verifying traffic through a shared receive queue on pfnic0',
    options: ['--numa'],
    setup: devices,
    command: `${tests}/pfnic_traffic -d pfnic0 -g 1 --srq --strict`,
    needs: [`${tests}/pfnic_traffic`],
    debugBundle: 'verbs',
    // two minutes under the checkers, where the soak slice runs SRQ traffic too
    debugFullTier: true,
  },
  {
    // the same traffic through extended CQs and QPs, which are the provider's alone
    name: 'data-verifying traffic through the extended verbs (ibv_wr_*, ibv_start_poll) on pfnic0',
    options: ['--numa'],
    setup: devices,
    command: `${tests}/pfnic_traffic -d pfnic0 -g 1 --ex --strict`,
    needs: [`${tests}/pfnic_traffic`],
    debugBundle: 'verbs',
    releaseOnly: true,
    newestOnly: true,
  },
  {
    name: 'UD datagrams on pfnic0, every byte checked',
    options: ['--numa'],
    setup: devices,
    command: `${tests}/pfnic_ud -d pfnic0 -g 1`,
    needs: [`${tests}/pfnic_ud`],
    debugBundle: 'verbs',
  },
  {
    name: 'UC QPs on pfnic0, plain and extended, every byte checked; what UC loses',
    options: ['--numa'],
    setup: devices,
    command: `${tests}/pfnic_uc -d pfnic0 -g 1`,
    needs: [`${tests}/pfnic_uc`],
    debugBundle: 'verbs',
    // the driver's code alone: on the newest release kernel and under the checkers
    newestOnly: true,
  },
  {
    // pfnic's side of RoCE v2, packet by packet, against a peer the program plays on a veth
    // pair: what no real peer sends (bad ICRC, cut headers, unknown QPs, PSNs out of order,
    // duplicates), RNR NAKs over ODP, and the requester's retries
    name: 'RoCE v2 against a scripted peer: every answer on the wire checked, bad packets dropped and counted',
    options: [],
    setup: devices,
    command: `${tests}/pfnic_wire_peer`,
    needs: [`${tests}/pfnic_wire_peer`],
    debugBundle: 'verbs',
    // the wire's paths in the kernel's network stack are vm-wire's on the oldest and the
    // newest kernel; these, the newest and the debug kernel's checkers
    newestOnly: true,
  },
  {
    name: 'memory windows of types 1 and 2 over ODP and pinned MRs, every byte checked; invalidation; binds refused',
    options: [],
    setup: devices,
    command: `${tests}/pfnic_mw -d pfnic0 -g 1`,
    needs: [`${tests}/pfnic_mw`],
    debugBundle: 'verbs',
    // the driver's code alone: on the newest release kernel and under the checkers
    newestOnly: true,
  },
  {
    name: 'ibv_rereg_mr of ODP and pinned MRs: translation, rights, ODP or not, PD; every byte checked',
    options: [],
    setup: devices,
    command: `${tests}/pfnic_rereg -d pfnic0 -g 1`,
    needs: [`${tests}/pfnic_rereg`],
    debugBundle: 'verbs',
    // the driver's code alone: on the newest release kernel and under the checkers
    newestOnly: true,
  },
  {
    name: 'XRC: a domain, XRC SRQs, INI and TGT QPs over ODP memory; every byte checked',
    options: [],
    setup: devices,
    command: `${tests}/pfnic_xrc -d pfnic0 -g 1`,
    needs: [`${tests}/pfnic_xrc`],
    debugBundle: 'verbs',
    // the driver's code alone: on the newest release kernel and under the checkers
    newestOnly: true,
  },
  {
    name: 'rings shared with the provider: CQs polled and armed and receives posted with no system call, '
      + 'one doorbell per post, malformed WQEs failed',
    options: [],
    setup: devices,
    command: `${tests}/pfnic_rings -d pfnic0 -g 1`,
    needs: [`${tests}/pfnic_rings`],
    debugBundle: 'verbs',
  },
  {
    name: 'MR state and counters through rdma netlink',
    everyKernel: true,
    options: ['--numa'],
    setup: devices,
    command: `${tests}/pfnic_mrstate -d pfnic0 -g 1`,
    needs: [`${tests}/pfnic_mrstate`],
    debugBundle: 'verbs',
  },
  {
    name: 'bad input gets the spec\'s errors',
    options: [],
    setup: devices,
    command: `${tests}/pfnic_badinput -d pfnic0 -g 1`,
    needs: [`${tests}/pfnic_badinput`],
    debugBundle: 'verbs',
  },
  {
    // software nobody here wrote, on pfnic0 and on rxe0 beside it, each on a netdev and an
    // address of its own (the script makes both devices)
    name: 'the RDMA ecosystem on pfnic0 and rxe0: rdma_cm tools, perftest over rdma_cm, rdma_cm\'s errors, '
      + 'libfabric, UCX, Open MPI checking every byte, NVMe over Fabrics with fio verifying every block',
    options: [],
    setup: [],
    command: 'test/guest/ecosystem.sh pfnic0 rxe0',
    // under the checkers, pfnic's kernel paths are what is tested: rxe0's run would test rxe
    // (whose 6.1 KASAN reports a read past a buffer in rxe_mr_copy under UCX), for minutes
    debugCommand: 'test/guest/ecosystem.sh pfnic0',
    debugBundle: 'ecosystem',
    // four minutes a kernel, six under the checkers: the newest release kernel runs both
    // devices in every tier; the debug kernel (6.1's source) runs pfnic's side of it, and
    // the kernels between run both, in the full tier only, to keep CI within its hour
    newestOnly: true,
    debugFullTier: true,
  },
  {
    // pfnic0 on a NIC with a PCI device under it, where pyverbs' rdma_cm tests find its address
    name: 'rdma-core\'s pyverbs tests on pfnic0: every module but the vendors\', no failure or error',
    options: ['--nic'],
    setup: [],
    command: 'test/guest/pyverbs.sh pfnic0 nic',
    // six minutes under the checkers, for kernel paths the verbs, ecosystem and fuzz groups
    // run there already; and what it tests is the provider and the uverbs ABI, which do not
    // change with the kernel: on the newest kernel only, but in the full tier
    releaseOnly: true,
    newestOnly: true,
  },
  {
    name: 'safety: faults across a reset, flushes during copies, pages only RDMA wrote, QPN reuse, namespaces, progress, limits',
    options: [],
    setup: [...devices, 'zram'],
    command: `${tests}/pfnic_safety -d pfnic0 -g 1`,
    needs: [`${tests}/pfnic_safety`],
    // object_limits makes 65,536 PDs and CQs: minutes under the checkers, for counting that
    // is the same on every kernel
    debugCommand: `${tests}/pfnic_safety -d pfnic0 -g 1 --skip object_limits`,
    debugBundle: 'safety',
  },
  {
    // a slice of the fuzzer, the same calls each run; test/fuzz.sh runs a million and more
    name: 'fuzz: 3 processes of random calls at the user surface (10,000 each, 5,000 under the checkers) while memory churns',
    options: ['--numa'],
    setup: [...devices, 'ummunotify'],
    command: 'test/guest/fuzz.sh 1 10000 3 2',
    // under the checkers each call takes four times as long
    debugCommand: 'test/guest/fuzz.sh 1 5000 3 2',
    needs: [`${tests}/pfnic_fuzz`],
    debugBundle: 'safety',
  },
  // last in its bundle: it removes the devices and unloads the module
  {
    name: 'removal under live users', options: [], setup: devices, command: 'test/guest/lifecycle.sh', debugBundle: 'safety',
    everyKernel: true,
  },
];

// Memory offlined and the DIMM removed under live ODP traffic (build/cmake/tests/
// pfnic_hotplug --unplug): the guest says when its blocks are offline, and the host then
// removes the DIMM over QMP while the traffic runs on.
async function hotUnplug(t: Test, top: string, kernel: string): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfnic-unplug-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'qmp.sock');
  const guest = spawn('bash', [path.join(top, 'test/vm/run.sh'), '--timeout', String(groupSeconds * timeScale(top, kernel)), '--numa',
    '--dimm', '384M', '--qmp', sock, kernel, '--', 'sh', '-c',
    `${setupCommand(devices)} && exec build/cmake/tests/pfnic_hotplug -d pfnic0 -g 1 --unplug`],
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

// A slice of the race soak (test/soak.sh runs ten minutes), on the newest and the debug kernel.
const soak: Group = {
  name: 'race soak: 60 s of RC, UD, SRQ and atomic traffic through every kind of MR, every byte checked, '
    + 'while memory churns, workers exit mid-transfer and memory blocks go offline',
  options: ['--numa', '--dimm', '384M'],
  setup: [...devices, 'zram'],
  command: 'test/guest/soak.sh 60 1',
  needs: [`${tests}/pfnic_soak`],
};

/** Runs the pfnic suite in guests of @p kernel, as subtests of @p t. */
export async function pfnicSuite(t: Test, top: string, kernel: string): Promise<void> {
  await runGroups(t, top, kernel, groups);
  // Seven minutes under the checkers, where the soak slice takes ODP MRs' blocks offline
  // under traffic too; the DIMM's removal itself is the kernel's, which every release
  // kernel runs: the debug kernel's is the full tier's.
  if (isDebugKernel(top, kernel) && !fullTier()) {
    t.comment(`kernel ${kernel}: hot-unplug under live ODP traffic runs on the debug kernel in the full tier only (PFNIC_TIER=full)`);
  } else {
    const started = Date.now();
    await t.test('hot-unplug under live ODP traffic', (t) => hotUnplug(t, top, kernel));
    t.comment(`kernel ${kernel}: hot-unplug under live ODP traffic took ${Math.round((Date.now() - started) / 1000)} s`);
  }
  if (kernel === newestKernel(top) || isDebugKernel(top, kernel)) await runGroups(t, top, kernel, [soak]);
}
