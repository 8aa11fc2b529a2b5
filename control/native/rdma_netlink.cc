// SPDX-License-Identifier: GPL-2.0-only
#include "rdma_netlink.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <rdma/rdma_netlink.h>

#include "rdma_query.h"

namespace pfnic {
namespace {

struct SocketCloser {
	void operator()(mnl_socket *s) const { mnl_socket_close(s); }
};

// A message's (or a nest's) attributes by type; types newer than our header are skipped.
using AttrTable = std::array<const nlattr *, RDMA_NLDEV_ATTR_MAX>;

int collect_attr(const nlattr *attr, void *data)
{
	auto *table = static_cast<AttrTable *>(data);
	const int type = mnl_attr_get_type(attr);

	if (type >= 0 && type < RDMA_NLDEV_ATTR_MAX)
		(*table)[type] = attr;
	return MNL_CB_OK;
}

AttrTable parse_message(const nlmsghdr *nlh)
{
	AttrTable table{};
	mnl_attr_parse(nlh, 0, collect_attr, &table);
	return table;
}

AttrTable parse_nest(const nlattr *nest)
{
	AttrTable table{};
	mnl_attr_parse_nested(nest, collect_attr, &table);
	return table;
}

// Typed reads that check the attribute's size first: a malformed one reads as absent.
std::optional<uint32_t> get_u32(const AttrTable &t, int type)
{
	if (!t[type] || mnl_attr_validate(t[type], MNL_TYPE_U32) < 0)
		return std::nullopt;
	return mnl_attr_get_u32(t[type]);
}

std::optional<uint64_t> get_u64(const AttrTable &t, int type)
{
	if (!t[type] || mnl_attr_validate(t[type], MNL_TYPE_U64) < 0)
		return std::nullopt;
	return mnl_attr_get_u64(t[type]);
}

std::optional<std::string> get_str(const nlattr *a)
{
	if (!a || mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
		return std::nullopt;
	return std::string(mnl_attr_get_str(a));
}

std::optional<std::string> get_str(const AttrTable &t, int type)
{
	return get_str(t[type]);
}

// Calls fn for each attribute nested in `nest` (libmnl's iteration macro is C-only).
template <typename Fn> void for_each_nested(const nlattr *nest, Fn fn)
{
	const auto *first = static_cast<const nlattr *>(mnl_attr_get_payload(nest));
	const char *end = reinterpret_cast<const char *>(first) + mnl_attr_get_payload_len(nest);

	for (const nlattr *a = first; mnl_attr_ok(a, static_cast<int>(end - reinterpret_cast<const char *>(a)));
	     a = mnl_attr_next(a))
		fn(a);
}

using MessageFn = std::function<void(const nlmsghdr *)>;

int run_message(const nlmsghdr *nlh, void *data)
{
	(*static_cast<MessageFn *>(data))(nlh);
	return MNL_CB_OK;
}

// Sends one NLDEV request (NLM_F_DUMP in `flags` for a dump; its attributes put by `put`)
// and hands every answer to `each`. Returns 0, or the errno of what failed (the kernel's
// answer included).
int request(uint16_t command, uint16_t flags, const std::function<void(nlmsghdr *)> &put,
	    MessageFn each)
{
	std::unique_ptr<mnl_socket, SocketCloser> sock(mnl_socket_open(NETLINK_RDMA));

	if (!sock || mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) < 0)
		return errno ? errno : EIO;
	// a dump answers in messages of up to a page or so each; leave room for big ones
	const size_t size = MNL_SOCKET_BUFFER_SIZE * 4;
	std::unique_ptr<char[]> buf(new char[size]);
	nlmsghdr *nlh = mnl_nlmsg_put_header(buf.get());
	const uint32_t seq = static_cast<uint32_t>(time(nullptr));
	nlh->nlmsg_type = RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, command);
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = seq;
	put(nlh);
	if (mnl_socket_sendto(sock.get(), nlh, nlh->nlmsg_len) < 0)
		return errno;

	const unsigned int portid = mnl_socket_get_portid(sock.get());
	for (;;) {
		const ssize_t n = mnl_socket_recvfrom(sock.get(), buf.get(), size);
		if (n < 0)
			return errno;
		if (n == 0)
			return EIO;
		errno = 0;
		const int rc = mnl_cb_run(buf.get(), n, seq, portid, run_message, &each);
		if (rc == MNL_CB_ERROR)
			return errno ? errno : EIO;
		if (rc == MNL_CB_STOP)
			return 0;
	}
}

int dump(uint16_t command, const std::function<void(nlmsghdr *)> &put, MessageFn each)
{
	return request(command, NLM_F_DUMP, put, std::move(each));
}

[[noreturn]] void fail(int err, const std::string &what)
{
	throw QueryError(errno_name(err), "rdma netlink: " + what + ": " + std::strerror(err));
}

// The driver's details, a flat run of name, [print type,] value attributes.
std::vector<DriverDetail> driver_details(const nlattr *table)
{
	std::vector<DriverDetail> out;
	std::optional<std::string> name;
	bool hex = false;

	for_each_nested(table, [&](const nlattr *a) {
		const int type = mnl_attr_get_type(a);
		std::variant<std::string, int64_t, uint64_t> value;

		if (type == RDMA_NLDEV_ATTR_DRIVER_PRINT_TYPE) {
			hex = mnl_attr_validate(a, MNL_TYPE_U8) == 0 &&
			      mnl_attr_get_u8(a) == RDMA_NLDEV_PRINT_TYPE_HEX;
			return;
		}
		if (type == RDMA_NLDEV_ATTR_DRIVER_STRING && !name) {
			name = get_str(a);
			return;
		}
		if (!name)
			return;  // a value without a name: skipped, not guessed at
		if (type == RDMA_NLDEV_ATTR_DRIVER_STRING && get_str(a))
			value = *get_str(a);
		else if (type == RDMA_NLDEV_ATTR_DRIVER_S32 && mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			value = static_cast<int64_t>(static_cast<int32_t>(mnl_attr_get_u32(a)));
		else if (type == RDMA_NLDEV_ATTR_DRIVER_U32 && mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			value = static_cast<uint64_t>(mnl_attr_get_u32(a));
		else if (type == RDMA_NLDEV_ATTR_DRIVER_S64 && mnl_attr_validate(a, MNL_TYPE_U64) == 0)
			value = static_cast<int64_t>(mnl_attr_get_u64(a));
		else if (type == RDMA_NLDEV_ATTR_DRIVER_U64 && mnl_attr_validate(a, MNL_TYPE_U64) == 0)
			value = mnl_attr_get_u64(a);
		else
			return;
		out.push_back(DriverDetail{*name, value, hex});
		name.reset();
		hex = false;
	});
	return out;
}

std::vector<std::pair<std::string, uint64_t>> hw_counters(const nlattr *table)
{
	std::vector<std::pair<std::string, uint64_t>> out;

	for_each_nested(table, [&](const nlattr *entry) {
		const AttrTable t = parse_nest(entry);
		const auto name = get_str(t, RDMA_NLDEV_ATTR_STAT_HWCOUNTER_ENTRY_NAME);
		const auto value = get_u64(t, RDMA_NLDEV_ATTR_STAT_HWCOUNTER_ENTRY_VALUE);
		if (name && value)
			out.emplace_back(*name, *value);
	});
	return out;
}

// Calls fn with the attributes of each MR entry of a RES_MR_GET or STAT_GET answer.
template <typename Fn> void for_each_mr_entry(const nlmsghdr *nlh, Fn fn)
{
	const AttrTable msg = parse_message(nlh);
	if (msg[RDMA_NLDEV_ATTR_RES_MR])
		for_each_nested(msg[RDMA_NLDEV_ATTR_RES_MR], [&](const nlattr *e) { fn(parse_nest(e)); });
}

// An MR from the attributes of its entry (a dump) or of the whole answer (a single
// query); nullopt without an MR number.
std::optional<NetlinkMr> mr_from(const AttrTable &t)
{
	const auto mrn = get_u32(t, RDMA_NLDEV_ATTR_RES_MRN);
	if (!mrn)
		return std::nullopt;
	NetlinkMr mr;
	mr.mrn = *mrn;
	mr.rkey = get_u32(t, RDMA_NLDEV_ATTR_RES_RKEY);
	mr.lkey = get_u32(t, RDMA_NLDEV_ATTR_RES_LKEY);
	mr.pdn = get_u32(t, RDMA_NLDEV_ATTR_RES_PDN);
	mr.pid = get_u32(t, RDMA_NLDEV_ATTR_RES_PID);
	mr.iova = get_u64(t, RDMA_NLDEV_ATTR_RES_IOVA);
	mr.length = get_u64(t, RDMA_NLDEV_ATTR_RES_MRLEN);
	mr.kern_name = get_str(t, RDMA_NLDEV_ATTR_RES_KERN_NAME);
	if (t[RDMA_NLDEV_ATTR_DRIVER])
		mr.details = driver_details(t[RDMA_NLDEV_ATTR_DRIVER]);
	return mr;
}

} // namespace

bool device_exists(uint32_t dev_index)
{
	for (const NetlinkDevice &d : netlink_devices())
		if (d.index == dev_index)
			return true;
	return false;
}

std::map<uint32_t, NetlinkPort> netlink_ports(uint32_t dev_index)
{
	std::map<uint32_t, NetlinkPort> ports;

	dump(RDMA_NLDEV_CMD_PORT_GET,
	     [&](nlmsghdr *nlh) { mnl_attr_put_u32(nlh, RDMA_NLDEV_ATTR_DEV_INDEX, dev_index); },
	     [&](const nlmsghdr *nlh) {
		     const AttrTable t = parse_message(nlh);
		     const auto port = get_u32(t, RDMA_NLDEV_ATTR_PORT_INDEX);
		     if (!port)
			     return;
		     NetlinkPort &entry = ports[*port];
		     entry.netdev_index = get_u32(t, RDMA_NLDEV_ATTR_NDEV_INDEX);
		     entry.netdev_name = get_str(t, RDMA_NLDEV_ATTR_NDEV_NAME);
	     });
	return ports;
}

std::vector<NetlinkDevice> netlink_devices()
{
	std::vector<NetlinkDevice> devices;
	const int err = dump(RDMA_NLDEV_CMD_GET, [](nlmsghdr *) {}, [&](const nlmsghdr *nlh) {
		const AttrTable t = parse_message(nlh);
		const auto index = get_u32(t, RDMA_NLDEV_ATTR_DEV_INDEX);
		const auto name = get_str(t, RDMA_NLDEV_ATTR_DEV_NAME);
		if (index && name)
			devices.push_back(NetlinkDevice{*index, *name});
	});
	// a kernel without the RDMA core (ib_core not loaded) has no RDMA netlink: no devices
	if (err && err != EPROTONOSUPPORT)
		fail(err, "listing devices");
	return devices;
}

uint32_t netlink_uverbs_driver_id(uint32_t dev_index)
{
	std::optional<uint32_t> id;
	const int err = request(RDMA_NLDEV_CMD_GET_CHARDEV, 0,
		[&](nlmsghdr *nlh) {
			mnl_attr_put_u32(nlh, RDMA_NLDEV_ATTR_DEV_INDEX, dev_index);
			mnl_attr_put_strz(nlh, RDMA_NLDEV_ATTR_CHARDEV_TYPE, "uverbs");
		},
		[&](const nlmsghdr *nlh) {
			const AttrTable t = parse_message(nlh);
			const nlattr *a = t[RDMA_NLDEV_ATTR_UVERBS_DRIVER_ID];
			// the kernel puts it as a u32; the header's comment says u64
			if (a && mnl_attr_get_payload_len(a) == sizeof(uint32_t))
				id = mnl_attr_get_u32(a);
			else if (a && mnl_attr_get_payload_len(a) == sizeof(uint64_t))
				id = static_cast<uint32_t>(mnl_attr_get_u64(a));
		});
	if (err)
		fail(err, "the verbs character device of device " + std::to_string(dev_index));
	if (!id)
		fail(ENODATA, "no driver id for device " + std::to_string(dev_index));
	return *id;
}

std::vector<NetlinkMr> netlink_mrs(uint32_t dev_index)
{
	std::vector<NetlinkMr> mrs;
	std::map<uint32_t, size_t> by_mrn;

	int err = dump(RDMA_NLDEV_CMD_RES_MR_GET,
		       [&](nlmsghdr *nlh) {
			       mnl_attr_put_u32(nlh, RDMA_NLDEV_ATTR_DEV_INDEX, dev_index);
			       mnl_attr_put_u8(nlh, RDMA_NLDEV_ATTR_DRIVER_DETAILS, 1);
		       },
		       [&](const nlmsghdr *nlh) {
			       for_each_mr_entry(nlh, [&](const AttrTable &t) {
				       std::optional<NetlinkMr> mr = mr_from(t);
				       if (!mr)
					       return;
				       by_mrn[mr->mrn] = mrs.size();
				       mrs.push_back(std::move(*mr));
			       });
		       });
	if (err)
		fail(err, "listing the MRs of device " + std::to_string(dev_index));

	// Counters come from another dump; a kernel or device without them leaves them empty.
	err = dump(RDMA_NLDEV_CMD_STAT_GET,
		   [&](nlmsghdr *nlh) {
			   mnl_attr_put_u32(nlh, RDMA_NLDEV_ATTR_DEV_INDEX, dev_index);
			   mnl_attr_put_u32(nlh, RDMA_NLDEV_ATTR_STAT_RES, RDMA_NLDEV_ATTR_RES_MR);
		   },
		   [&](const nlmsghdr *nlh) {
			   for_each_mr_entry(nlh, [&](const AttrTable &t) {
				   const auto mrn = get_u32(t, RDMA_NLDEV_ATTR_RES_MRN);
				   const auto at = mrn ? by_mrn.find(*mrn) : by_mrn.end();
				   if (at != by_mrn.end() && t[RDMA_NLDEV_ATTR_STAT_HWCOUNTERS])
					   mrs[at->second].counters =
						   hw_counters(t[RDMA_NLDEV_ATTR_STAT_HWCOUNTERS]);
			   });
		   });
	if (err && err != EOPNOTSUPP && err != EINVAL)
		fail(err, "reading the MR counters of device " + std::to_string(dev_index));
	return mrs;
}

NetlinkMr netlink_mr(uint32_t dev_index, uint32_t mrn)
{
	const std::string what = "MR " + std::to_string(mrn) + " of device " + std::to_string(dev_index);
	const auto put_mrn = [&](nlmsghdr *nlh) {
		mnl_attr_put_u32(nlh, RDMA_NLDEV_ATTR_DEV_INDEX, dev_index);
		mnl_attr_put_u32(nlh, RDMA_NLDEV_ATTR_RES_MRN, mrn);
	};
	std::optional<NetlinkMr> found;

	// Without NLM_F_DUMP the kernel looks the MR up by number (res_get_common_doit) and
	// answers with its attributes at the top of one message, not nested in a table. It
	// gives the driver's details unasked, so RDMA_NLDEV_ATTR_DRIVER_DETAILS is not sent (a
	// kernel older than that attribute could refuse the request for it).
	int err = request(RDMA_NLDEV_CMD_RES_MR_GET, 0, put_mrn, [&](const nlmsghdr *nlh) {
		const AttrTable t = parse_message(nlh);
		if (get_u32(t, RDMA_NLDEV_ATTR_RES_MRN) == mrn)
			found = mr_from(t);
	});
	if (err == ENOENT)
		fail(ENOENT, "no " + what);
	if (err == EINVAL || err == EOPNOTSUPP) {
		// EINVAL: the device went away, or a kernel whose rdma netlink has no single-MR
		// query. Tell the two apart, then take the slow way: the whole list, filtered.
		if (!device_exists(dev_index))
			fail(ENODEV, "no device " + std::to_string(dev_index));
		for (NetlinkMr &mr : netlink_mrs(dev_index))
			if (mr.mrn == mrn)
				return std::move(mr);
		fail(ENOENT, "no " + what);
	}
	if (err)
		fail(err, "reading " + what);
	if (!found)
		fail(ENODATA, "the kernel's answer for " + what + " does not describe it");

	// Its counters, likewise by number; a kernel or driver without MR counters leaves them
	// empty (EINVAL, EOPNOTSUPP), as the listing does.
	err = request(RDMA_NLDEV_CMD_STAT_GET, 0,
		      [&](nlmsghdr *nlh) {
			      put_mrn(nlh);
			      mnl_attr_put_u32(nlh, RDMA_NLDEV_ATTR_STAT_RES, RDMA_NLDEV_ATTR_RES_MR);
		      },
		      [&](const nlmsghdr *nlh) {
			      const AttrTable t = parse_message(nlh);
			      if (get_u32(t, RDMA_NLDEV_ATTR_RES_MRN) == mrn &&
				  t[RDMA_NLDEV_ATTR_STAT_HWCOUNTERS])
				      found->counters = hw_counters(t[RDMA_NLDEV_ATTR_STAT_HWCOUNTERS]);
		      });
	if (err == ENOENT)
		fail(ENOENT, "no " + what + " (it went away meanwhile)");
	if (err && err != EOPNOTSUPP && err != EINVAL)
		fail(err, "reading the counters of " + what);
	return std::move(*found);
}

} // namespace pfnic
