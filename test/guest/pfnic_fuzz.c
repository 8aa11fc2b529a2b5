// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_fuzz: random calls at pfnic's whole user surface, to find what makes the kernel oops,
 * warn, leak or lock up (the VM rig fails a guest whose kernel says so; on the debug kernel
 * KASAN, lockdep and kmemleak watch). Prints TAP version 13.
 *
 *   pfnic_fuzz -d DEVICE [-g GID_INDEX] [--seed N] [--calls N] [--threads N] [--log FILE]
 *              [--procs N] [--cgroup DIR] [--skip KIND[,KIND...]]
 *
 * Each call is drawn from one stream seeded by --seed, so a run is replayed by giving its seed
 * and call count again (and shrunk by giving fewer calls, or skipping kinds); with --log every
 * call is written there, one line each, before it is made, so the last line names the call
 * a kernel died in (with --procs, process i logs to FILE.i). The kinds:
 *   verbs    objects through libibverbs, structurally valid, semantically anything: contexts,
 *            PDs, CQs (resized), QPs (RC, UC, UD, XRC INI and TGT, TGT QPs opened by
 *            number) moved to random states with random attributes, SRQs (basic and XRC),
 *            XRC domains (alone or shared by both contexts through a file), AHs, MRs (pinned, ODP, implicit, over memory that is there,
 *            half there, or not) registered, registered again, advised and deregistered in
 *            any order, memory windows (types 1 and 2) bound to any of them and invalidated,
 *            work requests with random opcodes, keys (MRs' and windows'), addresses and
 *            lengths posted and polled; objects destroyed while others still use them,
 *            contexts closed with everything in them
 *   write    raw commands on the uverbs device's write() interface: random command numbers,
 *            lengths and words (bad handles among them), answers into a scratch buffer
 *   ioctl    raw RDMA_VERBS_IOCTL calls: random objects, methods and attributes
 *   events   /dev/pfnic-events opened, read in any size, polled, closed
 *   umn      /dev/ummunotify: every ioctl with random arguments, read, mmap, close
 *   netlink  rdma netlink requests: random commands and attributes
 *   params   the modules' parameters set to random values (test hooks kept small)
 *   memory   the memory under the MRs unmapped, remapped, given back, protected, moved
 *            between NUMA nodes, and the process forked
 * --threads N memory threads churn the same memory meanwhile (their timing is not replayed);
 * --procs N runs N processes, each its own stream (seed + i), against the same device;
 * --cgroup DIR (a cgroup v2 directory with the memory controller on for its children) puts
 * process i in a memory cgroup DIR/fuzzer<i> of its own, with DIR's memory.max shared equally.
 *
 * Exit status: 0 if every call returned (whatever it returned) and everything was released
 * at the end; 1 otherwise; 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/netlink.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/ib_user_ioctl_cmds.h>
#include <linux/capability.h>
#include <rdma/ib_user_verbs.h>
#include <rdma/rdma_netlink.h>
#include <rdma/rdma_user_ioctl.h>

#include "verbs-test.h"
#include "../../driver/uapi/pfnic-events.h"
#include "../../driver/uapi/ummunotify.h"

#define PG 4096ul
#define NSLOT 8		/* objects of each kind at once */
/*
 * The bytes of translation tables one process's MRs may hold at once (8 bytes a page): an
 * ODP MR of a random length can take gigabytes, all charged to the process. Over it, the
 * largest MR goes, so that a long run is not ended by the OOM killer (test/guest/fuzz.sh
 * runs the fuzzers in a memory cgroup, which any allocation at its limit would hit).
 */
#define MR_TABLE_BUDGET (24ull << 20)
#define NAREA 8		/* memory areas */
#define AREA_MAX (64 * PG)
#define SCRATCH (64 * PG)

/* ---- the random stream ---------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t below(uint32_t n)
{
	return n ? (uint32_t)(rnd() % n) : 0;
}

static bool chance(uint32_t one_in)
{
	return below(one_in) == 0;
}

/* A number that is often on an edge: 0, 1, a power of two and its neighbours, all ones. */
static uint64_t edgy(void)
{
	switch (below(6)) {
	case 0:
		return 0;
	case 1:
		return 1;
	case 2:
		return (1ull << below(64)) + (uint64_t)(int)(below(3)) - 1;
	case 3:
		return UINT64_MAX >> below(64);
	case 4:
		return below(4096);
	default:
		return rnd();
	}
}

/* ---- state ---------------------------------------------------------------------------------- */

struct area {
	uint8_t *addr;
	size_t len;
	bool shared;
};

static struct {
	const char *dev;
	int gidx;
	uint64_t seed, calls, done;
	int threads, procs;
	const char *logpath;
	const char *cgroup;	/* --cgroup: the fuzzers' memory cgroups are made under it */
	FILE *log;
	char skip[128];
	char uverbs[64];	/* /dev/infiniband/uverbsN of the device */
	bool two_nodes;

	struct ibv_context *ctx[2];
	struct ibv_pd *pd[NSLOT];
	struct ibv_cq *cq[NSLOT];
	struct ibv_comp_channel *ch[NSLOT];
	struct ibv_qp *qp[NSLOT];
	struct ibv_srq *srq[NSLOT];
	struct ibv_mr *mr[NSLOT];
	uint64_t mr_table[NSLOT];	/* the kernel's table for each MR, as estimated */
	struct ibv_mw *mw[NSLOT];
	struct ibv_ah *ah[NSLOT];
	struct ibv_xrcd *xrcd[NSLOT];
	int xrcd_file;		/* a file both contexts may open an XRC domain by */
	int evfd[NSLOT], umnfd[NSLOT], rawfd[NSLOT];
	void *umnmap[NSLOT];
	struct area area[NAREA];
	pthread_mutex_t area_lock;	/* the area table: the main stream and the churners */
	uint8_t *scratch;
	atomic_bool stop;
	unsigned long counts[16];
} g = { .gidx = 1, .seed = 1, .calls = 10000, .area_lock = PTHREAD_MUTEX_INITIALIZER };

enum kind { K_VERBS, K_WRITE, K_IOCTL, K_EVENTS, K_UMN, K_NETLINK, K_PARAMS, K_MEMORY, NKIND };
static const char *const kind_names[NKIND] = {
	"verbs", "write", "ioctl", "events", "umn", "netlink", "params", "memory",
};
/* how often each kind is drawn, out of the sum */
static const unsigned int kind_weight[NKIND] = { 60, 8, 8, 4, 6, 3, 1, 10 };

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;

	if (!g.log)
		return;
	fprintf(g.log, "%" PRIu64 " ", g.done);
	va_start(ap, fmt);
	vfprintf(g.log, fmt, ap);
	va_end(ap);
	fputc('\n', g.log);
	fflush(g.log);
}

#define CALL(what, expr) ({								\
	logf_("%s", what);								\
	expr;										\
})

/* ---- MRs' tables ---------------------------------------------------------------------------- */

/* Slot @i's MR is new, with a table of @bytes: MRs go, the largest first, to keep the budget. */
static void within_table_budget(unsigned int i, uint64_t bytes)
{
	g.mr_table[i] = bytes;
	for (;;) {
		uint64_t sum = 0;
		unsigned int big = i;

		for (unsigned int k = 0; k < NSLOT; k++) {
			if (!g.mr[k])
				continue;
			sum += g.mr_table[k];
			if (g.mr_table[k] > g.mr_table[big])
				big = k;
		}
		if (sum <= MR_TABLE_BUDGET)
			return;
		if (CALL("dereg_mr (over the table budget)", ibv_dereg_mr(g.mr[big])))
			return;
		g.mr[big] = NULL;
	}
}

/* ---- memory --------------------------------------------------------------------------------- */

/* An address for a buffer: inside an area, across its end, or somewhere else. */
static void pick_range(uint64_t *addr, uint64_t *len)
{
	struct area *a = &g.area[below(NAREA)];
	uint64_t base = (uintptr_t)a->addr, alen = a->len;

	switch (below(8)) {
	case 0:
		*addr = edgy();
		*len = edgy();
		return;
	case 1:
		*addr = (uintptr_t)g.scratch + below(SCRATCH);
		*len = below(SCRATCH);
		return;
	default:
		if (!base || !alen) {
			*addr = (uintptr_t)g.scratch;
			*len = 1 + below(PG);
			return;
		}
		*addr = base + below(alen);
		*len = chance(4) ? alen + below(4 * PG) : 1 + below(base + alen - *addr);
	}
}

static void area_make(struct area *a)
{
	size_t len = (1 + below(AREA_MAX / PG)) * PG;
	bool shared = chance(3);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	a->addr = p;
	a->len = len;
	a->shared = shared;
}

/* Touches [@p, +@n) through the kernel, which returns EFAULT rather than faulting us. */
static void touch(void *p, size_t n)
{
	static int zero = -1;

	if (zero < 0)
		zero = open("/dev/zero", O_RDONLY);
	if (read(zero, p, n) < 0)
		return;
}

/* One change to the memory under the MRs; @r draws from a churner's own stream if given. */
static void memory_op(uint64_t (*r)(void))
{
	unsigned int i = r() % NAREA, op = r() % 10;
	struct area *a = &g.area[i];
	char what[96];

	pthread_mutex_lock(&g.area_lock);
	if (!a->addr) {
		area_make(a);
		pthread_mutex_unlock(&g.area_lock);
		return;
	}
	snprintf(what, sizeof(what), "memory op %u area %u %p+%zu", op, i, a->addr, a->len);
	if (r == rnd)
		logf_("%s", what);
	switch (op) {
	case 0:
		munmap(a->addr, a->len);
		a->addr = NULL;
		break;
	case 1: {
		size_t len = (1 + r() % (AREA_MAX / PG)) * PG;
		void *p = mremap(a->addr, a->len, len, MREMAP_MAYMOVE);

		if (p != MAP_FAILED) {
			a->addr = p;
			a->len = len;
		}
		break;
	}
	case 2:
		madvise(a->addr, a->len, MADV_DONTNEED);
		break;
	case 3:
		madvise(a->addr, a->len, r() % 2 ? MADV_FREE : MADV_PAGEOUT);
		break;
	case 4:
		mprotect(a->addr, a->len, r() % 2 ? PROT_READ : PROT_NONE);
		break;
	case 5:
		mprotect(a->addr, a->len, PROT_READ | PROT_WRITE);
		touch(a->addr, a->len);
		break;
	case 6:
		if (g.two_nodes) {
			void *pages[AREA_MAX / PG];
			int nodes[AREA_MAX / PG], status[AREA_MAX / PG];
			int node = r() % 2;
			size_t n = a->len / PG;

			for (size_t k = 0; k < n; k++) {
				pages[k] = a->addr + k * PG;
				nodes[k] = node;
			}
			syscall(SYS_move_pages, 0, n, pages, nodes, status, 2 /* MPOL_MF_MOVE */);
		}
		break;
	case 7:
		madvise(a->addr, a->len, r() % 2 ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		touch(a->addr, a->len);
		break;
	case 8:
		/* mapped again in place: new pages behind the same addresses */
		mmap(a->addr, a->len, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE |
		     MAP_ANONYMOUS, -1, 0);
		a->shared = false;
		break;
	default:
		touch(a->addr, a->len);
	}
	pthread_mutex_unlock(&g.area_lock);
}

static __thread uint64_t churn_state;

static uint64_t churn_rnd(void)
{
	uint64_t z = (churn_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	return z ^ (z >> 27);
}

static void *churner(void *arg)
{
	churn_state = g.seed * 1000003 + (uintptr_t)arg;
	while (!atomic_load(&g.stop)) {
		memory_op(churn_rnd);
		usleep(churn_rnd() % 2000);
	}
	return NULL;
}

/* fork: the child copies the address space (write-protecting it) and goes */
static void fork_op(void)
{
	pid_t pid;

	logf_("fork");
	pid = fork();
	if (pid == 0) {
		/* a child that touches the MRs' memory, so copy-on-write splits it */
		for (int i = 0; i < NAREA; i++)
			if (g.area[i].addr)
				touch(g.area[i].addr, g.area[i].len);
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

/* ---- verbs ---------------------------------------------------------------------------------- */

static struct ibv_context *any_ctx(void)
{
	struct ibv_context *c = g.ctx[below(2)];

	return c ? c : g.ctx[0] ? g.ctx[0] : g.ctx[1];
}

#define PICK(arr) (arr[below(NSLOT)])

static int access_flags(void)
{
	static const int bits[] = {
		IBV_ACCESS_LOCAL_WRITE, IBV_ACCESS_REMOTE_WRITE, IBV_ACCESS_REMOTE_READ,
		IBV_ACCESS_REMOTE_ATOMIC, IBV_ACCESS_ON_DEMAND, IBV_ACCESS_MW_BIND,
		IBV_ACCESS_ZERO_BASED, IBV_ACCESS_HUGETLB, IBV_ACCESS_RELAXED_ORDERING,
	};
	int f = 0;

	for (size_t i = 0; i < sizeof(bits) / sizeof(*bits); i++)
		if (chance(2))
			f |= bits[i];
	if (chance(20))
		f = (int)rnd();
	return f;
}

static void destroy_slot(int kind, int i);

/* A QP number: often one of ours, else anything. */
static uint32_t some_qpn(void)
{
	struct ibv_qp *qp = PICK(g.qp);

	return qp && chance(2) ? qp->qp_num : (uint32_t)edgy();
}

/*
 * An XRC object in slot @i: an XRC SRQ (of a domain, a PD and a CQ of one context), an INI
 * QP, a TGT QP, or a TGT QP opened by number (ibv_open_qp, most often one of ours).
 */
static void xrc_create(int i)
{
	struct ibv_xrcd *xrcd = PICK(g.xrcd);
	struct ibv_pd *pd = PICK(g.pd);
	struct ibv_cq *cq = PICK(g.cq);
	char what[128];

	switch (below(4)) {
	case 0: {
		struct ibv_srq_init_attr_ex sa = {
			.attr = { .max_wr = chance(8) ? (uint32_t)edgy() : 1 + below(64),
				  .max_sge = chance(8) ? (uint32_t)edgy() : below(33),
				  .srq_limit = below(8) },
			.comp_mask = IBV_SRQ_INIT_ATTR_TYPE | IBV_SRQ_INIT_ATTR_PD |
				     IBV_SRQ_INIT_ATTR_XRCD | IBV_SRQ_INIT_ATTR_CQ,
			.srq_type = IBV_SRQT_XRC, .pd = pd, .xrcd = xrcd, .cq = cq,
		};

		/* libibverbs takes the context from the PD: keep the three in one */
		if (g.srq[i] || !xrcd || !pd || !cq || xrcd->context != pd->context ||
		    cq->context != pd->context)
			break;
		snprintf(what, sizeof(what), "create_srq_ex XRC max_wr %u max_sge %u",
			 sa.attr.max_wr, sa.attr.max_sge);
		g.srq[i] = CALL(what, ibv_create_srq_ex(pd->context, &sa));
		break;
	}
	case 1:
	case 2: {
		bool ini = below(2);
		struct ibv_qp_init_attr_ex qa = {
			.qp_type = ini ? IBV_QPT_XRC_SEND : IBV_QPT_XRC_RECV,
			.comp_mask = ini ? IBV_QP_INIT_ATTR_PD : IBV_QP_INIT_ATTR_XRCD,
			.send_cq = ini ? cq : NULL, .pd = ini ? pd : NULL, .xrcd = ini ? NULL : xrcd,
			.cap = { .max_send_wr = chance(8) ? (uint32_t)edgy() : below(64),
				 .max_send_sge = chance(8) ? (uint32_t)edgy() : below(33),
				 .max_inline_data = chance(4) ? below(256) : 0 },
		};
		struct ibv_context *ctx = ini ? (pd ? pd->context : NULL) :
					  (xrcd ? xrcd->context : NULL);

		if (g.qp[i] || !ctx || (ini && (!cq || cq->context != ctx)))
			break;
		if (chance(8))
			qa.comp_mask |= IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
		snprintf(what, sizeof(what), "create_qp_ex XRC %s", ini ? "INI" : "TGT");
		g.qp[i] = CALL(what, ibv_create_qp_ex(ctx, &qa));
		break;
	}
	default: {
		struct ibv_qp_open_attr oa = {
			.comp_mask = chance(10) ? (uint32_t)rnd() : IBV_QP_OPEN_ATTR_NUM |
				     IBV_QP_OPEN_ATTR_XRCD | IBV_QP_OPEN_ATTR_TYPE,
			.qp_num = some_qpn(), .xrcd = xrcd,
			.qp_type = chance(8) ? (enum ibv_qp_type)below(12) : IBV_QPT_XRC_RECV,
		};

		if (g.qp[i] || !xrcd)
			break;
		snprintf(what, sizeof(what), "open_qp %#x type %d", oa.qp_num, oa.qp_type);
		g.qp[i] = CALL(what, ibv_open_qp(xrcd->context, &oa));
	}
	}
}

static void verbs_create(void)
{
	struct ibv_context *ctx = any_ctx();
	int i = below(NSLOT);
	char what[128];

	if (!ctx)
		return;
	switch (below(11)) {
	case 9: {
		struct ibv_xrcd_init_attr xa = {
			.comp_mask = chance(10) ? (uint32_t)rnd() :
				     IBV_XRCD_INIT_ATTR_FD | IBV_XRCD_INIT_ATTR_OFLAGS,
			.fd = chance(2) ? g.xrcd_file : chance(8) ? (int)edgy() : -1,
			.oflags = chance(8) ? (int)rnd() : chance(3) ? 0 : O_CREAT,
		};

		if (!g.xrcd[i]) {
			snprintf(what, sizeof(what), "open_xrcd fd %d oflags %#x mask %#x", xa.fd,
				 xa.oflags, xa.comp_mask);
			g.xrcd[i] = CALL(what, ibv_open_xrcd(ctx, &xa));
		}
		break;
	}
	case 10:
		xrc_create(i);
		break;
	case 0:
		if (!g.pd[i])
			g.pd[i] = CALL("alloc_pd", ibv_alloc_pd(ctx));
		break;
	case 7: {
		struct ibv_pd *pd = PICK(g.pd);
		enum ibv_mw_type type = chance(10) ? (enum ibv_mw_type)below(5) :
				       chance(2) ? IBV_MW_TYPE_1 : IBV_MW_TYPE_2;

		if (g.mw[i] || !pd)
			break;
		snprintf(what, sizeof(what), "alloc_mw type %d", type);
		g.mw[i] = CALL(what, ibv_alloc_mw(pd, type));
		break;
	}
	case 1:
		if (!g.cq[i]) {
			int cqe = chance(8) ? (int)edgy() : 1 + (int)below(64);

			if (!g.ch[i] && chance(2))
				g.ch[i] = ibv_create_comp_channel(ctx);
			snprintf(what, sizeof(what), "create_cq cqe %d", cqe);
			g.cq[i] = CALL(what, ibv_create_cq(ctx, cqe, NULL, g.ch[i], below(2)));
		}
		break;
	case 2: {
		struct ibv_pd *pd = PICK(g.pd);
		struct ibv_cq *scq = PICK(g.cq), *rcq = PICK(g.cq);
		struct ibv_srq *srq = chance(3) ? PICK(g.srq) : NULL;
		struct ibv_qp_init_attr qa = {
			.send_cq = scq, .recv_cq = rcq, .srq = srq,
			.qp_type = chance(3) ? IBV_QPT_UD : chance(4) ? IBV_QPT_UC :
				   chance(10) ? (enum ibv_qp_type)below(9) : IBV_QPT_RC,
			.sq_sig_all = below(2),
			.cap = {
				.max_send_wr = chance(8) ? (uint32_t)edgy() : below(64),
				.max_recv_wr = chance(8) ? (uint32_t)edgy() : below(64),
				.max_send_sge = chance(8) ? (uint32_t)edgy() : below(33),
				.max_recv_sge = chance(8) ? (uint32_t)edgy() : below(33),
				.max_inline_data = chance(4) ? below(256) : 0,
			},
		};

		/* a QP's PD and CQs must be of one context: libibverbs does not check it */
		if (g.qp[i] || !pd || !scq || !rcq || scq->context != pd->context ||
		    rcq->context != pd->context || (srq && srq->context != pd->context))
			break;
		snprintf(what, sizeof(what), "create_qp type %d caps %u/%u/%u/%u/%u", qa.qp_type,
			 qa.cap.max_send_wr, qa.cap.max_recv_wr, qa.cap.max_send_sge,
			 qa.cap.max_recv_sge, qa.cap.max_inline_data);
		g.qp[i] = CALL(what, ibv_create_qp(pd, &qa));
		break;
	}
	case 3: {
		struct ibv_pd *pd = PICK(g.pd);
		struct ibv_srq_init_attr sa = {
			.attr = { .max_wr = chance(8) ? (uint32_t)edgy() : 1 + below(64),
				  .max_sge = chance(8) ? (uint32_t)edgy() : below(33),
				  .srq_limit = below(8) },
		};

		if (!g.srq[i] && pd)
			g.srq[i] = CALL("create_srq", ibv_create_srq(pd, &sa));
		break;
	}
	case 4:
	case 5:
	case 6: {
		struct ibv_pd *pd = PICK(g.pd);
		uint64_t addr, len;
		int acc = access_flags();

		if (g.mr[i] || !pd)
			break;
		if (chance(6)) {
			addr = 0;
			len = SIZE_MAX;
			acc |= IBV_ACCESS_ON_DEMAND;
		} else {
			pick_range(&addr, &len);
		}
		snprintf(what, sizeof(what), "reg_mr %#" PRIx64 "+%#" PRIx64 " access %#x", addr,
			 len, acc);
		g.mr[i] = CALL(what, ibv_reg_mr(pd, (void *)(uintptr_t)addr, len, acc));
		if (g.mr[i])
			within_table_budget(i, addr == 0 && len == SIZE_MAX ? 0 : len / PG * 8);
		break;
	}
	default: {
		struct ibv_pd *pd = PICK(g.pd);
		struct ibv_ah_attr aa = {
			.is_global = !chance(8), .port_num = chance(8) ? below(4) : 1,
			.grh = { .sgid_index = chance(4) ? below(32) : (uint32_t)g.gidx, .hop_limit = 1 },
		};

		if (g.ah[i] || !pd)
			break;
		ibv_query_gid(pd->context, 1, g.gidx, &aa.grh.dgid);
		if (chance(4))
			aa.grh.dgid.global.interface_id = rnd();
		g.ah[i] = CALL("create_ah", ibv_create_ah(pd, &aa));
	}
	}
}

static void verbs_modify_qp(struct ibv_qp *qp)
{
	struct ibv_qp_attr a = {
		.qp_state = below(8), .cur_qp_state = below(8), .path_mtu = below(7),
		.qkey = chance(2) ? 0x11111111 : (uint32_t)rnd(), .rq_psn = below(1 << 24),
		.sq_psn = below(1 << 24), .dest_qp_num = some_qpn(),
		.qp_access_flags = access_flags(), .pkey_index = chance(8) ? below(4) : 0,
		.port_num = chance(8) ? below(4) : 1, .timeout = below(40), .retry_cnt = below(9),
		.rnr_retry = below(9), .min_rnr_timer = below(40), .max_rd_atomic = below(200),
		.max_dest_rd_atomic = below(200), .en_sqd_async_notify = below(2),
		.ah_attr = { .is_global = !chance(8), .port_num = 1,
			     .grh = { .sgid_index = chance(4) ? below(32) : (uint32_t)g.gidx, .hop_limit = 1 } },
	};
	int mask = chance(3) ? (int)rnd() & 0x1fffff : IBV_QP_STATE;
	char what[96];

	ibv_query_gid(qp->context, 1, g.gidx, &a.ah_attr.grh.dgid);
	/* the usual walks, more often than chance gives them */
	switch (below(5)) {
	case 0:
		a.qp_state = IBV_QPS_INIT;
		mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
		       (qp->qp_type == IBV_QPT_UD ? IBV_QP_QKEY : IBV_QP_ACCESS_FLAGS);
		break;
	case 1:
		a.qp_state = IBV_QPS_RTR;
		mask = IBV_QP_STATE | (qp->qp_type == IBV_QPT_UD ? 0 : IBV_QP_AV |
			IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN);
		if (qp->qp_type == IBV_QPT_RC || qp->qp_type == IBV_QPT_XRC_RECV)
			mask |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
		break;
	case 2:
		a.qp_state = IBV_QPS_RTS;
		mask = IBV_QP_STATE | IBV_QP_SQ_PSN | (qp->qp_type != IBV_QPT_RC &&
			qp->qp_type != IBV_QPT_XRC_SEND ? 0 :
			IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC);
		break;
	default:
		break;
	}
	snprintf(what, sizeof(what), "modify_qp %u state %d mask %#x", qp->qp_num, a.qp_state,
		 mask);
	CALL(what, ibv_modify_qp(qp, &a, mask));
}

static void fill_sges(struct ibv_sge *sge, int n)
{
	for (int k = 0; k < n; k++) {
		struct ibv_mr *mr = PICK(g.mr);
		uint64_t addr, len;

		pick_range(&addr, &len);
		sge[k].addr = addr;
		sge[k].length = chance(10) ? (uint32_t)edgy() : (uint32_t)len % (1 << 20);
		sge[k].lkey = mr && !chance(10) ? mr->lkey : (uint32_t)rnd();
	}
}

static void verbs_post(void)
{
	struct ibv_qp *qp = PICK(g.qp);
	struct ibv_sge sge[4];
	char what[96];

	if (!qp)
		return;
	if (chance(3)) {
		struct ibv_recv_wr wr = { .wr_id = rnd(), .sg_list = sge, .num_sge = below(5) },
				   *bad;

		fill_sges(sge, wr.num_sge);
		struct ibv_srq *srq = PICK(g.srq);

		if (srq && chance(2)) {
			CALL("post_srq_recv", ibv_post_srq_recv(srq, &wr, &bad));
		} else {
			CALL("post_recv", ibv_post_recv(qp, &wr, &bad));
		}
		return;
	}
	static const enum ibv_wr_opcode ops[] = {
		IBV_WR_SEND, IBV_WR_SEND_WITH_IMM, IBV_WR_RDMA_WRITE, IBV_WR_RDMA_WRITE_WITH_IMM,
		IBV_WR_RDMA_READ, IBV_WR_ATOMIC_CMP_AND_SWP, IBV_WR_ATOMIC_FETCH_AND_ADD,
		IBV_WR_LOCAL_INV, IBV_WR_SEND_WITH_INV, IBV_WR_BIND_MW, IBV_WR_ATOMIC_WRITE,
	};
	struct ibv_send_wr wr = {
		.wr_id = rnd(), .sg_list = sge, .num_sge = below(5),
		.opcode = chance(20) ? (enum ibv_wr_opcode)below(16) :
			  ops[below(sizeof(ops) / sizeof(*ops))],
		.send_flags = chance(4) ? (int)rnd() & 0x1f : IBV_SEND_SIGNALED,
	}, *bad;
	struct ibv_mr *rmr = PICK(g.mr);
	struct ibv_mw *rmw = PICK(g.mw);
	uint64_t raddr, rlen;
	/* a remote key: an MR's, a window's, or anything */
	uint32_t rkey = rmw && chance(3) ? rmw->rkey : rmr && !chance(10) ? rmr->rkey :
			(uint32_t)rnd();

	fill_sges(sge, wr.num_sge);
	pick_range(&raddr, &rlen);
	/* an INI QP's message names an XRC SRQ: one of ours, or any number */
	if (qp->qp_type == IBV_QPT_XRC_SEND) {
		struct ibv_srq *srq = PICK(g.srq);

		if (!srq || ibv_get_srq_num(srq, &wr.qp_type.xrc.remote_srqn) || chance(8))
			wr.qp_type.xrc.remote_srqn = (uint32_t)edgy();
	}
	/* libibverbs reads a UD WR's AH whatever its opcode: a UD QP's WRs always have one */
	if (qp->qp_type == IBV_QPT_UD) {
		struct ibv_ah *ah = PICK(g.ah);

		if (!ah || ah->context != qp->context)
			return;
		wr.wr.ud.ah = ah;
		wr.wr.ud.remote_qpn = some_qpn();
		wr.wr.ud.remote_qkey = chance(2) ? 0x11111111 : (uint32_t)rnd();
	} else if (wr.opcode == IBV_WR_ATOMIC_CMP_AND_SWP ||
		   wr.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD) {
		wr.wr.atomic.remote_addr = chance(4) ? raddr : raddr & ~7ull;
		wr.wr.atomic.rkey = rkey;
		wr.wr.atomic.compare_add = rnd();
		wr.wr.atomic.swap = rnd();
	} else if (wr.opcode == IBV_WR_BIND_MW) {
		/* the provider takes the window, its MR and its context from the WR: keep them ours */
		if (!rmw)
			return;
		wr.num_sge = 0;
		wr.bind_mw.mw = rmw;
		wr.bind_mw.rkey = chance(8) ? (uint32_t)rnd() : ibv_inc_rkey(rmw->rkey);
		wr.bind_mw.bind_info.mr = rmr;
		wr.bind_mw.bind_info.addr = chance(4) ? raddr : rmr ? (uintptr_t)rmr->addr : 0;
		wr.bind_mw.bind_info.length = chance(4) ? rlen : rmr ? rmr->length / (1 + below(4)) : 0;
		wr.bind_mw.bind_info.mw_access_flags = access_flags();
	} else {
		wr.wr.rdma.remote_addr = chance(4) ? raddr : raddr & ~7ull;
		wr.wr.rdma.rkey = rkey;
		wr.invalidate_rkey = rkey;
	}
	/* an atomic write's value is read from its buffer by the library, as inline data */
	if (wr.opcode == IBV_WR_ATOMIC_WRITE)
		for (int k = 0; k < wr.num_sge; k++) {
			sge[k].addr = (uintptr_t)g.scratch;
			sge[k].length = chance(4) ? sge[k].length % 16 : 8;
		}
	/* inline data is copied from the SGEs by the library: keep them readable */
	if (wr.send_flags & IBV_SEND_INLINE)
		for (int k = 0; k < wr.num_sge; k++) {
			sge[k].addr = (uintptr_t)g.scratch;
			sge[k].length %= 256;
		}
	snprintf(what, sizeof(what), "post_send qp %u opcode %d sges %d flags %#x", qp->qp_num,
		 wr.opcode, wr.num_sge, wr.send_flags);
	CALL(what, ibv_post_send(qp, &wr, &bad));
}

static void verbs_misc(void)
{
	switch (below(10)) {
	case 7: {
		struct ibv_cq *cq = PICK(g.cq);
		int cqe = chance(8) ? (int)edgy() : 1 + (int)below(128);
		char what[64];

		snprintf(what, sizeof(what), "resize_cq %d", cqe);
		if (cq)
			CALL(what, ibv_resize_cq(cq, cqe));
		break;
	}
	case 8: {
		int i = below(NSLOT);
		struct ibv_mr *mr = g.mr[i];
		struct ibv_pd *pd = PICK(g.pd);
		int flags = chance(10) ? (int)rnd() : 1 + (int)below(7), acc = access_flags(), rv;
		uint64_t addr, len;
		char what[128];

		if (!mr)
			break;
		pick_range(&addr, &len);
		if ((flags & IBV_REREG_MR_CHANGE_PD) && (!pd || pd->context != mr->context))
			break;
		if (!(flags & IBV_REREG_MR_CHANGE_ACCESS))
			acc = 0;
		snprintf(what, sizeof(what), "rereg_mr flags %#x %#" PRIx64 "+%#" PRIx64
			 " access %#x", flags, addr, len, acc);
		rv = CALL(what, ibv_rereg_mr(mr, flags, pd, (void *)(uintptr_t)addr, len, acc));
		if (!rv && (flags & IBV_REREG_MR_CHANGE_TRANSLATION))
			within_table_budget(i, len / PG * 8);
		break;
	}
	case 9: {
		struct ibv_qp *qp = PICK(g.qp);
		struct ibv_mw *mw = PICK(g.mw);
		struct ibv_mr *mr = PICK(g.mr);
		uint64_t addr, len;
		struct ibv_mw_bind b = {
			.wr_id = rnd(), .send_flags = chance(2) ? IBV_SEND_SIGNALED : 0,
		};

		if (!qp || !mw || mw->context != qp->context || (mr && mr->context != qp->context))
			break;
		pick_range(&addr, &len);
		b.bind_info.mr = mr;
		b.bind_info.addr = chance(2) || !mr ? addr : (uintptr_t)mr->addr;
		b.bind_info.length = chance(4) ? 0 : chance(2) || !mr ? len : mr->length;
		b.bind_info.mw_access_flags = access_flags();
		CALL("bind_mw", ibv_bind_mw(qp, mw, &b));
		break;
	}
	case 0: {
		struct ibv_cq *cq = PICK(g.cq);
		struct ibv_wc wc[8];

		if (cq)
			CALL("poll_cq", ibv_poll_cq(cq, 1 + below(8), wc));
		break;
	}
	case 1: {
		struct ibv_cq *cq = PICK(g.cq);

		if (cq)
			CALL("req_notify_cq", ibv_req_notify_cq(cq, below(2)));
		break;
	}
	case 2: {
		struct ibv_qp *qp = PICK(g.qp);
		struct ibv_qp_attr a;
		struct ibv_qp_init_attr ia;

		if (qp)
			CALL("query_qp", ibv_query_qp(qp, &a, (int)rnd(), &ia));
		break;
	}
	case 3: {
		struct ibv_srq *srq = PICK(g.srq);
		struct ibv_srq_attr a = { .max_wr = (uint32_t)edgy(), .srq_limit = (uint32_t)edgy() };

		if (srq)
			CALL("modify_srq", ibv_modify_srq(srq, &a, (int)rnd() & 3));
		break;
	}
	case 4: {
		struct ibv_mr *mr = PICK(g.mr);
		struct ibv_pd *pd = PICK(g.pd);
		struct ibv_sge sge[3];
		uint32_t n = 1 + below(3);

		if (!pd)
			break;
		fill_sges(sge, n);
		if (mr && chance(2))
			sge[0].lkey = mr->lkey;
		CALL("advise_mr", ibv_advise_mr(pd, (enum ibv_advise_mr_advice)below(4),
						 chance(2) ? IBV_ADVISE_MR_FLAG_FLUSH : 0, sge, n));
		break;
	}
	case 5: {
		struct ibv_qp *qp = PICK(g.qp);

		if (qp)
			verbs_modify_qp(qp);
		break;
	}
	default: {
		struct ibv_context *ctx = any_ctx();
		struct ibv_device_attr_ex da;
		struct ibv_port_attr pa;

		if (ctx) {
			CALL("query_device_ex", ibv_query_device_ex(ctx, NULL, &da));
			CALL("query_port", ibv_query_port(ctx, 1 + (chance(8) ? below(4) : 0), &pa));
		}
	}
	}
}

/* kinds of slot, for destroy_slot */
enum { S_PD, S_CQ, S_QP, S_SRQ, S_MR, S_AH, S_MW, S_XRCD, NS };

/* Destroys object @i of @kind; one still used by others may refuse (EBUSY), and stays. */
static void destroy_slot(int kind, int i)
{
	int rv = 0;

	switch (kind) {
	case S_PD:
		if (g.pd[i] && !(rv = CALL("dealloc_pd", ibv_dealloc_pd(g.pd[i]))))
			g.pd[i] = NULL;
		break;
	case S_CQ:
		if (g.cq[i] && !(rv = CALL("destroy_cq", ibv_destroy_cq(g.cq[i]))))
			g.cq[i] = NULL;
		break;
	case S_QP:
		if (g.qp[i] && !(rv = CALL("destroy_qp", ibv_destroy_qp(g.qp[i]))))
			g.qp[i] = NULL;
		break;
	case S_SRQ:
		if (g.srq[i] && !(rv = CALL("destroy_srq", ibv_destroy_srq(g.srq[i]))))
			g.srq[i] = NULL;
		break;
	case S_MR:
		if (g.mr[i] && !(rv = CALL("dereg_mr", ibv_dereg_mr(g.mr[i]))))
			g.mr[i] = NULL;
		break;
	case S_AH:
		if (g.ah[i] && !(rv = CALL("destroy_ah", ibv_destroy_ah(g.ah[i]))))
			g.ah[i] = NULL;
		break;
	case S_MW:
		if (g.mw[i] && !(rv = CALL("dealloc_mw", ibv_dealloc_mw(g.mw[i]))))
			g.mw[i] = NULL;
		break;
	case S_XRCD:
		if (g.xrcd[i] && !(rv = CALL("close_xrcd", ibv_close_xrcd(g.xrcd[i]))))
			g.xrcd[i] = NULL;
		break;
	}
	(void)rv;
}

/* Every object of context @c (both, if NULL) destroyed, children first, then the context. */
static void close_ctx(int c)
{
	struct ibv_context *ctx = g.ctx[c];

	if (!ctx)
		return;
	for (int i = 0; i < NSLOT; i++)
		if (g.mw[i] && g.mw[i]->context == ctx)
			destroy_slot(S_MW, i);
	for (int i = 0; i < NSLOT; i++) {
		if (g.qp[i] && g.qp[i]->context == ctx)
			destroy_slot(S_QP, i);
		if (g.mr[i] && g.mr[i]->context == ctx)
			destroy_slot(S_MR, i);
		if (g.ah[i] && g.ah[i]->context == ctx)
			destroy_slot(S_AH, i);
	}
	for (int i = 0; i < NSLOT; i++) {
		if (g.srq[i] && g.srq[i]->context == ctx)
			destroy_slot(S_SRQ, i);
		if (g.cq[i] && g.cq[i]->context == ctx)
			destroy_slot(S_CQ, i);
		if (g.ch[i] && g.ch[i]->context == ctx && !g.cq[i]) {
			ibv_destroy_comp_channel(g.ch[i]);
			g.ch[i] = NULL;
		}
	}
	for (int i = 0; i < NSLOT; i++) {
		if (g.pd[i] && g.pd[i]->context == ctx)
			destroy_slot(S_PD, i);
		if (g.xrcd[i] && g.xrcd[i]->context == ctx)
			destroy_slot(S_XRCD, i);
	}
	/* what would not go goes with the context: forget it, the kernel cleans up */
	for (int i = 0; i < NSLOT; i++) {
		if (g.qp[i] && g.qp[i]->context == ctx)
			g.qp[i] = NULL;
		if (g.mr[i] && g.mr[i]->context == ctx)
			g.mr[i] = NULL;
		if (g.mw[i] && g.mw[i]->context == ctx)
			g.mw[i] = NULL;
		if (g.ah[i] && g.ah[i]->context == ctx)
			g.ah[i] = NULL;
		if (g.srq[i] && g.srq[i]->context == ctx)
			g.srq[i] = NULL;
		if (g.cq[i] && g.cq[i]->context == ctx)
			g.cq[i] = NULL;
		if (g.ch[i] && g.ch[i]->context == ctx)
			g.ch[i] = NULL;
		if (g.pd[i] && g.pd[i]->context == ctx)
			g.pd[i] = NULL;
		if (g.xrcd[i] && g.xrcd[i]->context == ctx)
			g.xrcd[i] = NULL;
	}
	CALL("close_device", ibv_close_device(ctx));
	g.ctx[c] = NULL;
}

static void verbs_op(void)
{
	unsigned int r = below(100);

	if (!g.ctx[0] && !g.ctx[1]) {
		g.ctx[0] = CALL("open_device", open_device_named(g.dev));
		return;
	}
	if (r < 30)
		verbs_create();
	else if (r < 55)
		verbs_post();
	else if (r < 80)
		verbs_misc();
	else if (r < 99)
		destroy_slot(below(NS), below(NSLOT));
	else if (chance(2))
		close_ctx(below(2));
	else if (!g.ctx[1])
		g.ctx[1] = CALL("open_device", open_device_named(g.dev));
}

/* ---- raw uverbs: write() and ioctl ---------------------------------------------------------- */

static int raw_fd(void)
{
	int i = below(NSLOT);

	if (g.rawfd[i] < 0 || chance(50)) {
		if (g.rawfd[i] >= 0)
			close(g.rawfd[i]);
		g.rawfd[i] = CALL("open uverbs", open(g.uverbs, O_RDWR | O_CLOEXEC));
	}
	return g.rawfd[i];
}

static void raw_write(void)
{
	uint32_t words[64];
	struct ib_uverbs_cmd_hdr *h = (void *)words;
	unsigned int in = below(60);
	int fd = raw_fd();
	char what[64];

	if (fd < 0)
		return;
	for (unsigned int k = 0; k < 64; k++)
		words[k] = chance(3) ? below(16) : (uint32_t)edgy();
	h->command = chance(10) ? (uint32_t)rnd() : below(IB_USER_VERBS_CMD_OPEN_QP + 2);
	h->in_words = chance(8) ? (uint16_t)rnd() : (uint16_t)in;
	h->out_words = below(32);
	/* the answer goes to our scratch buffer, never anywhere else of ours */
	if (in >= 4) {
		uint64_t resp = (uintptr_t)g.scratch;

		memcpy(&words[2], &resp, sizeof(resp));
	}
	snprintf(what, sizeof(what), "uverbs write cmd %u in %u out %u", h->command, h->in_words,
		 h->out_words);
	CALL(what, write(fd, words, (sizeof(*h) + 4 * in) & ~3u));
}

static void raw_ioctl(void)
{
	uint64_t buf[64];
	struct ib_uverbs_ioctl_hdr *h = (void *)buf;
	unsigned int n = below(8);
	int fd = raw_fd();
	char what[80];

	if (fd < 0)
		return;
	memset(buf, 0, sizeof(buf));
	h->num_attrs = n;
	h->length = sizeof(*h) + n * sizeof(struct ib_uverbs_attr);
	if (chance(10))
		h->length = (uint16_t)rnd();
	h->object_id = chance(8) ? (uint16_t)rnd() : below(UVERBS_OBJECT_ASYNC_EVENT + 2);
	h->method_id = chance(8) ? (uint16_t)rnd() : below(12);
	h->driver_id = chance(8) ? (uint32_t)rnd() : 0;
	for (unsigned int k = 0; k < n; k++) {
		struct ib_uverbs_attr *a = &h->attrs[k];

		a->attr_id = chance(4) ? (uint16_t)rnd() : below(16) | (chance(3) ? 0x1000 : 0);
		a->len = chance(2) ? below(9) : below(256);
		a->flags = chance(8) ? (uint16_t)rnd() : 0;
		a->attr_data.reserved = 0;
		/*
		 * Data longer than 8 bytes is a pointer, and so is an output's of any length:
		 * into the scratch buffer, or small numbers (handles; as pointers they fault),
		 * never a random address, which the kernel would write into the fuzzer.
		 */
		a->data = a->len > 8 || chance(2) ? (uintptr_t)g.scratch + below(SCRATCH - 256) :
						    below(16);
	}
	snprintf(what, sizeof(what), "uverbs ioctl object %u method %u attrs %u", h->object_id,
		 h->method_id, n);
	CALL(what, ioctl(fd, RDMA_VERBS_IOCTL, h));
}

/* ---- the event channel, /dev/ummunotify ----------------------------------------------------- */

static void events_op(void)
{
	int i = below(NSLOT);
	struct pollfd pfd;

	if (g.evfd[i] < 0) {
		g.evfd[i] = CALL("open events", open(PFNIC_EVENTS_PATH,
					(chance(8) ? O_RDWR : O_RDONLY) | O_NONBLOCK));
		return;
	}
	switch (below(4)) {
	case 0:
		CALL("read events", read(g.evfd[i], g.scratch, chance(3) ? edgy() % SCRATCH :
					 sizeof(struct pfnic_event) * below(20)));
		break;
	case 1:
		pfd = (struct pollfd){ .fd = g.evfd[i], .events = POLLIN };
		CALL("poll events", poll(&pfd, 1, 0));
		break;
	case 2:
		CALL("ioctl events", ioctl(g.evfd[i], (unsigned long)rnd(), g.scratch));
		break;
	default:
		CALL("close events", close(g.evfd[i]));
		g.evfd[i] = -1;
	}
}

static void umn_op(void)
{
	int i = below(NSLOT);
	struct ummunotify_register_ioctl r;
	uint64_t a, l, cookie;
	uint32_t feat;

	if (g.umnfd[i] < 0) {
		g.umnfd[i] = CALL("open ummunotify", open(UMMUNOTIFY_PATH,
					(chance(8) ? O_RDWR : O_RDONLY) | O_NONBLOCK));
		return;
	}
	switch (below(9)) {
	case 0:
		feat = chance(2) ? UMMUNOTIFY_FEATURE_PROTECTION : (uint32_t)rnd();
		CALL("umn exchange", ioctl(g.umnfd[i], UMMUNOTIFY_EXCHANGE_FEATURES, &feat));
		break;
	case 1:
	case 2:
		pick_range(&a, &l);
		memset(&r, 0, sizeof(r));
		r.start = a;
		r.end = chance(8) ? edgy() : a + l;
		r.user_cookie = below(64);
		r.flags = chance(8) ? (uint32_t)rnd() : 0;
		CALL("umn register", ioctl(g.umnfd[i], chance(2) ? UMMUNOTIFY_REGISTER_REGION :
					   UMMUNOTIFY_REGISTER_REGION_SLOT, &r));
		break;
	case 3:
		cookie = below(64);
		CALL("umn unregister", ioctl(g.umnfd[i], UMMUNOTIFY_UNREGISTER_REGION, &cookie));
		break;
	case 4:
		CALL("umn info", ioctl(g.umnfd[i], UMMUNOTIFY_GET_INFO, g.scratch));
		break;
	case 5:
		CALL("umn read", read(g.umnfd[i], g.scratch, edgy() % SCRATCH));
		break;
	case 6:
		if (g.umnmap[i]) {
			munmap(g.umnmap[i], PG);
			g.umnmap[i] = NULL;
		}
		g.umnmap[i] = CALL("umn mmap", mmap(NULL, PG, PROT_READ, MAP_SHARED, g.umnfd[i],
						   chance(4) ? (off_t)(below(8) * PG) : 0));
		if (g.umnmap[i] == MAP_FAILED)
			g.umnmap[i] = NULL;
		break;
	case 7:
		CALL("umn ioctl", ioctl(g.umnfd[i], (unsigned long)rnd(), g.scratch));
		break;
	default:
		if (g.umnmap[i]) {
			munmap(g.umnmap[i], PG);
			g.umnmap[i] = NULL;
		}
		CALL("close ummunotify", close(g.umnfd[i]));
		g.umnfd[i] = -1;
	}
}

/* ---- rdma netlink --------------------------------------------------------------------------- */

static void netlink_op(void)
{
	struct {
		struct nlmsghdr h;
		uint8_t attrs[256];
	} req;
	static int sk = -1;
	unsigned int n = below(4), off = 0;
	char what[64];

	if (sk < 0)
		sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_RDMA);
	if (sk < 0)
		return;
	memset(&req, 0, sizeof(req));
	for (unsigned int k = 0; k < n; k++) {
		struct nlattr *a = (void *)(req.attrs + off);
		unsigned int len = chance(2) ? 4 : below(16);

		a->nla_type = chance(3) ? RDMA_NLDEV_ATTR_DEV_INDEX : below(RDMA_NLDEV_ATTR_MAX + 2);
		a->nla_len = NLA_HDRLEN + len;
		if (a->nla_type == RDMA_NLDEV_ATTR_DEV_INDEX && len == 4) {
			/* the guest's devices are numbered from 0 */
			uint32_t idx = chance(4) ? (uint32_t)edgy() : below(4);

			memcpy((uint8_t *)a + NLA_HDRLEN, &idx, 4);
		} else {
			for (unsigned int b = 0; b < len; b++)
				((uint8_t *)a)[NLA_HDRLEN + b] = (uint8_t)rnd();
		}
		off += NLA_ALIGN(a->nla_len);
	}
	req.h.nlmsg_len = NLMSG_HDRLEN + off;
	/*
	 * Queries only: as root, a random SET, NEWLINK or DELLINK would rename or remove the
	 * devices the rest of the run uses.
	 */
	static const uint8_t queries[] = {
		RDMA_NLDEV_CMD_GET, RDMA_NLDEV_CMD_PORT_GET, RDMA_NLDEV_CMD_SYS_GET,
		RDMA_NLDEV_CMD_RES_GET, RDMA_NLDEV_CMD_RES_QP_GET, RDMA_NLDEV_CMD_RES_CM_ID_GET,
		RDMA_NLDEV_CMD_RES_CQ_GET, RDMA_NLDEV_CMD_RES_MR_GET, RDMA_NLDEV_CMD_RES_PD_GET,
		RDMA_NLDEV_CMD_GET_CHARDEV, RDMA_NLDEV_CMD_STAT_GET, RDMA_NLDEV_CMD_RES_QP_GET_RAW,
		RDMA_NLDEV_CMD_RES_CQ_GET_RAW, RDMA_NLDEV_CMD_RES_MR_GET_RAW,
		RDMA_NLDEV_CMD_RES_CTX_GET, RDMA_NLDEV_CMD_RES_SRQ_GET,
		RDMA_NLDEV_CMD_STAT_GET_STATUS,
	};

	req.h.nlmsg_type = RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, queries[below(sizeof(queries))]);
	req.h.nlmsg_flags = NLM_F_REQUEST | (chance(2) ? NLM_F_DUMP : 0) | (chance(4) ? NLM_F_ACK : 0);
	req.h.nlmsg_seq = (uint32_t)g.done;
	snprintf(what, sizeof(what), "netlink type %#x flags %#x len %u", req.h.nlmsg_type,
		 req.h.nlmsg_flags, req.h.nlmsg_len);
	CALL(what, send(sk, &req, req.h.nlmsg_len, 0));
	/* take whatever came back, without waiting */
	while (recv(sk, g.scratch, SCRATCH, MSG_DONTWAIT) > 0)
		;
}

/* ---- module parameters ---------------------------------------------------------------------- */

static void params_op(void)
{
	static const struct {
		const char *path;
		unsigned int max;	/* values drawn below this; 0: anything */
	} p[] = {
		/* each reader opened after takes a ring this long */
		{ "/sys/module/pfnic/parameters/event_records", 4096 },
		{ "/sys/module/pfnic/parameters/inject_fault_busy", 4 },
		{ "/sys/module/pfnic/parameters/inject_fault_delay_ms", 20 },
		/* the polling engine on and off under everything else (kept short: it spins) */
		{ "/sys/module/pfnic/parameters/poll_usecs", 2000 },
		{ "/sys/module/ummunotify/parameters/max_ranges", 0 },
		{ "/sys/module/ummunotify/parameters/max_user_ranges", 0 },
	};
	unsigned int i = below(sizeof(p) / sizeof(*p));
	char val[32], what[128];

	snprintf(val, sizeof(val), "%" PRIu64, p[i].max ? below(p[i].max) : edgy() % (1u << 24));
	snprintf(what, sizeof(what), "param %s = %s", p[i].path, val);
	logf_("%s", what);
	int fd = open(p[i].path, O_WRONLY);

	if (fd >= 0) {
		if (write(fd, val, strlen(val)) < 0)
			errno = 0;
		close(fd);
	}
}

/* ---- the run -------------------------------------------------------------------------------- */

static bool skipped(enum kind k)
{
	char list[128], *save, *tok;

	snprintf(list, sizeof(list), "%s", g.skip);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (!strcmp(tok, kind_names[k]))
			return true;
	return false;
}

static void one_call(void)
{
	unsigned int total = 0, r, k;

	for (k = 0; k < NKIND; k++)
		total += skipped(k) ? 0 : kind_weight[k];
	r = below(total);
	for (k = 0; k < NKIND; k++) {
		if (skipped(k))
			continue;
		if (r < kind_weight[k])
			break;
		r -= kind_weight[k];
	}
	g.counts[k]++;
	switch (k) {
	case K_VERBS:
		verbs_op();
		break;
	case K_WRITE:
		raw_write();
		break;
	case K_IOCTL:
		raw_ioctl();
		break;
	case K_EVENTS:
		events_op();
		break;
	case K_UMN:
		umn_op();
		break;
	case K_NETLINK:
		netlink_op();
		break;
	case K_PARAMS:
		params_op();
		break;
	default:
		if (chance(40))
			fork_op();
		else
			memory_op(rnd);
	}
}

/* The device's uverbs character device and its index, from sysfs. */
static void find_device(void)
{
	char path[160], name[32];
	FILE *f;

	for (int n = 0; n < 64; n++) {
		snprintf(path, sizeof(path), "/sys/class/infiniband_verbs/uverbs%d/ibdev", n);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f) && !strncmp(name, g.dev, strlen(g.dev)) &&
		    name[strlen(g.dev)] == '\n')
			snprintf(g.uverbs, sizeof(g.uverbs), "/dev/infiniband/uverbs%d", n);
		fclose(f);
	}
	if (!g.uverbs[0])
		bail("no uverbs device for %s", g.dev);
	g.two_nodes = !access("/sys/devices/system/node/node1", F_OK);
}

/* A fault of the fuzzer's own: where, so that it can be mended (then it dies as it would). */
static void on_fault(int sig, siginfo_t *si, void *uc)
{
	char line[128];
	void *frames[32];
	int n = snprintf(line, sizeof(line), "# call %" PRIu64 ": signal %d at address %p\n",
			 g.done, sig, si->si_addr);

	(void)uc;
	if (write(STDOUT_FILENO, line, n) < 0)
		_exit(128 + sig);
	n = backtrace(frames, 32);
	backtrace_symbols_fd(frames, n, STDOUT_FILENO);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Everything the process holds in the kernel through pfnic, ummunotify and raw uverbs. */
static void release_all(void)
{
	close_ctx(0);
	close_ctx(1);
	for (int i = 0; i < NSLOT; i++) {
		if (g.umnmap[i])
			munmap(g.umnmap[i], PG);
		g.umnmap[i] = NULL;
		if (g.umnfd[i] >= 0)
			close(g.umnfd[i]);
		if (g.rawfd[i] >= 0)
			close(g.rawfd[i]);
		g.umnfd[i] = g.rawfd[i] = -1;
	}
}

/* This process's memory cgroup (v2) directory, or an empty string. */
static void cgroup_dir(char *dir, size_t size)
{
	char line[256];
	FILE *f = fopen("/proc/self/cgroup", "r");

	dir[0] = 0;
	if (!f)
		return;
	if (fgets(line, sizeof(line), f) && !strncmp(line, "0::", 3)) {
		line[strcspn(line, "\n")] = 0;
		snprintf(dir, size, "/sys/fs/cgroup%s", line + 3);
	}
	fclose(f);
}

/* The number at the start of @fd's file, read from offset 0, or -1 (none, or "max"). */
static long long read_number(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return -1;
	buf[n] = 0;
	if (buf[0] < '0' || buf[0] > '9')
		return -1;
	return strtoll(buf, NULL, 10);
}

/* The number at the start of the file at @path, or -1 (none, unreadable, or "max"). */
static long long read_file_number(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long long v;

	if (fd < 0)
		return -1;
	v = read_number(fd);
	close(fd);
	return v;
}

/*
 * What the kernel allocates for a fuzzer's objects is charged to its memory cgroup, and random
 * sizes add up: CQs and QPs of tens of thousands of entries, event rings, and ODP MRs whose
 * tables the driver allows up to a sixteenth of the machine's memory each (raw uverbs writes
 * register them too, past MR_TABLE_BUDGET). What the driver sizes fails with ENOMEM at the
 * cgroup's limit, but any other allocation there, the fuzzer's own page faults too, has the
 * cgroup's OOM killer end the run. So before every call the process looks at its cgroup (its
 * own, with --cgroup), and when it is a quarter full lets everything go and goes on: the
 * three quarters left hold what one call adds. One pread of an open file is cheap enough for
 * every call, where opening two files each call slowed a debug kernel eightfold.
 */
static struct {
	int current_fd;
	long long max;
} cgroup = { .current_fd = -1 };

static void cgroup_open(void)
{
	char dir[300], path[340];

	cgroup_dir(dir, sizeof(dir));
	if (!dir[0])
		return;
	snprintf(path, sizeof(path), "%s/memory.max", dir);
	cgroup.max = read_file_number(path);
	snprintf(path, sizeof(path), "%s/memory.current", dir);
	if (cgroup.max > 0)
		cgroup.current_fd = open(path, O_RDONLY | O_CLOEXEC);
}

static void mind_the_cgroup(void)
{
	long long cur;

	if (cgroup.current_fd < 0)
		return;
	cur = read_number(cgroup.current_fd);
	if (cur < cgroup.max / 4)
		return;
	logf_("release all (the memory cgroup holds %lld of %lld bytes)", cur, cgroup.max);
	release_all();
}

/*
 * Pinning is bounded as for an ordinary user: CAP_IPC_LOCK dropped, RLIMIT_MEMLOCK at 32 MiB.
 * As root, a pinned MR of random length over mapped memory faulted in gigabytes until the
 * memory cgroup's OOM killer ended the process (as any pinning driver's would); now the
 * driver's RLIMIT_MEMLOCK refusal is fuzzed instead.
 */
static void bound_pinning(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct caps[2];
	struct rlimit rl = { 32ul << 20, 32ul << 20 };

	if (syscall(SYS_capget, &hdr, caps) == 0) {
		caps[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
		caps[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
		caps[CAP_IPC_LOCK / 32].inheritable &= ~(1u << (CAP_IPC_LOCK % 32));
		if (syscall(SYS_capset, &hdr, caps))
			bail("capset without CAP_IPC_LOCK: %s", strerror(errno));
	}
	if (setrlimit(RLIMIT_MEMLOCK, &rl))
		bail("setrlimit(RLIMIT_MEMLOCK): %s", strerror(errno));
}

/* One process's run: its calls, then everything it holds released. Return: 0 or 1. */
static int run(void)
{
	pthread_t th[16];
	double t0 = now();

	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO };

	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	bound_pinning();
	rng_state = g.seed;
	g.scratch = map_fresh(SCRATCH);
	for (int i = 0; i < NSLOT; i++)
		g.evfd[i] = g.umnfd[i] = g.rawfd[i] = -1;
	g.xrcd_file = memfd_create("pfnic_fuzz_xrcd", 0);
	for (int i = 0; i < NAREA; i++)
		area_make(&g.area[i]);
	for (int t = 0; t < g.threads; t++)
		pthread_create(&th[t], NULL, churner, (void *)(uintptr_t)t);
	cgroup_open();
	for (g.done = 0; g.done < g.calls; g.done++) {
		mind_the_cgroup();
		one_call();
	}
	atomic_store(&g.stop, true);
	for (int t = 0; t < g.threads; t++)
		pthread_join(th[t], NULL);
	logf_("teardown");
	release_all();
	for (int i = 0; i < NSLOT; i++)
		if (g.evfd[i] >= 0)
			close(g.evfd[i]);
	diag("seed %" PRIu64 ": %" PRIu64 " calls in %.1f s (verbs %lu, write %lu, ioctl %lu, "
	     "events %lu, umn %lu, netlink %lu, params %lu, memory %lu)", g.seed, g.calls,
	     now() - t0, g.counts[K_VERBS], g.counts[K_WRITE], g.counts[K_IOCTL],
	     g.counts[K_EVENTS], g.counts[K_UMN], g.counts[K_NETLINK], g.counts[K_PARAMS],
	     g.counts[K_MEMORY]);
	return 0;
}

static bool take_opt(int opt, const char *arg)
{
	char *end;

	switch (opt) {
	case 's':
		g.seed = strtoull(arg, &end, 0);
		return !*end;
	case 'n':
		g.calls = strtoull(arg, &end, 0);
		return !*end;
	case 't':
		g.threads = atoi(arg);
		return g.threads >= 0 && g.threads <= 16;
	case 'p':
		g.procs = atoi(arg);
		return g.procs >= 0 && g.procs <= 64;
	case 'l':
		g.logpath = arg;
		return true;
	case 'x':
		snprintf(g.skip, sizeof(g.skip), "%s", arg);
		return true;
	case 'c':
		g.cgroup = arg;
		return true;
	default:
		return false;
	}
}

/* Writes @text to the file at @path. Return: 0, or an errno. */
static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int rv = 0;

	if (fd < 0)
		return errno;
	if (write(fd, text, strlen(text)) < 0)
		rv = errno;
	close(fd);
	return rv;
}

/*
 * Fuzzer @i's memory cgroup, with a @procs-th of --cgroup's memory.max. In one cgroup shared by
 * all, each process's registrations (an ODP MR's table can be a sixteenth of the machine's
 * memory) filled what the others had checked was free, and the cgroup's OOM killer ended
 * them; in its own, a process's registration past its share fails with ENOMEM, and only its
 * own calls fill it (mind_the_cgroup).
 */
static void make_fuzzer_cgroup(int i, int procs)
{
	char path[512], text[32];
	long long max;
	int rv;

	snprintf(path, sizeof(path), "%s/memory.max", g.cgroup);
	max = read_file_number(path);
	snprintf(path, sizeof(path), "%s/fuzzer%d", g.cgroup, i);
	if (mkdir(path, 0755) && errno != EEXIST)
		bail("cannot make the cgroup %s: %s", path, strerror(errno));
	if (max <= 0)
		return;
	snprintf(path, sizeof(path), "%s/fuzzer%d/memory.max", g.cgroup, i);
	snprintf(text, sizeof(text), "%lld", max / procs);
	rv = write_text(path, text);
	if (rv)
		bail("cannot write %s: %s", path, strerror(rv));
}

static void join_fuzzer_cgroup(int i)
{
	char path[512];
	int rv;

	snprintf(path, sizeof(path), "%s/fuzzer%d/cgroup.procs", g.cgroup, i);
	rv = write_text(path, "0");
	if (rv)
		bail("cannot join %s: %s", path, strerror(rv));
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "seed", required_argument, NULL, 's' }, { "calls", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' }, { "procs", required_argument, NULL, 'p' },
		{ "log", required_argument, NULL, 'l' }, { "skip", required_argument, NULL, 'x' },
		{ "cgroup", required_argument, NULL, 'c' }, { NULL },
	};
	int procs, failed = 0;

	vt_args(argc, argv, "pfnic_fuzz -d DEVICE [-g GID_INDEX] [--seed N] [--calls N] "
		"[--threads N] [--procs N] [--cgroup DIR] [--log FILE] [--skip KIND[,KIND...]]",
		&g.dev, &g.gidx, "s:n:t:p:l:x:c:", lo, take_opt);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	find_device();
	procs = g.procs ? g.procs : 1;
	printf("TAP version 13\n1..%d\n", procs);
	for (int i = 0; i < procs; i++) {
		pid_t pid;

		if (g.cgroup)
			make_fuzzer_cgroup(i, procs);
		pid = fork();
		if (pid == 0) {
			g.seed += i;
			if (g.cgroup)
				join_fuzzer_cgroup(i);
			if (g.logpath) {
				char path[256];

				snprintf(path, sizeof(path), procs > 1 ? "%s.%d" : "%s", g.logpath, i);
				g.log = fopen(path, "w");
				if (!g.log)
					bail("cannot write %s: %s", path, strerror(errno));
			}
			exit(run());
		}
		if (pid < 0)
			bail("fork: %s", strerror(errno));
	}
	for (int i = 0; i < procs; i++) {
		int status;
		pid_t pid = wait(&status);
		bool ok = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;

		if (!ok && WIFSIGNALED(status))
			diag("a process died of signal %d (%s): a bug of the fuzzer's own, or the "
			     "kernel killed it; its log's last lines say what it was doing",
			     WTERMSIG(status), strsignal(WTERMSIG(status)));
		printf("%s %d - a fuzzing process ran its calls and released everything\n",
		       ok ? "ok" : "not ok", i + 1);
		failed += !ok;
	}
	return failed ? 1 : 0;
}
