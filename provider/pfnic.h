/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libpfnic: the rdma-core provider for pfnic devices.
 *
 * Control verbs are one uverbs command each, sent by libibverbs' generic ibv_cmd_* helpers.
 * The data path is rings shared with the kernel driver (pfnic-abi.h): a CQ's, which the
 * driver writes and the provider polls and arms; a send queue's, receive queue's and SRQ's,
 * which the provider posts into and the driver's engine takes from.
 */
#ifndef PFNIC_PROVIDER_H
#define PFNIC_PROVIDER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "pfnic-abi.h"
#include "verbs-private-34.h"

#define pfnic_container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

struct pfnic_device {
	struct verbs_device ibv_dev;
};

struct pfnic_context {
	struct verbs_context ibv_ctx;
};

/**
 * struct pfnic_cq - a CQ and its ring
 * @lock: one poller or arming at a time (the verbs allow any thread to poll)
 * @ring: the ring's header, in the mapping of @map_size bytes
 * @cqes: its @slots CQEs (a power of two)
 * @consumer: the completions taken, ever (the ring's consumer word is a copy of it)
 * @cur: the completion an extended poll (ibv_start_poll, ibv_next_poll) is at; NULL if none
 */
struct pfnic_cq {
	union {
		struct ibv_cq ibv_cq;
		struct ibv_cq_ex ibv_cq_ex;	/* ibv_create_cq_ex: the same start, and more */
	};
	pthread_spinlock_t lock;
	struct pfnic_cq_ring *ring;
	struct pfnic_cqe *cqes;
	size_t map_size;
	uint32_t slots;
	uint32_t consumer;
	const struct pfnic_cqe *cur;
};

/**
 * struct pfnic_uwq - a work queue's ring, as the provider posts into it
 * @lock: one poster at a time
 * @ring: the ring's header, in the mapping of @map_size bytes
 * @slots: its @size WQEs (a power of two), @stride bytes each
 * @producer: the WQEs posted, ever (the ring's producer word is a copy of it)
 * @max_sge: SGEs a WQE may have
 */
struct pfnic_uwq {
	pthread_spinlock_t lock;
	struct pfnic_wq_ring *ring;
	uint8_t *slots;
	size_t map_size;
	uint32_t size;
	uint32_t stride;
	uint32_t producer;
	uint32_t max_sge;
};

/**
 * struct pfnic_qp - a QP: its rings, and the state of an extended post (ibv_wr_start() ...)
 * @sq: the send queue's ring
 * @rq: the receive queue's ring (none on an SRQ)
 * @max_inline: inline bytes a send WQE holds
 * @wr_begin: the send ring's producer count when ibv_wr_start() was called: what
 *	ibv_wr_abort(), or ibv_wr_complete() after an error, goes back to
 * @wr_cur: the WQE the last ibv_wr_<opcode>() began, which ibv_wr_set_*() fill
 * @wr_err: the first error of this extended post, returned by ibv_wr_complete()
 */
struct pfnic_qp {
	struct verbs_qp vqp;
	struct pfnic_uwq sq;
	struct pfnic_uwq rq;
	uint32_t max_inline;
	uint32_t wr_begin;
	struct pfnic_send_wqe *wr_cur;
	int wr_err;
};

/* libibverbs' mark, in a verbs_qp's comp_mask, of a QP with the extended post (ibv_qp_ex) */
#define PFNIC_VERBS_QP_EX (1U << 1)

struct pfnic_srq {
	struct verbs_srq vsrq;	/* an XRC SRQ's number is in it */
	struct pfnic_uwq rq;
};

/* An address handle: what a UD WQE carries of it (pfnic_send_wqe's dgid and sgid_index). */
struct pfnic_ah {
	struct ibv_ah ibv_ah;
	uint8_t dgid[16];
	uint8_t sgid_index;
};

static inline struct pfnic_qp *to_pfnic_qp(struct ibv_qp *ibqp)
{
	return pfnic_container_of(ibqp, struct pfnic_qp, vqp.qp);
}

static inline struct pfnic_srq *to_pfnic_srq(struct ibv_srq *ibsrq)
{
	return pfnic_container_of(ibsrq, struct pfnic_srq, vsrq.srq);
}

static inline struct pfnic_ah *to_pfnic_ah(struct ibv_ah *ibah)
{
	return pfnic_container_of(ibah, struct pfnic_ah, ibv_ah);
}

static inline struct pfnic_cq *to_pfnic_cq(struct ibv_cq *ibcq)
{
	return pfnic_container_of(ibcq, struct pfnic_cq, ibv_cq);
}

static inline struct pfnic_device *to_pfnic_device(struct verbs_device *vdev)
{
	return pfnic_container_of(vdev, struct pfnic_device, ibv_dev);
}

static inline struct pfnic_context *to_pfnic_context(struct ibv_context *ibctx)
{
	return pfnic_container_of(ibctx, struct pfnic_context, ibv_ctx.context);
}

#endif /* PFNIC_PROVIDER_H */
