/* SPDX-License-Identifier: (GPL-2.0-only WITH Linux-syscall-note) OR BSD-2-Clause */
/*
 * pfnic's event channel: the record format of /dev/pfnic-events, the one definition the
 * driver, the control plane and the tests build with.
 *
 * Each open() of the device is a reader with a queue of its own (at most 256 readers at once
 * on the system: the next open() gets EMFILE). read() returns whole
 * records (struct pfnic_event; a buffer too small for one is -EINVAL), blocking unless the
 * file is O_NONBLOCK (then -EAGAIN when the queue is empty); poll()/epoll report EPOLLIN
 * while records wait. A reader sees only what happens from its open() on.
 *
 * What a reader sees: every memory-block record (the state of memory is no secret: sysfs
 * shows it to all), and the MR records of MRs registered by processes whose effective uid
 * is the reader's effective uid at open(). A reader opened with CAP_SYS_ADMIN sees every
 * MR's records. pid is the registering process's, as the reader's pid namespace numbers it
 * (0 if it has no number there).
 *
 * Nothing is lost silently. Records a reader has no room for (it reads too slowly) are
 * counted, and the reader's next record is a PFNIC_EVENT_LOST that says how many: seq is
 * the first one missed and lost their number. Sequence numbers count each reader's records,
 * delivered or missed, from 1: a LOST record accounts for the whole gap before the record
 * after it. The MRs' counters (rdma statistic show mr) are kept apart from any queue and
 * stay exact.
 */
#ifndef PFNIC_EVENTS_H
#define PFNIC_EVENTS_H

#include <linux/types.h>

#define PFNIC_EVENTS_PATH "/dev/pfnic-events"

enum pfnic_event_type {
	PFNIC_EVENT_LOST = 1,		/* this reader missed lost records from seq on */
	PFNIC_EVENT_INVALIDATE = 2,	/* the kernel took pages from an ODP MR */
	PFNIC_EVENT_MIGRATE = 3,	/* ... to move them (NUMA, compaction, offlining) */
	PFNIC_EVENT_MEMORY = 4,		/* a memory block changes state (reason: the change) */
	PFNIC_EVENT_PINNED = 5,		/* a pinned MR holds pages of memory going offline */
};

/* INVALIDATE and MIGRATE: why the kernel took the pages (its mmu_notifier_event). */
enum pfnic_event_reason {
	PFNIC_REASON_OTHER = 0,
	PFNIC_REASON_UNMAP = 1,		/* munmap, mremap: the memory is gone */
	PFNIC_REASON_CLEAR = 2,		/* madvise, reclaim, page moves */
	PFNIC_REASON_PROTECTION_VMA = 3,	/* mprotect */
	PFNIC_REASON_PROTECTION_PAGE = 4,	/* one page's protection (NUMA hinting) */
	PFNIC_REASON_SOFT_DIRTY = 5,
	PFNIC_REASON_RELEASE = 6,	/* the process's address space is torn down */
	PFNIC_REASON_MIGRATE = 7,	/* device-private migration */
	PFNIC_REASON_EXCLUSIVE = 8,
};

/* MEMORY: what happens to the block (the kernel's memory notifier actions). */
enum pfnic_memory_action {
	PFNIC_MEMORY_GOING_ONLINE = 1,
	PFNIC_MEMORY_ONLINE = 2,
	PFNIC_MEMORY_CANCEL_ONLINE = 3,
	PFNIC_MEMORY_GOING_OFFLINE = 4,	/* offlining starts: its pages will be migrated */
	PFNIC_MEMORY_OFFLINE = 5,
	PFNIC_MEMORY_CANCEL_OFFLINE = 6,	/* offlining failed (pinned pages, a signal) */
};

/* MIGRATE: the pages left memory that is going offline; block names it. */
#define PFNIC_EVENT_F_OFFLINING (1U << 0)

/**
 * struct pfnic_event - one record
 * @size: sizeof(struct pfnic_event), 152: the layout is fixed (a reader checks this; another
 *	layout would come as another device)
 * @type: enum pfnic_event_type
 * @reason: enum pfnic_event_reason (INVALIDATE, MIGRATE) or pfnic_memory_action (MEMORY)
 * @flags: PFNIC_EVENT_F_*
 * @mrn: MR records: the MR's number, as `rdma resource show mr` prints it (mrn)
 * @lkey: MR records: its lkey (and rkey)
 * @seq: this reader's number for the record (LOST: the first one missed)
 * @lost: LOST: how many records were missed
 * @time_ns: when, on CLOCK_MONOTONIC
 * @realtime_ns: when, on CLOCK_REALTIME
 * @start: INVALIDATE, MIGRATE: the first user address affected; PINNED: the MR's first
 *	address; MEMORY: the block's first physical address
 * @end: the end of that range (exclusive)
 * @pages: INVALIDATE, MIGRATE: translations taken; PINNED: pinned pages in the block;
 *	MEMORY: pages in the block
 * @pid: MR records: the process that registered the MR; see above
 * @node: MEMORY, PINNED, offlining MIGRATE: the NUMA node of the block; else -1
 * @block: MEMORY, PINNED, offlining MIGRATE: the memory block (/sys/devices/system/memory/
 *	memory<block>); else -1
 * @device: MR records: the RDMA device's name; else empty
 */
struct pfnic_event {
	__u16 size;
	__u16 type;
	__u16 reason;
	__u16 flags;
	__u32 mrn;
	__u32 lkey;
	__u64 seq;
	__u64 lost;
	__u64 time_ns;
	__u64 realtime_ns;
	__u64 start;
	__u64 end;
	__u64 pages;
	__s32 pid;
	__s32 node;
	__s64 block;
	char device[64];
};

#endif /* PFNIC_EVENTS_H */
