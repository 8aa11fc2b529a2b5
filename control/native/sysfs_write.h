// SPDX-License-Identifier: GPL-2.0-only
//
// Writing a memory block's sysfs state, with a time limit. Offlining a block whose pages
// cannot move (pinned by an MR, say) makes the kernel retry until the writer gets a signal:
// a plain write would never return.
#ifndef PFNIC_SYSFS_WRITE_H
#define PFNIC_SYSFS_WRITE_H

#include <string>

namespace pfnic {

// The signal that interrupts a block state write in progress when sent to its thread
// (pthread_kill): the write then fails as if its time ran out. The first call installs
// the signal's handler; call it before sending the signal, or the signal kills the process.
int block_write_interrupt_signal();

// Writes `action` ("offline", "online", "online_movable", "online_kernel") to
// /sys/devices/system/memory/memory<block>/state, interrupting the write after
// `timeout_ms`. Blocks the calling (worker) thread. Returns 0, ETIMEDOUT when interrupted
// (the kernel then leaves the block as it was), or the errno of what failed.
int write_block_state(unsigned int block, const std::string &action, unsigned int timeout_ms);

} // namespace pfnic

#endif
