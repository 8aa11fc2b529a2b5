// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: the requester (see pfnic_engine.h). It runs each QP's send queue in order, on
 * pfnic_wq or in a doorbell's own context: SEND (with immediate data or invalidation),
 * RDMA_WRITE (with immediate data), RDMA_READ and atomics between any two pfnic QPs of this
 * kernel (RC, UC and XRC in loopback), datagrams on UD and GSI QPs (to one QP, or to the
 * members of a multicast group), and the operations of its own device: IB_WR_REG_MR and
 * IB_WR_LOCAL_INV on kernel consumers' fast-registration MRs, and memory window binds.
 */
#include <rdma/ib_cache.h>

#include "pfnic_engine.h"

/* WQEs one run of a QP's engine completes before it queues itself again. */
#define PFNIC_ENGINE_BUDGET	64

/*
 * The payload of a send WQE (the engine's qp->cur, or one sent ahead on the wire), as its
 * responder reads it: the WQE's SGEs, or for inline data one entry over the data
 * (pfnic_sg_copy() reads it without a key). Return: the entries.
 */
u32 pfnic_req_payload(struct pfnic_wqe *wqe, struct ib_sge *one, const struct ib_sge **sgl)
{
	if (!(wqe->send_flags & IB_SEND_INLINE)) {
		*sgl = wqe->sge;
		return wqe->num_sge;
	}
	one->addr = (uintptr_t)pfnic_wqe_inline(wqe);
	one->length = wqe->total_len;
	one->lkey = 0;
	*sgl = one;
	return 1;
}

/*
 * Whether a GID is one of a pfnic device of this kernel, in @net: its QPs are reached
 * directly; any other GID is another host's, reached over the wire.
 */
bool pfnic_gid_local(const union ib_gid *gid, struct net *net)
{
	struct pfnic_qp *gsi = pfnic_gsi_get(gid, net);

	if (gsi)
		pfnic_qp_put(gsi);
	return gsi;
}

/* Whether two QPs' devices are in one network namespace, where their GIDs reach each other. */
bool pfnic_same_net(struct pfnic_qp *a, struct pfnic_qp *b)
{
	return net_eq(dev_net(a->pfnic->ndev), dev_net(b->pfnic->ndev));
}

/*
 * The connected peer of an RC, UC or XRC INI QP, if it is there and connected back to us: a
 * QP of the same type (an XRC TGT QP for an INI QP), the one each was connected to (its
 * incarnation, not just its number), in the same network namespace.
 */
static struct pfnic_qp *pfnic_peer(struct pfnic_qp *qp)
{
	struct pfnic_qp *peer = pfnic_qp_get(qp->attr.dest_qp_num);
	u64 bound = READ_ONCE(qp->peer_incarnation), back;
	const struct ib_gid_attr *gid;

	if (!peer)
		return NULL;
	back = READ_ONCE(peer->peer_incarnation);
	if (peer->ibqp.qp_type != (qp->ibqp.qp_type == IB_QPT_XRC_INI ? IB_QPT_XRC_TGT :
				   qp->ibqp.qp_type) ||
	    (bound && bound != peer->incarnation) ||
	    (back && back != qp->incarnation) || !pfnic_same_net(qp, peer)) {
		pfnic_qp_put(peer);
		return NULL;
	}
	/* the destination GID must be one of the peer device's */
	gid = rdma_find_gid_by_port(&peer->pfnic->ibdev, &qp->attr.ah_attr.grh.dgid,
				    IB_GID_TYPE_ROCE_UDP_ENCAP, PFNIC_PORT, NULL);
	if (IS_ERR(gid) || READ_ONCE(peer->attr.dest_qp_num) != qp->ibqp.qp_num) {
		if (!IS_ERR(gid))
			rdma_put_gid_attr(gid);
		pfnic_qp_put(peer);
		return NULL;
	}
	rdma_put_gid_attr(gid);
	return peer;
}

/*
 * The requester's own side, checked before anything reaches the responder, as an HCA reads
 * local memory first: every SGE's key, PD, bounds and rights.
 */
static enum ib_wc_status pfnic_check_local(struct pfnic_qp *qp, const struct pfnic_wqe *wqe)
{
	bool writes = wqe->opcode == IB_WR_RDMA_READ || wqe->opcode == IB_WR_ATOMIC_CMP_AND_SWP ||
		      wqe->opcode == IB_WR_ATOMIC_FETCH_AND_ADD;
	int access = writes ? IB_ACCESS_LOCAL_WRITE : 0;
	struct pfnic_mr *mr;
	u32 i;

	/* inline data is in the WQE itself */
	if (wqe->send_flags & IB_SEND_INLINE)
		return IB_WC_SUCCESS;
	for (i = 0; i < wqe->num_sge; i++) {
		if (!wqe->sge[i].length)
			continue;
		mr = pfnic_mr_lookup(wqe->sge[i].lkey, qp->ibqp.pd, wqe->sge[i].addr,
				     wqe->sge[i].length, access);
		if (!mr)
			return IB_WC_LOC_PROT_ERR;
		pfnic_mr_put(mr);
	}
	return IB_WC_SUCCESS;
}

/*
 * Runs qp->cur, an RC, UC or XRC message, against the connected @peer: the WQE's own side
 * first, as an HCA reads local memory before anything goes out (a fault of its own that could
 * not be resolved fails it with LOC_PROT_ERR), then the responder's, then, for CMP_SWP and
 * FETCH_ADD, the original value the responder answered with into the WQE's buffer (which may
 * fault in turn: the WQE then runs again, and the responder answers from its record).
 * Return: as pfnic_resp_message().
 */
static enum pfnic_step pfnic_req_message(struct pfnic_qp *qp, struct pfnic_qp *peer,
					 bool failed, enum ib_wc_status *status)
{
	struct pfnic_wqe *wqe = qp->cur;
	enum pfnic_step step;

	*status = pfnic_check_local(qp, wqe);
	if (*status == IB_WC_SUCCESS && failed && !qp->fault.remote)
		*status = IB_WC_LOC_PROT_ERR;
	if (*status != IB_WC_SUCCESS)
		return PFNIC_DONE;
	step = pfnic_resp_message(qp, peer, failed, status);
	if (step != PFNIC_DONE || *status != IB_WC_SUCCESS ||
	    (wqe->opcode != IB_WR_ATOMIC_CMP_AND_SWP && wqe->opcode != IB_WR_ATOMIC_FETCH_AND_ADD))
		return step;
	return pfnic_put_sgl(qp, &wqe->sge[0], 1, qp->ibqp.pd, &qp->atomic_orig, sizeof(u64),
			     false, status);
}

/*
 * A datagram to a multicast GID: to each UD QP attached to its group in the sender's network
 * namespace, in order of QP number, once (qp->mcast_after: a fault stalls the send at one
 * member, and it goes on from there). An unresolved fault is that member's alone.
 */
static enum pfnic_step pfnic_execute_mcast(struct pfnic_qp *qp, bool failed,
					   enum ib_wc_status *status)
{
	struct net *net = dev_net(qp->pfnic->ndev);
	struct pfnic_qp *peer;
	enum pfnic_step step;
	u32 qpn;

	while ((qpn = pfnic_mcast_next(&qp->cur->dgid, net, qp->mcast_after))) {
		peer = pfnic_qp_get(qpn);
		if (peer) {
			step = pfnic_resp_datagram(qp, peer, failed, status);
			pfnic_qp_put(peer);
			if (step != PFNIC_DONE || *status != IB_WC_SUCCESS)
				return step;
		}
		failed = false;
		qp->mcast_after = qpn;
	}
	return PFNIC_DONE;
}

/*
 * pfnic_execute_ud() - run qp->cur, a UD send: a datagram to the QP and GID it names, or to
 *			the members of the multicast group of its GID
 * @qp: the sender
 * @failed: a page fault of this WQE could not be resolved (qp->fault.remote says whose)
 * @status: the sender's completion status, when the WQE ran to its end
 *
 * A datagram that finds no QP, a QP of another type or Q_Key, or no receive WQE is lost,
 * and its sender completes successfully, as on a wire. A receiver that cannot take it
 * (buffer too small or not its to write) completes its receive WQE in error and leaves
 * RTS; the sender still succeeds.
 *
 * Return: PFNIC_DONE with *status, PFNIC_FAULT (the fault recorded in @qp) or PFNIC_ABORT.
 */
static enum pfnic_step pfnic_execute_ud(struct pfnic_qp *qp, bool failed,
					enum ib_wc_status *status)
{
	struct pfnic_wqe *wqe = qp->cur;
	const struct ib_gid_attr *gid;
	struct pfnic_qp *peer;
	enum pfnic_step step;
	bool gsi;
	int mtu;

	*status = pfnic_check_local(qp, wqe);
	if (*status == IB_WC_SUCCESS && failed && !qp->fault.remote)
		*status = IB_WC_LOC_PROT_ERR;
	if (*status != IB_WC_SUCCESS)
		return PFNIC_DONE;
	/* a datagram fits in one packet of the port's MTU (query_port's active_mtu) */
	mtu = ib_mtu_enum_to_int(ib_mtu_int_to_enum(READ_ONCE(qp->pfnic->ndev->mtu)));
	if (wqe->total_len > mtu) {
		*status = IB_WC_LOC_LEN_ERR;
		return PFNIC_DONE;
	}
	if (pfnic_gid_multicast(&wqe->dgid))
		return pfnic_execute_mcast(qp, failed, status);
	/* QP1 is every device's: the one whose port has the destination GID */
	gsi = wqe->remote_qpn == PFNIC_GSI_QPN;
	if (gsi)
		peer = pfnic_gsi_get(&wqe->dgid, dev_net(qp->pfnic->ndev));
	else
		peer = pfnic_qp_get(wqe->remote_qpn);
	if (peer && (peer->ibqp.qp_type == IB_QPT_UD || peer->ibqp.qp_type == IB_QPT_GSI) &&
	    pfnic_same_net(qp, peer)) {
		gid = rdma_find_gid_by_port(&peer->pfnic->ibdev, &wqe->dgid,
					    IB_GID_TYPE_ROCE_UDP_ENCAP, PFNIC_PORT, NULL);
		if (!IS_ERR(gid)) {
			rdma_put_gid_attr(gid);
			step = pfnic_resp_datagram(qp, peer, failed, status);
			pfnic_qp_put(peer);
			return step;
		}
	}
	if (peer)
		pfnic_qp_put(peer);
	/*
	 * No QP of this kernel takes it. A GID no pfnic device of this kernel has is another
	 * host's: the wire (for QP1, pfnic_gsi_get() looked for that device already). Else
	 * the datagram is lost, as on a wire.
	 */
	if (gsi ? !peer : !pfnic_gid_local(&wqe->dgid, dev_net(qp->pfnic->ndev)))
		return pfnic_wire_datagram(qp, status);
	return PFNIC_DONE;
}

/*
 * The operations a QP carries out on its own device, in send queue order: IB_WR_REG_MR and
 * IB_WR_LOCAL_INV on fast-registration MRs of its PD, IB_WR_LOCAL_INV and IB_WR_BIND_MW on
 * its memory windows. Return: the completion status; IB_WC_LOC_QP_OP_ERR for one refused,
 * as rxe completes it, IB_WC_MW_BIND_ERR for a bind.
 */
static enum ib_wc_status pfnic_execute_local(struct pfnic_qp *qp)
{
	struct pfnic_wqe *wqe = qp->cur;
	struct pfnic_mr *mr;
	int rv = -EINVAL;

	if (wqe->opcode == IB_WR_BIND_MW)
		return pfnic_mw_bind(qp, wqe) ? IB_WC_MW_BIND_ERR : IB_WC_SUCCESS;
	if (wqe->opcode == IB_WR_LOCAL_INV) {
		rv = pfnic_mr_invalidate(wqe->invalidate_rkey, qp->ibqp.pd);
	} else {
		/* the index is the WR's MR's, unless that MR was deregistered meanwhile */
		mr = pfnic_mr_get_index(wqe->reg_index);
		if (mr) {
			if (&mr->ibmr == wqe->reg_mr)
				rv = pfnic_mr_fast_reg(mr, qp->ibqp.pd, wqe->reg_key,
						       wqe->reg_access);
			pfnic_mr_put(mr);
		}
	}
	return rv ? IB_WC_LOC_QP_OP_ERR : IB_WC_SUCCESS;
}

/**
 * pfnic_engine_drive() - run a QP's send queue from its head until it is empty, the QP
 *			  leaves RTS, or a WQE stalls (page fault, RNR, no ACK)
 * @qp: the QP
 *
 * Called by the engine's work item, and by a user QP's doorbell in the poster's own context
 * (no hand-off to a worker on another CPU). Whoever finds the engine running already
 * (@qp->running) returns at once: the one running it looks at the queue again before it
 * stops. After PFNIC_ENGINE_BUDGET WQEs the work item is queued, so that one busy QP keeps
 * neither a worker, nor a poster, nor the CPU from the others.
 *
 * An RC message no responder took (no QP of that number and incarnation, one not in RTR or
 * RTS, or one reset or moved to the error state while it was delivered) gets no ACK, as on a
 * wire: the requester sends it again after its local ACK timeout, retry_cnt times, then
 * fails it with IB_WC_RETRY_EXC_ERR. So a requester that reaches RTS and sends before its
 * peer reaches RTR, or whose peer went away with sends outstanding, behaves as on hardware.
 *
 * The WQE it runs stays the engine's (@qp->sq_busy) until the engine has finished with its
 * buffers and queued its completion: a flush meanwhile leaves it and those after it, and the
 * engine completes it, with IB_WC_WR_FLUSH_ERR if the QP is in the error state by then, and
 * then flushes the rest. A user QP's WQE is copied out of its ring and checked first: one
 * the QP cannot carry out completes with IB_WC_LOC_QP_OP_ERR.
 *
 * Context: process; takes @qp->lock, and the peer's locks while it delivers.
 */
static void pfnic_engine_go(struct pfnic_qp *qp, bool retry)
{
	unsigned int budget = PFNIC_ENGINE_BUDGET;

	spin_lock_irq(&qp->lock);
	/*
	 * The head WQE waits for its retry timer: only the timer runs it again. One that waits
	 * for its answers on the wire may be run by anyone: it sends the WQEs posted after it.
	 */
	if (retry || qp->wire.waiting)
		qp->retry_wait = false;
	if (qp->running || qp->retry_wait) {
		spin_unlock_irq(&qp->lock);
		return;
	}
	qp->running = true;
	/* an answer that comes now is seen before the engine waits again (pfnic_comp_step()) */
	qp->wire.waiting = false;
	if (qp->sq.shared)
		WRITE_ONCE(qp->sq.shared->engine_idle, 0);
	spin_unlock_irq(&qp->lock);

	for (;;) {
		enum ib_wc_status status = IB_WC_SUCCESS;
		struct pfnic_qp *peer;
		enum pfnic_step step = PFNIC_DONE;
		bool failed, malformed = false;
		u32 gen;

		spin_lock_irq(&qp->lock);
		if (qp->attr.qp_state != IB_QPS_RTS || qp->stalled || !pfnic_wq_count(&qp->sq)) {
			/* stalled, the fault's resolution queues the work again */
			if (!pfnic_engine_release(qp, !qp->stalled)) {
				spin_unlock_irq(&qp->lock);
				continue;
			}
			spin_unlock_irq(&qp->lock);
			return;
		}
		if (!budget--) {
			pfnic_engine_release(qp, false);
			spin_unlock_irq(&qp->lock);
			queue_work(pfnic_wq, &qp->work);
			return;
		}
		/* a producer moved past the ring's end fails the head WQE as a malformed one */
		if (qp->sq.shared)
			malformed = pfnic_wq_fetch_send(qp, 0, qp->cur) != 0 ||
				    pfnic_wq_overrun(&qp->sq);
		else
			memcpy(qp->cur, pfnic_wq_entry(&qp->sq, qp->sq.head), qp->sq.stride);
		gen = qp->sq.gen;
		qp->sq_busy = true;
		/* what earlier runs did belongs to their WQE: a flush or a new WQE forgets it */
		if (qp->wqe_gen != gen || qp->wqe_head != qp->sq.head) {
			qp->atomic_done = false;
			qp->progress = 0;
			qp->mcast_after = 0;
			qp->wire.started = false;
			qp->wqe_gen = gen;
			qp->wqe_head = qp->sq.head;
		}
		if (pfnic_wire_ahead_cur(qp, gen))
			malformed = false;
		/* a fault of this WQE that could not be resolved fails it this time */
		failed = qp->fault_status;
		qp->fault_status = 0;
		spin_unlock_irq(&qp->lock);

		if (malformed) {
			status = IB_WC_LOC_QP_OP_ERR;
		} else if (qp->cur->opcode == IB_WR_REG_MR || qp->cur->opcode == IB_WR_LOCAL_INV ||
			   qp->cur->opcode == IB_WR_BIND_MW) {
			status = pfnic_execute_local(qp);
		} else if (!pfnic_qp_connected(qp)) {
			step = pfnic_execute_ud(qp, failed, &status);
		} else if (qp->wire.remote) {
			/* RC to another host; UC and XRC reach pfnic devices of this kernel only */
			if (qp->ibqp.qp_type == IB_QPT_RC)
				step = pfnic_wire_send(qp, failed, &status);
			else
				status = IB_WC_LOC_QP_OP_ERR;
		} else {
			peer = pfnic_peer(qp);
			if (!peer) {
				/* a UC message to no one is lost, as on a wire */
				if (qp->ibqp.qp_type != IB_QPT_UC)
					step = PFNIC_NO_ACK;
			} else if (qp->ibqp.qp_type != IB_QPT_XRC_INI) {
				step = pfnic_req_message(qp, peer, failed, &status);
				pfnic_qp_put(peer);
			} else if (!pfnic_xrc_enter(peer, qp->cur->xrc_srqn)) {
				/* no XRC SRQ of that number in the TGT QP's domain */
				status = IB_WC_REM_INV_REQ_ERR;
				pfnic_qp_put(peer);
			} else {
				step = pfnic_req_message(qp, peer, failed, &status);
				pfnic_xrc_leave(peer);
				pfnic_qp_put(peer);
			}
		}

		if (!pfnic_comp_step(qp, gen, step, status))
			return;
	}
}

void pfnic_engine_drive(struct pfnic_qp *qp)
{
	pfnic_engine_go(qp, false);
}

/**
 * pfnic_engine_drive_retry() - pfnic_engine_drive() for the retry timer of an RNR NAK or a
 *				missing ACK, which alone runs a QP waiting for it (@qp->retry_wait)
 * @qp: the QP
 *
 * Context: process (the timer's work item); takes @qp->lock.
 */
void pfnic_engine_drive_retry(struct pfnic_qp *qp)
{
	pfnic_engine_go(qp, true);
}

/* The engine's work item: pfnic_engine_drive() on a worker. */
void pfnic_engine_run(struct work_struct *work)
{
	pfnic_engine_drive(container_of(work, struct pfnic_qp, work));
}
