// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_bench: how pfnic compares, in one guest run, with the CPU and with soft-RoCE (rxe).
 *
 * Absolute times mean little under QEMU's TCG on a busy machine, so every figure is a ratio
 * of two things measured in the same run, interleaved (A, B, A, B, ... for several rounds);
 * each figure is the median of the per-round ratios, with their min and max, and the medians
 * of its two inputs.
 *
 *   1. registration: ibv_reg_mr + ibv_dereg_mr of untouched anonymous memory (64 MiB, 1 GiB):
 *      pfnic pinned / pfnic ODP, pfnic pinned / rxe pinned (and rxe ODP where it exists);
 *   2. first touch: an RDMA WRITE of 4 MiB (one WR) into never-touched memory of a pfnic ODP
 *      MR, per 4 KiB page, against the CPU writing one byte per page of as many fresh pages;
 *      the same WRITE again into the now faulted MR shows what the faults cost;
 *   3. 1 MiB RDMA WRITE bandwidth: pfnic against memcpy() and against rxe, pinned and ODP;
 *      and against the kernel's own copy (pread() of 1 MiB from a memfd, the copy routine
 *      every kernel copy of user memory runs), the most a kernel engine's copy can reach on
 *      this CPU (under TCG the kernel's string instructions run far slower than the vector
 *      loads of glibc's memcpy);
 *   4. 64-byte RDMA WRITE message rate (queue depth 64, signaled every 16): pfnic against rxe;
 *   5. 64-byte SEND message rate on one QP pair, and RDMA WRITE and SEND message rates on 16
 *      pairs at once (round robin, 16 outstanding on each): pfnic against rxe.
 *   In 4 and 5, pfnic runs once more with its polling engine on (the module parameter
 *   poll_usecs, -P, set for those samples only): a kernel thread polls the send queues, and
 *   posts ring no doorbell (a CPU spent to save the system calls).
 *
 * Each device runs two RC QPs connected to each other in this process (loopback over the
 * port's GID). Every completion's status is checked, and what the WRITEs wrote is compared
 * with their source (after every first-touch WRITE, and once per bandwidth and message-rate
 * variant). Iteration counts per sample are calibrated to about 150 ms (-t) and printed.
 *
 * As context, the fault, bandwidth and message-rate rounds also time a wake-up round trip
 * between CPUs 0 and 1: pfnic's engine runs in a kernel worker that each post wakes, so on
 * an overcommitted host (a vCPU waiting for a host CPU) figures bound by such hand-offs drop
 * by an order of magnitude, and that line says so.
 *
 * Output: one line per figure, then a line "BENCH_JSON {...}" with all of them. Exit status:
 * 0, or 1 if a measurement could not be made on pfnic (device missing, an operation failed);
 * rxe missing, or without ODP, only skips the comparisons that need it. 2: bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <infiniband/verbs.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../guest/verbs-test.h"

#define KiB (1024UL)
#define MiB (1024UL * KiB)
#define GiB (1024UL * MiB)
#define PAGE 4096UL

#define MAX_ROUNDS 32
#define MAX_VARIANTS 10
#define MAX_FIGURES 48

#define ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)
#define ACCESS_ODP (ACCESS | IBV_ACCESS_ON_DEMAND)

/* Work-request shapes. */
#define FAULT_LEN (4 * MiB)
#define BW_LEN (1 * MiB)
#define BW_DEPTH 8
#define MSG_LEN 64
#define MSG_DEPTH 64
#define MSG_SIGNAL 16
#define SQ_SIZE 128
#define CQ_SIZE 512

/* A completion that does not come within this long is a hang. */
#define WAIT_TIMEOUT_S 30.0

/* ------------------------------------------------------------------------------------------
 * Options, errors, time
 */

static struct {
	const char *pfnic;
	const char *rxe;
	int gid_index;
	int rounds_reg;
	int rounds;
	double target_s;
	int skip_1g;
	const char *only;	/* comma-separated sections, NULL: all */
	int poll_usecs;		/* pfnic's poll_usecs for the polled variants */
} opt = {
	.poll_usecs = 1000,
	.pfnic = "pfnic0",
	.rxe = "rxe0",
	.gid_index = 1,
	.rounds_reg = 5,
	.rounds = 7,
	.target_s = 0.15,
};

static char errbuf[256];
static int exit_status;

static void seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void seterr(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median of @n <= MAX_ROUNDS values. */
static double median(const double *v, int n)
{
	double s[MAX_ROUNDS];

	if (n <= 0)
		return 0;
	if (n > MAX_ROUNDS)
		abort();
	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* A number with about three significant digits, without exponents for usual values. */
static const char *num(char *buf, size_t size, double v)
{
	double a = v < 0 ? -v : v;

	if (a >= 100 || a == 0)
		snprintf(buf, size, "%.0f", v);
	else if (a >= 10)
		snprintf(buf, size, "%.1f", v);
	else if (a >= 1)
		snprintf(buf, size, "%.2f", v);
	else
		snprintf(buf, size, "%.3g", v);
	return buf;
}

/* ------------------------------------------------------------------------------------------
 * Memory
 */

/* Fresh, never touched anonymous memory; @small_pages: no transparent huge pages. */
static void *fresh(size_t len, int small_pages)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		seterr("mmap %zu bytes: %s", len, strerror(errno));
		return NULL;
	}
	if (small_pages && madvise(p, len, MADV_NOHUGEPAGE)) {
		seterr("madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
		munmap(p, len);
		return NULL;
	}
	return p;
}

/* Touched memory, for data buffers. */
static void *touched(size_t len, int byte)
{
	void *p = fresh(len, 0);

	if (p)
		memset(p, byte, len);
	return p;
}

/* Fills @len bytes with a pattern that changes every KiB (an MTU), from @seed. */
static void fill(void *buf, size_t len, uint8_t seed)
{
	size_t k;

	for (k = 0; k < len; k += KiB)
		memset((uint8_t *)buf + k, (uint8_t)(seed + 7 * (k / KiB)),
		       len - k < KiB ? len - k : KiB);
}

/* Where @dst differs from @src: errbuf says where, how much, and what was found there. */
static int check_data(const char *dev, const uint8_t *dst, const uint8_t *src, size_t len,
		      const char *what)
{
	size_t i, first = len, bad_bytes = 0, bad_pages = 0, n, page_bad;

	if (!memcmp(dst, src, len))
		return 0;
	for (i = 0; i < len; i += PAGE) {
		n = len - i < PAGE ? len - i : PAGE;
		page_bad = memcmp(dst + i, src + i, n) != 0;
		bad_pages += page_bad;
		if (page_bad && first == len) {
			first = i;
			while (dst[first] == src[first])
				first++;
		}
	}
	for (i = 0; i < len; i++)
		bad_bytes += dst[i] != src[i];
	seterr("%s: data written to %s differs from the source: %zu of %zu bytes, in %zu of %zu "
	       "pages; the first at offset %#zx (0x%02x there, 0x%02x expected)", dev, what,
	       bad_bytes, len, bad_pages, (len + PAGE - 1) / PAGE, first, dst[first], src[first]);
	return -1;
}

static void thp_mode(char *buf, size_t size)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char line[128], *a, *b;

	snprintf(buf, size, "unknown");
	if (!f)
		return;
	if (fgets(line, sizeof(line), f) && (a = strchr(line, '[')) && (b = strchr(a, ']'))) {
		*b = 0;
		snprintf(buf, size, "%s", a + 1);
	}
	fclose(f);
}

/* ------------------------------------------------------------------------------------------
 * Devices: two RC QPs connected to each other
 */

struct dev {
	const char *kind;	/* "pfnic" or "rxe" */
	const char *name;
	int present;		/* opened and connected */
	int dead;		/* a hang: no further measurement on it */
	int odp;		/* explicit ODP for RC RDMA WRITE */
	char why[300];		/* why not present, or why no ODP */
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qa, *qb;
	union ibv_gid gid;
};

static struct dev pfnic = { .kind = "pfnic" };
static struct dev rxe = { .kind = "rxe" };

static int qp_to_rts(struct dev *d, struct ibv_qp *qp, uint32_t dest_qpn)
{
	struct ibv_qp_attr a;
	struct vt_rc c;
	const char *step = "";
	int rv, s = IBV_QPS_RESET;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RESET;
	rv = ibv_modify_qp(qp, &a, IBV_QP_STATE);
	if (rv) {
		seterr("%s: modify QP %u to RESET: %s", d->name, qp->qp_num, strerror(rv));
		return -1;
	}

	c = (struct vt_rc){
		.port = 1,
		.access = ACCESS,
		.dest_qpn = dest_qpn,
		.min_rnr_timer = 12,
		.rnr_retry = 7,
		.dgid = d->gid,
		.sgid_index = opt.gid_index,
	};
	rv = vt_rc_bring_up(qp, &c, &s, IBV_QPS_RTS, &step);
	if (rv) {
		seterr("%s: modify QP %u to %s: %s", d->name, qp->qp_num, step, strerror(rv));
		return -1;
	}
	return 0;
}

static void drain_cq(struct dev *d)
{
	struct ibv_wc wc[16];

	while (ibv_poll_cq(d->cq, 16, wc) > 0)
		;
}

/* Both QPs back to RTS, connected to each other, the CQ emptied (after an error). */
static int dev_connect(struct dev *d)
{
	if (qp_to_rts(d, d->qa, d->qb->qp_num) || qp_to_rts(d, d->qb, d->qa->qp_num))
		return -1;
	drain_cq(d);
	return 0;
}

static struct ibv_qp *make_qp(struct dev *d)
{
	struct ibv_qp_init_attr ia;
	struct ibv_qp *qp;

	memset(&ia, 0, sizeof(ia));
	ia.send_cq = d->cq;
	ia.recv_cq = d->cq;
	ia.qp_type = IBV_QPT_RC;
	ia.sq_sig_all = 0;
	ia.cap.max_send_wr = SQ_SIZE;
	ia.cap.max_recv_wr = 1;
	ia.cap.max_send_sge = 1;
	ia.cap.max_recv_sge = 1;
	ia.cap.max_inline_data = 0;	/* pfnic has none */
	qp = ibv_create_qp(d->pd, &ia);
	if (!qp)
		seterr("%s: ibv_create_qp: %s", d->name, strerror(errno));
	return qp;
}

static int dev_open(struct dev *d, const char *name)
{
	struct ibv_device **list;
	struct ibv_device_attr_ex attr;
	struct ibv_port_attr port;
	int i, n, rv;

	d->name = name;
	list = ibv_get_device_list(&n);
	if (!list) {
		snprintf(d->why, sizeof(d->why), "ibv_get_device_list: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), name))
			break;
	if (i == n) {
		snprintf(d->why, sizeof(d->why), "no RDMA device %s", name);
		ibv_free_device_list(list);
		return -1;
	}
	d->ctx = ibv_open_device(list[i]);
	ibv_free_device_list(list);
	if (!d->ctx) {
		snprintf(d->why, sizeof(d->why), "ibv_open_device(%s): %s", name, strerror(errno));
		return -1;
	}

	memset(&attr, 0, sizeof(attr));
	rv = ibv_query_device_ex(d->ctx, NULL, &attr);
	if (rv) {
		d->odp = 0;
		snprintf(d->why, sizeof(d->why), "ibv_query_device_ex: %s", strerror(rv));
	} else if (!(attr.odp_caps.general_caps & IBV_ODP_SUPPORT)) {
		snprintf(d->why, sizeof(d->why), "%s reports no ODP support", name);
	} else if (!(attr.odp_caps.per_transport_caps.rc_odp_caps & IBV_ODP_SUPPORT_WRITE)) {
		snprintf(d->why, sizeof(d->why), "%s reports no ODP for RC RDMA WRITE", name);
	} else {
		d->odp = 1;
	}

	rv = ibv_query_port(d->ctx, 1, &port);
	if (rv) {
		snprintf(d->why, sizeof(d->why), "%s: ibv_query_port: %s", name, strerror(rv));
		return -1;
	}
	if (port.state != IBV_PORT_ACTIVE) {
		snprintf(d->why, sizeof(d->why), "%s: port 1 is %s", name,
			 ibv_port_state_str(port.state));
		return -1;
	}
	if (ibv_query_gid(d->ctx, 1, opt.gid_index, &d->gid)) {
		snprintf(d->why, sizeof(d->why), "%s: ibv_query_gid(port 1, index %d): %s", name,
			 opt.gid_index, strerror(errno));
		return -1;
	}
	d->pd = ibv_alloc_pd(d->ctx);
	if (!d->pd) {
		snprintf(d->why, sizeof(d->why), "%s: ibv_alloc_pd: %s", name, strerror(errno));
		return -1;
	}
	d->cq = ibv_create_cq(d->ctx, CQ_SIZE, NULL, NULL, 0);
	if (!d->cq) {
		snprintf(d->why, sizeof(d->why), "%s: ibv_create_cq: %s", name, strerror(errno));
		return -1;
	}
	d->qa = make_qp(d);
	d->qb = d->qa ? make_qp(d) : NULL;
	if (!d->qb || dev_connect(d)) {
		snprintf(d->why, sizeof(d->why), "%s", errbuf);
		return -1;
	}
	d->present = 1;
	return 0;
}

static void dev_close(struct dev *d)
{
	if (d->qb)
		ibv_destroy_qp(d->qb);
	if (d->qa)
		ibv_destroy_qp(d->qa);
	if (d->cq)
		ibv_destroy_cq(d->cq);
	if (d->pd)
		ibv_dealloc_pd(d->pd);
	if (d->ctx)
		ibv_close_device(d->ctx);
}

/*
 * After a failed measurement on a device: a hang leaves it alone for good; a failed
 * operation or completion gets its QPs reconnected (a failed completion moved them to ERR).
 */
static void dev_recover(struct dev *d, int hang)
{
	if (hang) {
		d->dead = 1;
		return;
	}
	if (dev_connect(d)) {
		fprintf(stderr, "pfnic_bench: %s: cannot reconnect its QPs: %s\n", d->name, errbuf);
		d->dead = 1;
	}
}

/* ------------------------------------------------------------------------------------------
 * RDMA WRITEs from QP a to QP b's memory
 */

static int last_was_hang;

/*
 * Posts @n RDMA WRITEs of @len bytes from @src (@lkey) to @dst (@rkey), one WR per
 * ibv_post_send(), with at most @depth outstanding and every @sig-th one signaled (and the
 * last), and waits for them all. Return: 0, or -1 with errbuf set (last_was_hang says whether
 * it was a timeout rather than a failure).
 */
static int run_writes(struct dev *d, void *src, uint32_t lkey, uint64_t dst, uint32_t rkey,
		      uint32_t len, long n, int depth, int sig)
{
	struct ibv_sge sge = { .addr = (uintptr_t)src, .length = len, .lkey = lkey };
	struct ibv_send_wr wr, *bad;
	struct ibv_wc wc[16];
	long posted = 0, done = 0, since = 0;
	int outstanding = 0, i, k, rv;
	unsigned int idle = 0;
	double deadline = now() + WAIT_TIMEOUT_S;

	last_was_hang = 0;
	memset(&wr, 0, sizeof(wr));
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = IBV_WR_RDMA_WRITE;
	wr.wr.rdma.remote_addr = dst;
	wr.wr.rdma.rkey = rkey;

	while (done < n) {
		while (posted < n && outstanding < depth) {
			since++;
			if (since >= sig || posted == n - 1 || outstanding + 1 == depth) {
				wr.send_flags = IBV_SEND_SIGNALED;
				wr.wr_id = since;	/* the WRs this completion accounts for */
				since = 0;
			} else {
				wr.send_flags = 0;
				wr.wr_id = 0;
			}
			rv = ibv_post_send(d->qa, &wr, &bad);
			if (rv) {
				seterr("%s: ibv_post_send (WR %ld of %ld, %d outstanding): %s", d->name,
				       posted + 1, n, outstanding, strerror(rv));
				return -1;
			}
			posted++;
			outstanding++;
		}
		k = ibv_poll_cq(d->cq, 16, wc);
		if (k < 0) {
			seterr("%s: ibv_poll_cq failed (%d)", d->name, k);
			return -1;
		}
		for (i = 0; i < k; i++) {
			if (wc[i].status != IBV_WC_SUCCESS) {
				seterr("%s: completion of an RDMA WRITE of %u bytes: %s (status %d, vendor_err %u)",
				       d->name, len, ibv_wc_status_str(wc[i].status), wc[i].status,
				       wc[i].vendor_err);
				return -1;
			}
			if (wc[i].opcode != IBV_WC_RDMA_WRITE || wc[i].qp_num != d->qa->qp_num ||
			    !wc[i].wr_id || (long)wc[i].wr_id > outstanding) {
				seterr("%s: unexpected completion (opcode %d, qp %u, wr_id %llu)",
				       d->name, wc[i].opcode, wc[i].qp_num,
				       (unsigned long long)wc[i].wr_id);
				return -1;
			}
			done += wc[i].wr_id;
			outstanding -= wc[i].wr_id;
		}
		if (k) {
			idle = 0;
			deadline = now() + WAIT_TIMEOUT_S;
		} else if (++idle % 256 == 0 && now() > deadline) {
			seterr("%s: no completion for %.0f s (%ld of %ld WRITEs of %u bytes completed)",
			       d->name, WAIT_TIMEOUT_S, done, n, len);
			last_was_hang = 1;
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------
 * Variants (things measured once per round) and figures (ratios of two variants)
 */

struct variant {
	const char *name;
	struct dev *dev;	/* the device it needs; NULL: the CPU */
	int (*fn)(struct variant *v, double *value);
	void *arg;
	const char *unit;
	int enabled;
	char why[300];		/* why disabled */
	int failed;		/* an operation failed (not just unavailable) */
	double val[MAX_ROUNDS];
	int ok[MAX_ROUNDS];
	long iters;		/* per sample, where that applies */
	/* state for the variant's function */
	int (*polled_fn)(struct variant *v, double *value);	/* sample_polled()'s */
	struct ibv_mr *mr_src, *mr_dst;
	void *src, *dst;
	size_t len;
	int access;
};

static int nvariants;
static struct variant variants[MAX_VARIANTS];

static struct variant *variant(const char *name, struct dev *d, const char *unit,
			       int (*fn)(struct variant *, double *))
{
	struct variant *v;

	if (nvariants == MAX_VARIANTS)
		abort();
	v = &variants[nvariants++];
	memset(v, 0, sizeof(*v));
	v->name = name;
	v->dev = d;
	v->unit = unit;
	v->fn = fn;
	v->enabled = 1;
	if (d && !d->present) {
		v->enabled = 0;
		snprintf(v->why, sizeof(v->why), "%s", d->why);
	} else if (d && d->dead) {
		v->enabled = 0;
		snprintf(v->why, sizeof(v->why), "%s hung earlier", d->name);
	}
	return v;
}

static void variant_disable(struct variant *v, const char *why)
{
	v->enabled = 0;
	snprintf(v->why, sizeof(v->why), "%s", why);
}

/* A variant's operation failed: pfnic's failures make the exit status. */
static void variant_fail(struct variant *v, const char *what)
{
	v->enabled = 0;
	v->failed = 1;
	snprintf(v->why, sizeof(v->why), "%s", what);
	fprintf(stderr, "pfnic_bench: %s: %s\n", v->name, what);
	if (v->dev == &pfnic)
		exit_status = 1;
	if (v->dev)
		dev_recover(v->dev, last_was_hang);
}

/* The round being run, for samples that fill in another variant's value. */
static int cur_round;

/* Runs @rounds rounds of every enabled variant, interleaved. */
static void run_rounds(int rounds)
{
	int r, i;

	for (r = 0; r < rounds; r++)
		for (i = 0; i < nvariants; i++) {
			struct variant *v = &variants[i];

			cur_round = r;
			if (!v->enabled)
				continue;
			if (v->dev && v->dev->dead) {
				variant_disable(v, "the device hung earlier");
				continue;
			}
			errbuf[0] = 0;
			if (v->fn(v, &v->val[r]))
				variant_fail(v, errbuf);
			else
				v->ok[r] = 1;
		}
}

static double variant_median(const struct variant *v, int rounds)
{
	double s[MAX_ROUNDS];
	int r, n = 0;

	for (r = 0; r < rounds; r++)
		if (v->ok[r])
			s[n++] = v->val[r];
	return median(s, n);
}

struct figure {
	char id[64];
	char a_name[48], b_name[48];
	const char *unit;
	double ratio, min, max, a, b;
	int rounds;
	int error;		/* a pfnic failure, not a skip */
	char why[400];		/* skipped or failed: why */
	char note[160];
};

static int nfigures;
static struct figure figures[MAX_FIGURES];

static void print_figure(const struct figure *f)
{
	char r[32], lo[32], hi[32], a[32], b[32];

	if (f->why[0]) {
		printf("%s %s: %s\n", f->error ? "FAILED" : "skipped", f->id, f->why);
		return;
	}
	printf("ratio %s = %s (%s %s %s, %s %s %s; median of %d, min %s, max %s)%s%s\n", f->id,
	       num(r, sizeof(r), f->ratio), f->a_name, num(a, sizeof(a), f->a), f->unit, f->b_name,
	       num(b, sizeof(b), f->b), f->unit, f->rounds, num(lo, sizeof(lo), f->min),
	       num(hi, sizeof(hi), f->max), f->note[0] ? "; " : "", f->note);
	fflush(stdout);
}

/* A figure skipped (or failed) as a whole, without variants. */
static struct figure *figure_skip(const char *id, int error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static struct figure *figure_skip(const char *id, int error, const char *fmt, ...)
{
	struct figure *f = &figures[nfigures++];
	va_list ap;

	memset(f, 0, sizeof(*f));
	snprintf(f->id, sizeof(f->id), "%s", id);
	f->error = error;
	va_start(ap, fmt);
	vsnprintf(f->why, sizeof(f->why), fmt, ap);
	va_end(ap);
	if (error)
		exit_status = 1;
	print_figure(f);
	return f;
}

/* The figure a/b over the rounds both made; @a_name, @b_name label the inputs. */
static struct figure *figure(const char *id, const struct variant *va, const char *a_name,
			     const struct variant *vb, const char *b_name, int rounds)
{
	struct figure *f = &figures[nfigures++];
	double ratios[MAX_ROUNDS];
	int r, n = 0;

	memset(f, 0, sizeof(*f));
	snprintf(f->id, sizeof(f->id), "%s", id);
	snprintf(f->a_name, sizeof(f->a_name), "%s", a_name);
	snprintf(f->b_name, sizeof(f->b_name), "%s", b_name);
	f->unit = va->unit;
	for (r = 0; r < rounds; r++)
		if (va->ok[r] && vb->ok[r] && vb->val[r] != 0)
			ratios[n++] = va->val[r] / vb->val[r];
	if (!va->enabled || !vb->enabled || !n) {
		const struct variant *bad = !va->enabled ? va : !vb->enabled ? vb : va;

		f->error = (va->failed && va->dev == &pfnic) || (vb->failed && vb->dev == &pfnic);
		snprintf(f->why, sizeof(f->why), "%s: %s", bad->name,
			 bad->why[0] ? bad->why : "no rounds completed");
		if (f->error)
			exit_status = 1;
		print_figure(f);
		return f;
	}
	f->rounds = n;
	f->ratio = median(ratios, n);
	f->min = f->max = ratios[0];
	for (r = 1; r < n; r++) {
		if (ratios[r] < f->min)
			f->min = ratios[r];
		if (ratios[r] > f->max)
			f->max = ratios[r];
	}
	f->a = variant_median(va, rounds);
	f->b = variant_median(vb, rounds);
	return f;
}

static void figure_done(struct figure *f)
{
	if (!f->why[0])
		print_figure(f);
}

/* ------------------------------------------------------------------------------------------
 * The environment: how long a wake-up across CPUs takes. pfnic's engine (and rxe's on newer
 * kernels) runs in a kernel worker that each post wakes, so when the host is overcommitted
 * and a vCPU waits for a host CPU, hand-off-bound figures drop with it. This is measured in
 * the same rounds, as context for them.
 */

static struct {
	int to[2], from[2];
	pthread_t thread;
	int running;
	int cpu_a, cpu_b;
	char why[160];
} echo;

static void *echo_main(void *arg)
{
	char c;

	(void)arg;
	while (read(echo.to[0], &c, 1) == 1 && c)
		if (write(echo.from[1], &c, 1) != 1)
			break;
	return NULL;
}

/* A thread on CPU 1 that echoes back the bytes CPU 0 sends it. */
static int echo_start(void)
{
	cpu_set_t one;
	int rv;

	if (echo.running)
		return 0;
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		snprintf(echo.why, sizeof(echo.why), "one CPU online");
		return -1;
	}
	echo.cpu_a = 0;
	echo.cpu_b = 1;
	if (pipe(echo.to) || pipe(echo.from)) {
		snprintf(echo.why, sizeof(echo.why), "pipe: %s", strerror(errno));
		return -1;
	}
	rv = pthread_create(&echo.thread, NULL, echo_main, NULL);
	if (rv) {
		snprintf(echo.why, sizeof(echo.why), "pthread_create: %s", strerror(rv));
		return -1;
	}
	CPU_ZERO(&one);
	CPU_SET(echo.cpu_b, &one);
	pthread_setaffinity_np(echo.thread, sizeof(one), &one);
	echo.running = 1;
	return 0;
}

static void echo_stop(void)
{
	char c = 0;

	if (!echo.running)
		return;
	if (write(echo.to[1], &c, 1) == 1)
		pthread_join(echo.thread, NULL);
	echo.running = 0;
}

/* The median round trip to the echo thread, in us: up to 100 trips or 30 ms. */
static int sample_xcpu(struct variant *v, double *us)
{
	double trips[100], t0, start = now();
	cpu_set_t one, saved;
	int n = 0;
	char c = 1;

	(void)v;
	CPU_ZERO(&one);
	CPU_SET(echo.cpu_a, &one);
	if (sched_getaffinity(0, sizeof(saved), &saved) || sched_setaffinity(0, sizeof(one), &one)) {
		seterr("sched_setaffinity(CPU %d): %s", echo.cpu_a, strerror(errno));
		return -1;
	}
	while (n < 100 && (n < 3 || now() - start < 0.03)) {
		t0 = now();
		if (write(echo.to[1], &c, 1) != 1 || read(echo.from[0], &c, 1) != 1) {
			seterr("echo thread: %s", strerror(errno));
			sched_setaffinity(0, sizeof(saved), &saved);
			return -1;
		}
		trips[n++] = (now() - t0) * 1e6;
	}
	sched_setaffinity(0, sizeof(saved), &saved);
	qsort(trips, n, sizeof(*trips), cmp_double);
	*us = n % 2 ? trips[n / 2] : (trips[n / 2 - 1] + trips[n / 2]) / 2;
	return 0;
}

struct env_rec {
	char section[24];
	double median, min, max;
	int rounds;
};

static int nenv;
static struct env_rec env_recs[4];

static struct variant *xcpu_variant(void)
{
	struct variant *v = variant("xcpu_wakeup", NULL, "us", sample_xcpu);

	if (echo_start())
		variant_disable(v, echo.why);
	return v;
}

/* The context line for a section, from its xcpu_wakeup variant. */
static void env_report(const char *section, const struct variant *v, int rounds)
{
	struct env_rec *e;
	int r;

	if (!v->enabled) {
		printf("# env %s: cross-CPU wake-up not measured: %s\n", section, v->why);
		return;
	}
	if (nenv == 4)
		return;
	e = &env_recs[nenv++];
	snprintf(e->section, sizeof(e->section), "%s", section);
	e->median = variant_median(v, rounds);
	e->min = e->max = -1;
	for (r = 0; r < rounds; r++) {
		if (!v->ok[r])
			continue;
		e->rounds++;
		if (e->min < 0 || v->val[r] < e->min)
			e->min = v->val[r];
		if (v->val[r] > e->max)
			e->max = v->val[r];
	}
	printf("# env %s: cross-CPU wake-up round trip (CPU %d <-> %d) median %.0f us, min %.0f, "
	       "max %.0f over %d rounds%s\n", section, echo.cpu_a, echo.cpu_b, e->median, e->min,
	       e->max, e->rounds, e->max > 500 ? "; above ~500 us the host was overcommitted in "
	       "some rounds, and figures bound by hand-offs to kernel workers (pfnic; rxe on newer "
	       "kernels) dropped with it" : "");
}

/* ------------------------------------------------------------------------------------------
 * 1. Registration
 */

static int sample_reg(struct variant *v, double *ms)
{
	struct ibv_mr *mr;
	double t0, t1;
	void *p = fresh(v->len, 0);

	if (!p)
		return -1;
	t0 = now();
	mr = ibv_reg_mr(v->dev->pd, p, v->len, v->access);
	if (!mr) {
		seterr("%s: ibv_reg_mr(%zu MiB%s): %s", v->dev->name, v->len / MiB,
		       v->access & IBV_ACCESS_ON_DEMAND ? ", ODP" : "", strerror(errno));
		munmap(p, v->len);
		return -1;
	}
	if (ibv_dereg_mr(mr)) {
		seterr("%s: ibv_dereg_mr: %s", v->dev->name, strerror(errno));
		munmap(p, v->len);
		return -1;
	}
	t1 = now();
	munmap(p, v->len);
	*ms = (t1 - t0) * 1e3;
	return 0;
}

static void bench_reg(size_t len, const char *tag)
{
	struct variant *po, *pp, *rp, *ro;
	char id[64];
	int rounds = opt.rounds_reg;

	nvariants = 0;
	po = variant("pfnic_odp", &pfnic, "ms", sample_reg);
	pp = variant("pfnic_pinned", &pfnic, "ms", sample_reg);
	rp = variant("rxe_pinned", &rxe, "ms", sample_reg);
	ro = variant("rxe_odp", &rxe, "ms", sample_reg);
	po->access = ro->access = ACCESS_ODP;
	pp->access = rp->access = ACCESS;
	po->len = pp->len = rp->len = ro->len = len;
	if (pfnic.present && !pfnic.odp)
		variant_disable(po, pfnic.why);
	if (rxe.present && !rxe.odp)
		variant_disable(ro, rxe.why);
	printf("# reg_%s: %d rounds of ibv_reg_mr + ibv_dereg_mr of %zu MiB of fresh memory "
	       "(pfnic ODP, pfnic pinned, rxe pinned, rxe ODP, interleaved)\n", tag, rounds,
	       len / MiB);
	fflush(stdout);
	run_rounds(rounds);

	snprintf(id, sizeof(id), "reg_%s pfnic pinned/odp", tag);
	figure_done(figure(id, pp, "pinned", po, "odp", rounds));
	snprintf(id, sizeof(id), "reg_%s pinned pfnic/rxe", tag);
	figure_done(figure(id, pp, "pfnic", rp, "rxe", rounds));
	snprintf(id, sizeof(id), "reg_%s odp pfnic/rxe", tag);
	figure_done(figure(id, po, "pfnic", ro, "rxe", rounds));
}

/* ------------------------------------------------------------------------------------------
 * 2. First touch
 */

static const char *counter_dir(const struct dev *d, char *buf, size_t size)
{
	snprintf(buf, size, "/sys/class/infiniband/%s/ports/1/hw_counters", d->name);
	return buf;
}

static long read_counter(const struct dev *d, const char *name)
{
	char dir[160], path[256];
	FILE *f;
	long v = -1;

	snprintf(path, sizeof(path), "%s/%s", counter_dir(d, dir, sizeof(dir)), name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* The device's fault counters as of now (hw stats are cached for about 10 ms). */
static void counters(const struct dev *d, long *events, long *pages)
{
	usleep(20000);
	/* mlx5's names: the _handled counter counts faults, the plain one pages */
	*events = read_counter(d, "page_faults_handled");
	*pages = read_counter(d, "page_faults");
}

static uint8_t fault_pattern = 0x40;
static void *fault_src;
static struct ibv_mr *fault_src_mr[2];	/* pfnic, rxe */

/* CPU: one byte written per page of fresh (small-page) memory. */
static int sample_cpu_touch(struct variant *v, double *us_per_page)
{
	size_t i, npages = FAULT_LEN / PAGE;
	volatile uint8_t *p = fresh(FAULT_LEN, 1);
	double t0, t1;

	(void)v;
	if (!p)
		return -1;
	t0 = now();
	for (i = 0; i < npages; i++)
		p[i * PAGE] = (uint8_t)i;
	t1 = now();
	munmap((void *)p, FAULT_LEN);
	*us_per_page = (t1 - t0) * 1e6 / npages;
	return 0;
}

/* The device's fault counters (pfnic's hw_counters) over the samples that could read them. */
struct fault_counters {
	long samples;		/* with counters */
	long events_cold, pages_cold, events_warm, pages_warm;
};

static struct fault_counters fault_counters[2];	/* pfnic, rxe */

/*
 * Device: an ODP MR over fresh (small-page) memory, an RDMA WRITE of all of it (one WR)
 * timed, then the same WRITE again into the now faulted MR: that time goes to the "warm"
 * variant (v->arg), which runs no sample of its own. The data is checked after each, and
 * the device's fault counters are read around each.
 */
static int sample_dev_fault(struct variant *v, double *us_per_page)
{
	struct dev *d = v->dev;
	struct variant *warm = v->arg;
	struct ibv_mr *src_mr = fault_src_mr[d == &rxe];
	struct fault_counters *fc = &fault_counters[d == &rxe];
	size_t npages = FAULT_LEN / PAGE;
	long e0, p0, e1, p1, e2, p2;
	struct ibv_mr *mr;
	double t0, t1, t2;
	uint8_t *dst;
	int r;

	dst = fresh(FAULT_LEN, 1);
	if (!dst)
		return -1;
	mr = ibv_reg_mr(d->pd, dst, FAULT_LEN, ACCESS_ODP);
	if (!mr) {
		seterr("%s: ibv_reg_mr(4 MiB, ODP): %s", d->name, strerror(errno));
		munmap(dst, FAULT_LEN);
		return -1;
	}
	fill(fault_src, FAULT_LEN, ++fault_pattern);

	counters(d, &e0, &p0);
	t0 = now();
	r = run_writes(d, fault_src, src_mr->lkey, (uintptr_t)dst, mr->rkey, FAULT_LEN, 1, 1, 1);
	t1 = now();
	if (r)
		goto out;
	r = check_data(d->name, dst, fault_src, FAULT_LEN, "fresh ODP memory");
	if (r)
		goto out;
	counters(d, &e1, &p1);

	fill(fault_src, FAULT_LEN, ++fault_pattern);
	t2 = now();
	r = run_writes(d, fault_src, src_mr->lkey, (uintptr_t)dst, mr->rkey, FAULT_LEN, 1, 1, 1);
	t2 = now() - t2;
	if (r)
		goto out;
	r = check_data(d->name, dst, fault_src, FAULT_LEN, "faulted ODP memory");
	if (r)
		goto out;
	counters(d, &e2, &p2);

	*us_per_page = (t1 - t0) * 1e6 / npages;
	warm->val[cur_round] = t2 * 1e6 / npages;
	warm->ok[cur_round] = 1;
	if (e0 >= 0 && e1 >= 0 && e2 >= 0 && p0 >= 0 && p1 >= 0 && p2 >= 0) {
		fc->samples++;
		fc->events_cold += e1 - e0;
		fc->pages_cold += p1 - p0;
		fc->events_warm += e2 - e1;
		fc->pages_warm += p2 - p1;
	}
out:
	if (ibv_dereg_mr(mr) && !r) {
		seterr("%s: ibv_dereg_mr: %s", d->name, strerror(errno));
		r = -1;
	}
	munmap(dst, FAULT_LEN);
	return r;
}

static int sample_none(struct variant *v, double *value)
{
	(void)v;
	(void)value;
	return 0;
}

static struct ibv_mr *reg_or_null(struct dev *d, void *p, size_t len, int access)
{
	struct ibv_mr *mr;

	if (!d->present || d->dead)
		return NULL;
	mr = ibv_reg_mr(d->pd, p, len, access);
	if (!mr)
		seterr("%s: ibv_reg_mr(%zu bytes%s): %s", d->name, len,
		       access & IBV_ACCESS_ON_DEMAND ? ", ODP" : "", strerror(errno));
	return mr;
}

static void bench_fault(void)
{
	struct variant *cpu, *pc, *pw, *rc, *rw, *pover, *xc;
	int rounds = opt.rounds, r;

	nvariants = 0;
	fault_src = touched(FAULT_LEN, 0x40);
	if (!fault_src) {
		figure_skip("fault_4KiB", 1, "%s", errbuf);
		return;
	}
	cpu = variant("cpu_touch", NULL, "us/page", sample_cpu_touch);
	xc = xcpu_variant();
	pc = variant("pfnic_odp_cold", &pfnic, "us/page", sample_dev_fault);
	pw = variant("pfnic_odp_warm", &pfnic, "us/page", sample_none);
	rc = variant("rxe_odp_cold", &rxe, "us/page", sample_dev_fault);
	rw = variant("rxe_odp_warm", &rxe, "us/page", sample_none);
	pc->arg = pw;
	rc->arg = rw;
	/* the warm variants are filled in by the cold ones */
	pw->enabled = rw->enabled = 0;
	if (pfnic.present && !pfnic.odp)
		variant_disable(pc, pfnic.why);
	if (rxe.present && !rxe.odp)
		variant_disable(rc, rxe.why);
	if (pc->enabled) {
		fault_src_mr[0] = reg_or_null(&pfnic, fault_src, FAULT_LEN, ACCESS);
		if (!fault_src_mr[0])
			variant_fail(pc, errbuf);
	}
	if (rc->enabled) {
		fault_src_mr[1] = reg_or_null(&rxe, fault_src, FAULT_LEN, ACCESS);
		if (!fault_src_mr[1])
			variant_fail(rc, errbuf);
	}
	printf("# fault_4KiB: %d rounds of: CPU writing 1 byte per page of %lu fresh 4 KiB pages; "
	       "one %lu MiB RDMA WRITE (pinned source) into a fresh ODP MR, then again into the "
	       "faulted MR (pfnic%s), interleaved\n", rounds, FAULT_LEN / PAGE, FAULT_LEN / MiB,
	       rc->enabled ? ", then rxe" : "");
	fflush(stdout);
	run_rounds(rounds);
	env_report("fault_4KiB", xc, rounds);
	pw->enabled = pc->enabled;
	pw->failed = pc->failed;
	snprintf(pw->why, sizeof(pw->why), "%s", pc->why);
	rw->enabled = rc->enabled;
	rw->failed = rc->failed;
	snprintf(rw->why, sizeof(rw->why), "%s", rc->why);

	/* the fault overhead: cold minus warm, per round */
	pover = &variants[nvariants++];
	*pover = *pc;
	pover->name = "pfnic_odp_cold-warm";
	for (r = 0; r < rounds; r++) {
		pover->ok[r] = pc->ok[r] && pw->ok[r];
		pover->val[r] = pc->val[r] - pw->val[r];
	}

	{
		const struct fault_counters *fc = &fault_counters[0];
		struct figure *f = figure("fault_4KiB pfnic device/cpu", pc, "device first-touch WRITE",
					  cpu, "cpu first touch", rounds);

		if (!f->why[0] && fc->samples > 0)
			snprintf(f->note, sizeof(f->note),
				 "pfnic counters per cold WRITE: %.1f fault events, %.0f pages faulted; "
				 "per warm WRITE: %.1f, %.0f", (double)fc->events_cold / fc->samples,
				 (double)fc->pages_cold / fc->samples,
				 (double)fc->events_warm / fc->samples,
				 (double)fc->pages_warm / fc->samples);
		figure_done(f);
	}
	figure_done(figure("fault_4KiB pfnic cold/warm", pc, "cold", pw, "warm", rounds));
	figure_done(figure("fault_4KiB pfnic (cold-warm)/cpu", pover, "fault overhead", cpu,
			   "cpu first touch", rounds));
	if (rc->enabled || rc->failed) {
		figure_done(figure("fault_4KiB rxe device/cpu", rc, "device first-touch WRITE", cpu,
				   "cpu first touch", rounds));
		figure_done(figure("fault_4KiB cold pfnic/rxe", pc, "pfnic", rc, "rxe", rounds));
	} else {
		figure_skip("fault_4KiB rxe", 0, "%s", rc->why);
	}

	if (fault_src_mr[0])
		ibv_dereg_mr(fault_src_mr[0]);
	if (fault_src_mr[1])
		ibv_dereg_mr(fault_src_mr[1]);
	fault_src_mr[0] = fault_src_mr[1] = NULL;
	munmap(fault_src, FAULT_LEN);
}

/* ------------------------------------------------------------------------------------------
 * 3, 4. Bandwidth and message rate
 */

struct stream {
	uint32_t len;
	int depth, sig;
	long min_iters, max_iters, cal_iters, round_to;
};

static const struct stream bw_stream = { BW_LEN, BW_DEPTH, 1, 4, 4096, 4, 1 };
static const struct stream msg_stream = { MSG_LEN, MSG_DEPTH, MSG_SIGNAL, 1024, 1 << 22, 1024,
					  MSG_SIGNAL };
static const struct stream *stream;

/* The kernel-copy variant's file (its arg points here): a memfd of stream->len bytes. */
static int kcopy_fd = -1;

/* Sets up a variant's buffers and MRs; the variant's samples are stream->len * iters. */
static int stream_setup(struct variant *v, int access)
{
	v->len = stream->len;
	v->access = access;
	v->src = touched(stream->len < PAGE ? PAGE : stream->len, 0);
	v->dst = touched(stream->len < PAGE ? PAGE : stream->len, 0);
	if (!v->src || !v->dst)
		return -1;
	fill(v->src, stream->len, 0x5a);
	if (v->arg == &kcopy_fd) {
		kcopy_fd = memfd_create("pfnic_bench", 0);
		if (kcopy_fd < 0 || pwrite(kcopy_fd, v->src, v->len, 0) != (ssize_t)v->len) {
			seterr("memfd for the kernel copy: %s", strerror(errno));
			return -1;
		}
	}
	if (!v->dev)
		return 0;
	v->mr_src = reg_or_null(v->dev, v->src, stream->len, access);
	v->mr_dst = v->mr_src ? reg_or_null(v->dev, v->dst, stream->len, access) : NULL;
	return v->mr_dst ? 0 : -1;
}

static void stream_teardown(struct variant *v)
{
	size_t len = stream->len < PAGE ? PAGE : stream->len;

	if (v->arg == &kcopy_fd && kcopy_fd >= 0) {
		close(kcopy_fd);
		kcopy_fd = -1;
	}
	if (v->mr_dst)
		ibv_dereg_mr(v->mr_dst);
	if (v->mr_src)
		ibv_dereg_mr(v->mr_src);
	if (v->src)
		munmap(v->src, len);
	if (v->dst)
		munmap(v->dst, len);
	v->mr_src = v->mr_dst = NULL;
	v->src = v->dst = NULL;
}

/* One sample of @n: seconds. */
static int stream_run(struct variant *v, long n, double *secs)
{
	double t0 = now();
	long i;

	if (v->arg == &kcopy_fd) {
		for (i = 0; i < n; i++)
			if (pread(kcopy_fd, v->dst, v->len, 0) != (ssize_t)v->len) {
				seterr("pread from the memfd: %s", strerror(errno));
				return -1;
			}
	} else if (!v->dev) {
		for (i = 0; i < n; i++) {
			memcpy(v->dst, v->src, v->len);
			__asm__ __volatile__("" : : "r"(v->dst) : "memory");
		}
	} else if (run_writes(v->dev, v->src, v->mr_src->lkey, (uintptr_t)v->dst,
			      v->mr_dst->rkey, v->len, n, stream->depth, stream->sig)) {
		return -1;
	}
	*secs = now() - t0;
	return 0;
}

/* Warms the variant up and picks its iterations per sample (about opt.target_s each). */
static int stream_calibrate(struct variant *v)
{
	double t;
	long n;

	if (stream_run(v, stream->cal_iters, &t))
		return -1;
	/* the first WRITEs landed where they should */
	if (v->dev && check_data(v->dev->name, v->dst, v->src, v->len, v->access & IBV_ACCESS_ON_DEMAND ?
				 "touched ODP memory" : "pinned memory"))
		return -1;
	if (stream_run(v, stream->cal_iters, &t))
		return -1;
	n = t > 0 ? (long)(opt.target_s / t * stream->cal_iters) : stream->max_iters;
	if (n < stream->min_iters)
		n = stream->min_iters;
	if (n > stream->max_iters)
		n = stream->max_iters;
	n = (n + stream->round_to - 1) / stream->round_to * stream->round_to;
	v->iters = n;
	return 0;
}

/* A sample: bandwidth in MiB/s, or the message rate in thousands a second. */
static int sample_stream(struct variant *v, double *rate)
{
	double t;

	if (stream_run(v, v->iters, &t))
		return -1;
	if (stream->len >= MiB)
		*rate = (double)v->iters * v->len / MiB / t;
	else
		*rate = v->iters / t / 1e3;
	return 0;
}

static void stream_prepare(struct variant *v, int access)
{
	if (!v->enabled)
		return;
	if (stream_setup(v, access) || stream_calibrate(v))
		variant_fail(v, errbuf);
}

struct iter_rec {
	char name[64];
	long n;
};

static int niters;
static struct iter_rec iter_recs[32];

static void print_iters(const char *tag)
{
	int i;

	printf("# %s iterations per sample:", tag);
	for (i = 0; i < nvariants; i++)
		if (variants[i].enabled && variants[i].iters) {
			printf(" %s %ld", variants[i].name, variants[i].iters);
			if (niters < 32) {
				snprintf(iter_recs[niters].name, sizeof(iter_recs[niters].name),
					 "%s.%s", tag, variants[i].name);
				iter_recs[niters++].n = variants[i].iters;
			}
		}
	printf("\n");
	fflush(stdout);
}

static void bench_bw(void)
{
	struct variant *mc, *kc, *pp, *po, *rp, *ro, *xc;
	int rounds = opt.rounds, i;

	stream = &bw_stream;
	nvariants = 0;
	xc = xcpu_variant();
	mc = variant("memcpy", NULL, "MiB/s", sample_stream);
	kc = variant("kernel_copy", NULL, "MiB/s", sample_stream);
	kc->arg = &kcopy_fd;
	pp = variant("pfnic_pinned", &pfnic, "MiB/s", sample_stream);
	po = variant("pfnic_odp", &pfnic, "MiB/s", sample_stream);
	rp = variant("rxe_pinned", &rxe, "MiB/s", sample_stream);
	ro = variant("rxe_odp", &rxe, "MiB/s", sample_stream);
	if (pfnic.present && !pfnic.odp)
		variant_disable(po, pfnic.why);
	if (rxe.present && !rxe.odp)
		variant_disable(ro, rxe.why);
	printf("# bw_1MiB: 1 MiB RDMA WRITEs, %d outstanding, each signaled, one WR per post; "
	       "memcpy of 1 MiB; %d rounds interleaved, about %.0f ms a sample\n", BW_DEPTH, rounds,
	       opt.target_s * 1e3);
	stream_prepare(mc, 0);
	stream_prepare(kc, 0);
	stream_prepare(pp, ACCESS);
	stream_prepare(po, ACCESS_ODP);	/* the calibration faulted both buffers in */
	stream_prepare(rp, ACCESS);
	stream_prepare(ro, ACCESS_ODP);
	print_iters("bw_1MiB");
	run_rounds(rounds);
	env_report("bw_1MiB", xc, rounds);

	figure_done(figure("bw_1MiB pfnic pinned/memcpy", pp, "pfnic", mc, "memcpy", rounds));
	figure_done(figure("bw_1MiB pfnic odp/memcpy", po, "pfnic", mc, "memcpy", rounds));
	figure_done(figure("bw_1MiB kernel copy/memcpy", kc, "kernel", mc, "memcpy", rounds));
	figure_done(figure("bw_1MiB pfnic pinned/kernel copy", pp, "pfnic", kc, "kernel", rounds));
	figure_done(figure("bw_1MiB pinned pfnic/rxe", pp, "pfnic", rp, "rxe", rounds));
	figure_done(figure("bw_1MiB odp pfnic/rxe", po, "pfnic", ro, "rxe", rounds));
	figure_done(figure("bw_1MiB rxe pinned/memcpy", rp, "rxe", mc, "memcpy", rounds));
	figure_done(figure("bw_1MiB pfnic odp/pinned", po, "odp", pp, "pinned", rounds));
	for (i = 0; i < nvariants; i++)
		stream_teardown(&variants[i]);
}

/* A sample of @v's own kind (v->arg2) with pfnic's polling engine on. */
static int sample_polled(struct variant *v, double *rate)
{
	int rv;

	if (!vt_set_poll_usecs((unsigned int)opt.poll_usecs)) {
		seterr("cannot set pfnic's poll_usecs: %s", strerror(errno));
		return -1;
	}
	rv = v->polled_fn(v, rate);
	vt_set_poll_usecs(0);
	return rv;
}

/* A variant that samples with @fn with pfnic's polling engine on. */
static struct variant *polled_variant(const char *name, int (*fn)(struct variant *, double *))
{
	struct variant *v = variant(name, &pfnic, "kmsg/s", sample_polled);

	v->polled_fn = fn;
	return v;
}

static void bench_msg(void)
{
	struct variant *pp, *rp, *po, *ro, *pq, *xc;
	int rounds = opt.rounds, i;

	stream = &msg_stream;
	nvariants = 0;
	xc = xcpu_variant();
	pp = variant("pfnic_pinned", &pfnic, "kmsg/s", sample_stream);
	pq = polled_variant("pfnic_pinned_polled", sample_stream);
	rp = variant("rxe_pinned", &rxe, "kmsg/s", sample_stream);
	po = variant("pfnic_odp", &pfnic, "kmsg/s", sample_stream);
	ro = variant("rxe_odp", &rxe, "kmsg/s", sample_stream);
	if (pfnic.present && !pfnic.odp)
		variant_disable(po, pfnic.why);
	if (rxe.present && !rxe.odp)
		variant_disable(ro, rxe.why);
	printf("# msgrate_64B: 64-byte RDMA WRITEs, queue depth %d, signaled every %d, one WR per "
	       "post; %d rounds interleaved, about %.0f ms a sample\n", MSG_DEPTH, MSG_SIGNAL,
	       rounds, opt.target_s * 1e3);
	stream_prepare(pp, ACCESS);
	stream_prepare(pq, ACCESS);
	stream_prepare(rp, ACCESS);
	stream_prepare(po, ACCESS_ODP);
	stream_prepare(ro, ACCESS_ODP);
	print_iters("msgrate_64B");
	run_rounds(rounds);
	env_report("msgrate_64B", xc, rounds);

	figure_done(figure("msgrate_64B pinned pfnic/rxe", pp, "pfnic", rp, "rxe", rounds));
	figure_done(figure("msgrate_64B odp pfnic/rxe", po, "pfnic", ro, "rxe", rounds));
	figure_done(figure("msgrate_64B pfnic odp/pinned", po, "odp", pp, "pinned", rounds));
	figure_done(figure("msgrate_64B pinned polled pfnic/rxe", pq, "pfnic", rp, "rxe", rounds));
	figure_done(figure("msgrate_64B pfnic polled/doorbell", pq, "polled", pp, "doorbell",
			   rounds));
	for (i = 0; i < nvariants; i++)
		stream_teardown(&variants[i]);
}

/* ------------------------------------------------------------------------------------------
 * 5. Message rate over several QPs, SEND and WRITE
 */

#define MQ_MAX 16	/* QP pairs at most */
#define MQ_DEPTH 16	/* WRs outstanding per QP */
#define MQ_SIGNAL 4	/* one WR in this many signaled, per QP */
#define MQ_RECV 32	/* receives kept posted per QP (more than MQ_DEPTH: no RNR) */

/* @nqp pairs of connected RC QPs of one device, on one send CQ and one receive CQ. */
struct mq {
	struct dev *d;
	int nqp;
	struct ibv_cq *scq, *rcq;
	struct ibv_qp *qa[MQ_MAX], *qb[MQ_MAX];
	struct ibv_mr *mr;
	uint8_t *buf;		/* the source in its first page, the receive buffers after it */
	enum ibv_wr_opcode op;
};

static void mq_free(struct mq *m)
{
	for (int i = 0; i < m->nqp; i++) {
		if (m->qa[i])
			ibv_destroy_qp(m->qa[i]);
		if (m->qb[i])
			ibv_destroy_qp(m->qb[i]);
	}
	if (m->scq)
		ibv_destroy_cq(m->scq);
	if (m->rcq)
		ibv_destroy_cq(m->rcq);
	if (m->mr)
		ibv_dereg_mr(m->mr);
	if (m->buf)
		munmap(m->buf, 2 * PAGE);
	free(m);
}

/* Receive @i of QP pair @q: MSG_LEN bytes in the second page. */
static int mq_post_recv(struct mq *m, int q)
{
	struct ibv_sge sge = { .addr = (uintptr_t)m->buf + PAGE + (uint64_t)q * MSG_LEN,
			       .length = MSG_LEN, .lkey = m->mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = (uint64_t)q, .sg_list = &sge, .num_sge = 1 }, *bad;

	return ibv_post_recv(m->qb[q], &wr, &bad);
}

static struct mq *mq_make(struct dev *d, int nqp, enum ibv_wr_opcode op)
{
	struct ibv_qp_init_attr ia;
	struct mq *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->d = d;
	m->nqp = nqp;
	m->op = op;
	m->buf = touched(2 * PAGE, 0x33);
	m->mr = m->buf ? reg_or_null(d, m->buf, 2 * PAGE, ACCESS) : NULL;
	m->scq = ibv_create_cq(d->ctx, 1024, NULL, NULL, 0);
	m->rcq = ibv_create_cq(d->ctx, 1024, NULL, NULL, 0);
	if (!m->mr || !m->scq || !m->rcq) {
		seterr("%s: %d QP pairs: MR or CQs: %s", d->name, nqp, strerror(errno));
		goto fail;
	}
	memset(&ia, 0, sizeof(ia));
	ia.send_cq = m->scq;
	ia.recv_cq = m->rcq;
	ia.qp_type = IBV_QPT_RC;
	ia.cap.max_send_wr = 2 * MQ_DEPTH;
	ia.cap.max_recv_wr = MQ_RECV;
	ia.cap.max_send_sge = 1;
	ia.cap.max_recv_sge = 1;
	for (int i = 0; i < nqp; i++) {
		m->qa[i] = ibv_create_qp(d->pd, &ia);
		m->qb[i] = m->qa[i] ? ibv_create_qp(d->pd, &ia) : NULL;
		if (!m->qb[i]) {
			seterr("%s: ibv_create_qp (pair %d): %s", d->name, i, strerror(errno));
			goto fail;
		}
		if (qp_to_rts(d, m->qa[i], m->qb[i]->qp_num) ||
		    qp_to_rts(d, m->qb[i], m->qa[i]->qp_num))
			goto fail;
		for (int k = 0; k < MQ_RECV; k++)
			if (op == IBV_WR_SEND && mq_post_recv(m, i)) {
				seterr("%s: ibv_post_recv: %s", d->name, strerror(errno));
				goto fail;
			}
	}
	return m;
fail:
	mq_free(m);
	return NULL;
}

/*
 * @n messages of MSG_LEN bytes, round robin over the QP pairs, MQ_DEPTH outstanding on each,
 * one in MQ_SIGNAL signaled; a SEND's receive is posted again as soon as it completes.
 * Return: 0, or -1 with errbuf set.
 */
static int mq_run(struct mq *m, long n)
{
	struct ibv_sge sge = { .addr = (uintptr_t)m->buf, .length = MSG_LEN, .lkey = m->mr->lkey };
	int out[MQ_MAX] = { 0 }, since[MQ_MAX] = { 0 };
	long posted = 0, done = 0, received = 0;
	double deadline = now() + WAIT_TIMEOUT_S;
	struct ibv_send_wr wr, *bad;
	struct ibv_wc wc[32];
	int k, q;

	last_was_hang = 0;
	memset(&wr, 0, sizeof(wr));
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = m->op;
	while (done < n || (m->op == IBV_WR_SEND && received < n)) {
		for (q = 0; q < m->nqp && posted < n; q++) {
			while (out[q] < MQ_DEPTH && posted < n) {
				since[q]++;
				out[q]++;
				posted++;
				if (since[q] == MQ_SIGNAL || out[q] == MQ_DEPTH || posted == n) {
					wr.send_flags = IBV_SEND_SIGNALED;
					wr.wr_id = (uint64_t)q << 32 | (uint32_t)since[q];
					since[q] = 0;
				} else {
					wr.send_flags = 0;
				}
				wr.wr.rdma.remote_addr = (uintptr_t)m->buf + PAGE + (uint64_t)q * MSG_LEN;
				wr.wr.rdma.rkey = m->mr->rkey;
				if (ibv_post_send(m->qa[q], &wr, &bad)) {
					seterr("%s: ibv_post_send: %s", m->d->name, strerror(errno));
					return -1;
				}
			}
		}
		k = ibv_poll_cq(m->scq, 32, wc);
		for (int i = 0; i < k; i++) {
			if (wc[i].status != IBV_WC_SUCCESS) {
				seterr("%s: a send completion: %s", m->d->name,
				       ibv_wc_status_str(wc[i].status));
				return -1;
			}
			out[wc[i].wr_id >> 32] -= (int)(uint32_t)wc[i].wr_id;
			done += (uint32_t)wc[i].wr_id;
		}
		if (k > 0)
			deadline = now() + WAIT_TIMEOUT_S;
		if (m->op == IBV_WR_SEND) {
			int r = ibv_poll_cq(m->rcq, 32, wc);

			for (int i = 0; i < r; i++) {
				if (wc[i].status != IBV_WC_SUCCESS || wc[i].byte_len != MSG_LEN) {
					seterr("%s: a receive completion: %s, %u bytes", m->d->name,
					       ibv_wc_status_str(wc[i].status), wc[i].byte_len);
					return -1;
				}
				received++;
				if (mq_post_recv(m, (int)wc[i].wr_id)) {
					seterr("%s: ibv_post_recv: %s", m->d->name, strerror(errno));
					return -1;
				}
			}
			if (r > 0)
				deadline = now() + WAIT_TIMEOUT_S;
		}
		if (k < 0 || now() > deadline) {
			seterr("%s: no completion for %.0f s (%ld of %ld sent, %ld received)",
			       m->d->name, WAIT_TIMEOUT_S, done, n, received);
			last_was_hang = k >= 0;
			return -1;
		}
	}
	/* the last message of each pair landed whole */
	for (q = 0; q < m->nqp; q++)
		if (memcmp(m->buf + PAGE + (size_t)q * MSG_LEN, m->buf, MSG_LEN)) {
			seterr("%s: pair %d: the message landed wrong", m->d->name, q);
			return -1;
		}
	return 0;
}

/* A sample: thousands of messages a second. */
static int sample_mq(struct variant *v, double *rate)
{
	struct mq *m = v->arg;
	double t0 = now();

	if (mq_run(m, v->iters))
		return -1;
	*rate = v->iters / (now() - t0) / 1e3;
	return 0;
}

static void mq_prepare(struct variant *v, int nqp, enum ibv_wr_opcode op)
{
	struct mq *m;
	double t0, t;

	if (!v->enabled)
		return;
	m = mq_make(v->dev, nqp, op);
	if (!m) {
		variant_fail(v, errbuf);
		return;
	}
	v->arg = m;
	t0 = now();
	if (mq_run(m, 1024)) {
		variant_fail(v, errbuf);
		return;
	}
	t = now() - t0;
	v->iters = t > 0 ? (long)(opt.target_s / t * 1024) : 1 << 20;
	v->iters = v->iters < 1024 ? 1024 : v->iters > (1 << 22) ? 1 << 22 : v->iters;
	v->iters = (v->iters + 1023) / 1024 * 1024;
}

static void bench_msgq(void)
{
	struct variant *ps1, *rs1, *pw16, *rw16, *ps16, *rs16, *qs1, *qw16, *xc;
	int rounds = opt.rounds, i;

	nvariants = 0;
	xc = xcpu_variant();
	ps1 = variant("pfnic_send_1qp", &pfnic, "kmsg/s", sample_mq);
	qs1 = polled_variant("pfnic_send_1qp_polled", sample_mq);
	qw16 = polled_variant("pfnic_write_16qp_polled", sample_mq);
	rs1 = variant("rxe_send_1qp", &rxe, "kmsg/s", sample_mq);
	pw16 = variant("pfnic_write_16qp", &pfnic, "kmsg/s", sample_mq);
	rw16 = variant("rxe_write_16qp", &rxe, "kmsg/s", sample_mq);
	ps16 = variant("pfnic_send_16qp", &pfnic, "kmsg/s", sample_mq);
	rs16 = variant("rxe_send_16qp", &rxe, "kmsg/s", sample_mq);
	printf("# msgq_64B: 64-byte SENDs on 1 QP pair, RDMA WRITEs and SENDs on 16 pairs round "
	       "robin, %d outstanding per QP, one in %d signaled, receives posted again as they "
	       "complete, pinned; %d rounds interleaved, about %.0f ms a sample\n", MQ_DEPTH,
	       MQ_SIGNAL, rounds, opt.target_s * 1e3);
	mq_prepare(ps1, 1, IBV_WR_SEND);
	mq_prepare(qs1, 1, IBV_WR_SEND);
	mq_prepare(qw16, MQ_MAX, IBV_WR_RDMA_WRITE);
	mq_prepare(rs1, 1, IBV_WR_SEND);
	mq_prepare(pw16, MQ_MAX, IBV_WR_RDMA_WRITE);
	mq_prepare(rw16, MQ_MAX, IBV_WR_RDMA_WRITE);
	mq_prepare(ps16, MQ_MAX, IBV_WR_SEND);
	mq_prepare(rs16, MQ_MAX, IBV_WR_SEND);
	print_iters("msgq_64B");
	run_rounds(rounds);
	env_report("msgq_64B", xc, rounds);

	figure_done(figure("msgq_64B send 1qp pfnic/rxe", ps1, "pfnic", rs1, "rxe", rounds));
	figure_done(figure("msgq_64B write 16qp pfnic/rxe", pw16, "pfnic", rw16, "rxe", rounds));
	figure_done(figure("msgq_64B send 16qp pfnic/rxe", ps16, "pfnic", rs16, "rxe", rounds));
	figure_done(figure("msgq_64B send 1qp polled pfnic/rxe", qs1, "pfnic", rs1, "rxe", rounds));
	figure_done(figure("msgq_64B write 16qp polled pfnic/rxe", qw16, "pfnic", rw16, "rxe",
			   rounds));
	for (i = 0; i < nvariants; i++)
		if (variants[i].arg && (variants[i].fn == sample_mq ||
					variants[i].polled_fn == sample_mq))
			mq_free(variants[i].arg);
}

/* ------------------------------------------------------------------------------------------
 * JSON
 */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void json_num(double v)
{
	printf("%.6g", v);
}

static void print_json(const char *kernel, const char *thp, double elapsed)
{
	int i;

	printf("BENCH_JSON {\"kernel\":");
	json_str(kernel);
	printf(",\"thp\":");
	json_str(thp);
	printf(",\"pfnic\":{\"device\":");
	json_str(opt.pfnic);
	printf(",\"present\":%s,\"odp\":%s", pfnic.present ? "true" : "false",
	       pfnic.present && pfnic.odp ? "true" : "false");
	if (!pfnic.present || !pfnic.odp) {
		printf(",\"why\":");
		json_str(pfnic.why);
	}
	printf("},\"rxe\":{\"device\":");
	json_str(opt.rxe);
	printf(",\"present\":%s,\"odp\":%s", rxe.present ? "true" : "false",
	       rxe.present && rxe.odp ? "true" : "false");
	if (!rxe.present || !rxe.odp) {
		printf(",\"why\":");
		json_str(rxe.why);
	}
	printf("},\"params\":{\"rounds_reg\":%d,\"rounds\":%d,\"sample_ms\":%.0f,"
	       "\"fault_bytes\":%lu,\"bw_bytes\":%lu,\"bw_depth\":%d,\"msg_bytes\":%d,"
	       "\"msg_depth\":%d,\"msg_signal_every\":%d,\"gid_index\":%d,"
	       "\"cpus_online\":%ld},\"figures\":[",
	       opt.rounds_reg, opt.rounds, opt.target_s * 1e3, FAULT_LEN, BW_LEN, BW_DEPTH, MSG_LEN,
	       MSG_DEPTH, MSG_SIGNAL, opt.gid_index, sysconf(_SC_NPROCESSORS_ONLN));
	for (i = 0; i < nfigures; i++) {
		const struct figure *f = &figures[i];

		printf("%s{\"id\":", i ? "," : "");
		json_str(f->id);
		if (f->why[0]) {
			printf(f->error ? ",\"error\":" : ",\"skipped\":");
			json_str(f->why);
			putchar('}');
			continue;
		}
		printf(",\"ratio\":");
		json_num(f->ratio);
		printf(",\"min\":");
		json_num(f->min);
		printf(",\"max\":");
		json_num(f->max);
		printf(",\"rounds\":%d,\"unit\":", f->rounds);
		json_str(f->unit);
		printf(",\"a\":{\"name\":");
		json_str(f->a_name);
		printf(",\"median\":");
		json_num(f->a);
		printf("},\"b\":{\"name\":");
		json_str(f->b_name);
		printf(",\"median\":");
		json_num(f->b);
		putchar('}');
		if (f->note[0]) {
			printf(",\"note\":");
			json_str(f->note);
		}
		putchar('}');
	}
	printf("],\"iterations\":{");
	for (i = 0; i < niters; i++) {
		printf("%s", i ? "," : "");
		json_str(iter_recs[i].name);
		printf(":%ld", iter_recs[i].n);
	}
	printf("},\"env\":{");
	for (i = 0; i < nenv; i++) {
		printf("%s", i ? "," : "");
		json_str(env_recs[i].section);
		printf(":{\"xcpu_wakeup_us\":{\"median\":");
		json_num(env_recs[i].median);
		printf(",\"min\":");
		json_num(env_recs[i].min);
		printf(",\"max\":");
		json_num(env_recs[i].max);
		printf(",\"rounds\":%d}}", env_recs[i].rounds);
	}
	printf("},\"elapsed_s\":%.1f,\"exit_status\":%d}\n", elapsed, exit_status);
}

/* ------------------------------------------------------------------------------------------ */

/* Whether section @name is to run (-o). */
static int section(const char *name)
{
	const char *p = opt.only;
	size_t n = strlen(name);

	if (!p)
		return 1;
	while (p && *p) {
		if (!strncmp(p, name, n) && (p[n] == ',' || !p[n]))
			return 1;
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pfnic_bench [-d PFNIC_DEV] [-x RXE_DEV|none] [-g GID_INDEX] [-n ROUNDS]\n"
		"                   [-N REG_ROUNDS] [-t SAMPLE_MS] [-G] [-o SECTION,...] [-P USECS]\n"
		"  -d  pfnic device (pfnic0)          -x  rxe device to compare with (rxe0)\n"
		"  -g  GID index (1)                  -n  rounds of the fault, bw and msgrate figures (7)\n"
		"  -N  rounds of registration (5)     -t  ms per throughput sample (150)\n"
		"  -G  skip the 1 GiB registrations   -o  only these of reg,fault,bw,msg,msgq\n"
		"  -P  pfnic's poll_usecs for its polled variants (1000)\n");
}

int main(int argc, char **argv)
{
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	struct utsname un;
	char thp[32];
	double t_start = now();
	int c;

	while ((c = getopt(argc, argv, "d:x:g:n:N:t:Go:P:h")) != -1) {
		switch (c) {
		case 'd': opt.pfnic = optarg; break;
		case 'x': opt.rxe = optarg; break;
		case 'g': opt.gid_index = atoi(optarg); break;
		case 'n': opt.rounds = atoi(optarg); break;
		case 'N': opt.rounds_reg = atoi(optarg); break;
		case 't': opt.target_s = atof(optarg) / 1e3; break;
		case 'G': opt.skip_1g = 1; break;
		case 'o': opt.only = optarg; break;
		case 'P': opt.poll_usecs = atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || opt.rounds < 1 || opt.rounds > MAX_ROUNDS - 2 ||
	    opt.rounds_reg < 1 || opt.rounds_reg > MAX_ROUNDS - 2 || opt.target_s <= 0 ||
	    opt.poll_usecs < 1) {
		usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* pinned registrations count against RLIMIT_MEMLOCK unless we have CAP_IPC_LOCK */
	setrlimit(RLIMIT_MEMLOCK, &unlimited);

	uname(&un);
	thp_mode(thp, sizeof(thp));
	printf("# pfnic_bench: kernel %s, transparent huge pages %s; every figure is a ratio of "
	       "interleaved measurements in this run\n", un.release, thp);

	if (dev_open(&pfnic, opt.pfnic)) {
		printf("# pfnic: %s\n", pfnic.why);
		exit_status = 1;
	} else {
		printf("# pfnic: %s, explicit ODP %s\n", pfnic.name, pfnic.odp ? "yes" : pfnic.why);
		if (!pfnic.odp)
			exit_status = 1;
	}
	if (!strcmp(opt.rxe, "none") || !strcmp(opt.rxe, "-")) {
		rxe.name = "rxe";
		snprintf(rxe.why, sizeof(rxe.why), "no rxe comparison asked for");
		printf("# rxe: none\n");
	} else if (dev_open(&rxe, opt.rxe)) {
		printf("# rxe: %s: comparisons with rxe skipped\n", rxe.why);
	} else {
		printf("# rxe: %s, explicit ODP %s\n", rxe.name,
		       rxe.odp ? "yes" : "no: ODP comparisons with rxe skipped");
		if (!rxe.odp)
			printf("# rxe: %s\n", rxe.why);
	}
	fflush(stdout);

	if (pfnic.present) {
		if (section("reg")) {
			bench_reg(64 * MiB, "64MiB");
			if (opt.skip_1g)
				figure_skip("reg_1GiB", 0, "skipped (-G)");
			else
				bench_reg(1 * GiB, "1GiB");
		}
		if (section("fault"))
			bench_fault();
		if (section("bw"))
			bench_bw();
		if (section("msg"))
			bench_msg();
		if (section("msgq"))
			bench_msgq();
	} else {
		figure_skip("all", 1, "pfnic: %s", pfnic.why);
	}

	echo_stop();
	print_json(un.release, thp, now() - t_start);
	printf("# pfnic_bench: %.1f s, exit status %d\n", now() - t_start, exit_status);
	dev_close(&rxe);
	dev_close(&pfnic);
	return exit_status;
}
