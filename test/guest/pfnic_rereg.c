// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_rereg: ibv_rereg_mr of ODP and pinned MRs, every byte checked. Prints TAP version 13.
 *
 *   pfnic_rereg -d DEVICE [-g GID_INDEX]
 *
 * Two RC QPs of one device, connected in loopback; QP 0 reaches the MR under test (QP 1's
 * side) with RDMA WRITEs and READs at unaligned offsets across pages, every byte and the
 * guards around checked. The MR is registered again: onto other memory (translation), with
 * fewer and then more rights (access), from ODP to pinned and back (access), into another PD
 * and back (PD). The MR keeps its keys (as on mlx5); after each rereg they reach what they
 * must and no more, and what the MR may no longer do fails with IBV_WC_REM_ACCESS_ERR and
 * changes nothing. A
 * rereg the device cannot carry out (a translation onto unmapped memory) fails and leaves
 * the MR as it was.
 *
 * Exit status: 0 if every test passed, 1 otherwise, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "verbs-test.h"

#define PG 4096ul
#define GUARD 64
#define BUF (6 * PG)
#define LOCAL_LEN (8 * PG)
#define READ_AT (4 * PG + 200)
#define REMOTE (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

static struct {
	const char *dev;
	int gidx;
	struct vt_pair p;
	int num;
	int failed;
} g = { .gidx = 1 };

static int bad;

static void point(const char *name)
{
	vt_point(&g.num, &g.failed, &bad, name);
}

/* A WRITE and READ of @len bytes at @off of @buf through @rkey, every byte checked. */
static int write_read(uint8_t *buf, uint32_t rkey, size_t off, uint32_t len, uint64_t seed,
		      const char *what)
{
	return vt_pair_write_read(&g.p, buf + off, rkey, len, seed, READ_AT, GUARD, what);
}

/* A WRITE of 100 bytes at @target through @rkey that must fail, and change nothing there. */
static void refused(uint8_t *target, uint32_t rkey, const char *what)
{
	int rv;

	memset(g.p.local, 0x5a, 100);
	rv = vt_pair_rdma(&g.p, IBV_WR_RDMA_WRITE, 0, (uintptr_t)target, rkey, 100);
	EXPECT(rv == IBV_WC_REM_ACCESS_ERR, "%s: completed with %s, expected remote access error",
	       what, vt_status_str(rv));
	for (int i = 0; i < 100; i++)
		if (target[i]) {
			EXPECT(0, "%s: byte %d of the target changed", what, i);
			break;
		}
	vt_pair_connect(&g.p);
}

static void rereg(struct ibv_mr *mr, int flags, struct ibv_pd *pd, void *addr, size_t len,
		  int access, const char *what)
{
	int rv = ibv_rereg_mr(mr, flags, pd, addr, len, access);

	EXPECT(!rv, "%s: ibv_rereg_mr: %d (%s)", what, rv, strerror(errno));
}

static void c_kind(bool odp)
{
	const char *kind = odp ? "odp" : "pinned";
	int od = odp ? IBV_ACCESS_ON_DEMAND : 0;
	uint8_t *a = map_fresh(BUF), *b = map_fresh(2 * BUF);
	struct ibv_mr *mr = ibv_reg_mr(g.p.pd, a, BUF, REMOTE | od);
	uint32_t old_rkey;
	char name[200];

	if (!mr)
		bail("ibv_reg_mr (%s): %s", kind, strerror(errno));
	if (write_read(a, mr->rkey, PG - 7, 2 * PG + 11, 1, "before"))
		bad = 1;
	old_rkey = mr->rkey;
	rereg(mr, IBV_REREG_MR_CHANGE_TRANSLATION, NULL, b + PG, BUF, 0, "translation");
	EXPECT(mr->addr == b + PG && mr->length == BUF, "the MR's address and length after: %p, "
	       "%zu", mr->addr, mr->length);
	/* as on mlx5: a peer given the rkey goes on with it (pyverbs' rereg tests rely on it) */
	EXPECT(mr->rkey == old_rkey && mr->lkey == old_rkey, "the keys changed: rkey %#x, lkey "
	       "%#x (were %#x)", mr->rkey, mr->lkey, old_rkey);
	if (!bad && write_read(b, mr->rkey, PG + 5, 3 * PG + 1, 2, "onto new memory"))
		bad = 1;
	memset(a, 0, BUF);
	refused(a + PG, mr->rkey, "the old memory through the MR's rkey");
	refused(b + PG + BUF + 10, mr->rkey, "past the new translation's end");
	snprintf(name, sizeof(name), "%s: registered onto other memory, the MR keeps its keys, "
		 "which reach the new memory (every byte) and neither the old nor past its end",
		 kind);
	point(name);

	memset(b, 0, 2 * BUF);
	rereg(mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0,
	      IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | od, "access without remote write");
	refused(b + 2 * PG, mr->rkey, "a WRITE after remote write was taken away");
	{
		int rv;

		memcpy(b + 2 * PG + 300, "rights", 6);
		rv = vt_pair_rdma(&g.p, IBV_WR_RDMA_READ, READ_AT, (uintptr_t)(b + 2 * PG + 300),
				  mr->rkey, 6);
		EXPECT(rv == IBV_WC_SUCCESS && !memcmp(g.p.local + READ_AT, "rights", 6),
		       "a READ with read rights left: %s", vt_status_str(rv));
		memset(b, 0, 2 * BUF);
	}
	rereg(mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0, REMOTE | od, "access with remote write");
	if (!bad && write_read(b, mr->rkey, 2 * PG - 1, 2, 3, "remote write given back"))
		bad = 1;
	snprintf(name, sizeof(name), "%s: registered with fewer rights, a WRITE is refused and a "
		 "READ is not; with them back, WRITEs land", kind);
	point(name);

	/* ODP to pinned and back: only ODP follows the process's memory after MADV_DONTNEED */
	memset(b, 0, 2 * BUF);
	rereg(mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0, REMOTE | (od ^ IBV_ACCESS_ON_DEMAND),
	      "the other kind");
	if (!bad && write_read(b, mr->rkey, PG + 9, PG + 9, 4, "as the other kind"))
		bad = 1;
	rereg(mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0, REMOTE | IBV_ACCESS_ON_DEMAND,
	      "ODP");
	madvise(b, 2 * BUF, MADV_DONTNEED);
	if (!bad && write_read(b, mr->rkey, 3 * PG - 20, 100, 5,
			       "ODP after MADV_DONTNEED (the process sees what RDMA wrote)"))
		bad = 1;
	snprintf(name, sizeof(name), "%s: registered as %s and then as ODP, which after "
		 "MADV_DONTNEED writes where the process reads", kind, odp ? "pinned" : "ODP");
	point(name);

	/* another PD: QP 0's PD reaches it no more */
	memset(b, 0, 2 * BUF);
	rereg(mr, IBV_REREG_MR_CHANGE_PD, g.p.pd2, NULL, 0, 0, "into another PD");
	refused(b + 2 * PG, mr->rkey, "a WRITE from a QP of the MR's former PD");
	rereg(mr, IBV_REREG_MR_CHANGE_PD, g.p.pd, NULL, 0, 0, "back into the QPs' PD");
	if (!bad && write_read(b, mr->rkey, 2 * PG + 3, 50, 6, "back in the PD"))
		bad = 1;
	snprintf(name, sizeof(name), "%s: moved into another PD, a QP of the former PD is refused; "
		 "moved back, WRITEs land", kind);
	point(name);

	/* a translation the device cannot make: the MR stays as it was */
	if (!odp) {
		void *hole = mmap(NULL, BUF, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint32_t rkey = mr->rkey;
		int rv;

		rereg(mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0, REMOTE, "pinned again");
		rkey = mr->rkey;
		rv = ibv_rereg_mr(mr, IBV_REREG_MR_CHANGE_TRANSLATION, NULL, hole, BUF, 0);
		EXPECT(rv == IBV_REREG_MR_ERR_CMD && mr->rkey == rkey, "a pinned MR onto PROT_NONE "
		       "memory: %d (%s), rkey %#x (was %#x), expected IBV_REREG_MR_ERR_CMD and the "
		       "same keys", rv, strerror(errno), mr->rkey, rkey);
		memset(b, 0, 2 * BUF);
		if (!bad && write_read(b, rkey, PG + 1, 77, 7, "after the refused rereg"))
			bad = 1;
		munmap(hole, BUF);
		point("pinned: a rereg onto memory that cannot be pinned fails; the MR and its keys "
		      "work as before");
	}
	EXPECT(!ibv_dereg_mr(mr), "ibv_dereg_mr: %s", strerror(errno));
	munmap(a, BUF);
	munmap(b, 2 * BUF);
}

int main(int argc, char **argv)
{
	vt_args(argc, argv, "pfnic_rereg -d DEVICE [-g GID_INDEX]", &g.dev, &g.gidx, "", NULL,
		NULL);
	printf("TAP version 13\n");
	vt_pair_open(&g.p, g.dev, g.gidx, LOCAL_LEN);
	c_kind(true);
	c_kind(false);
	vt_pair_close(&g.p);
	printf("1..%d\n", g.num);
	return g.failed ? 1 : 0;
}
