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
	struct vt_pair p;
	bool ex;
	int num;
	int failed;
} g = { .gidx = 1 };

static int bad;

static void point(const char *name)
{
	vt_point(&g.num, &g.failed, &bad, name);
}

/* ---- work requests -------------------------------------------------------------------------- */

/* The next completion of QP @i's CQ: its status, or -1 if none came in 10 s. */
static int completion(int i, struct ibv_wc *wc)
{
	return vt_poll_one(g.p.cq[i], wc, 10) ? -1 : (int)wc->status;
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
		struct ibv_qp_ex *qpx = ibv_qp_to_qp_ex(g.p.qp[1]);

		ibv_wr_start(qpx);
		qpx->wr_id = ++g.p.wr_id;
		qpx->wr_flags = IBV_SEND_SIGNALED;
		ibv_wr_bind_mw(qpx, mw, rkey, &info);
		rv = ibv_wr_complete(qpx);
	} else {
		struct ibv_send_wr wr = { .wr_id = ++g.p.wr_id, .opcode = IBV_WR_BIND_MW,
					  .send_flags = IBV_SEND_SIGNALED }, *bad_wr;

		wr.bind_mw.mw = mw;
		wr.bind_mw.rkey = rkey;
		wr.bind_mw.bind_info = info;
		rv = ibv_post_send(g.p.qp[1], &wr, &bad_wr);
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

/* A WRITE and READ of @len bytes at @off into the window (@rkey), every byte checked. */
static int write_read(uint8_t *win, uint32_t rkey, size_t off, uint32_t len, uint64_t seed,
		      const char *what)
{
	return vt_pair_write_read(&g.p, win + off, rkey, len, seed, READ_AT, GUARD, what);
}

/*
 * An access through @rkey that must fail with REM_ACCESS_ERR and change nothing at
 * @target (@n bytes there are zero); the QPs are made anew after it.
 */
static void refused(enum ibv_wr_opcode op, uint64_t raddr, uint32_t rkey, uint32_t len,
		    const uint8_t *target, size_t n, const char *what)
{
	int rv;

	memset(g.p.local, 0x5a, len);
	rv = vt_pair_rdma(&g.p, op, 0, raddr, rkey, len);
	EXPECT(rv == IBV_WC_REM_ACCESS_ERR, "%s: completed with %s, expected remote access error",
	       what, vt_status_str(rv));
	for (size_t i = 0; i < n; i++)
		if (target[i]) {
			EXPECT(0, "%s: byte %zu of the target changed", what, i);
			break;
		}
	vt_pair_connect(&g.p);
}

/* ---- cases ---------------------------------------------------------------------------------- */

static struct ibv_mr *target_mr(int kind, uint8_t *buf, int access)
{
	struct ibv_mr *mr = kind == 1 ?
		ibv_reg_mr(g.p.pd, NULL, SIZE_MAX, access | IBV_ACCESS_ON_DEMAND) :
		ibv_reg_mr(g.p.pd, buf, BUF, access | (kind == 0 ? IBV_ACCESS_ON_DEMAND : 0));

	if (!mr)
		bail("ibv_reg_mr (%s): %s", kinds[kind], strerror(errno));
	return mr;
}

static void c_type2(int kind)
{
	uint8_t *buf = map_fresh(BUF), *win = buf + WIN_OFF;
	struct ibv_mr *mr = target_mr(kind, buf, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND);
	struct ibv_mw *mw = ibv_alloc_mw(g.p.pd, IBV_MW_TYPE_2);
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
		struct ibv_send_wr wr = { .wr_id = ++g.p.wr_id, .opcode = IBV_WR_LOCAL_INV,
					  .send_flags = IBV_SEND_SIGNALED,
					  .invalidate_rkey = rkey }, *bad_wr;
		struct ibv_wc wc;

		memset(buf, 0, BUF);
		rv = ibv_post_send(g.p.qp[1], &wr, &bad_wr);
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
	struct ibv_mw *mw = ibv_alloc_mw(g.p.pd, IBV_MW_TYPE_1);
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
	rv = ibv_bind_mw(g.p.qp[1], mw, &bind);
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
		struct ibv_send_wr wr = { .wr_id = ++g.p.wr_id, .opcode = IBV_WR_LOCAL_INV,
					  .send_flags = IBV_SEND_SIGNALED,
					  .invalidate_rkey = mw->rkey }, *bad_wr;

		rv = ibv_post_send(g.p.qp[1], &wr, &bad_wr);
		EXPECT(!rv && completion(1, &wc) != IBV_WC_SUCCESS,
		       "LOCAL_INV of a type 1 window succeeded");
		vt_pair_connect(&g.p);
	}
	memset(buf, 0, BUF);
	if (!bad && write_read(win, mw->rkey, 1, 100, 102, "after a LOCAL_INV refused"))
		bad = 1;
	bind.bind_info.length = 0;
	bind.bind_info.mw_access_flags = 0;
	rv = ibv_bind_mw(g.p.qp[1], mw, &bind);
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
	struct ibv_mw *mw = ibv_alloc_mw(g.p.pd, IBV_MW_TYPE_2);
	struct ibv_sge rsge = { .addr = (uintptr_t)(g.p.local + 3 * PG), .length = 64,
				.lkey = g.p.lmr->lkey };
	struct ibv_recv_wr rwr = { .wr_id = 55, .sg_list = &rsge, .num_sge = 1 }, *bad_rwr;
	struct ibv_send_wr wr = { .wr_id = ++g.p.wr_id, .opcode = IBV_WR_SEND_WITH_INV,
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
	EXPECT(!ibv_post_recv(g.p.qp[1], &rwr, &bad_rwr) && !ibv_post_send(g.p.qp[0], &wr, &bad_wr),
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
		struct ibv_mw *mw2 = ibv_alloc_mw(g.p.pd, IBV_MW_TYPE_2);
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
		struct ibv_mw *mw3 = ibv_alloc_mw(g.p.pd, IBV_MW_TYPE_2);
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
	struct ibv_mr *readonly = ibv_reg_mr(g.p.pd, buf, BUF, IBV_ACCESS_MW_BIND);
	struct ibv_mr *mr = target_mr(2, buf, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND);
	struct ibv_mw *mw = ibv_alloc_mw(g.p.pd, IBV_MW_TYPE_2);
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
		vt_pair_connect(&g.p);
	}
	rkey = ibv_inc_rkey(rkey);
	rv = bind2(mw, rkey, mr, (uintptr_t)buf, PG,
		   IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
	EXPECT(rv == IBV_WC_SUCCESS, "a good bind: %s", rv < 0 ? "failed" : ibv_wc_status_str(rv));
	rv = bind2(mw, ibv_inc_rkey(rkey), mr, (uintptr_t)buf, PG, IBV_ACCESS_REMOTE_WRITE);
	EXPECT(rv == IBV_WC_MW_BIND_ERR, "a bind of a bound type 2 window: %s, expected memory "
	       "window bind error", rv < 0 ? "failed" : ibv_wc_status_str(rv));
	vt_pair_connect(&g.p);
	if (!bad && write_read(buf, rkey, 100, 100, 200, "the first bind still holds"))
		bad = 1;
	point("binds to an MR without MW_BIND rights, past the MR, with remote write on an MR "
	      "without local write, and of a bound type 2 window fail with memory window bind "
	      "error; the window keeps its binding");

	/* what the post refuses */
	{
		struct ibv_mw *one = ibv_alloc_mw(g.p.pd, IBV_MW_TYPE_1);
		struct ibv_send_wr wr = { .wr_id = 1, .opcode = IBV_WR_BIND_MW }, *bad_wr = NULL;
		struct ibv_mw_bind b = { .bind_info = { .mr = mr, .addr = (uintptr_t)buf,
							.length = PG } };

		if (!one)
			bail("ibv_alloc_mw(type 1): %s", strerror(errno));
		wr.bind_mw.mw = one;
		wr.bind_mw.rkey = ibv_inc_rkey(one->rkey);
		wr.bind_mw.bind_info = b.bind_info;
		rv = ibv_post_send(g.p.qp[1], &wr, &bad_wr);
		EXPECT(rv == EINVAL && bad_wr == &wr, "a type 1 window in a BIND_MW work request: "
		       "%s, expected EINVAL", rv ? strerror(rv) : "posted");
		rv = ibv_bind_mw(g.p.qp[1], mw, &b);
		EXPECT(rv == EINVAL, "ibv_bind_mw of a type 2 window: %s, expected EINVAL",
		       rv ? strerror(rv) : "posted");
		wr.bind_mw.mw = mw;
		wr.bind_mw.rkey = ibv_inc_rkey(one->rkey);
		rv = ibv_post_send(g.p.qp[1], &wr, &bad_wr);
		EXPECT(rv == EINVAL, "a BIND_MW whose rkey is another window's: %s, expected EINVAL",
		       rv ? strerror(rv) : "posted");
		ibv_dealloc_mw(one);
	}
	{
		struct ibv_mw *three = ibv_alloc_mw(g.p.pd, (enum ibv_mw_type)3);

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
	vt_pair_open(&g.p, g.dev, g.gidx, LOCAL_LEN);
	EXPECT(!ibv_query_device(g.p.ctx, &attr) && attr.max_mw > 0 &&
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
	/* a bind through an extended QP */
	g.ex = true;
	g.p.send_ops = IBV_QP_EX_WITH_BIND_MW | IBV_QP_EX_WITH_RDMA_WRITE;
	vt_pair_connect(&g.p);
	c_type2(0);
	vt_pair_close(&g.p);
	printf("1..%d\n", g.num);
	return g.failed ? 1 : 0;
}
