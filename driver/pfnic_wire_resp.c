// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: the responder on the wire (see pfnic_wire.h). A QP's requests from another host
 * are carried out in order, one at a time, by the QP's receive work, in process context:
 *
 * - An RC request at the expected PSN is carried out: a SEND's payload lands in the
 *   receive WQE it took with its first packet, a WRITE's in the MR its first packet's RETH
 *   named, a READ is answered with responses at the path MTU, an atomic once (a duplicate
 *   is answered from the record of the last). An ACK goes back when the requester asked.
 * - A request past the expected PSN gets one PSN sequence error NAK, until the expected one
 *   comes; one before it (a duplicate) is answered again and never carried out twice.
 * - No receive WQE for a SEND, or a page of an ODP MR that is not present, gets an RNR NAK:
 *   the page is faulted in meanwhile, and the requester sends again after the QP's RNR
 *   timer, which finds it. A remote requester never sees an error for memory that moved.
 * - A request the QP cannot carry out gets its NAK (invalid request, remote access, remote
 *   operational error) and moves the QP to the error state.
 * - A datagram lands in a receive WQE of its UD or GSI QP with the GRH its IP header gives,
 *   or is dropped (no receive WQE, another Q_Key), as on any wire.
 */
#include <rdma/ib_cache.h>

#include "pfnic_engine.h"

/* Sends an ACK, or a NAK, of @psn with @syndrome. */
static void pfnic_wire_ack(struct pfnic_qp *qp, u32 psn, u8 syndrome)
{
	struct pfnic_wire *w = &qp->wire;
	struct sk_buff *skb;

	skb = pfnic_pkt_alloc(qp->pfnic, PFNIC_BTH_LEN + PFNIC_AETH_LEN, 0);
	if (!skb)
		return;
	pfnic_wire_bth(skb, PFNIC_OP_ACK, 0, qp->attr.dest_qp_num, psn, false, 0);
	put_unaligned_be32((u32)syndrome << 24 | (w->msn & 0xffffff),
			   skb->data + PFNIC_BTH_LEN);
	pfnic_pkt_send(qp->pfnic, skb, &w->sgid, &w->dgid, w->sport);
	/* an answer of its PSN or a later one says what the one owed would have */
	if (pfnic_psn_diff(psn, w->ack_owed_psn) >= 0)
		w->ack_owed = false;
}

/* Requests the responder looks past at most for a later one that asks for an ACK. */
#define PFNIC_WIRE_ACK_LOOK	64

/*
 * Whether the ACK a request asked for may wait for a later one (ACK coalescing): a request
 * waiting in the queue, after others in sequence, all SENDs and WRITEs, asks for one too.
 * Whatever becomes of that request, an ACK, an RNR NAK or a NAK of its PSN goes out, and
 * each tells the requester that this one was taken. If none does go out after all (the QP
 * left RTR and RTS meanwhile), pfnic_wire_rx_work() sends the one owed.
 * Context: the QP's receive work.
 */
static bool pfnic_wire_ack_follows(struct pfnic_qp *qp)
{
	struct pfnic_wire *w = &qp->wire;
	unsigned int looked = 0;
	u32 psn = w->epsn;
	bool follows = false;
	struct sk_buff *skb;
	unsigned long flags;

	spin_lock_irqsave(&w->rxq.lock, flags);
	skb_queue_walk(&w->rxq, skb) {
		const struct pfnic_pkt *pkt = PFNIC_PKT(skb);

		if (++looked > PFNIC_WIRE_ACK_LOOK || pkt->psn != psn ||
		    PFNIC_OP_TRANSPORT(pkt->opcode) != PFNIC_OP_RC ||
		    PFNIC_OP_CODE(pkt->opcode) > PFNIC_OP_WRITE_ONLY_IMM)
			break;
		if (pkt->ackreq) {
			follows = true;
			break;
		}
		psn = (psn + 1) & PFNIC_PSN_MASK;
	}
	spin_unlock_irqrestore(&w->rxq.lock, flags);
	return follows;
}

/*
 * A NAK of @psn. One that ends the connection (all but a sequence error's) is said in the
 * kernel's log too, with where the responder was, since the requester's side only learns
 * the NAK's code.
 */
static void pfnic_wire_nak(struct pfnic_qp *qp, u32 psn, enum pfnic_nak code)
{
	struct pfnic_wire *w = &qp->wire;

	if (code != PFNIC_NAK_PSN_SEQ)
		dev_info_ratelimited(&qp->pfnic->ibdev.dev,
				     "QP %#x: NAK %u of PSN %#x (expected %#x, last opcode %#x, %llu bytes of the message in)\n",
				     qp->ibqp.qp_num, code, psn, w->epsn, w->last_op, w->rx_off);
	pfnic_wire_ack(qp, psn, PFNIC_AETH_NAK << 5 | code);
}

/*
 * Hands the fault the request at @psn met (w->met) to the fault work, which resolves one at
 * a time: while it resolves another, this one is forgotten (the request meets it again).
 */
static void pfnic_wire_resolve(struct pfnic_qp *qp, u32 psn)
{
	struct pfnic_wire *w = &qp->wire;

	/* acquire: the fault work is done with w->fault once it clears the flag */
	if (smp_load_acquire(&w->faulting)) {
		pfnic_mr_put(w->met.mr);
	} else {
		w->fault = w->met;
		w->fault_psn = psn;
		w->faulting = true;
		queue_work(pfnic_fault_wq, &w->fault_work);
	}
	w->met.mr = NULL;
}

/*
 * An RNR NAK of @psn: the requester sends it again after the QP's RNR timer. The page fault
 * the request met (@fault) is resolved meanwhile.
 */
static void pfnic_wire_rnr(struct pfnic_qp *qp, u32 psn, bool fault)
{
	pfnic_wire_ack(qp, psn, PFNIC_AETH_RNR_NAK << 5 | (qp->attr.min_rnr_timer & 0x1f));
	pfnic_stat_add(qp->pfnic, PFNIC_STAT_SEND_RNR_NAK, 1);
	if (fault)
		pfnic_wire_resolve(qp, psn);
}

/**
 * pfnic_wire_fault_work() - resolve the page fault a request from the wire met
 * @work: the QP's wire.fault_work
 *
 * The request got an RNR NAK; its requester sends it again after the RNR timer. A fault
 * that cannot be resolved (no memory mapped there any more) fails that request when it
 * comes again (w->fault_failed): a NAK, as for any access the MR does not allow. One that
 * timed out on a range that kept changing is not a failure: the request meets it again.
 *
 * Context: process, pfnic_fault_wq.
 */
void pfnic_wire_fault_work(struct work_struct *work)
{
	struct pfnic_wire *w = container_of(work, struct pfnic_wire, fault_work);
	struct pfnic_mr *mr = w->fault.mr;
	int rv;

	rv = pfnic_odp_fault(mr, w->fault.va, w->fault.len,
			     w->fault.write ? PFNIC_FAULT_WRITE : 0);
	if (rv && rv != -EBUSY)
		WRITE_ONCE(w->fault_failed, true);
	w->fault.mr = NULL;
	pfnic_mr_put(mr);
	/* release: the record is free for the next fault (pfnic_wire_resolve()) */
	smp_store_release(&w->faulting, false);
}

/* Moves a responder that met an error of its own to the error state, with its event. */
static void pfnic_wire_fail(struct pfnic_qp *qp, enum ib_event_type event)
{
	spin_lock_irq(&qp->lock);
	pfnic_qp_set_state(qp, IB_QPS_ERR);
	spin_unlock_irq(&qp->lock);
	pfnic_qp_event(qp, event);
	pfnic_qp_flush(qp);
}

/*
 * Completes the receive WQE @rgen took with @wc: unless the QP was reset or flushed
 * meanwhile (its WQE went), under the QP's lock, which a flush takes too.
 */
static void pfnic_wire_deliver(struct pfnic_qp *qp, u32 rgen, struct ib_wc *wc, bool solicited)
{
	unsigned int signal;
	bool flush;

	spin_lock_irq(&qp->lock);
	qp->rq_busy--;
	if (qp->rq.gen != rgen || qp->attr.qp_state == IB_QPS_ERR) {
		flush = qp->attr.qp_state == IB_QPS_ERR;
		spin_unlock_irq(&qp->lock);
		if (flush)
			pfnic_qp_flush(qp);
		return;
	}
	if (qp->srq)
		qp->srq_held = false;
	else
		pfnic_wq_pop(&qp->rq);
	wc->qp = &qp->ibqp;
	wc->port_num = PFNIC_PORT;
	signal = pfnic_cq_push(pfnic_recv_cq(qp), wc, solicited);
	if (wc->status != IB_WC_SUCCESS)
		pfnic_qp_set_state(qp, IB_QPS_ERR);
	spin_unlock_irq(&qp->lock);
	pfnic_cq_signal(pfnic_recv_cq(qp), signal);
	if (wc->status != IB_WC_SUCCESS)
		pfnic_qp_flush(qp);
}

/*
 * The receive WQE a message takes, into w->rwqe, and the receive queue's generation, with
 * the WQE the caller's to fill (rq_busy) until pfnic_wire_deliver() or
 * pfnic_recv_release(). Return: false if there is none.
 */
static bool pfnic_wire_take_recv(struct pfnic_qp *qp, u32 *rgen)
{
	bool ok, limit = false;

	spin_lock_irq(&qp->lock);
	ok = pfnic_take_recv(qp, qp->wire.rwqe, rgen, &limit);
	spin_unlock_irq(&qp->lock);
	if (limit)
		pfnic_srq_limit_event(qp->srq);
	return ok;
}

/*
 * A SEND's packet, at the expected PSN. Return: true if it was taken (the PSN moves on);
 * false if it got an RNR NAK or the QP failed.
 */
static bool pfnic_wire_recv_send(struct pfnic_qp *qp, struct sk_buff *skb)
{
	struct pfnic_pkt *pkt = PFNIC_PKT(skb);
	struct pfnic_wire *w = &qp->wire;
	u8 op = PFNIC_OP_CODE(pkt->opcode);
	bool first = op == PFNIC_OP_SEND_FIRST || op == PFNIC_OP_SEND_ONLY ||
		     op == PFNIC_OP_SEND_ONLY_IMM || op == PFNIC_OP_SEND_ONLY_INV;
	bool last = op != PFNIC_OP_SEND_FIRST && op != PFNIC_OP_SEND_MIDDLE;
	enum ib_wc_status status;
	enum pfnic_step step;
	struct ib_wc wc = {};
	u32 rgen;

	if (!pfnic_wire_take_recv(qp, &rgen)) {
		pfnic_wire_rnr(qp, pkt->psn, false);
		return false;
	}
	if (first) {
		w->rx_off = 0;
		w->rx_rgen = rgen;
	} else if (rgen != w->rx_rgen) {
		/* the WQE the message started in went (a flush): nothing to go on with */
		pfnic_recv_release(qp);
		return false;
	}
	if (w->rx_off + pkt->paylen > w->rwqe->total_len) {
		pfnic_wire_nak(qp, pkt->psn, PFNIC_NAK_INV_REQ);
		wc.wr_id = w->rwqe->wr_id;
		wc.status = IB_WC_LOC_LEN_ERR;
		wc.opcode = IB_WC_RECV;
		pfnic_wire_deliver(qp, rgen, &wc, false);
		return false;
	}
	step = pfnic_sgl_io(qp, &w->met, w->rwqe->sge, w->rwqe->num_sge, pfnic_recv_pd(qp),
			    false, w->rx_off, skb->data + pkt->payload, pkt->paylen, true, true,
			    &status);
	if (step == PFNIC_FAULT) {
		pfnic_recv_release(qp);
		pfnic_wire_rnr(qp, pkt->psn, true);
		return false;
	}
	if (status != IB_WC_SUCCESS) {
		/* the receive WQE's own buffer is bad: the responder's error */
		pfnic_wire_nak(qp, pkt->psn, PFNIC_NAK_REM_OP);
		wc.wr_id = w->rwqe->wr_id;
		wc.status = IB_WC_LOC_PROT_ERR;
		wc.opcode = IB_WC_RECV;
		pfnic_wire_deliver(qp, rgen, &wc, false);
		return false;
	}
	w->rx_off += pkt->paylen;
	if (!last) {
		pfnic_recv_release(qp);
		return true;
	}
	wc.wr_id = w->rwqe->wr_id;
	wc.opcode = IB_WC_RECV;
	wc.byte_len = w->rx_off;
	wc.src_qp = qp->attr.dest_qp_num;
	if (op == PFNIC_OP_SEND_LAST_IMM || op == PFNIC_OP_SEND_ONLY_IMM) {
		wc.wc_flags = IB_WC_WITH_IMM;
		memcpy(&wc.ex.imm_data, skb->data + pkt->hdr, 4);
	} else if (op == PFNIC_OP_SEND_LAST_INV || op == PFNIC_OP_SEND_ONLY_INV) {
		wc.wc_flags = IB_WC_WITH_INVALIDATE;
		wc.ex.invalidate_rkey = get_unaligned_be32(skb->data + pkt->hdr);
		if (pfnic_mr_invalidate(wc.ex.invalidate_rkey, pfnic_recv_pd(qp))) {
			pfnic_wire_nak(qp, pkt->psn, PFNIC_NAK_INV_REQ);
			wc.status = IB_WC_REM_INV_REQ_ERR;
			pfnic_wire_deliver(qp, rgen, &wc, false);
			return false;
		}
	}
	pfnic_wire_deliver(qp, rgen, &wc, pkt->flags & PFNIC_BTH_SE);
	w->msn++;
	return true;
}

/* A WRITE's packet, at the expected PSN. Return: as pfnic_wire_recv_send(). */
static bool pfnic_wire_recv_write(struct pfnic_qp *qp, struct sk_buff *skb)
{
	struct pfnic_pkt *pkt = PFNIC_PKT(skb);
	struct pfnic_wire *w = &qp->wire;
	u8 op = PFNIC_OP_CODE(pkt->opcode);
	bool first = op == PFNIC_OP_WRITE_FIRST || op == PFNIC_OP_WRITE_ONLY ||
		     op == PFNIC_OP_WRITE_ONLY_IMM;
	bool imm = op == PFNIC_OP_WRITE_LAST_IMM || op == PFNIC_OP_WRITE_ONLY_IMM;
	enum ib_wc_status status;
	enum pfnic_step step;
	struct ib_wc wc = {};
	u32 rgen;

	if (first) {
		const struct pfnic_reth *reth = (const void *)(skb->data + pkt->hdr);

		w->va = be64_to_cpu(reth->va);
		w->rkey = be32_to_cpu(reth->rkey);
		w->dma_len = be32_to_cpu(reth->len);
		w->rx_off = 0;
		if (!(qp->attr.qp_access_flags & IB_ACCESS_REMOTE_WRITE)) {
			pfnic_wire_nak(qp, pkt->psn, PFNIC_NAK_REM_ACCESS);
			pfnic_wire_fail(qp, IB_EVENT_QP_ACCESS_ERR);
			return false;
		}
	}
	if (w->rx_off + pkt->paylen > w->dma_len) {
		pfnic_wire_nak(qp, pkt->psn, PFNIC_NAK_INV_REQ);
		pfnic_wire_fail(qp, IB_EVENT_QP_REQ_ERR);
		return false;
	}
	/* the receive WQE first: an RNR NAK must leave memory as it was, for the retry */
	if (imm && !pfnic_wire_take_recv(qp, &rgen)) {
		pfnic_wire_rnr(qp, pkt->psn, false);
		return false;
	}
	step = pfnic_rkey_io(qp, &w->met, w->rkey, qp->ibqp.pd, w->va + w->rx_off,
			     skb->data + pkt->payload, pkt->paylen, true, &status);
	if (step == PFNIC_FAULT || status != IB_WC_SUCCESS) {
		if (imm)
			pfnic_recv_release(qp);
		if (step == PFNIC_FAULT) {
			pfnic_wire_rnr(qp, pkt->psn, true);
			return false;
		}
		pfnic_wire_nak(qp, pkt->psn, PFNIC_NAK_REM_ACCESS);
		pfnic_wire_fail(qp, IB_EVENT_QP_ACCESS_ERR);
		return false;
	}
	w->rx_off += pkt->paylen;
	if (op == PFNIC_OP_WRITE_FIRST || op == PFNIC_OP_WRITE_MIDDLE)
		return true;
	w->msn++;
	if (!imm)
		return true;
	wc.wr_id = w->rwqe->wr_id;
	wc.opcode = IB_WC_RECV_RDMA_WITH_IMM;
	wc.byte_len = w->dma_len;
	wc.src_qp = qp->attr.dest_qp_num;
	wc.wc_flags = IB_WC_WITH_IMM;
	memcpy(&wc.ex.imm_data, skb->data + pkt->payload - 4, 4);
	pfnic_wire_deliver(qp, rgen, &wc, pkt->flags & PFNIC_BTH_SE);
	return true;
}

/*
 * A READ request (new, or a duplicate: a READ may be answered again, from memory as it is
 * now): checked, then answered by pfnic_wire_read_burst(), at the path MTU, a burst at a
 * time. Its PSNs are taken at once; a duplicate that reaches past the expected PSN (the
 * rest of a READ that stopped early) moves it on too. Return: whether it is being answered
 * (false: it got a NAK, and the QP failed, or a duplicate went unanswered).
 */
static bool pfnic_wire_read(struct pfnic_qp *qp, struct sk_buff *skb, bool duplicate)
{
	struct pfnic_pkt *pkt = PFNIC_PKT(skb);
	const struct pfnic_reth *reth = (const void *)(skb->data + pkt->hdr);
	struct pfnic_wire *w = &qp->wire;
	u64 va = be64_to_cpu(reth->va);
	u32 rkey = be32_to_cpu(reth->rkey), len = be32_to_cpu(reth->len);
	u32 n = max_t(u32, 1, DIV_ROUND_UP_ULL(len, w->mtu));
	struct pfnic_mr *mr = NULL;

	/* a READ of no bytes reaches no memory: its key is not looked at */
	if (len && (qp->attr.qp_access_flags & IB_ACCESS_REMOTE_READ))
		mr = pfnic_mr_lookup(rkey, qp->ibqp.pd, va, len, IB_ACCESS_REMOTE_READ);
	if (len && !mr) {
		if (duplicate)
			return false;
		pfnic_wire_nak(qp, pkt->psn, PFNIC_NAK_REM_ACCESS);
		pfnic_wire_fail(qp, IB_EVENT_QP_ACCESS_ERR);
		return false;
	}
	if (mr)
		pfnic_mr_put(mr);
	if (!duplicate)
		w->msn++;
	if (pfnic_psn_diff(pkt->psn + n, w->epsn) > 0) {
		w->epsn = (pkt->psn + n) & PFNIC_PSN_MASK;
		w->nak_sent = false;
	}
	w->rd_rkey = rkey;
	w->rd_va = va;
	w->rd_len = len;
	w->rd_psn = pkt->psn;
	w->rd_n = n;
	w->rd_i = 0;
	w->rd_active = true;
	return true;
}

/*
 * A page a READ's response needs once it has begun: a requester takes no NAK in the middle
 * of a READ's responses (rxe fails the READ), so the responder resolves the fault itself,
 * as a NIC stalls its responder, and goes on; the requester may time out meanwhile and ask
 * again, a duplicate answered afresh. Return: false if the fault could not be resolved
 * (the READ's next try gets a NAK: w->fault_failed).
 */
static bool pfnic_wire_read_fault(struct pfnic_qp *qp, u32 psn)
{
	struct pfnic_wire *w = &qp->wire;
	struct pfnic_mr *mr = w->met.mr;
	unsigned int rounds;
	int rv = -EBUSY;

	for (rounds = 0; rv == -EBUSY && rounds < PFNIC_WIRE_FAULT_ROUNDS; rounds++)
		rv = pfnic_odp_fault(mr, w->met.va, w->met.len, 0);
	w->met.mr = NULL;
	pfnic_mr_put(mr);
	if (!rv)
		return true;
	w->fault_psn = psn;
	WRITE_ONCE(w->fault_failed, true);
	return false;
}

/*
 * Sends the next responses of the READ being answered: PFNIC_WIRE_BURST at most, so that
 * a long READ neither floods the netdev's queue nor keeps the CPU. A page missing before
 * the first response gets an RNR NAK of the READ's PSN, the expected PSN moved back to it:
 * the requester asks again once the page is in. One missing later is resolved here
 * (pfnic_wire_read_fault()).
 * Return: true when the READ is answered (or ended).
 */
static bool pfnic_wire_read_burst(struct pfnic_qp *qp)
{
	struct pfnic_wire *w = &qp->wire;
	unsigned int burst = PFNIC_WIRE_BURST;

	while (w->rd_i < w->rd_n && burst) {
		u32 i = w->rd_i, n = w->rd_n, hdr = PFNIC_BTH_LEN, psn;
		u32 plen = min_t(u64, w->rd_len - (u64)i * w->mtu, w->mtu);
		enum ib_wc_status status;
		enum pfnic_step step;
		struct sk_buff *resp;
		u8 op;

		if (n == 1)
			op = PFNIC_OP_READ_RESP_ONLY;
		else if (!i)
			op = PFNIC_OP_READ_RESP_FIRST;
		else if (i == n - 1)
			op = PFNIC_OP_READ_RESP_LAST;
		else
			op = PFNIC_OP_READ_RESP_MIDDLE;
		if (op != PFNIC_OP_READ_RESP_MIDDLE)
			hdr += PFNIC_AETH_LEN;
		psn = (w->rd_psn + i) & PFNIC_PSN_MASK;
		resp = pfnic_pkt_alloc(qp->pfnic, hdr, plen);
		if (!resp)
			break;
		step = pfnic_rkey_io(qp, &w->met, w->rd_rkey, qp->ibqp.pd,
				     w->rd_va + (u64)i * w->mtu, resp->data + hdr, plen, false,
				     &status);
		if (step == PFNIC_FAULT && i && pfnic_wire_read_fault(qp, psn)) {
			kfree_skb(resp);
			continue;
		}
		if (step == PFNIC_FAULT || status != IB_WC_SUCCESS) {
			kfree_skb(resp);
			w->rd_active = false;
			/* the PSNs from here on are the READ's again, when it is asked for */
			if (pfnic_psn_diff(w->epsn, psn) > 0)
				w->epsn = psn;
			if (step == PFNIC_FAULT && !i)
				pfnic_wire_rnr(qp, psn, true);
			return true;
		}
		pfnic_wire_bth(resp, op, 0, qp->attr.dest_qp_num, psn, false, plen);
		if (hdr > PFNIC_BTH_LEN)
			put_unaligned_be32(PFNIC_AETH_NO_CREDITS << 24 | (w->msn & 0xffffff),
					   resp->data + PFNIC_BTH_LEN);
		pfnic_pkt_send(qp->pfnic, resp, &w->sgid, &w->dgid, w->sport);
		w->rd_i++;
		burst--;
	}
	if (w->rd_i < w->rd_n)
		return false;
	w->rd_active = false;
	return true;
}

/* Sends the ATOMIC ACK of @psn with @orig. */
static void pfnic_wire_atomic_ack(struct pfnic_qp *qp, u32 psn, u64 orig)
{
	struct pfnic_wire *w = &qp->wire;
	struct sk_buff *skb;

	skb = pfnic_pkt_alloc(qp->pfnic, PFNIC_BTH_LEN + PFNIC_AETH_LEN + PFNIC_ATMACK_LEN, 0);
	if (!skb)
		return;
	pfnic_wire_bth(skb, PFNIC_OP_ATOMIC_ACK, 0, qp->attr.dest_qp_num, psn, false, 0);
	put_unaligned_be32(PFNIC_AETH_NO_CREDITS << 24 | (w->msn & 0xffffff),
			   skb->data + PFNIC_BTH_LEN);
	put_unaligned_be64(orig, skb->data + PFNIC_BTH_LEN + PFNIC_AETH_LEN);
	pfnic_pkt_send(qp->pfnic, skb, &w->sgid, &w->dgid, w->sport);
	if (pfnic_psn_diff(psn, w->ack_owed_psn) >= 0)
		w->ack_owed = false;
}

/*
 * An atomic (CMP_SWAP, FETCH_ADD) or ATOMIC_WRITE at the expected PSN: carried out once,
 * its answer recorded for a duplicate. Return: as pfnic_wire_recv_send().
 */
static bool pfnic_wire_atomic(struct pfnic_qp *qp, struct sk_buff *skb)
{
	struct pfnic_pkt *pkt = PFNIC_PKT(skb);
	struct pfnic_wire *w = &qp->wire;
	u8 op = PFNIC_OP_CODE(pkt->opcode);
	bool write = op == PFNIC_OP_ATOMIC_WRITE;
	u32 opcode, rkey;
	u64 va, cmp = 0, swap = 0, orig = 0;
	enum pfnic_step step;
	struct pfnic_mr *mr;

	if (write) {
		const struct pfnic_reth *reth = (const void *)(skb->data + pkt->hdr);

		if (pkt->paylen != sizeof(u64) || be32_to_cpu(reth->len) != sizeof(u64)) {
			pfnic_wire_nak(qp, pkt->psn, PFNIC_NAK_INV_REQ);
			pfnic_wire_fail(qp, IB_EVENT_QP_REQ_ERR);
			return false;
		}
		va = be64_to_cpu(reth->va);
		rkey = be32_to_cpu(reth->rkey);
		memcpy(&cmp, skb->data + pkt->payload, sizeof(u64));
		opcode = PFNIC_WR_ATOMIC_WRITE;
	} else {
		const struct pfnic_atmeth *ae = (const void *)(skb->data + pkt->hdr);

		va = be64_to_cpu(ae->va);
		rkey = be32_to_cpu(ae->rkey);
		if (op == PFNIC_OP_CMP_SWAP) {
			cmp = be64_to_cpu(ae->compare);
			swap = be64_to_cpu(ae->swap_add);
			opcode = IB_WR_ATOMIC_CMP_AND_SWP;
		} else {
			cmp = be64_to_cpu(ae->swap_add);
			opcode = IB_WR_ATOMIC_FETCH_AND_ADD;
		}
	}
	if (va & (sizeof(u64) - 1)) {
		pfnic_wire_nak(qp, pkt->psn, PFNIC_NAK_INV_REQ);
		pfnic_wire_fail(qp, IB_EVENT_QP_REQ_ERR);
		return false;
	}
	mr = (qp->attr.qp_access_flags & (write ? IB_ACCESS_REMOTE_WRITE :
					  IB_ACCESS_REMOTE_ATOMIC)) ?
	     pfnic_mr_lookup(rkey, qp->ibqp.pd, va, sizeof(u64),
			     write ? IB_ACCESS_REMOTE_WRITE : IB_ACCESS_REMOTE_ATOMIC) : NULL;
	if (!mr) {
		pfnic_wire_nak(qp, pkt->psn, PFNIC_NAK_REM_ACCESS);
		pfnic_wire_fail(qp, IB_EVENT_QP_ACCESS_ERR);
		return false;
	}
	if (pfnic_mr_uva(mr, va) & (sizeof(u64) - 1)) {
		pfnic_mr_put(mr);
		pfnic_wire_nak(qp, pkt->psn, PFNIC_NAK_INV_REQ);
		pfnic_wire_fail(qp, IB_EVENT_QP_REQ_ERR);
		return false;
	}
	step = pfnic_atomic_word(&w->met, mr, va, opcode, cmp, swap, &orig);
	pfnic_mr_put(mr);
	if (step == PFNIC_FAULT) {
		pfnic_wire_rnr(qp, pkt->psn, true);
		return false;
	}
	w->msn++;
	w->atomics[w->atomic_next].psn = pkt->psn;
	w->atomics[w->atomic_next].orig = orig;
	w->atomics[w->atomic_next].valid = true;
	w->atomic_next = (w->atomic_next + 1) % PFNIC_WIRE_ATOMICS;
	if (write)
		pfnic_wire_ack(qp, pkt->psn, PFNIC_AETH_NO_CREDITS);
	else
		pfnic_wire_atomic_ack(qp, pkt->psn, orig);
	return true;
}

/* Whether an operation may follow the last one a responder took (a message's packets). */
static bool pfnic_wire_in_order(u8 last, u8 op)
{
	bool send_open = last == PFNIC_OP_SEND_FIRST || last == PFNIC_OP_SEND_MIDDLE;
	bool write_open = last == PFNIC_OP_WRITE_FIRST || last == PFNIC_OP_WRITE_MIDDLE;
	bool send_cont = op == PFNIC_OP_SEND_MIDDLE || op == PFNIC_OP_SEND_LAST ||
			 op == PFNIC_OP_SEND_LAST_IMM || op == PFNIC_OP_SEND_LAST_INV;
	bool write_cont = op == PFNIC_OP_WRITE_MIDDLE || op == PFNIC_OP_WRITE_LAST ||
			  op == PFNIC_OP_WRITE_LAST_IMM;

	if (send_open)
		return send_cont;
	if (write_open)
		return write_cont;
	return !send_cont && !write_cont;
}

/* A duplicate: answered again, never carried out again. */
static void pfnic_wire_duplicate(struct pfnic_qp *qp, struct sk_buff *skb)
{
	struct pfnic_pkt *pkt = PFNIC_PKT(skb);
	struct pfnic_wire *w = &qp->wire;
	u8 op = PFNIC_OP_CODE(pkt->opcode);

	pfnic_stat_add(qp->pfnic, PFNIC_STAT_DUPLICATE_REQUEST, 1);
	if (op == PFNIC_OP_READ_REQUEST) {
		pfnic_wire_read(qp, skb, true);
	} else if (op == PFNIC_OP_CMP_SWAP || op == PFNIC_OP_FETCH_ADD) {
		unsigned int i;

		for (i = 0; i < PFNIC_WIRE_ATOMICS; i++) {
			if (w->atomics[i].valid && w->atomics[i].psn == pkt->psn) {
				pfnic_wire_atomic_ack(qp, pkt->psn, w->atomics[i].orig);
				break;
			}
		}
	} else {
		/* everything before the expected PSN was taken */
		pfnic_wire_ack(qp, (w->epsn - 1) & PFNIC_PSN_MASK, PFNIC_AETH_NO_CREDITS);
	}
}

/* An RC request from the wire. Context: the QP's receive work. */
static void pfnic_wire_rc_request(struct pfnic_qp *qp, struct sk_buff *skb)
{
	struct pfnic_pkt *pkt = PFNIC_PKT(skb);
	struct pfnic_wire *w = &qp->wire;
	u8 op = PFNIC_OP_CODE(pkt->opcode);
	s32 diff = pfnic_psn_diff(pkt->psn, w->epsn);
	u32 taken;

	if (diff > 0) {
		/* one before it was lost: say which PSN comes next, once */
		pfnic_stat_add(qp->pfnic, PFNIC_STAT_OUT_OF_SEQUENCE, 1);
		if (!w->nak_sent)
			pfnic_wire_nak(qp, w->epsn, PFNIC_NAK_PSN_SEQ);
		w->nak_sent = true;
		return;
	}
	if (diff < 0) {
		pfnic_wire_duplicate(qp, skb);
		return;
	}
	if (!pfnic_wire_in_order(w->last_op, op)) {
		pfnic_wire_nak(qp, pkt->psn, PFNIC_NAK_INV_REQ);
		pfnic_wire_fail(qp, IB_EVENT_QP_REQ_ERR);
		return;
	}
	/* a page fault an earlier try of this request met could not be resolved */
	if (READ_ONCE(w->fault_failed) && pkt->psn == w->fault_psn) {
		w->fault_failed = false;
		pfnic_wire_nak(qp, pkt->psn, op <= PFNIC_OP_SEND_ONLY_IMM ||
			       op == PFNIC_OP_SEND_LAST_INV || op == PFNIC_OP_SEND_ONLY_INV ?
			       PFNIC_NAK_REM_OP : PFNIC_NAK_REM_ACCESS);
		pfnic_wire_fail(qp, IB_EVENT_QP_ACCESS_ERR);
		return;
	}
	switch (op) {
	case PFNIC_OP_READ_REQUEST:
		/* the READ took its PSNs: what is left is its last op and no ACK */
		if (pfnic_wire_read(qp, skb, false))
			w->last_op = op;
		return;
	case PFNIC_OP_CMP_SWAP:
	case PFNIC_OP_FETCH_ADD:
	case PFNIC_OP_ATOMIC_WRITE:
		taken = pfnic_wire_atomic(qp, skb);
		break;
	case PFNIC_OP_WRITE_FIRST:
	case PFNIC_OP_WRITE_MIDDLE:
	case PFNIC_OP_WRITE_LAST:
	case PFNIC_OP_WRITE_LAST_IMM:
	case PFNIC_OP_WRITE_ONLY:
	case PFNIC_OP_WRITE_ONLY_IMM:
		taken = pfnic_wire_recv_write(qp, skb);
		break;
	default:
		taken = pfnic_wire_recv_send(qp, skb);
		break;
	}
	if (!taken)
		return;
	w->epsn = (w->epsn + taken) & PFNIC_PSN_MASK;
	w->nak_sent = false;
	w->last_op = op;
	if (!pkt->ackreq || op == PFNIC_OP_READ_REQUEST || op == PFNIC_OP_CMP_SWAP ||
	    op == PFNIC_OP_FETCH_ADD || op == PFNIC_OP_ATOMIC_WRITE)
		return;
	if (pfnic_wire_ack_follows(qp)) {
		w->ack_owed = true;
		w->ack_owed_psn = pkt->psn;
		pfnic_stat_add(qp->pfnic, PFNIC_STAT_ACKS_COALESCED, 1);
	} else {
		pfnic_wire_ack(qp, pkt->psn, PFNIC_AETH_NO_CREDITS);
	}
}

/*
 * A datagram from the wire, for a UD or GSI QP: its Q_Key checked, into the head receive
 * WQE after the GRH its IP header gives. Lost if the QP has no receive WQE or its memory
 * is not there (a fault is resolved for the next).
 */
static void pfnic_wire_ud_receive(struct pfnic_qp *qp, struct sk_buff *skb)
{
	struct pfnic_pkt *pkt = PFNIC_PKT(skb);
	struct pfnic_wire *w = &qp->wire;
	const struct pfnic_deth *deth = (const void *)(skb->data + pkt->hdr);
	struct ib_wc wc = {};
	enum ib_wc_status status;
	enum pfnic_step step;
	u8 grh[PFNIC_GRH_LEN] = {};
	u32 rgen;

	if (be32_to_cpu(deth->qkey) != qp->attr.qkey)
		return;
	/* one sender at a time, from here or from this kernel (pfnic_resp_datagram()) */
	mutex_lock(&qp->deliver_lock);
	if (!pfnic_wire_take_recv(qp, &rgen))
		goto unlock;
	wc.wr_id = w->rwqe->wr_id;
	wc.opcode = IB_WC_RECV;
	if (w->rwqe->total_len < PFNIC_GRH_LEN + pkt->paylen) {
		/*
		 * Too long: a UD QP's receive fails (as from this kernel); the MAD layer's QP1
		 * drops it, so that no host can stop the device's connection manager with one
		 * datagram.
		 */
		if (qp->ibqp.qp_type == IB_QPT_GSI) {
			pfnic_recv_release(qp);
			pfnic_stat_add(qp->pfnic, PFNIC_STAT_RX_DROPPED, 1);
			goto unlock;
		}
		wc.status = IB_WC_LOC_LEN_ERR;
		pfnic_wire_deliver(qp, rgen, &wc, false);
		goto unlock;
	}
	/* RoCE v2: the GRH slot holds the IP header, an IPv4 one in its last 20 bytes */
	if (pkt->v4)
		memcpy(grh + 20, skb->data, 20);
	else
		memcpy(grh, skb->data, PFNIC_GRH_LEN);
	step = pfnic_sgl_io(qp, &w->met, w->rwqe->sge, w->rwqe->num_sge, pfnic_recv_pd(qp),
			    false, 0, grh, PFNIC_GRH_LEN, true, true, &status);
	if (step == PFNIC_DONE && status == IB_WC_SUCCESS)
		step = pfnic_sgl_io(qp, &w->met, w->rwqe->sge, w->rwqe->num_sge,
				    pfnic_recv_pd(qp), false, PFNIC_GRH_LEN,
				    skb->data + pkt->payload, pkt->paylen, true, true, &status);
	if (step == PFNIC_FAULT) {
		pfnic_recv_release(qp);
		pfnic_wire_resolve(qp, pkt->psn);
		goto unlock;
	}
	if (status != IB_WC_SUCCESS) {
		wc.status = IB_WC_LOC_PROT_ERR;
		pfnic_wire_deliver(qp, rgen, &wc, false);
		goto unlock;
	}
	wc.byte_len = PFNIC_GRH_LEN + pkt->paylen;
	wc.src_qp = be32_to_cpu(deth->sqp) & PFNIC_QPN_MASK;
	wc.wc_flags = IB_WC_GRH | IB_WC_WITH_NETWORK_HDR_TYPE;
	wc.network_hdr_type = pkt->v4 ? RDMA_NETWORK_IPV4 : RDMA_NETWORK_IPV6;
	/* as the direct path does: mlx5's L3 type in the SL bits (UCX's UD reads it) */
	wc.sl = pkt->v4 ? 2 : 1;
	if (PFNIC_OP_CODE(pkt->opcode) == PFNIC_OP_SEND_ONLY_IMM) {
		wc.wc_flags |= IB_WC_WITH_IMM;
		memcpy(&wc.ex.imm_data, skb->data + pkt->hdr + PFNIC_DETH_LEN, 4);
	}
	pfnic_wire_deliver(qp, rgen, &wc, pkt->flags & PFNIC_BTH_SE);
unlock:
	mutex_unlock(&qp->deliver_lock);
}

/**
 * pfnic_wire_request_arrived() - queue a request (or a datagram) for a QP's responder
 * @qp: the QP, which the caller holds a reference to
 * @skb: the packet, checked by pfnic_net.c; consumed
 *
 * Context: softirq.
 */
void pfnic_wire_request_arrived(struct pfnic_qp *qp, struct sk_buff *skb)
{
	if (skb_queue_len(&qp->wire.rxq) >= PFNIC_WIRE_QUEUE_MAX) {
		pfnic_stat_add(qp->pfnic, PFNIC_STAT_RX_DROPPED, 1);
		kfree_skb(skb);
		return;
	}
	skb_queue_tail(&qp->wire.rxq, skb);
	queue_work(pfnic_wq, &qp->wire.rx_work);
}

/*
 * Whether a request waiting in the QP's queue asks again for the READ being answered (its
 * PSN within the READ's): the requester lost one of its responses, and drops what follows
 * it, so that sending the rest would only hold the new answer back.
 * Context: the QP's receive work.
 */
static bool pfnic_wire_read_asked_again(struct pfnic_qp *qp)
{
	struct pfnic_wire *w = &qp->wire;
	struct sk_buff *skb;
	unsigned long flags;
	bool again = false;

	spin_lock_irqsave(&w->rxq.lock, flags);
	skb_queue_walk(&w->rxq, skb) {
		const struct pfnic_pkt *pkt = PFNIC_PKT(skb);

		if (pkt->opcode == (PFNIC_OP_RC | PFNIC_OP_READ_REQUEST) &&
		    pfnic_psn_diff(pkt->psn, w->rd_psn) >= 0 &&
		    pfnic_psn_diff(pkt->psn, w->rd_psn + w->rd_n) < 0) {
			again = true;
			break;
		}
	}
	spin_unlock_irqrestore(&w->rxq.lock, flags);
	return again;
}

/**
 * pfnic_wire_rx_work() - the responder on the wire: carry out a QP's requests in order
 * @work: the QP's wire.rx_work
 *
 * A QP that does not receive (RESET, INIT, ERR) drops what comes, as a NIC would.
 *
 * Context: process, pfnic_wq (a work item runs on one CPU at a time).
 */
void pfnic_wire_rx_work(struct work_struct *work)
{
	struct pfnic_qp *qp = container_of(work, struct pfnic_qp, wire.rx_work);
	struct sk_buff *skb;
	enum ib_qp_state state;

	for (;;) {
		state = READ_ONCE(qp->attr.qp_state);
		if (state != IB_QPS_RTR && state != IB_QPS_RTS && state != IB_QPS_SQD)
			qp->wire.rd_active = false;
		/*
		 * A READ being answered goes first, a burst at a time, then the work again;
		 * unless the requester asked for it again, which is then answered afresh.
		 */
		if (qp->wire.rd_active && pfnic_wire_read_asked_again(qp))
			qp->wire.rd_active = false;
		if (qp->wire.rd_active && !pfnic_wire_read_burst(qp)) {
			queue_work(pfnic_wq, &qp->wire.rx_work);
			return;
		}
		skb = skb_dequeue(&qp->wire.rxq);
		if (!skb) {
			/* an ACK left for a later one that never went out after all */
			if (qp->wire.ack_owed && (state == IB_QPS_RTR || state == IB_QPS_RTS ||
						  state == IB_QPS_SQD))
				pfnic_wire_ack(qp, qp->wire.ack_owed_psn, PFNIC_AETH_NO_CREDITS);
			qp->wire.ack_owed = false;
			return;
		}
		if (state == IB_QPS_RTR || state == IB_QPS_RTS || state == IB_QPS_SQD) {
			if (qp->ibqp.qp_type == IB_QPT_RC)
				pfnic_wire_rc_request(qp, skb);
			else
				pfnic_wire_ud_receive(qp, skb);
		}
		kfree_skb(skb);
		cond_resched();
	}
}
