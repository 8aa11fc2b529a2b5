// SPDX-License-Identifier: GPL-2.0-only
#include "event_channel.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <poll.h>
#include <string>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <linux/types.h>

#include "../../driver/uapi/pfnic-events.h"
#include "rdma_query.h"

namespace pfnic {
namespace {

// Records one read() takes; the kernel keeps the rest in the reader's ring.
constexpr size_t kBatch = 64;

// What the thread hands over: records, or the error that ended it.
struct Delivery {
	std::vector<pfnic_event> records;
	int error = 0;
	std::string what;
};

Napi::Value u64(Napi::Env env, uint64_t v)
{
	return Napi::BigInt::New(env, v);
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
			Napi::Array list = Napi::Array::New(env, d->records.size());
			for (size_t i = 0; i < d->records.size(); i++)
				list.Set(i, record_object(env, d->records[i]));
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

class EventWatch : public Napi::ObjectWrap<EventWatch> {
public:
	static Napi::Function define(Napi::Env env)
	{
		return DefineClass(env, "EventWatch", {InstanceMethod<&EventWatch::close>("close")});
	}

	explicit EventWatch(const Napi::CallbackInfo &info) : Napi::ObjectWrap<EventWatch>(info)
	{
		Napi::Env env = info.Env();
		if (info.Length() != 2 || !info[0].IsString() || !info[1].IsFunction())
			throw Napi::TypeError::New(env, "new EventWatch(path, callback)");
		path_ = info[0].As<Napi::String>().Utf8Value();
		stop_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (stop_ < 0)
			throw Napi::Error::New(env, std::string("eventfd: ") + std::strerror(errno));
		// a bounded queue: a loop that falls behind leaves records in the kernel's ring,
		// which counts what it cannot keep (LOST records)
		tsfn_ = Tsfn::New(env, info[1].As<Napi::Function>(), "pfnic:events", 16, 1);
		tsfn_.Unref(env);
		env_ = env;
		napi_add_env_cleanup_hook(env, cleanup, this);
		thread_ = std::thread([this] { run(); });
	}

	~EventWatch() override { stop(); }

private:
	static void cleanup(void *self) { static_cast<EventWatch *>(self)->stop(); }

	Napi::Value close(const Napi::CallbackInfo &info)
	{
		stop();
		return info.Env().Undefined();
	}

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

	void fail(int err, const std::string &what)
	{
		auto *d = new Delivery{{}, err, what};
		if (tsfn_.BlockingCall(d) != napi_ok)
			delete d;
	}

	void run()
	{
		const int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0) {
			fail(errno, "open " + path_);
			return;
		}
		// an empty batch first: the channel is open
		auto *opened = new Delivery;
		if (tsfn_.BlockingCall(opened) != napi_ok) {
			delete opened;
			::close(fd);
			return;
		}
		std::vector<pfnic_event> buf(kBatch);
		pollfd fds[2] = {{fd, POLLIN, 0}, {stop_, POLLIN, 0}};
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
			if (tsfn_.BlockingCall(d) != napi_ok) {
				delete d;
				break;
			}
		}
		::close(fd);
	}

	std::string path_;
	int stop_ = -1;
	Tsfn tsfn_;
	napi_env env_ = nullptr;
	std::thread thread_;
};

} // namespace

void init_event_watch(Napi::Env env, Napi::Object exports)
{
	exports.Set("EventWatch", EventWatch::define(env));
}

} // namespace pfnic
