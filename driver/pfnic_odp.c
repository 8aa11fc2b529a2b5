// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: the ODP core. What mlx5's odp.c is to ConnectX: it resolves the device's page
 * faults into translations, and on MMU-notifier invalidation it suspends the translations
 * the kernel is changing. The MR and its keys stay valid throughout; the next access
 * faults and updates the translation.
 */
#include <linux/hmm.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

#include "pfnic.h"

/* Pages resolved by one hmm_range_fault() call. */
#define PFNIC_FAULT_CHUNK 64

/*
 * Invalidation: zap the affected entries under the MR's lock. The engine copies to and
 * from a page only while holding that lock, so once we hold it no access to those pages
 * is in flight, and none can start until the next fault re-validates them.
 */
static bool pfnic_odp_invalidate(struct mmu_interval_notifier *mni,
				 const struct mmu_notifier_range *range, unsigned long cur_seq)
{
	struct pfnic_mr *mr = container_of(mni, struct pfnic_mr, notifier);
	unsigned long start, end, idx, zapped = 0;

	if (mmu_notifier_range_blockable(range))
		mutex_lock(&mr->lock);
	else if (!mutex_trylock(&mr->lock))
		return false;

	mmu_interval_set_seq(mni, cur_seq);
	start = max(range->start, mr->va);
	end = min(range->end, mr->va + (mr->npages << PAGE_SHIFT));
	for (idx = (start - mr->va) >> PAGE_SHIFT; start < end; start += PAGE_SIZE, idx++) {
		if (mr->pages[idx]) {
			mr->pages[idx] = NULL;
			zapped++;
		}
		clear_bit(idx, mr->writable);
	}
	mr->last_event = range->event;
	mutex_unlock(&mr->lock);

	atomic64_inc(&mr->invalidations);
	atomic64_add(zapped, &mr->pages_invalidated);
	pfnic_stat_add(mr->pfnic, PFNIC_STAT_INVALIDATIONS, 1);
	pfnic_stat_add(mr->pfnic, PFNIC_STAT_PAGES_INVALIDATED, zapped);
	return true;
}

const struct mmu_interval_notifier_ops pfnic_odp_ops = {
	.invalidate = pfnic_odp_invalidate,
};

/*
 * Resolves one chunk: the interval notifier's sequence protocol around hmm_range_fault(),
 * then the translations written under the MR's lock unless an invalidation came between.
 */
static int pfnic_odp_fault_chunk(struct pfnic_mr *mr, struct mm_struct *mm, unsigned long start,
				 unsigned long npages, bool write, unsigned long *pfns)
{
	struct hmm_range range = {
		.notifier = &mr->notifier,
		.start = start,
		.end = start + (npages << PAGE_SHIFT),
		.hmm_pfns = pfns,
		.default_flags = HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0),
	};
	unsigned long timeout = jiffies + msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	unsigned long i, idx;
	int rv;

	for (;;) {
		if (time_after(jiffies, timeout))
			return -EBUSY;
		range.notifier_seq = mmu_interval_read_begin(&mr->notifier);
		mmap_read_lock(mm);
		rv = hmm_range_fault(&range);
		mmap_read_unlock(mm);
		if (rv == -EBUSY)
			continue;
		if (rv)
			return rv;

		mutex_lock(&mr->lock);
		if (!mmu_interval_read_retry(&mr->notifier, range.notifier_seq))
			break;
		mutex_unlock(&mr->lock);
	}
	idx = (start - mr->va) >> PAGE_SHIFT;
	for (i = 0; i < npages; i++, idx++) {
		mr->pages[idx] = hmm_pfn_to_page(pfns[i]);
		if (pfns[i] & HMM_PFN_WRITE)
			set_bit(idx, mr->writable);
		else
			clear_bit(idx, mr->writable);
	}
	mutex_unlock(&mr->lock);
	return 0;
}

/**
 * pfnic_odp_fault() - resolve a page fault of the device on an ODP MR
 * @mr: the MR (the caller holds a reference, not its lock)
 * @va: first user virtual address the access needs
 * @len: bytes from @va the access needs (clamped to the MR)
 * @write: the access writes
 *
 * Runs in process context (the engine's workqueue), with the MR owner's mm.
 *
 * Return: 0 once translations for the whole range were written (they may be invalidated
 * again before the engine uses them; it then faults again); -EFAULT if the range is not
 * mapped with the needed permission, or the owner's address space is gone; -EBUSY if the
 * range kept changing for HMM_RANGE_DEFAULT_TIMEOUT; -ENOMEM.
 */
int pfnic_odp_fault(struct pfnic_mr *mr, unsigned long va, size_t len, bool write)
{
	unsigned long start = va & PAGE_MASK;
	unsigned long end = min(PAGE_ALIGN(va + len), mr->va + (mr->npages << PAGE_SHIFT));
	unsigned long *pfns, n;
	int rv = 0;

	if (!mr->odp || va < mr->va || start >= end)
		return -EFAULT;
	if (!mmget_not_zero(mr->mm))
		return -EFAULT;
	pfns = kmalloc_array(PFNIC_FAULT_CHUNK, sizeof(*pfns), GFP_KERNEL);
	if (!pfns) {
		rv = -ENOMEM;
		goto out;
	}
	atomic64_inc(&mr->page_faults);
	pfnic_stat_add(mr->pfnic, PFNIC_STAT_PAGE_FAULTS, 1);
	while (start < end) {
		n = min_t(unsigned long, (end - start) >> PAGE_SHIFT, PFNIC_FAULT_CHUNK);
		rv = pfnic_odp_fault_chunk(mr, mr->mm, start, n, write, pfns);
		if (rv)
			break;
		atomic64_add(n, &mr->pages_faulted);
		pfnic_stat_add(mr->pfnic, PFNIC_STAT_PAGES_FAULTED, n);
		start += n << PAGE_SHIFT;
	}
	kfree(pfns);
	if (rv)
		pfnic_stat_add(mr->pfnic, PFNIC_STAT_PAGE_FAULT_ERRORS, 1);
out:
	mmput(mr->mm);
	return rv;
}
