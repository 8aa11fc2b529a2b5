// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: completion queues. The engine adds completions; the consumer takes them and arms
 * the completion event, which fires on the next (or next solicited) completion.
 *
 * A kernel consumer's CQ is a ring of struct ib_wc that poll_cq and req_notify_cq reach
 * under the CQ's lock. A user CQ is a ring in memory the process maps (struct
 * pfnic_cq_ring and its CQEs, uapi/pfnic-abi.h): the provider polls and arms it with no
 * system call, and the two sides meet only through the ring's indexes and arming word, in
 * the memory order written down there and at each access below.
 */
#include <linux/slab.h>
#include <rdma/uverbs_ioctl.h>

#include "pfnic.h"

/* A user CQ's ring: its memory, its place in the process's mmap offsets, the response. */
static int pfnic_cq_user_ring(struct pfnic_cq *cq, struct ib_udata *udata)
{
	struct pfnic_ucontext *uc = rdma_udata_to_drv_context(udata, struct pfnic_ucontext, ibuc);
	struct pfnic_create_cq_resp resp = {};
	size_t size = sizeof(*cq->shared) + (size_t)cq->size * sizeof(*cq->cqes);
	struct pfnic_ring_mem *mem;
	int rv;

	mem = pfnic_ring_mem_map(&uc->ibuc, size);
	if (IS_ERR(mem))
		return PTR_ERR(mem);
	cq->mem = mem;
	cq->shared = mem->buf;
	cq->cqes = (struct pfnic_cqe *)(cq->shared + 1);
	resp.mmap_offset = rdma_user_mmap_get_offset(&mem->entry);
	resp.mmap_size = mem->npages << PAGE_SHIFT;
	resp.slots = cq->size;
	resp.cqe_size = sizeof(struct pfnic_cqe);
	rv = ib_copy_to_udata(udata, &resp, sizeof(resp));
	if (rv) {
		/* the entry owns the memory now: its removal frees it */
		rdma_user_mmap_entry_remove(&mem->entry);
		cq->mem = NULL;
	}
	return rv;
}

/**
 * pfnic_create_cq() - a kernel consumer's CQ (no @udata) or a user CQ
 * @ibcq: the CQ the core allocated
 * @attr: its size (1 to PFNIC_MAX_CQE) and flags (none)
 * @udata: a user CQ's: no request; the response is struct pfnic_create_cq_resp
 *
 * A user CQ's ring has a power of two of slots, at least @attr->cqe, which is the size the
 * CQ reports.
 *
 * Return: 0, -EOPNOTSUPP for flags, -EINVAL for a size or private data out of bounds,
 * -ENOMEM, or the device's CQ limit's error (pfnic_obj_take()).
 */
int pfnic_create_cq(struct ib_cq *ibcq, const struct ib_cq_init_attr *attr,
		    struct ib_udata *udata)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);
	struct pfnic_dev *pfnic = to_pfnic_dev(ibcq->device);
	int rv;

	if (attr->flags)
		return -EOPNOTSUPP;
	if (attr->cqe < 1 || attr->cqe > PFNIC_MAX_CQE)
		return -EINVAL;
	if (udata && (udata->inlen || udata->outlen < sizeof(struct pfnic_create_cq_resp)))
		return -EINVAL;

	rv = pfnic_obj_take(pfnic, PFNIC_OBJ_CQ);
	if (rv)
		return rv;
	spin_lock_init(&cq->lock);
	if (udata) {
		cq->size = roundup_pow_of_two(attr->cqe);
		rv = pfnic_cq_user_ring(cq, udata);
	} else {
		cq->size = attr->cqe;
		cq->ring = kvcalloc(cq->size, sizeof(*cq->ring), PFNIC_GFP_USER_SIZED);
		rv = cq->ring ? 0 : -ENOMEM;
	}
	if (rv) {
		pfnic_obj_drop(pfnic, PFNIC_OBJ_CQ);
		return rv;
	}
	ibcq->cqe = cq->size;
	return 0;
}

/*
 * A user CQ's completions not yet taken, moved into the ring @mem of @slots slots: the same
 * indexes, arming and flags, so the provider goes on where it was. Caller holds @cq->lock.
 * Return: 0, or -EINVAL if more completions wait than @slots hold.
 */
static int pfnic_cq_move_user(struct pfnic_cq *cq, struct pfnic_ring_mem *mem, u32 slots)
{
	struct pfnic_cq_ring *old = cq->shared, *ring = mem->buf;
	struct pfnic_cqe *cqes = (struct pfnic_cqe *)(ring + 1);
	u32 consumer, i;

	lockdep_assert_held(&cq->lock);
	/* acquire: the provider's reads of the CQEs it took are done; the rest are copied */
	consumer = smp_load_acquire(&old->consumer);
	if (cq->produced - consumer > slots)
		return -EINVAL;
	for (i = consumer; i != cq->produced; i++)
		cqes[i & (slots - 1)] = cq->cqes[i & (cq->size - 1)];
	ring->consumer = consumer;
	ring->arm = READ_ONCE(old->arm);
	ring->fired = cq->fired;
	ring->flags = READ_ONCE(old->flags);
	/*
	 * release: the CQEs before the index, as for every completion (the provider maps the
	 * new ring only after the command returns, but the rule costs nothing to keep)
	 */
	smp_store_release(&ring->producer, cq->produced);
	cq->mem = mem;
	cq->shared = ring;
	cq->cqes = cqes;
	cq->size = slots;
	return 0;
}

/* A kernel CQ's completions moved into @ring of @size. Caller holds @cq->lock. */
static int pfnic_cq_move_kernel(struct pfnic_cq *cq, struct ib_wc *ring, u32 size)
{
	u32 i;

	lockdep_assert_held(&cq->lock);
	if (cq->count > size)
		return -EINVAL;
	for (i = 0; i < cq->count; i++)
		ring[i] = cq->ring[(cq->head + i) % cq->size];
	cq->ring = ring;
	cq->head = 0;
	cq->size = size;
	return 0;
}

/**
 * pfnic_resize_cq() - give a CQ a ring of another size, its completions kept
 * @ibcq: the CQ
 * @cqe: the completions it must hold (1 to PFNIC_MAX_CQE)
 * @udata: a user CQ's: no request; the response is a struct pfnic_create_cq_resp for the new
 *	   ring, which the provider maps in place of the old (the old one's pages go once it
 *	   is unmapped)
 *
 * The completions not yet polled move to the new ring in order, with the arming; the engine
 * adds completions under the same lock, so none is lost or doubled. As in create, a user
 * ring has a power of two of slots.
 *
 * Context: process; takes @ibcq's lock (irqsave).
 * Return: 0, -EINVAL for a size out of bounds, smaller than the completions waiting, or bad
 * private data, -ENOMEM, or the core's error for the new ring's mmap entry.
 */
int pfnic_resize_cq(struct ib_cq *ibcq, int cqe, struct ib_udata *udata)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);
	struct pfnic_create_cq_resp resp = {};
	struct pfnic_ring_mem *mem = NULL, *old_mem = cq->mem;
	struct ib_wc *ring = NULL, *old_ring = cq->ring;
	unsigned long flags;
	u32 size;
	int rv;

	if (cqe < 1 || cqe > PFNIC_MAX_CQE)
		return -EINVAL;
	if (!!udata != !!cq->shared ||
	    (udata && (udata->inlen || udata->outlen < sizeof(resp))))
		return -EINVAL;
	if (udata) {
		struct pfnic_ucontext *uc = rdma_udata_to_drv_context(udata, struct pfnic_ucontext,
								      ibuc);

		size = roundup_pow_of_two(cqe);
		mem = pfnic_ring_mem_map(&uc->ibuc, sizeof(struct pfnic_cq_ring) +
					 (size_t)size * sizeof(struct pfnic_cqe));
		if (IS_ERR(mem))
			return PTR_ERR(mem);
	} else {
		size = cqe;
		ring = kvcalloc(size, sizeof(*ring), GFP_KERNEL);
		if (!ring)
			return -ENOMEM;
	}

	spin_lock_irqsave(&cq->lock, flags);
	rv = mem ? pfnic_cq_move_user(cq, mem, size) : pfnic_cq_move_kernel(cq, ring, size);
	if (!rv)
		ibcq->cqe = size;
	spin_unlock_irqrestore(&cq->lock, flags);
	if (rv)
		goto undo;

	if (mem) {
		resp.mmap_offset = rdma_user_mmap_get_offset(&mem->entry);
		resp.mmap_size = mem->npages << PAGE_SHIFT;
		resp.slots = size;
		resp.cqe_size = sizeof(struct pfnic_cqe);
		/*
		 * A process that cannot take the answer keeps its mapping of the old ring,
		 * which no longer fills: its CQ is as good as gone, and no memory is at risk.
		 */
		rv = ib_copy_to_udata(udata, &resp, sizeof(resp));
		rdma_user_mmap_entry_remove(&old_mem->entry);
	} else {
		kvfree(old_ring);
	}
	return rv;
undo:
	if (mem)
		rdma_user_mmap_entry_remove(&mem->entry);
	kvfree(ring);
	return rv;
}

int pfnic_destroy_cq(struct ib_cq *ibcq, struct ib_udata *udata)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);

	/*
	 * The core destroys a CQ only once no QP uses it, so no completion can race. A user
	 * ring's pages stay while the process maps them (pfnic_mmap_free()).
	 */
	if (cq->mem)
		rdma_user_mmap_entry_remove(&cq->mem->entry);
	kvfree(cq->ring);
	pfnic_obj_drop(to_pfnic_dev(ibcq->device), PFNIC_OBJ_CQ);
	return 0;
}

/* A completion as a user ring carries it (uapi/pfnic-abi.h's struct pfnic_cqe). */
static void pfnic_cqe_fill(struct pfnic_cqe *cqe, const struct ib_wc *wc)
{
	u32 flags = 0;

	if (wc->wc_flags & IB_WC_GRH)
		flags |= PFNIC_CQE_GRH;
	if (wc->wc_flags & IB_WC_WITH_IMM)
		flags |= PFNIC_CQE_WITH_IMM;
	if (wc->wc_flags & IB_WC_WITH_INVALIDATE)
		flags |= PFNIC_CQE_WITH_INVALIDATE;
	*cqe = (struct pfnic_cqe){
		.wr_id = wc->wr_id,
		.status = wc->status,
		.opcode = wc->opcode,
		.sl = wc->sl,
		.vendor_err = wc->vendor_err,
		.byte_len = wc->byte_len,
		.ex_data = wc->wc_flags & IB_WC_WITH_INVALIDATE ? wc->ex.invalidate_rkey :
			   (__force u32)wc->ex.imm_data,
		.qp_num = wc->qp->qp_num,
		.src_qp = wc->src_qp,
		.wc_flags = flags,
		.pkey_index = wc->pkey_index,
		.network_hdr_type = wc->network_hdr_type,
	};
}

/*
 * Puts a completion in a user CQ's ring, and reads the arming word: whether this
 * completion fires the event. Caller holds @cq->lock. Return: PFNIC_CQ_*.
 */
static unsigned int pfnic_cq_push_user(struct pfnic_cq *cq, const struct ib_wc *wc,
				       bool solicited)
{
	struct pfnic_cq_ring *ring = cq->shared;
	u32 consumer, arm, seq;
	bool wanted;

	lockdep_assert_held(&cq->lock);
	/* acquire: the provider has read the CQEs below it before their slots are reused */
	consumer = smp_load_acquire(&ring->consumer);
	if (cq->overflowed || cq->produced - consumer >= cq->size) {
		if (cq->overflowed)
			return 0;
		cq->overflowed = true;
		WRITE_ONCE(ring->flags, ring->flags | PFNIC_CQ_RING_OVERFLOW);
		return PFNIC_CQ_OVERFLOW;
	}
	pfnic_cqe_fill(&cq->cqes[cq->produced & (cq->size - 1)], wc);
	cq->produced++;
	/* release: the CQE is written before the provider can see the index that covers it */
	smp_store_release(&ring->producer, cq->produced);
	/*
	 * The index store before the arming load, as the provider orders its arming store
	 * before it polls again: either this completion sees a request made before the
	 * provider's last poll, or that poll sees this completion. None is missed.
	 */
	smp_mb();
	arm = READ_ONCE(ring->arm);
	seq = arm >> PFNIC_CQ_ARM_SHIFT;
	if (seq == cq->fired)
		return 0;
	wanted = (arm & PFNIC_CQ_ARM_NEXT) ||
		 ((arm & PFNIC_CQ_ARM_SOLICITED) && (solicited || wc->status != IB_WC_SUCCESS));
	if (!wanted)
		return 0;
	cq->fired = seq;
	WRITE_ONCE(ring->fired, seq);
	return PFNIC_CQ_FIRE;
}

/**
 * pfnic_cq_push() - put a completion in a CQ's ring, without telling its consumer yet
 * @cq: the CQ
 * @wc: the completion
 * @solicited: the completion is solicited (for IB_CQ_SOLICITED arming)
 *
 * For a caller that must queue the completion under a lock of its own (so that nothing it
 * orders after the completion can overtake it) and tell the consumer once it dropped it.
 * A full CQ is a consumer error: the completion is lost, the CQ reports IB_EVENT_CQ_ERR
 * once, and polls fail from then on.
 *
 * Context: any; takes @cq->lock (irqsave), so it nests inside a QP's lock.
 * Return: what pfnic_cq_signal() must then report (PFNIC_CQ_*).
 */
unsigned int pfnic_cq_push(struct pfnic_cq *cq, const struct ib_wc *wc, bool solicited)
{
	unsigned int signal = 0;
	unsigned long flags;

	spin_lock_irqsave(&cq->lock, flags);
	if (cq->shared) {
		signal = pfnic_cq_push_user(cq, wc, solicited);
	} else if (cq->count == cq->size) {
		if (!cq->overflowed)
			signal |= PFNIC_CQ_OVERFLOW;
		cq->overflowed = true;
	} else {
		cq->ring[(cq->head + cq->count) % cq->size] = *wc;
		cq->count++;
		if (cq->notify == IB_CQ_NEXT_COMP ||
		    (cq->notify == IB_CQ_SOLICITED && (solicited || wc->status != IB_WC_SUCCESS))) {
			signal |= PFNIC_CQ_FIRE;
			cq->notify = 0;
		}
	}
	spin_unlock_irqrestore(&cq->lock, flags);
	return signal;
}

/* Tells the CQ's consumer what pfnic_cq_push() found: an armed completion, an overflow. */
void pfnic_cq_signal(struct pfnic_cq *cq, unsigned int signal)
{
	if ((signal & PFNIC_CQ_OVERFLOW) && cq->ibcq.event_handler) {
		struct ib_event ev = {
			.device = cq->ibcq.device,
			.element.cq = &cq->ibcq,
			.event = IB_EVENT_CQ_ERR,
		};

		cq->ibcq.event_handler(&ev, cq->ibcq.cq_context);
	}
	if ((signal & PFNIC_CQ_FIRE) && cq->ibcq.comp_handler)
		cq->ibcq.comp_handler(&cq->ibcq, cq->ibcq.cq_context);
}

/**
 * pfnic_cq_complete() - add a completion, and fire the completion event if armed for it
 * @cq: the CQ
 * @wc: the completion
 * @solicited: the completion is of a solicited message (fires IB_CQ_SOLICITED arming)
 */
void pfnic_cq_complete(struct pfnic_cq *cq, const struct ib_wc *wc, bool solicited)
{
	pfnic_cq_signal(cq, pfnic_cq_push(cq, wc, solicited));
}

/*
 * A kernel CQ's poll. A user CQ is polled in user space, from its ring: the POLL_CQ command
 * on one gets -EINVAL (the ring's completions name their QP by number, and the command
 * needs the kernel's QP).
 */
int pfnic_poll_cq(struct ib_cq *ibcq, int num_entries, struct ib_wc *wc)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);
	unsigned long flags;
	int n = 0;

	if (cq->shared)
		return -EINVAL;
	spin_lock_irqsave(&cq->lock, flags);
	if (cq->overflowed) {
		spin_unlock_irqrestore(&cq->lock, flags);
		return -EOVERFLOW;
	}
	while (n < num_entries && cq->count) {
		wc[n++] = cq->ring[cq->head];
		cq->head = (cq->head + 1) % cq->size;
		cq->count--;
	}
	spin_unlock_irqrestore(&cq->lock, flags);
	return n;
}

/**
 * pfnic_cq_clean() - take a destroyed QP's completions out of a kernel CQ
 * @cq: the CQ
 * @qp: the QP, which no engine or flush uses any more
 *
 * A kernel CQ's completions point at their QP (struct ib_wc's qp), which the consumer reads
 * when it polls: a completion left behind by a QP being destroyed would point at freed
 * memory, so it goes with the QP, as mlx5 cleans a destroyed QP's CQEs. A user CQ's ring
 * names QPs by number: what the process polls after a QP's end is still sound, and stays.
 */
void pfnic_cq_clean(struct pfnic_cq *cq, struct ib_qp *qp)
{
	unsigned long flags;
	u32 i, kept = 0;

	if (cq->shared)
		return;
	spin_lock_irqsave(&cq->lock, flags);
	for (i = 0; i < cq->count; i++) {
		struct ib_wc *wc = &cq->ring[(cq->head + i) % cq->size];

		if (wc->qp != qp)
			cq->ring[(cq->head + kept++) % cq->size] = *wc;
	}
	cq->count = kept;
	spin_unlock_irqrestore(&cq->lock, flags);
}

/*
 * A user CQ armed by the REQ_NOTIFY_CQ command rather than by its provider: the request is
 * stored in the ring's arming word as the provider stores it.
 */
static void pfnic_cq_arm_user(struct pfnic_cq *cq, enum ib_cq_notify_flags flags)
{
	struct pfnic_cq_ring *ring = cq->shared;
	u32 old, seq, request;

	lockdep_assert_held(&cq->lock);
	old = READ_ONCE(ring->arm);
	/* sequence 0 is the ring's first, never fired, value: skip it when wrapping */
	seq = ((old >> PFNIC_CQ_ARM_SHIFT) + 1) & (U32_MAX >> PFNIC_CQ_ARM_SHIFT);
	if (!seq)
		seq = 1;
	request = (flags & IB_CQ_SOLICITED_MASK) == IB_CQ_SOLICITED ? PFNIC_CQ_ARM_SOLICITED :
								       PFNIC_CQ_ARM_NEXT;
	/* NEXT_COMP is the wider arming: an unfired one is never narrowed to SOLICITED */
	if ((old >> PFNIC_CQ_ARM_SHIFT) != cq->fired && (old & PFNIC_CQ_ARM_NEXT))
		request = PFNIC_CQ_ARM_NEXT;
	WRITE_ONCE(ring->arm, seq << PFNIC_CQ_ARM_SHIFT | request);
}

int pfnic_req_notify_cq(struct ib_cq *ibcq, enum ib_cq_notify_flags flags)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);
	unsigned long irqflags;
	int rv = 0;

	spin_lock_irqsave(&cq->lock, irqflags);
	if (cq->shared) {
		pfnic_cq_arm_user(cq, flags);
		spin_unlock_irqrestore(&cq->lock, irqflags);
		return 0;
	}
	/* NEXT_COMP is the wider arming: it is never narrowed back to SOLICITED */
	if (cq->notify != IB_CQ_NEXT_COMP)
		cq->notify = flags & IB_CQ_SOLICITED_MASK;
	if ((flags & IB_CQ_REPORT_MISSED_EVENTS) && cq->count)
		rv = 1;
	spin_unlock_irqrestore(&cq->lock, irqflags);
	return rv;
}
