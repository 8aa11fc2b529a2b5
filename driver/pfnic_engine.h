/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * pfnic: the engine, the emulated device's data path, in the parts a NIC has.
 *
 * - The requester (pfnic_req.c) runs each QP's send queue in order on pfnic_wq, or in a
 *   doorbell's own context: it copies the WQE out of its ring, checks the WQE's local side
 *   (its keys, rights and bounds), finds the responder (the connected peer; a datagram's
 *   destination QP or multicast group) and hands it the message. It carries out the
 *   operations of its own device (fast registration, local invalidation, binds) itself.
 * - The responder (pfnic_resp.c) carries a message out on its own QP: its state and rights,
 *   the receive WQE a message lands in (its RQ, SRQ, or the XRC SRQ the message names), the
 *   keys and rights of its MRs, the atomic's word (changed once: a repeated atomic is answered
 *   from that record), its receive completion and its errors.
 * - The completer (pfnic_comp.c) turns how a message ended into the requester's next step:
 *   the send completion, a stall on a page fault until the ODP core has resolved it, a retry
 *   after an RNR NAK or after no ACK came, a failure once the retries are spent.
 * - Translation and copy (pfnic_copy.c) are in one place: keys looked up and checked, bytes
 *   moved through the MRs' translation tables in runs of pages under one hold of their
 *   locks, a missing page recorded as the fault that stalls the requester.
 *
 * Between pfnic QPs of one kernel, the requester calls the responder directly, and the data
 * moves once, from the requester's buffers into the responder's (or back, for a READ). A
 * fault on either side stalls the requester at that WQE, as an RNR NAK from the responder
 * would on a wire; the WQE then goes on from the first byte it had not moved (qp->progress).
 */
#ifndef PFNIC_ENGINE_H
#define PFNIC_ENGINE_H

#include "pfnic.h"

/* How an attempt to run a WQE ended, when it did not end in a completion. */
enum pfnic_step {
	PFNIC_DONE = 0,
	PFNIC_FAULT,	/* a translation is missing: qp->fault_* says which */
	PFNIC_RNR,	/* the responder has no receive WQE */
	PFNIC_ABORT,	/* the QP was reset or moved to the error state mid-copy */
	PFNIC_NO_ACK,	/* no responder took the message (see pfnic_engine_drive()) */
	PFNIC_WAIT,	/* on the wire: sent, the answers not all in (qp->wire.deadline) */
};

/*
 * Bytes a device page fault maps at most. A larger access stalls once per window; with the
 * WQE going on from where it stopped (qp->progress), each fault moves it forward however
 * fast its memory changes, and no fault has gigabytes to map before the engine sees any.
 */
#define PFNIC_FAULT_WINDOW	(2UL << 20)
/*
 * Pages a copy moves under one hold of its tables' locks, between two looks at its QP's
 * state, and between reschedules.
 */
#define PFNIC_COPY_BATCH	64

/* The PD of the MRs a QP's receive buffers must be in: its SRQ's, if it has one. */
static inline struct ib_pd *pfnic_recv_pd(struct pfnic_qp *qp)
{
	return qp->srq ? qp->srq->ibsrq.pd : qp->ibqp.pd;
}

/* pfnic_copy.c: translation and copy */
struct pfnic_mr *pfnic_mr_lookup(u32 key, struct ib_pd *pd, u64 iova, u64 len, int access);
bool pfnic_wqe_taken_away(struct pfnic_qp *qp);
enum pfnic_step pfnic_atomic_word(struct pfnic_fault *f, struct pfnic_mr *mr, u64 iova,
				  u32 opcode, u64 compare_add, u64 swap, u64 *orig);
enum pfnic_step pfnic_put_sgl(struct pfnic_qp *qp, const struct ib_sge *sgl, u32 num_sge,
			      struct ib_pd *pd, const void *buf, u32 len, bool remote,
			      enum ib_wc_status *status);
enum pfnic_step pfnic_sg_copy(struct pfnic_qp *qp, const struct ib_sge *sgl, u32 num_sge,
			      const struct ib_sge *peer_sgl, u32 peer_num_sge,
			      struct ib_pd *peer_pd, u32 rkey, u64 remote_addr, u64 len,
			      bool to_peer, enum ib_wc_status *status, u64 *done);

enum pfnic_step pfnic_sgl_io(struct pfnic_qp *qp, struct pfnic_fault *f,
			     const struct ib_sge *sgl, u32 num_sge, struct ib_pd *pd, bool raw,
			     u64 offset, void *buf, u32 len, bool to_sgl, bool remote,
			     enum ib_wc_status *status);
enum pfnic_step pfnic_rkey_io(struct pfnic_qp *qp, struct pfnic_fault *f, u32 rkey,
			      struct ib_pd *pd, u64 iova, void *buf, u32 len, bool write,
			      enum ib_wc_status *status);

/* pfnic_req.c: the requester */
void pfnic_engine_drive_retry(struct pfnic_qp *qp);
u32 pfnic_req_payload(struct pfnic_wqe *wqe, struct ib_sge *one, const struct ib_sge **sgl);
bool pfnic_same_net(struct pfnic_qp *a, struct pfnic_qp *b);

/* pfnic_resp.c: the responder */
enum pfnic_step pfnic_resp_message(struct pfnic_qp *qp, struct pfnic_qp *peer, bool failed,
				   enum ib_wc_status *status);
enum pfnic_step pfnic_resp_datagram(struct pfnic_qp *qp, struct pfnic_qp *peer, bool failed,
				    enum ib_wc_status *status);
bool pfnic_take_recv(struct pfnic_qp *peer, struct pfnic_wqe *rwqe, u32 *rgen, bool *limit);
void pfnic_recv_release(struct pfnic_qp *peer);
bool pfnic_xrc_enter(struct pfnic_qp *peer, u32 srqn);
void pfnic_xrc_leave(struct pfnic_qp *peer);

/* pfnic_net.c: packets in and out */
struct sk_buff *pfnic_pkt_alloc(struct pfnic_dev *pfnic, u32 hdrlen, u32 paylen);
int pfnic_pkt_send(struct pfnic_dev *pfnic, struct sk_buff *skb, const union ib_gid *sgid,
		   const union ib_gid *dgid, u16 sport);
bool pfnic_op_is_answer(u8 opcode);

/* pfnic_wire_req.c: the requester on the wire */
bool pfnic_wire_ahead_cur(struct pfnic_qp *qp, u32 gen);
enum pfnic_step pfnic_wire_send(struct pfnic_qp *qp, bool failed, enum ib_wc_status *status);
enum pfnic_step pfnic_wire_datagram(struct pfnic_qp *qp, enum ib_wc_status *status);
void pfnic_wire_answer_arrived(struct pfnic_qp *qp, struct sk_buff *skb);
void pfnic_wire_bth(struct sk_buff *skb, u8 opcode, u8 flags, u32 qpn, u32 psn, bool ackreq,
		    u32 paylen);

/* pfnic_wire_resp.c: the responder on the wire */
void pfnic_wire_request_arrived(struct pfnic_qp *qp, struct sk_buff *skb);

/* pfnic_comp.c: the completer */
unsigned long pfnic_ack_timeout(u8 timeout);
bool pfnic_ring_mark_idle(struct pfnic_qp *qp);
bool pfnic_engine_release(struct pfnic_qp *qp, bool idle);
bool pfnic_comp_step(struct pfnic_qp *qp, u32 gen, enum pfnic_step step,
		     enum ib_wc_status status);

#endif /* PFNIC_ENGINE_H */
