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
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "verbs-test.h"

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
	int num;
	int failed;
} g = { .gidx = 1 };

/* ---- what the tools print ----------------------------------------------------------------- */

#define MAXTOK 4096

/* The whitespace-separated words a command printed (at most MAXTOK), or -1. */
static int run_words(const char *cmd, char *buf, size_t len, char **tok)
{
	FILE *f = popen(cmd, "r");
	size_t got;
	int n = 0;

	if (!f) {
		diag("cannot run %s: %s", cmd, strerror(errno));
		return -1;
	}
	got = fread(buf, 1, len - 1, f);
	buf[got] = 0;
	if (pclose(f) != 0) {
		diag("%s failed; it printed: %s", cmd, buf);
		return -1;
	}
	for (char *save, *w = strtok_r(buf, " \t\n", &save); w && n < MAXTOK;
	     w = strtok_r(NULL, " \t\n", &save))
		tok[n++] = w;
	return n;
}

/* One MR as `rdma resource show mr -dd` and `rdma statistic mr` describe it. */
struct mrview {
	unsigned long mrn;
	char odp[16], state[16], last[24];
	long long mapped, suspended, tables;
	/* counters; -1 where the tool printed none */
	long long faults, faults_handled, fault_errors, inval, inval_handled, prefetch, migrations,
		stat_suspended;
};

/* The word after @key in words [from, to), or NULL. */
static const char *after(char **tok, int from, int to, const char *key)
{
	for (int i = from; i + 1 < to; i++)
		if (strcmp(tok[i], key) == 0)
			return tok[i + 1];
	return NULL;
}

static long long num_after(char **tok, int from, int to, const char *key)
{
	const char *v = after(tok, from, to, key);

	return v ? strtoll(v, NULL, 0) : -1;
}

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
	g.num++;
	printf("%s %d - %s\n", bad ? "not ok" : "ok", g.num, name);
	fflush(stdout);
	g.failed += bad;
	bad = 0;
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

static void setup(void)
{
	struct ibv_qp_init_attr qa = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1 },
	};
	union ibv_gid gid;
	struct ibv_port_attr pa;

	g.ctx = open_device_named(g.dev);
	if (ibv_query_port(g.ctx, 1, &pa) || ibv_query_gid(g.ctx, 1, g.gidx, &gid))
		bail("cannot query port 1 / GID %d of %s", g.gidx, g.dev);
	g.pd = ibv_alloc_pd(g.ctx);
	g.cq = ibv_create_cq(g.ctx, 8, NULL, NULL, 0);
	if (!g.pd || !g.cq)
		bail("ibv_alloc_pd / ibv_create_cq: %s", strerror(errno));
	qa.send_cq = qa.recv_cq = g.cq;
	for (int i = 0; i < 2; i++)
		if (!(g.qp[i] = ibv_create_qp(g.pd, &qa)))
			bail("ibv_create_qp: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		struct vt_rc c = {
			.port = 1, .dest_qpn = g.qp[!i]->qp_num, .rq_psn = 0, .sq_psn = 0,
			.access = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ,
			.rnr_retry = 7, .min_rnr_timer = 1, .dgid = gid, .sgid_index = g.gidx,
			.dlid = pa.lid,
		};
		int state = IBV_QPS_RESET;
		const char *step;
		int rv = vt_rc_bring_up(g.qp[i], &c, &state, IBV_QPS_RTS, &step);

		if (rv)
			bail("QP %d to %s: %s", i, step, strerror(rv));
	}
	g.scratch = mmap(NULL, SCRATCH, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g.scratch == MAP_FAILED)
		bail("mmap: %s", strerror(errno));
	g.scratch_mr = ibv_reg_mr(g.pd, g.scratch, SCRATCH, IBV_ACCESS_LOCAL_WRITE);
	if (!g.scratch_mr)
		bail("ibv_reg_mr of the scratch buffer: %s", strerror(errno));
}

#define ODP_ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | \
		    IBV_ACCESS_ON_DEMAND)

static void *map_fresh(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bail("mmap of %zu bytes: %s", len, strerror(errno));
	/* 4 KiB pages only, so that page counts are what the program laid out */
	madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

/* ---- cases ---------------------------------------------------------------------------------- */

/* An explicit ODP MR of 64 pages, through faults, MADV_DONTNEED, mprotect and munmap. */
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
	}
	point("MADV_DONTNEED of 2 mapped pages: 2 suspended, state suspended, reason clear");

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
	}
	point("mprotect of 2 mapped pages: suspended, reason protection_vma");

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
	}
	point("munmap of 3 mapped pages: unmapped, not suspended, reason unmap");

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
	}
	if (write_verify(mr, buf + 1, NP * PG - 2, 6))
		bad = 1;
	point("move_pages to the other node: migrations counted, pages suspended, then "
	      "faulted back with every byte right");
	ibv_dereg_mr(mr);
	munmap(buf, NP * PG);
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

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "gid-index", required_argument, NULL, 'g' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "d:g:", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			g.dev = optarg;
			break;
		case 'g':
			g.gidx = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: pfnic_mrstate -d DEVICE [-g GID_INDEX]\n");
			return 2;
		}
	}
	if (!g.dev || optind != argc) {
		fprintf(stderr, "usage: pfnic_mrstate -d DEVICE [-g GID_INDEX]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n1..16\n");
	setup();
	c_explicit();
	c_implicit();
	c_pinned();
	c_prefetch();
	c_migrate();
	c_implicit_hole();
	diag("%d of %d failed", g.failed, g.num);
	return g.failed ? 1 : 0;
}
