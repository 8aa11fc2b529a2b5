// SPDX-License-Identifier: GPL-2.0-only
//
// pfnic's event channel (/dev/pfnic-events, record format in driver/uapi/pfnic-events.h),
// rdma netlink's device notifications and a device's verbs async events, each read on a
// thread of its own and handed to JavaScript through a thread-safe function.
#ifndef PFNIC_EVENT_CHANNEL_H
#define PFNIC_EVENT_CHANNEL_H

#include <napi.h>

namespace pfnic {

// Adds the EventWatch, DeviceMonitor and AsyncEventWatch classes to the addon's exports:
//   new EventWatch(path, callback(error, records)) starts reading; close() stops;
//   new DeviceMonitor(callback(error, changes)) and new AsyncEventWatch(device,
//   callback(error, events)) likewise.
// The reading thread never keeps the process alive, and never outlives the watch, its
// environment or close(). Records come in batches as plain objects; an error (the device
// cannot be opened, a read failed) comes once, with a code, and ends the watch.
void init_event_watch(Napi::Env env, Napi::Object exports);

} // namespace pfnic

#endif
