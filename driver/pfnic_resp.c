// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: the responder (see pfnic_engine.h). It carries a message out on its own QP: whether
 * the QP receives and grants the rights the message needs, the receive WQE a SEND or a WRITE
 * with immediate data lands in (from its RQ, its SRQ, or the XRC SRQ the message names), the
 * keys of its MRs, an atomic's word, the receive completion, and the errors that are its own
 * (which move it to the error state, with the async event a NIC reports). A datagram finds
 * its receiver here too, with its Q_Key and the GRH a RoCE v2 receive carries.
 */
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <net/checksum.h>
#include <net/ipv6.h>
#include <rdma/ib_cache.h>

#include "pfnic_engine.h"

/*
 * The PD of the MRs a responder's RDMA and atomics reach: its own, or for an XRC TGT QP
 * (which has none) that of the XRC SRQ the message names.
 */
static struct ib_pd *pfnic_rdma_pd(struct pfnic_qp *qp)
{
	return pfnic_qp_xrc_tgt(qp) ? qp->srq->ibsrq.pd : qp->ibqp.pd;
}

/*
 * The responder's side of CMP_SWP, FETCH_ADD and ATOMIC_WRITE: its word changes once
 * (qp->atomic_done), its original value kept in qp->atomic_orig for the requester. A WQE
 * that runs again (its requester's buffer for that value faulted) finds the change made, as
 * a responder answers a repeated atomic request from its record of the first.
 * Return: PFNIC_DONE (check @status) or PFNIC_FAULT.
 */
static enum pfnic_step pfnic_resp_atomic(struct pfnic_qp *qp, struct pfnic_qp *peer,
					 enum ib_wc_status *status)
{
	struct pfnic_wqe *wqe = qp->cur;
	struct pfnic_mr *mr;
	enum pfnic_step step;

	*status = IB_WC_SUCCESS;
	if (qp->atomic_done)
		return PFNIC_DONE;
	/* an atomic's word is naturally aligned: anything else is an invalid request */
	if (wqe->remote_addr & (sizeof(u64) - 1)) {
		*status = IB_WC_REM_INV_REQ_ERR;
		return PFNIC_DONE;
	}
	/* an atomic write is a write, of one word at once: it needs write rights */
	mr = pfnic_mr_lookup(wqe->rkey, pfnic_rdma_pd(peer), wqe->remote_addr, sizeof(u64),
			     wqe->opcode == PFNIC_WR_ATOMIC_WRITE ? IB_ACCESS_REMOTE_WRITE :
			     IB_ACCESS_REMOTE_ATOMIC);
	if (!mr) {
		*status = IB_WC_REM_ACCESS_ERR;
		return PFNIC_DONE;
	}
	/*
	 * ... in memory too: an iova aligned in an MR whose iova and address differ in their
	 * low bits names a word that is not, which may cross into the next page; the CPU's
	 * atomics would reach past the page mapped for it.
	 */
	if (pfnic_mr_uva(mr, wqe->remote_addr) & (sizeof(u64) - 1)) {
		pfnic_mr_put(mr);
		*status = IB_WC_REM_INV_REQ_ERR;
		return PFNIC_DONE;
	}
	step = pfnic_atomic_word(&qp->fault, mr, wqe->remote_addr, wqe->opcode,
				 wqe->compare_add, wqe->swap, &qp->atomic_orig);
	pfnic_mr_put(mr);
	if (step == PFNIC_DONE)
		qp->atomic_done = true;
	return step;
}

static bool pfnic_can_receive(enum ib_qp_state state)
{
	return state == IB_QPS_RTR || state == IB_QPS_RTS || state == IB_QPS_SQD;
}

/*
 * The receive WQE a message to @peer lands in, copied to @rwqe, and the generation of
 * @peer's receive queue to check it against on delivery. From an SRQ, the message keeps
 * the WQE it took until it is delivered; *@limit is set when that took the SRQ below its
 * armed limit (the caller reports it, pfnic_srq_limit_event(), after unlocking). The WQE is
 * the caller's to fill (@peer->rq_busy) until pfnic_respond() or pfnic_recv_release(). Caller
 * holds @peer->lock. Return: false if there is none.
 */
bool pfnic_take_recv(struct pfnic_qp *peer, struct pfnic_wqe *rwqe, u32 *rgen, bool *limit)
{
	lockdep_assert_held(&peer->lock);
	if (peer->srq) {
		if (!peer->srq_held && !pfnic_srq_take(peer->srq, peer->srq_wqe, limit))
			return false;
		peer->srq_held = true;
		memcpy(rwqe, peer->srq_wqe, peer->srq->rq.stride);
	} else {
		if (!pfnic_wq_count(&peer->rq))
			return false;
		pfnic_wq_fetch_recv(&peer->rq, rwqe);
	}
	*rgen = peer->rq.gen;
	peer->rq_busy++;
	return true;
}

/*
 * Lets go of the receive WQE of @peer that pfnic_take_recv() gave a message that did not
 * consume it (a fault, a copy stopped because the requester's WQE was taken away, an error
 * of the requester's own): it stays at the head. If a flush came meanwhile, it left that WQE
 * to us: it is flushed now.
 */
void pfnic_recv_release(struct pfnic_qp *peer)
{
	bool flush;

	spin_lock_irq(&peer->lock);
	peer->rq_busy--;
	flush = peer->attr.qp_state == IB_QPS_ERR;
	spin_unlock_irq(&peer->lock);
	if (flush)
		pfnic_qp_flush(peer);
}

/*
 * An XRC INI QP's message: the XRC SRQ it names, in its TGT QP's domain, becomes the TGT
 * QP's for the message (@peer->srq, with a reference). A message that held a WQE of it and
 * stalled (srq_held) has it already. Return: false if no such XRC SRQ is there.
 */
bool pfnic_xrc_enter(struct pfnic_qp *peer, u32 srqn)
{
	struct pfnic_srq *srq = pfnic_xrc_srq_get(srqn, peer->ibqp.xrcd);
	bool ok;

	if (!srq)
		return false;
	spin_lock_irq(&peer->lock);
	ok = !peer->srq || peer->srq == srq;
	if (!peer->srq) {
		peer->srq = srq;
		srq = NULL;
	}
	spin_unlock_irq(&peer->lock);
	if (srq)
		pfnic_srq_put(srq);
	return ok;
}

/* The message is done with its XRC SRQ, unless it holds a WQE of it (it will run again). */
void pfnic_xrc_leave(struct pfnic_qp *peer)
{
	struct pfnic_srq *srq = NULL;

	spin_lock_irq(&peer->lock);
	if (!peer->srq_held) {
		srq = peer->srq;
		peer->srq = NULL;
	}
	spin_unlock_irq(&peer->lock);
	if (srq)
		pfnic_srq_put(srq);
}

/*
 * The responder's side of a WQE that ran to its end: deliver the message (consume and
 * complete the receive WQE, with @peer_status), and move the responder to the error state
 * when it found an error itself (a bad receive buffer, a remote access violation, or a
 * request it cannot carry out). The state changes before the completion is seen. A receive
 * WQE taken for a message (@consumes) is let go of here, delivered or not.
 */
static enum pfnic_step pfnic_respond(struct pfnic_qp *qp, struct pfnic_qp *peer, u32 rgen,
				     bool consumes, enum ib_wc_status *status,
				     enum ib_wc_status peer_status)
{
	struct pfnic_wqe *wqe = qp->cur, *rwqe = qp->rcur;
	bool ud = !pfnic_qp_connected(qp);
	bool acked = qp->ibqp.qp_type == IB_QPT_RC;
	bool access_error = *status == IB_WC_REM_ACCESS_ERR;
	/* a request the responder cannot carry out (a misaligned atomic) */
	bool request_error = *status == IB_WC_REM_INV_REQ_ERR && !consumes;
	bool deliver = consumes && (*status == IB_WC_SUCCESS || peer_status != IB_WC_SUCCESS);
	bool error = access_error || request_error || peer_status != IB_WC_SUCCESS;
	unsigned int signal = 0;
	struct ib_wc wc = {};

	if (!deliver && !error) {
		if (consumes)
			pfnic_recv_release(peer);
		return PFNIC_DONE;
	}
	spin_lock_irq(&peer->lock);
	if (consumes)
		peer->rq_busy--;
	if (deliver && (peer->rq.gen != rgen || peer->attr.qp_state == IB_QPS_ERR)) {
		/*
		 * The responder was reset (its WQEs went without completions) or moved to the
		 * error state (its flush left the WQE being filled to us) meanwhile: the
		 * message found no one.
		 */
		error = peer->attr.qp_state == IB_QPS_ERR;
		spin_unlock_irq(&peer->lock);
		if (error)
			pfnic_qp_flush(peer);
		/* a datagram or a UC message is simply lost; an RC requester hears no ACK */
		return acked ? PFNIC_NO_ACK : PFNIC_DONE;
	}
	if (deliver) {
		wc.wr_id = rwqe->wr_id;
		wc.status = peer_status;
		wc.opcode = wqe->opcode == IB_WR_RDMA_WRITE_WITH_IMM ?
			    IB_WC_RECV_RDMA_WITH_IMM : IB_WC_RECV;
		wc.byte_len = wqe->total_len;
		wc.qp = &peer->ibqp;
		wc.src_qp = qp->ibqp.qp_num;
		wc.port_num = PFNIC_PORT;
		if (ud) {
			/* the GRH came first */
			wc.byte_len += PFNIC_GRH_LEN;
			wc.wc_flags |= IB_WC_GRH;
		}
		if (wqe->opcode == IB_WR_SEND_WITH_INV) {
			wc.wc_flags |= IB_WC_WITH_INVALIDATE;
			wc.ex.invalidate_rkey = wqe->invalidate_rkey;
		} else if (wqe->opcode != IB_WR_SEND) {
			wc.wc_flags |= IB_WC_WITH_IMM;
			wc.ex.imm_data = wqe->imm_data;
		}
		if (ud) {
			bool v4 = ipv6_addr_v4mapped((struct in6_addr *)wqe->dgid.raw);

			/* RoCE v2: the GRH slot holds the IP header of this type */
			wc.wc_flags |= IB_WC_WITH_NETWORK_HDR_TYPE;
			wc.network_hdr_type = v4 ? RDMA_NETWORK_IPV4 : RDMA_NETWORK_IPV6;
			wc.pkey_index = 0;
			/*
			 * RoCE carries no service level. mlx5 reports the packet's L3 type in
			 * the SL bits of a UD receive instead (2: IPv4, 1: IPv6), and UCX's UD
			 * transport reads it there to find the destination address in the
			 * GRH slot (without it UCX drops every datagram, as it does on rxe).
			 */
			wc.sl = v4 ? 2 : 1;
		}
		/*
		 * The receive WQE goes and the completion is queued under the responder's
		 * lock: a flush, or the end of the SRQ's WQEs (LAST_WQE_REACHED), never
		 * overtakes this completion. A user ring's slot is given back first, so that
		 * a process that polls the completion and posts a receive at once finds it.
		 */
		if (peer->srq)
			peer->srq_held = false;
		else
			pfnic_wq_pop(&peer->rq);
		signal = pfnic_cq_push(pfnic_recv_cq(peer), &wc,
				       wqe->send_flags & IB_SEND_SOLICITED);
	}
	if (error)
		pfnic_qp_set_state(peer, IB_QPS_ERR);
	spin_unlock_irq(&peer->lock);
	if (deliver)
		pfnic_cq_signal(pfnic_recv_cq(peer), signal);
	if (!error)
		return PFNIC_DONE;
	if (access_error)
		pfnic_qp_event(peer, IB_EVENT_QP_ACCESS_ERR);
	else if (request_error)
		pfnic_qp_event(peer, IB_EVENT_QP_REQ_ERR);
	pfnic_qp_flush(peer);
	return PFNIC_DONE;
}

/**
 * pfnic_resp_message() - carry out the message of qp->cur on the connected @peer
 * @qp: the requester, whose WQE's local side the requester checked
 * @peer: the responder
 * @failed: a page fault of the responder's memory for this WQE could not be resolved
 * @status: the requester's completion status, when the WQE ran to its end
 *
 * A UC message, which no ACK answers, is lost where an RC one would be retried or failed by
 * its responder: to a peer not receiving, with no receive WQE, without the rights or the key
 * it needs, or too long for its receive WQE. Its requester completes it with success; its
 * responder sees nothing of it, but for an error of its own receive WQE (which fails that WQE
 * and moves it to the error state, as on RC).
 *
 * Context: the engine, holding a reference to @peer; takes @peer's lock.
 * Return: PFNIC_DONE with *status (the responder's side already done: see
 * pfnic_respond(); an atomic's original value is in qp->atomic_orig), PFNIC_FAULT (the fault
 * recorded in @qp), PFNIC_ABORT, PFNIC_RNR or PFNIC_NO_ACK (RC: @peer cannot receive, or was
 * reset or moved to the error state while the message was delivered).
 */
enum pfnic_step pfnic_resp_message(struct pfnic_qp *qp, struct pfnic_qp *peer, bool failed,
				   enum ib_wc_status *status)
{
	struct pfnic_wqe *wqe = qp->cur, *rwqe = qp->rcur;
	bool sends = wqe->opcode == IB_WR_SEND || wqe->opcode == IB_WR_SEND_WITH_IMM ||
		     wqe->opcode == IB_WR_SEND_WITH_INV;
	bool consumes = sends || wqe->opcode == IB_WR_RDMA_WRITE_WITH_IMM;
	bool atomic = wqe->opcode == IB_WR_ATOMIC_CMP_AND_SWP ||
		      wqe->opcode == IB_WR_ATOMIC_FETCH_AND_ADD ||
		      wqe->opcode == PFNIC_WR_ATOMIC_WRITE;
	int rights = wqe->opcode == IB_WR_RDMA_READ ? IB_ACCESS_REMOTE_READ :
		     atomic && wqe->opcode != PFNIC_WR_ATOMIC_WRITE ? IB_ACCESS_REMOTE_ATOMIC :
		     IB_ACCESS_REMOTE_WRITE;
	enum ib_wc_status peer_status = IB_WC_SUCCESS;
	enum pfnic_step step = PFNIC_DONE;
	bool uc = qp->ibqp.qp_type == IB_QPT_UC;
	const struct ib_sge *lsgl;
	struct ib_sge one;
	bool limit = false;
	u32 rgen = 0, lnum;

	*status = IB_WC_SUCCESS;
	spin_lock_irq(&peer->lock);
	if (!pfnic_can_receive(peer->attr.qp_state)) {
		spin_unlock_irq(&peer->lock);
		return uc ? PFNIC_DONE : PFNIC_NO_ACK;
	}
	if (!sends && !(peer->attr.qp_access_flags & rights)) {
		spin_unlock_irq(&peer->lock);
		if (uc)
			return PFNIC_DONE;
		*status = IB_WC_REM_ACCESS_ERR;
		pfnic_respond(qp, peer, 0, false, status, IB_WC_SUCCESS);
		return PFNIC_DONE;
	}
	if (consumes && !pfnic_take_recv(peer, rwqe, &rgen, &limit)) {
		qp->rnr_timer = peer->attr.min_rnr_timer;
		spin_unlock_irq(&peer->lock);
		return uc ? PFNIC_DONE : PFNIC_RNR;
	}
	spin_unlock_irq(&peer->lock);
	if (limit)
		pfnic_srq_limit_event(peer->srq);
	/* a message goes on into the receive WQE it started in, or starts again */
	if (consumes && rgen != qp->progress_rgen) {
		qp->progress = 0;
		qp->progress_rgen = rgen;
	}

	if (failed) {
		/* the responder's memory could not be faulted in */
		*status = sends ? IB_WC_REM_OP_ERR : IB_WC_REM_ACCESS_ERR;
		if (sends)
			peer_status = IB_WC_LOC_PROT_ERR;
	} else if (sends && wqe->total_len > rwqe->total_len) {
		*status = IB_WC_REM_INV_REQ_ERR;
		peer_status = IB_WC_LOC_LEN_ERR;
	} else if (atomic) {
		step = pfnic_resp_atomic(qp, peer, status);
	} else if (sends) {
		lnum = pfnic_req_payload(qp->cur, &one, &lsgl);
		step = pfnic_sg_copy(qp, lsgl, lnum, rwqe->sge, rwqe->num_sge,
				     pfnic_recv_pd(peer), 0, 0, wqe->total_len, true, status,
				     &qp->progress);
		if (*status == IB_WC_REM_OP_ERR)
			peer_status = IB_WC_LOC_PROT_ERR;
	} else {
		lnum = pfnic_req_payload(qp->cur, &one, &lsgl);
		step = pfnic_sg_copy(qp, lsgl, lnum, NULL, 0, pfnic_rdma_pd(peer), wqe->rkey,
				     wqe->remote_addr, wqe->total_len,
				     wqe->opcode != IB_WR_RDMA_READ, status, &qp->progress);
	}
	if (step != PFNIC_DONE) {
		if (consumes)
			pfnic_recv_release(peer);
		return step;
	}
	/*
	 * SEND_WITH_INV: the responder invalidates the MR the rkey names before the receive
	 * completion says so; a key it cannot invalidate is an invalid request (as rxe).
	 */
	if (wqe->opcode == IB_WR_SEND_WITH_INV && *status == IB_WC_SUCCESS &&
	    peer_status == IB_WC_SUCCESS &&
	    pfnic_mr_invalidate(wqe->invalidate_rkey, pfnic_recv_pd(peer))) {
		*status = IB_WC_REM_INV_REQ_ERR;
		peer_status = IB_WC_REM_INV_REQ_ERR;
	}
	if (uc && (*status == IB_WC_REM_ACCESS_ERR || *status == IB_WC_REM_INV_REQ_ERR)) {
		/* a bad key or range, a receive WQE too short: the message is dropped */
		if (consumes)
			pfnic_recv_release(peer);
		*status = IB_WC_SUCCESS;
		return PFNIC_DONE;
	}
	step = pfnic_respond(qp, peer, rgen, consumes, status, peer_status);
	/* the responder's own receive WQE was bad: it failed, and its requester hears nothing */
	if (uc && *status == IB_WC_REM_OP_ERR)
		*status = IB_WC_SUCCESS;
	return step;
}

/*
 * The GRH slot of a UD receive, as RoCE v2 fills it: with IPv4 GIDs the IPv4 header in its
 * last 20 bytes (after 20 zero bytes), else an IPv6 header of the two GIDs. ibv_wc users
 * that build a reply's address from it (ibv_init_ah_from_wc) read exactly these.
 */
static void pfnic_ud_grh(u8 *grh, const union ib_gid *sgid, const union ib_gid *dgid, u32 len)
{
	/* UDP, BTH, DETH and ICRC around the payload */
	u32 paylen = 8 + 12 + 8 + len + 4;

	memset(grh, 0, PFNIC_GRH_LEN);
	if (ipv6_addr_v4mapped((const struct in6_addr *)sgid->raw) &&
	    ipv6_addr_v4mapped((const struct in6_addr *)dgid->raw)) {
		struct iphdr *ip = (struct iphdr *)(grh + 20);

		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons(20 + paylen);
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP;
		memcpy(&ip->saddr, sgid->raw + 12, 4);
		memcpy(&ip->daddr, dgid->raw + 12, 4);
		ip->check = ip_fast_csum(ip, ip->ihl);
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)grh;

		ip6->version = 6;
		ip6->payload_len = htons(paylen);
		ip6->nexthdr = IPPROTO_UDP;
		ip6->hop_limit = 64;
		memcpy(&ip6->saddr, sgid->raw, 16);
		memcpy(&ip6->daddr, dgid->raw, 16);
	}
}

/* @src's SGEs without their first @skip bytes, into @dst. Return: how many there are. */
static u32 pfnic_sge_skip(struct ib_sge *dst, const struct ib_sge *src, u32 num_sge, u32 skip)
{
	u32 i, n = 0;

	for (i = 0; i < num_sge; i++) {
		u32 cut = min(skip, src[i].length);

		skip -= cut;
		if (src[i].length == cut)
			continue;
		dst[n] = src[i];
		dst[n].addr += cut;
		dst[n].length -= cut;
		n++;
	}
	return n;
}

/*
 * Delivers the datagram of qp->cur to @peer, a UD (or GSI) QP the datagram is addressed to,
 * which the caller holds a reference to. Return: PFNIC_DONE (delivered, or lost: no receive
 * WQE, another Q_Key, a receiver not receiving; *status is the sender's), PFNIC_FAULT (the
 * fault recorded in @qp) or PFNIC_ABORT.
 */
enum pfnic_step pfnic_resp_datagram(struct pfnic_qp *qp, struct pfnic_qp *peer, bool failed,
				    enum ib_wc_status *status)
{
	struct pfnic_wqe *wqe = qp->cur, *rwqe = qp->rcur;
	enum ib_wc_status peer_status = IB_WC_SUCCESS, put;
	struct ib_sge rsge[PFNIC_MAX_SGE], one;
	const struct ib_sge *lsgl;
	const struct ib_gid_attr *gid;
	u8 grh[PFNIC_GRH_LEN];
	enum pfnic_step step;
	bool limit = false;
	u32 qkey, rgen, n, lnum;

	/* a Q_Key with its high bit set means the sender's own */
	qkey = wqe->remote_qkey & BIT(31) ? qp->attr.qkey : wqe->remote_qkey;

	/* one sender at a time from taking the receive WQE to delivering into it */
	mutex_lock(&peer->deliver_lock);
	spin_lock_irq(&peer->lock);
	if (!pfnic_can_receive(peer->attr.qp_state) || qkey != peer->attr.qkey ||
	    !pfnic_take_recv(peer, rwqe, &rgen, &limit)) {
		spin_unlock_irq(&peer->lock);
		goto unlock;
	}
	spin_unlock_irq(&peer->lock);
	if (limit)
		pfnic_srq_limit_event(peer->srq);

	if (failed) {
		/* the receive buffer could not be faulted in */
		peer_status = IB_WC_LOC_PROT_ERR;
		goto respond;
	}
	if (rwqe->total_len < PFNIC_GRH_LEN + wqe->total_len) {
		peer_status = IB_WC_LOC_LEN_ERR;
		goto respond;
	}
	gid = rdma_get_gid_attr(&qp->pfnic->ibdev, PFNIC_PORT, wqe->sgid_index);
	if (IS_ERR(gid)) {
		/* the source GID went away with its address: nothing can be sent from it */
		*status = IB_WC_LOC_QP_OP_ERR;
		pfnic_recv_release(peer);
		goto unlock;
	}
	pfnic_ud_grh(grh, &gid->gid, &wqe->dgid, wqe->total_len);
	rdma_put_gid_attr(gid);
	step = pfnic_put_sgl(qp, rwqe->sge, rwqe->num_sge, pfnic_recv_pd(peer), grh,
			     PFNIC_GRH_LEN, true, &put);
	if (step == PFNIC_DONE && put == IB_WC_SUCCESS) {
		/* a datagram is one packet: after a fault it is sent again whole */
		u64 moved = 0;

		n = pfnic_sge_skip(rsge, rwqe->sge, rwqe->num_sge, PFNIC_GRH_LEN);
		lnum = pfnic_req_payload(qp->cur, &one, &lsgl);
		step = pfnic_sg_copy(qp, lsgl, lnum, rsge, n, pfnic_recv_pd(peer), 0, 0,
				     wqe->total_len, true, status, &moved);
		/* the receiver's buffer is the receiver's error; the sender's is the sender's */
		if (*status == IB_WC_REM_OP_ERR || *status == IB_WC_REM_INV_REQ_ERR) {
			*status = IB_WC_SUCCESS;
			peer_status = IB_WC_LOC_PROT_ERR;
		}
	} else if (step == PFNIC_DONE) {
		peer_status = IB_WC_LOC_PROT_ERR;
	}
	if (step != PFNIC_DONE) {
		/* the WQE stays at the head: whoever delivers next (maybe us again) fills it */
		pfnic_recv_release(peer);
		mutex_unlock(&peer->deliver_lock);
		return step;
	}
respond:
	/* delivered unless the sender's own buffer failed it (pfnic_respond() tells which) */
	pfnic_respond(qp, peer, rgen, true, status, peer_status);
unlock:
	mutex_unlock(&peer->deliver_lock);
	return PFNIC_DONE;
}
