/* SPDX-License-Identifier: (GPL-2.0-only WITH Linux-syscall-note) OR BSD-2-Clause */
/*
 * /dev/ummunotify: tells a process which of the address ranges it watches the kernel has
 * changed (unmapped, or put other pages behind), so that a library caching memory
 * registrations never uses one whose memory is gone. The interface is the one proposed for
 * Linux in 2009-2010 (same ioctl numbers, structures and events, so programs written for it
 * work unchanged), and what that proposal lacked, as ABI version 1: a version and limits
 * (UMMUNOTIFY_GET_INFO), and a "changed" byte per range in the shared mapping, so one cache
 * entry can be checked with no system call even after other ranges changed.
 *
 * Use:
 *  1. open("/dev/ummunotify", O_RDONLY). The file watches the address space of the process
 *     that opened it, and belongs to it: any other (a forked child, the program after exec,
 *     a process the descriptor was passed to) gets EPERM from register, unregister, feature
 *     exchange and read(), and POLLERR from poll, until that address space is gone; then
 *     anyone holding the descriptor may read that every range changed. GET_INFO and mmap
 *     work for anyone. Opening for writing fails (EACCES, or EINVAL with the right to).
 *  2. UMMUNOTIFY_REGISTER_REGION (or UMMUNOTIFY_REGISTER_REGION_SLOT, which also returns the
 *     range's slot): watch [start, end) under a 64-bit cookie of your choice, unique in
 *     the file (EEXIST otherwise). UMMUNOTIFY_UNREGISTER_REGION stops watching it (ENOENT
 *     for a cookie not registered). ENOSPC when the file has info.max_ranges ranges, or
 *     the user (the opener's real uid) the module's max_user_ranges over all its files.
 *  3. mmap() the first page at offset 0 (read-only, shared): struct ummunotify_shared, whose
 *     generation changes every time the kernel changes a watched range. Mapping
 *     info.map_size bytes instead maps the per-range bytes too: the byte at offset
 *     info.slot_offset + slot becomes non-zero when the range in that slot changes, and
 *     stays so until the range is unregistered. A forked child does not inherit the mapping
 *     (unless madvise(MADV_DOFORK) asked for it). Load the generation with one 64-bit load;
 *     a 32-bit process that loads it in two halves must read high, low, high and retry while
 *     the two highs differ.
 *  4. read() returns struct ummunotify_event records: one UMMUNOTIFY_EVENT_TYPE_INVAL per
 *     range changed since the last read() that reported it, then, once all are reported,
 *     one UMMUNOTIFY_EVENT_TYPE_LAST carrying the generation at that point. A LAST comes
 *     whenever the generation moved since the previous LAST, even if the ranges that
 *     changed were unregistered before being reported. read() blocks while there is nothing
 *     to report (EAGAIN with O_NONBLOCK); poll/select/epoll report POLLIN, and F_SETOWN +
 *     O_ASYNC deliver SIGIO, when there is. A buffer too small for one event is EINVAL.
 *
 * Nothing is ever lost, because nothing is queued: a range is either changed since it was
 * last reported or not, like a dirty bit, however many times the kernel changed it. The
 * kernel's memory grows with the ranges watched (about 130 bytes each), never with events.
 * Reports err only on the safe side: a range being registered while the kernel changes
 * memory it overlaps is reported changed at once.
 *
 * What counts as a change: whatever may put another page behind an address, or none:
 * munmap, mremap, brk, shmdt, mmap(MAP_FIXED) over it, madvise(MADV_DONTNEED/MADV_FREE/
 * MADV_REMOVE...), page migration (NUMA, compaction, memory offlining), reclaim, a
 * copy-on-write, the end of the address space (exit, exec). Changes of protection alone
 * (mprotect, fork write-protecting pages for copy-on-write, NUMA hinting, soft-dirty
 * clearing) leave the pages in place and are not reported, unless the file asked for
 * UMMUNOTIFY_FEATURE_PROTECTION. The kernel's notices are coarser than the calls that cause
 * them: a call that splits a mapping inside a 2 MiB block (munmap or mprotect of part of
 * it) makes it invalidate the whole block, as it would to split a huge page there, and
 * every range watched in that block is reported changed (CLEAR): false reports, never
 * missed ones.
 *
 * After exec (the descriptor kept open), the old address space is gone: every range is
 * reported changed (UMMUNOTIFY_EVENT_FLAG_RELEASE) and no range can be registered.
 *
 * For monitors: /proc/PID/fdinfo/FD of such a descriptor has, besides the usual lines,
 * "key:<TAB>value" lines in decimal: ummunotify-id (the file's number, unique while the
 * module is loaded: a descriptor inherited or passed on shows the same), ummunotify-owner-pid
 * (the process that opened it, in the reader's PID namespace; 0 if gone or outside it),
 * ummunotify-released (1 once the address space is gone), ummunotify-ranges,
 * ummunotify-max-ranges, ummunotify-watched-bytes (the ranges' lengths summed; overlapping
 * ranges count each time), ummunotify-changed (ranges changed and not read yet),
 * ummunotify-range-changes (times an invalidation changed a watched range, ever),
 * ummunotify-generation, ummunotify-events-read (records read() gave, ever). Later versions
 * may add keys.
 */
#ifndef _UAPI_UMMUNOTIFY_H
#define _UAPI_UMMUNOTIFY_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define UMMUNOTIFY_PATH "/dev/ummunotify"

/* What this header describes; UMMUNOTIFY_GET_INFO and the shared page give the kernel's. */
#define UMMUNOTIFY_ABI_VERSION 1

/*
 * A range to watch: start inclusive, end exclusive (start < end <= the top of user space),
 * any byte granularity. flags is 0. The slot is written by UMMUNOTIFY_REGISTER_REGION_SLOT
 * and must be 0 on input (it is the proposal's "reserved").
 */
struct ummunotify_register_ioctl {
	__u64 start;
	__u64 end;
	__u64 user_cookie;
	__u32 flags;
	union {
		__u32 reserved;
		__u32 slot;
	};
};

/* UMMUNOTIFY_GET_INFO */
struct ummunotify_info {
	__u32 abi_version;	/* UMMUNOTIFY_ABI_VERSION of the kernel's module */
	__u32 features;		/* UMMUNOTIFY_FEATURE_* it knows */
	__u32 max_ranges;	/* ranges one file can watch (slots 0 .. max_ranges - 1) */
	__u32 event_size;	/* sizeof(struct ummunotify_event) */
	__u64 slot_offset;	/* offset in the mapping of slot 0's byte */
	__u64 map_size;		/* bytes to mmap() to see every slot's byte */
};

/* Features, asked for with UMMUNOTIFY_EXCHANGE_FEATURES before any other use of the file. */
enum {
	/* report protection-only changes too (mprotect, fork's write-protection, ...) */
	UMMUNOTIFY_FEATURE_PROTECTION = 1 << 0,
};

#define UMMUNOTIFY_MAGIC 'U'

/*
 * In: the features wanted; out: those of them the kernel has. Only before the file's first
 * register, unregister or read (EBUSY after); GET_INFO and mmap may come before.
 */
#define UMMUNOTIFY_EXCHANGE_FEATURES _IOWR(UMMUNOTIFY_MAGIC, 1, __u32)
#define UMMUNOTIFY_REGISTER_REGION _IOW(UMMUNOTIFY_MAGIC, 2, struct ummunotify_register_ioctl)
/* The argument is the range's user_cookie. */
#define UMMUNOTIFY_UNREGISTER_REGION _IOW(UMMUNOTIFY_MAGIC, 3, __u64)
#define UMMUNOTIFY_GET_INFO _IOR(UMMUNOTIFY_MAGIC, 4, struct ummunotify_info)
#define UMMUNOTIFY_REGISTER_REGION_SLOT \
	_IOWR(UMMUNOTIFY_MAGIC, 5, struct ummunotify_register_ioctl)

enum {
	UMMUNOTIFY_EVENT_TYPE_INVAL = 0,
	UMMUNOTIFY_EVENT_TYPE_LAST = 1,
};

/*
 * INVAL flags: HINT says hint_start/hint_end bound every change made to the range since it
 * was last reported (this module always knows them, so always sets it); the others say
 * which kinds of change those were.
 */
enum {
	UMMUNOTIFY_EVENT_FLAG_HINT = 1 << 0,
	UMMUNOTIFY_EVENT_FLAG_UNMAP = 1 << 1,		/* munmap, mremap, brk, shmdt, MAP_FIXED */
	UMMUNOTIFY_EVENT_FLAG_CLEAR = 1 << 2,		/* madvise, migration, reclaim, COW */
	UMMUNOTIFY_EVENT_FLAG_RELEASE = 1 << 3,		/* the address space is gone */
	UMMUNOTIFY_EVENT_FLAG_PROTECTION = 1 << 4,	/* with UMMUNOTIFY_FEATURE_PROTECTION */
	UMMUNOTIFY_EVENT_FLAG_OTHER = 1 << 5,		/* device migration or exclusive access */
};

/*
 * INVAL: user_cookie_counter is the range's cookie. LAST: the read emptied the list of
 * changed ranges, and user_cookie_counter is the generation when it did; a reader that
 * remembers it knows, while the shared generation still equals it, that nothing changed.
 */
struct ummunotify_event {
	__u32 type;
	__u32 flags;
	__u64 hint_start;
	__u64 hint_end;
	__u64 user_cookie_counter;
};

/* The first bytes of the mapping. */
struct ummunotify_shared {
	__u64 generation;	/* changes each time a watched range changes */
	__u32 abi_version;	/* as in struct ummunotify_info */
	__u32 max_ranges;
	__u64 slot_offset;
};

#endif /* _UAPI_UMMUNOTIFY_H */
