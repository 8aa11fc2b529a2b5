/* SPDX-License-Identifier: (GPL-2.0-only WITH Linux-syscall-note) OR BSD-2-Clause */
/*
 * pfnic's ABI with userspace: the one header the kernel driver and the rdma-core provider
 * (provider/) both build with.
 */
#ifndef PFNIC_ABI_H
#define PFNIC_ABI_H

#include <linux/types.h>

/*
 * The uverbs ABI version the driver reports and the provider accepts. A libibverbs provider
 * declares the versions it matches, so a provider and a kernel driver built from different
 * versions of this header never pair: libibverbs leaves the device to no provider and says
 * so, rather than the two disagreeing on a ring's layout.
 *
 * 1: every verb a uverbs command, nothing mapped.
 * 2: user CQs, send queues, receive queues and SRQs are rings in memory the provider maps
 *    (struct pfnic_cq_ring, struct pfnic_wq_ring): poll_cq, req_notify_cq, post_recv and
 *    post_srq_recv make no system call, and post_send makes one only to wake an idle
 *    engine (a doorbell: POST_SEND with no work request).
 */
#define PFNIC_UVERBS_ABI_VERSION 2

/*
 * pfnic is not an in-tree driver, so it has no entry in enum rdma_driver_id. It reports this
 * value, far beyond that enum, so that the kernel can tell its devices apart (netdev events,
 * module unload) and no rdma-core provider's driver-id table matches them by accident; the
 * pfnic provider matches devices by name ("pfnic" prefix) instead.
 */
#define PFNIC_RDMA_DRIVER_ID 0x7066

/*
 * Commands with private data: the responses of CREATE_CQ, CREATE_QP and CREATE_SRQ (struct
 * pfnic_create_*_resp), which say where the rings are, and of RESIZE_CQ (a struct
 * pfnic_create_cq_resp for the CQ's new ring, which holds the completions not yet polled at
 * the same indexes; the old ring no longer fills). Every other command's driver-specific
 * request and response are empty. A user QP's or SRQ's work requests are posted in its
 * rings: POST_SEND, POST_RECV and POST_SRQ_RECV with work requests in them get -EINVAL;
 * with none, POST_SEND and POST_RECV are the doorbells (see struct pfnic_wq_ring).
 */

/**
 * struct pfnic_create_cq_resp - what CREATE_CQ tells the provider of a user CQ's ring
 * @mmap_offset: the offset to mmap() the device's uverbs file at (the kernel's key for the
 *	ring, not a place in any file)
 * @mmap_size: bytes to map: the struct pfnic_cq_ring header and @slots CQEs after it
 * @slots: CQEs the ring holds, a power of two (also the CQ's reported size)
 * @cqe_size: sizeof(struct pfnic_cqe), for the provider to check
 */
struct pfnic_create_cq_resp {
	__aligned_u64 mmap_offset;
	__aligned_u64 mmap_size;
	__u32 slots;
	__u32 cqe_size;
};

/*
 * The atomic write's opcodes, libibverbs' values (IBV_WR_ATOMIC_WRITE, IBV_WC_ATOMIC_WRITE):
 * the oldest kernels pfnic builds for do not name them.
 */
#define PFNIC_WR_ATOMIC_WRITE	15
#define PFNIC_WC_ATOMIC_WRITE	9

/* A CQE's flags: libibverbs' enum ibv_wc_flags values (the kernel numbers its own otherwise) */
#define PFNIC_CQE_GRH			0x1U
#define PFNIC_CQE_WITH_IMM		0x2U
#define PFNIC_CQE_WITH_INVALIDATE	0x8U

/**
 * struct pfnic_cqe - one completion, as the driver writes it into a user CQ's ring
 * @wr_id: the work request's id
 * @status: enum ibv_wc_status (the kernel's enum ib_wc_status has the same values)
 * @opcode: enum ibv_wc_opcode (likewise)
 * @vendor_err: 0; a device-specific error code
 * @byte_len: bytes received (receives), or of the READ or atomic's result
 * @ex_data: the immediate data (network order, as it came), or the invalidated rkey
 * @qp_num: the QP the completion is for
 * @src_qp: receives: the sending QP
 * @wc_flags: PFNIC_CQE_*
 * @pkey_index: receives: the P_Key index (0)
 * @slid: 0 on RoCE
 * @sl: UD receives: the L3 type of the packet (2 IPv4, 1 IPv6), as mlx5 reports it
 * @dlid_path_bits: 0 on RoCE
 * @network_hdr_type: UD receives: the kernel's RDMA_NETWORK_IPV4 or _IPV6
 */
struct pfnic_cqe {
	__aligned_u64 wr_id;
	__u8 status;
	__u8 opcode;
	__u8 sl;
	__u8 dlid_path_bits;
	__u32 vendor_err;
	__u32 byte_len;
	__u32 ex_data;
	__u32 qp_num;
	__u32 src_qp;
	__u32 wc_flags;
	__u16 pkey_index;
	__u16 slid;
	__u8 network_hdr_type;
	__u8 reserved[7];
};

/* The arming word's request bits (struct pfnic_cq_ring's @arm). */
#define PFNIC_CQ_ARM_SOLICITED	1U
#define PFNIC_CQ_ARM_NEXT	2U
#define PFNIC_CQ_ARM_SHIFT	2

/* The ring's @flags: the ring was full when a completion came; the CQ is in error. */
#define PFNIC_CQ_RING_OVERFLOW	1U

/**
 * struct pfnic_cq_ring - the head of a user CQ's ring; struct pfnic_cqe slots follow it
 * @producer: the completions the driver has written, ever (slot: @producer % slots). The
 *	driver writes the CQE first and then @producer, with release order; the provider
 *	loads @producer with acquire order before it reads a CQE below it.
 * @flags: PFNIC_CQ_RING_*, written by the driver.
 * @consumer: the completions the provider has taken, ever. The provider stores it with
 *	release order once it has read the CQEs below it; the driver loads it with acquire
 *	order before it reuses their slots. A ring with slots completions not taken is full.
 * @arm: req_notify_cq's request: (sequence << PFNIC_CQ_ARM_SHIFT) | PFNIC_CQ_ARM_*. The
 *	provider stores a new sequence with each request; the driver fires the completion
 *	event once per sequence, for the first completion the request asks for that it writes
 *	after seeing the request. The driver reads @arm after every @producer store, with a
 *	full barrier between, so that a request stored before a completion is seen by it.
 * @fired: the last sequence the driver fired the event for (written by the driver): the
 *	provider keeps a NEXT request that has not fired when it is asked for SOLICITED.
 *
 * The driver's and the provider's words are in cache lines of their own.
 */
struct pfnic_cq_ring {
	__u32 producer;
	__u32 flags;
	__u32 fired;
	__u32 reserved0[13];
	__u32 consumer;
	__u32 arm;
	__u32 reserved1[14];
};

/**
 * struct pfnic_ring_map - where one ring of a QP or SRQ is
 * @offset: the offset to mmap() the device's uverbs file at
 * @size: bytes to map: a struct pfnic_wq_ring header, then @slots WQEs of @stride bytes
 * @slots: WQEs the ring holds, a power of two (the queue's reported max_wr)
 * @stride: bytes per WQE, a multiple of 16
 */
struct pfnic_ring_map {
	__aligned_u64 offset;
	__aligned_u64 size;
	__u32 slots;
	__u32 stride;
};

/**
 * struct pfnic_create_qp_resp - CREATE_QP's response for a user QP
 * @sq: the send queue's ring
 * @rq: the receive queue's ring (all zero for a QP on an SRQ)
 * @max_inline: inline bytes a send WQE holds (the QP's max_inline_data)
 */
struct pfnic_create_qp_resp {
	struct pfnic_ring_map sq;
	struct pfnic_ring_map rq;
	__u32 max_inline;
	__u32 reserved;
};

/* CREATE_SRQ's response for a user SRQ: its ring. */
struct pfnic_create_srq_resp {
	struct pfnic_ring_map rq;
};

/**
 * struct pfnic_sge - one buffer of a WQE, as struct ibv_sge
 * @addr: its address (an iova of the MR)
 * @length: its length
 * @lkey: the MR's lkey
 */
struct pfnic_sge {
	__aligned_u64 addr;
	__u32 length;
	__u32 lkey;
};

/**
 * struct pfnic_send_wqe - a send queue's WQE; @num_sge struct pfnic_sge follow it, or, with
 *	IBV_SEND_INLINE, @inline_len bytes of data
 * @wr_id: the work request's id
 * @opcode: enum ibv_wr_opcode: SEND, SEND_WITH_IMM, SEND_WITH_INV, RDMA_WRITE,
 *	RDMA_WRITE_WITH_IMM, RDMA_READ, ATOMIC_CMP_AND_SWP, ATOMIC_FETCH_AND_ADD,
 *	ATOMIC_WRITE, LOCAL_INV, BIND_MW (on a UC QP: SEND, SEND_WITH_IMM, RDMA_WRITE,
 *	RDMA_WRITE_WITH_IMM, LOCAL_INV and BIND_MW; on a UD QP: SEND and SEND_WITH_IMM)
 * @send_flags: enum ibv_send_flags (FENCE, SIGNALED, SOLICITED, INLINE)
 * @num_sge: buffers (at most the QP's max_send_sge; an atomic has one of 8 bytes; an
 *	atomic write and a bind have none)
 * @inline_len: with IBV_SEND_INLINE, the data's length (at most the QP's max_inline)
 * @ex_data: the immediate data (network order), the rkey to invalidate, or for BIND_MW the
 *	MR's lkey
 * @rkey: RDMA and atomics: the remote MR; BIND_MW: the window's new rkey
 * @remote_qpn: UD: the destination QP
 * @remote_addr: RDMA and atomics: the remote address; BIND_MW: the window's start
 * @compare_add: CMP_AND_SWP: the value compared; FETCH_AND_ADD: the value added;
 *	ATOMIC_WRITE: the value written; BIND_MW: the window's length
 * @swap: CMP_AND_SWP: the value stored on a match; BIND_MW: the window's rights
 *	(IBV_ACCESS_REMOTE_*)
 * @dgid: UD: the destination GID (the address handle's)
 * @remote_qkey: UD: the destination's Q_Key
 * @sgid_index: UD: the source GID's index (the address handle's)
 *
 * A WQE the driver finds malformed completes with IBV_WC_LOC_QP_OP_ERR and moves the QP to
 * the error state, as a NIC fails a WQE it cannot parse.
 */
struct pfnic_send_wqe {
	__aligned_u64 wr_id;
	__u8 opcode;
	__u8 reserved0;
	__u16 send_flags;
	__u16 num_sge;
	__u16 reserved1;
	__u32 inline_len;
	__u32 ex_data;
	__u32 rkey;
	__u32 remote_qpn;
	__aligned_u64 remote_addr;
	__aligned_u64 compare_add;
	__aligned_u64 swap;
	__u8 dgid[16];
	__u32 remote_qkey;
	__u8 sgid_index;
	__u8 reserved2[3];
};

/**
 * struct pfnic_recv_wqe - a receive queue's or SRQ's WQE; @num_sge struct pfnic_sge follow
 * @wr_id: the work request's id
 * @num_sge: buffers, at most the queue's max_sge (a WQE with more is taken as having none:
 *	a message into it fails with IBV_WC_LOC_LEN_ERR)
 */
struct pfnic_recv_wqe {
	__aligned_u64 wr_id;
	__u32 num_sge;
	__u32 reserved;
};

/**
 * struct pfnic_wq_ring - the head of a send queue's, receive queue's or SRQ's ring; its WQEs
 *	follow, struct pfnic_ring_map's stride bytes each
 * @producer: the WQEs the provider has posted, ever (slot: @producer % slots). The
 *	provider writes the WQEs first, then @producer with release order; the driver loads
 *	it with acquire order before it reads a WQE below it, and copies each WQE once before
 *	it checks it.
 * @consumer: the WQEs the driver is done with, ever (written by the driver with release
 *	order): their slots may be written again. A ring with slots WQEs not done is full.
 * @engine_idle: a send queue's: non-zero when the engine will not look at the ring again
 *	until a doorbell. The provider stores @producer, then (after a full barrier) loads
 *	this, and rings the doorbell if it is set; the driver sets it, then (after a full
 *	barrier) loads @producer once more before it stops: a WQE is never left unseen.
 * @qp_state: a QP's rings: its state (enum ibv_qp_state), written by the driver. In the
 *	error state what is posted needs a doorbell to be flushed (POST_SEND or POST_RECV with
 *	none). The provider looks at the state after its producer store and barrier; the
 *	driver stores the error state, then (after a full barrier) its flush loads the
 *	producer: either the flush sees the WQE, or its poster sees the state and rings.
 *	Moving to the error state or to RESET also sets @engine_idle.
 *
 * A QP moved to RESET starts its rings again: the driver sets @producer and @consumer to 0,
 * and the provider its own count of WQEs posted.
 */
struct pfnic_wq_ring {
	__u32 producer;
	__u32 reserved0[15];
	__u32 consumer;
	__u32 engine_idle;
	__u32 qp_state;
	__u32 reserved1[13];
};

#endif /* PFNIC_ABI_H */
