// SPDX-License-Identifier: GPL-2.0-only
//
// Reading sysfs counter directories (a port's counters/ and hw_counters/), a file a counter,
// on a worker thread: through Node's file system calls each file was four trips through its
// thread pool, and a scrape of two devices a tenth of a second in a guest.
#ifndef PFNIC_COUNTER_DIRS_H
#define PFNIC_COUNTER_DIRS_H

#include <napi.h>

namespace pfnic {

// Adds readCounterDirs(dirs: string[]): Promise<(Array<[string, number]> | null)[]> to
// `exports`: for each directory, the name and value of each file holding a decimal number
// (files that hold something else, or that the device cannot read now, are left out), or
// null when there is no such directory. Rejects with the errno name of any other failure.
void init_counter_dirs(Napi::Env env, Napi::Object exports);

} // namespace pfnic

#endif
