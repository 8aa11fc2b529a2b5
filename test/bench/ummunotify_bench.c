// SPDX-License-Identifier: GPL-2.0-only
/*
 * ummunotify_bench: what /dev/ummunotify costs and what it saves a registration cache,
 * measured in one run in a guest of the VM rig (test/bench/run.sh).
 *
 * Absolute times mean little under QEMU's TCG on a shared machine, so every timed figure
 * comes with a ratio of two things measured in the same run, interleaved round by round
 * (the median of the per-round ratios, with their min and max).
 *
 *   1. A cache hit check: how a registration cache tells that a cached entry still has the
 *      same memory behind it. With ummunotify's shared memory: a load-acquire of the
 *      generation compared with the one remembered and, only if it moved, a load of the
 *      entry's slot byte. Without shared memory: a system call per check (a non-blocking
 *      read() of the file, or poll()). User-space instructions per check are counted by
 *      valgrind's callgrind (this program runs itself under it with --hit-loop; system calls'
 *      kernel-side instructions are not counted), and ns per check are timed natively.
 *   2. Events: 1024 one-page ranges of one mapping, a thread changing one range at a time,
 *      a reader thread draining with read() and poll(). Changes and INVAL events per second,
 *      ranges per read(), what nobody reading leaves to read, and the changing loop's time
 *      per change with a reader, with nobody reading, and in a process that never opened
 *      ummunotify, for madvise(MADV_DONTNEED), munmap, and a discard then a write. Then how
 *      many ranges one change of one page reports (madvise, munmap, mprotect).
 *   3. Memory: kernel memory per watched range (Slab, MemFree and MemAvailable deltas of
 *      /proc/meminfo, and memory.current of a memory cgroup when cgroup v2 is mounted on
 *      /sys/fs/cgroup) for 1,000,000 one-page ranges over a PROT_NONE reservation; ns per
 *      register ioctl; one munmap covering all of them; draining their events; unregistering
 *      and closing.
 *   4. A userfaultfd monitor doing the same job: UNMAP, REMOVE and REMAP events, the ranges
 *      registered in missing mode, a thread reading its messages. The workloads of 2 with
 *      each monitor against a wake-up round trip between two threads, munmap latency,
 *      ranges reported per munmap, re-registering after mmap(MAP_FIXED), a monitor slow to
 *      read, writing a page again after the change (its faults go to the monitor), a cache
 *      check, memory per watched range, and memory it cannot watch at all.
 *
 * Every measurement runs in a child process of its own, so that "no watcher" is an address
 * space that never had an MMU notifier: the kernel keeps an address space's notifier
 * bookkeeping until the address space dies, so closing the file would not be the same.
 *
 * Output: lines starting "# bench: ", one per figure with its ratio; other lines start with
 * "# ". Exit status: 0; 1 if a measurement could not be made (no /dev/ummunotify, an
 * operation failed, an event missing); 2: bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../driver/uapi/ummunotify.h"

#define MAX_ROUNDS 16

/* A page of events: what one read() of the module returns at most. */
#define EVENTS_PER_READ 128

/* A reader with nothing to read looks for the end of the run this often. */
#define IDLE_POLL_MS 10

#define CGROUP_ROOT "/sys/fs/cgroup"
#define MAX_RANGES_PARAM "/sys/module/ummunotify/parameters/max_ranges"

/*
 * Callgrind finds the measured loops by name: out of line, not cloned (which renames them),
 * not merged with a twin.
 */
#if defined(__clang__)
#define MEASURED_LOOP __attribute__((noinline, used))
#else
#define MEASURED_LOOP __attribute__((noipa, used))
#endif

static const char *prog = "ummunotify_bench";
static size_t page_size;

static struct {
	bool quick;
	int rounds;
	unsigned int ranges;		/* watched ranges in 2 and 4 */
	unsigned long memory_ranges;	/* 3 */
	unsigned long unregister_ranges;	/* 3: of them, unregistered one by one */
	unsigned int uffd_memory_ranges;	/* 4 */
	double sample_s;		/* length of one timed sample */
	double check_sample_s;		/* length of one timed run of hit checks */
	long valgrind_checks;		/* hit checks per loop under callgrind */
	bool valgrind;
	const char *sections;
} opt;

/* ------------------------------------------------------------------------------------------
 * Errors, time, statistics
 */

static int fail(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	return -1;
}

static int failx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int failx(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct spread {
	double median, min, max;
};

static struct spread spread_of(const double *v, int n)
{
	double s[MAX_ROUNDS];
	struct spread r = { 0, 0, 0 };

	if (n <= 0 || n > MAX_ROUNDS)
		return r;
	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	r.median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	r.min = s[0];
	r.max = s[n - 1];
	return r;
}

static double median_of(const double *v, int n)
{
	return spread_of(v, n).median;
}

/* A number with about three significant digits. */
static const char *num(char *buf, size_t size, double v)
{
	double a = v < 0 ? -v : v;

	if (a >= 100 || a == 0)
		snprintf(buf, size, "%.0f", v);
	else if (a >= 10)
		snprintf(buf, size, "%.1f", v);
	else if (a >= 1)
		snprintf(buf, size, "%.2f", v);
	else
		snprintf(buf, size, "%.3g", v);
	return buf;
}

/* A duration in the unit that suits it. */
static const char *dur(char *buf, size_t size, double ns)
{
	char n[24];

	if (ns >= 1e9)
		snprintf(buf, size, "%s s", num(n, sizeof(n), ns / 1e9));
	else if (ns >= 1e6)
		snprintf(buf, size, "%s ms", num(n, sizeof(n), ns / 1e6));
	else if (ns >= 1e3)
		snprintf(buf, size, "%s us", num(n, sizeof(n), ns / 1e3));
	else
		snprintf(buf, size, "%s ns", num(n, sizeof(n), ns));
	return buf;
}

/* "R.RRx (median of N rounds, MIN-MAX)" for per-round ratios. */
static const char *ratio_text(char *buf, size_t size, const double *ratios, int n)
{
	struct spread s = spread_of(ratios, n);
	char a[20], b[20], c[20];

	if (n == 1)
		snprintf(buf, size, "%sx (one round)", num(a, sizeof(a), s.median));
	else
		snprintf(buf, size, "%sx (median of %d rounds, %s-%s)", num(a, sizeof(a), s.median),
			 n, num(b, sizeof(b), s.min), num(c, sizeof(c), s.max));
	return buf;
}

static bool section_wanted(char section)
{
	return strchr(opt.sections, section) != NULL;
}

/* ------------------------------------------------------------------------------------------
 * Child processes: each measurement runs in one, and leaves its result in shared memory.
 */

static int run_child(int (*fn)(void *), void *arg, const char *what)
{
	pid_t pid;
	int status;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return fail("fork");
	if (!pid)
		_exit(fn(arg) ? 1 : 0);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return fail("waitpid");
	if (WIFEXITED(status) && !WEXITSTATUS(status))
		return 0;
	if (WIFSIGNALED(status))
		return failx("%s: killed by signal %d", what, WTERMSIG(status));
	return failx("%s: failed", what);
}

/* Small writes and reads of procfs, sysfs and cgroupfs files, with no stdio buffers. */
static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static ssize_t read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t n;

	if (fd < 0)
		return -1;
	while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += n;
	close(fd);
	buf[len] = 0;
	return len;
}

static long long read_number_file(const char *path)
{
	char buf[64];

	if (read_file(path, buf, sizeof(buf)) <= 0)
		return -1;
	return strtoll(buf, NULL, 10);
}

/* ------------------------------------------------------------------------------------------
 * Kernel memory: /proc/meminfo, and the memory cgroup the process is in
 */

struct memory_snapshot {
	long long mem_free, mem_available, slab, page_tables;	/* bytes */
	long long cgroup;	/* memory.current, or -1 */
};

/* A memory cgroup to measure in: one made for this process if it is in the root. */
struct cgroup_probe {
	char dir[128];
	char current[192];
	bool made;
};

static void cgroup_enter(struct cgroup_probe *cg)
{
	char buf[4096], pid[32], *line;
	struct statfs fs;

	cg->current[0] = 0;
	cg->made = false;
	if (statfs(CGROUP_ROOT, &fs) || fs.f_type != CGROUP2_SUPER_MAGIC)
		return;
	if (read_file("/proc/self/cgroup", buf, sizeof(buf)) <= 0)
		return;
	line = strstr(buf, "0::");
	if (!line)
		return;
	line += 3;
	line[strcspn(line, "\n")] = 0;
	if (strcmp(line, "/")) {
		/* the root has no memory.current; any other cgroup is measured as it is */
		snprintf(cg->current, sizeof(cg->current), CGROUP_ROOT "%s/memory.current", line);
	} else {
		/* the root may give the memory controller to a child holding this process alone */
		write_file(CGROUP_ROOT "/cgroup.subtree_control", "+memory");
		snprintf(cg->dir, sizeof(cg->dir), CGROUP_ROOT "/%s.%d", prog, (int)getpid());
		if (mkdir(cg->dir, 0755) && errno != EEXIST)
			return;
		cg->made = true;
		snprintf(cg->current, sizeof(cg->current), "%s/cgroup.procs", cg->dir);
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		if (write_file(cg->current, pid)) {
			cg->current[0] = 0;
			return;
		}
		snprintf(cg->current, sizeof(cg->current), "%s/memory.current", cg->dir);
	}
	if (access(cg->current, R_OK))
		cg->current[0] = 0;
}

static void cgroup_leave(struct cgroup_probe *cg)
{
	char pid[32];

	if (!cg->made)
		return;
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	write_file(CGROUP_ROOT "/cgroup.procs", pid);
	rmdir(cg->dir);
}

static long long meminfo_field(const char *text, const char *name)
{
	const char *p = strstr(text, name);

	return p ? strtoll(p + strlen(name), NULL, 10) * 1024 : 0;
}

static int memory_snapshot(struct memory_snapshot *s, const struct cgroup_probe *cg)
{
	static char text[8192];

	/* fold the per-CPU counter deltas in, or /proc/meminfo lags by up to a second */
	write_file("/proc/sys/vm/stat_refresh", "1");
	if (read_file("/proc/meminfo", text, sizeof(text)) <= 0)
		return fail("read /proc/meminfo");
	s->mem_free = meminfo_field(text, "\nMemFree:");
	s->mem_available = meminfo_field(text, "\nMemAvailable:");
	s->slab = meminfo_field(text, "\nSlab:");
	s->page_tables = meminfo_field(text, "\nPageTables:");
	s->cgroup = cg->current[0] ? read_number_file(cg->current) : -1;
	return 0;
}

/* How much each counter changed, per range (MemFree and MemAvailable fall as memory is used). */
struct memory_delta {
	double slab, mem_free, mem_available, page_tables, cgroup;
	bool has_cgroup;
};

static struct memory_delta memory_delta(const struct memory_snapshot *before,
					const struct memory_snapshot *after, unsigned long n)
{
	struct memory_delta d = {
		.slab = (double)(after->slab - before->slab) / n,
		.mem_free = (double)(after->mem_free - before->mem_free) / n,
		.mem_available = (double)(after->mem_available - before->mem_available) / n,
		.page_tables = (double)(after->page_tables - before->page_tables) / n,
		.has_cgroup = before->cgroup >= 0 && after->cgroup >= 0,
	};

	if (d.has_cgroup)
		d.cgroup = (double)(after->cgroup - before->cgroup) / n;
	return d;
}

static const char *signed_bytes(char *buf, size_t size, double v)
{
	char n[24];

	snprintf(buf, size, "%s%s B", v >= 0 ? "+" : "", num(n, sizeof(n), v));
	return buf;
}

/* "Slab +X B, MemFree -Y B, ...": every counter's change per range. */
static const char *memory_text(char *buf, size_t size, const struct memory_delta *d)
{
	char slab[32], mem_free[32], available[32], tables[32], cgroup[64];

	if (d->has_cgroup)
		signed_bytes(cgroup, sizeof(cgroup), d->cgroup);
	else
		snprintf(cgroup, sizeof(cgroup), "not measured (no cgroup v2 memory controller)");
	snprintf(buf, size,
		 "Slab %s, MemFree %s, MemAvailable %s, page tables %s, memory cgroup %s",
		 signed_bytes(slab, sizeof(slab), d->slab),
		 signed_bytes(mem_free, sizeof(mem_free), d->mem_free),
		 signed_bytes(available, sizeof(available), d->mem_available),
		 signed_bytes(tables, sizeof(tables), d->page_tables), cgroup);
	return buf;
}

/*
 * Lets memory freed by the children before settle: RCU callbacks, and per-CPU counters
 * folded into /proc/meminfo.
 */
static void memory_settle(void)
{
	usleep(300 * 1000);
}

/* ------------------------------------------------------------------------------------------
 * ummunotify and userfaultfd
 */

struct umn_watch {
	int fd;
	struct ummunotify_info info;
	const struct ummunotify_shared *shared;	/* NULL unless mapped */
	const uint8_t *slot_bytes;
};

static int umn_open(struct umn_watch *w, bool map_shared)
{
	void *p;

	memset(w, 0, sizeof(*w));
	w->fd = open(UMMUNOTIFY_PATH, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (w->fd < 0)
		return fail("open " UMMUNOTIFY_PATH);
	if (ioctl(w->fd, UMMUNOTIFY_GET_INFO, &w->info))
		return fail("UMMUNOTIFY_GET_INFO");
	if (!map_shared)
		return 0;
	p = mmap(NULL, w->info.map_size, PROT_READ, MAP_SHARED, w->fd, 0);
	if (p == MAP_FAILED)
		return fail("mmap of " UMMUNOTIFY_PATH);
	w->shared = p;
	w->slot_bytes = (const uint8_t *)p + w->info.slot_offset;
	return 0;
}

static int umn_watch_range(const struct umn_watch *w, const void *start, size_t len,
			   uint64_t cookie, uint32_t *slot)
{
	struct ummunotify_register_ioctl req = {
		.start = (uintptr_t)start,
		.end = (uintptr_t)start + len,
		.user_cookie = cookie,
	};

	if (ioctl(w->fd, UMMUNOTIFY_REGISTER_REGION_SLOT, &req))
		return fail("UMMUNOTIFY_REGISTER_REGION_SLOT");
	if (slot)
		*slot = req.slot;
	return 0;
}

/* Reads events until there are none; counts the INVAL ones. */
static int umn_drain(const struct umn_watch *w, uint64_t *invals, uint64_t *reads)
{
	struct ummunotify_event events[EVENTS_PER_READ];
	ssize_t got;
	size_t i;

	while ((got = read(w->fd, events, sizeof(events))) > 0) {
		if (reads)
			++*reads;
		for (i = 0; i < got / sizeof(events[0]); i++)
			if (invals && events[i].type == UMMUNOTIFY_EVENT_TYPE_INVAL)
				++*invals;
	}
	if (got < 0 && errno != EAGAIN)
		return fail("read " UMMUNOTIFY_PATH);
	return 0;
}

static int userfaultfd_open(void)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE |
			    UFFD_FEATURE_EVENT_REMAP,
	};
	/* O_NONBLOCK: userfaultfd's poll() reports an error for a blocking file */
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

#ifdef UFFD_USER_MODE_ONLY
	/* without privilege, only faults from user mode may be handled (all this needs) */
	if (fd < 0 && errno == EPERM)
		fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
#endif
	if (fd < 0)
		return fail("userfaultfd (needs vm.unprivileged_userfaultfd=1, or privilege)");
	if (ioctl(fd, UFFDIO_API, &api)) {
		fail("UFFDIO_API with the UNMAP, REMOVE and REMAP events");
		close(fd);
		return -1;
	}
	return fd;
}

static int userfaultfd_watch(int fd, const void *start, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)start, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	return ioctl(fd, UFFDIO_REGISTER, &reg);
}

/* ------------------------------------------------------------------------------------------
 * 1. The hit check
 */

struct hit_check {
	const struct ummunotify_shared *shared;
	const uint8_t *slot_bytes;
	uint32_t slot;
	uint64_t remembered_generation;
	int fd;
	size_t read_events;	/* room for this many events in each read() */
};

/* A registration cache's test that the memory behind an entry is unchanged. */
static inline bool entry_unchanged(const struct hit_check *c)
{
	/* acquire: the module writes the slot bytes before it moves the generation */
	if (__atomic_load_n(&c->shared->generation, __ATOMIC_ACQUIRE) == c->remembered_generation)
		return true;
	return __atomic_load_n(&c->slot_bytes[c->slot], __ATOMIC_RELAXED) == 0;
}

MEASURED_LOOP uint64_t hit_loop_shared_memory(const struct hit_check *c, long n);
MEASURED_LOOP uint64_t hit_loop_shared_memory(const struct hit_check *c, long n)
{
	uint64_t unchanged = 0;
	long i;

	for (i = 0; i < n; i++)
		unchanged += entry_unchanged(c);
	return unchanged;
}

/* The check of a cache without the shared memory: "has anything changed?" asked by read(). */
MEASURED_LOOP uint64_t hit_loop_read_syscall(const struct hit_check *c, long n);
MEASURED_LOOP uint64_t hit_loop_read_syscall(const struct hit_check *c, long n)
{
	struct ummunotify_event events[EVENTS_PER_READ];
	uint64_t unchanged = 0;
	long i;

	for (i = 0; i < n; i++)
		unchanged += read(c->fd, events, c->read_events * sizeof(events[0])) < 0 &&
			     errno == EAGAIN;
	return unchanged;
}

/* The same asked by poll(), which reads nothing. */
MEASURED_LOOP uint64_t hit_loop_poll_syscall(const struct hit_check *c, long n);
MEASURED_LOOP uint64_t hit_loop_poll_syscall(const struct hit_check *c, long n)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	uint64_t unchanged = 0;
	long i;

	for (i = 0; i < n; i++)
		unchanged += poll(&pfd, 1, 0) == 0;
	return unchanged;
}

/* The first four are counted by callgrind too, in this order. */
enum hit_way { HIT_GENERATION, HIT_SLOT_BYTE, HIT_READ, HIT_POLL, HIT_READ_ONE, HIT_WAYS };

#define COUNTED_WAYS HIT_READ_ONE

static const char *const hit_way_name[HIT_WAYS] = {
	"shared generation", "slot byte (generation moved)", "read() (room for 128 events)",
	"poll()", "read() (room for 1 event)",
};

/* The loop each way is measured by, and the check it is given. */
static uint64_t (*const loop_of_way[HIT_WAYS])(const struct hit_check *, long) = {
	hit_loop_shared_memory, hit_loop_shared_memory, hit_loop_read_syscall,
	hit_loop_poll_syscall, hit_loop_read_syscall,
};

/*
 * Two watched pages A and B; B changed since registering, so the generation moved. Checks of
 * A: "unchanged" remembers the present generation, "moved" the one before B changed.
 */
struct hit_setup {
	struct umn_watch watch;
	struct hit_check check[HIT_WAYS];
};

static int hit_setup(struct hit_setup *s)
{
	uint32_t slot_a, slot_b;
	uint64_t before;
	char *buf;

	if (umn_open(&s->watch, true))
		return -1;
	buf = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return fail("mmap");
	memset(buf, 1, 2 * page_size);
	if (umn_watch_range(&s->watch, buf, page_size, 1, &slot_a) ||
	    umn_watch_range(&s->watch, buf + page_size, page_size, 2, &slot_b) ||
	    umn_drain(&s->watch, NULL, NULL))
		return -1;
	before = __atomic_load_n(&s->watch.shared->generation, __ATOMIC_ACQUIRE);
	if (madvise(buf + page_size, page_size, MADV_DONTNEED))
		return fail("madvise(MADV_DONTNEED)");
	s->check[HIT_GENERATION] = (struct hit_check){
		.shared = s->watch.shared,
		.slot_bytes = s->watch.slot_bytes,
		.slot = slot_a,
		.remembered_generation = __atomic_load_n(&s->watch.shared->generation,
							 __ATOMIC_ACQUIRE),
		.fd = s->watch.fd,
	};
	if (s->check[HIT_GENERATION].remembered_generation == before)
		return failx("the shared generation did not move when a watched range changed");
	if (!s->watch.slot_bytes[slot_b] || s->watch.slot_bytes[slot_a])
		return failx("slot bytes: changed range %u reads %d, unchanged range %u reads %d",
			     slot_b, s->watch.slot_bytes[slot_b], slot_a,
			     s->watch.slot_bytes[slot_a]);
	s->check[HIT_SLOT_BYTE] = s->check[HIT_GENERATION];
	s->check[HIT_SLOT_BYTE].remembered_generation = before;
	/* read() as a cache would: room for a page of events */
	s->check[HIT_GENERATION].read_events = EVENTS_PER_READ;
	s->check[HIT_READ] = s->check[HIT_POLL] = s->check[HIT_GENERATION];
	s->check[HIT_READ_ONE] = s->check[HIT_READ];
	s->check[HIT_READ_ONE].read_events = 1;
	/* B's event read: from now on read() and poll() find nothing, like a cache hit */
	return umn_drain(&s->watch, NULL, NULL);
}

/* --hit-loop MODE N: the loops callgrind counts, in the order the parent expects. */
static int run_hit_loops(const char *mode, long n)
{
	bool shared = !strcmp(mode, "free") || !strcmp(mode, "all");
	bool syscalls = !strcmp(mode, "syscall") || !strcmp(mode, "all");
	struct hit_setup s;
	int way;

	if ((!shared && !syscalls) || n <= 0)
		return failx("--hit-loop free|syscall|all N");
	if (hit_setup(&s))
		return -1;
	for (way = 0; way < COUNTED_WAYS; way++) {
		if (way <= HIT_SLOT_BYTE ? !shared : !syscalls)
			continue;
		if (loop_of_way[way](&s.check[way], n) != (uint64_t)n)
			return failx("%s: a check found the entry changed", hit_way_name[way]);
	}
	return 0;
}

struct hit_timing {
	int rounds;
	double ns[HIT_WAYS][MAX_ROUNDS];
	long checks[HIT_WAYS];
};

static double time_checks(int way, const struct hit_check *c, long n, int *bad)
{
	double t0 = now_ns();

	if (loop_of_way[way](c, n) != (uint64_t)n)
		*bad = 1;
	return now_ns() - t0;
}

static int hit_timing_child(void *arg)
{
	struct hit_timing *out = arg;
	struct hit_setup s;
	int way, r, bad = 0;
	double t;
	long n;

	if (hit_setup(&s))
		return -1;
	for (way = 0; way < HIT_WAYS; way++) {
		/* checks enough for one timed run of about check_sample_s */
		for (n = 64;; n *= 4) {
			t = time_checks(way, &s.check[way], n, &bad);
			if (t > opt.check_sample_s * 1e9 / 8 || n > (1L << 32))
				break;
		}
		out->checks[way] = (long)(n * (opt.check_sample_s * 1e9 / t)) + 1;
	}
	out->rounds = opt.rounds;
	for (r = 0; r < opt.rounds; r++)
		for (way = 0; way < HIT_WAYS; way++)
			out->ns[way][r] = time_checks(way, &s.check[way], out->checks[way], &bad) /
					  out->checks[way];
	if (bad)
		return failx("a hit check found the entry changed");
	return 0;
}

/*
 * Instructions per check of each way, from one run of this program under callgrind: each
 * loop collected alone (--toggle-collect) and dumped when it returns (--dump-after), the
 * dumps numbered in call order. Return: 0; 1 if valgrind is not installed; -1 on failure.
 */
static int count_instructions(double per_check[COUNTED_WAYS])
{
	static char text[65536];
	char dir[96], out[128], log[128], dump[144], n[32], self[PATH_MAX];
	const char *tmpdir = getenv("TMPDIR");
	ssize_t len;
	int way, status, fd, ret = -1;
	pid_t pid;

	if (!tmpdir || !*tmpdir || strlen(tmpdir) > 64)
		tmpdir = "/tmp";
	snprintf(dir, sizeof(dir), "%.64s/ummunotify_bench.XXXXXX", tmpdir);
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len < 0)
		return fail("readlink /proc/self/exe");
	self[len] = 0;
	if (!mkdtemp(dir))
		return fail("mkdtemp");
	snprintf(out, sizeof(out), "%s/callgrind.out", dir);
	snprintf(log, sizeof(log), "%s/valgrind.log", dir);
	snprintf(n, sizeof(n), "%ld", opt.valgrind_checks);

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		fail("fork");
		goto out;
	}
	if (!pid) {
		char out_arg[160];

		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		snprintf(out_arg, sizeof(out_arg), "--callgrind-out-file=%s", out);
		/*
		 * One pattern for the toggles: callgrind keeps one setting per pattern, so
		 * toggling and dumping by the same name would leave only the dump.
		 */
		execlp("valgrind", "valgrind", "--tool=callgrind", out_arg,
		       "--toggle-collect=hit_loop_*", "--dump-after=hit_loop_shared_memory",
		       "--dump-after=hit_loop_read_syscall", "--dump-after=hit_loop_poll_syscall",
		       self, "--hit-loop", "all", n, (char *)NULL);
		_exit(errno == ENOENT ? 127 : 126);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			fail("waitpid");
			goto out;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		ret = 1;
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		failx("the hit loops failed under callgrind; its log:");
		if (read_file(log, text, sizeof(text)) > 0)
			fputs(text, stderr);
		goto out;
	}
	/* dumps 1..4: HIT_GENERATION, HIT_SLOT_BYTE, HIT_READ, HIT_POLL */
	for (way = 0; way < COUNTED_WAYS; way++) {
		static const char *const trigger[COUNTED_WAYS] = {
			"hit_loop_shared_memory", "hit_loop_shared_memory",
			"hit_loop_read_syscall", "hit_loop_poll_syscall",
		};
		const char *totals;

		snprintf(dump, sizeof(dump), "%s.%d", out, way + 1);
		if (read_file(dump, text, sizeof(text)) <= 0) {
			failx("no callgrind dump %s", dump);
			goto out;
		}
		totals = strstr(text, "\ntotals:");
		if (!strstr(text, trigger[way]) || !totals) {
			failx("callgrind dump %d is not of %s", way + 1, trigger[way]);
			goto out;
		}
		per_check[way] = strtod(totals + 8, NULL) / opt.valgrind_checks;
	}
	ret = 0;
out:
	for (way = 0; way <= COUNTED_WAYS; way++) {
		snprintf(dump, sizeof(dump), way ? "%s.%d" : "%s", out, way);
		unlink(dump);
	}
	unlink(log);
	rmdir(dir);
	return ret;
}

static double shared_check_ns = -1;	/* for section 4's comparison */

static int section_hit_check(struct hit_timing *timing)
{
	double instructions[COUNTED_WAYS], ratio[MAX_ROUNDS];
	char a[32], b[32], c[32], d[32], e[96];
	int counted = 1, r, way, status = 0;

	if (opt.valgrind)
		counted = count_instructions(instructions);
	if (counted == 1)
		printf("# bench: hit check, user-space instructions per check: not measured (%s)\n",
		       opt.valgrind ? "valgrind is not installed" : "--no-valgrind");
	else if (counted < 0)
		status = -1;
	else
		printf("# bench: hit check, user-space instructions per check (callgrind, %ld "
		       "checks; the kernel's instructions in a system call are not counted): "
		       "shared generation %s, slot byte (generation moved) %s, read() %s, "
		       "poll() %s; read()/shared generation = %sx\n",
		       opt.valgrind_checks, num(a, sizeof(a), instructions[HIT_GENERATION]),
		       num(b, sizeof(b), instructions[HIT_SLOT_BYTE]),
		       num(c, sizeof(c), instructions[HIT_READ]),
		       num(d, sizeof(d), instructions[HIT_POLL]),
		       num(e, sizeof(e), instructions[HIT_READ] / instructions[HIT_GENERATION]));

	if (run_child(hit_timing_child, timing, "timing hit checks"))
		return -1;
	for (r = 0; r < timing->rounds; r++)
		ratio[r] = timing->ns[HIT_READ][r] / timing->ns[HIT_GENERATION][r];
	printf("# bench: hit check, wall clock per check natively:");
	for (way = 0; way < HIT_WAYS; way++)
		printf("%s %s %s", way ? "," : "", hit_way_name[way],
		       dur(a, sizeof(a), median_of(timing->ns[way], timing->rounds)));
	printf("; read()/shared generation = %s\n",
	       ratio_text(e, sizeof(e), ratio, timing->rounds));
	for (r = 0; r < timing->rounds; r++)
		ratio[r] = timing->ns[HIT_POLL][r] / timing->ns[HIT_GENERATION][r];
	printf("# bench: hit check, poll()/shared generation = %s\n",
	       ratio_text(e, sizeof(e), ratio, timing->rounds));
	for (r = 0; r < timing->rounds; r++)
		ratio[r] = timing->ns[HIT_READ][r] / timing->ns[HIT_READ_ONE][r];
	printf("# bench: hit check, a read() that finds nothing: room for %d events/room for 1 = "
	       "%s (a non-blocking read() with nothing to report returns before it allocates "
	       "room for the events asked)\n", EVENTS_PER_READ,
	       ratio_text(e, sizeof(e), ratio, timing->rounds));
	shared_check_ns = median_of(timing->ns[HIT_GENERATION], timing->rounds);
	return status;
}

/* ------------------------------------------------------------------------------------------
 * 2 and 4. Changing watched memory, with each monitor
 */

enum monitor_kind {
	MONITOR_NONE,
	MONITOR_UMMUNOTIFY,		/* a thread reads the events as they come */
	MONITOR_UMMUNOTIFY_UNREAD,	/* nobody reads them until the end: the notifier alone */
	MONITOR_USERFAULTFD,
	MONITORS
};

static const char *const monitor_name[MONITORS] = {
	"no monitor", "ummunotify", "ummunotify unread", "userfaultfd",
};

enum workload {
	WORK_DISCARD,		/* madvise(MADV_DONTNEED) of one watched page */
	WORK_UNMAP,		/* munmap of one watched page, then mmap(MAP_FIXED) back */
	WORK_DISCARD_WRITE,	/* WORK_DISCARD, then a write to the page */
	WORKLOADS,
};

struct change_job {
	enum monitor_kind monitor;
	enum workload work;
	unsigned int reader_pause_us;	/* the monitor sleeps this long after each read */
};

struct change_result {
	long changes;
	double loop_ns;		/* the whole changing loop */
	double unmap_ns;	/* WORK_UNMAP: in munmap() */
	double reregister_ns;	/* WORK_UNMAP, userfaultfd: in UFFDIO_REGISTER after the remap */
	uint64_t events;	/* INVAL events, or userfaultfd UNMAP/REMOVE/REMAP messages, read */
	uint64_t marked;	/* userfaultfd: ranges (pages) its messages said changed */
	uint64_t reads;		/* read() calls that returned something */
	uint64_t faults;	/* userfaultfd page faults resolved */
	double read_span_ns;	/* from the loop's start to the last read that returned something */
	double check_ns;	/* userfaultfd: one non-blocking read() finding nothing */
};

/* The thread that reads what the monitor reports, and what it saw. */
struct monitor {
	enum monitor_kind kind;
	int fd;
	char *base;
	size_t ranges;
	unsigned int pause_us;
	const void *copy_source;	/* userfaultfd: a zeroed page to resolve faults with */
	uint8_t *changed;		/* userfaultfd: the monitor's own changed byte per range */
	uint64_t generation;		/* userfaultfd: moves after each batch of messages */
	int stop;
	double loop_start_ns;
	uint64_t events, reads, faults, marked, strange;
	double last_read_ns;
	int error;
	pthread_t thread;
};

static void monitor_mark(struct monitor *m, uint64_t start, uint64_t end)
{
	uint64_t base = (uintptr_t)m->base, top = base + m->ranges * page_size, i;

	if (end <= base || start >= top)
		return;
	start = start < base ? base : start;
	end = end > top ? top : end;
	for (i = (start - base) / page_size; i < (end - base + page_size - 1) / page_size; i++) {
		m->changed[i] = 1;
		m->marked++;
	}
}

static int monitor_resolve_fault(struct monitor *m, uint64_t address)
{
	struct uffdio_copy copy = {
		.dst = address & ~(uint64_t)(page_size - 1),
		.src = (uintptr_t)m->copy_source,
		.len = page_size,
	};

	while (ioctl(m->fd, UFFDIO_COPY, &copy)) {
		if (errno == EEXIST)
			return 0;
		/* EAGAIN: the address space was changing; the fault is still waiting */
		if (errno != EAGAIN)
			return -1;
		copy.copy = 0;
	}
	return 0;
}

/* Processes what one read() returned; -1 if a fault could not be resolved. */
static int monitor_take(struct monitor *m, const void *buf, size_t len)
{
	const struct ummunotify_event *ev = buf;
	const struct uffd_msg *msg = buf;
	size_t i;

	if (m->kind == MONITOR_UMMUNOTIFY) {
		for (i = 0; i < len / sizeof(*ev); i++) {
			if (ev[i].type == UMMUNOTIFY_EVENT_TYPE_INVAL)
				m->events++;
			if (ev[i].type == UMMUNOTIFY_EVENT_TYPE_INVAL ?
			    ev[i].user_cookie_counter >= m->ranges :
			    ev[i].type != UMMUNOTIFY_EVENT_TYPE_LAST)
				m->strange++;
		}
		return 0;
	}
	for (i = 0; i < len / sizeof(*msg); i++) {
		switch (msg[i].event) {
		case UFFD_EVENT_PAGEFAULT:
			if (monitor_resolve_fault(m, msg[i].arg.pagefault.address))
				return -1;
			m->faults++;
			break;
		case UFFD_EVENT_REMOVE:
		case UFFD_EVENT_UNMAP:
			monitor_mark(m, msg[i].arg.remove.start, msg[i].arg.remove.end);
			m->events++;
			break;
		case UFFD_EVENT_REMAP:
			monitor_mark(m, msg[i].arg.remap.from,
				     msg[i].arg.remap.from + msg[i].arg.remap.len);
			m->events++;
			break;
		default:
			m->strange++;
		}
	}
	/* what a cache would check, had it shared memory with this thread */
	__atomic_store_n(&m->generation, m->generation + 1, __ATOMIC_RELEASE);
	return 0;
}

/* Reads until nothing is left, then poll()s; ends when told to and nothing is left. */
static void *monitor_thread(void *arg)
{
	union {
		struct ummunotify_event events[EVENTS_PER_READ];
		struct uffd_msg msgs[64];
	} buf;
	struct monitor *m = arg;
	struct pollfd pfd = { .fd = m->fd, .events = POLLIN };
	bool stopping;
	ssize_t got;

	for (;;) {
		/* the changes are all made before the stop: a read after it sees them all */
		stopping = __atomic_load_n(&m->stop, __ATOMIC_ACQUIRE);
		got = read(m->fd, &buf, sizeof(buf));
		if (got < 0) {
			if (errno != EAGAIN) {
				m->error = errno;
				break;
			}
			if (stopping)
				break;
			if (poll(&pfd, 1, IDLE_POLL_MS) < 0 && errno != EINTR) {
				m->error = errno;
				break;
			}
			continue;
		}
		m->reads++;
		m->last_read_ns = now_ns();
		if (monitor_take(m, &buf, got)) {
			m->error = errno;
			break;
		}
		if (m->pause_us)
			usleep(m->pause_us);
	}
	return NULL;
}

/* The changing loop, for about opt.sample_s. */
static int change_loop(const struct change_job *job, char *base, int uffd,
		       struct change_result *out)
{
	double t0 = now_ns(), deadline = t0 + opt.sample_s * 1e9, a, b;
	long i;
	char *p;

	for (i = 0;; i++) {
		if (!(i % 16) && i && now_ns() >= deadline)
			break;
		p = base + (size_t)(i % opt.ranges) * page_size;
		switch (job->work) {
		case WORK_DISCARD_WRITE:
			if (madvise(p, page_size, MADV_DONTNEED))
				return fail("madvise(MADV_DONTNEED)");
			*(volatile char *)p = 1;
			break;
		case WORK_DISCARD:
			if (madvise(p, page_size, MADV_DONTNEED))
				return fail("madvise(MADV_DONTNEED)");
			break;
		case WORK_UNMAP:
			a = now_ns();
			if (munmap(p, page_size))
				return fail("munmap");
			out->unmap_ns += now_ns() - a;
			if (mmap(p, page_size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
				return fail("mmap(MAP_FIXED)");
			if (uffd >= 0) {
				/* a new mapping is a new VMA, which userfaultfd does not watch */
				b = now_ns();
				if (userfaultfd_watch(uffd, p, page_size))
					return fail("UFFDIO_REGISTER of a remapped page");
				out->reregister_ns += now_ns() - b;
			}
			break;
		default:
			abort();
		}
	}
	out->loop_ns = now_ns() - t0;
	out->changes = i;
	return 0;
}

/* Time of a non-blocking read() of a userfaultfd that has nothing to report. */
static double userfaultfd_check_ns(int uffd)
{
	struct uffd_msg msg;
	double t0 = now_ns(), t;
	long i, n = 0;

	do {
		for (i = 0; i < 256; i++, n++)
			if (read(uffd, &msg, sizeof(msg)) >= 0 || errno != EAGAIN)
				return -1;
		t = now_ns() - t0;
	} while (t < opt.check_sample_s * 1e9);
	return t / n;
}

static struct change_result *change_out;	/* in shared memory */

static int change_child(void *arg)
{
	const struct change_job *job = arg;
	struct change_result *out = change_out;
	struct monitor m = { .kind = job->monitor, .fd = -1, .ranges = opt.ranges,
			     .pause_us = job->reader_pause_us };
	size_t len = (size_t)opt.ranges * page_size, i;
	struct umn_watch w;
	int uffd = -1, err;

	memset(out, 0, sizeof(*out));
	m.base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m.base == MAP_FAILED)
		return fail("mmap");
	/* pages, not a huge page: a change discards one range, not a 2 MiB block */
	madvise(m.base, len, MADV_NOHUGEPAGE);
	switch (job->monitor) {
	case MONITOR_UMMUNOTIFY:
	case MONITOR_UMMUNOTIFY_UNREAD:
		if (umn_open(&w, false))
			return -1;
		for (i = 0; i < opt.ranges; i++)
			if (umn_watch_range(&w, m.base + i * page_size, page_size, i, NULL))
				return -1;
		if (job->monitor == MONITOR_UMMUNOTIFY)
			m.fd = w.fd;
		break;
	case MONITOR_USERFAULTFD:
		uffd = m.fd = userfaultfd_open();
		if (uffd < 0)
			return -1;
		/* the pages are the ranges: userfaultfd registers whole pages of whole VMAs */
		if (userfaultfd_watch(uffd, m.base, len))
			return fail("UFFDIO_REGISTER");
		m.changed = calloc(opt.ranges, 1);
		m.copy_source = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1,
				     0);
		if (!m.changed || m.copy_source == MAP_FAILED)
			return fail("allocating the monitor's state");
		out->check_ns = userfaultfd_check_ns(uffd);
		if (out->check_ns < 0)
			return fail("a non-blocking read() of the userfaultfd");
		break;
	default:
		break;
	}
	if (m.fd >= 0) {
		err = pthread_create(&m.thread, NULL, monitor_thread, &m);
		if (err) {
			errno = err;
			return fail("pthread_create");
		}
	}
	m.loop_start_ns = now_ns();
	err = change_loop(job, m.base, uffd, out);
	if (m.fd >= 0) {
		__atomic_store_n(&m.stop, 1, __ATOMIC_RELEASE);
		pthread_join(m.thread, NULL);
	}
	if (err)
		return -1;
	if (m.error) {
		errno = m.error;
		return fail(job->monitor == MONITOR_UMMUNOTIFY ? "the reader of " UMMUNOTIFY_PATH :
			    "the userfaultfd monitor");
	}
	if (m.strange)
		return failx("%s: %llu events of an unknown type or range",
			     monitor_name[job->monitor], (unsigned long long)m.strange);
	if (job->monitor == MONITOR_UMMUNOTIFY_UNREAD &&
	    umn_drain(&w, &m.events, &m.reads))
		return -1;
	out->events = m.events;
	out->reads = m.reads;
	out->faults = m.faults;
	out->marked = m.marked;
	out->read_span_ns = m.reads ? m.last_read_ns - m.loop_start_ns : 0;
	/* the monitor's file first: nobody is left to read what unmapping would tell it */
	if (uffd >= 0)
		close(uffd);
	return 0;
}

/*
 * How many watched ranges one change of one page reports: changes made one at a time, the
 * events read after each. 4 KiB pages (no huge page), all touched, one range per page.
 */
enum probe_change { PROBE_DISCARD, PROBE_UNMAP, PROBE_PROTECT, PROBES };

static const char *const probe_what[PROBES] = {
	"madvise(MADV_DONTNEED)", "munmap", "mprotect(PROT_READ)",
};

struct probe_result {
	long changes;
	uint64_t reported[PROBES], most[PROBES];
};

static struct probe_result *probe_out;	/* in shared memory */

static int probe_one(enum probe_change kind, struct probe_result *out)
{
	size_t len = (size_t)opt.ranges * page_size, i;
	struct umn_watch w;
	uint64_t reported;
	long n;
	char *base, *p;

	base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return fail("mmap");
	madvise(base, len, MADV_NOHUGEPAGE);
	memset(base, 1, len);
	if (umn_open(&w, false))
		return -1;
	for (i = 0; i < opt.ranges; i++)
		if (umn_watch_range(&w, base + i * page_size, page_size, i, NULL))
			return -1;
	if (umn_drain(&w, NULL, NULL))
		return -1;
	/* twice over every page: the first pass finds a mapping no change has split yet */
	out->changes = 2L * opt.ranges;
	for (n = 0; n < out->changes; n++) {
		p = base + (size_t)(n % opt.ranges) * page_size;
		switch (kind) {
		case PROBE_DISCARD:
			if (madvise(p, page_size, MADV_DONTNEED))
				return fail("madvise(MADV_DONTNEED)");
			break;
		case PROBE_UNMAP:
			if (munmap(p, page_size))
				return fail("munmap");
			break;
		case PROBE_PROTECT:
			if (mprotect(p, page_size, PROT_READ))
				return fail("mprotect");
			break;
		default:
			abort();
		}
		reported = 0;
		if (umn_drain(&w, &reported, NULL))
			return -1;
		out->reported[kind] += reported;
		if (reported > out->most[kind])
			out->most[kind] = reported;
		/* undone untimed and unread: the next change starts from the same layout */
		if (kind == PROBE_UNMAP &&
		    mmap(p, page_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			return fail("mmap(MAP_FIXED)");
		if (kind == PROBE_PROTECT && mprotect(p, page_size, PROT_READ | PROT_WRITE))
			return fail("mprotect");
		if (kind != PROBE_DISCARD && umn_drain(&w, NULL, NULL))
			return -1;
	}
	close(w.fd);
	munmap(base, len);
	return 0;
}

static int probe_child(void *arg)
{
	int kind;

	(void)arg;
	memset(probe_out, 0, sizeof(*probe_out));
	for (kind = 0; kind < PROBES; kind++)
		if (probe_one(kind, probe_out))
			return -1;
	return 0;
}

static void print_probe(const struct probe_result *probe)
{
	char a[PROBES][24], ratio[24];
	int kind;

	for (kind = 0; kind < PROBES; kind++)
		num(a[kind], sizeof(a[kind]), (double)probe->reported[kind] / probe->changes);
	printf("# bench: watched one-page ranges reported per change of one page (4 KiB pages, "
	       "events read after each change):");
	for (kind = 0; kind < PROBES; kind++)
		printf("%s %s %s (at most %llu)", kind ? "," : "", probe_what[kind], a[kind],
		       (unsigned long long)probe->most[kind]);
	printf("; munmap/madvise = %sx (a VMA split inside a 2 MiB block makes the kernel "
	       "invalidate the whole block, huge page or not: that is also why an mprotect, which "
	       "the module means not to report, is)\n",
	       num(ratio, sizeof(ratio), (double)probe->reported[PROBE_UNMAP] /
					 probe->reported[PROBE_DISCARD]));
}

/* A wake-up round trip between two threads: what each userfaultfd change waits for. */
static int wake_fd[2];

static void *echo_thread(void *arg)
{
	uint64_t v;

	(void)arg;
	while (read(wake_fd[0], &v, sizeof(v)) == sizeof(v) && v == 1)
		if (write(wake_fd[1], &v, sizeof(v)) != sizeof(v))
			break;
	return NULL;
}

static int roundtrip_child(void *arg)
{
	struct change_result *out = change_out;
	double t0, deadline;
	pthread_t thread;
	uint64_t v = 1;
	long n;
	int err;

	(void)arg;
	memset(out, 0, sizeof(*out));
	wake_fd[0] = eventfd(0, EFD_CLOEXEC);
	wake_fd[1] = eventfd(0, EFD_CLOEXEC);
	if (wake_fd[0] < 0 || wake_fd[1] < 0)
		return fail("eventfd");
	err = pthread_create(&thread, NULL, echo_thread, NULL);
	if (err) {
		errno = err;
		return fail("pthread_create");
	}
	t0 = now_ns();
	deadline = t0 + opt.sample_s / 2 * 1e9;
	for (n = 0; n == 0 || (n % 16) || now_ns() < deadline; n++)
		if (write(wake_fd[0], &v, sizeof(v)) != sizeof(v) ||
		    read(wake_fd[1], &v, sizeof(v)) != sizeof(v))
			return fail("eventfd ping-pong");
	out->loop_ns = now_ns() - t0;
	out->changes = n;
	v = 2;
	if (write(wake_fd[0], &v, sizeof(v)) != sizeof(v))
		return fail("eventfd");
	pthread_join(thread, NULL);
	return 0;
}

struct change_runs {
	int rounds;
	double roundtrip_ns[MAX_ROUNDS];
	struct change_result r[MAX_ROUNDS][WORKLOADS][MONITORS];
	/* WORK_DISCARD with a monitor slow to read: ummunotify's and userfaultfd's */
	struct change_result slow[MONITORS];
	bool userfaultfd;
};

#define SLOW_READER_PAUSE_US 1000

static int run_changes(struct change_runs *runs)
{
	struct change_job job = { 0 };
	int r, work, mon;

	runs->userfaultfd = section_wanted('4');
	runs->rounds = opt.rounds;
	for (r = 0; r < opt.rounds; r++) {
		if (runs->userfaultfd) {
			if (run_child(roundtrip_child, NULL, "a wake-up round trip"))
				return -1;
			runs->roundtrip_ns[r] = change_out->loop_ns / change_out->changes;
		}
		for (work = 0; work < WORKLOADS; work++) {
			for (mon = 0; mon < MONITORS; mon++) {
				if (mon == MONITOR_USERFAULTFD ? !runs->userfaultfd :
				    mon == MONITOR_UMMUNOTIFY_UNREAD && !section_wanted('2'))
					continue;
				job = (struct change_job){ .monitor = mon, .work = work };
				if (run_child(change_child, &job, monitor_name[mon]))
					return -1;
				runs->r[r][work][mon] = *change_out;
			}
		}
	}
	if (!runs->userfaultfd)
		return 0;
	for (mon = MONITOR_UMMUNOTIFY; mon < MONITORS; mon++) {
		if (mon == MONITOR_UMMUNOTIFY_UNREAD)
			continue;
		job = (struct change_job){ .monitor = mon, .work = WORK_DISCARD,
					   .reader_pause_us = SLOW_READER_PAUSE_US };
		if (run_child(change_child, &job, monitor_name[mon]))
			return -1;
		runs->slow[mon] = *change_out;
	}
	return 0;
}

static double per_change_ns(const struct change_result *c)
{
	return c->loop_ns / c->changes;
}

/* The median over rounds of one figure of one workload and monitor. */
static double change_median(const struct change_runs *runs, int work, int mon,
			    double (*figure)(const struct change_result *))
{
	double v[MAX_ROUNDS];
	int r;

	for (r = 0; r < runs->rounds; r++)
		v[r] = figure(&runs->r[r][work][mon]);
	return median_of(v, runs->rounds);
}

/* Per round, figure(a) / figure(b). */
static const char *change_ratio(char *buf, size_t size, const struct change_runs *runs,
				int work, int mon_a, int mon_b,
				double (*figure)(const struct change_result *))
{
	double v[MAX_ROUNDS];
	int r;

	for (r = 0; r < runs->rounds; r++)
		v[r] = figure(&runs->r[r][work][mon_a]) / figure(&runs->r[r][work][mon_b]);
	return ratio_text(buf, size, v, runs->rounds);
}

static double changes_per_s(const struct change_result *c)
{
	return c->changes / (c->loop_ns / 1e9);
}

static double events_per_s(const struct change_result *c)
{
	return c->read_span_ns > 0 ? c->events / (c->read_span_ns / 1e9) : 0;
}

static double events_per_change(const struct change_result *c)
{
	return (double)c->events / c->changes;
}

static double events_per_read(const struct change_result *c)
{
	return c->reads ? (double)c->events / c->reads : 0;
}

static double unmap_ns(const struct change_result *c)
{
	return c->unmap_ns / c->changes;
}

static double reregister_ns(const struct change_result *c)
{
	return c->reregister_ns / c->changes;
}

static double check_ns(const struct change_result *c)
{
	return c->check_ns;
}

static const char *const work_what[WORKLOADS] = {
	"madvise(MADV_DONTNEED) of one watched page",
	"munmap of one watched page (then mmap(MAP_FIXED) back, not timed)",
	"a discard and a write fault of one watched page",
};

/* What each workload is timed by. */
static double (*const work_figure[WORKLOADS])(const struct change_result *) = {
	per_change_ns, unmap_ns, per_change_ns,
};

static void print_events(const struct change_runs *runs)
{
	char a[32], b[32], c[32], d[32], e[96], f[96];
	int work;

	const struct change_result *unread = &runs->r[0][WORK_DISCARD][MONITOR_UMMUNOTIFY_UNREAD];

	printf("# bench: events, %u one-page ranges of one mapping, one madvise(MADV_DONTNEED) of "
	       "one range per change: %s changes/s performed, %s INVAL events/s read, %s ranges "
	       "per read() (a reader thread reading until EAGAIN, then poll()); events "
	       "read/changes made = %sx (a range changed again before it was read is reported "
	       "once)\n",
	       opt.ranges,
	       num(a, sizeof(a),
		   change_median(runs, WORK_DISCARD, MONITOR_UMMUNOTIFY, changes_per_s)),
	       num(b, sizeof(b),
		   change_median(runs, WORK_DISCARD, MONITOR_UMMUNOTIFY, events_per_s)),
	       num(c, sizeof(c), change_median(runs, WORK_DISCARD, MONITOR_UMMUNOTIFY,
					       events_per_read)),
	       num(d, sizeof(d), change_median(runs, WORK_DISCARD, MONITOR_UMMUNOTIFY,
					       events_per_change)));
	printf("# bench: events with nobody reading: %ld changes left %llu INVAL events to read in "
	       "%llu read() calls (each changed range once: nothing is queued); events/changes = "
	       "%sx\n",
	       unread->changes, (unsigned long long)unread->events,
	       (unsigned long long)unread->reads, num(a, sizeof(a), events_per_change(unread)));
	for (work = 0; work < WORKLOADS; work++) {
		double (*figure)(const struct change_result *) = work_figure[work];

		printf("# bench: ummunotify overhead on %s: %s with a reader thread, %s with "
		       "nobody reading (the notifier alone), %s in a process with no ummunotify "
		       "file open; time with a reader/without = %s, nobody reading/without = %s\n",
		       work_what[work],
		       dur(a, sizeof(a), change_median(runs, work, MONITOR_UMMUNOTIFY, figure)),
		       dur(b, sizeof(b),
			   change_median(runs, work, MONITOR_UMMUNOTIFY_UNREAD, figure)),
		       dur(c, sizeof(c), change_median(runs, work, MONITOR_NONE, figure)),
		       change_ratio(e, sizeof(e), runs, work, MONITOR_UMMUNOTIFY, MONITOR_NONE,
				    figure),
		       change_ratio(f, sizeof(f), runs, work, MONITOR_UMMUNOTIFY_UNREAD,
				    MONITOR_NONE, figure));
	}
}

/* ------------------------------------------------------------------------------------------
 * 3. Memory per watched range
 */

struct memory_result {
	unsigned long ranges;
	struct memory_delta delta;
	double register_ns;		/* per ioctl */
	double info_ns;			/* per UMMUNOTIFY_GET_INFO: the bare ioctl */
	double unmap_ns;		/* one munmap over all the ranges */
	double unmap_unwatched_ns;	/* the same munmap before the file was opened */
	double drain_ns;
	uint64_t events, reads;
	unsigned long unregistered;
	double unregister_ns;		/* per ioctl */
	double close_ns;		/* close() of the file with the rest still registered */
};

static struct memory_result *memory_out;	/* in shared memory */

/* Registrations between two runs of bare ioctls, and how many of these each run makes. */
#define INFO_EVERY 10000
#define INFO_CALLS 100

static int memory_child(void *arg)
{
	struct memory_result *out = memory_out;
	unsigned long n = *(unsigned long *)arg, i, j, next, info_calls = 0;
	size_t len = n * page_size;
	struct memory_snapshot before, after;
	struct ummunotify_info info;
	struct cgroup_probe cg;
	struct umn_watch w;
	double t0;
	char *base;

	memset(out, 0, sizeof(*out));
	out->ranges = n;
	base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return fail("mmap of the reservation");
	t0 = now_ns();
	if (munmap(base, len))
		return fail("munmap");
	out->unmap_unwatched_ns = now_ns() - t0;
	base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return fail("mmap of the reservation");

	cgroup_enter(&cg);
	if (umn_open(&w, false))
		return -1;

	memory_settle();
	if (memory_snapshot(&before, &cg))
		return -1;
	/* bare ioctls between batches of registrations: both timed under the same load */
	for (i = 0; i < n; i = next) {
		next = n - i < INFO_EVERY ? n : i + INFO_EVERY;
		t0 = now_ns();
		for (j = i; j < next; j++)
			if (umn_watch_range(&w, base + j * page_size, page_size, j, NULL))
				return failx("after %lu ranges registered", j);
		out->register_ns += now_ns() - t0;
		t0 = now_ns();
		for (j = 0; j < INFO_CALLS; j++)
			if (ioctl(w.fd, UMMUNOTIFY_GET_INFO, &info))
				return fail("UMMUNOTIFY_GET_INFO");
		out->info_ns += now_ns() - t0;
		info_calls += INFO_CALLS;
	}
	out->register_ns /= n;
	out->info_ns /= info_calls;
	if (memory_snapshot(&after, &cg))
		return -1;
	out->delta = memory_delta(&before, &after, n);

	t0 = now_ns();
	if (munmap(base, len))
		return fail("munmap");
	out->unmap_ns = now_ns() - t0;
	t0 = now_ns();
	if (umn_drain(&w, &out->events, &out->reads))
		return -1;
	out->drain_ns = now_ns() - t0;
	if (out->events != n)
		return failx("one munmap over %lu watched ranges: %llu INVAL events read", n,
			     (unsigned long long)out->events);

	out->unregistered = opt.unregister_ranges < n ? opt.unregister_ranges : n;
	t0 = now_ns();
	for (i = 0; i < out->unregistered; i++) {
		uint64_t cookie = i;

		if (ioctl(w.fd, UMMUNOTIFY_UNREGISTER_REGION, &cookie))
			return fail("UMMUNOTIFY_UNREGISTER_REGION");
	}
	out->unregister_ns = out->unregistered ? (now_ns() - t0) / out->unregistered : 0;
	t0 = now_ns();
	close(w.fd);
	out->close_ns = now_ns() - t0;
	cgroup_leave(&cg);
	return 0;
}

/* 3: the ranges, and max_ranges raised for them if need be (restored after). */
static int measure_memory(struct memory_result *result)
{
	unsigned long n = opt.memory_ranges;
	long long old_max = read_number_file(MAX_RANGES_PARAM);
	bool raised = false;
	char text[32];
	int ret;

	if (old_max >= 0 && (unsigned long long)old_max < n) {
		snprintf(text, sizeof(text), "%lu", n);
		raised = !write_file(MAX_RANGES_PARAM, text);
		if (!raised) {
			printf("# %s: max_ranges is %lld and cannot be raised: measuring %lld "
			       "ranges\n", prog, old_max, old_max);
			n = old_max;
		}
	}
	ret = run_child(memory_child, &n, "registering many ranges");
	if (raised) {
		snprintf(text, sizeof(text), "%lld", old_max);
		write_file(MAX_RANGES_PARAM, text);
	}
	if (ret)
		return -1;
	*result = *memory_out;
	return 0;
}

static void print_memory(const struct memory_result *result)
{
	char a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[32], text[256];
	unsigned long n = result->ranges, left = n - result->unregistered;

	double per_range = result->delta.has_cgroup ? result->delta.cgroup : result->delta.slab;

	printf("# bench: memory per watched range, %lu one-page ranges: %s per range; kernel "
	       "memory/memory watched = %s%% (%s, over a %zu-byte page)\n", n,
	       memory_text(text, sizeof(text), &result->delta),
	       num(a, sizeof(a), 100 * per_range / page_size),
	       result->delta.has_cgroup ? "memory cgroup" : "Slab", page_size);
	printf("# bench: registering %lu ranges: %s per UMMUNOTIFY_REGISTER_REGION_SLOT, %s per "
	       "bare ioctl (UMMUNOTIFY_GET_INFO); register/bare ioctl = %sx\n",
	       n, dur(a, sizeof(a), result->register_ns), dur(b, sizeof(b), result->info_ns),
	       num(c, sizeof(c), result->register_ns / result->info_ns));
	printf("# bench: one munmap over all %lu watched ranges: %s (%s per range, in batches of 1024 "
	       "under the file's spinlock), %s before the file was opened; with/without = %sx\n",
	       n, dur(a, sizeof(a), result->unmap_ns), dur(b, sizeof(b), result->unmap_ns / n),
	       dur(c, sizeof(c), result->unmap_unwatched_ns),
	       num(d, sizeof(d), result->unmap_ns / result->unmap_unwatched_ns));
	printf("# bench: draining their %llu INVAL events: %s in %llu read() calls (%s per range, "
	       "%s per read()); drain/munmap = %sx\n",
	       (unsigned long long)result->events, dur(a, sizeof(a), result->drain_ns),
	       (unsigned long long)result->reads, dur(b, sizeof(b), result->drain_ns / n),
	       dur(c, sizeof(c), result->drain_ns / result->reads),
	       num(d, sizeof(d), result->drain_ns / result->unmap_ns));
	printf("# bench: unregistering %lu of them: %s per UMMUNOTIFY_UNREGISTER_REGION "
	       "(unregister/register = %sx); close() with %lu still registered: %s (%s per "
	       "range)\n",
	       result->unregistered, dur(e, sizeof(e), result->unregister_ns),
	       num(f, sizeof(f), result->unregister_ns / result->register_ns),
	       left, dur(g, sizeof(g), result->close_ns), dur(h, sizeof(h), result->close_ns /
								  (left ? left : 1)));
}

/* ------------------------------------------------------------------------------------------
 * 4. Against a userfaultfd monitor
 */

struct uffd_memory_result {
	unsigned int ranges;
	struct memory_delta delta;
	long vmas_before, vmas_after;
	long max_map_count;
	int file_errno;		/* UFFDIO_REGISTER of a file mapping: 0 if accepted */
};

static struct uffd_memory_result *uffd_memory_out;	/* in shared memory */

static long count_vmas(void)
{
	char buf[65536];
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	long lines = 0;
	ssize_t n, i;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (i = 0; i < n; i++)
			lines += buf[i] == '\n';
	close(fd);
	return lines;
}

static int uffd_memory_child(void *arg)
{
	struct uffd_memory_result *out = uffd_memory_out;
	struct memory_snapshot before, after;
	struct cgroup_probe cg;
	unsigned int n = opt.uffd_memory_ranges, i;
	int uffd, exe;
	char *base;
	void *file;

	(void)arg;
	memset(out, 0, sizeof(*out));
	/* every other page registered: each range a VMA of its own, and one between */
	out->max_map_count = read_number_file("/proc/sys/vm/max_map_count");
	if (out->max_map_count > 0 && 2UL * n + 1000 > (unsigned long)out->max_map_count)
		n = (out->max_map_count - 1000) / 2;
	out->ranges = n;
	base = mmap(NULL, 2UL * n * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return fail("mmap");
	uffd = userfaultfd_open();
	if (uffd < 0)
		return -1;
	cgroup_enter(&cg);
	out->vmas_before = count_vmas();
	memory_settle();
	if (memory_snapshot(&before, &cg))
		return -1;
	for (i = 0; i < n; i++)
		if (userfaultfd_watch(uffd, base + 2UL * i * page_size, page_size))
			return fail("UFFDIO_REGISTER");
	if (memory_snapshot(&after, &cg))
		return -1;
	out->vmas_after = count_vmas();
	out->delta = memory_delta(&before, &after, n);

	/* memory a registration cache meets that is neither anonymous, shmem nor hugetlbfs */
	exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (exe < 0)
		return fail("open /proc/self/exe");
	file = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE, exe, 0);
	if (file == MAP_FAILED)
		return fail("mmap of /proc/self/exe");
	out->file_errno = userfaultfd_watch(uffd, file, page_size) ? errno : 0;
	close(uffd);
	cgroup_leave(&cg);
	return 0;
}

static double marked_per_change(const struct change_result *c)
{
	return (double)c->marked / c->changes;
}

static void print_userfaultfd(const struct change_runs *runs, const struct probe_result *probe,
			      const struct memory_result *umn_memory,
			      const struct uffd_memory_result *uffd_memory)
{
	const struct change_result *slow_umn = &runs->slow[MONITOR_UMMUNOTIFY];
	const struct change_result *slow_uffd = &runs->slow[MONITOR_USERFAULTFD];
	char vmas[32], umn[192], text[256];
	double reregister, uffd_unmap;
	char a[32], b[32], c[32], d[32], e[96];
	double uffd_check;

	printf("# bench: userfaultfd vs ummunotify, madvise(MADV_DONTNEED) of one watched page: "
	       "ummunotify %s, userfaultfd %s (each REMOVE message waits until the monitor reads "
	       "it), no monitor %s per change; userfaultfd/ummunotify = %s\n",
	       dur(a, sizeof(a),
		   change_median(runs, WORK_DISCARD, MONITOR_UMMUNOTIFY, per_change_ns)),
	       dur(b, sizeof(b), change_median(runs, WORK_DISCARD, MONITOR_USERFAULTFD,
					       per_change_ns)),
	       dur(c, sizeof(c), change_median(runs, WORK_DISCARD, MONITOR_NONE, per_change_ns)),
	       change_ratio(e, sizeof(e), runs, WORK_DISCARD, MONITOR_USERFAULTFD,
			    MONITOR_UMMUNOTIFY, per_change_ns));
	{
		double v[MAX_ROUNDS];
		int r;

		for (r = 0; r < runs->rounds; r++)
			v[r] = per_change_ns(&runs->r[r][WORK_DISCARD][MONITOR_USERFAULTFD]) /
			       runs->roundtrip_ns[r];
		printf("# bench: context, a wake-up round trip between two threads (eventfd "
		       "ping-pong): %s; userfaultfd's madvise/round trip = %s (each change waits "
		       "for a wake-up of the monitor and one back)\n",
		       dur(a, sizeof(a), median_of(runs->roundtrip_ns, runs->rounds)),
		       ratio_text(e, sizeof(e), v, runs->rounds));
	}
	printf("# bench: userfaultfd vs ummunotify, events per change: ummunotify %s INVAL (a "
	       "range changed again before it is read is reported once), userfaultfd %s messages "
	       "(one queued per change; the changing thread waits for each)\n",
	       num(a, sizeof(a), change_median(runs, WORK_DISCARD, MONITOR_UMMUNOTIFY,
					       events_per_change)),
	       num(b, sizeof(b), change_median(runs, WORK_DISCARD, MONITOR_USERFAULTFD,
					       events_per_change)));
	printf("# bench: userfaultfd vs ummunotify, munmap latency of one watched page: ummunotify "
	       "%s, userfaultfd %s (the UNMAP message waits until the monitor reads it), no "
	       "monitor %s; userfaultfd/ummunotify = %s\n",
	       dur(a, sizeof(a), change_median(runs, WORK_UNMAP, MONITOR_UMMUNOTIFY, unmap_ns)),
	       dur(b, sizeof(b), change_median(runs, WORK_UNMAP, MONITOR_USERFAULTFD, unmap_ns)),
	       dur(c, sizeof(c), change_median(runs, WORK_UNMAP, MONITOR_NONE, unmap_ns)),
	       change_ratio(e, sizeof(e), runs, WORK_UNMAP, MONITOR_USERFAULTFD, MONITOR_UMMUNOTIFY,
			    unmap_ns));
	if (probe->changes) {
		double umn_ranges = (double)probe->reported[PROBE_UNMAP] / probe->changes;
		double uffd_ranges = change_median(runs, WORK_UNMAP, MONITOR_USERFAULTFD,
						   marked_per_change);

		printf("# bench: userfaultfd vs ummunotify, watched ranges reported per munmap of "
		       "one page: ummunotify %s (the kernel's invalidation covers the 2 MiB block "
		       "around a VMA split), userfaultfd %s (its UNMAP message has the unmapped "
		       "range); ummunotify/userfaultfd = %sx\n",
		       num(a, sizeof(a), umn_ranges), num(b, sizeof(b), uffd_ranges),
		       num(c, sizeof(c), umn_ranges / uffd_ranges));
	}
	reregister = change_median(runs, WORK_UNMAP, MONITOR_USERFAULTFD, reregister_ns);
	uffd_unmap = change_median(runs, WORK_UNMAP, MONITOR_USERFAULTFD, unmap_ns);
	printf("# bench: userfaultfd vs ummunotify, after mmap(MAP_FIXED) over a watched page: "
	       "userfaultfd must register the new VMA again, %s per UFFDIO_REGISTER (%sx its "
	       "munmap); ummunotify watches addresses and needs nothing\n",
	       dur(a, sizeof(a), reregister), num(b, sizeof(b), reregister / uffd_unmap));
	printf("# bench: userfaultfd vs ummunotify, discard then write the page again: ummunotify "
	       "%s, userfaultfd %s (missing-mode registration: the write fault waits for the "
	       "monitor's UFFDIO_COPY), no monitor %s; userfaultfd/ummunotify = %s\n",
	       dur(a, sizeof(a), change_median(runs, WORK_DISCARD_WRITE, MONITOR_UMMUNOTIFY,
					       per_change_ns)),
	       dur(b, sizeof(b), change_median(runs, WORK_DISCARD_WRITE, MONITOR_USERFAULTFD,
					       per_change_ns)),
	       dur(c, sizeof(c), change_median(runs, WORK_DISCARD_WRITE, MONITOR_NONE,
					       per_change_ns)),
	       change_ratio(e, sizeof(e), runs, WORK_DISCARD_WRITE, MONITOR_USERFAULTFD,
			    MONITOR_UMMUNOTIFY, per_change_ns));
	printf("# bench: userfaultfd vs ummunotify, a monitor that sleeps %d us after each read: "
	       "ummunotify %s per change (%s ranges per read, %s%% of the changes reported), "
	       "userfaultfd %s per change (the changing thread waits for the monitor); "
	       "userfaultfd/ummunotify = %sx (one round)\n",
	       SLOW_READER_PAUSE_US, dur(a, sizeof(a), per_change_ns(slow_umn)),
	       num(b, sizeof(b), events_per_read(slow_umn)),
	       num(c, sizeof(c), 100 * events_per_change(slow_umn)),
	       dur(d, sizeof(d), per_change_ns(slow_uffd)),
	       num(e, sizeof(e), per_change_ns(slow_uffd) / per_change_ns(slow_umn)));
	uffd_check = change_median(runs, WORK_DISCARD, MONITOR_USERFAULTFD, check_ns);
	if (shared_check_ns > 0)
		printf("# bench: userfaultfd vs ummunotify, cache hit check: userfaultfd needs a "
		       "system call, as nothing in memory shows a change before its monitor has "
		       "read and handled the message (after the changing call returned): "
		       "non-blocking read() %s; ummunotify shared generation %s; "
		       "userfaultfd/ummunotify = %sx\n",
		       dur(a, sizeof(a), uffd_check), dur(b, sizeof(b), shared_check_ns),
		       num(c, sizeof(c), uffd_check / shared_check_ns));
	else
		printf("# bench: userfaultfd vs ummunotify, cache hit check: userfaultfd needs a "
		       "system call: non-blocking read() %s\n", dur(a, sizeof(a), uffd_check));
	if (!uffd_memory)
		return;
	num(vmas, sizeof(vmas), (double)(uffd_memory->vmas_after - uffd_memory->vmas_before) /
					uffd_memory->ranges);
	if (!umn_memory)
		snprintf(umn, sizeof(umn), "not measured (section 3 not run)");
	else if (umn_memory->delta.has_cgroup && uffd_memory->delta.has_cgroup)
		snprintf(umn, sizeof(umn), "memory cgroup %s, Slab %s (section 3); "
			 "userfaultfd/ummunotify = %sx by the memory cgroup, %sx by Slab",
			 signed_bytes(a, sizeof(a), umn_memory->delta.cgroup),
			 signed_bytes(b, sizeof(b), umn_memory->delta.slab),
			 num(c, sizeof(c), uffd_memory->delta.cgroup / umn_memory->delta.cgroup),
			 num(d, sizeof(d), uffd_memory->delta.slab / umn_memory->delta.slab));
	else
		snprintf(umn, sizeof(umn),
			 "Slab %s (section 3); userfaultfd/ummunotify = %sx by Slab",
			 signed_bytes(a, sizeof(a), umn_memory->delta.slab),
			 num(b, sizeof(b), uffd_memory->delta.slab / umn_memory->delta.slab));
	printf("# bench: userfaultfd vs ummunotify, kernel memory per watched range "
	       "(%u non-adjacent pages): userfaultfd %s (it registers whole pages, each range "
	       "becoming VMAs of its own: %s more VMAs per range, and vm.max_map_count %ld caps "
	       "the ranges); ummunotify %s\n",
	       uffd_memory->ranges, memory_text(text, sizeof(text), &uffd_memory->delta), vmas,
	       uffd_memory->max_map_count, umn);
	printf("# bench: userfaultfd vs ummunotify, watching a private file mapping: userfaultfd "
	       "%s; ummunotify watches any address range\n",
	       uffd_memory->file_errno ?
		       (snprintf(e, sizeof(e), "refuses it (UFFDIO_REGISTER: %s)",
				 strerror(uffd_memory->file_errno)), e) :
		       "accepted it");
}

/* ------------------------------------------------------------------------------------------
 * Main
 */

struct shared_results {
	struct hit_timing hit;
	struct change_result change;
	struct probe_result probe;
	struct memory_result memory;
	struct uffd_memory_result uffd_memory;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [--quick] [-r ROUNDS] [-s SECTIONS] [--ranges N] [--no-valgrind]\n"
		"  --quick        every size shrunk, for CI (well under a minute in a TCG guest)\n"
		"  -r ROUNDS      rounds of each interleaved comparison (default 5, --quick 3)\n"
		"  -s SECTIONS    which of 1 (hit check), 2 (events), 3 (memory), 4 (userfaultfd)\n"
		"                 to run, e.g. -s 13 (default 1234)\n"
		"  --ranges N     ranges watched in the memory section (default 1000000)\n"
		"  --no-valgrind  skip counting instructions with callgrind\n"
		"  --hit-loop free|syscall|all N\n"
		"                 only run N hit checks of each kind (what callgrind counts)\n",
		prog);
}

int main(int argc, char **argv)
{
	enum { OPT_QUICK = 256, OPT_RANGES, OPT_NO_VALGRIND, OPT_HIT_LOOP };
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, OPT_QUICK },
		{ "ranges", required_argument, NULL, OPT_RANGES },
		{ "no-valgrind", no_argument, NULL, OPT_NO_VALGRIND },
		{ "hit-loop", required_argument, NULL, OPT_HIT_LOOP },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *hit_loop_kind = NULL;
	unsigned long ranges = 0;
	struct shared_results *shared;
	struct change_runs *runs;
	struct memory_result umn_memory;
	struct uffd_memory_result uffd_memory;
	bool have_umn_memory = false, have_uffd_memory = false;
	struct umn_watch probe;
	struct utsname uts;
	int c, rounds = 0, status = 0;
	double t0 = now_ns();
	char t[32];

	page_size = sysconf(_SC_PAGESIZE);
	opt.sections = "1234";
	opt.valgrind = true;
	while ((c = getopt_long(argc, argv, "hr:s:", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_QUICK:
			opt.quick = true;
			break;
		case OPT_RANGES:
			ranges = strtoul(optarg, NULL, 0);
			break;
		case OPT_NO_VALGRIND:
			opt.valgrind = false;
			break;
		case OPT_HIT_LOOP:
			hit_loop_kind = optarg;
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 's':
			opt.sections = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (hit_loop_kind) {
		if (optind != argc - 1) {
			usage(stderr);
			return 2;
		}
		return run_hit_loops(hit_loop_kind, atol(argv[optind])) ? 1 : 0;
	}
	if (optind != argc || rounds < 0 || rounds > MAX_ROUNDS) {
		usage(stderr);
		return 2;
	}
	opt.rounds = rounds ? rounds : opt.quick ? 3 : 5;
	opt.ranges = 1024;
	opt.memory_ranges = ranges ? ranges : opt.quick ? 100000 : 1000000;
	opt.unregister_ranges = opt.memory_ranges / 10;
	opt.uffd_memory_ranges = opt.quick ? 5000 : 20000;
	opt.sample_s = opt.quick ? 0.05 : 0.25;
	opt.check_sample_s = opt.quick ? 0.01 : 0.05;
	opt.valgrind_checks = opt.quick ? 2000 : 20000;

	/* children's output goes through the same pipe: each line whole, in order */
	setvbuf(stdout, NULL, _IOLBF, 0);
	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	runs = calloc(1, sizeof(*runs));
	if (shared == MAP_FAILED || !runs) {
		fail("allocating the results");
		return 1;
	}
	change_out = &shared->change;
	memory_out = &shared->memory;
	probe_out = &shared->probe;
	uffd_memory_out = &shared->uffd_memory;

	if (umn_open(&probe, false))
		return 1;
	close(probe.fd);
	uname(&uts);
	printf("# %s on Linux %s: ummunotify ABI %u, max_ranges %u, %ld CPUs%s\n", prog,
	       uts.release, probe.info.abi_version, probe.info.max_ranges,
	       sysconf(_SC_NPROCESSORS_ONLN), opt.quick ? ", --quick" : "");

	if (section_wanted('1')) {
		if (section_hit_check(&shared->hit))
			status = 1;
	}
	/*
	 * The memory measurements before the others: the memory other children freed settles
	 * slowly, and blurs what /proc/meminfo says of kernel memory.
	 */
	if (section_wanted('4')) {
		if (run_child(uffd_memory_child, NULL, "userfaultfd memory")) {
			status = 1;
		} else {
			uffd_memory = *uffd_memory_out;
			have_uffd_memory = true;
		}
	}
	if (section_wanted('3')) {
		if (measure_memory(&umn_memory))
			status = 1;
		else
			have_umn_memory = true;
	}
	if (section_wanted('2') || section_wanted('4')) {
		if (run_changes(runs)) {
			status = 1;
			runs->rounds = 0;
		} else if (section_wanted('2')) {
			print_events(runs);
		}
		if (run_child(probe_child, NULL, "ranges reported per change")) {
			status = 1;
			probe_out->changes = 0;
		} else if (section_wanted('2')) {
			print_probe(probe_out);
		}
	}
	if (have_umn_memory)
		print_memory(&umn_memory);
	if (section_wanted('4')) {
		if (runs->rounds)
			print_userfaultfd(runs, probe_out, have_umn_memory ? &umn_memory : NULL,
					  have_uffd_memory ? &uffd_memory : NULL);
	}
	printf("# %s: %s in %s\n", prog, status ? "FAILED" : "done",
	       dur(t, sizeof(t), now_ns() - t0));
	return status;
}
