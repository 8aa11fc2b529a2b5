// RoCE v2 on the wire: two guests joined by one Ethernet link (test/vm/run.sh --link), each
// with one RDMA device on it, run unmodified verbs and rdma_cm programs across
// (test/guest/wire.sh): pfnic0 against rxe0 with pfnic on either side of every program
// (the server side: the responder of perftest's traffic, over its ODP MRs; the client
// side: the requester), and pfnic0 against pfnic0. The two sides run different kernels of
// the matrix: the newest and the oldest release kernel. Then pfnic0 against pfnic0 over a
// lossy link (netem on both guests: packets dropped, duplicated, delayed and reordered),
// where every program must still pass and the counters must show the recovery (but for a
// pingpong's last ACK lost after its peer had everything and left: excuse()). The pairs
// where pfnic0 serves end with the client's data-verifying traffic into its ODP MR while its
// memory goes offline and the host removes its DIMM (test/guest/pfnic_wire_traffic.c). The full
// tier adds pfnic0 against pfnic0 on a clean link, rxe0 against pfnic0 on a lossy one, and
// pfnic0 on the debug kernel (its checkers watching the wire's paths) serving rxe0.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { Test } from 'tap';

import { debugKernels, edgeKernels, fullTier, timeScale } from './vm/matrix.js';
import { Qmp } from './vm/qmp.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runSh = path.join(top, 'test/vm/run.sh');

/** One guest of a pair: its kernel, and the device it runs its side on. */
interface Side { kernel: string; dev: 'pfnic0' | 'rxe0' }

/** A free UDP port on the host's loopback: one guest's end of the link (run.sh --link). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/** The guest's set-up: its end of the link, its device on the link's NIC, rdma_cm's modules. */
function setup(side: Side, addr: string): string {
  const device = side.dev === 'pfnic0'
    ? 'test/vm/guest pfnic netdev=$(test/vm/guest nic-name)'
    : 'test/vm/guest rxe rxe0 $(test/vm/guest nic-name)';
  return `test/vm/guest link ${addr} && ${device} && modprobe rdma_ucm`;
}

interface GuestRun { status: number | null; out: string }

/**
 * Runs one guest of a pair, its stdout kept (the TAP of its side). @p options: more of
 * run.sh's; @p onLine: called with each line of its console as it comes.
 */
function runGuest(side: Side, link: string, command: string, timeout: number, options: string[] = [],
  onLine?: (line: string) => void): Promise<GuestRun> {
  return new Promise((resolve) => {
    const guest = spawn('bash', [runSh, '--timeout', String(timeout), '--link', link, ...options, side.kernel, '--',
      'bash', '-c', command], { cwd: top, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let seen = 0;
    guest.stdout.setEncoding('utf8');
    guest.stdout.on('data', (chunk: string) => {
      out += chunk;
      const end = out.lastIndexOf('\n');
      if (onLine && end >= seen) {
        for (const line of out.slice(seen, end).split(/\r?\n/)) onLine(line);
        seen = end + 1;
      }
    });
    guest.on('close', (status) => resolve({ status, out }));
  });
}

/** A case of test/guest/wire.sh as a side reported it: passed, its name, what it printed if not. */
interface CaseResult { ok: boolean; name: string; output: string }

/** The cases a side reported, by number. */
function cases(run: GuestRun): Map<number, CaseResult> {
  const found = new Map<number, CaseResult>();
  let last: CaseResult | undefined;
  for (const line of run.out.split(/\r?\n/)) {
    const m = /^(not )?ok (\d+) - (.*)$/.exec(line);
    if (m) {
      last = { ok: !m[1], name: m[3] ?? '', output: '' };
      found.set(Number(m[2]), last);
    } else if (last && !last.ok && line.startsWith('  ')) {
      last.output += `${line}\n`;
    }
  }
  return found;
}

/**
 * Why a failed case of a side is no fault of the transport, if it is not. On a lossy link,
 * ibv_*_pingpong has no goodbye: the side that ends first destroys its QP, and if the ACK of
 * the other side's last SEND was lost, that SEND fails after its retries with no one left to
 * answer. That is so only if the peer passed the same case, which it cannot without every one
 * of those SENDs.
 */
function excuse(own: CaseResult, peer: CaseResult | undefined, netem: string): string | undefined {
  if (netem && /pingpong/.test(own.name) && /transport retry counter exceeded/.test(own.output) && peer?.ok)
    return 'its last SEND\'s ACK was lost after the peer, which received every message, had gone (no goodbye in pingpong)';
  return undefined;
}

/** Each TAP line of a side's output as an assertion of this test, its comments as comments. */
function report(t: Test, name: string, run: GuestRun, peer?: GuestRun, netem = ''): void {
  // the guest's serial console ends its lines with CR LF
  const lines = run.out.split(/\r?\n/);
  const plan = lines.find((l) => /^1\.\.\d+/.test(l));
  t.ok(plan, `${name}: the guest printed its plan`, { output: plan ? undefined : run.out.slice(-3000) });
  const own = cases(run);
  const theirs = peer ? cases(peer) : new Map<number, CaseResult>();
  let results = 0;
  for (const line of lines) {
    const m = /^(not )?ok (\d+) - (.*)$/.exec(line);
    if (m) {
      results++;
      const n = Number(m[2]);
      const result = own.get(n);
      const why = result && !result.ok ? excuse(result, theirs.get(n), netem) : undefined;
      if (why) t.pass(`${name}: ${m[3]}: failed, but ${why}`);
      else t.ok(!m[1], `${name}: ${m[3]}`, { output: result?.output || undefined });
    } else if (line.startsWith('# ')) {
      t.comment(`${name}: ${line.slice(2)}`);
    }
  }
  const planned = Number(/^1\.\.(\d+)/.exec(plan ?? '')?.[1] ?? -1);
  t.equal(results, planned, `${name}: every case it planned reported`);
  t.equal(run.status, 0, `${name}: the guest ran to the end`);
}

/** What netem makes of the link in the lossy pairs, on each guest's side of it. */
const lossy = 'delay 2ms reorder 5% 50% loss 2% duplicate 1%';

/**
 * A pair: @p server and @p client run test/guest/wire.sh's list. @p netem: the link's loss.
 * @p unplug (a pfnic server): then pfnic_wire_traffic, the client's WRITEs and READs into the
 * server's ODP MR while the server's NUMA node 1 (a DIMM of its own) goes offline, and the
 * host removes the DIMM over QMP once the server says so.
 */
async function pair(t: Test, server: Side, client: Side, netem = '', unplug = false): Promise<void> {
  const [serverPort, clientPort] = [await freePort(), await freePort()];
  const timeout = 1200 * Math.max(timeScale(top, server.kernel), timeScale(top, client.kernel));
  const started = Date.now();
  const env = (netem ? `WIRE_NETEM='${netem}' ` : '') + (unplug ? 'WIRE_TRAFFIC=1 ' : '');
  const pick = process.env.PFNIC_WIRE_CASES ? ` '${process.env.PFNIC_WIRE_CASES}'` : '';
  let serverOptions: string[] = [];
  let removed: Promise<void> = Promise.resolve();
  let onLine: ((line: string) => void) | undefined;
  if (unplug) {
    const dir = mkdtempSync(path.join(tmpdir(), 'pfnic-wire-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const sock = path.join(dir, 'qmp.sock');
    serverOptions = ['--numa', '--dimm', '384M', '--qmp', sock];
    let asked = false;
    onLine = (line) => {
      if (asked || line.trim() !== 'ready-for-unplug') return;
      asked = true;
      removed = (async () => {
        const qmp = await Qmp.connect(sock);
        await qmp.execute('device_del', { id: 'dimm0' });
        qmp.close();
      })().catch((e: unknown) => { t.fail(`device_del of the server's DIMM: ${String(e)}`); });
    };
  }
  const [s, c] = await Promise.all([
    runGuest(server, `${serverPort}:${clientPort}:1`,
      `${setup(server, '10.0.0.1')} && ${env}${unplug ? 'WIRE_UNPLUG=1 ' : ''}exec test/guest/wire.sh server ${server.dev} 10.0.0.1 10.0.0.2${pick}`,
      timeout, serverOptions, onLine),
    runGuest(client, `${clientPort}:${serverPort}:2`,
      `${setup(client, '10.0.0.2')} && ${env}exec test/guest/wire.sh client ${client.dev} 10.0.0.2 10.0.0.1${pick}`, timeout),
  ]);
  await removed;
  report(t, `${server.dev} on ${server.kernel} (server)`, s, c, netem);
  report(t, `${client.dev} on ${client.kernel} (client)`, c, s, netem);
  t.comment(`the pair took ${Math.round((Date.now() - started) / 1000)} s`);
}

const kernels = edgeKernels(top);
const newest = kernels[kernels.length - 1];
const oldest = kernels[0];
if (!newest || !oldest) {
  t.pass('PFNIC_KERNELS leaves no release kernel');
} else {
  t.test(`pfnic0 (${newest}) serves rxe0 (${oldest}), then its memory goes offline and its DIMM away under rxe0's traffic`, (t) =>
    pair(t, { kernel: newest, dev: 'pfnic0' }, { kernel: oldest, dev: 'rxe0' }, '', true));
  t.test(`rxe0 (${oldest}) serves pfnic0 (${newest})`, (t) =>
    pair(t, { kernel: oldest, dev: 'rxe0' }, { kernel: newest, dev: 'pfnic0' }));
  t.test(`pfnic0 (${oldest}) serves pfnic0 (${newest}) on a lossy link, then its memory goes offline and its DIMM away under that traffic`, (t) =>
    pair(t, { kernel: oldest, dev: 'pfnic0' }, { kernel: newest, dev: 'pfnic0' }, lossy, true));
  if (fullTier()) {
    t.test(`pfnic0 (${oldest}) serves pfnic0 (${newest})`, (t) =>
      pair(t, { kernel: oldest, dev: 'pfnic0' }, { kernel: newest, dev: 'pfnic0' }));
    t.test(`rxe0 (${oldest}) serves pfnic0 (${newest}) on a lossy link`, (t) =>
      pair(t, { kernel: oldest, dev: 'rxe0' }, { kernel: newest, dev: 'pfnic0' }, lossy));
    for (const debug of debugKernels(top)) {
      t.test(`pfnic0 (${debug}) serves rxe0 (${newest})`, (t) =>
        pair(t, { kernel: debug, dev: 'pfnic0' }, { kernel: newest, dev: 'rxe0' }));
    }
  } else {
    t.comment('pfnic0 against pfnic0 on a clean link, rxe0 against pfnic0 on a lossy one, and pfnic0 on the debug kernel run in the full tier (PFNIC_TIER=full)');
  }
}
