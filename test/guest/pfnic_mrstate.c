// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_mrstate: what the kernel's own tools show of ODP MRs, checked against what the
 * program did to them. Prints TAP version 13.
 *
 *   pfnic_mrstate -d DEVICE [-g GID_INDEX]
 *
 * The program registers MRs of each kind (explicit ODP, implicit ODP, pinned), moves data
 * into them by RDMA WRITE from a pinned buffer (RC loopback), prefetches them (ibv_advise_mr),
 * changes the memory behind them (MADV_DONTNEED, mprotect, munmap, move_pages when there is
 * a second NUMA node) and after
 * every step reads `rdma resource show mr -dd` and `rdma statistic mr`:
 *  - the driver details (printed with a drv_ prefix): odp (explicit, implicit, pinned), mapped_pages, suspended_pages,
 *    translation_tables, state (active, suspended), last_invalidation;
 *  - the counters, under mlx5's names: page_faults (pages), page_faults_handled (faults),
 *    page_invalidations (pages), page_invalidations_handled, page_prefetch, migrations,
 *    page_fault_errors, suspended_pages.
 * Page counts are exact: every access is laid out so that the pages it reaches are known. A
 * fault maps the access from its first missing page to its end (so that it stalls once).
 * Every byte moved is verified too, so a count cannot be right by accident.
 *
 * Exit status: 0 if every test passed, 1 otherwise, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "verbs-test.h"
#include "../../driver/uapi/pfnic-events.h"

#define PG 4096ul
/* the implicit MR's translation tables cover 64 MiB each */
#define BLOCK (64ul << 20)
#define SCRATCH (64 * PG)
/* move_pages(2) flag, from <linux/mempolicy.h> */
#define MF_MOVE 2

static struct {
	const char *dev;
	int gidx;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp[2];
	uint8_t *scratch;
	struct ibv_mr *scratch_mr;
	uint64_t wr_id;
	union ibv_gid gid;	/* the port's, which both QPs use */
	uint16_t lid;
	int evfd;	/* a reader of the event channel, open from the start */
	int num;
	int failed;
} g = { .gidx = 1, .evfd = -1 };

/* ---- what the tools print ----------------------------------------------------------------- */

/* One MR as `rdma resource show mr -dd` and `rdma statistic mr` describe it. */
struct mrview {
	unsigned long mrn;
	char odp[16], state[16], last[24];
	long long mapped, suspended, tables;
	/* counters; -1 where the tool printed none */
	long long faults, faults_handled, fault_errors, inval, inval_handled, prefetch, migrations,
		stat_suspended;
};

static void copy_after(char *dst, size_t len, char **tok, int from, int to, const char *key)
{
	const char *v = after(tok, from, to, key);

	snprintf(dst, len, "%s", v ? v : "-");
}

/* Fills @v for the MR with @lkey. Return: 0, or -1 if the tools do not show it. */
static int mr_view(uint32_t lkey, struct mrview *v)
{
	static char buf[1 << 18];
	static char *tok[MAXTOK];
	char cmd[160], key[24];
	int n, from = -1, to;

	memset(v, 0, sizeof(*v));
	snprintf(cmd, sizeof(cmd), "rdma resource show mr dev %s -dd 2>&1", g.dev);
	n = run_words(cmd, buf, sizeof(buf), tok);
	if (n < 0)
		return -1;
	/* every MR's record starts with "dev" */
	snprintf(key, sizeof(key), "0x%x", lkey);
	for (int i = 0; i < n; i++) {
		if (strcmp(tok[i], "dev"))
			continue;
		to = i + 1;
		while (to < n && strcmp(tok[to], "dev"))
			to++;
		const char *l = after(tok, i, to, "lkey");

		if (l && strcmp(l, key) == 0) {
			from = i;
			break;
		}
	}
	if (from < 0) {
		diag("`%s` shows no MR with lkey %s", cmd, key);
		return -1;
	}
	v->mrn = num_after(tok, from, to, "mrn");
	copy_after(v->odp, sizeof(v->odp), tok, from, to, "drv_odp");
	copy_after(v->state, sizeof(v->state), tok, from, to, "drv_state");
	copy_after(v->last, sizeof(v->last), tok, from, to, "drv_last_invalidation");
	v->mapped = num_after(tok, from, to, "drv_mapped_pages");
	v->suspended = num_after(tok, from, to, "drv_suspended_pages");
	v->tables = num_after(tok, from, to, "drv_translation_tables");

	/* iproute2 6.1 takes no "show" or device filter here: every MR is listed */
	snprintf(cmd, sizeof(cmd), "rdma statistic mr 2>&1");
	n = run_words(cmd, buf, sizeof(buf), tok);
	if (n < 0)
		return -1;
	v->faults = v->faults_handled = v->fault_errors = v->inval = v->inval_handled = -1;
	v->prefetch = v->migrations = v->stat_suspended = -1;
	for (int i = 0; i < n; i++) {
		if (strcmp(tok[i], "dev"))
			continue;
		to = i + 1;
		while (to < n && strcmp(tok[to], "dev"))
			to++;
		if (strcmp(tok[i + 1], g.dev) || num_after(tok, i, to, "mrn") != (long long)v->mrn)
			continue;
		v->faults = num_after(tok, i, to, "page_faults");
		v->faults_handled = num_after(tok, i, to, "page_faults_handled");
		v->fault_errors = num_after(tok, i, to, "page_fault_errors");
		v->inval = num_after(tok, i, to, "page_invalidations");
		v->inval_handled = num_after(tok, i, to, "page_invalidations_handled");
		v->prefetch = num_after(tok, i, to, "page_prefetch");
		v->migrations = num_after(tok, i, to, "migrations");
		v->stat_suspended = num_after(tok, i, to, "suspended_pages");
		break;
	}
	return 0;
}

/*
 * For what the driver does after a call returns (its workqueue): reads the MR's view until
 * @field reaches @want (at most 10 s), and leaves the last view in @v. Return: 0, or -1 if
 * the tools stopped showing the MR.
 */
static int view_until(uint32_t lkey, struct mrview *v, const long long *field, long long want)
{
	for (double end = now() + 10;; usleep(10000)) {
		if (mr_view(lkey, v))
			return -1;
		if (*field == want || now() > end)
			return 0;
	}
}

static void view_diag(const char *what, const struct mrview *v)
{
	diag("%s: mrn %lu odp %s state %s mapped %lld suspended %lld tables %lld last %s | "
	     "faults %lld handled %lld errors %lld inval %lld handled %lld prefetch %lld "
	     "migrations %lld suspended %lld", what, v->mrn, v->odp, v->state, v->mapped,
	     v->suspended, v->tables, v->last, v->faults, v->faults_handled, v->fault_errors,
	     v->inval, v->inval_handled, v->prefetch, v->migrations, v->stat_suspended);
}

/* ---- the event channel -------------------------------------------------------------------- */

/* What one MR's records said, summed by type, from those a reader had waiting. */
struct evsum {
	int records[PFNIC_EVENT_PINNED + 1];
	long long pages[PFNIC_EVENT_PINNED + 1];
	int reason;		/* of the last INVALIDATE or MIGRATE */
	uint64_t start, end;	/* of the last one */
	int foreign;		/* records of other MRs */
	int wrong;		/* records whose pid, device, mrn or size are wrong */
};

static const char *const ev_type_names[] = {
	[PFNIC_EVENT_LOST] = "lost", [PFNIC_EVENT_INVALIDATE] = "invalidate",
	[PFNIC_EVENT_MIGRATE] = "migrate", [PFNIC_EVENT_MEMORY] = "memory",
	[PFNIC_EVENT_PINNED] = "pinned",
};

static const char *ev_type(unsigned int type)
{
	return type < sizeof(ev_type_names) / sizeof(*ev_type_names) && ev_type_names[type] ?
	       ev_type_names[type] : "?";
}

/*
 * Reads every record @fd has waiting (it is non-blocking) and sums those of the MR with
 * @lkey, checking that each names this process, the device and @mrn. Return: records read,
 * or -1 if read() failed.
 */
static int ev_drain(int fd, uint32_t lkey, unsigned long mrn, pid_t pid, struct evsum *sum)
{
	struct pfnic_event ev[16];
	int total = 0;

	memset(sum, 0, sizeof(*sum));
	for (;;) {
		ssize_t n = read(fd, ev, sizeof(ev));

		if (n < 0 && errno == EAGAIN)
			return total;
		if (n < 0 || n % sizeof(*ev)) {
			diag("read of the event channel: %zd (%s)", n, strerror(errno));
			return -1;
		}
		for (size_t i = 0; i < n / sizeof(*ev); i++, total++) {
			const struct pfnic_event *e = &ev[i];

			if (e->type != PFNIC_EVENT_INVALIDATE && e->type != PFNIC_EVENT_MIGRATE &&
			    e->type != PFNIC_EVENT_PINNED)
				continue;
			if (e->lkey != lkey) {
				sum->foreign++;
				continue;
			}
			if (e->size != sizeof(*e) || e->pid != pid || strcmp(e->device, g.dev) ||
			    e->mrn != mrn) {
				diag("record %s: size %u pid %d device %s mrn %u; expected %zu %d %s "
				     "%lu", ev_type(e->type), e->size, e->pid, e->device, e->mrn,
				     sizeof(*e), pid, g.dev, mrn);
				sum->wrong++;
			}
			sum->records[e->type]++;
			sum->pages[e->type] += e->pages;
			sum->reason = e->reason;
			sum->start = e->start;
			sum->end = e->end;
		}
	}
}

/* ---- checks ------------------------------------------------------------------------------- */

static int bad;

#define EXPECT_NUM(what, got, want) do {						\
	long long g_ = (got), w_ = (want);						\
	if (g_ != w_) {									\
		diag("%s: %s is %lld, expected %lld", what, #got, g_, w_);		\
		bad = 1;								\
	}										\
} while (0)

#define EXPECT_STR(what, got, want) do {						\
	if (strcmp((got), (want))) {							\
		diag("%s: %s is %s, expected %s", what, #got, (got), (want));		\
		bad = 1;								\
	}										\
} while (0)

static void point(const char *name)
{
	vt_point(&g.num, &g.failed, &bad, name);
}

/* ---- traffic -------------------------------------------------------------------------------- */

static int wait_one(void)
{
	struct ibv_wc wc;
	double end = now() + 20;

	while (now() < end) {
		int n = ibv_poll_cq(g.cq, 1, &wc);

		if (n < 0) {
			diag("ibv_poll_cq failed");
			return -1;
		}
		if (n == 0) {
			usleep(100);
			continue;
		}
		if (wc.status != IBV_WC_SUCCESS) {
			diag("completion: %s", ibv_wc_status_str(wc.status));
			return -1;
		}
		return 0;
	}
	diag("no completion in 20 s");
	return -1;
}

/* An RDMA WRITE (or READ) of @len bytes between scratch and @addr of @mr. */
static int rdma(enum ibv_wr_opcode op, struct ibv_mr *mr, void *addr, size_t len)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)g.scratch, .length = len, .lkey = g.scratch_mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = ++g.wr_id, .sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
	}, *badwr;

	wr.wr.rdma.remote_addr = (uintptr_t)addr;
	wr.wr.rdma.rkey = mr->rkey;
	if (ibv_post_send(g.qp[0], &wr, &badwr)) {
		diag("ibv_post_send: %s", strerror(errno));
		return -1;
	}
	return wait_one();
}

/* WRITEs a fresh pattern of @len bytes to @addr, READs it back, and compares every byte. */
static int write_verify(struct ibv_mr *mr, uint8_t *addr, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		g.scratch[i] = (uint8_t)(seed * 131 + i * 7 + 1) | 1;
	if (rdma(IBV_WR_RDMA_WRITE, mr, addr, len))
		return -1;
	if (memcmp(addr, g.scratch, len)) {
		diag("the CPU reads other bytes than the WRITE carried");
		return -1;
	}
	memset(g.scratch, 0, len);
	if (rdma(IBV_WR_RDMA_READ, mr, addr, len))
		return -1;
	if (memcmp(addr, g.scratch, len)) {
		diag("the READ returned other bytes than memory holds");
		return -1;
	}
	return 0;
}

/* ---- set-up --------------------------------------------------------------------------------- */

/* Moves both QPs to RESET and connects them to each other again, up to RTS. */
static void connect_qps(void)
{
	for (int i = 0; i < 2; i++) {
		struct ibv_qp_attr reset = { .qp_state = IBV_QPS_RESET };
		struct vt_rc c = {
			.port = 1, .dest_qpn = g.qp[!i]->qp_num, .rq_psn = 0, .sq_psn = 0,
			.access = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ,
			.rnr_retry = 7, .min_rnr_timer = 1, .dgid = g.gid, .sgid_index = g.gidx,
			.dlid = g.lid,
		};
		int state = IBV_QPS_RESET;
		const char *step = "RESET";
		int rv = ibv_modify_qp(g.qp[i], &reset, IBV_QP_STATE);

		if (!rv)
			rv = vt_rc_bring_up(g.qp[i], &c, &state, IBV_QPS_RTS, &step);
		if (rv)
			bail("QP %d to %s: %s", i, step, strerror(rv));
	}
}

static void setup(void)
{
	struct ibv_qp_init_attr qa = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_port_attr pa;

	g.ctx = open_device_named(g.dev);
	if (ibv_query_port(g.ctx, 1, &pa) || ibv_query_gid(g.ctx, 1, g.gidx, &g.gid))
		bail("cannot query port 1 / GID %d of %s", g.gidx, g.dev);
	g.lid = pa.lid;
	g.pd = ibv_alloc_pd(g.ctx);
	g.cq = ibv_create_cq(g.ctx, 8, NULL, NULL, 0);
	if (!g.pd || !g.cq)
		bail("ibv_alloc_pd / ibv_create_cq: %s", strerror(errno));
	qa.send_cq = qa.recv_cq = g.cq;
	for (int i = 0; i < 2; i++)
		if (!(g.qp[i] = ibv_create_qp(g.pd, &qa)))
			bail("ibv_create_qp: %s", strerror(errno));
	connect_qps();
	g.scratch = mmap(NULL, SCRATCH, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g.scratch == MAP_FAILED)
		bail("mmap: %s", strerror(errno));
	g.scratch_mr = ibv_reg_mr(g.pd, g.scratch, SCRATCH, IBV_ACCESS_LOCAL_WRITE);
	if (!g.scratch_mr)
		bail("ibv_reg_mr of the scratch buffer: %s", strerror(errno));
}

#define ODP_ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | \
		    IBV_ACCESS_ON_DEMAND)

/* ---- cases ---------------------------------------------------------------------------------- */

/* An explicit ODP MR of 64 pages, through faults, MADV_DONTNEED, mprotect and munmap. */
/*
 * The event channel said exactly one INVALIDATE (or MIGRATE) of the MR with @lkey: @pages
 * pages of [@start, @end), for @reason, since the last look.
 */
static void expect_one_event(const char *what, uint32_t lkey, unsigned long mrn, int type,
			     int reason, const void *start, const void *end, long long pages)
{
	struct evsum e;

	if (ev_drain(g.evfd, lkey, mrn, getpid(), &e) < 0) {
		bad = 1;
		return;
	}
	diag("%s: the event channel had %d invalidate (%lld pages), %d migrate (%lld pages), "
	     "last [%#llx, %#llx) reason %d", what,
	     e.records[PFNIC_EVENT_INVALIDATE], e.pages[PFNIC_EVENT_INVALIDATE],
	     e.records[PFNIC_EVENT_MIGRATE], e.pages[PFNIC_EVENT_MIGRATE],
	     (unsigned long long)e.start, (unsigned long long)e.end, e.reason);
	EXPECT_NUM(what, e.records[type], 1);
	EXPECT_NUM(what, e.records[PFNIC_EVENT_INVALIDATE] + e.records[PFNIC_EVENT_MIGRATE], 1);
	EXPECT_NUM(what, e.pages[type], pages);
	EXPECT_NUM(what, e.reason, reason);
	EXPECT_NUM(what, e.start, (uintptr_t)start);
	EXPECT_NUM(what, e.end, (uintptr_t)end);
	EXPECT_NUM(what, e.wrong, 0);
}

/* Forgets the records waiting: an lkey of an MR gone may come back on a new one. */
static void ev_discard(void)
{
	struct evsum e;

	ev_drain(g.evfd, 0, 0, 0, &e);
}

static void c_explicit(void)
{
	uint8_t *buf = map_fresh(64 * PG);
	struct ibv_mr *mr = ibv_reg_mr(g.pd, buf, 64 * PG, ODP_ACCESS);
	struct mrview v;

	if (!mr)
		bail("ibv_reg_mr (ODP): %s", strerror(errno));
	if (mr_view(mr->lkey, &v) == 0) {
		view_diag("registered", &v);
		EXPECT_STR("registered", v.odp, "explicit");
		EXPECT_STR("registered", v.state, "active");
		EXPECT_STR("registered", v.last, "none");
		EXPECT_NUM("registered", v.mapped, 0);
		EXPECT_NUM("registered", v.suspended, 0);
		EXPECT_NUM("registered", v.faults, 0);
		EXPECT_NUM("registered", v.faults_handled, 0);
		EXPECT_NUM("registered", v.inval, 0);
		EXPECT_NUM("registered", v.prefetch, 0);
	} else {
		bad = 1;
	}
	point("explicit ODP MR: shown as explicit, nothing mapped, every counter 0");

	/* pages 3..12: from an unaligned start, across nine page boundaries */
	if (write_verify(mr, buf + 3 * PG + 100, 9 * PG + 5, 1) || mr_view(mr->lkey, &v)) {
		bad = 1;
	} else {
		view_diag("after a WRITE over 10 pages", &v);
		EXPECT_NUM("after the WRITE", v.mapped, 10);
		EXPECT_NUM("after the WRITE", v.faults, 10);
		EXPECT_NUM("after the WRITE", v.faults_handled, 1);
		EXPECT_NUM("after the WRITE", v.fault_errors, 0);
		EXPECT_STR("after the WRITE", v.state, "active");
	}
	point("a WRITE over 10 untouched pages: one fault of 10 pages, 10 pages mapped");

	/* the kernel clears two of them: suspended, not gone */
	madvise(buf + 5 * PG, 2 * PG, MADV_DONTNEED);
	if (mr_view(mr->lkey, &v)) {
		bad = 1;
	} else {
		view_diag("after MADV_DONTNEED of 2 pages", &v);
		EXPECT_NUM("after MADV_DONTNEED", v.mapped, 8);
		EXPECT_NUM("after MADV_DONTNEED", v.suspended, 2);
		EXPECT_NUM("after MADV_DONTNEED", v.stat_suspended, 2);
		EXPECT_NUM("after MADV_DONTNEED", v.inval, 2);
		EXPECT_NUM("after MADV_DONTNEED", v.inval_handled, 1);
		EXPECT_STR("after MADV_DONTNEED", v.state, "suspended");
		EXPECT_STR("after MADV_DONTNEED", v.last, "clear");
		expect_one_event("after MADV_DONTNEED", mr->lkey, v.mrn, PFNIC_EVENT_INVALIDATE,
				 PFNIC_REASON_CLEAR, buf + 5 * PG, buf + 7 * PG, 2);
	}
	point("MADV_DONTNEED of 2 mapped pages: 2 suspended, state suspended, reason clear; "
	      "one event of 2 pages");

	if (write_verify(mr, buf + 3 * PG + 100, 9 * PG + 5, 2) || mr_view(mr->lkey, &v)) {
		bad = 1;
	} else {
		view_diag("after the next WRITE", &v);
		EXPECT_NUM("after the next WRITE", v.mapped, 10);
		EXPECT_NUM("after the next WRITE", v.suspended, 0);
		/* the fault maps from page 5 (the first missing) to page 12, the access's end */
		EXPECT_NUM("after the next WRITE", v.faults, 18);
		EXPECT_NUM("after the next WRITE", v.faults_handled, 2);
		EXPECT_STR("after the next WRITE", v.state, "active");
	}
	point("the next WRITE faults the 2 pages back: none suspended, state active");

	/* read-only: the translations go (a write must fault again) */
	mprotect(buf + 3 * PG, 2 * PG, PROT_READ);
	if (mr_view(mr->lkey, &v)) {
		bad = 1;
	} else {
		view_diag("after mprotect(PROT_READ) of 2 pages", &v);
		EXPECT_NUM("after mprotect", v.mapped, 8);
		EXPECT_NUM("after mprotect", v.suspended, 2);
		EXPECT_NUM("after mprotect", v.inval, 4);
		EXPECT_NUM("after mprotect", v.inval_handled, 2);
		EXPECT_STR("after mprotect", v.last, "protection_vma");
		expect_one_event("after mprotect", mr->lkey, v.mrn, PFNIC_EVENT_INVALIDATE,
				 PFNIC_REASON_PROTECTION_VMA, buf + 3 * PG, buf + 5 * PG, 2);
	}
	point("mprotect of 2 mapped pages: suspended, reason protection_vma; one event");

	/* gone for good: not suspended */
	munmap(buf + 10 * PG, 3 * PG);
	if (mr_view(mr->lkey, &v)) {
		bad = 1;
	} else {
		view_diag("after munmap of 3 pages", &v);
		EXPECT_NUM("after munmap", v.mapped, 5);
		EXPECT_NUM("after munmap", v.suspended, 2);
		EXPECT_NUM("after munmap", v.inval, 7);
		EXPECT_STR("after munmap", v.last, "unmap");
		expect_one_event("after munmap", mr->lkey, v.mrn, PFNIC_EVENT_INVALIDATE,
				 PFNIC_REASON_UNMAP, buf + 10 * PG, buf + 13 * PG, 3);
	}
	point("munmap of 3 mapped pages: unmapped, not suspended, reason unmap; one event");

	ibv_dereg_mr(mr);
	munmap(buf, 64 * PG);
}

/* An implicit ODP MR: tables made where traffic goes, released when the memory goes. */
static void c_implicit(void)
{
	struct ibv_mr *mr = ibv_reg_mr(g.pd, NULL, SIZE_MAX, ODP_ACCESS);
	struct mrview v;
	uint8_t *area, *edge;

	if (!mr)
		bail("ibv_reg_mr (implicit ODP): %s", strerror(errno));
	if (mr_view(mr->lkey, &v) == 0) {
		view_diag("registered", &v);
		EXPECT_STR("registered", v.odp, "implicit");
		EXPECT_NUM("registered", v.mapped, 0);
		EXPECT_NUM("registered", v.tables, 0);
		EXPECT_NUM("registered", v.faults, 0);
	} else {
		bad = 1;
	}
	point("implicit ODP MR: shown as implicit, no translation table yet");

	/* three blocks' worth, so that one block boundary lies well inside */
	area = map_fresh(3 * BLOCK);
	edge = (uint8_t *)(((uintptr_t)area + BLOCK) & ~(BLOCK - 1));
	/* 4 pages before the boundary and 3 after, from an unaligned start */
	if (write_verify(mr, edge - 4 * PG + 7, 7 * PG - 20, 3) || mr_view(mr->lkey, &v)) {
		bad = 1;
	} else {
		view_diag("after a WRITE across a block boundary", &v);
		EXPECT_NUM("after the WRITE", v.mapped, 7);
		EXPECT_NUM("after the WRITE", v.tables, 2);
		EXPECT_NUM("after the WRITE", v.faults, 7);
		EXPECT_NUM("after the WRITE", v.faults_handled, 1);
	}
	point("a WRITE across a 64 MiB boundary: 7 pages mapped in 2 translation tables");

	munmap(area, 3 * BLOCK);
	/* the tables are released by the driver's workqueue, soon after */
	if (view_until(mr->lkey, &v, &v.tables, 0))
		bad = 1;
	view_diag("after munmap of the area", &v);
	EXPECT_NUM("after munmap", v.mapped, 0);
	EXPECT_NUM("after munmap", v.suspended, 0);
	EXPECT_NUM("after munmap", v.tables, 0);
	EXPECT_NUM("after munmap", v.inval, 7);
	EXPECT_STR("after munmap", v.last, "unmap");
	point("munmap of the area: nothing mapped, both tables released");

	ibv_dereg_mr(mr);
}

/* A pinned MR: everything mapped from the start, no ODP counters. */
static void c_pinned(void)
{
	uint8_t *buf = map_fresh(16 * PG);
	struct ibv_mr *mr = ibv_reg_mr(g.pd, buf, 16 * PG, ODP_ACCESS & ~IBV_ACCESS_ON_DEMAND);
	struct mrview v;

	if (!mr)
		bail("ibv_reg_mr (pinned): %s", strerror(errno));
	if (write_verify(mr, buf + 100, 15 * PG, 4) || mr_view(mr->lkey, &v)) {
		bad = 1;
	} else {
		view_diag("pinned", &v);
		EXPECT_STR("pinned", v.odp, "pinned");
		EXPECT_NUM("pinned", v.mapped, 16);
		EXPECT_NUM("pinned", v.suspended, 0);
		EXPECT_NUM("pinned", v.faults, -1);
	}
	point("pinned MR: shown as pinned, all 16 pages mapped, no ODP counters");
	ibv_dereg_mr(mr);
	munmap(buf, 16 * PG);
}

static int advise(struct ibv_mr *mr, enum ibv_advise_mr_advice advice, uint32_t flags,
		  void *addr, uint32_t len)
{
	struct ibv_sge sge = { .addr = (uintptr_t)addr, .length = len, .lkey = mr->lkey };

	return ibv_advise_mr(g.pd, advice, flags, &sge, 1);
}

/* ibv_advise_mr: what each advice maps, that traffic then needs no fault, and refusals. */
static void c_prefetch(void)
{
	uint8_t *buf = map_fresh(32 * PG), *ro_buf = map_fresh(4 * PG);
	struct ibv_mr *mr = ibv_reg_mr(g.pd, buf, 32 * PG, ODP_ACCESS);
	/* an ODP MR without any write access */
	struct ibv_mr *ro = ibv_reg_mr(g.pd, ro_buf, 4 * PG, IBV_ACCESS_ON_DEMAND);
	struct ibv_mr *pinned = ibv_reg_mr(g.pd, ro_buf, 4 * PG, IBV_ACCESS_LOCAL_WRITE);
	struct mrview v;
	int rc;

	if (!mr || !ro || !pinned)
		bail("ibv_reg_mr: %s", strerror(errno));

	/* pages 2..9, from an unaligned start */
	rc = advise(mr, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, IBV_ADVISE_MR_FLAG_FLUSH,
		    buf + 2 * PG + 10, 7 * PG + 100);
	if (rc) {
		diag("ibv_advise_mr(PREFETCH_WRITE, FLUSH): %s", strerror(rc));
		bad = 1;
	} else if (mr_view(mr->lkey, &v)) {
		bad = 1;
	} else {
		view_diag("after PREFETCH_WRITE of 8 pages", &v);
		EXPECT_NUM("after PREFETCH_WRITE", v.prefetch, 8);
		EXPECT_NUM("after PREFETCH_WRITE", v.mapped, 8);
		EXPECT_NUM("after PREFETCH_WRITE", v.faults, 0);
		EXPECT_NUM("after PREFETCH_WRITE", v.faults_handled, 0);
	}
	if (write_verify(mr, buf + 2 * PG + 10, 7 * PG + 100, 7) || mr_view(mr->lkey, &v)) {
		bad = 1;
	} else {
		EXPECT_NUM("after a WRITE over the prefetched pages", v.faults_handled, 0);
	}
	point("PREFETCH_WRITE with FLUSH: 8 pages mapped at once; a WRITE there needs no fault");

	/* the CPU maps pages 20 and 21 of 20..23: NO_FAULT takes exactly those */
	buf[20 * PG] = 1;
	buf[21 * PG + 5] = 2;
	rc = advise(mr, IBV_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT, IBV_ADVISE_MR_FLAG_FLUSH,
		    buf + 20 * PG, 4 * PG);
	if (rc) {
		diag("ibv_advise_mr(PREFETCH_NO_FAULT, FLUSH): %s", strerror(rc));
		bad = 1;
	} else if (mr_view(mr->lkey, &v)) {
		bad = 1;
	} else {
		view_diag("after PREFETCH_NO_FAULT of 4 pages, 2 of them mapped", &v);
		EXPECT_NUM("after PREFETCH_NO_FAULT", v.prefetch, 10);
		EXPECT_NUM("after PREFETCH_NO_FAULT", v.mapped, 10);
	}
	point("PREFETCH_NO_FAULT: only the 2 pages the CPU has mapped");

	/* without FLUSH the driver prefetches after the call returns */
	rc = advise(mr, IBV_ADVISE_MR_ADVICE_PREFETCH, 0, buf + 12 * PG + 1, 4 * PG - 1);
	if (rc) {
		diag("ibv_advise_mr(PREFETCH): %s", strerror(rc));
		bad = 1;
	} else {
		if (view_until(mr->lkey, &v, &v.mapped, 14))
			bad = 1;
		view_diag("after an asynchronous PREFETCH of 4 pages", &v);
		EXPECT_NUM("after PREFETCH", v.prefetch, 14);
		EXPECT_NUM("after PREFETCH", v.mapped, 14);
	}
	point("PREFETCH without FLUSH: the 4 pages are mapped shortly after the call");

	/* refusals: mlx5's errors (ENOENT at once with FLUSH, EINVAL without) */
	struct { const char *what; struct ibv_mr *mr; enum ibv_advise_mr_advice advice;
		 uint32_t flags; void *addr; uint32_t len; int want; } no[] = {
		{ "PREFETCH_WRITE on an MR without write access, FLUSH", ro,
		  IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, IBV_ADVISE_MR_FLAG_FLUSH, ro_buf, PG, ENOENT },
		{ "PREFETCH_WRITE on an MR without write access", ro,
		  IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, 0, ro_buf, PG, EINVAL },
		{ "PREFETCH of a pinned MR, FLUSH", pinned, IBV_ADVISE_MR_ADVICE_PREFETCH,
		  IBV_ADVISE_MR_FLAG_FLUSH, ro_buf, PG, ENOENT },
		{ "PREFETCH past the MR's end, FLUSH", mr, IBV_ADVISE_MR_ADVICE_PREFETCH,
		  IBV_ADVISE_MR_FLAG_FLUSH, buf + 31 * PG, 2 * PG, ENOENT },
		{ "PREFETCH past the MR's end", mr, IBV_ADVISE_MR_ADVICE_PREFETCH, 0,
		  buf + 31 * PG, 2 * PG, EINVAL },
	};
	long long before = -1;

	if (mr_view(mr->lkey, &v) == 0)
		before = v.prefetch;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		rc = advise(no[i].mr, no[i].advice, no[i].flags, no[i].addr, no[i].len);
		if (rc != no[i].want) {
			diag("%s: ibv_advise_mr returned %d (%s), expected %s", no[i].what, rc,
			     rc ? strerror(rc) : "success", strerror(no[i].want));
			bad = 1;
		}
	}
	usleep(100000);
	if (mr_view(mr->lkey, &v) == 0)
		EXPECT_NUM("after the refused prefetches", v.prefetch, before);
	point("refused prefetches get mlx5's errors and map nothing");

	ibv_dereg_mr(pinned);
	ibv_dereg_mr(ro);
	ibv_dereg_mr(mr);
	munmap(ro_buf, 4 * PG);
	munmap(buf, 32 * PG);
}

/* With a second NUMA node: move_pages shows as migrations, and traffic is verified after. */
static void c_migrate(void)
{
	enum { NP = 8 };
	uint8_t *buf;
	struct ibv_mr *mr;
	struct mrview v;
	void *pages[NP];
	int nodes[NP], status[NP], to;
	long rv;

	if (access("/sys/devices/system/node/node1", F_OK)) {
		g.num++;
		printf("ok %d - migration # SKIP one NUMA node\n", g.num);
		return;
	}
	buf = map_fresh(NP * PG);
	mr = ibv_reg_mr(g.pd, buf, NP * PG, ODP_ACCESS);
	ev_discard();
	if (!mr)
		bail("ibv_reg_mr (ODP): %s", strerror(errno));
	if (write_verify(mr, buf + 1, NP * PG - 2, 5))
		bad = 1;
	for (int i = 0; i < NP; i++)
		pages[i] = buf + i * PG;
	rv = syscall(SYS_move_pages, 0, NP, pages, NULL, status, 0);
	to = rv == 0 && status[0] == 0 ? 1 : 0;
	for (int i = 0; i < NP; i++)
		nodes[i] = to;
	rv = syscall(SYS_move_pages, 0, NP, pages, nodes, status, MF_MOVE);
	if (rv < 0) {
		diag("move_pages: %s", strerror(errno));
		bad = 1;
	}
	if (mr_view(mr->lkey, &v)) {
		bad = 1;
	} else {
		int moved = 0;

		for (int i = 0; i < NP; i++)
			moved += status[i] == to;
		view_diag("after move_pages", &v);
		diag("%d of %d pages moved to node %d", moved, NP, to);
		EXPECT_NUM("after move_pages", v.mapped + v.suspended, NP);
		EXPECT_NUM("after move_pages", v.suspended, moved);
		if (v.migrations < 1) {
			diag("after move_pages: migrations is %lld, expected at least 1",
			     v.migrations);
			bad = 1;
		}
		EXPECT_STR("after move_pages", v.last, "migrate");
		/* the kernel moves (and invalidates) page by page, or in batches */
		struct evsum e;

		if (ev_drain(g.evfd, mr->lkey, v.mrn, getpid(), &e) < 0)
			bad = 1;
		diag("after move_pages: %d migrate records of %lld pages, %d invalidate",
		     e.records[PFNIC_EVENT_MIGRATE], e.pages[PFNIC_EVENT_MIGRATE],
		     e.records[PFNIC_EVENT_INVALIDATE]);
		EXPECT_NUM("after move_pages", e.records[PFNIC_EVENT_MIGRATE], v.migrations);
		EXPECT_NUM("after move_pages", e.pages[PFNIC_EVENT_MIGRATE], moved);
		EXPECT_NUM("after move_pages", e.records[PFNIC_EVENT_INVALIDATE], 0);
		EXPECT_NUM("after move_pages", e.wrong, 0);
	}
	if (write_verify(mr, buf + 1, NP * PG - 2, 6))
		bad = 1;
	point("move_pages to the other node: migrations counted and streamed as migrate events "
	      "of exactly the pages moved; pages suspended, then faulted back with every byte right");
	ibv_dereg_mr(mr);
	munmap(buf, NP * PG);
}

/* ---- the event channel's rules, and the tracepoints ----------------------------------------- */

/* Writes @text to the file @path. Return: 0 or -1 (with a diagnostic). */
/* Maps page @i of @mr (at @buf) by prefetch, then takes it away: one INVALIDATE record. */
static int invalidate_one(struct ibv_mr *mr, uint8_t *buf, int i)
{
	int rc = advise(mr, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, IBV_ADVISE_MR_FLAG_FLUSH,
			buf + i * PG, PG);

	if (rc) {
		diag("ibv_advise_mr(PREFETCH_WRITE, FLUSH): %s", strerror(rc));
		return -1;
	}
	return madvise(buf + i * PG, PG, MADV_DONTNEED);
}

/* Reads up to @max records from @fd (non-blocking) into @ev. Return: how many, or -1. */
static int ev_read_all(int fd, struct pfnic_event *ev, int max)
{
	int n = 0;

	while (n < max) {
		ssize_t got = read(fd, ev + n, (max - n) * sizeof(*ev));

		if (got < 0 && errno == EAGAIN)
			break;
		if (got <= 0 || got % sizeof(*ev)) {
			diag("read of the event channel: %zd (%s)", got, strerror(errno));
			return -1;
		}
		n += got / sizeof(*ev);
	}
	return n;
}

/* Bad use of the device, and poll(). */
static void c_events_api(void)
{
	uint8_t *buf = map_fresh(4 * PG);
	struct ibv_mr *mr = ibv_reg_mr(g.pd, buf, 4 * PG, ODP_ACCESS);
	struct pfnic_event ev;
	char small[sizeof(ev) - 1];
	struct pollfd pfd = { .events = POLLIN };
	int fd, n;

	if (!mr)
		bail("ibv_reg_mr (ODP): %s", strerror(errno));
	fd = open(PFNIC_EVENTS_PATH, O_RDWR);
	if (fd >= 0 || errno != EINVAL) {
		diag("open(O_RDWR) of %s: %s, expected EINVAL", PFNIC_EVENTS_PATH,
		     fd >= 0 ? "success" : strerror(errno));
		bad = 1;
	}
	if (fd >= 0)
		close(fd);
	pfd.fd = fd = open(PFNIC_EVENTS_PATH, O_RDONLY | O_NONBLOCK);
	if (fd < 0)
		bail("open %s: %s", PFNIC_EVENTS_PATH, strerror(errno));
	if (read(fd, small, sizeof(small)) != -1 || errno != EINVAL) {
		diag("a read() smaller than one record did not fail with EINVAL");
		bad = 1;
	}
	if (read(fd, &ev, sizeof(ev)) != -1 || errno != EAGAIN) {
		diag("a non-blocking read() with nothing waiting did not fail with EAGAIN");
		bad = 1;
	}
	n = poll(&pfd, 1, 0);
	EXPECT_NUM("poll with nothing waiting", n, 0);
	if (invalidate_one(mr, buf, 1))
		bad = 1;
	n = poll(&pfd, 1, 1000);
	EXPECT_NUM("poll after an invalidation", n, 1);
	EXPECT_NUM("poll after an invalidation", pfd.revents, POLLIN);
	n = ev_read_all(fd, &ev, 1);
	EXPECT_NUM("the record", n, 1);
	if (n == 1) {
		EXPECT_NUM("the record", ev.type, PFNIC_EVENT_INVALIDATE);
		EXPECT_NUM("the record", ev.seq, 1);
		EXPECT_NUM("the record", ev.lkey, mr->lkey);
		EXPECT_NUM("the record", ev.pages, 1);
		EXPECT_NUM("the record", ev.start, (uintptr_t)buf + PG);
		EXPECT_NUM("the record", ev.block, -1);
		if (!ev.time_ns || !ev.realtime_ns) {
			diag("the record has no time");
			bad = 1;
		}
	}
	close(fd);
	point("event channel: writers refused (EINVAL), a short read EINVAL, an empty "
	      "non-blocking read EAGAIN; poll wakes for a record, numbered 1");
	ibv_dereg_mr(mr);
	munmap(buf, 4 * PG);
}

/* A reader that does not keep up is told exactly how much it missed. */
static void c_events_lost(void)
{
	enum { RING = 64, MADE = 100 };
	const char *param = "/sys/module/pfnic/parameters/event_records";
	uint8_t *buf = map_fresh(4 * PG);
	struct ibv_mr *mr = ibv_reg_mr(g.pd, buf, 4 * PG, ODP_ACCESS);
	struct pfnic_event ev[RING + 8];
	char old[32] = "1024";
	struct mrview v;
	int fd, n, fp;

	if (!mr)
		bail("ibv_reg_mr (ODP): %s", strerror(errno));
	fp = open(param, O_RDONLY);
	if (fp >= 0) {
		n = read(fp, old, sizeof(old) - 1);
		old[n > 0 ? n : 0] = 0;
		close(fp);
	}
	/* a reader's ring size is taken at open() */
	if (write_file(param, "64"))
		bad = 1;
	fd = open(PFNIC_EVENTS_PATH, O_RDONLY | O_NONBLOCK);
	write_file(param, old);
	if (fd < 0)
		bail("open %s: %s", PFNIC_EVENTS_PATH, strerror(errno));
	for (int i = 0; i < MADE; i++)
		if (invalidate_one(mr, buf, i % 4))
			bad = 1;
	n = ev_read_all(fd, ev, RING + 8);
	EXPECT_NUM("records read after 100 invalidations", n, RING + 1);
	for (int i = 0; i < n && i < RING; i++) {
		if (ev[i].type != PFNIC_EVENT_INVALIDATE || ev[i].seq != (uint64_t)i + 1 ||
		    ev[i].lkey != mr->lkey) {
			diag("record %d: %s seq %llu lkey %#x", i, ev_type(ev[i].type),
			     (unsigned long long)ev[i].seq, ev[i].lkey);
			bad = 1;
			break;
		}
	}
	if (n == RING + 1) {
		diag("the last record: %s seq %llu lost %llu", ev_type(ev[RING].type),
		     (unsigned long long)ev[RING].seq, (unsigned long long)ev[RING].lost);
		EXPECT_NUM("the LOST record", ev[RING].type, PFNIC_EVENT_LOST);
		EXPECT_NUM("the LOST record", ev[RING].seq, RING + 1);
		EXPECT_NUM("the LOST record", ev[RING].lost, MADE - RING);
	}
	if (invalidate_one(mr, buf, 0))
		bad = 1;
	n = ev_read_all(fd, ev, 2);
	EXPECT_NUM("records after one more invalidation", n, 1);
	if (n == 1)
		EXPECT_NUM("the record after the loss", ev[0].seq, MADE + 1);
	close(fd);
	if (mr_view(mr->lkey, &v) == 0)
		EXPECT_NUM("the MR's counter", v.inval_handled, MADE + 1);
	else
		bad = 1;
	point("event channel: a reader with room for 64 records, sent 100, reads 64, then a LOST "
	      "record of exactly 36; the next record is number 101; the MR's counter says 101");
	ibv_dereg_mr(mr);
	munmap(buf, 4 * PG);
}

/*
 * In a child that becomes nobody: registers an ODP MR, invalidates 2 of its pages, tells
 * the parent (@up) and waits for it (@down) to invalidate its own; then checks that its
 * reader saw its own record only. Exit status: 0 if so.
 */
static int child_as_nobody(int up, int down)
{
	struct ibv_context *ctx = NULL;
	struct ibv_device **list;
	struct ibv_pd *pd;
	struct ibv_mr *mr;
	struct pfnic_event ev[8];
	struct ibv_sge sge;
	uint8_t *buf;
	char c = 0;
	int fd, n, ok = 1;

	if (setgid(65534) || setuid(65534))
		return 10;
	fd = open(PFNIC_EVENTS_PATH, O_RDONLY | O_NONBLOCK);
	list = ibv_get_device_list(NULL);
	for (int i = 0; list && list[i]; i++)
		if (strcmp(ibv_get_device_name(list[i]), g.dev) == 0)
			ctx = ibv_open_device(list[i]);
	if (fd < 0 || !ctx) {
		diag("as nobody: open %s: %s / the device: %s", PFNIC_EVENTS_PATH,
		     fd < 0 ? strerror(errno) : "ok", ctx ? "ok" : "cannot open");
		return 11;
	}
	pd = ibv_alloc_pd(ctx);
	buf = map_fresh(4 * PG);
	mr = pd ? ibv_reg_mr(pd, buf, 4 * PG, ODP_ACCESS) : NULL;
	if (!mr) {
		diag("as nobody: ibv_reg_mr (ODP): %s", strerror(errno));
		return 12;
	}
	sge = (struct ibv_sge){ .addr = (uintptr_t)buf, .length = 2 * PG, .lkey = mr->lkey };
	if (ibv_advise_mr(pd, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, IBV_ADVISE_MR_FLAG_FLUSH,
			  &sge, 1))
		return 13;
	madvise(buf, 2 * PG, MADV_DONTNEED);
	if (write(up, &mr->lkey, sizeof(mr->lkey)) != sizeof(mr->lkey) || read(down, &c, 1) != 1)
		return 14;
	n = ev_read_all(fd, ev, 8);
	for (int i = 0; i < n; i++) {
		if (ev[i].type == PFNIC_EVENT_MEMORY)
			continue;
		diag("as nobody: record %s lkey %#x pid %d pages %llu", ev_type(ev[i].type),
		     ev[i].lkey, ev[i].pid, (unsigned long long)ev[i].pages);
		if (ev[i].lkey != mr->lkey || ev[i].pid != getpid() || ev[i].pages != 2)
			ok = 0;
	}
	if (n != 1)
		ok = 0;
	ibv_dereg_mr(mr);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	return ok ? 0 : 1;
}

/* Who may read whose records. */
static void c_events_permissions(void)
{
	uint8_t *buf = map_fresh(4 * PG);
	struct ibv_mr *mr = ibv_reg_mr(g.pd, buf, 4 * PG, ODP_ACCESS);
	int up[2], down[2], status = -1, fd, n, mine = 0, theirs = 0;
	struct pfnic_event ev[8];
	uint32_t child_lkey = 0;
	pid_t child;

	if (!mr)
		bail("ibv_reg_mr (ODP): %s", strerror(errno));
	fd = open(PFNIC_EVENTS_PATH, O_RDONLY | O_NONBLOCK);
	if (fd < 0 || pipe(up) || pipe(down))
		bail("open %s / pipe: %s", PFNIC_EVENTS_PATH, strerror(errno));
	child = fork();
	if (child < 0)
		bail("fork: %s", strerror(errno));
	if (child == 0)
		_exit(child_as_nobody(up[1], down[0]));
	if (read(up[0], &child_lkey, sizeof(child_lkey)) != sizeof(child_lkey))
		bad = 1;
	if (invalidate_one(mr, buf, 3))
		bad = 1;
	if (write(down[1], "", 1) != 1)
		bad = 1;
	waitpid(child, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		diag("the child (uid 65534) failed: status %#x", status);
		bad = 1;
	}
	n = ev_read_all(fd, ev, 8);
	for (int i = 0; i < n; i++) {
		if (ev[i].type == PFNIC_EVENT_MEMORY)
			continue;
		diag("as root: record %s lkey %#x pid %d pages %llu", ev_type(ev[i].type),
		     ev[i].lkey, ev[i].pid, (unsigned long long)ev[i].pages);
		if (ev[i].lkey == mr->lkey && ev[i].pid == getpid() && ev[i].pages == 1)
			mine++;
		else if (ev[i].lkey == child_lkey && ev[i].pid == child && ev[i].pages == 2)
			theirs++;
		else
			bad = 1;
	}
	EXPECT_NUM("the root reader: its own records", mine, 1);
	EXPECT_NUM("the root reader: the child's records", theirs, 1);
	close(fd);
	close(up[0]), close(up[1]), close(down[0]), close(down[1]);
	point("event channel: a reader of uid 65534 sees its own MR's record only; a reader "
	      "with CAP_SYS_ADMIN sees both, each with its owner's pid");
	ibv_dereg_mr(mr);
	munmap(buf, 4 * PG);
}

/* perf and bpftrace users see faults, QPs resuming and invalidations. */
static void c_tracepoints(void)
{
	const char *tr = "/sys/kernel/tracing";
	uint8_t *buf = map_fresh(4 * PG);
	struct ibv_mr *mr = ibv_reg_mr(g.pd, buf, 4 * PG, ODP_ACCESS);
	static char trace[1 << 20];
	char path[128], want[160];
	size_t got = 0;
	FILE *f;

	if (!mr)
		bail("ibv_reg_mr (ODP): %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/events/pfnic/enable", tr);
	if (access(path, F_OK))
		mount("tracefs", tr, "tracefs", 0, NULL);
	if (write_file(path, "1")) {
		bad = 1;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/trace", tr);
	write_file(path, "");
	if (write_verify(mr, buf + 10, 2 * PG, 8))
		bad = 1;
	madvise(buf, PG, MADV_DONTNEED);
	snprintf(path, sizeof(path), "%s/events/pfnic/enable", tr);
	write_file(path, "0");
	snprintf(path, sizeof(path), "%s/trace", tr);
	f = fopen(path, "r");
	if (f) {
		got = fread(trace, 1, sizeof(trace) - 1, f);
		fclose(f);
	}
	trace[got] = 0;
	const char *fmt[] = {
		"pfnic_fault: dev=%s lkey=0x%x va=",
		"pfnic_resume: dev=%s qpn=",
		"pfnic_invalidate: dev=%s lkey=0x%x start=",
	};
	for (size_t i = 0; i < sizeof(fmt) / sizeof(*fmt); i++) {
		snprintf(want, sizeof(want), fmt[i], g.dev, mr->lkey);
		if (!strstr(trace, want)) {
			diag("the trace has no line with \"%s\"", want);
			bad = 1;
		}
	}
	if (bad)
		diag("the trace: %.2000s", trace);
out:
	point("tracepoints: pfnic_fault, pfnic_resume and pfnic_invalidate fire with the MR's "
	      "device and lkey");
	ibv_dereg_mr(mr);
	munmap(buf, 4 * PG);
}

/*
 * Last, since it leaves the QPs in the error state: a snapshot prefetch of untouched memory
 * and a WRITE into unmapped memory of an implicit MR map nothing, the WRITE fails, and no
 * translation table is left behind.
 */
static void c_implicit_hole(void)
{
	struct ibv_mr *mr = ibv_reg_mr(g.pd, NULL, SIZE_MAX, ODP_ACCESS);
	uint8_t *hole = map_fresh(2 * BLOCK);
	struct ibv_sge sge = { .addr = (uintptr_t)g.scratch, .length = 64,
			       .lkey = g.scratch_mr->lkey };
	struct ibv_send_wr wr = { .wr_id = 0x401e, .sg_list = &sge, .num_sge = 1,
				  .opcode = IBV_WR_RDMA_WRITE, .send_flags = IBV_SEND_SIGNALED },
			   *badwr;
	struct ibv_wc wc;
	struct mrview v;
	int n = 0;

	if (!mr)
		bail("ibv_reg_mr (implicit ODP): %s", strerror(errno));
	/* a snapshot of memory mapped but never touched maps nothing, and keeps no table */
	int rc = advise(mr, IBV_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT, IBV_ADVISE_MR_FLAG_FLUSH,
			hole + BLOCK, BLOCK);

	if (rc) {
		diag("ibv_advise_mr(PREFETCH_NO_FAULT, FLUSH) of untouched memory: %s",
		     strerror(rc));
		bad = 1;
	}
	if (view_until(mr->lkey, &v, &v.tables, 0))
		bad = 1;
	view_diag("after a NO_FAULT prefetch of untouched memory", &v);
	EXPECT_NUM("after a NO_FAULT prefetch of untouched memory", v.tables, 0);
	munmap(hole, 2 * BLOCK);
	wr.wr.rdma.remote_addr = (uintptr_t)hole + BLOCK;
	wr.wr.rdma.rkey = mr->rkey;
	if (ibv_post_send(g.qp[0], &wr, &badwr)) {
		diag("ibv_post_send: %s", strerror(errno));
		bad = 1;
	}
	for (double end = now() + 20; now() < end && n == 0; usleep(1000))
		n = ibv_poll_cq(g.cq, 1, &wc);
	if (n != 1 || wc.status != IBV_WC_REM_ACCESS_ERR) {
		diag("a WRITE into unmapped memory of an implicit MR completed with %s, expected "
		     "REM_ACCESS_ERR", n == 1 ? ibv_wc_status_str(wc.status) : "nothing");
		bad = 1;
	}
	if (view_until(mr->lkey, &v, &v.tables, 0))
		bad = 1;
	view_diag("after a WRITE into a hole", &v);
	EXPECT_NUM("after a WRITE into a hole", v.tables, 0);
	EXPECT_NUM("after a WRITE into a hole", v.mapped, 0);
	EXPECT_NUM("after a WRITE into a hole", v.fault_errors, 1);
	EXPECT_NUM("after a WRITE into a hole", v.prefetch, 0);
	point("a NO_FAULT prefetch of untouched memory and a WRITE into unmapped memory of an "
	      "implicit MR: nothing mapped, REM_ACCESS_ERR, no table left");
	ibv_dereg_mr(mr);
}

#define INJECT_BUSY "/sys/module/pfnic/parameters/inject_fault_busy"

/*
 * A device fault that times out because its range kept changing (memory going offline
 * migrates an MR's pages one after another for longer than a fault's retry window) must
 * not fail the WQE: the QP takes the fault again. The driver's test hook makes the next
 * faults time out; a WRITE into untouched pages, then a READ of them, complete with every
 * byte right, and page_fault_retries counts each fault taken again.
 */
static void c_fault_retry(void)
{
	uint8_t *buf = map_fresh(32 * PG);
	struct ibv_mr *mr = ibv_reg_mr(g.pd, buf, 32 * PG, ODP_ACCESS);
	long long before = vt_device_counter(g.dev, "page_fault_retries"), after;
	char left[32] = "";
	FILE *f;

	if (!mr)
		bail("ibv_reg_mr (ODP): %s", strerror(errno));
	if (write_file(INJECT_BUSY, "3")) {
		bad = 1;
		goto out;
	}
	/* pages 5..14, from an unaligned start */
	if (write_verify(mr, buf + 5 * PG + 77, 9 * PG + 11, 9))
		bad = 1;
	after = vt_device_counter(g.dev, "page_fault_retries");
	f = fopen(INJECT_BUSY, "r");
	if (f) {
		if (!fgets(left, sizeof(left), f))
			left[0] = 0;
		fclose(f);
	}
	left[strcspn(left, "\n")] = 0;
	diag("3 faults made to time out: page_fault_retries %lld -> %lld; injections left: %s",
	     before, after, left);
	EXPECT_NUM("faults taken again", after - before, 3);
	EXPECT_STR("injections left", left, "0");
out:
	write_file(INJECT_BUSY, "0");
	point("a fault that times out on a changing range is taken again, not failed: the WRITE and "
	      "READ complete with every byte right; page_fault_retries counts each retry");

	/* a range that never settles: 30 rounds in a row, then the WQE fails as before */
	before = vt_device_counter(g.dev, "page_fault_retries");
	if (write_file(INJECT_BUSY, "40")) {
		bad = 1;
	} else {
		int rv;

		memset(g.scratch, 0x5a, PG);
		rv = rdma(IBV_WR_RDMA_WRITE, mr, buf + 20 * PG, PG);
		after = vt_device_counter(g.dev, "page_fault_retries");
		f = fopen(INJECT_BUSY, "r");
		left[0] = 0;
		if (f) {
			if (!fgets(left, sizeof(left), f))
				left[0] = 0;
			fclose(f);
		}
		left[strcspn(left, "\n")] = 0;
		diag("40 faults made to time out: the WRITE %s; page_fault_retries %lld -> %lld; "
		     "injections left: %s", rv ? "failed" : "completed", before, after, left);
		EXPECT_NUM("the WRITE failed", rv != 0, 1);
		EXPECT_NUM("faults taken again", after - before, 30);
		EXPECT_STR("injections left", left, "9");
	}
	write_file(INJECT_BUSY, "0");
	connect_qps();
	point("a fault whose range never settles is taken again 30 times in a row, then fails the "
	      "WQE");
	ibv_dereg_mr(mr);
	munmap(buf, 32 * PG);
}

int main(int argc, char **argv)
{
	vt_args(argc, argv, "pfnic_mrstate -d DEVICE [-g GID_INDEX]", &g.dev, &g.gidx, "", NULL, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n1..22\n");
	setup();
	g.evfd = open(PFNIC_EVENTS_PATH, O_RDONLY | O_NONBLOCK);
	if (g.evfd < 0)
		bail("open %s: %s", PFNIC_EVENTS_PATH, strerror(errno));
	/*
	 * The cases count invalidations exactly: NUMA balancing's scanner, which takes pages'
	 * access away for a moment to see which node uses them, must not add its own. On a
	 * loaded host it reached an MR in the middle of the first case.
	 */
	numa_balancing(false);
	c_explicit();
	c_implicit();
	c_pinned();
	c_prefetch();
	c_migrate();
	c_events_api();
	c_events_lost();
	c_events_permissions();
	c_tracepoints();
	c_fault_retry();
	/* last: its WRITE into a hole leaves the QPs in the error state */
	c_implicit_hole();
	numa_balancing(true);
	diag("%d of %d failed", g.failed, g.num);
	return g.failed ? 1 : 0;
}
