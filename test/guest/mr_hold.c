// SPDX-License-Identifier: GPL-2.0-only
/*
 * mr_hold: registers memory regions and holds them until its standard input closes, so
 * that a test can look at them from outside (rdma netlink, the control plane's API).
 *
 *   mr_hold -d DEVICE [-p PINNED_KIB] [-n NODE] [-o ODP_KIB] [-N NODE] [-i] [-t TOUCH_KIB]
 *           [-m COUNT]
 *
 * Registers a pinned MR of PINNED_KIB (default 1024), its memory on NUMA node -n NODE if
 * given, and, if the device has ODP, an explicit ODP MR of ODP_KIB (default 2048), its memory
 * on node -N NODE if given, whose first TOUCH_KIB (default 64) are prefetched, and with -i
 * an implicit ODP MR. Memory is bound to a node with mbind(2): the rest of the process, and
 * what the kernel allocates for it, stay where they are. Prints one line per MR, "mr KIND
 * LENGTH LKEY RKEY ADDRESS", then "ready", and waits, reading commands from its standard
 * input: "dontneed" gives the explicit MR's prefetched pages back (madvise MADV_DONTNEED:
 * the kernel invalidates them), "prefetch" maps them in the MR again, "churn N" does both N
 * times (N invalidations of the MR, as fast as they come); each prints "done".
 * With -m, COUNT more MRs of one page each (explicit ODP, each page mapped, if the device has
 * ODP; pinned otherwise), for a control plane to list: one line "many KIND COUNT" for them.
 * Exit status: 0, or 1 if a registration failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "verbs-test.h"

#define ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)
/* from <linux/mempolicy.h> */
#define MPOL_BIND 2

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bail("mmap %zu bytes", len);
	return p;
}

/* Memory whose pages will come from NUMA node @node (any node if it is -1). */
static void *map_on(size_t len, long node)
{
	void *p = map(len);
	unsigned long mask = 1ul << (node < 0 ? 0 : node);

	if (node >= 0 && syscall(SYS_mbind, p, len, MPOL_BIND, &mask, 64ul, 0u))
		bail("mbind to node %ld", node);
	return p;
}

/* Maps the first @kib KiB of @mr in it, as a device access would. */
static void prefetch(struct ibv_pd *pd, struct ibv_mr *mr, size_t kib)
{
	struct ibv_sge sge = { (uintptr_t)mr->addr, (uint32_t)(kib << 10), mr->lkey };

	if (ibv_advise_mr(pd, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE, IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1))
		bail("ibv_advise_mr of %zu KiB", kib);
}

static void print_mr(const char *kind, struct ibv_mr *mr, size_t len)
{
	printf("mr %s %zu 0x%x 0x%x %p\n", kind, len, mr->lkey, mr->rkey, mr->addr);
}

int main(int argc, char **argv)
{
	size_t pinned = 1024, odp = 2048, touch = 64;
	long node = -1, odp_node = -1;
	void *buf;
	struct ibv_device_attr_ex attr = { 0 };
	const char *dev = NULL;
	bool implicit = false;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_mr *mr;
	char line[64];
	void *odp_buf = NULL;
	struct ibv_mr *odp_mr = NULL;
	unsigned long many = 0;
	int opt;

	while ((opt = getopt(argc, argv, "d:p:n:o:N:it:m:")) != -1) {
		switch (opt) {
		case 'd': dev = optarg; break;
		case 'p': pinned = strtoul(optarg, NULL, 0); break;
		case 'n': node = strtol(optarg, NULL, 0); break;
		case 'N': odp_node = strtol(optarg, NULL, 0); break;
		case 'o': odp = strtoul(optarg, NULL, 0); break;
		case 'i': implicit = true; break;
		case 't': touch = strtoul(optarg, NULL, 0); break;
		case 'm': many = strtoul(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: %s -d DEVICE [-p PINNED_KIB] [-n NODE] [-o ODP_KIB] [-N NODE] "
				"[-i] [-t TOUCH_KIB] [-m COUNT]\n", argv[0]);
			return 2;
		}
	}
	if (!dev || !pinned || (odp && touch > odp) || node < -1 || node > 63 || odp_node < -1 ||
	    odp_node > 63 || many > 1000000) {
		fprintf(stderr, "%s: -d DEVICE is needed; sizes are KiB, TOUCH_KIB at most ODP_KIB; "
			"NODE is 0 to 63; COUNT at most 1000000\n", argv[0]);
		return 2;
	}
	ctx = open_device_named(dev);
	pd = ibv_alloc_pd(ctx);
	if (!pd)
		bail("ibv_alloc_pd");

	buf = map_on(pinned << 10, node);
	mr = ibv_reg_mr(pd, buf, pinned << 10, ACCESS);
	if (!mr)
		bail("pinned ibv_reg_mr of %zu KiB", pinned);
	print_mr("pinned", mr, pinned << 10);

	if (ibv_query_device_ex(ctx, NULL, &attr) == 0 &&
	    (attr.odp_caps.general_caps & IBV_ODP_SUPPORT) && odp) {
		odp_buf = map_on(odp << 10, odp_node);

		mr = ibv_reg_mr(pd, odp_buf, odp << 10, ACCESS | IBV_ACCESS_ON_DEMAND);
		if (!mr)
			bail("explicit ODP ibv_reg_mr of %zu KiB", odp);
		print_mr("explicit", mr, odp << 10);
		odp_mr = mr;
		if (touch)
			prefetch(pd, odp_mr, touch);
		if (implicit && (attr.odp_caps.general_caps & IBV_ODP_SUPPORT_IMPLICIT)) {
			mr = ibv_reg_mr(pd, NULL, SIZE_MAX, ACCESS | IBV_ACCESS_ON_DEMAND);
			if (!mr)
				bail("implicit ODP ibv_reg_mr");
			print_mr("implicit", mr, SIZE_MAX);
		}
	}
	if (many) {
		bool many_odp = attr.odp_caps.general_caps & IBV_ODP_SUPPORT;
		uint8_t *pages = map(many * 4096);

		for (unsigned long i = 0; i < many; i++) {
			mr = ibv_reg_mr(pd, pages + i * 4096, 4096,
					ACCESS | (many_odp ? IBV_ACCESS_ON_DEMAND : 0));
			if (!mr)
				bail("ibv_reg_mr of MR %lu of %lu", i + 1, many);
			if (many_odp)
				prefetch(pd, mr, 4);
		}
		printf("many %s %lu\n", many_odp ? "explicit" : "pinned", many);
	}
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		unsigned long rounds = 0;

		if (!odp_mr)
			continue;
		if (!strcmp(line, "dontneed\n") && madvise(odp_buf, touch << 10, MADV_DONTNEED))
			bail("madvise");
		if (!strcmp(line, "prefetch\n"))
			prefetch(pd, odp_mr, touch);
		if (sscanf(line, "churn %lu", &rounds) == 1) {
			for (unsigned long i = 0; i < rounds; i++) {
				prefetch(pd, odp_mr, touch);
				if (madvise(odp_buf, touch << 10, MADV_DONTNEED))
					bail("madvise");
			}
		}
		printf("done\n");
		fflush(stdout);
	}
	return 0;
}
