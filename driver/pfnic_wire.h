/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * pfnic: RoCE v2 on the wire. The headers of the InfiniBand transport as RoCE v2 carries them
 * over UDP (destination port 4791), and each QP's state for a peer on another host.
 *
 * A QP whose peer is a pfnic device of this kernel keeps the engine's direct path
 * (pfnic_engine.h); one whose peer is elsewhere sends packets (pfnic_wire_req.c) and answers
 * them (pfnic_wire_resp.c), through pfnic_net.c, which builds, checks and carries them.
 */
#ifndef PFNIC_WIRE_H
#define PFNIC_WIRE_H

#include <linux/skbuff.h>
#include <linux/workqueue.h>

#define PFNIC_ROCE_V2_PORT	4791

/* Bytes of headers around a packet's payload at most: IPv6, UDP, BTH, RETH, ImmDt, ICRC. */
#define PFNIC_WIRE_HEADROOM	(40 + 8 + 12 + 16 + 4 + 4)

/* Packets a QP's queues hold at most for its requester and its responder; more are dropped. */
#define PFNIC_WIRE_QUEUE_MAX	1024
/* READ responses a responder sends before it lets others run. */
#define PFNIC_WIRE_BURST	32
/* Tries of a fault a READ's response met whose range kept changing (about a second each). */
#define PFNIC_WIRE_FAULT_ROUNDS	30
/*
 * Atomics a responder keeps the answers of, for duplicates: as many as a requester may have
 * outstanding (the max_dest_rd_atomic the device allows).
 */
#define PFNIC_WIRE_ATOMICS	PFNIC_MAX_RD_ATOM
/* WQEs after the head a requester has on the wire at most before the head completes. */
#define PFNIC_WIRE_AHEAD	16

/* Base Transport Header opcodes: the transport's in the high three bits, then the operation. */
enum pfnic_opcode {
	PFNIC_OP_RC			= 0x00,
	PFNIC_OP_UC			= 0x20,
	PFNIC_OP_UD			= 0x60,
	PFNIC_OP_SEND_FIRST		= 0x00,
	PFNIC_OP_SEND_MIDDLE		= 0x01,
	PFNIC_OP_SEND_LAST		= 0x02,
	PFNIC_OP_SEND_LAST_IMM		= 0x03,
	PFNIC_OP_SEND_ONLY		= 0x04,
	PFNIC_OP_SEND_ONLY_IMM		= 0x05,
	PFNIC_OP_WRITE_FIRST		= 0x06,
	PFNIC_OP_WRITE_MIDDLE		= 0x07,
	PFNIC_OP_WRITE_LAST		= 0x08,
	PFNIC_OP_WRITE_LAST_IMM		= 0x09,
	PFNIC_OP_WRITE_ONLY		= 0x0a,
	PFNIC_OP_WRITE_ONLY_IMM		= 0x0b,
	PFNIC_OP_READ_REQUEST		= 0x0c,
	PFNIC_OP_READ_RESP_FIRST	= 0x0d,
	PFNIC_OP_READ_RESP_MIDDLE	= 0x0e,
	PFNIC_OP_READ_RESP_LAST		= 0x0f,
	PFNIC_OP_READ_RESP_ONLY		= 0x10,
	PFNIC_OP_ACK			= 0x11,
	PFNIC_OP_ATOMIC_ACK		= 0x12,
	PFNIC_OP_CMP_SWAP		= 0x13,
	PFNIC_OP_FETCH_ADD		= 0x14,
	PFNIC_OP_SEND_LAST_INV		= 0x16,
	PFNIC_OP_SEND_ONLY_INV		= 0x17,
	PFNIC_OP_ATOMIC_WRITE		= 0x1d,
};

/* The operation of an opcode, without its transport. */
#define PFNIC_OP_CODE(op)	((op) & 0x1f)
#define PFNIC_OP_TRANSPORT(op)	((op) & 0xe0)

/* Base Transport Header: 12 bytes */
struct pfnic_bth {
	u8 opcode;
	u8 flags;		/* solicited event, migration, pad count, transport version */
	__be16 pkey;
	__be32 qpn;		/* FECN, BECN and reserved bits in the top byte */
	__be32 apsn;		/* AckReq in the top bit, the PSN in the low 24 */
} __packed;

#define PFNIC_BTH_SE		0x80
#define PFNIC_BTH_MIG		0x40
#define PFNIC_BTH_PAD(flags)	(((flags) >> 4) & 3)
#define PFNIC_BTH_ACKREQ	BIT(31)
#define PFNIC_PSN_MASK		0xffffff
#define PFNIC_QPN_MASK		0xffffff
#define PFNIC_DEFAULT_PKEY	0xffff

/* RDMA Extended Transport Header: WRITE's first packet, READ's request */
struct pfnic_reth {
	__be64 va;
	__be32 rkey;
	__be32 len;
} __packed;

/* Atomic Extended Transport Header */
struct pfnic_atmeth {
	__be64 va;
	__be32 rkey;
	__be64 swap_add;
	__be64 compare;
} __packed;

/* Datagram Extended Transport Header */
struct pfnic_deth {
	__be32 qkey;
	__be32 sqp;		/* the source QP in the low 24 bits */
} __packed;

/*
 * ACK Extended Transport Header: the syndrome in the top byte, the MSN below. Syndromes:
 * ACK (0, with a credit count), RNR NAK (1, with the RNR timer), NAK (3, with its code).
 */
#define PFNIC_AETH_TYPE(syn)	((syn) >> 5)
#define PFNIC_AETH_VALUE(syn)	((syn) & 0x1f)
#define PFNIC_AETH_ACK		0
#define PFNIC_AETH_RNR_NAK	1
#define PFNIC_AETH_NAK		3
/* an ACK that carries no end-to-end credits: the requester need not count receive WQEs */
#define PFNIC_AETH_NO_CREDITS	0x1f
enum pfnic_nak {
	PFNIC_NAK_PSN_SEQ	= 0,
	PFNIC_NAK_INV_REQ	= 1,
	PFNIC_NAK_REM_ACCESS	= 2,
	PFNIC_NAK_REM_OP	= 3,
};

#define PFNIC_BTH_LEN		12
#define PFNIC_RETH_LEN		16
#define PFNIC_AETH_LEN		4
#define PFNIC_ATMETH_LEN	28
#define PFNIC_ATMACK_LEN	8
#define PFNIC_IMMDT_LEN		4
#define PFNIC_IETH_LEN		4
#define PFNIC_DETH_LEN		8
#define PFNIC_ICRC_LEN		4

/* PSNs are 24-bit and wrap: a is before b when b - a, modulo 2^24, is below half the space. */
static inline s32 pfnic_psn_diff(u32 a, u32 b)
{
	return (s32)((a - b) << 8) >> 8;
}

/**
 * struct pfnic_pkt - a packet as the receiver parsed it (kept in its skb's control block)
 * @opcode: the BTH's
 * @flags: the BTH's second byte (solicited event, pad count)
 * @qpn: the destination QP
 * @psn: its PSN
 * @ackreq: the requester asks for an ACK
 * @hdr: the transport headers after the BTH (an offset into the skb's data)
 * @payload: where the payload starts (offset)
 * @paylen: its length, without pad and ICRC
 * @v4: it came over IPv4
 * @sgid: the sender's address, as a GID
 * @dgid: ours
 */
struct pfnic_pkt {
	u8 opcode;
	u8 flags;
	bool ackreq;
	bool v4;
	u32 qpn;
	u32 psn;
	u16 hdr;
	u16 payload;
	u32 paylen;
};

#define PFNIC_PKT(skb)	((struct pfnic_pkt *)(skb)->cb)

/**
 * struct pfnic_wire_ahead - a WQE after the head that a requester has begun to send
 * @index: the send queue's head when it is the head WQE (struct pfnic_wq's @head)
 * @psn: its first PSN
 * @npkts: its PSNs
 * @sent: its packets sent since the requester last went back
 * @high: its packets sent at all
 */
struct pfnic_wire_ahead {
	u32 index;
	u32 psn;
	u32 npkts;
	u32 sent;
	u32 high;
};

/**
 * struct pfnic_wire - a QP's state on the wire
 * @remote: a connected QP whose peer is not a pfnic device of this kernel (set by modify_qp)
 * @sgid: a remote QP's own GID (its AV's source GID) then
 * @dgid: its peer's
 * @sport: the UDP source port of its packets
 * @mtu: the path MTU in bytes
 * @next_psn: requester: the PSN the next WQE starts at
 * @started: requester: the head WQE has its PSNs (@wqe_psn, @npkts)
 * @wqe_psn: its first
 * @npkts: how many (a READ spans one per response packet)
 * @acked: requester: packets of it acknowledged; for a READ, responses received in order
 * @sent: packets of it sent since the requester last went back to @acked
 * @high: packets of it sent at all (below it, a packet sent is sent again)
 * @reasked: a READ's responses received in order when it last asked again past a gap
 *	(U32_MAX: not since the WQE began)
 * @deadline: when the ACK waited for is late (jiffies)
 * @acks: packets for the requester (ACKs, NAKs, READ responses, atomic ACKs), in order
 * @waiting: the requester waits for a packet: one that comes runs it at once (under
 *	the QP's lock)
 * @epsn: responder: the PSN it expects next
 * @msn: responder: messages it completed
 * @last_op: responder: the operation of the last packet it took (for the sequence)
 * @nak_sent: responder: a PSN sequence error NAK went out for @epsn
 * @rx_off: responder: bytes of the message in progress taken
 * @rx_rgen: the receive queue's generation when that message took its receive WQE
 * @rkey: responder: the WRITE in progress (its first packet's RETH): key, address, length
 * @met: responder: the page fault the request being carried out met (its work's only)
 * @fault: responder: the page fault being resolved for a request that got an RNR NAK
 * @faulting: @fault is being resolved (@fault_work), which owns it until it clears this
 * @fault_psn: the PSN of the request whose fault @fault is
 * @fault_failed: that fault could not be resolved: the request fails when it comes again
 * @atomics: responder: the PSNs of the last atomics it carried out, and the values it
 *	answered: a duplicate is answered from these records, never carried out again
 * @atomic_next: the record the next atomic takes
 * @rd_active: responder: a READ is being answered (pfnic_wire_read_burst()): its key,
 *	address, length, first PSN, responses, and the next response to send
 * @ack_owed: responder: the ACK of @ack_owed_psn was left to a later one (ACK coalescing)
 *	that has not gone out yet
 * @rxq: requests for the responder, carried out by @rx_work
 * @rwqe: the responder's copy of the receive WQE a message lands in
 * @ahead: requester: the WQEs after the head it has begun to send, in order, from
 *	@ahead_first (a ring of PFNIC_WIRE_AHEAD), @nahead of them, taken while the send
 *	queue had generation @ahead_gen
 * @ahead_starved: the requester sent ahead all it found in the send queue, and had room
 *	for more (pfnic_comp_step() looks again before the engine waits)
 * @ahead_wqes: their copies, as the engine runs them (qp->cur's size each); NULL until
 *	the QP first reaches another host, or if there was no memory for them (then the
 *	requester sends one WQE at a time)
 */
struct pfnic_wire {
	bool remote;
	union ib_gid sgid;
	union ib_gid dgid;
	u16 sport;
	u32 mtu;
	u32 next_psn;
	bool started;
	u32 wqe_psn;
	u32 npkts;
	u32 acked;
	u32 sent;
	u32 high;
	u32 reasked;
	unsigned long deadline;
	struct sk_buff_head acks;
	bool waiting;
	u32 epsn;
	u32 msn;
	u8 last_op;
	bool nak_sent;
	u64 rx_off;
	u32 rx_rgen;
	u32 rkey;
	u64 va;
	u32 dma_len;
	struct pfnic_fault met;
	struct pfnic_fault fault;
	bool faulting;
	struct work_struct fault_work;
	u32 fault_psn;
	bool fault_failed;
	struct {
		u32 psn;
		bool valid;
		u64 orig;
	} atomics[PFNIC_WIRE_ATOMICS];
	unsigned int atomic_next;
	bool rd_active;
	u32 rd_rkey;
	u64 rd_va;
	u32 rd_len;
	u32 rd_psn;
	u32 rd_n;
	u32 rd_i;
	bool ack_owed;
	u32 ack_owed_psn;
	struct sk_buff_head rxq;
	struct work_struct rx_work;
	struct pfnic_wqe *rwqe;
	struct pfnic_wire_ahead ahead[PFNIC_WIRE_AHEAD];
	u32 ahead_first;
	u32 nahead;
	u32 ahead_gen;
	bool ahead_starved;
	u8 *ahead_wqes;
};

#endif /* PFNIC_WIRE_H */
