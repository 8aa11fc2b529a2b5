// SPDX-License-Identifier: GPL-2.0-only
/*
 * regcache: a cache of pinned memory registrations kept correct by /dev/ummunotify. The
 * rules it follows are in regcache.h; this file says how.
 *
 * Every entry is on:
 *  - the interval tree (rc->root) while lookups may return it: an AVL tree ordered by
 *    (start, cookie), each node knowing the largest end in its subtree;
 *  - the LRU list while it is in the tree and nobody holds it;
 *  - the cookie hash while /dev/ummunotify watches its range (to act on INVAL records);
 *  - the MR hash from registration to deregistration (regcache_put() gets the MR only).
 * Everything is under rc->lock, but for the fork check, which must work in a child whose
 * copy of the lock a parent's thread may have held at fork() time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ummunotify.h"

#include "regcache.h"

/* Registrations tried in one regcache_get() when the memory changes during each of them. */
#define REGISTER_ATTEMPTS 3
/* Events one read() takes. */
#define READ_BATCH 64
#define HASH_MIN_BUCKETS 64

enum { BY_COOKIE, BY_MR, NHASH };

struct rc_entry {
	/* interval tree */
	struct rc_entry *left, *right;
	uintptr_t max_end;		/* the largest end in this subtree */
	int height;
	bool in_tree;

	uintptr_t start, end;		/* the registered (page-aligned) range */
	uint64_t cookie;
	uint32_t slot;			/* its byte in the shared mapping, while watched */
	bool watched;
	struct ibv_mr *mr;
	unsigned long refs;

	/* LRU list: least recently used first */
	struct rc_entry *lru_prev, *lru_next;
	bool on_lru;

	struct rc_entry *hash_next[NHASH];
};

struct rc_hash {
	struct rc_entry **buckets;
	size_t mask;			/* buckets - 1, a power of 2 minus 1 */
	size_t count;
};

struct regcache {
	pthread_mutex_t lock;
	struct ibv_pd *pd;
	int access;
	size_t max_entries;
	bool ignore_changes;
	uintptr_t page_size;

	int fd;				/* /dev/ummunotify, O_NONBLOCK */
	void *map;
	size_t map_size;
	const struct ummunotify_shared *shared;
	const uint8_t *slot_bytes;
	uint32_t max_ranges;
	uint64_t caught_up;		/* the generation of the last catch-up */
	uint64_t next_cookie;

	struct rc_entry *root;
	size_t in_tree;
	struct rc_entry *lru_first, *lru_last;
	struct rc_hash hash[NHASH];

	pid_t pid;			/* of the process that opened the cache */
	unsigned long forks;		/* fork_count when it was opened */
	struct regcache_stats stats;	/* but entries and in_use, kept up to date */
	int dereg_errno;		/* of the first failed ibv_dereg_mr(), for close */
};

/* ---- fork detection -------------------------------------------------------------------- */

/*
 * Forks this process went through (counted in each child): a cache whose count differs was
 * opened by an ancestor. getpid() would tell too, but it is a system call, and the hit path
 * makes none.
 */
static unsigned long fork_count;
static bool fork_counted;
static pthread_once_t fork_count_once = PTHREAD_ONCE_INIT;

static void count_fork(void)
{
	__atomic_add_fetch(&fork_count, 1, __ATOMIC_RELAXED);
}

static void install_fork_counter(void)
{
	fork_counted = pthread_atfork(NULL, NULL, count_fork) == 0;
}

/*
 * Whether this is not the process that opened @rc (a forked child). @syscalls_anyway: the
 * caller makes system calls on this path, so getpid() costs little and also catches
 * children that clone() made without running the fork handlers.
 */
static bool in_child(const struct regcache *rc, bool syscalls_anyway)
{
	if (__atomic_load_n(&fork_count, __ATOMIC_RELAXED) != rc->forks)
		return true;
	return (syscalls_anyway || !fork_counted) && getpid() != rc->pid;
}

/* ---- hashes ----------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t hash_key(const struct rc_entry *e, int which)
{
	return which == BY_COOKIE ? e->cookie : (uint64_t)(uintptr_t)e->mr;
}

static int hash_init(struct rc_hash *h)
{
	h->buckets = calloc(HASH_MIN_BUCKETS, sizeof(*h->buckets));
	h->mask = HASH_MIN_BUCKETS - 1;
	h->count = 0;
	return h->buckets ? 0 : -1;
}

/* Doubles the buckets; if there is no memory for it, the chains just get longer. */
static void hash_grow(struct rc_hash *h, int which)
{
	size_t n = (h->mask + 1) * 2;
	struct rc_entry **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return;
	for (size_t i = 0; i <= h->mask; i++) {
		struct rc_entry *e = h->buckets[i], *next;

		for (; e; e = next) {
			size_t b = mix64(hash_key(e, which)) & (n - 1);

			next = e->hash_next[which];
			e->hash_next[which] = nb[b];
			nb[b] = e;
		}
	}
	free(h->buckets);
	h->buckets = nb;
	h->mask = n - 1;
}

static void hash_add(struct regcache *rc, struct rc_entry *e, int which)
{
	struct rc_hash *h = &rc->hash[which];
	size_t b;

	if (h->count > h->mask)
		hash_grow(h, which);
	b = mix64(hash_key(e, which)) & h->mask;
	e->hash_next[which] = h->buckets[b];
	h->buckets[b] = e;
	h->count++;
}

static void hash_del(struct regcache *rc, struct rc_entry *e, int which)
{
	struct rc_hash *h = &rc->hash[which];
	struct rc_entry **p = &h->buckets[mix64(hash_key(e, which)) & h->mask];

	for (; *p; p = &(*p)->hash_next[which]) {
		if (*p == e) {
			*p = e->hash_next[which];
			h->count--;
			return;
		}
	}
}

static struct rc_entry *hash_find(const struct regcache *rc, uint64_t key, int which)
{
	const struct rc_hash *h = &rc->hash[which];
	struct rc_entry *e = h->buckets[mix64(key) & h->mask];

	while (e && hash_key(e, which) != key)
		e = e->hash_next[which];
	return e;
}

/* ---- interval tree ---------------------------------------------------------------------- */

static int height(const struct rc_entry *n)
{
	return n ? n->height : 0;
}

static uintptr_t max_end(const struct rc_entry *n)
{
	return n ? n->max_end : 0;
}

static void update(struct rc_entry *n)
{
	int hl = height(n->left), hr = height(n->right);
	uintptr_t ml = max_end(n->left), mr = max_end(n->right);

	n->height = 1 + (hl > hr ? hl : hr);
	n->max_end = n->end;
	if (ml > n->max_end)
		n->max_end = ml;
	if (mr > n->max_end)
		n->max_end = mr;
}

static struct rc_entry *rotate_right(struct rc_entry *y)
{
	struct rc_entry *x = y->left;

	y->left = x->right;
	x->right = y;
	update(y);
	update(x);
	return x;
}

static struct rc_entry *rotate_left(struct rc_entry *x)
{
	struct rc_entry *y = x->right;

	x->right = y->left;
	y->left = x;
	update(x);
	update(y);
	return y;
}

/* @n with its children's heights differing by 2 at most, made AVL again and updated. */
static struct rc_entry *rebalance(struct rc_entry *n)
{
	int balance = height(n->left) - height(n->right);

	if (balance > 1) {
		if (height(n->left->left) < height(n->left->right))
			n->left = rotate_left(n->left);
		return rotate_right(n);
	}
	if (balance < -1) {
		if (height(n->right->right) < height(n->right->left))
			n->right = rotate_right(n->right);
		return rotate_left(n);
	}
	update(n);
	return n;
}

/* The tree's order: by start, ties by cookie (unique), so every entry has its place. */
static bool goes_before(const struct rc_entry *a, const struct rc_entry *b)
{
	return a->start < b->start || (a->start == b->start && a->cookie < b->cookie);
}

static struct rc_entry *tree_insert(struct rc_entry *n, struct rc_entry *e)
{
	if (!n) {
		e->left = e->right = NULL;
		update(e);
		return e;
	}
	if (goes_before(e, n))
		n->left = tree_insert(n->left, e);
	else
		n->right = tree_insert(n->right, e);
	return rebalance(n);
}

static struct rc_entry *tree_take_min(struct rc_entry *n, struct rc_entry **min)
{
	if (!n->left) {
		*min = n;
		return n->right;
	}
	n->left = tree_take_min(n->left, min);
	return rebalance(n);
}

static struct rc_entry *tree_remove(struct rc_entry *n, struct rc_entry *e)
{
	struct rc_entry *successor;

	if (n == e) {
		if (!e->right)
			return e->left;
		e->right = tree_take_min(e->right, &successor);
		successor->left = e->left;
		successor->right = e->right;
		return rebalance(successor);
	}
	if (goes_before(e, n))
		n->left = tree_remove(n->left, e);
	else
		n->right = tree_remove(n->right, e);
	return rebalance(n);
}

/* An entry of @n's subtree ending at or after @end, where all start early enough. */
static struct rc_entry *tree_find_end(struct rc_entry *n, uintptr_t end)
{
	/* max_end says which child has one; the walk stays where one is */
	while (n && n->end < end)
		n = max_end(n->left) >= end ? n->left : n->right;
	return n;
}

/* An entry with start <= @start and end >= @end, or NULL: O(log n). */
static struct rc_entry *tree_find(struct rc_entry *n, uintptr_t start, uintptr_t end)
{
	while (n && n->max_end >= end) {
		if (n->start > start) {
			/* it and its right subtree start too late */
			n = n->left;
			continue;
		}
		/* all of the left subtree starts early enough: only its ends matter */
		if (max_end(n->left) >= end)
			return tree_find_end(n->left, end);
		if (n->end >= end)
			return n;
		n = n->right;
	}
	return NULL;
}

/* ---- LRU -------------------------------------------------------------------------------- */

static void lru_append(struct regcache *rc, struct rc_entry *e)
{
	e->lru_next = NULL;
	e->lru_prev = rc->lru_last;
	if (rc->lru_last)
		rc->lru_last->lru_next = e;
	else
		rc->lru_first = e;
	rc->lru_last = e;
	e->on_lru = true;
}

static void lru_del(struct regcache *rc, struct rc_entry *e)
{
	if (!e->on_lru)
		return;
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		rc->lru_first = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		rc->lru_last = e->lru_prev;
	e->on_lru = false;
}

/* ---- /dev/ummunotify -------------------------------------------------------------------- */

static uint64_t shared_generation(const struct regcache *rc)
{
	/* pairs with the kernel's write barrier between a range's byte and the generation */
	return __atomic_load_n(&rc->shared->generation, __ATOMIC_ACQUIRE);
}

static bool slot_changed(const struct regcache *rc, const struct rc_entry *e)
{
	return __atomic_load_n(&rc->slot_bytes[e->slot], __ATOMIC_RELAXED) != 0;
}

/* Whether @e's memory changed since it was registered; no system call. */
static bool entry_changed(const struct regcache *rc, const struct rc_entry *e)
{
	if (rc->ignore_changes)
		return false;
	if (shared_generation(rc) == rc->caught_up)
		return false;
	return slot_changed(rc, e);
}

static bool evict_lru_first(struct regcache *rc);

/* Watches @e's range under a new cookie; on ENOSPC, makes room by evicting unused entries. */
static int watch(struct regcache *rc, struct rc_entry *e)
{
	struct ummunotify_register_ioctl req;

	e->cookie = ++rc->next_cookie;
	for (;;) {
		req = (struct ummunotify_register_ioctl){
			.start = e->start, .end = e->end, .user_cookie = e->cookie,
		};
		if (ioctl(rc->fd, UMMUNOTIFY_REGISTER_REGION_SLOT, &req) == 0)
			break;
		if (errno != ENOSPC || !evict_lru_first(rc))
			return -1;
	}
	if (req.slot >= rc->max_ranges) {
		/* the kernel broke its promise: that byte is not in the mapping */
		ioctl(rc->fd, UMMUNOTIFY_UNREGISTER_REGION, &e->cookie);
		errno = EPROTO;
		return -1;
	}
	e->slot = req.slot;
	e->watched = true;
	hash_add(rc, e, BY_COOKIE);
	return 0;
}

static void unwatch(struct regcache *rc, struct rc_entry *e)
{
	if (!e->watched)
		return;
	hash_del(rc, e, BY_COOKIE);
	/* cannot fail for a cookie that is registered, as this one is */
	ioctl(rc->fd, UMMUNOTIFY_UNREGISTER_REGION, &e->cookie);
	e->watched = false;
}

/* ---- entries ---------------------------------------------------------------------------- */

static void dereg(struct regcache *rc, struct ibv_mr *mr)
{
	int err = ibv_dereg_mr(mr);

	rc->stats.deregistrations++;
	if (err) {
		rc->stats.dereg_failures++;
		if (!rc->dereg_errno)
			rc->dereg_errno = err;
	}
}

/* Deregisters and frees @e, which is out of the tree, unwatched and unheld. */
static void destroy(struct regcache *rc, struct rc_entry *e)
{
	hash_del(rc, e, BY_MR);
	dereg(rc, e->mr);
	rc->stats.entries--;
	free(e);
}

enum evict_reason { CHANGED, CAPACITY };

/* Out of the lookup and unwatched at once; deregistered now if unheld, else on last put. */
static void evict(struct regcache *rc, struct rc_entry *e, enum evict_reason why)
{
	if (e->in_tree) {
		rc->root = tree_remove(rc->root, e);
		e->in_tree = false;
		rc->in_tree--;
	}
	lru_del(rc, e);
	unwatch(rc, e);
	if (why == CHANGED)
		rc->stats.evictions_changed++;
	else
		rc->stats.evictions_capacity++;
	if (!e->refs)
		destroy(rc, e);
}

/* Evicts the least recently used unheld entry; false if there is none. */
static bool evict_lru_first(struct regcache *rc)
{
	if (!rc->lru_first)
		return false;
	evict(rc, rc->lru_first, CAPACITY);
	return true;
}

static void enforce_capacity(struct regcache *rc)
{
	while (rc->in_tree > rc->max_entries && evict_lru_first(rc))
		;
}

/*
 * Reads every pending event: evicts the entries INVAL records name, and remembers the
 * generation the cache has caught up to. Return: 0, or -1 with errno set.
 */
static int catch_up(struct regcache *rc)
{
	struct ummunotify_event ev[READ_BATCH];

	for (;;) {
		uint64_t before = shared_generation(rc);
		ssize_t got = read(rc->fd, ev, sizeof(ev));

		rc->stats.reads++;
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && errno == EAGAIN) {
			/*
			 * Nothing to report: the generation has not moved since the last LAST
			 * record, so @before, read ahead of the read(), is caught up to.
			 */
			rc->caught_up = before;
			return 0;
		}
		if (got < 0)
			return -1;
		if (got == 0 || got % sizeof(ev[0])) {
			errno = EPROTO;
			return -1;
		}
		for (size_t i = 0; i < got / sizeof(ev[0]); i++) {
			struct rc_entry *e;

			if (ev[i].type == UMMUNOTIFY_EVENT_TYPE_LAST) {
				/* the last record of a read: everything is reported */
				rc->caught_up = ev[i].user_cookie_counter;
				return 0;
			}
			if (ev[i].type != UMMUNOTIFY_EVENT_TYPE_INVAL || rc->ignore_changes)
				continue;
			e = hash_find(rc, ev[i].user_cookie_counter, BY_COOKIE);
			if (e)
				evict(rc, e, CHANGED);
		}
	}
}

/*
 * ibv_reg_mr of @e's range; when the pinned-memory limit is reached (ENOMEM), once more
 * after deregistering every unheld entry.
 */
static struct ibv_mr *register_range(struct regcache *rc, struct rc_entry *e)
{
	struct ibv_mr *mr;

	for (;;) {
		mr = ibv_reg_mr(rc->pd, (void *)e->start, e->end - e->start, rc->access);
		if (mr || errno != ENOMEM || !rc->lru_first)
			return mr;
		while (evict_lru_first(rc))
			;
	}
}

/* A new entry for [start, end), held once and in the lookup; NULL with errno set. */
static struct rc_entry *create(struct regcache *rc, uintptr_t start, uintptr_t end)
{
	struct rc_entry *e = calloc(1, sizeof(*e));
	int err;

	if (!e)
		return NULL;
	e->start = start & ~(rc->page_size - 1);
	e->end = (end + rc->page_size - 1) & ~(rc->page_size - 1);
	if (e->end < end) {
		err = EINVAL;
		goto fail;
	}
	for (int attempt = 1;; attempt++) {
		/* watched first: what changes the memory from now on is reported */
		if (watch(rc, e)) {
			err = errno;
			goto fail;
		}
		e->mr = register_range(rc, e);
		if (!e->mr) {
			err = errno;
			unwatch(rc, e);
			goto fail;
		}
		rc->stats.registrations++;
		rc->stats.entries++;
		hash_add(rc, e, BY_MR);
		if (rc->ignore_changes || !slot_changed(rc, e))
			break;
		/*
		 * The memory changed while it was being registered (or registering it broke a
		 * copy-on-write): the MR may hold pages the process no longer has there.
		 */
		unwatch(rc, e);
		rc->stats.evictions_changed++;
		hash_del(rc, e, BY_MR);
		dereg(rc, e->mr);
		rc->stats.entries--;
		if (attempt == REGISTER_ATTEMPTS) {
			err = EAGAIN;
			goto fail;
		}
	}
	e->refs = 1;
	rc->stats.in_use++;
	rc->root = tree_insert(rc->root, e);
	e->in_tree = true;
	rc->in_tree++;
	return e;

fail:
	free(e);
	errno = err;
	return NULL;
}

/* ---- the API ---------------------------------------------------------------------------- */

struct regcache *regcache_open(struct ibv_pd *pd, int access, size_t max_entries,
			       unsigned int flags)
{
	struct ummunotify_info info;
	struct regcache *rc;
	int err;

	if (!pd || (flags & ~REGCACHE_IGNORE_CHANGES)) {
		errno = EINVAL;
		return NULL;
	}
	pthread_once(&fork_count_once, install_fork_counter);
	rc = calloc(1, sizeof(*rc));
	if (!rc)
		return NULL;
	rc->pd = pd;
	rc->access = access;
	rc->max_entries = max_entries;
	rc->ignore_changes = flags & REGCACHE_IGNORE_CHANGES;
	rc->page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
	rc->map = MAP_FAILED;
	rc->pid = getpid();
	rc->forks = __atomic_load_n(&fork_count, __ATOMIC_RELAXED);

	rc->fd = open(UMMUNOTIFY_PATH, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (rc->fd < 0) {
		err = errno;
		goto fail;
	}
	if (ioctl(rc->fd, UMMUNOTIFY_GET_INFO, &info)) {
		/* ENOTTY: a module of the 2010 proposal, with no version nor slot bytes */
		err = errno == ENOTTY || errno == EINVAL ? EPROTONOSUPPORT : errno;
		goto fail;
	}
	if (info.abi_version != UMMUNOTIFY_ABI_VERSION ||
	    info.event_size != sizeof(struct ummunotify_event) ||
	    info.slot_offset < sizeof(struct ummunotify_shared) || !info.max_ranges ||
	    info.map_size < info.slot_offset + info.max_ranges) {
		err = EPROTONOSUPPORT;
		goto fail;
	}
	rc->map_size = info.map_size;
	rc->max_ranges = info.max_ranges;
	rc->map = mmap(NULL, rc->map_size, PROT_READ, MAP_SHARED, rc->fd, 0);
	if (rc->map == MAP_FAILED) {
		err = errno;
		goto fail;
	}
	rc->shared = rc->map;
	rc->slot_bytes = (const uint8_t *)rc->map + info.slot_offset;
	/* nothing is watched yet, so nothing has changed */
	rc->caught_up = shared_generation(rc);

	if (hash_init(&rc->hash[BY_COOKIE]) || hash_init(&rc->hash[BY_MR])) {
		err = ENOMEM;
		goto fail;
	}
	err = pthread_mutex_init(&rc->lock, NULL);
	if (err)
		goto fail;
	return rc;

fail:
	free(rc->hash[BY_COOKIE].buckets);
	free(rc->hash[BY_MR].buckets);
	if (rc->map != MAP_FAILED)
		munmap(rc->map, rc->map_size);
	if (rc->fd >= 0)
		close(rc->fd);
	free(rc);
	errno = err;
	return NULL;
}

struct ibv_mr *regcache_get(struct regcache *rc, void *addr, size_t len)
{
	uintptr_t start = (uintptr_t)addr, end;
	struct rc_entry *e;

	if (!rc || !len || __builtin_add_overflow(start, len, &end)) {
		errno = EINVAL;
		return NULL;
	}
	if (in_child(rc, false)) {
		errno = EPERM;
		return NULL;
	}
	pthread_mutex_lock(&rc->lock);
	while ((e = tree_find(rc->root, start, end)) && entry_changed(rc, e))
		evict(rc, e, CHANGED);
	if (e) {
		if (!e->refs++) {
			lru_del(rc, e);
			rc->stats.in_use++;
		}
		rc->stats.hits++;
		pthread_mutex_unlock(&rc->lock);
		return e->mr;
	}

	if (in_child(rc, true)) {
		pthread_mutex_unlock(&rc->lock);
		errno = EPERM;
		return NULL;
	}
	/*
	 * Evict what changed before adding: it frees pinned memory and room. A failure here
	 * costs nothing in correctness (the bytes still tell), so it is not the caller's.
	 */
	if (shared_generation(rc) != rc->caught_up)
		catch_up(rc);
	e = create(rc, start, end);
	if (e) {
		rc->stats.misses++;
		enforce_capacity(rc);
	}
	pthread_mutex_unlock(&rc->lock);
	return e ? e->mr : NULL;
}

void regcache_put(struct regcache *rc, struct ibv_mr *mr)
{
	struct rc_entry *e;

	if (!rc || !mr || in_child(rc, false))
		return;
	pthread_mutex_lock(&rc->lock);
	e = hash_find(rc, (uint64_t)(uintptr_t)mr, BY_MR);
	if (e && e->refs && !--e->refs) {
		rc->stats.in_use--;
		if (!e->in_tree) {
			destroy(rc, e);
		} else if (entry_changed(rc, e)) {
			/* its pinned pages are nobody's any more: let them go now */
			evict(rc, e, CHANGED);
		} else {
			lru_append(rc, e);
			enforce_capacity(rc);
		}
	}
	pthread_mutex_unlock(&rc->lock);
}

int regcache_flush(struct regcache *rc)
{
	int ret;

	if (!rc) {
		errno = EINVAL;
		return -1;
	}
	if (in_child(rc, true)) {
		errno = EPERM;
		return -1;
	}
	pthread_mutex_lock(&rc->lock);
	ret = catch_up(rc);
	pthread_mutex_unlock(&rc->lock);
	return ret;
}

void regcache_stats(const struct regcache *rc, struct regcache_stats *stats)
{
	/* the lock is not part of the cache's value */
	pthread_mutex_t *lock = (pthread_mutex_t *)&rc->lock;
	/* a parent's thread may have held the child's copy of the lock at fork() */
	bool child = in_child(rc, false);

	if (!child)
		pthread_mutex_lock(lock);
	*stats = rc->stats;
	if (!child)
		pthread_mutex_unlock(lock);
}

int regcache_close(struct regcache *rc)
{
	bool child;
	int err;

	if (!rc)
		return 0;
	child = in_child(rc, true);
	if (!child)
		pthread_mutex_lock(&rc->lock);
	/* every entry has an MR and is in the MR hash */
	for (size_t i = 0; i <= rc->hash[BY_MR].mask; i++) {
		struct rc_entry *e = rc->hash[BY_MR].buckets[i], *next;

		for (; e; e = next) {
			next = e->hash_next[BY_MR];
			/* a child's MRs are its parent's (one uverbs file) */
			if (!child)
				dereg(rc, e->mr);
			free(e);
		}
	}
	err = rc->dereg_errno;
	free(rc->hash[BY_COOKIE].buckets);
	free(rc->hash[BY_MR].buckets);
	/*
	 * The file unwatches everything when closed. A child has no mapping of it (nor must
	 * it unmap what may be there now) and closes only its own reference.
	 */
	if (!child)
		munmap(rc->map, rc->map_size);
	close(rc->fd);
	if (!child) {
		pthread_mutex_unlock(&rc->lock);
		pthread_mutex_destroy(&rc->lock);
	}
	free(rc);
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}
