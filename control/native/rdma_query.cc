// SPDX-License-Identifier: GPL-2.0-only
#include "rdma_query.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <memory>
#include <net/if.h>

#include "rdma_netlink.h"

namespace pfnic {

std::string errno_name(int err)
{
	switch (err) {
	case ENODEV: return "ENODEV";
	case ENOENT: return "ENOENT";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ENOMEM: return "ENOMEM";
	case ENOSYS: return "ENOSYS";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case EBUSY: return "EBUSY";
	case EINTR: return "EINTR";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EAGAIN: return "EAGAIN";
	case ENODATA: return "ENODATA";
	case EINVAL: return "EINVAL";
	case ENOTDIR: return "ENOTDIR";
	case EMFILE: return "EMFILE";
	case ENFILE: return "ENFILE";
	default: return "EIO";
	}
}

namespace {

[[noreturn]] void fail(int err, const std::string &what)
{
	throw QueryError(errno_name(err), what + ": " + std::strerror(err));
}

struct DeviceListDeleter {
	void operator()(ibv_device **list) const { ibv_free_device_list(list); }
};

struct ContextCloser {
	void operator()(ibv_context *ctx) const { ibv_close_device(ctx); }
};

GidInfo gid_info(const ibv_gid_entry &e)
{
	char text[INET6_ADDRSTRLEN] = "";
	char ifname[IF_NAMESIZE] = "";

	inet_ntop(AF_INET6, e.gid.raw, text, sizeof(text));
	if (e.ndev_ifindex && !if_indextoname(e.ndev_ifindex, ifname))
		ifname[0] = '\0';
	return GidInfo{e.gid_index, text, e.gid_type, e.ndev_ifindex, ifname};
}

// Fills each port's GIDs from the kernel's GID table: the whole table in one query, or,
// on kernels without that query, one GID at a time (empty slots fail and are skipped).
void fill_gids(ibv_context *ctx, std::vector<PortInfo> &ports)
{
	size_t table = 0;
	for (const PortInfo &p : ports)
		table += p.attr.gid_tbl_len;
	if (!table)
		return;

	std::vector<ibv_gid_entry> entries(table);
	const ssize_t n = ibv_query_gid_table(ctx, entries.data(), entries.size(), 0);
	if (n >= 0) {
		for (ssize_t i = 0; i < n; i++)
			for (PortInfo &p : ports)
				if (p.port == entries[i].port_num)
					p.gids.push_back(gid_info(entries[i]));
		return;
	}
	for (PortInfo &p : ports) {
		for (int i = 0; i < p.attr.gid_tbl_len; i++) {
			ibv_gid_entry e{};
			if (!ibv_query_gid_ex(ctx, p.port, i, &e, 0))
				p.gids.push_back(gid_info(e));
		}
	}
}

DeviceInfo query_one(ibv_device *dev)
{
	DeviceInfo info{};
	info.name = ibv_get_device_name(dev);
	info.index = ibv_get_device_index(dev);
	info.node_type = dev->node_type;
	info.transport_type = dev->transport_type;

	std::unique_ptr<ibv_context, ContextCloser> ctx(ibv_open_device(dev));
	if (!ctx)
		fail(errno ? errno : EIO, "cannot open " + info.name);
	info.num_comp_vectors = ctx->num_comp_vectors;

	std::memset(&info.attr, 0, sizeof(info.attr));
	int rc = ibv_query_device_ex(ctx.get(), nullptr, &info.attr);
	if (rc)
		fail(rc, "ibv_query_device_ex on " + info.name);

	for (uint32_t port = 1; port <= info.attr.orig_attr.phys_port_cnt; port++) {
		PortInfo p{};
		p.port = port;
		rc = ibv_query_port(ctx.get(), port, &p.attr);
		if (rc)
			fail(rc, "ibv_query_port " + std::to_string(port) + " on " + info.name);
		info.ports.push_back(std::move(p));
	}
	fill_gids(ctx.get(), info.ports);

	if (info.index >= 0) {
		const auto nl = netlink_ports(static_cast<uint32_t>(info.index));
		for (PortInfo &p : info.ports) {
			const auto it = nl.find(p.port);
			if (it == nl.end())
				continue;
			p.netdev_index = it->second.netdev_index;
			p.netdev_name = it->second.netdev_name;
		}
	}
	return info;
}

} // namespace

std::vector<DeviceInfo> query_devices(const std::optional<std::string> &only)
{
	int count = 0;
	errno = 0;
	std::unique_ptr<ibv_device *[], DeviceListDeleter> list(ibv_get_device_list(&count));
	std::vector<DeviceInfo> devices;

	if (!list) {
		// No RDMA subsystem at all (no uverbs in sysfs): there are simply no devices.
		if (errno == ENOSYS || errno == ENOENT || errno == 0) {
			if (only)
				throw QueryError("ENODEV", "no RDMA device named " + *only);
			return devices;
		}
		fail(errno, "ibv_get_device_list");
	}
	for (int i = 0; i < count; i++) {
		if (only && *only != ibv_get_device_name(list[i]))
			continue;
		devices.push_back(query_one(list[i]));
	}
	if (only && devices.empty())
		throw QueryError("ENODEV", "no RDMA device named " + *only);
	return devices;
}

} // namespace pfnic
