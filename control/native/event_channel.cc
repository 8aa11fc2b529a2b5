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

#include <libmnl/libmnl.h>
#include <linux/types.h>
#include <rdma/rdma_netlink.h>

#include "../../driver/uapi/pfnic-events.h"
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

// What a thread hands over: records or device changes (none: "the source is open"), or
// the error that ended it.
struct Delivery {
	std::vector<pfnic_event> records;
	std::vector<DeviceChange> changes;
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
			const bool changes = !d->changes.empty();
			Napi::Array list = Napi::Array::New(env, changes ? d->changes.size() : d->records.size());
			for (size_t i = 0; i < list.Length(); i++)
				list.Set(i, changes ? change_object(env, d->changes[i]) : record_object(env, d->records[i]));
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
		hand_over(new Delivery{{}, {}, err, what});
	}

	int stop_fd() const { return stop_; }

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
		pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd(), POLLIN, 0}};
		for (;;) {
			if (poll(fds, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				fail(errno, "poll " + path_);
				break;
			}
			if (fds[1].revents)
				break;
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
		pollfd fds[2] = {{mnl_socket_get_fd(sock.get()), POLLIN, 0}, {stop_fd(), POLLIN, 0}};
		for (;;) {
			if (poll(fds, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				fail(errno, "poll rdma netlink");
				return;
			}
			if (fds[1].revents)
				return;
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

} // namespace

void init_event_watch(Napi::Env env, Napi::Object exports)
{
	exports.Set("EventWatch", EventWatch::define(env));
	exports.Set("DeviceMonitor", DeviceMonitor::define(env));
}

} // namespace pfnic
