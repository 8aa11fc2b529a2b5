// The Debian packages (debian/): built from the tree with Debian's own tooling
// (debian/build-packages.sh), checked by lintian, the provider's bound on libibverbs tried
// against dpkg databases whose libibverbs is of another rdma-core release; then, in a guest of
// the oldest and of the newest release kernel (the full tier: every release kernel), installed,
// used with no environment variable, the control plane started as its unit says, and purged
// (test/guest/packages.sh). DKMS builds the modules for each guest's kernel here on the host
// (test/vm/dkms-prebuild.sh) and the package's postinst installs them: a build in the guest
// takes a quarter of an hour under TCG. The full tier builds in the guest too: at install on
// the oldest kernel, and through the headers' kernel hook, installed after the packages, on
// the newest.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

import { edgeKernels, fullTier, matrixKernels, newestKernel } from './vm/matrix.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(top, 'build/packages');
const packages = ['pfnic-dkms', 'pfnic-ibverbs-provider', 'libpfnic-regcache0', 'libpfnic-regcache-dev', 'pfnic-control'];

interface Ran { status: number; stdout: string; stderr: string }

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: options.cwd ?? top, env: options.env ?? process.env, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        resolve({ status: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
      });
  });
}

const tail = (text: string, lines: number): string => text.split('\n').slice(-lines).join('\n');
const debOf = (name: string): string | undefined =>
  readdirSync(out).filter((f) => f.startsWith(`${name}_`) && f.endsWith('.deb')).map((f) => path.join(out, f))[0];

const started = Date.now();
const built = await run('bash', [path.join(top, 'debian/build-packages.sh'), out]);
t.test('the packages build from the tree (debian/build-packages.sh: dpkg-buildpackage)', async (t) => {
  t.equal(built.status, 0, 'dpkg-buildpackage succeeds');
  if (built.status !== 0) t.comment(tail(built.stdout + built.stderr, 60));
  for (const p of packages) t.ok(existsSync(out) && debOf(p), `${p} is built`);
  t.comment(`building the packages took ${Math.round((Date.now() - started) / 1000)} s`);
});
if (built.status === 0) await checkPackages();

async function checkPackages(): Promise<void> {
  await t.test('lintian: no error or warning; the info tags left are overridden, each with its reason', async (t) => {
    const changes = readdirSync(out).find((f) => f.endsWith('.changes'));
    t.ok(changes, 'a .changes file lists the build');
    if (!changes) return;
    const lint = await run('lintian', ['--fail-on', 'error,warning', '--display-level', '>=pedantic', '--show-overrides',
      '--tag-display-limit', '0', path.join(out, changes)]);
    const lines = lint.stdout.split('\n').filter((l) => /^[EWIPXO]: /.test(l));
    t.equal(lint.status, 0, `lintian --fail-on error,warning passes (exit ${lint.status})`);
    const severe = lines.filter((l) => /^[EW]: /.test(l));
    t.same(severe, [], 'no error or warning tag');
    t.same(lines.filter((l) => /(unused|mismatched)-override/.test(l)), [], 'every override matches a tag');
    // a tally of the rest, by tag: overridden ones ("O:") carry their reason in the override file
    const tally = new Map<string, number>();
    for (const l of lines) {
      const key = l.replace(/ \[.*$/, '').replace(/ \(.*$/, '');
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
    for (const [tag, n] of tally) t.comment(`${tag} (${n})`);
    if (lint.status !== 0) t.comment(tail(lint.stderr, 20));
  });

  // A dpkg database that is this host's but for libibverbs1's version, in a root of its own:
  // dpkg must refuse to configure the provider there, naming the bound it breaks.
  await t.test('the provider refuses a libibverbs of another rdma-core release', async (t) => {
    const provider = debOf('pfnic-ibverbs-provider');
    if (!provider) return;
    const depends = (await run('dpkg-deb', ['-f', provider, 'Depends'])).stdout.trim();
    const installed = (await run('dpkg-query', ['-W', '-f', '${Version}', 'libibverbs1'])).stdout.trim();
    const series = installed.replace(/^\d+:/, '').split('.')[0]!;
    t.match(depends, new RegExp(`libibverbs1 \\(>= ${series}\\.[^)]*\\), libibverbs1 \\(<< ${Number(series) + 1}~\\)`),
      `it depends on libibverbs1 of the release series it was built against (${series}): ${depends}`);
    const status = readFileSync('/var/lib/dpkg/status', 'utf8');
    for (const version of [`${Number(series) - 1}.0-1`, `${Number(series) + 1}.0-1`]) {
      const root = mkdtempSync(path.join(os.tmpdir(), 'pfnic-dpkg-'));
      try {
        const admin = path.join(root, 'var/lib/dpkg');
        for (const d of ['info', 'updates', 'triggers']) mkdirSync(path.join(admin, d), { recursive: true });
        writeFileSync(path.join(admin, 'available'), '');
        writeFileSync(path.join(admin, 'status'), status.split('\n\n').map((para) =>
          /^Package: libibverbs1$/m.test(para) ? para.replace(/^Version: .*$/m, `Version: ${version}`) : para).join('\n\n'));
        const tried = await run('dpkg', ['--root', root, '--force-script-chrootless', '-i', provider]);
        const said = tried.stderr.split('\n').filter((l) => !/files list file for package/.test(l)).join('\n');
        t.not(tried.status, 0, `beside libibverbs1 ${version}, dpkg -i fails`);
        t.match(said, /dependency problems prevent configuration of pfnic-ibverbs-provider/, 'for its dependency on libibverbs1');
        t.match(said, new RegExp(`Version of libibverbs1:\\S+ on system is ${version.replace(/\./g, '\\.')}`), 'naming the version there');
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    }
  });

  // The newest kernel's guest has its headers installed only after the packages, in the full tier.
  const kernels = fullTier() ? matrixKernels(top, { debug: false }) : edgeKernels(top);
  const newest = newestKernel(top);
  for (const kernel of kernels) {
    await t.test(`kernel ${kernel}: the packages installed, used and purged in a guest`, async (t) => {
      const dkms = debOf('pfnic-dkms')!;
      const args = ['build/packages'];
      if (!fullTier()) {
        const tarball = path.join(out, 'prebuilt', kernel, 'pfnic.dkms.tar.gz');
        const pre = await run('bash', [path.join(top, 'test/vm/dkms-prebuild.sh'), dkms, kernel, tarball]);
        t.equal(pre.status, 0, `DKMS builds pfnic.ko and ummunotify.ko for ${kernel} (here, on the host)`);
        if (pre.status !== 0) {
          t.comment(tail(pre.stdout + pre.stderr, 40));
          return;
        }
        args.push('--prebuilt', path.relative(top, tarball));
      } else if (kernel === newest) {
        const tree = (await run('bash', ['-c', `. test/vm/lib.sh && kernel_root ${kernel}`])).stdout.trim();
        // the flags lib.sh builds a kernel's modules with when Debian built it with a newer gcc
        const flags = (await run('bash', ['-c', `. test/vm/lib.sh && [ "$(matrix_get ${kernel} source)" = archive ] && ` +
          'echo "${ARCHIVE_KERNEL_MAKE_FLAGS[*]}"'])).stdout.trim();
        args.push('--late-headers', tree);
        if (flags) args.push('--make-args', flags);
      }
      const begun = Date.now();
      await t.spawn('bash', [path.join(top, 'test/vm/run.sh'), '--dimm', '512M', '--timeout', fullTier() ? '3000' : '1800',
        kernel, '--', 'test/guest/packages.sh', ...args], { cwd: top }, `test/guest/packages.sh ${args.join(' ')}`);
      t.comment(`kernel ${kernel}: the packages in a guest took ${Math.round((Date.now() - begun) / 1000)} s`);
    });
  }
}
