// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_mw: memory windows over ODP and pinned MRs, every byte checked. Prints TAP version 13.
 *
 *   pfnic_mw -d DEVICE [-g GID_INDEX]
 *
 * Two RC QPs of one device, connected in loopback: QP 1 owns the target memory and binds
 * windows to it, QP 0 reaches it through the windows' rkeys only (the MR itself grants no
 * remote right). For each kind of MR (explicit ODP, implicit ODP, pinned) over fresh memory:
 * a type 2 window bound by a BIND_MW work request to three pages of the MR at an unaligned
 * offset; RDMA WRITEs and READs through it at unaligned offsets across pages, every byte and
 * the guards around checked; an access reaching one byte outside the window fails with
 * IBV_WC_REM_ACCESS_ERR and changes nothing; for ODP, the same after MADV_DONTNEED of the
 * memory under the window; then the window invalidated (IBV_WR_LOCAL_INV) and its rkey
 * refused. Then a type 1 window bound with ibv_bind_mw(), used, and unbound by a bind of no
 * length; a type 2 window invalidated by the peer (SEND with Invalidate); a window without
 * READ rights; binds the device must refuse (IBV_WC_MW_BIND_ERR: an MR without
 * IBV_ACCESS_MW_BIND, a range past the MR, a bound type 2 window, remote write on an MR the
 * device may not write); a window whose MR is deregistered or that is deallocated reaches
 * nothing; what the post refuses (a type 1 window in a BIND_MW work request, a type 2 one
 * in ibv_bind_mw); a bind through an extended QP (ibv_wr_bind_mw); a window of a type that
 * does not exist.
 *
 * Exit status: 0 if every test passed, 1 otherwise, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "verbs-test.h"

#define PG 4096ul
#define GUARD 64
#define BUF (8 * PG)
/* the window: three pages and a bit of the target, from an unaligned offset */
#define WIN_OFF (PG + 100)
#define WIN_LEN (3 * PG)
#define LOCAL_LEN (8 * PG)
/* where a READ lands in the local buffer */
#define READ_AT (4 * PG + 200)

static const char *const kinds[] = { "odp", "implicit", "pinned" };

static struct {
	const char *dev;
	int gidx;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq[2];
	struct ibv_qp *qp[2];
	bool ex;
	union ibv_gid gid;
	uint8_t *local;
	struct ibv_mr *lmr;
	uint64_t wr_id;
	int num;
	int failed;
} g = { .gidx = 1 };

static int bad;

static void point(const char *name)
{
	vt_point(&g.num, &g.failed, &bad, name);
}

/* ---- set-up --------------------------------------------------------------------------------- */

/* Both QPs anew (a failed access leaves them in the error state), connected and in RTS. */
static void pair_make(void)
{
	struct vt_rc c = { .port = 1, .access = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ,
			   .min_rnr_timer = 1, .rnr_retry = 7, .sgid_index = (uint8_t)g.gidx };
	struct ibv_qp_init_attr_ex ia = {
		.qp_type = IBV_QPT_RC, .pd = g.pd, .comp_mask = IBV_QP_INIT_ATTR_PD,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16, .max_send_sge = 1,
			 .max_recv_sge = 1 },
	};
	const char *step;
	int state, rv;

	if (g.ex) {
		ia.comp_mask |= IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
		ia.send_ops_flags = IBV_QP_EX_WITH_BIND_MW | IBV_QP_EX_WITH_RDMA_WRITE;
	}
	for (int i = 0; i < 2; i++) {
		struct ibv_wc wc;

		if (g.qp[i])
			ibv_destroy_qp(g.qp[i]);
		while (ibv_poll_cq(g.cq[i], 1, &wc) > 0)
			;
		ia.send_cq = ia.recv_cq = g.cq[i];
		g.qp[i] = ibv_create_qp_ex(g.ctx, &ia);
		if (!g.qp[i])
			bail("ibv_create_qp_ex: %s", strerror(errno));
	}
	c.dgid = g.gid;
	for (int i = 0; i < 2; i++) {
		c.dest_qpn = g.qp[1 - i]->qp_num;
		state = IBV_QPS_RESET;
		rv = vt_rc_bring_up(g.qp[i], &c, &state, IBV_QPS_RTS, &step);
		if (rv)
			bail("QP %d to %s: %s", i, step, strerror(rv));
	}
}

static void setup(void)
{
	g.ctx = open_device_named(g.dev);
	if (ibv_query_gid(g.ctx, 1, g.gidx, &g.gid))
		bail("cannot query GID %d of %s", g.gidx, g.dev);
	g.pd = ibv_alloc_pd(g.ctx);
	for (int i = 0; i < 2; i++)
		g.cq[i] = ibv_create_cq(g.ctx, 64, NULL, NULL, 0);
	if (!g.pd || !g.cq[0] || !g.cq[1])
		bail("ibv_alloc_pd / ibv_create_cq: %s", strerror(errno));
	g.local = map_fresh(LOCAL_LEN);
	g.lmr = ibv_reg_mr(g.pd, g.local, LOCAL_LEN, IBV_ACCESS_LOCAL_WRITE);
	if (!g.lmr)
		bail("ibv_reg_mr (local): %s", strerror(errno));
	pair_make();
}

/* ---- work requests -------------------------------------------------------------------------- */

static uint8_t pat(uint64_t seed, size_t i)
{
	return (uint8_t)((seed * 0x9e3779b97f4a7c15ull + i * 131 + (i >> 8)) >> 24) | 1;
}

/* The next completion of QP @i's CQ: its status, or -1 if none came in 10 s. */
static int completion(int i, struct ibv_wc *wc)
{
	for (double end = now() + 10; now() < end;) {
		int n = ibv_poll_cq(g.cq[i], 1, wc);

		if (n)
			return n == 1 ? (int)wc->status : -1;
	}
	return -1;
}

/* A type 2 window's bind on QP 1 (BIND_MW, or ibv_wr_bind_mw with g.ex); its status. */
static int bind2(struct ibv_mw *mw, uint32_t rkey, struct ibv_mr *mr, uint64_t addr,
		 uint64_t len, unsigned int access)
{
	struct ibv_mw_bind_info info = { .mr = mr, .addr = addr, .length = len,
					 .mw_access_flags = access };
	struct ibv_wc wc;
	int rv;

	if (g.ex) {
		struct ibv_qp_ex *qpx = ibv_qp_to_qp_ex(g.qp[1]);

		ibv_wr_start(qpx);
		qpx->wr_id = ++g.wr_id;
		qpx->wr_flags = IBV_SEND_SIGNALED;
		ibv_wr_bind_mw(qpx, mw, rkey, &info);
		rv = ibv_wr_complete(qpx);
	} else {
		struct ibv_send_wr wr = { .wr_id = ++g.wr_id, .opcode = IBV_WR_BIND_MW,
					  .send_flags = IBV_SEND_SIGNALED }, *bad_wr;

		wr.bind_mw.mw = mw;
		wr.bind_mw.rkey = rkey;
		wr.bind_mw.bind_info = info;
		rv = ibv_post_send(g.qp[1], &wr, &bad_wr);
	}
	if (rv) {
		diag("posting the bind: %s", strerror(rv));
		return -1;
	}
	rv = completion(1, &wc);
	if (rv == IBV_WC_SUCCESS && wc.opcode != IBV_WC_BIND_MW) {
		diag("a bind completed with opcode %d", wc.opcode);
		return -1;
	}
	return rv;
}

/* An RDMA WRITE (or READ) of @len bytes between g.local + @lo and @raddr/@rkey: its status. */
static int rdma(enum ibv_wr_opcode op, size_t lo, uint64_t raddr, uint32_t rkey, uint32_t len)
{
	struct ibv_sge sge = { .addr = (uintptr_t)(g.local + lo), .length = len,
			       .lkey = g.lmr->lkey };
	struct ibv_send_wr wr = { .wr_id = ++g.wr_id, .sg_list = &sge, .num_sge = 1,
				  .opcode = op, .send_flags = IBV_SEND_SIGNALED }, *bad_wr;
	struct ibv_wc wc;
	int rv;

	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	rv = ibv_post_send(g.qp[0], &wr, &bad_wr);
	if (rv) {
		diag("posting: %s", strerror(rv));
		return -1;
	}
	return completion(0, &wc);
}

/* Checks @len bytes at @p against the pattern of @seed, and GUARD bytes on each side. */
static int check(const uint8_t *p, size_t len, uint64_t seed, uint8_t guard, const char *what)
{
	for (size_t i = 1; i <= GUARD; i++)
		if (p[-(long)i] != guard) {
			diag("%s: guard byte %zu before is %#x, expected %#x", what, i, p[-(long)i],
			     guard);
			return -1;
		}
	for (size_t i = 0; i < len; i++)
		if (p[i] != pat(seed, i)) {
			diag("%s: byte %zu of %zu is %#x, expected %#x", what, i, len, p[i],
			     pat(seed, i));
			return -1;
		}
	for (size_t i = 0; i < GUARD; i++)
		if (p[len + i] != guard) {
			diag("%s: guard byte %zu after is %#x, expected %#x", what, i, p[len + i],
			     guard);
			return -1;
		}
	return 0;
}

/*
 * A WRITE through the window (@rkey) of @len bytes at @off into it, then a READ of them back
 * into other local memory: every byte of the target and of what came back checked.
 */
static int write_read(uint8_t *win, uint32_t rkey, size_t off, uint32_t len, uint64_t seed,
		      const char *what)
{
	int rv;

	for (uint32_t i = 0; i < len; i++)
		g.local[100 + i] = pat(seed, i);
	rv = rdma(IBV_WR_RDMA_WRITE, 100, (uintptr_t)(win + off), rkey, len);
	if (rv) {
		diag("%s: the WRITE completed with %s", what, rv < 0 ? "nothing" :
		     ibv_wc_status_str(rv));
		return -1;
	}
	if (check(win + off, len, seed, 0, what))
		return -1;
	memset(g.local + READ_AT - GUARD, 0xee, len + 2 * GUARD);
	rv = rdma(IBV_WR_RDMA_READ, READ_AT, (uintptr_t)(win + off), rkey, len);
	if (rv) {
		diag("%s: the READ completed with %s", what, rv < 0 ? "nothing" :
		     ibv_wc_status_str(rv));
		return -1;
	}
	return check(g.local + READ_AT, len, seed, 0xee, what);
}

/*
 * An access through @rkey that must fail with REM_ACCESS_ERR and change nothing at
 * @target (@n bytes there are zero); the QPs are made anew after it.
 */
static void refused(enum ibv_wr_opcode op, uint64_t raddr, uint32_t rkey, uint32_t len,
		    const uint8_t *target, size_t n, const char *what)
{
	memset(g.local + 100, 0x5a, len);
	int rv = rdma(op, 100, raddr, rkey, len);

	EXPECT(rv == IBV_WC_REM_ACCESS_ERR, "%s: completed with %s, expected remote access error",
	       what, rv < 0 ? "nothing" : ibv_wc_status_str(rv));
	for (size_t i = 0; i < n; i++)
		if (target[i]) {
			EXPECT(0, "%s: byte %zu of the target changed", what, i);
			break;
		}
	pair_make();
}

/* ---- cases ---------------------------------------------------------------------------------- */

static struct ibv_mr *target_mr(int kind, uint8_t *buf, int access)
{
	struct ibv_mr *mr = kind == 1 ?
		ibv_reg_mr(g.pd, NULL, SIZE_MAX, access | IBV_ACCESS_ON_DEMAND) :
		ibv_reg_mr(g.pd, buf, BUF, access | (kind == 0 ? IBV_ACCESS_ON_DEMAND : 0));

	if (!mr)
		bail("ibv_reg_mr (%s): %s", kinds[kind], strerror(errno));
	return mr;
}

static void c_type2(int kind)
{
	uint8_t *buf = map_fresh(BUF), *win = buf + WIN_OFF;
	struct ibv_mr *mr = target_mr(kind, buf, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND);
	struct ibv_mw *mw = ibv_alloc_mw(g.pd, IBV_MW_TYPE_2);
	uint32_t rkey;
	char name[200];
	int rv;

	if (!mw)
		bail("ibv_alloc_mw(type 2): %s", strerror(errno));
	rkey = ibv_inc_rkey(mw->rkey);
	rv = bind2(mw, rkey, mr, (uintptr_t)win, WIN_LEN,
		   IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
	EXPECT(rv == IBV_WC_SUCCESS, "bind: %s", rv < 0 ? "failed" : ibv_wc_status_str(rv));
	/* apart from each other, so that each one's guards are bytes nobody wrote */
	if (!bad && (write_read(win, rkey, 0, 5, 10 * kind + 1, "the window's first bytes") ||
		     write_read(win, rkey, 200, 2 * PG + 50, 10 * kind + 2, "across pages") ||
		     write_read(win, rkey, WIN_LEN - 1, 1, 10 * kind + 3, "the window's last byte")))
		bad = 1;
	snprintf(name, sizeof(name), "%s: a type 2 window bound%s over 3 pages at an unaligned "
		 "offset: WRITEs and READs through it across pages, every byte and the guards right",
		 kinds[kind], g.ex ? " by ibv_wr_bind_mw" : "");
	point(name);
	if (g.ex)
		goto out;

	refused(IBV_WR_RDMA_WRITE, (uintptr_t)win + WIN_LEN - 10, rkey, 11, win + WIN_LEN,
		GUARD, "a WRITE one byte past the window");
	refused(IBV_WR_RDMA_WRITE, (uintptr_t)win - 1, rkey, 10, win - GUARD, GUARD,
		"a WRITE from one byte before the window");
	refused(IBV_WR_RDMA_WRITE, (uintptr_t)win + 10000, mr->rkey, 10, win + 10000, 10,
		"a WRITE with the MR's own rkey (no remote rights)");
	snprintf(name, sizeof(name), "%s: a WRITE reaching one byte outside the window, or with "
		 "the MR's own rkey, fails with remote access error and changes nothing",
		 kinds[kind]);
	point(name);

	snprintf(name, sizeof(name), "%s: the same WRITEs and READs after MADV_DONTNEED of the "
		 "memory under the window", kinds[kind]);
	if (kind == 2) {
		g.num++;
		printf("ok %d - %s # SKIP a pinned MR keeps the pages MADV_DONTNEED takes from "
		       "the process\n", g.num, name);
	} else {
		madvise(buf, BUF, MADV_DONTNEED);
		if (write_read(win, rkey, 3, 2 * PG + 4000, 10 * kind + 4, "after MADV_DONTNEED"))
			bad = 1;
		point(name);
	}

	{
		struct ibv_send_wr wr = { .wr_id = ++g.wr_id, .opcode = IBV_WR_LOCAL_INV,
					  .send_flags = IBV_SEND_SIGNALED,
					  .invalidate_rkey = rkey }, *bad_wr;
		struct ibv_wc wc;

		memset(buf, 0, BUF);
		rv = ibv_post_send(g.qp[1], &wr, &bad_wr);
		EXPECT(!rv && completion(1, &wc) == IBV_WC_SUCCESS && wc.opcode == IBV_WC_LOCAL_INV,
		       "LOCAL_INV of the window: %s", rv ? strerror(rv) :
		       ibv_wc_status_str(wc.status));
		refused(IBV_WR_RDMA_WRITE, (uintptr_t)win, rkey, 100, win, WIN_LEN,
			"a WRITE through the invalidated window");
		rv = bind2(mw, ibv_inc_rkey(rkey), mr, (uintptr_t)win, WIN_LEN,
			   IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
		EXPECT(rv == IBV_WC_SUCCESS, "binding the invalidated window again: %s",
		       rv < 0 ? "failed" : ibv_wc_status_str(rv));
		if (!bad && write_read(win, ibv_inc_rkey(rkey), 5, 500, 10 * kind + 5,
				       "bound again"))
			bad = 1;
		refused(IBV_WR_RDMA_WRITE, (uintptr_t)win + 600, rkey, 100, win + 600, 100,
			"a WRITE with the window's old rkey");
		snprintf(name, sizeof(name), "%s: invalidated (LOCAL_INV), the window's rkey is "
			 "refused; bound again, the new rkey works and the old one is refused",
			 kinds[kind]);
		point(name);
	}
out:
	ibv_dealloc_mw(mw);
	ibv_dereg_mr(mr);
	munmap(buf, BUF);
}

static void c_type1(void)
{
	uint8_t *buf = map_fresh(BUF), *win = buf + WIN_OFF;
	struct ibv_mr *mr = target_mr(0, buf, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND);
	struct ibv_mw *mw = ibv_alloc_mw(g.pd, IBV_MW_TYPE_1);
	struct ibv_mw_bind bind = {
		.wr_id = 77, .send_flags = IBV_SEND_SIGNALED,
		.bind_info = { .mr = mr, .addr = (uintptr_t)win, .length = WIN_LEN,
			       .mw_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ },
	};
	uint32_t first;
	struct ibv_wc wc;
	int rv;

	if (!mw)
		bail("ibv_alloc_mw(type 1): %s", strerror(errno));
	first = mw->rkey;
	rv = ibv_bind_mw(g.qp[1], mw, &bind);
	EXPECT(!rv && completion(1, &wc) == IBV_WC_SUCCESS && wc.wr_id == 77 &&
	       wc.opcode == IBV_WC_BIND_MW, "ibv_bind_mw: %s", rv ? strerror(rv) :
	       ibv_wc_status_str(wc.status));
	EXPECT(mw->rkey != first && (mw->rkey >> 8) == (first >> 8),
	       "the window's rkey after the bind is %#x (before %#x)", mw->rkey, first);
	if (!bad && write_read(win, mw->rkey, 9, 2 * PG + 9, 101, "type 1"))
		bad = 1;
	point("odp: a type 1 window bound by ibv_bind_mw (a new rkey): WRITEs and READs through it "
	      "across pages, every byte right");

	{
		struct ibv_send_wr wr = { .wr_id = ++g.wr_id, .opcode = IBV_WR_LOCAL_INV,
					  .send_flags = IBV_SEND_SIGNALED,
					  .invalidate_rkey = mw->rkey }, *bad_wr;

		rv = ibv_post_send(g.qp[1], &wr, &bad_wr);
		EXPECT(!rv && completion(1, &wc) != IBV_WC_SUCCESS,
		       "LOCAL_INV of a type 1 window succeeded");
		pair_make();
	}
	memset(buf, 0, BUF);
	if (!bad && write_read(win, mw->rkey, 1, 100, 102, "after a LOCAL_INV refused"))
		bad = 1;
	bind.bind_info.length = 0;
	bind.bind_info.mw_access_flags = 0;
	rv = ibv_bind_mw(g.qp[1], mw, &bind);
	EXPECT(!rv && completion(1, &wc) == IBV_WC_SUCCESS, "unbinding bind: %s",
	       rv ? strerror(rv) : ibv_wc_status_str(wc.status));
	memset(buf, 0, BUF);
	refused(IBV_WR_RDMA_WRITE, (uintptr_t)win, mw->rkey, 10, win, 10,
		"a WRITE through the unbound type 1 window");
	point("odp: a type 1 window cannot be invalidated by LOCAL_INV (an error completion) and "
	      "keeps working; a bind of no length unbinds it");
	ibv_dealloc_mw(mw);
	ibv_dereg_mr(mr);
	munmap(buf, BUF);
}

static void c_remote_invalidate(void)
{
	uint8_t *buf = map_fresh(BUF), *win = buf + WIN_OFF;
	struct ibv_mr *mr = target_mr(0, buf, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND);
	struct ibv_mw *mw = ibv_alloc_mw(g.pd, IBV_MW_TYPE_2);
	struct ibv_sge rsge = { .addr = (uintptr_t)(g.local + 3 * PG), .length = 64,
				.lkey = g.lmr->lkey };
	struct ibv_recv_wr rwr = { .wr_id = 55, .sg_list = &rsge, .num_sge = 1 }, *bad_rwr;
	struct ibv_send_wr wr = { .wr_id = ++g.wr_id, .opcode = IBV_WR_SEND_WITH_INV,
				  .send_flags = IBV_SEND_SIGNALED }, *bad_wr;
	uint32_t rkey;
	struct ibv_wc wc;
	int rv;

	if (!mw)
		bail("ibv_alloc_mw: %s", strerror(errno));
	rkey = ibv_inc_rkey(mw->rkey);
	rv = bind2(mw, rkey, mr, (uintptr_t)win, WIN_LEN, IBV_ACCESS_REMOTE_WRITE);
	EXPECT(rv == IBV_WC_SUCCESS, "bind: %s", rv < 0 ? "failed" : ibv_wc_status_str(rv));
	wr.invalidate_rkey = rkey;
	EXPECT(!ibv_post_recv(g.qp[1], &rwr, &bad_rwr) && !ibv_post_send(g.qp[0], &wr, &bad_wr),
	       "posting: %s", strerror(errno));
	EXPECT(completion(0, &wc) == IBV_WC_SUCCESS, "SEND with Invalidate: %s",
	       ibv_wc_status_str(wc.status));
	rv = completion(1, &wc);
	EXPECT(rv == IBV_WC_SUCCESS && wc.wr_id == 55 && (wc.wc_flags & IBV_WC_WITH_INV) &&
	       wc.invalidated_rkey == rkey, "the receive: %s, flags %#x, invalidated rkey %#x "
	       "(the window's %#x)", rv < 0 ? "none" : ibv_wc_status_str(rv), wc.wc_flags,
	       wc.invalidated_rkey, rkey);
	refused(IBV_WR_RDMA_WRITE, (uintptr_t)win, rkey, 100, win, WIN_LEN,
		"a WRITE through the window its peer invalidated");
	point("a type 2 window invalidated by its peer (SEND with Invalidate): the receive says so, "
	      "and the rkey is refused");

	/* WRITE rights only: a READ is refused */
	rkey = ibv_inc_rkey(rkey);
	rv = bind2(mw, rkey, mr, (uintptr_t)win, WIN_LEN, IBV_ACCESS_REMOTE_WRITE);
	EXPECT(rv == IBV_WC_SUCCESS, "bind: %s", rv < 0 ? "failed" : ibv_wc_status_str(rv));
	refused(IBV_WR_RDMA_READ, (uintptr_t)win, rkey, 100, win, WIN_LEN,
		"a READ through a window without READ rights");
	point("a READ through a window that grants only WRITE fails with remote access error");

	/* the MR deregistered under a bound window */
	{
		struct ibv_mw *mw2 = ibv_alloc_mw(g.pd, IBV_MW_TYPE_2);
		uint32_t k2 = mw2 ? ibv_inc_rkey(mw2->rkey) : 0;

		if (!mw2)
			bail("ibv_alloc_mw: %s", strerror(errno));
		rv = bind2(mw2, k2, mr, (uintptr_t)win, WIN_LEN, IBV_ACCESS_REMOTE_WRITE);
		EXPECT(rv == IBV_WC_SUCCESS, "bind: %s", rv < 0 ? "failed" : ibv_wc_status_str(rv));
		rv = ibv_dereg_mr(mr);
		EXPECT(!rv, "ibv_dereg_mr of an MR with a window bound: %s", strerror(rv));
		mr = NULL;
		refused(IBV_WR_RDMA_WRITE, (uintptr_t)win, k2, 100, win, WIN_LEN,
			"a WRITE through a window whose MR is gone");
		rv = ibv_dealloc_mw(mw2);
		EXPECT(!rv, "ibv_dealloc_mw: %s", strerror(rv));
	}
	point("an MR with a window bound deregisters (as on a NIC), and the window then reaches "
	      "nothing");

	/* a deallocated window */
	mr = target_mr(0, buf, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND);
	{
		struct ibv_mw *mw3 = ibv_alloc_mw(g.pd, IBV_MW_TYPE_2);
		uint32_t k3 = mw3 ? ibv_inc_rkey(mw3->rkey) : 0;

		if (!mw3)
			bail("ibv_alloc_mw: %s", strerror(errno));
		rv = bind2(mw3, k3, mr, (uintptr_t)win, WIN_LEN, IBV_ACCESS_REMOTE_WRITE);
		EXPECT(rv == IBV_WC_SUCCESS, "bind: %s", rv < 0 ? "failed" : ibv_wc_status_str(rv));
		EXPECT(!ibv_dealloc_mw(mw3), "ibv_dealloc_mw: %s", strerror(errno));
		refused(IBV_WR_RDMA_WRITE, (uintptr_t)win, k3, 100, win, WIN_LEN,
			"a WRITE through a deallocated window");
	}
	point("a deallocated window's rkey reaches nothing");
	ibv_dealloc_mw(mw);
	ibv_dereg_mr(mr);
	munmap(buf, BUF);
}

/* Binds the device must refuse: each completes with IBV_WC_MW_BIND_ERR. */
static void c_bind_errors(void)
{
	uint8_t *buf = map_fresh(BUF);
	struct ibv_mr *nobind = target_mr(2, buf, IBV_ACCESS_LOCAL_WRITE);
	struct ibv_mr *readonly = ibv_reg_mr(g.pd, buf, BUF, IBV_ACCESS_MW_BIND);
	struct ibv_mr *mr = target_mr(2, buf, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND);
	struct ibv_mw *mw = ibv_alloc_mw(g.pd, IBV_MW_TYPE_2);
	const struct {
		struct ibv_mr *mr;
		uint64_t off, len;
		const char *what;
	} cases[] = {
		{ nobind, 0, PG, "an MR without IBV_ACCESS_MW_BIND" },
		{ mr, BUF - 10, 11, "a range one byte past the MR" },
		{ readonly, 0, PG, "remote write on an MR the device may not write" },
	};
	uint32_t rkey;
	int rv;

	if (!readonly || !mw)
		bail("ibv_reg_mr / ibv_alloc_mw: %s", strerror(errno));
	rkey = mw->rkey;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		rkey = ibv_inc_rkey(rkey);
		rv = bind2(mw, rkey, cases[i].mr, (uintptr_t)buf + cases[i].off, cases[i].len,
			   IBV_ACCESS_REMOTE_WRITE);
		EXPECT(rv == IBV_WC_MW_BIND_ERR, "a bind to %s: %s, expected memory window bind "
		       "error", cases[i].what, rv < 0 ? "failed" : ibv_wc_status_str(rv));
		pair_make();
	}
	rkey = ibv_inc_rkey(rkey);
	rv = bind2(mw, rkey, mr, (uintptr_t)buf, PG,
		   IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
	EXPECT(rv == IBV_WC_SUCCESS, "a good bind: %s", rv < 0 ? "failed" : ibv_wc_status_str(rv));
	rv = bind2(mw, ibv_inc_rkey(rkey), mr, (uintptr_t)buf, PG, IBV_ACCESS_REMOTE_WRITE);
	EXPECT(rv == IBV_WC_MW_BIND_ERR, "a bind of a bound type 2 window: %s, expected memory "
	       "window bind error", rv < 0 ? "failed" : ibv_wc_status_str(rv));
	pair_make();
	if (!bad && write_read(buf, rkey, 100, 100, 200, "the first bind still holds"))
		bad = 1;
	point("binds to an MR without MW_BIND rights, past the MR, with remote write on an MR "
	      "without local write, and of a bound type 2 window fail with memory window bind "
	      "error; the window keeps its binding");

	/* what the post refuses */
	{
		struct ibv_mw *one = ibv_alloc_mw(g.pd, IBV_MW_TYPE_1);
		struct ibv_send_wr wr = { .wr_id = 1, .opcode = IBV_WR_BIND_MW }, *bad_wr = NULL;
		struct ibv_mw_bind b = { .bind_info = { .mr = mr, .addr = (uintptr_t)buf,
							.length = PG } };

		if (!one)
			bail("ibv_alloc_mw(type 1): %s", strerror(errno));
		wr.bind_mw.mw = one;
		wr.bind_mw.rkey = ibv_inc_rkey(one->rkey);
		wr.bind_mw.bind_info = b.bind_info;
		rv = ibv_post_send(g.qp[1], &wr, &bad_wr);
		EXPECT(rv == EINVAL && bad_wr == &wr, "a type 1 window in a BIND_MW work request: "
		       "%s, expected EINVAL", rv ? strerror(rv) : "posted");
		rv = ibv_bind_mw(g.qp[1], mw, &b);
		EXPECT(rv == EINVAL, "ibv_bind_mw of a type 2 window: %s, expected EINVAL",
		       rv ? strerror(rv) : "posted");
		wr.bind_mw.mw = mw;
		wr.bind_mw.rkey = ibv_inc_rkey(one->rkey);
		rv = ibv_post_send(g.qp[1], &wr, &bad_wr);
		EXPECT(rv == EINVAL, "a BIND_MW whose rkey is another window's: %s, expected EINVAL",
		       rv ? strerror(rv) : "posted");
		ibv_dealloc_mw(one);
	}
	{
		struct ibv_mw *three = ibv_alloc_mw(g.pd, (enum ibv_mw_type)3);

		EXPECT(!three && errno == EINVAL, "ibv_alloc_mw of type 3: %s, expected EINVAL",
		       three ? "allocated" : strerror(errno));
		if (three)
			ibv_dealloc_mw(three);
	}
	point("the post refuses a type 1 window in BIND_MW, a type 2 one in ibv_bind_mw and an rkey "
	      "of another window (EINVAL); there is no window of type 3 (EINVAL)");
	ibv_dealloc_mw(mw);
	ibv_dereg_mr(mr);
	ibv_dereg_mr(readonly);
	ibv_dereg_mr(nobind);
	munmap(buf, BUF);
}

int main(int argc, char **argv)
{
	struct ibv_device_attr attr;

	vt_args(argc, argv, "pfnic_mw -d DEVICE [-g GID_INDEX]", &g.dev, &g.gidx, "", NULL, NULL);
	printf("TAP version 13\n");
	setup();
	EXPECT(!ibv_query_device(g.ctx, &attr) && attr.max_mw > 0 &&
	       (attr.device_cap_flags & IBV_DEVICE_MEM_WINDOW) &&
	       (attr.device_cap_flags & (IBV_DEVICE_MEM_WINDOW_TYPE_2A |
					 IBV_DEVICE_MEM_WINDOW_TYPE_2B)),
	       "max_mw %d, device_cap_flags %#x", attr.max_mw, attr.device_cap_flags);
	point("the device reports memory windows of types 1 and 2 (max_mw, device_cap_flags)");
	for (int kind = 0; kind < 3; kind++)
		c_type2(kind);
	c_type1();
	c_remote_invalidate();
	c_bind_errors();
	g.ex = true;
	pair_make();
	c_type2(0);
	for (int i = 0; i < 2; i++)
		ibv_destroy_qp(g.qp[i]);
	ibv_dereg_mr(g.lmr);
	ibv_destroy_cq(g.cq[0]);
	ibv_destroy_cq(g.cq[1]);
	ibv_dealloc_pd(g.pd);
	ibv_close_device(g.ctx);
	printf("1..%d\n", g.num);
	return g.failed ? 1 : 0;
}
