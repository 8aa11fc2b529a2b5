// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: the ODP core. What mlx5's odp.c is to ConnectX: it resolves the device's page
 * faults into translations, and on MMU-notifier invalidation it suspends the translations
 * the kernel is changing. The MR and its keys stay valid throughout; the next access
 * faults and updates the translation. Implicit MRs get a translation table per block of
 * the address space on the first fault there, released once nothing in it is mapped.
 */
#include <linux/hmm.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

#include "pfnic.h"
#include "pfnic_trace.h"

/* Pages resolved by one hmm_range_fault() call. */
#define PFNIC_FAULT_CHUNK 64

/* Whether an invalidation takes memory away for good, rather than changing it in place. */
static bool pfnic_odp_event_removes(enum mmu_notifier_event event)
{
	return event == MMU_NOTIFY_UNMAP || event == MMU_NOTIFY_RELEASE;
}

/*
 * The kernel moves a page (NUMA moves, compaction, memory offlining: all migrate_pages())
 * under the same CLEAR invalidation as MADV_DONTNEED; only the page tells them apart.
 * Migration holds it locked and off the LRU while it unmaps it, and outside the swap cache
 * (reclaim, which also does, puts an anonymous page there first). The page is still
 * mapped, so it cannot go away while we look.
 */
static bool pfnic_page_migrating(struct page *page)
{
	struct folio *folio = page_folio(page);

	return folio_test_locked(folio) && !folio_test_lru(folio) &&
	       !folio_test_swapcache(folio);
}

/* An implicit MR's table with nothing mapped or suspended in it. Caller holds its lock. */
static bool pfnic_odp_unused(struct pfnic_xlt *xlt)
{
	lockdep_assert_held(&xlt->lock);
	return xlt->mr->kind == PFNIC_MR_IMPLICIT && !xlt->dead && !xlt->npresent &&
	       !xlt->nsuspended;
}

/* Has the workqueue release an unused table of an implicit MR (pfnic_odp_release_block). */
static void pfnic_odp_queue_release(struct pfnic_xlt *xlt)
{
	/* a queued release holds a reference; one queued already holds its own */
	kref_get(&xlt->ref);
	if (!queue_work(pfnic_wq, &xlt->release_work))
		pfnic_xlt_put(xlt);
}

/*
 * Invalidation: zap the affected entries under the table's lock. The engine copies to and
 * from a page only while holding that lock, so once we hold it no access to those pages
 * is in flight, and none can start until the next fault re-validates them. The MR stays
 * valid: a page whose memory is still mapped is marked suspended until it faults again.
 */
static bool pfnic_odp_invalidate(struct mmu_interval_notifier *mni,
				 const struct mmu_notifier_range *range, unsigned long cur_seq)
{
	struct pfnic_xlt *xlt = container_of(mni, struct pfnic_xlt, notifier);
	struct pfnic_mr *mr = xlt->mr;
	bool removes = pfnic_odp_event_removes(range->event);
	unsigned long first, start, end, idx, zapped = 0, migrating = 0;
	struct pfnic_block blk;
	bool unused, offlining = false;

	if (mmu_notifier_range_blockable(range))
		mutex_lock(&xlt->lock);
	else if (!mutex_trylock(&xlt->lock))
		return false;

	mmu_interval_set_seq(mni, cur_seq);
	first = max(range->start, xlt->va);
	end = min(range->end, xlt->va + (xlt->npages << PAGE_SHIFT));
	idx = (first - xlt->va) >> PAGE_SHIFT;
	for (start = first; start < end; start += PAGE_SIZE, idx++) {
		if (xlt->pages[idx]) {
			if (range->event == MMU_NOTIFY_CLEAR &&
			    pfnic_page_migrating(xlt->pages[idx]) && !migrating++)
				/* which block goes offline matters only to the event channel */
				offlining = pfnic_events_listened() &&
					    pfnic_event_offlining(page_to_pfn(xlt->pages[idx]),
								  &blk);
			pfnic_xlt_zap(xlt, idx);
			zapped++;
			if (!removes && !__test_and_set_bit(idx, xlt->suspended))
				xlt->nsuspended++;
		} else if (removes && __test_and_clear_bit(idx, xlt->suspended)) {
			xlt->nsuspended--;
		}
	}
	unused = pfnic_odp_unused(xlt);
	if (zapped)
		WRITE_ONCE(mr->last_event, migrating ? MMU_NOTIFY_MIGRATE : range->event);
	mutex_unlock(&xlt->lock);

	if (zapped) {
		pfnic_mr_count(mr, PFNIC_STAT_PAGE_INVALIDATIONS, zapped);
		pfnic_mr_count(mr, PFNIC_STAT_PAGE_INVALIDATIONS_HANDLED, 1);
		if (migrating) {
			pfnic_mr_count(mr, PFNIC_STAT_MIGRATIONS, 1);
			trace_pfnic_migrate(mr, first, end, zapped, range->event);
		} else {
			trace_pfnic_invalidate(mr, first, end, zapped, range->event);
		}
		pfnic_event_mr(mr, migrating ? PFNIC_EVENT_MIGRATE : PFNIC_EVENT_INVALIDATE,
			       range->event, first, end, zapped, offlining ? &blk : NULL);
	}
	/* not from here: removing a notifier waits for its invalidations to end */
	if (unused)
		pfnic_odp_queue_release(xlt);
	return true;
}

const struct mmu_interval_notifier_ops pfnic_odp_ops = {
	.invalidate = pfnic_odp_invalidate,
};

/*
 * Releases a table of an implicit MR that an invalidation left with nothing mapped, unless
 * a fault filled it again meanwhile or the MR's deregistration took it first. Drops the
 * reference the invalidation took for it.
 */
static void pfnic_odp_release_block(struct work_struct *work)
{
	struct pfnic_xlt *xlt = container_of(work, struct pfnic_xlt, release_work);
	struct pfnic_mr *mr = xlt->mr;
	bool dead;

	/*
	 * A table released already may be queued once more; its MR may be gone by now. One
	 * not yet released is still indexed, and deregistration waits for this work.
	 */
	mutex_lock(&xlt->lock);
	dead = xlt->dead;
	mutex_unlock(&xlt->lock);
	if (dead) {
		pfnic_xlt_put(xlt);
		return;
	}

	mutex_lock(&mr->children_lock);
	mutex_lock(&xlt->lock);
	if (xlt->dead || xlt->npresent || xlt->nsuspended) {
		mutex_unlock(&xlt->lock);
		mutex_unlock(&mr->children_lock);
		pfnic_xlt_put(xlt);
		return;
	}
	xlt->dead = true;
	mutex_unlock(&xlt->lock);
	xa_erase(&mr->children, xlt->va >> (PAGE_SHIFT + PFNIC_IMPLICIT_SHIFT));
	mutex_unlock(&mr->children_lock);

	mmu_interval_notifier_remove(&xlt->notifier);
	pfnic_xlt_put(xlt);	/* the index's */
	pfnic_xlt_put(xlt);	/* this release's */
}

/**
 * pfnic_odp_implicit_release_all() - release every table of an implicit MR
 * @mr: the MR, being deregistered: nothing faults on it any more
 *
 * Context: process; sleeps until the tables' invalidations and releases in flight end.
 */
void pfnic_odp_implicit_release_all(struct pfnic_mr *mr)
{
	struct pfnic_xlt *xlt;
	unsigned long idx;

	mutex_lock(&mr->children_lock);
	xa_for_each(&mr->children, idx, xlt) {
		mutex_lock(&xlt->lock);
		xlt->dead = true;
		mutex_unlock(&xlt->lock);
		xa_erase(&mr->children, idx);
		mutex_unlock(&mr->children_lock);
		pfnic_xlt_zap_all(xlt);
		/* no invalidation can queue the release once the notifier is gone */
		mmu_interval_notifier_remove(&xlt->notifier);
		if (cancel_work_sync(&xlt->release_work))
			pfnic_xlt_put(xlt);	/* the release's, which never ran */
		pfnic_xlt_put(xlt);
		mutex_lock(&mr->children_lock);
	}
	mutex_unlock(&mr->children_lock);
	xa_destroy(&mr->children);
}

/*
 * The table of an implicit MR for the block holding @va, made (and following the address
 * space) if there is none yet, charged to the memory cgroup of the process that registered
 * the MR: the fault work that makes it runs in a kworker, which would charge nobody. Return:
 * the table with a reference, or an ERR_PTR.
 */
static struct pfnic_xlt *pfnic_odp_block(struct pfnic_mr *mr, struct mm_struct *mm,
					 unsigned long va)
{
	unsigned long idx = va >> (PAGE_SHIFT + PFNIC_IMPLICIT_SHIFT);
	struct mem_cgroup *memcg;
	struct pfnic_xlt *xlt;
	int rv;

	mutex_lock(&mr->children_lock);
	xlt = xa_load(&mr->children, idx);
	if (xlt) {
		kref_get(&xlt->ref);
		goto out;
	}
	memcg = set_active_memcg(mr->memcg);
	xlt = pfnic_xlt_alloc(mr, idx << (PAGE_SHIFT + PFNIC_IMPLICIT_SHIFT),
			      PFNIC_IMPLICIT_PAGES);
	set_active_memcg(memcg);
	if (!xlt) {
		xlt = ERR_PTR(-ENOMEM);
		goto out;
	}
	INIT_WORK(&xlt->release_work, pfnic_odp_release_block);
	rv = mmu_interval_notifier_insert(&xlt->notifier, mm, xlt->va,
					  PFNIC_IMPLICIT_PAGES << PAGE_SHIFT, &pfnic_odp_ops);
	if (rv) {
		pfnic_xlt_put(xlt);
		xlt = ERR_PTR(rv);
		goto out;
	}
	rv = xa_err(xa_store(&mr->children, idx, xlt, GFP_KERNEL));
	if (rv) {
		mmu_interval_notifier_remove(&xlt->notifier);
		pfnic_xlt_put(xlt);
		xlt = ERR_PTR(rv);
		goto out;
	}
	/* one reference for the index, one for the caller */
	kref_get(&xlt->ref);
out:
	mutex_unlock(&mr->children_lock);
	return xlt;
}

/*
 * Resolves one chunk inside one table: the interval notifier's sequence protocol around
 * hmm_range_fault(), then the translations written under the table's lock unless an
 * invalidation came between. Each attempt an invalidation spoils halves the chunk, down
 * to a page, so that memory changing without pause still lets some of it be mapped: then
 * *@npages says how much was. With PFNIC_FAULT_SNAPSHOT nothing is faulted: only pages
 * the CPU has mapped already get translations. Return: the pages given translations,
 * -EAGAIN if the table was released meanwhile (the caller looks it up again), -EBUSY if
 * not even one page could be mapped for HMM_RANGE_DEFAULT_TIMEOUT, or hmm_range_fault()'s
 * error.
 */
static long pfnic_odp_fault_chunk(struct pfnic_xlt *xlt, struct mm_struct *mm,
				  unsigned long start, unsigned long *npages, unsigned int flags,
				  unsigned long *pfns)
{
	struct hmm_range range = {
		.notifier = &xlt->notifier,
		.start = start,
		.end = start + (*npages << PAGE_SHIFT),
		.hmm_pfns = pfns,
	};
	unsigned long timeout = jiffies + msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	unsigned long i, idx;
	long mapped = 0;
	int rv;

	if (!(flags & PFNIC_FAULT_SNAPSHOT))
		range.default_flags = HMM_PFN_REQ_FAULT |
				      (flags & PFNIC_FAULT_WRITE ? HMM_PFN_REQ_WRITE : 0);
	for (;; range.end = start + (*npages << PAGE_SHIFT)) {
		if (time_after(jiffies, timeout))
			return -EBUSY;
		range.notifier_seq = mmu_interval_read_begin(&xlt->notifier);
		mmap_read_lock(mm);
		rv = hmm_range_fault(&range);
		mmap_read_unlock(mm);
		if (rv == -EBUSY) {
			*npages = max(*npages / 2, 1UL);
			continue;
		}
		if (rv)
			return rv;

		mutex_lock(&xlt->lock);
		if (xlt->dead) {
			mutex_unlock(&xlt->lock);
			return -EAGAIN;
		}
		if (!mmu_interval_read_retry(&xlt->notifier, range.notifier_seq))
			break;
		mutex_unlock(&xlt->lock);
		*npages = max(*npages / 2, 1UL);
	}
	idx = (start - xlt->va) >> PAGE_SHIFT;
	for (i = 0; i < *npages; i++, idx++) {
		if (!(pfns[i] & HMM_PFN_VALID))
			continue;	/* a snapshot of a page the CPU has not mapped */
		if (!xlt->pages[idx])
			xlt->npresent++;
		xlt->pages[idx] = hmm_pfn_to_page(pfns[i]);
		if (pfns[i] & HMM_PFN_WRITE)
			__set_bit(idx, xlt->writable);
		else
			__clear_bit(idx, xlt->writable);
		if (__test_and_clear_bit(idx, xlt->suspended))
			xlt->nsuspended--;
		mapped++;
	}
	mutex_unlock(&xlt->lock);
	return mapped;
}

/**
 * pfnic_odp_fault() - resolve a page fault of the device on an ODP MR, or prefetch
 * @mr: the MR (the caller holds a reference)
 * @va: first user virtual address the access needs
 * @len: bytes from @va the access needs (clamped to the MR)
 * @flags: PFNIC_FAULT_WRITE: the access writes; PFNIC_FAULT_PREFETCH: this is a prefetch
 *	(ibv_advise_mr), counted as such; PFNIC_FAULT_SNAPSHOT: fault nothing, only take the
 *	translations of pages the CPU has mapped (a prefetch that must not fault)
 *
 * Runs in process context (pfnic_fault_wq, pfnic_prefetch_wq, or the advising process),
 * with the MR owner's mm; holds no lock of the MR on entry or return.
 *
 * Return: 0 once translations for the whole range were written (they may be invalidated
 * again before the engine uses them; it then faults again); -EFAULT if the range is not
 * mapped with the needed permission, lies outside the MR, or the owner's address space is
 * gone; -EBUSY if the range kept changing for HMM_RANGE_DEFAULT_TIMEOUT; -ENOMEM. A
 * snapshot fails only when the MR's address space is gone or memory ran out: it skips
 * whatever it cannot map.
 */
int pfnic_odp_fault(struct pfnic_mr *mr, unsigned long va, size_t len, unsigned int flags)
{
	unsigned long start = va & PAGE_MASK;
	unsigned long end = min(PAGE_ALIGN(va + len), mr->va + (mr->npages << PAGE_SHIFT));
	bool snapshot = flags & PFNIC_FAULT_SNAPSHOT;
	unsigned long *pfns, n, done = 0;
	struct pfnic_xlt *xlt;
	long got;
	int rv = 0;

	if (!pfnic_mr_odp(mr) || va < mr->va || start >= end)
		return -EFAULT;
	if (!mmget_not_zero(mr->mm))
		return -EFAULT;
	pfns = kmalloc_array(PFNIC_FAULT_CHUNK, sizeof(*pfns), GFP_KERNEL);
	if (!pfns) {
		rv = -ENOMEM;
		goto out;
	}
	atomic_inc(&mr->faulting);
	while (start < end) {
		if (mr->kind == PFNIC_MR_IMPLICIT)
			xlt = pfnic_odp_block(mr, mr->mm, start);
		else
			xlt = pfnic_xlt_get(mr, start);
		if (IS_ERR(xlt)) {
			rv = PTR_ERR(xlt);
			break;
		}
		n = min3((end - start) >> PAGE_SHIFT, PFNIC_FAULT_CHUNK,
			 xlt->npages - ((start - xlt->va) >> PAGE_SHIFT));
		got = pfnic_odp_fault_chunk(xlt, mr->mm, start, &n, flags, pfns);
		if (got != -EAGAIN && mr->kind == PFNIC_MR_IMPLICIT) {
			/*
			 * A fault that mapped nothing (unmapped memory, a snapshot of memory
			 * never touched) leaves no table behind, nor one per address a peer
			 * chose to try.
			 */
			mutex_lock(&xlt->lock);
			if (pfnic_odp_unused(xlt))
				pfnic_odp_queue_release(xlt);
			mutex_unlock(&xlt->lock);
		}
		pfnic_xlt_put(xlt);
		if (got == -EAGAIN)
			continue;
		/* a snapshot skips what it cannot map */
		if (got < 0 && (!snapshot || got == -ENOMEM)) {
			rv = got;
			break;
		}
		done += max(got, 0L);
		start += n << PAGE_SHIFT;
	}
	atomic_dec(&mr->faulting);
	kfree(pfns);
	trace_pfnic_fault(mr, va, len, flags, done, rv);
	if (flags & PFNIC_FAULT_PREFETCH) {
		pfnic_mr_count(mr, PFNIC_STAT_PAGE_PREFETCH, done);
	} else {
		pfnic_mr_count(mr, PFNIC_STAT_PAGE_FAULTS, done);
		/* one that timed out is taken again: the engine counts it as a retry */
		if (rv != -EBUSY)
			pfnic_mr_count(mr, rv ? PFNIC_STAT_PAGE_FAULT_ERRORS :
					 PFNIC_STAT_PAGE_FAULTS_HANDLED, 1);
	}
out:
	mmput(mr->mm);
	return rv;
}

/* ---- prefetch (ibv_advise_mr) ------------------------------------------------------------ */

/* One range of a prefetch, with a reference on its MR. */
struct pfnic_prefetch_sge {
	struct pfnic_mr *mr;
	unsigned long uva;
	u32 len;
};

/* A prefetch left to the workqueue: ADVISE_MR without IB_UVERBS_ADVISE_MR_FLAG_FLUSH. */
struct pfnic_prefetch_work {
	struct work_struct work;
	struct pfnic_dev *pfnic;
	unsigned int flags;
	u32 num_sge;
	struct pfnic_prefetch_sge sge[];
};

static unsigned int pfnic_prefetch_flags(enum ib_uverbs_advise_mr_advice advice)
{
	switch (advice) {
	case IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_WRITE:
		return PFNIC_FAULT_PREFETCH | PFNIC_FAULT_WRITE;
	case IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT:
		return PFNIC_FAULT_PREFETCH | PFNIC_FAULT_SNAPSHOT;
	default:
		return PFNIC_FAULT_PREFETCH;
	}
}

/*
 * The ODP MR of @pd that @sge names and covers, with a reference; NULL if the key names no
 * ODP MR of @pd, the range is outside it, or the advice writes an MR that cannot be written.
 */
static struct pfnic_mr *pfnic_prefetchable(struct ib_pd *pd, const struct ib_sge *sge,
					   unsigned int flags)
{
	struct pfnic_mr *mr = pfnic_mr_get(sge->lkey);

	if (!mr)
		return NULL;
	if (mr->ibmr.pd != pd || !pfnic_mr_odp(mr) ||
	    !pfnic_mr_covers(mr, sge->addr, sge->length) ||
	    ((flags & PFNIC_FAULT_WRITE) &&
	     !(mr->access & (IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE)))) {
		pfnic_mr_put(mr);
		return NULL;
	}
	return mr;
}

static void pfnic_prefetch_run(struct work_struct *work)
{
	struct pfnic_prefetch_work *pw = container_of(work, struct pfnic_prefetch_work, work);
	u32 i;

	/* advice, not a command: what cannot be prefetched is left to fault later */
	for (i = 0; i < pw->num_sge; i++)
		if (pw->sge[i].len)
			pfnic_odp_fault(pw->sge[i].mr, pw->sge[i].uva, pw->sge[i].len, pw->flags);
	/* the device outlives the MRs' references, not the last of them */
	atomic_dec(&pw->pfnic->prefetches);
	for (i = 0; i < pw->num_sge; i++)
		pfnic_mr_put(pw->sge[i].mr);
	kvfree(pw);
}

/**
 * pfnic_advise_mr() - ibv_advise_mr(): prefetch ranges of ODP MRs
 * @pd: the PD every MR must belong to
 * @advice: PREFETCH (map for reading, writable where the CPU's mapping already is),
 *	PREFETCH_WRITE (map for writing, breaking copy-on-write), PREFETCH_NO_FAULT (map only
 *	what the CPU has mapped, faulting nothing)
 * @flags: IB_UVERBS_ADVISE_MR_FLAG_FLUSH: prefetch before returning; otherwise the
 *	workqueue prefetches after the call returns
 * @sg_list: the ranges (lkey, addr as an iova, length)
 * @num_sge: how many; at least one (the core checks)
 * @attrs: unused
 *
 * Context: process; sleeps.
 * Without FLUSH, a device with PFNIC_PREFETCH_QUEUED prefetches queued already drops the
 * advice: it is advice, and a process that advises faster than memory can be mapped must
 * not grow the queue without bound.
 *
 * Return: 0; -EOPNOTSUPP for another advice; with FLUSH, -ENOENT if a range is not
 * prefetchable (no ODP MR of @pd with that key, outside it, or PREFETCH_WRITE on a MR
 * without write access) or the fault's error (-EFAULT: memory not mapped as needed);
 * without FLUSH, -EINVAL if a range is not prefetchable, -ENOMEM. These are mlx5's errors.
 */
int pfnic_advise_mr(struct ib_pd *pd, enum ib_uverbs_advise_mr_advice advice, u32 flags,
		    struct ib_sge *sg_list, u32 num_sge, struct uverbs_attr_bundle *attrs)
{
	unsigned int fflags = pfnic_prefetch_flags(advice);
	struct pfnic_prefetch_work *pw;
	struct pfnic_mr *mr;
	u32 i;
	int rv;

	if (advice != IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH &&
	    advice != IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_WRITE &&
	    advice != IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT)
		return -EOPNOTSUPP;

	if (flags & IB_UVERBS_ADVISE_MR_FLAG_FLUSH) {
		for (i = 0; i < num_sge; i++) {
			mr = pfnic_prefetchable(pd, &sg_list[i], fflags);
			if (!mr)
				return -ENOENT;
			rv = sg_list[i].length ?
			     pfnic_odp_fault(mr, pfnic_mr_uva(mr, sg_list[i].addr),
					     sg_list[i].length, fflags) : 0;
			pfnic_mr_put(mr);
			if (rv)
				return rv;
		}
		return 0;
	}

	pw = kvzalloc(struct_size(pw, sge, num_sge), GFP_KERNEL_ACCOUNT);
	if (!pw)
		return -ENOMEM;
	INIT_WORK(&pw->work, pfnic_prefetch_run);
	pw->pfnic = to_pfnic_dev(pd->device);
	pw->flags = fflags;
	for (i = 0; i < num_sge; i++) {
		mr = pfnic_prefetchable(pd, &sg_list[i], fflags);
		if (!mr) {
			while (i--)
				pfnic_mr_put(pw->sge[i].mr);
			kvfree(pw);
			return -EINVAL;
		}
		pw->sge[i].mr = mr;
		pw->sge[i].uva = pfnic_mr_uva(mr, sg_list[i].addr);
		pw->sge[i].len = sg_list[i].length;
	}
	pw->num_sge = num_sge;
	if (atomic_inc_return(&pw->pfnic->prefetches) > PFNIC_PREFETCH_QUEUED) {
		atomic_dec(&pw->pfnic->prefetches);
		for (i = 0; i < num_sge; i++)
			pfnic_mr_put(pw->sge[i].mr);
		kvfree(pw);
		return 0;
	}
	queue_work(pfnic_prefetch_wq, &pw->work);
	return 0;
}

/**
 * pfnic_odp_mr_sum() - how many of an MR's pages are mapped, and suspended, now
 * @mr: the MR
 * @sum: filled in
 *
 * A snapshot for reporting: tables are read without their locks.
 */
void pfnic_odp_mr_sum(struct pfnic_mr *mr, struct pfnic_mr_sum *sum)
{
	struct pfnic_xlt *xlt;
	unsigned long idx;

	memset(sum, 0, sizeof(*sum));
	if (mr->kind != PFNIC_MR_IMPLICIT) {
		sum->npresent = READ_ONCE(mr->xlt->npresent);
		sum->nsuspended = READ_ONCE(mr->xlt->nsuspended);
		sum->ntables = 1;
		return;
	}
	rcu_read_lock();
	xa_for_each(&mr->children, idx, xlt) {
		sum->npresent += READ_ONCE(xlt->npresent);
		sum->nsuspended += READ_ONCE(xlt->nsuspended);
		sum->ntables++;
	}
	rcu_read_unlock();
}
