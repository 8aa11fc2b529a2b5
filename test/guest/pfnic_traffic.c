// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_traffic: data-verifying RDMA traffic over memory that the kernel changes under the
 * memory regions (MRs), for On-Demand-Paging (ODP) and pinned MRs. Prints TAP version 13.
 *
 *   pfnic_traffic -d DEVICE [-g GID_INDEX] [--only NAME[,NAME...]] [--seed N] [--timeout S]
 *                 [--srq] [--ex]
 *
 * One PD, two CQs and two RC QPs connected to each other over the port's GID (loopback in
 * this process). QP 0 is the requester of every RDMA WRITE, RDMA READ and SEND; QP 1 the
 * responder, and the receiver of SENDs; with --srq QP 1 takes its receive WQEs from a shared
 * receive queue, so every SEND lands in a buffer posted to the SRQ (ODP ones included). With
 * --ex the CQs and QPs are extended ones (ibv_create_cq_ex, ibv_create_qp_ex): every work
 * request is posted with ibv_wr_start(), ibv_wr_<opcode>(), ibv_wr_set_sge() and
 * ibv_wr_complete(), and every completion polled with ibv_start_poll() and the
 * ibv_wc_read_*() functions.
 *
 * Memory. Every case registers a "target" buffer of TSIZE bytes of anonymous memory (the
 * kind under test: an ODP MR of the buffer, an implicit ODP MR of the whole address space,
 * or a pinned MR of the buffer) and changes that memory behind the MR. The other side of
 * every operation is the "peer" buffer, pinned, registered once. Both are laid out in
 * NSLOT slots of SLOT bytes: one slot per (operation, offset, length), so every operation
 * of a phase works on memory of its own (in the untouched case: memory nobody has touched),
 * and no operation's source and target are the same range. Offsets and lengths are never
 * page-aligned and most cross one or more page boundaries.
 *
 * Model. For the target the program keeps two images of what must be there: the MR's view
 * (what RDMA READ must return) and the CPU's view (what the process must read), plus, per
 * page, whether both see the same page. They part only for pinned MRs after MADV_DONTNEED or
 * a remap: the MR keeps the pinned pages, the process gets new ones. Every check compares
 * every byte moved plus GUARD bytes on each side against these images, strictly, except the
 * CPU's view of pages a pinned MR no longer shares with the process, which is only reported.
 * Every byte written is drawn from a per-run, per-operation pattern that differs from what
 * the destination holds (and is never zero), so an operation that did not happen, or that
 * went to stale pages, cannot pass.
 *
 * Cases (each for odp, implicit and pinned unless said): untouched, madv_dontneed, remap, mprotect,
 * fork, migrate, odp_source_and_read_target (odp only), atomics (where the device has them),
 * and on huge pages: thp_madv_dontneed, thp_migrate (transparent huge pages, skipped where
 * the kernel gives none), hugetlb_untouched (2 MiB hugetlb pages; the program reserves 4).
 * The migration cases turn the kernel's automatic NUMA balancing off while the program runs:
 * it would move the same pages at the same time, and move_pages would find them in flight.
 * See the cases[] table.
 *
 * Exit status: 0 if no test failed, 1 if one did or the set-up failed, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "verbs-test.h"

#define PG 4096u
#define GUARD 64u
#define NOFF 3
#define NLEN 5
#define NPAIR (NOFF * NLEN)

enum op { OP_WRITE, OP_READ, OP_SEND, OP_CPU, NOPS };
#define ALL_OPS ((1u << NOPS) - 1)

/* One slot per (op, pair): pair p of op o lives at PG + (o * NPAIR + p) * SLOT. */
#define SLOT (20u * PG)
#define NSLOT (NOPS * NPAIR)
#define TSIZE ((size_t)PG + (size_t)NSLOT * SLOT + PG)
/*
 * The region the cases change (MADV_DONTNEED, remap, mprotect, migration): page aligned,
 * it leaves slots 0 and 1 and the start of slot 2 alone, and ends inside the last slot, so
 * the operations of slot 2 (WRITE at offset 1, length 4097) and slot 59 (CPU write at offset
 * 8208, length 65543) each cross one of its ends.
 */
#define REG_START ((size_t)PG + 2 * (size_t)SLOT + PG)
#define REG_END ((size_t)PG + (size_t)(NSLOT - 1) * SLOT + 16 * PG)
#define REG_LEN (REG_END - REG_START)
/* Where an operation's data sits in the peer buffer: the slot's offset plus this. */
#define PEER_SHIFT 2051u
/* The peer's scratch area, where whole-range MR checks land their RDMA READs. */
#define SCR_OFF (TSIZE + PG)
#define SCR_MAX SLOT
#define PSIZE (SCR_OFF + SCR_MAX + 2 * PG)

_Static_assert(NSLOT == 60, "REG_END assumes 60 slots");
_Static_assert(PG + 2 * SLOT + 1 + 4097 > REG_START, "slot 2's WRITE must cross REG_START");
_Static_assert(PG + (NSLOT - 1) * SLOT + 8208 < REG_END &&
	       PG + (NSLOT - 1) * SLOT + 8208 + 65543 > REG_END, "slot 59's op must cross REG_END");

static const size_t offsets[NOFF] = {1, 4093, 8191 + 17};
static const uint32_t lengths[NLEN] = {1, 4095, 4097, 3 * 4096 + 123, 64 * 1024 + 7};
static const char *const op_names[NOPS] = {"RDMA WRITE", "RDMA READ", "SEND",
					   "CPU write + RDMA READ"};

static struct {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq[2];
	struct ibv_qp *qp[2];
	uint8_t port;
	int gidx;
	union ibv_gid gid;
	uint16_t lid;
	uint32_t psn[2];
	uint8_t *peer;
	struct ibv_mr *peer_mr;
	uint64_t run_seed, seq, wr_id;
	bool odp_ok;
	char odp_why[200];
	bool implicit_ok;
	char implicit_why[200];
	/* atomics: IBV_ACCESS_REMOTE_ATOMIC, for QPs and pinned MRs, and for ODP MRs */
	int atomic_access, atomic_odp_access;
	char atomic_why[200];
	bool need_reset;
	bool strict;		/* --strict: a skipped case fails */
	bool use_srq;
	bool use_ex;
	bool atomic_write;	/* the device has ATOMIC_WRITE */
	struct ibv_cq_ex *cqx[2];
	struct ibv_srq *srq;
	int timeout_s;
	const char *dev;
	uint8_t gbuf[2 * GUARD];
} g = {.port = 1, .timeout_s = 20};

/* What backs the target buffer. */
enum backing { B_PAGES, B_THP, B_HUGETLB };
#define HUGE (2ul << 20)

struct target {
	bool odp;      /* ODP MR (explicit or implicit) */
	enum backing backing;
	uint8_t *map;  /* the mapping the buffer lies in, and its length */
	size_t maplen;
	bool implicit; /* ODP MR of the whole address space */
	uint8_t *buf;  /* TSIZE bytes of anonymous memory */
	struct ibv_mr *mr;
	uint8_t *mrv;  /* what the MR must return */
	uint8_t *cpuv; /* what the process must read */
	uint8_t *coh;  /* per page: 1 if the MR and the process share the page */
};

/* ---- patterns ------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* A new seed for every pattern the run draws. */
static uint64_t next_seed(void)
{
	return mix64(g.run_seed ^ mix64(++g.seq * 0xd1b54a32d192ed03ull));
}

/*
 * dst[k] = pattern byte of `seed` at position idx0 + k, never 0 and never equal to av1[k] or
 * av2[k] (either may be NULL): the bytes an operation writes always differ from what the
 * destination held, so a lost or misdirected operation cannot leave the expected bytes.
 */
static void gen(uint8_t *dst, size_t n, uint64_t seed, size_t idx0, const uint8_t *av1,
		const uint8_t *av2)
{
	uint64_t v = 0;

	for (size_t k = 0; k < n; k++) {
		size_t i = idx0 + k;

		if (k == 0 || (i & 7) == 0)
			v = mix64(seed ^ ((uint64_t)(i >> 3) * 0x9e3779b97f4a7c15ull));
		uint8_t b = (uint8_t)(v >> ((i & 7) * 8));
		/* b -> 5b + 1 (mod 256) visits every value: at most 3 steps */
		while (b == 0 || (av1 && b == av1[k]) || (av2 && b == av2[k]))
			b = (uint8_t)(b * 5 + 1);
		dst[k] = b;
	}
}

/* The first few differing bytes, as runs: buffer offsets, expected and actual bytes. */
static void list_diffs(const uint8_t *act, const uint8_t *exp, size_t n, size_t buf_off)
{
	int runs = 0;

	for (size_t k = 0; k < n && runs < 4;) {
		if (act[k] == exp[k]) {
			k++;
			continue;
		}
		size_t e = k;

		while (e < n && act[e] != exp[e])
			e++;
		diag("  differ at buffer offsets [%zu, %zu) (%zu bytes): expected %02x%02x%02x%02x..., "
		     "got %02x%02x%02x%02x...", buf_off + k, buf_off + e, e - k, exp[k],
		     k + 1 < n ? exp[k + 1] : 0, k + 2 < n ? exp[k + 2] : 0, k + 3 < n ? exp[k + 3] : 0,
		     act[k], k + 1 < n ? act[k + 1] : 0, k + 2 < n ? act[k + 2] : 0,
		     k + 3 < n ? act[k + 3] : 0);
		runs++;
		k = e;
	}
}

/*
 * Compare n bytes; on a difference say what: how many differ, the first one's offset in the
 * buffer (buf_off is the buffer offset of act[0]), its page, and the expected and actual byte.
 */
static int cmp_report(const char *what, const char *view, const uint8_t *act, const uint8_t *exp,
		      size_t n, size_t buf_off)
{
	if (memcmp(act, exp, n) == 0)
		return 0;
	size_t first = n, bad = 0, zeros = 0;

	for (size_t k = 0; k < n; k++) {
		if (act[k] != exp[k]) {
			if (first == n)
				first = k;
			bad++;
			zeros += act[k] == 0;
		}
	}
	size_t off = buf_off + first;

	diag("%s: %s: %zu of %zu bytes differ; first at byte %zu of the range (buffer offset "
	     "%zu, page %zu + %zu): expected 0x%02x, got 0x%02x (%zu of the differing bytes are 0)",
	     what, view, bad, n, first, off, off / PG, off % PG, exp[first], act[first], zeros);
	list_diffs(act, exp, n, buf_off);
	return -1;
}

/* ---- completions and work requests --------------------------------------------------- */

/*
 * ibv_poll_cq() for one completion, or with --ex the extended poll: ibv_start_poll(), the
 * ibv_wc_read_*() functions into @wc, ibv_end_poll(). Return: as ibv_poll_cq().
 */
static int poll_one(int cqi, struct ibv_wc *wc)
{
	struct ibv_poll_cq_attr attr = {0};
	struct ibv_cq_ex *cq = g.cqx[cqi];
	int rc;

	if (!g.use_ex)
		return ibv_poll_cq(g.cq[cqi], 1, wc);
	rc = ibv_start_poll(cq, &attr);
	if (rc == ENOENT)
		return 0;
	if (rc)
		return -rc;
	wc->wr_id = cq->wr_id;
	wc->status = cq->status;
	wc->opcode = ibv_wc_read_opcode(cq);
	wc->vendor_err = ibv_wc_read_vendor_err(cq);
	wc->byte_len = ibv_wc_read_byte_len(cq);
	wc->qp_num = ibv_wc_read_qp_num(cq);
	wc->src_qp = ibv_wc_read_src_qp(cq);
	wc->wc_flags = ibv_wc_read_wc_flags(cq);
	wc->imm_data = wc->wc_flags & IBV_WC_WITH_IMM ? ibv_wc_read_imm_data(cq) : 0;
	ibv_end_poll(cq);
	return 1;
}

static int wait_one(int cqi, struct ibv_wc *wc, const char *what)
{
	double deadline = now() + g.timeout_s;
	unsigned spins = 0;

	for (;;) {
		memset(wc, 0, sizeof(*wc));
		int n = poll_one(cqi, wc);

		if (n < 0) {
			diag("%s: ibv_poll_cq(CQ %d) failed (%d)", what, cqi, n);
			g.need_reset = true;
			return -1;
		}
		if (n == 1)
			return 0;
		if (now() > deadline) {
			diag("%s: no completion on CQ %d within %d s", what, cqi, g.timeout_s);
			g.need_reset = true;
			return -1;
		}
		if (++spins > 64)
			usleep(100);
	}
}

/*
 * Status, wr_id, QP and opcode always; byte_len where verbs defines it (RECV, RDMA READ).
 * On the send side of SEND and RDMA WRITE verbs leaves byte_len undefined: providers leave
 * it alone (0, as the wc is zeroed before polling) or set the length; any other value fails.
 */
static int check_wc(const struct ibv_wc *wc, uint64_t wr_id, enum ibv_wc_opcode opc, int qpi,
		    uint32_t len, bool len_defined, const char *what)
{
	if (wc->status != IBV_WC_SUCCESS) {
		diag("%s: completion (QP %d, wr_id %" PRIu64 ", opcode %d) has status %s (%d), "
		     "vendor_err 0x%x", what, qpi, wc->wr_id, wc->opcode,
		     ibv_wc_status_str(wc->status), wc->status, wc->vendor_err);
		g.need_reset = true;
		return -1;
	}
	if (wc->wr_id != wr_id || wc->qp_num != g.qp[qpi]->qp_num) {
		diag("%s: completion for wr_id %" PRIu64 " on QP 0x%x, expected wr_id %" PRIu64
		     " on QP 0x%x", what, wc->wr_id, wc->qp_num, wr_id, g.qp[qpi]->qp_num);
		g.need_reset = true;
		return -1;
	}
	if (wc->opcode != opc) {
		diag("%s: completion opcode %d, expected %d", what, wc->opcode, opc);
		return -1;
	}
	if (len_defined ? wc->byte_len != len : wc->byte_len != 0 && wc->byte_len != len) {
		diag("%s: completion byte_len %u, expected %u", what, wc->byte_len, len);
		return -1;
	}
	return 0;
}

/* After an operation both CQs must be empty. */
static int no_extra(const char *what)
{
	struct ibv_wc wc = {0};

	for (int i = 0; i < 2; i++) {
		int n = poll_one(i, &wc);

		if (n != 0) {
			diag("%s: unexpected completion on CQ %d (poll %d, wr_id %" PRIu64
			     ", status %s, opcode %d)", what, i, n, wc.wr_id,
			     ibv_wc_status_str(wc.status), wc.opcode);
			g.need_reset = true;
			return -1;
		}
	}
	return 0;
}

/*
 * ibv_post_send() of one WR on QP 0, or with --ex the extended post: ibv_wr_start(), the
 * opcode's ibv_wr_*(), ibv_wr_set_sge_list(), ibv_wr_complete(). Return: as ibv_post_send().
 */
static int post_send_one(struct ibv_send_wr *wr)
{
	struct ibv_qp_ex *qpx;
	struct ibv_send_wr *bad;

	if (!g.use_ex)
		return ibv_post_send(g.qp[0], wr, &bad);
	qpx = ibv_qp_to_qp_ex(g.qp[0]);
	ibv_wr_start(qpx);
	qpx->wr_id = wr->wr_id;
	qpx->wr_flags = wr->send_flags;
	switch (wr->opcode) {
	case IBV_WR_RDMA_WRITE:
		ibv_wr_rdma_write(qpx, wr->wr.rdma.rkey, wr->wr.rdma.remote_addr);
		break;
	case IBV_WR_RDMA_READ:
		ibv_wr_rdma_read(qpx, wr->wr.rdma.rkey, wr->wr.rdma.remote_addr);
		break;
	case IBV_WR_SEND:
		ibv_wr_send(qpx);
		break;
	case IBV_WR_ATOMIC_CMP_AND_SWP:
		ibv_wr_atomic_cmp_swp(qpx, wr->wr.atomic.rkey, wr->wr.atomic.remote_addr,
				      wr->wr.atomic.compare_add, wr->wr.atomic.swap);
		break;
	case IBV_WR_ATOMIC_FETCH_AND_ADD:
		ibv_wr_atomic_fetch_add(qpx, wr->wr.atomic.rkey, wr->wr.atomic.remote_addr,
					wr->wr.atomic.compare_add);
		break;
	case IBV_WR_ATOMIC_WRITE:
		/* the value is given, not a buffer */
		ibv_wr_atomic_write(qpx, wr->wr.rdma.rkey, wr->wr.rdma.remote_addr,
				    (const void *)(uintptr_t)wr->sg_list[0].addr);
		return ibv_wr_complete(qpx);
	default:
		ibv_wr_abort(qpx);
		return EINVAL;
	}
	ibv_wr_set_sge_list(qpx, (size_t)wr->num_sge, wr->sg_list);
	return ibv_wr_complete(qpx);
}

/*
 * Posts @wr (one signaled WR, its wr_id set here) on QP 0, waits for its completion, which
 * must be @opc for @len bytes (len_defined: see check_wc), and for nothing else.
 */
static int post_one(struct ibv_send_wr *wr, enum ibv_wc_opcode opc, uint32_t len,
		    bool len_defined, const char *what)
{
	struct ibv_wc wc;
	int rc;

	wr->wr_id = ++g.wr_id;
	wr->num_sge = 1;
	wr->send_flags = IBV_SEND_SIGNALED;
	rc = post_send_one(wr);
	if (rc) {
		diag("%s: ibv_post_send: %s", what, strerror(rc));
		g.need_reset = true;
		return -1;
	}
	if (wait_one(0, &wc, what) || check_wc(&wc, wr->wr_id, opc, 0, len, len_defined, what))
		return -1;
	return no_extra(what);
}

/* RDMA WRITE or READ on QP 0: local (lmr, laddr), remote (rmr, raddr). */
static int rdma(enum ibv_wr_opcode opc, struct ibv_mr *lmr, void *laddr, struct ibv_mr *rmr,
		void *raddr, uint32_t len, const char *what)
{
	struct ibv_sge sge = {.addr = (uintptr_t)laddr, .length = len, .lkey = lmr->lkey};
	struct ibv_send_wr wr = {.sg_list = &sge, .opcode = opc};
	bool rd = opc == IBV_WR_RDMA_READ;

	wr.wr.rdma.remote_addr = (uintptr_t)raddr;
	wr.wr.rdma.rkey = rmr->rkey;
	return post_one(&wr, rd ? IBV_WC_RDMA_READ : IBV_WC_RDMA_WRITE, len, rd, what);
}

/* SEND on QP 0 from (smr, saddr) into a receive posted first on QP 1 at (rmr, raddr). */
static int send_recv(struct ibv_mr *smr, void *saddr, struct ibv_mr *rmr, void *raddr,
		     uint32_t len, const char *what)
{
	struct ibv_sge rsge = {.addr = (uintptr_t)raddr, .length = len, .lkey = rmr->lkey};
	struct ibv_recv_wr rwr = {.wr_id = ++g.wr_id, .sg_list = &rsge, .num_sge = 1};
	struct ibv_sge ssge = {.addr = (uintptr_t)saddr, .length = len, .lkey = smr->lkey};
	struct ibv_send_wr swr = {
		.wr_id = ++g.wr_id,
		.sg_list = &ssge,
		.num_sge = 1,
		.opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
	};
	struct ibv_recv_wr *rbad;
	struct ibv_wc wc;
	int rc = g.srq ? ibv_post_srq_recv(g.srq, &rwr, &rbad) : ibv_post_recv(g.qp[1], &rwr, &rbad);

	if (rc) {
		diag("%s: ibv_post_%srecv: %s", what, g.srq ? "srq_" : "", strerror(rc));
		g.need_reset = true;
		return -1;
	}
	rc = post_send_one(&swr);
	if (rc) {
		diag("%s: ibv_post_send: %s", what, strerror(rc));
		g.need_reset = true; /* the receive is still posted */
		return -1;
	}
	if (wait_one(0, &wc, what) || check_wc(&wc, swr.wr_id, IBV_WC_SEND, 0, len, false, what))
		return -1;
	if (wait_one(1, &wc, what) || check_wc(&wc, rwr.wr_id, IBV_WC_RECV, 1, len, true, what))
		return -1;
	return no_extra(what);
}

/* ---- landing zones in the peer buffer ------------------------------------------------- */

/*
 * Before an operation lands n bytes at peer offset po: fill [po, po+n) with bytes that differ
 * from what must arrive (exp) and GUARD bytes on either side with a pattern kept in g.gbuf.
 */
static void landing_prepare(size_t po, size_t n, const uint8_t *exp)
{
	uint8_t *p = g.peer + po;

	gen(p - GUARD, GUARD, next_seed(), po - GUARD, NULL, NULL);
	gen(p, n, next_seed(), po, exp, NULL);
	gen(p + n, GUARD, next_seed(), po + n, NULL, NULL);
	memcpy(g.gbuf, p - GUARD, GUARD);
	memcpy(g.gbuf + GUARD, p + n, GUARD);
}

static int landing_check(size_t po, size_t n, const uint8_t *exp, size_t exp_off,
			 const char *what, const char *view)
{
	uint8_t *p = g.peer + po;
	char v[160];

	if (cmp_report(what, view, p, exp, n, exp_off))
		return -1;
	snprintf(v, sizeof(v), "%s: guard bytes before the landing range in the peer MR", view);
	if (cmp_report(what, v, p - GUARD, g.gbuf, GUARD, po - GUARD))
		return -1;
	snprintf(v, sizeof(v), "%s: guard bytes after the landing range in the peer MR", view);
	return cmp_report(what, v, p + n, g.gbuf + GUARD, GUARD, po + n);
}

/* ---- the target's model --------------------------------------------------------------- */

/* n bytes d arrive at target offset a, written by the device (by_cpu false) or the CPU. */
static void model_write(struct target *t, size_t a, const uint8_t *d, size_t n, bool by_cpu)
{
	for (size_t x = a; x < a + n;) {
		size_t e = (x / PG + 1) * PG;
		bool coh = t->coh[x / PG];

		if (e > a + n)
			e = a + n;
		if (by_cpu || coh)
			memcpy(t->cpuv + x, d + (x - a), e - x);
		if (!by_cpu || coh)
			memcpy(t->mrv + x, d + (x - a), e - x);
		x = e;
	}
}

/* The MR's view of [a, a+n) of the target, read by RDMA READ into the peer's scratch area. */
static int check_mr(struct target *t, size_t a, size_t n, const char *what)
{
	for (size_t x = a; x < a + n;) {
		size_t c = a + n - x > SCR_MAX ? SCR_MAX : a + n - x;

		landing_prepare(SCR_OFF, c, t->mrv + x);
		if (rdma(IBV_WR_RDMA_READ, g.peer_mr, g.peer + SCR_OFF, t->mr, t->buf + x,
			 (uint32_t)c, what) ||
		    landing_check(SCR_OFF, c, t->mrv + x, x, what, "MR view (RDMA READ back)"))
			return -1;
		x += c;
	}
	return 0;
}

/*
 * The CPU's view of [a, a+n): strict on pages the process shares with the MR; only reported
 * on pages a pinned MR kept for itself after the process got new ones (MADV_DONTNEED, remap).
 */
static int check_cpu(struct target *t, size_t a, size_t n, const char *what)
{
	size_t bad = 0, first = 0, split_bad = 0, split_first = 0;

	for (size_t x = a; x < a + n;) {
		size_t e = (x / PG + 1) * PG;
		bool coh = t->coh[x / PG];

		if (e > a + n)
			e = a + n;
		if (memcmp(t->buf + x, t->cpuv + x, e - x) != 0) {
			for (size_t k = x; k < e; k++) {
				if (t->buf[k] == t->cpuv[k])
					continue;
				if (coh && bad++ == 0)
					first = k;
				if (!coh && split_bad++ == 0)
					split_first = k;
			}
		}
		x = e;
	}
	if (bad) {
		diag("%s: CPU view: %zu of %zu bytes differ; first at byte %zu of the range (buffer "
		     "offset %zu, page %zu + %zu): expected 0x%02x, got 0x%02x", what, bad, n,
		     first - a, first, first / PG, first % PG, t->cpuv[first], t->buf[first]);
		list_diffs(t->buf + a, t->cpuv + a, n, a);
	}
	if (split_bad)
		diag("%s: note: the CPU view of pages the pinned MR no longer shares differs from "
		     "the model in %zu bytes, first at buffer offset %zu (expected 0x%02x, got "
		     "0x%02x); reported, not failed", what, split_bad, split_first,
		     t->cpuv[split_first], t->buf[split_first]);
	return bad ? -1 : 0;
}

/* For pinned MRs: what the CPU sees on the pages the MR no longer shares with the process. */
static void split_summary(struct target *t, const char *when)
{
	size_t pages = 0, bytes = 0, as_cpu = 0, as_mr = 0, zero = 0;

	for (size_t pg = 0; pg < TSIZE / PG; pg++) {
		if (t->coh[pg])
			continue;
		pages++;
		for (size_t k = pg * PG; k < (pg + 1) * PG; k++) {
			bytes++;
			as_cpu += t->buf[k] == t->cpuv[k];
			as_mr += t->buf[k] == t->mrv[k];
			zero += t->buf[k] == 0;
		}
	}
	diag("%s: the CPU view of the %zu pages the pinned MR no longer shares with the process: "
	     "%zu of %zu bytes as the process wrote them (or zero-filled), %zu equal to what the "
	     "MR holds, %zu zero", when, pages, as_cpu, bytes, as_mr, zero);
}

static int final_check(struct target *t)
{
	if (check_cpu(t, 0, TSIZE, "end of case: whole buffer"))
		return -1;
	if (!t->odp) {
		size_t split = 0;

		for (size_t pg = 0; pg < TSIZE / PG; pg++)
			split += !t->coh[pg];
		if (split)
			split_summary(t, "end of case");
	}
	return check_mr(t, 0, TSIZE, "end of case: whole MR");
}

/* ---- operations on the target --------------------------------------------------------- */

struct at {
	size_t toff; /* offset in the target (or local ODP) buffer */
	size_t po;   /* offset in the peer buffer */
	uint32_t len;
	char what[200];
};

static void at_make(struct at *a, int op, int p, const char *phase, const char *opname)
{
	int slot = op * NPAIR + p;
	size_t base = PG + (size_t)slot * SLOT, off = offsets[p / NLEN];

	a->toff = base + off;
	a->po = base + off + PEER_SHIFT;
	a->len = lengths[p % NLEN];
	snprintf(a->what, sizeof(a->what), "[%s] %s at offset %zu (slot %d + %zu), length %u",
		 phase, opname, a->toff, slot, off, a->len);
}

/* One operation of a phase on target t: the pair p of offset and length, in op's slot. */
static int op_run(struct target *t, int op, int p, const char *phase)
{
	struct at a;
	uint8_t *src;

	at_make(&a, op, p, phase, op_names[op]);
	src = g.peer + a.po;
	switch (op) {
	case OP_WRITE:
	case OP_SEND:
		gen(src, a.len, next_seed(), a.po, t->mrv + a.toff, t->cpuv + a.toff);
		if (op == OP_WRITE ? rdma(IBV_WR_RDMA_WRITE, g.peer_mr, src, t->mr, t->buf + a.toff,
					  a.len, a.what)
				   : send_recv(g.peer_mr, src, t->mr, t->buf + a.toff, a.len, a.what))
			return -1;
		model_write(t, a.toff, src, a.len, false);
		if (check_cpu(t, a.toff - GUARD, a.len + 2 * GUARD, a.what))
			return -1;
		return check_mr(t, a.toff - GUARD, a.len + 2 * GUARD, a.what);
	case OP_READ:
		landing_prepare(a.po, a.len, t->mrv + a.toff);
		if (rdma(IBV_WR_RDMA_READ, g.peer_mr, src, t->mr, t->buf + a.toff, a.len, a.what))
			return -1;
		return landing_check(a.po, a.len, t->mrv + a.toff, a.toff, a.what,
				     "data RDMA READ from the MR");
	case OP_CPU:
		gen(t->buf + a.toff, a.len, next_seed(), a.toff, t->mrv + a.toff, t->cpuv + a.toff);
		model_write(t, a.toff, t->buf + a.toff, a.len, true);
		if (check_mr(t, a.toff - GUARD, a.len + 2 * GUARD, a.what))
			return -1;
		return check_cpu(t, a.toff - GUARD, a.len + 2 * GUARD, a.what);
	}
	return -1;
}

/* Every operation of mask at every (offset, length) pair, each in its own slot. */
static int phase(struct target *t, unsigned mask, const char *name)
{
	for (int op = 0; op < NOPS; op++) {
		if (!(mask & (1u << op)))
			continue;
		for (int p = 0; p < NPAIR; p++) {
			if (op_run(t, op, p, name))
				return -1;
		}
	}
	return 0;
}

/* The traffic before a change: every slot, then the whole MR read (an ODP MR maps it all). */
static int before(struct target *t, const char *name)
{
	if (phase(t, ALL_OPS, name))
		return -1;
	return check_mr(t, 0, TSIZE, name);
}

/* ---- the target's life ---------------------------------------------------------------- */

#define MR_ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

static void target_close(struct target *t)
{
	int rc = t->mr ? ibv_dereg_mr(t->mr) : 0;

	if (rc)
		diag("ibv_dereg_mr: %s", strerror(rc));
	if (t->map && munmap(t->map, t->maplen))
		diag("munmap: %s", strerror(errno));
	free(t->mrv);
	free(t->cpuv);
	free(t->coh);
	memset(t, 0, sizeof(*t));
}

/* The kinds of MR every case runs on. */
enum kind { K_ODP, K_IMPLICIT, K_PINNED, NKINDS };
static const char *const kind_names[NKINDS] = { "odp", "implicit", "pinned" };

/* 0: registered; 1: skip (ODP registration refused), reason in skip; -1: failed. */
/* Kilobytes of transparent huge pages in the mapping that holds @p (/proc/self/smaps). */
static long thp_kb(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[256];
	bool in = false;
	long kb = -1;

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		/* a mapping's first line is its range; its fields follow */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	if (f)
		fclose(f);
	return kb;
}

static int target_open(struct target *t, enum kind kind, bool fill, enum backing backing,
		       char *skip, size_t skiplen)
{
	bool odp = kind != K_PINNED;

	memset(t, 0, sizeof(*t));
	t->odp = odp;
	t->implicit = kind == K_IMPLICIT;
	t->backing = backing;
	/* huge pages: a mapping of whole, aligned 2 MiB pages that holds the buffer */
	t->maplen = backing == B_PAGES ? TSIZE : (TSIZE + HUGE - 1) / HUGE * HUGE + HUGE;
	t->map = mmap(NULL, t->maplen, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | (backing == B_HUGETLB ? MAP_HUGETLB : 0),
		      -1, 0);
	if (t->map == MAP_FAILED) {
		int e = errno;

		t->map = NULL;
		if (backing == B_HUGETLB) {
			snprintf(skip, skiplen, "no huge pages to map (MAP_HUGETLB: %s)", strerror(e));
			return 1;
		}
		diag("mmap of %zu bytes: %s", t->maplen, strerror(e));
		return -1;
	}
	t->buf = backing == B_PAGES ? t->map :
		 (uint8_t *)(((uintptr_t)t->map + HUGE - 1) & ~(HUGE - 1));
	if (backing == B_THP && madvise(t->map, t->maplen, MADV_HUGEPAGE)) {
		snprintf(skip, skiplen, "madvise(MADV_HUGEPAGE): %s", strerror(errno));
		target_close(t);
		return 1;
	}
	t->mrv = calloc(TSIZE, 1);
	t->cpuv = calloc(TSIZE, 1);
	t->coh = malloc(TSIZE / PG);
	if (!t->mrv || !t->cpuv || !t->coh) {
		diag("out of memory for the model");
		target_close(t);
		return -1;
	}
	memset(t->coh, 1, TSIZE / PG);
	if (fill) {
		gen(t->buf, TSIZE, next_seed(), 0, NULL, NULL);
		memcpy(t->mrv, t->buf, TSIZE);
		memcpy(t->cpuv, t->buf, TSIZE);
		/* a THP case is one only if the kernel gave the buffer huge pages */
		if (backing == B_THP) {
			long kb = thp_kb(t->buf);

			diag("the target buffer has %ld KiB of transparent huge pages", kb);
			if (kb <= 0) {
				snprintf(skip, skiplen, "the kernel backed the buffer with no "
					 "transparent huge page");
				target_close(t);
				return 1;
			}
		}
	}
	/* an implicit MR covers the whole address space: its iova is the address */
	if (t->implicit)
		t->mr = ibv_reg_mr(g.pd, NULL, SIZE_MAX, MR_ACCESS | IBV_ACCESS_ON_DEMAND |
				   g.atomic_odp_access);
	else
		t->mr = ibv_reg_mr(g.pd, t->buf, TSIZE,
				   MR_ACCESS | (odp ? IBV_ACCESS_ON_DEMAND | g.atomic_odp_access :
						g.atomic_access));
	if (!t->mr) {
		int e = errno;

		target_close(t);
		if (odp && (e == EINVAL || e == EOPNOTSUPP)) {
			snprintf(skip, skiplen, "ODP registration refused: %s", strerror(e));
			return 1;
		}
		diag("ibv_reg_mr (%s, %zu bytes): %s", kind_names[kind], TSIZE, strerror(e));
		return -1;
	}
	return 0;
}

/* ---- the cases ------------------------------------------------------------------------ */

static int c_untouched(struct target *t)
{
	/* fresh mmap, never touched: every slot is first reached by its own operation */
	if (phase(t, ALL_OPS, "untouched"))
		return -1;
	return final_check(t);
}

static void split_region(struct target *t)
{
	memset(t->coh + REG_START / PG, 0, REG_LEN / PG);
}

static int c_dontneed(struct target *t)
{
	if (before(t, "before MADV_DONTNEED"))
		return -1;
	if (madvise(t->buf + REG_START, REG_LEN, MADV_DONTNEED)) {
		diag("madvise(MADV_DONTNEED): %s", strerror(errno));
		return -1;
	}
	diag("MADV_DONTNEED over buffer offsets [%zu, %zu) (%zu pages)", (size_t)REG_START,
	     (size_t)REG_END, (size_t)REG_LEN / PG);
	memset(t->cpuv + REG_START, 0, REG_LEN);
	if (t->odp)
		memset(t->mrv + REG_START, 0, REG_LEN);
	else
		split_region(t); /* the MR keeps the pinned pages and their contents */
	/* nothing written yet: ODP reads zeros, pinned the old contents */
	if (check_mr(t, REG_START, REG_LEN, "after MADV_DONTNEED, before any write"))
		return -1;
	if (!t->odp) {
		diag("pinned: RDMA READ after MADV_DONTNEED returns the old contents (the MR keeps "
		     "the pinned pages)");
		split_summary(t, "after MADV_DONTNEED");
	}
	if (phase(t, ALL_OPS, "after MADV_DONTNEED"))
		return -1;
	return final_check(t);
}

static int c_remap(struct target *t)
{
	uint8_t *r = t->buf + REG_START;

	if (before(t, "before remap"))
		return -1;
	if (munmap(r, REG_LEN)) {
		diag("munmap: %s", strerror(errno));
		return -1;
	}
	void *p = mmap(r, REG_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		       -1, 0);
	if (p != r) {
		diag("mmap(MAP_FIXED) at %p: %s", (void *)r, p == MAP_FAILED ? strerror(errno) : "moved");
		if (p != MAP_FAILED)
			munmap(p, REG_LEN);
		/* keep target_close's munmap of the whole buffer sound */
		mmap(r, REG_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		return -1;
	}
	/* new contents, written by the CPU, different from the old ones byte by byte */
	gen(r, REG_LEN, next_seed(), REG_START, t->mrv + REG_START, t->cpuv + REG_START);
	diag("munmap + mmap(MAP_FIXED) of buffer offsets [%zu, %zu) (%zu pages), new contents "
	     "written by the CPU", (size_t)REG_START, (size_t)REG_END, (size_t)REG_LEN / PG);
	memcpy(t->cpuv + REG_START, r, REG_LEN);
	if (t->odp)
		memcpy(t->mrv + REG_START, r, REG_LEN);
	else
		split_region(t); /* the pinned MR keeps the old pages */
	if (check_mr(t, REG_START, REG_LEN, "after remap, RDMA READ of the remapped region"))
		return -1;
	if (!t->odp) {
		diag("pinned: as expected for a pinned MR, it still maps the pages of the old "
		     "mapping: RDMA READ returns the old contents, not the new ones");
		split_summary(t, "after remap");
	}
	if (phase(t, ALL_OPS, "after remap"))
		return -1;
	return final_check(t);
}

static int c_mprotect(struct target *t)
{
	int rc;

	if (before(t, "before mprotect"))
		return -1;
	if (mprotect(t->buf + REG_START, REG_LEN, PROT_READ)) {
		diag("mprotect(PROT_READ): %s", strerror(errno));
		return -1;
	}
	rc = phase(t, 1u << OP_READ, "PROT_READ");
	if (!rc)
		rc = check_mr(t, REG_START, REG_LEN, "PROT_READ: whole region");
	if (!rc)
		rc = check_cpu(t, REG_START, REG_LEN, "PROT_READ: whole region");
	if (mprotect(t->buf + REG_START, REG_LEN, PROT_READ | PROT_WRITE)) {
		diag("mprotect(PROT_READ|PROT_WRITE): %s", strerror(errno));
		return -1;
	}
	if (rc)
		return -1;
	if (phase(t, ALL_OPS, "PROT_READ|PROT_WRITE again"))
		return -1;
	return final_check(t);
}

struct child_report {
	int32_t state; /* 0: compared; 1: no go from the parent */
	uint64_t bad, first;
	uint8_t exp, act;
};

static int c_fork(struct target *t)
{
	int go[2], rep[2], rc, status;
	struct child_report cr = {0};

	if (before(t, "before fork"))
		return -1;
	if (pipe(go) || pipe(rep)) {
		diag("pipe: %s", strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();

	if (pid < 0) {
		diag("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* the child: no verbs, no stdio; wait, then compare its copy with the pre-fork data */
		char c;
		ssize_t r;

		close(go[1]);
		close(rep[0]);
		do
			r = read(go[0], &c, 1);
		while (r < 0 && errno == EINTR);
		if (r != 1) {
			cr.state = 1;
		} else {
			for (size_t k = 0; k < TSIZE; k++) {
				if (t->buf[k] != t->cpuv[k] && cr.bad++ == 0) {
					cr.first = k;
					cr.exp = t->cpuv[k];
					cr.act = t->buf[k];
				}
			}
		}
		if (write(rep[1], &cr, sizeof(cr)) != (ssize_t)sizeof(cr))
			_exit(3);
		_exit(0);
	}
	close(go[0]);
	close(rep[1]);
	diag("forked child %d; the parent now writes by RDMA, SEND and CPU", (int)pid);
	rc = phase(t, ALL_OPS, "after fork, parent");
	if (write(go[1], "g", 1) != 1)
		diag("write to the child's pipe: %s", strerror(errno));
	close(go[1]);

	struct pollfd pfd = {.fd = rep[0], .events = POLLIN};
	int pr = poll(&pfd, 1, g.timeout_s * 1000);
	ssize_t got = pr == 1 ? read(rep[0], &cr, sizeof(cr)) : -1;

	close(rep[0]);
	if (got != (ssize_t)sizeof(cr)) {
		diag("no report from the child within %d s (poll %d, read %zd)", g.timeout_s, pr, got);
		kill(pid, SIGKILL);
		rc = -1;
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		diag("child %d did not exit cleanly (status 0x%x)", (int)pid, status);
		rc = -1;
	} else if (got == (ssize_t)sizeof(cr)) {
		if (cr.state != 0) {
			diag("the child got no go from the parent");
			rc = -1;
		} else if (cr.bad) {
			diag("the child's copy changed after fork: %" PRIu64 " bytes differ from the "
			     "pre-fork data; first at buffer offset %" PRIu64 " (page %" PRIu64
			     " + %" PRIu64 "): expected 0x%02x, got 0x%02x (the parent's RDMA reached "
			     "the child's pages)", cr.bad, cr.first, cr.first / PG, cr.first % PG,
			     cr.exp, cr.act);
			rc = -1;
		} else {
			diag("the child's copy still holds the pre-fork data (%zu bytes compared)",
			     TSIZE);
		}
	}
	if (rc)
		return -1;
	return final_check(t);
}

static bool two_nodes(void)
{
	struct stat st;

	return stat("/sys/devices/system/node/node1", &st) == 0;
}

static long sys_move_pages(size_t n, void **pages, const int *nodes, int *status, int flags)
{
	return syscall(SYS_move_pages, 0, (unsigned long)n, pages, nodes, status, flags);
}

static int c_migrate(struct target *t)
{
	size_t np = REG_LEN / PG, moved = 0, tried = 0;
	void **pages = calloc(np, sizeof(*pages));
	int *nodes = calloc(np, sizeof(int)), *st = calloc(np, sizeof(int));
	int *was = calloc(np, sizeof(int));
	int rc = -1, left_node = 0;
	size_t left = np;
	long r = 0;

	if (!pages || !nodes || !st || !was) {
		diag("out of memory");
		goto out;
	}
	if (before(t, "before migration"))
		goto out;
	for (size_t i = 0; i < np; i++)
		pages[i] = t->buf + REG_START + i * PG;
	if (sys_move_pages(np, pages, NULL, was, 0)) {
		diag("move_pages (query): %s", strerror(errno));
		goto out;
	}
	size_t on[2] = {0, 0};

	for (size_t i = 0; i < np; i++) {
		if (was[i] < 0) {
			diag("page %zu of the region: move_pages status %d before migration", i, was[i]);
			goto out;
		}
		on[was[i] == 1]++;
		nodes[i] = was[i] == 0 ? 1 : 0;
	}
	/* retries: a page busy for a moment (being faulted, on a per-CPU list) is skipped */
	for (int attempt = 0; attempt < 3; attempt++) {
		tried++;
		r = sys_move_pages(np, pages, nodes, st, 2 /* MPOL_MF_MOVE */);
		if (r < 0) {
			diag("move_pages (MPOL_MF_MOVE): %s", strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
	}
	/* what the last move call said of the pages it did not move */
	size_t errs = 0;
	int err1 = 0;

	for (size_t i = 0; i < np; i++) {
		if (st[i] < 0 && errs++ == 0)
			err1 = -st[i];
	}
	if (errs)
		diag("move_pages (MPOL_MF_MOVE): %zu pages with an error status, the first %s (%d)",
		     errs, strerror(err1), err1);
	if (sys_move_pages(np, pages, NULL, st, 0)) {
		diag("move_pages (query after): %s", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < np; i++) {
		if (st[i] == nodes[i]) {
			moved++;
		} else if (left == np) {
			left = i;
			left_node = st[i];
		}
	}
	diag("move_pages: %zu pages (%zu on node 0, %zu on node 1 before) asked to change node, "
	     "%zu moved (%zu call%s, the last returned %ld)", np, on[0], on[1], moved, tried,
	     tried == 1 ? "" : "s", r);
	if (moved != np)
		diag("first page not moved: page %zu of the region, now on node %d", left,
		     left_node);
	if (t->odp && moved != np) {
		diag("an ODP MR holds no page references: every page must be able to move");
		goto out;
	}
	if (!t->odp)
		diag("pinned: %zu of %zu pages moved (pinned pages are expected to stay)", moved, np);
	if (phase(t, ALL_OPS, "after migration"))
		goto out;
	rc = final_check(t);
out:
	free(pages);
	free(nodes);
	free(st);
	free(was);
	return rc;
}

/*
 * ODP on the local side: t is the ODP MR, fresh and untouched; the peer is the remote side.
 * Per pair: RDMA WRITE from untouched memory (zeros), SEND from untouched memory, RDMA READ
 * into untouched memory, and RDMA WRITE and SEND from memory the CPU wrote after registration.
 */
static int c_odp_local(struct target *t)
{
	for (int p = 0; p < NPAIR; p++) {
		struct at a;
		uint8_t *src;

		at_make(&a, 0, p, "ODP local", "RDMA WRITE from untouched ODP memory");
		landing_prepare(a.po, a.len, t->mrv + a.toff);
		if (rdma(IBV_WR_RDMA_WRITE, t->mr, t->buf + a.toff, g.peer_mr, g.peer + a.po, a.len,
			 a.what) ||
		    landing_check(a.po, a.len, t->mrv + a.toff, a.toff, a.what, "data written"))
			return -1;

		at_make(&a, 1, p, "ODP local", "SEND from untouched ODP memory");
		landing_prepare(a.po, a.len, t->mrv + a.toff);
		if (send_recv(t->mr, t->buf + a.toff, g.peer_mr, g.peer + a.po, a.len, a.what) ||
		    landing_check(a.po, a.len, t->mrv + a.toff, a.toff, a.what, "data received"))
			return -1;

		at_make(&a, 2, p, "ODP local", "RDMA READ into untouched ODP memory");
		src = g.peer + a.po;
		gen(src, a.len, next_seed(), a.po, t->mrv + a.toff, t->cpuv + a.toff);
		if (rdma(IBV_WR_RDMA_READ, t->mr, t->buf + a.toff, g.peer_mr, src, a.len, a.what))
			return -1;
		model_write(t, a.toff, src, a.len, false);
		if (check_cpu(t, a.toff - GUARD, a.len + 2 * GUARD, a.what) ||
		    check_mr(t, a.toff - GUARD, a.len + 2 * GUARD, a.what))
			return -1;

		at_make(&a, 3, p, "ODP local",
			"RDMA WRITE and SEND from ODP memory the CPU wrote after registration");
		gen(t->buf + a.toff, a.len, next_seed(), a.toff, t->mrv + a.toff, NULL);
		model_write(t, a.toff, t->buf + a.toff, a.len, true);
		landing_prepare(a.po, a.len, t->mrv + a.toff);
		if (rdma(IBV_WR_RDMA_WRITE, t->mr, t->buf + a.toff, g.peer_mr, g.peer + a.po, a.len,
			 a.what) ||
		    landing_check(a.po, a.len, t->mrv + a.toff, a.toff, a.what, "data written"))
			return -1;
		landing_prepare(a.po, a.len, t->mrv + a.toff);
		if (send_recv(t->mr, t->buf + a.toff, g.peer_mr, g.peer + a.po, a.len, a.what) ||
		    landing_check(a.po, a.len, t->mrv + a.toff, a.toff, a.what, "data received"))
			return -1;
	}
	return final_check(t);
}

/* An atomic on QP 0: the word at raddr of rmr changes, its old value lands at laddr. */
static int atomic_op(enum ibv_wr_opcode opc, struct ibv_mr *lmr, void *laddr, struct ibv_mr *rmr,
		     void *raddr, uint64_t compare_add, uint64_t swap, const char *what)
{
	struct ibv_sge sge = {.addr = (uintptr_t)laddr, .length = 8, .lkey = lmr->lkey};
	struct ibv_send_wr wr = {.sg_list = &sge, .opcode = opc};

	wr.wr.atomic.remote_addr = (uintptr_t)raddr;
	wr.wr.atomic.compare_add = compare_add;
	wr.wr.atomic.swap = swap;
	wr.wr.atomic.rkey = rmr->rkey;
	return post_one(&wr, opc == IBV_WR_ATOMIC_CMP_AND_SWP ? IBV_WC_COMP_SWAP : IBV_WC_FETCH_ADD,
			8, false, what);
}

/* An ATOMIC_WRITE on QP 0: the 8 bytes at vaddr (of vmr) replace the word at raddr of rmr. */
static int atomic_write_op(struct ibv_mr *vmr, void *vaddr, struct ibv_mr *rmr, void *raddr,
			   const char *what)
{
	struct ibv_sge sge = {.addr = (uintptr_t)vaddr, .length = 8, .lkey = vmr->lkey};
	struct ibv_send_wr wr = {.sg_list = &sge, .opcode = IBV_WR_ATOMIC_WRITE};

	wr.wr.rdma.remote_addr = (uintptr_t)raddr;
	wr.wr.rdma.rkey = rmr->rkey;
	return post_one(&wr, IBV_WC_ATOMIC_WRITE, 8, false, what);
}

/*
 * Atomics, with the target as the responder's MR and as the local result buffer. Per
 * pair: the word is the last of a page nobody touched, and the result buffer straddles
 * the boundary of two untouched pages, so that for ODP the responder's side faults, the
 * word changes, then the requester's side faults and the WQE runs again: the word must
 * not change twice. Then a CMP_SWP that matches and one that does not. Every returned
 * value is checked, and the bytes around both places through both views. Where the device
 * has it, an ATOMIC_WRITE into another word that is the last of an untouched page.
 */
static int c_atomics(struct target *t)
{
	for (int p = 0; p < NPAIR; p++) {
		size_t w = PG + (size_t)p * SLOT + 2 * PG - 8;
		size_t r = PG + (size_t)(NPAIR + p) * SLOT + PG - 3;
		uint64_t add = mix64(next_seed()) | 1, swap = mix64(next_seed()), now_v, got;
		char what[120];
		static const char *const steps[] = {
			"FETCH_ADD", "CMP_SWP that matches", "CMP_SWP that does not match",
		};
		for (int st = 0; st < 3; st++) {
			uint64_t before, after, cmp;

			snprintf(what, sizeof(what), "atomics pair %d: %s of target+%zu into "
				 "target+%zu", p, steps[st], w, r);
			memcpy(&before, t->mrv + w, 8);
			/* FETCH_ADD adds; a CMP_SWP compares with the word, or with anything else */
			cmp = st == 0 ? add : st == 1 ? before : ~before;
			if (atomic_op(st ? IBV_WR_ATOMIC_CMP_AND_SWP : IBV_WR_ATOMIC_FETCH_AND_ADD,
				      t->mr, t->buf + r, t->mr, t->buf + w, cmp, swap, what))
				return -1;
			after = st == 0 ? before + add : st == 1 ? swap : before;
			model_write(t, w, (const uint8_t *)&after, 8, false);
			model_write(t, r, (const uint8_t *)&before, 8, false);
			memcpy(&got, t->buf + r, 8);
			memcpy(&now_v, t->buf + w, 8);
			if (got != before || now_v != after) {
				diag("%s: returned %#" PRIx64 " (expected %#" PRIx64 "), the word is now "
				     "%#" PRIx64 " (expected %#" PRIx64 ")", what, got, before, now_v,
				     after);
				return -1;
			}
			if (check_cpu(t, w - GUARD, 8 + 2 * GUARD, what) ||
			    check_cpu(t, r - GUARD, 8 + 2 * GUARD, what) ||
			    check_mr(t, w - GUARD, 8 + 2 * GUARD, what) ||
			    check_mr(t, r - GUARD, 8 + 2 * GUARD, what))
				return -1;
		}
		if (g.atomic_write) {
			size_t w2 = PG + (size_t)(2 * NPAIR + p) * SLOT + 3 * PG - 8;
			uint64_t v = mix64(next_seed()) | 1, got2;

			snprintf(what, sizeof(what), "atomics pair %d: ATOMIC_WRITE of target+%zu",
				 p, w2);
			memcpy(g.peer + SCR_OFF, &v, 8);
			if (atomic_write_op(g.peer_mr, g.peer + SCR_OFF, t->mr, t->buf + w2, what))
				return -1;
			model_write(t, w2, (const uint8_t *)&v, 8, false);
			memcpy(&got2, t->buf + w2, 8);
			if (got2 != v) {
				diag("%s: the word is %#" PRIx64 ", expected %#" PRIx64, what, got2, v);
				return -1;
			}
			if (check_cpu(t, w2 - GUARD, 8 + 2 * GUARD, what) ||
			    check_mr(t, w2 - GUARD, 8 + 2 * GUARD, what))
				return -1;
		}
	}
	return final_check(t);
}

/* ---- the device's ODP counters ------------------------------------------------------ */

/*
 * A device that counts its ODP work in hardware counters (pfnic does, as
 * /sys/class/infiniband/<dev>/ports/<port>/hw_counters/<name>) must show it: faults where
 * ODP memory is first reached, invalidations where the kernel changed it, and neither for
 * pinned MRs. Devices without these counters (rxe) are checked on their data alone.
 */
enum { CT_FAULTS, CT_PAGES_FAULTED, CT_INVALIDATIONS, CT_PAGES_INVALIDATED, NCOUNTERS };
/* mlx5's names: the _handled counters count events, the others pages */
static const char *const counter_names[NCOUNTERS] = {
	"page_faults_handled", "page_faults", "page_invalidations_handled", "page_invalidations",
};

/* Reads the counters; false if the device has none of them. */
static bool counters_read(uint64_t v[NCOUNTERS])
{
	for (int i = 0; i < NCOUNTERS; i++) {
		char path[256];
		FILE *f;
		unsigned long long x;

		snprintf(path, sizeof(path), "/sys/class/infiniband/%s/ports/%u/hw_counters/%s",
			 g.dev, g.port, counter_names[i]);
		f = fopen(path, "r");
		if (!f)
			return false;
		if (fscanf(f, "%llu", &x) != 1)
			x = 0;
		fclose(f);
		v[i] = x;
	}
	return true;
}

/*
 * Checks what a case did to the counters. @invalidates: the case changes memory under the
 * MR (so an ODP MR must see invalidations, then fault again).
 */
static int counters_check(const uint64_t a[NCOUNTERS], const uint64_t b[NCOUNTERS], bool odp,
			  bool invalidates)
{
	uint64_t d[NCOUNTERS];
	int bad = 0;

	for (int i = 0; i < NCOUNTERS; i++)
		d[i] = b[i] - a[i];
	diag("counters: page_faults_handled +%" PRIu64 ", page_faults +%" PRIu64
	     ", page_invalidations_handled +%" PRIu64 ", page_invalidations +%" PRIu64,
	     d[CT_FAULTS], d[CT_PAGES_FAULTED], d[CT_INVALIDATIONS], d[CT_PAGES_INVALIDATED]);
	if (!odp) {
		if (d[CT_FAULTS] || d[CT_INVALIDATIONS]) {
			diag("a pinned MR must neither fault nor be invalidated");
			bad = -1;
		}
		return bad;
	}
	if (!d[CT_FAULTS] || d[CT_PAGES_FAULTED] < d[CT_FAULTS]) {
		diag("an ODP MR reached over fresh memory must fault its pages in");
		bad = -1;
	}
	if (invalidates && (!d[CT_INVALIDATIONS] || !d[CT_PAGES_INVALIDATED])) {
		diag("the kernel changed this ODP MR's memory: it must have been invalidated");
		bad = -1;
	}
	return bad;
}

struct tcase {
	const char *name;
	int (*fn)(struct target *t);
	bool fill;     /* the CPU fills the target before registration */
	bool odp_only;
	bool numa;     /* needs a second NUMA node */
	bool invalidates; /* changes the memory under the MR */
	const char *desc;
	bool atomics;  /* needs atomics on the MR kind */
	enum backing backing; /* what backs the target */
};

static const struct tcase cases[] = {
	{"untouched", c_untouched, false, false, false, false,
	 "WRITE, READ, SEND into memory never touched before", false, B_PAGES},
	{"madv_dontneed", c_dontneed, true, false, false, true,
	 "traffic after MADV_DONTNEED dropped the pages", false, B_PAGES},
	{"remap", c_remap, true, false, false, true,
	 "traffic after munmap + mmap(MAP_FIXED) with new contents", false, B_PAGES},
	{"mprotect", c_mprotect, true, false, false, true,
	 "READ under PROT_READ, WRITE after PROT_READ|PROT_WRITE", false, B_PAGES},
	{"fork", c_fork, true, false, false, true,
	 "parent's traffic after fork; the child's copy unchanged", false, B_PAGES},
	{"migrate", c_migrate, true, false, true, true,
	 "traffic after move_pages to the other NUMA node", false, B_PAGES},
	{"odp_source_and_read_target", c_odp_local, false, true, false, false,
	 "ODP MR as local SEND/WRITE source and READ target", false, B_PAGES},
	{"atomics", c_atomics, false, false, false, false,
	 "FETCH_ADD, CMP_SWP and ATOMIC_WRITE (where the device has it) on untouched memory, "
	 "results into untouched memory", true, B_PAGES},
	{"thp_madv_dontneed", c_dontneed, true, false, false, true,
	 "transparent huge pages, MADV_DONTNEED of part of them (a split)", false, B_THP},
	{"thp_migrate", c_migrate, true, false, true, true,
	 "transparent huge pages moved to the other NUMA node", false, B_THP},
	{"hugetlb_untouched", c_untouched, false, false, false, false,
	 "WRITE, READ, SEND into 2 MiB hugetlb pages never touched", false, B_HUGETLB},
};
#define NCASES (int)(sizeof(cases) / sizeof(cases[0]))

/* ---- QPs ------------------------------------------------------------------------------ */

static void qps_destroy(void)
{
	for (int i = 0; i < 2; i++) {
		int rc = g.qp[i] ? ibv_destroy_qp(g.qp[i]) : 0;

		if (rc)
			diag("ibv_destroy_qp: %s", strerror(rc));
		g.qp[i] = NULL;
	}
	for (int i = 0; i < 2; i++) {
		int rc = g.cq[i] ? ibv_destroy_cq(g.cq[i]) : 0;

		if (rc)
			diag("ibv_destroy_cq: %s", strerror(rc));
		g.cq[i] = NULL;
		g.cqx[i] = NULL;
	}
	if (g.srq) {
		int rc = ibv_destroy_srq(g.srq);

		if (rc)
			diag("ibv_destroy_srq: %s", strerror(rc));
		g.srq = NULL;
	}
}

/* Two CQs, two RC QPs, each connected to the other through the port's GID. */
static int qps_create(void)
{
	for (int i = 0; i < 2; i++) {
		struct ibv_cq_init_attr_ex ca = {
			.cqe = 64,
			.wc_flags = IBV_WC_EX_WITH_BYTE_LEN | IBV_WC_EX_WITH_QP_NUM |
				    IBV_WC_EX_WITH_SRC_QP | IBV_WC_EX_WITH_IMM,
		};

		if (g.use_ex) {
			g.cqx[i] = ibv_create_cq_ex(g.ctx, &ca);
			g.cq[i] = g.cqx[i] ? ibv_cq_ex_to_cq(g.cqx[i]) : NULL;
		} else {
			g.cq[i] = ibv_create_cq(g.ctx, 64, NULL, NULL, 0);
		}
		if (!g.cq[i]) {
			diag("ibv_create_cq: %s", strerror(errno));
			return -1;
		}
	}
	if (g.use_srq) {
		struct ibv_srq_init_attr sa = {.attr = {.max_wr = 16, .max_sge = 1}};

		g.srq = ibv_create_srq(g.pd, &sa);
		if (!g.srq) {
			diag("ibv_create_srq: %s", strerror(errno));
			return -1;
		}
	}
	for (int i = 0; i < 2; i++) {
		struct ibv_qp_init_attr ia = {
			.send_cq = g.cq[i],
			.recv_cq = g.cq[i],
			.cap = {.max_send_wr = 16, .max_recv_wr = 16, .max_send_sge = 1,
				.max_recv_sge = 1, .max_inline_data = 0},
			.qp_type = IBV_QPT_RC,
			.sq_sig_all = 0,
			.srq = i == 1 ? g.srq : NULL,
		};
		struct ibv_qp_init_attr_ex iax = {
			.send_cq = ia.send_cq, .recv_cq = ia.recv_cq, .srq = ia.srq, .cap = ia.cap,
			.qp_type = ia.qp_type, .pd = g.pd,
			.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
			.send_ops_flags = IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_RDMA_READ |
					  IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP |
					  IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD |
					  (g.atomic_write ? IBV_QP_EX_WITH_ATOMIC_WRITE : 0),
		};

		g.qp[i] = g.use_ex ? ibv_create_qp_ex(g.ctx, &iax) : ibv_create_qp(g.pd, &ia);
		if (!g.qp[i]) {
			diag("ibv_create_qp%s: %s", g.use_ex ? "_ex" : "", strerror(errno));
			return -1;
		}
		g.psn[i] = (uint32_t)(next_seed() & 0xffffff);
	}
	for (int i = 0; i < 2; i++) {
		const struct vt_rc c = {
			.port = g.port,
			.access = MR_ACCESS | g.atomic_access,
			.dest_qpn = g.qp[1 - i]->qp_num,
			.rq_psn = g.psn[1 - i],
			.sq_psn = g.psn[i],
			.min_rnr_timer = 12,
			.rnr_retry = 7,
			.dgid = g.gid,
			.sgid_index = (uint8_t)g.gidx,
			.dlid = g.lid,
		};
		const char *step = "";
		int s = IBV_QPS_RESET, rc = vt_rc_bring_up(g.qp[i], &c, &s, IBV_QPS_RTS, &step);

		if (rc) {
			diag("ibv_modify_qp(%s): %s", step, strerror(rc));
			return -1;
		}
	}
	return 0;
}

static bool qps_rts(void)
{
	for (int i = 0; i < 2; i++) {
		struct ibv_qp_attr attr;
		struct ibv_qp_init_attr ia;

		if (ibv_query_qp(g.qp[i], &attr, IBV_QP_STATE, &ia) || attr.qp_state != IBV_QPS_RTS)
			return false;
	}
	return true;
}

/* ---- main ----------------------------------------------------------------------------- */

/*
 * Makes sure @n huge pages are reserved (/proc/sys/vm/nr_hugepages) for the hugetlb case, and
 * with -1 gives back what it added. Without them (not root, no memory), that case is skipped.
 */
static void hugepages_reserve(int n)
{
	static long before = -1;
	const char *path = "/proc/sys/vm/nr_hugepages";
	FILE *f = fopen(path, "r");
	long now_n = -1;

	if (f) {
		if (fscanf(f, "%ld", &now_n) != 1)
			now_n = -1;
		fclose(f);
	}
	if (n >= 0 && now_n >= 0 && now_n < n)
		before = now_n;
	else if (n >= 0 || before < 0)
		return;
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%ld", n >= 0 ? (long)n : before);
		fclose(f);
	}
}

/*
 * Reports case @n as skipped for @why; with --strict, as failed, since the device claims
 * what the case needs. Return: 1 if it counts as a failure.
 */
static int skip_case(int n, const char *name, const char *kind, const char *why)
{
	if (g.strict)
		printf("not ok %d - %s %s: would be skipped: %s\n", n, name, kind, why);
	else
		printf("ok %d - %s %s # SKIP %s\n", n, name, kind, why);
	fflush(stdout);
	return g.strict;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pfnic_traffic -d DEVICE [-g GID_INDEX] [--only NAME[,NAME...]] "
		   "[--seed N] [--timeout SECONDS] [--srq] [--ex] [--strict]\n"
		   "  --strict: a case that would be skipped fails (for a device that claims "
		   "everything the cases need)\ncases:");
	for (int i = 0; i < NCASES; i++)
		fprintf(f, " %s", cases[i].name);
	fputc('\n', f);
}

static void open_device(const char *name)
{
	struct ibv_port_attr pa;
	struct ibv_device_attr_ex dx;

	g.ctx = open_device_named(name);
	if (ibv_query_port(g.ctx, g.port, &pa))
		bail("ibv_query_port(%s, %u): %s", name, g.port, strerror(errno));
	if (pa.state != IBV_PORT_ACTIVE)
		bail("port %u of %s is %s, not active", g.port, name, ibv_port_state_str(pa.state));
	g.lid = pa.lid;
	if (ibv_query_gid(g.ctx, g.port, g.gidx, &g.gid))
		bail("ibv_query_gid(%s, port %u, index %d): %s", name, g.port, g.gidx,
		     strerror(errno));
	static const uint8_t zero[16];

	if (memcmp(g.gid.raw, zero, sizeof(zero)) == 0)
		bail("GID index %d of %s port %u is empty", g.gidx, name, g.port);

	memset(&dx, 0, sizeof(dx));
	uint32_t need = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV | IBV_ODP_SUPPORT_WRITE |
			IBV_ODP_SUPPORT_READ | (g.use_srq ? IBV_ODP_SUPPORT_SRQ_RECV : 0);
	int rc = ibv_query_device_ex(g.ctx, NULL, &dx);

	if (rc) {
		snprintf(g.odp_why, sizeof(g.odp_why), "ibv_query_device_ex failed: %s",
			 strerror(rc));
	} else if (!(dx.odp_caps.general_caps & IBV_ODP_SUPPORT) ||
		   (dx.odp_caps.per_transport_caps.rc_odp_caps & need) != need) {
		snprintf(g.odp_why, sizeof(g.odp_why),
			 "%s reports no ODP support for RC SEND/RECV/WRITE/READ%s (general_caps 0x%"
			 PRIx64 ", rc_odp_caps 0x%x)", name, g.use_srq ? "/SRQ_RECV" : "",
			 dx.odp_caps.general_caps, dx.odp_caps.per_transport_caps.rc_odp_caps);
	} else {
		g.odp_ok = true;
	}
	if (!g.odp_ok)
		snprintf(g.implicit_why, sizeof(g.implicit_why), "%s", g.odp_why);
	else if (!(dx.odp_caps.general_caps & IBV_ODP_SUPPORT_IMPLICIT))
		snprintf(g.implicit_why, sizeof(g.implicit_why),
			 "%s reports no implicit ODP (general_caps 0x%" PRIx64 ")", name,
			 dx.odp_caps.general_caps);
	else
		g.implicit_ok = true;
	/* IB_UVERBS_DEVICE_ATOMIC_WRITE, which libibverbs' header does not name */
	g.atomic_write = rc == 0 && (dx.device_cap_flags_ex & (1ULL << 40));
	if (rc == 0 && dx.orig_attr.atomic_cap != IBV_ATOMIC_NONE) {
		g.atomic_access = IBV_ACCESS_REMOTE_ATOMIC;
		if (dx.odp_caps.per_transport_caps.rc_odp_caps & IBV_ODP_SUPPORT_ATOMIC)
			g.atomic_odp_access = IBV_ACCESS_REMOTE_ATOMIC;
	}
	snprintf(g.atomic_why, sizeof(g.atomic_why), "%s reports no atomics (atomic_cap %d, "
		 "rc_odp_caps 0x%x)", name, rc ? -1 : (int)dx.orig_attr.atomic_cap,
		 rc ? 0 : dx.odp_caps.per_transport_caps.rc_odp_caps);
	g.pd = ibv_alloc_pd(g.ctx);
	if (!g.pd)
		bail("ibv_alloc_pd: %s", strerror(errno));
	diag("device %s port %u (%s, lid %u), GID index %d: %02x%02x:%02x%02x:...:%02x%02x:%02x%02x",
	     name, g.port, pa.link_layer == IBV_LINK_LAYER_ETHERNET ? "Ethernet" : "InfiniBand",
	     pa.lid, g.gidx, g.gid.raw[0], g.gid.raw[1], g.gid.raw[2], g.gid.raw[3], g.gid.raw[12],
	     g.gid.raw[13], g.gid.raw[14], g.gid.raw[15]);
	if (rc == 0)
		diag("ODP: general_caps 0x%" PRIx64 ", rc_odp_caps 0x%x%s%s", dx.odp_caps.general_caps,
		     dx.odp_caps.per_transport_caps.rc_odp_caps, g.odp_ok ? "" : ": ",
		     g.odp_ok ? "" : "ODP cases are skipped");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"device", required_argument, NULL, 'd'},
		{"gid-index", required_argument, NULL, 'g'},
		{"only", required_argument, NULL, 'o'},
		{"seed", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 't'},
		{"srq", no_argument, NULL, 'r'},
		{"ex", no_argument, NULL, 'x'},
		{"strict", no_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *dev = NULL;
	bool sel[NCASES] = {false}, any_sel = false, seeded = false;
	int c, failed = 0, planned = 0, n = 0;
	char *end;

	while ((c = getopt_long(argc, argv, "d:g:hS", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			dev = optarg;
			g.dev = optarg;
			break;
		case 'g':
			g.gidx = (int)strtol(optarg, &end, 0);
			if (*end || g.gidx < 0 || g.gidx > 255) {
				fprintf(stderr, "bad GID index %s\n", optarg);
				return 2;
			}
			break;
		case 'o': {
			char *save, *tok, *s = strdup(optarg);

			for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				int i;

				for (i = 0; i < NCASES && strcmp(cases[i].name, tok); i++)
					;
				if (i == NCASES) {
					fprintf(stderr, "unknown case %s\n", tok);
					usage(stderr);
					return 2;
				}
				sel[i] = any_sel = true;
			}
			free(s);
			break;
		}
		case 'S':
			g.strict = true;
			break;
		case 's':
			g.run_seed = strtoull(optarg, &end, 0);
			if (*end) {
				fprintf(stderr, "bad seed %s\n", optarg);
				return 2;
			}
			seeded = true;
			break;
		case 't':
			g.timeout_s = (int)strtol(optarg, &end, 0);
			if (*end || g.timeout_s <= 0) {
				fprintf(stderr, "bad timeout %s\n", optarg);
				return 2;
			}
			break;
		case 'r':
			g.use_srq = true;
			break;
		case 'x':
			g.use_ex = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!dev || optind != argc) {
		usage(stderr);
		return 2;
	}
	bool hugetlb = false, numa = false;

	for (int i = 0; i < NCASES; i++) {
		if (!any_sel)
			sel[i] = true;
		if (sel[i])
			planned += cases[i].odp_only ? NKINDS - 1 : NKINDS;
		hugetlb |= sel[i] && cases[i].backing == B_HUGETLB;
		numa |= sel[i] && cases[i].numa;
	}
	if (!seeded)
		g.run_seed = mix64((uint64_t)time(NULL) << 20 ^ (uint64_t)getpid() ^
				   (uint64_t)(now() * 1e9));

	/* a child of the fork case that died must fail the case, not kill the program */
	signal(SIGPIPE, SIG_IGN);
	printf("TAP version 13\n");
	fflush(stdout);
	if (sysconf(_SC_PAGESIZE) != PG)
		bail("page size %ld: this program assumes %u", sysconf(_SC_PAGESIZE), PG);
	/* fork support through MADV_DONTFORK would change the fork case: keep it off */
	if (getenv("RDMAV_FORK_SAFE") || getenv("IBV_FORK_SAFE")) {
		diag("unsetting RDMAV_FORK_SAFE/IBV_FORK_SAFE: MADV_DONTFORK must not be used");
		unsetenv("RDMAV_FORK_SAFE");
		unsetenv("IBV_FORK_SAFE");
	}
	open_device(dev);
	if (hugetlb)
		hugepages_reserve(4);
	if (numa)
		numa_balancing(false);
	diag("seed 0x%016" PRIx64 " (--seed to repeat), timeout %d s per completion, target buffer "
	     "%zu bytes, changed region [%zu, %zu)", g.run_seed, g.timeout_s, TSIZE,
	     (size_t)REG_START, (size_t)REG_END);

	g.peer = mmap(NULL, PSIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g.peer == MAP_FAILED)
		bail("mmap of the peer buffer: %s", strerror(errno));
	gen(g.peer, PSIZE, next_seed(), 0, NULL, NULL);
	g.peer_mr = ibv_reg_mr(g.pd, g.peer, PSIZE, MR_ACCESS);
	if (!g.peer_mr)
		bail("ibv_reg_mr of the peer buffer: %s", strerror(errno));
	if (qps_create())
		bail("cannot create and connect the QPs");
	printf("1..%d\n", planned);
	fflush(stdout);

	double t_all = now();

	for (int ci = 0; ci < NCASES; ci++) {
		const struct tcase *tc = &cases[ci];

		if (!sel[ci])
			continue;
		for (int kind = 0; kind < NKINDS; kind++) {
			bool odp = kind != K_PINNED;
			const char *kn = kind_names[kind];
			char skip[200] = "";
			struct target t;
			int rc;

			if (!odp && tc->odp_only)
				continue;
			n++;
			if (odp && !(kind == K_IMPLICIT ? g.implicit_ok : g.odp_ok)) {
				failed += skip_case(n, tc->name, kn,
						    kind == K_IMPLICIT ? g.implicit_why : g.odp_why);
				continue;
			}
			if (tc->atomics && !(odp ? g.atomic_odp_access : g.atomic_access)) {
				failed += skip_case(n, tc->name, kn, g.atomic_why);
				continue;
			}
			if (tc->numa && !two_nodes()) {
				failed += skip_case(n, tc->name, kn, "the system has one NUMA node (no "
						    "/sys/devices/system/node/node1)");
				continue;
			}
			g.need_reset = false;
			double t0 = now();
			uint64_t c0[NCOUNTERS], c1[NCOUNTERS];
			bool counted = counters_read(c0);

			rc = target_open(&t, kind, tc->fill, tc->backing, skip, sizeof(skip));
			if (rc == 1) {
				failed += skip_case(n, tc->name, kn, skip);
				continue;
			}
			if (rc == 0)
				rc = tc->fn(&t);
			if (rc == 0 && counted && counters_read(c1))
				rc = counters_check(c0, c1, odp, tc->invalidates);
			/*
			 * A QP out of RTS, or one that may still hold work requests (after a
			 * failure), is replaced before the case's MR and memory go away.
			 */
			bool reset = rc || g.need_reset || !qps_rts();

			if (reset)
				qps_destroy();
			target_close(&t);
			printf("%s %d - %s %s: %s\n", rc ? "not ok" : "ok", n, tc->name, kn, tc->desc);
			diag("%s %s took %.1f s", tc->name, kn, now() - t0);
			if (rc)
				failed++;
			if (reset) {
				diag("recreated and reconnected the QPs");
				if (qps_create())
					bail("cannot recreate the QPs");
			}
		}
	}
	diag("%d of %d failed, %.1f s", failed, planned, now() - t_all);
	if (hugetlb)
		hugepages_reserve(-1);
	if (numa)
		numa_balancing(true);
	qps_destroy();
	ibv_dereg_mr(g.peer_mr);
	munmap(g.peer, PSIZE);
	ibv_dealloc_pd(g.pd);
	ibv_close_device(g.ctx);
	return failed ? 1 : 0;
}
