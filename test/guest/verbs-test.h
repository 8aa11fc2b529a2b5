/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * verbs-test.h: what the verbs test programs share: pfnic_traffic and pfnic_badinput (TAP
 * tests, in this folder) and pfnic_bench (test/bench/). Static inline functions (and one
 * struct, some masks), so a program uses what it needs and nothing else is compiled in:
 *  - TAP output: diag() prints a "# " diagnostic line, bail() a "Bail out!" line and exits 1;
 *  - now(): seconds on the monotonic clock;
 *  - open_device_named(): the libibverbs context of a device, by name, or bail();
 *  - vt_args(): the command line the programs share (-d DEVICE, -g GID_INDEX);
 *  - what a command prints, as words (run_words(), after(), num_after());
 *  - numa_balancing(): automatic NUMA balancing off while a program moves pages;
 *  - map_fresh(): fresh anonymous memory of 4 KiB pages; write_file(): a sysfs or proc write;
 *  - memory blocks: vt_block_attr() reads a block's attribute, vt_block_set() its state;
 *  - the RC loopback set-up: one QP of a pair moved RESET -> INIT -> RTR -> RTS towards the
 *    other (struct vt_rc: the attributes in which the programs differ);
 *  - vt_pat(), the byte pattern a test writes, vt_check_pattern() that checks it and the
 *    guards around it, vt_poll_one() a completion within a time;
 *  - struct vt_pair: two RC QPs in loopback, QP 0 reaching QP 1's memory with RDMA WRITEs and
 *    READs from a local buffer of its own (vt_pair_rdma(), vt_pair_write_read()).
 *
 * Include it after the system headers (the programs define _GNU_SOURCE before those).
 */
#pragma once

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <infiniband/verbs.h>

/* ---- TAP output ---------------------------------------------------------------------------- */

static inline void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static inline void bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void bail(const char *fmt, ...)
{
	va_list ap;

	fputs("Bail out! ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	exit(1);
}

/*
 * Ends the program's current test point, @name: "ok", or "not ok" if *@bad was set (by
 * EXPECT), which it clears. *@num counts the points, *@failed those that failed.
 */
static inline void vt_point(int *num, int *failed, int *bad, const char *name)
{
	(*num)++;
	printf("%s %d - %s\n", *bad ? "not ok" : "ok", *num, name);
	fflush(stdout);
	*failed += *bad;
	*bad = 0;
}

/*
 * EXPECT(cond, fmt, ...): a check of the program's current test point; when it fails, says
 * why and marks the point failed (the program's own `static int bad`).
 */
#define EXPECT(cond, ...) do {								\
	if (!(cond)) {									\
		diag(__VA_ARGS__);							\
		bad = 1;								\
	}										\
} while (0)

/* ---- time ---------------------------------------------------------------------------------- */

/* Seconds on CLOCK_MONOTONIC. */
static inline double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- device -------------------------------------------------------------------------------- */

/* The opened device @name; bail() if there is none or it does not open. */
static inline struct ibv_context *open_device_named(const char *name)
{
	struct ibv_device **list = ibv_get_device_list(NULL);
	struct ibv_context *ctx = NULL;

	if (!list)
		bail("ibv_get_device_list: %s", strerror(errno));
	for (int i = 0; list[i]; i++) {
		if (strcmp(ibv_get_device_name(list[i]), name) == 0) {
			ctx = ibv_open_device(list[i]);
			if (!ctx)
				bail("ibv_open_device(%s): %s", name, strerror(errno));
			break;
		}
	}
	ibv_free_device_list(list);
	if (!ctx)
		bail("no RDMA device named %s", name);
	return ctx;
}

/* ---- what a command prints ------------------------------------------------------------------ */

#define MAXTOK 4096

/* The whitespace-separated words a command printed (at most MAXTOK), or -1. */
static inline int run_words(const char *cmd, char *buf, size_t len, char **tok)
{
	FILE *f = popen(cmd, "r");
	size_t got;
	int n = 0;

	if (!f) {
		diag("cannot run %s: %s", cmd, strerror(errno));
		return -1;
	}
	got = fread(buf, 1, len - 1, f);
	buf[got] = 0;
	if (pclose(f) != 0) {
		diag("%s failed; it printed: %s", cmd, buf);
		return -1;
	}
	for (char *save, *w = strtok_r(buf, " \t\n", &save); w && n < MAXTOK;
	     w = strtok_r(NULL, " \t\n", &save))
		tok[n++] = w;
	return n;
}

/* The word after @key in words [from, to), or NULL. */
static inline const char *after(char **tok, int from, int to, const char *key)
{
	for (int i = from; i + 1 < to; i++)
		if (strcmp(tok[i], key) == 0)
			return tok[i + 1];
	return NULL;
}

static inline long long num_after(char **tok, int from, int to, const char *key)
{
	const char *v = after(tok, from, to, key);

	return v ? strtoll(v, NULL, 0) : -1;
}

/* The counter @name of port 1 of RDMA device @dev (`rdma statistic show link`), or -1. */
static inline long long vt_device_counter(const char *dev, const char *name)
{
	static char buf[1 << 14];
	static char *tok[MAXTOK];
	char cmd[128];
	int n;

	snprintf(cmd, sizeof(cmd), "rdma statistic show link %s/1 2>&1", dev);
	n = run_words(cmd, buf, sizeof(buf), tok);
	return num_after(tok, 0, n, name);
}

/* Sets pfnic's module parameter poll_usecs (its polling engine). Return: false if it cannot. */
static inline bool vt_set_poll_usecs(unsigned int usecs)
{
	FILE *f = fopen("/sys/module/pfnic/parameters/poll_usecs", "w");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%u\n", usecs) > 0;
	return !fclose(f) && ok;
}

/* ---- memory and files ---------------------------------------------------------------------- */

/* @len bytes of fresh private anonymous memory, in 4 KiB pages (so page counts are exact). */
static inline void *map_fresh(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bail("mmap of %zu bytes: %s", len, strerror(errno));
	madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

/* Writes @text to @path (a sysfs, proc or debugfs file). Return: 0, or -1 (said). */
static inline int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	ssize_t n = -1;

	if (fd >= 0) {
		n = write(fd, text, strlen(text));
		close(fd);
	}
	if (n != (ssize_t)strlen(text)) {
		diag("cannot write %s to %s: %s", text, path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- memory blocks -------------------------------------------------------------------------- */

#define VT_MEMDIR "/sys/devices/system/memory"

/* Attribute @attr of memory block @block ("state", "valid_zones", ...), or "absent". */
static inline const char *vt_block_attr(long block, const char *attr)
{
	static char word[64];
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), VT_MEMDIR "/memory%ld/%s", block, attr);
	f = fopen(path, "r");
	if (!f)
		return "absent";
	if (fscanf(f, "%63s", word) != 1)
		word[0] = 0;
	fclose(f);
	return word;
}

static inline void vt_on_alarm(int sig)
{
	(void)sig;
}

/*
 * Writes @state ("offline", "online_kernel", ...) to a block's state file, giving up after
 * @limit seconds (an alarm interrupts the kernel's offlining loop). Return: 0 or the errno.
 */
static inline int vt_block_set(long block, const char *state, unsigned int limit)
{
	struct sigaction sa = { .sa_handler = vt_on_alarm };
	char path[128];
	int fd, rv = 0;

	sigaction(SIGALRM, &sa, NULL);	/* no SA_RESTART: the write returns EINTR */
	snprintf(path, sizeof(path), VT_MEMDIR "/memory%ld/state", block);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return errno;
	alarm(limit);
	if (write(fd, state, strlen(state)) < 0)
		rv = errno;
	alarm(0);
	close(fd);
	return rv;
}

/* ---- NUMA ----------------------------------------------------------------------------------- */

/*
 * Turns the kernel's automatic NUMA balancing off (@restore false), and back to what it was
 * (@restore true). A program that moves pages between nodes and checks where they went
 * turns it off: the kernel would move the same pages at the same time, and move_pages(2)
 * would find them in flight. Without the right to, it stays as it is.
 */
static inline void numa_balancing(bool restore)
{
	static char before[16];
	const char *path = "/proc/sys/kernel/numa_balancing";
	FILE *f;

	if (!restore) {
		f = fopen(path, "r");
		if (!f || !fgets(before, sizeof(before), f))
			before[0] = 0;
		if (f)
			fclose(f);
	}
	if (!before[0] || (restore && strcmp(before, "0\n") == 0))
		return;
	f = fopen(path, "w");
	if (f) {
		fputs(restore ? before : "0", f);
		fclose(f);
	}
}

/*
 * The command line the test programs share: -d/--device DEVICE (required) and -g/--gid-index
 * N, plus a program's own options: @more (getopt's short option string for them, "" for
 * none), @more_long (their long forms, ending with an empty entry; or NULL) and @take, which
 * gets each of them and returns false for one it does not know. On anything else, or
 * without -d, prints "usage: @usage" and exits 2.
 */
static inline void vt_args(int argc, char **argv, const char *usage, const char **dev,
			   int *gidx, const char *more, const struct option *more_long,
			   bool (*take)(int opt, const char *arg))
{
	struct option lo[16] = {
		{ "device", required_argument, NULL, 'd' },
		{ "gid-index", required_argument, NULL, 'g' },
	};
	char shorts[64];
	int n, c;

	for (n = 2; more_long && more_long[n - 2].name && n < 15; n++)
		lo[n] = more_long[n - 2];
	snprintf(shorts, sizeof(shorts), "d:g:%s", more);
	while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		if (c == 'd')
			*dev = optarg;
		else if (c == 'g')
			*gidx = atoi(optarg);
		else if (!take || !take(c, optarg))
			goto bad;
	}
	if (*dev && optind == argc)
		return;
bad:
	fprintf(stderr, "usage: %s\n", usage);
	exit(2);
}

/* ---- RC QPs connected in this process (loopback over the port's GID) ---------------------- */

/* The attributes of one QP's way up to RTS in which the programs differ; the rest is fixed. */
struct vt_rc {
	uint8_t port;
	int access;		/* qp_access_flags (INIT) */
	uint32_t dest_qpn;	/* the other QP (RTR) */
	uint32_t rq_psn;	/* RTR: the other QP's sq_psn */
	uint32_t sq_psn;	/* RTS */
	uint8_t min_rnr_timer;	/* RTR */
	uint8_t rnr_retry;	/* RTS */
	union ibv_gid dgid;	/* RTR: the port's own GID */
	uint8_t sgid_index;
	uint16_t dlid;
};

#define VT_RC_INIT_MASK (IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)
#define VT_RC_RTR_MASK (IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | \
			IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER)
#define VT_RC_RTS_MASK (IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | \
			IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC)

static inline void vt_rc_init_attr(struct ibv_qp_attr *a, const struct vt_rc *c)
{
	memset(a, 0, sizeof(*a));
	a->qp_state = IBV_QPS_INIT;
	a->pkey_index = 0;
	a->port_num = c->port;
	a->qp_access_flags = c->access;
}

static inline void vt_rc_rtr_attr(struct ibv_qp_attr *a, const struct vt_rc *c)
{
	memset(a, 0, sizeof(*a));
	a->qp_state = IBV_QPS_RTR;
	a->path_mtu = IBV_MTU_1024;
	a->dest_qp_num = c->dest_qpn;
	a->rq_psn = c->rq_psn;
	a->max_dest_rd_atomic = 1;
	a->min_rnr_timer = c->min_rnr_timer;
	a->ah_attr.is_global = 1;
	a->ah_attr.grh.dgid = c->dgid;
	a->ah_attr.grh.sgid_index = c->sgid_index;
	a->ah_attr.grh.hop_limit = 1;
	a->ah_attr.dlid = c->dlid;
	a->ah_attr.sl = 0;
	a->ah_attr.port_num = c->port;
}

static inline void vt_rc_rts_attr(struct ibv_qp_attr *a, const struct vt_rc *c)
{
	memset(a, 0, sizeof(*a));
	a->qp_state = IBV_QPS_RTS;
	a->timeout = 14;
	a->retry_cnt = 7;
	a->rnr_retry = c->rnr_retry;
	a->sq_psn = c->sq_psn;
	a->max_rd_atomic = 1;
}

/*
 * Brings @qp from *@state (RESET, INIT or RTR; anything else: no step) up to @to (INIT, RTR
 * or RTS), one ibv_modify_qp per step, with @c's attributes; *@state is the state reached.
 * Return: 0, or the error of the step that failed, named ("INIT", "RTR", "RTS") in *@step
 * when @step is not NULL.
 */
static inline int vt_rc_bring_up(struct ibv_qp *qp, const struct vt_rc *c, int *state,
				 enum ibv_qp_state to, const char **step)
{
	struct ibv_qp_attr a;
	int rv;

	if (*state == IBV_QPS_RESET && to >= IBV_QPS_INIT) {
		vt_rc_init_attr(&a, c);
		if ((rv = ibv_modify_qp(qp, &a, VT_RC_INIT_MASK)))
			goto fail;
		*state = IBV_QPS_INIT;
	}
	if (*state == IBV_QPS_INIT && to >= IBV_QPS_RTR) {
		vt_rc_rtr_attr(&a, c);
		if ((rv = ibv_modify_qp(qp, &a, VT_RC_RTR_MASK)))
			goto fail;
		*state = IBV_QPS_RTR;
	}
	if (*state == IBV_QPS_RTR && to >= IBV_QPS_RTS) {
		vt_rc_rts_attr(&a, c);
		if ((rv = ibv_modify_qp(qp, &a, VT_RC_RTS_MASK)))
			goto fail;
		*state = IBV_QPS_RTS;
	}
	return 0;
fail:
	if (step)
		*step = *state == IBV_QPS_RESET ? "INIT" : *state == IBV_QPS_INIT ? "RTR" : "RTS";
	return rv;
}

/* ---- patterns and completions ----------------------------------------------------------------- */

/* Byte @i of the pattern of @seed: never zero, so that fresh memory never passes for it. */
static inline uint8_t vt_pat(uint64_t seed, size_t i)
{
	return (uint8_t)((seed * 0x9e3779b97f4a7c15ull + i * 131 + (i >> 8)) >> 24) | 1;
}

/*
 * Checks @len bytes at @p against the pattern of @seed, and @guard_len bytes on each side of
 * them against @guard. Return: 0, or -1 with the first difference said (with @what).
 */
static inline int vt_check_pattern(const uint8_t *p, size_t len, uint64_t seed, uint8_t guard,
				   size_t guard_len, const char *what)
{
	for (size_t i = 1; i <= guard_len; i++)
		if (p[-(ptrdiff_t)i] != guard) {
			diag("%s: guard byte %zu before is %#x, expected %#x", what, i,
			     p[-(ptrdiff_t)i], guard);
			return -1;
		}
	for (size_t i = 0; i < len; i++)
		if (p[i] != vt_pat(seed, i)) {
			diag("%s: byte %zu of %zu is %#x, expected %#x", what, i, len, p[i],
			     vt_pat(seed, i));
			return -1;
		}
	for (size_t i = 0; i < guard_len; i++)
		if (p[len + i] != guard) {
			diag("%s: guard byte %zu after is %#x, expected %#x", what, i, p[len + i],
			     guard);
			return -1;
		}
	return 0;
}

/* One completion of @cq into *@wc within @secs seconds. Return: 0, or -1 if none came. */
static inline int vt_poll_one(struct ibv_cq *cq, struct ibv_wc *wc, double secs)
{
	for (double end = now() + secs; now() < end; usleep(50)) {
		int n = ibv_poll_cq(cq, 1, wc);

		if (n)
			return n == 1 ? 0 : -1;
	}
	return -1;
}

/* ---- two RC QPs in loopback, QP 0 reaching QP 1's memory ------------------------------------ */

/*
 * The pair: a PD, a CQ per QP, and a local buffer of QP 0's (registered for local writes)
 * from which it WRITEs and into which it READs. @send_ops: with ibv_create_qp_ex's
 * send_ops_flags (extended QPs), 0 for plain ones; @pd2: a second PD, for a program that
 * moves things between PDs.
 */
struct vt_pair {
	struct ibv_context *ctx;
	struct ibv_pd *pd, *pd2;
	struct ibv_cq *cq[2];
	struct ibv_qp *qp[2];
	union ibv_gid gid;
	int gidx;
	uint8_t *local;
	size_t local_len;
	struct ibv_mr *lmr;
	uint64_t wr_id;
	uint64_t send_ops;
};

/* Both QPs anew (a failed access leaves them in the error state), connected and in RTS. */
static inline void vt_pair_connect(struct vt_pair *p)
{
	struct vt_rc c = { .port = 1, .access = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ,
			   .min_rnr_timer = 1, .rnr_retry = 7, .sgid_index = (uint8_t)p->gidx,
			   .dgid = p->gid };
	struct ibv_qp_init_attr_ex ia = {
		.qp_type = IBV_QPT_RC, .pd = p->pd, .comp_mask = IBV_QP_INIT_ATTR_PD,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16, .max_send_sge = 1,
			 .max_recv_sge = 1 },
	};
	const char *step;
	int state, rv;

	if (p->send_ops) {
		ia.comp_mask |= IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
		ia.send_ops_flags = p->send_ops;
	}
	for (int i = 0; i < 2; i++) {
		struct ibv_wc wc;

		if (p->qp[i])
			ibv_destroy_qp(p->qp[i]);
		while (ibv_poll_cq(p->cq[i], 1, &wc) > 0)
			;
		ia.send_cq = ia.recv_cq = p->cq[i];
		p->qp[i] = ibv_create_qp_ex(p->ctx, &ia);
		if (!p->qp[i])
			bail("ibv_create_qp_ex: %s", strerror(errno));
	}
	for (int i = 0; i < 2; i++) {
		c.dest_qpn = p->qp[1 - i]->qp_num;
		state = IBV_QPS_RESET;
		rv = vt_rc_bring_up(p->qp[i], &c, &state, IBV_QPS_RTS, &step);
		if (rv)
			bail("QP %d to %s: %s", i, step, strerror(rv));
	}
}

/* Opens @dev and sets the pair up on it, with a local buffer of @local_len bytes. */
static inline void vt_pair_open(struct vt_pair *p, const char *dev, int gidx, size_t local_len)
{
	p->ctx = open_device_named(dev);
	p->gidx = gidx;
	if (ibv_query_gid(p->ctx, 1, gidx, &p->gid))
		bail("cannot query GID %d of %s", gidx, dev);
	p->pd = ibv_alloc_pd(p->ctx);
	p->pd2 = ibv_alloc_pd(p->ctx);
	for (int i = 0; i < 2; i++)
		p->cq[i] = ibv_create_cq(p->ctx, 64, NULL, NULL, 0);
	if (!p->pd || !p->pd2 || !p->cq[0] || !p->cq[1])
		bail("ibv_alloc_pd / ibv_create_cq: %s", strerror(errno));
	p->local = map_fresh(local_len);
	p->local_len = local_len;
	p->lmr = ibv_reg_mr(p->pd, p->local, local_len, IBV_ACCESS_LOCAL_WRITE);
	if (!p->lmr)
		bail("ibv_reg_mr (the local buffer): %s", strerror(errno));
	vt_pair_connect(p);
}

static inline void vt_pair_close(struct vt_pair *p)
{
	for (int i = 0; i < 2; i++)
		ibv_destroy_qp(p->qp[i]);
	ibv_dereg_mr(p->lmr);
	munmap(p->local, p->local_len);
	for (int i = 0; i < 2; i++)
		ibv_destroy_cq(p->cq[i]);
	ibv_dealloc_pd(p->pd2);
	ibv_dealloc_pd(p->pd);
	ibv_close_device(p->ctx);
}

/*
 * An RDMA WRITE (or READ) on QP 0 of @len bytes between the local buffer at @lo and
 * @raddr/@rkey. Return: its completion's status, or -1 if it could not be posted or did
 * not complete in 10 s.
 */
static inline int vt_pair_rdma(struct vt_pair *p, enum ibv_wr_opcode op, size_t lo,
			       uint64_t raddr, uint32_t rkey, uint32_t len)
{
	struct ibv_sge sge = { .addr = (uintptr_t)(p->local + lo), .length = len,
			       .lkey = p->lmr->lkey };
	struct ibv_send_wr wr = { .wr_id = ++p->wr_id, .sg_list = &sge, .num_sge = 1,
				  .opcode = op, .send_flags = IBV_SEND_SIGNALED }, *bad_wr;
	struct ibv_wc wc;

	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	if (ibv_post_send(p->qp[0], &wr, &bad_wr) || vt_poll_one(p->cq[0], &wc, 10))
		return -1;
	return (int)wc.status;
}

/* What vt_pair_rdma() returned, in words. */
static inline const char *vt_status_str(int status)
{
	return status < 0 ? "nothing" : ibv_wc_status_str((enum ibv_wc_status)status);
}

/*
 * A WRITE of @len bytes of the pattern of @seed through @rkey to @target, checked there with
 * @guard_len zero bytes around it, then a READ of them back into the local buffer at
 * @read_at, checked likewise. Return: 0, or -1 (said, with @what).
 */
static inline int vt_pair_write_read(struct vt_pair *p, uint8_t *target, uint32_t rkey,
				     uint32_t len, uint64_t seed, size_t read_at,
				     size_t guard_len, const char *what)
{
	int rv;

	for (uint32_t i = 0; i < len; i++)
		p->local[i] = vt_pat(seed, i);
	rv = vt_pair_rdma(p, IBV_WR_RDMA_WRITE, 0, (uintptr_t)target, rkey, len);
	if (rv) {
		diag("%s: the WRITE completed with %s", what, vt_status_str(rv));
		return -1;
	}
	if (vt_check_pattern(target, len, seed, 0, guard_len, what))
		return -1;
	memset(p->local + read_at - guard_len, 0xee, len + 2 * guard_len);
	rv = vt_pair_rdma(p, IBV_WR_RDMA_READ, read_at, (uintptr_t)target, rkey, len);
	if (rv) {
		diag("%s: the READ completed with %s", what, vt_status_str(rv));
		return -1;
	}
	return vt_check_pattern(p->local + read_at, len, seed, 0xee, guard_len, what);
}
