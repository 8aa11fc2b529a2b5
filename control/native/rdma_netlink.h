// SPDX-License-Identifier: GPL-2.0-only
//
// A reader of the kernel's RDMA netlink (NETLINK_RDMA, client RDMA_NL_NLDEV), through
// libmnl: what `rdma link`, `rdma dev`, `rdma resource show mr -dd` and `rdma statistic mr`
// show. Plain C++, safe to call from worker threads; each call opens its own socket.
#ifndef PFNIC_RDMA_NETLINK_H
#define PFNIC_RDMA_NETLINK_H

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace pfnic {

struct NetlinkPort {
	std::optional<uint32_t> netdev_index;
	std::optional<std::string> netdev_name;
};

// Port number -> netdev, for the device with kernel index `dev_index`. Returns an empty
// map when rdma netlink is not available (old kernel, no permission); never throws.
std::map<uint32_t, NetlinkPort> netlink_ports(uint32_t dev_index);

struct NetlinkDevice {
	uint32_t index;
	std::string name;
};

// One driver-specific detail (`rdma ... -dd` prints them with a drv_ prefix).
struct DriverDetail {
	std::string name;
	std::variant<std::string, int64_t, uint64_t> value;
	bool hex;  // the driver asks for hexadecimal printing
};

// One MR as the kernel's resource tracker describes it. Keys and iova are given to
// CAP_NET_ADMIN only; pid is absent for MRs of kernel users (kern_name is set instead).
struct NetlinkMr {
	uint32_t mrn = 0;
	std::optional<uint32_t> rkey, lkey, pdn, pid;
	std::optional<uint64_t> iova, length;
	std::optional<std::string> kern_name;
	std::vector<DriverDetail> details;
	// Per-MR counters (`rdma statistic mr`), in the driver's order; empty if it has none.
	std::vector<std::pair<std::string, uint64_t>> counters;
};

// The RDMA devices the kernel has (in this network namespace). Throws QueryError.
std::vector<NetlinkDevice> netlink_devices();

// The driver id (enum rdma_driver_id, or a value of an out-of-tree driver's own) that the
// verbs character device of the device with kernel index `dev_index` reports. Throws
// QueryError (ENODEV: no such device; EOPNOTSUPP: it has no verbs device).
uint32_t netlink_uverbs_driver_id(uint32_t dev_index);

// Whether the kernel has a device with index `dev_index`. Throws QueryError.
bool device_exists(uint32_t dev_index);

// The MRs of the device with kernel index `dev_index`, with their driver details and
// counters. Throws QueryError (ENODEV if the device went away meanwhile).
std::vector<NetlinkMr> netlink_mrs(uint32_t dev_index);

// MR `mrn` of the device with kernel index `dev_index`, as netlink_mrs() would list it,
// through the kernel's query of one MR by number (kernels without one: the list,
// filtered). Throws QueryError: ENOENT when there is no such MR, ENODEV when the device
// went away.
NetlinkMr netlink_mr(uint32_t dev_index, uint32_t mrn);

} // namespace pfnic

#endif
