// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_soak: traffic of every kind through every kind of MR for a long time, every byte
 * checked against a model, while the memory under it changes in every way a program and the
 * kernel change memory. Prints TAP version 13.
 *
 *   pfnic_soak -d DEVICE [-g GID_INDEX] [--seconds N] [--seed N] [--workers N]
 *
 * Each worker process has its own verbs objects: an RC QP pair, an RC pair whose receiver
 * takes from an SRQ, a UD pair, and three pairs of buffers (source and destination): under
 * explicit ODP MRs, under one implicit ODP MR, and under pinned MRs. Round after round it
 * picks a kind of transfer (RDMA WRITE, RDMA READ, SEND, SEND into the SRQ, UD SEND, atomic
 * fetch-and-add or compare-and-swap), a kind of MR for each side, and an unaligned offset
 * and length (across pages), fills the source, waits for the completions and checks the
 * destination range, the bytes around it and, every so often, every byte of every buffer
 * against its model. Between rounds it changes its ODP buffers in ways that change their
 * contents, and the model with them: MADV_DONTNEED, munmap and mmap over the same addresses,
 * mremap away and back (the implicit MR's buffers move for good), mprotect(PROT_READ) of a
 * source under a transfer. A thread of each worker meanwhile changes the same memory in ways
 * that keep its contents: move_pages to the other node, MADV_PAGEOUT (swap), fork of a child
 * that writes its own copy and exits. After a random number of rounds a worker posts a
 * transfer and exits at once, its objects and the transfer still live, and another takes its
 * place. Beside the workers, a process allocates, touches and frees memory and forks, and
 * this process takes the Movable memory blocks (the rig's --dimm) offline and online again.
 *
 * TAP: the traffic (transfers and bytes verified by kind; no byte wrong, no work request
 * failed, none stuck), the churn done (each kind at least once), the workers that exited
 * under traffic, the memory blocks cycled, the pressure process. Run it with ODP on the device, root (move_pages, memory blocks), and
 * swap for MADV_PAGEOUT to do anything (test/vm/guest zram-swap). test/guest/soak.sh adds
 * what must hold after it: nothing left on the device, the module unloads.
 *
 * Exit status: 0 if every check passed, 1 otherwise, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "verbs-test.h"

#define PG 4096ul
#define ODP_LEN (2ul << 20)	/* each explicit or implicit ODP buffer */
#define PIN_LEN (1ul << 20)	/* each pinned buffer */
#define XFER_MAX (64ul << 10)	/* the longest RC transfer */
#define GUARD 64		/* bytes checked on each side of a destination range */
#define FULL_EVERY 32		/* rounds between checks of every byte of every buffer */
#define UD_QKEY 0x1a2b3c4du
#define GRH 40
#define MAX_WORKERS 16
#define MPOL_MF_MOVE 2		/* <linux/mempolicy.h> */
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#define ACC_ALL (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | \
		 IBV_ACCESS_REMOTE_ATOMIC)
#define MEMDIR "/sys/devices/system/memory"

enum xfer { X_WRITE, X_READ, X_SEND, X_SRQ, X_UD, X_FADD, X_CSWAP, NXFER };
static const char *const xfer_names[NXFER] = {
	"RDMA WRITE", "RDMA READ", "SEND", "SEND into an SRQ", "UD SEND", "fetch-and-add",
	"compare-and-swap",
};

enum mrkind { M_ODP, M_IMPLICIT, M_PINNED, NMRKIND };
static const char *const mr_names[NMRKIND] = { "explicit ODP", "implicit ODP", "pinned" };

enum churn { C_DONTNEED, C_REMAP_FIXED, C_MREMAP, C_MPROTECT, C_MOVE_PAGES, C_PAGEOUT, C_FORK,
	     NCHURN };
static const char *const churn_names[NCHURN] = {
	"MADV_DONTNEED", "munmap and mmap", "mremap", "mprotect(PROT_READ) under a transfer",
	"move_pages", "MADV_PAGEOUT", "fork and exit",
};

/* What the workers report, in memory shared with this process. */
struct tally {
	atomic_ulong xfers[NXFER][NMRKIND];
	atomic_ulong bytes;		/* bytes checked against the model after a transfer */
	atomic_ulong full_checks;	/* checks of every byte of every buffer */
	atomic_ulong churn[NCHURN];
	atomic_ulong corrupt;		/* wrong bytes found */
	atomic_ulong failed;		/* work requests that completed in error */
	atomic_ulong stuck;		/* work requests that did not complete in time */
	atomic_ulong pressure_rounds, pressure_forks;
	atomic_ulong abrupt_exits;	/* workers gone with a transfer in flight */
	atomic_int stop;
	char first_error[512];
	atomic_flag error_said;
};

static struct {
	const char *dev;
	int gidx;
	unsigned int seconds, workers;
	uint64_t seed;
	struct tally *tally;
} g = { .gidx = 1, .seconds = 600, .workers = 4, .seed = 1 };

/* ---- a worker's model of its memory --------------------------------------------------------- */

struct buf {
	uint8_t *va;		/* where the buffer is now */
	uint8_t *model;		/* what it must hold */
	size_t len;
	enum mrkind kind;
	struct ibv_mr *mr;	/* explicit ODP and pinned: its own MR; implicit: the worker's */
};

struct worker {
	int id;
	uint64_t rng;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_srq *srq;
	struct ibv_qp *rc[2], *srq_qp[2], *ud[2];
	struct ibv_ah *ah;
	struct ibv_mr *implicit;
	union ibv_gid gid;
	uint16_t lid;
	struct buf src[NMRKIND], dst[NMRKIND];
	uint8_t grh[GRH];
	size_t ud_max;		/* the port's MTU: the longest datagram */
	/* held while the buffers move (mremap); the churn thread reads where they are under it */
	pthread_mutex_t lock;
	uint64_t churn_rng;
	int nodes;
};

static uint64_t next_rand(uint64_t *s)
{
	/* splitmix64: a reproducible stream per worker from the seed */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t rand_below(uint64_t *s, size_t n)
{
	return n ? next_rand(s) % n : 0;
}

/* The first wrong thing found is kept for the report; every one is counted. */
static void fault(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fault(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	if (atomic_flag_test_and_set(&g.tally->error_said))
		return;
	va_start(ap, fmt);
	int n = snprintf(g.tally->first_error, sizeof(g.tally->first_error), "worker %d: ", w->id);

	vsnprintf(g.tally->first_error + n, sizeof(g.tally->first_error) - n, fmt, ap);
	va_end(ap);
}

static uint32_t lkey_of(struct worker *w, struct buf *b)
{
	return b->kind == M_IMPLICIT ? w->implicit->lkey : b->mr->lkey;
}

static uint32_t rkey_of(struct worker *w, struct buf *b)
{
	return b->kind == M_IMPLICIT ? w->implicit->rkey : b->mr->rkey;
}

/* Counts the bytes of @b in [@off, @off + @len) that differ from its model; says the first. */
static size_t check_range(struct worker *w, struct buf *b, size_t off, size_t len,
			  const char *what)
{
	size_t bad = 0, first = 0;

	if (!memcmp(b->va + off, b->model + off, len))
		return 0;
	for (size_t i = off; i < off + len; i++)
		if (b->va[i] != b->model[i] && !bad++)
			first = i;
	fault(w, "%s: %zu wrong bytes in the %s buffer's [%zu, %zu), the first at %zu: %#x, "
	      "not %#x", what, bad, mr_names[b->kind], off, off + len, first, b->va[first],
	      b->model[first]);
	atomic_fetch_add(&g.tally->corrupt, bad);
	return bad;
}

static void fill(struct worker *w, struct buf *b, size_t off, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t r = next_rand(&w->rng);

		memcpy(b->model + off + i, &r, len - i < 8 ? len - i : 8);
	}
	memcpy(b->va + off, b->model + off, len);
}

/* ---- verbs objects -------------------------------------------------------------------------- */

static void rc_pair(struct worker *w, struct ibv_qp **qp, struct ibv_srq *srq)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = w->cq, .recv_cq = w->cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 8, .max_recv_wr = 8, .max_send_sge = 1,
			 .max_recv_sge = 1 },
	};
	const char *step;
	int state[2] = { IBV_QPS_RESET, IBV_QPS_RESET };

	qp[0] = ibv_create_qp(w->pd, &ia);
	ia.srq = srq;
	qp[1] = ibv_create_qp(w->pd, &ia);
	if (!qp[0] || !qp[1])
		bail("worker %d: ibv_create_qp (RC): %s", w->id, strerror(errno));
	for (int i = 0; i < 2; i++) {
		struct vt_rc c = {
			.port = 1, .access = ACC_ALL, .dest_qpn = qp[!i]->qp_num,
			.rq_psn = 0x100 * (!i + 1), .sq_psn = 0x100 * (i + 1),
			.min_rnr_timer = 1, .rnr_retry = 7, .dgid = w->gid,
			.sgid_index = (uint8_t)g.gidx, .dlid = w->lid,
		};
		int rv = vt_rc_bring_up(qp[i], &c, &state[i], IBV_QPS_RTS, &step);

		if (rv)
			bail("worker %d: RC QP to %s: %s", w->id, step, strerror(rv));
	}
}

static void ud_pair(struct worker *w)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = w->cq, .recv_cq = w->cq, .qp_type = IBV_QPT_UD,
		.cap = { .max_send_wr = 8, .max_recv_wr = 8, .max_send_sge = 1, .max_recv_sge = 2 },
	};
	struct ibv_ah_attr ah = {
		.is_global = 1, .dlid = w->lid, .port_num = 1,
		.grh = { .dgid = w->gid, .sgid_index = (uint8_t)g.gidx, .hop_limit = 1 },
	};

	for (int i = 0; i < 2; i++) {
		struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT, .port_num = 1, .qkey = UD_QKEY };

		w->ud[i] = ibv_create_qp(w->pd, &ia);
		if (!w->ud[i])
			bail("worker %d: ibv_create_qp (UD): %s", w->id, strerror(errno));
		if (ibv_modify_qp(w->ud[i], &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
				  IBV_QP_QKEY))
			bail("worker %d: UD QP to INIT: %s", w->id, strerror(errno));
		a = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTR };
		if (ibv_modify_qp(w->ud[i], &a, IBV_QP_STATE))
			bail("worker %d: UD QP to RTR: %s", w->id, strerror(errno));
		a = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTS, .sq_psn = 0x77 };
		if (ibv_modify_qp(w->ud[i], &a, IBV_QP_STATE | IBV_QP_SQ_PSN))
			bail("worker %d: UD QP to RTS: %s", w->id, strerror(errno));
	}
	w->ah = ibv_create_ah(w->pd, &ah);
	if (!w->ah)
		bail("worker %d: ibv_create_ah: %s", w->id, strerror(errno));
}

static void buffers(struct worker *w)
{
	for (int k = 0; k < NMRKIND; k++) {
		struct buf *pair[2] = { &w->src[k], &w->dst[k] };

		for (int i = 0; i < 2; i++) {
			struct buf *b = pair[i];

			b->kind = k;
			b->len = k == M_PINNED ? PIN_LEN : ODP_LEN;
			b->va = map_fresh(b->len);
			b->model = calloc(1, b->len);
			if (!b->model)
				bail("out of memory");
			if (k == M_IMPLICIT)
				continue;
			b->mr = ibv_reg_mr(w->pd, b->va, b->len,
					   ACC_ALL | (k == M_ODP ? IBV_ACCESS_ON_DEMAND : 0));
			if (!b->mr)
				bail("worker %d: ibv_reg_mr (%s): %s", w->id, mr_names[k],
				     strerror(errno));
		}
	}
	w->implicit = ibv_reg_mr(w->pd, NULL, SIZE_MAX, ACC_ALL | IBV_ACCESS_ON_DEMAND);
	if (!w->implicit)
		bail("worker %d: implicit ODP MR: %s", w->id, strerror(errno));
}

static void setup(struct worker *w)
{
	struct ibv_port_attr pa;
	struct ibv_srq_init_attr sa = { .attr = { .max_wr = 8, .max_sge = 1 } };

	w->ctx = open_device_named(g.dev);
	if (ibv_query_port(w->ctx, 1, &pa) || ibv_query_gid(w->ctx, 1, g.gidx, &w->gid))
		bail("worker %d: ibv_query_port / ibv_query_gid: %s", w->id, strerror(errno));
	w->lid = pa.lid;
	w->ud_max = 128ul << pa.active_mtu;
	w->pd = ibv_alloc_pd(w->ctx);
	w->cq = w->pd ? ibv_create_cq(w->ctx, 64, NULL, NULL, 0) : NULL;
	w->srq = w->cq ? ibv_create_srq(w->pd, &sa) : NULL;
	if (!w->srq)
		bail("worker %d: PD, CQ or SRQ: %s", w->id, strerror(errno));
	rc_pair(w, w->rc, NULL);
	rc_pair(w, w->srq_qp, w->srq);
	ud_pair(w);
	buffers(w);
}

static void teardown(struct worker *w)
{
	for (int k = 0; k < NMRKIND; k++) {
		struct buf *pair[2] = { &w->src[k], &w->dst[k] };

		for (int i = 0; i < 2; i++) {
			if (pair[i]->mr && ibv_dereg_mr(pair[i]->mr))
				fault(w, "ibv_dereg_mr: %s", strerror(errno));
			munmap(pair[i]->va, pair[i]->len);
			free(pair[i]->model);
		}
	}
	ibv_dereg_mr(w->implicit);
	ibv_destroy_ah(w->ah);
	for (int i = 0; i < 2; i++) {
		ibv_destroy_qp(w->rc[i]);
		ibv_destroy_qp(w->srq_qp[i]);
		ibv_destroy_qp(w->ud[i]);
	}
	ibv_destroy_srq(w->srq);
	ibv_destroy_cq(w->cq);
	ibv_dealloc_pd(w->pd);
	ibv_close_device(w->ctx);
}

/* ---- one transfer --------------------------------------------------------------------------- */

/*
 * Waits for @n completions. Return: 0 if all succeeded; -1 if one failed or they did not
 * come within a minute (counted and said).
 */
static int wait_for(struct worker *w, int n, const char *what)
{
	double deadline = now() + 60;
	struct ibv_wc wc[4];
	int got = 0, rv = 0, spins = 0;

	while (got < n) {
		int k = ibv_poll_cq(w->cq, 4, wc);

		if (k < 0) {
			fault(w, "%s: ibv_poll_cq failed", what);
			atomic_fetch_add(&g.tally->failed, 1);
			return -1;
		}
		for (int i = 0; i < k; i++) {
			if (wc[i].status != IBV_WC_SUCCESS) {
				fault(w, "%s: a completion with status %s (opcode %d)", what,
				      ibv_wc_status_str(wc[i].status), wc[i].opcode);
				atomic_fetch_add(&g.tally->failed, 1);
				rv = -1;
			}
		}
		got += k;
		if (k)
			continue;
		if (now() > deadline) {
			fault(w, "%s: %d of %d completions in 60 s", what, got, n);
			atomic_fetch_add(&g.tally->stuck, 1);
			return -1;
		}
		if (++spins > 64)
			usleep(20);
	}
	return rv;
}

static int post_send(struct worker *w, struct ibv_qp *qp, struct ibv_send_wr *wr,
		     const char *what)
{
	struct ibv_send_wr *bad;
	int rv = ibv_post_send(qp, wr, &bad);

	if (rv) {
		fault(w, "%s: ibv_post_send: %s", what, strerror(rv));
		atomic_fetch_add(&g.tally->failed, 1);
	}
	return rv ? -1 : 0;
}

/* RC WRITE, READ, SEND or SEND into the SRQ of @len bytes from @s at @so to @d at @dof. */
static int rc_round(struct worker *w, enum xfer x, struct buf *s, size_t so, struct buf *d,
		    size_t dof, size_t len, bool protect)
{
	struct ibv_sge ssge = { (uintptr_t)(s->va + so), (uint32_t)len, lkey_of(w, s) };
	struct ibv_sge dsge = { (uintptr_t)(d->va + dof), (uint32_t)len, lkey_of(w, d) };
	struct ibv_send_wr wr = { .sg_list = &ssge, .num_sge = 1, .send_flags = IBV_SEND_SIGNALED };
	struct ibv_recv_wr rwr = { .sg_list = &dsge, .num_sge = 1 }, *rbad;
	struct ibv_qp *qp = x == X_SRQ ? w->srq_qp[0] : w->rc[0];
	uintptr_t plo = (uintptr_t)(s->va + so) & ~(PG - 1);
	size_t plen = (((uintptr_t)(s->va + so + len) + PG - 1) & ~(PG - 1)) - plo;
	int n = 1, rv;

	fill(w, s, so, len);
	memcpy(d->model + dof, s->model + so, len);
	switch (x) {
	case X_WRITE:
		wr.opcode = IBV_WR_RDMA_WRITE;
		wr.wr.rdma.remote_addr = (uintptr_t)(d->va + dof);
		wr.wr.rdma.rkey = rkey_of(w, d);
		break;
	case X_READ:
		/* the reader's local buffer is the destination */
		wr.opcode = IBV_WR_RDMA_READ;
		wr.sg_list = &dsge;
		wr.wr.rdma.remote_addr = (uintptr_t)(s->va + so);
		wr.wr.rdma.rkey = rkey_of(w, s);
		break;
	default:
		wr.opcode = IBV_WR_SEND;
		rv = x == X_SRQ ? ibv_post_srq_recv(w->srq, &rwr, &rbad)
				: ibv_post_recv(w->rc[1], &rwr, &rbad);
		if (rv) {
			fault(w, "%s: posting the receive: %s", xfer_names[x], strerror(rv));
			atomic_fetch_add(&g.tally->failed, 1);
			return -1;
		}
		n = 2;
		break;
	}
	/* the source read-only under the transfer: what reads it needs no write access */
	if (protect && s->kind != M_PINNED && mprotect((void *)plo, plen, PROT_READ) == 0)
		atomic_fetch_add(&g.tally->churn[C_MPROTECT], 1);
	else
		protect = false;
	rv = post_send(w, qp, &wr, xfer_names[x]);
	if (!rv)
		rv = wait_for(w, n, xfer_names[x]);
	if (protect)
		mprotect((void *)plo, plen, PROT_READ | PROT_WRITE);
	return rv;
}

/* A UD datagram of @len bytes (at most the MTU): its GRH into a buffer of its own. */
static int ud_round(struct worker *w, struct buf *s, size_t so, struct buf *d, size_t dof,
		    size_t len)
{
	struct ibv_sge ssge = { (uintptr_t)(s->va + so), (uint32_t)len, lkey_of(w, s) };
	struct ibv_sge dsge[2] = {
		{ (uintptr_t)w->grh, GRH, w->implicit->lkey },
		{ (uintptr_t)(d->va + dof), (uint32_t)len, lkey_of(w, d) },
	};
	struct ibv_recv_wr rwr = { .sg_list = dsge, .num_sge = 2 }, *rbad;
	struct ibv_send_wr wr = {
		.sg_list = &ssge, .num_sge = 1, .opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.ud = { .ah = w->ah, .remote_qpn = w->ud[1]->qp_num, .remote_qkey = UD_QKEY },
	};
	int rv;

	fill(w, s, so, len);
	memcpy(d->model + dof, s->model + so, len);
	rv = ibv_post_recv(w->ud[1], &rwr, &rbad);
	if (rv) {
		fault(w, "UD SEND: posting the receive: %s", strerror(rv));
		atomic_fetch_add(&g.tally->failed, 1);
		return -1;
	}
	rv = post_send(w, w->ud[0], &wr, "UD SEND");
	return rv ? rv : wait_for(w, 2, "UD SEND");
}

/* An atomic on the 8-byte word of @d at @dof; the old value lands in @s at @so. */
static int atomic_round(struct worker *w, enum xfer x, struct buf *s, size_t so, struct buf *d,
			size_t dof)
{
	struct ibv_sge sge = { (uintptr_t)(s->va + so), 8, lkey_of(w, s) };
	struct ibv_send_wr wr = {
		.sg_list = &sge, .num_sge = 1, .send_flags = IBV_SEND_SIGNALED,
		.opcode = x == X_FADD ? IBV_WR_ATOMIC_FETCH_AND_ADD : IBV_WR_ATOMIC_CMP_AND_SWP,
		.wr.atomic = { .remote_addr = (uintptr_t)(d->va + dof), .rkey = rkey_of(w, d) },
	};
	uint64_t old, add = next_rand(&w->rng), swap = next_rand(&w->rng);
	int rv;

	memcpy(&old, d->model + dof, 8);
	if (x == X_FADD) {
		wr.wr.atomic.compare_add = add;
	} else {
		/* half the time the compare matches */
		wr.wr.atomic.compare_add = (next_rand(&w->rng) & 1) ? old : old ^ 1;
		wr.wr.atomic.swap = swap;
	}
	rv = post_send(w, w->rc[0], &wr, xfer_names[x]);
	if (!rv)
		rv = wait_for(w, 1, xfer_names[x]);
	if (rv)
		return rv;
	memcpy(s->model + so, &old, 8);
	if (x == X_FADD)
		old += add;
	else if (wr.wr.atomic.compare_add == old)
		old = swap;
	memcpy(d->model + dof, &old, 8);
	return 0;
}

/* One round: a transfer of a random kind, then its destination checked. Return: 0 or -1. */
static int round_of(struct worker *w)
{
	enum xfer x = rand_below(&w->rng, NXFER);
	struct buf *s = &w->src[rand_below(&w->rng, NMRKIND)];
	struct buf *d = &w->dst[rand_below(&w->rng, NMRKIND)];
	size_t max = x == X_UD ? w->ud_max : XFER_MAX, len, so, dof;
	int rv;

	len = 1 + rand_below(&w->rng, max);
	if (x == X_FADD || x == X_CSWAP) {
		len = 8;
		so = rand_below(&w->rng, s->len / 8) * 8;
		dof = rand_below(&w->rng, d->len / 8) * 8;
		rv = atomic_round(w, x, s, so, d, dof);
	} else {
		so = rand_below(&w->rng, s->len - len + 1);
		dof = rand_below(&w->rng, d->len - len + 1);
		if (x == X_UD)
			rv = ud_round(w, s, so, d, dof, len);
		else
			rv = rc_round(w, x, s, so, d, dof, len, rand_below(&w->rng, 8) == 0);
	}
	if (rv)
		return rv;
	atomic_fetch_add(&g.tally->xfers[x][d->kind], 1);
	{
		size_t lo = dof > GUARD ? dof - GUARD : 0;
		size_t hi = dof + len + GUARD < d->len ? dof + len + GUARD : d->len;

		if (check_range(w, d, lo, hi - lo, xfer_names[x]))
			return -1;
		if ((x == X_FADD || x == X_CSWAP) && check_range(w, s, so, 8, xfer_names[x]))
			return -1;
		atomic_fetch_add(&g.tally->bytes, len);
	}
	return 0;
}

/* ---- churn that changes contents (the worker's own thread, between rounds) ------------------ */

/*
 * Return: 0, or -1 if a call that must work failed (said). mremap moves one VMA only: a
 * buffer that munmap and mmap left in pieces is not moved then.
 */
static int churn_changing(struct worker *w)
{
	struct buf *b = rand_below(&w->rng, 2) ? &w->src[rand_below(&w->rng, 2)]
					       : &w->dst[rand_below(&w->rng, 2)];
	size_t pages = b->len / PG, first = rand_below(&w->rng, pages);
	size_t n = 1 + rand_below(&w->rng, pages - first < 16 ? pages - first : 16);
	uint8_t *at = b->va + first * PG;

	switch (rand_below(&w->rng, 3)) {
	case 0:
		if (madvise(at, n * PG, MADV_DONTNEED)) {
			fault(w, "MADV_DONTNEED: %s", strerror(errno));
			return -1;
		}
		memset(b->model + first * PG, 0, n * PG);
		atomic_fetch_add(&g.tally->churn[C_DONTNEED], 1);
		break;
	case 1:
		if (munmap(at, n * PG) ||
		    mmap(at, n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) != at) {
			fault(w, "munmap and mmap: %s", strerror(errno));
			return -1;
		}
		madvise(at, n * PG, MADV_NOHUGEPAGE);
		memset(b->model + first * PG, 0, n * PG);
		atomic_fetch_add(&g.tally->churn[C_REMAP_FIXED], 1);
		break;
	default: {
		/* the whole buffer away; an explicit ODP MR's comes back to its addresses */
		void *to = mmap(NULL, b->len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (to == MAP_FAILED) {
			fault(w, "mmap: %s", strerror(errno));
			return -1;
		}
		if (mremap(b->va, b->len, b->len, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to) {
			munmap(to, b->len);
			if (errno == EFAULT)
				break;
			fault(w, "mremap: %s", strerror(errno));
			return -1;
		}
		if (b->kind == M_IMPLICIT) {
			b->va = to;
		} else if (mremap(to, b->len, b->len, MREMAP_MAYMOVE | MREMAP_FIXED, b->va) !=
			   b->va) {
			fault(w, "mremap back: %s", strerror(errno));
			return -1;
		}
		atomic_fetch_add(&g.tally->churn[C_MREMAP], 1);
		break;
	}
	}
	return 0;
}

/* ---- churn that keeps contents (a thread of each worker, beside its rounds) ----------------- */

static void *churn_keeping(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(&g.tally->stop)) {
		int kind = rand_below(&w->churn_rng, 3);
		/* an ODP buffer: its address is read under the lock, as mremap moves it */
		struct buf *b;
		void *pages[16];
		int nodes[16], status[16];
		size_t n = 1 + rand_below(&w->churn_rng, 16), first;

		pthread_mutex_lock(&w->lock);
		b = rand_below(&w->churn_rng, 2) ? &w->src[rand_below(&w->churn_rng, 2)]
						 : &w->dst[rand_below(&w->churn_rng, 2)];
		first = rand_below(&w->churn_rng, b->len / PG - n);
		for (size_t i = 0; i < n; i++) {
			pages[i] = b->va + (first + i) * PG;
			nodes[i] = (int)rand_below(&w->churn_rng, w->nodes);
		}
		pthread_mutex_unlock(&w->lock);
		/* the buffer may move meanwhile: then these calls miss, which is all right */
		if (kind == 0 && w->nodes > 1) {
			if (syscall(SYS_move_pages, 0, n, pages, nodes, status, MPOL_MF_MOVE) >= 0)
				atomic_fetch_add(&g.tally->churn[C_MOVE_PAGES], 1);
		} else if (kind == 1) {
			if (madvise(pages[0], n * PG, MADV_PAGEOUT) == 0)
				atomic_fetch_add(&g.tally->churn[C_PAGEOUT], 1);
		} else {
			pid_t pid = fork();

			if (pid == 0) {
				/* the child writes its own copies, then goes */
				for (size_t i = 0; i < n; i++)
					((volatile uint8_t *)pages[i])[0] ^= 0x5a;
				_exit(0);
			}
			if (pid > 0 && waitpid(pid, NULL, 0) == pid)
				atomic_fetch_add(&g.tally->churn[C_FORK], 1);
		}
		usleep(1000 + rand_below(&w->churn_rng, 4000));
	}
	return NULL;
}

static int count_nodes(void)
{
	int n = 0;

	while (n < 64) {
		char path[64];

		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", n);
		if (access(path, F_OK))
			break;
		n++;
	}
	return n ? n : 1;
}

/*
 * Posts the longest WRITE from one ODP buffer to the other and exits before it completes:
 * the kernel is left to tear down a process whose QPs, MRs and transfer are still live.
 */
static void __attribute__((noreturn)) exit_mid_transfer(struct worker *w)
{
	struct ibv_sge sge = { (uintptr_t)w->src[M_ODP].va, XFER_MAX, w->src[M_ODP].mr->lkey };
	struct ibv_send_wr wr = {
		.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_RDMA_WRITE,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { (uintptr_t)w->dst[M_IMPLICIT].va, w->implicit->rkey },
	}, *bad;

	madvise(w->src[M_ODP].va, XFER_MAX, MADV_DONTNEED);
	madvise(w->dst[M_IMPLICIT].va, XFER_MAX, MADV_DONTNEED);
	if (ibv_post_send(w->rc[0], &wr, &bad) == 0)
		atomic_fetch_add(&g.tally->abrupt_exits, 1);
	_exit(0);
}

static int worker_main(int id)
{
	struct worker w = { .id = id, .rng = g.seed * 1000003 + id,
			    .churn_rng = g.seed * 7919 + id, .nodes = count_nodes() };
	pthread_t churner;
	unsigned long rounds = 0, lifetime;
	int rv = 0;

	pthread_mutex_init(&w.lock, NULL);
	setup(&w);
	/*
	 * most live some hundreds of rounds: a slow kernel still sees several go; the first
	 * worker goes within 50, so that one does on a guest too loaded for the others to
	 * reach theirs (79 rounds a worker in 60 s was seen on a debug guest sharing its host)
	 */
	lifetime = id == 0 ? 10 + rand_below(&w.rng, 40) : 50 + rand_below(&w.rng, 350);
	if (pthread_create(&churner, NULL, churn_keeping, &w))
		bail("pthread_create");
	while (!atomic_load(&g.tally->stop)) {
		if (rounds == lifetime)
			exit_mid_transfer(&w);
		pthread_mutex_lock(&w.lock);
		if (rand_below(&w.rng, 10) == 0)
			rv = churn_changing(&w);
		pthread_mutex_unlock(&w.lock);
		if (rv || round_of(&w)) {
			rv = 1;
			break;
		}
		if (++rounds % FULL_EVERY == 0) {
			for (int k = 0; k < NMRKIND; k++) {
				if (check_range(&w, &w.src[k], 0, w.src[k].len, "every byte") ||
				    check_range(&w, &w.dst[k], 0, w.dst[k].len, "every byte"))
					rv = 1;
			}
			if (rv)
				break;
			atomic_fetch_add(&g.tally->full_checks, 1);
		}
	}
	/* a worker that found something wrong stops them all: the first error is the story */
	if (rv)
		atomic_store(&g.tally->stop, 1);
	pthread_join(churner, NULL);
	teardown(&w);
	return rv;
}

/* ---- pressure and memory blocks ------------------------------------------------------------- */

static int pressure_main(void)
{
	uint64_t rng = g.seed * 31;

	while (!atomic_load(&g.tally->stop)) {
		size_t len = (8 + rand_below(&rng, 56)) << 20;
		uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				  -1, 0);

		if (p == MAP_FAILED)
			continue;
		for (size_t i = 0; i < len; i += PG)
			p[i] = (uint8_t)i;
		if (rand_below(&rng, 4) == 0) {
			pid_t pid = fork();

			if (pid == 0) {
				for (size_t i = 0; i < len; i += 16 * PG)
					p[i]++;
				_exit(0);
			}
			if (pid > 0 && waitpid(pid, NULL, 0) == pid)
				atomic_fetch_add(&g.tally->pressure_forks, 1);
		}
		munmap(p, len);
		atomic_fetch_add(&g.tally->pressure_rounds, 1);
		usleep(20000);
	}
	return 0;
}

/* The memory blocks that can go offline and come back as Movable: those of the rig's DIMM. */
static int movable_blocks(long *out, int max)
{
	char cmd[] = "for b in " MEMDIR "/memory*; do "
		     "grep -qx online $b/state && grep -qx Movable $b/valid_zones && "
		     "echo ${b##*memory}; done; true";
	char buf[4096], *tok[MAXTOK];
	int n = run_words(cmd, buf, sizeof(buf), tok), k = 0;

	for (int i = 0; i < n && k < max; i++)
		out[k++] = atol(tok[i]);
	return k;
}

static void on_alarm(int sig)
{
	(void)sig;
}

/*
 * Writes @state into a memory block's state file. Offlining retries while pages are busy:
 * after 30 s an alarm interrupts it (the kernel gives up on a signal). Return: 0 or -1.
 */
static int block_state(long block, const char *state)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	char path[128];
	int rv;

	snprintf(path, sizeof(path), MEMDIR "/memory%ld/state", block);
	sigaction(SIGALRM, &sa, NULL);
	alarm(30);
	rv = write_file(path, state);
	alarm(0);
	return rv;
}

static pid_t spawn(int slot, int generation)
{
	pid_t pid = fork();

	if (pid < 0)
		bail("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(slot < (int)g.workers ? worker_main(slot + MAX_WORKERS * generation)
					     : pressure_main());
	return pid;
}

/* ---- main ----------------------------------------------------------------------------------- */

static bool take_opt(int opt, const char *arg)
{
	switch (opt) {
	case 's': g.seconds = (unsigned int)strtoul(arg, NULL, 0); return g.seconds > 0;
	case 'r': g.seed = strtoull(arg, NULL, 0); return true;
	case 'w':
		g.workers = (unsigned int)strtoul(arg, NULL, 0);
		return g.workers > 0 && g.workers <= MAX_WORKERS;
	default: return false;
	}
}

static unsigned long sum_xfers(int x)
{
	unsigned long n = 0;

	for (int k = 0; k < NMRKIND; k++)
		n += atomic_load(&g.tally->xfers[x][k]);
	return n;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'r' },
		{ "workers", required_argument, NULL, 'w' },
		{ NULL },
	};
	pid_t pids[MAX_WORKERS + 1];
	long blocks[64];
	int nblocks, failed = 0, num = 0, cycles = 0, busy = 0, bad_exit = 0, generation = 0;
	bool online_failed = false;
	double start, end;
	char line[1024];
	int at;

	vt_args(argc, argv, "pfnic_soak -d DEVICE [-g GID_INDEX] [--seconds N] [--seed N] "
		"[--workers N]", &g.dev, &g.gidx, "s:r:w:", lo, take_opt);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n1..5\n");
	g.tally = mmap(NULL, sizeof(*g.tally), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);
	if (g.tally == MAP_FAILED)
		bail("mmap: %s", strerror(errno));
	atomic_flag_clear(&g.tally->error_said);
	nblocks = movable_blocks(blocks, 64);
	diag("seed %" PRIu64 ", %u workers, %u s, %d nodes, %d Movable memory blocks", g.seed,
	     g.workers, g.seconds, count_nodes(), nblocks);

	start = now();
	end = start + g.seconds;
	for (unsigned int i = 0; i <= g.workers; i++)
		pids[i] = spawn((int)i, 0);

	/*
	 * This process: a worker that exited takes a new one's place; the memory blocks go
	 * offline and online again, each in turn.
	 */
	for (int i = 0; now() < end && !atomic_load(&g.tally->stop); i++) {
		for (unsigned int k = 0; k < g.workers; k++) {
			int status;

			if (waitpid(pids[k], &status, WNOHANG) != pids[k])
				continue;
			if (!WIFEXITED(status) || WEXITSTATUS(status))
				bad_exit++;
			pids[k] = spawn((int)k, ++generation);
		}
		if (nblocks) {
			long b = blocks[i % nblocks];

			if (block_state(b, "offline") == 0) {
				if (block_state(b, "online_movable")) {
					/* a block that will not come back ends the soak, failed */
					online_failed = true;
					atomic_store(&g.tally->stop, 1);
				} else {
					cycles++;
				}
			} else {
				busy++;
			}
		}
		usleep(500000);
	}
	atomic_store(&g.tally->stop, 1);
	for (unsigned int i = 0; i <= g.workers; i++) {
		int status;

		if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			bad_exit++;
	}

	/* 1: the traffic */
	{
		unsigned long total = 0, by_mr[NMRKIND] = { 0 };

		at = 0;
		for (int x = 0; x < NXFER; x++) {
			at += snprintf(line + at, sizeof(line) - at, "%s%s %lu", x ? ", " : "",
				       xfer_names[x], sum_xfers(x));
			total += sum_xfers(x);
			for (int k = 0; k < NMRKIND; k++)
				by_mr[k] += atomic_load(&g.tally->xfers[x][k]);
		}
		diag("transfers: %s", line);
		diag("into %s %lu, %s %lu, %s %lu MRs; %lu checks of every byte of every buffer",
		     mr_names[0], by_mr[0], mr_names[1], by_mr[1], mr_names[2], by_mr[2],
		     atomic_load(&g.tally->full_checks));
		if (g.tally->first_error[0])
			diag("the first thing wrong: %s", g.tally->first_error);
		bool ok = !atomic_load(&g.tally->corrupt) && !atomic_load(&g.tally->failed) &&
			  !atomic_load(&g.tally->stuck) && !bad_exit;

		for (int x = 0; x < NXFER; x++)
			ok = ok && sum_xfers(x) > 0;
		for (int k = 0; k < NMRKIND; k++)
			ok = ok && by_mr[k] > 0;
		failed += !ok;
		printf("%sok %d - %lu transfers of every kind into every kind of MR in %.0f s, "
		       "%lu bytes verified: %lu wrong bytes, %lu failed and %lu stuck work "
		       "requests, %d processes that did not exit cleanly\n", ok ? "" : "not ",
		       ++num, total, now() - start, atomic_load(&g.tally->bytes),
		       atomic_load(&g.tally->corrupt), atomic_load(&g.tally->failed),
		       atomic_load(&g.tally->stuck), bad_exit);
	}
	/* 2: the churn */
	{
		bool ok = true;

		at = 0;
		for (int c = 0; c < NCHURN; c++) {
			unsigned long n = atomic_load(&g.tally->churn[c]);

			at += snprintf(line + at, sizeof(line) - at, "%s%s %lu", c ? ", " : "",
				       churn_names[c], n);
			/* move_pages needs two nodes; MADV_PAGEOUT does nothing without swap */
			if (c == C_MOVE_PAGES && count_nodes() < 2)
				continue;
			ok = ok && n > 0;
		}
		failed += !ok;
		printf("%sok %d - the memory under the MRs changed meanwhile: %s\n", ok ? "" : "not ",
		       ++num, line);
	}
	/* 3: workers gone mid-transfer */
	failed += !atomic_load(&g.tally->abrupt_exits);
	printf("%sok %d - workers exited with a transfer in flight and were replaced: %lu\n",
	       atomic_load(&g.tally->abrupt_exits) ? "" : "not ", ++num,
	       atomic_load(&g.tally->abrupt_exits));
	/* 4: memory blocks */
	{
		bool ok = nblocks && cycles && !online_failed;

		failed += !ok;
		printf("%sok %d - Movable memory blocks went offline and online under the traffic: %d "
		       "times (%d offline attempts refused)%s%s\n", ok ? "" : "not ", ++num, cycles,
		       busy, nblocks ? "" : "; no Movable block: run with the rig's --dimm",
		       online_failed ? "; a block offlined did not come back online" : "");
	}
	/* 5: pressure */
	failed += !atomic_load(&g.tally->pressure_rounds);
	printf("%sok %d - a process allocated, touched and freed memory beside it: %lu rounds, %lu "
	       "forks\n", atomic_load(&g.tally->pressure_rounds) ? "" : "not ", ++num,
	       atomic_load(&g.tally->pressure_rounds), atomic_load(&g.tally->pressure_forks));
	return failed ? 1 : 0;
}
