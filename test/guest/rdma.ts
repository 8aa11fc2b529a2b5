// The kernel's own view of RDMA objects, through iproute2's rdma tool: what the guest tests
// check the control plane against.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** `rdma -j ...` output; numbers too big for a double are kept as text. */
export async function rdmaJson(args: string[]): Promise<Record<string, unknown>[]> {
  const { stdout } = await run('rdma', ['-j', ...args], { maxBuffer: 16 << 20 });
  return JSON.parse(stdout.replace(/:(\d{16,})([,}])/g, ':"$1"$2')) as Record<string, unknown>[];
}
