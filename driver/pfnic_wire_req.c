// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: the requester on the wire (see pfnic_wire.h). An RC QP whose peer is on another
 * host sends the WQE at its send queue's head as packets: each WQE takes the PSNs of its
 * packets (a READ, one per response packet it asks for), up to PFNIC_WIRE_WINDOW of them
 * beyond the last one acknowledged are in flight, and the WQE completes when the responder
 * has acknowledged its last packet, sent its last READ response, or answered its atomic.
 *
 * While the head waits for its answers, the WQEs after it go out too (pfnic_wire_send_ahead()),
 * as many as the window and the QP's max_rd_atomic allow: their PSNs follow the head's, and a
 * copy of each is kept, from which it is sent again and, once it is the head, run. They
 * complete in order: an answer to a later PSN tells the requester that the responder took
 * the SENDs and WRITEs before it.
 *
 * The answers (ACKs, NAKs, READ responses, atomic ACKs) wait in the QP's queue for the
 * engine, which takes them in its own context. An answer that comes while the engine waits
 * runs it at once. A requester goes back to the first packet not acknowledged, and sends
 * again from there, after a PSN sequence error NAK at once, after an RNR NAK once the
 * responder's RNR timer has run out (rnr_retry times), and after its local ACK timeout
 * (retry_cnt times in a row without progress); then the WQE fails. Going back sends the
 * WQEs sent ahead again too, at the PSNs they had.
 */
#include <rdma/ib_cache.h>

#include "pfnic_engine.h"

/* Packets in flight beyond the last one acknowledged: of the head WQE and those after it. */
#define PFNIC_WIRE_WINDOW	32
/* READ responses past a gap after which the one missing is taken for lost */
#define PFNIC_WIRE_READ_GAP	3
/* PSNs outstanding at most with WQEs sent ahead: a quarter of the PSN space */
#define PFNIC_WIRE_PSN_SPAN	BIT(22)

/* The copy of the WQE the requester sent ahead in its record @slot. */
static struct pfnic_wqe *pfnic_wire_ahead_wqe(struct pfnic_qp *qp, u32 slot)
{
	return (struct pfnic_wqe *)(qp->wire.ahead_wqes + (size_t)slot * qp->cur_size);
}

/* The BTH of a packet pfnic_pkt_alloc() gave, at its data's start. */
void pfnic_wire_bth(struct sk_buff *skb, u8 opcode, u8 flags, u32 qpn, u32 psn, bool ackreq,
		    u32 paylen)
{
	struct pfnic_bth *bth = (struct pfnic_bth *)skb->data;

	bth->opcode = opcode;
	/* the pad count: the payload is padded to 4 bytes */
	bth->flags = flags | (((4 - (paylen & 3)) & 3) << 4);
	bth->pkey = htons(PFNIC_DEFAULT_PKEY);
	bth->qpn = cpu_to_be32(qpn & PFNIC_QPN_MASK);
	bth->apsn = cpu_to_be32((psn & PFNIC_PSN_MASK) | (ackreq ? PFNIC_BTH_ACKREQ : 0));
}

static bool pfnic_wqe_is_atomic(const struct pfnic_wqe *wqe)
{
	return wqe->opcode == IB_WR_ATOMIC_CMP_AND_SWP ||
	       wqe->opcode == IB_WR_ATOMIC_FETCH_AND_ADD || wqe->opcode == PFNIC_WR_ATOMIC_WRITE;
}

/* The opcode of packet @i of @n of a SEND or WRITE. */
static u8 pfnic_wire_opcode(const struct pfnic_wqe *wqe, u32 i, u32 n)
{
	bool first = i == 0, last = i == n - 1;

	switch (wqe->opcode) {
	case IB_WR_RDMA_WRITE:
	case IB_WR_RDMA_WRITE_WITH_IMM:
		if (first && last)
			return wqe->opcode == IB_WR_RDMA_WRITE ? PFNIC_OP_WRITE_ONLY :
								 PFNIC_OP_WRITE_ONLY_IMM;
		if (first)
			return PFNIC_OP_WRITE_FIRST;
		if (!last)
			return PFNIC_OP_WRITE_MIDDLE;
		return wqe->opcode == IB_WR_RDMA_WRITE ? PFNIC_OP_WRITE_LAST :
							 PFNIC_OP_WRITE_LAST_IMM;
	default:
		if (!last)
			return first ? PFNIC_OP_SEND_FIRST : PFNIC_OP_SEND_MIDDLE;
		if (wqe->opcode == IB_WR_SEND_WITH_IMM)
			return first ? PFNIC_OP_SEND_ONLY_IMM : PFNIC_OP_SEND_LAST_IMM;
		if (wqe->opcode == IB_WR_SEND_WITH_INV)
			return first ? PFNIC_OP_SEND_ONLY_INV : PFNIC_OP_SEND_LAST_INV;
		return first ? PFNIC_OP_SEND_ONLY : PFNIC_OP_SEND_LAST;
	}
}

/* Whether a WQE takes one of the responder's READ and atomic resources (max_rd_atomic). */
static bool pfnic_wqe_reads(const struct pfnic_wqe *wqe)
{
	return wqe->opcode == IB_WR_RDMA_READ || pfnic_wqe_is_atomic(wqe);
}

/* The PSNs a WQE takes: a READ, one per response packet it asks for. */
static u32 pfnic_wire_psns(const struct pfnic_wire *w, const struct pfnic_wqe *wqe)
{
	if (pfnic_wqe_is_atomic(wqe))
		return 1;
	return max_t(u32, 1, DIV_ROUND_UP_ULL(wqe->total_len, w->mtu));
}

/*
 * Sends packet @i of @npkts of @wqe, a SEND or a WRITE whose first PSN is @psn; a page of
 * its local memory that is not there is recorded in @f. Return: PFNIC_DONE (check @status:
 * a bad local buffer fails the WQE), PFNIC_FAULT or PFNIC_ABORT (the QP left RTS meanwhile).
 */
static enum pfnic_step pfnic_wire_send_data(struct pfnic_qp *qp, struct pfnic_wqe *wqe,
					    u32 psn, u32 npkts, u32 i, bool ackreq,
					    struct pfnic_fault *f, enum ib_wc_status *status)
{
	struct pfnic_wire *w = &qp->wire;
	u64 off = (u64)i * w->mtu;
	u32 len = min_t(u64, wqe->total_len - off, w->mtu);
	u8 op = pfnic_wire_opcode(wqe, i, npkts);
	const struct ib_sge *lsgl;
	struct ib_sge one;
	struct sk_buff *skb;
	enum pfnic_step step;
	u32 hdr = PFNIC_BTH_LEN, lnum;
	u8 *p;

	if (op == PFNIC_OP_WRITE_FIRST || op == PFNIC_OP_WRITE_ONLY ||
	    op == PFNIC_OP_WRITE_ONLY_IMM)
		hdr += PFNIC_RETH_LEN;
	if (op == PFNIC_OP_WRITE_ONLY_IMM || op == PFNIC_OP_WRITE_LAST_IMM ||
	    op == PFNIC_OP_SEND_ONLY_IMM || op == PFNIC_OP_SEND_LAST_IMM ||
	    op == PFNIC_OP_SEND_ONLY_INV || op == PFNIC_OP_SEND_LAST_INV)
		hdr += 4;
	skb = pfnic_pkt_alloc(qp->pfnic, hdr, len);
	if (!skb)
		return PFNIC_DONE;	/* as a packet lost: the timeout sends it again */
	lnum = pfnic_req_payload(wqe, &one, &lsgl);
	step = pfnic_sgl_io(qp, f, lsgl, lnum, qp->ibqp.pd, wqe->send_flags & IB_SEND_INLINE,
			    off, skb->data + hdr, len, false, false, status);
	if (step != PFNIC_DONE || *status != IB_WC_SUCCESS) {
		kfree_skb(skb);
		if (*status == IB_WC_LOC_LEN_ERR)
			*status = IB_WC_LOC_PROT_ERR;
		return step;
	}
	pfnic_wire_bth(skb, op, i == npkts - 1 && (wqe->send_flags & IB_SEND_SOLICITED) ?
		       PFNIC_BTH_SE : 0, qp->attr.dest_qp_num, psn + i, ackreq, len);
	p = skb->data + PFNIC_BTH_LEN;
	if (hdr - PFNIC_BTH_LEN >= PFNIC_RETH_LEN) {
		struct pfnic_reth *reth = (struct pfnic_reth *)p;

		reth->va = cpu_to_be64(wqe->remote_addr);
		reth->rkey = cpu_to_be32(wqe->rkey);
		reth->len = cpu_to_be32(wqe->total_len);
		p += PFNIC_RETH_LEN;
	}
	if (op == PFNIC_OP_SEND_ONLY_INV || op == PFNIC_OP_SEND_LAST_INV)
		put_unaligned_be32(wqe->invalidate_rkey, p);
	else if (p < skb->data + hdr)
		memcpy(p, &wqe->imm_data, 4);
	pfnic_pkt_send(qp->pfnic, skb, &w->sgid, &w->dgid, w->sport);
	return PFNIC_DONE;
}

/*
 * Sends the packets of @wqe (a SEND or a WRITE of @npkts from PSN @psn) from *@sent up to
 * @limit, the last of them asking for an ACK; those below *@high went out before, and are
 * counted as sent again. Return: as pfnic_wire_send_data(), for the packet it stopped at.
 */
static enum pfnic_step pfnic_wire_send_run(struct pfnic_qp *qp, struct pfnic_wqe *wqe, u32 psn,
					   u32 npkts, u32 *sent, u32 *high, u32 limit,
					   struct pfnic_fault *f, enum ib_wc_status *status)
{
	enum pfnic_step step;

	while (*sent < limit) {
		step = pfnic_wire_send_data(qp, wqe, psn, npkts, *sent, *sent == limit - 1, f,
					    status);
		if (step != PFNIC_DONE || *status != IB_WC_SUCCESS)
			return step;
		if (*sent < *high)
			pfnic_stat_add(qp->pfnic, PFNIC_STAT_RETRANSMITS, 1);
		++*sent;
		*high = max(*high, *sent);
	}
	return PFNIC_DONE;
}

/*
 * Sends @wqe's READ request, whose first PSN is @psn, for what is not in yet (the @acked
 * responses received in order), or its atomic.
 */
static void pfnic_wire_send_request(struct pfnic_qp *qp, struct pfnic_wqe *wqe, u32 psn,
				    u32 acked)
{
	struct pfnic_wire *w = &qp->wire;
	struct sk_buff *skb;
	u8 op;

	if (wqe->opcode == IB_WR_RDMA_READ) {
		u64 off = (u64)acked * w->mtu;
		struct pfnic_reth *reth;

		skb = pfnic_pkt_alloc(qp->pfnic, PFNIC_BTH_LEN + PFNIC_RETH_LEN, 0);
		if (!skb)
			return;
		reth = (struct pfnic_reth *)(skb->data + PFNIC_BTH_LEN);
		reth->va = cpu_to_be64(wqe->remote_addr + off);
		reth->rkey = cpu_to_be32(wqe->rkey);
		reth->len = cpu_to_be32(wqe->total_len - off);
		op = PFNIC_OP_READ_REQUEST;
	} else if (wqe->opcode == PFNIC_WR_ATOMIC_WRITE) {
		struct pfnic_reth *reth;

		skb = pfnic_pkt_alloc(qp->pfnic, PFNIC_BTH_LEN + PFNIC_RETH_LEN, sizeof(u64));
		if (!skb)
			return;
		reth = (struct pfnic_reth *)(skb->data + PFNIC_BTH_LEN);
		reth->va = cpu_to_be64(wqe->remote_addr);
		reth->rkey = cpu_to_be32(wqe->rkey);
		reth->len = cpu_to_be32(sizeof(u64));
		/* the value as the requester's memory holds it: the responder stores it so */
		memcpy(skb->data + PFNIC_BTH_LEN + PFNIC_RETH_LEN, &wqe->compare_add,
		       sizeof(u64));
		op = PFNIC_OP_ATOMIC_WRITE;
	} else {
		struct pfnic_atmeth *ae;

		skb = pfnic_pkt_alloc(qp->pfnic, PFNIC_BTH_LEN + PFNIC_ATMETH_LEN, 0);
		if (!skb)
			return;
		ae = (struct pfnic_atmeth *)(skb->data + PFNIC_BTH_LEN);
		ae->va = cpu_to_be64(wqe->remote_addr);
		ae->rkey = cpu_to_be32(wqe->rkey);
		if (wqe->opcode == IB_WR_ATOMIC_CMP_AND_SWP) {
			ae->swap_add = cpu_to_be64(wqe->swap);
			ae->compare = cpu_to_be64(wqe->compare_add);
			op = PFNIC_OP_CMP_SWAP;
		} else {
			ae->swap_add = cpu_to_be64(wqe->compare_add);
			op = PFNIC_OP_FETCH_ADD;
		}
	}
	pfnic_wire_bth(skb, op, 0, qp->attr.dest_qp_num, psn + acked, true,
		       op == PFNIC_OP_ATOMIC_WRITE ? sizeof(u64) : 0);
	pfnic_pkt_send(qp->pfnic, skb, &w->sgid, &w->dgid, w->sport);
}

/* The completion status a NAK's code gives its WQE. */
static enum ib_wc_status pfnic_nak_status(u8 code)
{
	switch (code) {
	case PFNIC_NAK_REM_ACCESS:
		return IB_WC_REM_ACCESS_ERR;
	case PFNIC_NAK_REM_OP:
		return IB_WC_REM_OP_ERR;
	default:
		return IB_WC_REM_INV_REQ_ERR;
	}
}

/*
 * Goes back to the head's first packet not acknowledged: it and the WQEs sent ahead go out
 * again from there, at the PSNs they had.
 */
static void pfnic_wire_go_back(struct pfnic_wire *w)
{
	u32 i;

	w->sent = w->acked;
	for (i = 0; i < w->nahead; i++)
		w->ahead[(w->ahead_first + i) % PFNIC_WIRE_AHEAD].sent = 0;
}

/*
 * One answer for the head WQE: moves what it acknowledges forward, or takes its data. An
 * answer to an earlier PSN (a duplicate, one overtaken) is dropped. One to a later PSN
 * that was sent, a WQE sent ahead's, says that the responder took all of a head SEND, WRITE
 * or ATOMIC_WRITE: it completes the head, and stays queued for the WQE it answers
 * (@later). A READ or an atomic head is not answered by it: the head's answer was lost, and
 * the head and what follows it go again at once (answered from the responder's record),
 * once for each place the head's answers stopped; the answer is dropped.
 * Return: PFNIC_DONE to go on (@status set if the answer failed the WQE), PFNIC_RNR (a
 * wait the responder asked for), PFNIC_FAULT (the WQE's own memory is not there: the
 * answer stays queued for the engine's next run).
 */
static enum pfnic_step pfnic_wire_take_answer(struct pfnic_qp *qp, struct sk_buff *skb,
					      bool *later, enum ib_wc_status *status)
{
	struct pfnic_pkt *pkt = PFNIC_PKT(skb);
	struct pfnic_wire *w = &qp->wire;
	struct pfnic_wqe *wqe = qp->cur;
	s32 off = pfnic_psn_diff(pkt->psn, w->wqe_psn);
	u8 op = PFNIC_OP_CODE(pkt->opcode), syn = 0;
	bool read = wqe->opcode == IB_WR_RDMA_READ;
	enum pfnic_step step;
	u64 orig;

	if (op != PFNIC_OP_READ_RESP_MIDDLE)
		syn = skb->data[pkt->hdr];
	if (off < 0)
		return PFNIC_DONE;
	if (off >= w->npkts) {
		if (off >= pfnic_psn_diff(w->next_psn, w->wqe_psn))
			return PFNIC_DONE;
		if (!pfnic_wqe_reads(wqe) || wqe->opcode == PFNIC_WR_ATOMIC_WRITE) {
			w->acked = w->npkts;
			*later = true;
		} else if (w->reasked != w->acked) {
			/* the head's answer was lost: ask again at once, once from each place */
			w->reasked = w->acked;
			pfnic_wire_go_back(w);
			w->deadline = 0;
			pfnic_stat_add(qp->pfnic, PFNIC_STAT_RETRANSMITS, 1);
		}
		return PFNIC_DONE;
	}
	if (op == PFNIC_OP_ACK) {
		switch (PFNIC_AETH_TYPE(syn)) {
		case PFNIC_AETH_ACK:
			/*
			 * A READ, CMP_SWAP or FETCH_ADD is acknowledged by its answer alone; an
			 * ATOMIC_WRITE by an ACK, as a WRITE is.
			 */
			if ((!read && !pfnic_wqe_is_atomic(wqe)) ||
			    wqe->opcode == PFNIC_WR_ATOMIC_WRITE)
				w->acked = max_t(u32, w->acked, off + 1);
			return PFNIC_DONE;
		case PFNIC_AETH_RNR_NAK:
			/* an RNR NAK of a PSN acknowledged since is an old one */
			if (off < w->acked)
				return PFNIC_DONE;
			/* what came before the NAK's PSN was taken */
			if (!read)
				w->acked = off;
			pfnic_wire_go_back(w);
			/* the wait is the responder's: the ACK timeout starts again after it */
			w->deadline = 0;
			qp->rnr_timer = PFNIC_AETH_VALUE(syn);
			return PFNIC_RNR;
		case PFNIC_AETH_NAK:
			if (PFNIC_AETH_VALUE(syn) == PFNIC_NAK_PSN_SEQ) {
				if (!read)
					w->acked = max_t(u32, w->acked, off);
				pfnic_wire_go_back(w);
				w->deadline = 0;
				pfnic_stat_add(qp->pfnic, PFNIC_STAT_RCVD_SEQ_ERR, 1);
				return PFNIC_DONE;
			}
			*status = pfnic_nak_status(PFNIC_AETH_VALUE(syn));
			return PFNIC_DONE;
		default:
			return PFNIC_DONE;
		}
	}
	if (op == PFNIC_OP_ATOMIC_ACK) {
		if (!pfnic_wqe_is_atomic(wqe) || wqe->opcode == PFNIC_WR_ATOMIC_WRITE)
			return PFNIC_DONE;
		orig = get_unaligned_be64(skb->data + pkt->hdr + PFNIC_AETH_LEN);
		step = pfnic_put_sgl(qp, &wqe->sge[0], 1, qp->ibqp.pd, &orig, sizeof(orig),
				     false, status);
		if (step == PFNIC_DONE)
			w->acked = 1;
		return step;
	}
	/*
	 * A READ response: its data, in order, into the WQE's buffers. After a gap the rest of
	 * that response is dropped. Once PFNIC_WIRE_READ_GAP responses came past it, the one
	 * missing is taken for lost (not merely overtaken), and the READ is asked for again
	 * from there at once, once for each place it stopped: asking at every packet past the
	 * gap would ask many times over. The responder then stops sending what would be
	 * dropped (pfnic_wire_rx_work()).
	 */
	if (!read)
		return PFNIC_DONE;
	if (off != w->acked) {
		if (off >= w->acked + PFNIC_WIRE_READ_GAP && w->reasked != w->acked) {
			w->reasked = w->acked;
			/* what was sent behind it, whose answers are dropped meanwhile, too */
			pfnic_wire_go_back(w);
			w->deadline = 0;
			pfnic_stat_add(qp->pfnic, PFNIC_STAT_RETRANSMITS, 1);
		}
		return PFNIC_DONE;
	}
	if (pkt->paylen != min_t(u64, w->mtu, wqe->total_len - (u64)off * w->mtu)) {
		*status = IB_WC_BAD_RESP_ERR;
		return PFNIC_DONE;
	}
	step = pfnic_sgl_io(qp, &qp->fault, wqe->sge, wqe->num_sge, qp->ibqp.pd, false,
			    (u64)off * w->mtu, skb->data + pkt->payload, pkt->paylen, true, false,
			    status);
	if (*status == IB_WC_LOC_LEN_ERR)
		*status = IB_WC_LOC_PROT_ERR;
	if (step == PFNIC_DONE && *status == IB_WC_SUCCESS)
		w->acked++;
	return step;
}

/*
 * Takes the WQE after those sent ahead, if the requester may send it before the ones
 * before it complete: one the wire carries, posted well formed, within max_rd_atomic if it
 * is a READ or an atomic (@reads: those outstanding), and not fenced behind a READ or an
 * atomic. Return: whether it was taken (its record and copy are the last ones now).
 * Context: the engine; takes @qp->lock.
 */
static bool pfnic_wire_take_ahead(struct pfnic_qp *qp, u32 *reads)
{
	struct pfnic_wire *w = &qp->wire;
	u32 slot = (w->ahead_first + w->nahead) % PFNIC_WIRE_AHEAD, after = w->nahead + 1;
	struct pfnic_wqe *wqe = pfnic_wire_ahead_wqe(qp, slot);
	struct pfnic_wire_ahead *a = &w->ahead[slot];
	bool taken = false;

	spin_lock_irq(&qp->lock);
	/* none left to take: one posted later is looked for before the engine waits */
	w->ahead_starved = pfnic_wq_count(&qp->sq) <= after;
	if (qp->attr.qp_state == IB_QPS_RTS && qp->sq.gen == qp->wqe_gen &&
	    pfnic_wq_count(&qp->sq) > after && !pfnic_wq_overrun(&qp->sq)) {
		/* a malformed one is the head's to fail */
		taken = true;
		if (qp->sq.shared)
			taken = !pfnic_wq_fetch_send(qp, after, wqe);
		else
			memcpy(wqe, pfnic_wq_entry(&qp->sq, qp->sq.head + after), qp->sq.stride);
		a->index = pfnic_wq_index_after(&qp->sq, after);
	}
	spin_unlock_irq(&qp->lock);
	if (!taken)
		return false;
	/* an int: PFNIC_WR_ATOMIC_WRITE is not in every kernel's enum */
	switch ((int)wqe->opcode) {
	case IB_WR_SEND:
	case IB_WR_SEND_WITH_IMM:
	case IB_WR_SEND_WITH_INV:
	case IB_WR_RDMA_WRITE:
	case IB_WR_RDMA_WRITE_WITH_IMM:
		if ((wqe->send_flags & IB_SEND_FENCE) && *reads)
			return false;
		break;
	case IB_WR_RDMA_READ:
	case IB_WR_ATOMIC_CMP_AND_SWP:
	case IB_WR_ATOMIC_FETCH_AND_ADD:
	case PFNIC_WR_ATOMIC_WRITE:
		if (*reads >= max_t(u32, 1, qp->attr.max_rd_atomic) ||
		    ((wqe->send_flags & IB_SEND_FENCE) && *reads))
			return false;
		++*reads;
		break;
	default:
		/* the QP's own operations run at the head, in order */
		return false;
	}
	/* the PSNs outstanding stay within half the PSN space, where answers are told apart */
	if (((w->next_psn - w->wqe_psn) & PFNIC_PSN_MASK) + pfnic_wire_psns(w, wqe) >=
	    PFNIC_WIRE_PSN_SPAN)
		return false;
	if (!w->nahead)
		w->ahead_gen = qp->wqe_gen;
	a->psn = w->next_psn;
	a->npkts = pfnic_wire_psns(w, wqe);
	a->sent = 0;
	a->high = 0;
	w->next_psn = (w->next_psn + a->npkts) & PFNIC_PSN_MASK;
	w->nahead++;
	return true;
}

/*
 * Sends what is not in flight of a WQE sent ahead, while the window has room (@inflight:
 * packets in it). A page of its own memory that is not there, or a bad buffer, stops it
 * there: it runs into them again as the head, where they stall or fail it.
 * Return: whether all of it is in flight.
 */
static bool pfnic_wire_send_more(struct pfnic_qp *qp, u32 slot, u32 *inflight)
{
	struct pfnic_wire_ahead *a = &qp->wire.ahead[slot];
	struct pfnic_wqe *wqe = pfnic_wire_ahead_wqe(qp, slot);
	enum ib_wc_status status = IB_WC_SUCCESS;
	struct pfnic_fault f = {};
	u32 before = a->sent, room = PFNIC_WIRE_WINDOW - min_t(u32, *inflight, PFNIC_WIRE_WINDOW);

	if (pfnic_wqe_reads(wqe)) {
		if (!a->sent) {
			pfnic_wire_send_request(qp, wqe, a->psn, 0);
			if (a->high)
				pfnic_stat_add(qp->pfnic, PFNIC_STAT_RETRANSMITS, 1);
			a->sent = a->npkts;
			a->high = a->npkts;
			*inflight += a->npkts;
		}
		return true;
	}
	if (pfnic_wire_send_run(qp, wqe, a->psn, a->npkts, &a->sent, &a->high,
				min(a->npkts, a->sent + room), &f,
				&status) == PFNIC_FAULT)
		pfnic_mr_put(f.mr);
	*inflight += a->sent - before;
	return a->sent == a->npkts;
}

/*
 * Once the head WQE is all in flight: the WQEs after it, those sent ahead first (after a
 * go-back, again), then new ones, while the window has room.
 */
static void pfnic_wire_send_ahead(struct pfnic_qp *qp)
{
	struct pfnic_wire *w = &qp->wire;
	u32 inflight = w->sent - w->acked, reads = pfnic_wqe_reads(qp->cur), i, slot;

	if (!READ_ONCE(w->ahead_wqes))
		return;
	for (i = 0; i < w->nahead; i++) {
		slot = (w->ahead_first + i) % PFNIC_WIRE_AHEAD;
		inflight += w->ahead[slot].sent;
		reads += pfnic_wqe_reads(pfnic_wire_ahead_wqe(qp, slot));
	}
	for (i = 0; inflight < PFNIC_WIRE_WINDOW; i++) {
		if (i == w->nahead &&
		    (w->nahead == PFNIC_WIRE_AHEAD || !pfnic_wire_take_ahead(qp, &reads)))
			return;
		if (!pfnic_wire_send_more(qp, (w->ahead_first + i) % PFNIC_WIRE_AHEAD, &inflight))
			return;
	}
}

/**
 * pfnic_wire_ahead_cur() - the engine's copy of a new head WQE the requester sent ahead
 * @qp: the QP, whose engine fetched the send queue's head into qp->cur
 * @gen: the send queue's generation then
 *
 * A WQE sent ahead runs as it was sent: qp->cur becomes its copy, taken when it went out.
 * Those sent before a flush or a reset are forgotten.
 *
 * Context: the engine, under @qp->lock.
 * Return: whether qp->cur is such a copy (a well-formed WQE, whatever the ring holds now).
 */
bool pfnic_wire_ahead_cur(struct pfnic_qp *qp, u32 gen)
{
	struct pfnic_wire *w = &qp->wire;

	lockdep_assert_held(&qp->lock);
	if (w->nahead && w->ahead_gen != gen)
		w->nahead = 0;
	if (!w->nahead || w->started)
		return false;
	if (w->ahead[w->ahead_first].index != qp->sq.head) {
		w->nahead = 0;
		return false;
	}
	memcpy(qp->cur, pfnic_wire_ahead_wqe(qp, w->ahead_first), qp->cur_size);
	return true;
}

/**
 * pfnic_wire_send() - run qp->cur, an RC WQE, against a peer on another host
 * @qp: the requester; its engine runs it
 * @failed: a page fault of the WQE's own memory could not be resolved
 * @status: the completion status, when the WQE ended
 *
 * Context: the engine (process); takes no lock of its own.
 * Return: PFNIC_DONE with *@status; PFNIC_WAIT (packets in flight: the engine runs again
 * when an answer comes or at qp->wire.deadline); PFNIC_RNR (qp->rnr_timer says how long);
 * PFNIC_FAULT (the WQE's own memory, recorded in qp->fault).
 */
enum pfnic_step pfnic_wire_send(struct pfnic_qp *qp, bool failed, enum ib_wc_status *status)
{
	struct pfnic_wire *w = &qp->wire;
	struct pfnic_wqe *wqe = qp->cur;
	enum pfnic_step step = PFNIC_DONE;
	bool data = wqe->opcode != IB_WR_RDMA_READ && !pfnic_wqe_is_atomic(wqe);
	struct sk_buff *skb;
	u32 acked, limit;

	*status = IB_WC_SUCCESS;
	/* set again only if this run sends ahead all the send queue has */
	w->ahead_starved = false;
	if (failed) {
		*status = IB_WC_LOC_PROT_ERR;
		return PFNIC_DONE;
	}
	if (!w->started && w->nahead) {
		/* sent ahead (the engine took its copy): it goes on from there */
		struct pfnic_wire_ahead *a = &w->ahead[w->ahead_first];

		w->wqe_psn = a->psn;
		w->npkts = a->npkts;
		w->sent = a->sent;
		w->high = a->high;
		w->ahead_first = (w->ahead_first + 1) % PFNIC_WIRE_AHEAD;
		w->nahead--;
	} else if (!w->started) {
		w->npkts = pfnic_wire_psns(w, wqe);
		w->wqe_psn = w->next_psn;
		w->next_psn = (w->next_psn + w->npkts) & PFNIC_PSN_MASK;
		w->sent = 0;
		w->high = 0;
	}
	if (!w->started) {
		w->acked = 0;
		w->reasked = U32_MAX;
		w->deadline = 0;
		w->started = true;
	}

	/* the answers that came */
	acked = w->acked;
	while ((skb = skb_dequeue(&w->acks))) {
		bool later = false;

		step = pfnic_wire_take_answer(qp, skb, &later, status);
		if (step == PFNIC_FAULT) {
			/* taken again once the fault is resolved; the stall is no ACK's fault */
			skb_queue_head(&w->acks, skb);
			w->deadline = 0;
			return step;
		}
		if (later) {
			/* the head is done; the answer is the next WQE's */
			skb_queue_head(&w->acks, skb);
			break;
		}
		kfree_skb(skb);
		if (*status != IB_WC_SUCCESS)
			return PFNIC_DONE;
		if (step == PFNIC_RNR)
			return step;
		/* the answers after the last one of the head are the next WQE's */
		if (w->acked == w->npkts)
			break;
	}
	if (w->acked == w->npkts)
		return PFNIC_DONE;
	if (w->acked != acked) {
		/* progress: the retries count again from here */
		qp->retry_left = qp->attr.retry_cnt;
		w->deadline = 0;
	}
	if (w->deadline && time_after_eq(jiffies, w->deadline)) {
		if (qp->attr.timeout && !qp->retry_left) {
			*status = IB_WC_RETRY_EXC_ERR;
			return PFNIC_DONE;
		}
		if (qp->attr.timeout)
			qp->retry_left--;
		pfnic_stat_add(qp->pfnic, PFNIC_STAT_ACK_TIMEOUTS, 1);
		pfnic_wire_go_back(w);
		w->deadline = 0;
	}

	/* what is not in flight yet: a window's packets, or the request again */
	if (w->sent < w->acked)
		w->sent = w->acked;
	if (data) {
		limit = min(w->npkts, w->acked + PFNIC_WIRE_WINDOW);
		step = pfnic_wire_send_run(qp, wqe, w->wqe_psn, w->npkts, &w->sent, &w->high,
					   limit, &qp->fault, status);
		if (step != PFNIC_DONE || *status != IB_WC_SUCCESS) {
			w->deadline = 0;
			return step;
		}
	} else if (w->sent == w->acked) {
		pfnic_wire_send_request(qp, wqe, w->wqe_psn, w->acked);
		w->sent = w->npkts;
		w->deadline = 0;
	}
	if (w->sent == w->npkts)
		pfnic_wire_send_ahead(qp);
	if (!w->deadline)
		w->deadline = jiffies + pfnic_ack_timeout(qp->attr.timeout);
	return PFNIC_WAIT;
}

/**
 * pfnic_wire_answer_arrived() - queue an answer for a QP's requester, and run it if it waits
 * @qp: the QP, which the caller holds a reference to
 * @skb: the answer, checked by pfnic_net.c; consumed
 *
 * Context: softirq; takes @qp->lock.
 */
void pfnic_wire_answer_arrived(struct pfnic_qp *qp, struct sk_buff *skb)
{
	unsigned long flags;

	/* a requester takes no more than a window's worth of READ responses at once */
	if (skb_queue_len(&qp->wire.acks) >= PFNIC_WIRE_QUEUE_MAX) {
		pfnic_stat_add(qp->pfnic, PFNIC_STAT_RX_DROPPED, 1);
		kfree_skb(skb);
		return;
	}
	skb_queue_tail(&qp->wire.acks, skb);
	spin_lock_irqsave(&qp->lock, flags);
	if (qp->wire.waiting) {
		qp->wire.waiting = false;
		mod_delayed_work(pfnic_wq, &qp->rnr_work, 0);
	}
	spin_unlock_irqrestore(&qp->lock, flags);
}

/**
 * pfnic_wire_datagram() - send qp->cur, a UD (or GSI) send, to a QP on another host
 * @qp: the sender
 * @status: its completion status
 *
 * A datagram is one packet, sent once: like any on a wire it may be lost.
 * Return: PFNIC_DONE with *@status, or PFNIC_FAULT (the WQE's own memory).
 */
enum pfnic_step pfnic_wire_datagram(struct pfnic_qp *qp, enum ib_wc_status *status)
{
	struct pfnic_wqe *wqe = qp->cur;
	u32 hdr = PFNIC_BTH_LEN + PFNIC_DETH_LEN, lnum;
	bool imm = wqe->opcode == IB_WR_SEND_WITH_IMM;
	const struct ib_gid_attr *gattr;
	const struct ib_sge *lsgl;
	struct pfnic_deth *deth;
	struct ib_sge one;
	struct sk_buff *skb;
	enum pfnic_step step;
	union ib_gid sgid;

	*status = IB_WC_SUCCESS;
	gattr = rdma_get_gid_attr(&qp->pfnic->ibdev, PFNIC_PORT, wqe->sgid_index);
	if (IS_ERR(gattr)) {
		*status = IB_WC_LOC_QP_OP_ERR;
		return PFNIC_DONE;
	}
	sgid = gattr->gid;
	rdma_put_gid_attr(gattr);
	if (imm)
		hdr += PFNIC_IMMDT_LEN;
	skb = pfnic_pkt_alloc(qp->pfnic, hdr, wqe->total_len);
	if (!skb)
		return PFNIC_DONE;
	lnum = pfnic_req_payload(qp->cur, &one, &lsgl);
	step = pfnic_sgl_io(qp, &qp->fault, lsgl, lnum, qp->ibqp.pd,
			    wqe->send_flags & IB_SEND_INLINE, 0, skb->data + hdr, wqe->total_len,
			    false, false, status);
	if (step != PFNIC_DONE || *status != IB_WC_SUCCESS) {
		kfree_skb(skb);
		if (*status == IB_WC_LOC_LEN_ERR)
			*status = IB_WC_LOC_PROT_ERR;
		return step;
	}
	pfnic_wire_bth(skb, PFNIC_OP_UD | (imm ? PFNIC_OP_SEND_ONLY_IMM : PFNIC_OP_SEND_ONLY),
		       wqe->send_flags & IB_SEND_SOLICITED ? PFNIC_BTH_SE : 0, wqe->remote_qpn,
		       qp->wire.next_psn++, false, wqe->total_len);
	deth = (struct pfnic_deth *)(skb->data + PFNIC_BTH_LEN);
	/* a Q_Key with its high bit set means the sender's own */
	deth->qkey = cpu_to_be32(wqe->remote_qkey & BIT(31) ? qp->attr.qkey : wqe->remote_qkey);
	deth->sqp = cpu_to_be32(qp->ibqp.qp_num & PFNIC_QPN_MASK);
	if (imm)
		memcpy(skb->data + PFNIC_BTH_LEN + PFNIC_DETH_LEN, &wqe->imm_data, 4);
	pfnic_pkt_send(qp->pfnic, skb, &sgid, &wqe->dgid, pfnic_flow_port(qp->ibqp.qp_num));
	return PFNIC_DONE;
}
