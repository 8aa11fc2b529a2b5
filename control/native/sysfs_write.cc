// SPDX-License-Identifier: GPL-2.0-only
#include "sysfs_write.h"

#include <cerrno>
#include <csignal>
#include <ctime>
#include <fcntl.h>
#include <mutex>
#include <pthread.h>
#include <unistd.h>

namespace pfnic {
namespace {

void ignore(int) {}

void install_handler()
{
	struct sigaction sa = {};
	sa.sa_handler = ignore;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGRTMIN + 5, &sa, nullptr);
}

// Closes a descriptor, deletes a timer and restores a signal mask, whatever happens.
struct WriteScope {
	int fd = -1;
	bool timed = false;
	timer_t timer{};
	sigset_t old_mask{};
	bool masked = false;

	~WriteScope()
	{
		if (timed)
			timer_delete(timer);
		if (masked)
			pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
		if (fd >= 0)
			close(fd);
	}
};

} // namespace

// A real-time signal, aimed at the writing thread alone by a timer (or by the thread
// stopping the writer). Its handler does nothing: it is there so that the signal
// interrupts the write (no SA_RESTART) instead of killing the process.
int block_write_interrupt_signal()
{
	static std::once_flag handler_once;
	std::call_once(handler_once, install_handler);
	return SIGRTMIN + 5;
}

int write_block_state(unsigned int block, const std::string &action, unsigned int timeout_ms)
{
	const int interrupt = block_write_interrupt_signal();
	const std::string path = "/sys/devices/system/memory/memory" + std::to_string(block) + "/state";
	WriteScope scope;
	scope.fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
	if (scope.fd < 0)
		return errno;

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, interrupt);
	if (pthread_sigmask(SIG_UNBLOCK, &set, &scope.old_mask) != 0)
		return EIO;
	scope.masked = true;

	struct sigevent sev = {};
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = interrupt;
	// glibc 2.36 names the target thread's field only in its internal union
	sev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &scope.timer) != 0)
		return errno;
	scope.timed = true;
	// again every 100 ms: a signal that lands just before the write starts is not lost
	struct itimerspec when = {};
	when.it_value.tv_sec = timeout_ms / 1000;
	when.it_value.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000L;
	when.it_interval.tv_nsec = 100 * 1000000L;
	if (when.it_value.tv_sec == 0 && when.it_value.tv_nsec == 0)
		when.it_value.tv_nsec = 1;
	if (timer_settime(scope.timer, 0, &when, nullptr) != 0)
		return errno;

	const ssize_t n = write(scope.fd, action.data(), action.size());
	if (n < 0)
		return errno == EINTR ? ETIMEDOUT : errno;
	return n == static_cast<ssize_t>(action.size()) ? 0 : EIO;
}

} // namespace pfnic
