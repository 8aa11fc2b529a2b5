// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_uc: UC (unreliable connected) QPs over ODP and pinned memory, every byte checked.
 * Prints TAP version 13.
 *
 *   pfnic_uc -d DEVICE [-g GID_INDEX]
 *
 * Two UC QPs of one device, connected to each other over the port's GID, once through the
 * plain verbs (ibv_post_send) and once as extended QPs (ibv_wr_start, ibv_wr_<opcode>,
 * ibv_wr_complete). For each kind of memory (explicit ODP, implicit ODP, pinned) the
 * responder's buffer is fresh and untouched, and every operation starts at an offset that is
 * not page-aligned; all but the smallest cross pages. An RDMA WRITE with immediate, an RDMA
 * WRITE followed by a 0-byte SEND (UC keeps a QP's messages in order: its receive says the
 * WRITE has landed) and a SEND; each target checked whole with GUARD bytes on both sides,
 * and the completions too. Then the memory is taken away (MADV_DONTNEED; ODP only) and,
 * with a second NUMA node, moved (move_pages; pinned pages stay), and everything again.
 *
 * Then what UC does with messages the responder cannot take, which no ACK reports: one with
 * no receive WQE posted, a bad rkey, a range past the MR, a responder without remote write
 * rights, a message longer than its receive WQE, a responder not yet in RTR: each is lost,
 * the requester completes it with success, the responder sees nothing of it and stays in
 * RTS, and the next message arrives whole (a message too long for its receive WQE leaves
 * that WQE to the next). And what a UC QP does not have: RDMA READ, atomics and SEND with
 * Invalidate are refused at the post, and an extended QP asking for them is not created.
 *
 * Exit status: 0 if every test passed, 1 otherwise, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
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
#define GUARD 64
/* one slot per operation and length, in each of the phases' own regions */
#define NLEN 4
#define SLOT (8 * PG)
#define NOPS 3
#define REGION (NOPS * NLEN * SLOT)
#define NPHASE 3
#define BUF (NPHASE * REGION)
#define SRC_LEN (4 * PG)
#define IMM 0xc0ffee
/* move_pages(2) flag, from <linux/mempolicy.h> */
#define MF_MOVE 2

#define UC_INIT_MASK (IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)
#define UC_RTR_MASK (IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN)
#define UC_RTS_MASK (IBV_QP_STATE | IBV_QP_SQ_PSN)
#define UC_OPS (IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_SEND_WITH_IMM | IBV_QP_EX_WITH_RDMA_WRITE | \
		IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM)

enum op { OP_WRITE_IMM, OP_WRITE, OP_SEND };
static const char *const op_names[NOPS] = { "WRITE with immediate", "WRITE, then a SEND",
					    "SEND" };
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

static void skip(const char *name, const char *why)
{
	g.num++;
	printf("ok %d - %s # SKIP %s\n", g.num, name, why);
}

/* ---- set-up --------------------------------------------------------------------------------- */

static struct vt_rc conn(int i, int access)
{
	return (struct vt_rc){ .port = 1, .access = access, .dest_qpn = g.qp[!i]->qp_num,
			       .rq_psn = 0x100, .sq_psn = 0x100, .dgid = g.gid,
			       .sgid_index = (uint8_t)g.gidx };
}

/* Brings UC QP @i up to @to (INIT, RTR or RTS) from RESET, with UC's attributes only. */
static int uc_up(int i, enum ibv_qp_state to)
{
	struct vt_rc c = conn(i, IBV_ACCESS_REMOTE_WRITE);
	struct ibv_qp_attr a;

	vt_rc_init_attr(&a, &c);
	if (ibv_modify_qp(g.qp[i], &a, UC_INIT_MASK))
		return -1;
	if (to == IBV_QPS_INIT)
		return 0;
	vt_rc_rtr_attr(&a, &c);
	if (ibv_modify_qp(g.qp[i], &a, UC_RTR_MASK))
		return -1;
	if (to == IBV_QPS_RTR)
		return 0;
	vt_rc_rts_attr(&a, &c);
	return ibv_modify_qp(g.qp[i], &a, UC_RTS_MASK);
}

static struct ibv_qp *uc_create(int i)
{
	struct ibv_qp_init_attr_ex ia = {
		.send_cq = g.cq[i], .recv_cq = g.cq[i], .qp_type = IBV_QPT_UC, .pd = g.pd,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16, .max_send_sge = 2, .max_recv_sge = 2 },
		.comp_mask = IBV_QP_INIT_ATTR_PD,
	};

	if (g.ex) {
		ia.comp_mask |= IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
		ia.send_ops_flags = UC_OPS;
	}
	return ibv_create_qp_ex(g.ctx, &ia);
}

/* (Re)creates both QPs (plain or extended, as g.ex says); @up: and connects them. */
static void pair_make(bool up)
{
	for (int i = 0; i < 2; i++) {
		if (g.qp[i])
			ibv_destroy_qp(g.qp[i]);
		g.qp[i] = uc_create(i);
		if (!g.qp[i])
			bail("ibv_create_qp_ex(UC%s): %s", g.ex ? ", extended" : "", strerror(errno));
	}
	for (int i = 0; up && i < 2; i++)
		if (uc_up(i, IBV_QPS_RTS))
			bail("UC QP %d up to RTS: %s", i, strerror(errno));
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
	g.src = map_fresh(SRC_LEN);
	g.smr = ibv_reg_mr(g.pd, g.src, SRC_LEN, IBV_ACCESS_LOCAL_WRITE);
	if (!g.smr)
		bail("ibv_reg_mr (source): %s", strerror(errno));
}

/* ---- posting and polling -------------------------------------------------------------------- */


/* The next completion of QP @i's CQ, or -1 with none in @secs seconds. */
static int wait_wc(int i, struct ibv_wc *wc, double secs)
{
	return vt_poll_one(g.cq[i], wc, secs);
}

/* Whether QP @i's CQ stays empty for a while (a lost message leaves no completion). */
static bool cq_quiet(int i)
{
	struct ibv_wc wc;

	return wait_wc(i, &wc, 0.3) != 0;
}

static int post_recv(struct ibv_mr *mr, uint8_t *addr, uint32_t len, uint64_t id)
{
	struct ibv_sge sge = { .addr = (uintptr_t)addr, .length = len, .lkey = mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = id, .sg_list = &sge, .num_sge = 1 }, *badwr;

	return ibv_post_recv(g.qp[1], &wr, &badwr);
}

/*
 * Posts one signaled WR of @opcode on QP 0 from the source buffer (@len bytes at @so), to
 * @raddr/@rkey for a WRITE; through ibv_wr_* on an extended QP. Return: 0 or an errno.
 */
static int post_op(enum ibv_wr_opcode opcode, size_t so, uint32_t len, uint64_t raddr,
		   uint32_t rkey, uint64_t id)
{
	struct ibv_sge sge = { .addr = (uintptr_t)(g.src + so), .length = len,
			       .lkey = g.smr->lkey };

	if (g.ex) {
		struct ibv_qp_ex *qpx = ibv_qp_to_qp_ex(g.qp[0]);

		ibv_wr_start(qpx);
		qpx->wr_id = id;
		qpx->wr_flags = IBV_SEND_SIGNALED;
		switch (opcode) {
		case IBV_WR_RDMA_WRITE:
			ibv_wr_rdma_write(qpx, rkey, raddr);
			break;
		case IBV_WR_RDMA_WRITE_WITH_IMM:
			ibv_wr_rdma_write_imm(qpx, rkey, raddr, htonl(IMM));
			break;
		case IBV_WR_SEND_WITH_IMM:
			ibv_wr_send_imm(qpx, htonl(IMM));
			break;
		default:
			ibv_wr_send(qpx);
			break;
		}
		ibv_wr_set_sge(qpx, sge.lkey, sge.addr, sge.length);
		return ibv_wr_complete(qpx);
	}

	struct ibv_send_wr wr = {
		.wr_id = id, .sg_list = &sge, .num_sge = 1, .opcode = opcode,
		.send_flags = IBV_SEND_SIGNALED, .imm_data = htonl(IMM),
	}, *badwr;

	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	return ibv_post_send(g.qp[0], &wr, &badwr);
}

/* The requester's completion of @id: success. Return: 0 or -1 (said, with @what). */
static int sent_ok(uint64_t id, const char *what)
{
	struct ibv_wc wc = { 0 };

	if (wait_wc(0, &wc, 10) || wc.status != IBV_WC_SUCCESS || wc.wr_id != id) {
		diag("%s: the requester's completion: %s, wr_id %#" PRIx64 " (expected %#" PRIx64
		     ")", what, ibv_wc_status_str(wc.status), wc.wr_id, id);
		return -1;
	}
	return 0;
}

/* The responder's completion of receive @id: @opcode, @len bytes, @imm or not. */
static int received_ok(uint64_t id, enum ibv_wc_opcode opcode, uint32_t len, bool imm,
		       const char *what)
{
	struct ibv_wc wc = { 0 };

	if (wait_wc(1, &wc, 10) || wc.status != IBV_WC_SUCCESS || wc.wr_id != id) {
		diag("%s: the receive completion: %s, wr_id %#" PRIx64 " (expected %#" PRIx64 ")",
		     what, ibv_wc_status_str(wc.status), wc.wr_id, id);
		return -1;
	}
	if (wc.opcode != opcode || wc.byte_len != len || wc.src_qp != g.qp[0]->qp_num ||
	    !!(wc.wc_flags & IBV_WC_WITH_IMM) != imm || (imm && ntohl(wc.imm_data) != IMM)) {
		diag("%s: receive completion: opcode %d (expected %d), byte_len %u (expected %u), "
		     "src_qp %#x, flags %#x", what, wc.opcode, opcode, wc.byte_len, len, wc.src_qp,
		     wc.wc_flags);
		return -1;
	}
	return 0;
}

/*
 * Checks @len bytes at @dst against the pattern of @seed (@flip: its complement), and GUARD
 * bytes on each side against @guard.
 */
static int check_bytes(const uint8_t *dst, uint32_t len, uint64_t seed, bool flip,
		       uint8_t guard, const char *what)
{
	for (int i = 1; i <= GUARD; i++) {
		if (dst[-i] != guard) {
			diag("%s: guard byte %d before the target is %#x, expected %#x", what, i,
			     dst[-i], guard);
			return -1;
		}
	}
	for (uint32_t i = 0; i < len; i++) {
		uint8_t want = flip ? (uint8_t)~vt_pat(seed, i) : vt_pat(seed, i);

		if (dst[i] != want) {
			diag("%s: byte %u of %u is %#x, expected %#x", what, i, len, dst[i], want);
			return -1;
		}
	}
	for (int i = 0; i < GUARD; i++) {
		if (dst[len + i] != guard) {
			diag("%s: guard byte %d after the target is %#x, expected %#x", what, i,
			     dst[len + i], guard);
			return -1;
		}
	}
	return 0;
}

/*
 * One operation @op of @len bytes into @dst (in MR @rmr), its source at @so: the pattern of
 * @seed (@flip: its complement, for a second pass over the same target), every byte checked.
 */
static int one_op(enum op op, struct ibv_mr *rmr, uint8_t *dst, size_t so, uint32_t len,
		  uint64_t seed, bool flip, const char *what)
{
	uint64_t sid = ++g.wr_id, rid = ++g.wr_id;
	uint64_t raddr = (uintptr_t)dst;

	for (uint32_t i = 0; i < len; i++)
		g.src[so + i] = flip ? (uint8_t)~vt_pat(seed, i) : vt_pat(seed, i);
	switch (op) {
	case OP_WRITE_IMM:
		if (post_recv(rmr, NULL, 0, rid) ||
		    post_op(IBV_WR_RDMA_WRITE_WITH_IMM, so, len, raddr, rmr->rkey, sid))
			goto posting;
		if (sent_ok(sid, what) ||
		    received_ok(rid, IBV_WC_RECV_RDMA_WITH_IMM, len, true, what))
			return -1;
		break;
	case OP_WRITE: {
		uint64_t mid = ++g.wr_id;

		if (post_recv(rmr, NULL, 0, rid) ||
		    post_op(IBV_WR_RDMA_WRITE, so, len, raddr, rmr->rkey, sid) ||
		    post_op(IBV_WR_SEND, so, 0, 0, 0, mid))
			goto posting;
		if (sent_ok(sid, what) || sent_ok(mid, what) ||
		    received_ok(rid, IBV_WC_RECV, 0, false, what))
			return -1;
		break;
	}
	case OP_SEND:
		if (post_recv(rmr, dst, len, rid) ||
		    post_op(IBV_WR_SEND_WITH_IMM, so, len, 0, 0, sid))
			goto posting;
		if (sent_ok(sid, what) || received_ok(rid, IBV_WC_RECV, len, true, what))
			return -1;
		break;
	}
	return check_bytes(dst, len, seed, flip, 0, what);
posting:
	diag("%s: posting: %s", what, strerror(errno));
	return -1;
}

/*
 * Every operation at every length into @region (fresh zeroes, or what the same call put
 * there when @flip), each target across pages at an unaligned offset.
 */
static int round_of(struct ibv_mr *rmr, uint8_t *region, uint64_t seed, bool flip,
		    const char *when)
{
	const uint32_t lens[NLEN] = { 1, 333, PG + 77, 3 * PG + 5 };
	char what[128];

	for (int op = 0; op < NOPS; op++) {
		for (int k = 0; k < NLEN; k++) {
			uint8_t *dst = region + (op * NLEN + k) * SLOT + PG - 13 * (k + 1);
			size_t so = PG - 100 + k;

			snprintf(what, sizeof(what), "%s: %s of %u bytes", when, op_names[op],
				 lens[k]);
			if (one_op((enum op)op, rmr, dst, so, lens[k], seed + op * 10 + k, flip,
				   what))
				return -1;
		}
	}
	return 0;
}

/* ---- traffic -------------------------------------------------------------------------------- */

/* Moves every page of @buf there is to the other node. Return: pages moved, or -1 (said). */
static long move_all(uint8_t *buf, size_t len, bool odp, const char *kind)
{
	size_t npg = len / PG, n = 0, moved = 0, stuck = 0;
	int why = 0;
	void **pages = calloc(npg, sizeof(*pages));
	int *nodes = calloc(npg, sizeof(*nodes)), *status = calloc(npg, sizeof(*status));

	if (!pages || !nodes || !status)
		bail("out of memory");
	for (size_t i = 0; i < npg; i++)
		pages[i] = buf + i * PG;
	syscall(SYS_move_pages, 0, npg, pages, NULL, status, 0);
	for (size_t i = 0; i < npg; i++) {
		if (status[i] < 0)
			continue;
		nodes[n] = status[i] == 0 ? 1 : 0;
		pages[n++] = buf + i * PG;
	}
	/*
	 * a page busy for a moment (not yet on the LRU after its fault) is tried again, for up
	 * to ten seconds: a debug kernel on a loaded machine takes its time
	 */
	for (int tries = 0; tries < (odp ? 100 : 1) && moved < n; tries++) {
		if (tries)
			usleep(100000);
		syscall(SYS_move_pages, 0, n, pages, nodes, status, MF_MOVE);
		why = 0;
		for (size_t i = 0; i < n; i++)
			if (status[i] < 0 && !why) {
				why = -status[i];
				stuck = i;
			}
		syscall(SYS_move_pages, 0, n, pages, NULL, status, 0);
		moved = 0;
		for (size_t i = 0; i < n; i++)
			moved += status[i] == nodes[i];
	}
	if (!n || (odp && moved != n) || (!odp && moved)) {
		diag("%s: %zu of %zu pages moved to the other node (%s; the last try's first "
		     "error: page %zu, %s)", kind, moved, n, odp ? "all must move" :
		     "pinned pages must stay", stuck, why ? strerror(why) : "none");
		moved = (size_t)-1;
	}
	free(pages);
	free(nodes);
	free(status);
	return (long)moved;
}

static void c_kind(int kind)
{
	uint8_t *buf = map_fresh(BUF);
	int odp = kind < 2 ? IBV_ACCESS_ON_DEMAND : 0;
	int rights = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | odp;
	const char *how = g.ex ? "extended" : "plain";
	struct ibv_mr *rmr;
	char name[200];

	rmr = kind == 1 ? ibv_reg_mr(g.pd, NULL, SIZE_MAX, rights) :
			  ibv_reg_mr(g.pd, buf, BUF, rights);
	if (!rmr)
		bail("ibv_reg_mr (%s): %s", kinds[kind], strerror(errno));

	if (round_of(rmr, buf, 1000 * kind, false, "untouched"))
		bad = 1;
	snprintf(name, sizeof(name), "%s, %s QPs: WRITE with immediate, WRITE then SEND, SEND of "
		 "1 to 3 pages + 5 bytes into untouched memory at unaligned offsets: every byte, the "
		 "guards and the completions right", kinds[kind], how);
	point(name);

	snprintf(name, sizeof(name), "%s, %s QPs: the same after MADV_DONTNEED of the target",
		 kinds[kind], how);
	if (!odp) {
		skip(name, "a pinned MR keeps the pages MADV_DONTNEED takes from the process");
	} else {
		madvise(buf, BUF, MADV_DONTNEED);
		if (round_of(rmr, buf + REGION, 1000 * kind + 100, false, "after MADV_DONTNEED"))
			bad = 1;
		point(name);
	}

	snprintf(name, sizeof(name), "%s, %s QPs: the same again over the same targets after "
		 "move_pages of them to the other node", kinds[kind], how);
	if (access("/sys/devices/system/node/node1", F_OK)) {
		skip(name, "one NUMA node");
	} else {
		uint8_t *region = buf + 2 * REGION;

		/* the MR maps the region's pages first; then they move under it */
		if (round_of(rmr, region, 1000 * kind + 200, false, "before move_pages") ||
		    move_all(region, REGION, odp, kinds[kind]) < 0 ||
		    round_of(rmr, region, 1000 * kind + 200, true, "after move_pages"))
			bad = 1;
		point(name);
	}
	ibv_dereg_mr(rmr);
	munmap(buf, BUF);
}

/* ---- what UC loses -------------------------------------------------------------------------- */

static bool responder_in_rts(const char *what)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;

	if (ibv_query_qp(g.qp[1], &a, IBV_QP_STATE, &ia) || a.qp_state != IBV_QPS_RTS) {
		diag("%s: the responder is in state %d, not RTS", what, a.qp_state);
		return false;
	}
	return true;
}

/*
 * A message the responder cannot take, made so by @setup (a WRITE to @raddr/@rkey of @len
 * bytes, or a SEND when @send): the requester succeeds, nothing arrives, the responder stays
 * in RTS; then a good message arrives whole.
 */
static void lost(const char *name, bool send, uint32_t len, uint64_t raddr, uint32_t rkey,
		 struct ibv_mr *rmr, uint8_t *dst)
{
	uint64_t sid = ++g.wr_id;

	memset(g.src, 0x77, SRC_LEN);
	if (post_op(send ? IBV_WR_SEND : IBV_WR_RDMA_WRITE, 0, len, raddr, rkey, sid))
		EXPECT(0, "%s: posting: %s", name, strerror(errno));
	else if (!sent_ok(sid, name))
		EXPECT(cq_quiet(1), "%s: the responder got a completion", name);
	else
		bad = 1;
	for (size_t i = 0; i < 2 * PG; i++) {
		if (dst[i]) {
			EXPECT(0, "%s: byte %zu of the responder's buffer changed", name, i);
			break;
		}
	}
	EXPECT(responder_in_rts(name), "%s", name);
	if (one_op(OP_WRITE_IMM, rmr, dst + PG - 3, 0, 100, 7, false, name))
		bad = 1;
	memset(dst, 0, 2 * PG);
	point(name);
}

static void c_lost(void)
{
	uint8_t *buf = map_fresh(4 * PG);
	struct ibv_mr *rmr = ibv_reg_mr(g.pd, buf, 2 * PG, IBV_ACCESS_LOCAL_WRITE |
					IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_ON_DEMAND);
	uint64_t raddr = (uintptr_t)buf;

	if (!rmr)
		bail("ibv_reg_mr: %s", strerror(errno));
	g.ex = false;
	pair_make(true);

	lost("a SEND with no receive WQE posted is lost: the requester succeeds", true, 100, 0, 0,
	     rmr, buf);
	lost("a WRITE with a bad rkey is lost: the requester succeeds, the responder stays in RTS",
	     false, 100, raddr, rmr->rkey ^ 0x100, rmr, buf);
	lost("a WRITE past the end of its MR is lost", false, 200, raddr + 2 * PG - 100, rmr->rkey,
	     rmr, buf);

	/* no remote write rights at the responder, for a moment */
	struct ibv_qp_attr a = { .qp_access_flags = 0 };

	if (ibv_modify_qp(g.qp[1], &a, IBV_QP_ACCESS_FLAGS))
		bail("taking the responder's remote write rights: %s", strerror(errno));
	{
		uint64_t sid = ++g.wr_id;
		const char *what = "a WRITE to a responder without remote write rights is lost";

		if (post_op(IBV_WR_RDMA_WRITE, 0, 100, raddr, rmr->rkey, sid) || sent_ok(sid, what))
			bad = 1;
		EXPECT(cq_quiet(1) && responder_in_rts(what), "%s", what);
		for (size_t i = 0; i < 2 * PG && !bad; i++)
			EXPECT(!buf[i], "%s: byte %zu changed", what, i);
		a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE;
		if (ibv_modify_qp(g.qp[1], &a, IBV_QP_ACCESS_FLAGS))
			bail("giving the rights back: %s", strerror(errno));
		if (one_op(OP_WRITE_IMM, rmr, buf + PG - 17, 0, 50, 9, false, what))
			bad = 1;
		memset(buf, 0, 2 * PG);
		point(what);
	}

	/* too long for its receive WQE: lost, and the WQE takes the next message */
	{
		const char *what = "a SEND longer than its receive WQE is lost, and the WQE takes "
				   "the next message";
		uint64_t rid = ++g.wr_id, sid = ++g.wr_id, sid2 = ++g.wr_id;

		memset(g.src, 0x55, SRC_LEN);
		if (post_recv(rmr, buf + 100, 100, rid) || post_op(IBV_WR_SEND, 0, 101, 0, 0, sid) ||
		    sent_ok(sid, what))
			bad = 1;
		EXPECT(cq_quiet(1), "%s: the receive completed", what);
		for (uint32_t i = 0; i < 60; i++)
			g.src[i] = vt_pat(11, i);
		if (post_op(IBV_WR_SEND, 0, 60, 0, 0, sid2) || sent_ok(sid2, what) ||
		    received_ok(rid, IBV_WC_RECV, 60, false, what) ||
		    check_bytes(buf + 100, 60, 11, false, 0, what))
			bad = 1;
		EXPECT(responder_in_rts(what), "%s", what);
		memset(buf, 0, 2 * PG);
		point(what);
	}

	/* what UC has not */
	{
		struct ibv_sge sge = { .addr = (uintptr_t)g.src, .length = 8, .lkey = g.smr->lkey };
		const enum ibv_wr_opcode no[] = { IBV_WR_RDMA_READ, IBV_WR_ATOMIC_CMP_AND_SWP,
						  IBV_WR_ATOMIC_FETCH_AND_ADD, IBV_WR_SEND_WITH_INV };

		for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++) {
			struct ibv_send_wr wr = { .wr_id = ++g.wr_id, .sg_list = &sge, .num_sge = 1,
						  .opcode = no[i], .send_flags = IBV_SEND_SIGNALED },
					   *badwr = NULL;
			int rv;

			wr.wr.atomic.remote_addr = raddr;
			wr.wr.atomic.rkey = rmr->rkey;
			rv = ibv_post_send(g.qp[0], &wr, &badwr);
			EXPECT(rv == EINVAL && badwr == &wr, "ibv_post_send of opcode %d on a UC QP: "
			       "%s, expected EINVAL", no[i], rv ? strerror(rv) : "posted");
		}
		EXPECT(cq_quiet(0), "a refused WR completed");
		if (one_op(OP_SEND, rmr, buf + 200, 0, 40, 13, false, "after the refused posts"))
			bad = 1;
		memset(buf, 0, 2 * PG);

		struct ibv_qp_init_attr_ex ia = {
			.send_cq = g.cq[0], .recv_cq = g.cq[0], .qp_type = IBV_QPT_UC, .pd = g.pd,
			.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1,
				 .max_recv_sge = 1 },
			.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
			.send_ops_flags = UC_OPS | IBV_QP_EX_WITH_RDMA_READ,
		};
		struct ibv_qp *qp = ibv_create_qp_ex(g.ctx, &ia);

		EXPECT(!qp && errno == EOPNOTSUPP, "an extended UC QP with RDMA READ: %s, expected "
		       "EOPNOTSUPP", qp ? "created" : strerror(errno));
		if (qp)
			ibv_destroy_qp(qp);
		point("RDMA READ, atomics and SEND with Invalidate are refused on a UC QP at the post "
		      "(EINVAL) and in an extended UC QP's operations (EOPNOTSUPP)");
	}

	/* a responder not yet receiving: the requester's message is lost */
	{
		const char *what = "a message to a responder not yet in RTR is lost; once there, the "
				   "next one arrives";
		uint64_t sid = ++g.wr_id;

		for (int i = 0; i < 2; i++) {
			ibv_destroy_qp(g.qp[i]);
			g.qp[i] = uc_create(i);
			if (!g.qp[i])
				bail("ibv_create_qp (UC): %s", strerror(errno));
		}
		if (uc_up(0, IBV_QPS_RTS) || uc_up(1, IBV_QPS_INIT))
			bail("UC QPs up: %s", strerror(errno));
		if (post_op(IBV_WR_RDMA_WRITE, 0, 100, raddr, rmr->rkey, sid) || sent_ok(sid, what))
			bad = 1;
		for (size_t i = 0; i < 2 * PG && !bad; i++)
			EXPECT(!buf[i], "%s: byte %zu changed", what, i);
		struct vt_rc c = conn(1, IBV_ACCESS_REMOTE_WRITE);

		vt_rc_rtr_attr(&a, &c);
		if (ibv_modify_qp(g.qp[1], &a, UC_RTR_MASK))
			bail("responder to RTR: %s", strerror(errno));
		if (one_op(OP_SEND, rmr, buf + 300, 0, 40, 17, false, what) ||
		    one_op(OP_WRITE_IMM, rmr, buf + PG + 500, 0, 40, 19, false, what))
			bad = 1;
		point(what);
	}
	ibv_dereg_mr(rmr);
	munmap(buf, 4 * PG);
}

int main(int argc, char **argv)
{
	struct ibv_device_attr_ex dx;
	uint32_t need = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV | IBV_ODP_SUPPORT_WRITE;

	vt_args(argc, argv, "pfnic_uc -d DEVICE [-g GID_INDEX]", &g.dev, &g.gidx, "", NULL, NULL);
	printf("TAP version 13\n");
	setup();
	if (ibv_query_device_ex(g.ctx, NULL, &dx))
		bail("ibv_query_device_ex: %s", strerror(errno));
	EXPECT((dx.odp_caps.general_caps & IBV_ODP_SUPPORT) &&
	       (dx.odp_caps.per_transport_caps.uc_odp_caps & need) == need,
	       "uc_odp_caps %#x: no ODP SEND, RECV and WRITE on UC",
	       dx.odp_caps.per_transport_caps.uc_odp_caps);
	point("the device reports ODP SEND, RECV and WRITE on UC (uc_odp_caps)");
	for (int ex = 0; ex < 2; ex++) {
		g.ex = ex;
		pair_make(true);
		diag("UC QPs %#x and %#x%s", g.qp[0]->qp_num, g.qp[1]->qp_num,
		     ex ? ", extended" : "");
		for (int kind = 0; kind < 3; kind++)
			c_kind(kind);
	}
	c_lost();
	for (int i = 0; i < 2; i++)
		ibv_destroy_qp(g.qp[i]);
	ibv_dereg_mr(g.smr);
	ibv_destroy_cq(g.cq[0]);
	ibv_destroy_cq(g.cq[1]);
	ibv_dealloc_pd(g.pd);
	ibv_close_device(g.ctx);
	printf("1..%d\n", g.num);
	return g.failed ? 1 : 0;
}
