// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: memory regions. Registration builds the MR's translation table, pinned or On
 * Demand (pfnic_odp.c keeps ODP tables up to date); keys map to MRs through one table for
 * all pfnic devices, since RC peers may sit on any of them.
 */
#include <linux/mm.h>
#include <linux/random.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/xarray.h>

#include "pfnic.h"

/*
 * key >> 8 -> MR. An index is reserved (NULL) while its MR is built and published only
 * when complete; lookups take a reference under the xarray's lock, which dereg's erase
 * also takes, so no lookup can find an MR whose release has begun.
 */
static DEFINE_XARRAY_ALLOC1(pfnic_mrs);

#define PFNIC_MR_ACCESS (IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | \
			 IB_ACCESS_REMOTE_READ | IB_ACCESS_ON_DEMAND | IB_ACCESS_OPTIONAL)

static void pfnic_mr_release(struct kref *ref)
{
	complete(&container_of(ref, struct pfnic_mr, ref)->done);
}

/**
 * pfnic_mr_get() - the MR a key names, with a reference
 * @key: an lkey or rkey
 *
 * Return: the MR, or NULL if no MR has that key (any more).
 */
struct pfnic_mr *pfnic_mr_get(u32 key)
{
	struct pfnic_mr *mr;

	xa_lock(&pfnic_mrs);
	mr = xa_load(&pfnic_mrs, key >> 8);
	if (mr && (mr->ibmr.lkey != key || !kref_get_unless_zero(&mr->ref)))
		mr = NULL;
	xa_unlock(&pfnic_mrs);
	return mr;
}

void pfnic_mr_put(struct pfnic_mr *mr)
{
	kref_put(&mr->ref, pfnic_mr_release);
}

/**
 * pfnic_mr_page() - the translation of one user address of an MR
 * @mr: the MR, whose @lock the caller holds
 * @uva: a user virtual address inside the MR
 * @write: the page is to be written
 *
 * Return: the page, or NULL if no translation is present (or only a read-only one when
 * @write): the access must fault first.
 */
struct page *pfnic_mr_page(struct pfnic_mr *mr, unsigned long uva, bool write)
{
	unsigned long idx = (uva - mr->va) >> PAGE_SHIFT;

	lockdep_assert_held(&mr->lock);
	if (write && !test_bit(idx, mr->writable))
		return NULL;
	return mr->pages[idx];
}

/* Charges pinned pages to the owner's RLIMIT_MEMLOCK, as every pinning RDMA driver does. */
static int pfnic_account_pinned(struct mm_struct *mm, unsigned long npages)
{
	unsigned long limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	u64 pinned = atomic64_add_return(npages, &mm->pinned_vm);

	if (pinned > limit && !capable(CAP_IPC_LOCK)) {
		atomic64_sub(npages, &mm->pinned_vm);
		return -ENOMEM;
	}
	return 0;
}

/* Unpins the first @npinned pages and gives back the whole MR's RLIMIT_MEMLOCK charge. */
static void pfnic_unpin(struct pfnic_mr *mr, unsigned long npinned)
{
	unpin_user_pages_dirty_lock(mr->pages, npinned, !!(mr->access & IB_ACCESS_LOCAL_WRITE));
	atomic64_sub(mr->npages, &mr->mm->pinned_vm);
}

/* Pins every page of a non-ODP MR and fills its translation table once. */
static int pfnic_mr_pin(struct pfnic_mr *mr)
{
	unsigned int gup = FOLL_LONGTERM;
	unsigned long done = 0;
	long got;
	int rv;

	if (mr->access & (IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE))
		gup |= FOLL_WRITE;
	rv = pfnic_account_pinned(mr->mm, mr->npages);
	if (rv)
		return rv;
	while (done < mr->npages) {
		got = pin_user_pages_fast(mr->va + (done << PAGE_SHIFT),
					  min_t(unsigned long, mr->npages - done, 1UL << 16),
					  gup, mr->pages + done);
		if (got <= 0) {
			rv = got ? (int)got : -EFAULT;
			goto err_unpin;
		}
		done += got;
		if (fatal_signal_pending(current)) {
			rv = -EINTR;
			goto err_unpin;
		}
	}
	if (gup & FOLL_WRITE)
		bitmap_fill(mr->writable, mr->npages);
	return 0;

err_unpin:
	pfnic_unpin(mr, done);
	memset(mr->pages, 0, done * sizeof(*mr->pages));
	return rv;
}

/*
 * Undoes a registration that got its translations: stops following the address space (an
 * invalidation in progress is waited for) or unpins, then frees.
 */
static void pfnic_mr_destroy(struct pfnic_mr *mr)
{
	if (mr->odp)
		mmu_interval_notifier_remove(&mr->notifier);
	else
		pfnic_unpin(mr, mr->npages);
	mmdrop(mr->mm);
	bitmap_free(mr->writable);
	kvfree(mr->pages);
	kfree(mr);
}

struct ib_mr *pfnic_reg_user_mr(struct ib_pd *ibpd, u64 start, u64 length, u64 iova,
				int access, struct ib_udata *udata)
{
	struct pfnic_dev *pfnic = to_pfnic_dev(ibpd->device);
	struct pfnic_mr *mr;
	unsigned long end;
	u32 index;
	int rv;

	if (access & ~PFNIC_MR_ACCESS)
		return ERR_PTR(-EOPNOTSUPP);
	/* implicit ODP (the whole address space: start 0, length U64_MAX) is not there yet */
	if ((access & IB_ACCESS_ON_DEMAND) && !start && length == U64_MAX)
		return ERR_PTR(-EOPNOTSUPP);
	if (!length || start + length < start || iova + length < iova)
		return ERR_PTR(-EINVAL);
	if (udata && (udata->inlen || udata->outlen))
		return ERR_PTR(-EINVAL);

	mr = kzalloc(sizeof(*mr), GFP_KERNEL);
	if (!mr)
		return ERR_PTR(-ENOMEM);
	mr->pfnic = pfnic;
	kref_init(&mr->ref);
	init_completion(&mr->done);
	mutex_init(&mr->lock);
	mr->access = access;
	mr->odp = access & IB_ACCESS_ON_DEMAND;
	mr->iova = iova;
	mr->length = length;
	mr->start = start;
	mr->va = start & PAGE_MASK;
	end = PAGE_ALIGN(start + length);
	mr->npages = (end - mr->va) >> PAGE_SHIFT;
	mr->pages = kvcalloc(mr->npages, sizeof(*mr->pages), GFP_KERNEL);
	mr->writable = bitmap_zalloc(mr->npages, GFP_KERNEL);
	if (!mr->pages || !mr->writable) {
		rv = -ENOMEM;
		goto err_free;
	}
	mr->mm = current->mm;
	mmgrab(mr->mm);

	if (mr->odp)
		rv = mmu_interval_notifier_insert(&mr->notifier, mr->mm, mr->va,
						  mr->npages << PAGE_SHIFT, &pfnic_odp_ops);
	else
		rv = pfnic_mr_pin(mr);
	if (rv)
		goto err_mm;

	rv = xa_alloc(&pfnic_mrs, &index, NULL, XA_LIMIT(1, PFNIC_MAX_MR), GFP_KERNEL);
	if (rv) {
		pfnic_mr_destroy(mr);
		return ERR_PTR(rv);
	}
	mr->index = index;
	mr->ibmr.lkey = (index << 8) | get_random_u8();
	mr->ibmr.rkey = mr->ibmr.lkey;
	mr->ibmr.iova = iova;
	mr->ibmr.length = length;
	xa_store(&pfnic_mrs, index, mr, GFP_KERNEL);
	return &mr->ibmr;

err_mm:
	mmdrop(mr->mm);
err_free:
	bitmap_free(mr->writable);
	kvfree(mr->pages);
	kfree(mr);
	return ERR_PTR(rv);
}

int pfnic_dereg_mr(struct ib_mr *ibmr, struct ib_udata *udata)
{
	struct pfnic_mr *mr = to_pfnic_mr(ibmr);

	/* no new lookups, then wait until the engine holds no reference */
	xa_erase(&pfnic_mrs, mr->index);
	pfnic_mr_put(mr);
	wait_for_completion(&mr->done);
	pfnic_mr_destroy(mr);
	return 0;
}
