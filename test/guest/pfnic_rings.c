// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_rings: the rings a process shares with pfnic (driver/uapi/pfnic-abi.h): CQs polled
 * and armed, receive queues and SRQs posted, with no system call; send queues posted with
 * at most one per post (the doorbell), none for a queue whose engine is busy; what the
 * driver does with WQEs a process wrote wrong into a ring. Prints TAP version 13.
 *
 *   pfnic_rings -d DEVICE [-g GID_INDEX]
 *
 * Two RC QPs of one device, connected in loopback, exchange RDMA WRITEs, SENDs and SENDs
 * with immediate data. Checked:
 *  - a thread that may make no uverbs system call (a seccomp filter fails ioctl, write and
 *    read in it with EPERM) polls every completion and arms its CQ, and posts receives to a
 *    QP and to an SRQ, which messages then fill, every byte checked;
 *  - a chain of 64 WRs costs one doorbell, receives none (the device's doorbells counter);
 *  - with the polling engine on (the module parameter poll_usecs), a thread barred from
 *    uverbs system calls posts 300 WRITEs and SENDs one at a time, each waited for, every
 *    byte checked, and no doorbell is rung; a SEND meeting RNR NAKs retries no faster than
 *    with doorbells; with it off again, each post rings once more; a
 *    QP the poller holds moves to the error state (what is posted is flushed) and is
 *    destroyed without a wait;
 *  - a QP moved to RESET and up again starts its rings again, on both sides;
 *  - WQEs written straight into a send queue's ring that the QP cannot carry out (an unknown
 *    opcode, more SGEs than the QP has, more inline data than a WQE holds) complete with
 *    IBV_WC_LOC_QP_OP_ERR and the QP goes to the error state; a producer index moved past
 *    the ring's end fails the same way, and the flush ends;
 *  - a ring of 4 slots wraps hundreds of times with every completion in order and whole:
 *    wr_id, status, opcode, byte_len, qp_num, src_qp, immediate data, flags;
 *  - arming: one event for a NEXT request, none without a request, SOLICITED ignores an
 *    unsolicited message and fires for a solicited one, and a NEXT request that has not
 *    fired is not narrowed by a later SOLICITED one;
 *  - resize CQ: completions waiting move to the new ring in order, arming too; a size below
 *    them is EINVAL; a grown ring holds more, a shrunk one wraps;
 *  - a QP moved to RESET leaves none of its completions in its CQs, another QP's stay;
 *  - two threads polling one CQ see every completion once;
 *  - the ring is mapped only as the provider maps it: a private mapping, another length
 *    or an offset that names no ring is refused with EINVAL.
 *
 * Exit status: 0 if every test passed, 1 otherwise, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "pfnic-abi.h"
#include "verbs-test.h"
#include <rdma/ib_user_verbs.h>

#define MSG 256
#define SLOTS 4096

static struct {
	const char *dev;
	int gidx;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_comp_channel *chan;
	struct ibv_cq *scq, *rcq;
	struct ibv_qp *qp[2];
	struct ibv_mr *mr;
	uint8_t *buf;
	union ibv_gid gid;
	uint32_t rq_size;
	int num;
	int failed;
} g = { .gidx = 1, .rq_size = 1024 };

static int bad;

static void point(const char *name)
{
	vt_point(&g.num, &g.failed, &bad, name);
}

/* ---- set-up --------------------------------------------------------------------------------- */

/* The QPs anew, on the CQs there are, connected to each other and in RTS. */
static void qps_make(void)
{
	struct vt_rc c = { .port = 1, .access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE,
			   .min_rnr_timer = 1, .rnr_retry = 7, .sgid_index = g.gidx };
	struct ibv_qp_init_attr ia = {
		.qp_type = IBV_QPT_RC, .send_cq = g.scq, .recv_cq = g.rcq,
		.cap = { .max_send_wr = 1024, .max_recv_wr = g.rq_size, .max_send_sge = 1,
			 .max_recv_sge = 1 },
	};
	const char *step;
	int state, rv;

	for (int i = 0; i < 2; i++) {
		if (g.qp[i])
			ibv_destroy_qp(g.qp[i]);
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

/* The QPs anew, on a send CQ of @scqe and a receive CQ of @rcqe entries (both on g.chan). */
static void pair_make(int scqe, int rcqe)
{
	for (int i = 0; i < 2; i++) {
		if (g.qp[i])
			ibv_destroy_qp(g.qp[i]);
		g.qp[i] = NULL;
	}
	if (g.scq)
		ibv_destroy_cq(g.scq);
	if (g.rcq)
		ibv_destroy_cq(g.rcq);
	g.scq = ibv_create_cq(g.ctx, scqe, NULL, g.chan, 0);
	g.rcq = ibv_create_cq(g.ctx, rcqe, NULL, g.chan, 0);
	if (!g.scq || !g.rcq)
		bail("ibv_create_cq: %s", strerror(errno));
	qps_make();
}

static void setup(void)
{
	g.ctx = open_device_named(g.dev);
	if (ibv_query_gid(g.ctx, 1, g.gidx, &g.gid))
		bail("cannot query GID %d of %s", g.gidx, g.dev);
	g.pd = ibv_alloc_pd(g.ctx);
	g.chan = ibv_create_comp_channel(g.ctx);
	if (!g.pd || !g.chan)
		bail("ibv_alloc_pd / ibv_create_comp_channel: %s", strerror(errno));
	g.buf = map_fresh(2 * SLOTS * MSG);
	g.mr = ibv_reg_mr(g.pd, g.buf, 2 * SLOTS * MSG, IBV_ACCESS_LOCAL_WRITE |
			  IBV_ACCESS_REMOTE_WRITE);
	if (!g.mr)
		bail("ibv_reg_mr: %s", strerror(errno));
}

/* ---- work requests -------------------------------------------------------------------------- */

/* Slot @i of the send half and of the receive half of the buffer. */
static uint8_t *src_at(uint32_t i)
{
	return g.buf + (size_t)(i % SLOTS) * MSG;
}

static uint8_t *dst_at(uint32_t i)
{
	return g.buf + (size_t)(SLOTS + i % SLOTS) * MSG;
}

/* Posts a receive of MSG bytes at slot @i on QP 1, wr_id @i. */
static int post_recv(uint32_t i)
{
	struct ibv_sge sge = { .addr = (uintptr_t)dst_at(i), .length = MSG, .lkey = g.mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = i, .sg_list = &sge, .num_sge = 1 }, *bad_wr;

	return ibv_post_recv(g.qp[1], &wr, &bad_wr);
}

/*
 * Posts @op from QP 0 with wr_id @i: @len bytes of slot @i, signaled; a WRITE lands in slot
 * @i of the receive half; immediate data is @i's complement; @flags are added.
 */
static int post_send(enum ibv_wr_opcode op, uint32_t i, uint32_t len, unsigned int flags)
{
	struct ibv_sge sge = { .addr = (uintptr_t)src_at(i), .length = len, .lkey = g.mr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = i, .sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED | flags, .imm_data = htonl(~i),
		.wr.rdma = { .remote_addr = (uintptr_t)dst_at(i), .rkey = g.mr->rkey },
	}, *bad_wr;

	memset(src_at(i), (int)(i * 7 + 1), len);
	return ibv_post_send(g.qp[0], &wr, &bad_wr);
}

/* One completion of @cq within the program's timeout; false if none came. */
static bool poll_one(struct ibv_cq *cq, struct ibv_wc *wc)
{
	double end = now() + 10;
	int n;

	while ((n = ibv_poll_cq(cq, 1, wc)) == 0 && now() < end)
		;
	if (n < 0)
		diag("ibv_poll_cq: %d (%s)", n, strerror(errno));
	return n == 1;
}

/* ---- a poller that may make no system call -------------------------------------------------- */

/*
 * Fails ioctl, write and read in the calling thread with EPERM (no other thread is
 * filtered): every uverbs command is one of these.
 */
static int forbid_uverbs_syscalls(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_write, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_read, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return errno;
	if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		return errno;
	return 0;
}

struct poller {
	struct ibv_cq *cq;
	uint32_t want;
	uint32_t got;
	uint32_t in_order;
	int arm_rv;
	int err;
	bool filtered;
	uint8_t *seen;	/* shared by the threads polling one CQ: wr_ids seen */
	pthread_mutex_t *seen_lock;
	uint32_t dup;
	volatile uint32_t *total;
};

/* Polls until @p->want completions (all of them, when shared) were taken; checks order. */
static void *poller_run(void *arg)
{
	struct poller *p = arg;
	double end = now() + 60;
	struct ibv_wc wc[8];

	if (p->filtered) {
		p->err = forbid_uverbs_syscalls();
		if (p->err)
			return NULL;
		/* the filter works: a plain write() in this thread fails */
		if (write(1, "", 0) != -1 || errno != EPERM) {
			p->err = EINVAL;
			return NULL;
		}
		p->arm_rv = ibv_req_notify_cq(p->cq, 0);
	}
	while (now() < end) {
		uint32_t done = p->total ? __atomic_load_n(p->total, __ATOMIC_ACQUIRE) : p->got;
		int n;

		if (done >= p->want)
			break;
		n = ibv_poll_cq(p->cq, 8, wc);
		if (n < 0) {
			p->err = errno ? errno : EIO;
			break;
		}
		for (int i = 0; i < n; i++) {
			if (wc[i].status != IBV_WC_SUCCESS) {
				p->err = EIO;
				return NULL;
			}
			if (p->seen) {
				pthread_mutex_lock(p->seen_lock);
				if (wc[i].wr_id >= p->want || p->seen[wc[i].wr_id]++)
					p->dup++;
				pthread_mutex_unlock(p->seen_lock);
				__atomic_add_fetch(p->total, 1, __ATOMIC_RELEASE);
			} else if (wc[i].wr_id == p->got) {
				p->in_order++;
			}
			p->got++;
		}
	}
	if (p->filtered && !p->err)
		p->arm_rv = p->arm_rv ? p->arm_rv : ibv_req_notify_cq(p->cq, 1);
	return NULL;
}

static void t_no_syscalls(void)
{
	struct poller p = { .want = 2000, .filtered = true };
	pthread_t th;
	uint32_t posted = 0;
	double end = now() + 60;

	pair_make(64, 64);
	p.cq = g.scq;
	if (pthread_create(&th, NULL, poller_run, &p))
		bail("pthread_create: %s", strerror(errno));
	/* at most 32 outstanding, so the CQ of 64 never overflows */
	while (posted < p.want && now() < end) {
		if (posted - __atomic_load_n(&p.got, __ATOMIC_RELAXED) >= 32) {
			usleep(100);
			continue;
		}
		if (post_send(IBV_WR_RDMA_WRITE, posted, MSG, 0))
			bail("ibv_post_send: %s", strerror(errno));
		posted++;
	}
	pthread_join(th, NULL);
	EXPECT(!p.err, "the filtered poller failed: %s", strerror(p.err));
	EXPECT(p.got == p.want && p.in_order == p.want,
	       "the filtered poller took %u completions, %u in order, of %u", p.got, p.in_order,
	       p.want);
	EXPECT(!p.arm_rv, "ibv_req_notify_cq in the filtered thread: %s", strerror(p.arm_rv));
	for (uint32_t i = 0; i < p.want && i < SLOTS; i++)
		if (memcmp(dst_at(i), src_at(i), MSG)) {
			EXPECT(0, "WRITE %u landed wrong", i);
			break;
		}
	point("a thread barred from ioctl, write and read (seccomp) polls 2000 completions in "
	      "order and arms its CQ: no system call");
}

/* ---- a small ring wrapping ------------------------------------------------------------------ */

static void t_wrap(void)
{
	const uint32_t rounds = 600;
	struct ibv_wc wc;
	uint32_t sends_ok = 0, recvs_ok = 0;

	pair_make(4, 4);
	EXPECT(g.scq->cqe >= 4 && g.scq->cqe < 8, "a CQ of 4 reports %d entries", g.scq->cqe);
	for (uint32_t i = 0; i < rounds; i++) {
		bool imm = i % 3 == 1;
		uint32_t len = 1 + (i * 37) % MSG;
		enum ibv_wr_opcode op = i % 3 == 2 ? IBV_WR_RDMA_WRITE :
					imm ? IBV_WR_SEND_WITH_IMM : IBV_WR_SEND;

		if (op != IBV_WR_RDMA_WRITE && post_recv(i))
			bail("ibv_post_recv: %s", strerror(errno));
		if (post_send(op, i, len, 0))
			bail("ibv_post_send: %s", strerror(errno));
		if (!poll_one(g.scq, &wc)) {
			EXPECT(0, "no send completion for WR %u", i);
			break;
		}
		if (wc.wr_id == i && wc.status == IBV_WC_SUCCESS && wc.qp_num == g.qp[0]->qp_num &&
		    wc.opcode == (op == IBV_WR_RDMA_WRITE ? IBV_WC_RDMA_WRITE : IBV_WC_SEND))
			sends_ok++;
		else if (sends_ok == i)
			diag("send %u: wr_id %" PRIu64 " status %s opcode %d qp_num %u", i,
			     wc.wr_id, ibv_wc_status_str(wc.status), wc.opcode, wc.qp_num);
		if (op == IBV_WR_RDMA_WRITE) {
			recvs_ok += !memcmp(dst_at(i), src_at(i), len);
			continue;
		}
		if (!poll_one(g.rcq, &wc)) {
			EXPECT(0, "no receive completion for WR %u", i);
			break;
		}
		if (wc.wr_id == i && wc.status == IBV_WC_SUCCESS && wc.opcode == IBV_WC_RECV &&
		    wc.byte_len == len && wc.qp_num == g.qp[1]->qp_num &&
		    wc.src_qp == g.qp[0]->qp_num &&
		    (wc.wc_flags & IBV_WC_WITH_IMM) == (imm ? IBV_WC_WITH_IMM : 0) &&
		    (!imm || wc.imm_data == htonl(~i)) && !memcmp(dst_at(i), src_at(i), len))
			recvs_ok++;
		else if (recvs_ok == i)
			diag("receive %u: wr_id %" PRIu64 " status %s opcode %d byte_len %u (%u) "
			     "qp_num %u src_qp %u flags %#x imm %#x", i, wc.wr_id,
			     ibv_wc_status_str(wc.status), wc.opcode, wc.byte_len, len, wc.qp_num,
			     wc.src_qp, wc.wc_flags, ntohl(wc.imm_data));
	}
	EXPECT(sends_ok == rounds && recvs_ok == rounds,
	       "%u of %u send completions and %u of %u receives (or WRITEs) right", sends_ok,
	       rounds, recvs_ok, rounds);
	point("a ring of 4 slots wraps 150 times: every completion in order and whole (wr_id, "
	      "opcode, byte_len, QP numbers, immediate data, flags), every byte landed");
}

/* ---- arming ----------------------------------------------------------------------------------- */

/* Completion events on g.chan within @ms milliseconds, acknowledged; the CQ they named. */
static int events_within(int ms, struct ibv_cq **which)
{
	struct pollfd pfd = { .fd = g.chan->fd, .events = POLLIN };
	struct ibv_cq *cq;
	void *ctx;
	int n = 0;

	*which = NULL;
	while (poll(&pfd, 1, ms) == 1) {
		if (ibv_get_cq_event(g.chan, &cq, &ctx))
			break;
		ibv_ack_cq_events(cq, 1);
		*which = cq;
		n++;
		ms = 50;
	}
	return n;
}

/* Sends one message (solicited or not) to QP 1 and takes both completions. */
static bool send_one(uint32_t i, bool solicited)
{
	struct ibv_wc wc;

	if (post_recv(i) || post_send(IBV_WR_SEND, i, 16, solicited ? IBV_SEND_SOLICITED : 0))
		bail("post: %s", strerror(errno));
	return poll_one(g.scq, &wc) && wc.status == IBV_WC_SUCCESS && poll_one(g.rcq, &wc) &&
	       wc.status == IBV_WC_SUCCESS;
}

static void t_arming(void)
{
	struct ibv_cq *cq;
	int n;

	pair_make(16, 16);
	n = events_within(100, &cq);
	EXPECT(n == 0, "%d events before any arming", n);

	EXPECT(!ibv_req_notify_cq(g.rcq, 0), "ibv_req_notify_cq(NEXT): %s", strerror(errno));
	EXPECT(send_one(1, false), "message 1 not completed");
	n = events_within(2000, &cq);
	EXPECT(n == 1 && cq == g.rcq, "%d events for a NEXT arming and one message, expected 1", n);
	point("NEXT: one event for the next completion");

	EXPECT(send_one(2, false), "message 2 not completed");
	n = events_within(200, &cq);
	EXPECT(n == 0, "%d events for a completion after the event, without arming again", n);
	point("an arming fires once: no event for a completion without a new request");

	EXPECT(!ibv_req_notify_cq(g.rcq, 1), "ibv_req_notify_cq(SOLICITED): %s", strerror(errno));
	EXPECT(send_one(3, false), "message 3 not completed");
	n = events_within(200, &cq);
	EXPECT(n == 0, "%d events for an unsolicited message under SOLICITED arming", n);
	EXPECT(send_one(4, true), "message 4 not completed");
	n = events_within(2000, &cq);
	EXPECT(n == 1 && cq == g.rcq, "%d events for a solicited message, expected 1", n);
	point("SOLICITED: no event for an unsolicited message, one for a solicited one");

	EXPECT(!ibv_req_notify_cq(g.rcq, 0), "ibv_req_notify_cq(NEXT): %s", strerror(errno));
	EXPECT(!ibv_req_notify_cq(g.rcq, 1), "ibv_req_notify_cq(SOLICITED): %s", strerror(errno));
	EXPECT(send_one(5, false), "message 5 not completed");
	n = events_within(2000, &cq);
	EXPECT(n == 1 && cq == g.rcq, "%d events for an unsolicited message after NEXT then "
	       "SOLICITED arming, expected 1", n);
	point("a NEXT request not yet fired is not narrowed by a later SOLICITED one");

	/* the usual loop: arm, then poll what came before the arming */
	EXPECT(!ibv_req_notify_cq(g.scq, 0), "ibv_req_notify_cq(NEXT): %s", strerror(errno));
	EXPECT(send_one(6, false), "message 6 not completed");
	n = events_within(2000, &cq);
	EXPECT(n >= 1, "no event for the send CQ");
	events_within(100, &cq);
	point("each CQ of a channel is armed on its own");
}

/* ---- resize ----------------------------------------------------------------------------------- */

/* @n signaled WRITEs from QP 0, wr_ids @first on; false if one could not be posted. */
static bool writes(uint32_t first, uint32_t n)
{
	for (uint32_t i = first; i < first + n; i++)
		if (post_send(IBV_WR_RDMA_WRITE, i, 1 + i % MSG, 0))
			return false;
	return true;
}

/* The next @n completions of the send CQ are WRITEs @first on, in order, and landed. */
static bool writes_polled(uint32_t first, uint32_t n, const char *what)
{
	struct ibv_wc wc;

	for (uint32_t i = first; i < first + n; i++) {
		if (!poll_one(g.scq, &wc) || wc.wr_id != i || wc.status != IBV_WC_SUCCESS ||
		    wc.opcode != IBV_WC_RDMA_WRITE || memcmp(dst_at(i), src_at(i), 1 + i % MSG)) {
			diag("%s: completion %u of %u: wr_id %" PRIu64 " (expected %u), %s", what,
			     i - first, n, wc.wr_id, i, ibv_wc_status_str(wc.status));
			return false;
		}
	}
	return true;
}

static void t_resize(void)
{
	struct ibv_cq *cq;
	int rv, n;

	pair_make(4, 16);
	/* three completions wait in a CQ of 4 */
	EXPECT(writes(100, 3), "posting: %s", strerror(errno));
	usleep(200000);
	rv = ibv_resize_cq(g.scq, 1);
	EXPECT(rv == EINVAL, "ibv_resize_cq to 1 with 3 completions waiting: %s, expected EINVAL",
	       rv ? strerror(rv) : "done");
	rv = ibv_resize_cq(g.scq, 0);
	EXPECT(rv == EINVAL, "ibv_resize_cq to 0: %s, expected EINVAL", rv ? strerror(rv) : "done");
	rv = ibv_resize_cq(g.scq, 100);
	EXPECT(!rv && g.scq->cqe >= 100, "ibv_resize_cq to 100: %s, cqe %d",
	       rv ? strerror(rv) : "done", g.scq->cqe);
	EXPECT(writes_polled(100, 3, "after growing"), "the waiting completions were not kept");
	point("resize CQ: below the completions waiting, EINVAL and nothing lost; grown, the waiting "
	      "completions are polled from the new ring in order");

	/* more than the old ring held, none polled until all are in */
	EXPECT(writes(200, 90), "posting: %s", strerror(errno));
	usleep(300000);
	EXPECT(writes_polled(200, 90, "90 in the grown ring"), "the grown ring lost completions");

	/* armed before a resize, the arming moves with the ring */
	EXPECT(!ibv_req_notify_cq(g.scq, 0), "ibv_req_notify_cq: %s", strerror(errno));
	rv = ibv_resize_cq(g.scq, 8);
	EXPECT(!rv && g.scq->cqe >= 8 && g.scq->cqe < 100, "ibv_resize_cq to 8 (empty): %s, cqe %d",
	       rv ? strerror(rv) : "done", g.scq->cqe);
	EXPECT(writes(300, 1), "posting: %s", strerror(errno));
	n = events_within(2000, &cq);
	EXPECT(n == 1 && cq == g.scq, "%d events for the first completion after a resize of an "
	       "armed CQ, expected 1", n);
	EXPECT(writes_polled(300, 1, "after shrinking"), "the shrunk ring lost a completion");
	/* and the shrunk ring wraps */
	for (uint32_t i = 400; i < 440 && !bad; i += 4)
		EXPECT(writes(i, 4) && writes_polled(i, 4, "wrapping the shrunk ring"),
		       "the shrunk ring does not wrap");
	point("resize CQ: a grown ring takes more than the old one held; an armed CQ keeps its "
	      "arming across a resize; a shrunk empty ring wraps");
}

/* ---- RESET cleans ------------------------------------------------------------------------------ */

/* Every completion now in @cq: how many, and how many of them are QP @qpn's. */
static int drain_count(struct ibv_cq *cq, uint32_t qpn, int *of_qp)
{
	struct ibv_wc wc;
	int n = 0;

	*of_qp = 0;
	while (ibv_poll_cq(cq, 1, &wc) == 1) {
		n++;
		*of_qp += wc.qp_num == qpn;
	}
	return n;
}

/*
 * A QP moved to RESET leaves none of its completions in its CQs, as on mlx5 (pyverbs moves a
 * failed QP back up and expects no stale flush); the other QP's stay.
 */
static void t_reset_cleans(void)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };
	struct ibv_sge sge = { .addr = (uintptr_t)dst_at(9), .length = MSG, .lkey = g.mr->lkey };
	struct ibv_recv_wr rwr = { .wr_id = 9, .sg_list = &sge, .num_sge = 1 }, *bad_rwr;
	struct ibv_send_wr swr = { .wr_id = 10, .sg_list = &sge, .num_sge = 1,
				   .opcode = IBV_WR_SEND, .send_flags = IBV_SEND_SIGNALED }, *bad_swr;
	int n, of_qp;

	pair_make(64, 64);
	for (uint32_t i = 0; i < 5; i++)
		EXPECT(!post_recv(i), "post_recv: %s", strerror(errno));
	/* QP 0 to QP 1, and QP 1 to QP 0: both QPs have completions in both CQs */
	EXPECT(!post_send(IBV_WR_SEND, 0, 16, 0), "post_send: %s", strerror(errno));
	EXPECT(!ibv_post_recv(g.qp[0], &rwr, &bad_rwr) &&
	       !ibv_post_send(g.qp[1], &swr, &bad_swr), "posting on QP 1: %s", strerror(errno));
	usleep(300000);
	EXPECT(!ibv_modify_qp(g.qp[1], &a, IBV_QP_STATE), "QP 1 to ERR: %s", strerror(errno));
	usleep(300000);
	a.qp_state = IBV_QPS_RESET;
	EXPECT(!ibv_modify_qp(g.qp[1], &a, IBV_QP_STATE), "QP 1 to RESET: %s", strerror(errno));
	n = drain_count(g.scq, g.qp[1]->qp_num, &of_qp);
	EXPECT(n == 1 && !of_qp, "the send CQ after QP 1's RESET: %d completions, %d of them "
	       "QP 1's (expected QP 0's one)", n, of_qp);
	n = drain_count(g.rcq, g.qp[1]->qp_num, &of_qp);
	EXPECT(n == 1 && !of_qp, "the receive CQ after QP 1's RESET: %d completions, %d of them "
	       "QP 1's (expected QP 0's one receive)", n, of_qp);
	point("a QP moved to RESET leaves none of its completions (successful or flushed) in its "
	      "CQs; another QP's stay");
}

/* ---- two pollers ------------------------------------------------------------------------------ */

static void t_two_pollers(void)
{
	const uint32_t want = 3000;
	uint8_t *seen = calloc(want, 1);
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	volatile uint32_t total = 0;
	struct poller p[2];
	pthread_t th[2];
	uint32_t posted = 0;
	double end = now() + 60;

	if (!seen)
		bail("calloc");
	pair_make(256, 16);
	for (int i = 0; i < 2; i++) {
		p[i] = (struct poller){ .cq = g.scq, .want = want, .seen = seen,
					.seen_lock = &lock, .total = &total };
		if (pthread_create(&th[i], NULL, poller_run, &p[i]))
			bail("pthread_create: %s", strerror(errno));
	}
	while (posted < want && now() < end) {
		if (posted - __atomic_load_n(&total, __ATOMIC_ACQUIRE) >= 128) {
			usleep(100);
			continue;
		}
		if (post_send(IBV_WR_RDMA_WRITE, posted, 64, 0))
			bail("ibv_post_send: %s", strerror(errno));
		posted++;
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	EXPECT(!p[0].err && !p[1].err, "a poller failed: %s / %s", strerror(p[0].err),
	       strerror(p[1].err));
	EXPECT(total == want && !p[0].dup && !p[1].dup,
	       "%u completions taken of %u, %u seen twice or unknown", total, want,
	       p[0].dup + p[1].dup);
	diag("poller 0 took %u, poller 1 took %u", p[0].got, p[1].got);
	free(seen);
	point("two threads polling one CQ take 3000 completions, each exactly once");
}

/* ---- receive queues and SRQs posted with no system call ------------------------------------ */

struct recv_poster {
	struct ibv_qp *qp;
	struct ibv_srq *srq;
	uint32_t n;
	int err;
};

/* Posts @p->n receives (wr_id i, slot i) to the QP or the SRQ, from a filtered thread. */
static void *recv_poster_run(void *arg)
{
	struct recv_poster *p = arg;

	p->err = forbid_uverbs_syscalls();
	for (uint32_t i = 0; i < p->n && !p->err; i++) {
		struct ibv_sge sge = { .addr = (uintptr_t)dst_at(i), .length = MSG,
				       .lkey = g.mr->lkey };
		struct ibv_recv_wr wr = { .wr_id = i, .sg_list = &sge, .num_sge = 1 }, *bad_wr;

		p->err = p->srq ? ibv_post_srq_recv(p->srq, &wr, &bad_wr) :
				  ibv_post_recv(p->qp, &wr, &bad_wr);
	}
	return NULL;
}

/* Sends @n messages from QP 0 and checks each receive's completion and bytes. */
static uint32_t send_and_check(uint32_t n)
{
	uint32_t ok = 0;
	struct ibv_wc wc;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t len = 1 + (i * 53) % MSG;

		if (post_send(IBV_WR_SEND, i, len, 0))
			bail("ibv_post_send: %s", strerror(errno));
		if (!poll_one(g.scq, &wc) || wc.status != IBV_WC_SUCCESS)
			break;
		if (!poll_one(g.rcq, &wc))
			break;
		ok += wc.status == IBV_WC_SUCCESS && wc.wr_id == i && wc.byte_len == len &&
		      !memcmp(dst_at(i), src_at(i), len);
	}
	return ok;
}

static void t_recv_no_syscalls(void)
{
	struct recv_poster p = { .n = 500 };
	struct ibv_srq_init_attr sa = { .attr = { .max_wr = 256, .max_sge = 1 } };
	struct ibv_qp_init_attr ia = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 16, .max_send_sge = 1 },
	};
	struct vt_rc c = { .port = 1, .access = IBV_ACCESS_LOCAL_WRITE, .min_rnr_timer = 1,
			   .rnr_retry = 7, .sgid_index = g.gidx, .dgid = g.gid };
	struct ibv_qp *srq_qp;
	pthread_t th;
	uint32_t ok;
	int state;

	pair_make(64, 1024);
	p.qp = g.qp[1];
	if (pthread_create(&th, NULL, recv_poster_run, &p))
		bail("pthread_create: %s", strerror(errno));
	pthread_join(th, NULL);
	EXPECT(!p.err, "ibv_post_recv in the filtered thread: %s", strerror(p.err));
	ok = send_and_check(p.n);
	EXPECT(ok == p.n, "%u of %u messages into receives the filtered thread posted arrived "
	       "whole", ok, p.n);
	point("a thread barred from system calls posts 500 receives; 500 messages land in "
	      "them, every byte checked");

	/* an SRQ, and a QP on it that QP 0 is connected to instead of QP 1 */
	p = (struct recv_poster){ .n = 200 };
	p.srq = ibv_create_srq(g.pd, &sa);
	if (!p.srq)
		bail("ibv_create_srq: %s", strerror(errno));
	ia.send_cq = g.scq;
	ia.recv_cq = g.rcq;
	ia.srq = p.srq;
	srq_qp = ibv_create_qp(g.pd, &ia);
	if (!srq_qp)
		bail("ibv_create_qp on the SRQ: %s", strerror(errno));
	if (pthread_create(&th, NULL, recv_poster_run, &p))
		bail("pthread_create: %s", strerror(errno));
	pthread_join(th, NULL);
	EXPECT(!p.err, "ibv_post_srq_recv in the filtered thread: %s", strerror(p.err));
	/* QP 0 again, now to the SRQ's QP */
	{
		struct ibv_qp_attr a = { .qp_state = IBV_QPS_RESET };

		if (ibv_modify_qp(g.qp[0], &a, IBV_QP_STATE))
			bail("QP 0 to RESET: %s", strerror(errno));
	}
	c.access |= IBV_ACCESS_REMOTE_WRITE;
	c.dest_qpn = srq_qp->qp_num;
	state = IBV_QPS_RESET;
	if (vt_rc_bring_up(g.qp[0], &c, &state, IBV_QPS_RTS, NULL))
		bail("QP 0 up again: %s", strerror(errno));
	c.dest_qpn = g.qp[0]->qp_num;
	state = IBV_QPS_RESET;
	if (vt_rc_bring_up(srq_qp, &c, &state, IBV_QPS_RTS, NULL))
		bail("the SRQ's QP up: %s", strerror(errno));
	ok = send_and_check(p.n);
	EXPECT(ok == p.n, "%u of %u messages into SRQ receives the filtered thread posted "
	       "arrived whole", ok, p.n);
	ibv_destroy_qp(srq_qp);
	ibv_destroy_srq(p.srq);
	point("... and 200 receives to an SRQ; 200 messages land in them, every byte checked "
	      "(QP 0 reset and connected anew first: its rings start again)");
}

/* ---- a full receive queue, refilled as completions come ------------------------------------- */

static void t_full_rq(void)
{
	const uint32_t rounds = 300;
	struct ibv_qp_attr qa;
	struct ibv_qp_init_attr qi;
	uint32_t ok = 0, refused = 0;
	struct ibv_wc wc;

	g.rq_size = 4;
	pair_make(16, 16);
	g.rq_size = 1024;
	ibv_query_qp(g.qp[1], &qa, IBV_QP_CAP, &qi);
	EXPECT(qi.cap.max_recv_wr == 4, "a receive queue of 4 reports %u", qi.cap.max_recv_wr);
	for (uint32_t i = 0; i < qi.cap.max_recv_wr; i++)
		if (post_recv(i))
			bail("ibv_post_recv %u: %s", i, strerror(errno));
	EXPECT(post_recv(99) == ENOMEM, "a fifth receive into a queue of 4 was not refused "
	       "with ENOMEM");
	for (uint32_t i = 0; i < rounds && !bad; i++) {
		uint32_t len = 1 + (i * 29) % MSG;

		if (post_send(IBV_WR_SEND, i, len, 0))
			bail("ibv_post_send: %s", strerror(errno));
		if (!poll_one(g.scq, &wc) || wc.status != IBV_WC_SUCCESS ||
		    !poll_one(g.rcq, &wc) || wc.status != IBV_WC_SUCCESS) {
			EXPECT(0, "message %u not completed", i);
			break;
		}
		/* the slot of the receive just completed is free at once */
		if (post_recv(i + 4)) {
			refused++;
			EXPECT(0, "the receive posted right after receive %" PRIu64 " completed was "
			       "refused: %s", wc.wr_id, strerror(errno));
		}
		ok += wc.wr_id == i && wc.byte_len == len && !memcmp(dst_at(i), src_at(i), len);
	}
	EXPECT(ok == rounds && !refused, "%u of %u messages whole, %u reposts refused", ok, rounds,
	       refused);
	point("a receive queue of 4 kept full: each completion polled frees its slot for the "
	      "next receive, 300 times, every byte checked");
}

/* ---- doorbells -------------------------------------------------------------------------------- */

static void t_doorbells(void)
{
	struct ibv_send_wr wr[64], *bad_wr;
	struct ibv_sge sge[64];
	long long before, after;
	struct ibv_wc wc;
	uint32_t got = 0;

	pair_make(128, 128);
	for (int i = 0; i < 64; i++) {
		sge[i] = (struct ibv_sge){ .addr = (uintptr_t)src_at(i), .length = 32,
					   .lkey = g.mr->lkey };
		wr[i] = (struct ibv_send_wr){
			.wr_id = i, .sg_list = &sge[i], .num_sge = 1, .opcode = IBV_WR_RDMA_WRITE,
			.send_flags = IBV_SEND_SIGNALED, .next = i < 63 ? &wr[i + 1] : NULL,
			.wr.rdma = { .remote_addr = (uintptr_t)dst_at(i), .rkey = g.mr->rkey },
		};
	}
	before = vt_device_counter(g.dev, "doorbells");
	for (int i = 0; i < 64; i++)
		if (post_recv(i))
			bail("ibv_post_recv: %s", strerror(errno));
	if (ibv_post_send(g.qp[0], wr, &bad_wr))
		bail("ibv_post_send of 64: %s", strerror(errno));
	while (got < 64 && poll_one(g.scq, &wc) && wc.status == IBV_WC_SUCCESS && wc.wr_id == got)
		got++;
	after = vt_device_counter(g.dev, "doorbells");
	EXPECT(got == 64, "%u of 64 WRITEs completed in order", got);
	EXPECT(after - before == 1, "a chain of 64 WRs and 64 receives cost %lld doorbells, "
	       "expected 1", after - before);
	diag("doorbells: %lld -> %lld", before, after);
	point("a chain of 64 WRs rings one doorbell; 64 receives ring none");
}

/* ---- the polling engine ----------------------------------------------------------------------- */

struct poster {
	uint32_t want;
	uint32_t done;
	int err;
	char why[160];
};

/*
 * Posts WRITEs and SENDs (every third) of QP 0 one at a time, of lengths 1 to MSG, each
 * waited for and checked, from a thread that may make no uverbs system call: no post may
 * ring a doorbell (a doorbell it tried would fail, and its WQE would never complete).
 */
static void *poster_run(void *arg)
{
	struct poster *p = arg;
	struct ibv_wc wc;

	p->err = forbid_uverbs_syscalls();
	if (p->err) {
		snprintf(p->why, sizeof(p->why), "seccomp: %s", strerror(p->err));
		return NULL;
	}
	for (uint32_t i = 0; i < p->want; i++) {
		bool send = i % 3 == 2;
		uint32_t len = 1 + i * 37 % MSG;

		if (post_send(send ? IBV_WR_SEND : IBV_WR_RDMA_WRITE, i, len, 0)) {
			p->err = errno ? errno : EIO;
			snprintf(p->why, sizeof(p->why), "post %u: %s", i, strerror(p->err));
			return NULL;
		}
		if (!poll_one(g.scq, &wc) || wc.status != IBV_WC_SUCCESS || wc.wr_id != i ||
		    (send && (!poll_one(g.rcq, &wc) || wc.status != IBV_WC_SUCCESS ||
			      wc.byte_len != len))) {
			p->err = EIO;
			snprintf(p->why, sizeof(p->why), "%s %u of %u bytes: no completion, or "
				 "a wrong one", send ? "SEND" : "WRITE", i, len);
			return NULL;
		}
		if (memcmp(dst_at(i), src_at(i), len)) {
			p->err = EIO;
			snprintf(p->why, sizeof(p->why), "%s %u landed wrong", send ? "SEND" : "WRITE",
				 i);
			return NULL;
		}
		p->done++;
	}
	return NULL;
}

/* Posts one WRITE from QP 0 and waits for it. Return: its status, or -1 if none came. */
static int write_one(uint32_t i)
{
	struct ibv_wc wc;

	if (post_send(IBV_WR_RDMA_WRITE, i, MSG, 0))
		bail("ibv_post_send: %s", strerror(errno));
	return poll_one(g.scq, &wc) ? (int)wc.status : -1;
}

/*
 * Posts SEND @i from QP 0 with no receive posted, lets it meet RNR NAKs for 300 ms, then posts
 * its receive and checks that it lands. Return: RNR retries per second meanwhile, 0 if it
 * did not land.
 */
static double rnr_rate(uint32_t i)
{
	long long retries = vt_device_counter(g.dev, "rnr_retries");
	double t0 = now(), waited;
	struct ibv_wc wc;
	int rv;

	if (post_send(IBV_WR_SEND, i, 100, 0))
		bail("ibv_post_send: %s", strerror(errno));
	usleep(300 * 1000);
	waited = now() - t0;
	retries = vt_device_counter(g.dev, "rnr_retries") - retries;
	if (post_recv(i))
		bail("ibv_post_recv: %s", strerror(errno));
	rv = poll_one(g.scq, &wc) ? (int)wc.status : -1;
	EXPECT(rv == IBV_WC_SUCCESS, "SEND %u, which met RNR NAKs: %s", i, vt_status_str(rv));
	if (rv != IBV_WC_SUCCESS)
		return 0;
	rv = poll_one(g.rcq, &wc) ? (int)wc.status : -1;
	EXPECT(rv == IBV_WC_SUCCESS && wc.byte_len == 100 && !memcmp(dst_at(i), src_at(i), 100),
	       "its receive: %s, %u bytes", vt_status_str(rv), wc.byte_len);
	return retries / waited;
}

static void t_polled(void)
{
	struct poster p = { .want = 300 };
	long long bells, runs;
	pthread_t th;
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };
	struct ibv_wc wc;
	double t0;
	int rv;

	pair_make(64, 64);
	/*
	 * Ten seconds between posts before the poller lets go: more than any wait here, also
	 * the barred thread's start on a loaded debug guest (which two seconds once seem not to
	 * have covered)
	 */
	if (!vt_set_poll_usecs(10000000)) {
		EXPECT(0, "cannot set pfnic's poll_usecs: %s", strerror(errno));
		point("the polling engine");
		return;
	}
	for (uint32_t i = 2; i < p.want; i += 3)
		if (post_recv(i))
			bail("ibv_post_recv: %s", strerror(errno));
	/* the first post rings, and the engine hands the QP to the poller */
	rv = write_one(SLOTS - 1);
	EXPECT(rv == IBV_WC_SUCCESS, "the first WRITE: %s", vt_status_str(rv));
	bells = vt_device_counter(g.dev, "doorbells");
	runs = vt_device_counter(g.dev, "polled_runs");
	if (pthread_create(&th, NULL, poster_run, &p))
		bail("pthread_create: %s", strerror(errno));
	pthread_join(th, NULL);
	bells = vt_device_counter(g.dev, "doorbells") - bells;
	runs = vt_device_counter(g.dev, "polled_runs") - runs;
	EXPECT(!p.err && p.done == p.want, "the barred poster did %u of %u: %s", p.done, p.want,
	       p.why);
	EXPECT(bells == 0 && runs > 0, "%lld doorbells (expected none), %lld polled runs", bells,
	       runs);
	diag("polled: %u posts, %lld engine runs started by the poller", p.done, runs);
	point("polling engine on: a thread barred from system calls posts 300 WRITEs and SENDs "
	      "one at a time, every byte right, and rings no doorbell");

	/* the receives are used up: a SEND meets RNR NAKs, polled, then not */
	{
		struct ibv_qp_attr ra = { .min_rnr_timer = 18 };
		double polled, plain;

		rv = ibv_modify_qp(g.qp[1], &ra, IBV_QP_MIN_RNR_TIMER);
		EXPECT(!rv, "min_rnr_timer of QP 1: %s", strerror(rv));
		polled = rnr_rate(400);
		vt_set_poll_usecs(0);
		usleep(100 * 1000);
		plain = rnr_rate(401);
		EXPECT(polled > 0 && plain > 0 && polled <= 1.5 * plain + 10, "RNR retries per "
		       "second: %.0f polled, %.0f with doorbells: polled, the responder's RNR time "
		       "must be waited as without", polled, plain);
		diag("RNR retries per second (min_rnr_timer 5.12 ms): %.0f polled, %.0f with "
		     "doorbells", polled, plain);
	}
	point("polling engine on: a SEND that meets RNR NAKs retries no faster than with "
	      "doorbells (the responder's RNR time), and lands once a receive is posted");

	usleep(100 * 1000);
	bells = vt_device_counter(g.dev, "doorbells");
	for (uint32_t i = 0; i < 3; i++) {
		rv = write_one(i);
		EXPECT(rv == IBV_WC_SUCCESS, "WRITE %u after polling: %s", i, vt_status_str(rv));
	}
	bells = vt_device_counter(g.dev, "doorbells") - bells;
	EXPECT(bells == 3, "3 posts waited for after polling stopped rang %lld doorbells, "
	       "expected 3", bells);
	point("polling engine off again: the poller let the QP go, and each post rings");

	vt_set_poll_usecs(10000000);
	rv = write_one(0);
	EXPECT(rv == IBV_WC_SUCCESS, "a WRITE with polling on again: %s", vt_status_str(rv));
	/* the QP in RTS, the poller holding it: destroy moves it out of RTS, the poller lets go */
	t0 = now();
	pair_make(64, 64);
	diag("a QP the poller held destroyed, and the pair made again, in %.0f ms",
	     (now() - t0) * 1e3);
	rv = write_one(0);
	EXPECT(rv == IBV_WC_SUCCESS, "a WRITE on the new QPs: %s", vt_status_str(rv));
	rv = ibv_modify_qp(g.qp[0], &a, IBV_QP_STATE);
	EXPECT(!rv, "QP 0 to ERR: %s", strerror(rv));
	if (post_send(IBV_WR_RDMA_WRITE, 1, MSG, 0))
		bail("ibv_post_send: %s", strerror(errno));
	rv = poll_one(g.scq, &wc) ? (int)wc.status : -1;
	EXPECT(rv == IBV_WC_WR_FLUSH_ERR, "a WRITE posted to the polled QP in ERR: %s, expected "
	       "flushed", vt_status_str(rv));
	pair_make(64, 64);
	vt_set_poll_usecs(0);
	point("a QP the poller holds is destroyed; another moves to ERR, and its posts flush");
}

/* ---- WQEs written wrong into a ring ---------------------------------------------------------- */

/* The uverbs mappings of this process: offsets and addresses, from /proc/self/maps. */
struct mapping {
	unsigned long start, len, off;
};

static int uverbs_mappings(struct mapping *m, int max)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, o;
		char path[256] = "";

		if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %255s", &lo, &hi, &o, path) >= 3 &&
		    strstr(path, "/dev/infiniband/uverbs"))
			m[n++] = (struct mapping){ lo, hi - lo, o };
	}
	fclose(f);
	return n;
}

/* The send queue ring of a QP just made: the new uverbs mapping with the lowest offset. */
static struct pfnic_wq_ring *new_sq_ring(const struct mapping *old, int nold)
{
	struct mapping now[64];
	int n = uverbs_mappings(now, 64);
	const struct mapping *best = NULL;

	for (int i = 0; i < n; i++) {
		bool seen = false;

		for (int j = 0; j < nold; j++)
			seen |= now[i].off == old[j].off;
		if (!seen && (!best || now[i].off < best->off))
			best = &now[i];
	}
	return best ? (struct pfnic_wq_ring *)best->start : NULL;
}

/* The doorbell, as the provider rings it: POST_SEND with no work request. */
static int doorbell(struct ibv_qp *qp)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_post_send cmd;
	} req = {
		.hdr = { .command = IB_USER_VERBS_CMD_POST_SEND,
			 .in_words = sizeof(req) / 4,
			 .out_words = sizeof(struct ib_uverbs_post_send_resp) / 4 },
	};
	struct ib_uverbs_post_send_resp resp;

	req.cmd.response = (uintptr_t)&resp;
	req.cmd.qp_handle = qp->handle;
	req.cmd.wqe_size = sizeof(struct ib_uverbs_send_wr);
	return write(qp->context->cmd_fd, &req, sizeof(req)) == sizeof(req) ? 0 : errno;
}

/*
 * A fresh pair; QP 0's send ring gets, at slot 0, a WQE made by @make (wr_id 0xbad0 + @kind),
 * and the producer index @producer; then the doorbell. The WQE must complete with
 * LOC_QP_OP_ERR, the QP must be in ERR, and a flush must end.
 */
static void malformed(int kind, uint32_t producer, const char *what)
{
	struct mapping old[64];
	int nold, state;
	struct pfnic_wq_ring *ring;
	struct ibv_qp_attr qa;
	struct ibv_qp_init_attr qi;
	struct ibv_wc wc;
	uint8_t *slot;
	uint32_t stride;

	/* room for the error and a round of flushes: 1024 WQEs (the producer is the test's) */
	pair_make(4096, 64);
	/* the QPs again: their rings are then the only mappings that are new */
	for (int i = 0; i < 2; i++) {
		ibv_destroy_qp(g.qp[i]);
		g.qp[i] = NULL;
	}
	nold = uverbs_mappings(old, 64);
	qps_make();
	ring = new_sq_ring(old, nold);
	EXPECT(ring, "no new ring mapping for QP 0");
	if (!ring)
		return;
	/* the stride: a ring of 1024 WQEs after a one-page header fills its mapping */
	{
		struct mapping now[64];
		int n = uverbs_mappings(now, 64);
		unsigned long len = 0;

		for (int i = 0; i < n; i++)
			if (now[i].start == (unsigned long)ring)
				len = now[i].len;
		stride = (uint32_t)((len - sizeof(*ring)) / 1024) & ~15u;
	}
	slot = (uint8_t *)(ring + 1);
	for (uint32_t i = 0; i < 1024; i++) {
		struct pfnic_send_wqe *w = (struct pfnic_send_wqe *)(slot + (size_t)i * stride);

		memset(w, 0, sizeof(*w));
		w->wr_id = 0xbad0 + kind;
		w->opcode = 0xee;	/* no such opcode: every slot after the first fails too */
		w->send_flags = IBV_SEND_SIGNALED;
		if (i)
			continue;
		if (kind == 3) {
			/* a WRITE of nothing the QP could carry out: only the index is wrong */
			w->opcode = IBV_WR_RDMA_WRITE;
			w->rkey = g.mr->rkey;
			w->remote_addr = (uintptr_t)dst_at(0);
		} else if (kind == 1) {
			w->opcode = IBV_WR_RDMA_WRITE;
			w->num_sge = 33;
		} else if (kind == 2) {
			w->opcode = IBV_WR_SEND;
			w->send_flags |= IBV_SEND_INLINE;
			w->inline_len = 100000;
		}
	}
	__atomic_store_n(&ring->producer, producer, __ATOMIC_RELEASE);
	EXPECT(!doorbell(g.qp[0]), "the doorbell: %s", strerror(errno));
	EXPECT(poll_one(g.scq, &wc), "no completion for the malformed WQE");
	if (!bad) {
		EXPECT(wc.wr_id == (uint64_t)(0xbad0 + kind) && wc.status == IBV_WC_LOC_QP_OP_ERR,
		       "the malformed WQE completed as %#" PRIx64 " %s, expected %#x "
		       "LOC_QP_OP_ERR", wc.wr_id, ibv_wc_status_str(wc.status), 0xbad0 + kind);
	}
	memset(&qa, 0, sizeof(qa));
	ibv_query_qp(g.qp[0], &qa, IBV_QP_STATE, &qi);
	state = qa.qp_state;
	EXPECT(state == IBV_QPS_ERR, "QP 0 is in state %d after the malformed WQE, not ERR", state);
	/* whatever else the producer claims is flushed, in bounded rounds */
	for (int i = 0; i < 4; i++) {
		doorbell(g.qp[0]);
		while (ibv_poll_cq(g.scq, 1, &wc) == 1)
			;
	}
	point(what);
}

static void t_malformed(void)
{
	malformed(0, 1, "a WQE with an opcode no QP has completes with LOC_QP_OP_ERR, the QP "
		  "goes to ERR");
	malformed(1, 1, "a WQE with more SGEs than the QP's max_send_sge: LOC_QP_OP_ERR, ERR");
	malformed(2, 1, "a WQE with more inline data than the QP's max_inline_data: "
		  "LOC_QP_OP_ERR, ERR");
	malformed(0, 0x7fffffff, "a producer index moved 2^31 past the ring: the WQE at the head "
		  "fails, the QP goes to ERR, flushing ends (bounded rounds), the QP is destroyed");
	malformed(3, 0xffffffff, "a producer index one short of a whole wrap, over a valid WQE: "
		  "the queue is malformed, its head WQE fails with LOC_QP_OP_ERR, the QP goes to ERR "
		  "(the engine does not take the ring's WQEs round and round)");
	for (int i = 0; i < 2; i++) {
		if (g.qp[i])
			EXPECT(!ibv_destroy_qp(g.qp[i]), "ibv_destroy_qp after a malformed ring");
		g.qp[i] = NULL;
	}
}

/* ---- the mapping ------------------------------------------------------------------------------ */

/* The offset and length of a ring mapping of the device's uverbs file, from /proc/self/maps. */
static bool find_ring(off_t *off, size_t *len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, o;
		char path[256] = "";

		if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %255s", &lo, &hi, &o, path) >= 3 &&
		    strstr(path, "/dev/infiniband/uverbs")) {
			*off = (off_t)o;
			*len = hi - lo;
			found = true;
		}
	}
	fclose(f);
	return found;
}

static void t_mapping(void)
{
	size_t len = 0;
	off_t off = 0;
	void *p;

	pair_make(16, 16);
	EXPECT(find_ring(&off, &len), "no mapping of the uverbs file in /proc/self/maps");
	if (!bad) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, g.ctx->cmd_fd, off);
		EXPECT(p == MAP_FAILED && errno == EINVAL, "a private mapping of a ring: %s",
		       p == MAP_FAILED ? strerror(errno) : "mapped");
		if (p != MAP_FAILED)
			munmap(p, len);
		p = mmap(NULL, len + 4096, PROT_READ, MAP_SHARED, g.ctx->cmd_fd, off);
		EXPECT(p == MAP_FAILED && errno == EINVAL, "a mapping longer than the ring: %s",
		       p == MAP_FAILED ? strerror(errno) : "mapped");
		if (p != MAP_FAILED)
			munmap(p, len + 4096);
		p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, g.ctx->cmd_fd, off + (1L << 40));
		EXPECT(p == MAP_FAILED && errno == EINVAL, "a mapping at an offset of no ring: %s",
		       p == MAP_FAILED ? strerror(errno) : "mapped");
		if (p != MAP_FAILED)
			munmap(p, 4096);
		/* a second shared mapping of the ring is the provider's kind: allowed */
		p = mmap(NULL, len, PROT_READ, MAP_SHARED, g.ctx->cmd_fd, off);
		EXPECT(p != MAP_FAILED, "a second shared mapping of a ring: %s", strerror(errno));
		if (p != MAP_FAILED)
			munmap(p, len);
	}
	point("a ring maps only shared, whole, at its own offset: EINVAL otherwise");
}

int main(int argc, char **argv)
{
	vt_args(argc, argv, "pfnic_rings -d DEVICE [-g GID_INDEX]", &g.dev, &g.gidx, "", NULL,
		NULL);
	printf("TAP version 13\n");
	setup();
	t_no_syscalls();
	t_wrap();
	t_arming();
	t_resize();
	t_reset_cleans();
	t_two_pollers();
	t_recv_no_syscalls();
	t_full_rq();
	t_doorbells();
	t_polled();
	t_mapping();
	t_malformed();
	printf("1..%d\n", g.num);
	return g.failed ? 1 : 0;
}
