/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * regcache: a cache of pinned memory registrations (struct ibv_mr) for any verbs device,
 * kept correct by /dev/ummunotify (ummunotify.ko, uapi/ummunotify.h).
 *
 * Registering memory is slow (a system call, pinning every page); programs that send from
 * and receive into the same buffers again and again want to register each buffer once.
 * But a pinned MR holds the pages that were behind its addresses when it was registered:
 * after munmap + mmap at the same address, mremap, brk shrinking and growing again,
 * MADV_DONTNEED, mmap(MAP_FIXED) over it, shmdt + shmat..., the process has other pages
 * there and the MR still moves data from and to the old ones. A cache that hands out such
 * an MR silently corrupts data. This one watches the range of every MR it holds with
 * /dev/ummunotify and never hands out an MR whose range the kernel has changed.
 *
 * Use:
 *
 *	struct regcache *rc = regcache_open(pd, IBV_ACCESS_LOCAL_WRITE | ..., 1024, 0);
 *	struct ibv_mr *mr = regcache_get(rc, buf, len);	// lkey/rkey cover [buf, buf + len)
 *	... post work requests using mr, wait for their completions ...
 *	regcache_put(rc, mr);
 *	...
 *	regcache_close(rc);
 *
 * How it stays correct (the rules it follows):
 *
 *  - Every entry is one MR of the page-aligned range around what was asked for, registered
 *    with the cache's access flags, and one range watched by /dev/ummunotify under a cookie
 *    of its own (a counter, never reused).
 *  - Watch first, then register: on a miss the range is watched (UMMUNOTIFY_REGISTER_REGION_
 *    SLOT) before ibv_reg_mr pins it, so a change between the two is reported, not lost. If
 *    the kernel reports the new range changed before it is even handed out (something
 *    changed the memory while it was being registered, or registering it broke a
 *    copy-on-write), it is registered afresh, a few times at most, else EAGAIN.
 *  - A hit costs no system call: if the generation in the shared page (read with acquire
 *    ordering, which pairs with the kernel setting a range's byte before it bumps the
 *    generation) still equals the generation the cache last caught up to, nothing watched
 *    has changed since. Otherwise the entry's own byte in the shared page says: 0, the
 *    range is unchanged; non-zero, it changed, and the entry is evicted and looked up
 *    again. A stale MR is never returned.
 *  - The cache catches up (reads every pending event, without blocking, up to the LAST
 *    record, whose generation it remembers) on a miss when the generation has moved, and
 *    in regcache_flush(); every range an INVAL record names is evicted. When read() has
 *    nothing to report (EAGAIN: the generation has not moved since the last LAST record),
 *    the generation read just before the read() is the one caught up to.
 *  - An entry evicted while in use (references held by callers) leaves the lookup at once,
 *    so no later regcache_get() returns it, but its MR is deregistered only on its last
 *    regcache_put(): work requests posted with it may still be in flight.
 *  - Capacity: when more than max_entries entries are cached, the least recently used ones
 *    that nobody holds are evicted (entries in use are never evicted for capacity, so the
 *    cache can exceed max_entries while they are held). The same happens when the kernel
 *    refuses to watch more ranges (ENOSPC) or ibv_reg_mr runs out of memory it may pin
 *    (ENOMEM: RLIMIT_MEMLOCK), before the call gives up.
 *  - Entries may overlap; lookups find any valid entry covering the whole of [addr,
 *    addr + len) in O(log n) (an interval tree: AVL by start address, augmented with the
 *    largest end below each node).
 *  - Thread-safe: every call takes one mutex (none is held across a call's return).
 *  - fork(): the MRs belong to the parent (a child shares its uverbs file, so deregistering
 *    there would deregister the parent's), and /dev/ummunotify watches the parent's address
 *    space (its mapping is not inherited). In a forked child regcache_get() and
 *    regcache_flush() fail with EPERM, regcache_put() does nothing, regcache_stats() works,
 *    and regcache_close() only frees the child's copy of the cache: it deregisters and
 *    unwatches nothing, so the parent's cache is unharmed. A fork is detected with no
 *    system call on the hit path (a pthread_atfork() handler counts forks in the child), and
 *    with getpid() too on the paths that make system calls anyway.
 *
 * What it does not cover: ranges whose pages change but stay in place (mprotect: not
 * reported, and harmless for a pinned MR, which keeps the same pages); an MR used after
 * regcache_put() (the caller's bug); memory the kernel changes while a work request is in
 * flight (no cache can help: the caller must not unmap memory it has posted).
 */
#ifndef PFNIC_REGCACHE_H
#define PFNIC_REGCACHE_H

#include <stddef.h>
#include <stdint.h>

#include <infiniband/verbs.h>

#ifdef __cplusplus
extern "C" {
#endif

struct regcache;

/* regcache_open() flags. */
enum {
	/*
	 * TEST ONLY, never in production: the cache ignores what /dev/ummunotify reports and
	 * keeps handing out MRs of memory that has changed (it still watches and drains, so
	 * it does the same system calls). It exists so that a test can prove it detects such
	 * a cache (regcache_churn --ignore-changes); with it, data goes to and comes from the
	 * wrong pages.
	 */
	REGCACHE_IGNORE_CHANGES = 1u << 0,
};

/*
 * Counters since regcache_open(). Invariant: registrations - deregistrations == entries
 * (one MR per entry, in the lookup or evicted but still in use). Every regcache_get() that
 * returns an MR is one hit or one miss.
 */
struct regcache_stats {
	uint64_t hits;			/* regcache_get() answered from the cache */
	uint64_t misses;		/* regcache_get() that registered memory */
	uint64_t evictions_changed;	/* entries evicted because their memory changed */
	uint64_t evictions_capacity;	/* unused entries evicted to make room */
	uint64_t registrations;		/* successful ibv_reg_mr() */
	uint64_t deregistrations;	/* ibv_dereg_mr() calls (failed ones in dereg_failures) */
	uint64_t dereg_failures;	/* ibv_dereg_mr() that failed: that MR is leaked */
	uint64_t reads;			/* read() calls on /dev/ummunotify */
	uint64_t entries;		/* MRs the cache holds now */
	uint64_t in_use;		/* of them, with references held */
};

/*
 * A cache of MRs of @pd, each registered with @access (IBV_ACCESS_* flags), caching at
 * most @max_entries entries (more only while callers hold them; 0: an entry is evicted as
 * soon as nobody holds it, so nothing is cached).
 * @flags: 0 or REGCACHE_IGNORE_CHANGES (test only). Opens /dev/ummunotify and maps its
 * shared page and its per-range bytes.
 * Return: the cache, or NULL with errno set:
 *   ENOENT or ENODEV  there is no /dev/ummunotify: load ummunotify.ko
 *   EACCES            /dev/ummunotify cannot be opened for reading
 *   EPROTONOSUPPORT   the kernel's ummunotify has another ABI version, or none that tells
 *                     its version (UMMUNOTIFY_GET_INFO, the per-range bytes: the 2010
 *                     proposal's module lacks them)
 *   EINVAL            @pd is NULL or @flags has an unknown bit
 *   ENOMEM            out of memory
 *   or what open(), ioctl() or mmap() of /dev/ummunotify failed with.
 */
struct regcache *regcache_open(struct ibv_pd *pd, int access, size_t max_entries,
			       unsigned int flags);

/*
 * An MR that covers [@addr, @addr + @len): a cached one if a valid entry covers it (a hit),
 * else a new registration of the pages around it (a miss). The caller holds a reference
 * until regcache_put(); the MR's addr and length are those of the registration, which may
 * be larger than asked (use @addr with its lkey/rkey, not mr->addr).
 * Return: the MR, or NULL with errno set: EINVAL (@len is 0, or the range wraps), EPERM (in
 * a forked child), EAGAIN (the memory kept changing while it was being registered),
 * ENOSPC (/dev/ummunotify watches as many ranges as it allows and all are in use), or what
 * ibv_reg_mr() or UMMUNOTIFY_REGISTER_REGION_SLOT failed with (EFAULT: not all mapped).
 */
struct ibv_mr *regcache_get(struct regcache *rc, void *addr, size_t len);

/*
 * Drops a reference regcache_get() returned. The MR must not be used after (the cache
 * may deregister it at once). An MR the cache did not hand out, or put once too often, is
 * ignored. In a forked child, does nothing.
 */
void regcache_put(struct regcache *rc, struct ibv_mr *mr);

/*
 * Catches up with /dev/ummunotify: reads every pending event and evicts every entry whose
 * memory changed, so their MRs (unless in use) are deregistered now rather than when next
 * looked up.
 * Return: 0, or -1 with errno set (EPERM in a forked child; what read() failed with).
 */
int regcache_flush(struct regcache *rc);

/* The counters (a consistent snapshot). */
void regcache_stats(const struct regcache *rc, struct regcache_stats *stats);

/*
 * Deregisters every MR (also those still in use: their holders must have stopped using
 * them), stops watching, frees the cache. NULL is ignored.
 * Return: 0, or -1 with errno set if an ibv_dereg_mr() failed (the cache is freed anyway;
 * that MR stays registered until its PD's context is closed).
 */
int regcache_close(struct regcache *rc);

#ifdef __cplusplus
}
#endif

#endif /* PFNIC_REGCACHE_H */
