// The host's memory blocks, as sysfs shows them (/sys/devices/system/memory), and the
// actions that take one offline or bring it online. Reads go through the file system's
// thread pool; state changes through the addon, on a thread of its own with a time limit:
// an offlining that takes seconds, or would never end, never holds up the event loop nor
// the thread pool. One change per block at a time, and a few at most waiting.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

import { nativeBinding } from './native.js';
import type { MemoryBlock } from './schema.js';
import { hex } from './verbs-names.js';

const memoryDir = '/sys/devices/system/memory';

/** A block this host does not have. */
export class BlockNotFoundError extends Error {
  readonly code = 'ENOENT';
  constructor(readonly block: number) {
    super(`no memory block ${block}`);
    this.name = 'BlockNotFoundError';
  }
}

/**
 * A block's state was not changed. code is the kernel's errno name (EBUSY, ETIMEDOUT, ...),
 * or the addon's: EALREADY, a change of that block is already waiting or in progress;
 * EAGAIN, as many changes are waiting as may (memory block writes are not known to give these two).
 */
export class BlockStateError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = 'BlockStateError';
  }
}

async function readText(file: string): Promise<string | null> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    return null;
  }
}

let blockSize: bigint | undefined;

async function blockSizeBytes(): Promise<bigint> {
  if (blockSize === undefined) {
    const text = await readText(path.join(memoryDir, 'block_size_bytes'));
    blockSize = text === null ? 0n : BigInt(`0x${text}`);
  }
  return blockSize;
}

async function readBlock(block: number): Promise<MemoryBlock | null> {
  const dir = path.join(memoryDir, `memory${block}`);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return null;
  }
  const [state, zones, removable] = await Promise.all([
    readText(path.join(dir, 'state')), readText(path.join(dir, 'valid_zones')),
    readText(path.join(dir, 'removable')),
  ]);
  const node = entries.map((e) => /^node(\d+)$/.exec(e)).find((m) => m !== null);
  const online = state === 'online';
  const zoneList = zones === null || zones === 'none' ? [] : zones.split(/\s+/);
  const size = await blockSizeBytes();
  return {
    block,
    state: state ?? 'unknown',
    online,
    zone: online ? (zoneList[0] ?? null) : null,
    valid_zones: online ? [] : zoneList,
    node: node ? Number(node[1]) : null,
    removable: removable === null ? null : removable === '1',
    start: hex(BigInt(block) * size),
    size: hex(size),
  };
}

/** Every memory block of this host, by number; [] where sysfs has none. */
export async function listBlocks(): Promise<MemoryBlock[]> {
  let entries: string[];
  try {
    entries = await readdir(memoryDir);
  } catch {
    return [];
  }
  const numbers = entries.map((e) => /^memory(\d+)$/.exec(e)).filter((m) => m !== null)
    .map((m) => Number(m[1])).sort((a, b) => a - b);
  const blocks = await Promise.all(numbers.map(readBlock));
  return blocks.filter((b): b is MemoryBlock => b !== null);
}

/** One block; BlockNotFoundError if the host has no such block. */
export async function getBlock(block: number): Promise<MemoryBlock> {
  const found = await readBlock(block);
  if (!found) throw new BlockNotFoundError(block);
  return found;
}

/** What can be asked of a block. online: into the zone the kernel picks first. */
export type BlockAction = 'offline' | 'online' | 'online_movable' | 'online_kernel';

const why: Record<string, string> = {
  EBUSY: 'pages in it cannot be moved out (pinned by an MR or another driver: see the MRs\' pinned_blocks), or the kernel uses it',
  ETIMEDOUT: 'its pages did not all move out in time (pinned by an MR or another driver? see the MRs\' pinned_blocks); the kernel stopped trying and left it as it was',
  EINVAL: 'the kernel does not allow that for this block (its zone, or its state)',
  ENOMEM: 'there is no free memory to move its pages to',
  EPERM: 'this server may not change memory blocks (it needs CAP_SYS_ADMIN)',
  EACCES: 'this server may not change memory blocks (it needs CAP_SYS_ADMIN)',
  EALREADY: 'another request is changing its state right now; ask again once that is done',
  EAGAIN: 'this server has as many memory block changes waiting as it takes; try again later',
};

/** How long a block may take to go offline or online before the kernel is told to stop. */
export const BLOCK_STATE_TIMEOUT_MS = 20_000;

/**
 * Takes a block offline or brings it online: waits until the kernel is done (offlining
 * migrates every page out first) or @p timeoutMs passed (then the kernel stops and leaves
 * the block as it was), and returns the block as it is then. BlockNotFoundError, or
 * BlockStateError with the kernel's errno name (ETIMEDOUT for the time limit) and what it
 * means.
 */
export async function setBlockState(block: number, action: BlockAction,
  timeoutMs = BLOCK_STATE_TIMEOUT_MS): Promise<MemoryBlock> {
  await getBlock(block);
  try {
    await nativeBinding().writeBlockState(block, action, timeoutMs);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const name = typeof code === 'string' ? code : 'EIO';
    throw new BlockStateError(`memory block ${block} could not go ${action === 'offline' ? 'offline' : 'online'}: ` +
      `${why[name] ?? (err instanceof Error ? err.message : name)}`, name);
  }
  return getBlock(block);
}
