/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * pfnic: a page-fault-capable software RDMA HCA.
 *
 * Types and prototypes shared by the driver's files. The split follows the hardware the
 * driver models: pfnic_main.c (module, devices), pfnic_verbs.c (device-level verbs).
 */
#ifndef PFNIC_H
#define PFNIC_H

#include <linux/completion.h>
#include <linux/kref.h>
#include <linux/mmu_notifier.h>
#include <linux/netdevice.h>
#include <linux/workqueue.h>
#include <rdma/ib_verbs.h>

#include "pfnic_compat.h"
#include "uapi/pfnic-abi.h"
#include "uapi/pfnic-events.h"

#define PFNIC_DRV_NAME "pfnic"
#define PFNIC_DRV_VERSION "0.1.0"

/* The one port every pfnic device has. */
#define PFNIC_PORT 1

/* Device limits, reported by query_device and enforced by the verbs. */
#define PFNIC_MAX_PD		BIT(16)
#define PFNIC_MAX_QP		BIT(16)
#define PFNIC_MAX_QP_WR		BIT(14)
#define PFNIC_MAX_SGE		32
/* Inline data a send WQE carries at most (max_inline_data), in place of its SGEs. */
#define PFNIC_MAX_INLINE	512
/* Pages a fast-registration MR maps at most (max_fast_reg_page_list_len). */
#define PFNIC_MAX_FAST_REG_PAGES	BIT(12)
#define PFNIC_MAX_CQ		BIT(16)
#define PFNIC_MAX_CQE		(BIT(16) - 1)
#define PFNIC_MAX_MR		BIT(16)
#define PFNIC_MAX_MW		BIT(16)
/* multicast: groups a QP may join, QPs a group may have */
#define PFNIC_MAX_MCAST_GRP	1024
#define PFNIC_MAX_MCAST_QP_ATTACH	64
#define PFNIC_MAX_SRQ		BIT(16)
#define PFNIC_MAX_RD_ATOM	128
#define PFNIC_GID_TABLE_LEN	16
/* The longest message (max_msg_sz): longer work requests are refused when posted. */
#define PFNIC_MAX_MSG_SZ	BIT_ULL(31)
/* QPNs 0 and 1 are the special QPs; pfnic numbers its RC QPs from here. */
#define PFNIC_FIRST_QPN		0x10
/* The GSI QP's number on every device (RoCE has no QP0). */
#define PFNIC_GSI_QPN		1
/*
 * The PCI vendor id of a device a program matches (ibv_query_device's vendor_id): the
 * IEEE OUI no vendor holds, as other software RDMA devices report, and pfnic's part id.
 */
#define PFNIC_VENDOR_ID		0xffffff
#define PFNIC_VENDOR_PART_ID	0x7066	/* "pf" */

/*
 * For what a user sizes (MR tables, CQ and work queue rings, event rings): charged to the
 * user's memory cgroup, and an allocation the cgroup or the machine cannot hold fails the
 * call with -ENOMEM instead of waking the OOM killer, which would end some other process of
 * the cgroup (vmalloc charges page by page, so even a costly size would wake it). One too
 * large for kvmalloc (a 1 TiB ODP MR's page array is 2 GiB) fails quietly.
 */
#define PFNIC_GFP_USER_SIZED	(GFP_KERNEL_ACCOUNT | __GFP_NOWARN | __GFP_RETRY_MAYFAIL)

/*
 * Counters. The first PFNIC_MR_STAT_COUNT are kept per ODP MR as well, shown by `rdma
 * statistic show mr` under mlx5's names and meanings (the plain names count pages, the
 * _handled ones count events); the device's sums of all of them are its hw counters, shown
 * by `rdma statistic show link <dev>/1`.
 */
enum pfnic_stat {
	PFNIC_STAT_PAGE_FAULTS,			/* pages that page faults mapped */
	PFNIC_STAT_PAGE_FAULTS_HANDLED,		/* page faults resolved */
	PFNIC_STAT_PAGE_FAULT_ERRORS,		/* page faults that could not be resolved */
	PFNIC_STAT_PAGE_INVALIDATIONS,		/* translations invalidations zapped */
	PFNIC_STAT_PAGE_INVALIDATIONS_HANDLED,	/* MMU-notifier invalidations that hit */
	PFNIC_STAT_PAGE_PREFETCH,		/* pages mapped by prefetch (ibv_advise_mr) */
	PFNIC_STAT_MIGRATIONS,			/* invalidations that moved pages */
	PFNIC_MR_STAT_COUNT,
	PFNIC_STAT_RNR_RETRIES = PFNIC_MR_STAT_COUNT, /* sends that found no receive WQE */
	PFNIC_STAT_WQES,			/* send WQEs the engine completed */
	PFNIC_STAT_FAULT_RETRIES,		/* faults taken again: the range kept changing */
	PFNIC_STAT_ACK_TIMEOUTS,		/* RC sends the responder did not take, retried */
	PFNIC_STAT_DOORBELLS,			/* user send queues' doorbells (system calls) */
	PFNIC_STAT_POLLED_RUNS,			/* engine runs the poller started (pfnic_poll.c) */
	/* RoCE v2 on the wire (pfnic_net.c, pfnic_wire_*.c) */
	PFNIC_STAT_SENT_PKTS,			/* packets sent */
	PFNIC_STAT_RCVD_PKTS,			/* packets received and taken */
	PFNIC_STAT_RX_MALFORMED,		/* dropped: bad IP or UDP, short, unknown opcode */
	PFNIC_STAT_RX_ICRC_ERRORS,		/* dropped: the ICRC did not match */
	PFNIC_STAT_RX_UNKNOWN_QP,		/* dropped: no such GID, QP, or not the QP's peer */
	PFNIC_STAT_RX_DROPPED,			/* dropped: a QP's queue full, a MAD too long */
	PFNIC_STAT_RETRANSMITS,			/* packets a requester sent again */
	PFNIC_STAT_RCVD_SEQ_ERR,		/* PSN sequence error NAKs a requester received */
	PFNIC_STAT_OUT_OF_SEQUENCE,		/* requests a responder got ahead of its PSN */
	PFNIC_STAT_DUPLICATE_REQUEST,		/* requests a responder got again */
	PFNIC_STAT_SEND_RNR_NAK,		/* RNR NAKs a responder sent (no WQE, a fault) */
	PFNIC_STAT_ACKS_COALESCED,		/* ACKs a responder left to a later one */
	PFNIC_STAT_COUNT,
};

extern const struct rdma_stat_desc pfnic_stat_descs[PFNIC_STAT_COUNT];

/**
 * struct pfnic_dev - one pfnic HCA, bound to a netdev whose addresses give its GIDs.
 * @ibdev: the RDMA core's device; allocated and freed through it.
 * @ndev: the netdev, held (@ndev_tracker) from creation until the core frees the device.
 * @ndev_tracker: the reference on @ndev.
 * @stats: counters, indexed by enum pfnic_stat.
 * @prefetches: prefetches queued and not yet done (at most PFNIC_PREFETCH_QUEUED).
 * @objects: the device's PDs, CQs, QPs, SRQs and MRs, by enum pfnic_obj, each kept within
 *	the limit query_device reports (pfnic_obj_take()).
 */
struct pfnic_dev {
	struct ib_device ibdev;
	struct net_device *ndev;
	netdevice_tracker ndev_tracker;
	atomic64_t stats[PFNIC_STAT_COUNT];
	atomic_t prefetches;
	atomic_t objects[6];
};

/* The objects a device keeps within its limits. */
enum pfnic_obj {
	PFNIC_OBJ_PD,
	PFNIC_OBJ_CQ,
	PFNIC_OBJ_QP,
	PFNIC_OBJ_SRQ,
	PFNIC_OBJ_MR,
	PFNIC_OBJ_MW,
};

int pfnic_obj_take(struct pfnic_dev *pfnic, enum pfnic_obj obj);
void pfnic_obj_drop(struct pfnic_dev *pfnic, enum pfnic_obj obj);

static inline void pfnic_stat_add(struct pfnic_dev *pfnic, enum pfnic_stat stat, u64 n)
{
	atomic64_add(n, &pfnic->stats[stat]);
}

struct pfnic_ucontext {
	struct ib_ucontext ibuc;
};

struct pfnic_pd {
	struct ib_pd ibpd;
};

/* An address handle: where a UD send goes (the destination GID; the QPN comes with the WR). */
struct pfnic_ah {
	struct ib_ah ibah;
	union ib_gid dgid;
	u8 sgid_index;
};

/* The bytes a UD receive buffer gives the GRH (RoCE v2: an IPv4 header in its second half). */
#define PFNIC_GRH_LEN 40

/**
 * struct pfnic_ring_mem - memory a user process maps (a user CQ's ring)
 * @entry: the core's record of the ring: its mmap offset, and a reference count that keeps
 *	this until the object is destroyed (pfnic_mmap_free()); a process's mapping holds the
 *	pages themselves
 * @pages: its pages, zeroed, charged to the process's memory cgroup
 * @npages: how many
 * @buf: the kernel's mapping of them (vmap())
 */
struct pfnic_ring_mem {
	struct rdma_user_mmap_entry entry;
	struct page **pages;
	unsigned long npages;
	void *buf;
};

/**
 * struct pfnic_cq - a completion queue: a ring of completions. A kernel consumer's CQ keeps
 * struct ib_wc entries that poll_cq copies out; a user CQ's ring is struct pfnic_cq_ring
 * (uapi/pfnic-abi.h) in memory its process maps, which the provider polls and arms itself.
 * @lock: protects every field below it; taken from the engine and from poll/notify.
 * @ring: a kernel CQ's @size slots; entries [@head, @head + @count) are valid.
 * @notify: a kernel CQ's arming by req_notify_cq: 0, IB_CQ_SOLICITED or IB_CQ_NEXT_COMP.
 * @overflowed: a completion found the ring full; the CQ is in error from then on.
 * @mem: a user CQ's mapped memory: @shared, then @cqes.
 * @shared: the user ring's header; the process writes its consumer and arm words at will.
 * @cqes: the user ring's @size slots (a power of two).
 * @produced: the user ring's producer index, the driver's own copy (never read back from
 *	the shared page, which the process could change).
 * @fired: the last arming sequence the completion event fired for (the user ring).
 */
struct pfnic_cq {
	struct ib_cq ibcq;
	spinlock_t lock;	/* the ring and arming below; see above */
	struct ib_wc *ring;
	u32 size;
	u32 head;
	u32 count;
	u8 notify;
	bool overflowed;
	struct pfnic_ring_mem *mem;
	struct pfnic_cq_ring *shared;
	struct pfnic_cqe *cqes;
	u32 produced;
	u32 fired;
};

/**
 * struct pfnic_xlt - a translation table: what the emulated device reads to reach memory.
 *
 * One entry per page of [@va, @va + @npages * PAGE_SIZE), NULL where no translation is
 * present. A pinned MR has one table, filled at registration. An explicit ODP MR has one
 * table that starts empty: a missing entry raises a page fault, which the ODP core
 * resolves with hmm_range_fault(), and the table's MMU interval notifier zaps entries again
 * (@suspended marks those the kernel took away while the memory stays mapped). An implicit
 * ODP MR has a table per PFNIC_IMPLICIT_PAGES-aligned block of the address space that was
 * faulted in, made on the first fault there and released when nothing in it is mapped.
 *
 * @dirty: entries the engine took to write (pfnic_xlt_page()): their pages are marked dirty
 *	when the translation goes, so that writeback and reclaim keep what RDMA wrote there,
 *	which no CPU page table entry records.
 * @lock: protects the entries and the bitmaps and counts below. The engine holds it while
 *	it copies to or from a page, so an invalidation that takes it waits for every access
 *	in flight to the pages it zaps. Nothing that can allocate memory or fault runs under
 *	it: reclaim calls the invalidation, which takes it.
 * @ref: held by the MR for its own tables; for an implicit MR's, by the MR's block index
 *	(@children) and by each user; the last put frees the table after an RCU grace period.
 * @dead: an implicit block taken out of @children (under the MR's @children_lock).
 * @release_work: releases an implicit block an invalidation left with nothing mapped.
 */
struct pfnic_xlt {
	struct pfnic_mr *mr;
	struct kref ref;
	struct mmu_interval_notifier notifier;
	struct mutex lock;	/* the table; see above */
	unsigned long va;
	unsigned long npages;
	unsigned long npresent;
	unsigned long nsuspended;
	struct page **pages;
	unsigned long *writable;
	unsigned long *suspended;
	unsigned long *dirty;
	bool dead;
	struct work_struct release_work;
	struct rcu_head rcu;
};

/* Pages per translation table of an implicit ODP MR (64 MiB of 4 KiB pages). */
#define PFNIC_IMPLICIT_SHIFT	14
#define PFNIC_IMPLICIT_PAGES	BIT(PFNIC_IMPLICIT_SHIFT)

enum pfnic_mr_kind {
	PFNIC_MR_PINNED,
	PFNIC_MR_ODP,		/* explicit: a range given at registration */
	PFNIC_MR_IMPLICIT,	/* the whole address space */
	/* kernel consumers' MRs, whose iovas are kernel virtual addresses, never faulted */
	PFNIC_MR_DMA,		/* get_dma_mr: all of kernel memory */
	PFNIC_MR_FAST,		/* alloc_mr: pages given by map_mr_sg, valid after IB_WR_REG_MR */
	/* a memory window: an rkey for part of a user MR, valid while bound (pfnic_mw_bind()) */
	PFNIC_MR_WINDOW,
};

/**
 * struct pfnic_mr - a memory region: a key, bounds, rights and its translation tables.
 * @ref: lookups (key -> MR) take a reference; dereg waits (@done) for the last one.
 * @xlt: the translation table of a pinned or explicit ODP MR.
 * @children: an implicit MR's tables, by @va >> (PAGE_SHIFT + PFNIC_IMPLICIT_SHIFT).
 * @children_lock: serializes making and releasing an implicit MR's tables.
 * @stats: the ODP counters of enum pfnic_stat below PFNIC_MR_STAT_COUNT.
 * @faulting: page faults (or prefetches) being resolved now.
 * @last_event: the mmu_notifier_event of the last invalidation; U8_MAX before the first.
 * @owner: the process that registered it (its thread group), for the event channel
 * @owner_euid: that process's effective uid then: who may read the MR's events
 * @memcg: that process's memory cgroup then (NULL without memcg): what an implicit MR's
 *	tables are charged to, made later as its pages fault in, from a workqueue
 * @pinned_blocks: a pinned MR's memory blocks, as a list of ranges (pfnic_mr_find_blocks())
 * @key: the key the device answers to (pfnic_mr_get()): the lkey and rkey given at
 *	registration; for a fast-registration MR, the key its last IB_WR_REG_MR set
 * @valid: a fast-registration MR between IB_WR_REG_MR and its invalidation (local or
 *	remote); every other MR is valid from registration on
 * @fast_pages: a fast-registration MR's page list: kernel virtual addresses of blocks of
 *	@fast_page_size bytes, set by map_mr_sg (@fast_npages of at most @fast_max)
 * @fast_offset: where the MR starts in its first block
 * @windows: memory windows bound to this MR now
 * @parent: a window's MR while it is bound (no reference: dereg unbinds the MR's windows)
 * @mw_type: a window's type (IB_MW_TYPE_1 or IB_MW_TYPE_2)
 *
 * A memory window is a struct pfnic_mr too, of kind PFNIC_MR_WINDOW, in the same key table:
 * its @key is its rkey, @iova, @length and @access are what its bind gave, @valid says it is
 * bound. The key table's lock guards a window's binding (@parent, @key, @valid and the
 * bounds) and every MR's @windows.
 */
struct pfnic_mr {
	struct ib_mr ibmr;
	struct pfnic_dev *pfnic;
	struct kref ref;
	struct completion done;
	enum pfnic_mr_kind kind;
	u32 index;
	int access;
	u64 iova;
	u64 length;
	unsigned long start;
	unsigned long va;
	unsigned long npages;
	struct mm_struct *mm;
	struct pfnic_xlt *xlt;
	struct xarray children;
	struct mutex children_lock;	/* see above */
	atomic64_t stats[PFNIC_MR_STAT_COUNT];
	atomic_t faulting;
	u8 last_event;
	struct pid *owner;
	kuid_t owner_euid;
	struct mem_cgroup *memcg;
	char *pinned_blocks;
	u32 key;
	bool valid;
	u64 *fast_pages;
	u32 fast_npages;
	u32 fast_max;
	u32 fast_page_size;
	u32 fast_offset;
	u32 windows;
	struct pfnic_mr *parent;
	u8 mw_type;
};

/* A memory window: the core's object, and its place in the key table. */
struct pfnic_mw {
	struct ib_mw ibmw;
	struct pfnic_mr win;
};

static inline struct pfnic_mw *to_pfnic_mw(struct ib_mw *ibmw)
{
	return container_of(ibmw, struct pfnic_mw, ibmw);
}

static inline bool pfnic_mr_odp(const struct pfnic_mr *mr)
{
	return mr->kind == PFNIC_MR_ODP || mr->kind == PFNIC_MR_IMPLICIT;
}

/* A kernel consumer's MR: its iovas are kernel virtual addresses. */
static inline bool pfnic_mr_kernel(const struct pfnic_mr *mr)
{
	return mr->kind == PFNIC_MR_DMA || mr->kind == PFNIC_MR_FAST;
}

/* Whether [@iova, @iova + @len) lies inside @mr (without overflowing). */
static inline bool pfnic_mr_covers(const struct pfnic_mr *mr, u64 iova, u64 len)
{
	return iova >= mr->iova && len <= mr->length && iova - mr->iova <= mr->length - len;
}

/* The user virtual address of an iova inside @mr. */
static inline unsigned long pfnic_mr_uva(const struct pfnic_mr *mr, u64 iova)
{
	return mr->start + (iova - mr->iova);
}

/*
 * One work request as the engine keeps it: the WR's fields, with its SGEs copied in. A WQE
 * posted with IB_SEND_INLINE carries its @total_len bytes of data in place of the SGEs
 * (pfnic_wqe_inline()), and has no SGE.
 */
struct pfnic_wqe {
	u64 wr_id;
	enum ib_wr_opcode opcode;
	int send_flags;
	__be32 imm_data;
	u32 invalidate_rkey;	/* LOCAL_INV, SEND_WITH_INV */
	/*
	 * BIND_MW: the MR's lkey; the window's new rkey, bounds and rights are in rkey,
	 * remote_addr, compare_add (the length) and swap (the rights)
	 */
	u32 bind_lkey;
	u32 xrc_srqn;		/* XRC INI: the XRC SRQ the message is for */
	/* REG_MR: the MR (its index, and its address to recognize it by), key and rights */
	u32 reg_index;
	const void *reg_mr;
	u32 reg_key;
	int reg_access;
	u64 remote_addr;
	u32 rkey;
	u64 compare_add;	/* CMP_SWP: the value compared; FETCH_ADD: the value added */
	u64 swap;		/* CMP_SWP: the value stored on a match */
	/* UD: the destination, copied from the WR and its AH (which may go once posted) */
	union ib_gid dgid;
	u8 sgid_index;
	u32 remote_qpn;
	u32 remote_qkey;
	u32 num_sge;
	u64 total_len;
	struct ib_sge sge[];
};

/**
 * struct pfnic_wq - a work queue (send, receive or shared receive)
 * @buf: a kernel consumer's queue: @size WQEs of @stride bytes, as the engine keeps them
 *	(struct pfnic_wqe); [@head, @head + @count) are posted and not yet completed
 * @stride: bytes of a struct pfnic_wqe with @max_sge SGEs (or the inline data it may hold)
 * @size: WQEs the queue holds
 * @head: the first WQE not completed: an index into @buf; a user ring's count of WQEs
 *	done, ever, of which the ring's consumer word is the published copy
 * @count: a kernel consumer's queue: WQEs posted and not completed
 * @max_sge: SGEs a WQE may have
 * @gen: changes whenever the queue is flushed or reset, so that the engine can tell that
 *	the WQE it was executing was taken away meanwhile
 * @mem: a user queue's ring (uapi/pfnic-abi.h's struct pfnic_wq_ring and its WQEs), which
 *	its process maps and posts into; NULL for a kernel consumer's queue
 * @shared: that ring's header
 * @slots: its WQEs, @ustride bytes each; @size is a power of two
 * @ustride: bytes per WQE in the ring
 * @max_inline: a send queue's inline data per WQE
 */
struct pfnic_wq {
	u8 *buf;
	size_t stride;
	u32 size;
	u32 head;
	u32 count;
	u32 max_sge;
	u32 gen;
	struct pfnic_ring_mem *mem;
	struct pfnic_wq_ring *shared;
	u8 *slots;
	u32 ustride;
	u32 max_inline;
};

static inline struct pfnic_wqe *pfnic_wq_entry(struct pfnic_wq *wq, u32 i)
{
	return (struct pfnic_wqe *)(wq->buf + (size_t)(i % wq->size) * wq->stride);
}

/* What @wq's head will be once the @after WQEs at its head are done. */
static inline u32 pfnic_wq_index_after(const struct pfnic_wq *wq, u32 after)
{
	return wq->shared ? wq->head + after : (wq->head + after) % wq->size;
}

/* The data of a WQE posted with IB_SEND_INLINE. */
static inline u8 *pfnic_wqe_inline(struct pfnic_wqe *wqe)
{
	return (u8 *)wqe->sge;
}

/**
 * struct pfnic_srq - a shared receive queue (pfnic_srq.c)
 * @lock: protects @rq and @limit; taken after a QP's lock, never before
 * @limit: the armed SRQ limit; 0 when not armed
 */
/*
 * An SRQ. An XRC SRQ is found by its number (ibsrq.ext.xrc.srq_num) by the messages of XRC
 * INI QPs, which take a reference (@ref) for as long as one holds it; destroying it waits
 * (@done) for the last.
 */
struct pfnic_srq {
	struct ib_srq ibsrq;
	spinlock_t lock;	/* the queue; see above */
	struct pfnic_wq rq;
	u32 limit;
	struct kref ref;
	struct completion done;
};

/* An XRC domain: what XRC SRQs and TGT QPs share (the core keeps what it needs of it). */
struct pfnic_xrcd {
	struct ib_xrcd ibxrcd;
};

/**
 * struct pfnic_fault - a page fault the engine met: the pages of an MR an access needs
 * @mr: the MR, with a reference, while the fault is pending; NULL otherwise
 * @va: the first byte's user virtual address
 * @len: bytes from there (at most PFNIC_FAULT_WINDOW)
 * @write: the access writes
 * @remote: the pages are the responder's (a requester's WQE reached them on its peer)
 */
struct pfnic_fault {
	struct pfnic_mr *mr;
	u64 va;
	u64 len;
	bool write;
	bool remote;
};

#include "pfnic_wire.h"

/**
 * struct pfnic_qp - an RC, UD or GSI queue pair.
 * @lock: protects @attr, @sq, @rq, @stalled, @sq_busy, @rq_busy, @running and the fault
 *	record (@fault_gen with it); the engine and the verbs take it, never together with
 *	another QP's lock.
 * @work: the engine's processing of this QP's send queue, on pfnic_wq.
 * @rnr_work: a retry after the responder had no receive WQE (RNR NAK) or sent no ACK.
 * @fault_work: the ODP core resolving this QP's page fault (the device's fault event).
 * @drain_work: reports IB_EVENT_SQ_DRAINED once a move to SQD has let the engine stop.
 * @cur: the engine's copy of the send WQE it executes (only the engine touches it).
 * @cur_size: its bytes: a whole slot of the send queue
 * @rcur: the engine's copy of the peer's receive WQE it fills.
 * @stalled: a page fault of this QP is being resolved; the engine does not run it.
 * @sq_busy: the engine runs the send queue's head WQE outside the lock: a flush leaves that
 *	WQE (and those after it) to the engine, which completes it once it no longer touches
 *	its buffers, so that no buffer changes after its completion is seen.
 * @rq_busy: requesters delivering into the head receive WQE (or the SRQ WQE held) right
 *	now; a flush leaves it to them likewise (pfnic_recv_release()).
 * @progress: bytes of that WQE moved already: after a fault the WQE goes on from there
 *	rather than from its start, so that memory changing under a large WQE cannot keep it
 *	from ever finishing (engine only). For a message, @progress_rgen is the generation of
 *	the receive queue it goes into: a message whose receive WQE went starts again.
 * @busy_rounds: faults in a row that timed out on a changing range and were taken again
 *	(only the fault work touches it: a work item never runs twice at once).
 * @fault_gen: the send queue's generation when the fault being resolved stalled the QP: a
 *	reset or flush since then makes its outcome another life's, which it must not touch.
 * @rnr_left: RNR retries left for the WQE at the head (7 means forever).
 * @retry_left: transport retries left for the WQE at the head (@attr.retry_cnt at first):
 *	tries after no responder took it (pfnic_comp.c, PFNIC_NO_ACK).
 * @rnr_timer: the min_rnr_timer of the responder whose RNR NAK the WQE at the head got: how
 *	long to wait before trying again, as on a wire, where the NAK carries it (engine only).
 * @srq: the SRQ its receive WQEs come from, or NULL (then @rq has them).
 * @srq_wqe: the SRQ's WQE this QP took for the message being received, while @srq_held.
 * @last_wqe: IB_EVENT_QP_LAST_WQE_REACHED was reported since the QP entered the error state.
 * @incarnation: this QP's number among every QP the module made, never reused
 * @peer_incarnation: the incarnation of the QP that had @attr.dest_qp_num when this one was
 *	connected to it (RTR), 0 if there was none yet: a QP that has that number since, the
 *	old one being gone, is not the peer (pfnic_peer())
 * @deliver_lock: a UD QP receives from any number of senders, whose engines run at once:
 *	each holds this from taking a receive WQE to delivering into it (an RC QP has one
 *	sender, which never needs it).
 * @atomic_done: the atomic WQE at the head changed the remote word already, and
 *	@atomic_orig is what it held: a fault on the local side re-runs the WQE without
 *	changing the word again (only the engine touches these).
 * @wqe_gen: with @wqe_head, the WQE the engine runs, which @progress, @atomic_done and
 *	@mcast_after belong to: a flush, a reset or the next WQE forgets them (written by the
 *	engine under @lock).
 * @mcast_after: a UD send to a multicast group: the last member's QP number delivered to
 *	(engine only), so that after a receiver's fault the send goes on with the next.
 * @mcast_groups: the multicast groups a UD QP is attached to (pfnic_mcast.c's lock).
 * @flush_work: completes what a kernel consumer posts to a QP in the error state, outside
 *	the poster's context, which may hold the locks its completion handler takes.
 * @max_inline: the inline data a send WQE may carry (cap.max_inline_data).
 * @running: someone runs the engine on this QP now (its work item, or a doorbell in the
 *	poster's own context: pfnic_engine_drive()); no one else may meanwhile.
 * @idle: woken when @running is cleared.
 * @retry_wait: the head WQE met an RNR NAK or no ACK, or waits for its answers on the wire;
 *	only its retry timer (@rnr_work) runs the engine again, so that neither a doorbell nor
 *	the poller cuts the wait short; but a doorbell runs a QP that waits for answers
 *	(@wire.waiting), to send what was posted behind the head.
 * @poll_entry: on the polling engine's list while it holds the QP (pfnic_poll.c), with a
 *	reference, until @poll_until (ktime_get_ns()) with no WQE; changed under @lock (and the
 *	list's lock), so that it is empty under @lock when the poller does not hold the QP.
 * @gsi_entry: the GSI QP's place in the list of every device's GSI QP (pfnic_gsi_get()).
 */
struct pfnic_qp {
	struct ib_qp ibqp;
	struct pfnic_dev *pfnic;
	struct kref ref;
	struct completion done;
	spinlock_t lock;	/* state, queues, fault record; see above */
	struct ib_qp_attr attr;
	bool sig_all;
	struct pfnic_wq sq;
	struct pfnic_wq rq;
	struct work_struct work;
	struct delayed_work rnr_work;
	struct work_struct fault_work;
	struct work_struct drain_work;
	struct work_struct flush_work;
	u32 max_inline;
	bool running;
	bool retry_wait;
	u64 poll_until;
	struct list_head poll_entry;
	wait_queue_head_t idle;
	struct list_head gsi_entry;
	struct pfnic_wqe *cur;
	size_t cur_size;
	struct pfnic_wqe *rcur;
	bool stalled;
	bool sq_busy;
	unsigned int rq_busy;
	unsigned int busy_rounds;
	u32 fault_gen;
	u64 progress;
	u32 progress_rgen;
	u32 mcast_after;
	u32 mcast_groups;
	u8 rnr_left;
	u8 retry_left;
	u8 rnr_timer;
	struct pfnic_srq *srq;
	struct pfnic_wqe *srq_wqe;
	bool srq_held;
	bool last_wqe;
	u64 incarnation;
	u64 peer_incarnation;
	struct mutex deliver_lock;	/* UD receives; see above */
	bool atomic_done;
	u32 wqe_gen;
	u32 wqe_head;
	u64 atomic_orig;
	/* the page fault this QP's requester waits on, and how its resolution ended */
	struct pfnic_fault fault;
	int fault_status;
	struct pfnic_wire wire;
};

static inline struct pfnic_dev *to_pfnic_dev(struct ib_device *ibdev)
{
	return container_of(ibdev, struct pfnic_dev, ibdev);
}

static inline struct pfnic_pd *to_pfnic_pd(struct ib_pd *ibpd)
{
	return container_of(ibpd, struct pfnic_pd, ibpd);
}

static inline struct pfnic_cq *to_pfnic_cq(struct ib_cq *ibcq)
{
	return container_of(ibcq, struct pfnic_cq, ibcq);
}

static inline struct pfnic_mr *to_pfnic_mr(struct ib_mr *ibmr)
{
	return container_of(ibmr, struct pfnic_mr, ibmr);
}

static inline struct pfnic_ah *to_pfnic_ah(struct ib_ah *ibah)
{
	return container_of(ibah, struct pfnic_ah, ibah);
}

static inline struct pfnic_srq *to_pfnic_srq(struct ib_srq *ibsrq)
{
	return container_of(ibsrq, struct pfnic_srq, ibsrq);
}

static inline struct pfnic_qp *to_pfnic_qp(struct ib_qp *ibqp)
{
	return container_of(ibqp, struct pfnic_qp, ibqp);
}

/*
 * Whether a QP sends to one connected peer QP (RC, UC, an XRC INI QP to its TGT QP), rather
 * than datagrams to any (UD, and QP1 of the MAD layer).
 */
static inline bool pfnic_qp_connected(const struct pfnic_qp *qp)
{
	return qp->ibqp.qp_type == IB_QPT_RC || qp->ibqp.qp_type == IB_QPT_UC ||
	       qp->ibqp.qp_type == IB_QPT_XRC_INI;
}

/* An XRC TGT QP: no queues of its own; each message names the XRC SRQ it lands in. */
static inline bool pfnic_qp_xrc_tgt(const struct pfnic_qp *qp)
{
	return qp->ibqp.qp_type == IB_QPT_XRC_TGT;
}

/*
 * The CQ a QP's receives complete in: its own, or for an XRC TGT QP the CQ of the XRC SRQ
 * its message is in (qp->srq, while it has one). Caller holds @qp's lock or is the engine
 * delivering to it.
 */
static inline struct pfnic_cq *pfnic_recv_cq(const struct pfnic_qp *qp)
{
	return to_pfnic_cq(pfnic_qp_xrc_tgt(qp) ? qp->srq->ibsrq.ext.cq : qp->ibqp.recv_cq);
}

/* pfnic_main.c */
void pfnic_dealloc_driver(struct ib_device *ibdev);

extern struct workqueue_struct *pfnic_wq;
extern struct workqueue_struct *pfnic_fault_wq;
extern struct workqueue_struct *pfnic_prefetch_wq;
/* Prefetches run at once; and queued at most, per device, beyond which advice is dropped. */
#define PFNIC_PREFETCH_ACTIVE	4
#define PFNIC_PREFETCH_QUEUED	256

/* pfnic_verbs.c */
extern const struct ib_device_ops pfnic_dev_ops;

/* pfnic_ring.c */
int pfnic_mmap(struct ib_ucontext *ibuc, struct vm_area_struct *vma);
void pfnic_mmap_free(struct rdma_user_mmap_entry *entry);
struct pfnic_ring_mem *pfnic_ring_mem_map(struct ib_ucontext *ibuc, size_t size);
int pfnic_wq_init(struct pfnic_wq *wq, u32 size, u32 max_sge, u32 max_inline);
int pfnic_wq_init_user(struct pfnic_wq *wq, struct ib_ucontext *ibuc, u32 size, u32 max_sge,
		       u32 max_inline, bool send, struct pfnic_ring_map *map);
void pfnic_wq_destroy(struct pfnic_wq *wq);
u32 pfnic_wq_count(struct pfnic_wq *wq);
void pfnic_wq_pop(struct pfnic_wq *wq);
void pfnic_wq_reset(struct pfnic_wq *wq);
u64 pfnic_wq_head_id(struct pfnic_wq *wq, bool send, enum ib_wr_opcode *opcode);
bool pfnic_wq_overrun(struct pfnic_wq *wq);
bool pfnic_inline_opcode(enum ib_wr_opcode opcode);
int pfnic_wq_fetch_send(struct pfnic_qp *qp, u32 after, struct pfnic_wqe *into);
void pfnic_wq_fetch_recv(struct pfnic_wq *wq, struct pfnic_wqe *into);

/* pfnic_cq.c */
int pfnic_resize_cq(struct ib_cq *ibcq, int cqe, struct ib_udata *udata);
int pfnic_create_cq(struct ib_cq *ibcq, const struct ib_cq_init_attr *attr,
		    struct ib_udata *driver_udata);
int pfnic_destroy_cq(struct ib_cq *ibcq, struct ib_udata *udata);
int pfnic_poll_cq(struct ib_cq *ibcq, int num_entries, struct ib_wc *wc);
int pfnic_req_notify_cq(struct ib_cq *ibcq, enum ib_cq_notify_flags flags);
void pfnic_cq_complete(struct pfnic_cq *cq, const struct ib_wc *wc, bool solicited);
void pfnic_cq_clean(struct pfnic_cq *cq, struct ib_qp *qp);
/* What pfnic_cq_push() leaves to pfnic_cq_signal(). */
#define PFNIC_CQ_FIRE		BIT(0)	/* an armed CQ got its completion */
#define PFNIC_CQ_OVERFLOW	BIT(1)	/* the ring was full: the CQ is in error */
unsigned int pfnic_cq_push(struct pfnic_cq *cq, const struct ib_wc *wc, bool solicited);
void pfnic_cq_signal(struct pfnic_cq *cq, unsigned int signal);

/* pfnic_mr.c */
struct ib_mr *pfnic_reg_user_mr(struct ib_pd *ibpd, u64 start, u64 length, u64 iova,
				int access, struct ib_udata *udata);
int pfnic_dereg_mr(struct ib_mr *ibmr, struct ib_udata *udata);
struct ib_mr *pfnic_rereg_user_mr(struct ib_mr *ibmr, int flags, u64 start, u64 length,
				  u64 iova, int access, struct ib_pd *pd, struct ib_udata *udata);
struct ib_mr *pfnic_get_dma_mr(struct ib_pd *ibpd, int access);
struct ib_mr *pfnic_alloc_mr(struct ib_pd *ibpd, enum ib_mr_type type, u32 max_num_sg);
int pfnic_map_mr_sg(struct ib_mr *ibmr, struct scatterlist *sg, int sg_nents,
		    unsigned int *sg_offset);
int pfnic_mr_fast_reg(struct pfnic_mr *mr, struct ib_pd *pd, u32 key, int access);
int pfnic_mr_invalidate(u32 key, struct ib_pd *pd);
int pfnic_alloc_mw(struct ib_mw *ibmw, struct ib_udata *udata);

/* pfnic_mcast.c */
bool pfnic_gid_multicast(const union ib_gid *gid);
int pfnic_attach_mcast(struct ib_qp *ibqp, union ib_gid *gid, u16 lid);
int pfnic_detach_mcast(struct ib_qp *ibqp, union ib_gid *gid, u16 lid);
void pfnic_mcast_forget(struct pfnic_qp *qp);
u32 pfnic_mcast_next(const union ib_gid *gid, const struct net *net, u32 after);
int pfnic_dealloc_mw(struct ib_mw *ibmw);
int pfnic_mw_bind(struct pfnic_qp *qp, const struct pfnic_wqe *wqe);
struct pfnic_mr *pfnic_mw_resolve(struct pfnic_mr *win);
void *pfnic_mr_kva(struct pfnic_mr *mr, u64 iova, size_t *room);
struct pfnic_mr *pfnic_mr_get(u32 key);
struct pfnic_mr *pfnic_mr_get_index(u32 index);
void pfnic_mr_put(struct pfnic_mr *mr);
void pfnic_mr_count(struct pfnic_mr *mr, enum pfnic_stat stat, u64 n);
struct pfnic_xlt *pfnic_xlt_alloc(struct pfnic_mr *mr, unsigned long va, unsigned long npages);
void pfnic_xlt_put(struct pfnic_xlt *xlt);
void pfnic_xlt_zap(struct pfnic_xlt *xlt, unsigned long idx);
void pfnic_xlt_zap_all(struct pfnic_xlt *xlt);
struct pfnic_xlt *pfnic_xlt_get(struct pfnic_mr *mr, unsigned long uva);
struct page *pfnic_xlt_page(struct pfnic_xlt *xlt, unsigned long uva, bool write);

/* pfnic_odp.c */
extern const struct mmu_interval_notifier_ops pfnic_odp_ops;
/* How pfnic_odp_fault() maps a range. */
enum pfnic_fault_flags {
	PFNIC_FAULT_WRITE	= BIT(0),	/* the access writes */
	PFNIC_FAULT_PREFETCH	= BIT(1),	/* ibv_advise_mr, not a device fault */
	PFNIC_FAULT_SNAPSHOT	= BIT(2),	/* fault nothing: map what the CPU has */
};

int pfnic_odp_fault(struct pfnic_mr *mr, unsigned long va, size_t len, unsigned int flags);
int pfnic_advise_mr(struct ib_pd *pd, enum ib_uverbs_advise_mr_advice advice, u32 flags,
		    struct ib_sge *sg_list, u32 num_sge, struct uverbs_attr_bundle *attrs);
void pfnic_odp_implicit_release_all(struct pfnic_mr *mr);
/**
 * struct pfnic_mr_sum - an MR's translation state, summed over its tables
 * @npresent: pages with a translation
 * @nsuspended: pages whose translation an invalidation took while the memory stays mapped
 * @ntables: translation tables
 */
struct pfnic_mr_sum {
	unsigned long npresent;
	unsigned long nsuspended;
	unsigned long ntables;
};

void pfnic_odp_mr_sum(struct pfnic_mr *mr, struct pfnic_mr_sum *sum);

/* pfnic_events.c */
/* A memory block, as /sys/devices/system/memory numbers it, and its NUMA node. */
struct pfnic_block {
	long block;
	int node;
};

int pfnic_events_init(void);
void pfnic_events_exit(void);
bool pfnic_events_listened(void);
void pfnic_event_mr(struct pfnic_mr *mr, enum pfnic_event_type type, u8 mmu_event,
		    unsigned long start, unsigned long end, unsigned long pages,
		    const struct pfnic_block *blk);
bool pfnic_event_offlining(unsigned long pfn, struct pfnic_block *blk);
void pfnic_mr_report_pinned(unsigned long start_pfn, unsigned long nr_pages,
			    const struct pfnic_block *blk);

/* pfnic_restrack.c */
int pfnic_fill_res_mr_entry(struct sk_buff *msg, struct ib_mr *ibmr);
int pfnic_fill_stat_mr_entry(struct sk_buff *msg, struct ib_mr *ibmr);

/* pfnic_qp.c */
int pfnic_create_qp(struct ib_qp *ibqp, struct ib_qp_init_attr *init, struct ib_udata *udata);
int pfnic_modify_qp(struct ib_qp *ibqp, struct ib_qp_attr *attr, int mask,
		    struct ib_udata *udata);
int pfnic_query_qp(struct ib_qp *ibqp, struct ib_qp_attr *attr, int mask,
		   struct ib_qp_init_attr *init);
int pfnic_destroy_qp(struct ib_qp *ibqp, struct ib_udata *udata);
int pfnic_post_send(struct ib_qp *ibqp, const struct ib_send_wr *wr,
		    const struct ib_send_wr **bad_wr);
int pfnic_post_recv(struct ib_qp *ibqp, const struct ib_recv_wr *wr,
		    const struct ib_recv_wr **bad_wr);
struct pfnic_qp *pfnic_qp_get(u32 qpn);
void pfnic_qp_put(struct pfnic_qp *qp);
struct pfnic_qp *pfnic_gsi_get(const union ib_gid *dgid, struct net *net);

void pfnic_qp_set_state(struct pfnic_qp *qp, enum ib_qp_state state);
void pfnic_wqe_fill(struct pfnic_wqe *wqe, u64 wr_id, const struct ib_sge *sg, int num_sge);

/* pfnic_srq.c */
int pfnic_create_srq(struct ib_srq *ibsrq, struct ib_srq_init_attr *init, struct ib_udata *udata);
int pfnic_modify_srq(struct ib_srq *ibsrq, struct ib_srq_attr *attr,
		     enum ib_srq_attr_mask mask, struct ib_udata *udata);
int pfnic_query_srq(struct ib_srq *ibsrq, struct ib_srq_attr *attr);
int pfnic_destroy_srq(struct ib_srq *ibsrq, struct ib_udata *udata);
struct pfnic_srq *pfnic_xrc_srq_get(u32 srqn, struct ib_xrcd *xrcd);
void pfnic_srq_put(struct pfnic_srq *srq);
int pfnic_alloc_xrcd(struct ib_xrcd *ibxrcd, struct ib_udata *udata);
int pfnic_dealloc_xrcd(struct ib_xrcd *ibxrcd, struct ib_udata *udata);
int pfnic_post_srq_recv(struct ib_srq *ibsrq, const struct ib_recv_wr *wr,
			const struct ib_recv_wr **bad_wr);
bool pfnic_srq_take(struct pfnic_srq *srq, struct pfnic_wqe *into, bool *limit);
void pfnic_srq_limit_event(struct pfnic_srq *srq);

/* pfnic_poll.c */
int pfnic_poll_init(void);
void pfnic_poll_exit(void);
bool pfnic_poll_take(struct pfnic_qp *qp);

/* RoCE v2 on the wire: pfnic_net.c, pfnic_wire_req.c, pfnic_wire_resp.c (pfnic_wire.h) */
void pfnic_net_attach(struct pfnic_dev *pfnic);
void pfnic_net_detach(struct net_device *ndev);
u16 pfnic_flow_port(u32 qpn);
void pfnic_wire_rx_work(struct work_struct *work);
void pfnic_wire_fault_work(struct work_struct *work);
bool pfnic_gid_local(const union ib_gid *gid, struct net *net);

/* the engine: pfnic_req.c and pfnic_comp.c (pfnic_engine.h) */
void pfnic_engine_run(struct work_struct *work);
void pfnic_engine_drive(struct pfnic_qp *qp);
void pfnic_engine_rnr_retry(struct work_struct *work);
void pfnic_engine_fault(struct work_struct *work);
void pfnic_qp_complete_send(struct pfnic_qp *qp, const struct pfnic_wqe *wqe,
			    enum ib_wc_status status);
void pfnic_qp_flush(struct pfnic_qp *qp);
void pfnic_qp_event(struct pfnic_qp *qp, enum ib_event_type type);

#endif /* PFNIC_H */
