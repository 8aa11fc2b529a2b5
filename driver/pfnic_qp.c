// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: RC and UD queue pairs: creation, the state machine, posting, flushing. The engine
 * (pfnic_req.c, see pfnic_engine.h) executes what is posted.
 */
#include <linux/slab.h>
#include <linux/xarray.h>
#include <rdma/ib_cache.h>
#include <rdma/uverbs_ioctl.h>

#include "pfnic.h"

/*
 * QPN -> QP, for every pfnic device: an RC peer may be on any of them. QPNs are handed out
 * in turn, as rxe and hardware do, not lowest first: a number freed is not given again
 * until the 24-bit space has gone round, so a peer's stale QPN names no new QP.
 */
/*
 * Kernel consumers post receives from softirq context (completion handlers), and a receive
 * looks its QP's peer up here: the lock is taken with interrupts off.
 */
static DEFINE_XARRAY_FLAGS(pfnic_qps, XA_FLAGS_ALLOC | XA_FLAGS_LOCK_IRQ);
static u32 pfnic_qpn_next;
static atomic64_t pfnic_qp_incarnations;

/*
 * Every device's GSI QP (QP1): a MAD goes to the one whose device has the destination GID.
 * The lock is taken with interrupts off for the same reason as pfnic_qps's.
 */
static LIST_HEAD(pfnic_gsi_qps);
static DEFINE_SPINLOCK(pfnic_gsi_lock);

static void pfnic_qp_release(struct kref *ref)
{
	complete(&container_of(ref, struct pfnic_qp, ref)->done);
}

/**
 * pfnic_qp_get() - the QP with a QPN, with a reference
 * @qpn: the QP number
 *
 * Return: the QP, or NULL if there is none (any more).
 */
struct pfnic_qp *pfnic_qp_get(u32 qpn)
{
	struct pfnic_qp *qp;
	unsigned long flags;

	xa_lock_irqsave(&pfnic_qps, flags);
	qp = xa_load(&pfnic_qps, qpn);
	if (qp && !kref_get_unless_zero(&qp->ref))
		qp = NULL;
	xa_unlock_irqrestore(&pfnic_qps, flags);
	return qp;
}

/**
 * pfnic_gsi_get() - the GSI QP a MAD to a GID goes to, with a reference
 * @dgid: the destination GID
 * @net: the sender's network namespace, where the GID must be
 *
 * Context: any (the wire's receive path looks its QP1 up in softirq).
 * Return: the GSI QP of the device that has @dgid, or NULL if none has (or its QP1 is gone).
 */
struct pfnic_qp *pfnic_gsi_get(const union ib_gid *dgid, struct net *net)
{
	const struct ib_gid_attr *gid;
	struct pfnic_qp *qp, *found = NULL;
	unsigned long flags;

	spin_lock_irqsave(&pfnic_gsi_lock, flags);
	list_for_each_entry(qp, &pfnic_gsi_qps, gsi_entry) {
		if (!net_eq(dev_net(qp->pfnic->ndev), net))
			continue;
		gid = rdma_find_gid_by_port(&qp->pfnic->ibdev, dgid, IB_GID_TYPE_ROCE_UDP_ENCAP,
					    PFNIC_PORT, NULL);
		if (IS_ERR(gid))
			continue;
		rdma_put_gid_attr(gid);
		if (kref_get_unless_zero(&qp->ref))
			found = qp;
		break;
	}
	spin_unlock_irqrestore(&pfnic_gsi_lock, flags);
	return found;
}

void pfnic_qp_put(struct pfnic_qp *qp)
{
	kref_put(&qp->ref, pfnic_qp_release);
}

/* Reports an asynchronous event of a QP to its consumer, if it listens. */
void pfnic_qp_event(struct pfnic_qp *qp, enum ib_event_type type)
{
	struct ib_event ev = {
		.device = qp->ibqp.device,
		.element.qp = &qp->ibqp,
		.event = type,
	};

	if (qp->ibqp.event_handler)
		qp->ibqp.event_handler(&ev, qp->ibqp.qp_context);
}

/*
 * SQD: the engine starts no new WQE, and the one it may be running completes; once it has
 * stopped the send queue is drained, which the consumer asked to hear about.
 */
static void pfnic_qp_drained(struct work_struct *work)
{
	struct pfnic_qp *qp = container_of(work, struct pfnic_qp, drain_work);

	flush_work(&qp->work);
	/* ... and a doorbell that runs it in its poster's context (pfnic_engine_drive()) */
	wait_event(qp->idle, !READ_ONCE(qp->running));
	if (READ_ONCE(qp->attr.qp_state) == IB_QPS_SQD)
		pfnic_qp_event(qp, IB_EVENT_SQ_DRAINED);
}

/* Completes, from the engine's queue, what a kernel consumer posted to a QP in error. */
static void pfnic_qp_flush_work(struct work_struct *work)
{
	pfnic_qp_flush(container_of(work, struct pfnic_qp, flush_work));
}

/**
 * pfnic_qp_set_state() - a QP's state, as the verbs see it and as its rings show it
 * @qp: the QP; the caller holds its lock
 * @state: the new state
 *
 * A user QP's rings carry the state for the provider, which rings a doorbell for a receive
 * posted in the error state (nothing else would flush it).
 */
void pfnic_qp_set_state(struct pfnic_qp *qp, enum ib_qp_state state)
{
	lockdep_assert_held(&qp->lock);
	qp->attr.qp_state = state;
	if (qp->sq.shared)
		WRITE_ONCE(qp->sq.shared->qp_state, state);
	if (qp->rq.shared)
		WRITE_ONCE(qp->rq.shared->qp_state, state);
	if (!qp->sq.shared || (state != IB_QPS_ERR && state != IB_QPS_RESET))
		return;
	/*
	 * Whoever stops the engine now (the error state, a reset) leaves nothing parked that
	 * would look at the ring later: the provider rings for what it posts next.
	 */
	WRITE_ONCE(qp->sq.shared->engine_idle, 1);
	/*
	 * The state before the flush's look at the producers, as the provider orders its
	 * producer store before its look at the state: either the flush sees a WQE posted now,
	 * or its poster sees the error state and rings the doorbell, which flushes it.
	 */
	smp_mb();
}

/* Makes @qp its device's QP1. Return: 0, or -EBUSY if the device has one. */
static int pfnic_gsi_add(struct pfnic_qp *qp)
{
	struct pfnic_qp *other;

	spin_lock_irq(&pfnic_gsi_lock);
	list_for_each_entry(other, &pfnic_gsi_qps, gsi_entry) {
		if (other->pfnic == qp->pfnic) {
			spin_unlock_irq(&pfnic_gsi_lock);
			return -EBUSY;
		}
	}
	list_add_tail(&qp->gsi_entry, &pfnic_gsi_qps);
	spin_unlock_irq(&pfnic_gsi_lock);
	return 0;
}

/* The largest message a send WQE of @sq carries inline: what its stride leaves of the SGEs. */
static u32 pfnic_inline_room(const struct pfnic_wq *sq)
{
	return min_t(size_t, PFNIC_MAX_INLINE,
		     sq->stride - struct_size((struct pfnic_wqe *)NULL, sge, 0));
}

/*
 * A user QP's rings, mapped by its process, and the response that says where they are. The
 * inline data a WQE holds is what was asked for or what the SGEs' room holds, whichever is
 * larger (at most PFNIC_MAX_INLINE), as mlx5 reports it.
 */
static int pfnic_qp_user_rings(struct pfnic_qp *qp, struct ib_qp_init_attr *init,
			       struct ib_udata *udata)
{
	struct pfnic_ucontext *uc = rdma_udata_to_drv_context(udata, struct pfnic_ucontext, ibuc);
	struct ib_qp_cap *cap = &init->cap;
	struct pfnic_create_qp_resp resp = {};
	int rv;

	qp->max_inline = min_t(u32, PFNIC_MAX_INLINE,
			       max_t(u32, cap->max_inline_data,
				     cap->max_send_sge * sizeof(struct pfnic_sge)));
	rv = pfnic_wq_init_user(&qp->sq, &uc->ibuc, cap->max_send_wr, cap->max_send_sge,
				qp->max_inline, true, &resp.sq);
	if (rv)
		return rv;
	if (!init->srq && init->qp_type != IB_QPT_XRC_INI) {
		rv = pfnic_wq_init_user(&qp->rq, &uc->ibuc, cap->max_recv_wr, cap->max_recv_sge,
					0, false, &resp.rq);
		if (rv)
			return rv;
		cap->max_recv_wr = qp->rq.size;
	}
	cap->max_send_wr = qp->sq.size;
	cap->max_inline_data = qp->max_inline;
	resp.max_inline = qp->max_inline;
	return ib_copy_to_udata(udata, &resp, sizeof(resp));
}

/* A kernel consumer's queues, in kernel memory. */
static int pfnic_qp_kernel_queues(struct pfnic_qp *qp, struct ib_qp_init_attr *init)
{
	struct ib_qp_cap *cap = &init->cap;
	int rv;

	rv = pfnic_wq_init(&qp->sq, cap->max_send_wr, cap->max_send_sge, cap->max_inline_data);
	if (rv)
		return rv;
	/* what the queue has room for, as mlx5 reports it: at least what was asked */
	qp->max_inline = pfnic_inline_room(&qp->sq);
	cap->max_inline_data = qp->max_inline;
	if (init->srq)
		return 0;
	return pfnic_wq_init(&qp->rq, cap->max_recv_wr, cap->max_recv_sge, 0);
}

/* Frees what creating a QP allocated, as far as it got. */
static void pfnic_qp_free(struct pfnic_qp *qp)
{
	kfree(qp->srq_wqe);
	kfree(qp->wire.rwqe);
	kvfree(qp->wire.ahead_wqes);
	kfree(qp->rcur);
	kfree(qp->cur);
	pfnic_wq_destroy(&qp->rq);
	pfnic_wq_destroy(&qp->sq);
	pfnic_obj_drop(qp->pfnic, PFNIC_OBJ_QP);
}

/**
 * pfnic_create_qp() - an RC, UD or GSI QP
 * @ibqp: the QP the core allocated
 * @init: its type, CQs, SRQ and capabilities (which are updated to what it got)
 * @udata: a user QP's: no request; the response is struct pfnic_create_qp_resp
 *
 * Return: 0; -EOPNOTSUPP for another type or creation flags; -EINVAL for capabilities out
 * of bounds, a GSI QP not the kernel's, or private data of the wrong size; -ENOMEM; the
 * device's QP limit's error (pfnic_obj_take()).
 */
int pfnic_create_qp(struct ib_qp *ibqp, struct ib_qp_init_attr *init, struct ib_udata *udata)
{
	struct pfnic_qp *qp = to_pfnic_qp(ibqp);
	struct ib_qp_cap *cap = &init->cap;
	bool xrc = init->qp_type == IB_QPT_XRC_INI || init->qp_type == IB_QPT_XRC_TGT;
	bool tgt = init->qp_type == IB_QPT_XRC_TGT;
	size_t cur_size;
	u32 qpn;
	int rv;

	if ((init->qp_type != IB_QPT_RC && init->qp_type != IB_QPT_UC &&
	     init->qp_type != IB_QPT_UD && init->qp_type != IB_QPT_GSI && !xrc) ||
	    init->create_flags)
		return -EOPNOTSUPP;
	/*
	 * QP1 is the kernel's MAD layer's (uverbs never asks for one). XRC is user space's: an
	 * INI QP comes with its process's udata, a TGT QP without (the core owns it, and
	 * shares it among the processes that open it).
	 */
	if ((init->qp_type == IB_QPT_GSI && (udata || init->port_num != PFNIC_PORT)) ||
	    (init->qp_type == IB_QPT_XRC_INI && !udata))
		return -EINVAL;
	/*
	 * With an SRQ, the QP has no receive queue of its own; an XRC INI QP only sends, a TGT
	 * QP only receives, into the XRC SRQs its messages name.
	 */
	if (init->srq || xrc) {
		cap->max_recv_wr = 0;
		cap->max_recv_sge = 0;
	}
	if (tgt)
		memset(cap, 0, sizeof(*cap));
	if ((!tgt && !cap->max_send_wr) || cap->max_send_wr > PFNIC_MAX_QP_WR ||
	    (!init->srq && !xrc && !cap->max_recv_wr) || cap->max_recv_wr > PFNIC_MAX_QP_WR ||
	    cap->max_send_sge > PFNIC_MAX_SGE || cap->max_recv_sge > PFNIC_MAX_SGE ||
	    cap->max_inline_data > PFNIC_MAX_INLINE)
		return -EINVAL;
	if (udata && (udata->inlen || udata->outlen < sizeof(struct pfnic_create_qp_resp)))
		return -EINVAL;

	qp->pfnic = to_pfnic_dev(ibqp->device);
	rv = pfnic_obj_take(qp->pfnic, PFNIC_OBJ_QP);
	if (rv)
		return rv;
	kref_init(&qp->ref);
	init_completion(&qp->done);
	spin_lock_init(&qp->lock);
	init_waitqueue_head(&qp->idle);
	mutex_init(&qp->deliver_lock);
	INIT_WORK(&qp->work, pfnic_engine_run);
	INIT_DELAYED_WORK(&qp->rnr_work, pfnic_engine_rnr_retry);
	INIT_WORK(&qp->fault_work, pfnic_engine_fault);
	INIT_WORK(&qp->drain_work, pfnic_qp_drained);
	INIT_WORK(&qp->flush_work, pfnic_qp_flush_work);
	INIT_LIST_HEAD(&qp->gsi_entry);
	INIT_LIST_HEAD(&qp->poll_entry);
	skb_queue_head_init(&qp->wire.acks);
	skb_queue_head_init(&qp->wire.rxq);
	INIT_WORK(&qp->wire.rx_work, pfnic_wire_rx_work);
	INIT_WORK(&qp->wire.fault_work, pfnic_wire_fault_work);
	/* no message open: a responder takes a first or only packet next */
	qp->wire.last_op = PFNIC_OP_SEND_ONLY;
	qp->attr.qp_state = IB_QPS_RESET;
	qp->attr.path_mtu = IB_MTU_1024;
	qp->attr.port_num = PFNIC_PORT;
	qp->sig_all = init->sq_sig_type == IB_SIGNAL_ALL_WR;
	if (!tgt)
		cap->max_send_sge = max_t(u32, cap->max_send_sge, 1);
	if (!init->srq && !xrc)
		cap->max_recv_sge = max_t(u32, cap->max_recv_sge, 1);
	if (init->srq || tgt) {
		qp->srq = init->srq ? to_pfnic_srq(init->srq) : NULL;
		qp->srq_wqe = kzalloc(struct_size(qp->srq_wqe, sge, PFNIC_MAX_SGE),
				      GFP_KERNEL_ACCOUNT);
		if (!qp->srq_wqe) {
			rv = -ENOMEM;
			goto err_free;
		}
	}

	if (tgt)
		rv = 0;
	else if (udata)
		rv = pfnic_qp_user_rings(qp, init, udata);
	else
		rv = pfnic_qp_kernel_queues(qp, init);
	if (rv)
		goto err_free;
	/* the engine's copy of a send WQE: a whole slot of the send queue */
	cur_size = max(struct_size(qp->cur, sge, PFNIC_MAX_SGE), qp->sq.stride);
	qp->cur = kzalloc(cur_size, GFP_KERNEL_ACCOUNT);
	qp->cur_size = cur_size;
	qp->rcur = kzalloc(struct_size(qp->rcur, sge, PFNIC_MAX_SGE), GFP_KERNEL_ACCOUNT);
	qp->wire.rwqe = kzalloc(struct_size(qp->wire.rwqe, sge, PFNIC_MAX_SGE),
				GFP_KERNEL_ACCOUNT);
	if (!qp->cur || !qp->rcur || !qp->wire.rwqe) {
		rv = -ENOMEM;
		goto err_free;
	}
	qp->incarnation = atomic64_inc_return(&pfnic_qp_incarnations);
	if (init->qp_type == IB_QPT_GSI) {
		ibqp->qp_num = PFNIC_GSI_QPN;
		rv = pfnic_gsi_add(qp);
		if (rv)
			goto err_free;
		return 0;
	}
	rv = xa_alloc_cyclic_irq(&pfnic_qps, &qpn, NULL,
				 XA_LIMIT(PFNIC_FIRST_QPN, (1 << 24) - 1), &pfnic_qpn_next,
				 GFP_KERNEL);
	if (rv < 0)
		goto err_free;
	ibqp->qp_num = qpn;
	xa_store_irq(&pfnic_qps, qpn, qp, GFP_KERNEL);
	return 0;

err_free:
	pfnic_qp_free(qp);
	return rv;
}

int pfnic_destroy_qp(struct ib_qp *ibqp, struct ib_udata *udata)
{
	struct pfnic_qp *qp = to_pfnic_qp(ibqp);

	/*
	 * In the error state, with the send queue's generation moved on, the engine queues no
	 * more work for this QP: a WQE it is running is dropped when it returns.
	 */
	spin_lock_irq(&qp->lock);
	pfnic_qp_set_state(qp, IB_QPS_ERR);
	qp->sq.gen++;
	spin_unlock_irq(&qp->lock);

	/* no datagram to a group finds it any more */
	if (ibqp->qp_type == IB_QPT_UD)
		pfnic_mcast_forget(qp);
	/* no new lookups by peers, and none left (a peer's post_recv may kick our RNR timer) */
	if (ibqp->qp_type == IB_QPT_GSI) {
		spin_lock_irq(&pfnic_gsi_lock);
		list_del(&qp->gsi_entry);
		spin_unlock_irq(&pfnic_gsi_lock);
	} else {
		xa_erase_irq(&pfnic_qps, ibqp->qp_num);
	}
	pfnic_qp_put(qp);
	wait_for_completion(&qp->done);
	/* each of these can queue only the ones after it */
	cancel_work_sync(&qp->flush_work);
	cancel_work_sync(&qp->drain_work);
	cancel_work_sync(&qp->fault_work);
	cancel_delayed_work_sync(&qp->rnr_work);
	cancel_work_sync(&qp->work);
	/* the responder on the wire can queue its fault, and nothing else */
	cancel_work_sync(&qp->wire.rx_work);
	cancel_work_sync(&qp->wire.fault_work);
	skb_queue_purge(&qp->wire.rxq);
	skb_queue_purge(&qp->wire.acks);

	if (qp->fault.mr)
		pfnic_mr_put(qp->fault.mr);
	if (qp->wire.fault.mr)
		pfnic_mr_put(qp->wire.fault.mr);
	if (qp->wire.met.mr)
		pfnic_mr_put(qp->wire.met.mr);
	/* nothing completes for it any more: a kernel CQ forgets what it holds of it */
	if (ibqp->send_cq)
		pfnic_cq_clean(to_pfnic_cq(ibqp->send_cq), ibqp);
	if (ibqp->recv_cq && ibqp->recv_cq != ibqp->send_cq)
		pfnic_cq_clean(to_pfnic_cq(ibqp->recv_cq), ibqp);
	/* an XRC SRQ whose WQE a TGT QP's message held */
	if (pfnic_qp_xrc_tgt(qp) && qp->srq)
		pfnic_srq_put(qp->srq);
	pfnic_qp_free(qp);
	return 0;
}

static enum ib_wc_opcode pfnic_wc_opcode(enum ib_wr_opcode opcode)
{
	/* as a number: the atomic write's opcodes are not in every kernel's enums */
	switch ((u32)opcode) {
	case IB_WR_RDMA_WRITE:
	case IB_WR_RDMA_WRITE_WITH_IMM:
		return IB_WC_RDMA_WRITE;
	case IB_WR_RDMA_READ:
		return IB_WC_RDMA_READ;
	case IB_WR_ATOMIC_CMP_AND_SWP:
		return IB_WC_COMP_SWAP;
	case IB_WR_ATOMIC_FETCH_AND_ADD:
		return IB_WC_FETCH_ADD;
	case IB_WR_REG_MR:
		return IB_WC_REG_MR;
	case IB_WR_LOCAL_INV:
		return IB_WC_LOCAL_INV;
	case IB_WR_BIND_MW:
		return IB_WC_BIND_MW;
	case PFNIC_WR_ATOMIC_WRITE:
		return (enum ib_wc_opcode)PFNIC_WC_ATOMIC_WRITE;
	default:
		return IB_WC_SEND;
	}
}

/*
 * Completes a send WQE: always on error, else when the WR asked for it or the QP signals
 * every WR.
 */
void pfnic_qp_complete_send(struct pfnic_qp *qp, const struct pfnic_wqe *wqe,
			    enum ib_wc_status status)
{
	struct ib_wc wc = {
		.wr_id = wqe->wr_id,
		.status = status,
		.opcode = pfnic_wc_opcode(wqe->opcode),
		/* a READ's or an atomic's bytes came back; nothing else reports a length */
		.byte_len = wqe->opcode == IB_WR_RDMA_READ ||
			    wqe->opcode == IB_WR_ATOMIC_CMP_AND_SWP ||
			    wqe->opcode == IB_WR_ATOMIC_FETCH_AND_ADD ? wqe->total_len : 0,
		.qp = &qp->ibqp,
		.port_num = PFNIC_PORT,
	};

	if (status == IB_WC_SUCCESS && !qp->sig_all && !(wqe->send_flags & IB_SEND_SIGNALED))
		return;
	pfnic_cq_complete(to_pfnic_cq(qp->ibqp.send_cq), &wc, false);
}

/**
 * pfnic_qp_flush() - complete every posted WQE of a QP in the error state with
 *		      IB_WC_WR_FLUSH_ERR, send queue first
 * @qp: the QP; the caller holds none of its locks
 *
 * A WQE whose buffers an engine is still using (the send queue's head while @qp->sq_busy,
 * the receive WQE being filled while @qp->rq_busy) is left, with those after it in its
 * queue: whoever uses it flushes it, and the rest, when done (pfnic_engine_run(),
 * pfnic_recv_release()). So a flush completion is never seen before its buffer stopped
 * changing.
 */
void pfnic_qp_flush(struct pfnic_qp *qp)
{
	/* a user ring's producer is the process's: it cannot keep a flush going for ever */
	unsigned int budget = qp->sq.size + qp->rq.size + 2;
	bool last_wqe = false, sq, rq;
	enum ib_wr_opcode opcode;
	unsigned int signal;
	struct pfnic_cq *cq;
	struct ib_wc wc;

	while (budget--) {
		memset(&wc, 0, sizeof(wc));
		spin_lock_irq(&qp->lock);
		/* the engine's WQE is the one it took in this generation: a reset frees the rest */
		sq = pfnic_wq_count(&qp->sq) && !(qp->sq_busy && qp->wqe_gen == qp->sq.gen);
		rq = (qp->srq_held || (!qp->srq && pfnic_wq_count(&qp->rq))) && !qp->rq_busy;
		if (qp->attr.qp_state != IB_QPS_ERR || (!sq && !rq)) {
			/* an SRQ's consumer learns that no WQE of it is held by this QP */
			if (qp->attr.qp_state == IB_QPS_ERR && qp->srq && !qp->srq_held &&
			    !qp->last_wqe && !pfnic_qp_xrc_tgt(qp)) {
				qp->last_wqe = true;
				last_wqe = true;
			}
			spin_unlock_irq(&qp->lock);
			break;
		}
		if (sq) {
			wc.wr_id = pfnic_wq_head_id(&qp->sq, true, &opcode);
			wc.opcode = pfnic_wc_opcode(opcode);
			cq = to_pfnic_cq(qp->ibqp.send_cq);
			pfnic_wq_pop(&qp->sq);
			qp->sq.gen++;
		} else if (qp->srq_held) {
			/* the SRQ's WQE a message was arriving into */
			wc.wr_id = qp->srq_wqe->wr_id;
			wc.opcode = IB_WC_RECV;
			cq = pfnic_recv_cq(qp);
			qp->srq_held = false;
			qp->rq.gen++;
		} else {
			wc.wr_id = pfnic_wq_head_id(&qp->rq, false, NULL);
			wc.opcode = IB_WC_RECV;
			cq = to_pfnic_cq(qp->ibqp.recv_cq);
			pfnic_wq_pop(&qp->rq);
			qp->rq.gen++;
		}
		/* queued under the QP's lock: concurrent flushes complete in queue order */
		wc.status = IB_WC_WR_FLUSH_ERR;
		wc.qp = &qp->ibqp;
		signal = pfnic_cq_push(cq, &wc, false);
		spin_unlock_irq(&qp->lock);
		pfnic_cq_signal(cq, signal);
	}
	if (last_wqe)
		pfnic_qp_event(qp, IB_EVENT_QP_LAST_WQE_REACHED);
}

/* The attribute checks the spec leaves to the device: ranges and this device's limits. */
static int pfnic_check_qp_attr(struct pfnic_qp *qp, const struct ib_qp_attr *attr, int mask)
{
	if ((mask & IB_QP_PORT) && attr->port_num != PFNIC_PORT)
		return -EINVAL;
	if ((mask & IB_QP_PKEY_INDEX) && attr->pkey_index)
		return -EINVAL;
	if ((mask & IB_QP_PATH_MTU) &&
	    (attr->path_mtu < IB_MTU_256 || attr->path_mtu > IB_MTU_4096))
		return -EINVAL;
	if ((mask & IB_QP_MAX_QP_RD_ATOMIC) && attr->max_rd_atomic > PFNIC_MAX_RD_ATOM)
		return -EINVAL;
	if ((mask & IB_QP_MAX_DEST_RD_ATOMIC) && attr->max_dest_rd_atomic > PFNIC_MAX_RD_ATOM)
		return -EINVAL;
	if ((mask & IB_QP_RETRY_CNT) && attr->retry_cnt > 7)
		return -EINVAL;
	if ((mask & IB_QP_RNR_RETRY) && attr->rnr_retry > 7)
		return -EINVAL;
	if ((mask & IB_QP_MIN_RNR_TIMER) && attr->min_rnr_timer > 31)
		return -EINVAL;
	if ((mask & IB_QP_TIMEOUT) && attr->timeout > 31)
		return -EINVAL;
	if ((mask & IB_QP_DEST_QPN) && attr->dest_qp_num >= (1 << 24))
		return -EINVAL;
	if ((mask & IB_QP_AV) && !(rdma_ah_get_ah_flags(&attr->ah_attr) & IB_AH_GRH))
		return -EINVAL;
	return 0;
}

int pfnic_modify_qp(struct ib_qp *ibqp, struct ib_qp_attr *attr, int mask,
		    struct ib_udata *udata)
{
	struct pfnic_qp *qp = to_pfnic_qp(ibqp), *peer;
	enum ib_qp_state cur, next;
	bool flush = false, kick = false, drain = false, reset = false;
	u64 peer_incarnation = 0;
	union ib_gid sgid = {};
	bool remote = false;
	int rv;

	if (udata && (udata->inlen || udata->outlen))
		return -EINVAL;
	rv = pfnic_check_qp_attr(qp, attr, mask);
	if (rv)
		return rv;
	/* the QP that has the peer's number now is the one this connection is to */
	if (mask & IB_QP_DEST_QPN) {
		peer = pfnic_qp_get(attr->dest_qp_num);
		if (peer) {
			peer_incarnation = peer->incarnation;
			pfnic_qp_put(peer);
		}
	}

	/* a peer no pfnic device of this kernel has is another host's: the wire */
	if ((mask & IB_QP_AV) && pfnic_qp_connected(qp)) {
		const struct ib_gid_attr *gattr = attr->ah_attr.grh.sgid_attr;

		remote = !pfnic_gid_local(&attr->ah_attr.grh.dgid, dev_net(qp->pfnic->ndev));
		if (gattr) {
			sgid = gattr->gid;
		} else {
			gattr = rdma_get_gid_attr(ibqp->device, PFNIC_PORT,
						  attr->ah_attr.grh.sgid_index);
			if (IS_ERR(gattr))
				return -EINVAL;
			sgid = gattr->gid;
			rdma_put_gid_attr(gattr);
		}
	}
	/* room for the WQEs an RC requester sends ahead on the wire: made once, kept */
	if (remote && ibqp->qp_type == IB_QPT_RC && !READ_ONCE(qp->wire.ahead_wqes)) {
		u8 *ahead = kvcalloc(PFNIC_WIRE_AHEAD, qp->cur_size, GFP_KERNEL_ACCOUNT);

		if (ahead && cmpxchg(&qp->wire.ahead_wqes, NULL, ahead))
			kvfree(ahead);
	}

	spin_lock_irq(&qp->lock);
	cur = (mask & IB_QP_CUR_STATE) ? attr->cur_qp_state : qp->attr.qp_state;
	next = (mask & IB_QP_STATE) ? attr->qp_state : cur;
	if (cur != qp->attr.qp_state ||
	    !ib_modify_qp_is_ok(cur, next, ibqp->qp_type, (enum ib_qp_attr_mask)mask)) {
		spin_unlock_irq(&qp->lock);
		return -EINVAL;
	}

	/*
	 * Only the remote rights mean anything to a QP. Programs pass their MRs' flags here
	 * too (LOCAL_WRITE, ON_DEMAND, ...), which mlx5 and rxe ignore: so does pfnic.
	 */
	if (mask & IB_QP_ACCESS_FLAGS)
		qp->attr.qp_access_flags = attr->qp_access_flags &
			(IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC);
	if (mask & IB_QP_QKEY)
		qp->attr.qkey = attr->qkey;
	if (mask & IB_QP_PKEY_INDEX)
		qp->attr.pkey_index = attr->pkey_index;
	if (mask & IB_QP_PORT)
		qp->attr.port_num = attr->port_num;
	if (mask & IB_QP_AV) {
		qp->attr.ah_attr = attr->ah_attr;
		/* the core holds that reference only for the call */
		qp->attr.ah_attr.grh.sgid_attr = NULL;
		WRITE_ONCE(qp->wire.remote, remote);
		qp->wire.sgid = sgid;
		qp->wire.dgid = attr->ah_attr.grh.dgid;
		qp->wire.sport = pfnic_flow_port(ibqp->qp_num);
	}
	if (mask & IB_QP_PATH_MTU)
		qp->attr.path_mtu = attr->path_mtu;
	if (mask & IB_QP_TIMEOUT)
		qp->attr.timeout = attr->timeout;
	if (mask & IB_QP_RETRY_CNT)
		qp->attr.retry_cnt = attr->retry_cnt;
	if (mask & IB_QP_RNR_RETRY)
		qp->attr.rnr_retry = attr->rnr_retry;
	if (mask & IB_QP_RQ_PSN) {
		qp->attr.rq_psn = attr->rq_psn;
		/* a responder starts afresh at its first PSN */
		qp->wire.epsn = attr->rq_psn & PFNIC_PSN_MASK;
		qp->wire.msn = 0;
		qp->wire.nak_sent = false;
		qp->wire.last_op = PFNIC_OP_SEND_ONLY;
		memset(qp->wire.atomics, 0, sizeof(qp->wire.atomics));
		qp->wire.fault_failed = false;
		qp->wire.rd_active = false;
		qp->wire.ack_owed = false;
	}
	if (mask & IB_QP_MAX_QP_RD_ATOMIC)
		qp->attr.max_rd_atomic = attr->max_rd_atomic;
	if (mask & IB_QP_MIN_RNR_TIMER)
		qp->attr.min_rnr_timer = attr->min_rnr_timer;
	if (mask & IB_QP_SQ_PSN) {
		qp->attr.sq_psn = attr->sq_psn;
		qp->wire.next_psn = attr->sq_psn & PFNIC_PSN_MASK;
	}
	/* on the wire, a packet of the path MTU with its headers must fit the netdev's MTU */
	qp->wire.mtu = min(ib_mtu_enum_to_int(qp->attr.path_mtu),
			   ib_mtu_enum_to_int(ib_mtu_int_to_enum(READ_ONCE(qp->pfnic->ndev->mtu) -
							   PFNIC_WIRE_HEADROOM)));
	if (mask & IB_QP_MAX_DEST_RD_ATOMIC)
		qp->attr.max_dest_rd_atomic = attr->max_dest_rd_atomic;
	if (mask & IB_QP_DEST_QPN) {
		qp->attr.dest_qp_num = attr->dest_qp_num;
		WRITE_ONCE(qp->peer_incarnation, peer_incarnation);
	}
	if (mask & IB_QP_EN_SQD_ASYNC_NOTIFY)
		qp->attr.en_sqd_async_notify = attr->en_sqd_async_notify;

	switch (next) {
	case IB_QPS_RESET:
		/* back to nothing: posted WQEs are dropped without completions */
		pfnic_wq_reset(&qp->sq);
		pfnic_wq_reset(&qp->rq);
		qp->sq.gen++;
		qp->rq.gen++;
		qp->fault_status = 0;
		/* the WQE a retry timer was set for is gone: the timer finds nothing to wait for */
		qp->retry_wait = false;
		qp->wire.waiting = false;
		qp->wire.started = false;
		qp->wire.rd_active = false;
		/* as the QP's own receive WQEs, one taken from its SRQ goes without completion */
		qp->srq_held = false;
		qp->last_wqe = false;
		reset = true;
		break;
	case IB_QPS_ERR:
		flush = true;
		break;
	case IB_QPS_RTS:
		kick = pfnic_wq_count(&qp->sq) && !qp->stalled;
		qp->rnr_left = qp->attr.rnr_retry;
		qp->retry_left = qp->attr.retry_cnt;
		break;
	case IB_QPS_SQD:
		drain = cur == IB_QPS_RTS && qp->attr.en_sqd_async_notify;
		break;
	default:
		break;
	}
	pfnic_qp_set_state(qp, next);
	spin_unlock_irq(&qp->lock);

	if (flush)
		pfnic_qp_flush(qp);
	/* what the wire brought for the QP's last life */
	if (reset) {
		skb_queue_purge(&qp->wire.acks);
		skb_queue_purge(&qp->wire.rxq);
	}
	/*
	 * A QP in RESET has no completions left in its CQs, as on mlx5: a program that moves a
	 * failed QP back up finds none of its flushed ones (a kernel QP on an SRQ keeps them:
	 * its receives took WQEs the SRQ cannot have back). A user CQ's provider cleans its
	 * ring itself, under its own lock, as mlx5's does.
	 */
	if (reset && !qp->srq && ibqp->send_cq) {
		pfnic_cq_clean(to_pfnic_cq(ibqp->send_cq), ibqp);
		if (ibqp->recv_cq && ibqp->recv_cq != ibqp->send_cq)
			pfnic_cq_clean(to_pfnic_cq(ibqp->recv_cq), ibqp);
	}
	if (kick)
		queue_work(pfnic_wq, &qp->work);
	if (drain)
		queue_work(pfnic_wq, &qp->drain_work);
	return 0;
}

int pfnic_query_qp(struct ib_qp *ibqp, struct ib_qp_attr *attr, int mask,
		   struct ib_qp_init_attr *init)
{
	struct pfnic_qp *qp = to_pfnic_qp(ibqp);

	spin_lock_irq(&qp->lock);
	*attr = qp->attr;
	spin_unlock_irq(&qp->lock);
	attr->cur_qp_state = attr->qp_state;

	memset(init, 0, sizeof(*init));
	init->qp_type = ibqp->qp_type;
	init->send_cq = ibqp->send_cq;
	init->recv_cq = ibqp->recv_cq;
	init->sq_sig_type = qp->sig_all ? IB_SIGNAL_ALL_WR : IB_SIGNAL_REQ_WR;
	init->cap.max_send_wr = qp->sq.size;
	init->cap.max_recv_wr = qp->rq.size;
	init->cap.max_send_sge = qp->sq.max_sge;
	init->cap.max_recv_sge = qp->rq.max_sge;
	init->cap.max_inline_data = qp->max_inline;
	attr->cap = init->cap;
	return 0;
}

/* The bytes a send WR's SGEs name. */
static u64 pfnic_wr_len(const struct ib_send_wr *wr)
{
	u64 len = 0;
	int i;

	for (i = 0; i < wr->num_sge; i++)
		len += wr->sg_list[i].length;
	return len;
}

static int pfnic_check_send_wr(struct pfnic_qp *qp, const struct ib_send_wr *wr)
{
	bool datagram = !pfnic_qp_connected(qp);
	bool rc = qp->ibqp.qp_type == IB_QPT_RC;

	/* UD sends datagrams, to an address handle of the QP's device */
	if (datagram &&
	    ((wr->opcode != IB_WR_SEND && wr->opcode != IB_WR_SEND_WITH_IMM) || !ud_wr(wr)->ah ||
	     ud_wr(wr)->ah->device != qp->ibqp.device))
		return -EINVAL;
	switch (wr->opcode) {
	case IB_WR_SEND:
	case IB_WR_SEND_WITH_IMM:
	case IB_WR_RDMA_WRITE:
	case IB_WR_RDMA_WRITE_WITH_IMM:
	case IB_WR_LOCAL_INV:
		break;
	case IB_WR_SEND_WITH_INV:
	case IB_WR_RDMA_READ:
		/* UC has no SEND with Invalidate on the wire, and no responder resources */
		if (!rc)
			return -EINVAL;
		break;
	case IB_WR_REG_MR:
		/* a kernel consumer's (uverbs has no such WR: its layout would not be this) */
		if (qp->ibqp.uobject || !reg_wr(wr)->mr ||
		    reg_wr(wr)->mr->device != qp->ibqp.device)
			return -EINVAL;
		break;
	case IB_WR_ATOMIC_CMP_AND_SWP:
	case IB_WR_ATOMIC_FETCH_AND_ADD:
		/* the original value comes back into one 8-byte buffer */
		if (!rc || wr->num_sge != 1 || wr->sg_list[0].length != sizeof(u64))
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	if (wr->num_sge < 0)
		return -EINVAL;
	if ((wr->send_flags & IB_SEND_INLINE) && pfnic_inline_opcode(wr->opcode))
		return pfnic_wr_len(wr) > qp->max_inline ? -EINVAL : 0;
	if (wr->num_sge > qp->sq.max_sge)
		return -EINVAL;
	/* a message longer than max_msg_sz is refused, as rxe refuses it */
	if (pfnic_wr_len(wr) > PFNIC_MAX_MSG_SZ)
		return -EINVAL;
	return 0;
}

void pfnic_wqe_fill(struct pfnic_wqe *wqe, u64 wr_id, const struct ib_sge *sg, int num_sge)
{
	int i;

	wqe->wr_id = wr_id;
	wqe->num_sge = num_sge;
	wqe->total_len = 0;
	for (i = 0; i < num_sge; i++) {
		wqe->sge[i] = sg[i];
		wqe->total_len += sg[i].length;
	}
}

/*
 * Inline data of a user QP's WRs names the poster's own memory: the uverbs command that
 * posts them runs in its process, which may sleep, where the post itself (under the QP's
 * lock) may not. So it is copied in first, each WR's after the last's. Return: the copy
 * (NULL if there was no inline data), or an ERR_PTR (-EFAULT, -ENOMEM) with *@bad at the
 * first WR that could not be copied (those before it may still be posted).
 */
static u8 *pfnic_stage_inline(struct pfnic_qp *qp, const struct ib_send_wr *wr,
			      const struct ib_send_wr **bad)
{
	const struct ib_send_wr *w;
	size_t total = 0, at = 0;
	u8 *buf;
	int i;

	*bad = NULL;
	if (!qp->ibqp.uobject)
		return NULL;	/* a kernel consumer's addresses are the kernel's: read at post */
	for (w = wr; w; w = w->next)
		if ((w->send_flags & IB_SEND_INLINE) && pfnic_inline_opcode(w->opcode) &&
		    !pfnic_check_send_wr(qp, w))
			total += pfnic_wr_len(w);
	if (!total)
		return NULL;
	buf = kvmalloc(total, GFP_KERNEL);
	if (!buf) {
		*bad = wr;
		return ERR_PTR(-ENOMEM);
	}
	for (w = wr; w; w = w->next) {
		if (!(w->send_flags & IB_SEND_INLINE) || !pfnic_inline_opcode(w->opcode) ||
		    pfnic_check_send_wr(qp, w))
			continue;
		for (i = 0; i < w->num_sge; i++) {
			const void __user *from = u64_to_user_ptr(w->sg_list[i].addr);

			if (copy_from_user(buf + at, from, w->sg_list[i].length)) {
				*bad = w;
				return buf;
			}
			at += w->sg_list[i].length;
		}
	}
	return buf;
}

/*
 * Copies a WR's inline data into its WQE: from @staged (advanced past it) for a user QP,
 * from the kernel addresses of its SGEs for a kernel consumer's.
 */
static void pfnic_fill_inline(struct pfnic_wqe *wqe, const struct ib_send_wr *wr,
			      const u8 **staged)
{
	u8 *to = pfnic_wqe_inline(wqe);
	u64 len = pfnic_wr_len(wr);
	int i;

	wqe->wr_id = wr->wr_id;
	wqe->num_sge = 0;
	wqe->total_len = len;
	if (*staged) {
		memcpy(to, *staged, len);
		*staged += len;
		return;
	}
	for (i = 0; i < wr->num_sge; i++) {
		memcpy(to, (void *)(uintptr_t)wr->sg_list[i].addr, wr->sg_list[i].length);
		to += wr->sg_list[i].length;
	}
}

/*
 * Completes what was posted to a QP in the error state: at once for a user QP (its process
 * may poll right after the post), from the engine's queue for a kernel consumer's, whose
 * post may come from a completion handler or under locks that handler takes.
 */
static void pfnic_qp_flush_posted(struct pfnic_qp *qp)
{
	if (qp->ibqp.uobject)
		pfnic_qp_flush(qp);
	else
		queue_work(pfnic_wq, &qp->flush_work);
}

/*
 * A user QP's doorbell (POST_SEND with no work request): the engine runs the send queue in
 * the poster's own context, unless it runs already (then it sees the new WQEs itself); in
 * the error state, what was posted is flushed.
 */
static void pfnic_qp_doorbell(struct pfnic_qp *qp)
{
	pfnic_stat_add(qp->pfnic, PFNIC_STAT_DOORBELLS, 1);
	if (READ_ONCE(qp->attr.qp_state) == IB_QPS_ERR)
		pfnic_qp_flush(qp);
	else
		pfnic_engine_drive(qp);
}

/**
 * pfnic_post_send() - post send WRs (a kernel consumer's), or ring a user QP's doorbell
 * @ibqp: the QP
 * @wr: the WRs; none for a doorbell
 * @bad_wr: set to the first WR not posted
 *
 * A user QP's WQEs are in its ring (uapi/pfnic-abi.h): a work request given here for one
 * is refused with -EINVAL; none is its doorbell.
 *
 * Return: 0; -EINVAL for a WR the QP cannot take or a QP not yet in RTS; -ENOMEM for a
 * full send queue; -EFAULT for inline data that could not be read.
 */
int pfnic_post_send(struct ib_qp *ibqp, const struct ib_send_wr *wr,
		    const struct ib_send_wr **bad_wr)
{
	struct pfnic_qp *qp = to_pfnic_qp(ibqp);
	const struct ib_send_wr *stage_bad;
	enum ib_qp_state state;
	const u8 *staged;
	unsigned long flags;
	u8 *stage;
	int rv = 0;

	if (qp->sq.shared) {
		if (wr) {
			*bad_wr = wr;
			return -EINVAL;
		}
		pfnic_qp_doorbell(qp);
		return 0;
	}

	stage = pfnic_stage_inline(qp, wr, &stage_bad);
	if (IS_ERR(stage)) {
		*bad_wr = stage_bad;
		return PTR_ERR(stage);
	}
	staged = stage;
	spin_lock_irqsave(&qp->lock, flags);
	state = qp->attr.qp_state;
	if (state == IB_QPS_RESET || state == IB_QPS_INIT || state == IB_QPS_RTR) {
		spin_unlock_irqrestore(&qp->lock, flags);
		kvfree(stage);
		*bad_wr = wr;
		return -EINVAL;
	}
	for (; wr; wr = wr->next) {
		struct pfnic_wqe *wqe;

		rv = pfnic_check_send_wr(qp, wr);
		if (!rv && wr == stage_bad)
			rv = -EFAULT;
		if (!rv && pfnic_wq_count(&qp->sq) == qp->sq.size)
			rv = -ENOMEM;
		if (rv)
			break;
		wqe = pfnic_wq_entry(&qp->sq, qp->sq.head + qp->sq.count);
		wqe->opcode = wr->opcode;
		wqe->send_flags = wr->send_flags;
		if (!pfnic_inline_opcode(wr->opcode))
			wqe->send_flags &= ~IB_SEND_INLINE;
		if (wqe->send_flags & IB_SEND_INLINE)
			pfnic_fill_inline(wqe, wr, &staged);
		else
			pfnic_wqe_fill(wqe, wr->wr_id, wr->sg_list, wr->num_sge);
		wqe->imm_data = wr->ex.imm_data;
		wqe->invalidate_rkey = 0;
		switch (wr->opcode) {
		case IB_WR_SEND_WITH_INV:
		case IB_WR_LOCAL_INV:
			wqe->invalidate_rkey = wr->ex.invalidate_rkey;
			break;
		case IB_WR_REG_MR:
			wqe->num_sge = 0;
			wqe->total_len = 0;
			wqe->reg_index = reg_wr(wr)->mr->lkey >> 8;
			wqe->reg_mr = reg_wr(wr)->mr;
			wqe->reg_key = reg_wr(wr)->key;
			wqe->reg_access = reg_wr(wr)->access;
			break;
		default:
			break;
		}
		if (wr->opcode == IB_WR_RDMA_WRITE || wr->opcode == IB_WR_RDMA_WRITE_WITH_IMM ||
		    wr->opcode == IB_WR_RDMA_READ) {
			wqe->remote_addr = rdma_wr(wr)->remote_addr;
			wqe->rkey = rdma_wr(wr)->rkey;
		} else if (!pfnic_qp_connected(qp)) {
			const struct pfnic_ah *ah = to_pfnic_ah(ud_wr(wr)->ah);

			wqe->dgid = ah->dgid;
			wqe->sgid_index = ah->sgid_index;
			wqe->remote_qpn = ud_wr(wr)->remote_qpn;
			wqe->remote_qkey = ud_wr(wr)->remote_qkey;
		} else if (wr->opcode == IB_WR_ATOMIC_CMP_AND_SWP ||
			   wr->opcode == IB_WR_ATOMIC_FETCH_AND_ADD) {
			wqe->remote_addr = atomic_wr(wr)->remote_addr;
			wqe->rkey = atomic_wr(wr)->rkey;
			wqe->compare_add = atomic_wr(wr)->compare_add;
			wqe->swap = atomic_wr(wr)->swap;
		}
		qp->sq.count++;
	}
	spin_unlock_irqrestore(&qp->lock, flags);
	kvfree(stage);
	if (rv)
		*bad_wr = wr;

	if (state == IB_QPS_ERR)
		pfnic_qp_flush_posted(qp);	/* posted to a QP in error: flushed at once */
	else
		queue_work(pfnic_wq, &qp->work);
	return rv;
}

int pfnic_post_recv(struct ib_qp *ibqp, const struct ib_recv_wr *wr,
		    const struct ib_recv_wr **bad_wr)
{
	struct pfnic_qp *qp = to_pfnic_qp(ibqp);
	struct pfnic_qp *peer = NULL;
	enum ib_qp_state state;
	unsigned long flags;
	u32 dest;
	int rv = 0;

	/* its receive WQEs go to the SRQ; a user QP's, to its ring */
	if (qp->srq || (qp->rq.shared && wr)) {
		*bad_wr = wr;
		return -EINVAL;
	}
	/* a user QP's doorbell: receives posted in the error state are flushed */
	if (qp->rq.shared) {
		if (READ_ONCE(qp->attr.qp_state) == IB_QPS_ERR)
			pfnic_qp_flush(qp);
		return 0;
	}
	spin_lock_irqsave(&qp->lock, flags);
	state = qp->attr.qp_state;
	dest = qp->attr.dest_qp_num;
	if (state == IB_QPS_RESET) {
		spin_unlock_irqrestore(&qp->lock, flags);
		*bad_wr = wr;
		return -EINVAL;
	}
	for (; wr; wr = wr->next) {
		if (wr->num_sge < 0 || wr->num_sge > qp->rq.max_sge) {
			rv = -EINVAL;
			break;
		}
		if (pfnic_wq_count(&qp->rq) == qp->rq.size) {
			rv = -ENOMEM;
			break;
		}
		pfnic_wqe_fill(pfnic_wq_entry(&qp->rq, qp->rq.head + qp->rq.count), wr->wr_id,
			       wr->sg_list, wr->num_sge);
		qp->rq.count++;
	}
	spin_unlock_irqrestore(&qp->lock, flags);
	if (rv)
		*bad_wr = wr;

	if (state == IB_QPS_ERR) {
		pfnic_qp_flush_posted(qp);
		return rv;
	}
	/*
	 * A peer of this kernel waiting for a receive WQE (RNR) retries now rather than after
	 * its timer; one on another host waits its timer out, as with any NIC.
	 */
	if (state >= IB_QPS_RTR && !READ_ONCE(qp->wire.remote))
		peer = pfnic_qp_get(dest);
	if (peer) {
		if (delayed_work_pending(&peer->rnr_work))
			mod_delayed_work(pfnic_wq, &peer->rnr_work, 0);
		pfnic_qp_put(peer);
	}
	return rv;
}
