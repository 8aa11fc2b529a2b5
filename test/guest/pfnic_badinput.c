// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_badinput: bad input to the verbs and to the device, and what must come back. Prints
 * TAP version 13.
 *
 *   pfnic_badinput -d DEVICE [-g GID_INDEX] [-t SECONDS] [-o NAME[,NAME...]] [-r N] [-v]
 *
 * Every bad input must get the InfiniBand specification's answer, and nothing else:
 *  - verbs that refuse their input return the error (EINVAL, EOPNOTSUPP, EFAULT, EBUSY ...)
 *    and change nothing (a refused modify_qp leaves the state as it was, a refused post
 *    posts nothing from the bad work request on, a refused registration pins nothing);
 *  - a work request that the device finds bad completes with the error status of the spec
 *    (IBV_WC_LOC_PROT_ERR, IBV_WC_REM_ACCESS_ERR, ...), the QP is in the error state from
 *    then on, and every other work request of that QP, posted before or after, completes
 *    with IBV_WC_WR_FLUSH_ERR;
 *  - nothing hangs: every wait is bounded (-t, 10 s by default), and a watchdog ends the
 *    program with "Bail out!" if a verb itself does not return.
 *
 * Every case that runs traffic builds its own pair of RC QPs (QP 0 the requester, QP 1 the
 * responder), connected to each other in this process over the port's GID, each with a CQ
 * of its own for both of its queues; nothing carries over from one case to the next. The last
 * test point checks that the device holds no object any more (`rdma resource show`, before
 * and after closing the device) and that the process has no page pinned (VmPin).
 *
 * Options: -o runs only the named cases (the final check always runs); -r repeats the cases
 * N times; -v prints every completion seen.
 *
 * Exit status: 0 if every test point passed, 1 if one failed or the set-up failed, 2 on
 * bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "verbs-test.h"

#define PG 4096u
#define PORT 1
/* QP and CQ sizes unless a case says otherwise */
#define QP_WR 32
#define QP_SGE 2
#define CQ_SIZE 128
/* byte the buffers are filled with, and what the requester writes */
#define FILL 0x5a
#define DATA 0xc3

static struct {
	const char *dev_name;
	int gid_index;
	double timeout;
	bool verbose;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_device_attr_ex dattr;
	union ibv_gid gid;
	bool odp;
	long vmpin0;
	/* the device's objects before this program made any: kernel consumers' (QP1's) */
	long base[5];
} g = { .gid_index = 1, .timeout = 10.0 };

/* ---- checks ------------------------------------------------------------------------------ */

/* A check that fails the test point but lets the case go on (and clean up). */
#define CHECK(cond, ...)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			diag(__VA_ARGS__);                                                 \
			rc = 1;                                                            \
		}                                                                          \
	} while (0)
/* A check the rest of the case depends on. */
#define REQUIRE(cond, ...)                                                                 \
	do {                                                                               \
		if (!(cond)) {                                                             \
			diag(__VA_ARGS__);                                                 \
			rc = 1;                                                            \
			goto out;                                                          \
		}                                                                          \
	} while (0)

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static const char *state_str(int s)
{
	static const char *const names[] = { "RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR" };

	if (s >= 0 && s < (int)(sizeof(names) / sizeof(names[0])))
		return names[s];
	return s < 0 ? "(query failed)" : "(unknown)";
}

static const char *errno_str(int e)
{
	switch (e) {
	case 0: return "0";
	case EINVAL: return "EINVAL";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EFAULT: return "EFAULT";
	case ENOMEM: return "ENOMEM";
	case EBUSY: return "EBUSY";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENOSYS: return "ENOSYS";
	default: return strerror(e);
	}
}

/* ---- watchdog: a verb that does not return ends the program, saying where ---------------- */

/* a case may take this many times the wait timeout (-t) before it counts as hung */
#define WD_FACTOR 8

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static double wd_deadline;	/* 0: disarmed */
static int wd_num;
static const char *wd_case;
static const char *wd_stage = "";

static void stage(const char *s)
{
	pthread_mutex_lock(&wd_lock);
	wd_stage = s;
	pthread_mutex_unlock(&wd_lock);
}

static void wd_arm(int num, const char *name, double secs)
{
	pthread_mutex_lock(&wd_lock);
	wd_num = num;
	wd_case = name;
	wd_stage = "";
	wd_deadline = now() + secs;
	pthread_mutex_unlock(&wd_lock);
}

static void wd_disarm(void)
{
	pthread_mutex_lock(&wd_lock);
	wd_deadline = 0;
	pthread_mutex_unlock(&wd_lock);
}

static void *wd_thread(void *arg)
{
	(void)arg;
	for (;;) {
		sleep_ms(200);
		pthread_mutex_lock(&wd_lock);
		if (wd_deadline && now() > wd_deadline) {
			/* the main thread is stuck in a call: it prints nothing more */
			printf("not ok %d - %s\n", wd_num, wd_case);
			printf("# hung: not done after %.0f s, last stage: %s\n",
			       WD_FACTOR * g.timeout, wd_stage);
			printf("Bail out! %s hung (%s)\n", wd_case, wd_stage);
			fflush(stdout);
			_exit(1);
		}
		pthread_mutex_unlock(&wd_lock);
	}
	return NULL;
}

/* ---- asynchronous events -------------------------------------------------------------------- */

/*
 * Reads the async events that arrive within @secs (0: only those already queued), acks each,
 * and counts those of type @want about @elem (a CQ, QP or SRQ, when not NULL). Others are
 * reported. Every event must be acked before its CQ or QP is destroyed, or libibverbs waits
 * forever.
 */
static int async_events(double secs, enum ibv_event_type want, const void *elem, bool stop)
{
	double end = now() + secs;
	int found = 0;

	for (;;) {
		struct pollfd pfd = { .fd = g.ctx->async_fd, .events = POLLIN };
		struct ibv_async_event ev;
		int left = (int)((end - now()) * 1000);

		if (poll(&pfd, 1, left > 0 ? left : 0) <= 0)
			return found;
		if (ibv_get_async_event(g.ctx, &ev))
			continue;
		/* element is a union of pointers: whichever the event is about */
		if (elem && ev.event_type == want && (const void *)ev.element.cq == elem) {
			found++;
		} else {
			diag("async event %s (%d)%s", ibv_event_type_str(ev.event_type), ev.event_type,
			     elem ? ", not the one waited for" : "");
		}
		ibv_ack_async_event(&ev);
		if (found && stop)
			return found;
	}
}

/* ---- completions ---------------------------------------------------------------------------- */

static void wc_print(const char *cqname, const struct ibv_wc *wc)
{
	diag("%s: wr_id %#" PRIx64 " status %s (%d) opcode %d qp_num %u byte_len %u vendor_err %u",
	     cqname, wc->wr_id, ibv_wc_status_str(wc->status), wc->status, wc->opcode, wc->qp_num,
	     wc->byte_len, wc->vendor_err);
}

/* One completion within @secs: 1, 0 on timeout, -1 if ibv_poll_cq failed. */
static int wait_wc(struct ibv_cq *cq, struct ibv_wc *wc, double secs)
{
	double end = now() + secs;

	for (;;) {
		int n = ibv_poll_cq(cq, 1, wc);

		if (n < 0)
			return -1;
		if (n == 1)
			return 1;
		if (now() > end)
			return 0;
		usleep(200);
	}
}

/*
 * The next completion of @cq is @wr_id's, with @status, of @qp; when the status is
 * IBV_WC_SUCCESS also with @opcode (the only case where the opcode is defined) and, if
 * @len >= 0, that byte_len. Return: 0 if so, 2 if no completion came (or polling failed),
 * 1 if another one did.
 */
static int expect_wc(struct ibv_cq *cq, const char *cqname, uint64_t wr_id,
		     enum ibv_wc_status status, int opcode, long len, const struct ibv_qp *qp)
{
	struct ibv_wc wc;
	int n;

	memset(&wc, 0, sizeof(wc));
	n = wait_wc(cq, &wc, g.timeout);
	if (n < 0) {
		diag("%s: ibv_poll_cq failed while waiting for wr_id %#" PRIx64 " (%s)", cqname,
		     wr_id, ibv_wc_status_str(status));
		return 2;
	}
	if (n == 0) {
		diag("%s: no completion within %.0f s; expected wr_id %#" PRIx64 " with %s", cqname,
		     g.timeout, wr_id, ibv_wc_status_str(status));
		return 2;
	}
	if (g.verbose)
		wc_print(cqname, &wc);
	if (wc.wr_id != wr_id || wc.status != status || wc.qp_num != qp->qp_num ||
	    (status == IBV_WC_SUCCESS && opcode >= 0 && (int)wc.opcode != opcode) ||
	    (status == IBV_WC_SUCCESS && len >= 0 && wc.byte_len != (uint32_t)len)) {
		diag("%s: expected wr_id %#" PRIx64 " status %s (%d) qp_num %u%s", cqname, wr_id,
		     ibv_wc_status_str(status), status, qp->qp_num,
		     status == IBV_WC_SUCCESS ? " and its opcode/byte_len" : "");
		if (status == IBV_WC_SUCCESS && opcode >= 0)
			diag("%s: expected opcode %d byte_len %ld", cqname, opcode, len);
		wc_print(cqname, &wc);
		return 1;
	}
	return 0;
}

/* No completion on @cq within @ms. Return: 0 if none came. */
static int expect_none(struct ibv_cq *cq, const char *cqname, unsigned int ms)
{
	struct ibv_wc wc;
	int n, bad = 0;

	if (ms)
		sleep_ms(ms);
	while ((n = ibv_poll_cq(cq, 1, &wc)) == 1) {
		diag("%s: unexpected completion", cqname);
		wc_print(cqname, &wc);
		bad = 1;
	}
	if (n < 0) {
		diag("%s: ibv_poll_cq failed", cqname);
		bad = 1;
	}
	return bad;
}

/* ---- QPs ------------------------------------------------------------------------------------ */

static int qp_state(struct ibv_qp *qp)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;

	memset(&a, 0, sizeof(a));
	if (ibv_query_qp(qp, &a, IBV_QP_STATE, &ia))
		return -1;
	return a.qp_state;
}

#define ACCESS_ALL (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)
/* QP 0 or 1 of a pair on its way up to RTS: towards @dest, with @access and @rnr_retry. */
static struct vt_rc rc_conn(uint32_t dest, int access, uint8_t rnr_retry)
{
	return (struct vt_rc){
		.port = PORT,
		.access = access,
		.dest_qpn = dest,
		.min_rnr_timer = 1,
		.rnr_retry = rnr_retry,
		.dgid = g.gid,
		.sgid_index = (uint8_t)g.gid_index,
	};
}

struct pair {
	struct ibv_cq *cq[2];
	struct ibv_qp *qp[2];
};

struct pair_opts {
	struct ibv_pd *pd[2];	/* NULL: g.pd */
	int cqe[2];		/* 0: CQ_SIZE */
	uint32_t sq_wr;		/* 0: QP_WR */
	uint32_t sge;		/* 0: QP_SGE */
	int rnr_retry;		/* of QP 0; -1: 7 */
	int access[2];		/* QP access flags; -1: ACCESS_ALL */
	struct ibv_srq *srq[2];	/* the QP's SRQ; NULL: a receive queue of its own */
};

static struct pair_opts opts_default(void)
{
	return (struct pair_opts){ .rnr_retry = -1, .access = { -1, -1 } };
}

static const char *const cq_name[2] = { "QP 0 (requester) CQ", "QP 1 (responder) CQ" };

static int pair_destroy(struct pair *p)
{
	int rv, bad = 0;

	stage("destroying the QPs and CQs");
	async_events(0, 0, NULL, false);
	for (int i = 0; i < 2; i++) {
		if (p->qp[i] && (rv = ibv_destroy_qp(p->qp[i]))) {
			diag("ibv_destroy_qp(QP %d): %s", i, errno_str(rv));
			bad = 1;
		}
		p->qp[i] = NULL;
	}
	for (int i = 0; i < 2; i++) {
		if (p->cq[i] && (rv = ibv_destroy_cq(p->cq[i]))) {
			diag("ibv_destroy_cq(CQ %d): %s", i, errno_str(rv));
			bad = 1;
		}
		p->cq[i] = NULL;
	}
	stage("");
	return bad;
}

/* Two QPs in RESET, each with its CQ. Return: 0, or 1 with everything undone. */
static int pair_create(struct pair *p, const struct pair_opts *o)
{
	memset(p, 0, sizeof(*p));
	stage("creating the QPs");
	for (int i = 0; i < 2; i++) {
		struct ibv_qp_init_attr ia;

		p->cq[i] = ibv_create_cq(g.ctx, o->cqe[i] ? o->cqe[i] : CQ_SIZE, NULL, NULL, 0);
		if (!p->cq[i]) {
			diag("ibv_create_cq: %s", errno_str(errno));
			goto err;
		}
		memset(&ia, 0, sizeof(ia));
		ia.send_cq = p->cq[i];
		ia.recv_cq = p->cq[i];
		ia.qp_type = IBV_QPT_RC;
		ia.cap.max_send_wr = o->sq_wr ? o->sq_wr : QP_WR;
		ia.cap.max_recv_wr = QP_WR;
		ia.cap.max_send_sge = o->sge ? o->sge : QP_SGE;
		ia.cap.max_recv_sge = QP_SGE;
		ia.cap.max_inline_data = 0;
		ia.srq = o->srq[i];
		p->qp[i] = ibv_create_qp(o->pd[i] ? o->pd[i] : g.pd, &ia);
		if (!p->qp[i]) {
			diag("ibv_create_qp: %s", errno_str(errno));
			goto err;
		}
	}
	return 0;
err:
	pair_destroy(p);
	return 1;
}

/* Brings @qp from its current state up to @target (INIT, RTR or RTS). Return: 0 or errno. */
static int qp_bring_up(struct ibv_qp *qp, uint32_t dest, int access, uint8_t rnr_retry,
		       enum ibv_qp_state target)
{
	const struct vt_rc c = rc_conn(dest, access, rnr_retry);
	int s = qp_state(qp), rv;

	if ((rv = vt_rc_bring_up(qp, &c, &s, target, NULL)))
		return rv;
	return s == (int)target ? 0 : EPROTO;
}

static int pair_connect(struct pair *p, const struct pair_opts *o)
{
	stage("connecting the QPs");
	for (int i = 0; i < 2; i++) {
		int access = o->access[i] >= 0 ? o->access[i] : ACCESS_ALL;
		uint8_t rnr = (i == 0 && o->rnr_retry >= 0) ? (uint8_t)o->rnr_retry : 7;
		int rv = qp_bring_up(p->qp[i], p->qp[1 - i]->qp_num, access, rnr, IBV_QPS_RTS);

		if (rv) {
			diag("bringing QP %d up to RTS: %s (state %s)", i, errno_str(rv),
			     state_str(qp_state(p->qp[i])));
			return 1;
		}
	}
	stage("");
	return 0;
}

/* A connected pair, with the default options but for @o. */
static int pair_up(struct pair *p, const struct pair_opts *o)
{
	if (pair_create(p, o))
		return 1;
	if (pair_connect(p, o)) {
		pair_destroy(p);
		return 1;
	}
	return 0;
}

/* ---- memory --------------------------------------------------------------------------------- */

struct mbuf {
	uint8_t *p;
	size_t maplen;
	struct ibv_mr *mr;
};

/* @len bytes of fresh anonymous memory filled with FILL, registered with @access in @pd. */
static int mbuf_get(struct mbuf *b, struct ibv_pd *pd, size_t len, int access)
{
	memset(b, 0, sizeof(*b));
	b->maplen = (len + PG - 1) / PG * PG;
	b->p = mmap(NULL, b->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->p == MAP_FAILED) {
		b->p = NULL;
		diag("mmap: %s", strerror(errno));
		return 1;
	}
	memset(b->p, FILL, b->maplen);
	stage("registering an MR");
	b->mr = ibv_reg_mr(pd ? pd : g.pd, b->p, len, access);
	if (!b->mr) {
		diag("ibv_reg_mr(%zu bytes, access %#x): %s", len, access, errno_str(errno));
		munmap(b->p, b->maplen);
		b->p = NULL;
		return 1;
	}
	stage("");
	return 0;
}

static int mbuf_put(struct mbuf *b)
{
	int rv = 0;

	stage("deregistering an MR");
	if (b->mr && (rv = ibv_dereg_mr(b->mr)))
		diag("ibv_dereg_mr: %s", errno_str(rv));
	if (b->p)
		munmap(b->p, b->maplen);
	memset(b, 0, sizeof(*b));
	stage("");
	return rv ? 1 : 0;
}

/* All @n bytes at @p are @v. */
static bool all_are(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* The process's pinned memory (VmPin), in kB; -1 if unknown. */
static long vmpin_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* ---- work requests -------------------------------------------------------------------------- */

/* A signaled send-queue WR of @len bytes from @loc at @loff; for RDMA, to/from @rem at @roff. */
static void wr_make(struct ibv_send_wr *wr, struct ibv_sge *sge, uint64_t id,
		    enum ibv_wr_opcode op, const struct mbuf *loc, size_t loff, uint32_t len,
		    const struct mbuf *rem, size_t roff)
{
	memset(wr, 0, sizeof(*wr));
	sge->addr = (uintptr_t)loc->p + loff;
	sge->length = len;
	sge->lkey = loc->mr->lkey;
	wr->wr_id = id;
	wr->sg_list = sge;
	wr->num_sge = 1;
	wr->opcode = op;
	wr->send_flags = IBV_SEND_SIGNALED;
	if (rem) {
		wr->wr.rdma.remote_addr = (uintptr_t)rem->p + roff;
		wr->wr.rdma.rkey = rem->mr->rkey;
	}
}

static void wr_chain(struct ibv_send_wr *wr, int n)
{
	for (int i = 0; i < n; i++)
		wr[i].next = i + 1 < n ? &wr[i + 1] : NULL;
}

static int post_recv1(struct ibv_qp *qp, uint64_t id, const struct mbuf *b, size_t off,
		      uint32_t len)
{
	struct ibv_sge sge = { (uintptr_t)b->p + off, len, b->mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = id, .sg_list = &sge, .num_sge = 1 }, *bad = NULL;

	return ibv_post_recv(qp, &wr, &bad);
}

/*
 * One RDMA WRITE of 64 bytes from QP 0 to a fresh MR of QP 1's, which must succeed and land:
 * the pair works.
 */
static int smoke_write(struct pair *p, const char *when)
{
	struct mbuf loc, rem;
	struct ibv_send_wr wr, *bad = NULL;
	struct ibv_sge sge;
	int rc = 0, rv;

	if (mbuf_get(&loc, NULL, PG, ACCESS_ALL))
		return 1;
	if (mbuf_get(&rem, NULL, PG, ACCESS_ALL)) {
		mbuf_put(&loc);
		return 1;
	}
	memset(loc.p, DATA, 64);
	wr_make(&wr, &sge, 0x5a0e, IBV_WR_RDMA_WRITE, &loc, 0, 64, &rem, 128);
	stage("smoke WRITE");
	rv = ibv_post_send(p->qp[0], &wr, &bad);
	REQUIRE(!rv, "%s: posting a valid RDMA WRITE: %s", when, errno_str(rv));
	if (expect_wc(p->cq[0], cq_name[0], 0x5a0e, IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE, -1,
		      p->qp[0])) {
		diag("%s: a valid RDMA WRITE did not complete successfully", when);
		rc = 1;
	} else {
		CHECK(all_are(rem.p + 128, 64, DATA) && rem.p[127] == FILL && rem.p[192] == FILL,
		      "%s: the RDMA WRITE did not land as posted", when);
	}
out:
	rc |= mbuf_put(&rem);
	rc |= mbuf_put(&loc);
	return rc;
}

/*
 * After QP 0 posted, in one chain, a bad WR (@bad_id) followed by @nfollow valid ones
 * (@follow_id, @follow_id + 1, ...): the bad one completes with @status, QP 0 is then in
 * the error state, the followers complete with IBV_WC_WR_FLUSH_ERR, and so do a send and a
 * receive posted to the QP in error; nothing else completes. @loc and @rem are buffers for
 * that send (an RDMA WRITE); it must not reach @rem.
 */
static int check_requester_error(struct pair *p, uint64_t bad_id, enum ibv_wc_status status,
				 int nfollow, uint64_t follow_id, struct mbuf *loc,
				 struct mbuf *rem)
{
	struct ibv_send_wr wr, *bad = NULL;
	struct ibv_sge sge;
	int rc = 0, rv, s;

	stage("waiting for the error completion");
	rv = expect_wc(p->cq[0], cq_name[0], bad_id, status, -1, -1, p->qp[0]);
	if (rv == 2) {
		/* nothing else can be checked: waiting for the rest would only take longer */
		diag("QP 0 is %s; %s", state_str(qp_state(p->qp[0])),
		     "the flush completions were not waited for");
		return 1;
	}
	rc |= rv;
	/* right after the error completion, with nothing else done: the QP must be in ERR */
	s = qp_state(p->qp[0]);
	CHECK(s == IBV_QPS_ERR, "QP 0 is %s right after its error completion, not ERR",
	      state_str(s));
	stage("waiting for the flush completions");
	for (int i = 0; i < nfollow; i++)
		if (expect_wc(p->cq[0], cq_name[0], follow_id + i, IBV_WC_WR_FLUSH_ERR, -1, -1,
			      p->qp[0]))
			rc = 1;
	if (s != IBV_QPS_ERR) {
		s = qp_state(p->qp[0]);
		diag("QP 0 is %s after the flush completions", state_str(s));
	}

	/* posting to a QP in error is allowed; the WR completes with a flush error */
	memset(loc->p, DATA, 64);
	wr_make(&wr, &sge, 0xe770, IBV_WR_RDMA_WRITE, loc, 0, 64, rem, PG - 64);
	rv = ibv_post_send(p->qp[0], &wr, &bad);
	CHECK(!rv, "ibv_post_send to QP 0 in the error state: %s (must be accepted and flushed)",
	      errno_str(rv));
	if (!rv && expect_wc(p->cq[0], cq_name[0], 0xe770, IBV_WC_WR_FLUSH_ERR, -1, -1, p->qp[0]))
		rc = 1;
	rv = post_recv1(p->qp[0], 0xe771, loc, 0, 64);
	CHECK(!rv, "ibv_post_recv to QP 0 in the error state: %s (must be accepted and flushed)",
	      errno_str(rv));
	if (!rv && expect_wc(p->cq[0], cq_name[0], 0xe771, IBV_WC_WR_FLUSH_ERR, -1, -1, p->qp[0]))
		rc = 1;
	rc |= expect_none(p->cq[0], cq_name[0], 50);
	CHECK(all_are(rem->p + PG - 64, 64, FILL),
	      "the RDMA WRITE posted to QP 0 in the error state wrote to the remote MR");
	return rc;
}

/* Valid RDMA WRITEs of 8 bytes from @loc to @rem, to follow a bad WR in its chain. */
static void followers(struct ibv_send_wr *wr, struct ibv_sge *sge, int n, uint64_t id0,
		      const struct mbuf *loc, const struct mbuf *rem)
{
	for (int i = 0; i < n; i++)
		wr_make(&wr[i], &sge[i], id0 + i, IBV_WR_RDMA_WRITE, loc, 256 + 8 * i, 8, rem,
			256 + 8 * i);
}

/* ---- cases: verbs that must refuse ---------------------------------------------------------- */

/* A refused modify_qp: @rv must be EINVAL and QP 0 still in @state. */
static int refused_modify(struct pair *p, int rv, enum ibv_qp_state state, const char *what)
{
	int rc = 0, s = qp_state(p->qp[0]);

	CHECK(rv == EINVAL, "%s returned %s, expected EINVAL", what, errno_str(rv));
	CHECK(s == (int)state, "QP state after the refused %s: %s, expected %s", what,
	      state_str(s), state_str(state));
	return rc;
}

/* QP 0 is still in @state after @what (a refused post). */
static int qp0_still(struct pair *p, enum ibv_qp_state state, const char *what)
{
	int rc = 0, s = qp_state(p->qp[0]);

	CHECK(s == (int)state, "QP 0 is %s after %s, expected %s", state_str(s), what,
	      state_str(state));
	return rc;
}

/* After a refused modify: the QPs still come up the normal way and carry a WRITE. */
static int still_works(struct pair *p)
{
	struct pair_opts o = opts_default();

	if (pair_connect(p, &o)) {
		diag("the QPs could not be brought up after the refused modify");
		return 1;
	}
	return smoke_write(p, "after the refused modify");
}

/* A modify_qp of QP 0 that must be refused: the attributes of the normal step to @to, but
 * for @port (0: PORT) and the mask but for @drop. */
struct bad_modify {
	enum ibv_qp_state to;
	int drop;
	uint8_t port;
	const char *what;
};

/* A pair, QP 0 brought to @from (RESET or INIT), the @n modifies refused, then still_works. */
static int refused_modifies(enum ibv_qp_state from, const struct bad_modify *m, int n)
{
	struct pair_opts o = opts_default();
	struct ibv_qp_attr a;
	struct vt_rc c;
	struct pair p;
	int rc = 0, rv;

	if (pair_create(&p, &o))
		return 1;
	c = rc_conn(p.qp[1]->qp_num, ACCESS_ALL, 7);
	if (from == IBV_QPS_INIT) {
		vt_rc_init_attr(&a, &c);
		rv = ibv_modify_qp(p.qp[0], &a, VT_RC_INIT_MASK);
		REQUIRE(!rv, "modify RESET->INIT: %s", errno_str(rv));
	}
	for (int i = 0; i < n; i++) {
		int mask;

		if (m[i].to == IBV_QPS_INIT) {
			vt_rc_init_attr(&a, &c);
			mask = VT_RC_INIT_MASK;
		} else if (m[i].to == IBV_QPS_RTR) {
			vt_rc_rtr_attr(&a, &c);
			mask = VT_RC_RTR_MASK;
		} else {
			vt_rc_rts_attr(&a, &c);
			mask = VT_RC_RTS_MASK;
		}
		if (m[i].port)
			a.port_num = m[i].port;
		rc |= refused_modify(&p, ibv_modify_qp(p.qp[0], &a, mask & ~m[i].drop), from,
				     m[i].what);
	}
	rc |= still_works(&p);
out:
	rc |= pair_destroy(&p);
	return rc;
}

static int c_reset_to_rtr(void)
{
	static const struct bad_modify m = { IBV_QPS_RTR, 0, 0, "modify RESET->RTR" };

	return refused_modifies(IBV_QPS_RESET, &m, 1);
}

static int c_reset_to_rts(void)
{
	static const struct bad_modify m = { IBV_QPS_RTS, 0, 0, "modify RESET->RTS" };

	return refused_modifies(IBV_QPS_RESET, &m, 1);
}

static int c_init_to_rts(void)
{
	static const struct bad_modify m = { IBV_QPS_RTS, 0, 0, "modify INIT->RTS" };

	return refused_modifies(IBV_QPS_INIT, &m, 1);
}

static int c_init_bad_port(void)
{
	static const struct bad_modify m = { IBV_QPS_INIT, 0, 2,
					     "modify RESET->INIT with port_num 2" };

	return refused_modifies(IBV_QPS_RESET, &m, 1);
}

static int c_rtr_without_av(void)
{
	static const struct bad_modify m[] = {
		{ IBV_QPS_RTR, IBV_QP_AV, 0, "modify INIT->RTR without IBV_QP_AV" },
		{ IBV_QPS_RTR, IBV_QP_DEST_QPN, 0, "modify INIT->RTR without IBV_QP_DEST_QPN" },
	};

	return refused_modifies(IBV_QPS_INIT, m, 2);
}

/* post_send in a state before RTS: refused at the first WR, nothing posted. */
static int post_send_early(enum ibv_qp_state state)
{
	struct pair_opts o = opts_default();
	struct ibv_send_wr wr[2], *bad = NULL;
	struct ibv_sge sge[2];
	struct mbuf loc = {0}, rem = {0};
	struct pair p;
	int rc = 0, rv;

	if (pair_create(&p, &o))
		return 1;
	REQUIRE(!mbuf_get(&loc, NULL, PG, ACCESS_ALL) && !mbuf_get(&rem, NULL, PG, ACCESS_ALL),
		"set-up failed");
	for (int i = 0; i < 2; i++) {
		rv = qp_bring_up(p.qp[i], p.qp[1 - i]->qp_num, ACCESS_ALL, 7,
				 i == 0 ? state : IBV_QPS_RTS);
		REQUIRE(!rv, "bringing QP %d up: %s", i, errno_str(rv));
	}
	wr_make(&wr[0], &sge[0], 0xea1, IBV_WR_RDMA_WRITE, &loc, 0, 64, &rem, 0);
	wr_make(&wr[1], &sge[1], 0xea2, IBV_WR_RDMA_WRITE, &loc, 64, 64, &rem, 64);
	wr_chain(wr, 2);
	rv = ibv_post_send(p.qp[0], wr, &bad);
	CHECK(rv == EINVAL, "ibv_post_send in %s returned %s, expected EINVAL", state_str(state),
	      errno_str(rv));
	CHECK(bad == &wr[0], "bad_wr is %s, expected the first WR",
	      bad == &wr[1] ? "the second WR" : bad ? "not a WR of the chain" : "NULL");
	rc |= expect_none(p.cq[0], cq_name[0], 100);
	rc |= qp0_still(&p, state, "the refused post");
	/* nothing was queued: in RTS nothing runs */
	rv = qp_bring_up(p.qp[0], p.qp[1]->qp_num, ACCESS_ALL, 7, IBV_QPS_RTS);
	REQUIRE(!rv, "bringing QP 0 up to RTS after the refused post: %s", errno_str(rv));
	rc |= expect_none(p.cq[0], cq_name[0], 100);
	CHECK(all_are(rem.p, PG, FILL), "the refused WRs wrote to the remote MR");
out:
	rc |= mbuf_put(&rem);
	rc |= mbuf_put(&loc);
	rc |= pair_destroy(&p);
	return rc;
}

static int c_post_send_reset(void) { return post_send_early(IBV_QPS_RESET); }
static int c_post_send_init(void) { return post_send_early(IBV_QPS_INIT); }
static int c_post_send_rtr(void) { return post_send_early(IBV_QPS_RTR); }

static int c_post_recv_reset(void)
{
	struct pair_opts o = opts_default();
	struct ibv_recv_wr wr[2], *bad = NULL;
	struct ibv_sge sge[2];
	struct mbuf b = {0};
	struct pair p;
	int rc = 0, rv;

	if (pair_create(&p, &o))
		return 1;
	REQUIRE(!mbuf_get(&b, NULL, PG, ACCESS_ALL), "set-up failed");
	memset(wr, 0, sizeof(wr));
	for (int i = 0; i < 2; i++) {
		sge[i] = (struct ibv_sge){ (uintptr_t)b.p + 64 * i, 64, b.mr->lkey };
		wr[i].wr_id = 0xec1 + i;
		wr[i].sg_list = &sge[i];
		wr[i].num_sge = 1;
		wr[i].next = i ? NULL : &wr[1];
	}
	rv = ibv_post_recv(p.qp[0], wr, &bad);
	CHECK(rv == EINVAL, "ibv_post_recv in RESET returned %s, expected EINVAL", errno_str(rv));
	CHECK(bad == &wr[0], "bad_wr is %s, expected the first WR",
	      bad == &wr[1] ? "the second WR" : bad ? "not a WR of the chain" : "NULL");
	/* nothing was posted: once the QP works, moving it to ERR flushes nothing */
	rc |= still_works(&p);
	{
		struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };

		rv = ibv_modify_qp(p.qp[0], &a, IBV_QP_STATE);
		CHECK(!rv, "modify RTS->ERR: %s", errno_str(rv));
	}
	rc |= expect_none(p.cq[0], cq_name[0], 100);
out:
	rc |= mbuf_put(&b);
	rc |= pair_destroy(&p);
	return rc;
}

static int c_too_many_sge(void)
{
	struct pair_opts o = opts_default();
	struct ibv_send_wr wr[4], *bad = NULL;
	struct ibv_sge sge[4][64];
	struct ibv_qp_attr qa;
	struct ibv_qp_init_attr qia;
	struct mbuf loc = {0}, rem = {0};
	struct pair p;
	uint32_t max;
	int rc = 0, rv;

	if (pair_up(&p, &o))
		return 1;
	REQUIRE(!mbuf_get(&loc, NULL, PG, ACCESS_ALL) && !mbuf_get(&rem, NULL, PG, ACCESS_ALL),
		"set-up failed");
	rv = ibv_query_qp(p.qp[0], &qa, IBV_QP_CAP, &qia);
	REQUIRE(!rv, "ibv_query_qp: %s", errno_str(rv));
	max = qia.cap.max_send_sge;
	REQUIRE(max >= 1 && max < 63, "QP 0 reports max_send_sge %u", max);
	memset(loc.p, DATA, PG);
	for (int i = 0; i < 4; i++) {
		uint32_t n = i == 2 ? max + 1 : 1;

		wr_make(&wr[i], &sge[i][0], 0xf01 + i, IBV_WR_RDMA_WRITE, &loc, 0, 8, &rem,
			64 * i);
		for (uint32_t k = 0; k < n; k++)
			sge[i][k] = (struct ibv_sge){ (uintptr_t)loc.p + 8 * k, 8, loc.mr->lkey };
		wr[i].num_sge = (int)n;
	}
	wr_chain(wr, 4);
	rv = ibv_post_send(p.qp[0], wr, &bad);
	CHECK(rv == EINVAL, "ibv_post_send with num_sge %u > max_send_sge %u returned %s, "
	      "expected EINVAL", max + 1, max, errno_str(rv));
	CHECK(bad == &wr[2], "bad_wr is WR %ld of the chain, expected WR 2 (the one with too many "
	      "SGEs)", bad ? (long)(bad - wr) : -1L);
	/* the two before it were posted and run */
	for (int i = 0; i < 2; i++)
		rc |= !!expect_wc(p.cq[0], cq_name[0], 0xf01 + i, IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE,
				  -1, p.qp[0]);
	rc |= expect_none(p.cq[0], cq_name[0], 100);
	CHECK(all_are(rem.p, 8, DATA) && all_are(rem.p + 64, 8, DATA),
	      "the WRs before the bad one did not write");
	CHECK(all_are(rem.p + 128, PG - 128, FILL), "the bad WR or the one after it wrote");
	rc |= qp0_still(&p, IBV_QPS_RTS, "the refused post");
	rc |= smoke_write(&p, "after the refused post");
out:
	rc |= mbuf_put(&rem);
	rc |= mbuf_put(&loc);
	rc |= pair_destroy(&p);
	return rc;
}

static int c_bad_opcode(void)
{
	struct pair_opts o = opts_default();
	struct ibv_send_wr wr[2], *bad = NULL;
	struct ibv_sge sge[2];
	struct mbuf loc = {0}, rem = {0};
	struct pair p;
	int rc = 0, rv;
	static const struct {
		enum ibv_wr_opcode op;
		const char *name;
	} ops[] = {
		{ IBV_WR_ATOMIC_CMP_AND_SWP, "IBV_WR_ATOMIC_CMP_AND_SWP into 4 bytes" },
		{ IBV_WR_ATOMIC_FETCH_AND_ADD, "IBV_WR_ATOMIC_FETCH_AND_ADD into 4 bytes" },
		{ (enum ibv_wr_opcode)0x7f, "opcode 0x7f" },
	};

	if (pair_up(&p, &o))
		return 1;
	REQUIRE(!mbuf_get(&loc, NULL, PG, ACCESS_ALL) && !mbuf_get(&rem, NULL, PG, ACCESS_ALL),
		"set-up failed");
	memset(loc.p, DATA, PG);
	for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
		/* a valid WRITE, then the bad one: the WRITE is posted and runs */
		int first = k < 2 ? 0 : 1;

		wr_make(&wr[0], &sge[0], 0xf10 + 2 * k, IBV_WR_RDMA_WRITE, &loc, 0, 8, &rem,
			64 * k);
		/* an atomic's result buffer is 8 bytes, never anything else */
		wr_make(&wr[1], &sge[1], 0xf11 + 2 * k, ops[k].op, &loc, 0, 4, NULL, 0);
		wr[1].wr.atomic.remote_addr = (uintptr_t)rem.p + 2048 + 64 * k;
		wr[1].wr.atomic.rkey = rem.mr->rkey;
		wr[1].wr.atomic.compare_add = 0x5a5a5a5a5a5a5a5aULL;
		wr[1].wr.atomic.swap = 1;
		wr_chain(&wr[first], 2 - first);
		bad = NULL;
		rv = ibv_post_send(p.qp[0], &wr[first], &bad);
		CHECK(rv == EINVAL, "ibv_post_send of %s returned %s, expected EINVAL", ops[k].name,
		      errno_str(rv));
		CHECK(bad == &wr[1], "%s: bad_wr is %s, expected that WR", ops[k].name,
		      bad == &wr[0] ? "the WRITE before it" : bad ? "not a WR posted" : "NULL");
		if (!first)
			rc |= !!expect_wc(p.cq[0], cq_name[0], 0xf10 + 2 * k, IBV_WC_SUCCESS,
					  IBV_WC_RDMA_WRITE, -1, p.qp[0]);
		rc |= expect_none(p.cq[0], cq_name[0], 50);
		CHECK(all_are(rem.p + 2048, PG - 2048, FILL), "%s changed the remote MR",
		      ops[k].name);
	}
	rc |= qp0_still(&p, IBV_QPS_RTS, "the refused posts");
	rc |= smoke_write(&p, "after the refused posts");
out:
	rc |= mbuf_put(&rem);
	rc |= mbuf_put(&loc);
	rc |= pair_destroy(&p);
	return rc;
}

static int c_inline(void)
{
	struct pair_opts o = opts_default();
	struct ibv_send_wr wr, *bad = NULL;
	struct ibv_sge sge;
	struct ibv_qp_attr qa;
	struct ibv_qp_init_attr qia;
	struct mbuf rb = {0};
	struct pair p;
	uint8_t data[1024];
	uint32_t max;
	int rc = 0, rv;

	if (pair_up(&p, &o))
		return 1;
	REQUIRE(!mbuf_get(&rb, NULL, PG, ACCESS_ALL), "set-up failed");
	rv = ibv_query_qp(p.qp[0], &qa, IBV_QP_CAP, &qia);
	REQUIRE(!rv, "ibv_query_qp: %s", errno_str(rv));
	/* the QP was made with max_inline_data 0: what it reports is what its WQEs hold */
	max = qia.cap.max_inline_data;
	REQUIRE(max + 1 <= sizeof(data), "QP 0 reports max_inline_data %u", max);
	diag("QP 0 (made with max_inline_data 0) reports max_inline_data %u", max);
	rv = post_recv1(p.qp[1], 0x1c0, &rb, 0, PG);
	REQUIRE(!rv, "ibv_post_recv: %s", errno_str(rv));
	memset(data, DATA, sizeof(data));
	memset(&wr, 0, sizeof(wr));
	sge = (struct ibv_sge){ (uintptr_t)data, max + 1, 0 };
	wr.wr_id = 0x1c1;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = IBV_WR_SEND;
	wr.send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE;
	rv = ibv_post_send(p.qp[0], &wr, &bad);
	CHECK(rv == EINVAL, "ibv_post_send with IBV_SEND_INLINE of max_inline_data + 1 bytes "
	      "returned %s, expected EINVAL", errno_str(rv));
	CHECK(bad == &wr, "bad_wr is not the inline WR");
	rc |= expect_none(p.cq[0], cq_name[0], 100);
	rc |= expect_none(p.cq[1], cq_name[1], 0);
	CHECK(all_are(rb.p, PG, FILL), "the refused inline SEND reached the receive buffer");
	rc |= qp0_still(&p, IBV_QPS_RTS, "the refused post");
out:
	rc |= mbuf_put(&rb);
	rc |= pair_destroy(&p);
	return rc;
}

static int c_mr_remote_write_no_local_write(void)
{
	void *b = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int rc = 0, flags[] = { IBV_ACCESS_REMOTE_WRITE,
				IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ };

	if (b == MAP_FAILED)
		return 1;
	memset(b, FILL, PG);
	for (int i = 0; i < 2; i++) {
		struct ibv_mr *mr;

		errno = 0;
		mr = ibv_reg_mr(g.pd, b, PG, flags[i]);
		CHECK(!mr && errno == EINVAL, "ibv_reg_mr with access %#x: %s, expected EINVAL",
		      flags[i], mr ? "registered" : errno_str(errno));
		if (mr)
			ibv_dereg_mr(mr);
	}
	munmap(b, PG);
	return rc;
}

static int c_mr_zero_length(void)
{
	void *b = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ibv_mr *mr;
	int rc = 0;

	if (b == MAP_FAILED)
		return 1;
	memset(b, FILL, PG);
	errno = 0;
	mr = ibv_reg_mr(g.pd, b, 0, IBV_ACCESS_LOCAL_WRITE);
	CHECK(!mr && errno == EINVAL, "ibv_reg_mr of length 0: %s, expected EINVAL",
	      mr ? "registered" : errno_str(errno));
	if (mr)
		ibv_dereg_mr(mr);
	munmap(b, PG);
	return rc;
}

static int c_mr_unmapped(void)
{
	/* 8 pages: map them, then unmap them all (a hole), or the last 4 only */
	uint8_t *b = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			  0);
	long pin0 = vmpin_kb(), pin1;
	struct ibv_mr *mr;
	int rc = 0;

	if (b == MAP_FAILED)
		return 1;
	memset(b, FILL, 8 * PG);
	munmap(b + 4 * PG, 4 * PG);
	/* all unmapped */
	errno = 0;
	mr = ibv_reg_mr(g.pd, b + 4 * PG, 4 * PG, IBV_ACCESS_LOCAL_WRITE);
	CHECK(!mr && errno == EFAULT, "pinned ibv_reg_mr over an unmapped range: %s, "
	      "expected EFAULT", mr ? "registered" : errno_str(errno));
	if (mr)
		ibv_dereg_mr(mr);
	/* the first half mapped (and resident), the rest not */
	errno = 0;
	mr = ibv_reg_mr(g.pd, b, 8 * PG, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	CHECK(!mr && errno == EFAULT, "pinned ibv_reg_mr over a half-unmapped range: %s, "
	      "expected EFAULT", mr ? "registered" : errno_str(errno));
	if (mr)
		ibv_dereg_mr(mr);
	pin1 = vmpin_kb();
	CHECK(pin0 == pin1, "VmPin went from %ld kB to %ld kB over the failed registrations",
	      pin0, pin1);
	/* the mapped half still registers */
	mr = ibv_reg_mr(g.pd, b, 4 * PG, IBV_ACCESS_LOCAL_WRITE);
	CHECK(mr, "ibv_reg_mr over the mapped half: %s", errno_str(errno));
	if (mr)
		ibv_dereg_mr(mr);
	munmap(b, 4 * PG);
	return rc;
}

static int c_qp_too_many_wr(void)
{
	struct ibv_cq *cq = ibv_create_cq(g.ctx, 16, NULL, NULL, 0);
	uint32_t max = (uint32_t)g.dattr.orig_attr.max_qp_wr;
	int rc = 0;

	if (!cq)
		return 1;
	for (int k = 0; k < 2; k++) {
		struct ibv_qp_init_attr ia;
		struct ibv_qp *qp;

		memset(&ia, 0, sizeof(ia));
		ia.send_cq = ia.recv_cq = cq;
		ia.qp_type = IBV_QPT_RC;
		ia.cap.max_send_wr = k == 0 ? max + 1 : 16;
		ia.cap.max_recv_wr = k == 1 ? max + 1 : 16;
		ia.cap.max_send_sge = ia.cap.max_recv_sge = 1;
		errno = 0;
		qp = ibv_create_qp(g.pd, &ia);
		CHECK(!qp && errno == EINVAL, "ibv_create_qp with max_%s_wr %u > max_qp_wr %u: %s, "
		      "expected EINVAL", k ? "recv" : "send", max + 1, max,
		      qp ? "created" : errno_str(errno));
		if (qp)
			ibv_destroy_qp(qp);
	}
	rc |= ibv_destroy_cq(cq) ? 1 : 0;
	return rc;
}

static int c_qp_raw(void)
{
	struct ibv_cq *cq = ibv_create_cq(g.ctx, 16, NULL, NULL, 0);
	struct ibv_qp_init_attr ia;
	struct ibv_qp *qp;
	int rc = 0;

	if (!cq)
		return 1;
	memset(&ia, 0, sizeof(ia));
	ia.send_cq = ia.recv_cq = cq;
	ia.qp_type = IBV_QPT_RAW_PACKET;
	ia.cap.max_send_wr = ia.cap.max_recv_wr = 16;
	ia.cap.max_send_sge = ia.cap.max_recv_sge = 1;
	errno = 0;
	qp = ibv_create_qp(g.pd, &ia);
	CHECK(!qp && (errno == EOPNOTSUPP || errno == EINVAL),
	      "ibv_create_qp of type RAW_PACKET on a device without Ethernet QPs: %s, expected "
	      "EOPNOTSUPP or EINVAL", qp ? "created" : errno_str(errno));
	if (qp)
		ibv_destroy_qp(qp);
	rc |= ibv_destroy_cq(cq) ? 1 : 0;
	return rc;
}

static int bad_cq(int cqe)
{
	struct ibv_cq *cq;
	int rc = 0;

	errno = 0;
	cq = ibv_create_cq(g.ctx, cqe, NULL, NULL, 0);
	CHECK(!cq && errno == EINVAL, "ibv_create_cq with cqe %d (max_cqe %d): %s, expected EINVAL",
	      cqe, g.dattr.orig_attr.max_cqe, cq ? "created" : errno_str(errno));
	if (cq)
		ibv_destroy_cq(cq);
	return rc;
}

static int c_cq_zero(void) { return bad_cq(0); }
static int c_cq_too_big(void) { return bad_cq(g.dattr.orig_attr.max_cqe + 1); }

/* ---- cases: work requests that must complete in error --------------------------------------- */

/*
 * The common frame: a connected pair (@o), a local buffer @loc (@lacc) and a remote one @rem
 * (@racc), both PG bytes. QP 0 posts [@bad, 2 followers] in one chain.
 */
struct frame {
	struct pair p;
	struct mbuf loc, rem;
	struct ibv_send_wr wr[3];
	struct ibv_sge sge[3];
};

static int frame_open(struct frame *f, const struct pair_opts *o, int lacc, int racc)
{
	memset(f, 0, sizeof(*f));
	if (pair_up(&f->p, o))
		return 1;
	if (mbuf_get(&f->loc, NULL, 2 * PG, lacc) || mbuf_get(&f->rem, NULL, 2 * PG, racc)) {
		mbuf_put(&f->loc);
		pair_destroy(&f->p);
		return 1;
	}
	memset(f->loc.p, DATA, PG);
	return 0;
}

static int frame_close(struct frame *f)
{
	int rc = 0;

	rc |= pair_destroy(&f->p);
	rc |= mbuf_put(&f->rem);
	rc |= mbuf_put(&f->loc);
	return rc;
}

/*
 * Posts f->wr[0] (already made, id 0xbad) with two followers that write into @fol_rem (a
 * valid MR of the responder), and checks the requester's side (check_requester_error).
 */
static int frame_run(struct frame *f, enum ibv_wc_status status, struct mbuf *fol_loc,
		     struct mbuf *fol_rem)
{
	struct ibv_send_wr *bad = NULL;
	int rc = 0, rv;

	followers(&f->wr[1], &f->sge[1], 2, 0xf0110, fol_loc, fol_rem);
	wr_chain(f->wr, 3);
	stage("posting the bad WR");
	rv = ibv_post_send(f->p.qp[0], f->wr, &bad);
	if (rv) {
		diag("ibv_post_send of the bad WR and its followers: %s (bad_wr is WR %ld); it "
		     "must be accepted and complete in error", errno_str(rv),
		     bad ? (long)(bad - f->wr) : -1L);
		return 1;
	}
	rc |= check_requester_error(&f->p, 0xbad, status, 2, 0xf0110, fol_loc, fol_rem);
	CHECK(all_are(fol_rem->p + 256, 16, FILL), "a flushed follower wrote to the remote MR");
	return rc;
}

/* The responder saw nothing of a requester-side error and is still in RTS. */
static int responder_untouched(struct frame *f)
{
	int rc = 0, s;

	rc |= expect_none(f->p.cq[1], cq_name[1], 0);
	s = qp_state(f->p.qp[1]);
	CHECK(s == IBV_QPS_RTS, "QP 1 (responder) is %s, expected RTS: the error was the "
	      "requester's alone", state_str(s));
	return rc;
}

/* For a remote (responder-detected) error: what became of the responder, for the record. */
static void responder_note(struct frame *f)
{
	struct ibv_wc wc;
	int s = qp_state(f->p.qp[1]);

	diag("note: after the responder-detected error QP 1 (responder) is %s", state_str(s));
	while (ibv_poll_cq(f->p.cq[1], 1, &wc) == 1)
		wc_print("note: QP 1 CQ", &wc);
}

/*
 * A SEND from @loff of the local buffer, its lkey ^ @lkey_xor, with QP 0's rnr_retry @rnr_retry
 * (-1: 7) and, with @recv, a receive of 1024 bytes posted: it completes with @status, and the
 * responder sees nothing of it.
 */
static int bad_send(int rnr_retry, bool recv, size_t loff, uint32_t lkey_xor,
		    enum ibv_wc_status status)
{
	struct pair_opts o = opts_default();
	struct frame f;
	int rc = 0;

	o.rnr_retry = rnr_retry;
	if (frame_open(&f, &o, ACCESS_ALL, ACCESS_ALL))
		return 1;
	if (recv)
		REQUIRE(!post_recv1(f.p.qp[1], 0x7ec, &f.rem, 0, 1024), "ibv_post_recv failed");
	wr_make(&f.wr[0], &f.sge[0], 0xbad, IBV_WR_SEND, &f.loc, loff, 64, NULL, 0);
	f.sge[0].lkey ^= lkey_xor;
	rc |= frame_run(&f, status, &f.loc, &f.rem);
	rc |= responder_untouched(&f);
	if (recv)
		CHECK(all_are(f.rem.p, 1024, FILL), "the SEND reached the receive buffer");
out:
	rc |= frame_close(&f);
	return rc;
}

/* same MR index, another key: no MR has this key */
static int c_send_bad_lkey(void) { return bad_send(-1, true, 0, 0x80, IBV_WC_LOC_PROT_ERR); }

/* the local MR is 2 pages; the SGE is its last 32 bytes and 32 after it */
static int c_send_beyond_mr(void)
{
	return bad_send(-1, true, 2 * PG - 32, 0, IBV_WC_LOC_PROT_ERR);
}

/*
 * An RDMA WRITE to @roff of a remote buffer registered with @racc, its rkey ^ @rkey_xor: it
 * completes with IBV_WC_REM_ACCESS_ERR and writes nothing (else @wrote). The followers write
 * to an MR of their own when the remote buffer refuses remote writes.
 */
static int bad_write(int racc, size_t roff, uint32_t rkey_xor, const char *wrote)
{
	struct pair_opts o = opts_default();
	struct mbuf ok = {0};
	struct frame f;
	int rc = 0;

	if (frame_open(&f, &o, ACCESS_ALL, racc))
		return 1;
	if (racc != ACCESS_ALL)
		REQUIRE(!mbuf_get(&ok, NULL, PG, ACCESS_ALL), "set-up failed");
	wr_make(&f.wr[0], &f.sge[0], 0xbad, IBV_WR_RDMA_WRITE, &f.loc, 0, 64, &f.rem, roff);
	f.wr[0].wr.rdma.rkey ^= rkey_xor;
	rc |= frame_run(&f, IBV_WC_REM_ACCESS_ERR, &f.loc, ok.mr ? &ok : &f.rem);
	CHECK(all_are(f.rem.p, 2 * PG, FILL), "%s", wrote);
	responder_note(&f);
out:
	rc |= frame_close(&f);
	if (ok.mr)
		rc |= mbuf_put(&ok);
	return rc;
}

/*
 * A FETCH_ADD at @roff of a remote buffer registered with @racc: it completes with @status
 * and leaves the remote buffer alone. The responder's QP allows atomics.
 */
static int bad_atomic(int racc, size_t roff, enum ibv_wc_status status, const char *wrote)
{
	struct pair_opts o = opts_default();
	struct mbuf ok = {0};
	struct frame f;
	int rc = 0;

	o.access[1] = ACCESS_ALL | IBV_ACCESS_REMOTE_ATOMIC;
	if (frame_open(&f, &o, ACCESS_ALL, racc))
		return 1;
	REQUIRE(!mbuf_get(&ok, NULL, PG, ACCESS_ALL), "set-up failed");
	wr_make(&f.wr[0], &f.sge[0], 0xbad, IBV_WR_ATOMIC_FETCH_AND_ADD, &f.loc, 0, 8, NULL, 0);
	f.wr[0].wr.atomic.remote_addr = (uintptr_t)f.rem.p + roff;
	f.wr[0].wr.atomic.rkey = f.rem.mr->rkey;
	f.wr[0].wr.atomic.compare_add = 0x0101010101010101ULL;
	rc |= frame_run(&f, status, &f.loc, &ok);
	CHECK(all_are(f.rem.p, 2 * PG, FILL), "%s", wrote);
	/* the responder found the error: it leaves RTS, as for a bad rkey */
	CHECK(qp_state(f.p.qp[1]) == IBV_QPS_ERR, "QP 1 (responder) is %s, expected ERR",
	      state_str(qp_state(f.p.qp[1])));
	responder_note(&f);
out:
	rc |= frame_close(&f);
	if (ok.mr)
		rc |= mbuf_put(&ok);
	return rc;
}

/* an atomic's word is 8-byte aligned: at offset 4 the request is invalid */
static int c_atomic_misaligned(void)
{
	return bad_atomic(ACCESS_ALL | IBV_ACCESS_REMOTE_ATOMIC, 4, IBV_WC_REM_INV_REQ_ERR,
			  "the misaligned FETCH_ADD changed the remote MR");
}

/*
 * An MR whose iova and address differ within a page would let an aligned iova name a word
 * that is not aligned in memory (and may cross a page). Registration refuses it (EINVAL):
 * the iova must keep the address's offset in its page. The engine checks the word in
 * memory as well, for in-kernel users.
 */
static int c_reg_mr_iova_offset(void)
{
	struct mbuf b = {0};
	struct ibv_mr *mr;
	int rc = 0;

	REQUIRE(!mbuf_get(&b, NULL, 2 * PG, ACCESS_ALL), "set-up failed");
	errno = 0;
	mr = ibv_reg_mr_iova(g.pd, b.p + PG - 4, PG, 0x10000,
			     ACCESS_ALL | IBV_ACCESS_REMOTE_ATOMIC);
	CHECK(!mr && errno == EINVAL, "ibv_reg_mr_iova with the iova at another offset in its page "
	      "than the address: %s, expected EINVAL", mr ? "registered" : errno_str(errno));
	if (mr)
		ibv_dereg_mr(mr);
out:
	rc |= mbuf_put(&b);
	return rc;
}

static int c_atomic_no_remote_atomic(void)
{
	return bad_atomic(ACCESS_ALL, 0, IBV_WC_REM_ACCESS_ERR,
			  "the FETCH_ADD to an MR without REMOTE_ATOMIC changed it");
}

static int c_write_bad_rkey(void)
{
	return bad_write(ACCESS_ALL, 0, 0x80, "the WRITE with a bad rkey wrote");
}

static int c_write_no_remote_write(void)
{
	return bad_write(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ, 0, 0,
			 "the WRITE to an MR without REMOTE_WRITE wrote");
}

/* the remote MR is 2 pages: its last 32 bytes and 32 after it */
static int c_write_past_end(void)
{
	return bad_write(ACCESS_ALL, 2 * PG - 32, 0, "the WRITE past the end of the MR wrote");
}

/*
 * The responder's side of a remote access error (an R_Key violation: IB class C): the
 * responder QP goes to the error state too, flushing its receive queue.
 */
static int c_responder_err(void)
{
	struct pair_opts o = opts_default();
	struct frame f;
	int rc = 0, rv, s;

	if (frame_open(&f, &o, ACCESS_ALL, ACCESS_ALL))
		return 1;
	REQUIRE(!post_recv1(f.p.qp[1], 0x7e1, &f.rem, PG, 64), "ibv_post_recv failed");
	wr_make(&f.wr[0], &f.sge[0], 0xbad, IBV_WR_RDMA_WRITE, &f.loc, 0, 64, &f.rem, 0);
	f.wr[0].wr.rdma.rkey ^= 0x80;
	rc |= frame_run(&f, IBV_WC_REM_ACCESS_ERR, &f.loc, &f.rem);
	stage("waiting for the responder's flush");
	rv = expect_wc(f.p.cq[1], cq_name[1], 0x7e1, IBV_WC_WR_FLUSH_ERR, -1, -1, f.p.qp[1]);
	rc |= !!rv;
	s = qp_state(f.p.qp[1]);
	CHECK(s == IBV_QPS_ERR, "QP 1 (responder) is %s after the R_Key violation it detected, "
	      "not ERR", state_str(s));
	CHECK(all_are(f.rem.p, 2 * PG, FILL), "the WRITE with a bad rkey wrote");
out:
	rc |= frame_close(&f);
	return rc;
}

static int c_read_no_local_write(void)
{
	struct pair_opts o = opts_default();
	struct mbuf ro = {0};
	struct frame f;
	int rc = 0;

	if (frame_open(&f, &o, ACCESS_ALL, ACCESS_ALL))
		return 1;
	/* local read only: no LOCAL_WRITE */
	REQUIRE(!mbuf_get(&ro, NULL, PG, 0), "set-up failed");
	memset(f.rem.p, DATA, 64);
	wr_make(&f.wr[0], &f.sge[0], 0xbad, IBV_WR_RDMA_READ, &ro, 0, 64, &f.rem, 0);
	rc |= frame_run(&f, IBV_WC_LOC_PROT_ERR, &f.loc, &f.rem);
	CHECK(all_are(ro.p, PG, FILL), "the READ wrote into the MR without LOCAL_WRITE");
	rc |= responder_untouched(&f);
out:
	rc |= frame_close(&f);
	rc |= mbuf_put(&ro);
	return rc;
}

static int c_send_too_long(void)
{
	struct pair_opts o = opts_default();
	struct frame f;
	int rc = 0, s;

	if (frame_open(&f, &o, ACCESS_ALL, ACCESS_ALL))
		return 1;
	/* two receives of 16 bytes; the SEND is 64 */
	REQUIRE(!post_recv1(f.p.qp[1], 0x7e1, &f.rem, 0, 16) &&
		!post_recv1(f.p.qp[1], 0x7e2, &f.rem, 1024, 16), "ibv_post_recv failed");
	wr_make(&f.wr[0], &f.sge[0], 0xbad, IBV_WR_SEND, &f.loc, 0, 64, NULL, 0);
	rc |= frame_run(&f, IBV_WC_REM_INV_REQ_ERR, &f.loc, &f.rem);
	/* the responder: the receive it used fails with LOC_LEN_ERR, the other is flushed */
	stage("waiting for the responder's completions");
	rc |= !!expect_wc(f.p.cq[1], cq_name[1], 0x7e1, IBV_WC_LOC_LEN_ERR, -1, -1, f.p.qp[1]);
	s = qp_state(f.p.qp[1]);
	CHECK(s == IBV_QPS_ERR, "QP 1 (responder) is %s right after its LOC_LEN_ERR completion, "
	      "not ERR", state_str(s));
	rc |= !!expect_wc(f.p.cq[1], cq_name[1], 0x7e2, IBV_WC_WR_FLUSH_ERR, -1, -1, f.p.qp[1]);
	rc |= expect_none(f.p.cq[1], cq_name[1], 0);
out:
	rc |= frame_close(&f);
	return rc;
}

/*
 * A SEND whose local SGE is bad, while the responder has no receive posted (and rnr_retry
 * is 7, retry forever): the requester reads its local buffer before anything reaches the
 * responder, so the local protection error comes first; an RNR wait (which needs a request
 * to have been sent) must not hide it.
 */
static int c_send_bad_lkey_no_recv(void)
{
	return bad_send(-1, false, 0, 0x80, IBV_WC_LOC_PROT_ERR);
}

/*
 * A SEND into a receive WQE the responder cannot write: its lkey names no MR (@odp false),
 * or it is an ODP MR whose memory was munmap()ed (@odp true). The responder's error: the
 * requester completes with IBV_WC_REM_OP_ERR, the receive WQE with IBV_WC_LOC_PROT_ERR, and
 * the responder QP is in ERR, its other receive flushed.
 */
static int recv_buffer_error(bool odp)
{
	struct pair_opts o = opts_default();
	struct ibv_recv_wr rwr[2], *rbad = NULL;
	struct ibv_sge rsge[2];
	struct ibv_mr *mr = NULL;
	uint8_t *t = MAP_FAILED;
	struct frame f;
	int rc = 0, rv, s;

	if (odp && !g.odp) {
		diag("the device reports no ODP support for RC WRITE");
		return 1;
	}
	if (frame_open(&f, &o, ACCESS_ALL, ACCESS_ALL))
		return 1;
	memset(rwr, 0, sizeof(rwr));
	if (odp) {
		t = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		REQUIRE(t != MAP_FAILED, "mmap: %s", strerror(errno));
		stage("registering the ODP MR");
		mr = ibv_reg_mr(g.pd, t, 4 * PG, ACCESS_ALL | IBV_ACCESS_ON_DEMAND);
		REQUIRE(mr, "ibv_reg_mr(ODP): %s", errno_str(errno));
		REQUIRE(!munmap(t + 2 * PG, 2 * PG), "munmap: %s", strerror(errno));
		rsge[0] = (struct ibv_sge){ (uintptr_t)t + 2 * PG, 1024, mr->lkey };
	} else {
		rsge[0] = (struct ibv_sge){ (uintptr_t)f.rem.p, 1024, f.rem.mr->lkey ^ 0x80 };
	}
	rsge[1] = (struct ibv_sge){ (uintptr_t)f.rem.p + 1024, 1024, f.rem.mr->lkey };
	for (int i = 0; i < 2; i++) {
		rwr[i].wr_id = 0x7e1 + i;
		rwr[i].sg_list = &rsge[i];
		rwr[i].num_sge = 1;
		rwr[i].next = i ? NULL : &rwr[1];
	}
	rv = ibv_post_recv(f.p.qp[1], rwr, &rbad);
	REQUIRE(!rv, "ibv_post_recv: %s", errno_str(rv));
	wr_make(&f.wr[0], &f.sge[0], 0xbad, IBV_WR_SEND, &f.loc, 0, 64, NULL, 0);
	rc |= frame_run(&f, IBV_WC_REM_OP_ERR, &f.loc, &f.rem);
	stage("waiting for the responder's completions");
	rv = expect_wc(f.p.cq[1], cq_name[1], 0x7e1, IBV_WC_LOC_PROT_ERR, -1, -1, f.p.qp[1]);
	rc |= !!rv;
	s = qp_state(f.p.qp[1]);
	CHECK(s == IBV_QPS_ERR, "QP 1 (responder) is %s after its receive failed, not ERR",
	      state_str(s));
	if (rv != 2) {
		rc |= !!expect_wc(f.p.cq[1], cq_name[1], 0x7e2, IBV_WC_WR_FLUSH_ERR, -1, -1,
				  f.p.qp[1]);
		rc |= expect_none(f.p.cq[1], cq_name[1], 0);
	}
	CHECK(all_are(f.rem.p, 2 * PG - 64, FILL), "the SEND landed in the responder's memory");
out:
	rc |= pair_destroy(&f.p);
	if (mr) {
		stage("deregistering the ODP MR");
		rv = ibv_dereg_mr(mr);
		CHECK(!rv, "ibv_dereg_mr of the ODP MR: %s", errno_str(rv));
	}
	if (t != MAP_FAILED)
		munmap(t, 2 * PG);
	rc |= frame_close(&f);
	return rc;
}

static int c_recv_bad_lkey(void) { return recv_buffer_error(false); }
static int c_odp_munmap_recv(void) { return recv_buffer_error(true); }

static int c_rnr_retry_0(void) { return bad_send(0, false, 0, 0, IBV_WC_RNR_RETRY_EXC_ERR); }

/*
 * An MR of another PD than the QPs' (g.pd): as the local buffer of a WRITE (@remote false),
 * or as its target, through its rkey (@remote true).
 */
static int mr_other_pd(bool remote)
{
	struct pair_opts o = opts_default();
	struct ibv_pd *pd2 = ibv_alloc_pd(g.ctx);
	struct mbuf other = {0};
	struct frame f;
	int rc = 0;

	if (!pd2) {
		diag("ibv_alloc_pd: %s", errno_str(errno));
		return 1;
	}
	if (frame_open(&f, &o, ACCESS_ALL, ACCESS_ALL)) {
		ibv_dealloc_pd(pd2);
		return 1;
	}
	REQUIRE(!mbuf_get(&other, pd2, PG, ACCESS_ALL), "set-up failed");
	if (remote) {
		wr_make(&f.wr[0], &f.sge[0], 0xbad, IBV_WR_RDMA_WRITE, &f.loc, 0, 64, &other, 0);
		rc |= frame_run(&f, IBV_WC_REM_ACCESS_ERR, &f.loc, &f.rem);
		CHECK(all_are(other.p, PG, FILL), "the WRITE to another PD's MR wrote");
		responder_note(&f);
	} else {
		memset(other.p, DATA, PG);
		wr_make(&f.wr[0], &f.sge[0], 0xbad, IBV_WR_RDMA_WRITE, &other, 0, 64, &f.rem, 0);
		rc |= frame_run(&f, IBV_WC_LOC_PROT_ERR, &f.loc, &f.rem);
		CHECK(all_are(f.rem.p, 256, FILL), "the WRITE from another PD's MR wrote");
		rc |= responder_untouched(&f);
	}
out:
	rc |= frame_close(&f);
	rc |= mbuf_put(&other);
	CHECK(!ibv_dealloc_pd(pd2), "ibv_dealloc_pd of the other PD failed");
	return rc;
}

/* QPs in g.pd; an MR of another PD as the local buffer of a WRITE. */
static int c_local_mr_other_pd(void) { return mr_other_pd(false); }
/* The responder QP in g.pd; an rkey of an MR of another PD as the WRITE's target. */
static int c_remote_mr_other_pd(void) { return mr_other_pd(true); }

/*
 * An ODP MR of the responder over memory a WRITE cannot reach: with @munmap_part, four
 * pages of which the last two are munmap()ed after a first, successful WRITE; without it, a
 * PROT_READ mapping. A WRITE there must complete with IBV_WC_REM_ACCESS_ERR. With
 * @implicit the MR is an implicit one (the whole address space) rather than of the pages.
 */
static int odp_target(bool munmap_part, bool implicit)
{
	struct pair_opts o = opts_default();
	struct ibv_send_wr wr, *bad = NULL;
	struct ibv_sge sge;
	struct ibv_mr *mr = NULL;
	struct mbuf odp = {0};
	struct frame f;
	uint8_t *t;
	int rc = 0, rv;

	if (!g.odp) {
		diag("the device reports no ODP support for RC WRITE");
		return 1;
	}
	if (frame_open(&f, &o, ACCESS_ALL, ACCESS_ALL))
		return 1;
	t = mmap(NULL, 4 * PG, munmap_part ? PROT_READ | PROT_WRITE : PROT_READ,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(t != MAP_FAILED, "mmap: %s", strerror(errno));
	stage("registering the ODP MR");
	if (implicit)
		mr = ibv_reg_mr(g.pd, NULL, SIZE_MAX, ACCESS_ALL | IBV_ACCESS_ON_DEMAND);
	else
		mr = ibv_reg_mr(g.pd, t, 4 * PG, ACCESS_ALL | IBV_ACCESS_ON_DEMAND);
	if (!mr) {
		diag("ibv_reg_mr(ODP, %s mapping): %s", munmap_part ? "read-write" : "PROT_READ",
		     errno_str(errno));
		munmap(t, 4 * PG);
		rc = 1;
		goto out;
	}
	odp.p = t;
	odp.mr = mr;
	if (munmap_part) {
		/* the MR works ... */
		wr_make(&wr, &sge, 0x0d1, IBV_WR_RDMA_WRITE, &f.loc, 0, 256, &odp, PG - 128);
		stage("a valid WRITE to the ODP MR");
		rv = ibv_post_send(f.p.qp[0], &wr, &bad);
		REQUIRE(!rv, "ibv_post_send: %s", errno_str(rv));
		REQUIRE(!expect_wc(f.p.cq[0], cq_name[0], 0x0d1, IBV_WC_SUCCESS, IBV_WC_RDMA_WRITE,
				   -1, f.p.qp[0]), "a WRITE to the ODP MR before the munmap failed");
		CHECK(all_are(t + PG - 128, 256, DATA), "the WRITE to the ODP MR did not land");
		/* ... until half of its memory goes away */
		REQUIRE(!munmap(t + 2 * PG, 2 * PG), "munmap: %s", strerror(errno));
	}
	/* into the unmapped (or read-only) part, crossing a page boundary */
	wr_make(&f.wr[0], &f.sge[0], 0xbad, IBV_WR_RDMA_WRITE, &f.loc, 0, 256, &odp,
		3 * PG - 100);
	rc |= frame_run(&f, IBV_WC_REM_ACCESS_ERR, &f.loc, &f.rem);
	if (!munmap_part)
		CHECK(all_are(t, 4 * PG, 0), "the PROT_READ mapping under the ODP MR changed");
	responder_note(&f);
out:
	/* the QPs go first, then the MR over memory that is partly gone */
	rc |= pair_destroy(&f.p);
	if (mr) {
		stage("deregistering the ODP MR");
		rv = ibv_dereg_mr(mr);
		CHECK(!rv, "ibv_dereg_mr of the ODP MR: %s", errno_str(rv));
		munmap(t, munmap_part ? 2 * PG : 4 * PG);
	}
	rc |= frame_close(&f);
	return rc;
}

static int c_odp_munmap(void) { return odp_target(true, false); }
static int c_odp_readonly(void) { return odp_target(false, false); }
static int c_implicit_munmap(void) { return odp_target(true, true); }

static int c_implicit_iova(void)
{
	struct ibv_mr *mr;
	int rc = 0;

	/* the whole address space, where an iova is the address: no other iova fits */
	errno = 0;
	mr = ibv_reg_mr_iova(g.pd, NULL, SIZE_MAX, 1ul << 20, ACCESS_ALL | IBV_ACCESS_ON_DEMAND);
	CHECK(!mr && errno == EINVAL, "implicit ODP ibv_reg_mr_iova with iova 1 MiB: %s, "
	      "expected EINVAL", mr ? "registered" : errno_str(errno));
	if (mr)
		ibv_dereg_mr(mr);
	return rc;
}

/*
 * Shared receive queues: sizes refused at creation, resizing and a limit above the size
 * refused; a QP with an SRQ refuses receives of its own; an SRQ in use cannot be destroyed;
 * an armed limit fires once when the WQEs left fall below it, then is disarmed; and the
 * SENDs landed, byte for byte, in the SRQ's buffers.
 */
static int c_srq(void)
{
	struct ibv_srq_init_attr sa = { .attr = { .max_wr = 0, .max_sge = 1 } };
	struct pair_opts o = opts_default();
	struct mbuf loc = {0}, rem = {0};
	struct ibv_srq_attr qa, ma;
	struct ibv_srq *srq = NULL;
	struct pair p = {0};
	int rc = 0, rv;

	errno = 0;
	srq = ibv_create_srq(g.pd, &sa);
	CHECK(!srq && errno == EINVAL, "ibv_create_srq with max_wr 0: %s, expected EINVAL",
	      srq ? "created" : errno_str(errno));
	if (srq)
		ibv_destroy_srq(srq);
	sa.attr.max_wr = (uint32_t)g.dattr.orig_attr.max_srq_wr + 1;
	errno = 0;
	srq = ibv_create_srq(g.pd, &sa);
	CHECK(!srq && errno == EINVAL, "ibv_create_srq with max_wr %u > max_srq_wr: %s, expected "
	      "EINVAL", sa.attr.max_wr, srq ? "created" : errno_str(errno));
	if (srq)
		ibv_destroy_srq(srq);
	sa.attr.max_wr = 8;
	srq = ibv_create_srq(g.pd, &sa);
	REQUIRE(srq, "ibv_create_srq with max_wr 8: %s", errno_str(errno));

	memset(&ma, 0, sizeof(ma));
	ma.max_wr = 16;
	rv = ibv_modify_srq(srq, &ma, IBV_SRQ_MAX_WR);
	CHECK(rv == EINVAL, "ibv_modify_srq(IBV_SRQ_MAX_WR): %s, expected EINVAL", errno_str(rv));
	ma.srq_limit = 9;
	rv = ibv_modify_srq(srq, &ma, IBV_SRQ_LIMIT);
	CHECK(rv == EINVAL, "ibv_modify_srq(IBV_SRQ_LIMIT 9) of an SRQ of 8: %s, expected EINVAL",
	      errno_str(rv));

	o.srq[1] = srq;
	REQUIRE(!pair_up(&p, &o), "set-up of a pair whose responder uses the SRQ failed");
	REQUIRE(!mbuf_get(&loc, NULL, PG, ACCESS_ALL) && !mbuf_get(&rem, NULL, PG, ACCESS_ALL),
		"set-up failed");
	memset(loc.p, DATA, PG);
	rv = post_recv1(p.qp[1], 0x5e0, &rem, 0, 64);
	CHECK(rv == EINVAL, "ibv_post_recv on a QP with an SRQ: %s, expected EINVAL",
	      errno_str(rv));
	rv = ibv_destroy_srq(srq);
	CHECK(rv == EBUSY, "ibv_destroy_srq of an SRQ a QP uses: %s, expected EBUSY",
	      errno_str(rv));
	if (!rv)
		srq = NULL;

	for (int i = 0; i < 4; i++) {
		struct ibv_sge sge = { (uintptr_t)rem.p + 128 * i, 100, rem.mr->lkey };
		struct ibv_recv_wr wr = { .wr_id = 0x5e1 + i, .sg_list = &sge, .num_sge = 1 }, *bad;

		REQUIRE(srq && !ibv_post_srq_recv(srq, &wr, &bad), "ibv_post_srq_recv failed");
	}
	ma.srq_limit = 3;
	rv = ibv_modify_srq(srq, &ma, IBV_SRQ_LIMIT);
	CHECK(!rv, "ibv_modify_srq(IBV_SRQ_LIMIT 3): %s", errno_str(rv));
	rv = ibv_query_srq(srq, &qa);
	CHECK(!rv && qa.srq_limit == 3 && qa.max_wr >= 8, "ibv_query_srq: %s, limit %u, max_wr "
	      "%u; expected the limit 3 and at least 8", errno_str(rv), qa.srq_limit, qa.max_wr);
	for (int i = 0; i < 2; i++) {
		struct ibv_send_wr wr, *bad = NULL;
		struct ibv_sge sge;

		wr_make(&wr, &sge, 0x5f0 + i, IBV_WR_SEND, &loc, 7 * i, 60 + i, NULL, 0);
		rv = ibv_post_send(p.qp[0], &wr, &bad);
		REQUIRE(!rv, "ibv_post_send: %s", errno_str(rv));
		rc |= !!expect_wc(p.cq[0], cq_name[0], 0x5f0 + i, IBV_WC_SUCCESS, IBV_WC_SEND, -1,
				  p.qp[0]);
		/* the SRQ hands out its WQEs in the order they were posted */
		rc |= !!expect_wc(p.cq[1], cq_name[1], 0x5e1 + i, IBV_WC_SUCCESS, IBV_WC_RECV,
				  60 + i, p.qp[1]);
		CHECK(all_are(rem.p + 128 * i, 60 + i, DATA) &&
		      all_are(rem.p + 128 * i + 60 + i, 128 - 60 - i, FILL),
		      "SEND %d did not land exactly in the SRQ's buffer %d", i, i);
	}
	rv = async_events(2, IBV_EVENT_SRQ_LIMIT_REACHED, srq, false);
	CHECK(rv == 1, "IBV_EVENT_SRQ_LIMIT_REACHED came %d times, expected once", rv);
	rv = ibv_query_srq(srq, &qa);
	CHECK(!rv && qa.srq_limit == 0, "after the event the limit is %u, expected 0 (disarmed)",
	      qa.srq_limit);
out:
	rc |= pair_destroy(&p);
	if (srq) {
		rv = ibv_destroy_srq(srq);
		CHECK(!rv, "ibv_destroy_srq: %s", errno_str(rv));
	}
	rc |= mbuf_put(&rem);
	rc |= mbuf_put(&loc);
	return rc;
}

/* The munmap side of the race: unmaps the region after a delay that varies per round. */
struct unmapper {
	uint8_t *p;
	size_t len;
	unsigned int delay_us;
};

static void *unmap_after(void *arg)
{
	struct unmapper *u = arg;

	usleep(u->delay_us);
	munmap(u->p, u->len);
	return NULL;
}

/*
 * munmap racing traffic (as hmm-tests do it): an implicit ODP MR, RDMA WRITEs of 64 KiB into
 * a fresh mapping while another thread unmaps it after a delay that sweeps across the
 * WRITE's duration. Each WRITE either completes (and, if the memory was still there, landed)
 * or fails with REM_ACCESS_ERR (then the pair is replaced); nothing else, no hang, and the
 * kernel stays quiet (the rig fails the test on any splat).
 */
static int c_munmap_race(void)
{
	enum { ROUNDS = 40, LEN = 256 << 10 };
	struct pair_opts o = opts_default();
	struct mbuf loc = {0};
	struct ibv_mr *mr = NULL;
	struct pair p = {0};
	int rc = 0, rv, ok = 0, refused = 0;

	if (!g.odp) {
		diag("the device reports no ODP support for RC WRITE");
		return 1;
	}
	REQUIRE(!mbuf_get(&loc, NULL, LEN, ACCESS_ALL), "set-up failed");
	memset(loc.p, DATA, LEN);
	mr = ibv_reg_mr(g.pd, NULL, SIZE_MAX, ACCESS_ALL | IBV_ACCESS_ON_DEMAND);
	REQUIRE(mr, "ibv_reg_mr (implicit ODP): %s", errno_str(errno));
	REQUIRE(!pair_up(&p, &o), "set-up of the pair failed");
	/* how long a WRITE into fresh memory takes here: the delays sweep across it */
	double took = 0;

	for (int r = 0; r < 3; r++) {
		uint8_t *m = mmap(NULL, LEN + PG, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct ibv_send_wr wr, *bad = NULL;
		struct ibv_sge sge = { (uintptr_t)loc.p, LEN, loc.mr->lkey };
		struct ibv_wc wc;
		double t0 = now();

		REQUIRE(m != MAP_FAILED, "mmap: %s", strerror(errno));
		memset(&wr, 0, sizeof(wr));
		wr.sg_list = &sge;
		wr.num_sge = 1;
		wr.opcode = IBV_WR_RDMA_WRITE;
		wr.send_flags = IBV_SEND_SIGNALED;
		wr.wr.rdma.remote_addr = (uintptr_t)m + 123;
		wr.wr.rdma.rkey = mr->rkey;
		REQUIRE(!ibv_post_send(p.qp[0], &wr, &bad) && wait_wc(p.cq[0], &wc, g.timeout) == 1 &&
			wc.status == IBV_WC_SUCCESS, "a WRITE into fresh memory failed");
		took += (now() - t0) / 3;
		CHECK(all_are(m + 123, LEN, DATA), "the WRITE did not land");
		munmap(m, LEN + PG);
	}
	diag("a WRITE of %d KiB into fresh memory takes %.0f us", LEN >> 10, took * 1e6);
	for (int r = 0; r < ROUNDS; r++) {
		struct unmapper u = { .len = LEN + PG,
				      .delay_us = (unsigned int)(took * 1.5e6 * r / ROUNDS) };
		struct ibv_send_wr wr, *bad = NULL;
		struct ibv_sge sge;
		struct ibv_wc wc;
		pthread_t t;

		u.p = mmap(NULL, u.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		REQUIRE(u.p != MAP_FAILED, "mmap: %s", strerror(errno));
		memset(&wr, 0, sizeof(wr));
		sge = (struct ibv_sge){ (uintptr_t)loc.p, LEN, loc.mr->lkey };
		wr.wr_id = 0x4ace + r;
		wr.sg_list = &sge;
		wr.num_sge = 1;
		wr.opcode = IBV_WR_RDMA_WRITE;
		wr.send_flags = IBV_SEND_SIGNALED;
		/* unaligned, across 65 pages */
		wr.wr.rdma.remote_addr = (uintptr_t)u.p + 123;
		wr.wr.rdma.rkey = mr->rkey;
		REQUIRE(!pthread_create(&t, NULL, unmap_after, &u), "pthread_create failed");
		rv = ibv_post_send(p.qp[0], &wr, &bad);
		pthread_join(t, NULL);
		REQUIRE(!rv, "round %d: ibv_post_send: %s", r, errno_str(rv));
		REQUIRE(wait_wc(p.cq[0], &wc, g.timeout) == 1, "round %d: no completion", r);
		if (wc.status == IBV_WC_SUCCESS) {
			ok++;
			continue;
		}
		CHECK(wc.status == IBV_WC_REM_ACCESS_ERR, "round %d: the WRITE completed with %s, "
		      "expected success or REM_ACCESS_ERR", r, ibv_wc_status_str(wc.status));
		refused++;
		rc |= pair_destroy(&p);
		REQUIRE(!pair_up(&p, &o), "round %d: replacing the pair failed", r);
	}
	diag("%d WRITEs completed, %d found their memory gone", ok, refused);
out:
	rc |= pair_destroy(&p);
	if (mr) {
		rv = ibv_dereg_mr(mr);
		CHECK(!rv, "ibv_dereg_mr: %s", errno_str(rv));
	}
	rc |= mbuf_put(&loc);
	return rc;
}

static int c_cq_overflow(void)
{
	struct pair_opts o = opts_default();
	struct ibv_send_wr wr[16], *bad = NULL;
	struct ibv_sge sge[16];
	struct ibv_wc wc[8];
	struct frame f;
	int rc = 0, rv, n, s, events;
	bool failed = false;
	double end;

	o.cqe[0] = 4;
	if (frame_open(&f, &o, ACCESS_ALL, ACCESS_ALL))
		return 1;
	REQUIRE(f.p.cq[0]->cqe >= 4 && f.p.cq[0]->cqe < 16, "CQ 0 has %d entries", f.p.cq[0]->cqe);
	/* 16 signaled WRITEs; the last one writes the marker the program waits for */
	for (int i = 0; i < 16; i++)
		wr_make(&wr[i], &sge[i], 0x0f0 + i, IBV_WR_RDMA_WRITE, &f.loc, 0, 64, &f.rem, 64 * i);
	wr_chain(wr, 16);
	rv = ibv_post_send(f.p.qp[0], wr, &bad);
	REQUIRE(!rv, "ibv_post_send of 16 WRITEs: %s", errno_str(rv));
	stage("waiting for the 16 WRITEs to land");
	end = now() + g.timeout;
	while (!all_are(f.rem.p + 64 * 15, 64, DATA) && now() < end)
		usleep(1000);
	CHECK(all_are(f.rem.p + 64 * 15, 64, DATA), "the last WRITE did not land within %.0f s",
	      g.timeout);
	sleep_ms(100);
	/* the CQ overflowed: polling fails (or reports an error) */
	stage("polling the overflowed CQ");
	for (int k = 0; k < 8 && !failed; k++) {
		n = ibv_poll_cq(f.p.cq[0], 8, wc);
		if (n < 0) {
			failed = true;
			break;
		}
		for (int i = 0; i < n; i++)
			if (wc[i].status != IBV_WC_SUCCESS) {
				wc_print(cq_name[0], &wc[i]);
				failed = true;
			}
		if (n == 0)
			break;
	}
	CHECK(failed, "polling the CQ of 4 entries after 16 signaled completions neither failed "
	      "nor reported an error");
	stage("waiting for the CQ error event");
	events = async_events(g.timeout, IBV_EVENT_CQ_ERR, f.p.cq[0], true);
	CHECK(events == 1, "%d IBV_EVENT_CQ_ERR events for the overflowed CQ, expected 1", events);
	s = qp_state(f.p.qp[0]);
	diag("note: after the CQ overrun QP 0 is %s", state_str(s));
out:
	rc |= frame_close(&f);
	return rc;
}

/* A QP with work still posted, its CQ still referenced: the CQ cannot go before the QP. */
static int c_destroy_busy(void)
{
	struct pair_opts o = opts_default();
	struct ibv_send_wr wr[4], *bad = NULL;
	struct ibv_sge sge[4];
	struct frame f;
	int rc = 0, rv;

	if (frame_open(&f, &o, ACCESS_ALL, ACCESS_ALL))
		return 1;
	/* QP 0: SENDs that find no receive (RNR, retried forever) and receives; QP 1: receives
	 * after QP 0 is gone */
	for (int i = 0; i < 4; i++)
		wr_make(&wr[i], &sge[i], 0xd0 + i, IBV_WR_SEND, &f.loc, 64 * i, 64, NULL, 0);
	wr_chain(wr, 4);
	rv = ibv_post_send(f.p.qp[0], wr, &bad);
	REQUIRE(!rv, "ibv_post_send: %s", errno_str(rv));
	for (int i = 0; i < 4; i++)
		REQUIRE(!post_recv1(f.p.qp[0], 0xd8 + i, &f.loc, PG + 64 * i, 64),
			"ibv_post_recv failed");
	sleep_ms(50);
	rc |= expect_none(f.p.cq[0], cq_name[0], 0);

	for (int i = 0; i < 2; i++) {
		if (i == 1) {
			for (int k = 0; k < 4; k++)
				REQUIRE(!post_recv1(f.p.qp[1], 0xe8 + k, &f.rem, 64 * k, 64),
					"ibv_post_recv failed");
		}
		stage("destroying a CQ in use");
		rv = ibv_destroy_cq(f.p.cq[i]);
		CHECK(rv == EBUSY, "ibv_destroy_cq of CQ %d while QP %d uses it: %s, expected EBUSY",
		      i, i, errno_str(rv));
		if (!rv) {
			f.p.cq[i] = NULL;	/* gone, though its QP is not: stop here */
			goto out;
		}
		stage("destroying a QP with work posted");
		rv = ibv_destroy_qp(f.p.qp[i]);
		CHECK(!rv, "ibv_destroy_qp(QP %d) with work posted: %s", i, errno_str(rv));
		if (!rv)
			f.p.qp[i] = NULL;
		stage("destroying the CQ once its QP is gone");
		rv = ibv_destroy_cq(f.p.cq[i]);
		CHECK(!rv, "ibv_destroy_cq(CQ %d) after its QP: %s", i, errno_str(rv));
		if (!rv)
			f.p.cq[i] = NULL;
	}
out:
	rc |= frame_close(&f);
	return rc;
}

/*
 * The requester keeps retrying SENDs the responder has no receive for (RNR); the responder
 * QP is destroyed meanwhile. The requester must not hang: its SEND fails (no one answers any
 * more: transport retries exceeded), the rest is flushed, the QP is in ERR.
 */
static int c_destroy_peer_rnr(void)
{
	struct pair_opts o = opts_default();
	struct frame f;
	int rc = 0, rv;

	if (frame_open(&f, &o, ACCESS_ALL, ACCESS_ALL))
		return 1;
	wr_make(&f.wr[0], &f.sge[0], 0xbad, IBV_WR_SEND, &f.loc, 0, 64, NULL, 0);
	followers(&f.wr[1], &f.sge[1], 2, 0xf0110, &f.loc, &f.rem);
	wr_chain(f.wr, 3);
	struct ibv_send_wr *bad = NULL;

	rv = ibv_post_send(f.p.qp[0], f.wr, &bad);
	REQUIRE(!rv, "ibv_post_send: %s", errno_str(rv));
	sleep_ms(50);
	rc |= expect_none(f.p.cq[0], cq_name[0], 0);
	stage("destroying the responder QP");
	rv = ibv_destroy_qp(f.p.qp[1]);
	REQUIRE(!rv, "ibv_destroy_qp(QP 1): %s", errno_str(rv));
	f.p.qp[1] = NULL;
	stage("waiting for the requester's error completion");
	rc |= !!expect_wc(f.p.cq[0], cq_name[0], 0xbad, IBV_WC_RETRY_EXC_ERR, -1, -1, f.p.qp[0]);
	rv = qp_state(f.p.qp[0]);
	CHECK(rv == IBV_QPS_ERR, "QP 0 is %s right after its error completion, not ERR",
	      state_str(rv));
	for (int i = 0; i < 2; i++)
		rc |= !!expect_wc(f.p.cq[0], cq_name[0], 0xf0110 + i, IBV_WC_WR_FLUSH_ERR, -1, -1,
				  f.p.qp[0]);
	rc |= expect_none(f.p.cq[0], cq_name[0], 50);
out:
	rc |= frame_close(&f);
	return rc;
}

/* A QP moved to ERR by the consumer: posted receives flush; later sends and receives too. */
static int c_post_to_err(void)
{
	struct pair_opts o = opts_default();
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };
	struct ibv_send_wr wr[2], *bad = NULL;
	struct ibv_sge sge[2];
	struct frame f;
	int rc = 0, rv;

	if (frame_open(&f, &o, ACCESS_ALL, ACCESS_ALL))
		return 1;
	for (int i = 0; i < 2; i++)
		REQUIRE(!post_recv1(f.p.qp[0], 0xe0 + i, &f.loc, PG + 64 * i, 64),
			"ibv_post_recv failed");
	rv = ibv_modify_qp(f.p.qp[0], &a, IBV_QP_STATE);
	REQUIRE(!rv, "modify RTS->ERR: %s", errno_str(rv));
	for (int i = 0; i < 2; i++)
		rc |= !!expect_wc(f.p.cq[0], cq_name[0], 0xe0 + i, IBV_WC_WR_FLUSH_ERR, -1, -1,
				  f.p.qp[0]);
	wr_make(&wr[0], &sge[0], 0xe2, IBV_WR_RDMA_WRITE, &f.loc, 0, 64, &f.rem, 0);
	wr_make(&wr[1], &sge[1], 0xe3, IBV_WR_SEND, &f.loc, 0, 64, NULL, 0);
	wr_chain(wr, 2);
	REQUIRE(!post_recv1(f.p.qp[1], 0xe9, &f.rem, PG, 64), "ibv_post_recv failed");
	rv = ibv_post_send(f.p.qp[0], wr, &bad);
	CHECK(!rv, "ibv_post_send to a QP in ERR: %s (must be accepted and flushed)",
	      errno_str(rv));
	if (!rv) {
		rc |= !!expect_wc(f.p.cq[0], cq_name[0], 0xe2, IBV_WC_WR_FLUSH_ERR, -1, -1, f.p.qp[0]);
		rc |= !!expect_wc(f.p.cq[0], cq_name[0], 0xe3, IBV_WC_WR_FLUSH_ERR, -1, -1, f.p.qp[0]);
	}
	rv = post_recv1(f.p.qp[0], 0xe4, &f.loc, PG, 64);
	CHECK(!rv, "ibv_post_recv to a QP in ERR: %s (must be accepted and flushed)",
	      errno_str(rv));
	if (!rv)
		rc |= !!expect_wc(f.p.cq[0], cq_name[0], 0xe4, IBV_WC_WR_FLUSH_ERR, -1, -1, f.p.qp[0]);
	rc |= expect_none(f.p.cq[0], cq_name[0], 50);
	rc |= expect_none(f.p.cq[1], cq_name[1], 0);
	CHECK(all_are(f.rem.p, 2 * PG, FILL), "a WR posted to the QP in ERR moved data");
	rv = qp_state(f.p.qp[0]);
	CHECK(rv == IBV_QPS_ERR, "QP 0 is %s, expected ERR", state_str(rv));
out:
	rc |= frame_close(&f);
	return rc;
}

/* ---- the table ------------------------------------------------------------------------------ */

static const struct tcase {
	const char *name;
	const char *what;
	int (*fn)(void);
} cases[] = {
	{ "modify_reset_to_rtr", "modify_qp RESET->RTR: EINVAL, state stays RESET", c_reset_to_rtr },
	{ "modify_reset_to_rts", "modify_qp RESET->RTS: EINVAL, state stays RESET", c_reset_to_rts },
	{ "modify_init_to_rts", "modify_qp INIT->RTS: EINVAL, state stays INIT", c_init_to_rts },
	{ "modify_init_port_2", "modify_qp RESET->INIT with port_num 2: EINVAL", c_init_bad_port },
	{ "modify_rtr_missing_attrs", "modify_qp INIT->RTR without IBV_QP_AV (or DEST_QPN): EINVAL",
	  c_rtr_without_av },
	{ "post_send_reset", "post_send in RESET: EINVAL, bad_wr = first WR", c_post_send_reset },
	{ "post_send_init", "post_send in INIT: EINVAL, bad_wr = first WR", c_post_send_init },
	{ "post_send_rtr", "post_send in RTR: EINVAL, bad_wr = first WR", c_post_send_rtr },
	{ "post_recv_reset", "post_recv in RESET: EINVAL, bad_wr = first WR", c_post_recv_reset },
	{ "post_send_too_many_sge", "num_sge > max_send_sge: EINVAL at that WR, earlier WRs run",
	  c_too_many_sge },
	{ "post_send_bad_opcode", "atomics with a 4-byte result buffer and an unknown opcode: "
	  "EINVAL at that WR", c_bad_opcode },
	{ "post_send_inline", "IBV_SEND_INLINE longer than max_inline_data: EINVAL", c_inline },
	{ "reg_mr_remote_write_without_local_write", "REMOTE_WRITE without LOCAL_WRITE: EINVAL",
	  c_mr_remote_write_no_local_write },
	{ "reg_mr_zero_length", "reg_mr of length 0: EINVAL", c_mr_zero_length },
	{ "reg_mr_unmapped", "pinned reg_mr over unmapped memory: EFAULT, nothing left pinned",
	  c_mr_unmapped },
	{ "create_qp_too_many_wr", "create_qp with max_send_wr/max_recv_wr > max_qp_wr: EINVAL",
	  c_qp_too_many_wr },
	{ "create_qp_raw", "create_qp of type RAW_PACKET: EOPNOTSUPP or EINVAL", c_qp_raw },
	{ "create_cq_zero", "create_cq with cqe 0: EINVAL", c_cq_zero },
	{ "create_cq_too_big", "create_cq with cqe > max_cqe: EINVAL", c_cq_too_big },
	{ "send_bad_lkey", "SEND with an lkey no MR has: LOC_PROT_ERR, QP in ERR, rest flushed",
	  c_send_bad_lkey },
	{ "send_beyond_mr", "SEND from an SGE past the MR's end: LOC_PROT_ERR", c_send_beyond_mr },
	{ "write_bad_rkey", "RDMA WRITE with an rkey no MR has: REM_ACCESS_ERR", c_write_bad_rkey },
	{ "write_no_remote_write", "RDMA WRITE to an MR without REMOTE_WRITE: REM_ACCESS_ERR",
	  c_write_no_remote_write },
	{ "write_past_end", "RDMA WRITE past the end of the remote MR: REM_ACCESS_ERR",
	  c_write_past_end },
	{ "atomic_misaligned", "FETCH_ADD to an address not 8-byte aligned: REM_INV_REQ_ERR, "
	  "nothing changed", c_atomic_misaligned },
	{ "reg_mr_iova_offset", "reg_mr with an iova at another offset in its page than the "
	  "address: EINVAL (an aligned iova could name a misaligned word)", c_reg_mr_iova_offset },
	{ "atomic_no_remote_atomic", "FETCH_ADD to an MR without REMOTE_ATOMIC: REM_ACCESS_ERR, "
	  "nothing changed", c_atomic_no_remote_atomic },
	{ "responder_err_after_bad_rkey", "the responder of an R_Key violation: ERR, its "
	  "receive flushed", c_responder_err },
	{ "read_no_local_write", "RDMA READ into an MR without LOCAL_WRITE: LOC_PROT_ERR",
	  c_read_no_local_write },
	{ "send_too_long", "SEND longer than the receive: REM_INV_REQ_ERR / LOC_LEN_ERR, both ERR",
	  c_send_too_long },
	{ "send_bad_lkey_no_recv", "SEND with a bad lkey and no receive posted (rnr_retry 7): "
	  "LOC_PROT_ERR, not an endless RNR wait", c_send_bad_lkey_no_recv },
	{ "recv_bad_lkey", "SEND into a receive WQE with a bad lkey: REM_OP_ERR / LOC_PROT_ERR, "
	  "both ERR", c_recv_bad_lkey },
	{ "rnr_retry_0", "SEND with no receive, rnr_retry 0: RNR_RETRY_EXC_ERR", c_rnr_retry_0 },
	{ "local_mr_other_pd", "local MR of another PD: LOC_PROT_ERR", c_local_mr_other_pd },
	{ "remote_mr_other_pd", "RDMA WRITE to an MR of another PD than the responder's: "
	  "REM_ACCESS_ERR", c_remote_mr_other_pd },
	{ "odp_munmap_write_target", "ODP MR partly munmap()ed, WRITE into the hole: "
	  "REM_ACCESS_ERR", c_odp_munmap },
	{ "odp_readonly_write_target", "ODP MR over a PROT_READ mapping, WRITE to it: "
	  "REM_ACCESS_ERR", c_odp_readonly },
	{ "implicit_munmap_write_target", "implicit ODP MR, WRITE into memory munmap()ed under "
	  "it: REM_ACCESS_ERR", c_implicit_munmap },
	{ "implicit_iova", "implicit ODP MR with an iova other than 0: EINVAL", c_implicit_iova },
	{ "odp_munmap_recv_buffer", "SEND into an ODP receive buffer that was munmap()ed: "
	  "REM_OP_ERR / LOC_PROT_ERR, both ERR", c_odp_munmap_recv },
	{ "implicit_munmap_race", "munmap racing 40 WRITEs of 256 KiB into an implicit ODP MR, "
	  "at delays across a WRITE's time: each completes or gets REM_ACCESS_ERR, no hang",
	  c_munmap_race },
	{ "srq", "SRQ: bad sizes EINVAL, resize EINVAL, receive on its QP EINVAL, destroy in use "
	  "EBUSY; the limit event fires once; SENDs land in its buffers in order", c_srq },
	{ "cq_overflow", "CQ of 4 entries, 16 signaled WRs: poll fails, IBV_EVENT_CQ_ERR",
	  c_cq_overflow },
	{ "destroy_busy", "destroy_cq of a CQ in use: EBUSY; QP with work posted, then CQ: gone",
	  c_destroy_busy },
	{ "destroy_peer_during_rnr", "responder destroyed under an RNR-retrying SEND: "
	  "RETRY_EXC_ERR, no hang", c_destroy_peer_rnr },
	{ "post_to_err_qp", "WRs posted to a QP in ERR complete with WR_FLUSH_ERR", c_post_to_err },
};
#define NCASES ((int)(sizeof(cases) / sizeof(cases[0])))

/* ---- set-up and the final check ------------------------------------------------------------- */

static void open_device(void)
{
	struct ibv_port_attr pa;
	static const uint8_t zero[16];
	int rv;

	g.ctx = open_device_named(g.dev_name);
	if (ibv_query_port(g.ctx, PORT, &pa))
		bail("ibv_query_port: %s", strerror(errno));
	if (pa.state != IBV_PORT_ACTIVE)
		bail("port %d of %s is %s", PORT, g.dev_name, ibv_port_state_str(pa.state));
	if (ibv_query_gid(g.ctx, PORT, g.gid_index, &g.gid))
		bail("ibv_query_gid(index %d): %s", g.gid_index, strerror(errno));
	if (!memcmp(g.gid.raw, zero, sizeof(zero)))
		bail("GID index %d of %s is empty", g.gid_index, g.dev_name);
	memset(&g.dattr, 0, sizeof(g.dattr));
	if ((rv = ibv_query_device_ex(g.ctx, NULL, &g.dattr)))
		bail("ibv_query_device_ex: %s", strerror(rv));
	g.odp = (g.dattr.odp_caps.general_caps & IBV_ODP_SUPPORT) &&
		(g.dattr.odp_caps.per_transport_caps.rc_odp_caps & IBV_ODP_SUPPORT_WRITE);
	g.pd = ibv_alloc_pd(g.ctx);
	if (!g.pd)
		bail("ibv_alloc_pd: %s", strerror(errno));
	/* async events are read with poll() and a timeout */
	rv = fcntl(g.ctx->async_fd, F_GETFL);
	if (rv < 0 || fcntl(g.ctx->async_fd, F_SETFL, rv | O_NONBLOCK) < 0)
		bail("making the async event fd non-blocking: %s", strerror(errno));
	diag("device %s, GID index %d (%s), max_qp_wr %d, max_cqe %d, max_sge %d, ODP %s",
	     g.dev_name, g.gid_index,
	     g.gid.raw[10] == 0xff && g.gid.raw[11] == 0xff ? "IPv4-mapped" : "other",
	     g.dattr.orig_attr.max_qp_wr, g.dattr.orig_attr.max_cqe, g.dattr.orig_attr.max_sge,
	     g.odp ? "yes" : "no");
}

/*
 * `rdma resource show` has the device with no CQ, QP or MR, and with as many PDs and
 * contexts as this program still has open: one each before the close (@closed false), none
 * after. Return: 0 if so.
 */
static const char *const resource_names[] = { "pd", "cq", "qp", "mr", "ctx" };

/*
 * The device's object counts as `rdma resource show` gives them, into @count (-1 for one
 * not shown). Return: 0, or 1 if the device is not listed or rdma failed.
 */
static int resources_count(long count[5], const char *when)
{
	int rc = 0, st;
	char key[64], line[512];
	bool seen = false;
	FILE *f;

	for (int i = 0; i < 5; i++)
		count[i] = -1;
	f = popen("rdma resource show 2>&1", "r");
	if (!f) {
		diag("popen(rdma resource show): %s", strerror(errno));
		return 1;
	}
	snprintf(key, sizeof(key), " %s: ", g.dev_name);
	while (fgets(line, sizeof(line), f)) {
		char *s = strstr(line, key), *tok, *val, *save = NULL;

		if (!s)
			continue;
		seen = true;
		line[strcspn(line, "\n")] = 0;
		diag("%s: %s", when, line);
		for (tok = strtok_r(s + strlen(key), " ", &save); tok;
		     tok = strtok_r(NULL, " ", &save)) {
			val = strtok_r(NULL, " ", &save);
			if (!val)
				break;
			for (int i = 0; i < 5; i++)
				if (!strcmp(tok, resource_names[i]))
					count[i] = strtol(val, NULL, 10);
		}
	}
	st = pclose(f);
	CHECK(st == 0, "`rdma resource show` exited with status %d", st);
	CHECK(seen, "`rdma resource show` does not list %s", g.dev_name);
	return rc;
}

/*
 * The device holds this program's PD and context (unless @closed) and nothing else of
 * userspace: beyond what kernel consumers held before it started (g.base), no object.
 */
static int resources_check(bool closed, const char *when)
{
	const long expect[] = { !closed, 0, 0, 0, !closed };
	long count[5];
	int rc;

	rc = resources_count(count, when);
	for (int i = 0; i < 5; i++) {
		CHECK(count[i] >= 0, "no %s count for %s in `rdma resource show`",
		      resource_names[i], g.dev_name);
		CHECK(count[i] - g.base[i] == expect[i], "%s: %s has %ld %s, expected %ld "
		      "(%ld of kernel consumers before the program started)", when, g.dev_name,
		      count[i], resource_names[i], g.base[i] + expect[i], g.base[i]);
	}
	return rc;
}

/*
 * The end: with every case's objects destroyed, the device holds none (but the PD and the
 * context this program opened at the start);
 * the PD and the context close without error; then the device holds nothing at all, and
 * the process has no page pinned.
 */
static int final_check(void)
{
	int rc = 0, rv;
	long pin;

	stage("rdma resource show, before the close");
	rc |= resources_check(false, "before closing");
	stage("closing the device");
	rv = ibv_dealloc_pd(g.pd);
	CHECK(!rv, "ibv_dealloc_pd: %s (something still uses the PD)", errno_str(rv));
	rv = ibv_close_device(g.ctx);
	CHECK(!rv, "ibv_close_device: %s", errno_str(errno));
	stage("rdma resource show, after the close");
	rc |= resources_check(true, "after closing");
	pin = vmpin_kb();
	CHECK(pin == g.vmpin0, "VmPin is %ld kB after closing everything (%ld kB at the start)",
	      pin, g.vmpin0);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pfnic_badinput -d DEVICE [-g GID_INDEX] [-t SECONDS] "
		   "[-o NAME[,NAME...]] [-r N] [-v]\ncases:");
	for (int i = 0; i < NCASES; i++)
		fprintf(f, " %s", cases[i].name);
	fputc('\n', f);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "gid-index", required_argument, NULL, 'g' },
		{ "timeout", required_argument, NULL, 't' },
		{ "only", required_argument, NULL, 'o' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool sel[NCASES], any = false;
	int repeat = 1, c, num = 0, nsel = 0, failed = 0;
	struct utsname un;
	pthread_t wd;
	double t0 = now();

	memset(sel, 0, sizeof(sel));
	while ((c = getopt_long(argc, argv, "d:g:t:o:r:vh", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			g.dev_name = optarg;
			break;
		case 'g':
			g.gid_index = atoi(optarg);
			break;
		case 't':
			g.timeout = atof(optarg);
			break;
		case 'r':
			repeat = atoi(optarg);
			break;
		case 'v':
			g.verbose = true;
			break;
		case 'o': {
			char *s = strdup(optarg), *save = NULL;

			for (char *n = strtok_r(s, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
				int i;

				for (i = 0; i < NCASES && strcmp(cases[i].name, n); i++)
					;
				if (i == NCASES) {
					fprintf(stderr, "pfnic_badinput: no case %s\n", n);
					usage(stderr);
					return 2;
				}
				sel[i] = any = true;
			}
			free(s);
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!g.dev_name || optind != argc || repeat < 1 || g.timeout <= 0) {
		usage(stderr);
		return 2;
	}
	for (int i = 0; i < NCASES; i++) {
		if (!any)
			sel[i] = true;
		nsel += sel[i];
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n");
	printf("1..%d\n", nsel * repeat + 1);
	uname(&un);
	diag("pfnic_badinput on %s %s", un.sysname, un.release);
	g.vmpin0 = vmpin_kb();
	if (resources_count(g.base, "before starting"))
		bail("cannot count the device's objects with `rdma resource show`");
	for (int i = 0; i < 5; i++)
		g.base[i] = g.base[i] < 0 ? 0 : g.base[i];
	if (pthread_create(&wd, NULL, wd_thread, NULL))
		bail("pthread_create failed");
	open_device();

	for (int r = 0; r < repeat; r++) {
		for (int i = 0; i < NCASES; i++) {
			double t;
			int rc;

			if (!sel[i])
				continue;
			num++;
			wd_arm(num, cases[i].name, WD_FACTOR * g.timeout);
			t = now();
			rc = cases[i].fn();
			/* nothing may be left over for the next case */
			async_events(0, 0, NULL, false);
			wd_disarm();
			failed += rc != 0;
			printf("%s %d - %s: %s", rc ? "not ok" : "ok", num, cases[i].name,
			       cases[i].what);
			printf(" (%.2f s)\n", now() - t);
		}
	}

	num++;
	wd_arm(num, "resources_released", WD_FACTOR * g.timeout);
	c = final_check();
	wd_disarm();
	failed += c != 0;
	printf("%s %d - resources_released: nothing left on %s, nothing pinned\n",
	       c ? "not ok" : "ok", num, g.dev_name);
	diag("%d of %d test points failed, %.1f s", failed, num, now() - t0);
	return failed ? 1 : 0;
}
