// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_xrc: XRC over ODP memory, every byte checked. Prints TAP version 13.
 *
 *   pfnic_xrc -d DEVICE [-g GID_INDEX]
 *
 * One XRC domain with two XRC SRQs (A and B) on one CQ; an XRC INI QP (XRC_SEND) connected to
 * an XRC TGT QP (XRC_RECV) of the domain, in loopback. SENDs from the INI QP name SRQ A or
 * SRQ B: each lands in a receive WQE of the SRQ it names, in untouched ODP memory at an
 * unaligned offset across pages, every byte and the guards around checked; its completion
 * is on the SRQs' CQ, from the TGT QP, with the INI QP as its source. RDMA WRITE, READ and
 * FETCH_AND_ADD through the INI QP reach an ODP MR of the SRQs' PD. Then the same after
 * MADV_DONTNEED. A second device context opens the domain through its file and the TGT QP
 * (ibv_open_qp), as a second process would; with the creator's handle destroyed, the TGT QP
 * lives on through the opened one and the same round passes through it. A QP number that is
 * not a TGT QP of the domain does not open. A SEND naming no XRC SRQ of the domain fails its
 * requester.
 *
 * Exit status: 0 if every test passed, 1 otherwise, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
#define SLOT (4 * PG)
#define NRECV 8
#define BUF (2 * NRECV * SLOT + 8 * PG)

static struct {
	const char *dev;
	int gidx;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *scq, *rcq;
	struct ibv_xrcd *xrcd;
	int xrcd_fd;
	struct ibv_srq *srq[2];
	uint32_t srqn[2];
	struct ibv_qp *ini, *tgt;
	union ibv_gid gid;
	uint8_t *src;
	struct ibv_mr *smr;
	uint64_t wr_id;
	int num;
	int failed;
} g = { .gidx = 1 };

static int bad;

static void point(const char *name)
{
	vt_point(&g.num, &g.failed, &bad, name);
}

static void modify(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask, const char *what)
{
	int rv = ibv_modify_qp(qp, a, mask);

	if (rv)
		bail("%s: %s", what, strerror(rv));
}

/* The INI and TGT QPs anew, connected to each other and up (INI to RTS, TGT to RTR). */
static void qps_make(void)
{
	struct ibv_qp_init_attr_ex ini = {
		.qp_type = IBV_QPT_XRC_SEND, .send_cq = g.scq, .pd = g.pd,
		.comp_mask = IBV_QP_INIT_ATTR_PD,
		.cap = { .max_send_wr = 16, .max_send_sge = 1 },
	};
	struct ibv_qp_init_attr_ex tgt = {
		.qp_type = IBV_QPT_XRC_RECV, .xrcd = g.xrcd, .comp_mask = IBV_QP_INIT_ATTR_XRCD,
	};
	struct vt_rc c = { .port = 1, .sgid_index = (uint8_t)g.gidx, .dgid = g.gid,
			   .rq_psn = 7, .sq_psn = 7, .min_rnr_timer = 1, .rnr_retry = 7,
			   .access = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
				     IBV_ACCESS_REMOTE_ATOMIC };
	struct ibv_qp_attr a;

	if (g.ini)
		ibv_destroy_qp(g.ini);
	if (g.tgt)
		ibv_destroy_qp(g.tgt);
	g.ini = ibv_create_qp_ex(g.ctx, &ini);
	g.tgt = ibv_create_qp_ex(g.ctx, &tgt);
	if (!g.ini || !g.tgt)
		bail("ibv_create_qp_ex (XRC INI, TGT): %s", strerror(errno));

	vt_rc_init_attr(&a, &c);
	modify(g.tgt, &a, VT_RC_INIT_MASK, "TGT to INIT");
	c.dest_qpn = g.ini->qp_num;
	vt_rc_rtr_attr(&a, &c);
	modify(g.tgt, &a, VT_RC_RTR_MASK, "TGT to RTR");

	vt_rc_init_attr(&a, &c);
	modify(g.ini, &a, VT_RC_INIT_MASK, "INI to INIT");
	c.dest_qpn = g.tgt->qp_num;
	vt_rc_rtr_attr(&a, &c);
	modify(g.ini, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
	       IBV_QP_RQ_PSN, "INI to RTR");
	vt_rc_rts_attr(&a, &c);
	modify(g.ini, &a, VT_RC_RTS_MASK, "INI to RTS");
}

static void setup(void)
{
	struct ibv_xrcd_init_attr xa = { .comp_mask = IBV_XRCD_INIT_ATTR_FD |
					 IBV_XRCD_INIT_ATTR_OFLAGS, .oflags = O_CREAT };

	/* the file that names the domain, for the second context to open it by */
	g.xrcd_fd = memfd_create("pfnic_xrc", 0);
	if (g.xrcd_fd < 0)
		bail("memfd_create: %s", strerror(errno));
	xa.fd = g.xrcd_fd;
	g.ctx = open_device_named(g.dev);
	if (ibv_query_gid(g.ctx, 1, g.gidx, &g.gid))
		bail("cannot query GID %d of %s", g.gidx, g.dev);
	g.pd = ibv_alloc_pd(g.ctx);
	g.scq = ibv_create_cq(g.ctx, 64, NULL, NULL, 0);
	g.rcq = ibv_create_cq(g.ctx, 64, NULL, NULL, 0);
	if (!g.pd || !g.scq || !g.rcq)
		bail("ibv_alloc_pd / ibv_create_cq: %s", strerror(errno));
	g.xrcd = ibv_open_xrcd(g.ctx, &xa);
	if (!g.xrcd)
		bail("ibv_open_xrcd: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		struct ibv_srq_init_attr_ex sa = {
			.attr = { .max_wr = NRECV, .max_sge = 1 },
			.comp_mask = IBV_SRQ_INIT_ATTR_TYPE | IBV_SRQ_INIT_ATTR_PD |
				     IBV_SRQ_INIT_ATTR_XRCD | IBV_SRQ_INIT_ATTR_CQ,
			.srq_type = IBV_SRQT_XRC, .pd = g.pd, .xrcd = g.xrcd, .cq = g.rcq,
		};

		g.srq[i] = ibv_create_srq_ex(g.ctx, &sa);
		if (!g.srq[i] || ibv_get_srq_num(g.srq[i], &g.srqn[i]))
			bail("ibv_create_srq_ex (XRC): %s", strerror(errno));
	}
	g.src = map_fresh(4 * PG);
	g.smr = ibv_reg_mr(g.pd, g.src, 4 * PG, IBV_ACCESS_LOCAL_WRITE);
	if (!g.smr)
		bail("ibv_reg_mr: %s", strerror(errno));
	qps_make();
}

/* Posts a SEND of @len bytes of the pattern of @seed on the INI QP, to XRC SRQ @srqn. */
static int post_send(enum ibv_wr_opcode op, uint32_t len, uint64_t seed, uint32_t srqn,
		     struct ibv_mr *rmr, uint64_t raddr)
{
	struct ibv_sge sge = { .addr = (uintptr_t)g.src, .length = len, .lkey = g.smr->lkey };
	struct ibv_send_wr wr = { .wr_id = ++g.wr_id, .sg_list = &sge, .num_sge = 1,
				  .opcode = op, .send_flags = IBV_SEND_SIGNALED }, *bad_wr;

	for (uint32_t i = 0; i < len && op != IBV_WR_RDMA_READ; i++)
		g.src[i] = vt_pat(seed, i);
	wr.qp_type.xrc.remote_srqn = srqn;
	if (rmr) {
		wr.wr.rdma.remote_addr = raddr;
		wr.wr.rdma.rkey = rmr->rkey;
	}
	return ibv_post_send(g.ini, &wr, &bad_wr);
}

/* The requester's completion: its status, or -1 if none came. */
static int sent(void)
{
	struct ibv_wc wc;

	return vt_poll_one(g.scq, &wc, 10) ? -1 : (int)wc.status;
}

/*
 * Into @buf (an ODP MR's memory, untouched or given back): SENDs to each SRQ in turn, into
 * receive WQEs each SRQ has at unaligned offsets across pages; RDMA WRITE, READ and
 * FETCH_AND_ADD through the INI QP; every byte checked.
 */
static void round_of(struct ibv_mr *rmr, uint8_t *buf, uint64_t seed, const char *when)
{
	const uint32_t lens[] = { 1, 700, PG + 3, 2 * PG + 99 };
	char name[200];
	struct ibv_wc wc;
	int rv;

	for (int k = 0; k < 4; k++) {
		for (int s = 0; s < 2; s++) {
			int slot = 2 * k + s;
			uint8_t *dst = buf + slot * SLOT + PG - 37;
			struct ibv_sge sge = { .addr = (uintptr_t)dst, .length = 3 * PG,
					       .lkey = rmr->lkey };
			struct ibv_recv_wr wr = { .wr_id = 0x100 * s + slot, .sg_list = &sge,
						  .num_sge = 1 }, *bad_wr;
			uint64_t sd = seed + slot;

			EXPECT(!ibv_post_srq_recv(g.srq[s], &wr, &bad_wr), "post_srq_recv: %s",
			       strerror(errno));
			EXPECT(!post_send(IBV_WR_SEND, lens[k], sd, g.srqn[s], NULL, 0),
			       "post_send: %s", strerror(errno));
			rv = sent();
			EXPECT(rv == IBV_WC_SUCCESS, "%s: SEND of %u bytes to SRQ %c: %s", when,
			       lens[k], 'A' + s, vt_status_str(rv));
			rv = vt_poll_one(g.rcq, &wc, 10);
			EXPECT(!rv && wc.status == IBV_WC_SUCCESS && wc.wr_id == wr.wr_id &&
			       wc.byte_len == lens[k] && wc.qp_num == g.tgt->qp_num &&
			       wc.src_qp == g.ini->qp_num, "%s: the receive at SRQ %c: %s, wr_id "
			       "%#" PRIx64 " (expected %#" PRIx64 "), byte_len %u, qp_num %#x (TGT "
			       "%#x), src_qp %#x (INI %#x)", when, 'A' + s,
			       rv ? "none" : ibv_wc_status_str(wc.status), wc.wr_id, wr.wr_id,
			       wc.byte_len, wc.qp_num, g.tgt->qp_num, wc.src_qp, g.ini->qp_num);
			if (!bad && vt_check_pattern(dst, lens[k], sd, 0, GUARD, when))
				bad = 1;
		}
	}
	snprintf(name, sizeof(name), "%s: SENDs to XRC SRQs A and B in turn, 1 byte to 2 pages: "
		 "each in the SRQ it names, every byte and the guards right; completions from the "
		 "TGT QP", when);
	point(name);

	{
		uint8_t *t = buf + 2 * NRECV * SLOT + PG - 5;
		uint32_t len = 2 * PG + 10;

		EXPECT(!post_send(IBV_WR_RDMA_WRITE, len, seed + 50, g.srqn[0], rmr,
				  (uintptr_t)t), "post_send: %s", strerror(errno));
		rv = sent();
		EXPECT(rv == IBV_WC_SUCCESS, "%s: RDMA WRITE: %s", when, vt_status_str(rv));
		if (!bad && vt_check_pattern(t, len, seed + 50, 0, GUARD, when))
			bad = 1;
		memset(g.src, 0, 4 * PG);
		EXPECT(!post_send(IBV_WR_RDMA_READ, len, 0, g.srqn[1], rmr, (uintptr_t)t),
		       "post_send: %s", strerror(errno));
		rv = sent();
		EXPECT(rv == IBV_WC_SUCCESS, "%s: RDMA READ: %s", when, vt_status_str(rv));
		if (!bad && vt_check_pattern(g.src, len, seed + 50, 0, 0, when))
			bad = 1;
	}
	{
		uint64_t *word = (uint64_t *)(buf + 2 * NRECV * SLOT + 6 * PG - 8), before = *word;
		struct ibv_sge sge = { .addr = (uintptr_t)g.src, .length = 8, .lkey = g.smr->lkey };
		struct ibv_send_wr wr = { .wr_id = ++g.wr_id, .sg_list = &sge, .num_sge = 1,
					  .opcode = IBV_WR_ATOMIC_FETCH_AND_ADD,
					  .send_flags = IBV_SEND_SIGNALED }, *bad_wr;

		wr.qp_type.xrc.remote_srqn = g.srqn[0];
		wr.wr.atomic.remote_addr = (uintptr_t)word;
		wr.wr.atomic.rkey = rmr->rkey;
		wr.wr.atomic.compare_add = 5;
		EXPECT(!ibv_post_send(g.ini, &wr, &bad_wr), "post_send: %s", strerror(errno));
		rv = sent();
		EXPECT(rv == IBV_WC_SUCCESS && *word == before + 5 && *(uint64_t *)g.src == before,
		       "%s: FETCH_AND_ADD: %s, the word %#" PRIx64 " (expected %#" PRIx64 "), "
		       "returned %#" PRIx64, when, vt_status_str(rv), *word, before + 5,
		       *(uint64_t *)g.src);
	}
	snprintf(name, sizeof(name), "%s: RDMA WRITE, READ and FETCH_AND_ADD through the INI QP "
		 "reach an ODP MR of the XRC SRQs' PD, every byte right", when);
	point(name);
}

/*
 * A second context of the device opens the domain by its file and the TGT QP by its number;
 * the creator's handle goes, and the TGT QP (in RTR, connected) lives on through the opened
 * one, which becomes g.tgt. Numbers that are no TGT QP of the domain do not open.
 */
static void open_tgt(struct ibv_context **ctx2, struct ibv_xrcd **xrcd2)
{
	struct ibv_xrcd_init_attr xa = { .comp_mask = IBV_XRCD_INIT_ATTR_FD |
					 IBV_XRCD_INIT_ATTR_OFLAGS, .fd = g.xrcd_fd };
	struct ibv_qp_open_attr oa = { .comp_mask = IBV_QP_OPEN_ATTR_NUM | IBV_QP_OPEN_ATTR_XRCD |
				       IBV_QP_OPEN_ATTR_TYPE, .qp_type = IBV_QPT_XRC_RECV };
	struct ibv_qp_init_attr init;
	struct ibv_qp_attr qa;
	struct ibv_qp *opened, *wrong;
	int rv;

	*ctx2 = open_device_named(g.dev);
	*xrcd2 = ibv_open_xrcd(*ctx2, &xa);
	if (!*xrcd2)
		bail("ibv_open_xrcd (second context, by file): %s", strerror(errno));
	oa.xrcd = *xrcd2;
	oa.qp_num = g.ini->qp_num;
	wrong = ibv_open_qp(*ctx2, &oa);
	EXPECT(!wrong, "ibv_open_qp of the INI QP's number opened it");
	oa.qp_num = 0xfffff0;
	if (!wrong)
		wrong = ibv_open_qp(*ctx2, &oa);
	EXPECT(!wrong, "ibv_open_qp of a number no QP has opened one");
	if (wrong)
		ibv_destroy_qp(wrong);
	point("ibv_open_qp refuses numbers that are no TGT QP of the domain");

	oa.qp_num = g.tgt->qp_num;
	opened = ibv_open_qp(*ctx2, &oa);
	if (!opened)
		bail("ibv_open_qp (the TGT QP, from a second context): %s", strerror(errno));
	rv = ibv_query_qp(opened, &qa, IBV_QP_STATE | IBV_QP_DEST_QPN, &init);
	EXPECT(!rv && opened->qp_num == g.tgt->qp_num && qa.qp_state == IBV_QPS_RTR &&
	       qa.dest_qp_num == g.ini->qp_num, "the opened TGT QP: query %s, number %#x "
	       "(expected %#x), state %d (expected RTR), dest %#x (expected the INI QP %#x)",
	       rv ? strerror(rv) : "ok", opened->qp_num, g.tgt->qp_num, qa.qp_state,
	       qa.dest_qp_num, g.ini->qp_num);
	rv = ibv_destroy_qp(g.tgt);
	EXPECT(!rv, "destroying the creator's handle on the TGT QP: %s", strerror(rv));
	g.tgt = opened;
	point("a second context opens the TGT QP (ibv_open_qp): its number, RTR, connected to the "
	      "INI QP; the creator's handle is destroyed");
}

int main(int argc, char **argv)
{
	struct ibv_context *ctx2;
	struct ibv_xrcd *xrcd2;
	uint8_t *buf;
	struct ibv_mr *rmr;
	int rv;

	vt_args(argc, argv, "pfnic_xrc -d DEVICE [-g GID_INDEX]", &g.dev, &g.gidx, "", NULL, NULL);
	printf("TAP version 13\n");
	setup();
	buf = map_fresh(BUF);
	rmr = ibv_reg_mr(g.pd, buf, BUF, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			 IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_ON_DEMAND);
	if (!rmr)
		bail("ibv_reg_mr (ODP): %s", strerror(errno));
	round_of(rmr, buf, 100, "untouched");
	madvise(buf, BUF, MADV_DONTNEED);
	round_of(rmr, buf, 200, "after MADV_DONTNEED");
	open_tgt(&ctx2, &xrcd2);
	round_of(rmr, buf, 300, "the TGT QP held by the second context's handle only");

	/* a number no XRC SRQ of the domain has */
	EXPECT(!post_send(IBV_WR_SEND, 10, 1, 0xfffff0, NULL, 0), "post_send: %s", strerror(errno));
	rv = sent();
	EXPECT(rv == IBV_WC_REM_INV_REQ_ERR, "a SEND to no XRC SRQ: %s, expected remote invalid "
	       "request error", vt_status_str(rv));
	point("a SEND naming no XRC SRQ of the domain fails its requester (REM_INV_REQ_ERR)");

	ibv_destroy_qp(g.ini);
	ibv_destroy_qp(g.tgt);
	if (ibv_close_xrcd(xrcd2))
		bail("ibv_close_xrcd (second context): %s", strerror(errno));
	ibv_close_device(ctx2);
	for (int i = 0; i < 2; i++)
		ibv_destroy_srq(g.srq[i]);
	ibv_close_xrcd(g.xrcd);
	close(g.xrcd_fd);
	ibv_dereg_mr(rmr);
	ibv_dereg_mr(g.smr);
	ibv_destroy_cq(g.scq);
	ibv_destroy_cq(g.rcq);
	ibv_dealloc_pd(g.pd);
	ibv_close_device(g.ctx);
	printf("1..%d\n", g.num);
	return g.failed ? 1 : 0;
}
