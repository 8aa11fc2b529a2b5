// SPDX-License-Identifier: GPL-2.0-only
#include "block_state.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <pthread.h>
#include <set>
#include <string>
#include <system_error>
#include <thread>

#include "rdma_query.h"
#include "sysfs_write.h"

namespace pfnic {
namespace {

// One change asked for: what to write, the promise to settle, and how it went (0 or an
// errno value).
struct BlockChange {
	unsigned int block;
	std::string action;
	unsigned int timeout_ms;
	Napi::Promise::Deferred deferred;
	int error = 0;
};

class BlockStates;

void settle(Napi::Env env, Napi::Function, BlockStates *self, BlockChange *change);

using Tsfn = Napi::TypedThreadSafeFunction<BlockStates, BlockChange, settle>;

Napi::Value rejected(Napi::Env env, const std::string &code, const std::string &message)
{
	Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
	Napi::Error e = Napi::Error::New(env, message);
	e.Set("code", code);
	deferred.Reject(e.Value());
	return deferred.Promise();
}

// The block state changes of one environment (the main thread's, or a worker's) and the
// thread that makes them. Made by init_block_state(); its thread is stopped and joined by
// the environment's cleanup hook; deleted when the thread-safe function that carries the
// results back is finalized, after the last of them.
class BlockStates {
public:
	explicit BlockStates(Napi::Env env)
	{
		tsfn_ = Tsfn::New(env, "pfnic:writeBlockState", 0, 1, this,
				  [](Napi::Env, void *, BlockStates *self) { delete self; });
		// nothing outstanding yet: the process may exit
		tsfn_.Unref(env);
		// added after the thread-safe function, so that it runs before that is torn down
		// (cleanup hooks run last added first)
		napi_add_env_cleanup_hook(env, teardown, this);
	}

	// Queues a change; on the JavaScript thread.
	Napi::Value submit(Napi::Env env, unsigned int block, std::string action,
			   unsigned int timeout_ms)
	{
		const std::string what = "memory block " + std::to_string(block) + ": ";
		if (busy_.count(block))
			return rejected(env, "EALREADY",
					what + "a change of its state is already waiting or in progress");
		if (outstanding_ >= kMaxBlockChanges)
			return rejected(env, "EAGAIN",
					what + std::to_string(kMaxBlockChanges) +
						" memory block changes are waiting or in progress, as many "
						"as may be; try again later");
		if (!thread_.joinable()) {
			try {
				thread_ = std::thread([this] { run(); });
			} catch (const std::system_error &e) {
				throw Napi::Error::New(env, std::string("cannot start the memory block "
									"thread: ") + e.what());
			}
		}
		auto *change = new BlockChange{block, std::move(action), timeout_ms,
					       Napi::Promise::Deferred::New(env)};
		Napi::Promise promise = change->deferred.Promise();
		{
			std::lock_guard<std::mutex> lock(mutex_);
			queue_.push_back(change);
		}
		wake_.notify_one();
		busy_.insert(block);
		// a promise is pending on the thread: keep the process alive until it settles
		if (outstanding_++ == 0)
			tsfn_.Ref(env);
		return promise;
	}

	// Settles a change's promise; on the JavaScript thread.
	void finish(Napi::Env env, BlockChange *change)
	{
		busy_.erase(change->block);
		if (--outstanding_ == 0)
			tsfn_.Unref(env);
		if (!change->error) {
			change->deferred.Resolve(env.Undefined());
			return;
		}
		Napi::Error e = Napi::Error::New(env, "memory block " + std::to_string(change->block) +
							      ": " + std::strerror(change->error));
		e.Set("code", errno_name(change->error));
		change->deferred.Reject(e.Value());
	}

private:
	// The thread: takes the changes in turn until stopped.
	void run()
	{
		for (;;) {
			BlockChange *change;
			{
				std::unique_lock<std::mutex> lock(mutex_);
				wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
				if (stopping_)
					break;
				change = queue_.front();
				queue_.pop_front();
			}
			change->error = write_block_state(change->block, change->action, change->timeout_ms);
			// fails only once the environment is going away: nobody waits for it then
			if (tsfn_.NonBlockingCall(change) != napi_ok)
				delete change;
		}
		finished_ = true;
	}

	static void teardown(void *arg)
	{
		auto *self = static_cast<BlockStates *>(arg);
		self->stop();
		// the finalizer deletes self once what is still on its way back is dropped
		self->tsfn_.Abort();
	}

	// Ends the thread and waits for it. A write in progress would hold it for up to its
	// time limit: it is interrupted as the time limit would (the kernel leaves the block
	// as it was), again and again until the thread is out, since a signal that lands just
	// before the write starts is lost.
	void stop()
	{
		if (!thread_.joinable())
			return;
		{
			std::lock_guard<std::mutex> lock(mutex_);
			stopping_ = true;
		}
		wake_.notify_all();
		const int interrupt = block_write_interrupt_signal();
		while (!finished_) {
			pthread_kill(thread_.native_handle(), interrupt);
			std::this_thread::sleep_for(std::chrono::milliseconds(10));
		}
		thread_.join();
		for (BlockChange *change : queue_)
			delete change;
		queue_.clear();
	}

	Tsfn tsfn_;
	std::thread thread_;

	// On the JavaScript thread only: the blocks with a change waiting, in progress or on
	// its way back, and how many changes those are.
	std::set<unsigned int> busy_;
	unsigned int outstanding_ = 0;

	std::mutex mutex_;  // guards queue_ and stopping_, shared with the thread
	std::condition_variable wake_;
	std::deque<BlockChange *> queue_;
	bool stopping_ = false;
	std::atomic<bool> finished_{false};  // the thread has left run()
};

// The thread-safe function's call: on the JavaScript thread, or with no environment when
// that is going away (then the promise can no longer be settled).
void settle(Napi::Env env, Napi::Function, BlockStates *self, BlockChange *change)
{
	std::unique_ptr<BlockChange> owned(change);
	if (env)
		self->finish(env, change);
}

Napi::Value WriteBlockState(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (info.Length() != 3 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsNumber())
		throw Napi::TypeError::New(env, "writeBlockState(block, action, timeoutMs)");
	const double block = info[0].As<Napi::Number>().DoubleValue();
	const double timeout = info[2].As<Napi::Number>().DoubleValue();
	std::string action = info[1].As<Napi::String>().Utf8Value();
	if (block < 0 || block > 0x7fffffff || block != static_cast<double>(static_cast<int64_t>(block)))
		throw Napi::RangeError::New(env, "a memory block number is an integer from 0 to 2^31-1");
	if (action != "offline" && action != "online" && action != "online_movable" &&
	    action != "online_kernel")
		throw Napi::RangeError::New(env, "the action is offline, online, online_movable or online_kernel");
	if (!(timeout >= 1 && timeout <= 3600000))
		throw Napi::RangeError::New(env, "the time limit is 1 ms to 1 hour");
	auto *states = static_cast<BlockStates *>(info.Data());
	return states->submit(env, static_cast<unsigned int>(block), std::move(action),
			      static_cast<unsigned int>(timeout));
}

} // namespace

void init_block_state(Napi::Env env, Napi::Object exports)
{
	auto *states = new BlockStates(env);
	exports.Set("writeBlockState",
		    Napi::Function::New(env, WriteBlockState, "writeBlockState", states));
	exports.Set("blockStateLimit", Napi::Number::New(env, kMaxBlockChanges));
}

} // namespace pfnic
