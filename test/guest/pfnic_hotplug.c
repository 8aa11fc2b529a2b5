// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_hotplug: memory going offline, and the DIMM that holds it going away, under live
 * ODP traffic; and a pinned MR that keeps memory from going offline. Prints TAP version 13.
 *
 *   pfnic_hotplug -d DEVICE [-g GID_INDEX] [--unplug] [--bench N]
 *
 * Run in a guest with a hot-pluggable DIMM of at least three memory blocks, onlined as
 * Movable (the rig's --dimm). The first block is onlined again as Normal memory, so that a
 * pinned MR's pages can sit there (a long-term pin moves pages out of Movable memory): its
 * offlining must fail, and the event channel must name the MR that pins it. The other blocks
 * hold two ODP MRs between which a thread moves data without pause, checking every byte of
 * every transfer (unaligned offsets, lengths across pages), while they are offlined one by
 * one: offlining must succeed, no transfer may fail, and the event channel must report the
 * migrations out of each block for exactly the MRs whose pages were there. Between the two,
 * migratepages(8) and move_pages(2) move the MRs' pages between the nodes under the same
 * traffic, and the records must count exactly the pages moved. With --unplug the
 * program then prints "ready-for-unplug" and waits, the traffic still running, for the host
 * to remove the DIMM (QMP device_del) and its blocks to disappear.
 *
 * With --bench N (a benchmark, nothing passes or fails on it), the traffic then goes on
 * through N cycles of: a block onlined again, both MRs moved into it, the transfer rate
 * measured steady, while the block goes offline, and steady again; it prints the median,
 * least and greatest ratio of the rate while offlining to the steady rate around it.
 *
 * Page placement is read from /proc/self/pagemap, so the program runs as root.
 *
 * Exit status: 0 if every test passed, 1 otherwise, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "verbs-test.h"
#include "../../driver/uapi/pfnic-events.h"

#define PG 4096ul
/* each ODP MR, and the pinned one */
#define ODP_LEN (32ul << 20)
#define PIN_LEN (2ul << 20)
/* the longest transfer of the traffic */
#define XFER_MAX (48ul << 10)
#define MEMDIR "/sys/devices/system/memory"
#define PARAM "/sys/module/pfnic/parameters/event_records"
#define NBLOCKS 3
/* from <linux/mempolicy.h> */
#define MPOL_PREFERRED 1
#define MPOL_MF_MOVE 2

#define ODP_ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | \
		    IBV_ACCESS_ON_DEMAND)

static struct {
	const char *dev;
	int gidx;
	bool unplug;
	int bench;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp[2];
	int evfd;
	unsigned long block_size;
	long blocks[NBLOCKS];
	int node;	/* the DIMM's NUMA node */
	int num;
	int failed;
} g = { .gidx = 1, .evfd = -1 };

static int bad;

static void point(const char *name)
{
	vt_point(&g.num, &g.failed, &bad, name);
}

#define EXPECT_NUM(what, got, want) do {						\
	long long g_ = (got), w_ = (want);						\
	if (g_ != w_) {									\
		diag("%s: %s is %lld, expected %lld", what, #got, g_, w_);		\
		bad = 1;								\
	}										\
} while (0)

/* ---- memory blocks ------------------------------------------------------------------------- */

static int read_word(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	int ok = f && fscanf(f, "%63s", buf) == 1;

	(void)len;
	if (f)
		fclose(f);
	return ok ? 0 : -1;
}

/* The first NBLOCKS online Movable blocks, into g.blocks. Return: how many there are. */
static int find_blocks(void)
{
	int n = 0;

	for (long b = 0; b < 4096 && n < NBLOCKS; b++)
		if (strcmp(vt_block_attr(b, "state"), "online") == 0 &&
		    strcmp(vt_block_attr(b, "valid_zones"), "Movable") == 0)
			g.blocks[n++] = b;
	return n;
}

/* The NUMA node of memory block @block, or -1. */
static int block_node(long block)
{
	char path[128];

	for (int n = 0; n < 64; n++) {
		snprintf(path, sizeof(path), MEMDIR "/memory%ld/node%d", block, n);
		if (access(path, F_OK) == 0)
			return n;
	}
	return -1;
}

/* How many of the pages of [@p, @p + @len) lie in memory block @block. */
static long pages_in_block(const void *p, size_t len, long block)
{
	static int fd = -1;
	uint64_t e, first = block * g.block_size / PG, last = first + g.block_size / PG;
	long n = 0;

	if (fd < 0 && (fd = open("/proc/self/pagemap", O_RDONLY)) < 0)
		bail("open /proc/self/pagemap: %s", strerror(errno));
	for (uintptr_t va = (uintptr_t)p; va < (uintptr_t)p + len; va += PG) {
		if (pread(fd, &e, sizeof(e), va / PG * sizeof(e)) != sizeof(e))
			bail("read /proc/self/pagemap: %s", strerror(errno));
		/* bit 63: present; bits 0-54: the page frame */
		uint64_t pfn = e & ((1ull << 55) - 1);

		n += (e >> 63) && pfn >= first && pfn < last;
	}
	return n;
}

/* ---- the event channel --------------------------------------------------------------------- */

#define MAXEV (1 << 17)
static struct pfnic_event evs[MAXEV];
static int nev;

/* Appends what the reader has waiting to evs[]. */
static void ev_collect(void)
{
	for (;;) {
		ssize_t n = read(g.evfd, evs + nev, (MAXEV - nev) * sizeof(*evs));

		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0 || n % sizeof(*evs))
			bail("read of the event channel: %zd (%s)", n, strerror(errno));
		nev += n / sizeof(*evs);
		if (nev == MAXEV)
			bail("more than %d records", MAXEV);
	}
}

/* Records from @from on of @type (and @reason, unless -1) about @block (unless -1). */
static int ev_count(int from, int type, int reason, long block, uint32_t lkey, long long *pages)
{
	int n = 0;

	if (pages)
		*pages = 0;
	for (int i = from; i < nev; i++) {
		if (evs[i].type != type || (reason >= 0 && evs[i].reason != reason) ||
		    (block >= 0 && evs[i].block != block) || (lkey && evs[i].lkey != lkey))
			continue;
		n++;
		if (pages)
			*pages += evs[i].pages;
	}
	return n;
}

/* ---- traffic ------------------------------------------------------------------------------- */

static struct {
	uint8_t *src, *dst;
	struct ibv_mr *src_mr, *dst_mr;
	atomic_bool stop;
	atomic_ulong ops;
	atomic_ulong bytes;
	atomic_ulong errors;	/* failed or mismatched transfers */
	char first_error[200];
	pthread_t thread;
} tr;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static void traffic_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void traffic_error(const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&tr.errors, 1) == 0) {
		va_start(ap, fmt);
		vsnprintf(tr.first_error, sizeof(tr.first_error), fmt, ap);
		va_end(ap);
	}
}

/* One transfer: RDMA WRITE (even @i) or READ (odd) of @len bytes; 0 once it completed. */
static int transfer(uint64_t i, uint8_t *laddr, struct ibv_mr *lmr, uint8_t *raddr,
		    struct ibv_mr *rmr, size_t len)
{
	struct ibv_sge sge = { .addr = (uintptr_t)laddr, .length = len, .lkey = lmr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = i, .sg_list = &sge, .num_sge = 1, .send_flags = IBV_SEND_SIGNALED,
		.opcode = i & 1 ? IBV_WR_RDMA_READ : IBV_WR_RDMA_WRITE,
	}, *badwr;
	struct ibv_wc wc;
	double end = now() + 60;
	int n = 0;

	wr.wr.rdma.remote_addr = (uintptr_t)raddr;
	wr.wr.rdma.rkey = rmr->rkey;
	if (ibv_post_send(g.qp[0], &wr, &badwr)) {
		traffic_error("transfer %" PRIu64 ": ibv_post_send: %s", i, strerror(errno));
		return -1;
	}
	while (n == 0 && now() < end) {
		n = ibv_poll_cq(g.cq, 1, &wc);
		if (n == 0)
			usleep(50);
	}
	if (n != 1 || wc.status != IBV_WC_SUCCESS || wc.wr_id != i) {
		traffic_error("transfer %" PRIu64 " (%s of %zu bytes): %s", i,
			      i & 1 ? "READ" : "WRITE", len,
			      n == 1 ? ibv_wc_status_str(wc.status) : "no completion in 60 s");
		return -1;
	}
	return 0;
}

/*
 * The traffic: the CPU writes a fresh pattern into one MR, the device moves it into the
 * other (a WRITE from src into dst, or a READ of src into dst), and every byte that arrived
 * is compared, until told to stop. Offsets and lengths are drawn at random, so transfers
 * start anywhere in a page and cross page boundaries.
 */
static void *traffic(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; !atomic_load(&tr.stop); i++) {
		uint64_t r = mix(i + 1);
		size_t len = 1 + r % XFER_MAX;
		size_t so = (r >> 20) % (ODP_LEN - len), d = (r >> 40) % (ODP_LEN - len);
		uint8_t seed = (uint8_t)(r >> 56);
		int rv;

		for (size_t k = 0; k < len; k++)
			tr.src[so + k] = (uint8_t)(seed + k * 7 + (k >> 9));
		if (i & 1)	/* the device reads src (remote) into dst (local) */
			rv = transfer(i, tr.dst + d, tr.dst_mr, tr.src + so, tr.src_mr, len);
		else
			rv = transfer(i, tr.src + so, tr.src_mr, tr.dst + d, tr.dst_mr, len);
		if (rv)
			break;	/* the QP is in error: nothing further would complete */
		for (size_t k = 0; k < len; k++) {
			if (tr.dst[d + k] != (uint8_t)(seed + k * 7 + (k >> 9))) {
				traffic_error("transfer %" PRIu64 " (%s of %zu bytes from src+%zu to "
					      "dst+%zu): byte %zu is %#x, expected %#x", i,
					      i & 1 ? "READ" : "WRITE", len, so, d, k, tr.dst[d + k],
					      (uint8_t)(seed + k * 7 + (k >> 9)));
				break;
			}
		}
		atomic_fetch_add(&tr.ops, 1);
		atomic_fetch_add(&tr.bytes, len);
	}
	return NULL;
}

/* Transfers per second over @secs seconds. */
static double rate_over(double secs)
{
	unsigned long a = atomic_load(&tr.ops);
	double t0 = now();

	usleep(secs * 1e6);
	return (atomic_load(&tr.ops) - a) / (now() - t0);
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static void setup(void)
{
	struct ibv_qp_init_attr qa = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1 },
	};
	union ibv_gid gid;
	struct ibv_port_attr pa;
	char word[64];

	g.ctx = open_device_named(g.dev);
	if (ibv_query_port(g.ctx, 1, &pa) || ibv_query_gid(g.ctx, 1, g.gidx, &gid))
		bail("cannot query port 1 / GID %d of %s", g.gidx, g.dev);
	g.pd = ibv_alloc_pd(g.ctx);
	g.cq = ibv_create_cq(g.ctx, 8, NULL, NULL, 0);
	if (!g.pd || !g.cq)
		bail("ibv_alloc_pd / ibv_create_cq: %s", strerror(errno));
	qa.send_cq = qa.recv_cq = g.cq;
	for (int i = 0; i < 2; i++)
		if (!(g.qp[i] = ibv_create_qp(g.pd, &qa)))
			bail("ibv_create_qp: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		struct vt_rc c = {
			.port = 1, .dest_qpn = g.qp[!i]->qp_num,
			.access = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ,
			.rnr_retry = 7, .min_rnr_timer = 1, .dgid = gid, .sgid_index = g.gidx,
			.dlid = pa.lid,
		};
		int state = IBV_QPS_RESET;
		const char *step;
		int rv = vt_rc_bring_up(g.qp[i], &c, &state, IBV_QPS_RTS, &step);

		if (rv)
			bail("QP %d to %s: %s", i, step, strerror(rv));
	}
	if (read_word(MEMDIR "/block_size_bytes", word, sizeof(word)))
		bail("no %s/block_size_bytes: no memory hotplug", MEMDIR);
	g.block_size = strtoul(word, NULL, 16);
	/* room for every record of the run, so that none is lost; taken at open() */
	if (system("echo 131072 > " PARAM))
		bail("cannot set %s", PARAM);
	g.evfd = open(PFNIC_EVENTS_PATH, O_RDONLY | O_NONBLOCK);
	if (g.evfd < 0)
		bail("open %s: %s", PFNIC_EVENTS_PATH, strerror(errno));
	if (system("echo 1024 > " PARAM))
		diag("cannot set %s back", PARAM);
}

static void *map_near_dimm(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bail("mmap of %zu bytes: %s", len, strerror(errno));
	/* 4 KiB pages: a huge page would not fit the blocks' accounting as simply */
	madvise(p, len, MADV_NOHUGEPAGE);
	/*
	 * Pages from the DIMM's node where it has one of its own (the rig's --numa --dimm);
	 * preferred, not bound: they may move anywhere when its blocks go offline.
	 */
	if (g.node > 0) {
		unsigned long mask = 1ul << g.node;

		if (syscall(SYS_mbind, p, len, MPOL_PREFERRED, &mask, 64, 0))
			bail("mbind(MPOL_PREFERRED, node %d): %s", g.node, strerror(errno));
	}
	return p;
}

/* Maps all of @mr at once (so that every page it has in a block has a translation). */
static int prefetch_all(struct ibv_mr *mr, void *addr, size_t len)
{
	struct ibv_sge sge = { .addr = (uintptr_t)addr, .length = len, .lkey = mr->lkey };
	int rc = ibv_advise_mr(g.pd, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, IBV_ADVISE_MR_FLAG_FLUSH,
			       &sge, 1);

	if (rc)
		diag("ibv_advise_mr(PREFETCH_WRITE, FLUSH): %s", strerror(rc));
	return rc;
}

/* ---- a pinned MR holds memory ------------------------------------------------------------- */

/* Whether `rdma resource show mr -dd` lists @block among those the MR with @lkey pins. */
static void pinned_blocks_shown(uint32_t lkey, long block)
{
	static char buf[1 << 16];
	static char *tok[MAXTOK];
	char key[24], cmd[96];
	const char *list = NULL;
	int n, to;

	snprintf(cmd, sizeof(cmd), "rdma resource show mr dev %s -dd 2>&1", g.dev);
	n = run_words(cmd, buf, sizeof(buf), tok);
	snprintf(key, sizeof(key), "0x%x", lkey);
	for (int i = 0; i < n; i++) {
		if (strcmp(tok[i], "dev"))
			continue;
		for (to = i + 1; to < n && strcmp(tok[to], "dev"); to++)
			;
		const char *l = after(tok, i, to, "lkey");

		if (l && strcmp(l, key) == 0)
			list = after(tok, i, to, "drv_pinned_blocks");
	}
	diag("rdma resource show mr -dd: the MR pins blocks %s", list ? list : "(none shown)");
	/* ranges "a-b" separated by commas */
	for (const char *p = list; p && *p;) {
		char *end;
		long lo = strtol(p, &end, 10), hi = lo;

		if (*end == '-')
			hi = strtol(end + 1, &end, 10);
		if (block >= lo && block <= hi)
			return;
		p = *end == ',' ? end + 1 : "";
	}
	bad = 1;
}

static void c_pinned(void)
{
	long x = g.blocks[0], in;
	uint8_t *buf;
	struct ibv_mr *mr;
	long long pages;
	int rv, from;

	/* block x becomes Normal memory, where long-term pinned pages may stay */
	rv = vt_block_set(x, "offline", 120);
	if (!rv)
		rv = vt_block_set(x, "online_kernel", 60);
	if (rv || strcmp(vt_block_attr(x, "valid_zones"), "Normal")) {
		diag("memory%ld: offline, online_kernel: %s; now %s in %s", x,
		     rv ? strerror(rv) : "ok", vt_block_attr(x, "state"), vt_block_attr(x, "valid_zones"));
		bail("cannot online memory%ld as Normal memory", x);
	}
	buf = map_near_dimm(PIN_LEN);
	memset(buf, 0x5a, PIN_LEN);
	mr = ibv_reg_mr(g.pd, buf, PIN_LEN, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!mr)
		bail("ibv_reg_mr (pinned): %s", strerror(errno));
	in = pages_in_block(buf, PIN_LEN, x);
	diag("pinned MR lkey %#x: %ld of %lu pages in memory%ld (Normal)", mr->lkey, in,
	     PIN_LEN / PG, x);
	if (in < 1)
		bad = 1;
	pinned_blocks_shown(mr->lkey, x);
	point("a pinned MR has pages in a DIMM block onlined as Normal memory, and `rdma resource "
	      "show mr -dd` lists that block among the ones it pins");

	ev_collect();
	from = nev;
	rv = vt_block_set(x, "offline", 5);
	ev_collect();
	diag("offlining memory%ld with the pinned MR registered: %s; the block is %s", x,
	     rv ? strerror(rv) : "success", vt_block_attr(x, "state"));
	if (!rv || strcmp(vt_block_attr(x, "state"), "online"))
		bad = 1;
	EXPECT_NUM("going-offline records", ev_count(from, PFNIC_EVENT_MEMORY,
						      PFNIC_MEMORY_GOING_OFFLINE, x, 0, NULL), 1);
	EXPECT_NUM("cancel-offline records", ev_count(from, PFNIC_EVENT_MEMORY,
						       PFNIC_MEMORY_CANCEL_OFFLINE, x, 0, NULL), 1);
	EXPECT_NUM("pinned records for the MR", ev_count(from, PFNIC_EVENT_PINNED, -1, x,
							 mr->lkey, &pages), 1);
	EXPECT_NUM("pinned pages the record counts", pages, in);
	EXPECT_NUM("pinned records of any MR", ev_count(from, PFNIC_EVENT_PINNED, -1, -1, 0, NULL),
		   1);
	for (int i = from; i < nev; i++)
		if (evs[i].type == PFNIC_EVENT_PINNED && (evs[i].pid != getpid() ||
		    strcmp(evs[i].device, g.dev) || evs[i].start != (uintptr_t)buf)) {
			diag("the pinned record names pid %d, device %s, address %#llx", evs[i].pid,
			     evs[i].device, (unsigned long long)evs[i].start);
			bad = 1;
		}
	point("offlining that block fails while the MR pins it; the event channel names the MR "
	      "(lkey, pid, device, its pinned pages there) between going-offline and "
	      "cancel-offline");

	ibv_dereg_mr(mr);
	munmap(buf, PIN_LEN);
	from = nev;
	rv = vt_block_set(x, "offline", 120);
	ev_collect();
	if (rv) {
		diag("offlining memory%ld after deregistration: %s", x, strerror(rv));
		bad = 1;
	}
	EXPECT_NUM("offline records", ev_count(from, PFNIC_EVENT_MEMORY, PFNIC_MEMORY_OFFLINE, x,
					       0, NULL), 1);
	EXPECT_NUM("pinned records", ev_count(from, PFNIC_EVENT_PINNED, -1, -1, 0, NULL), 0);
	point("once the MR is deregistered, the block goes offline, and no MR is named");
}

/* ---- ODP MRs under traffic while their memory goes offline -------------------------------- */

/* Offlines @block under traffic, unchecked. Return: transfers per second meanwhile, or -1. */
static double offline_rate(long block)
{
	unsigned long ops = atomic_load(&tr.ops);
	double t0 = now(), secs;
	int rv = vt_block_set(block, "offline", 120);

	secs = now() - t0;
	ops = atomic_load(&tr.ops) - ops;
	if (rv) {
		diag("bench: offlining memory%ld: %s", block, strerror(rv));
		return -1;
	}
	return ops / secs;
}

/* Offlines @block under traffic. Return: transfers per second while it did. */
static double offline_under_traffic(long block)
{
	long in_src, in_dst, left;
	long long pages_src, pages_dst;
	unsigned long ops;
	double t0, secs;
	int from, rv, n_src, n_dst, n_any;

	/* every page of both MRs with a translation, so each one moved is reported */
	if (prefetch_all(tr.src_mr, tr.src, ODP_LEN) || prefetch_all(tr.dst_mr, tr.dst, ODP_LEN))
		bad = 1;
	in_src = pages_in_block(tr.src, ODP_LEN, block);
	in_dst = pages_in_block(tr.dst, ODP_LEN, block);
	ev_collect();
	from = nev;
	ops = atomic_load(&tr.ops);
	t0 = now();
	rv = vt_block_set(block, "offline", 120);
	secs = now() - t0;
	ops = atomic_load(&tr.ops) - ops;
	ev_collect();
	left = pages_in_block(tr.src, ODP_LEN, block) + pages_in_block(tr.dst, ODP_LEN, block);
	n_src = ev_count(from, PFNIC_EVENT_MIGRATE, -1, block, tr.src_mr->lkey, &pages_src);
	n_dst = ev_count(from, PFNIC_EVENT_MIGRATE, -1, block, tr.dst_mr->lkey, &pages_dst);
	n_any = ev_count(from, PFNIC_EVENT_MIGRATE, -1, block, 0, NULL);
	diag("memory%ld: offline %s in %.2f s with %lu transfers; MR pages there before: src %ld, "
	     "dst %ld, after: %ld; migrate records: src %d (%lld pages), dst %d (%lld pages), "
	     "all %d", block, rv ? strerror(rv) : "succeeded", secs, ops, in_src, in_dst, left,
	     n_src, pages_src, n_dst, pages_dst, n_any);
	if (rv)
		bad = 1;
	EXPECT_NUM("src pages in the block before", in_src, ODP_LEN / PG);
	EXPECT_NUM("dst pages in the block before", in_dst, ODP_LEN / PG);
	EXPECT_NUM("MR pages left in the block", left, 0);
	EXPECT_NUM("going-offline records", ev_count(from, PFNIC_EVENT_MEMORY,
						      PFNIC_MEMORY_GOING_OFFLINE, block, 0, NULL), 1);
	EXPECT_NUM("offline records", ev_count(from, PFNIC_EVENT_MEMORY, PFNIC_MEMORY_OFFLINE,
					       block, 0, NULL), 1);
	/* exactly the MRs whose pages were there; each page moved at least once */
	EXPECT_NUM("MRs with records", (n_src > 0) + (n_dst > 0), (in_src > 0) + (in_dst > 0));
	EXPECT_NUM("records of other MRs", n_any - n_src - n_dst, 0);
	if (pages_src < in_src || pages_dst < in_dst) {
		diag("fewer pages migrated than the MRs had in the block");
		bad = 1;
	}
	for (int i = from; i < nev; i++)
		if (evs[i].type == PFNIC_EVENT_MIGRATE && evs[i].block == block &&
		    (!(evs[i].flags & PFNIC_EVENT_F_OFFLINING) || evs[i].pid != getpid() ||
		     evs[i].node < 0)) {
			diag("a migrate record: flags %#x pid %d node %d", evs[i].flags, evs[i].pid,
			     evs[i].node);
			bad = 1;
			break;
		}
	return secs > 0 ? ops / secs : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * The benchmark: how much the traffic slows while a block of its memory goes offline. Each
 * cycle onlines the second block again, moves both MRs into it, and offlines it under the
 * traffic; the ratio compares the rate while it went offline with the mean of the steady
 * rates measured just before and just after, so that drift between cycles cancels out.
 */
static void bench_offlining(int cycles)
{
	enum { N = 2 * ODP_LEN / PG };
	static void *pages[N];
	static int nodes[N], status[N];
	double ratio[64], steady_all = 0;
	long block = g.blocks[1];
	int done = 0;

	for (int c = 0; c < cycles && c < 64; c++) {
		double steady, during, after;
		int rv = vt_block_set(block, "online_movable", 60);

		if (rv) {
			diag("bench: cannot online memory%ld: %s", block, strerror(rv));
			break;
		}
		for (int i = 0; i < N; i++) {
			pages[i] = (i < N / 2 ? tr.src : tr.dst) + (i % (N / 2)) * PG;
			nodes[i] = g.node;
		}
		/*
		 * The node came back with the block: until the kernel has given it back to this
		 * task's allowed nodes (cpuset, after its last block went), moving there is EACCES.
		 */
		for (double end = now() + 10;; usleep(100000)) {
			rv = syscall(SYS_move_pages, 0, N, pages, nodes, status, MPOL_MF_MOVE) < 0 ?
			     errno : 0;
			if (rv != EACCES || now() > end)
				break;
		}
		if (rv) {
			diag("bench: move_pages: %s", strerror(rv));
			break;
		}
		if (prefetch_all(tr.src_mr, tr.src, ODP_LEN) ||
		    prefetch_all(tr.dst_mr, tr.dst, ODP_LEN))
			break;
		steady = rate_over(2);
		during = offline_rate(block);
		/* the moved pages are mapped again before the rate is steady */
		prefetch_all(tr.src_mr, tr.src, ODP_LEN);
		prefetch_all(tr.dst_mr, tr.dst, ODP_LEN);
		after = rate_over(2);
		if (during < 0)
			break;
		ratio[done++] = during / ((steady + after) / 2);
		steady_all += (steady + after) / 2;
		diag("bench: cycle %d: %.1f transfers/s steady, %.1f while offlining, %.1f after: "
		     "ratio %.2f", c + 1, steady, during, after, ratio[done - 1]);
	}
	if (!done)
		return;
	qsort(ratio, done, sizeof(*ratio), cmp_double);
	diag("bench: traffic while a block of its memory goes offline / steady traffic: median "
	     "%.2f, least %.2f, greatest %.2f over %d cycles (%.0f transfers/s steady, %lu KiB "
	     "of MRs migrated per cycle)", ratio[done / 2], ratio[0], ratio[done - 1], done,
	     steady_all / done, 2 * ODP_LEN >> 10);
}

/* `rdma statistic mr`'s migrations counter of the MR numbered @mrn, or -1. */
static long long migrations_counter(uint32_t mrn)
{
	static char buf[1 << 18];
	static char *tok[MAXTOK];
	int n = run_words("rdma statistic mr 2>&1", buf, sizeof(buf), tok);

	for (int i = 0; i < n; i++) {
		int to = i + 1;

		if (strcmp(tok[i], "dev"))
			continue;
		while (to < n && strcmp(tok[to], "dev"))
			to++;
		if (num_after(tok, i, to, "mrn") == mrn)
			return num_after(tok, i, to, "migrations");
	}
	return -1;
}

#define TRACEFS "/sys/kernel/tracing"

static int put_string(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	int rv;

	if (!f)
		return -1;
	rv = fputs(s, f) < 0;
	return fclose(f) || rv ? -1 : 0;
}

/*
 * Keeps the driver's record of every device fault that failed (the pfnic_fault and
 * pfnic_resume tracepoints, filtered on their result), so that a transfer that fails says
 * what the driver saw. Without tracefs there is no record: the test runs on.
 */
static void trace_failed_faults(void)
{
	if (access(TRACEFS "/events/pfnic", F_OK))
		mount("tracefs", TRACEFS, "tracefs", 0, NULL);
	put_string(TRACEFS "/trace", "");
	if (put_string(TRACEFS "/events/pfnic/pfnic_fault/filter", "result != 0") ||
	    put_string(TRACEFS "/events/pfnic/pfnic_resume/filter", "result != 0") ||
	    put_string(TRACEFS "/events/pfnic/pfnic_fault/enable", "1") ||
	    put_string(TRACEFS "/events/pfnic/pfnic_resume/enable", "1"))
		diag("no trace of failed faults: %s", strerror(errno));
}

/* Prints the first records of failed faults, if any. */
static void show_failed_faults(void)
{
	char line[400];
	FILE *f = fopen(TRACEFS "/trace", "r");
	int shown = 0;

	if (!f)
		return;
	while (shown < 20 && fgets(line, sizeof(line), f)) {
		if (line[0] == '#')
			continue;
		line[strcspn(line, "\n")] = 0;
		diag("failed fault: %s", line);
		shown++;
	}
	fclose(f);
}

/*
 * Moves every page of both MRs to node @node under traffic, with move_pages(2) (@tool
 * false), or with numactl's migratepages(8) from the other node (@tool true, which moves the
 * whole process), and checks the event channel's migrate records against the pages that
 * moved: exactly those, per MR, none marked as offlining. Moving to the DIMM's node, every
 * page must land in its last block, the only one online there.
 */
static void move_under_traffic(int node, bool tool)
{
	enum { N = 2 * ODP_LEN / PG };
	static void *pages[N];
	static int nodes[N], status[N];
	const char *how = tool ? "migratepages" : "move_pages";
	long moved[2] = { 0 }, in34;
	long long recorded[2];
	int from, records[2];
	long rv;

	if (prefetch_all(tr.src_mr, tr.src, ODP_LEN) || prefetch_all(tr.dst_mr, tr.dst, ODP_LEN))
		bad = 1;
	for (int i = 0; i < N; i++) {
		pages[i] = (i < N / 2 ? tr.src : tr.dst) + (i % (N / 2)) * PG;
		nodes[i] = node;
	}
	ev_collect();
	from = nev;
	if (tool) {
		char cmd[96];

		snprintf(cmd, sizeof(cmd), "migratepages %d %d %d", getpid(), node ? 0 : g.node,
			 node);
		rv = system(cmd) ? -1 : 0;
		errno = EIO;
	} else {
		rv = syscall(SYS_move_pages, 0, N, pages, nodes, status, MPOL_MF_MOVE);
	}
	ev_collect();
	if (rv < 0) {
		diag("%s: %s", how, strerror(errno));
		bad = 1;
	}
	/* where every page is now (nodes NULL: only ask) */
	syscall(SYS_move_pages, 0, N, pages, NULL, status, 0);
	for (int i = 0; i < N; i++)
		moved[i >= N / 2] += status[i] == node;
	in34 = pages_in_block(tr.src, ODP_LEN, g.blocks[2]) +
	       pages_in_block(tr.dst, ODP_LEN, g.blocks[2]);
	for (int m = 0; m < 2; m++)
		records[m] = ev_count(from, PFNIC_EVENT_MIGRATE, -1, -1,
				      m ? tr.dst_mr->lkey : tr.src_mr->lkey, &recorded[m]);
	diag("%s to node %d: src %ld, dst %ld pages there; %ld in memory%ld; migrate records: "
	     "src %d (%lld pages), dst %d (%lld pages)", how, node, moved[0], moved[1], in34,
	     g.blocks[2], records[0], recorded[0], records[1], recorded[1]);
	EXPECT_NUM("src pages moved", moved[0], ODP_LEN / PG);
	EXPECT_NUM("dst pages moved", moved[1], ODP_LEN / PG);
	if (node == g.node)
		EXPECT_NUM("MR pages in the last block", in34, 2 * ODP_LEN / PG);
	EXPECT_NUM("src pages recorded", recorded[0], moved[0]);
	EXPECT_NUM("dst pages recorded", recorded[1], moved[1]);
	for (int i = from; i < nev; i++)
		if (evs[i].type == PFNIC_EVENT_MIGRATE &&
		    (evs[i].flags & PFNIC_EVENT_F_OFFLINING || evs[i].block != -1)) {
			diag("a migrate record of %s says offlining (flags %#x block %lld)", how,
			     evs[i].flags, (long long)evs[i].block);
			bad = 1;
			break;
		}
}

static void c_odp(void)
{
	long in_first[2], in_any[2];
	double before, during[2], after;
	int from, rv;

	/*
	 * Every MR page in the second block: the third is offline while they are allocated
	 * (the first is offline already).
	 */
	rv = vt_block_set(g.blocks[2], "offline", 120);
	if (rv)
		bail("cannot offline memory%ld: %s", g.blocks[2], strerror(rv));
	tr.src = map_near_dimm(ODP_LEN);
	tr.dst = map_near_dimm(ODP_LEN);
	tr.src_mr = ibv_reg_mr(g.pd, tr.src, ODP_LEN, ODP_ACCESS);
	tr.dst_mr = ibv_reg_mr(g.pd, tr.dst, ODP_LEN, ODP_ACCESS);
	if (!tr.src_mr || !tr.dst_mr)
		bail("ibv_reg_mr (ODP): %s", strerror(errno));
	memset(tr.src, 1, ODP_LEN);
	memset(tr.dst, 2, ODP_LEN);
	rv = vt_block_set(g.blocks[2], "online_movable", 60);
	if (rv)
		bail("cannot online memory%ld: %s", g.blocks[2], strerror(rv));
	in_first[0] = pages_in_block(tr.src, ODP_LEN, g.blocks[1]);
	in_first[1] = pages_in_block(tr.dst, ODP_LEN, g.blocks[1]);
	in_any[0] = in_first[0] + pages_in_block(tr.src, ODP_LEN, g.blocks[2]);
	in_any[1] = in_first[1] + pages_in_block(tr.dst, ODP_LEN, g.blocks[2]);
	diag("ODP MRs src (lkey %#x) and dst (lkey %#x): %ld and %ld of %lu pages each in "
	     "memory%ld", tr.src_mr->lkey, tr.dst_mr->lkey, in_first[0], in_first[1],
	     ODP_LEN / PG, g.blocks[1]);
	EXPECT_NUM("src pages in the block", in_first[0], ODP_LEN / PG);
	EXPECT_NUM("dst pages in the block", in_first[1], ODP_LEN / PG);
	EXPECT_NUM("src pages in the DIMM", in_any[0], ODP_LEN / PG);
	EXPECT_NUM("dst pages in the DIMM", in_any[1], ODP_LEN / PG);
	point("two ODP MRs have all their pages in one Movable block of the DIMM");

	ev_collect();
	from = nev;
	/* the rate to compare with: every page mapped, the traffic under way for a second */
	if (prefetch_all(tr.src_mr, tr.src, ODP_LEN) || prefetch_all(tr.dst_mr, tr.dst, ODP_LEN))
		bad = 1;
	trace_failed_faults();
	if (pthread_create(&tr.thread, NULL, traffic, NULL))
		bail("pthread_create");
	rate_over(1);
	before = rate_over(3);
	during[0] = offline_under_traffic(g.blocks[1]);
	point("that block goes offline under traffic; the event channel reports the migrations "
	      "out of it for exactly both MRs, every page");
	move_under_traffic(g.node, true);
	point("migratepages(8) under traffic brings every page back to the DIMM's node, into its "
	      "last block; migrate records count exactly the pages moved, per MR");
	move_under_traffic(0, false);
	move_under_traffic(g.node, false);
	point("move_pages(2) under traffic moves them to node 0 and back into that block, with "
	      "the same checks");
	during[1] = offline_under_traffic(g.blocks[2]);
	point("the last block goes offline under traffic, with the same checks");
	/* after: the pages the last offlining moved are mapped again */
	if (prefetch_all(tr.src_mr, tr.src, ODP_LEN) || prefetch_all(tr.dst_mr, tr.dst, ODP_LEN))
		bad = 1;
	rate_over(1);
	after = rate_over(3);
	diag("transfers/s: %.1f before, %.1f and %.1f while a block went offline, %.1f after; "
	     "ratio during/before: %.2f and %.2f; during/after: %.2f and %.2f", before,
	     during[0], during[1], after, before > 0 ? during[0] / before : 0,
	     before > 0 ? during[1] / before : 0, after > 0 ? during[0] / after : 0,
	     after > 0 ? during[1] / after : 0);

	ev_collect();
	EXPECT_NUM("lost records", ev_count(0, PFNIC_EVENT_LOST, -1, -1, 0, NULL), 0);
	for (int m = 0; m < 2; m++) {
		struct ibv_mr *mr = m ? tr.dst_mr : tr.src_mr;
		int records = ev_count(from, PFNIC_EVENT_MIGRATE, -1, -1, mr->lkey, NULL);
		uint32_t mrn = 0;

		for (int i = from; i < nev; i++)
			if (evs[i].lkey == mr->lkey)
				mrn = evs[i].mrn;
		long long counter = migrations_counter(mrn);

		diag("%s (mrn %u): %d migrate records, migrations counter %lld", m ? "dst" : "src",
		     mrn, records, counter);
		EXPECT_NUM("migrations counter", counter, records);
	}
	point("each MR's migrations counter (rdma statistic mr) equals its migrate records; no "
	      "record was lost");

	/* from here on the event reader is left alone: the benchmark's records may fill it */
	if (g.bench)
		bench_offlining(g.bench);

	if (g.unplug) {
		long gone = 0;

		printf("# ready-for-unplug\n");
		fflush(stdout);
		for (double end = now() + 120; now() < end && gone < NBLOCKS; usleep(200000)) {
			gone = 0;
			for (int b = 0; b < NBLOCKS; b++)
				gone += strcmp(vt_block_attr(g.blocks[b], "state"), "absent") == 0;
		}
		diag("%ld of %d blocks gone; transfers/s since: %.1f", gone, NBLOCKS, rate_over(2));
		EXPECT_NUM("DIMM blocks gone", gone, NBLOCKS);
		point("the host removes the DIMM (QMP device_del) under traffic: its blocks go away");
	}

	atomic_store(&tr.stop, true);
	pthread_join(tr.thread, NULL);
	diag("traffic: %lu transfers, %lu bytes, %lu failed; faults taken again because their "
	     "range kept changing: %lld", atomic_load(&tr.ops), atomic_load(&tr.bytes),
	     atomic_load(&tr.errors), vt_device_counter("pfnic0", "page_fault_retries"));
	if (atomic_load(&tr.errors)) {
		diag("the first failure: %s", tr.first_error);
		show_failed_faults();
		bad = 1;
	}
	if (atomic_load(&tr.ops) < 10)
		bad = 1;
	point("traffic never failed and every byte of every transfer arrived right");

	ibv_dereg_mr(tr.src_mr);
	ibv_dereg_mr(tr.dst_mr);
}

/* The options of this program's own, for vt_args(). */
static bool take_option(int opt, const char *arg)
{
	if (opt == 'u')
		g.unplug = true;
	else if (opt == 'b')
		g.bench = atoi(arg);
	else
		return false;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "unplug", no_argument, NULL, 'u' },
		{ "bench", required_argument, NULL, 'b' },
		{ 0 },
	};

	vt_args(argc, argv, "pfnic_hotplug -d DEVICE [-g GID_INDEX] [--unplug] [--bench N]",
		&g.dev, &g.gidx, "ub:", lo, take_option);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n1..%d\n", g.unplug ? 11 : 10);
	setup();
	if (find_blocks() < NBLOCKS)
		bail("fewer than %d online Movable memory blocks: boot with a DIMM", NBLOCKS);
	g.node = block_node(g.blocks[0]);
	if (g.node < 1 || access("/sys/devices/system/node/node0", F_OK))
		bail("the DIMM is not a NUMA node of its own: boot with --numa --dimm");
	diag("DIMM blocks: memory%ld memory%ld memory%ld, %lu MiB each, node %d", g.blocks[0],
	     g.blocks[1], g.blocks[2], g.block_size >> 20, g.node);
	numa_balancing(false);
	c_pinned();
	c_odp();
	numa_balancing(true);
	diag("%d of %d failed", g.failed, g.num);
	return g.failed ? 1 : 0;
}
