// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: completion queues. The engine adds completions; poll_cq takes them; req_notify_cq
 * arms the completion event, which fires on the next (or next solicited) completion.
 */
#include <linux/slab.h>
#include <rdma/uverbs_ioctl.h>

#include "pfnic.h"

int pfnic_create_cq(struct ib_cq *ibcq, const struct ib_cq_init_attr *attr,
		    struct ib_udata *driver_udata)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);
	struct pfnic_dev *pfnic = to_pfnic_dev(ibcq->device);
	int rv;

	if (attr->flags)
		return -EOPNOTSUPP;
	if (attr->cqe < 1 || attr->cqe > PFNIC_MAX_CQE)
		return -EINVAL;
	if (driver_udata && (driver_udata->inlen || driver_udata->outlen))
		return -EINVAL;

	rv = pfnic_obj_take(pfnic, PFNIC_OBJ_CQ);
	if (rv)
		return rv;
	cq->ring = kvcalloc(attr->cqe, sizeof(*cq->ring), PFNIC_GFP_USER_SIZED);
	if (!cq->ring) {
		pfnic_obj_drop(pfnic, PFNIC_OBJ_CQ);
		return -ENOMEM;
	}
	spin_lock_init(&cq->lock);
	cq->size = attr->cqe;
	ibcq->cqe = attr->cqe;
	return 0;
}

int pfnic_destroy_cq(struct ib_cq *ibcq, struct ib_udata *udata)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);

	/* the core destroys a CQ only once no QP uses it, so no completion can race */
	kvfree(cq->ring);
	pfnic_obj_drop(to_pfnic_dev(ibcq->device), PFNIC_OBJ_CQ);
	return 0;
}

/**
 * pfnic_cq_complete() - add a completion, and fire the completion event if armed for it
 * @cq: the CQ
 * @wc: the completion
 * @solicited: the completion is of a solicited message (fires IB_CQ_SOLICITED arming)
 *
 * A full CQ is a consumer error: the completion is lost, the CQ reports IB_EVENT_CQ_ERR
 * once, and polls fail from then on.
 */
/**
 * pfnic_cq_push() - put a completion in a CQ's ring, without telling its consumer yet
 * @cq: the CQ
 * @wc: the completion
 * @solicited: the completion is solicited (for IB_CQ_SOLICITED arming)
 *
 * For a caller that must queue the completion under a lock of its own (so that nothing it
 * orders after the completion can overtake it) and tell the consumer once it dropped it.
 *
 * Context: any; takes @cq->lock (irqsave), so it nests inside a QP's lock.
 * Return: what pfnic_cq_signal() must then report (PFNIC_CQ_*).
 */
unsigned int pfnic_cq_push(struct pfnic_cq *cq, const struct ib_wc *wc, bool solicited)
{
	unsigned int signal = 0;
	unsigned long flags;

	spin_lock_irqsave(&cq->lock, flags);
	if (cq->count == cq->size) {
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

void pfnic_cq_complete(struct pfnic_cq *cq, const struct ib_wc *wc, bool solicited)
{
	pfnic_cq_signal(cq, pfnic_cq_push(cq, wc, solicited));
}

int pfnic_poll_cq(struct ib_cq *ibcq, int num_entries, struct ib_wc *wc)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);
	unsigned long flags;
	int n = 0;

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
 * pfnic_cq_clean() - take a destroyed QP's completions out of a CQ
 * @cq: the CQ
 * @qp: the QP, which no engine or flush uses any more
 *
 * A completion points at its QP (struct ib_wc's qp), which POLL_CQ and kernel consumers read
 * when they poll: a completion left behind by a QP being destroyed would point at freed
 * memory, so it goes with the QP, as mlx5 cleans a destroyed QP's CQEs.
 */
void pfnic_cq_clean(struct pfnic_cq *cq, struct ib_qp *qp)
{
	unsigned long flags;
	u32 i, kept = 0;

	spin_lock_irqsave(&cq->lock, flags);
	for (i = 0; i < cq->count; i++) {
		struct ib_wc *wc = &cq->ring[(cq->head + i) % cq->size];

		if (wc->qp != qp)
			cq->ring[(cq->head + kept++) % cq->size] = *wc;
	}
	cq->count = kept;
	spin_unlock_irqrestore(&cq->lock, flags);
}

int pfnic_req_notify_cq(struct ib_cq *ibcq, enum ib_cq_notify_flags flags)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);
	unsigned long irqflags;
	int rv = 0;

	spin_lock_irqsave(&cq->lock, irqflags);
	/* NEXT_COMP is the wider arming: it is never narrowed back to SOLICITED */
	if (cq->notify != IB_CQ_NEXT_COMP)
		cq->notify = flags & IB_CQ_SOLICITED_MASK;
	if ((flags & IB_CQ_REPORT_MISSED_EVENTS) && cq->count)
		rv = 1;
	spin_unlock_irqrestore(&cq->lock, irqflags);
	return rv;
}
