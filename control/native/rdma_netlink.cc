// SPDX-License-Identifier: GPL-2.0-only
#include "rdma_netlink.h"

#include <cstring>
#include <ctime>
#include <memory>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <rdma/rdma_netlink.h>

namespace pfnic {
namespace {

struct SocketCloser {
	void operator()(mnl_socket *s) const { mnl_socket_close(s); }
};

struct DumpState {
	std::map<uint32_t, NetlinkPort> *ports;
	const nlattr *attrs[RDMA_NLDEV_ATTR_MAX];
};

int collect_attr(const nlattr *attr, void *data)
{
	auto *state = static_cast<DumpState *>(data);
	const int type = mnl_attr_get_type(attr);

	// Attributes newer than our header are skipped, not trusted.
	if (type < 0 || type >= RDMA_NLDEV_ATTR_MAX)
		return MNL_CB_OK;
	switch (type) {
	case RDMA_NLDEV_ATTR_PORT_INDEX:
	case RDMA_NLDEV_ATTR_NDEV_INDEX:
		if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
			return MNL_CB_ERROR;
		break;
	case RDMA_NLDEV_ATTR_NDEV_NAME:
		if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) < 0)
			return MNL_CB_ERROR;
		break;
	default:
		break;
	}
	state->attrs[type] = attr;
	return MNL_CB_OK;
}

int collect_port(const nlmsghdr *nlh, void *data)
{
	auto *state = static_cast<DumpState *>(data);

	std::memset(state->attrs, 0, sizeof(state->attrs));
	if (mnl_attr_parse(nlh, 0, collect_attr, state) != MNL_CB_OK)
		return MNL_CB_ERROR;
	const nlattr *port = state->attrs[RDMA_NLDEV_ATTR_PORT_INDEX];
	if (!port)
		return MNL_CB_OK;
	NetlinkPort &entry = (*state->ports)[mnl_attr_get_u32(port)];
	if (const nlattr *a = state->attrs[RDMA_NLDEV_ATTR_NDEV_INDEX])
		entry.netdev_index = mnl_attr_get_u32(a);
	if (const nlattr *a = state->attrs[RDMA_NLDEV_ATTR_NDEV_NAME])
		entry.netdev_name = mnl_attr_get_str(a);
	return MNL_CB_OK;
}

} // namespace

std::map<uint32_t, NetlinkPort> netlink_ports(uint32_t dev_index)
{
	std::map<uint32_t, NetlinkPort> ports;
	std::unique_ptr<mnl_socket, SocketCloser> sock(mnl_socket_open(NETLINK_RDMA));

	if (!sock || mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) < 0)
		return ports;

	std::unique_ptr<char[]> buf(new char[MNL_SOCKET_BUFFER_SIZE]);
	nlmsghdr *nlh = mnl_nlmsg_put_header(buf.get());
	const uint32_t seq = static_cast<uint32_t>(time(nullptr));
	nlh->nlmsg_type = RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, RDMA_NLDEV_CMD_PORT_GET);
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	mnl_attr_put_u32(nlh, RDMA_NLDEV_ATTR_DEV_INDEX, dev_index);
	if (mnl_socket_sendto(sock.get(), nlh, nlh->nlmsg_len) < 0)
		return ports;

	DumpState state{&ports, {}};
	const unsigned int portid = mnl_socket_get_portid(sock.get());
	for (;;) {
		const ssize_t n = mnl_socket_recvfrom(sock.get(), buf.get(), MNL_SOCKET_BUFFER_SIZE);
		if (n <= 0)
			break;
		const int rc = mnl_cb_run(buf.get(), n, seq, portid, collect_port, &state);
		if (rc <= MNL_CB_STOP)
			break;
	}
	return ports;
}

} // namespace pfnic
