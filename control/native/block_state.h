// SPDX-License-Identifier: GPL-2.0-only
//
// Memory block state changes, on a thread of their own. An offlining can take as long as
// its time limit (up to an hour): on libuv's pool, a few of them would hold every worker
// thread, and with them every file system call of the process. Here one thread takes the
// changes in turn, one per block at a time, with a bounded number waiting.
#ifndef PFNIC_BLOCK_STATE_H
#define PFNIC_BLOCK_STATE_H

#include <napi.h>

namespace pfnic {

// How many changes may be waiting or in progress at once; more are refused (EAGAIN).
constexpr unsigned int kMaxBlockChanges = 4;

// Adds to the addon's exports:
//   writeBlockState(block, action, timeoutMs): Promise<void>. action is offline, online,
//     online_movable or online_kernel; a write still going after timeoutMs is interrupted
//     (ETIMEDOUT) and the kernel leaves the block as it was. Rejects with code EALREADY
//     while a change of the same block is waiting or in progress, and with EAGAIN while
//     blockStateLimit changes are; otherwise with the errno name of what failed.
//   blockStateLimit: kMaxBlockChanges.
// The thread starts with the first change and stops with the environment: a write in
// progress then is interrupted, as its time limit would.
void init_block_state(Napi::Env env, Napi::Object exports);

} // namespace pfnic

#endif
