// SPDX-License-Identifier: GPL-2.0-only
#include "event_channel.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <infiniband/verbs.h>
#include <libmnl/libmnl.h>
#include <linux/types.h>
#include <rdma/ib_user_ioctl_verbs.h>
#include <rdma/rdma_netlink.h>

#include "../../driver/uapi/pfnic-abi.h"
#include "../../driver/uapi/pfnic-events.h"
#include "rdma_netlink.h"
#include "rdma_query.h"

namespace pfnic {
namespace {

// Records one read() takes; the kernel keeps the rest in the reader's ring.
constexpr size_t kBatch = 64;

// rdma netlink's device notifications (6.12 on): the multicast group, the command and the
// attribute that says what happened. Older headers (bookworm's) lack them; the values are
// the kernel's ABI.
constexpr int kNotifyGroup = 4;           // RDMA_NL_GROUP_NOTIFY
constexpr uint16_t kCmdMonitor = 28;      // RDMA_NLDEV_CMD_MONITOR
constexpr uint16_t kAttrEventType = 102;  // RDMA_NLDEV_ATTR_EVENT_TYPE (u8)

// A device registered, unregistered, renamed, or a netdev attached to or detached from it.
struct DeviceChange {
	uint8_t event = 0;
	std::optional<uint32_t> index, port, netdev_index;
	std::optional<std::string> name, netdev;
};

// A verbs async event of a device (ibv_get_async_event). The control plane creates no QP,
// CQ or SRQ, so only the device's and its ports' events can come.
struct AsyncEvent {
	uint32_t code = 0;  // enum ibv_event_type
	std::optional<uint32_t> port;
};

// What a thread hands over: records, device changes or async events (none: "the source is
// open"), or the error that ended it.
struct Delivery {
	std::vector<pfnic_event> records;
	std::vector<DeviceChange> changes;
	std::vector<AsyncEvent> async;
	int error = 0;
	std::string what;
};

Napi::Value u64(Napi::Env env, uint64_t v)
{
	return Napi::BigInt::New(env, v);
}

Napi::Object change_object(Napi::Env env, const DeviceChange &c)
{
	Napi::Object o = Napi::Object::New(env);
	o.Set("event", c.event);
	if (c.index)
		o.Set("index", *c.index);
	if (c.name)
		o.Set("device", *c.name);
	if (c.port)
		o.Set("port", *c.port);
	if (c.netdev_index)
		o.Set("netdev_index", *c.netdev_index);
	if (c.netdev)
		o.Set("netdev", *c.netdev);
	return o;
}

Napi::Object async_object(Napi::Env env, const AsyncEvent &a)
{
	Napi::Object o = Napi::Object::New(env);
	o.Set("event", a.code);
	if (a.port)
		o.Set("port", *a.port);
	return o;
}

Napi::Object record_object(Napi::Env env, const pfnic_event &r)
{
	Napi::Object o = Napi::Object::New(env);
	o.Set("type", r.type);
	o.Set("reason", r.reason);
	o.Set("flags", r.flags);
	o.Set("mrn", r.mrn);
	o.Set("lkey", r.lkey);
	o.Set("seq", u64(env, r.seq));
	o.Set("lost", u64(env, r.lost));
	o.Set("time_ns", u64(env, r.time_ns));
	o.Set("realtime_ns", u64(env, r.realtime_ns));
	o.Set("start", u64(env, r.start));
	o.Set("end", u64(env, r.end));
	o.Set("pages", u64(env, r.pages));
	o.Set("pid", r.pid);
	o.Set("node", r.node);
	o.Set("block", Napi::BigInt::New(env, static_cast<int64_t>(r.block)));
	o.Set("device", std::string(r.device, strnlen(r.device, sizeof(r.device))));
	return o;
}

// Runs on the JavaScript thread for each delivery.
void deliver(Napi::Env env, Napi::Function callback, std::nullptr_t *, Delivery *d)
{
	std::unique_ptr<Delivery> owned(d);
	napi_value argv[2];

	if (!env || !callback)
		return;  // the environment is going away
	try {
		if (d->error) {
			Napi::Error e = Napi::Error::New(env, d->what + ": " + std::strerror(d->error));
			e.Set("code", errno_name(d->error));
			argv[0] = e.Value();
			argv[1] = env.Null();
		} else {
			Napi::Array list = Napi::Array::New(env, d->changes.size() + d->async.size() +
								d->records.size());
			uint32_t i = 0;
			for (const DeviceChange &c : d->changes)
				list.Set(i++, change_object(env, c));
			for (const AsyncEvent &a : d->async)
				list.Set(i++, async_object(env, a));
			for (const pfnic_event &r : d->records)
				list.Set(i++, record_object(env, r));
			argv[0] = env.Null();
			argv[1] = list;
		}
	} catch (const Napi::Error &) {
		return;  // no JavaScript can run any more: the environment is ending
	}
	// through the C call: an exception the callback throws stays pending, and Node reports
	// it as uncaught, as for any other callback
	napi_call_function(env, env.Undefined(), callback, 2, argv, nullptr);
}

using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Delivery, deliver>;

// What a watch has in common: a thread reading a source, a stop signal, the thread-safe
// function that carries what it reads to JavaScript, and an end that never leaves the
// thread behind (close(), the object's destruction, or the environment's).
template <typename Derived> class Watch : public Napi::ObjectWrap<Derived> {
public:
	explicit Watch(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Derived>(info) {}
	~Watch() override { stop(); }

protected:
	// Starts the thread (Derived::run) with the callback that takes its deliveries.
	void start(Napi::Env env, Napi::Function callback, const char *name)
	{
		stop_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (stop_ < 0)
			throw Napi::Error::New(env, std::string("eventfd: ") + std::strerror(errno));
		// a bounded queue: a loop that falls behind leaves what it has not read in the
		// kernel (the event channel's ring counts what it cannot keep: LOST records)
		tsfn_ = Tsfn::New(env, callback, name, 16, 1);
		tsfn_.Unref(env);
		env_ = env;
		napi_add_env_cleanup_hook(env, cleanup, this);
		thread_ = std::thread([this] { static_cast<Derived *>(this)->run(); });
	}

	Napi::Value close(const Napi::CallbackInfo &info)
	{
		stop();
		return info.Env().Undefined();
	}

	// Hands @p d to JavaScript (blocking while the queue is full); false once closing.
	bool hand_over(Delivery *d)
	{
		if (tsfn_.BlockingCall(d) == napi_ok)
			return true;
		delete d;
		return false;
	}

	void fail(int err, const std::string &what)
	{
		hand_over(new Delivery{{}, {}, {}, err, what});
	}

	// Waits until @p fd is readable: true; false when the watch is stopping, or when poll()
	// failed (then reported once as an error of @p what).
	bool wait_readable(int fd, const std::string &what)
	{
		pollfd fds[2] = {{fd, POLLIN, 0}, {stop_, POLLIN, 0}};
		while (poll(fds, 2, -1) < 0) {
			if (errno != EINTR) {
				fail(errno, "poll " + what);
				return false;
			}
		}
		return !fds[1].revents;
	}

private:
	static void cleanup(void *self) { static_cast<Watch *>(self)->stop(); }

	// Ends the thread and waits for it; safe to call again.
	void stop()
	{
		if (!thread_.joinable())
			return;
		const uint64_t one = 1;
		if (write(stop_, &one, sizeof(one)) < 0) {
			// the counter cannot overflow from one write; the thread also stops on abort
		}
		// a thread waiting for room in the queue gets napi_closing and returns
		tsfn_.Abort();
		thread_.join();
		napi_remove_env_cleanup_hook(env_, cleanup, this);
		::close(stop_);
	}

	int stop_ = -1;
	Tsfn tsfn_;
	napi_env env_ = nullptr;
	std::thread thread_;
};

// new EventWatch(path, callback): the records of pfnic's event channel.
class EventWatch : public Watch<EventWatch> {
public:
	static Napi::Function define(Napi::Env env)
	{
		return DefineClass(env, "EventWatch", {InstanceMethod("close", &EventWatch::close)});
	}

	explicit EventWatch(const Napi::CallbackInfo &info) : Watch<EventWatch>(info)
	{
		Napi::Env env = info.Env();
		if (info.Length() != 2 || !info[0].IsString() || !info[1].IsFunction())
			throw Napi::TypeError::New(env, "new EventWatch(path, callback)");
		path_ = info[0].As<Napi::String>().Utf8Value();
		start(env, info[1].As<Napi::Function>(), "pfnic:events");
	}

	void run()
	{
		const int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0) {
			fail(errno, "open " + path_);
			return;
		}
		// an empty batch first: the channel is open
		if (!hand_over(new Delivery)) {
			::close(fd);
			return;
		}
		std::vector<pfnic_event> buf(kBatch);
		while (wait_readable(fd, path_)) {
			const ssize_t n = read(fd, buf.data(), buf.size() * sizeof(pfnic_event));
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				fail(errno, "read " + path_);
				break;
			}
			if (n == 0) {
				// not pfnic's channel, whose reads block or fail: nothing more will come
				fail(ENODATA, "read " + path_ + " ended");
				break;
			}
			auto *d = new Delivery;
			for (size_t i = 0; i < static_cast<size_t>(n) / sizeof(pfnic_event); i++) {
				// another layout would be another device; skip what is not ours
				if (buf[i].size == sizeof(pfnic_event))
					d->records.push_back(buf[i]);
			}
			if (!hand_over(d))
				break;
		}
		::close(fd);
	}

private:
	std::string path_;
};

struct SocketCloser {
	void operator()(mnl_socket *s) const { mnl_socket_close(s); }
};

int collect_change(const nlattr *a, void *data)
{
	auto *c = static_cast<DeviceChange *>(data);
	const uint16_t type = mnl_attr_get_type(a);
	const bool u32 = mnl_attr_validate(a, MNL_TYPE_U32) == 0;
	const bool str = mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0;

	if (type == kAttrEventType && mnl_attr_validate(a, MNL_TYPE_U8) == 0)
		c->event = mnl_attr_get_u8(a);
	else if (type == RDMA_NLDEV_ATTR_DEV_INDEX && u32)
		c->index = mnl_attr_get_u32(a);
	else if (type == RDMA_NLDEV_ATTR_DEV_NAME && str)
		c->name = mnl_attr_get_str(a);
	else if (type == RDMA_NLDEV_ATTR_PORT_INDEX && u32)
		c->port = mnl_attr_get_u32(a);
	else if (type == RDMA_NLDEV_ATTR_NDEV_INDEX && u32)
		c->netdev_index = mnl_attr_get_u32(a);
	else if (type == RDMA_NLDEV_ATTR_NDEV_NAME && str)
		c->netdev = mnl_attr_get_str(a);
	return MNL_CB_OK;
}

int collect_message(const nlmsghdr *nlh, void *data)
{
	if (nlh->nlmsg_type != RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, kCmdMonitor))
		return MNL_CB_OK;
	DeviceChange c;
	mnl_attr_parse(nlh, 0, collect_change, &c);
	static_cast<std::vector<DeviceChange> *>(data)->push_back(std::move(c));
	return MNL_CB_OK;
}

// new DeviceMonitor(callback): rdma netlink's notifications of devices coming, going,
// renamed, and netdevs attached to them (`rdma monitor`). A kernel without them (before
// 6.12) fails the watch with EOPNOTSUPP.
class DeviceMonitor : public Watch<DeviceMonitor> {
public:
	static Napi::Function define(Napi::Env env)
	{
		return DefineClass(env, "DeviceMonitor", {InstanceMethod("close", &DeviceMonitor::close)});
	}

	explicit DeviceMonitor(const Napi::CallbackInfo &info) : Watch<DeviceMonitor>(info)
	{
		if (info.Length() != 1 || !info[0].IsFunction())
			throw Napi::TypeError::New(info.Env(), "new DeviceMonitor(callback)");
		start(info.Env(), info[0].As<Napi::Function>(), "pfnic:devices");
	}

	void run()
	{
		std::unique_ptr<mnl_socket, SocketCloser> sock(mnl_socket_open(NETLINK_RDMA));
		int group = kNotifyGroup;
		if (!sock) {
			fail(errno, "rdma netlink");
			return;
		}
		if (mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
			fail(errno, "rdma netlink bind");
			return;
		}
		if (mnl_socket_setsockopt(sock.get(), NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0) {
			// the kernel has no such group: no device notifications before 6.12
			fail(errno == EINVAL ? EOPNOTSUPP : errno, "rdma netlink device notifications");
			return;
		}
		if (!hand_over(new Delivery))
			return;
		std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
		while (wait_readable(mnl_socket_get_fd(sock.get()), "rdma netlink")) {
			const ssize_t n = mnl_socket_recvfrom(sock.get(), buf.data(), buf.size());
			if (n < 0) {
				// ENOBUFS: notifications overran the socket; the next ones still come
				if (errno == EINTR || errno == EAGAIN || errno == ENOBUFS)
					continue;
				fail(errno, "read rdma netlink");
				return;
			}
			auto *d = new Delivery;
			mnl_cb_run(buf.data(), n, 0, 0, collect_message, &d->changes);
			if (d->changes.empty()) {
				delete d;
				continue;
			}
			if (!hand_over(d))
				return;
		}
	}
};

// The kernel drivers whose devices can be removed while a process holds a verbs context
// open: they disassociate the context (its async events end with DEVICE_FATAL) instead
// of making the removal wait until every such process has closed it, as rxe and siw do.
// A control plane that kept a context open on those would block `rdma link delete`.
bool releases_contexts(uint32_t driver_id)
{
	switch (driver_id) {
	case RDMA_DRIVER_MLX4:
	case RDMA_DRIVER_MLX5:
	case RDMA_DRIVER_HNS:
	case RDMA_DRIVER_BNXT_RE:
	case PFNIC_RDMA_DRIVER_ID:
		return true;
	default:
		return false;
	}
}

const char *driver_name(uint32_t driver_id)
{
	static const std::pair<uint32_t, const char *> names[] = {
		{RDMA_DRIVER_MLX5, "mlx5"}, {RDMA_DRIVER_MLX4, "mlx4"}, {RDMA_DRIVER_CXGB4, "cxgb4"},
		{RDMA_DRIVER_MTHCA, "mthca"}, {RDMA_DRIVER_BNXT_RE, "bnxt_re"},
		{RDMA_DRIVER_OCRDMA, "ocrdma"}, {RDMA_DRIVER_IRDMA, "irdma"},
		{RDMA_DRIVER_VMW_PVRDMA, "vmw_pvrdma"}, {RDMA_DRIVER_QEDR, "qedr"},
		{RDMA_DRIVER_HNS, "hns"}, {RDMA_DRIVER_USNIC, "usnic"}, {RDMA_DRIVER_RXE, "rxe"},
		{RDMA_DRIVER_HFI1, "hfi1"}, {RDMA_DRIVER_QIB, "qib"}, {RDMA_DRIVER_EFA, "efa"},
		{RDMA_DRIVER_SIW, "siw"}, {RDMA_DRIVER_ERDMA, "erdma"},
		{PFNIC_RDMA_DRIVER_ID, "pfnic"},
	};
	for (const auto &[id, name] : names)
		if (id == driver_id)
			return name;
	return "unknown";
}

struct ContextCloser {
	void operator()(ibv_context *c) const { ibv_close_device(c); }
};

struct DeviceListFree {
	void operator()(ibv_device **l) const { ibv_free_device_list(l); }
};

// Opens the verbs device @p name, if it is still the one with kernel index @p index (a
// device of another driver may have taken the name meanwhile); nullptr with errno set if
// it cannot.
ibv_context *open_named(const std::string &name, uint32_t index)
{
	std::unique_ptr<ibv_device *, DeviceListFree> list(ibv_get_device_list(nullptr));
	if (!list)
		return nullptr;
	for (ibv_device **d = list.get(); *d; d++)
		if (name == ibv_get_device_name(*d) &&
		    ibv_get_device_index(*d) == static_cast<int>(index))
			return ibv_open_device(*d);
	errno = ENODEV;
	return nullptr;
}

bool port_event(ibv_event_type t)
{
	return t == IBV_EVENT_PORT_ACTIVE || t == IBV_EVENT_PORT_ERR || t == IBV_EVENT_LID_CHANGE ||
	       t == IBV_EVENT_PKEY_CHANGE || t == IBV_EVENT_SM_CHANGE ||
	       t == IBV_EVENT_CLIENT_REREGISTER || t == IBV_EVENT_GID_CHANGE;
}

// new AsyncEventWatch(device, callback): the verbs async events of one device, read from a
// context of the control plane's own. Only devices whose driver releases contexts on
// removal are watched; for any other the watch fails at once with EOPNOTSUPP. The first,
// empty, delivery says the context is open; DEVICE_FATAL (the device is going away) is
// delivered, then the context is closed and the watch ends without an error.
class AsyncEventWatch : public Watch<AsyncEventWatch> {
public:
	static Napi::Function define(Napi::Env env)
	{
		return DefineClass(env, "AsyncEventWatch",
				   {InstanceMethod("close", &AsyncEventWatch::close)});
	}

	explicit AsyncEventWatch(const Napi::CallbackInfo &info) : Watch<AsyncEventWatch>(info)
	{
		Napi::Env env = info.Env();
		if (info.Length() != 2 || !info[0].IsString() || !info[1].IsFunction())
			throw Napi::TypeError::New(env, "new AsyncEventWatch(device, callback)");
		device_ = info[0].As<Napi::String>().Utf8Value();
		start(env, info[1].As<Napi::Function>(), "pfnic:async");
	}

	void run()
	{
		uint32_t driver = 0;
		std::optional<uint32_t> index;
		try {
			for (const NetlinkDevice &d : netlink_devices())
				if (d.name == device_)
					index = d.index;
			if (!index) {
				fail(ENODEV, device_);
				return;
			}
			driver = netlink_uverbs_driver_id(*index);
		} catch (const QueryError &e) {
			fail(EIO, e.what());
			return;
		}
		if (!releases_contexts(driver)) {
			fail(EOPNOTSUPP, device_ + ": its driver (" + driver_name(driver) +
				 ") makes the device's removal wait for every open verbs context, so "
				 "the control plane keeps none open to read async events");
			return;
		}
		std::unique_ptr<ibv_context, ContextCloser> ctx(open_named(device_, *index));
		if (!ctx) {
			fail(errno ? errno : EIO, "open " + device_);
			return;
		}
		const int fd = ctx->async_fd;
		const int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
			fail(errno, "async events of " + device_);
			return;
		}
		if (!hand_over(new Delivery))
			return;
		const std::string what = "async events of " + device_;
		while (wait_readable(fd, what)) {
			ibv_async_event ev;
			if (ibv_get_async_event(ctx.get(), &ev)) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				fail(errno, "async events of " + device_);
				return;
			}
			auto *d = new Delivery;
			AsyncEvent a;
			a.code = ev.event_type;
			if (port_event(ev.event_type))
				a.port = static_cast<uint32_t>(ev.element.port_num);
			d->async.push_back(a);
			const bool fatal = ev.event_type == IBV_EVENT_DEVICE_FATAL;
			ibv_ack_async_event(&ev);
			if (fatal) {
				// let the removal go on before JavaScript hears of it
				ctx.reset();
				hand_over(d);
				return;
			}
			if (!hand_over(d))
				return;
		}
	}

private:
	std::string device_;
};

} // namespace

void init_event_watch(Napi::Env env, Napi::Object exports)
{
	exports.Set("EventWatch", EventWatch::define(env));
	exports.Set("DeviceMonitor", DeviceMonitor::define(env));
	exports.Set("AsyncEventWatch", AsyncEventWatch::define(env));
}

} // namespace pfnic
