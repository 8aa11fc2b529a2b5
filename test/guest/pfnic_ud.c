// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_ud: UD datagrams over ODP and pinned memory, every byte checked. Prints TAP
 * version 13.
 *
 *   pfnic_ud -d DEVICE [-g GID_INDEX]
 *
 * Two UD QPs of one device send to each other through an address handle of the port's
 * GID. For each kind of memory (explicit ODP, implicit ODP, pinned) both the send and the
 * receive buffers are fresh and untouched, and every datagram starts at an offset that is
 * not page-aligned and, but for the smallest, crosses pages on both sides. Each receive
 * is checked whole: the 40-byte GRH slot (for IPv4 GIDs, the IPv4 header of RoCE v2 in its
 * second half), the payload, and the guard bytes after it, which must be untouched; the
 * work completions too (byte_len with the GRH, src_qp, IBV_WC_GRH, immediate data). Then
 * the memory under both buffers is taken away (MADV_DONTNEED; ODP only), and, with a second
 * NUMA node, moved (move_pages; pinned pages stay), and everything again.
 *
 * Multicast: members of a group each get every datagram sent to its GID once, others none.
 *
 * Then several senders at once into one receiver, and what UD does with datagrams that
 * cannot be delivered: a wrong Q_Key, no receive
 * posted, or no such QP: lost, the sender succeeds; a Q_Key with its high bit set means the
 * sender's own; a datagram longer than the MTU fails the sender with LOC_LEN_ERR; a receive
 * buffer too small for it fails the receiver with LOC_LEN_ERR while the sender succeeds.
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
#define GRH 40
#define GUARD 64
#define BUF (8 * PG)
#define QKEY 0x11111111u
#define FILL 0xa5
/* move_pages(2) flag, from <linux/mempolicy.h> */
#define MF_MOVE 2

static struct {
	const char *dev;
	int gidx;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq[2];
	struct ibv_qp *qp[2];
	struct ibv_ah *ah;
	union ibv_gid gid;
	uint32_t mtu;
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

static void qp_up(struct ibv_qp *qp)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT, .pkey_index = 0, .port_num = 1,
				 .qkey = QKEY };

	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY))
		bail("UD QP to INIT: %s", strerror(errno));
	a = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTR };
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE))
		bail("UD QP to RTR: %s", strerror(errno));
	a = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTS, .sq_psn = 0 };
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_SQ_PSN))
		bail("UD QP to RTS: %s", strerror(errno));
}

/* (Re)creates QP @i (after a test left it in the error state). */
static void qp_make(int i)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = g.cq[i], .recv_cq = g.cq[i], .qp_type = IBV_QPT_UD,
		.cap = { .max_send_wr = 8, .max_recv_wr = 64, .max_send_sge = 2, .max_recv_sge = 2 },
	};

	if (g.qp[i])
		ibv_destroy_qp(g.qp[i]);
	g.qp[i] = ibv_create_qp(g.pd, &ia);
	if (!g.qp[i])
		bail("ibv_create_qp(UD): %s", strerror(errno));
	qp_up(g.qp[i]);
}

static void setup(void)
{
	struct ibv_port_attr pa;
	struct ibv_ah_attr aa = { .is_global = 1, .port_num = 1 };

	g.ctx = open_device_named(g.dev);
	if (ibv_query_port(g.ctx, 1, &pa) || ibv_query_gid(g.ctx, 1, g.gidx, &g.gid))
		bail("cannot query port 1 / GID %d of %s", g.gidx, g.dev);
	g.mtu = 128u << pa.active_mtu;
	g.pd = ibv_alloc_pd(g.ctx);
	for (int i = 0; i < 2; i++)
		g.cq[i] = ibv_create_cq(g.ctx, 128, NULL, NULL, 0);
	if (!g.pd || !g.cq[0] || !g.cq[1])
		bail("ibv_alloc_pd / ibv_create_cq: %s", strerror(errno));
	qp_make(0);
	qp_make(1);
	aa.grh.dgid = g.gid;
	aa.grh.sgid_index = g.gidx;
	aa.grh.hop_limit = 1;
	g.ah = ibv_create_ah(g.pd, &aa);
	if (!g.ah)
		bail("ibv_create_ah: %s", strerror(errno));
	diag("device %s: UD QPs %#x and %#x, port MTU %u", g.dev, g.qp[0]->qp_num,
	     g.qp[1]->qp_num, g.mtu);
}

/* ---- one datagram --------------------------------------------------------------------------- */


/* The completion of @qpi's CQ, or -1 with none in @secs seconds. */
static int wait_wc(int qpi, struct ibv_wc *wc, double secs)
{
	return vt_poll_one(g.cq[qpi], wc, secs);
}

static int post_recv(struct ibv_mr *mr, uint8_t *addr, uint32_t len, uint64_t id)
{
	struct ibv_sge sge = { .addr = (uintptr_t)addr, .length = len, .lkey = mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = id, .sg_list = &sge, .num_sge = 1 }, *badwr;

	return ibv_post_recv(g.qp[1], &wr, &badwr);
}

static int post_send(struct ibv_mr *mr, uint8_t *addr, uint32_t len, uint64_t id, uint32_t qpn,
		     uint32_t qkey, bool imm)
{
	struct ibv_sge sge = { .addr = (uintptr_t)addr, .length = len, .lkey = mr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = id, .sg_list = &sge, .num_sge = 1, .send_flags = IBV_SEND_SIGNALED,
		.opcode = imm ? IBV_WR_SEND_WITH_IMM : IBV_WR_SEND, .imm_data = htonl(0x5eed),
	}, *badwr;

	wr.wr.ud.ah = g.ah;
	wr.wr.ud.remote_qpn = qpn;
	wr.wr.ud.remote_qkey = qkey;
	return ibv_post_send(g.qp[0], &wr, &badwr);
}

/* What the GRH slot must hold for a datagram of @len bytes from and to g.gid. */
static void grh_expect(uint8_t *grh, uint32_t len)
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };

	memset(grh, 0, GRH);
	if (memcmp(g.gid.raw, v4mapped, 12) == 0) {
		uint8_t *ip = grh + 20;
		uint16_t tot = htons(20 + 8 + 12 + 8 + len + 4);

		ip[0] = 0x45;
		memcpy(ip + 2, &tot, 2);
		ip[8] = 64;
		ip[9] = 17;
		memcpy(ip + 12, g.gid.raw + 12, 4);
		memcpy(ip + 16, g.gid.raw + 12, 4);
		/* the header checksum: ones' complement sum of its 16-bit words */
		uint32_t sum = 0;

		for (int i = 0; i < 20; i += 2)
			sum += (uint32_t)ip[i] << 8 | ip[i + 1];
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		ip[10] = (uint8_t)(~sum >> 8);
		ip[11] = (uint8_t)~sum;
	} else {
		uint16_t pl = htons(8 + 12 + 8 + len + 4);

		grh[0] = 0x60;
		memcpy(grh + 4, &pl, 2);
		grh[6] = 17;
		grh[7] = 64;
		memcpy(grh + 8, g.gid.raw, 16);
		memcpy(grh + 24, g.gid.raw, 16);
	}
}

/*
 * A datagram of @len bytes from @src + @so (MR @smr) into a receive at @dst + @ro (MR @rmr):
 * every byte of the receive buffer and its guard checked, and both completions.
 */
static int datagram(struct ibv_mr *smr, uint8_t *src, size_t so, struct ibv_mr *rmr,
		    uint8_t *dst, size_t ro, uint32_t len, uint64_t seed, const char *what)
{
	uint64_t rid = ++g.wr_id, sid = ++g.wr_id;
	uint8_t want[GRH];
	struct ibv_wc wc;
	bool imm = seed & 1;

	for (uint32_t i = 0; i < len; i++)
		src[so + i] = vt_pat(seed, i);
	memset(dst + ro, FILL, GRH + len + GUARD);
	if (post_recv(rmr, dst + ro, GRH + len, rid) ||
	    post_send(smr, src + so, len, sid, g.qp[1]->qp_num, QKEY, imm)) {
		diag("%s: posting: %s", what, strerror(errno));
		return -1;
	}
	if (wait_wc(0, &wc, 10) || wc.status != IBV_WC_SUCCESS || wc.wr_id != sid) {
		diag("%s: the send completed with %s", what, ibv_wc_status_str(wc.status));
		return -1;
	}
	if (wait_wc(1, &wc, 10) || wc.status != IBV_WC_SUCCESS || wc.wr_id != rid) {
		diag("%s: the receive completed with %s", what, ibv_wc_status_str(wc.status));
		return -1;
	}
	if (wc.byte_len != GRH + len || wc.src_qp != g.qp[0]->qp_num ||
	    !(wc.wc_flags & IBV_WC_GRH) || wc.opcode != IBV_WC_RECV ||
	    !!(wc.wc_flags & IBV_WC_WITH_IMM) != imm || (imm && ntohl(wc.imm_data) != 0x5eed)) {
		diag("%s: receive completion: byte_len %u (expected %u) src_qp %#x flags %#x "
		     "opcode %d", what, wc.byte_len, GRH + len, wc.src_qp, wc.wc_flags, wc.opcode);
		return -1;
	}
	grh_expect(want, len);
	for (int i = 0; i < GRH; i++) {
		if (dst[ro + i] != want[i]) {
			diag("%s: GRH byte %d is %#x, expected %#x", what, i, dst[ro + i], want[i]);
			return -1;
		}
	}
	for (uint32_t i = 0; i < len; i++) {
		if (dst[ro + GRH + i] != vt_pat(seed, i)) {
			diag("%s: payload byte %u is %#x, expected %#x", what, i, dst[ro + GRH + i],
			     vt_pat(seed, i));
			return -1;
		}
	}
	for (int i = 0; i < GUARD; i++) {
		if (dst[ro + GRH + len + i] != FILL) {
			diag("%s: guard byte %d after the datagram changed", what, i);
			return -1;
		}
	}
	return 0;
}

/* ---- cases ---------------------------------------------------------------------------------- */

static const char *const kinds[] = { "odp", "implicit", "pinned" };

/* Datagrams of several lengths, each across pages on both sides. */
static int round_of(struct ibv_mr *smr, uint8_t *src, struct ibv_mr *rmr, uint8_t *dst,
		    const char *when, uint64_t seed)
{
	const uint32_t lens[] = { 1, 333, g.mtu - 1, g.mtu };
	char what[96];

	for (size_t k = 0; k < sizeof(lens) / sizeof(*lens); k++) {
		/* the payload starts 50 bytes before a page's end on the send side; the GRH
		 * and payload straddle a page boundary on the receive side */
		size_t so = (2 * k + 1) * PG - 50, ro = (2 * k + 1) * PG - 7 - GRH;

		snprintf(what, sizeof(what), "%s: %u bytes", when, lens[k]);
		if (datagram(smr, src, so, rmr, dst, ro, lens[k], seed + k, what))
			return -1;
	}
	return 0;
}

static void c_kind(int kind)
{
	uint8_t *src = map_fresh(BUF), *dst = map_fresh(BUF);
	int odp = kind < 2 ? IBV_ACCESS_ON_DEMAND : 0;
	struct ibv_mr *smr, *rmr;
	char name[160];

	if (kind == 1) {
		smr = rmr = ibv_reg_mr(g.pd, NULL, SIZE_MAX, IBV_ACCESS_LOCAL_WRITE | odp);
	} else {
		smr = ibv_reg_mr(g.pd, src, BUF, IBV_ACCESS_LOCAL_WRITE | odp);
		rmr = ibv_reg_mr(g.pd, dst, BUF, IBV_ACCESS_LOCAL_WRITE | odp);
	}
	if (!smr || !rmr)
		bail("ibv_reg_mr (%s): %s", kinds[kind], strerror(errno));
	if (round_of(smr, src, rmr, dst, "untouched", 100 * kind))
		bad = 1;
	snprintf(name, sizeof(name), "%s: datagrams of 1, 333, MTU-1 and MTU bytes from and into "
		 "untouched memory, across pages: GRH, payload, guard and completions right",
		 kinds[kind]);
	point(name);

	if (!odp) {
		/* the process would get new pages and the MR keep the old: pfnic_traffic's case */
		g.num++;
		printf("ok %d - pinned: after MADV_DONTNEED # SKIP a pinned MR keeps the pages "
		       "MADV_DONTNEED takes from the process\n", g.num);
	} else {
		madvise(src, BUF, MADV_DONTNEED);
		madvise(dst, BUF, MADV_DONTNEED);
		if (round_of(smr, src, rmr, dst, "after MADV_DONTNEED", 100 * kind + 10))
			bad = 1;
		snprintf(name, sizeof(name), "%s: the same after MADV_DONTNEED of both buffers",
			 kinds[kind]);
		point(name);
	}

	if (access("/sys/devices/system/node/node1", F_OK)) {
		g.num++;
		printf("ok %d - %s: after move_pages # SKIP one NUMA node\n", g.num, kinds[kind]);
	} else {
		void *all[2 * BUF / PG], *pages[2 * BUF / PG];
		int nodes[2 * BUF / PG], status[2 * BUF / PG];
		size_t n = 0;

		for (size_t i = 0; i < BUF / PG; i++) {
			all[2 * i] = src + i * PG;
			all[2 * i + 1] = dst + i * PG;
		}
		/* the pages there are (the datagrams never reached some), each to the other node */
		syscall(SYS_move_pages, 0, 2 * BUF / PG, all, NULL, status, 0);
		for (size_t i = 0; i < 2 * BUF / PG; i++) {
			if (status[i] < 0)
				continue;
			nodes[n] = status[i] == 0 ? 1 : 0;
			pages[n++] = all[i];
		}
		EXPECT(n > 0, "%s: no page of the buffers is in memory", kinds[kind]);
		/*
		 * Where the pages are now, as the kernel says: ODP pages moved, pinned ones stayed.
		 * A page busy for a moment (not yet on the LRU after its fault) is tried again.
		 */
		size_t moved = 0, stuck = 0;
		int why = 0;

		for (int tries = 0; tries < (odp ? 20 : 1) && moved < n; tries++) {
			if (tries)
				usleep(50000);
			if (syscall(SYS_move_pages, 0, n, pages, nodes, status, MF_MOVE) < 0)
				EXPECT(0, "move_pages: %s", strerror(errno));
			why = 0;
			for (size_t i = 0; i < n; i++)
				if (status[i] < 0 && !why) {
					why = -status[i];
					stuck = i;
				}
			if (syscall(SYS_move_pages, 0, n, pages, NULL, status, 0) < 0)
				EXPECT(0, "move_pages (query): %s", strerror(errno));
			moved = 0;
			for (size_t i = 0; i < n; i++)
				moved += status[i] == nodes[i];
		}
		if (odp)
			EXPECT(moved == n, "%s: %zu of %zu pages moved to the other node in 20 tries "
			       "(the last try's first error: page %zu of %s buffer, %s)", kinds[kind],
			       moved, n, stuck, pages[stuck] >= (void *)dst &&
			       pages[stuck] < (void *)(dst + BUF) ? "the receive" : "the send",
			       why ? strerror(why) : "none");
		else
			EXPECT(moved == 0, "pinned: %zu of %zu pinned pages moved", moved, n);
		if (round_of(smr, src, rmr, dst, "after move_pages", 100 * kind + 20))
			bad = 1;
		snprintf(name, sizeof(name), "%s: the same after move_pages of both buffers to the "
			 "other node", kinds[kind]);
		point(name);
	}
	ibv_dereg_mr(smr);
	if (rmr != smr)
		ibv_dereg_mr(rmr);
	munmap(src, BUF);
	munmap(dst, BUF);
}

/*
 * Several senders at once into one receiver (their engines run in parallel), into untouched
 * ODP receive buffers, so that deliveries stall on faults midway: every datagram lands
 * whole in a receive of its own, each receive completes once, none is lost.
 */
static void c_many_senders(void)
{
	enum { SENDERS = 4, EACH = 8, N = SENDERS * EACH, LEN = 1000, SLOT = 2 * PG };
	uint8_t *src = map_fresh(N * PG), *dst = map_fresh(N * SLOT);
	struct ibv_mr *smr = ibv_reg_mr(g.pd, src, N * PG, IBV_ACCESS_LOCAL_WRITE);
	struct ibv_mr *rmr = ibv_reg_mr(g.pd, dst, N * SLOT,
					IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_ON_DEMAND);
	struct ibv_qp *qp[SENDERS];
	bool seen[N] = { false }, done[N] = { false };
	int got = 0, sent = 0;
	struct ibv_wc wc;

	if (!smr || !rmr)
		bail("ibv_reg_mr: %s", strerror(errno));
	for (int i = 0; i < N; i++) {
		/* each receive straddles a page boundary of memory nobody touched */
		if (post_recv(rmr, dst + i * SLOT + PG - 500, GRH + LEN, 0x7000 + i))
			bail("post_recv: %s", strerror(errno));
		for (int k = 0; k < LEN; k++)
			src[i * PG + k] = k < 2 ? (uint8_t)(k ? i : 0xd5) : vt_pat(i, k);
	}
	for (int q = 0; q < SENDERS; q++) {
		struct ibv_qp_init_attr ia = {
			.send_cq = g.cq[0], .recv_cq = g.cq[0], .qp_type = IBV_QPT_UD,
			.cap = { .max_send_wr = EACH, .max_recv_wr = 1, .max_send_sge = 1,
				 .max_recv_sge = 1 },
		};

		qp[q] = ibv_create_qp(g.pd, &ia);
		if (!qp[q])
			bail("ibv_create_qp(UD): %s", strerror(errno));
		qp_up(qp[q]);
	}
	/* every sender's datagrams posted in one go, the senders one after the other */
	for (int q = 0; q < SENDERS; q++) {
		for (int e = 0; e < EACH; e++) {
			int i = q * EACH + e;
			struct ibv_sge sge = { (uintptr_t)src + i * PG, LEN, smr->lkey };
			struct ibv_send_wr wr = {
				.wr_id = i, .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND,
				.send_flags = IBV_SEND_SIGNALED,
			}, *badwr;

			wr.wr.ud.ah = g.ah;
			wr.wr.ud.remote_qpn = g.qp[1]->qp_num;
			wr.wr.ud.remote_qkey = QKEY;
			EXPECT(!ibv_post_send(qp[q], &wr, &badwr), "post_send: %s", strerror(errno));
		}
	}
	while (sent < N && !wait_wc(0, &wc, 20)) {
		EXPECT(wc.status == IBV_WC_SUCCESS, "a send completed with %s",
		       ibv_wc_status_str(wc.status));
		sent++;
	}
	while (got < N && !wait_wc(1, &wc, 20)) {
		int r = (int)(wc.wr_id - 0x7000);
		uint8_t *d = dst + r * SLOT + PG - 500 + GRH;

		got++;
		if (wc.status != IBV_WC_SUCCESS || r < 0 || r >= N || done[r] || d[0] != 0xd5 ||
		    d[1] >= N || seen[d[1]]) {
			diag("receive %d: %s, first bytes %#x %#x", r, ibv_wc_status_str(wc.status),
			     r >= 0 && r < N ? d[0] : 0, r >= 0 && r < N ? d[1] : 0);
			bad = 1;
			continue;
		}
		done[r] = seen[d[1]] = true;
		for (int k = 2; k < LEN; k++) {
			if (d[k] != vt_pat(d[1], k)) {
				diag("receive %d holds datagram %d with byte %d wrong", r, d[1], k);
				bad = 1;
				break;
			}
		}
	}
	diag("%d sends completed, %d receives", sent, got);
	EXPECT(sent == N && got == N, "expected %d of each", N);
	point("4 senders at once into one receiver's untouched ODP buffers: 32 datagrams, each "
	      "whole in a receive of its own, each receive completed once");
	for (int q = 0; q < SENDERS; q++)
		ibv_destroy_qp(qp[q]);
	ibv_dereg_mr(smr);
	ibv_dereg_mr(rmr);
	munmap(src, N * PG);
	munmap(dst, N * SLOT);
}

/* A datagram that must be lost: the sender succeeds, nothing arrives. */
static void lost(struct ibv_mr *mr, uint8_t *buf, uint32_t qpn, uint32_t qkey, const char *why)
{
	struct ibv_wc wc;

	EXPECT(!post_send(mr, buf, 64, ++g.wr_id, qpn, qkey, false), "%s: post: %s", why,
	       strerror(errno));
	EXPECT(!wait_wc(0, &wc, 10) && wc.status == IBV_WC_SUCCESS, "%s: the send completed with "
	       "%s, expected success", why, ibv_wc_status_str(wc.status));
	EXPECT(wait_wc(1, &wc, 0.3), "%s: a receive completed (%s)", why,
	       ibv_wc_status_str(wc.status));
}

static void c_undeliverable(void)
{
	uint8_t *buf = map_fresh(4 * PG);
	struct ibv_mr *mr = ibv_reg_mr(g.pd, buf, 4 * PG, IBV_ACCESS_LOCAL_WRITE);
	struct ibv_wc wc;

	if (!mr)
		bail("ibv_reg_mr: %s", strerror(errno));
	/* no receive posted; no such QP */
	lost(mr, buf, g.qp[1]->qp_num, QKEY, "no receive posted");
	lost(mr, buf, 0xfffff0, QKEY, "no such QP");
	/* a wrong Q_Key, with a receive waiting: it stays posted for the next datagram */
	EXPECT(!post_recv(mr, buf + PG, GRH + 64, 0xabc), "post_recv: %s", strerror(errno));
	lost(mr, buf, g.qp[1]->qp_num, QKEY + 1, "a wrong Q_Key");
	/* high bit: the sender's own Q_Key, which is the receiver's too */
	EXPECT(!post_send(mr, buf, 64, ++g.wr_id, g.qp[1]->qp_num, 0x80000000u, false),
	       "post: %s", strerror(errno));
	EXPECT(!wait_wc(0, &wc, 10) && wc.status == IBV_WC_SUCCESS, "send with Q_Key 0x80000000: %s",
	       ibv_wc_status_str(wc.status));
	EXPECT(!wait_wc(1, &wc, 10) && wc.status == IBV_WC_SUCCESS && wc.wr_id == 0xabc,
	       "the receive posted before the lost datagrams got %s (wr_id %#" PRIx64 ")",
	       ibv_wc_status_str(wc.status), wc.wr_id);
	point("undeliverable datagrams (no receive, no such QP, wrong Q_Key) are lost and their "
	      "sender succeeds; Q_Key 0x80000000 means the sender's own");

	/* longer than the MTU: the sender's error */
	EXPECT(!post_send(mr, buf, g.mtu + 1, ++g.wr_id, g.qp[1]->qp_num, QKEY, false), "post: %s",
	       strerror(errno));
	EXPECT(!wait_wc(0, &wc, 10) && wc.status == IBV_WC_LOC_LEN_ERR, "a datagram of MTU + 1 "
	       "bytes completed with %s, expected LOC_LEN_ERR", ibv_wc_status_str(wc.status));
	qp_make(0);
	/* a receive too small: the receiver's error, the sender succeeds */
	EXPECT(!post_recv(mr, buf + PG, GRH + 10, 0xdef), "post_recv: %s", strerror(errno));
	EXPECT(!post_send(mr, buf, 64, ++g.wr_id, g.qp[1]->qp_num, QKEY, false), "post: %s",
	       strerror(errno));
	EXPECT(!wait_wc(0, &wc, 10) && wc.status == IBV_WC_SUCCESS, "the send into a small receive "
	       "completed with %s", ibv_wc_status_str(wc.status));
	EXPECT(!wait_wc(1, &wc, 10) && wc.status == IBV_WC_LOC_LEN_ERR && wc.wr_id == 0xdef,
	       "the small receive completed with %s, expected LOC_LEN_ERR",
	       ibv_wc_status_str(wc.status));
	point("a datagram longer than the MTU fails its sender (LOC_LEN_ERR); one too long for "
	      "its receive fails the receiver (LOC_LEN_ERR) and the sender succeeds");
	qp_make(1);
	ibv_dereg_mr(mr);
	munmap(buf, 4 * PG);
}

/*
 * Multicast: three UD QPs attached to one group. Datagrams to the group's GID land once in
 * each member, in untouched ODP receive buffers across pages (a member's fault stalls the
 * send midway: none may get one twice or be skipped), every byte checked; a QP that is not
 * attached gets none, nor a member once detached. Attaching an RC QP or a unicast GID, and
 * detaching twice, are EINVAL.
 */
static void c_multicast(void)
{
	enum { M = 3, N = 4, LEN = 700, SLOT = 2 * PG };
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	uint8_t *src = map_fresh(N * PG), *dst = map_fresh((M * (N + 1) + 1) * SLOT);
	struct ibv_mr *smr = ibv_reg_mr(g.pd, src, N * PG, IBV_ACCESS_LOCAL_WRITE);
	struct ibv_mr *rmr = ibv_reg_mr(g.pd, dst, (M * (N + 1) + 1) * SLOT,
					IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_ON_DEMAND);
	struct ibv_ah_attr aa = { .is_global = 1, .port_num = 1 };
	int got[M][N + 1] = { { 0 } }, others = 0, rv;
	union ibv_gid mgid = { .raw = { 0 } };
	struct ibv_qp *m[M], *rc;
	struct ibv_ah *mah;
	struct ibv_wc wc;

	if (!smr || !rmr)
		bail("ibv_reg_mr: %s", strerror(errno));
	/* the group: 239.1.2.3 for IPv4 GIDs, ff0e::1:2:3 for IPv6 ones */
	if (memcmp(g.gid.raw, v4mapped, 12) == 0) {
		memcpy(mgid.raw, v4mapped, 12);
		mgid.raw[12] = 239;
		mgid.raw[13] = 1;
		mgid.raw[14] = 2;
		mgid.raw[15] = 3;
	} else {
		mgid.raw[0] = 0xff;
		mgid.raw[1] = 0x0e;
		mgid.raw[11] = 1;
		mgid.raw[13] = 2;
		mgid.raw[15] = 3;
	}
	aa.grh.dgid = mgid;
	aa.grh.sgid_index = (uint8_t)g.gidx;
	aa.grh.hop_limit = 1;
	mah = ibv_create_ah(g.pd, &aa);
	if (!mah)
		bail("ibv_create_ah (the group): %s", strerror(errno));
	for (int q = 0; q < M; q++) {
		struct ibv_qp_init_attr ia = {
			.send_cq = g.cq[1], .recv_cq = g.cq[1], .qp_type = IBV_QPT_UD,
			.cap = { .max_send_wr = 1, .max_recv_wr = N + 1, .max_send_sge = 1,
				 .max_recv_sge = 1 },
		};

		m[q] = ibv_create_qp(g.pd, &ia);
		if (!m[q])
			bail("ibv_create_qp(UD): %s", strerror(errno));
		qp_up(m[q]);
		rv = ibv_attach_mcast(m[q], &mgid, 0);
		EXPECT(!rv, "ibv_attach_mcast: %s", strerror(rv));
		EXPECT(!ibv_attach_mcast(m[q], &mgid, 0), "attaching twice: %s", strerror(errno));
		/* each receive straddles a page boundary of memory nobody touched */
		for (int i = 0; i <= N; i++) {
			struct ibv_sge sge = { (uintptr_t)dst + (q * (N + 1) + i) * SLOT + PG - 300,
					       GRH + LEN, rmr->lkey };
			struct ibv_recv_wr wr = { .wr_id = (uint64_t)q << 8 | i, .sg_list = &sge,
						  .num_sge = 1 }, *badwr;

			EXPECT(!ibv_post_recv(m[q], &wr, &badwr), "post_recv: %s", strerror(errno));
		}
	}
	/* QP 1 is not a member: it has a receive waiting all along */
	EXPECT(!post_recv(rmr, dst + M * (N + 1) * SLOT + PG - 300, GRH + LEN, 0xeee),
	       "post_recv: %s", strerror(errno));

	for (int i = 0; i <= N; i++) {
		struct ibv_sge sge = { (uintptr_t)src + (i % N) * PG, LEN, smr->lkey };
		struct ibv_send_wr wr = { .wr_id = i, .sg_list = &sge, .num_sge = 1,
					  .opcode = IBV_WR_SEND, .send_flags = IBV_SEND_SIGNALED },
				   *badwr;

		for (int k = 0; k < LEN; k++)
			src[(i % N) * PG + k] = k ? vt_pat(100 + i, k) : (uint8_t)i;
		wr.wr.ud.ah = mah;
		wr.wr.ud.remote_qpn = 0xffffff;
		wr.wr.ud.remote_qkey = QKEY;
		if (i == N) {
			/* the last member leaves the group before the last datagram */
			EXPECT(!ibv_detach_mcast(m[M - 1], &mgid, 0), "ibv_detach_mcast: %s",
			       strerror(errno));
		}
		EXPECT(!ibv_post_send(g.qp[0], &wr, &badwr), "post_send: %s", strerror(errno));
		EXPECT(!wait_wc(0, &wc, 20) && wc.status == IBV_WC_SUCCESS && wc.wr_id == (uint64_t)i,
		       "the send of datagram %d completed with %s", i, ibv_wc_status_str(wc.status));
		/* a datagram's copies land before the next is sent, not one after the other */
	}
	while (!wait_wc(1, &wc, 1)) {
		int q = (int)(wc.wr_id >> 8), r = (int)(wc.wr_id & 0xff);
		uint8_t *d;

		if (wc.qp_num == g.qp[1]->qp_num || q < 0 || q >= M || r > N ||
		    wc.qp_num != m[q]->qp_num) {
			others++;
			continue;
		}
		d = dst + (q * (N + 1) + r) * SLOT + PG - 300 + GRH;
		if (wc.status != IBV_WC_SUCCESS || wc.byte_len != GRH + LEN ||
		    wc.src_qp != g.qp[0]->qp_num || d[0] > N) {
			diag("member %d, receive %d: %s, byte_len %u, src_qp %#x, first byte %u", q,
			     r, ibv_wc_status_str(wc.status), wc.byte_len, wc.src_qp, d[0]);
			bad = 1;
			continue;
		}
		got[q][d[0]]++;
		for (int k = 1; k < LEN; k++) {
			if (d[k] != vt_pat(100 + d[0], k)) {
				diag("member %d, datagram %d: byte %d is %#x, expected %#x", q, d[0], k,
				     d[k], vt_pat(100 + d[0], k));
				bad = 1;
				break;
			}
		}
	}
	for (int q = 0; q < M; q++)
		for (int i = 0; i <= N; i++) {
			int want = i < N || q < M - 1;

			EXPECT(got[q][i] == want, "member %d got datagram %d %d times, expected %d", q,
			       i, got[q][i], want);
		}
	EXPECT(!others, "%d completions of a QP not in the group", others);
	point("multicast: datagrams to a group land once in each member, into untouched ODP "
	      "memory across pages, every byte right; a QP not attached, and a member once "
	      "detached, get none");

	{
		struct ibv_qp_init_attr ia = {
			.send_cq = g.cq[1], .recv_cq = g.cq[1], .qp_type = IBV_QPT_RC,
			.cap = { .max_send_wr = 1, .max_recv_wr = 1, .max_send_sge = 1,
				 .max_recv_sge = 1 },
		};

		rc = ibv_create_qp(g.pd, &ia);
		if (!rc)
			bail("ibv_create_qp(RC): %s", strerror(errno));
		rv = ibv_attach_mcast(rc, &mgid, 0);
		EXPECT(rv == EINVAL, "attaching an RC QP: %s, expected EINVAL",
		       rv ? strerror(rv) : "attached");
		rv = ibv_attach_mcast(m[0], &g.gid, 0);
		EXPECT(rv == EINVAL, "attaching to a unicast GID: %s, expected EINVAL",
		       rv ? strerror(rv) : "attached");
		rv = ibv_detach_mcast(m[M - 1], &mgid, 0);
		EXPECT(rv == EINVAL, "detaching a QP twice: %s, expected EINVAL",
		       rv ? strerror(rv) : "detached");
		ibv_destroy_qp(rc);
	}
	point("attaching an RC QP or to a unicast GID, and detaching twice, are EINVAL");
	/* members destroyed while attached leave their groups with them */
	for (int q = 0; q < M; q++)
		ibv_destroy_qp(m[q]);
	qp_make(1);
	ibv_destroy_ah(mah);
	ibv_dereg_mr(smr);
	ibv_dereg_mr(rmr);
	munmap(src, N * PG);
	munmap(dst, (M * (N + 1) + 1) * SLOT);
}

int main(int argc, char **argv)
{
	vt_args(argc, argv, "pfnic_ud -d DEVICE [-g GID_INDEX]", &g.dev, &g.gidx, "", NULL, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n1..14\n");
	setup();
	numa_balancing(false);
	for (int k = 0; k < 3; k++)
		c_kind(k);
	numa_balancing(true);
	c_many_senders();
	c_undeliverable();
	c_multicast();
	for (int i = 0; i < 2; i++)
		ibv_destroy_qp(g.qp[i]);
	ibv_destroy_ah(g.ah);
	diag("%d of %d failed", g.failed, g.num);
	return g.failed ? 1 : 0;
}
