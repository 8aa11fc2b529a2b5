// SPDX-License-Identifier: GPL-2.0-only
/*
 * ummunotify: /dev/ummunotify tells a process which of the address ranges it watches the
 * kernel changed, for userspace registration caches (the interface and its rules are in
 * uapi/ummunotify.h). A module of its own: it needs no RDMA stack.
 *
 * Each open file is an MMU notifier on its opener's address space with an interval tree of
 * the watched ranges. An invalidation marks the ranges it overlaps as changed (a list of
 * them, a hint of where, and a byte per range in memory the process maps), then bumps the
 * generation in the shared page. Nothing is queued per event, so nothing can overflow.
 *
 * Locking:
 * - file->lock, a spinlock, guards what the notifier touches: the interval tree, the list
 *   of changed ranges and their hints, the generation, the invalidations in flight. The
 *   notifier runs with page-table and rmap locks held and may not sleep: it takes this lock
 *   only, which is never held across anything that sleeps, faults or allocates.
 * - file->mutex, a sleeping lock, serializes register, unregister, read and feature
 *   exchange, and guards the cookie tree and the range count. It is held across user
 *   copies (which may fault), so it is never taken under mmap_lock: not by mmap, not by the
 *   fault handler, not by the notifier. Order: mutex, then lock.
 */
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/interval_tree.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/rbtree.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>

#include "pfnic_compat.h"
#include "uapi/ummunotify.h"

/* The most ranges a file may be allowed (the module parameter is held to it). */
#define UMN_RANGES_LIMIT BIT(24)

static unsigned int max_ranges = BIT(21);
module_param(max_ranges, uint, 0644);
MODULE_PARM_DESC(max_ranges,
		 "Ranges one open file can watch, taken at open() (default 2097152, at most 16777216)");

/* Invalidations in flight tracked one by one; more than that share one bounding span. */
#define UMN_INFLIGHT_SLOTS 8

/* Events one read() call gathers under the lock at most. */
#define UMN_READ_BATCH (PAGE_SIZE / sizeof(struct ummunotify_event))

/* A watched range. */
struct umn_range {
	struct interval_tree_node node;	/* [start, end - 1] in file->ranges; under lock */
	struct rb_node by_cookie;	/* in file->cookies; under mutex */
	struct list_head changed;	/* on file->changed while unreported; under lock */
	u64 cookie;
	unsigned long hint_start;	/* bounds of the changes not yet reported; under lock */
	unsigned long hint_end;
	u32 flags;			/* UMMUNOTIFY_EVENT_FLAG_* not yet reported; under lock */
	u32 slot;
};

/* An invalidation between its start and its end, identified by its range (on the stack). */
struct umn_inflight {
	const struct mmu_notifier_range *range;
	unsigned long start;
	unsigned long end;
	u32 flag;
};

struct umn_file {
	struct mmu_notifier notifier;
	struct mm_struct *mm;		/* the watched address space; grabbed */

	struct mutex mutex;		/* see "Locking" above */
	struct rb_root cookies;		/* ranges by cookie; under mutex */
	struct ida slots;
	unsigned int nranges;		/* under mutex */
	unsigned int max_ranges;
	u32 features;			/* set once, before used; read by the notifier */
	bool used;			/* under mutex */

	spinlock_t lock;		/* see "Locking" above */
	struct rb_root_cached ranges;	/* interval tree by address; under lock */
	struct list_head changed;	/* ranges changed since last reported; under lock */
	bool need_last;			/* a LAST event is owed to the reader; under lock */
	bool closing;			/* under lock */
	struct umn_inflight inflight[UMN_INFLIGHT_SLOTS];	/* under lock */
	unsigned int overflow;		/* in flight beyond the slots; under lock */
	unsigned long overflow_start;	/* and the span they cover */
	unsigned long overflow_end;

	struct page *shared_page;	/* struct ummunotify_shared; mapped at offset 0 */
	struct ummunotify_shared *shared;
	struct page **slot_pages;	/* a byte per slot; allocated when first needed */
	unsigned int nslot_pages;

	wait_queue_head_t wait;
	struct fasync_struct *async;
};

static struct kmem_cache *umn_range_cache;

static u8 *umn_slot_byte(struct umn_file *uf, u32 slot)
{
	return (u8 *)page_address(uf->slot_pages[slot >> PAGE_SHIFT]) + (slot & ~PAGE_MASK);
}

/*
 * umn_slot_page() - the page of slot bytes number @index, allocating it if need be.
 * Called from register (under the mutex) and from the fault handler (under mmap_lock):
 * installation is a cmpxchg, so the two need no common lock. Return: the page, or NULL
 * if it could not be allocated.
 */
static struct page *umn_slot_page(struct umn_file *uf, unsigned int index)
{
	struct page *page = READ_ONCE(uf->slot_pages[index]), *old;

	if (page)
		return page;
	page = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
	if (!page)
		return NULL;
	old = cmpxchg(&uf->slot_pages[index], NULL, page);
	if (old) {
		__free_page(page);
		return old;
	}
	return page;
}

/* What an invalidation of this kind reports, or 0 if nothing. */
static u32 umn_change_flag(const struct umn_file *uf, enum mmu_notifier_event event)
{
	switch (event) {
	case MMU_NOTIFY_UNMAP:
		return UMMUNOTIFY_EVENT_FLAG_UNMAP;
	case MMU_NOTIFY_CLEAR:
		return UMMUNOTIFY_EVENT_FLAG_CLEAR;
	case MMU_NOTIFY_RELEASE:
		return UMMUNOTIFY_EVENT_FLAG_RELEASE;
	case MMU_NOTIFY_PROTECTION_VMA:
	case MMU_NOTIFY_PROTECTION_PAGE:
	case MMU_NOTIFY_SOFT_DIRTY:
		/* the same pages stay behind the addresses */
		return READ_ONCE(uf->features) & UMMUNOTIFY_FEATURE_PROTECTION ?
		       UMMUNOTIFY_EVENT_FLAG_PROTECTION : 0;
	default:
		/* device-private migration, device-exclusive access, anything newer */
		return UMMUNOTIFY_EVENT_FLAG_OTHER;
	}
}

/* Marks @r changed by [start, end) for the reason @flag. Caller holds the lock. */
static void umn_range_changed(struct umn_file *uf, struct umn_range *r, unsigned long start,
			      unsigned long end, u32 flag)
{
	unsigned long first = max_t(unsigned long, start, r->node.start);
	unsigned long last = min_t(unsigned long, end - 1, r->node.last);

	lockdep_assert_held(&uf->lock);
	if (list_empty(&r->changed)) {
		list_add_tail(&r->changed, &uf->changed);
		r->hint_start = first;
		r->hint_end = last + 1;
		r->flags = UMMUNOTIFY_EVENT_FLAG_HINT;
	} else {
		r->hint_start = min(r->hint_start, first);
		r->hint_end = max(r->hint_end, last + 1);
	}
	r->flags |= flag;
	/* sticky until unregistered: a cache entry over this range is stale for good */
	WRITE_ONCE(*umn_slot_byte(uf, r->slot), 1);
}

/* Tells the reader: the generation moves after the slot bytes it covers. Under the lock. */
static void umn_changed_notify(struct umn_file *uf)
{
	lockdep_assert_held(&uf->lock);
	/* pairs with the reader's acquire load of the generation before it reads slot bytes */
	smp_wmb();
	WRITE_ONCE(uf->shared->generation, uf->shared->generation + 1);
	wake_up_interruptible(&uf->wait);
	kill_fasync(&uf->async, SIGIO, POLL_IN);
}

/* Marks every range overlapping [start, end) changed. Caller holds the lock. */
static void umn_mark(struct umn_file *uf, unsigned long start, unsigned long end, u32 flag)
{
	struct interval_tree_node *node;
	bool hit = false;

	lockdep_assert_held(&uf->lock);
	for (node = interval_tree_iter_first(&uf->ranges, start, end - 1); node;
	     node = interval_tree_iter_next(node, start, end - 1)) {
		umn_range_changed(uf, container_of(node, struct umn_range, node), start, end, flag);
		hit = true;
	}
	if (hit)
		umn_changed_notify(uf);
}

/*
 * Invalidations are counted from start to end so that a range registered in between is
 * reported changed: its memory may already be gone when the registration looks at it.
 * The core pairs every start that returned 0 with an end, given the same range.
 */
static int umn_invalidate_start(struct mmu_notifier *mn, const struct mmu_notifier_range *range)
{
	struct umn_file *uf = container_of(mn, struct umn_file, notifier);
	u32 flag = umn_change_flag(uf, range->event);
	unsigned int i;

	spin_lock(&uf->lock);
	for (i = 0; i < UMN_INFLIGHT_SLOTS && uf->inflight[i].range; i++)
		;
	if (i < UMN_INFLIGHT_SLOTS) {
		uf->inflight[i] = (struct umn_inflight){ range, range->start, range->end, flag };
	} else if (!uf->overflow++) {
		uf->overflow_start = range->start;
		uf->overflow_end = range->end;
	} else {
		uf->overflow_start = min(uf->overflow_start, range->start);
		uf->overflow_end = max(uf->overflow_end, range->end);
	}
	if (flag)
		umn_mark(uf, range->start, range->end, flag);
	spin_unlock(&uf->lock);
	return 0;
}

static void umn_invalidate_end(struct mmu_notifier *mn, const struct mmu_notifier_range *range)
{
	struct umn_file *uf = container_of(mn, struct umn_file, notifier);
	unsigned int i;

	spin_lock(&uf->lock);
	for (i = 0; i < UMN_INFLIGHT_SLOTS; i++) {
		if (uf->inflight[i].range == range) {
			uf->inflight[i].range = NULL;
			break;
		}
	}
	if (i == UMN_INFLIGHT_SLOTS && !WARN_ON_ONCE(!uf->overflow))
		uf->overflow--;
	spin_unlock(&uf->lock);
}

/* The address space is going away (exit, exec): every range has changed. */
static void umn_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	struct umn_file *uf = container_of(mn, struct umn_file, notifier);

	spin_lock(&uf->lock);
	/* unregistering at close calls this too; then nobody is left to tell */
	if (!uf->closing)
		umn_mark(uf, 0, ULONG_MAX, UMMUNOTIFY_EVENT_FLAG_RELEASE);
	spin_unlock(&uf->lock);
}

static const struct mmu_notifier_ops umn_notifier_ops = {
	.release = umn_release,
	.invalidate_range_start = umn_invalidate_start,
	.invalidate_range_end = umn_invalidate_end,
};

/* A new range overlapping an invalidation in flight is reported changed. Under the lock. */
static void umn_check_inflight(struct umn_file *uf, struct umn_range *r)
{
	unsigned long start = r->node.start, end = r->node.last + 1;
	struct umn_inflight *in;

	lockdep_assert_held(&uf->lock);
	for (in = uf->inflight; in < uf->inflight + UMN_INFLIGHT_SLOTS; in++)
		if (in->range && in->flag && in->start < end && start < in->end)
			umn_range_changed(uf, r, in->start, in->end, in->flag);
	if (uf->overflow && uf->overflow_start < end && start < uf->overflow_end)
		umn_range_changed(uf, r, uf->overflow_start, uf->overflow_end,
				  UMMUNOTIFY_EVENT_FLAG_OTHER);
	if (!list_empty(&r->changed))
		umn_changed_notify(uf);
}

static int umn_cookie_cmp(const void *key, const struct rb_node *node)
{
	u64 cookie = *(const u64 *)key;
	u64 other = rb_entry(node, struct umn_range, by_cookie)->cookie;

	return cookie < other ? -1 : cookie > other;
}

static bool umn_cookie_less(struct rb_node *a, const struct rb_node *b)
{
	return rb_entry(a, struct umn_range, by_cookie)->cookie <
	       rb_entry(b, struct umn_range, by_cookie)->cookie;
}

static struct umn_range *umn_find(struct umn_file *uf, u64 cookie)
{
	struct rb_node *node;

	lockdep_assert_held(&uf->mutex);
	node = rb_find(&cookie, &uf->cookies, umn_cookie_cmp);
	return node ? rb_entry(node, struct umn_range, by_cookie) : NULL;
}

/* Whether the caller may change what the file watches: only its own address space. */
static bool umn_owner(struct umn_file *uf)
{
	return current->mm == uf->mm;
}

static long umn_register(struct umn_file *uf, struct ummunotify_register_ioctl __user *arg,
			 bool give_slot)
{
	struct ummunotify_register_ioctl req;
	struct umn_range *r;
	long ret;
	int slot;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	if (req.flags || req.reserved)
		return -EINVAL;
	/* a range that is empty, wraps, or leaves user space */
	if (req.start >= req.end || req.end > TASK_SIZE)
		return -EINVAL;
	if (!umn_owner(uf))
		return -EPERM;

	r = kmem_cache_zalloc(umn_range_cache, GFP_KERNEL_ACCOUNT);
	if (!r)
		return -ENOMEM;
	r->cookie = req.user_cookie;
	r->node.start = req.start;
	r->node.last = req.end - 1;
	INIT_LIST_HEAD(&r->changed);

	mutex_lock(&uf->mutex);
	ret = -EEXIST;
	if (umn_find(uf, r->cookie))
		goto out_free;
	ret = -ENOSPC;
	if (uf->nranges >= uf->max_ranges)
		goto out_free;
	slot = ida_alloc_max(&uf->slots, uf->max_ranges - 1, GFP_KERNEL_ACCOUNT);
	if (slot < 0) {
		ret = slot;
		goto out_free;
	}
	r->slot = slot;
	ret = -ENOMEM;
	if (!umn_slot_page(uf, slot >> PAGE_SHIFT))
		goto out_slot;
	/* the last step that can fail, so that a failed call leaves nothing behind */
	ret = -EFAULT;
	if (give_slot && put_user(r->slot, &arg->slot))
		goto out_slot;

	WRITE_ONCE(*umn_slot_byte(uf, r->slot), 0);
	spin_lock(&uf->lock);
	interval_tree_insert(&r->node, &uf->ranges);
	umn_check_inflight(uf, r);
	spin_unlock(&uf->lock);
	rb_add(&r->by_cookie, &uf->cookies, umn_cookie_less);
	uf->nranges++;
	uf->used = true;
	mutex_unlock(&uf->mutex);
	return 0;

out_slot:
	ida_free(&uf->slots, r->slot);
out_free:
	mutex_unlock(&uf->mutex);
	kmem_cache_free(umn_range_cache, r);
	return ret;
}

/* Takes @r out of both trees and the list, and frees it. Caller holds the mutex. */
static void umn_remove(struct umn_file *uf, struct umn_range *r)
{
	lockdep_assert_held(&uf->mutex);
	spin_lock(&uf->lock);
	interval_tree_remove(&r->node, &uf->ranges);
	list_del(&r->changed);
	spin_unlock(&uf->lock);
	rb_erase(&r->by_cookie, &uf->cookies);
	WRITE_ONCE(*umn_slot_byte(uf, r->slot), 0);
	ida_free(&uf->slots, r->slot);
	uf->nranges--;
	kmem_cache_free(umn_range_cache, r);
}

static long umn_unregister(struct umn_file *uf, u64 __user *arg)
{
	struct umn_range *r;
	u64 cookie;
	long ret = 0;

	if (get_user(cookie, arg))
		return -EFAULT;
	if (!umn_owner(uf))
		return -EPERM;
	mutex_lock(&uf->mutex);
	r = umn_find(uf, cookie);
	if (r)
		umn_remove(uf, r);
	else
		ret = -ENOENT;
	uf->used = true;
	mutex_unlock(&uf->mutex);
	return ret;
}

static long umn_exchange_features(struct umn_file *uf, u32 __user *arg)
{
	u32 wanted, granted;
	long ret = 0;

	if (get_user(wanted, arg))
		return -EFAULT;
	if (!umn_owner(uf))
		return -EPERM;
	granted = wanted & UMMUNOTIFY_FEATURE_PROTECTION;
	mutex_lock(&uf->mutex);
	if (uf->used)
		ret = -EBUSY;
	else if (put_user(granted, arg))
		ret = -EFAULT;
	else
		WRITE_ONCE(uf->features, granted);
	if (!ret)
		uf->used = true;
	mutex_unlock(&uf->mutex);
	return ret;
}

static size_t umn_map_size(const struct umn_file *uf)
{
	return PAGE_SIZE + (size_t)uf->nslot_pages * PAGE_SIZE;
}

static long umn_get_info(struct umn_file *uf, struct ummunotify_info __user *arg)
{
	struct ummunotify_info info = {
		.abi_version = UMMUNOTIFY_ABI_VERSION,
		.features = UMMUNOTIFY_FEATURE_PROTECTION,
		.max_ranges = uf->max_ranges,
		.event_size = sizeof(struct ummunotify_event),
		.slot_offset = PAGE_SIZE,
		.map_size = umn_map_size(uf),
	};

	return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
}

static long umn_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct umn_file *uf = file->private_data;
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case UMMUNOTIFY_EXCHANGE_FEATURES:
		return umn_exchange_features(uf, argp);
	case UMMUNOTIFY_REGISTER_REGION:
		return umn_register(uf, argp, false);
	case UMMUNOTIFY_REGISTER_REGION_SLOT:
		return umn_register(uf, argp, true);
	case UMMUNOTIFY_UNREGISTER_REGION:
		return umn_unregister(uf, argp);
	case UMMUNOTIFY_GET_INFO:
		return umn_get_info(uf, argp);
	default:
		return -ENOTTY;
	}
}

static bool umn_readable(struct umn_file *uf)
{
	bool readable;

	spin_lock(&uf->lock);
	readable = !list_empty(&uf->changed) || uf->need_last;
	spin_unlock(&uf->lock);
	return readable;
}

/*
 * Moves up to @max changed ranges into @ev (and @taken), then a LAST event if that emptied
 * the list. Caller holds the mutex and the lock. Return: the number of events.
 */
static size_t umn_take_events(struct umn_file *uf, struct ummunotify_event *ev,
			      struct umn_range **taken, size_t max, bool *gave_last)
{
	struct umn_range *r;
	size_t n = 0;

	lockdep_assert_held(&uf->mutex);
	lockdep_assert_held(&uf->lock);
	while (n < max && !list_empty(&uf->changed)) {
		r = list_first_entry(&uf->changed, struct umn_range, changed);
		ev[n] = (struct ummunotify_event){
			.type = UMMUNOTIFY_EVENT_TYPE_INVAL,
			.flags = r->flags,
			.hint_start = r->hint_start,
			.hint_end = r->hint_end,
			.user_cookie_counter = r->cookie,
		};
		taken[n++] = r;
		list_del_init(&r->changed);
		uf->need_last = true;
	}
	*gave_last = n < max && uf->need_last;
	if (*gave_last) {
		ev[n++] = (struct ummunotify_event){
			.type = UMMUNOTIFY_EVENT_TYPE_LAST,
			.user_cookie_counter = uf->shared->generation,
		};
		uf->need_last = false;
	}
	return n;
}

/* A copy to the reader failed: what it would have reported is reported again. */
static void umn_untake_events(struct umn_file *uf, const struct ummunotify_event *ev,
			      struct umn_range **taken, size_t n, bool gave_last)
{
	size_t i;

	spin_lock(&uf->lock);
	for (i = 0; i < n - gave_last; i++)
		umn_range_changed(uf, taken[i], ev[i].hint_start, ev[i].hint_end, ev[i].flags);
	/* a LAST is owed after those, or was taken itself */
	uf->need_last = true;
	spin_unlock(&uf->lock);
}

static ssize_t umn_read(struct file *file, char __user *buf, size_t count, loff_t *pos)
{
	struct umn_file *uf = file->private_data;
	size_t max = min_t(size_t, count / sizeof(struct ummunotify_event), UMN_READ_BATCH);
	struct ummunotify_event *ev;
	struct umn_range **taken;
	bool gave_last;
	ssize_t ret;
	size_t n;

	if (!max)
		return -EINVAL;
	ev = kmalloc_array(max, sizeof(*ev), GFP_KERNEL);
	taken = kmalloc_array(max, sizeof(*taken), GFP_KERNEL);
	ret = -ENOMEM;
	if (!ev || !taken)
		goto out;

	for (;;) {
		ret = -ERESTARTSYS;
		if (mutex_lock_interruptible(&uf->mutex))
			goto out;
		uf->used = true;
		spin_lock(&uf->lock);
		n = umn_take_events(uf, ev, taken, max, &gave_last);
		spin_unlock(&uf->lock);
		if (n)
			break;
		mutex_unlock(&uf->mutex);
		ret = -EAGAIN;
		if (file->f_flags & O_NONBLOCK)
			goto out;
		ret = -ERESTARTSYS;
		if (wait_event_interruptible(uf->wait, umn_readable(uf)))
			goto out;
	}
	/* the mutex keeps every taken range registered until it is reported */
	if (copy_to_user(buf, ev, n * sizeof(*ev))) {
		umn_untake_events(uf, ev, taken, n, gave_last);
		ret = -EFAULT;
	} else {
		ret = n * sizeof(*ev);
	}
	mutex_unlock(&uf->mutex);
out:
	kfree(taken);
	kfree(ev);
	return ret;
}

static __poll_t umn_poll(struct file *file, struct poll_table_struct *wait)
{
	struct umn_file *uf = file->private_data;

	poll_wait(file, &uf->wait, wait);
	return umn_readable(uf) ? EPOLLIN | EPOLLRDNORM : 0;
}

static int umn_fasync(int fd, struct file *file, int on)
{
	struct umn_file *uf = file->private_data;

	return fasync_helper(fd, file, on, &uf->async);
}

/* Under mmap_lock: must not take the file's mutex (see the locking rules above). */
static vm_fault_t umn_fault(struct vm_fault *vmf)
{
	struct umn_file *uf = vmf->vma->vm_file->private_data;
	struct page *page;

	if (!vmf->pgoff) {
		page = uf->shared_page;
	} else if (vmf->pgoff - 1 < uf->nslot_pages) {
		page = umn_slot_page(uf, vmf->pgoff - 1);
		if (!page)
			return VM_FAULT_OOM;
	} else {
		return VM_FAULT_SIGBUS;
	}
	get_page(page);
	vmf->page = page;
	return 0;
}

static const struct vm_operations_struct umn_vm_ops = {
	.fault = umn_fault,
};

static int umn_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct umn_file *uf = file->private_data;

	/* MAP_SHARED of a file open read-only leaves VM_MAYSHARE only */
	if (vma->vm_pgoff || vma->vm_end - vma->vm_start > umn_map_size(uf) ||
	    !(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	/* a read-only file cannot be mapped shared and writable; nor made so later */
	if (vma->vm_flags & VM_WRITE)
		return -EPERM;
	/* a child has another address space: these pages would tell it nothing true */
	pfnic_vm_flags_mod(vma, VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP, VM_MAYWRITE);
	vma->vm_ops = &umn_vm_ops;
	return 0;
}

static int umn_open(struct inode *inode, struct file *file)
{
	struct umn_file *uf;
	int ret;

	if (file->f_mode & FMODE_WRITE)
		return -EINVAL;
	if (!current->mm)
		return -EINVAL;
	uf = kzalloc(sizeof(*uf), GFP_KERNEL_ACCOUNT);
	if (!uf)
		return -ENOMEM;
	uf->max_ranges = clamp(READ_ONCE(max_ranges), 1U, UMN_RANGES_LIMIT);
	uf->nslot_pages = DIV_ROUND_UP(uf->max_ranges, PAGE_SIZE);
	mutex_init(&uf->mutex);
	spin_lock_init(&uf->lock);
	uf->cookies = RB_ROOT;
	uf->ranges = RB_ROOT_CACHED;
	INIT_LIST_HEAD(&uf->changed);
	ida_init(&uf->slots);
	init_waitqueue_head(&uf->wait);

	ret = -ENOMEM;
	uf->shared_page = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
	uf->slot_pages = kvcalloc(uf->nslot_pages, sizeof(*uf->slot_pages), GFP_KERNEL_ACCOUNT);
	if (!uf->shared_page || !uf->slot_pages)
		goto err;
	uf->shared = page_address(uf->shared_page);
	uf->shared->abi_version = UMMUNOTIFY_ABI_VERSION;
	uf->shared->max_ranges = uf->max_ranges;
	uf->shared->slot_offset = PAGE_SIZE;

	uf->notifier.ops = &umn_notifier_ops;
	ret = mmu_notifier_register(&uf->notifier, current->mm);
	if (ret)
		goto err;
	uf->mm = current->mm;
	mmgrab(uf->mm);
	file->private_data = uf;
	return stream_open(inode, file);

err:
	kvfree(uf->slot_pages);
	if (uf->shared_page)
		__free_page(uf->shared_page);
	kfree(uf);
	return ret;
}

static int umn_release_file(struct inode *inode, struct file *file)
{
	struct umn_file *uf = file->private_data;
	struct umn_range *r, *next;
	unsigned int i;

	spin_lock(&uf->lock);
	uf->closing = true;
	spin_unlock(&uf->lock);
	/* waits for callbacks in progress; none comes after */
	mmu_notifier_unregister(&uf->notifier, uf->mm);
	mmdrop(uf->mm);

	rbtree_postorder_for_each_entry_safe(r, next, &uf->cookies, by_cookie)
		kmem_cache_free(umn_range_cache, r);
	ida_destroy(&uf->slots);
	/* no mapping is left (it holds the file), so these are the last references */
	for (i = 0; i < uf->nslot_pages; i++)
		if (uf->slot_pages[i])
			put_page(uf->slot_pages[i]);
	kvfree(uf->slot_pages);
	put_page(uf->shared_page);
	kfree(uf);
	return 0;
}

static const struct file_operations umn_fops = {
	.owner = THIS_MODULE,
	.open = umn_open,
	.release = umn_release_file,
	.read = umn_read,
	.poll = umn_poll,
	.unlocked_ioctl = umn_ioctl,
	/* every structure has one layout for 32- and 64-bit processes */
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = umn_mmap,
	.fasync = umn_fasync,
};

static struct miscdevice umn_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "ummunotify",
	.fops = &umn_fops,
	/* any process may watch its own address space */
	.mode = 0444,
};

static int __init umn_init(void)
{
	int ret;

	umn_range_cache = KMEM_CACHE(umn_range, SLAB_ACCOUNT);
	if (!umn_range_cache)
		return -ENOMEM;
	ret = misc_register(&umn_misc);
	if (ret)
		kmem_cache_destroy(umn_range_cache);
	return ret;
}

static void __exit umn_exit(void)
{
	misc_deregister(&umn_misc);
	kmem_cache_destroy(umn_range_cache);
}

module_init(umn_init);
module_exit(umn_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ummunotify: which watched address ranges the kernel changed, for registration caches");
