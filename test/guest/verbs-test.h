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
 *  - the RC loopback set-up: one QP of a pair moved RESET -> INIT -> RTR -> RTS towards the
 *    other (struct vt_rc: the attributes in which the programs differ).
 *
 * Include it after the system headers (the programs define _GNU_SOURCE before those).
 */
#pragma once

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
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
