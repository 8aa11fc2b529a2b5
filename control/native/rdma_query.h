// SPDX-License-Identifier: GPL-2.0-only
//
// What the control plane learns about RDMA devices, gathered with plain C/C++ calls
// (libibverbs and rdma netlink) so that it can run on a worker thread, away from N-API.
#ifndef PFNIC_RDMA_QUERY_H
#define PFNIC_RDMA_QUERY_H

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <infiniband/verbs.h>

namespace pfnic {

// An error that carries an errno-style code name ("ENODEV") for JavaScript.
class QueryError : public std::runtime_error {
public:
	QueryError(std::string code, const std::string &message)
		: std::runtime_error(message), code_(std::move(code)) {}
	const std::string &code() const { return code_; }

private:
	std::string code_;
};

// The name of an errno value ("ENODEV"), "EIO" for those the control plane tells apart from
// none.
std::string errno_name(int err);

struct GidInfo {
	uint32_t index;
	std::string gid;      // inet_ntop(AF_INET6) form, as ibv_devinfo prints it
	uint32_t type;        // enum ibv_gid_type
	uint32_t ndev_index;  // 0 when the GID has no netdev
	std::string ndev_name;
};

struct PortInfo {
	uint32_t port;
	ibv_port_attr attr;
	// From rdma netlink, as `rdma link` shows them; absent when the kernel says nothing.
	std::optional<uint32_t> netdev_index;
	std::optional<std::string> netdev_name;
	std::vector<GidInfo> gids;
};

struct DeviceInfo {
	std::string name;
	int index;  // kernel device index; -1 when the kernel cannot tell
	ibv_node_type node_type;
	ibv_transport_type transport_type;
	ibv_device_attr_ex attr;
	int num_comp_vectors;
	std::vector<PortInfo> ports;
};

// Lists the RDMA devices libibverbs sees and queries each, or only the one named
// `only` when it is set. Throws QueryError (code ENODEV when `only` names no device).
std::vector<DeviceInfo> query_devices(const std::optional<std::string> &only);

// The longest device name the kernel accepts (IB_DEVICE_NAME_MAX less the NUL).
constexpr size_t kMaxDeviceName = 63;

} // namespace pfnic

#endif
