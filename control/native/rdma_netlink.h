// SPDX-License-Identifier: GPL-2.0-only
//
// A minimal reader of the kernel's RDMA netlink (NETLINK_RDMA, client RDMA_NL_NLDEV):
// what `rdma link` shows for the ports of one device.
#ifndef PFNIC_RDMA_NETLINK_H
#define PFNIC_RDMA_NETLINK_H

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace pfnic {

struct NetlinkPort {
	std::optional<uint32_t> netdev_index;
	std::optional<std::string> netdev_name;
};

// Port number -> netdev, for the device with kernel index `dev_index`. Returns an empty
// map when rdma netlink is not available (old kernel, no permission); never throws.
std::map<uint32_t, NetlinkPort> netlink_ports(uint32_t dev_index);

} // namespace pfnic

#endif
