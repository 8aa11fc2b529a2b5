// SPDX-License-Identifier: GPL-2.0-only
/*
 * regcache_churn: the registration cache (provider/regcache.h) under memory churn, every
 * byte checked. Prints TAP version 13.
 *
 *   regcache_churn -d DEVICE [-g GID_INDEX] [-n ITERATIONS] [--seed N] [--ignore-changes]
 *
 * Needs /dev/ummunotify (ummunotify.ko: test/vm/guest ummunotify) and an RDMA device whose
 * port is active (rxe: test/vm/guest rxe).
 *
 * Two RC QPs of DEVICE, connected to each other in this process, move data with RDMA WRITE
 * (QP 0's local buffer to QP 1's side) and RDMA READ (QP 1's side into QP 0's local buffer)
 * between buffers whose MRs come from one cache (pinned MRs, at most CACHE_ENTRIES cached),
 * asked for each transfer: half the time for the exact range moved, half for the whole
 * buffer. Meanwhile the program changes the memory behind them, as a real program would:
 * munmap + mmap in the same place (brk shrunk and grown again, shmdt + shmat of a new
 * segment in the same place), mremap (two buffers swap places; a buffer shrunk and grown
 * back), MADV_DONTNEED of part of a buffer, mmap(MAP_FIXED) over part of one; every change
 * writes new contents that differ from the old at every byte. Which operation, which
 * buffers, offsets and lengths are drawn from a seeded generator (the seed is printed;
 * --seed repeats a run). Offsets are never page-aligned and most transfers cross pages.
 *
 * The program keeps a model of every buffer. After each transfer it compares every byte of
 * the destination, and GUARD bytes on each side, with the model. A cache that hands out an
 * MR of memory that changed moves data from or to pages the process no longer has there,
 * and those bytes come out wrong.
 *
 * Phases:
 *  1. churn (-n ITERATIONS, default 4000): the cache as it is. Every byte must match; the
 *     cache must have had hits, evictions because memory changed and evictions for room
 *     (so every path ran: with -n below a few hundred, some may not, and that test fails);
 *     an entry held while its memory changed is never returned again and its MR stays
 *     registered until its last put; a forked child gets EPERM; the counters agree with
 *     each other and with the MRs the kernel lists for this process; regcache_flush after
 *     every buffer is gone evicts everything, and regcache_close leaves no MR behind.
 *  2. ignore-changes (a quarter of the iterations, at least 300): the same churn with a
 *     cache opened with REGCACHE_IGNORE_CHANGES (a test-only knob: it ignores what
 *     /dev/ummunotify reports). Mismatches are expected: this phase proves the churn
 *     detects a cache that hands out stale MRs ("ok - the churn detects a cache that
 *     ignores changes" when at least one transfer mismatched).
 * --ignore-changes runs phase 2 alone, for ITERATIONS.
 *
 * Exit status: 0 if every test passed, 1 otherwise, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "regcache.h"
#include "verbs-test.h"

#define PG 4096ul
#define NANON 5				/* anonymous buffers, each HOME bytes */
#define HOME (32 * PG)
#define BRK_LEN (16 * PG)		/* one buffer at the program break */
#define SHM_LEN (24 * PG)		/* one System V shared memory segment */
#define NBUF (NANON + 2)
#define GUARD 64
#define MAX_XFER (3 * PG + 1000)
#define SCR_LEN (MAX_XFER + 2 * GUARD)
#define CACHE_ENTRIES 16
#define MR_ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)
#define DEFAULT_ITERATIONS 4000
#define DIAG_LIMIT 6			/* mismatch reports per phase */

enum kind { K_ANON, K_BRK, K_SHM };
static const char *const kind_names[] = { "anonymous", "brk", "shm" };

struct buf {
	enum kind kind;
	uint8_t *addr;
	size_t len;
	uint8_t *model;		/* what the process must read there */
	/*
	 * Anonymous buffers: cut[p] says a mapping may begin at page p (p > 0). After
	 * mmap(MAP_FIXED) over part of it a buffer is several mappings, and mremap moves or
	 * grows one mapping at a time. A cut where the kernel merged mappings again is
	 * harmless: mremap also takes part of a mapping.
	 */
	bool cut[HOME / PG];
};

enum op {
	OP_WRITE, OP_READ, OP_REMAP, OP_SWAP, OP_RESIZE, OP_DONTNEED, OP_MAPFIXED, OP_HOLD,
	OP_FLUSH, NOPS
};
static const char *const op_names[NOPS] = {
	"RDMA WRITE", "RDMA READ", "unmap+map", "mremap swap", "mremap shrink+grow",
	"MADV_DONTNEED", "mmap MAP_FIXED", "held entry", "flush",
};
/* Out of 100; a third of the operations change memory. */
static const int op_weight[NOPS] = { 38, 25, 9, 4, 4, 8, 6, 4, 2 };

/* One phase's results. */
struct phase {
	const char *name;
	bool ignore;
	struct regcache *rc;
	long ops[NOPS];
	long xfers, bad_xfers;		/* transfers, and those with a wrong byte */
	uint64_t bad_bytes;
	long gets, get_failures, wr_failures;
	long held, held_bad;		/* held-entry checks, and failed ones */
	int diags;
};

static struct {
	const char *dev;
	int gidx;
	uint8_t port;
	long iterations;
	bool ignore_only;
	uint64_t seed, rng;
	bool seed_given;

	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp[2];
	union ibv_gid gid;
	uint16_t lid;
	uint64_t wr_id;

	uint8_t *arena;			/* NANON homes and a spare one, PROT_NONE when free */
	uint8_t *spare;
	struct buf buf[NBUF];
	struct buf scr;			/* where held-entry checks read to; never changed */
	uint8_t *brk_end;		/* the program break the brk buffer ends at */
	bool brk_moved_said, shm_missing;

	int num, failed;
} g = { .gidx = 1, .port = 1, .iterations = DEFAULT_ITERATIONS };

/* ---- TAP ---------------------------------------------------------------------------------- */

static void point(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void point(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d - ", ok ? "ok" : "not ok", ++g.num);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	g.failed += !ok;
}

/* ---- random ------------------------------------------------------------------------------- */

static uint64_t rnd(void)
{
	uint64_t x = (g.rng += 0x9e3779b97f4a7c15ull);

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static size_t below(size_t n)
{
	return (size_t)(rnd() % n);
}

/*
 * Writes @n new bytes to @dst and to @model, each differing from what @model held there and
 * from @avoid[k] (if not NULL): new contents differ from the old at every byte, and a lost
 * transfer cannot leave the expected bytes behind.
 */
static void fill(uint8_t *dst, uint8_t *model, size_t n, const uint8_t *avoid)
{
	uint64_t v = 0;

	for (size_t k = 0; k < n; k++) {
		if ((k & 7) == 0)
			v = rnd();
		uint8_t b = (uint8_t)(v >> ((k & 7) * 8));

		/* b -> 5b + 1 (mod 256) visits every value: at most 2 steps */
		while (b == model[k] || (avoid && b == avoid[k]))
			b = (uint8_t)(b * 5 + 1);
		dst[k] = model[k] = b;
	}
}

/* ---- verbs --------------------------------------------------------------------------------- */

static void qps_destroy(void)
{
	for (int i = 0; i < 2; i++) {
		int rc = g.qp[i] ? ibv_destroy_qp(g.qp[i]) : 0;

		if (rc)
			diag("ibv_destroy_qp: %s", strerror(rc));
		g.qp[i] = NULL;
	}
}

/* Two RC QPs on one CQ, each connected to the other through the port's GID. */
static void qps_create(void)
{
	uint32_t psn[2];

	for (int i = 0; i < 2; i++) {
		struct ibv_qp_init_attr ia = {
			.send_cq = g.cq, .recv_cq = g.cq, .qp_type = IBV_QPT_RC,
			.cap = { .max_send_wr = 4, .max_recv_wr = 1, .max_send_sge = 1,
				 .max_recv_sge = 1 },
		};

		g.qp[i] = ibv_create_qp(g.pd, &ia);
		if (!g.qp[i])
			bail("ibv_create_qp(RC): %s", strerror(errno));
		psn[i] = (uint32_t)(rnd() & 0xffffff);
	}
	for (int i = 0; i < 2; i++) {
		const struct vt_rc c = {
			.port = g.port, .access = MR_ACCESS, .dest_qpn = g.qp[1 - i]->qp_num,
			.rq_psn = psn[1 - i], .sq_psn = psn[i], .min_rnr_timer = 12,
			.rnr_retry = 7, .dgid = g.gid, .sgid_index = (uint8_t)g.gidx,
			.dlid = g.lid,
		};
		const char *step = "";
		int s = IBV_QPS_RESET, rc = vt_rc_bring_up(g.qp[i], &c, &s, IBV_QPS_RTS, &step);

		if (rc)
			bail("ibv_modify_qp(%s) of QP %d: %s", step, i, strerror(rc));
	}
}

static void setup_verbs(void)
{
	static const uint8_t zero[16];
	struct ibv_port_attr pa;

	g.ctx = open_device_named(g.dev);
	if (ibv_query_port(g.ctx, g.port, &pa))
		bail("ibv_query_port(%s, %u): %s", g.dev, g.port, strerror(errno));
	if (pa.state != IBV_PORT_ACTIVE)
		bail("port %u of %s is %s, not active", g.port, g.dev,
		     ibv_port_state_str(pa.state));
	g.lid = pa.lid;
	if (ibv_query_gid(g.ctx, g.port, g.gidx, &g.gid))
		bail("ibv_query_gid(%s, port %u, index %d): %s", g.dev, g.port, g.gidx,
		     strerror(errno));
	if (memcmp(g.gid.raw, zero, sizeof(zero)) == 0)
		bail("GID index %d of %s port %u is empty", g.gidx, g.dev, g.port);
	g.pd = ibv_alloc_pd(g.ctx);
	if (!g.pd)
		bail("ibv_alloc_pd: %s", strerror(errno));
	g.cq = ibv_create_cq(g.ctx, 8, NULL, NULL, 0);
	if (!g.cq)
		bail("ibv_create_cq: %s", strerror(errno));
	qps_create();
}

/*
 * RDMA WRITE (local @laddr to remote @raddr) or READ (remote @raddr to local @laddr) on
 * QP 0, waited for. On failure the QPs are replaced (QP 0 is in the error state).
 * Return: 0, or -1 (said why).
 */
static int rdma(bool read, struct ibv_mr *lmr, const void *laddr, struct ibv_mr *rmr,
		const void *raddr, uint32_t len)
{
	struct ibv_sge sge = { .addr = (uintptr_t)laddr, .length = len, .lkey = lmr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = ++g.wr_id, .sg_list = &sge, .num_sge = 1,
		.opcode = read ? IBV_WR_RDMA_READ : IBV_WR_RDMA_WRITE,
		.send_flags = IBV_SEND_SIGNALED,
	}, *badwr;
	const char *what = read ? "RDMA READ" : "RDMA WRITE";
	double deadline = now() + 30;
	struct ibv_wc wc;
	int rc, n;

	wr.wr.rdma.remote_addr = (uintptr_t)raddr;
	wr.wr.rdma.rkey = rmr->rkey;
	rc = ibv_post_send(g.qp[0], &wr, &badwr);
	if (rc) {
		diag("%s: ibv_post_send: %s", what, strerror(rc));
		goto reset;
	}
	while ((n = ibv_poll_cq(g.cq, 1, &wc)) == 0) {
		if (now() > deadline) {
			diag("%s of %u bytes: no completion within 30 s", what, len);
			goto reset;
		}
	}
	if (n < 0) {
		diag("%s: ibv_poll_cq failed (%d)", what, n);
		goto reset;
	}
	if (wc.status != IBV_WC_SUCCESS || wc.wr_id != wr.wr_id) {
		diag("%s of %u bytes (local %p lkey 0x%x, remote %p rkey 0x%x): completion "
		     "status %s, wr_id %" PRIu64 " (posted %" PRIu64 ")", what, len, laddr,
		     lmr->lkey, raddr, rmr->rkey, ibv_wc_status_str(wc.status), wc.wr_id,
		     wr.wr_id);
		goto reset;
	}
	return 0;
reset:
	qps_destroy();
	while (ibv_poll_cq(g.cq, 1, &wc) > 0)
		;
	qps_create();
	return -1;
}

/* ---- buffers ---------------------------------------------------------------------------- */

static uint8_t *home(int i)
{
	return g.arena + (size_t)i * HOME;
}

/* Anonymous private memory at @addr, which must be free (not even reserved). */
static void map_anon_at(uint8_t *addr, size_t len, const char *why)
{
	void *p = mmap(addr, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p != addr)
		bail("%s: mmap of %zu bytes at %p: %s", why, len, (void *)addr,
		     p == MAP_FAILED ? strerror(errno) : "got another address");
}

/* Reserves @len bytes at @addr (free memory) again, so that no other mapping lands there. */
static void reserve_at(uint8_t *addr, size_t len)
{
	void *p = mmap(addr, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);

	if (p != addr)
		bail("reserving %zu bytes at %p: %s", len, (void *)addr,
		     p == MAP_FAILED ? strerror(errno) : "got another address");
}

static void model_alloc(struct buf *b)
{
	b->model = calloc(1, b->len);
	if (!b->model)
		bail("out of memory for a buffer's model");
}

/* The brk buffer: BRK_LEN bytes at the program break, page-aligned. */
static void brk_make(struct buf *b)
{
	uint8_t *cur = sbrk(0);
	size_t pad;
	void *blocks[64];
	int n = 0;

	/*
	 * malloc moves the break when its heap is full; it could then never shrink again.
	 * Make it grow its heap now, by M_TOP_PAD, which leaves it room for the whole run.
	 */
	while (sbrk(0) == cur && n < 64 && (blocks[n] = malloc(64 << 10)))
		n++;
	while (n)
		free(blocks[--n]);
	cur = sbrk(0);
	pad = (PG - (uintptr_t)cur % PG) % PG;

	if (cur == (void *)-1 || sbrk(pad + BRK_LEN) != cur)
		bail("sbrk(%zu): %s", pad + BRK_LEN, strerror(errno));
	b->addr = cur + pad;
	g.brk_end = b->addr + BRK_LEN;
}

/* A new System V segment attached at @addr (NULL: anywhere), removed once detached. */
static uint8_t *shm_attach(uint8_t *addr)
{
	int id = shmget(IPC_PRIVATE, SHM_LEN, IPC_CREAT | 0600);
	void *p;

	if (id < 0)
		return NULL;
	p = shmat(id, addr, 0);
	shmctl(id, IPC_RMID, NULL);
	if (p == (void *)-1)
		return NULL;
	if (addr && p != addr)
		bail("shmat at %p gave %p", (void *)addr, p);
	return p;
}

static void buffers_create(void)
{
	g.arena = mmap(NULL, (NANON + 1) * HOME, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (g.arena == MAP_FAILED)
		bail("mmap of the buffers' address range: %s", strerror(errno));
	g.spare = home(NANON);
	for (int i = 0; i < NANON; i++) {
		struct buf *b = &g.buf[i];

		*b = (struct buf){ .kind = K_ANON, .addr = home(i), .len = HOME };
		munmap(b->addr, b->len);
		map_anon_at(b->addr, b->len, "buffer");
	}
	g.buf[NANON] = (struct buf){ .kind = K_BRK, .len = BRK_LEN };
	g.buf[NANON + 1] = (struct buf){ .kind = K_SHM, .len = SHM_LEN };
	g.buf[NANON + 1].addr = shm_attach(NULL);
	if (!g.buf[NANON + 1].addr) {
		/* a kernel without System V IPC: one more anonymous buffer */
		if (!g.shm_missing)
			diag("no System V shared memory (%s): an anonymous buffer instead",
			     strerror(errno));
		g.shm_missing = true;
		g.buf[NANON + 1].kind = K_ANON;
		g.buf[NANON + 1].addr = mmap(NULL, SHM_LEN, PROT_READ | PROT_WRITE,
					     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (g.buf[NANON + 1].addr == MAP_FAILED)
			bail("mmap: %s", strerror(errno));
	}
	for (int i = 0; i < NBUF; i++)
		model_alloc(&g.buf[i]);
	brk_make(&g.buf[NANON]);
	for (int i = 0; i < NBUF; i++)
		fill(g.buf[i].addr, g.buf[i].model, g.buf[i].len, NULL);
	g.scr = (struct buf){ .kind = K_ANON, .len = SCR_LEN };
	g.scr.addr = mmap(NULL, SCR_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	if (g.scr.addr == MAP_FAILED)
		bail("mmap: %s", strerror(errno));
	model_alloc(&g.scr);
	fill(g.scr.addr, g.scr.model, g.scr.len, NULL);
}

/* Unmaps every buffer (the brk one by lowering the break, if nothing went above it). */
static void buffers_destroy(void)
{
	for (int i = 0; i < NBUF; i++) {
		struct buf *b = &g.buf[i];

		if (b->kind == K_SHM)
			shmdt(b->addr);
		else if (b->kind == K_BRK && sbrk(0) == g.brk_end)
			sbrk(-(intptr_t)b->len);
		else if (b->kind == K_BRK)
			madvise(b->addr, b->len, MADV_DONTNEED);
		else if (i >= NANON)
			munmap(b->addr, b->len);
		free(b->model);
	}
	munmap(g.arena, (NANON + 1) * HOME);
	munmap(g.scr.addr, g.scr.len);
	free(g.scr.model);
}

/* ---- checks --------------------------------------------------------------------------------- */

/*
 * Compares [off, off + n) of @b and GUARD bytes on each side with the model. Mismatches
 * are counted, reported (a few per phase), and taken into the model, so that one wrong
 * transfer is not reported again by the next that looks at the same bytes.
 */
static bool check_range(struct phase *ph, struct buf *b, size_t off, size_t n,
			const char *what)
{
	size_t from = off > GUARD ? off - GUARD : 0;
	size_t to = off + n + GUARD < b->len ? off + n + GUARD : b->len;
	size_t bad = 0, first = 0, zeros = 0;

	if (!memcmp(b->addr + from, b->model + from, to - from))
		return true;
	for (size_t k = from; k < to; k++) {
		if (b->addr[k] == b->model[k])
			continue;
		if (!bad++)
			first = k;
		zeros += b->addr[k] == 0;
	}
	ph->bad_bytes += bad;
	if (ph->diags++ < DIAG_LIMIT)
		diag("%s: %s: %zu bytes of %zu wrong (%s buffer at %p, range [%zu, %zu) + %u guard "
		     "bytes); first at offset %zu (page %zu + %zu, %s the range): 0x%02x, expected "
		     "0x%02x; %zu of the wrong bytes are 0", ph->name, what, bad, to - from,
		     kind_names[b->kind], (void *)b->addr, off, off + n, GUARD, first, first / PG,
		     first % PG, first < off || first >= off + n ? "outside" : "inside",
		     b->addr[first], b->model[first], zeros);
	memcpy(b->model + from, b->addr + from, to - from);
	return false;
}

/* An MR from the cache for [off, off + len) of @b: for that range, or for all of @b. */
static struct ibv_mr *cache_get(struct phase *ph, struct buf *b, size_t off, size_t len)
{
	bool whole = rnd() & 1;
	struct ibv_mr *mr = regcache_get(ph->rc, whole ? b->addr : b->addr + off,
					 whole ? b->len : len);

	ph->gets++;
	if (!mr) {
		ph->get_failures++;
		diag("%s: regcache_get(%p, %zu) of the %s buffer at %p: %s", ph->name,
		     whole ? (void *)b->addr : (void *)(b->addr + off), whole ? b->len : len,
		     kind_names[b->kind], (void *)b->addr, strerror(errno));
	}
	return mr;
}

/* An offset for @len bytes in @b, not page-aligned unless the buffer leaves no choice. */
static size_t pick_offset(const struct buf *b, size_t len)
{
	size_t off = below(b->len - len + 1);

	if (off % PG == 0)
		off = off + 1 <= b->len - len ? off + 1 : off - 1;
	return off;
}

/*
 * New bytes written by the CPU into @src, moved by the device into @dst (RDMA WRITE from
 * src on QP 0's side, or RDMA READ of src from QP 1's side), every byte checked.
 */
static void transfer(struct phase *ph, bool read)
{
	int si = (int)below(NBUF), di = (int)below(NBUF - 1);
	struct buf *src, *dst;
	struct ibv_mr *smr, *dmr;
	size_t len, soff, doff;

	di += di >= si;
	src = &g.buf[si];
	dst = &g.buf[di];
	len = 1 + below(MAX_XFER);
	soff = pick_offset(src, len);
	doff = pick_offset(dst, len);
	fill(src->addr + soff, src->model + soff, len, dst->model + doff);

	smr = cache_get(ph, src, soff, len);
	dmr = smr ? cache_get(ph, dst, doff, len) : NULL;
	if (smr && dmr) {
		int rc = read ? rdma(true, dmr, dst->addr + doff, smr, src->addr + soff, len) :
				rdma(false, smr, src->addr + soff, dmr, dst->addr + doff, len);

		ph->wr_failures += rc != 0;
	}
	regcache_put(ph->rc, smr);
	regcache_put(ph->rc, dmr);
	memcpy(dst->model + doff, src->model + soff, len);
	ph->xfers++;
	ph->bad_xfers += !check_range(ph, dst, doff, len, read ? "RDMA READ" : "RDMA WRITE");
}

/* ---- changes to the memory ---------------------------------------------------------------- */

/* Buffer @i unmapped and mapped anew in the same place (the brk and shm ones their way). */
static void remap(int i)
{
	struct buf *b = &g.buf[i];

	switch (b->kind) {
	case K_ANON:
		if (munmap(b->addr, b->len))
			bail("munmap: %s", strerror(errno));
		map_anon_at(b->addr, b->len, "munmap + mmap");
		memset(b->cut, 0, sizeof(b->cut));
		break;
	case K_BRK:
		if (sbrk(0) != g.brk_end) {
			/* malloc moved the break above the buffer: it cannot shrink */
			if (!g.brk_moved_said)
				diag("the program break moved above the brk buffer: it is "
				     "dropped with MADV_DONTNEED instead");
			g.brk_moved_said = true;
			if (madvise(b->addr, b->len, MADV_DONTNEED))
				bail("madvise: %s", strerror(errno));
			break;
		}
		if (sbrk(-(intptr_t)b->len) == (void *)-1 || sbrk(b->len) != b->addr)
			bail("lowering and raising the break by %zu bytes: %s", b->len,
			     strerror(errno));
		break;
	case K_SHM:
		if (shmdt(b->addr))
			bail("shmdt: %s", strerror(errno));
		if (!shm_attach(b->addr))
			bail("shmget + shmat of %zu bytes at %p: %s", b->len, (void *)b->addr,
			     strerror(errno));
		break;
	}
	fill(b->addr, b->model, b->len, NULL);
}

/* The end of the mapping of @b that begins at byte @from. */
static size_t mapping_end(const struct buf *b, size_t from)
{
	size_t p = from / PG + 1;

	while (p < b->len / PG && !b->cut[p])
		p++;
	return p * PG;
}

/* Moves every mapping of @b from @from to the same offset at @to. */
static void move_mappings(const struct buf *b, uint8_t *from, uint8_t *to)
{
	for (size_t s = 0, e; s < b->len; s = e) {
		e = mapping_end(b, s);
		if (mremap(from + s, e - s, e - s, MREMAP_MAYMOVE | MREMAP_FIXED, to + s) != to + s)
			bail("mremap of %zu bytes from %p to %p: %s", e - s, (void *)(from + s),
			     (void *)(to + s), strerror(errno));
	}
}

/* Two anonymous buffers swap places with mremap (each keeps its pages and contents). */
static void swap(void)
{
	int i = (int)below(NANON), j = (int)below(NANON - 1);
	struct buf *a, *b;
	uint8_t *pa, *pb;

	j += j >= i;
	a = &g.buf[i];
	b = &g.buf[j];
	pa = a->addr;
	pb = b->addr;
	/* a to the spare home, b to a's, a to b's; the spare is reserved again */
	move_mappings(a, pa, g.spare);
	move_mappings(b, pb, pa);
	move_mappings(a, g.spare, pb);
	reserve_at(g.spare, HOME);
	a->addr = pb;
	b->addr = pa;
}

/* An anonymous buffer shrunk by mremap, then grown back in place: new pages at the end. */
static void resize(void)
{
	struct buf *b = &g.buf[below(NANON)];
	size_t keep = PG * (1 + below(b->len / PG - 1)), last = 0;

	/* the last mapping that stays is the one that grows back */
	for (size_t p = 1; p < keep / PG; p++)
		if (b->cut[p])
			last = p * PG;
	if (mremap(b->addr, b->len, keep, 0) != b->addr ||
	    mremap(b->addr + last, keep - last, b->len - last, 0) != b->addr + last)
		bail("mremap of %p from %zu to %zu bytes and back: %s", (void *)b->addr, b->len,
		     keep, strerror(errno));
	for (size_t p = keep / PG; p < b->len / PG; p++)
		b->cut[p] = false;
	/* the new tail reads 0 */
	memset(b->model + keep, 0, b->len - keep);
	fill(b->addr + keep, b->model + keep, b->len - keep, NULL);
}

/* A page-aligned part of @b: [*off, *off + *len). */
static void pick_pages(const struct buf *b, size_t *off, size_t *len)
{
	size_t pages = b->len / PG, first = below(pages), n = 1 + below(pages - first);

	*off = first * PG;
	*len = n * PG;
}

/* MADV_DONTNEED of part of a buffer, then new contents there. */
static void dontneed(void)
{
	struct buf *b = &g.buf[below(NBUF)];
	size_t off, len;

	pick_pages(b, &off, &len);
	if (madvise(b->addr + off, len, MADV_DONTNEED))
		bail("madvise(MADV_DONTNEED): %s", strerror(errno));
	/* anonymous memory reads 0 now; shared memory keeps its pages */
	if (b->kind != K_SHM)
		memset(b->model + off, 0, len);
	fill(b->addr + off, b->model + off, len, NULL);
}

/* mmap(MAP_FIXED) of new anonymous memory over part of an anonymous buffer. */
static void mapfixed(void)
{
	struct buf *b = &g.buf[below(NANON)];
	size_t off, len;

	pick_pages(b, &off, &len);
	if (mmap(b->addr + off, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != b->addr + off)
		bail("mmap(MAP_FIXED) over %zu bytes at %p: %s", len, (void *)(b->addr + off),
		     strerror(errno));
	b->cut[off / PG] = true;
	if (off + len < b->len)
		b->cut[(off + len) / PG] = true;
	memset(b->model + off, 0, len);
	fill(b->addr + off, b->model + off, len, NULL);
}

/*
 * An entry held by the caller while its memory changes: the cache must not return it
 * again (a new MR for the new pages), and its MR must stay registered, on the old pages,
 * until its last put. Reads through both MRs into the scratch buffer and checks each.
 */
static void hold(struct phase *ph)
{
	int i = (int)below(NANON);
	struct buf *b = &g.buf[i];
	size_t len = 1 + below(MAX_XFER), off = pick_offset(b, len);
	struct ibv_mr *old_mr, *new_mr, *smr;
	uint8_t *old = malloc(len);
	bool ok = true;

	if (!old)
		bail("out of memory");
	memcpy(old, b->model + off, len);
	old_mr = regcache_get(ph->rc, b->addr, b->len);
	ph->gets++;
	if (!old_mr) {
		ph->get_failures++;
		diag("%s: regcache_get of a whole buffer: %s", ph->name, strerror(errno));
		free(old);
		return;
	}
	remap(i);
	new_mr = cache_get(ph, b, off, len);
	smr = cache_get(ph, &g.scr, GUARD, len);
	if (new_mr && smr && !ph->ignore) {
		ph->held++;
		if (new_mr == old_mr) {
			diag("%s: regcache_get returned the MR it handed out before the memory "
			     "changed (lkey 0x%x)", ph->name, old_mr->lkey);
			ok = false;
		}
		/* the old MR reads the old pages, which it keeps pinned until put */
		if (!rdma(true, smr, g.scr.addr + GUARD, old_mr, b->addr + off, len)) {
			memcpy(g.scr.model + GUARD, old, len);
			ok &= check_range(ph, &g.scr, GUARD, len, "RDMA READ through a held stale MR");
		} else {
			diag("%s: RDMA READ through a held MR whose memory changed failed: was it "
			     "deregistered before its last put?", ph->name);
			ok = false;
		}
		ph->held_bad += !ok;
	}
	/* the MR the cache gives now reads the new contents */
	if (new_mr && smr) {
		ph->wr_failures += rdma(true, smr, g.scr.addr + GUARD, new_mr, b->addr + off,
					len) != 0;
		memcpy(g.scr.model + GUARD, b->model + off, len);
		ph->xfers++;
		ph->bad_xfers += !check_range(ph, &g.scr, GUARD, len,
					      "RDMA READ after the memory changed under a held MR");
	}
	regcache_put(ph->rc, smr);
	regcache_put(ph->rc, new_mr);
	regcache_put(ph->rc, old_mr);
	free(old);
}

/* ---- what the kernel lists ------------------------------------------------------------------ */

/* MRs of this process on the device as `rdma resource show mr` lists them, or -1. */
static long kernel_mrs(void)
{
	char cmd[128], line[1024], pid[32];
	long n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "rdma resource show mr dev %s 2>/dev/null", g.dev);
	snprintf(pid, sizeof(pid), " pid %ld ", (long)getpid());
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		size_t l = strlen(line);

		/* one record a line; "pid N" is followed by "comm" */
		if (l && line[l - 1] == '\n')
			line[l - 1] = ' ';
		n += strstr(line, pid) != NULL;
	}
	return pclose(f) == 0 ? n : -1;
}

/* ---- fork -------------------------------------------------------------------------------- */

/*
 * A forked child: regcache_get and regcache_flush fail with EPERM, regcache_close frees its
 * copy; then the parent's cache must still work (checked by the transfers after).
 */
static bool fork_check(struct phase *ph)
{
	struct regcache_stats before, after;
	int status;
	pid_t pid;

	regcache_stats(ph->rc, &before);
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		diag("fork: %s", strerror(errno));
		return false;
	}
	if (pid == 0) {
		int code = 0;

		errno = 0;
		if (regcache_get(ph->rc, g.buf[0].addr, 1) || errno != EPERM)
			code |= 1;
		errno = 0;
		if (regcache_flush(ph->rc) != -1 || errno != EPERM)
			code |= 2;
		if (regcache_close(ph->rc))
			code |= 4;
		_exit(code);
	}
	if (waitpid(pid, &status, 0) != pid) {
		diag("waitpid: %s", strerror(errno));
		return false;
	}
	regcache_stats(ph->rc, &after);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		diag("child after fork: %s%s%s (status 0x%x)",
		     WIFEXITED(status) && WEXITSTATUS(status) & 1 ? "regcache_get did not fail "
		     "with EPERM; " : "",
		     WIFEXITED(status) && WEXITSTATUS(status) & 2 ? "regcache_flush did not "
		     "fail with EPERM; " : "",
		     WIFEXITED(status) && WEXITSTATUS(status) & 4 ? "regcache_close failed" : "",
		     status);
		return false;
	}
	if (after.entries != before.entries || after.deregistrations != before.deregistrations) {
		diag("the child's regcache_close changed the parent's cache: entries %" PRIu64
		     " -> %" PRIu64 ", deregistrations %" PRIu64 " -> %" PRIu64, before.entries,
		     after.entries, before.deregistrations, after.deregistrations);
		return false;
	}
	return true;
}

/* ---- phases ------------------------------------------------------------------------------ */

static enum op pick_op(void)
{
	int r = (int)below(100);

	for (int o = 0; o < NOPS; o++) {
		if (r < op_weight[o])
			return o;
		r -= op_weight[o];
	}
	return OP_WRITE;
}

static void churn(struct phase *ph, long iterations, bool *forked_ok)
{
	for (long it = 0; it < iterations; it++) {
		enum op op = pick_op();

		ph->ops[op]++;
		switch (op) {
		case OP_WRITE:
		case OP_READ:
			transfer(ph, op == OP_READ);
			break;
		case OP_REMAP:
			remap((int)below(NBUF));
			break;
		case OP_SWAP:
			swap();
			break;
		case OP_RESIZE:
			resize();
			break;
		case OP_DONTNEED:
			dontneed();
			break;
		case OP_MAPFIXED:
			mapfixed();
			break;
		case OP_HOLD:
			hold(ph);
			break;
		case OP_FLUSH:
			if (regcache_flush(ph->rc)) {
				diag("%s: regcache_flush: %s", ph->name, strerror(errno));
				ph->get_failures++;
			}
			break;
		case NOPS:
			break;
		}
		if (forked_ok && it == iterations / 2)
			*forked_ok = fork_check(ph);
	}
}

static void stats_diag(const struct phase *ph, const struct regcache_stats *s, double secs)
{
	char ops[400];
	int n = 0;

	for (int o = 0; o < NOPS; o++)
		n += snprintf(ops + n, sizeof(ops) - n, "%s%s %ld", o ? ", " : "", op_names[o],
			      ph->ops[o]);
	diag("%s: %.1f s; operations: %s", ph->name, secs, ops);
	diag("%s: %ld transfers, %ld wrong (%" PRIu64 " bytes); cache: %" PRIu64 " hits, %"
	     PRIu64 " misses, %" PRIu64 " evicted because memory changed, %" PRIu64
	     " for room, %" PRIu64 " registrations, %" PRIu64 " deregistrations, %" PRIu64
	     " reads, %" PRIu64 " entries", ph->name, ph->xfers, ph->bad_xfers, ph->bad_bytes,
	     s->hits, s->misses, s->evictions_changed, s->evictions_capacity, s->registrations,
	     s->deregistrations, s->reads, s->entries);
}

static struct regcache *open_cache(unsigned int flags)
{
	struct regcache *rc = regcache_open(g.pd, MR_ACCESS, CACHE_ENTRIES, flags);

	if (!rc && (errno == ENOENT || errno == ENODEV))
		bail("regcache_open: no /dev/ummunotify (%s): load ummunotify.ko first "
		     "(test/vm/guest ummunotify)", strerror(errno));
	if (!rc)
		bail("regcache_open: %s", strerror(errno));
	return rc;
}

/* After regcache_close: the kernel lists no MR of this process. */
static void close_cache(struct phase *ph)
{
	long left;
	int rc = regcache_close(ph->rc);

	ph->rc = NULL;
	left = kernel_mrs();
	if (left < 0)
		point(rc == 0, "%s: regcache_close deregistered every MR # `rdma resource show mr` "
		      "unavailable: only its return value checked", ph->name);
	else
		point(rc == 0 && left == 0, "%s: regcache_close deregistered every MR (%ld left "
		      "listed by the kernel)%s%s", ph->name, left, rc ? ": " : "",
		      rc ? strerror(errno) : "");
}

static void phase_churn(void)
{
	struct phase ph = { .name = "churn" };
	struct regcache_stats s;
	bool forked_ok = false;
	double t0 = now();
	long listed;

	buffers_create();
	ph.rc = open_cache(0);
	churn(&ph, g.iterations, &forked_ok);
	regcache_stats(ph.rc, &s);
	stats_diag(&ph, &s, now() - t0);

	point(!ph.get_failures && !ph.wr_failures, "churn: every regcache_get and regcache_flush "
	      "succeeded (%ld gets) and every work request completed", ph.gets);
	point(ph.xfers && !ph.bad_xfers, "churn: every byte of %ld transfers and the %u guard "
	      "bytes around each as expected (%ld wrong, %" PRIu64 " bytes)", ph.xfers, GUARD,
	      ph.bad_xfers, ph.bad_bytes);
	long whole_bad = 0;

	for (int i = 0; i < NBUF; i++)
		whole_bad += !check_range(&ph, &g.buf[i], 0, g.buf[i].len, "whole buffer at the end");
	point(!whole_bad, "churn: every byte of every buffer matches the model at the end (no "
	      "stray write)");
	point(s.hits && s.evictions_changed && s.evictions_capacity, "churn: the cache hit (%"
	      PRIu64 " hits, %" PRIu64 " misses), evicted entries because their memory changed (%"
	      PRIu64 ") and unused ones for room (%" PRIu64 ")", s.hits, s.misses,
	      s.evictions_changed, s.evictions_capacity);
	point(ph.held && !ph.held_bad, "churn: an entry held while its memory changed was never "
	      "returned again, and its MR kept its old pages until its last put (%ld checks, "
	      "%ld failed)", ph.held, ph.held_bad);
	point(forked_ok, "churn: after fork, the child's regcache_get and regcache_flush fail "
	      "with EPERM, and its regcache_close leaves the parent's cache alone");

	listed = kernel_mrs();
	bool consistent = s.hits + s.misses == (uint64_t)(ph.gets - ph.get_failures) &&
			  s.registrations - s.deregistrations == s.entries && s.in_use == 0 &&
			  !s.dereg_failures && (listed < 0 || listed == (long)s.entries);

	point(consistent, "churn: counters consistent: hits + misses (%" PRIu64 ") == gets that "
	      "succeeded (%ld), registrations - deregistrations (%" PRIu64 ") == entries (%"
	      PRIu64 ") == MRs the kernel lists for this process (%ld%s), none in use (%" PRIu64
	      "), no failed deregistration (%" PRIu64 ")", s.hits + s.misses,
	      ph.gets - ph.get_failures, s.registrations - s.deregistrations, s.entries, listed,
	      listed < 0 ? ": rdma tool unavailable" : "", s.in_use, s.dereg_failures);

	/* every buffer gone: catching up must evict every entry */
	buffers_destroy();
	int frc = regcache_flush(ph.rc);

	regcache_stats(ph.rc, &s);
	point(frc == 0 && s.entries == 0, "churn: regcache_flush after every buffer was unmapped "
	      "evicted every entry (%" PRIu64 " left%s%s)", s.entries, frc ? ", flush: " : "",
	      frc ? strerror(errno) : "");
	close_cache(&ph);
}

static void phase_ignore(long iterations)
{
	struct phase ph = { .name = "ignore-changes", .ignore = true };
	struct regcache_stats s;
	double t0 = now();

	buffers_create();
	ph.rc = open_cache(REGCACHE_IGNORE_CHANGES);
	churn(&ph, iterations, NULL);
	regcache_stats(ph.rc, &s);
	stats_diag(&ph, &s, now() - t0);
	if (ph.bad_xfers)
		point(true, "the churn detects a cache that ignores changes (%ld of %ld transfers "
		      "had wrong bytes, %" PRIu64 " bytes)", ph.bad_xfers, ph.xfers, ph.bad_bytes);
	else
		point(false, "the churn detects a cache that ignores changes: no transfer of %ld "
		      "had a wrong byte, so this test cannot tell a broken cache", ph.xfers);
	buffers_destroy();
	close_cache(&ph);
}

/* ---- main ------------------------------------------------------------------------------- */

static bool take_option(int opt, const char *arg)
{
	char *end;

	switch (opt) {
	case 'n':
		g.iterations = strtol(arg, &end, 0);
		return *arg && !*end && g.iterations > 0;
	case 's':
		g.seed = strtoull(arg, &end, 0);
		g.seed_given = true;
		return *arg && !*end;
	case 'i':
		g.ignore_only = true;
		return true;
	default:
		return false;
	}
}

int main(int argc, char **argv)
{
	static const struct option more[] = {
		{ "iterations", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 's' },
		{ "ignore-changes", no_argument, NULL, 'i' },
		{ 0 },
	};
	double t0 = now();
	int rc;

	vt_args(argc, argv, "regcache_churn -d DEVICE [-g GID_INDEX] [-n ITERATIONS] "
		"[--seed N] [--ignore-changes]", &g.dev, &g.gidx, "n:", more, take_option);
	if (!g.seed_given)
		g.seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(now() * 1e9);
	g.rng = g.seed;

	printf("TAP version 13\n");
	fflush(stdout);
	if (sysconf(_SC_PAGESIZE) != (long)PG)
		bail("page size %ld: this program assumes %lu", sysconf(_SC_PAGESIZE), PG);
	/*
	 * Room at the top of malloc's heap, so that malloc seldom moves the program break
	 * above the brk buffer (which could then no longer shrink), and no trimming.
	 */
	mallopt(M_TOP_PAD, 16 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	diag("seed 0x%016" PRIx64 " (--seed to repeat); %ld iterations%s", g.seed, g.iterations,
	     g.ignore_only ? ", invalidations ignored (--ignore-changes)" : "");
	setup_verbs();

	if (!g.ignore_only) {
		phase_churn();
		phase_ignore(g.iterations / 4 > 300 ? g.iterations / 4 : 300);
	} else {
		phase_ignore(g.iterations);
	}

	qps_destroy();
	ibv_destroy_cq(g.cq);
	rc = ibv_dealloc_pd(g.pd);
	point(rc == 0, "no MR is left on the PD after regcache_close (ibv_dealloc_pd: %s)",
	      rc ? strerror(rc) : "ok");
	ibv_close_device(g.ctx);
	diag("%d of %d failed, %.1f s", g.failed, g.num, now() - t0);
	printf("1..%d\n", g.num);
	return g.failed ? 1 : 0;
}
