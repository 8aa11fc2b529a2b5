// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: shared receive queues. Any number of RC QPs take their receive WQEs from one SRQ.
 * A responder QP takes the WQE at the SRQ's head when a message that consumes one begins,
 * and keeps it (qp->srq_held) until that message is delivered or the QP is flushed, across
 * the requester's page faults and RNR waits alike: no two messages ever land in one
 * buffer, and a message that stalls does not lose its buffer to another QP.
 */
#include <linux/slab.h>
#include <rdma/uverbs_ioctl.h>

#include "pfnic.h"

/**
 * pfnic_create_srq() - a basic SRQ: a kernel consumer's, or a user SRQ with a ring
 * @ibsrq: the SRQ the core allocated
 * @init: its type (basic) and size, updated to what it got
 * @udata: a user SRQ's: no request; the response is struct pfnic_create_srq_resp
 *
 * Return: 0; -EOPNOTSUPP for another type; -EINVAL for a size or private data out of
 * bounds; -ENOMEM; the device's SRQ limit's error (pfnic_obj_take()).
 */
int pfnic_create_srq(struct ib_srq *ibsrq, struct ib_srq_init_attr *init, struct ib_udata *udata)
{
	struct pfnic_srq *srq = to_pfnic_srq(ibsrq);
	struct ib_srq_attr *attr = &init->attr;
	struct pfnic_create_srq_resp resp = {};
	u32 max_sge = max_t(u32, attr->max_sge, 1);
	int rv;

	if (init->srq_type != IB_SRQT_BASIC)
		return -EOPNOTSUPP;
	if (!attr->max_wr || attr->max_wr > PFNIC_MAX_QP_WR || attr->max_sge > PFNIC_MAX_SGE)
		return -EINVAL;
	if (udata && (udata->inlen || udata->outlen < sizeof(resp)))
		return -EINVAL;
	spin_lock_init(&srq->lock);
	rv = pfnic_obj_take(to_pfnic_dev(ibsrq->device), PFNIC_OBJ_SRQ);
	if (rv)
		return rv;
	if (udata) {
		struct pfnic_ucontext *uc = rdma_udata_to_drv_context(udata, struct pfnic_ucontext,
								      ibuc);

		rv = pfnic_wq_init_user(&srq->rq, &uc->ibuc, attr->max_wr, max_sge, 0, false,
					&resp.rq);
		if (!rv)
			rv = ib_copy_to_udata(udata, &resp, sizeof(resp));
	} else {
		rv = pfnic_wq_init(&srq->rq, attr->max_wr, max_sge, 0);
	}
	if (rv) {
		pfnic_wq_destroy(&srq->rq);
		pfnic_obj_drop(to_pfnic_dev(ibsrq->device), PFNIC_OBJ_SRQ);
		return rv;
	}
	/* the limit is armed by modify_srq only */
	srq->limit = 0;
	attr->max_wr = srq->rq.size;
	attr->max_sge = srq->rq.max_sge;
	return 0;
}

int pfnic_modify_srq(struct ib_srq *ibsrq, struct ib_srq_attr *attr,
		     enum ib_srq_attr_mask mask, struct ib_udata *udata)
{
	struct pfnic_srq *srq = to_pfnic_srq(ibsrq);

	if (udata && (udata->inlen || udata->outlen))
		return -EINVAL;
	/* the queue keeps its size */
	if (mask & ~IB_SRQ_LIMIT)
		return -EINVAL;
	if (attr->srq_limit > srq->rq.size)
		return -EINVAL;
	spin_lock_irq(&srq->lock);
	srq->limit = attr->srq_limit;
	spin_unlock_irq(&srq->lock);
	return 0;
}

int pfnic_query_srq(struct ib_srq *ibsrq, struct ib_srq_attr *attr)
{
	struct pfnic_srq *srq = to_pfnic_srq(ibsrq);

	spin_lock_irq(&srq->lock);
	attr->max_wr = srq->rq.size;
	attr->max_sge = srq->rq.max_sge;
	attr->srq_limit = srq->limit;
	spin_unlock_irq(&srq->lock);
	return 0;
}

/* The core refuses to destroy an SRQ that a QP still uses: nothing can take from it. */
int pfnic_destroy_srq(struct ib_srq *ibsrq, struct ib_udata *udata)
{
	pfnic_wq_destroy(&to_pfnic_srq(ibsrq)->rq);
	pfnic_obj_drop(to_pfnic_dev(ibsrq->device), PFNIC_OBJ_SRQ);
	return 0;
}

int pfnic_post_srq_recv(struct ib_srq *ibsrq, const struct ib_recv_wr *wr,
			const struct ib_recv_wr **bad_wr)
{
	struct pfnic_srq *srq = to_pfnic_srq(ibsrq);
	unsigned long flags;
	int rv = 0;

	/* a user SRQ's WQEs are posted in its ring */
	if (srq->rq.shared) {
		*bad_wr = wr;
		return -EINVAL;
	}
	spin_lock_irqsave(&srq->lock, flags);
	for (; wr; wr = wr->next) {
		if (wr->num_sge < 0 || wr->num_sge > srq->rq.max_sge) {
			rv = -EINVAL;
			break;
		}
		if (srq->rq.count == srq->rq.size) {
			rv = -ENOMEM;
			break;
		}
		pfnic_wqe_fill(pfnic_wq_entry(&srq->rq, srq->rq.head + srq->rq.count), wr->wr_id,
			       wr->sg_list, wr->num_sge);
		srq->rq.count++;
	}
	spin_unlock_irqrestore(&srq->lock, flags);
	if (rv)
		*bad_wr = wr;
	return rv;
}

/* Tells the SRQ's consumer that its WQEs fell below the limit it had armed. */
void pfnic_srq_limit_event(struct pfnic_srq *srq)
{
	struct ib_event ev = {
		.device = srq->ibsrq.device,
		.element.srq = &srq->ibsrq,
		.event = IB_EVENT_SRQ_LIMIT_REACHED,
	};

	if (srq->ibsrq.event_handler)
		srq->ibsrq.event_handler(&ev, srq->ibsrq.srq_context);
}

/**
 * pfnic_srq_take() - take the WQE at the head of an SRQ for a responder QP
 * @srq: the SRQ
 * @into: where the WQE is copied (room for PFNIC_MAX_SGE SGEs)
 * @limit: set when the WQEs left fell below an armed limit, which is disarmed: the caller
 *	reports IB_EVENT_SRQ_LIMIT_REACHED (pfnic_srq_limit_event()) once it holds no lock
 *
 * Context: any; takes @srq->lock (the caller may hold its QP's lock: QP before SRQ).
 * Return: true, or false if the SRQ is empty (the sender sees an RNR).
 */
bool pfnic_srq_take(struct pfnic_srq *srq, struct pfnic_wqe *into, bool *limit)
{
	unsigned long flags;

	u32 left;

	spin_lock_irqsave(&srq->lock, flags);
	left = pfnic_wq_count(&srq->rq);
	if (!left) {
		spin_unlock_irqrestore(&srq->lock, flags);
		return false;
	}
	pfnic_wq_fetch_recv(&srq->rq, into);
	pfnic_wq_pop(&srq->rq);
	if (srq->limit && left - 1 < srq->limit) {
		srq->limit = 0;
		*limit = true;
	}
	spin_unlock_irqrestore(&srq->lock, flags);
	return true;
}
