// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: what rdma netlink shows of an MR. `rdma resource show mr -dd` prints the driver
 * details (ODP kind, pages mapped and suspended, translation tables, state, last
 * invalidation; for a pinned MR, the memory blocks it pins); `rdma statistic
 * show mr` prints the ODP counters, under the names and meanings mlx5 gives them, plus
 * pfnic's own.
 */
#include <linux/slab.h>
#include <net/netlink.h>
#include <rdma/restrack.h>
#include <uapi/rdma/rdma_netlink.h>

#include "pfnic.h"

static const char *pfnic_mr_kind_name(enum pfnic_mr_kind kind)
{
	switch (kind) {
	case PFNIC_MR_ODP:
		return "explicit";
	case PFNIC_MR_IMPLICIT:
		return "implicit";
	default:
		return "pinned";
	}
}

/* What made the kernel take translations away, as mmu_notifier_event says. */
static const char *pfnic_event_name(u8 event)
{
	switch (event) {
	case MMU_NOTIFY_UNMAP:
		return "unmap";
	case MMU_NOTIFY_CLEAR:
		return "clear";
	case MMU_NOTIFY_PROTECTION_VMA:
		return "protection_vma";
	case MMU_NOTIFY_PROTECTION_PAGE:
		return "protection_page";
	case MMU_NOTIFY_SOFT_DIRTY:
		return "soft_dirty";
	case MMU_NOTIFY_RELEASE:
		return "release";
	case MMU_NOTIFY_MIGRATE:
		return "migrate";
	case MMU_NOTIFY_EXCLUSIVE:
		return "exclusive";
	default:
		return "none";
	}
}

/*
 * The MR's state as an operator reads it: "faulting" while a fault on it is being resolved,
 * "suspended" while some of its translations are withdrawn from memory that stays mapped
 * (the next access faults them back), "active" otherwise.
 */
static const char *pfnic_mr_state(struct pfnic_mr *mr, unsigned long nsuspended)
{
	if (atomic_read(&mr->faulting))
		return "faulting";
	return nsuspended ? "suspended" : "active";
}

/**
 * pfnic_fill_res_mr_entry() - the driver details of an MR, for `rdma res show mr -dd`
 * @msg: the netlink message being built
 * @ibmr: the MR
 *
 * Return: 0, or -EMSGSIZE if @msg is full.
 */
int pfnic_fill_res_mr_entry(struct sk_buff *msg, struct ib_mr *ibmr)
{
	struct pfnic_mr *mr = to_pfnic_mr(ibmr);
	struct pfnic_mr_sum sum;
	struct nlattr *table;

	table = nla_nest_start_noflag(msg, RDMA_NLDEV_ATTR_DRIVER);
	if (!table)
		return -EMSGSIZE;
	if (pfnic_mr_kernel(mr)) {
		/* kernel memory never moves: not ODP, and nothing to follow */
		if (rdma_nl_put_driver_string(msg, "odp", "pinned") ||
		    rdma_nl_put_driver_string(msg, "kernel_mr", mr->kind == PFNIC_MR_DMA ?
					      "dma" : "fast_reg") ||
		    rdma_nl_put_driver_string(msg, "state", READ_ONCE(mr->valid) ?
					      "valid" : "invalid"))
			goto err;
		nla_nest_end(msg, table);
		return 0;
	}
	pfnic_odp_mr_sum(mr, &sum);
	if (rdma_nl_put_driver_string(msg, "odp", pfnic_mr_kind_name(mr->kind)) ||
	    rdma_nl_put_driver_u64(msg, "mapped_pages", sum.npresent) ||
	    rdma_nl_put_driver_u64(msg, "suspended_pages", sum.nsuspended) ||
	    rdma_nl_put_driver_u64(msg, "translation_tables", sum.ntables) ||
	    rdma_nl_put_driver_string(msg, "state", pfnic_mr_state(mr, sum.nsuspended)) ||
	    rdma_nl_put_driver_string(msg, "last_invalidation",
				      pfnic_event_name(READ_ONCE(mr->last_event))))
		goto err;
	if (mr->kind == PFNIC_MR_PINNED &&
	    rdma_nl_put_driver_string(msg, "pinned_blocks", mr->pinned_blocks))
		goto err;
	nla_nest_end(msg, table);
	return 0;

err:
	nla_nest_cancel(msg, table);
	return -EMSGSIZE;
}

/**
 * pfnic_fill_stat_mr_entry() - the counters of an ODP MR, for `rdma statistic show mr`
 * @msg: the netlink message being built
 * @ibmr: the MR; a pinned one has no counters
 *
 * Return: 0, or -EMSGSIZE if @msg is full.
 */
int pfnic_fill_stat_mr_entry(struct sk_buff *msg, struct ib_mr *ibmr)
{
	struct pfnic_mr *mr = to_pfnic_mr(ibmr);
	struct pfnic_mr_sum sum;
	struct nlattr *table;
	int i;

	if (!pfnic_mr_odp(mr))
		return 0;
	pfnic_odp_mr_sum(mr, &sum);
	table = nla_nest_start_noflag(msg, RDMA_NLDEV_ATTR_STAT_HWCOUNTERS);
	if (!table)
		return -EMSGSIZE;
	for (i = 0; i < PFNIC_MR_STAT_COUNT; i++)
		if (rdma_nl_stat_hwcounter_entry(msg, pfnic_stat_descs[i].name,
						 atomic64_read(&mr->stats[i])))
			goto err;
	if (rdma_nl_stat_hwcounter_entry(msg, "suspended_pages", sum.nsuspended))
		goto err;
	nla_nest_end(msg, table);
	return 0;

err:
	nla_nest_cancel(msg, table);
	return -EMSGSIZE;
}
