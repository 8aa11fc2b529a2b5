// SPDX-License-Identifier: GPL-2.0-only
/*
 * ummunotify: /dev/ummunotify tells a process which of the address ranges it watches the
 * kernel changed, for userspace registration caches (the interface and its rules are in
 * uapi/ummunotify.h). A module of its own: it needs no RDMA stack.
 *
 * Every file of a process shares one MMU notifier on the process's address space (struct
 * umn_mm); each file has an interval tree of its watched ranges. An invalidation marks the
 * ranges it overlaps changed (a list of them, a hint of where, and a byte per range in
 * memory the process maps), then moves the generation in the shared page. Nothing is queued
 * per event, so nothing can overflow.
 *
 * Locking, outermost first:
 * - umn_file.mutex serializes a file's register, unregister, read and feature exchange, and
 *   guards its cookie tree, slots and range count. It is held across allocations and user
 *   copies, which may reclaim or fault and so invalidate: no notifier path takes it.
 * - umn_mm.files_mutex and umn_file.tree_mutex are held only while the file list or a tree
 *   changes, never across an allocation or a user copy, so a notifier may sleep on them
 *   without waiting on itself. A notifier that may sleep walks a tree under tree_mutex,
 *   dropping the spinlock now and then to reschedule: the tree cannot change meanwhile.
 * - umn_mm.lock guards the invalidations in flight, and the file list with files_mutex
 *   (changes hold both); umn_file.lock guards the marks: the changed list, the hints, the
 *   slot bytes, the generation. Both are spinlocks, never held across anything that sleeps.
 *   A notifier that may not sleep (the OOM reaper's) takes only these.
 * Orders: file mutex -> tree_mutex -> mm lock -> file lock; files_mutex -> tree_mutex.
 */
#include <linux/fs.h>
#include <linux/hashtable.h>
#include <linux/idr.h>
#include <linux/interval_tree.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/proc_fs.h>
#include <linux/pid_namespace.h>
#include <linux/rbtree.h>
#include <linux/sched/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/sched.h>
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

static unsigned int max_user_ranges = BIT(21);
module_param(max_user_ranges, uint, 0644);
MODULE_PARM_DESC(max_user_ranges,
		 "Ranges all the files of one user can watch together (default 2097152)");

/* Invalidations in flight tracked one by one; more than that share one bounding span. */
#define UMN_INFLIGHT_SLOTS 8

/* Ranges a notifier that may sleep marks between two chances to reschedule. */
#define UMN_WALK_BATCH 1024

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
	enum mmu_notifier_event event;
};

/* The notifier all files of one address space share. */
struct umn_mm {
	struct mmu_notifier notifier;
	struct mutex files_mutex;	/* see "Locking" above */
	spinlock_t lock;		/* see "Locking" above */
	struct list_head files;		/* under files_mutex and lock */
	struct umn_inflight inflight[UMN_INFLIGHT_SLOTS];	/* under lock */
	unsigned int overflow;		/* in flight beyond the slots; under lock */
	unsigned long overflow_start;	/* and the span they cover */
	unsigned long overflow_end;
	bool released;			/* the address space is gone; under lock */
};

/* A user's ranges, over all its files (max_user_ranges). */
struct umn_user {
	struct hlist_node node;		/* in umn_users; under umn_users_lock */
	kuid_t uid;
	refcount_t ref;
	atomic_long_t ranges;
};

struct umn_file {
	struct umn_mm *umm;		/* a reference to the address space's notifier */
	struct list_head node;		/* in umm->files */
	struct umn_user *user;		/* the opener's real uid, charged for its ranges */
	struct pid *owner;		/* the opener's thread group, named in fdinfo */
	u64 id;				/* unique while the module is loaded, named in fdinfo */

	struct mutex mutex;		/* see "Locking" above */
	struct rb_root cookies;		/* ranges by cookie; under mutex */
	struct ida slots;
	unsigned int nranges;		/* under mutex; read without it by fdinfo */
	u64 watched_bytes;		/* the ranges' lengths summed; as nranges */
	u64 events_read;		/* events read() gave; as nranges */
	unsigned int max_ranges;
	u32 features;			/* set once, before used; read by the notifier */
	bool used;			/* under mutex */

	struct mutex tree_mutex;	/* see "Locking" above */
	spinlock_t lock;		/* see "Locking" above */
	struct rb_root_cached ranges;	/* interval tree by address; under tree_mutex and lock */
	struct list_head changed;	/* ranges changed since last reported; under lock */
	unsigned int nchanged;		/* ranges on that list; under lock */
	u64 range_changes;		/* changes of a range by an invalidation; under lock */
	u64 told;			/* the generation the last LAST event gave; under lock */

	struct page *shared_page;	/* struct ummunotify_shared; mapped at offset 0 */
	struct ummunotify_shared *shared;
	struct page **slot_pages;	/* a byte per slot; allocated when first needed */
	unsigned int nslot_pages;

	wait_queue_head_t wait;
	struct fasync_struct *async;
};

static struct kmem_cache *umn_range_cache;
static atomic64_t umn_file_ids = ATOMIC64_INIT(0);
static DEFINE_HASHTABLE(umn_users, 6);
static DEFINE_SPINLOCK(umn_users_lock);

/* The accounting of @uid's ranges. Return: a reference to it, or NULL if out of memory. */
static struct umn_user *umn_user_get(kuid_t uid)
{
	struct umn_user *user, *fresh = kzalloc(sizeof(*fresh), GFP_KERNEL);

	spin_lock(&umn_users_lock);
	hash_for_each_possible(umn_users, user, node, __kuid_val(uid)) {
		if (uid_eq(user->uid, uid)) {
			refcount_inc(&user->ref);
			goto out;
		}
	}
	user = fresh;
	fresh = NULL;
	if (user) {
		user->uid = uid;
		refcount_set(&user->ref, 1);
		hash_add(umn_users, &user->node, __kuid_val(uid));
	}
out:
	spin_unlock(&umn_users_lock);
	kfree(fresh);
	return user;
}

static void umn_user_put(struct umn_user *user)
{
	if (!refcount_dec_and_lock(&user->ref, &umn_users_lock))
		return;
	hash_del(&user->node);
	spin_unlock(&umn_users_lock);
	kfree(user);
}

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
		uf->nchanged++;
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
	wake_up_interruptible_poll(&uf->wait, EPOLLIN | EPOLLRDNORM);
	kill_fasync(&uf->async, SIGIO, POLL_IN);
}

/*
 * Marks @uf's ranges overlapping [start, end) changed by @event. If @may_sleep, under
 * tree_mutex (so the tree stays as it is) with the spinlock dropped every UMN_WALK_BATCH
 * ranges to reschedule; otherwise under the spinlock throughout. The caller keeps @uf alive
 * (files_mutex or the mm's lock).
 */
static void umn_file_mark(struct umn_file *uf, unsigned long start, unsigned long end,
			  enum mmu_notifier_event event, bool may_sleep)
{
	u32 flag = umn_change_flag(uf, event);
	struct interval_tree_node *node;
	unsigned int marked = 0;

	if (!flag)
		return;
	if (may_sleep)
		mutex_lock(&uf->tree_mutex);
	spin_lock(&uf->lock);
	for (node = interval_tree_iter_first(&uf->ranges, start, end - 1); node;
	     node = interval_tree_iter_next(node, start, end - 1)) {
		umn_range_changed(uf, container_of(node, struct umn_range, node), start, end, flag);
		uf->range_changes++;
		if (++marked == UMN_WALK_BATCH && may_sleep) {
			umn_changed_notify(uf);
			marked = 0;
			spin_unlock(&uf->lock);
			cond_resched();
			spin_lock(&uf->lock);
		}
	}
	if (marked)
		umn_changed_notify(uf);
	spin_unlock(&uf->lock);
	if (may_sleep)
		mutex_unlock(&uf->tree_mutex);
}

/*
 * Whether any file of the address space watches a range in [start, end) that @event changes.
 * Most invalidations touch no watched range: this keeps them off the sleeping locks.
 */
static bool umn_mm_watched(struct umn_mm *umm, unsigned long start, unsigned long end,
			   enum mmu_notifier_event event)
{
	struct umn_file *uf;
	bool watched = false;

	spin_lock(&umm->lock);
	list_for_each_entry(uf, &umm->files, node) {
		if (!umn_change_flag(uf, event))
			continue;
		spin_lock(&uf->lock);
		watched = interval_tree_iter_first(&uf->ranges, start, end - 1);
		spin_unlock(&uf->lock);
		if (watched)
			break;
	}
	spin_unlock(&umm->lock);
	return watched;
}

/*
 * Marks the ranges of every file of the address space. A range registered after the
 * look-ahead of umn_mm_watched() is marked at registration, as the invalidation is in flight.
 */
static void umn_mm_mark(struct umn_mm *umm, unsigned long start, unsigned long end,
			enum mmu_notifier_event event, bool may_sleep)
{
	struct umn_file *uf;

	if (may_sleep && !umn_mm_watched(umm, start, end, event))
		return;
	if (may_sleep) {
		mutex_lock(&umm->files_mutex);
		list_for_each_entry(uf, &umm->files, node)
			umn_file_mark(uf, start, end, event, true);
		mutex_unlock(&umm->files_mutex);
	} else {
		spin_lock(&umm->lock);
		list_for_each_entry(uf, &umm->files, node)
			umn_file_mark(uf, start, end, event, false);
		spin_unlock(&umm->lock);
	}
}

/*
 * Invalidations are tracked from start to end so that a range registered in between is
 * reported changed: its memory may already be gone when the registration looks at it. The
 * core pairs every start with an end given the same range. (A caller that starts the same
 * range twice, as change_protection() may for a range at address 0, is tracked once.) The
 * notifier exists from the first file's open, which no invalidation can overlap.
 */
static int umn_invalidate_start(struct mmu_notifier *mn, const struct mmu_notifier_range *range)
{
	struct umn_mm *umm = container_of(mn, struct umn_mm, notifier);
	struct umn_inflight *in, *free = NULL;

	spin_lock(&umm->lock);
	for (in = umm->inflight; in < umm->inflight + UMN_INFLIGHT_SLOTS; in++) {
		if (in->range == range)
			break;
		if (!in->range && !free)
			free = in;
	}
	if (in < umm->inflight + UMN_INFLIGHT_SLOTS) {
		/* already tracked */
	} else if (free) {
		*free = (struct umn_inflight){ range, range->start, range->end, range->event };
	} else if (!umm->overflow++) {
		umm->overflow_start = range->start;
		umm->overflow_end = range->end;
	} else {
		umm->overflow_start = min(umm->overflow_start, range->start);
		umm->overflow_end = max(umm->overflow_end, range->end);
	}
	spin_unlock(&umm->lock);

	umn_mm_mark(umm, range->start, range->end, range->event,
		    mmu_notifier_range_blockable(range));
	return 0;
}

static void umn_invalidate_end(struct mmu_notifier *mn, const struct mmu_notifier_range *range)
{
	struct umn_mm *umm = container_of(mn, struct umn_mm, notifier);
	struct umn_inflight *in;

	spin_lock(&umm->lock);
	for (in = umm->inflight; in < umm->inflight + UMN_INFLIGHT_SLOTS; in++) {
		if (in->range == range) {
			in->range = NULL;
			break;
		}
	}
	if (in == umm->inflight + UMN_INFLIGHT_SLOTS && !WARN_ON_ONCE(!umm->overflow))
		umm->overflow--;
	spin_unlock(&umm->lock);
}

/* The address space is going away (exit, exec): every range of every file has changed. */
static void umn_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	struct umn_mm *umm = container_of(mn, struct umn_mm, notifier);

	spin_lock(&umm->lock);
	umm->released = true;
	spin_unlock(&umm->lock);
	umn_mm_mark(umm, 0, ULONG_MAX, MMU_NOTIFY_RELEASE, true);
}

static struct mmu_notifier *umn_alloc_notifier(struct mm_struct *mm)
{
	struct umn_mm *umm = kzalloc(sizeof(*umm), GFP_KERNEL_ACCOUNT);

	if (!umm)
		return ERR_PTR(-ENOMEM);
	mutex_init(&umm->files_mutex);
	spin_lock_init(&umm->lock);
	INIT_LIST_HEAD(&umm->files);
	return &umm->notifier;
}

static void umn_free_notifier(struct mmu_notifier *mn)
{
	kfree(container_of(mn, struct umn_mm, notifier));
}

static const struct mmu_notifier_ops umn_notifier_ops = {
	.release = umn_release,
	.invalidate_range_start = umn_invalidate_start,
	.invalidate_range_end = umn_invalidate_end,
	.alloc_notifier = umn_alloc_notifier,
	.free_notifier = umn_free_notifier,
};

/*
 * A new range overlapping an invalidation in flight is reported changed. Caller holds the
 * mm's lock and the file's.
 */
static void umn_check_inflight(struct umn_file *uf, struct umn_range *r)
{
	unsigned long start = r->node.start, end = r->node.last + 1;
	struct umn_mm *umm = uf->umm;
	struct umn_inflight *in;
	u32 flag;

	lockdep_assert_held(&umm->lock);
	lockdep_assert_held(&uf->lock);
	for (in = umm->inflight; in < umm->inflight + UMN_INFLIGHT_SLOTS; in++) {
		if (!in->range || in->end <= start || end <= in->start)
			continue;
		flag = umn_change_flag(uf, in->event);
		if (flag) {
			umn_range_changed(uf, r, in->start, in->end, flag);
			uf->range_changes++;
		}
	}
	if (umm->overflow && umm->overflow_start < end && start < umm->overflow_end) {
		umn_range_changed(uf, r, umm->overflow_start, umm->overflow_end,
				  UMMUNOTIFY_EVENT_FLAG_OTHER);
		uf->range_changes++;
	}
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

/*
 * Whether the caller is of the address space the file watches (the notifier holds it, so
 * no other can take its address).
 */
static bool umn_owner(struct umn_file *uf)
{
	return current->mm == uf->umm->notifier.mm;
}

/*
 * Reading takes what the owner has not seen yet, so only the owner may, or anyone once the
 * address space is gone (to learn that every range changed).
 */
static bool umn_may_read(struct umn_file *uf)
{
	return umn_owner(uf) || READ_ONCE(uf->umm->released);
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
	req.start = untagged_addr(req.start);
	req.end = untagged_addr(req.end);
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

	ret = -EINTR;
	if (mutex_lock_killable(&uf->mutex))
		goto out_unlocked;
	ret = -EEXIST;
	if (umn_find(uf, r->cookie))
		goto out_free;
	ret = -ENOSPC;
	if (uf->nranges >= uf->max_ranges)
		goto out_free;
	if (atomic_long_inc_return(&uf->user->ranges) > READ_ONCE(max_user_ranges))
		goto out_uncharge;
	slot = ida_alloc_max(&uf->slots, uf->max_ranges - 1, GFP_KERNEL_ACCOUNT);
	if (slot < 0) {
		ret = slot;
		goto out_uncharge;
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
	mutex_lock(&uf->tree_mutex);
	spin_lock(&uf->umm->lock);
	spin_lock(&uf->lock);
	interval_tree_insert(&r->node, &uf->ranges);
	umn_check_inflight(uf, r);
	spin_unlock(&uf->lock);
	spin_unlock(&uf->umm->lock);
	mutex_unlock(&uf->tree_mutex);
	rb_add(&r->by_cookie, &uf->cookies, umn_cookie_less);
	/* written under the mutex, read without it by umn_show_fdinfo() */
	WRITE_ONCE(uf->nranges, uf->nranges + 1);
	WRITE_ONCE(uf->watched_bytes, uf->watched_bytes + (req.end - req.start));
	uf->used = true;
	mutex_unlock(&uf->mutex);
	return 0;

out_slot:
	ida_free(&uf->slots, r->slot);
out_uncharge:
	atomic_long_dec(&uf->user->ranges);
out_free:
	mutex_unlock(&uf->mutex);
out_unlocked:
	kmem_cache_free(umn_range_cache, r);
	return ret;
}

/* Takes @r out of both trees and the list, and frees it. Caller holds the mutex. */
static void umn_remove(struct umn_file *uf, struct umn_range *r)
{
	lockdep_assert_held(&uf->mutex);
	mutex_lock(&uf->tree_mutex);
	spin_lock(&uf->lock);
	interval_tree_remove(&r->node, &uf->ranges);
	if (!list_empty(&r->changed))
		uf->nchanged--;
	list_del(&r->changed);
	spin_unlock(&uf->lock);
	mutex_unlock(&uf->tree_mutex);
	rb_erase(&r->by_cookie, &uf->cookies);
	WRITE_ONCE(*umn_slot_byte(uf, r->slot), 0);
	ida_free(&uf->slots, r->slot);
	WRITE_ONCE(uf->nranges, uf->nranges - 1);
	WRITE_ONCE(uf->watched_bytes, uf->watched_bytes - (r->node.last + 1 - r->node.start));
	atomic_long_dec(&uf->user->ranges);
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
	if (mutex_lock_killable(&uf->mutex))
		return -EINTR;
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
	if (mutex_lock_killable(&uf->mutex))
		return -EINTR;
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
	/*
	 * A LAST is owed while the generation moved since the last one, even if what changed
	 * was unregistered before it was reported: the reader can then catch up.
	 */
	readable = !list_empty(&uf->changed) || uf->shared->generation != uf->told;
	spin_unlock(&uf->lock);
	return readable;
}

/*
 * Moves up to @max changed ranges into @ev (and @taken), then a LAST event if that emptied
 * the list and the generation moved since the last LAST; *@told gets the generation the
 * previous LAST gave. Every range put on the list moved the generation, so INVAL events are
 * always followed by a LAST. Caller holds the mutex and the lock. Return: the number of
 * events.
 */
static size_t umn_take_events(struct umn_file *uf, struct ummunotify_event *ev,
			      struct umn_range **taken, size_t max, bool *gave_last, u64 *told)
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
		uf->nchanged--;
	}
	*told = uf->told;
	*gave_last = n < max && list_empty(&uf->changed) && uf->shared->generation != uf->told;
	if (*gave_last) {
		ev[n++] = (struct ummunotify_event){
			.type = UMMUNOTIFY_EVENT_TYPE_LAST,
			.user_cookie_counter = uf->shared->generation,
		};
		uf->told = uf->shared->generation;
	}
	return n;
}

/* A copy to the reader failed: what it would have reported is reported again. */
static void umn_untake_events(struct umn_file *uf, const struct ummunotify_event *ev,
			      struct umn_range **taken, size_t n, bool gave_last, u64 told)
{
	size_t i;

	spin_lock(&uf->lock);
	for (i = 0; i < n - gave_last; i++)
		umn_range_changed(uf, taken[i], ev[i].hint_start, ev[i].hint_end, ev[i].flags);
	uf->told = told;
	/* another reader may have gone to sleep meanwhile */
	wake_up_interruptible_poll(&uf->wait, EPOLLIN | EPOLLRDNORM);
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
	u64 told;
	size_t n;

	if (!max)
		return -EINVAL;
	if (!umn_may_read(uf))
		return -EPERM;
	/* the common answer to a check that found the generation moved: nothing, and fast */
	if ((file->f_flags & O_NONBLOCK) && !umn_readable(uf))
		return -EAGAIN;
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
		n = umn_take_events(uf, ev, taken, max, &gave_last, &told);
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
		umn_untake_events(uf, ev, taken, n, gave_last, told);
		ret = -EFAULT;
	} else {
		ret = n * sizeof(*ev);
		WRITE_ONCE(uf->events_read, uf->events_read + n);
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

	if (!umn_may_read(uf))
		return EPOLLERR;
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
	/*
	 * Never writable (the VFS refuses a shared writable mapping of a read-only file) nor
	 * executable. Not inherited: a child has another address space, which these pages
	 * say nothing about.
	 */
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;
	pfnic_vm_flags_mod(vma, VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP,
			   VM_MAYWRITE | VM_MAYEXEC);
	vma->vm_ops = &umn_vm_ops;
	return 0;
}

static int umn_open(struct inode *inode, struct file *file)
{
	struct mmu_notifier *mn;
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
	uf->id = atomic64_inc_return(&umn_file_ids);
	uf->nslot_pages = DIV_ROUND_UP(uf->max_ranges, PAGE_SIZE);
	mutex_init(&uf->mutex);
	mutex_init(&uf->tree_mutex);
	spin_lock_init(&uf->lock);
	uf->cookies = RB_ROOT;
	uf->ranges = RB_ROOT_CACHED;
	INIT_LIST_HEAD(&uf->changed);
	ida_init(&uf->slots);
	init_waitqueue_head(&uf->wait);

	ret = -ENOMEM;
	uf->shared_page = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
	uf->slot_pages = kvcalloc(uf->nslot_pages, sizeof(*uf->slot_pages), GFP_KERNEL_ACCOUNT);
	uf->user = umn_user_get(file->f_cred->uid);
	if (!uf->shared_page || !uf->slot_pages || !uf->user)
		goto err;
	uf->shared = page_address(uf->shared_page);
	uf->shared->abi_version = UMMUNOTIFY_ABI_VERSION;
	uf->shared->max_ranges = uf->max_ranges;
	uf->shared->slot_offset = PAGE_SIZE;

	/* the first file of an address space registers its notifier, the others share it */
	mn = mmu_notifier_get(&umn_notifier_ops, current->mm);
	if (IS_ERR(mn)) {
		ret = PTR_ERR(mn);
		goto err;
	}
	uf->umm = container_of(mn, struct umn_mm, notifier);
	mutex_lock(&uf->umm->files_mutex);
	spin_lock(&uf->umm->lock);
	list_add(&uf->node, &uf->umm->files);
	spin_unlock(&uf->umm->lock);
	mutex_unlock(&uf->umm->files_mutex);
	uf->owner = get_task_pid(current, PIDTYPE_TGID);
	file->private_data = uf;
	return stream_open(inode, file);

err:
	if (uf->user)
		umn_user_put(uf->user);
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

	/* out of the list, no notifier walk can reach the file any more */
	mutex_lock(&uf->umm->files_mutex);
	spin_lock(&uf->umm->lock);
	list_del(&uf->node);
	spin_unlock(&uf->umm->lock);
	mutex_unlock(&uf->umm->files_mutex);
	mmu_notifier_put(&uf->umm->notifier);

	atomic_long_sub(uf->nranges, &uf->user->ranges);
	umn_user_put(uf->user);
	put_pid(uf->owner);
	rbtree_postorder_for_each_entry_safe(r, next, &uf->cookies, by_cookie) {
		kmem_cache_free(umn_range_cache, r);
		/* a million ranges take a while to free */
		cond_resched();
	}
	ida_destroy(&uf->slots);
	/*
	 * No mapping is left (it holds the file), but a page may still be held elsewhere
	 * (pinned by get_user_pages() from a mapping now gone): put, never free.
	 */
	for (i = 0; i < uf->nslot_pages; i++)
		if (uf->slot_pages[i])
			put_page(uf->slot_pages[i]);
	kvfree(uf->slot_pages);
	put_page(uf->shared_page);
	kfree(uf);
	return 0;
}

/*
 * /proc/PID/fdinfo/FD of a file: what it watches and how much changed, for a monitor that
 * walks the processes (it costs the notifier nothing). The "ummunotify-" keys are in
 * uapi/ummunotify.h. The owner is the process that opened the file, as the PID namespace of
 * that /proc numbers it (0 if it is gone or outside it). The file's mutex is not taken: its
 * holder may be in a page fault for as long as the faulting memory takes, and a monitor must
 * not wait on that. What it guards is read as it is at that moment.
 */
static void umn_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct pid_namespace *ns = proc_pid_ns(file_inode(m->file)->i_sb);
	struct umn_file *uf = file->private_data;
	u64 bytes, events_read, range_changes, generation;
	unsigned int nranges, nchanged;
	pid_t owner = 0;
	bool released;

	nranges = READ_ONCE(uf->nranges);
	bytes = READ_ONCE(uf->watched_bytes);
	events_read = READ_ONCE(uf->events_read);
	spin_lock(&uf->lock);
	nchanged = uf->nchanged;
	range_changes = uf->range_changes;
	generation = uf->shared->generation;
	spin_unlock(&uf->lock);
	released = READ_ONCE(uf->umm->released);
	/* a pid whose process has exited may have been given to another since */
	if (pid_has_task(uf->owner, PIDTYPE_TGID))
		owner = pid_nr_ns(uf->owner, ns);

	seq_printf(m, "ummunotify-id:\t%llu\n", uf->id);
	seq_printf(m, "ummunotify-owner-pid:\t%d\n", owner);
	seq_printf(m, "ummunotify-released:\t%d\n", released);
	seq_printf(m, "ummunotify-ranges:\t%u\n", nranges);
	seq_printf(m, "ummunotify-max-ranges:\t%u\n", uf->max_ranges);
	seq_printf(m, "ummunotify-watched-bytes:\t%llu\n", bytes);
	seq_printf(m, "ummunotify-changed:\t%u\n", nchanged);
	seq_printf(m, "ummunotify-range-changes:\t%llu\n", range_changes);
	seq_printf(m, "ummunotify-generation:\t%llu\n", generation);
	seq_printf(m, "ummunotify-events-read:\t%llu\n", events_read);
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
	.show_fdinfo = umn_show_fdinfo,
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
	/* the notifiers of closed files are freed after a grace period */
	mmu_notifier_synchronize();
	kmem_cache_destroy(umn_range_cache);
}

module_init(umn_init);
module_exit(umn_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ummunotify: which watched address ranges the kernel changed, for registration caches");
