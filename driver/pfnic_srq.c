// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: shared receive queues. Any number of RC QPs take their receive WQEs from one SRQ.
 * A responder QP takes the WQE at the SRQ's head when a message that consumes one begins,
 * and keeps it (qp->srq_held) until that message is delivered or the QP is flushed, across
 * the requester's page faults and RNR waits alike: no two messages ever land in one
 * buffer, and a message that stalls does not lose its buffer to another QP.
 */
#include <linux/slab.h>
#include <linux/xarray.h>
#include <rdma/uverbs_ioctl.h>

#include "pfnic.h"

/* The XRC SRQs, by number: what an XRC INI QP's message names. */
static DEFINE_XARRAY_FLAGS(pfnic_xrc_srqs, XA_FLAGS_ALLOC1 | XA_FLAGS_LOCK_IRQ);

static void pfnic_srq_release(struct kref *ref)
{
	complete(&container_of(ref, struct pfnic_srq, ref)->done);
}

void pfnic_srq_put(struct pfnic_srq *srq)
{
	kref_put(&srq->ref, pfnic_srq_release);
}

/**
 * pfnic_xrc_srq_get() - the XRC SRQ of a number, in an XRC domain, with a reference
 * @srqn: the number an XRC message names
 * @xrcd: the domain of the TGT QP the message came to
 *
 * Context: any; takes the XRC SRQ table's lock (irqsave).
 * Return: the SRQ (undone by pfnic_srq_put()), or NULL if there is none of that number in
 * @xrcd.
 */
struct pfnic_srq *pfnic_xrc_srq_get(u32 srqn, struct ib_xrcd *xrcd)
{
	struct pfnic_srq *srq;
	unsigned long flags;

	xa_lock_irqsave(&pfnic_xrc_srqs, flags);
	srq = xa_load(&pfnic_xrc_srqs, srqn);
	if (srq && (srq->ibsrq.ext.xrc.xrcd != xrcd || !kref_get_unless_zero(&srq->ref)))
		srq = NULL;
	xa_unlock_irqrestore(&pfnic_xrc_srqs, flags);
	return srq;
}

int pfnic_alloc_xrcd(struct ib_xrcd *ibxrcd, struct ib_udata *udata)
{
	return udata && (udata->inlen || udata->outlen) ? -EINVAL : 0;
}

int pfnic_dealloc_xrcd(struct ib_xrcd *ibxrcd, struct ib_udata *udata)
{
	return 0;
}

/**
 * pfnic_create_srq() - a basic SRQ (a kernel consumer's, or a user SRQ with a ring), or a
 *			user XRC SRQ, which gets a number XRC messages name
 * @ibsrq: the SRQ the core allocated (an XRC SRQ's domain and CQ set)
 * @init: its type and size, updated to what it got
 * @udata: a user SRQ's: no request; the response is struct pfnic_create_srq_resp
 *
 * Return: 0; -EOPNOTSUPP for another type, or a kernel XRC SRQ; -EINVAL for a size or
 * private data out of bounds; -ENOMEM; the device's SRQ limit's error (pfnic_obj_take()).
 */
int pfnic_create_srq(struct ib_srq *ibsrq, struct ib_srq_init_attr *init, struct ib_udata *udata)
{
	struct pfnic_srq *srq = to_pfnic_srq(ibsrq);
	struct ib_srq_attr *attr = &init->attr;
	struct pfnic_create_srq_resp resp = {};
	u32 max_sge = max_t(u32, attr->max_sge, 1);
	int rv;

	if (init->srq_type != IB_SRQT_BASIC && (init->srq_type != IB_SRQT_XRC || !udata))
		return -EOPNOTSUPP;
	if (!attr->max_wr || attr->max_wr > PFNIC_MAX_QP_WR || attr->max_sge > PFNIC_MAX_SGE)
		return -EINVAL;
	if (udata && (udata->inlen || udata->outlen < sizeof(resp)))
		return -EINVAL;
	spin_lock_init(&srq->lock);
	kref_init(&srq->ref);
	init_completion(&srq->done);
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
		if (!rv && init->srq_type == IB_SRQT_XRC)
			rv = xa_alloc_irq(&pfnic_xrc_srqs, &ibsrq->ext.xrc.srq_num, srq,
					  XA_LIMIT(1, (1 << 24) - 1), GFP_KERNEL);
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

/*
 * The core refuses to destroy an SRQ that a QP still uses: nothing can take from it. An XRC
 * SRQ's number goes first, then a message that found it and holds its WQE lets go.
 */
int pfnic_destroy_srq(struct ib_srq *ibsrq, struct ib_udata *udata)
{
	struct pfnic_srq *srq = to_pfnic_srq(ibsrq);

	if (ibsrq->srq_type == IB_SRQT_XRC) {
		xa_erase_irq(&pfnic_xrc_srqs, ibsrq->ext.xrc.srq_num);
		pfnic_srq_put(srq);
		wait_for_completion(&srq->done);
	}
	pfnic_wq_destroy(&srq->rq);
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
