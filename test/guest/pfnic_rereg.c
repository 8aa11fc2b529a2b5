// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_rereg: ibv_rereg_mr of ODP and pinned MRs, every byte checked. Prints TAP version 13.
 *
 *   pfnic_rereg -d DEVICE [-g GID_INDEX]
 *
 * Two RC QPs of one device, connected in loopback; QP 0 reaches the MR under test (QP 1's
 * side) with RDMA WRITEs and READs at unaligned offsets across pages, every byte and the
 * guards around checked. The MR is registered again: onto other memory (translation), with
 * fewer and then more rights (access), from ODP to pinned and back (access), into another PD
 * and back (PD). The MR keeps its keys (as on mlx5); after each rereg they reach what they
 * must and no more, and what the MR may no longer do fails with IBV_WC_REM_ACCESS_ERR and
 * changes nothing. A
 * rereg the device cannot carry out (a translation onto unmapped memory) fails and leaves
 * the MR as it was.
 *
 * Exit status: 0 if every test passed, 1 otherwise, 2 on bad arguments.
 */
#define _GNU_SOURCE
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
#define BUF (6 * PG)
#define LOCAL_LEN (8 * PG)
#define READ_AT (4 * PG + 200)
#define REMOTE (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

static struct {
	const char *dev;
	int gidx;
	struct ibv_context *ctx;
	struct ibv_pd *pd, *pd2;
	struct ibv_cq *cq[2];
	struct ibv_qp *qp[2];
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

/* Both QPs anew (a failed access leaves them in the error state), connected and in RTS. */
static void pair_make(void)
{
	struct vt_rc c = { .port = 1, .access = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ,
			   .min_rnr_timer = 1, .rnr_retry = 7, .sgid_index = (uint8_t)g.gidx };
	struct ibv_qp_init_attr ia = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16, .max_send_sge = 1,
			 .max_recv_sge = 1 },
	};
	const char *step;
	int state, rv;

	for (int i = 0; i < 2; i++) {
		struct ibv_wc wc;

		if (g.qp[i])
			ibv_destroy_qp(g.qp[i]);
		while (ibv_poll_cq(g.cq[i], 1, &wc) > 0)
			;
		ia.send_cq = ia.recv_cq = g.cq[i];
		g.qp[i] = ibv_create_qp(g.pd, &ia);
		if (!g.qp[i])
			bail("ibv_create_qp: %s", strerror(errno));
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
	g.pd2 = ibv_alloc_pd(g.ctx);
	for (int i = 0; i < 2; i++)
		g.cq[i] = ibv_create_cq(g.ctx, 64, NULL, NULL, 0);
	if (!g.pd || !g.pd2 || !g.cq[0] || !g.cq[1])
		bail("ibv_alloc_pd / ibv_create_cq: %s", strerror(errno));
	g.local = map_fresh(LOCAL_LEN);
	g.lmr = ibv_reg_mr(g.pd, g.local, LOCAL_LEN, IBV_ACCESS_LOCAL_WRITE);
	if (!g.lmr)
		bail("ibv_reg_mr (local): %s", strerror(errno));
	pair_make();
}

static uint8_t pat(uint64_t seed, size_t i)
{
	return (uint8_t)((seed * 0x9e3779b97f4a7c15ull + i * 131 + (i >> 8)) >> 24) | 1;
}

/* An RDMA WRITE (or READ) of @len bytes between g.local + @lo and @raddr/@rkey: its status. */
static int rdma(enum ibv_wr_opcode op, size_t lo, uint64_t raddr, uint32_t rkey, uint32_t len)
{
	struct ibv_sge sge = { .addr = (uintptr_t)(g.local + lo), .length = len,
			       .lkey = g.lmr->lkey };
	struct ibv_send_wr wr = { .wr_id = ++g.wr_id, .sg_list = &sge, .num_sge = 1,
				  .opcode = op, .send_flags = IBV_SEND_SIGNALED }, *bad_wr;
	struct ibv_wc wc;

	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	if (ibv_post_send(g.qp[0], &wr, &bad_wr))
		return -1;
	for (double end = now() + 10; now() < end;) {
		int n = ibv_poll_cq(g.cq[0], 1, &wc);

		if (n)
			return n == 1 ? (int)wc.status : -1;
	}
	return -1;
}

/* @len bytes at @p are the pattern of @seed, and GUARD bytes on each side are @guard. */
static int check(const uint8_t *p, size_t len, uint64_t seed, uint8_t guard, const char *what)
{
	for (size_t i = 1; i <= GUARD; i++)
		if (p[-(long)i] != guard) {
			diag("%s: guard byte %zu before is %#x", what, i, p[-(long)i]);
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
			diag("%s: guard byte %zu after is %#x", what, i, p[len + i]);
			return -1;
		}
	return 0;
}

/*
 * A WRITE of @len bytes at @off of @buf through @rkey, then a READ of them back: every byte
 * of the target and of what came back checked.
 */
static int write_read(uint8_t *buf, uint32_t rkey, size_t off, uint32_t len, uint64_t seed,
		      const char *what)
{
	int rv;

	for (uint32_t i = 0; i < len; i++)
		g.local[100 + i] = pat(seed, i);
	rv = rdma(IBV_WR_RDMA_WRITE, 100, (uintptr_t)(buf + off), rkey, len);
	if (rv) {
		diag("%s: the WRITE completed with %s", what, rv < 0 ? "nothing" :
		     ibv_wc_status_str(rv));
		return -1;
	}
	if (check(buf + off, len, seed, 0, what))
		return -1;
	memset(g.local + READ_AT - GUARD, 0xee, len + 2 * GUARD);
	rv = rdma(IBV_WR_RDMA_READ, READ_AT, (uintptr_t)(buf + off), rkey, len);
	if (rv) {
		diag("%s: the READ completed with %s", what, rv < 0 ? "nothing" :
		     ibv_wc_status_str(rv));
		return -1;
	}
	return check(g.local + READ_AT, len, seed, 0xee, what);
}

/* A WRITE of 100 bytes at @target through @rkey that must fail, and change nothing there. */
static void refused(uint8_t *target, uint32_t rkey, const char *what)
{
	int rv;

	memset(g.local + 100, 0x5a, 100);
	rv = rdma(IBV_WR_RDMA_WRITE, 100, (uintptr_t)target, rkey, 100);
	EXPECT(rv == IBV_WC_REM_ACCESS_ERR, "%s: completed with %s, expected remote access error",
	       what, rv < 0 ? "nothing" : ibv_wc_status_str(rv));
	for (int i = 0; i < 100; i++)
		if (target[i]) {
			EXPECT(0, "%s: byte %d of the target changed", what, i);
			break;
		}
	pair_make();
}

static void rereg(struct ibv_mr *mr, int flags, struct ibv_pd *pd, void *addr, size_t len,
		  int access, const char *what)
{
	int rv = ibv_rereg_mr(mr, flags, pd, addr, len, access);

	EXPECT(!rv, "%s: ibv_rereg_mr: %d (%s)", what, rv, strerror(errno));
}

static void c_kind(bool odp)
{
	const char *kind = odp ? "odp" : "pinned";
	int od = odp ? IBV_ACCESS_ON_DEMAND : 0;
	uint8_t *a = map_fresh(BUF), *b = map_fresh(2 * BUF);
	struct ibv_mr *mr = ibv_reg_mr(g.pd, a, BUF, REMOTE | od);
	uint32_t old_rkey;
	char name[200];

	if (!mr)
		bail("ibv_reg_mr (%s): %s", kind, strerror(errno));
	if (write_read(a, mr->rkey, PG - 7, 2 * PG + 11, 1, "before"))
		bad = 1;
	old_rkey = mr->rkey;
	rereg(mr, IBV_REREG_MR_CHANGE_TRANSLATION, NULL, b + PG, BUF, 0, "translation");
	EXPECT(mr->addr == b + PG && mr->length == BUF, "the MR's address and length after: %p, "
	       "%zu", mr->addr, mr->length);
	/* as on mlx5: a peer given the rkey goes on with it (pyverbs' rereg tests rely on it) */
	EXPECT(mr->rkey == old_rkey && mr->lkey == old_rkey, "the keys changed: rkey %#x, lkey "
	       "%#x (were %#x)", mr->rkey, mr->lkey, old_rkey);
	if (!bad && write_read(b, mr->rkey, PG + 5, 3 * PG + 1, 2, "onto new memory"))
		bad = 1;
	memset(a, 0, BUF);
	refused(a + PG, mr->rkey, "the old memory through the MR's rkey");
	refused(b + PG + BUF + 10, mr->rkey, "past the new translation's end");
	snprintf(name, sizeof(name), "%s: registered onto other memory, the MR keeps its keys, "
		 "which reach the new memory (every byte) and neither the old nor past its end",
		 kind);
	point(name);

	memset(b, 0, 2 * BUF);
	rereg(mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0,
	      IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | od, "access without remote write");
	refused(b + 2 * PG, mr->rkey, "a WRITE after remote write was taken away");
	{
		int rv;

		memcpy(b + 2 * PG + 300, "rights", 6);
		rv = rdma(IBV_WR_RDMA_READ, READ_AT, (uintptr_t)(b + 2 * PG + 300), mr->rkey, 6);
		EXPECT(rv == IBV_WC_SUCCESS && !memcmp(g.local + READ_AT, "rights", 6),
		       "a READ with read rights left: %s", rv < 0 ? "nothing" :
		       ibv_wc_status_str(rv));
		memset(b, 0, 2 * BUF);
	}
	rereg(mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0, REMOTE | od, "access with remote write");
	if (!bad && write_read(b, mr->rkey, 2 * PG - 1, 2, 3, "remote write given back"))
		bad = 1;
	snprintf(name, sizeof(name), "%s: registered with fewer rights, a WRITE is refused and a "
		 "READ is not; with them back, WRITEs land", kind);
	point(name);

	/* ODP to pinned and back: only ODP follows the process's memory after MADV_DONTNEED */
	memset(b, 0, 2 * BUF);
	rereg(mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0, REMOTE | (od ^ IBV_ACCESS_ON_DEMAND),
	      "the other kind");
	if (!bad && write_read(b, mr->rkey, PG + 9, PG + 9, 4, "as the other kind"))
		bad = 1;
	rereg(mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0, REMOTE | IBV_ACCESS_ON_DEMAND,
	      "ODP");
	madvise(b, 2 * BUF, MADV_DONTNEED);
	if (!bad && write_read(b, mr->rkey, 3 * PG - 20, 100, 5,
			       "ODP after MADV_DONTNEED (the process sees what RDMA wrote)"))
		bad = 1;
	snprintf(name, sizeof(name), "%s: registered as %s and then as ODP, which after "
		 "MADV_DONTNEED writes where the process reads", kind, odp ? "pinned" : "ODP");
	point(name);

	/* another PD: QP 0's PD reaches it no more */
	memset(b, 0, 2 * BUF);
	rereg(mr, IBV_REREG_MR_CHANGE_PD, g.pd2, NULL, 0, 0, "into another PD");
	refused(b + 2 * PG, mr->rkey, "a WRITE from a QP of the MR's former PD");
	rereg(mr, IBV_REREG_MR_CHANGE_PD, g.pd, NULL, 0, 0, "back into the QPs' PD");
	if (!bad && write_read(b, mr->rkey, 2 * PG + 3, 50, 6, "back in the PD"))
		bad = 1;
	snprintf(name, sizeof(name), "%s: moved into another PD, a QP of the former PD is refused; "
		 "moved back, WRITEs land", kind);
	point(name);

	/* a translation the device cannot make: the MR stays as it was */
	if (!odp) {
		void *hole = mmap(NULL, BUF, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint32_t rkey = mr->rkey;
		int rv;

		rereg(mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0, REMOTE, "pinned again");
		rkey = mr->rkey;
		rv = ibv_rereg_mr(mr, IBV_REREG_MR_CHANGE_TRANSLATION, NULL, hole, BUF, 0);
		EXPECT(rv == IBV_REREG_MR_ERR_CMD && mr->rkey == rkey, "a pinned MR onto PROT_NONE "
		       "memory: %d (%s), rkey %#x (was %#x), expected IBV_REREG_MR_ERR_CMD and the "
		       "same keys", rv, strerror(errno), mr->rkey, rkey);
		memset(b, 0, 2 * BUF);
		if (!bad && write_read(b, rkey, PG + 1, 77, 7, "after the refused rereg"))
			bad = 1;
		munmap(hole, BUF);
		point("pinned: a rereg onto memory that cannot be pinned fails; the MR and its keys "
		      "work as before");
	}
	EXPECT(!ibv_dereg_mr(mr), "ibv_dereg_mr: %s", strerror(errno));
	munmap(a, BUF);
	munmap(b, 2 * BUF);
}

int main(int argc, char **argv)
{
	vt_args(argc, argv, "pfnic_rereg -d DEVICE [-g GID_INDEX]", &g.dev, &g.gidx, "", NULL,
		NULL);
	printf("TAP version 13\n");
	setup();
	c_kind(true);
	c_kind(false);
	for (int i = 0; i < 2; i++)
		ibv_destroy_qp(g.qp[i]);
	ibv_dereg_mr(g.lmr);
	ibv_destroy_cq(g.cq[0]);
	ibv_destroy_cq(g.cq[1]);
	ibv_dealloc_pd(g.pd2);
	ibv_dealloc_pd(g.pd);
	ibv_close_device(g.ctx);
	printf("1..%d\n", g.num);
	return g.failed ? 1 : 0;
}
