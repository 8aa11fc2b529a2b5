// SPDX-License-Identifier: GPL-2.0-only
/*
 * ummunotify: /dev/ummunotify checked against what the program does to its memory. Prints
 * TAP version 13. Run as root in a guest with ummunotify.ko loaded:
 *
 *   ummunotify [-n RANGES] [-t SECONDS]
 *   ummunotify --hold N      (a process watching N ranges, for the control plane's test)
 *
 * Every way of changing the memory behind an address is done to a watched range, next to a
 * watched range it must not touch, and the program checks what the kernel says: which
 * cookies read() reports, with which flags and exact hint, the per-range byte in the shared
 * mapping, the generation. Then: the proposal's scenario (munmap, mmap again at the same
 * address), dirty-bit coalescing, read()'s rules, poll, epoll and SIGIO, bad ioctls and
 * mappings, fork, exec, a watched process that exits, threads registering, unregistering and
 * unmapping at once, and RANGES watched ranges (1000000 by default) in one file.
 * Page migration needs a second NUMA node; without one that case is skipped. The program
 * turns automatic NUMA balancing off, which would move its pages on its own.
 *
 * Exit status: 0 if every test passed, 1 otherwise, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "../../driver/uapi/ummunotify.h"

#define PG 4096ul
#define MAX_REPORTS 2048
/* move_pages(2) flag, from <linux/mempolicy.h> */
#define MF_MOVE 2

static struct {
	long ranges;		/* -n */
	double thread_secs;	/* -t */
	int num;
	int failed;
	const char *self;	/* argv[0], for exec */
} g = { .ranges = 1000000, .thread_secs = 3 };

/* ---- TAP ------------------------------------------------------------------------------- */

static void ok(bool pass, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ok(bool pass, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", pass ? "" : "not ", ++g.num);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!pass)
		g.failed++;
}

static void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bail(const char *fmt, ...)
{
	va_list ap;

	fputs("Bail out! ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" (%s)\n", strerror(errno));
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the device ------------------------------------------------------------------------ */

struct umn {
	int fd;
	struct ummunotify_info info;
	const volatile struct ummunotify_shared *shared;
	const volatile uint8_t *bytes;	/* slot 0's byte */
};

/* What one drain of the file reported. */
struct report {
	int n;			/* INVAL records */
	struct ummunotify_event inval[MAX_REPORTS];
	int more;		/* INVAL records beyond inval[] */
	int lasts;
	uint64_t last_gen;
};

static void umn_open(struct umn *u, uint32_t features)
{
	u->fd = open(UMMUNOTIFY_PATH, O_RDONLY | O_CLOEXEC);
	if (u->fd < 0)
		bail("open %s (is ummunotify.ko loaded?)", UMMUNOTIFY_PATH);
	if (features && ioctl(u->fd, UMMUNOTIFY_EXCHANGE_FEATURES, &features))
		bail("UMMUNOTIFY_EXCHANGE_FEATURES");
	if (ioctl(u->fd, UMMUNOTIFY_GET_INFO, &u->info))
		bail("UMMUNOTIFY_GET_INFO");
	u->shared = mmap(NULL, u->info.map_size, PROT_READ, MAP_SHARED, u->fd, 0);
	if (u->shared == MAP_FAILED)
		bail("mmap of %" PRIu64 " bytes", (uint64_t)u->info.map_size);
	u->bytes = (const volatile uint8_t *)u->shared + u->info.slot_offset;
}

static void umn_close(struct umn *u)
{
	munmap((void *)u->shared, u->info.map_size);
	close(u->fd);
}

/* Returns 0 or the errno of the ioctl. */
static int reg(struct umn *u, const void *start, size_t len, uint64_t cookie, uint32_t *slot)
{
	struct ummunotify_register_ioctl r = {
		.start = (uintptr_t)start, .end = (uintptr_t)start + len, .user_cookie = cookie,
	};

	if (ioctl(u->fd, UMMUNOTIFY_REGISTER_REGION_SLOT, &r))
		return errno;
	if (slot)
		*slot = r.slot;
	return 0;
}

static int unreg(struct umn *u, uint64_t cookie)
{
	return ioctl(u->fd, UMMUNOTIFY_UNREGISTER_REGION, &cookie) ? errno : 0;
}

static uint64_t gen(const struct umn *u)
{
	return __atomic_load_n(&u->shared->generation, __ATOMIC_ACQUIRE);
}

static bool changed(const struct umn *u, uint32_t slot)
{
	return u->bytes[slot] != 0;
}

/* Reads everything pending without blocking. Returns 0 or the errno of a failed read. */
static int drain(struct umn *u, struct report *rep)
{
	struct ummunotify_event ev[128];
	int fl = fcntl(u->fd, F_GETFL);
	ssize_t n;
	int err = 0;

	memset(rep, 0, sizeof(*rep));
	fcntl(u->fd, F_SETFL, fl | O_NONBLOCK);
	for (;;) {
		n = read(u->fd, ev, sizeof(ev));
		if (n < 0) {
			err = errno == EAGAIN ? 0 : errno;
			break;
		}
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(ev[0]); i++) {
			if (ev[i].type == UMMUNOTIFY_EVENT_TYPE_LAST) {
				rep->lasts++;
				rep->last_gen = ev[i].user_cookie_counter;
			} else if (rep->n < MAX_REPORTS) {
				rep->inval[rep->n++] = ev[i];
			} else {
				rep->more++;
			}
		}
	}
	fcntl(u->fd, F_SETFL, fl);
	return err;
}

static const struct ummunotify_event *reported(const struct report *rep, uint64_t cookie)
{
	for (int i = 0; i < rep->n; i++)
		if (rep->inval[i].user_cookie_counter == cookie)
			return &rep->inval[i];
	return NULL;
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bail("mmap %zu bytes", len);
	memset(p, 0x5a, len);
	return p;
}

/* ---- the basics ------------------------------------------------------------------------ */

static void test_info(void)
{
	struct umn u;
	int fd;

	umn_open(&u, 0);
	ok(u.info.abi_version == UMMUNOTIFY_ABI_VERSION && u.shared->abi_version ==
	   UMMUNOTIFY_ABI_VERSION, "info: ABI version %u, the shared page says %u", u.info.abi_version,
	   u.shared->abi_version);
	ok(u.info.event_size == sizeof(struct ummunotify_event) && u.info.max_ranges >= 1000000 &&
	   u.info.features == UMMUNOTIFY_FEATURE_PROTECTION,
	   "info: event size %u, %u ranges at most, features %#x", u.info.event_size,
	   u.info.max_ranges, u.info.features);
	ok(u.info.slot_offset == PG && u.shared->slot_offset == PG &&
	   u.shared->max_ranges == u.info.max_ranges &&
	   u.info.map_size == PG + (u.info.max_ranges + PG - 1) / PG * PG,
	   "info: slot bytes from offset %" PRIu64 ", a mapping of %" PRIu64 " bytes holds them all",
	   (uint64_t)u.info.slot_offset, (uint64_t)u.info.map_size);
	ok(gen(&u) == 0, "a new file's generation is 0");
	{
		uint32_t feat = UMMUNOTIFY_FEATURE_PROTECTION | 1u << 31;
		int err = ioctl(u.fd, UMMUNOTIFY_EXCHANGE_FEATURES, &feat);

		ok(!err && feat == UMMUNOTIFY_FEATURE_PROTECTION,
		   "EXCHANGE_FEATURES after GET_INFO and mmap: granted %#x of %#x", feat,
		   UMMUNOTIFY_FEATURE_PROTECTION | 1u << 31);
	}
	umn_close(&u);

	errno = 0;
	fd = open(UMMUNOTIFY_PATH, O_RDWR);
	ok(fd < 0 && errno == EINVAL, "open for reading and writing: EINVAL (%s)", strerror(errno));
	if (fd >= 0)
		close(fd);
	errno = 0;
	fd = open(UMMUNOTIFY_PATH, O_WRONLY);
	ok(fd < 0 && errno == EINVAL, "open for writing: EINVAL (%s)", strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* The proposal's case: a = mmap(); register(a); munmap(a); b = mmap(); b == a. */
static void test_seed_scenario(void)
{
	struct report rep = { 0 };
	int err;
	struct umn u;
	uint32_t slot = 0;
	uint64_t g0;
	char *a, *b;

	umn_open(&u, 0);
	a = map_anon(PG);
	err = reg(&u, a, PG, 7, &slot);
	ok(!err && !changed(&u, slot), "the proposal's case: register a page (slot %u), not changed",
	   slot);
	g0 = gen(&u);
	munmap(a, PG);
	b = map_anon(PG);
	ok(gen(&u) == g0 + 1 && changed(&u, slot),
	   "munmap(a); b = mmap(): generation %" PRIu64 " -> %" PRIu64 ", the range's byte is set "
	   "(b %s a)", g0, gen(&u), b == a ? "==" : "!=");
	err = drain(&u, &rep);
	ok(!err && rep.n == 1 && rep.inval[0].user_cookie_counter == 7 &&
	   rep.inval[0].flags == (UMMUNOTIFY_EVENT_FLAG_HINT | UMMUNOTIFY_EVENT_FLAG_UNMAP) &&
	   rep.inval[0].hint_start == (uintptr_t)a && rep.inval[0].hint_end == (uintptr_t)a + PG &&
	   rep.lasts == 1 && rep.last_gen == gen(&u),
	   "read(): INVAL cookie 7, HINT|UNMAP over the page, then LAST with the generation "
	   "(%d reports, %d LAST)", rep.n, rep.lasts);
	ok(changed(&u, slot), "the byte stays set after read() until the range is unregistered");
	ok(unreg(&u, 7) == 0 && !changed(&u, slot), "unregistered: the byte is clear");
	munmap(b, PG);
	umn_close(&u);
}

/* ---- every way of changing memory ------------------------------------------------------ */

/* A watched range of three pages (cookie 1) and a neighbour it must not disturb (cookie 2). */
struct scene {
	struct umn u;
	char *r;		/* 3 pages */
	char *n;		/* 1 page */
	uint32_t slot_r, slot_n;
	uint64_t g0;
};

static void scene_watch(struct scene *s, char *r)
{
	s->r = r;
	s->n = map_anon(PG);
	if (reg(&s->u, s->r, 3 * PG, 1, &s->slot_r) || reg(&s->u, s->n, PG, 2, &s->slot_n))
		bail("register the scene's ranges");
	s->g0 = gen(&s->u);
}

/* Checks that the change reported exactly range 1, for @flag, over [start, end). */
static void scene_check(struct scene *s, const char *what, uint32_t flag, const void *start,
			const void *end)
{
	const struct ummunotify_event *ev;
	struct report rep = { 0 };
	int err = drain(&s->u, &rep);

	ev = reported(&rep, 1);
	ok(!err && rep.n == 1 && ev && (ev->flags & flag) && (ev->flags & UMMUNOTIFY_EVENT_FLAG_HINT) &&
	   ev->hint_start == (uintptr_t)start && ev->hint_end == (uintptr_t)end && rep.lasts == 1,
	   "%s: reported once, flags %#x, hint +%#lx..+%#lx (expected +%#lx..+%#lx)", what,
	   ev ? ev->flags : 0, ev ? (unsigned long)(ev->hint_start - (uintptr_t)s->r) : 0,
	   ev ? (unsigned long)(ev->hint_end - (uintptr_t)s->r) : 0,
	   (unsigned long)((const char *)start - s->r), (unsigned long)((const char *)end - s->r));
	ok(changed(&s->u, s->slot_r) && !changed(&s->u, s->slot_n) && !reported(&rep, 2) &&
	   gen(&s->u) > s->g0,
	   "%s: the range's byte is set, the neighbour's is not, the generation moved", what);
	unreg(&s->u, 1);
	unreg(&s->u, 2);
	munmap(s->n, PG);
}

/* Checks that nothing was reported. */
static void scene_check_quiet(struct scene *s, const char *what)
{
	struct report rep = { 0 };
	int err = drain(&s->u, &rep);

	ok(!err && rep.n == 0 && rep.lasts == 0 && gen(&s->u) == s->g0 &&
	   !changed(&s->u, s->slot_r), "%s: nothing reported, the generation stays", what);
	unreg(&s->u, 1);
	unreg(&s->u, 2);
	munmap(s->n, PG);
}

static int node_count(void)
{
	int n = 0;
	char path[64];

	for (;; n++) {
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", n);
		if (access(path, F_OK))
			return n;
	}
}

static int page_node(void *p)
{
	int status = -1;

	syscall(SYS_move_pages, 0, 1ul, &p, NULL, &status, 0);
	return status;
}

static void test_changes(void)
{
	struct scene s;
	char *r, *dst;
	int fd;

	umn_open(&s.u, 0);

	r = map_anon(3 * PG);
	scene_watch(&s, r);
	munmap(r + PG, PG);
	scene_check(&s, "munmap of the middle page", UMMUNOTIFY_EVENT_FLAG_UNMAP, r + PG, r + 2 * PG);
	munmap(r, 3 * PG);

	r = map_anon(3 * PG);
	dst = mmap(NULL, 3 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	scene_watch(&s, r);
	if (mremap(r, 3 * PG, 3 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst) != dst)
		bail("mremap");
	scene_check(&s, "mremap moving it", UMMUNOTIFY_EVENT_FLAG_UNMAP, r, r + 3 * PG);
	munmap(dst, 3 * PG);

	r = map_anon(3 * PG);
	scene_watch(&s, r);
	if (mremap(r, 3 * PG, PG, 0) != r)
		bail("mremap shrink");
	scene_check(&s, "mremap shrinking it", UMMUNOTIFY_EVENT_FLAG_UNMAP, r + PG, r + 3 * PG);
	munmap(r, PG);

	r = map_anon(3 * PG);
	scene_watch(&s, r);
	madvise(r + PG, PG, MADV_DONTNEED);
	scene_check(&s, "madvise(MADV_DONTNEED)", UMMUNOTIFY_EVENT_FLAG_CLEAR, r + PG, r + 2 * PG);
	munmap(r, 3 * PG);

	r = map_anon(3 * PG);
	scene_watch(&s, r);
	if (madvise(r, 2 * PG, MADV_FREE))
		bail("madvise(MADV_FREE)");
	scene_check(&s, "madvise(MADV_FREE)", UMMUNOTIFY_EVENT_FLAG_CLEAR, r, r + 2 * PG);
	munmap(r, 3 * PG);

	r = map_anon(3 * PG);
	scene_watch(&s, r);
	if (mmap(r + 2 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
	    MAP_FAILED)
		bail("mmap(MAP_FIXED)");
	scene_check(&s, "mmap(MAP_FIXED) over the last page", UMMUNOTIFY_EVENT_FLAG_UNMAP, r + 2 * PG,
		    r + 3 * PG);
	munmap(r, 3 * PG);

	/* brk: nothing in this program allocates from the heap in between */
	r = sbrk(0);
	if ((uintptr_t)r % PG)
		r = sbrk(PG - (uintptr_t)r % PG) + PG - (uintptr_t)r % PG;
	if (sbrk(3 * PG) == (void *)-1)
		bail("sbrk");
	memset(r, 1, 3 * PG);
	scene_watch(&s, r);
	sbrk(-2 * (long)PG);
	scene_check(&s, "brk shrinking the heap", UMMUNOTIFY_EVENT_FLAG_UNMAP, r + PG, r + 3 * PG);

	fd = shmget(IPC_PRIVATE, 3 * PG, IPC_CREAT | 0600);
	r = fd < 0 ? MAP_FAILED : shmat(fd, NULL, 0);
	if (r == MAP_FAILED)
		bail("shmget/shmat");
	shmctl(fd, IPC_RMID, NULL);
	memset(r, 1, 3 * PG);
	scene_watch(&s, r);
	shmdt(r);
	scene_check(&s, "shmdt", UMMUNOTIFY_EVENT_FLAG_UNMAP, r, r + 3 * PG);

	fd = memfd_create("ummunotify", 0);
	if (fd < 0 || ftruncate(fd, 3 * PG))
		bail("memfd");
	r = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	memset(r, 1, 3 * PG);
	scene_watch(&s, r);
	madvise(r, PG, MADV_REMOVE);
	scene_check(&s, "madvise(MADV_REMOVE) of shared memory", UMMUNOTIFY_EVENT_FLAG_CLEAR, r,
		    r + PG);
	memset(r, 1, 3 * PG);
	scene_watch(&s, r);
	if (ftruncate(fd, PG))
		bail("ftruncate");
	scene_check(&s, "ftruncate of the mapped file", UMMUNOTIFY_EVENT_FLAG_CLEAR, r + PG,
		    r + 3 * PG);
	munmap(r, 3 * PG);
	close(fd);

	if (node_count() >= 2) {
		void *pages[3];
		int nodes[3], status[3];

		r = map_anon(3 * PG);
		scene_watch(&s, r);
		for (int i = 0; i < 3; i++) {
			pages[i] = r + i * PG;
			nodes[i] = page_node(r) == 0 ? 1 : 0;
		}
		if (syscall(SYS_move_pages, 0, 3ul, pages, nodes, status, MF_MOVE) ||
		    status[0] != nodes[0])
			bail("move_pages to node %d: status %d", nodes[0], status[0]);
		scene_check(&s, "move_pages to another node", UMMUNOTIFY_EVENT_FLAG_CLEAR, r,
			    r + 3 * PG);
		munmap(r, 3 * PG);
	} else {
		printf("ok %d # SKIP page migration: one NUMA node\n", ++g.num);
		printf("ok %d # SKIP page migration: one NUMA node\n", ++g.num);
	}

	/* what leaves the pages in place */
	r = map_anon(3 * PG);
	scene_watch(&s, r);
	mprotect(r, 3 * PG, PROT_READ);
	mprotect(r, 3 * PG, PROT_READ | PROT_WRITE);
	memset(r, 2, 3 * PG);
	scene_check_quiet(&s, "mprotect, then writes");
	munmap(r, 3 * PG);

	r = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	scene_watch(&s, r);
	memset(r, 3, 3 * PG);
	scene_check_quiet(&s, "first touch of new pages");
	munmap(r, 3 * PG);
	umn_close(&s.u);

	umn_open(&s.u, UMMUNOTIFY_FEATURE_PROTECTION);
	r = map_anon(3 * PG);
	scene_watch(&s, r);
	mprotect(r + PG, PG, PROT_READ);
	scene_check(&s, "mprotect, with UMMUNOTIFY_FEATURE_PROTECTION",
		    UMMUNOTIFY_EVENT_FLAG_PROTECTION, r + PG, r + 2 * PG);
	munmap(r, 3 * PG);
	umn_close(&s.u);
}

/* However often a range changes before it is read, it is one report. */
static void test_coalescing(void)
{
	struct report rep = { 0 };
	int err;
	struct umn u;
	uint32_t slot = 0;
	uint64_t g0;
	char *a = map_anon(PG);
	int i;

	umn_open(&u, 0);
	reg(&u, a, PG, 5, &slot);
	g0 = gen(&u);
	for (i = 0; i < 1000; i++) {
		munmap(a, PG);
		if (mmap(a, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
		    a)
			bail("mmap back at %p", (void *)a);
		a[0] = 1;
	}
	ok(gen(&u) == g0 + 1000, "1000 munmaps: the generation moved by %" PRIu64, gen(&u) - g0);
	err = drain(&u, &rep);
	ok(!err && rep.n == 1 && rep.more == 0 && rep.lasts == 1 &&
	   rep.inval[0].user_cookie_counter == 5,
	   "... and read() reports the range once (%d reports): a dirty bit, not a queue", rep.n);
	ok(drain(&u, &rep) == 0 && rep.n == 0 && rep.lasts == 0, "read again: nothing");
	madvise(a, PG, MADV_DONTNEED);
	ok(drain(&u, &rep) == 0 && rep.n == 1 && rep.lasts == 1,
	   "a change after the read is reported again");
	madvise(a, PG, MADV_DONTNEED);
	unreg(&u, 5);
	err = drain(&u, &rep);
	ok(!err && rep.n == 0 && rep.lasts == 1 && rep.last_gen == gen(&u),
	   "a range changed, then unregistered unreported: read() still gives a LAST with the "
	   "generation, so the reader catches up");
	reg(&u, a, PG, 5, &slot);
	unreg(&u, 5);
	munmap(a, PG);
	umn_close(&u);
}

/* ---- read(), poll, epoll, SIGIO --------------------------------------------------------- */

static volatile sig_atomic_t sigio_seen;

static void on_sigio(int sig)
{
	(void)sig;
	sigio_seen = 1;
}

struct unmapper {
	void *addr;
	size_t len;
	unsigned int delay_us;
};

static void *unmap_later(void *arg)
{
	struct unmapper *un = arg;

	usleep(un->delay_us);
	munmap(un->addr, un->len);
	return NULL;
}

static void test_read_rules(void)
{
	struct ummunotify_event ev[2];
	struct epoll_event ee = { .events = EPOLLIN }, got;
	/* an address no buffer is at, hidden from the compiler's buffer-size checks */
	void *volatile unmapped = (void *)8;
	struct unmapper un;
	struct pollfd pfd;
	struct report rep = { 0 };
	pthread_t th;
	struct umn u;
	char *a, *b;
	ssize_t n;
	int ep, fl;

	umn_open(&u, 0);
	fl = fcntl(u.fd, F_GETFL);
	fcntl(u.fd, F_SETFL, fl | O_NONBLOCK);
	errno = 0;
	ok(read(u.fd, ev, sizeof(ev)) < 0 && errno == EAGAIN,
	   "O_NONBLOCK read() with nothing changed: EAGAIN (%s)", strerror(errno));
	errno = 0;
	ok(read(u.fd, ev, sizeof(ev[0]) - 1) < 0 && errno == EINVAL,
	   "read() into a buffer smaller than an event: EINVAL (%s)", strerror(errno));
	pfd = (struct pollfd){ .fd = u.fd, .events = POLLIN };
	ok(poll(&pfd, 1, 0) == 0, "poll: not readable while nothing changed");

	a = map_anon(2 * PG);
	b = map_anon(PG);
	reg(&u, a, PG, 10, NULL);
	reg(&u, a + PG, PG, 11, NULL);
	reg(&u, b, PG, 12, NULL);
	munmap(a, 2 * PG);
	ok(poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN), "poll: readable after a change");
	n = read(u.fd, ev, sizeof(ev[0]));
	ok(n == sizeof(ev[0]) && ev[0].type == UMMUNOTIFY_EVENT_TYPE_INVAL,
	   "read() with room for one event returns one INVAL");
	errno = 0;
	ok(read(u.fd, unmapped, sizeof(ev)) < 0 && errno == EFAULT,
	   "read() into an unmapped buffer: EFAULT (%s)", strerror(errno));
	fcntl(u.fd, F_SETFL, fl);
	ok(drain(&u, &rep) == 0 && rep.n == 1 && rep.lasts == 1 &&
	   rep.inval[0].user_cookie_counter != ev[0].user_cookie_counter,
	   "... and loses nothing: the next read() has the other range, then LAST");

	/* a blocking read() sleeps until a change */
	un = (struct unmapper){ b, PG, 200000 };
	pthread_create(&th, NULL, unmap_later, &un);
	n = read(u.fd, ev, sizeof(ev));
	pthread_join(th, NULL);
	ok(n == 2 * (ssize_t)sizeof(ev[0]) && ev[0].user_cookie_counter == 12 &&
	   ev[1].type == UMMUNOTIFY_EVENT_TYPE_LAST,
	   "a blocking read() wakes when another thread unmaps a watched range");

	/* epoll and SIGIO */
	ep = epoll_create1(EPOLL_CLOEXEC);
	epoll_ctl(ep, EPOLL_CTL_ADD, u.fd, &ee);
	signal(SIGIO, on_sigio);
	fcntl(u.fd, F_SETOWN, getpid());
	fcntl(u.fd, F_SETFL, fl | O_ASYNC);
	ok(epoll_wait(ep, &got, 1, 0) == 0 && !sigio_seen, "epoll: nothing before a change");
	a = map_anon(PG);
	reg(&u, a, PG, 13, NULL);
	un = (struct unmapper){ a, PG, 100000 };
	pthread_create(&th, NULL, unmap_later, &un);
	n = epoll_wait(ep, &got, 1, 5000);
	pthread_join(th, NULL);
	ok(n == 1 && (got.events & EPOLLIN), "epoll: EPOLLIN after a change");
	for (int i = 0; i < 100 && !sigio_seen; i++)
		usleep(10000);
	ok(sigio_seen, "O_ASYNC: SIGIO delivered");
	fcntl(u.fd, F_SETFL, fl);
	signal(SIGIO, SIG_DFL);
	drain(&u, &rep);
	close(ep);
	for (uint64_t c = 10; c <= 13; c++)
		unreg(&u, c);
	umn_close(&u);
}

/* ---- bad input -------------------------------------------------------------------------- */

static int reg_raw(struct umn *u, uint64_t start, uint64_t end, uint64_t cookie, uint32_t flags,
		   uint32_t reserved)
{
	struct ummunotify_register_ioctl r = {
		.start = start, .end = end, .user_cookie = cookie, .flags = flags,
		.reserved = reserved,
	};

	return ioctl(u->fd, UMMUNOTIFY_REGISTER_REGION, &r) ? errno : 0;
}

static void expect_errno(int got, int want, const char *what)
{
	ok(got == want, "%s: %s (%s)", what, strerrorname_np(want) ? strerrorname_np(want) : "?",
	   got ? strerror(got) : "succeeded");
}

static void test_bad_input(void)
{
	uint64_t top = 0x7ffffffff000ull;	/* x86-64's user space, 4-level paging */
	struct report rep = { 0 };
	struct umn u;
	uint32_t feat = 0;
	char buf[64];
	void *p;
	char *a;
	int fd;

	umn_open(&u, 0);
	a = map_anon(PG);
	expect_errno(reg_raw(&u, (uintptr_t)a, (uintptr_t)a + PG, 1, 0, 0), 0, "a good range");
	expect_errno(ioctl(u.fd, _IO(UMMUNOTIFY_MAGIC, 99)) ? errno : 0, ENOTTY, "unknown ioctl");
	expect_errno(ioctl(u.fd, _IOW(UMMUNOTIFY_MAGIC, 2, char[24]), buf) ? errno : 0, ENOTTY,
		     "REGISTER_REGION with a 24-byte structure");
	expect_errno(ioctl(u.fd, _IOW(UMMUNOTIFY_MAGIC, 3, uint32_t), buf) ? errno : 0, ENOTTY,
		     "UNREGISTER_REGION with a 4-byte cookie");
	expect_errno(ioctl(u.fd, _IOWR('V', 2, struct ummunotify_register_ioctl), buf) ? errno : 0,
		     ENOTTY, "another driver's magic");
	expect_errno(reg_raw(&u, 0x10000, 0x10000, 2, 0, 0), EINVAL, "an empty range");
	expect_errno(reg_raw(&u, 0x20000, 0x10000, 2, 0, 0), EINVAL, "end before start");
	expect_errno(reg_raw(&u, ~0ull - PG + 1, 0x1000, 2, 0, 0), EINVAL,
		     "a range that wraps around");
	expect_errno(reg_raw(&u, top - PG, top + PG, 2, 0, 0), EINVAL,
		     "a range past the top of user space");
	expect_errno(reg_raw(&u, 0x10000, ~0ull, 2, 0, 0), EINVAL, "end = 2^64 - 1");
	expect_errno(reg_raw(&u, top - PG, top, 2, 0, 0), 0, "a range ending at the top of user space");
	expect_errno(reg_raw(&u, 0x10000, 0x20000, 3, 1, 0), EINVAL, "flags not 0");
	expect_errno(reg_raw(&u, 0x10000, 0x20000, 3, 0, 1), EINVAL, "reserved not 0");
	expect_errno(reg_raw(&u, 0x10000, 0x20000, 1, 0, 0), EEXIST, "a cookie already registered");
	expect_errno(unreg(&u, 99), ENOENT, "unregister a cookie never registered");
	expect_errno(ioctl(u.fd, UMMUNOTIFY_REGISTER_REGION, NULL) ? errno : 0, EFAULT,
		     "REGISTER_REGION from NULL");
	expect_errno(ioctl(u.fd, UMMUNOTIFY_REGISTER_REGION_SLOT, (void *)PG) ? errno : 0, EFAULT,
		     "REGISTER_REGION_SLOT from an unmapped address");
	expect_errno(ioctl(u.fd, UMMUNOTIFY_UNREGISTER_REGION, NULL) ? errno : 0, EFAULT,
		     "UNREGISTER_REGION from NULL");
	expect_errno(ioctl(u.fd, UMMUNOTIFY_GET_INFO, NULL) ? errno : 0, EFAULT, "GET_INFO to NULL");
	expect_errno(ioctl(u.fd, UMMUNOTIFY_EXCHANGE_FEATURES, &feat) ? errno : 0, EBUSY,
		     "EXCHANGE_FEATURES after the file was used");

	/* a REGISTER_REGION_SLOT whose slot cannot be written back registers nothing */
	{
		struct ummunotify_register_ioctl *r = mmap(NULL, PG, PROT_READ | PROT_WRITE,
							   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		*r = (struct ummunotify_register_ioctl){ .start = 0x30000, .end = 0x40000,
							 .user_cookie = 4 };
		mprotect(r, PG, PROT_READ);
		expect_errno(ioctl(u.fd, UMMUNOTIFY_REGISTER_REGION_SLOT, r) ? errno : 0, EFAULT,
			     "REGISTER_REGION_SLOT into read-only memory");
		expect_errno(unreg(&u, 4), ENOENT, "... and nothing was registered");
		munmap(r, PG);
	}

	/* mappings */
	p = mmap(NULL, PG, PROT_READ, MAP_SHARED, u.fd, PG);
	expect_errno(p == MAP_FAILED ? errno : 0, EINVAL, "mmap at an offset other than 0");
	if (p != MAP_FAILED)
		munmap(p, PG);
	p = mmap(NULL, u.info.map_size + PG, PROT_READ, MAP_SHARED, u.fd, 0);
	expect_errno(p == MAP_FAILED ? errno : 0, EINVAL, "mmap larger than map_size");
	if (p != MAP_FAILED)
		munmap(p, u.info.map_size + PG);
	p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, u.fd, 0);
	expect_errno(p == MAP_FAILED ? errno : 0, EACCES, "mmap shared and writable");
	if (p != MAP_FAILED)
		munmap(p, PG);
	p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, u.fd, 0);
	expect_errno(p == MAP_FAILED ? errno : 0, EINVAL, "mmap private");
	if (p != MAP_FAILED)
		munmap(p, PG);
	expect_errno(mprotect((void *)u.shared, PG, PROT_READ | PROT_WRITE) ? errno : 0, EACCES,
		     "mprotect the shared page writable");
	expect_errno(write(u.fd, buf, 8) < 0 ? errno : 0, EBADF, "write()");
	expect_errno(lseek(u.fd, 0, SEEK_SET) < 0 ? errno : 0, ESPIPE, "lseek()");

	/* after all that, the good range still works */
	munmap(a, PG);
	ok(drain(&u, &rep) == 0 && rep.n == 1 && rep.inval[0].user_cookie_counter == 1,
	   "after every refusal, the range registered first is still watched");
	unreg(&u, 1);
	unreg(&u, 2);
	umn_close(&u);

	/* the limit on ranges, from the module parameter at open() */
	fd = open("/sys/module/ummunotify/parameters/max_ranges", O_RDWR);
	memset(buf, 0, sizeof(buf));
	if (fd >= 0 && pread(fd, buf, sizeof(buf) - 1, 0) > 0 && pwrite(fd, "3\n", 2, 0) == 2) {
		uint32_t slot = 0;
		int err;

		umn_open(&u, 0);
		pwrite(fd, buf, strlen(buf), 0);
		ok(u.info.max_ranges == 3 && u.info.map_size == 2 * PG,
		   "max_ranges=3: the file takes 3 ranges, in a 2-page mapping");
		for (uint64_t c = 1; c <= 3; c++)
			reg(&u, (void *)(c << 16), PG, c, NULL);
		expect_errno(reg(&u, (void *)(4 << 16), PG, 4, NULL), ENOSPC, "a fourth range");
		unreg(&u, 2);
		err = reg(&u, (void *)(4 << 16), PG, 4, &slot);
		ok(!err && slot == 1,
		   "one unregistered, the next range gets its slot (1): %u", slot);
		umn_close(&u);
	} else {
		ok(false, "set max_ranges (%s)", strerror(errno));
	}
	if (fd >= 0)
		close(fd);
}

/* Two files of one process watch independently, and the limits on ranges hold. */
static void test_files_and_limits(void)
{
	struct report rep = { 0 }, rep2 = { 0 };
	char buf[32] = { 0 };
	struct umn u, v;
	int fd, err, err2, st;
	pid_t pid;
	char *a;

	umn_open(&u, 0);
	umn_open(&v, 0);
	a = map_anon(2 * PG);
	reg(&u, a, PG, 1, NULL);
	reg(&v, a + PG, PG, 1, NULL);
	munmap(a, 2 * PG);
	err = drain(&u, &rep);
	err2 = drain(&v, &rep2);
	ok(!err && !err2 && rep.n == 1 && rep2.n == 1 && rep.inval[0].hint_start == (uintptr_t)a &&
	   rep2.inval[0].hint_start == (uintptr_t)a + PG,
	   "two files of one process: each reports its own range, with its own cookie space");
	umn_close(&v);

	/* ranges per user, over all its files, from the module parameter */
	fd = open("/sys/module/ummunotify/parameters/max_user_ranges", O_RDWR);
	if (fd < 0 || pread(fd, buf, sizeof(buf) - 1, 0) <= 0 || pwrite(fd, "5\n", 2, 0) != 2) {
		ok(false, "set max_user_ranges (%s)", strerror(errno));
		umn_close(&u);
		return;
	}
	umn_open(&v, 0);
	for (uint64_t c = 10; c < 13; c++)
		reg(&u, (void *)(c << 16), PG, c, NULL);
	for (uint64_t c = 20; c < 22; c++)
		reg(&v, (void *)(c << 16), PG, c, NULL);
	expect_errno(reg(&v, (void *)(30 << 16), PG, 30, NULL), ENOSPC,
		     "max_user_ranges=5: a sixth range in a second file of the same user");
	pid = fork();
	if (pid == 0) {
		struct umn w;

		if (setuid(65534))
			_exit(3);
		umn_open(&w, 0);
		_exit(reg(&w, (void *)(40 << 16), PG, 40, NULL) ? 1 : 0);
	}
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "... another user registers meanwhile");
	unreg(&u, 10);
	expect_errno(reg(&v, (void *)(30 << 16), PG, 30, NULL), 0, "one unregistered, it fits");
	umn_close(&v);
	expect_errno(reg(&u, (void *)(31 << 16), PG, 31, NULL), 0,
		     "closing a file gives its ranges back");
	pwrite(fd, buf, strlen(buf), 0);
	close(fd);
	umn_close(&u);
}

/* ---- fork, exec, exit -------------------------------------------------------------------- */

/* The child's checks, reported through its exit status: the number of the first that failed. */
static int forked_child(struct umn *u, struct umn *prot, char *r, int go)
{
	uint32_t feat = 0;
	unsigned char vec;
	char c;

	if (read(go, &c, 1) != 1)
		return 10;
	if (reg(u, r, PG, 50, NULL) != EPERM)
		return 1;
	if (unreg(u, 1) != EPERM)
		return 2;
	if (ioctl(prot->fd, UMMUNOTIFY_EXCHANGE_FEATURES, &feat) == 0 || errno != EPERM)
		return 3;
	if (mincore((void *)u->shared, PG, &vec) == 0 || errno != ENOMEM)
		return 4;	/* the mapping is not inherited */
	if (ioctl(u->fd, UMMUNOTIFY_GET_INFO, &u->info))
		return 5;
	{
		struct ummunotify_event ev;
		struct pollfd pfd = { .fd = u->fd, .events = POLLIN };

		/* reading would take what the parent has not seen yet */
		if (read(u->fd, &ev, sizeof(ev)) >= 0 || errno != EPERM)
			return 6;
		if (poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLERR))
			return 7;
	}
	munmap(r, 2 * PG);	/* the child's own address space: nothing for the parent */
	return 0;
}

static void test_fork(void)
{
	struct report rep = { 0 }, prep = { 0 };
	struct umn u, prot;
	int go[2], st, err;
	pid_t pid;
	char *r;

	umn_open(&u, 0);
	umn_open(&prot, UMMUNOTIFY_FEATURE_PROTECTION);
	r = map_anon(2 * PG);
	reg(&u, r, 2 * PG, 1, NULL);
	reg(&prot, r, 2 * PG, 1, NULL);
	if (pipe(go))
		bail("pipe");
	pid = fork();
	if (pid == 0)
		_exit(forked_child(&u, &prot, r, go[0]));
	err = drain(&u, &rep);
	ok(!err && rep.n == 0,
	   "fork: its write-protection of the parent's pages is not a change (%d reports)", rep.n);
	ok(drain(&prot, &prep) == 0 && prep.n == 1 &&
	   (prep.inval[0].flags & UMMUNOTIFY_EVENT_FLAG_PROTECTION),
	   "... but is reported to a file with UMMUNOTIFY_FEATURE_PROTECTION");
	r[PG] = 9;	/* copy-on-write while the child still shares the page */
	ok(drain(&u, &rep) == 0 && rep.n == 1 && (rep.inval[0].flags & UMMUNOTIFY_EVENT_FLAG_CLEAR) &&
	   rep.inval[0].hint_start == (uintptr_t)r + PG && rep.inval[0].hint_end ==
	   (uintptr_t)r + 2 * PG, "fork, then a write: the copy-on-write is reported for that page");
	if (write(go[1], "x", 1) != 1)
		bail("pipe write");
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "the child: REGISTER, UNREGISTER, EXCHANGE_FEATURES and read() are EPERM, poll says "
	   "POLLERR, the mapping is not inherited, GET_INFO works (check %d failed)",
	   WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	ok(drain(&u, &rep) == 0 && rep.n == 0,
	   "the child's munmap of its copy is not reported to the parent");
	close(go[0]);
	close(go[1]);
	munmap(r, 2 * PG);
	umn_close(&prot);
	umn_close(&u);
}

/* The fdinfo of the file, as a monitor reads it. */
struct fdinfo {
	long long id, owner, released, ranges, max_ranges, bytes, changed, range_changes,
		generation, events_read;
	int keys;		/* ummunotify- keys found */
};

/* Reads /proc/PID/fdinfo/FD (PID 0: this process). Return: false if it cannot be read. */
static bool read_fdinfo(pid_t pid, int fd, struct fdinfo *fi)
{
	static const struct { const char *key; size_t off; } keys[] = {
		{ "id", offsetof(struct fdinfo, id) },
		{ "owner-pid", offsetof(struct fdinfo, owner) },
		{ "released", offsetof(struct fdinfo, released) },
		{ "ranges", offsetof(struct fdinfo, ranges) },
		{ "max-ranges", offsetof(struct fdinfo, max_ranges) },
		{ "watched-bytes", offsetof(struct fdinfo, bytes) },
		{ "changed", offsetof(struct fdinfo, changed) },
		{ "range-changes", offsetof(struct fdinfo, range_changes) },
		{ "generation", offsetof(struct fdinfo, generation) },
		{ "events-read", offsetof(struct fdinfo, events_read) },
	};
	char path[64], line[128], key[64];
	long long v;
	FILE *f;

	memset(fi, 0xff, sizeof(*fi));
	fi->keys = 0;
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid ? pid : getpid(), fd);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "ummunotify-%63[^:]:\t%lld", key, &v) == 2)
			for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
				if (!strcmp(key, keys[i].key)) {
					*(long long *)((char *)fi + keys[i].off) = v;
					fi->keys++;
				}
	fclose(f);
	return true;
}

/*
 * What a monitor sees of a file in /proc/PID/fdinfo: its ranges and bytes, the changes not
 * read yet and those ever made, the generation, the events read, its owner; the same file
 * through a descriptor a child inherited.
 */
static void test_fdinfo(void)
{
	struct report rep;
	struct fdinfo fi, a, b;
	bool got;
	struct umn u, v;
	int st;
	char *p;
	pid_t pid;

	umn_open(&u, 0);
	umn_open(&v, 0);
	p = map_anon(8 * PG);
	got = read_fdinfo(0, u.fd, &fi);
	ok(got && fi.keys == 10 && fi.ranges == 0 && fi.bytes == 0 &&
	   fi.changed == 0 && fi.range_changes == 0 && fi.generation == 0 &&
	   fi.events_read == 0 && fi.released == 0 && fi.owner == getpid() &&
	   fi.max_ranges == u.info.max_ranges,
	   "fdinfo of a new file: %d keys, owner %lld (this is %d), nothing watched, %lld ranges at most",
	   fi.keys, fi.owner, getpid(), fi.max_ranges);
	read_fdinfo(0, u.fd, &a);
	read_fdinfo(0, v.fd, &b);
	ok(a.id > 0 && b.id > 0 && a.id != b.id, "fdinfo: two files have ids of their own (%lld, %lld)",
	   a.id, b.id);
	if (reg(&u, p, 3 * PG, 1, NULL) || reg(&u, p + 2 * PG, 5 * PG - 9, 2, NULL) ||
	    reg(&u, p + 7 * PG, PG, 3, NULL))
		bail("REGISTER_REGION");
	got = read_fdinfo(0, u.fd, &fi);
	ok(got && fi.ranges == 3 && fi.bytes == (long long)(9 * PG - 9) &&
	   fi.changed == 0, "fdinfo: 3 ranges, %lld bytes watched (overlaps counted each time)",
	   fi.bytes);
	munmap(p + 2 * PG, PG);		/* ranges 1 and 2 */
	got = read_fdinfo(0, u.fd, &fi);
	ok(got && fi.changed == 2 && fi.range_changes == 2 &&
	   fi.generation == (long long)gen(&u) && fi.generation > 0,
	   "fdinfo after a munmap under two ranges: %lld changed, %lld changes, generation %lld",
	   fi.changed, fi.range_changes, fi.generation);
	munmap(p + 3 * PG, PG);		/* range 2 again, not read yet */
	drain(&u, &rep);
	got = read_fdinfo(0, u.fd, &fi);
	ok(got && fi.changed == 0 && fi.range_changes == 3 &&
	   fi.events_read == rep.n + rep.lasts && rep.n == 2,
	   "fdinfo after read(): nothing changed unread, 3 changes ever, %lld events read (%d ranges and %d LAST)",
	   fi.events_read, rep.n, rep.lasts);
	munmap(p + 7 * PG, PG);		/* range 3 */
	unreg(&u, 3);
	got = read_fdinfo(0, u.fd, &fi);
	ok(got && fi.ranges == 2 && fi.bytes == (long long)(8 * PG - 9) &&
	   fi.changed == 0 && fi.range_changes == 4,
	   "fdinfo: a changed range unregistered before it is read leaves 2 ranges, %lld bytes, none changed",
	   fi.bytes);
	pid = fork();
	if (pid == 0) {
		struct fdinfo c;

		/* the child's descriptor is the same file: the same id, the parent its owner */
		_exit(read_fdinfo(0, u.fd, &c) && c.id == a.id && c.owner == getppid() &&
		      c.released == 0 ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "fdinfo through a descriptor a child inherited: the same id, the parent its owner");
	got = read_fdinfo(0, v.fd, &fi);
	ok(got && fi.ranges == 0 && fi.range_changes == 0,
	   "fdinfo: the other file of the process saw none of it");
	munmap(p, 2 * PG);
	munmap(p + 4 * PG, 3 * PG);
	umn_close(&v);
	umn_close(&u);
}

/* Something to report: a page watched under cookie 2, unmapped. */
static void a_watched_change(struct umn *u)
{
	char *p = map_anon(PG);

	reg(u, p, PG, 2, NULL);
	munmap(p, PG);
}

/*
 * The module's own calls fault on user memory while holding a file's mutex: read() copies
 * events out, REGISTER_REGION_SLOT writes the slot back. Make those faults invalidate a
 * watched range of the same file (a copy-on-write, the pages shared with a child): the
 * notifier must not wait on anything the faulting call holds.
 */
static void test_faults_inside(void)
{
	struct ummunotify_register_ioctl *req;
	struct ummunotify_event *ev;
	struct report rep = { 0 };
	struct umn u;
	int go[2], st, err;
	ssize_t n;
	pid_t pid;
	char *buf;

	umn_open(&u, 0);
	buf = map_anon(2 * PG);
	reg(&u, buf, 2 * PG, 1, NULL);
	a_watched_change(&u);
	if (pipe(go))
		bail("pipe");
	pid = fork();
	if (pid == 0) {
		char c;

		_exit(read(go[0], &c, 1) == 1 ? 0 : 1);
	}
	/* both pages are now shared with the child, write-protected */
	ev = (struct ummunotify_event *)buf;
	n = read(u.fd, ev, 4 * sizeof(*ev));
	ok(n >= 2 * (ssize_t)sizeof(*ev) && ev[0].user_cookie_counter == 2,
	   "read() into a watched buffer shared copy-on-write: the copy faults, invalidates the "
	   "buffer's own range, and read() completes (%zd bytes)", n);
	req = (struct ummunotify_register_ioctl *)(buf + PG);
	*req = (struct ummunotify_register_ioctl){ 0 };
	if (write(go[1], "x", 1) != 1)
		bail("pipe write");
	waitpid(pid, &st, 0);
	err = drain(&u, &rep);
	ok(!err && rep.n == 1 && rep.inval[0].user_cookie_counter == 1 &&
	   rep.inval[0].hint_start == (uintptr_t)buf,
	   "... and the next read() reports that range");
	close(go[0]);
	close(go[1]);

	unreg(&u, 1);
	reg(&u, buf, 2 * PG, 1, NULL);
	*req = (struct ummunotify_register_ioctl){
		.start = (uintptr_t)&u, .end = (uintptr_t)&u + 1, .user_cookie = 3,
	};
	if (pipe(go) == 0 && (pid = fork()) == 0) {
		char c;

		_exit(read(go[0], &c, 1) == 1 ? 0 : 1);
	}
	/* the child shares the page again: writing the slot back faults on it */
	err = ioctl(u.fd, UMMUNOTIFY_REGISTER_REGION_SLOT, req) ? errno : 0;
	ok(!err, "REGISTER_REGION_SLOT whose slot goes back into a watched page shared "
	   "copy-on-write: the write faults and invalidates, the call completes (%s)",
	   err ? strerror(err) : "ok");
	if (write(go[1], "x", 1) != 1)
		bail("pipe write");
	waitpid(pid, &st, 0);
	err = drain(&u, &rep);
	ok(!err && reported(&rep, 1), "... and that change is reported");
	close(go[0]);
	close(go[1]);
	unreg(&u, 1);
	unreg(&u, 3);
	munmap(buf, 2 * PG);
	umn_close(&u);
}

/* After exec: the old address space is gone. Returns the number of the check that failed. */
static int after_exec(int fd)
{
	struct umn u = { .fd = fd };
	struct report rep = { 0 };
	int seen = 0;

	if (drain(&u, &rep) || rep.lasts != 1)
		return 1;
	for (int i = 0; i < rep.n; i++)
		if (rep.inval[i].flags & UMMUNOTIFY_EVENT_FLAG_RELEASE)
			seen |= 1 << rep.inval[i].user_cookie_counter;
	if (rep.n != 3 || seen != 0xe)
		return 2;
	if (reg(&u, &u, 16, 9, NULL) != EPERM)
		return 3;
	if (ioctl(fd, UMMUNOTIFY_GET_INFO, &u.info))
		return 4;
	return 0;
}

static void test_exec(void)
{
	struct umn u;
	char fdarg[16];
	pid_t pid;
	int st;

	pid = fork();
	if (pid == 0) {
		umn_open(&u, 0);
		for (uint64_t c = 1; c <= 3; c++)
			reg(&u, map_anon(PG), PG, c, NULL);
		fcntl(u.fd, F_SETFD, 0);
		snprintf(fdarg, sizeof(fdarg), "%d", u.fd);
		execl("/proc/self/exe", g.self, "--after-exec", fdarg, (char *)NULL);
		_exit(100);
	}
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "exec with the file open: the new program reads every range changed (RELEASE), cannot "
	   "register (EPERM), GET_INFO works (check %d failed)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* A process passes its file to its parent, then exits. */
static void test_exit(void)
{
	char ctl[CMSG_SPACE(sizeof(int))], c = 0;
	struct iovec iov = { &c, 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			      .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm;
	struct report rep = { 0 };
	struct umn u;
	int sv[2], st;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		bail("socketpair");
	pid = fork();
	if (pid == 0) {
		umn_open(&u, 0);
		reg(&u, map_anon(PG), PG, 77, NULL);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &u.fd, sizeof(int));
		_exit(sendmsg(sv[1], &msg, 0) == 1 ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	memset(ctl, 0, sizeof(ctl));
	u.fd = -1;
	if (recvmsg(sv[0], &msg, 0) == 1 && (cm = CMSG_FIRSTHDR(&msg)))
		memcpy(&u.fd, CMSG_DATA(cm), sizeof(int));
	ok(u.fd >= 0 && drain(&u, &rep) == 0 && rep.n == 1 &&
	   rep.inval[0].user_cookie_counter == 77 &&
	   (rep.inval[0].flags & UMMUNOTIFY_EVENT_FLAG_RELEASE),
	   "the watched process exits: the holder of its file reads its range changed (RELEASE)");
	expect_errno(reg(&u, &u, 16, 1, NULL), EPERM, "... and cannot register in it");
	close(u.fd);
	close(sv[0]);
	close(sv[1]);
}

/* ---- threads ---------------------------------------------------------------------------- */

struct worker {
	struct umn *u;
	int id;
	double until;
	long cycles, missed, false_reports, errors;
};

static atomic_long reader_events;
static atomic_bool stop_reader;

/*
 * Each cycle: a fresh mapping, watched; then one of: munmap (its byte must be set at once,
 * before any read()), MADV_DONTNEED (the same), mprotect (its byte should stay clear: a
 * false report is allowed, and counted), or unregister first and unmap after. Cookies are
 * unique per cycle.
 */
static void *worker_run(void *arg)
{
	struct worker *w = arg;
	unsigned int seed = w->id;
	uint32_t slot = 0;
	uint64_t cookie;
	int err;

	/*
	 * the time given, and on a guest too loaded to do much in it (75 cycles in 3 s were
	 * seen on a debug guest sharing its host), on until its share of the 100 cycles the
	 * check wants, half a minute more at most
	 */
	while (now() < w->until || (w->cycles <= 100 / 4 && now() < w->until + 30)) {
		char *p = map_anon(2 * PG);

		cookie = (uint64_t)w->id << 40 | w->cycles;
		err = reg(w->u, p, 2 * PG, cookie, &slot);
		if (err) {
			w->errors++;
			munmap(p, 2 * PG);
			continue;
		}
		switch (rand_r(&seed) % 4) {
		case 0:
			munmap(p, 2 * PG);
			w->missed += !changed(w->u, slot);
			w->errors += unreg(w->u, cookie) != 0;
			break;
		case 1:
			madvise(p + PG, PG, MADV_DONTNEED);
			w->missed += !changed(w->u, slot);
			w->errors += unreg(w->u, cookie) != 0;
			munmap(p, 2 * PG);
			break;
		case 2:
			/* allowed, but worth knowing: something else changed it */
			mprotect(p, PG, PROT_READ);
			w->false_reports += changed(w->u, slot);
			w->errors += unreg(w->u, cookie) != 0;
			munmap(p, 2 * PG);
			break;
		default:
			w->errors += unreg(w->u, cookie) != 0;
			munmap(p, 2 * PG);
			break;
		}
		w->cycles++;
	}
	return NULL;
}

static void *reader_run(void *arg)
{
	struct umn *u = arg;
	struct ummunotify_event ev[64];
	struct pollfd pfd = { .fd = u->fd, .events = POLLIN };
	ssize_t n;

	while (!atomic_load(&stop_reader)) {
		if (poll(&pfd, 1, 50) != 1)
			continue;
		n = read(u->fd, ev, sizeof(ev));
		if (n > 0)
			atomic_fetch_add(&reader_events, n / (ssize_t)sizeof(ev[0]));
	}
	return NULL;
}

static void test_threads(void)
{
	enum { WORKERS = 4 };
	struct worker w[WORKERS];
	pthread_t th[WORKERS], rd;
	long cycles = 0, missed = 0, false_reports = 0, errors = 0;
	struct report rep = { 0 };
	struct umn u;
	int fl;

	umn_open(&u, 0);
	fl = fcntl(u.fd, F_GETFL);
	fcntl(u.fd, F_SETFL, fl | O_NONBLOCK);
	pthread_create(&rd, NULL, reader_run, &u);
	for (int i = 0; i < WORKERS; i++) {
		w[i] = (struct worker){ .u = &u, .id = i + 1, .until = now() + g.thread_secs };
		pthread_create(&th[i], NULL, worker_run, &w[i]);
	}
	for (int i = 0; i < WORKERS; i++) {
		pthread_join(th[i], NULL);
		cycles += w[i].cycles;
		missed += w[i].missed;
		errors += w[i].errors;
		false_reports += w[i].false_reports;
	}
	atomic_store(&stop_reader, true);
	pthread_join(rd, NULL);
	fcntl(u.fd, F_SETFL, fl);
	diag("threads: %ld cycles by %d threads in %.0f s, %ld events read meanwhile, %ld ranges "
	     "reported changed after mprotect alone", cycles, WORKERS, g.thread_secs,
	     atomic_load(&reader_events), false_reports);
	ok(cycles > 100 && errors == 0,
	   "%d threads register, unregister and change memory at once, with a reader: "
	   "%ld cycles, %ld failed calls", WORKERS, cycles, errors);
	ok(missed == 0, "no munmap or MADV_DONTNEED left its range's byte clear (%ld did)", missed);
	ok(drain(&u, &rep) == 0 && rep.n == 0, "nothing is left to report: every range is gone");
	umn_close(&u);
}

/* ---- many ranges ------------------------------------------------------------------------ */

static void test_many(void)
{
	long n = g.ranges, reports = 0, wrong = 0;
	size_t len = (size_t)n * PG;
	struct ummunotify_event ev[128];
	double t0, t_reg, t_unmap, t_read;
	struct umn u;
	char *base;
	ssize_t got;
	long i;

	base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		bail("reserve %zu bytes", len);
	umn_open(&u, 0);
	t0 = now();
	for (i = 0; i < n; i++)
		if (reg(&u, base + i * PG, PG, i, NULL))
			break;
	t_reg = now() - t0;
	ok(i == n, "%ld one-page ranges registered in one file (%.1f us each)", i, t_reg * 1e6 / n);

	/*
	 * One unmapped MiB in the middle: its 256 ranges. Splitting the mapping there, the kernel
	 * may also invalidate the 2 MiB around each cut (as it does to split a huge page): a
	 * false report it is allowed to make, and only there.
	 */
	munmap(base + (n / 2) * PG, 256 * PG);
	{
		uintptr_t hole = (uintptr_t)base + (n / 2) * PG, pmd = 2ul << 20;
		uintptr_t near_lo = hole & ~(pmd - 1), near_hi = (hole + 256 * PG + pmd - 1) & ~(pmd - 1);
		long in_hole = 0, near = 0, far = 0;
		struct report rep = { 0 };
		int err = drain(&u, &rep);

		for (int k = 0; k < rep.n; k++) {
			uintptr_t at = rep.inval[k].hint_start;

			if (at >= hole && at < hole + 256 * PG)
				in_hole++;
			else if (at >= near_lo && at < near_hi)
				near++;
			else
				far++;
		}
		ok(!err && rep.more == 0 && in_hole == 256 && far == 0,
		   "munmap of 1 MiB among them: its 256 ranges reported, none farther than the 2 MiB "
		   "around it (%ld there)", near);
		/* as a cache would: their memory is gone */
		for (int k = 0; k < rep.n; k++)
			unreg(&u, rep.inval[k].user_cookie_counter);
		n -= rep.n;
	}

	t0 = now();
	munmap(base, len);
	t_unmap = now() - t0;
	t0 = now();
	fcntl(u.fd, F_SETFL, O_NONBLOCK);
	for (;;) {
		got = read(u.fd, ev, sizeof(ev));
		if (got <= 0)
			break;
		for (i = 0; i < got / (ssize_t)sizeof(ev[0]); i++) {
			if (ev[i].type != UMMUNOTIFY_EVENT_TYPE_INVAL)
				continue;
			reports++;
			wrong += ev[i].hint_start != (uintptr_t)base + ev[i].user_cookie_counter * PG ||
				 ev[i].hint_end != ev[i].hint_start + PG;
		}
	}
	t_read = now() - t0;
	ok(reports == n && wrong == 0,
	   "munmap of all: the other %ld ranges reported once each, hints exact (%ld wrong); "
	   "munmap %.2f s, read() %.2f s", reports, wrong, t_unmap, t_read);
	t0 = now();
	umn_close(&u);
	diag("closing a file with %ld ranges took %.2f s", n, now() - t0);
}

/*
 * --hold N: a process for monitors to find. Watches N pages (every other page of a mapping),
 * unmaps a quarter of them and reads what that changed, unmaps an eighth more and leaves
 * that unread, prints what its fdinfo must say, and holds the file until standard input ends.
 */
static int hold(long n)
{
	long unread = n / 8, read_first = n / 4;
	struct report rep;
	struct umn u;
	char *p;

	/* a drain keeps MAX_REPORTS records; each unmapped page splits the mapping once more */
	if (n < 8 || n > MAX_REPORTS)
		return 2;
	umn_open(&u, 0);
	p = map_anon(2 * n * PG);
	for (long i = 0; i < n; i++)
		if (reg(&u, p + 2 * i * PG, PG, i + 1, NULL))
			bail("REGISTER_REGION");
	for (long i = 0; i < read_first; i++)
		munmap(p + 2 * i * PG, PG);
	if (drain(&u, &rep) || rep.n + rep.more != read_first)
		bail("read %d changes, expected %ld", rep.n, read_first);
	for (long i = read_first; i < read_first + unread; i++)
		munmap(p + 2 * i * PG, PG);
	printf("ready fd=%d ranges=%ld watched_bytes=%ld changed=%ld range_changes=%ld events_read=%d\n", u.fd, n,
	       n * (long)PG, unread, read_first + unread, rep.n + rep.more + rep.lasts);
	fflush(stdout);
	while (read(0, &n, 1) > 0)
		;
	umn_close(&u);
	return 0;
}

int main(int argc, char **argv)
{
	int c;

	g.self = argv[0];
	if (argc == 3 && !strcmp(argv[1], "--after-exec"))
		return after_exec(atoi(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "--hold"))
		return hold(atol(argv[2]));
	while ((c = getopt(argc, argv, "n:t:h")) != -1) {
		switch (c) {
		case 'n':
			g.ranges = atol(optarg);
			break;
		case 't':
			g.thread_secs = atof(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-n RANGES] [-t THREAD_SECONDS]\n", argv[0]);
			return 2;
		}
	}
	if (g.ranges < 512 || g.thread_secs <= 0) {
		fprintf(stderr, "%s: -n takes at least 512 ranges, -t a positive time\n", argv[0]);
		return 2;
	}
	printf("TAP version 13\n");
	/* automatic NUMA balancing would move the test's pages on its own */
	c = open("/proc/sys/kernel/numa_balancing", O_WRONLY);
	if (c >= 0) {
		if (write(c, "0\n", 2) != 2)
			diag("could not turn automatic NUMA balancing off");
		close(c);
	}
	test_info();
	test_seed_scenario();
	test_changes();
	test_coalescing();
	test_read_rules();
	test_bad_input();
	test_files_and_limits();
	test_fork();
	test_fdinfo();
	test_faults_inside();
	test_exec();
	test_exit();
	test_threads();
	test_many();
	printf("1..%d\n", g.num);
	return g.failed ? 1 : 0;
}
