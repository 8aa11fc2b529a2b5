// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: memory regions. Registration builds the MR's translation table: pinned, On Demand
 * over a given range, or (implicit ODP) none yet, for the whole address space; pfnic_odp.c
 * keeps ODP tables up to date. Keys map to MRs through one table for all pfnic devices,
 * since RC peers may sit on any of them.
 */
#include <linux/memcontrol.h>
#include <linux/memory.h>
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
 * also takes, so no lookup can find an MR whose release has begun. Indexes span the 24
 * bits a key has for them: each device's own limit (max_mr) is kept apart.
 */
static DEFINE_XARRAY_ALLOC1(pfnic_mrs);
#define PFNIC_MR_INDEX_MAX	((1U << 24) - 1)

static unsigned long *pfnic_bitmap_alloc(unsigned long nbits)
{
	return kvcalloc(BITS_TO_LONGS(nbits), sizeof(unsigned long), PFNIC_GFP_USER_SIZED);
}

/*
 * What a registration may ask for. IB_ACCESS_HUGETLB and the optional bits (relaxed
 * ordering) are hints, taken as mlx5 and rxe take them; IB_ACCESS_MW_BIND is a right no
 * memory window of pfnic can use yet, accepted as rxe accepts it.
 */
#define PFNIC_MR_ACCESS (IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | \
			 IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC | IB_ACCESS_ON_DEMAND | \
			 IB_ACCESS_MW_BIND | IB_ACCESS_HUGETLB | IB_ACCESS_OPTIONAL)
/* The rights a kernel MR may be given (get_dma_mr, IB_WR_REG_MR). */
#define PFNIC_KERNEL_MR_ACCESS (IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | \
				IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC | \
				IB_ACCESS_MW_BIND | IB_ACCESS_OPTIONAL)

static void pfnic_mr_release(struct kref *ref)
{
	complete(&container_of(ref, struct pfnic_mr, ref)->done);
}

/**
 * pfnic_mr_get() - the valid MR a key names, with a reference
 * @key: an lkey or rkey
 *
 * Return: the MR, or NULL if no MR has that key (any more), or the fast-registration MR
 * that has it is not registered now.
 */
struct pfnic_mr *pfnic_mr_get(u32 key)
{
	struct pfnic_mr *mr;

	xa_lock(&pfnic_mrs);
	mr = xa_load(&pfnic_mrs, key >> 8);
	if (mr && (READ_ONCE(mr->key) != key || !READ_ONCE(mr->valid) ||
		   !kref_get_unless_zero(&mr->ref)))
		mr = NULL;
	xa_unlock(&pfnic_mrs);
	return mr;
}

/**
 * pfnic_mr_get_index() - the MR at an index of the key table, valid or not, with a reference
 * @index: the key's upper 24 bits
 *
 * Return: the MR, or NULL if there is none there (any more).
 */
struct pfnic_mr *pfnic_mr_get_index(u32 index)
{
	struct pfnic_mr *mr;

	xa_lock(&pfnic_mrs);
	mr = xa_load(&pfnic_mrs, index);
	if (mr && !kref_get_unless_zero(&mr->ref))
		mr = NULL;
	xa_unlock(&pfnic_mrs);
	return mr;
}

void pfnic_mr_put(struct pfnic_mr *mr)
{
	kref_put(&mr->ref, pfnic_mr_release);
}

/**
 * pfnic_mr_count() - count ODP work of an MR, in its counters and its device's
 * @mr: the MR
 * @stat: one of the counters kept per MR (below PFNIC_MR_STAT_COUNT)
 * @n: how much
 */
void pfnic_mr_count(struct pfnic_mr *mr, enum pfnic_stat stat, u64 n)
{
	atomic64_add(n, &mr->stats[stat]);
	pfnic_stat_add(mr->pfnic, stat, n);
}

/**
 * pfnic_xlt_alloc() - an empty translation table for @npages pages from @va
 * @mr: the MR it translates for
 * @va: its first user virtual address, page aligned
 * @npages: its size in pages
 *
 * Return: the table with one reference, or NULL if memory ran out.
 */
struct pfnic_xlt *pfnic_xlt_alloc(struct pfnic_mr *mr, unsigned long va, unsigned long npages)
{
	struct pfnic_xlt *xlt = kzalloc(sizeof(*xlt), GFP_KERNEL_ACCOUNT);

	if (!xlt)
		return NULL;
	xlt->mr = mr;
	kref_init(&xlt->ref);
	mutex_init(&xlt->lock);
	xlt->va = va;
	xlt->npages = npages;
	xlt->pages = kvcalloc(npages, sizeof(*xlt->pages), PFNIC_GFP_USER_SIZED);
	xlt->writable = pfnic_bitmap_alloc(npages);
	xlt->suspended = pfnic_bitmap_alloc(npages);
	xlt->dirty = pfnic_bitmap_alloc(npages);
	if (!xlt->pages || !xlt->writable || !xlt->suspended || !xlt->dirty) {
		kvfree(xlt->dirty);
		kvfree(xlt->suspended);
		kvfree(xlt->writable);
		kvfree(xlt->pages);
		kfree(xlt);
		return NULL;
	}
	return xlt;
}

static void pfnic_xlt_release(struct kref *ref)
{
	struct pfnic_xlt *xlt = container_of(ref, struct pfnic_xlt, ref);

	/* no user is left; a lookup may still be reading @ref under RCU */
	kvfree(xlt->dirty);
	kvfree(xlt->suspended);
	kvfree(xlt->writable);
	kvfree(xlt->pages);
	kfree_rcu(xlt, rcu);
}

void pfnic_xlt_put(struct pfnic_xlt *xlt)
{
	kref_put(&xlt->ref, pfnic_xlt_release);
}

/**
 * pfnic_xlt_get() - the translation table that covers a user address of an MR
 * @mr: the MR, of which the caller holds a reference
 * @uva: a user virtual address inside it
 *
 * Return: the table with a reference, or NULL: an implicit MR has no table there (yet).
 */
struct pfnic_xlt *pfnic_xlt_get(struct pfnic_mr *mr, unsigned long uva)
{
	struct pfnic_xlt *xlt;

	if (mr->kind != PFNIC_MR_IMPLICIT) {
		kref_get(&mr->xlt->ref);
		return mr->xlt;
	}
	rcu_read_lock();
	xlt = xa_load(&mr->children, uva >> (PAGE_SHIFT + PFNIC_IMPLICIT_SHIFT));
	if (xlt && !kref_get_unless_zero(&xlt->ref))
		xlt = NULL;
	rcu_read_unlock();
	return xlt;
}

/**
 * pfnic_xlt_page() - the translation of one user address
 * @xlt: the table that covers @uva, whose @lock the caller holds
 * @uva: the address
 * @write: the page is to be written
 *
 * A page taken for writing is recorded (@xlt->dirty), and marked dirty when its
 * translation goes (pfnic_xlt_zap()).
 *
 * Return: the page, or NULL if no translation is present (or only a read-only one when
 * @write): the access must fault first.
 */
struct page *pfnic_xlt_page(struct pfnic_xlt *xlt, unsigned long uva, bool write)
{
	unsigned long idx = (uva - xlt->va) >> PAGE_SHIFT;

	lockdep_assert_held(&xlt->lock);
	if (!write)
		return xlt->pages[idx];
	if (!test_bit(idx, xlt->writable))
		return NULL;
	__set_bit(idx, xlt->dirty);
	return xlt->pages[idx];
}

/**
 * pfnic_xlt_zap() - drop one translation of an ODP table
 * @xlt: the table, whose @lock the caller holds
 * @idx: the entry
 *
 * A page the engine wrote through the translation is marked dirty first. The CPU's page
 * tables have no record of a write through a kernel mapping, so without this a page of a
 * shared file, shmem or the swap cache that only RDMA wrote could be written back or
 * reclaimed as clean, and what RDMA wrote lost. The page is still mapped here (the
 * invalidation that zaps it runs before the kernel unmaps it), which keeps truncation away
 * as marking a page dirty requires.
 */
void pfnic_xlt_zap(struct pfnic_xlt *xlt, unsigned long idx)
{
	lockdep_assert_held(&xlt->lock);
	if (!xlt->pages[idx])
		return;
	if (__test_and_clear_bit(idx, xlt->dirty))
		folio_mark_dirty(page_folio(xlt->pages[idx]));
	xlt->pages[idx] = NULL;
	xlt->npresent--;
	__clear_bit(idx, xlt->writable);
}

/**
 * pfnic_xlt_zap_all() - hand the pages the engine wrote back to the kernel, dirty, before an
 *			 ODP table stops following memory
 * @xlt: the table, whose interval notifier is about to be removed
 *
 * Context: process; takes @xlt->lock, which waits for the engine's accesses in flight.
 */
void pfnic_xlt_zap_all(struct pfnic_xlt *xlt)
{
	unsigned long idx, n = 0;

	mutex_lock(&xlt->lock);
	/* the table goes next: only the pages the engine wrote need anything done */
	for_each_set_bit(idx, xlt->dirty, xlt->npages) {
		pfnic_xlt_zap(xlt, idx);
		if (!(++n % 1024))
			cond_resched();
	}
	mutex_unlock(&xlt->lock);
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
	unpin_user_pages_dirty_lock(mr->xlt->pages, npinned,
				    !!(mr->access & IB_ACCESS_LOCAL_WRITE));
	atomic64_sub(mr->npages, &mr->mm->pinned_vm);
}

/*
 * The memory blocks (/sys/devices/system/memory/memory<N>) a pinned MR holds pages of, as
 * a list of ranges ("32" or "0-3,40"), into @mr->pinned_blocks: offlining any of them fails
 * until the MR is deregistered. Pinned pages never move, so this is worked out once, here,
 * not on every `rdma resource show mr -dd` of every user. Return: 0 or -ENOMEM.
 */
#define PFNIC_PINNED_BLOCKS_MAX	1024

static int pfnic_mr_find_blocks(struct pfnic_mr *mr)
{
	unsigned long bsize = memory_block_size_bytes(), last = 0, i;
	unsigned long *blocks;

	for (i = 0; i < mr->npages; i++) {
		last = max(last, PFN_PHYS(page_to_pfn(mr->xlt->pages[i])) / bsize);
		if (!(i % 4096))
			cond_resched();
	}
	blocks = pfnic_bitmap_alloc(last + 1);
	if (!blocks)
		return -ENOMEM;
	for (i = 0; i < mr->npages; i++) {
		__set_bit(PFN_PHYS(page_to_pfn(mr->xlt->pages[i])) / bsize, blocks);
		if (!(i % 4096))
			cond_resched();
	}
	mr->pinned_blocks = kasprintf(GFP_KERNEL_ACCOUNT, "%*pbl", (int)(last + 1), blocks);
	kvfree(blocks);
	if (!mr->pinned_blocks)
		return -ENOMEM;
	/* a list that long would not fit one netlink message: say that it goes on */
	if (strlen(mr->pinned_blocks) > PFNIC_PINNED_BLOCKS_MAX)
		strcpy(mr->pinned_blocks + PFNIC_PINNED_BLOCKS_MAX - 3, "...");
	return 0;
}

/*
 * Pins every page of a non-ODP MR and fills its translation table once. The pages are
 * charged already (pfnic_account_pinned()); on failure the charge is given back.
 */
static int pfnic_mr_pin(struct pfnic_mr *mr)
{
	unsigned int gup = FOLL_LONGTERM;
	unsigned long done = 0;
	long got;
	int rv;

	if (mr->access & (IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE))
		gup |= FOLL_WRITE;
	while (done < mr->npages) {
		got = pin_user_pages_fast(mr->va + (done << PAGE_SHIFT),
					  min_t(unsigned long, mr->npages - done, 1UL << 16),
					  gup, mr->xlt->pages + done);
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
	rv = pfnic_mr_find_blocks(mr);
	if (rv)
		goto err_unpin;
	if (gup & FOLL_WRITE)
		bitmap_fill(mr->xlt->writable, mr->npages);
	mr->xlt->npresent = mr->npages;
	return 0;

err_unpin:
	pfnic_unpin(mr, done);
	memset(mr->xlt->pages, 0, done * sizeof(*mr->xlt->pages));
	return rv;
}

/*
 * Undoes a registration that got its translations: stops following the address space (an
 * invalidation in progress is waited for) or unpins, then frees.
 */
static void pfnic_mr_destroy(struct pfnic_mr *mr)
{
	switch (mr->kind) {
	case PFNIC_MR_IMPLICIT:
		pfnic_odp_implicit_release_all(mr);
		break;
	case PFNIC_MR_ODP:
		/* the pages RDMA wrote are the kernel's to write back from here on */
		pfnic_xlt_zap_all(mr->xlt);
		mmu_interval_notifier_remove(&mr->xlt->notifier);
		pfnic_xlt_put(mr->xlt);
		break;
	case PFNIC_MR_PINNED:
		pfnic_unpin(mr, mr->npages);
		pfnic_xlt_put(mr->xlt);
		kfree(mr->pinned_blocks);
		break;
	case PFNIC_MR_DMA:
	case PFNIC_MR_FAST:
		/* kernel memory: nothing was pinned or followed */
		kvfree(mr->fast_pages);
		kfree(mr);
		return;
	case PFNIC_MR_WINDOW:
		/* a window is its struct pfnic_mw's, which the core frees */
		WARN_ON_ONCE(1);
		return;
	}
	put_pid(mr->owner);
	mem_cgroup_put(mr->memcg);
	mmdrop(mr->mm);
	kfree(mr);
}

/*
 * Gives a built MR its index in the key table, and so its keys, and publishes it.
 * Return: 0, or the xarray's error (the MR is then not published).
 */
static int pfnic_mr_publish(struct pfnic_mr *mr)
{
	u32 index;
	int rv;

	rv = xa_alloc(&pfnic_mrs, &index, NULL, XA_LIMIT(1, PFNIC_MR_INDEX_MAX), GFP_KERNEL);
	if (rv)
		return rv;
	mr->index = index;
	mr->key = (index << 8) | get_random_u8();
	mr->ibmr.lkey = mr->key;
	mr->ibmr.rkey = mr->key;
	xa_store(&pfnic_mrs, index, mr, GFP_KERNEL);
	return 0;
}

/*
 * A new MR of @kind on @pfnic (@gfp: charged to the user for a user's), counted within the
 * device's limit, with nothing built and not published. Return: the MR or an ERR_PTR.
 */
static struct pfnic_mr *pfnic_mr_new(struct pfnic_dev *pfnic, enum pfnic_mr_kind kind,
				     gfp_t gfp)
{
	struct pfnic_mr *mr;
	int rv;

	rv = pfnic_obj_take(pfnic, PFNIC_OBJ_MR);
	if (rv)
		return ERR_PTR(rv);
	mr = kzalloc(sizeof(*mr), gfp);
	if (!mr) {
		pfnic_obj_drop(pfnic, PFNIC_OBJ_MR);
		return ERR_PTR(-ENOMEM);
	}
	mr->pfnic = pfnic;
	mr->kind = kind;
	kref_init(&mr->ref);
	init_completion(&mr->done);
	xa_init(&mr->children);
	mutex_init(&mr->children_lock);
	mr->last_event = U8_MAX;
	return mr;
}

/**
 * pfnic_get_dma_mr() - an MR over all of kernel memory, for a kernel PD
 * @ibpd: the PD
 * @access: its rights (IB_ACCESS_*)
 *
 * The core takes one for each kernel PD (its local_dma_lkey, and with
 * IB_PD_UNSAFE_GLOBAL_RKEY its global rkey). On a device without a DMA device, the
 * addresses kernel consumers map buffers to are kernel virtual addresses: the MR's iova
 * is the address itself.
 *
 * Return: the MR, or an ERR_PTR: -EINVAL for a user PD, -EOPNOTSUPP for a right pfnic does
 * not have, -ENOMEM.
 */
struct ib_mr *pfnic_get_dma_mr(struct ib_pd *ibpd, int access)
{
	struct pfnic_mr *mr;
	int rv;

	if (ibpd->uobject)
		return ERR_PTR(-EINVAL);
	if (access & ~PFNIC_KERNEL_MR_ACCESS)
		return ERR_PTR(-EOPNOTSUPP);
	mr = pfnic_mr_new(to_pfnic_dev(ibpd->device), PFNIC_MR_DMA, GFP_KERNEL);
	if (IS_ERR(mr))
		return ERR_CAST(mr);
	mr->access = access;
	mr->iova = 0;
	mr->length = U64_MAX;
	mr->valid = true;
	rv = pfnic_mr_publish(mr);
	if (rv) {
		pfnic_obj_drop(mr->pfnic, PFNIC_OBJ_MR);
		pfnic_mr_destroy(mr);
		return ERR_PTR(rv);
	}
	return &mr->ibmr;
}

/**
 * pfnic_alloc_mr() - a fast-registration MR of a kernel PD, with room for @max_num_sg pages
 * @ibpd: the PD
 * @type: IB_MR_TYPE_MEM_REG (the only type pfnic has)
 * @max_num_sg: pages it may map at once
 *
 * The MR is invalid until an IB_WR_REG_MR of the pages map_mr_sg gave it runs.
 *
 * Return: the MR, or an ERR_PTR: -EINVAL for a user PD or a page count out of range
 * (max_fast_reg_page_list_len), -EOPNOTSUPP for another type, -ENOMEM.
 */
struct ib_mr *pfnic_alloc_mr(struct ib_pd *ibpd, enum ib_mr_type type, u32 max_num_sg)
{
	struct pfnic_mr *mr;
	int rv;

	if (type != IB_MR_TYPE_MEM_REG)
		return ERR_PTR(-EOPNOTSUPP);
	if (ibpd->uobject || !max_num_sg || max_num_sg > PFNIC_MAX_FAST_REG_PAGES)
		return ERR_PTR(-EINVAL);
	mr = pfnic_mr_new(to_pfnic_dev(ibpd->device), PFNIC_MR_FAST, GFP_KERNEL);
	if (IS_ERR(mr))
		return ERR_CAST(mr);
	mr->fast_max = max_num_sg;
	mr->fast_pages = kvcalloc(max_num_sg, sizeof(*mr->fast_pages), GFP_KERNEL);
	if (!mr->fast_pages) {
		rv = -ENOMEM;
		goto err;
	}
	rv = pfnic_mr_publish(mr);
	if (rv)
		goto err;
	return &mr->ibmr;

err:
	pfnic_obj_drop(mr->pfnic, PFNIC_OBJ_MR);
	pfnic_mr_destroy(mr);
	return ERR_PTR(rv);
}

static int pfnic_mr_set_page(struct ib_mr *ibmr, u64 addr)
{
	struct pfnic_mr *mr = to_pfnic_mr(ibmr);

	if (mr->fast_npages == mr->fast_max)
		return -ENOMEM;
	mr->fast_pages[mr->fast_npages++] = addr;
	return 0;
}

/**
 * pfnic_map_mr_sg() - give a fast-registration MR the pages of a mapped scatterlist
 * @ibmr: the MR; not in use (invalid) while this runs, as the verbs require
 * @sg: the list, mapped by ib_dma_map_sg() (kernel virtual addresses on pfnic)
 * @sg_nents: its entries
 * @sg_offset: where in the first entry the MR starts; updated as ib_sg_to_pages() does
 *
 * Return: the entries mapped (fewer if the MR has room for fewer pages).
 */
int pfnic_map_mr_sg(struct ib_mr *ibmr, struct scatterlist *sg, int sg_nents,
		    unsigned int *sg_offset)
{
	struct pfnic_mr *mr = to_pfnic_mr(ibmr);
	int n;

	mr->fast_npages = 0;
	n = ib_sg_to_pages(ibmr, sg, sg_nents, sg_offset, pfnic_mr_set_page);
	/* ib_map_mr_sg_zbva() moves the iova to 0 afterwards: keep where the data starts */
	mr->fast_page_size = ibmr->page_size;
	mr->fast_offset = ibmr->iova & (ibmr->page_size - 1);
	return n;
}

/**
 * pfnic_mr_fast_reg() - carry out an IB_WR_REG_MR: make a fast-registration MR valid with
 *			 the pages map_mr_sg gave it, a new key and new rights
 * @mr: the MR
 * @pd: the PD of the QP that posted the WR, which must be the MR's
 * @key: the key it answers to from now on (its index's, with any low byte)
 * @access: its rights
 *
 * As on mlx5, an MR still valid is registered again over its old registration.
 *
 * Return: 0, or -EINVAL (not a fast-registration MR of @pd, a key of another index, rights
 * pfnic does not have, or pages that do not cover the MR's length).
 */
int pfnic_mr_fast_reg(struct pfnic_mr *mr, struct ib_pd *pd, u32 key, int access)
{
	u64 span;

	if (mr->kind != PFNIC_MR_FAST || mr->ibmr.pd != pd || key >> 8 != mr->index ||
	    (access & ~PFNIC_KERNEL_MR_ACCESS) || !mr->fast_page_size)
		return -EINVAL;
	span = (u64)mr->fast_npages * mr->fast_page_size;
	if (mr->ibmr.length > span || mr->fast_offset > span - mr->ibmr.length)
		return -EINVAL;
	/* under the key table's lock, where lookups read key and validity */
	xa_lock(&pfnic_mrs);
	mr->iova = mr->ibmr.iova;
	mr->length = mr->ibmr.length;
	mr->access = access;
	WRITE_ONCE(mr->key, key);
	WRITE_ONCE(mr->valid, true);
	xa_unlock(&pfnic_mrs);
	return 0;
}

/* ---- memory windows -------------------------------------------------------------------------- */

/* Unbinds a window: no rkey reaches it until it is bound again. Caller holds the key table. */
static void pfnic_mw_unbind(struct pfnic_mr *win)
{
	lockdep_assert_held(&pfnic_mrs.xa_lock);
	if (win->parent)
		win->parent->windows--;
	win->parent = NULL;
	WRITE_ONCE(win->valid, false);
}

/* Unbinds the windows bound to @mr, which is leaving the key table. Caller holds it. */
static void pfnic_mr_unbind_windows(struct pfnic_mr *mr)
{
	unsigned long index;
	struct pfnic_mr *win;

	lockdep_assert_held(&pfnic_mrs.xa_lock);
	xa_for_each(&pfnic_mrs, index, win) {
		if (win->kind == PFNIC_MR_WINDOW && win->parent == mr)
			pfnic_mw_unbind(win);
		if (!mr->windows)
			break;
	}
}

/**
 * pfnic_alloc_mw() - a memory window of a user PD, unbound
 * @ibmw: the window the core allocated; its type (1 or 2) and PD are set
 * @udata: no request or response of pfnic's own
 *
 * The window's rkey is in the same key table as the MRs': a key of an unbound window
 * reaches nothing until an IB_WR_BIND_MW gives it part of an MR.
 *
 * Return: 0, -EINVAL for another type or private data, -ENOMEM, or the device's window
 * limit's error (pfnic_obj_take()).
 */
int pfnic_alloc_mw(struct ib_mw *ibmw, struct ib_udata *udata)
{
	struct pfnic_dev *pfnic = to_pfnic_dev(ibmw->device);
	struct pfnic_mr *win = &to_pfnic_mw(ibmw)->win;
	u32 index;
	int rv;

	if (ibmw->type != IB_MW_TYPE_1 && ibmw->type != IB_MW_TYPE_2)
		return -EINVAL;
	if (udata && (udata->inlen || udata->outlen))
		return -EINVAL;
	rv = pfnic_obj_take(pfnic, PFNIC_OBJ_MW);
	if (rv)
		return rv;
	win->pfnic = pfnic;
	win->kind = PFNIC_MR_WINDOW;
	win->mw_type = ibmw->type;
	win->ibmr.pd = ibmw->pd;
	kref_init(&win->ref);
	init_completion(&win->done);
	rv = xa_alloc(&pfnic_mrs, &index, NULL, XA_LIMIT(1, PFNIC_MR_INDEX_MAX), GFP_KERNEL);
	if (rv) {
		pfnic_obj_drop(pfnic, PFNIC_OBJ_MW);
		return rv;
	}
	win->index = index;
	win->key = (index << 8) | get_random_u8();
	ibmw->rkey = win->key;
	xa_store(&pfnic_mrs, index, win, GFP_KERNEL);
	return 0;
}

int pfnic_dealloc_mw(struct ib_mw *ibmw)
{
	struct pfnic_mr *win = &to_pfnic_mw(ibmw)->win;

	xa_lock(&pfnic_mrs);
	__xa_erase(&pfnic_mrs, win->index);
	pfnic_mw_unbind(win);
	xa_unlock(&pfnic_mrs);
	/* an access that resolved the window before holds it until it has its MR */
	pfnic_mr_put(win);
	wait_for_completion(&win->done);
	pfnic_obj_drop(win->pfnic, PFNIC_OBJ_MW);
	return 0;
}

/**
 * pfnic_mw_bind() - carry out an IB_WR_BIND_MW: give a window part of an MR, or unbind it
 * @qp: the QP it was posted on
 * @wqe: the bind: the window's new rkey (@wqe->rkey, whose index names the window), the
 *	 MR's lkey, the window's start, length and rights
 *
 * The window, the MR and the QP must be in one PD; the MR must allow binding
 * (IB_ACCESS_MW_BIND) and cover the range; a window that grants remote writes or atomics
 * needs an MR the device may write (IB_ACCESS_LOCAL_WRITE). A type 1 window may be bound
 * again over its binding, and a length of 0 unbinds it; a type 2 window must be unbound
 * (invalidated) first. Zero-based windows are not supported.
 *
 * Context: the engine (process context).
 * Return: 0, or -EINVAL for any of the above not met (the WQE completes with
 * IB_WC_MW_BIND_ERR).
 */
int pfnic_mw_bind(struct pfnic_qp *qp, const struct pfnic_wqe *wqe)
{
	const int rights = IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC;
	struct pfnic_mr *win = pfnic_mr_get_index(wqe->rkey >> 8), *mr = NULL;
	int access = (int)wqe->swap;
	u64 len = wqe->compare_add;
	int rv = -EINVAL;

	if (!win)
		return rv;
	/* local write means nothing to a window; programs pass it as to an MR (pyverbs does) */
	if (win->kind != PFNIC_MR_WINDOW || win->ibmr.pd != qp->ibqp.pd ||
	    (access & ~(rights | IB_ACCESS_LOCAL_WRITE)))
		goto out;
	access &= rights;
	if (len || win->mw_type == IB_MW_TYPE_2) {
		mr = pfnic_mr_get(wqe->bind_lkey);
		if (!mr || mr->kind == PFNIC_MR_WINDOW || pfnic_mr_kernel(mr) ||
		    mr->ibmr.pd != win->ibmr.pd || !(mr->access & IB_ACCESS_MW_BIND) ||
		    !pfnic_mr_covers(mr, wqe->remote_addr, len) ||
		    ((access & (IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_ATOMIC)) &&
		     !(mr->access & IB_ACCESS_LOCAL_WRITE)))
			goto out;
	}
	xa_lock(&pfnic_mrs);
	/* the MR is still registered (its dereg unbinds what is bound to it), the window
	 * still allocated, and a type 2 window not bound already
	 */
	if ((mr && xa_load(&pfnic_mrs, mr->index) != mr) ||
	    xa_load(&pfnic_mrs, win->index) != win ||
	    (win->mw_type == IB_MW_TYPE_2 && win->valid)) {
		xa_unlock(&pfnic_mrs);
		goto out;
	}
	pfnic_mw_unbind(win);
	win->key = wqe->rkey;
	if (mr) {
		win->iova = wqe->remote_addr;
		win->length = len;
		win->access = access;
		win->parent = mr;
		mr->windows++;
		WRITE_ONCE(win->valid, true);
	}
	xa_unlock(&pfnic_mrs);
	rv = 0;
out:
	if (mr)
		pfnic_mr_put(mr);
	pfnic_mr_put(win);
	return rv;
}

/**
 * pfnic_mw_resolve() - the MR a bound window gives access to
 * @win: a window, with a reference, whose key, bounds and rights the access was checked
 *	 against
 *
 * Return: the window's MR with a reference, or NULL if the window was unbound meanwhile.
 * The reference to @win is dropped either way.
 */
struct pfnic_mr *pfnic_mw_resolve(struct pfnic_mr *win)
{
	struct pfnic_mr *mr;

	xa_lock(&pfnic_mrs);
	/* a window of an MR registered anew reaches nothing until the old MR is gone */
	mr = READ_ONCE(win->valid) && READ_ONCE(win->parent->valid) ? win->parent : NULL;
	if (mr && !kref_get_unless_zero(&mr->ref))
		mr = NULL;
	xa_unlock(&pfnic_mrs);
	pfnic_mr_put(win);
	return mr;
}

/**
 * pfnic_mr_invalidate() - carry out an invalidation (IB_WR_LOCAL_INV, or the remote one of
 *			   an IB_WR_SEND_WITH_INV) of the fast-registration MR or the type 2
 *			   memory window a key names
 * @key: the key, as its last registration or bind set it
 * @pd: the PD the MR or window must be in (the invalidating QP's, or the receiving QP's)
 *
 * Return: 0, or -EINVAL: no valid MR or window has that key, or it is not a
 * fast-registration MR or a type 2 window of @pd.
 */
int pfnic_mr_invalidate(u32 key, struct ib_pd *pd)
{
	struct pfnic_mr *mr = pfnic_mr_get(key);
	int rv = -EINVAL;

	if (!mr)
		return rv;
	if (mr->kind == PFNIC_MR_FAST && mr->ibmr.pd == pd) {
		xa_lock(&pfnic_mrs);
		WRITE_ONCE(mr->valid, false);
		xa_unlock(&pfnic_mrs);
		rv = 0;
	} else if (mr->kind == PFNIC_MR_WINDOW && mr->mw_type == IB_MW_TYPE_2 &&
		   mr->ibmr.pd == pd) {
		/* a type 1 window is unbound only by binding it again, with no length */
		xa_lock(&pfnic_mrs);
		if (mr->key == key)
			pfnic_mw_unbind(mr);
		xa_unlock(&pfnic_mrs);
		rv = 0;
	}
	pfnic_mr_put(mr);
	return rv;
}

/**
 * pfnic_mr_kva() - the kernel address of an iova of a kernel MR
 * @mr: a DMA or fast-registration MR, of which the caller holds a reference, and whose
 *	bounds the access was checked against (pfnic_mr_covers())
 * @iova: the address in it
 * @room: set to the bytes that follow contiguously (at least 1)
 *
 * Return: the kernel virtual address.
 */
void *pfnic_mr_kva(struct pfnic_mr *mr, u64 iova, size_t *room)
{
	u64 pos, block;

	if (mr->kind == PFNIC_MR_DMA) {
		*room = PAGE_SIZE - offset_in_page(iova);
		return (void *)(uintptr_t)iova;
	}
	pos = iova - mr->iova + mr->fast_offset;
	block = pos / mr->fast_page_size;
	/* within the pages the registration checked; the list is never shorter than that */
	block = min_t(u64, block, mr->fast_max - 1);
	*room = mr->fast_page_size - pos % mr->fast_page_size;
	return (void *)(uintptr_t)(READ_ONCE(mr->fast_pages[block]) + pos % mr->fast_page_size);
}

/*
 * The MR's translation tables, by kind; on failure nothing is left to undo but @mr itself
 * (and its hold on the mm).
 */
static int pfnic_mr_build(struct pfnic_mr *mr)
{
	int rv;

	if (mr->kind == PFNIC_MR_IMPLICIT)
		return 0;	/* tables come with the first faults */
	/*
	 * An explicit ODP MR's table is built whole, one entry a page. One over a sixteenth of
	 * the machine's memory (an MR of 32 times the memory) is refused before it is built: it
	 * would fill a memory cgroup, or the machine, page by page until the allocation gave up,
	 * and the OOM killer would meanwhile end whatever else allocated there.
	 */
	if (mr->kind == PFNIC_MR_ODP && mr->npages / 32 > totalram_pages())
		return -ENOMEM;
	/* what RLIMIT_MEMLOCK refuses costs nothing: charged before anything is built */
	if (mr->kind == PFNIC_MR_PINNED) {
		rv = pfnic_account_pinned(mr->mm, mr->npages);
		if (rv)
			return rv;
	}
	mr->xlt = pfnic_xlt_alloc(mr, mr->va, mr->npages);
	if (!mr->xlt) {
		if (mr->kind == PFNIC_MR_PINNED)
			atomic64_sub(mr->npages, &mr->mm->pinned_vm);
		return -ENOMEM;
	}
	if (mr->kind == PFNIC_MR_ODP)
		rv = mmu_interval_notifier_insert(&mr->xlt->notifier, mr->mm, mr->va,
						  mr->npages << PAGE_SHIFT, &pfnic_odp_ops);
	else
		rv = pfnic_mr_pin(mr);
	if (rv) {
		pfnic_xlt_put(mr->xlt);
		mr->xlt = NULL;
	}
	return rv;
}

struct ib_mr *pfnic_reg_user_mr(struct ib_pd *ibpd, u64 start, u64 length, u64 iova,
				int access, struct ib_udata *udata)
{
	struct pfnic_dev *pfnic = to_pfnic_dev(ibpd->device);
	bool implicit = (access & IB_ACCESS_ON_DEMAND) && !start && length == U64_MAX;
	struct pfnic_mr *mr;
	unsigned long end;
	int rv;

	if (access & ~PFNIC_MR_ACCESS)
		return ERR_PTR(-EOPNOTSUPP);
	/* implicit ODP: the whole address space, where an iova is the address itself */
	if (implicit && iova)
		return ERR_PTR(-EINVAL);
	if (!length || (!implicit && (start + length < start || iova + length < iova)))
		return ERR_PTR(-EINVAL);
	if (udata && (udata->inlen || udata->outlen))
		return ERR_PTR(-EINVAL);

	mr = pfnic_mr_new(pfnic, PFNIC_MR_PINNED, GFP_KERNEL_ACCOUNT);
	if (IS_ERR(mr))
		return ERR_CAST(mr);
	mr->access = access;
	mr->iova = iova;
	mr->length = length;
	mr->start = start;
	if (implicit) {
		mr->kind = PFNIC_MR_IMPLICIT;
		mr->va = 0;
		mr->npages = TASK_SIZE >> PAGE_SHIFT;
	} else {
		mr->kind = access & IB_ACCESS_ON_DEMAND ? PFNIC_MR_ODP : PFNIC_MR_PINNED;
		mr->va = start & PAGE_MASK;
		end = PAGE_ALIGN(start + length);
		mr->npages = (end - mr->va) >> PAGE_SHIFT;
	}
	mr->mm = current->mm;
	mmgrab(mr->mm);
	mr->owner = get_task_pid(current, PIDTYPE_TGID);
	mr->owner_euid = current_euid();
	if (implicit)
		mr->memcg = get_mem_cgroup_from_mm(current->mm);

	rv = pfnic_mr_build(mr);
	if (rv) {
		put_pid(mr->owner);
		mem_cgroup_put(mr->memcg);
		mmdrop(mr->mm);
		kfree(mr);
		pfnic_obj_drop(pfnic, PFNIC_OBJ_MR);
		return ERR_PTR(rv);
	}

	mr->valid = true;
	mr->ibmr.iova = iova;
	mr->ibmr.length = length;
	rv = pfnic_mr_publish(mr);
	if (rv) {
		pfnic_obj_drop(pfnic, PFNIC_OBJ_MR);
		pfnic_mr_destroy(mr);
		return ERR_PTR(rv);
	}
	return &mr->ibmr;
}

/**
 * pfnic_rereg_user_mr() - a user MR's translation, rights or PD changed: a new MR
 * @ibmr: the MR
 * @flags: IB_MR_REREG_TRANS, IB_MR_REREG_ACCESS, IB_MR_REREG_PD: what changes
 * @start: with IB_MR_REREG_TRANS, the new address
 * @length: and length
 * @iova: and iova
 * @access: with IB_MR_REREG_ACCESS, the new rights (ODP among them)
 * @pd: the PD, new or not
 * @udata: no private data
 *
 * The MR is registered anew with what changes and what stays, and takes over the old MR's
 * place in the key table: its keys stay what they were, as on mlx5, so that a peer that was
 * given the rkey goes on using it. The old MR gets the new one's place, unreachable (not
 * valid), until the core, which puts the new MR in the old one's place, deregisters it: the
 * windows bound to it are unbound then, and what the engine is doing with it ends first. On
 * failure the old MR is untouched.
 *
 * Return: the new MR, or an ERR_PTR as pfnic_reg_user_mr() returns; -EINVAL for a kernel MR.
 */
struct ib_mr *pfnic_rereg_user_mr(struct ib_mr *ibmr, int flags, u64 start, u64 length,
				  u64 iova, int access, struct ib_pd *pd, struct ib_udata *udata)
{
	struct pfnic_mr *mr = to_pfnic_mr(ibmr), *fresh;
	struct ib_mr *made;
	u32 index, key;

	if (pfnic_mr_kernel(mr) || mr->kind == PFNIC_MR_WINDOW)
		return ERR_PTR(-EINVAL);
	if (!(flags & IB_MR_REREG_TRANS)) {
		start = mr->start;
		length = mr->length;
		iova = mr->iova;
	}
	if (!(flags & IB_MR_REREG_ACCESS))
		access = mr->access;
	if (!(flags & IB_MR_REREG_PD))
		pd = ibmr->pd;
	made = pfnic_reg_user_mr(pd, start, length, iova, access, udata);
	if (IS_ERR(made))
		return made;
	fresh = to_pfnic_mr(made);

	/* the two trade places and keys; both slots exist, so the stores allocate nothing */
	xa_lock(&pfnic_mrs);
	WRITE_ONCE(mr->valid, false);
	index = mr->index;
	key = mr->key;
	__xa_store(&pfnic_mrs, index, fresh, GFP_ATOMIC);
	__xa_store(&pfnic_mrs, fresh->index, mr, GFP_ATOMIC);
	mr->index = fresh->index;
	WRITE_ONCE(mr->key, fresh->key);
	mr->ibmr.lkey = fresh->key;
	mr->ibmr.rkey = fresh->key;
	fresh->index = index;
	WRITE_ONCE(fresh->key, key);
	fresh->ibmr.lkey = key;
	fresh->ibmr.rkey = key;
	xa_unlock(&pfnic_mrs);
	return made;
}

/**
 * pfnic_mr_report_pinned() - name the pinned MRs that hold pages of a memory range
 * @start_pfn: the range's first page frame
 * @nr_pages: its length
 * @blk: the memory block it is, for the records
 *
 * A PFNIC_EVENT_PINNED record goes out for each pinned MR with pages in the range: the
 * memory hotplug notifier calls this when the range starts going offline, which those
 * pages will make fail.
 *
 * Context: process; sleeps.
 */
void pfnic_mr_report_pinned(unsigned long start_pfn, unsigned long nr_pages,
			    const struct pfnic_block *blk)
{
	unsigned long index = 0, i, n, pfn;
	struct pfnic_mr *mr;

	for (;; index++) {
		bool held;

		xa_lock(&pfnic_mrs);
		mr = xa_find(&pfnic_mrs, &index, ULONG_MAX, XA_PRESENT);
		held = mr && kref_get_unless_zero(&mr->ref);
		xa_unlock(&pfnic_mrs);
		if (!mr)
			break;
		if (!held)
			continue;	/* its release began */
		n = 0;
		if (mr->kind == PFNIC_MR_PINNED) {
			/* a pinned MR's table is filled once, before the MR is published */
			for (i = 0; i < mr->npages; i++) {
				pfn = page_to_pfn(mr->xlt->pages[i]);
				n += pfn >= start_pfn && pfn - start_pfn < nr_pages;
				if (!(i % 4096))
					cond_resched();
			}
		}
		if (n)
			pfnic_event_mr(mr, PFNIC_EVENT_PINNED, 0, mr->va,
				       mr->va + (mr->npages << PAGE_SHIFT), n, blk);
		pfnic_mr_put(mr);
		cond_resched();
	}
}

int pfnic_dereg_mr(struct ib_mr *ibmr, struct ib_udata *udata)
{
	struct pfnic_mr *mr = to_pfnic_mr(ibmr);

	/*
	 * No new lookups, the windows bound to it unbound (as a NIC invalidates them with
	 * their MR: a program may deregister the MR first), then wait until the engine holds
	 * no reference.
	 */
	xa_lock(&pfnic_mrs);
	__xa_erase(&pfnic_mrs, mr->index);
	if (mr->windows)
		pfnic_mr_unbind_windows(mr);
	xa_unlock(&pfnic_mrs);
	pfnic_mr_put(mr);
	wait_for_completion(&mr->done);
	pfnic_obj_drop(mr->pfnic, PFNIC_OBJ_MR);
	pfnic_mr_destroy(mr);
	return 0;
}
