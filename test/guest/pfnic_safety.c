// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_safety: what pfnic keeps safe when a program, the kernel's memory management or
 * another user acts on its objects at a bad moment. Prints TAP version 13.
 *
 *   pfnic_safety -d DEVICE [-g GID_INDEX] [--only NAME[,...]] [--skip NAME[,...]]
 *
 * Cases (each fails on the driver it was written against, and passes once mended):
 *   fault_reset   a page fault still being resolved when its QP is reset does not reach the
 *                 QP's next life: a WQE posted after RESET -> RTS completes
 *   flush_read    a flush does not complete an RDMA READ whose local buffer the engine is
 *                 still writing: the buffer does not change once the completion is seen
 *   flush_recv    ... nor a receive WQE a SEND is still being written into
 *   dirty_shmem   what only RDMA wrote into shared memory that the CPU had only read
 *                 survives the pages being swapped out and in again
 *   dirty_file    ... and into a shared file on ext4: written back (msync), the caches
 *                 dropped, the file holds it; written again after writeback, again
 *   qpn_reuse     a QP number is not handed out again at once, and a new QP connected to a
 *                 survivor whose peer died does not talk with it
 *   netns         QPs of devices in different network namespaces do not reach each other
 *   progress      a 32 MiB WRITE from an ODP MR whose pages are invalidated again and again
 *                 (every two times a 2 MiB fault window takes) completes, every byte right
 *   msg_size      a work request longer than max_msg_sz is refused
 *   rnr_timer     the RNR NAK timer is the responder's min_rnr_timer, in the spec's units
 *   ack_timeout   a message no responder takes (peer not yet in RTR, or gone) is sent again
 *                 after the local ACK timeout, retry_cnt times, as on a wire
 *   limits        a 1 TiB ODP MR fails cleanly; what registration allocates is charged to the
 *                 memory cgroup, and so are the tables an implicit MR makes as it faults
 *   object_limits max_pd and max_cq are kept (65,536 of each are made: minutes on a kernel
 *                 with the checkers)
 *   ring_limits   a CQ ring a memory cgroup cannot hold is refused with ENOMEM; the cgroup's
 *                 OOM killer ends nobody
 *
 * Needs root, swap for dirty_shmem (the rig's command sets up zram), mkfs.ext4 and loop
 * devices for dirty_file, ip netns for netns, and the pfnic module's inject_fault_delay_ms.
 * Exit status: 0 if every case passed, 1 otherwise, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "verbs-test.h"

#define PG 4096ul
#define DELAY_PARAM "/sys/module/pfnic/parameters/inject_fault_delay_ms"

static struct {
	const char *dev;
	int gidx;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	union ibv_gid gid;
	uint16_t lid;
	const char *only;
	const char *skip;
	int num, failed;
} g = { .gidx = 1 };

static int bad;


static void point(const char *name, const char *what)
{
	g.num++;
	printf("%s %d - %s: %s\n", bad ? "not ok" : "ok", g.num, name, what);
	fflush(stdout);
	g.failed += bad;
	bad = 0;
}

/* ---- a connected pair of RC QPs, each with a CQ of its own ---------------------------------- */

struct pair {
	struct ibv_context *ctx[2];
	struct ibv_pd *pd[2];
	struct ibv_cq *cq[2];
	struct ibv_qp *qp[2];
	union ibv_gid gid[2];
};

static struct ibv_qp *rc_qp(struct ibv_pd *pd, struct ibv_cq *cq)
{
	struct ibv_qp_init_attr qa = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 8, .max_recv_wr = 8, .max_send_sge = 2, .max_recv_sge = 2 },
	};
	struct ibv_qp *qp = ibv_create_qp(pd, &qa);

	if (!qp)
		bail("ibv_create_qp: %s", strerror(errno));
	return qp;
}

/* Brings QP @i of @p from RESET to RTS towards @dest_qpn (the other QP's GID). */
static int rc_connect(struct pair *p, int i, uint32_t dest_qpn, uint8_t min_rnr_timer,
		      uint8_t rnr_retry)
{
	struct vt_rc c = {
		.port = 1, .dest_qpn = dest_qpn, .dgid = p->gid[!i], .sgid_index = g.gidx,
		.dlid = g.lid, .min_rnr_timer = min_rnr_timer, .rnr_retry = rnr_retry,
		.access = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_LOCAL_WRITE,
	};
	struct ibv_qp_attr reset = { .qp_state = IBV_QPS_RESET };
	const char *step = "RESET";
	int state = IBV_QPS_RESET, rv;

	rv = ibv_modify_qp(p->qp[i], &reset, IBV_QP_STATE);
	if (!rv)
		rv = vt_rc_bring_up(p->qp[i], &c, &state, IBV_QPS_RTS, &step);
	if (rv)
		diag("QP %u to %s: %s", p->qp[i]->qp_num, step, strerror(rv));
	return rv;
}

/* Two QPs on device @dev0 and @dev1 (the same, or two), connected to each other. */
static void pair_open(struct pair *p, const char *dev0, const char *dev1)
{
	memset(p, 0, sizeof(*p));
	for (int i = 0; i < 2; i++) {
		const char *dev = i ? dev1 : dev0;

		p->ctx[i] = i && !strcmp(dev0, dev1) ? p->ctx[0] : open_device_named(dev);
		if (ibv_query_gid(p->ctx[i], 1, g.gidx, &p->gid[i]))
			bail("ibv_query_gid(%s): %s", dev, strerror(errno));
		p->pd[i] = i && p->ctx[1] == p->ctx[0] ? p->pd[0] : ibv_alloc_pd(p->ctx[i]);
		p->cq[i] = ibv_create_cq(p->ctx[i], 64, NULL, NULL, 0);
		if (!p->pd[i] || !p->cq[i])
			bail("ibv_alloc_pd / ibv_create_cq on %s: %s", dev, strerror(errno));
		p->qp[i] = rc_qp(p->pd[i], p->cq[i]);
	}
	for (int i = 0; i < 2; i++)
		if (rc_connect(p, i, p->qp[!i]->qp_num, 1, 7))
			bail("cannot connect the pair");
}

static void pair_close(struct pair *p)
{
	for (int i = 0; i < 2; i++) {
		ibv_destroy_qp(p->qp[i]);
		ibv_destroy_cq(p->cq[i]);
	}
	ibv_dealloc_pd(p->pd[0]);
	if (p->pd[1] != p->pd[0])
		ibv_dealloc_pd(p->pd[1]);
	if (p->ctx[1] != p->ctx[0])
		ibv_close_device(p->ctx[1]);
	ibv_close_device(p->ctx[0]);
}

/* The next completion of @cq within @secs seconds. Return: 0, or -1 if none came. */
static int wait_wc(struct ibv_cq *cq, struct ibv_wc *wc, double secs)
{
	for (double end = now() + secs; now() < end;) {
		int n = ibv_poll_cq(cq, 1, wc);

		if (n < 0) {
			diag("ibv_poll_cq failed");
			return -1;
		}
		if (n)
			return 0;
		usleep(200);
	}
	return -1;
}

/* Posts one signaled WR on @qp: @op of the local [@laddr, +@len) of @lmr, with the remote. */
static int post(struct ibv_qp *qp, enum ibv_wr_opcode op, struct ibv_mr *lmr, void *laddr,
		size_t len, uint32_t rkey, void *raddr)
{
	struct ibv_sge sge = { .addr = (uintptr_t)laddr, .length = len, .lkey = lmr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = op, .sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
	}, *badwr;
	int rv;

	wr.wr.rdma.remote_addr = (uintptr_t)raddr;
	wr.wr.rdma.rkey = rkey;
	rv = ibv_post_send(qp, &wr, &badwr);
	if (rv)
		diag("ibv_post_send: %s", strerror(rv));
	return rv;
}

static int post_recv(struct ibv_qp *qp, struct ibv_mr *mr, void *addr, size_t len)
{
	struct ibv_sge sge = { .addr = (uintptr_t)addr, .length = len, .lkey = mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = 77, .sg_list = &sge, .num_sge = 1 }, *badwr;
	int rv = ibv_post_recv(qp, &wr, &badwr);

	if (rv)
		diag("ibv_post_recv: %s", strerror(rv));
	return rv;
}

/* One WR, and its completion's status (-1: none in @secs seconds). */
static int run_wr(struct pair *p, enum ibv_wr_opcode op, struct ibv_mr *lmr, void *laddr,
		  size_t len, struct ibv_mr *rmr, void *raddr, double secs)
{
	struct ibv_wc wc;

	if (post(p->qp[0], op, lmr, laddr, len, rmr ? rmr->rkey : 0, raddr))
		return -1;
	if (wait_wc(p->cq[0], &wc, secs)) {
		diag("no completion in %.0f s", secs);
		return -1;
	}
	return wc.status;
}

static uint8_t pattern(uint64_t seed, size_t i)
{
	uint64_t x = (seed + i / 8) * 0x9e3779b97f4a7c15ull;

	return (uint8_t)(x >> (56 - 8 * (i % 8)));
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pattern(seed, i);
}

/* The first byte of @p that is not @seed's pattern, or -1 if none. */
static long first_wrong(const uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pattern(seed, i))
			return (long)i;
	return -1;
}

static uint64_t checksum(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i += 8) {
		h ^= *(const uint64_t *)(p + i);
		h *= 1099511628211ull;
	}
	return h;
}

static struct ibv_mr *reg(void *addr, size_t len, int access)
{
	struct ibv_mr *mr = ibv_reg_mr(g.pd, addr, len, access);

	if (!mr)
		bail("ibv_reg_mr (%zu bytes, access 0x%x): %s", len, access, strerror(errno));
	return mr;
}

#define ACC_ALL (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

/* ---- fault_reset ---------------------------------------------------------------------------- */

static void c_fault_reset(void)
{
	struct pair p;
	uint8_t *gone = map_fresh(4 * PG), *src = map_fresh(PG), *dst = map_fresh(PG);
	struct ibv_mr *gmr, *smr, *dmr;
	struct ibv_wc wc;
	int st;

	pair_open(&p, g.dev, g.dev);
	g.pd = p.pd[0];
	gmr = reg(gone, 4 * PG, ACC_ALL | IBV_ACCESS_ON_DEMAND);
	smr = reg(src, PG, ACC_ALL);
	dmr = reg(dst, PG, ACC_ALL);
	/* the fault of a WRITE from here cannot be resolved: nothing is mapped there */
	munmap(gone, 4 * PG);
	if (write_file(DELAY_PARAM, "2000")) {
		bad = 1;
		goto out;
	}
	if (post(p.qp[0], IBV_WR_RDMA_WRITE, gmr, gone + 100, 200, dmr->rkey, dst))
		bad = 1;
	usleep(300 * 1000);
	/* while that fault is resolved: ERR (flushing the WRITE), RESET, and up again */
	struct ibv_qp_attr err = { .qp_state = IBV_QPS_ERR };

	EXPECT(!ibv_modify_qp(p.qp[0], &err, IBV_QP_STATE), "modify to ERR failed");
	EXPECT(!wait_wc(p.cq[0], &wc, 10) && wc.status == IBV_WC_WR_FLUSH_ERR,
	       "the stalled WRITE was not flushed (status %s)", ibv_wc_status_str(wc.status));
	EXPECT(!rc_connect(&p, 0, p.qp[1]->qp_num, 1, 7), "reconnecting failed");
	write_file(DELAY_PARAM, "0");
	fill(src, PG, 5);
	st = run_wr(&p, IBV_WR_RDMA_WRITE, smr, src, PG, dmr, dst, 20);
	EXPECT(st == IBV_WC_SUCCESS, "a WRITE posted in the QP's next life completed with %s",
	       st < 0 ? "nothing" : ibv_wc_status_str(st));
	EXPECT(st != IBV_WC_SUCCESS || first_wrong(dst, PG, 5) < 0, "the WRITE's bytes are wrong");
out:
	write_file(DELAY_PARAM, "0");
	ibv_dereg_mr(gmr);
	ibv_dereg_mr(smr);
	ibv_dereg_mr(dmr);
	pair_close(&p);
	g.pd = NULL;
	munmap(src, PG);
	munmap(dst, PG);
	point("fault_reset", "a fault in flight when its QP is reset does not fail the WQE posted "
	      "after RESET -> RTS");
}

/* ---- flush_read, flush_recv ----------------------------------------------------------------- */

#define BIG (64ul << 20)

/*
 * Waits until [@p, +@n) stops being @seed's pattern at its start (the engine began writing
 * it). Return: 0, or -1 after 30 s.
 */
static int wait_written(const uint8_t *p, uint64_t seed)
{
	for (double end = now() + 30; now() < end;) {
		if (first_wrong(p, 64, seed) >= 0)
			return 0;
		usleep(50);
	}
	return -1;
}

/*
 * @side 0: the requester's READ buffer, flushed by moving the requester to ERR;
 * @side 1: the responder's receive buffer of a SEND, flushed by moving the responder to ERR.
 */
static void c_flush(int side)
{
	struct pair p;
	uint8_t *src = map_fresh(BIG), *dst = map_fresh(BIG);
	struct ibv_qp_attr err = { .qp_state = IBV_QPS_ERR };
	struct ibv_mr *smr, *dmr;
	struct ibv_wc wc;
	uint64_t a, b;

	pair_open(&p, g.dev, g.dev);
	g.pd = p.pd[0];
	fill(src, BIG, 11);
	fill(dst, BIG, 12);
	smr = reg(src, BIG, ACC_ALL);
	dmr = reg(dst, BIG, ACC_ALL);
	if (side == 0) {
		/* READ the peer's src into our dst */
		if (post(p.qp[0], IBV_WR_RDMA_READ, dmr, dst, BIG, smr->rkey, src))
			bad = 1;
	} else {
		if (post_recv(p.qp[1], dmr, dst, BIG) ||
		    post(p.qp[0], IBV_WR_SEND, smr, src, BIG, 0, NULL))
			bad = 1;
	}
	EXPECT(!wait_written(dst, 12), "the engine never started writing the buffer");
	EXPECT(!ibv_modify_qp(p.qp[side], &err, IBV_QP_STATE), "modify to ERR failed");
	/* the flushed WQE's completion: the READ's, or the receive's */
	EXPECT(!wait_wc(p.cq[side], &wc, 60), "no completion after the flush");
	if (side == 1)
		while (wc.wr_id != 77 && !wait_wc(p.cq[side], &wc, 60))
			;
	a = checksum(dst, BIG);
	usleep(500 * 1000);
	b = checksum(dst, BIG);
	diag("completion %s; the buffer's checksum %016" PRIx64 " then %016" PRIx64,
	     ibv_wc_status_str(wc.status), a, b);
	EXPECT(a == b, "the buffer changed after its WQE's completion was seen");
	ibv_dereg_mr(smr);
	ibv_dereg_mr(dmr);
	pair_close(&p);
	g.pd = NULL;
	munmap(src, BIG);
	munmap(dst, BIG);
	point(side ? "flush_recv" : "flush_read", side ?
	      "a receive WQE a SEND is being written into is not completed by a flush until the "
	      "writing stopped" :
	      "a READ the engine is still writing is not completed by a flush until the writing "
	      "stopped");
}

/* ---- dirty_shmem, dirty_file ---------------------------------------------------------------- */

/* Pages of [@p, +@n) resident in memory (mincore). */
static size_t resident(void *p, size_t n)
{
	unsigned char vec[n / PG];
	size_t r = 0;

	if (mincore(p, n, vec))
		return (size_t)-1;
	for (size_t i = 0; i < n / PG; i++)
		r += vec[i] & 1;
	return r;
}

/* RDMA WRITEs @seed's pattern over all of [@mem, +@n) of @mr, from a pinned buffer. */
static int rdma_fill(struct pair *p, struct ibv_mr *mr, uint8_t *mem, size_t n, uint64_t seed)
{
	uint8_t *src = map_fresh(n);
	struct ibv_mr *smr = reg(src, n, ACC_ALL);
	int st;

	fill(src, n, seed);
	st = run_wr(p, IBV_WR_RDMA_WRITE, smr, src, n, mr, mem, 60);
	ibv_dereg_mr(smr);
	munmap(src, n);
	if (st != IBV_WC_SUCCESS)
		diag("the WRITE completed with %s", st < 0 ? "nothing" : ibv_wc_status_str(st));
	return st == IBV_WC_SUCCESS ? 0 : -1;
}

#define DIRTY_LEN (64 * PG)

static void c_dirty_shmem(void)
{
	uint8_t *mem = mmap(NULL, DIRTY_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			    -1, 0);
	volatile uint8_t sink = 0;
	struct ibv_mr *mr;
	struct pair p;
	long wrong;

	if (mem == MAP_FAILED)
		bail("mmap: %s", strerror(errno));
	pair_open(&p, g.dev, g.dev);
	g.pd = p.pd[0];
	/* the CPU only reads: clean pages, mapped writable (shmem has no write-notify) */
	for (size_t i = 0; i < DIRTY_LEN; i += PG)
		sink += mem[i];
	mr = reg(mem, DIRTY_LEN, ACC_ALL | IBV_ACCESS_ON_DEMAND);
	EXPECT(!rdma_fill(&p, mr, mem, DIRTY_LEN, 21), "the RDMA WRITE failed");
	EXPECT(first_wrong(mem, DIRTY_LEN, 21) < 0, "the CPU does not see what RDMA wrote");
	EXPECT(!madvise(mem, DIRTY_LEN, MADV_PAGEOUT), "MADV_PAGEOUT: %s", strerror(errno));
	size_t left = resident(mem, DIRTY_LEN);

	diag("after MADV_PAGEOUT, %zu of %lu pages are in memory", left, DIRTY_LEN / PG);
	EXPECT(left < DIRTY_LEN / PG / 2, "the pages were not swapped out (is swap on?)");
	wrong = first_wrong(mem, DIRTY_LEN, 21);
	EXPECT(wrong < 0, "after swap-out and in, byte %ld is %#x, RDMA wrote %#x", wrong,
	       wrong < 0 ? 0 : mem[wrong], wrong < 0 ? 0 : pattern(21, wrong));
	ibv_dereg_mr(mr);
	pair_close(&p);
	g.pd = NULL;
	munmap(mem, DIRTY_LEN);
	point("dirty_shmem", "what only RDMA wrote into shared memory the CPU had only read "
	      "survives swap-out (MADV_PAGEOUT) and swap-in");
}

#define FSDIR "/run/pfnic-safety"

static int sh(const char *cmd)
{
	int rv = system(cmd);

	if (rv)
		diag("`%s` failed (%d)", cmd, rv);
	return rv;
}

/* The file's bytes as the disk has them (O_DIRECT: past the page cache). */
static int file_matches(const char *path, uint64_t seed)
{
	uint8_t *buf = map_fresh(DIRTY_LEN);
	int fd, rv = -1;

	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0)
		diag("open %s: %s", path, strerror(errno));
	if (fd >= 0 && pread(fd, buf, DIRTY_LEN, 0) == (ssize_t)DIRTY_LEN) {
		long wrong = first_wrong(buf, DIRTY_LEN, seed);

		rv = wrong < 0 ? 0 : -1;
		if (wrong >= 0)
			diag("the file's byte %ld is %#x, RDMA wrote %#x", wrong, buf[wrong],
			     pattern(seed, wrong));
	}
	if (fd >= 0)
		close(fd);
	munmap(buf, DIRTY_LEN);
	return rv;
}

static void c_dirty_file(void)
{
	const char *path = FSDIR "/mnt/data";
	volatile uint8_t sink = 0;
	struct ibv_mr *mr = NULL;
	uint8_t *mem = MAP_FAILED;
	struct pair p;
	int fd = -1;

	pair_open(&p, g.dev, g.dev);
	g.pd = p.pd[0];
	if (sh("modprobe -q loop; modprobe -q ext4; mkdir -p " FSDIR "/mnt && truncate -s 64M " FSDIR "/disk && "
	       "mkfs.ext4 -q -F " FSDIR "/disk && mount -o loop " FSDIR "/disk " FSDIR "/mnt")) {
		bad = 1;
		goto out;
	}
	fd = open(path, O_RDWR | O_CREAT, 0600);
	uint8_t *init = map_fresh(DIRTY_LEN);

	fill(init, DIRTY_LEN, 30);
	EXPECT(fd >= 0 && pwrite(fd, init, DIRTY_LEN, 0) == (ssize_t)DIRTY_LEN && !fsync(fd),
	       "writing the file: %s", strerror(errno));
	munmap(init, DIRTY_LEN);
	write_file("/proc/sys/vm/drop_caches", "3");
	mem = mmap(NULL, DIRTY_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		diag("mmap of the file: %s", strerror(errno));
		bad = 1;
		goto out;
	}
	for (size_t i = 0; i < DIRTY_LEN; i += PG)
		sink += mem[i];
	mr = reg(mem, DIRTY_LEN, ACC_ALL | IBV_ACCESS_ON_DEMAND);
	for (uint64_t seed = 31; seed <= 32; seed++) {
		/* the second WRITE comes after writeback made the pages clean again */
		EXPECT(!rdma_fill(&p, mr, mem, DIRTY_LEN, seed), "RDMA WRITE %" PRIu64 " failed",
		       seed - 30);
		EXPECT(!msync(mem, DIRTY_LEN, MS_SYNC), "msync: %s", strerror(errno));
		EXPECT(!file_matches(path, seed), "after WRITE %" PRIu64 ", msync and dropping "
		       "the caches, the file does not hold what RDMA wrote", seed - 30);
	}
	/* and once more, left for the deregistration and munmap to hand over */
	EXPECT(!rdma_fill(&p, mr, mem, DIRTY_LEN, 33), "RDMA WRITE 3 failed");
	ibv_dereg_mr(mr);
	mr = NULL;
	munmap(mem, DIRTY_LEN);
	mem = MAP_FAILED;
	EXPECT(!file_matches(path, 33), "after WRITE 3, deregistration and munmap, the file does "
	       "not hold what RDMA wrote");
out:
	if (mr)
		ibv_dereg_mr(mr);
	if (mem != MAP_FAILED)
		munmap(mem, DIRTY_LEN);
	if (fd >= 0)
		close(fd);
	sh("umount " FSDIR "/mnt; rm -rf " FSDIR);
	pair_close(&p);
	g.pd = NULL;
	point("dirty_file", "what RDMA wrote into a shared ext4 file is in the file after msync and "
	      "after deregistration, also when written again after writeback");
}

/* ---- qpn_reuse, netns ----------------------------------------------------------------------- */

/*
 * A SEND from QP @from of @p to its peer, which has a receive posted; both QPs complete on
 * cq[0]. Return: the sender's completion status (-1: none), and whether the message arrived.
 */
static int try_send(struct pair *p, int from, struct ibv_mr *mr, uint8_t *buf, bool *arrived)
{
	struct ibv_wc wc;
	int st = -1;

	*arrived = false;
	if (post(p->qp[from], IBV_WR_SEND, mr, buf, 64, 0, NULL))
		return -1;
	/* the send's completion, and the receive's if it came: never more than a second apart */
	while (!wait_wc(p->cq[0], &wc, st < 0 ? 20 : 1)) {
		if (wc.wr_id == 77)
			*arrived = wc.status == IBV_WC_SUCCESS;
		else
			st = wc.status;
	}
	return st;
}

static void c_qpn_reuse(void)
{
	uint8_t *buf = map_fresh(PG);
	struct ibv_mr *mr;
	struct pair p;
	uint32_t dead;
	bool arrived;
	int st;

	pair_open(&p, g.dev, g.dev);
	g.pd = p.pd[0];
	/* one CQ for both, so try_send sees every completion */
	mr = reg(buf, PG, ACC_ALL);
	ibv_destroy_qp(p.qp[1]);
	ibv_destroy_qp(p.qp[0]);
	p.qp[0] = rc_qp(p.pd[0], p.cq[0]);
	p.qp[1] = rc_qp(p.pd[0], p.cq[0]);
	if (rc_connect(&p, 0, p.qp[1]->qp_num, 1, 0) || rc_connect(&p, 1, p.qp[0]->qp_num, 1, 0))
		bail("cannot connect");
	EXPECT(!post_recv(p.qp[1], mr, buf + 2048, 1024), "post_recv");
	st = try_send(&p, 0, mr, buf, &arrived);
	EXPECT(st == IBV_WC_SUCCESS && arrived, "the connected pair does not talk (%d)", st);

	/* the peer dies; a new QP is made, and connected to the survivor */
	dead = p.qp[1]->qp_num;
	ibv_destroy_qp(p.qp[1]);
	p.qp[1] = rc_qp(p.pd[0], p.cq[0]);
	diag("the dead peer was QPN %u; the new QP is %u", dead, p.qp[1]->qp_num);
	EXPECT(p.qp[1]->qp_num != dead, "the dead peer's QPN was handed out again at once");
	EXPECT(!rc_connect(&p, 1, p.qp[0]->qp_num, 1, 0), "connecting the new QP");
	EXPECT(!post_recv(p.qp[1], mr, buf + 2048, 1024), "post_recv");
	st = try_send(&p, 0, mr, buf, &arrived);
	EXPECT(!arrived && st != IBV_WC_SUCCESS, "the survivor's SEND to its dead peer reached "
	       "the new QP (status %d)", st);
	ibv_dereg_mr(mr);
	pair_close(&p);
	g.pd = NULL;
	munmap(buf, PG);
	point("qpn_reuse", "QPNs are not handed out again at once; a survivor does not talk with a "
	      "new QP that took its dead peer's place");
}

static void c_netns(void)
{
	uint8_t *buf = map_fresh(PG);
	struct ibv_mr *mr[2];
	struct pair p;
	bool arrived;
	int st;

	if (sh("ip netns add pfnic-safety && ip netns exec pfnic-safety sh -c '"
	       "ip link set lo up && ip link add d9 type dummy && "
	       "sysctl -q -w net.ipv6.conf.d9.accept_dad=0 && ip link set d9 up && "
	       "ip addr add 198.51.100.9/24 dev d9 && rdma link add pfnic9 type pfnic netdev d9'")) {
		bad = 1;
		goto out;
	}
	usleep(500 * 1000);	/* the GIDs follow the addresses */
	memset(&p, 0, sizeof(p));
	pair_open(&p, g.dev, "pfnic9");
	for (int i = 0; i < 2; i++)
		mr[i] = ibv_reg_mr(p.pd[i], buf, PG, ACC_ALL);
	EXPECT(mr[0] && mr[1], "ibv_reg_mr: %s", strerror(errno));
	/* the sender's CQ is cq[0]; the receiver's completions go to cq[1] */
	EXPECT(!post_recv(p.qp[1], mr[1], buf + 2048, 1024), "post_recv");
	st = -1;
	if (!post(p.qp[0], IBV_WR_SEND, mr[0], buf, 64, 0, NULL)) {
		struct ibv_wc wc;

		if (!wait_wc(p.cq[0], &wc, 20))
			st = wc.status;
		arrived = !wait_wc(p.cq[1], &wc, 1) && wc.status == IBV_WC_SUCCESS;
		EXPECT(!arrived, "a SEND crossed from %s to pfnic9 in another namespace", g.dev);
	}
	diag("the SEND completed with %s", st < 0 ? "nothing" : ibv_wc_status_str(st));
	EXPECT(st != IBV_WC_SUCCESS, "the SEND to another namespace succeeded");
	for (int i = 0; i < 2; i++)
		if (mr[i])
			ibv_dereg_mr(mr[i]);
	pair_close(&p);
out:
	sh("ip netns exec pfnic-safety rdma link delete pfnic9; ip netns delete pfnic-safety");
	munmap(buf, PG);
	point("netns", "a QP does not reach a QP whose device is in another network namespace");
}

/* ---- progress ------------------------------------------------------------------------------- */

#define PROGRESS_LEN (32ul << 20)

struct churn {
	uint8_t *mem;
	volatile bool stop;
	unsigned long rounds;
	useconds_t period;
};

static void *churn_run(void *arg)
{
	struct churn *c = arg;

	/* shared memory keeps its data: each round only takes the translations away */
	while (!c->stop) {
		madvise(c->mem, PROGRESS_LEN, MADV_DONTNEED);
		c->rounds++;
		usleep(c->period);
	}
	return NULL;
}

/*
 * A WQE whose pages are invalidated again and again must still complete. How often is
 * measured on this kernel, as its speed varies tenfold (TCG, the checkers): the time a
 * WRITE from one fault window's worth (2 MiB) of pages just taken away needs, fault and
 * copy; the source is then invalidated every two such times. A driver that goes on from
 * where a fault stopped it moves a window or more between two invalidations and completes
 * in some 16 of them; one that starts the WQE again from its first byte needs all 32 MiB,
 * 16 windows, between two, and never completes.
 */
static void c_progress(void)
{
	uint8_t *src = mmap(NULL, PROGRESS_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			    -1, 0);
	uint8_t *dst = map_fresh(PROGRESS_LEN);
	const size_t window = 2ul << 20;
	struct churn c = { .mem = src };
	struct ibv_mr *smr, *dmr;
	double t0, slowest = 0;
	pthread_t t;
	struct pair p;
	int st;

	if (src == MAP_FAILED)
		bail("mmap: %s", strerror(errno));
	pair_open(&p, g.dev, g.dev);
	g.pd = p.pd[0];
	fill(src, PROGRESS_LEN, 41);
	smr = reg(src, PROGRESS_LEN, ACC_ALL | IBV_ACCESS_ON_DEMAND);
	dmr = reg(dst, PROGRESS_LEN, ACC_ALL);
	for (int i = 0; i < 3; i++) {
		madvise(src, PROGRESS_LEN, MADV_DONTNEED);
		t0 = now();
		st = run_wr(&p, IBV_WR_RDMA_WRITE, smr, src + i * window, window, dmr, dst, 60);
		EXPECT(st == IBV_WC_SUCCESS, "a 2 MiB WRITE failed (%d)", st);
		if (now() - t0 > slowest)
			slowest = now() - t0;
	}
	c.period = (useconds_t)(2 * slowest * 1e6);
	if (c.period < 2000)
		c.period = 2000;
	pthread_create(&t, NULL, churn_run, &c);
	t0 = now();
	st = run_wr(&p, IBV_WR_RDMA_WRITE, smr, src, PROGRESS_LEN, dmr, dst, 240);
	c.stop = true;
	pthread_join(t, NULL);
	diag("a 2 MiB WRITE from pages just taken away took %.1f ms at most; the 32 MiB WRITE, "
	     "its source invalidated every %.1f ms, ended in %.1f s (%s) after %lu invalidations",
	     slowest * 1e3, c.period / 1e3, now() - t0,
	     st < 0 ? "no completion" : ibv_wc_status_str(st), c.rounds);
	EXPECT(st == IBV_WC_SUCCESS, "the WRITE did not complete");
	EXPECT(st != IBV_WC_SUCCESS || first_wrong(dst, PROGRESS_LEN, 41) < 0,
	       "the WRITE's bytes are wrong");
	if (st < 0) {
		/* still stalled: the QPs go before the memory does */
		struct ibv_qp_attr err = { .qp_state = IBV_QPS_ERR };

		ibv_modify_qp(p.qp[0], &err, IBV_QP_STATE);
	}
	/* the MRs before their device is closed (which frees the context they name) */
	ibv_dereg_mr(smr);
	ibv_dereg_mr(dmr);
	pair_close(&p);
	g.pd = NULL;
	munmap(src, PROGRESS_LEN);
	munmap(dst, PROGRESS_LEN);
	point("progress", "a 32 MiB WRITE completes from an ODP MR whose pages are invalidated "
	      "every two fault windows' time, every byte right");
}

/* ---- msg_size, rnr_timer -------------------------------------------------------------------- */

static void c_msg_size(void)
{
	uint8_t *buf = map_fresh(PG);
	struct ibv_device_attr da;
	struct ibv_port_attr pa;
	struct ibv_mr *mr;
	struct pair p;
	int rv;

	pair_open(&p, g.dev, g.dev);
	g.pd = p.pd[0];
	mr = reg(buf, PG, ACC_ALL);
	EXPECT(!ibv_query_device(p.ctx[0], &da) && !ibv_query_port(p.ctx[0], 1, &pa), "query");
	/* two SGEs whose lengths add up to one byte more than max_msg_sz */
	struct ibv_sge sge[2] = {
		{ .addr = (uintptr_t)buf, .length = pa.max_msg_sz / 2, .lkey = mr->lkey },
		{ .addr = (uintptr_t)buf, .length = pa.max_msg_sz / 2 + 1, .lkey = mr->lkey },
	};
	struct ibv_send_wr wr = {
		.sg_list = sge, .num_sge = 2, .opcode = IBV_WR_RDMA_WRITE,
		.send_flags = IBV_SEND_SIGNALED,
	}, *badwr;

	wr.wr.rdma.rkey = mr->rkey;
	wr.wr.rdma.remote_addr = (uintptr_t)buf;
	rv = ibv_post_send(p.qp[0], &wr, &badwr);
	diag("max_msg_sz %u: a WRITE of %u bytes is refused with %s", pa.max_msg_sz,
	     pa.max_msg_sz + 1, strerror(rv));
	EXPECT(rv == EINVAL, "posting it returned %d, not EINVAL", rv);
	ibv_dereg_mr(mr);
	pair_close(&p);
	g.pd = NULL;
	munmap(buf, PG);
	point("msg_size", "a work request longer than max_msg_sz is refused when posted");
}

static void c_rnr_timer(void)
{
	uint8_t *buf = map_fresh(PG);
	struct ibv_mr *mr;
	struct pair p;
	double t0, took;
	int st;

	pair_open(&p, g.dev, g.dev);
	g.pd = p.pd[0];
	mr = reg(buf, PG, ACC_ALL);
	/*
	 * The responder asks for 491.52 ms (min_rnr_timer 31), the requester would take 0.01 ms
	 * (1): one retry, and the SEND fails after one wait of the responder's.
	 */
	if (rc_connect(&p, 0, p.qp[1]->qp_num, 1, 1) || rc_connect(&p, 1, p.qp[0]->qp_num, 31, 1))
		bad = 1;
	t0 = now();
	st = run_wr(&p, IBV_WR_SEND, mr, buf, 64, NULL, NULL, 20);
	took = now() - t0;
	diag("the SEND to a QP with no receive completed with %s after %.3f s",
	     st < 0 ? "nothing" : ibv_wc_status_str(st), took);
	EXPECT(st == IBV_WC_RNR_RETRY_EXC_ERR, "not RNR_RETRY_EXC_ERR");
	EXPECT(took >= 0.45, "the requester did not wait the responder's 491.52 ms");
	ibv_dereg_mr(mr);
	pair_close(&p);
	g.pd = NULL;
	munmap(buf, PG);
	point("rnr_timer", "an RNR retry waits the responder's min_rnr_timer, in the spec's units");
}

/* ---- ack_timeout ---------------------------------------------------------------------------- */

/*
 * A message no responder takes gets no ACK, as on a wire: the requester sends it again after
 * its local ACK timeout (4.096 us << timeout, 67 ms for 14), retry_cnt (7) times. So a SEND
 * posted before the peer reached RTR arrives once it has; one to a peer that is gone fails
 * with RETRY_EXC_ERR after the retries, not at once.
 */
static void c_ack_timeout(void)
{
	uint8_t *buf = map_fresh(PG);
	struct vt_rc c;
	struct ibv_wc wc;
	struct ibv_mr *mr;
	struct pair p;
	long long before, after;
	double t0, took;
	int state = IBV_QPS_RESET, st;

	pair_open(&p, g.dev, g.dev);
	g.pd = p.pd[0];
	mr = reg(buf, PG, ACC_ALL);
	/* the responder back to INIT, a receive posted: not yet able to receive */
	c = (struct vt_rc){ .port = 1, .dest_qpn = p.qp[0]->qp_num, .dgid = p.gid[0],
			    .sgid_index = (uint8_t)g.gidx, .dlid = g.lid, .min_rnr_timer = 1,
			    .rnr_retry = 7, .access = ACC_ALL };
	if (ibv_modify_qp(p.qp[1], &(struct ibv_qp_attr){ .qp_state = IBV_QPS_RESET },
			  IBV_QP_STATE) || vt_rc_bring_up(p.qp[1], &c, &state, IBV_QPS_INIT, NULL))
		bail("the responder to INIT: %s", strerror(errno));
	memset(buf, 0x3c, 64);
	EXPECT(!post_recv(p.qp[1], mr, buf + 2048, 1024), "post_recv");
	before = vt_device_counter(g.dev, "local_ack_timeout_err");
	EXPECT(!post(p.qp[0], IBV_WR_SEND, mr, buf, 64, 0, NULL), "post_send");
	usleep(150 * 1000);
	EXPECT(vt_rc_bring_up(p.qp[1], &c, &state, IBV_QPS_RTR, NULL) == 0, "responder to RTR");
	st = wait_wc(p.cq[0], &wc, 10) ? -1 : (int)wc.status;
	EXPECT(!wait_wc(p.cq[1], &wc, 1) && wc.status == IBV_WC_SUCCESS, "no receive completed");
	after = vt_device_counter(g.dev, "local_ack_timeout_err");
	diag("a SEND posted 150 ms before its responder reached RTR: %s; local_ack_timeout_err "
	     "%lld -> %lld", st < 0 ? "no completion" : ibv_wc_status_str(st), before, after);
	EXPECT(st == IBV_WC_SUCCESS, "it did not arrive once the responder was up");
	EXPECT(after - before >= 1 && after - before <= 7, "it was not sent again after its "
	       "local ACK timeout");
	EXPECT(buf[2048] == 0x3c && buf[2048 + 63] == 0x3c, "the message's bytes did not arrive");

	/* the responder goes away: 7 retries, 67 ms apart, then RETRY_EXC_ERR */
	ibv_destroy_qp(p.qp[1]);
	p.qp[1] = rc_qp(p.pd[0], p.cq[0]);
	before = vt_device_counter(g.dev, "local_ack_timeout_err");
	t0 = now();
	st = run_wr(&p, IBV_WR_SEND, mr, buf, 64, NULL, NULL, 20);
	took = now() - t0;
	after = vt_device_counter(g.dev, "local_ack_timeout_err");
	diag("a SEND to a QP that is gone: %s after %.3f s; local_ack_timeout_err %lld -> %lld",
	     st < 0 ? "no completion" : ibv_wc_status_str(st), took, before, after);
	EXPECT(st == IBV_WC_RETRY_EXC_ERR, "not RETRY_EXC_ERR");
	EXPECT(took >= 0.45, "it failed before 7 local ACK timeouts of 67 ms");
	EXPECT(after - before == 7, "not retried retry_cnt (7) times");
	ibv_dereg_mr(mr);
	pair_close(&p);
	g.pd = NULL;
	munmap(buf, PG);
	point("ack_timeout", "a SEND no responder takes is sent again after the local ACK timeout, "
	      "retry_cnt times: it arrives once its peer is up, or fails with RETRY_EXC_ERR");
}

/* ---- limits --------------------------------------------------------------------------------- */

#define CG "/sys/fs/cgroup/pfnic-safety"

/* Counts how many objects @make makes before it fails, then frees them with @drop. */
static long count_until_refused(struct ibv_context *ctx, void *(*make)(struct ibv_context *),
				void (*drop)(void *), long cap, int *err)
{
	void **objs = calloc(cap, sizeof(*objs));
	long n = 0;

	*err = 0;
	while (n < cap && (objs[n] = make(ctx)))
		n++;
	if (n < cap)
		*err = errno;
	for (long i = 0; i < n; i++)
		drop(objs[i]);
	free(objs);
	return n;
}

static void *make_pd(struct ibv_context *ctx) { return ibv_alloc_pd(ctx); }
static void drop_pd(void *o) { ibv_dealloc_pd(o); }
static void *make_cq(struct ibv_context *ctx) { return ibv_create_cq(ctx, 1, NULL, NULL, 0); }
static void drop_cq(void *o) { ibv_destroy_cq(o); }

/* The number at the start of the file at @path, or -1. */
static long long file_number(const char *path)
{
	FILE *f = fopen(path, "r");
	long long n = -1;

	if (f) {
		if (fscanf(f, "%lld", &n) != 1)
			n = -1;
		fclose(f);
	}
	return n;
}

static long long cgroup_bytes(void)
{
	return file_number(CG "/memory.current");
}

#define MAX_MAP_COUNT "/proc/sys/vm/max_map_count"

/*
 * An implicit ODP MR makes a table for each 64 MiB block of the address space its pages
 * fault in from (PFNIC_IMPLICIT_PAGES), in the fault work, a kworker: the tables must be
 * charged to the memory cgroup of the process that registered the MR (this one, in CG). A
 * WRITE from one page in each of 64 blocks makes 64 tables of 128 KiB and more.
 */
static void implicit_tables_charged(uint8_t *va)
{
	const size_t block = 64ul << 20, nblocks = 64;
	uint8_t *dst = map_fresh(PG);
	struct ibv_mr *imr, *dmr;
	long long before, after;
	struct pair p;
	int failed = 0;

	pair_open(&p, g.dev, g.dev);
	g.pd = p.pd[0];
	imr = ibv_reg_mr(p.pd[0], NULL, SIZE_MAX, ACC_ALL | IBV_ACCESS_ON_DEMAND);
	dmr = reg(dst, PG, ACC_ALL);
	EXPECT(imr, "an implicit ODP MR: %s", strerror(errno));
	/* one 4 KiB page of data per block, not a huge page */
	madvise(va, nblocks * block, MADV_NOHUGEPAGE);
	before = cgroup_bytes();
	for (size_t i = 0; imr && i < nblocks; i++) {
		va[i * block] = (uint8_t)i;
		failed += run_wr(&p, IBV_WR_RDMA_WRITE, imr, va + i * block, 64, dmr, dst, 10) !=
			  IBV_WC_SUCCESS;
	}
	after = cgroup_bytes();
	diag("an implicit MR's tables for %zu blocks: the cgroup's memory.current %lld -> %lld "
	     "(+%lld KiB; %zu pages of data were touched); %d WRITEs failed", nblocks, before,
	     after, (after - before) >> 10, nblocks, failed);
	EXPECT(!failed, "WRITEs from the implicit MR failed");
	EXPECT(after - before >= (long long)(nblocks * 120) << 10, "the implicit MR's tables "
	       "(%zu of 128 KiB and more) are not charged to the cgroup of the process that "
	       "registered it", nblocks);
	if (imr)
		ibv_dereg_mr(imr);
	ibv_dereg_mr(dmr);
	pair_close(&p);
	g.pd = NULL;
	munmap(dst, PG);
}

static void c_limits(void)
{
	struct ibv_context *ctx = open_device_named(g.dev);
	struct ibv_pd *pd = ibv_alloc_pd(ctx);
	struct ibv_device_attr da;
	size_t huge = 1ul << 40, big = 32ul << 30;
	struct ibv_mr *mr;
	char self[32];
	uint8_t *va;

	if (!pd || ibv_query_device(ctx, &da))
		bail("ibv_alloc_pd / ibv_query_device: %s", strerror(errno));
	/* 1 TiB of address space, nothing behind it */
	va = mmap(NULL, huge, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	EXPECT(va != MAP_FAILED, "mmap of 1 TiB: %s", strerror(errno));
	if (va != MAP_FAILED) {
		mr = ibv_reg_mr(pd, va, huge, ACC_ALL | IBV_ACCESS_ON_DEMAND);
		diag("a 1 TiB ODP MR: %s", mr ? "registered" : strerror(errno));
		EXPECT(mr || errno == ENOMEM, "a 1 TiB ODP MR failed with %s, not ENOMEM",
		       strerror(errno));
		if (mr)
			ibv_dereg_mr(mr);
	}

	/*
	 * In a memory cgroup of 64 MiB, a 32 GiB ODP MR's tables (66 MiB) cannot be had. (The
	 * driver refuses outright only an MR of over 32 times the machine's memory.)
	 */
	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK))
		sh("mount -t cgroup2 cgroup2 /sys/fs/cgroup");
	snprintf(self, sizeof(self), "%d", getpid());
	if (sh("mkdir -p " CG " && echo +memory > /sys/fs/cgroup/cgroup.subtree_control && "
	       "echo 64M > " CG "/memory.max") || write_file(CG "/cgroup.procs", self)) {
		bad = 1;
	} else if (va != MAP_FAILED) {
		mr = ibv_reg_mr(pd, va, big, ACC_ALL | IBV_ACCESS_ON_DEMAND);
		diag("a 32 GiB ODP MR in a 64 MiB memory cgroup: %s",
		     mr ? "registered" : strerror(errno));
		EXPECT(!mr && errno == ENOMEM, "it was not refused for memory: its tables are not "
		       "charged to the cgroup");
		if (mr)
			ibv_dereg_mr(mr);
		mr = ibv_reg_mr(pd, va, 1ul << 30, ACC_ALL | IBV_ACCESS_ON_DEMAND);
		EXPECT(mr, "a 1 GiB ODP MR in the same cgroup failed: %s", strerror(errno));
		if (mr)
			ibv_dereg_mr(mr);
		implicit_tables_charged(va);
		write_file("/sys/fs/cgroup/cgroup.procs", self);
	}
	rmdir(CG);
	if (va != MAP_FAILED)
		munmap(va, huge);

	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	point("limits", "a 1 TiB ODP MR fails cleanly; registration's tables, and an implicit MR's "
	      "made as it faults, are charged to the memory cgroup");
}

/*
 * How many objects of a kind (pd, cq, ...) the device has now, kernel consumers' and this
 * process's, as `rdma resource show` counts them; -1 if it does not say.
 */
static long device_objects(const char *kind)
{
	char key[64], line[512], *at;
	long n = -1;
	FILE *f = popen("rdma resource show 2>/dev/null", "r");

	if (!f)
		return -1;
	snprintf(key, sizeof(key), " %s: ", g.dev);
	while (fgets(line, sizeof(line), f)) {
		char want[16];

		if (!strstr(line, key))
			continue;
		snprintf(want, sizeof(want), " %s ", kind);
		at = strstr(line, want);
		if (at)
			n = strtol(at + strlen(want), NULL, 10);
	}
	pclose(f);
	return n;
}

static void c_object_limits(void)
{
	struct ibv_context *ctx = open_device_named(g.dev);
	struct ibv_pd *pd = ibv_alloc_pd(ctx);
	struct ibv_device_attr da;
	long n, pds, cqs, map_count;
	char raised[32] = "";
	int err;

	if (!pd || ibv_query_device(ctx, &da))
		bail("ibv_alloc_pd / ibv_query_device: %s", strerror(errno));
	/*
	 * The device's limits, as query_device reports them, count every object it has: this
	 * process's PD, and the kernel consumers' (the MAD layer's QP1 has a PD and a CQ).
	 */
	pds = device_objects("pd");
	cqs = device_objects("cq");
	EXPECT(pds >= 1 && cqs >= 0, "`rdma resource show` gives no counts for %s", g.dev);
	n = count_until_refused(ctx, make_pd, drop_pd, da.max_pd + 16, &err);
	diag("PDs: %ld more made before one was refused (%s); max_pd %d, %ld there before",
	     n, strerror(err), da.max_pd, pds);
	EXPECT(n == da.max_pd - pds && err == ENOMEM, "max_pd is not what is kept");
	/*
	 * Each CQ's ring is a mapping of its own (as on rxe): 65,536 of them need more than the
	 * 65,530 mappings a process may have by default (vm.max_map_count), raised for this.
	 */
	map_count = file_number(MAX_MAP_COUNT);
	if (map_count > 0 && map_count < 4L * da.max_cq) {
		snprintf(raised, sizeof(raised), "%ld", 4L * da.max_cq);
		EXPECT(!write_file(MAX_MAP_COUNT, raised), "cannot raise %s", MAX_MAP_COUNT);
	}
	n = count_until_refused(ctx, make_cq, drop_cq, da.max_cq + 16, &err);
	diag("CQs: %ld made before one was refused (%s); max_cq %d, %ld there before", n,
	     strerror(err), da.max_cq, cqs);
	EXPECT(n == da.max_cq - cqs && err == ENOMEM, "max_cq is not what is kept");
	if (raised[0]) {
		snprintf(raised, sizeof(raised), "%ld", map_count);
		write_file(MAX_MAP_COUNT, raised);
	}
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	point("object_limits", "max_pd and max_cq are kept");
}

/* ---- rings at the memory cgroup's limit ---------------------------------------------------- */

#define CG_RINGS "/sys/fs/cgroup/pfnic-safety-rings"

/*
 * A process alone in a memory cgroup of 32 MiB makes CQs of max_cqe entries (about 3 MiB of
 * ring each, in pages charged one by one) until one is refused. The refusal must be
 * ENOMEM: an allocation the cgroup cannot hold that woke its OOM killer instead would end the
 * process itself, the only one there. It reports through a shared page (a pipe's write would
 * charge a page of its own) and waits while the cgroup's limit is lifted, so that destroying
 * its CQs and exiting cannot meet the limit either.
 */
static void c_ring_limits(void)
{
	volatile long *shared = mmap(NULL, PG, PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	enum { MADE, ERR, STATE };	/* STATE: 0 running, 1 refused, 2 limit lifted */
	int status = 0;
	double t0;
	pid_t pid;

	if (shared == MAP_FAILED)
		bail("mmap: %s", strerror(errno));
	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK))
		sh("mount -t cgroup2 cgroup2 /sys/fs/cgroup");
	if (sh("mkdir -p " CG_RINGS " && echo +memory > /sys/fs/cgroup/cgroup.subtree_control && "
	       "echo 32M > " CG_RINGS "/memory.max"))
		bail("cannot make the memory cgroup " CG_RINGS);
	pid = fork();
	if (pid == 0) {
		struct ibv_cq **cqs = calloc(4096, sizeof(*cqs));
		struct ibv_context *ctx;
		struct ibv_device_attr da;
		long n = 0;

		if (!cqs || write_file(CG_RINGS "/cgroup.procs", "0"))
			_exit(3);
		ctx = open_device_named(g.dev);
		if (ibv_query_device(ctx, &da))
			_exit(3);
		while (n < 4096 && (cqs[n] = ibv_create_cq(ctx, da.max_cqe, NULL, NULL, 0)))
			n++;
		shared[ERR] = n < 4096 ? errno : 0;
		shared[MADE] = n;
		shared[STATE] = 1;
		while (shared[STATE] != 2)
			usleep(1000);
		while (n--)
			ibv_destroy_cq(cqs[n]);
		ibv_close_device(ctx);
		_exit(0);
	}
	if (pid < 0)
		bail("fork: %s", strerror(errno));
	t0 = now();
	while (shared[STATE] != 1 && now() - t0 < 120 && waitpid(pid, &status, WNOHANG) == 0)
		usleep(10000);
	if (shared[STATE] == 1) {
		diag("in a 32 MiB memory cgroup: %ld CQs of max_cqe entries, then %s", shared[MADE],
		     strerror(shared[ERR]));
		write_file(CG_RINGS "/memory.max", "max");
		shared[STATE] = 2;
		waitpid(pid, &status, 0);
		EXPECT(shared[ERR] == ENOMEM, "the CQ was refused with %s, not ENOMEM",
		       strerror(shared[ERR]));
		EXPECT(shared[MADE] >= 1, "not one CQ fit in 32 MiB");
		EXPECT(WIFEXITED(status) && !WEXITSTATUS(status), "the process failed after its "
		       "CQs were refused (status %#x)", status);
	} else if (WIFSIGNALED(status)) {
		EXPECT(0, "the process was ended by signal %d (%s) while making CQs: the "
		       "allocation the cgroup could not hold woke its OOM killer instead of failing "
		       "with ENOMEM", WTERMSIG(status), strsignal(WTERMSIG(status)));
	} else {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		EXPECT(0, "the process neither had a CQ refused nor ended in 120 s (status %#x)",
		       status);
	}
	rmdir(CG_RINGS);
	munmap((void *)shared, PG);
	point("ring_limits", "a CQ ring the memory cgroup cannot hold is refused with ENOMEM, "
	      "and the OOM killer ends nobody");
}

/* ---- main ----------------------------------------------------------------------------------- */

static void c_flush_read(void) { c_flush(0); }
static void c_flush_recv(void) { c_flush(1); }

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{ "fault_reset", c_fault_reset }, { "flush_read", c_flush_read },
	{ "flush_recv", c_flush_recv }, { "dirty_shmem", c_dirty_shmem },
	{ "dirty_file", c_dirty_file }, { "qpn_reuse", c_qpn_reuse }, { "netns", c_netns },
	{ "progress", c_progress }, { "msg_size", c_msg_size }, { "rnr_timer", c_rnr_timer },
	{ "ack_timeout", c_ack_timeout },
	{ "limits", c_limits }, { "object_limits", c_object_limits },
	{ "ring_limits", c_ring_limits },
};
#define NCASES (sizeof(cases) / sizeof(*cases))

static bool listed(const char *list_arg, const char *name)
{
	char list[256], *save, *tok;

	snprintf(list, sizeof(list), "%s", list_arg);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (!strcmp(tok, name))
			return true;
	return false;
}

static bool selected(const char *name)
{
	return (!g.only || listed(g.only, name)) && (!g.skip || !listed(g.skip, name));
}

static bool take_opt(int opt, const char *arg)
{
	if (opt == 'o')
		g.only = arg;
	else if (opt == 's')
		g.skip = arg;
	else
		return false;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = { { "only", required_argument, NULL, 'o' },
					    { "skip", required_argument, NULL, 's' }, { NULL } };
	struct ibv_port_attr pa;
	struct ibv_context *ctx;
	int planned = 0;

	vt_args(argc, argv, "pfnic_safety -d DEVICE [-g GID_INDEX] [--only NAME[,...]] [--skip NAME[,...]]",
		&g.dev, &g.gidx, "o:s:", lo, take_opt);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < NCASES; i++)
		planned += selected(cases[i].name);
	printf("TAP version 13\n1..%d\n", planned);
	ctx = open_device_named(g.dev);
	if (ibv_query_port(ctx, 1, &pa))
		bail("ibv_query_port: %s", strerror(errno));
	g.lid = pa.lid;
	ibv_close_device(ctx);
	for (size_t i = 0; i < NCASES; i++) {
		double t0 = now();

		if (!selected(cases[i].name))
			continue;
		cases[i].fn();
		diag("%s took %.1f s", cases[i].name, now() - t0);
	}
	diag("%d of %d failed", g.failed, g.num);
	return g.failed ? 1 : 0;
}
