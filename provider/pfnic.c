// SPDX-License-Identifier: GPL-2.0-only
/*
 * libpfnic: the rdma-core provider that libibverbs loads for pfnic devices.
 *
 * Most verbs here are a system call into the kernel driver: one uverbs command, sent by
 * libibverbs' generic ibv_cmd_* helpers as an ioctl() or a write() on the device's uverbs
 * file (write() where the kernel lacks the ioctl form).
 * The data path is not: each CQ, send queue, receive queue and SRQ is a ring in memory
 * shared with the driver and mapped here (pfnic-abi.h). poll_cq, req_notify_cq, post_recv and
 * post_srq_recv only read and write that memory; post_send makes a system call only to wake
 * the driver's engine when it is idle.
 *
 * Return conventions are the verbs API's: verbs that create something return NULL and set
 * errno; the others return 0 or a positive errno value; poll_cq returns the number of
 * completions or a negative value.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <rdma/ib_user_ioctl_verbs.h>

#include "pfnic-abi.h"
#include "pfnic.h"

/* Devices whose kernel name starts with this are pfnic's: pfnic0, pfnic1, ... */
#define PFNIC_IBDEV_PREFIX "pfnic"

static void pfnic_free_context(struct ibv_context *ibctx);

/* ------------------------------------------------------------------------------------------
 * Verbs
 */

/*
 * ibv_query_device(), ibv_query_device_ex(): system call QUERY_DEVICE (the extended command,
 * which also carries the ODP capabilities, or the basic one on kernels without it).
 */
static int pfnic_query_device_ex(struct ibv_context *context,
				 const struct ibv_query_device_ex_input *input,
				 struct ibv_device_attr_ex *attr, size_t attr_size)
{
	struct ib_uverbs_ex_query_device_resp resp;
	size_t resp_size = sizeof(resp);
	uint64_t fw;
	int ret;

	ret = ibv_cmd_query_device_any(context, input, attr, attr_size, &resp, &resp_size);
	if (ret)
		return ret;

	/* the kernel's 64-bit firmware version, shown as major.minor.sub as rdma tools do */
	fw = resp.base.fw_ver;
	snprintf(attr->orig_attr.fw_ver, sizeof(attr->orig_attr.fw_ver), "%u.%u.%u",
		 (unsigned int)((fw >> 32) & 0xffff), (unsigned int)((fw >> 16) & 0xffff),
		 (unsigned int)(fw & 0xffff));
	return 0;
}

/* ibv_query_port(): system call QUERY_PORT. */
static int pfnic_query_port(struct ibv_context *context, uint8_t port_num,
			    struct ibv_port_attr *port_attr)
{
	struct ibv_query_port cmd;

	memset(&cmd, 0, sizeof(cmd));
	return ibv_cmd_query_port(context, port_num, port_attr, &cmd, sizeof(cmd));
}

/* ibv_alloc_pd(): system call ALLOC_PD. */
static struct ibv_pd *pfnic_alloc_pd(struct ibv_context *context)
{
	struct ibv_alloc_pd cmd;
	struct ib_uverbs_alloc_pd_resp resp;
	struct ibv_pd *pd;
	int ret;

	pd = calloc(1, sizeof(*pd));
	if (!pd)
		return NULL;

	memset(&cmd, 0, sizeof(cmd));
	ret = ibv_cmd_alloc_pd(context, pd, &cmd, sizeof(cmd), &resp, sizeof(resp));
	if (ret) {
		free(pd);
		errno = ret;
		return NULL;
	}
	return pd;
}

/* ibv_dealloc_pd(): system call DEALLOC_PD. */
static int pfnic_dealloc_pd(struct ibv_pd *pd)
{
	int ret;

	ret = ibv_cmd_dealloc_pd(pd);
	if (ret)
		return ret;
	free(pd);
	return 0;
}

/*
 * ibv_reg_mr() and its variants: system call REG_MR. The access flags go to the kernel as
 * the caller gave them, IBV_ACCESS_ON_DEMAND included: an ODP MR (and an implicit one, addr
 * NULL and length SIZE_MAX) is the kernel driver's to accept or refuse.
 */
static struct ibv_mr *pfnic_reg_mr(struct ibv_pd *pd, void *addr, size_t length,
				   uint64_t hca_va, int access)
{
	struct ibv_reg_mr cmd;
	struct ib_uverbs_reg_mr_resp resp;
	struct verbs_mr *vmr;
	int ret;

	vmr = calloc(1, sizeof(*vmr));
	if (!vmr)
		return NULL;

	memset(&cmd, 0, sizeof(cmd));
	ret = ibv_cmd_reg_mr(pd, addr, length, hca_va, access, vmr, &cmd, sizeof(cmd), &resp,
			     sizeof(resp));
	if (ret) {
		free(vmr);
		errno = ret;
		return NULL;
	}
	return &vmr->ibv_mr;
}

/*
 * ibv_advise_mr(): the ioctl method ADVISE_MR. The kernel prefetches ODP MRs' pages, at
 * once with IBV_ADVISE_MR_FLAG_FLUSH, in the background without; what it refuses (a key that
 * is not an ODP MR of @pd, PREFETCH_WRITE on a read-only MR) it refuses as mlx5 does.
 */
static int pfnic_advise_mr(struct ibv_pd *pd, enum ibv_advise_mr_advice advice, uint32_t flags,
			   struct ibv_sge *sg_list, uint32_t num_sge)
{
	return ibv_cmd_advise_mr(pd, advice, flags, sg_list, num_sge);
}

/* ibv_dereg_mr(): system call DEREG_MR. */
static int pfnic_dereg_mr(struct verbs_mr *vmr)
{
	int ret;

	ret = ibv_cmd_dereg_mr(vmr);
	if (ret)
		return ret;
	free(vmr);
	return 0;
}

/*
 * ibv_rereg_mr(): system call REREG_MR. The driver registers the MR anew with what changes
 * (a new translation's iova is its address, as for ibv_reg_mr()); the MR gets new keys,
 * which the command writes into it. Return: 0, or IBV_REREG_MR_ERR_CMD with errno set (the
 * MR is as it was).
 */
static int pfnic_rereg_mr(struct verbs_mr *vmr, int flags, struct ibv_pd *pd, void *addr,
			  size_t length, int access)
{
	struct ib_uverbs_rereg_mr_resp resp;
	struct ibv_rereg_mr cmd;
	int ret;

	memset(&cmd, 0, sizeof(cmd));
	memset(&resp, 0, sizeof(resp));
	ret = ibv_cmd_rereg_mr(vmr, (uint32_t)flags, addr, length, (uintptr_t)addr, access, pd,
			       &cmd, sizeof(cmd), &resp, sizeof(resp));
	if (ret) {
		errno = ret;
		return IBV_REREG_MR_ERR_CMD;
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------
 * Work queue rings
 */

/*
 * Maps a QP's or SRQ's ring as the create command's response describes it, for posting with
 * @max_sge SGEs per WQE. Return: 0 or an errno value; EPROTO for a description no pfnic
 * driver of this ABI version gives.
 */
static int pfnic_uwq_map(struct ibv_context *context, struct pfnic_uwq *wq,
			 const struct pfnic_ring_map *map, uint32_t max_sge)
{
	void *p;
	int ret;

	if (!map->slots || (map->slots & (map->slots - 1)) || map->stride % 16 ||
	    map->size < sizeof(struct pfnic_wq_ring) + (uint64_t)map->slots * map->stride)
		return EPROTO;
	ret = pthread_spin_init(&wq->lock, PTHREAD_PROCESS_PRIVATE);
	if (ret)
		return ret;
	p = mmap(NULL, map->size, PROT_READ | PROT_WRITE, MAP_SHARED, context->cmd_fd,
		 (off_t)map->offset);
	if (p == MAP_FAILED) {
		ret = errno;
		pthread_spin_destroy(&wq->lock);
		return ret;
	}
	wq->ring = p;
	wq->slots = (uint8_t *)(wq->ring + 1);
	wq->map_size = map->size;
	wq->size = map->slots;
	wq->stride = map->stride;
	wq->max_sge = max_sge;
	wq->producer = 0;
	return 0;
}

static void pfnic_uwq_unmap(struct pfnic_uwq *wq)
{
	if (!wq->ring)
		return;
	munmap(wq->ring, wq->map_size);
	pthread_spin_destroy(&wq->lock);
	wq->ring = NULL;
}

/* The slot of the next WQE, or NULL if the ring is full. Caller holds @wq->lock. */
static uint8_t *pfnic_uwq_next(struct pfnic_uwq *wq)
{
	/* acquire: the driver copied the WQEs below it out before we write their slots */
	uint32_t consumer = __atomic_load_n(&wq->ring->consumer, __ATOMIC_ACQUIRE);

	if (wq->producer - consumer >= wq->size)
		return NULL;
	return wq->slots + (size_t)(wq->producer & (wq->size - 1)) * wq->stride;
}

/*
 * Publishes the WQEs written since the last time. Return: whether the send queue's engine
 * is idle, so that a doorbell must wake it. Caller holds @wq->lock.
 */
static bool pfnic_uwq_publish(struct pfnic_uwq *wq)
{
	/* release: the WQEs are written before the driver can see the index that covers them */
	__atomic_store_n(&wq->ring->producer, wq->producer, __ATOMIC_RELEASE);
	/*
	 * The index store before the look at the engine's idle mark, as the driver orders its
	 * mark before its last look at the index: either it sees these WQEs, or we see it idle.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n(&wq->ring->engine_idle, __ATOMIC_RELAXED) != 0;
}

/* The QP's state, as the driver shows it in its rings (enum ibv_qp_state). */
static enum ibv_qp_state pfnic_ring_qp_state(const struct pfnic_uwq *wq)
{
	return (enum ibv_qp_state)__atomic_load_n(&wq->ring->qp_state, __ATOMIC_RELAXED);
}

/*
 * The send queue's doorbell: POST_SEND with no work request, which runs the idle engine (or
 * flushes a QP in the error state). The WRs are in the ring already: should it fail (the
 * device is gone), nothing is lost that a caller could post again.
 */
static void pfnic_doorbell(struct ibv_qp *ibqp)
{
	struct ibv_send_wr *none;

	ibv_cmd_post_send(ibqp, NULL, &none);
}

/* Whether a WR's data may come inline (SEND and RDMA WRITE, as the spec has it). */
static bool pfnic_inline_opcode(enum ibv_wr_opcode opcode)
{
	return opcode == IBV_WR_SEND || opcode == IBV_WR_SEND_WITH_IMM ||
	       opcode == IBV_WR_SEND_WITH_INV || opcode == IBV_WR_RDMA_WRITE ||
	       opcode == IBV_WR_RDMA_WRITE_WITH_IMM;
}

/* The send flags a WQE carries; the others (IBV_SEND_IP_CSUM) mean nothing to pfnic. */
#define PFNIC_SEND_FLAGS (IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED | \
			  IBV_SEND_INLINE)

/* Writes a receive WR into @slot. */
static void pfnic_recv_wqe_write(uint8_t *slot, const struct ibv_recv_wr *wr)
{
	struct pfnic_recv_wqe *wqe = (struct pfnic_recv_wqe *)slot;

	wqe->wr_id = wr->wr_id;
	wqe->num_sge = (uint32_t)wr->num_sge;
	wqe->reserved = 0;
	memcpy(slot + sizeof(*wqe), wr->sg_list, (size_t)wr->num_sge * sizeof(struct pfnic_sge));
}

/*
 * Posts receive WRs into @wq. Return: 0, or EINVAL (more SGEs than the queue takes) or
 * ENOMEM (the queue is full) with *@bad_wr at the WR not posted; those before it are.
 */
static int pfnic_uwq_post_recv(struct pfnic_uwq *wq, struct ibv_recv_wr *wr,
			       struct ibv_recv_wr **bad_wr)
{
	uint8_t *slot;
	int ret = 0;

	pthread_spin_lock(&wq->lock);
	for (; wr; wr = wr->next) {
		if (wr->num_sge < 0 || (uint32_t)wr->num_sge > wq->max_sge) {
			ret = EINVAL;
			break;
		}
		slot = pfnic_uwq_next(wq);
		if (!slot) {
			ret = ENOMEM;
			break;
		}
		pfnic_recv_wqe_write(slot, wr);
		wq->producer++;
	}
	pfnic_uwq_publish(wq);
	pthread_spin_unlock(&wq->lock);
	if (ret)
		*bad_wr = wr;
	return ret;
}

/* CREATE_CQ's response: the core's, then the driver's (pfnic-abi.h). */
struct pfnic_create_cq_resp_all {
	struct ib_uverbs_create_cq_resp ibv_resp;
	struct pfnic_create_cq_resp drv;
};

/* Whether CREATE_CQ's or RESIZE_CQ's description of a ring is one this provider can use. */
static bool pfnic_cq_ring_sound(const struct pfnic_create_cq_resp *drv)
{
	return drv->cqe_size == sizeof(struct pfnic_cqe) && drv->slots &&
	       !(drv->slots & (drv->slots - 1)) &&
	       drv->mmap_size >= sizeof(struct pfnic_cq_ring) +
				 (uint64_t)drv->slots * sizeof(struct pfnic_cqe);
}

/*
 * A CQ: system call CREATE_CQ, whose response says where the CQ's ring is; the ring is mapped
 * here, shared with the driver, which writes completions into it. Return: the CQ, or NULL
 * with errno set.
 */
static struct pfnic_cq *pfnic_cq_make(struct ibv_context *context, int cqe,
				      struct ibv_comp_channel *channel, int comp_vector)
{
	struct pfnic_create_cq_resp_all resp;
	struct ibv_create_cq cmd;
	struct pfnic_cq *cq;
	void *map;
	int ret;

	cq = calloc(1, sizeof(*cq));
	if (!cq)
		return NULL;
	ret = pthread_spin_init(&cq->lock, PTHREAD_PROCESS_PRIVATE);
	if (ret) {
		free(cq);
		errno = ret;
		return NULL;
	}

	memset(&cmd, 0, sizeof(cmd));
	memset(&resp, 0, sizeof(resp));
	ret = ibv_cmd_create_cq(context, cqe, channel, comp_vector, &cq->ibv_cq, &cmd, sizeof(cmd),
				&resp.ibv_resp, sizeof(resp));
	if (ret)
		goto fail;
	/* the ABI version matched, so these hold; a mismatch is a driver bug, not a user's */
	if (!pfnic_cq_ring_sound(&resp.drv)) {
		ret = EPROTO;
		goto destroy;
	}
	map = mmap(NULL, resp.drv.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, context->cmd_fd,
		   (off_t)resp.drv.mmap_offset);
	if (map == MAP_FAILED) {
		ret = errno;
		goto destroy;
	}
	cq->ring = map;
	cq->cqes = (struct pfnic_cqe *)(cq->ring + 1);
	cq->map_size = resp.drv.mmap_size;
	cq->slots = resp.drv.slots;
	return cq;

destroy:
	ibv_cmd_destroy_cq(&cq->ibv_cq);
fail:
	pthread_spin_destroy(&cq->lock);
	free(cq);
	errno = ret;
	return NULL;
}

/* ibv_create_cq(): pfnic_cq_make(); libibverbs sets up the rest of the ibv_cq. */
static struct ibv_cq *pfnic_create_cq(struct ibv_context *context, int cqe,
				      struct ibv_comp_channel *channel, int comp_vector)
{
	struct pfnic_cq *cq = pfnic_cq_make(context, cqe, channel, comp_vector);

	return cq ? &cq->ibv_cq : NULL;
}

/* RESIZE_CQ's response: the core's, then the driver's: the new ring (pfnic-abi.h). */
struct pfnic_resize_cq_resp_all {
	struct ib_uverbs_resize_cq_resp ibv_resp;
	struct pfnic_create_cq_resp drv;
};

/*
 * ibv_resize_cq(): system call RESIZE_CQ. The driver moves the completions not yet polled
 * into a new ring, with the same indexes, and answers where it is; it is mapped in place of
 * the old one, all under the CQ's lock, so no poll or arming sees the change half done.
 * Return: 0, or an errno: EINVAL for a size out of bounds or below the completions waiting.
 */
static int pfnic_resize_cq(struct ibv_cq *ibcq, int cqe)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);
	struct pfnic_resize_cq_resp_all resp;
	struct ibv_resize_cq cmd;
	void *map;
	int ret;

	memset(&cmd, 0, sizeof(cmd));
	memset(&resp, 0, sizeof(resp));
	pthread_spin_lock(&cq->lock);
	ret = ibv_cmd_resize_cq(ibcq, cqe, &cmd, sizeof(cmd), &resp.ibv_resp, sizeof(resp));
	if (ret)
		goto out;
	if (!pfnic_cq_ring_sound(&resp.drv)) {
		ret = EPROTO;
		goto out;
	}
	map = mmap(NULL, resp.drv.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   ibcq->context->cmd_fd, (off_t)resp.drv.mmap_offset);
	if (map == MAP_FAILED) {
		/* the driver fills the new ring already: this CQ can no longer be polled */
		ret = errno;
		goto out;
	}
	munmap(cq->ring, cq->map_size);
	cq->ring = map;
	cq->cqes = (struct pfnic_cqe *)(cq->ring + 1);
	cq->map_size = resp.drv.mmap_size;
	cq->slots = resp.drv.slots;
	cq->cur = NULL;
out:
	pthread_spin_unlock(&cq->lock);
	return ret;
}

/*
 * ibv_destroy_cq(): system call DESTROY_CQ, then the ring's mapping goes (the driver frees
 * the ring once both happened). libibverbs then waits until the caller has acknowledged
 * every event the kernel reported for the CQ.
 */
static int pfnic_destroy_cq(struct ibv_cq *ibcq)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);
	int ret;

	ret = ibv_cmd_destroy_cq(ibcq);
	if (ret)
		return ret;
	munmap(cq->ring, cq->map_size);
	pthread_spin_destroy(&cq->lock);
	free(cq);
	return 0;
}

/* A CQE into the verbs' work completion (the values are the verbs' own: pfnic-abi.h). */
static void pfnic_wc_from_cqe(struct ibv_wc *wc, const struct pfnic_cqe *cqe)
{
	wc->wr_id = cqe->wr_id;
	wc->status = (enum ibv_wc_status)cqe->status;
	wc->opcode = (enum ibv_wc_opcode)cqe->opcode;
	wc->vendor_err = cqe->vendor_err;
	wc->byte_len = cqe->byte_len;
	wc->imm_data = cqe->ex_data;
	wc->qp_num = cqe->qp_num;
	wc->src_qp = cqe->src_qp;
	wc->wc_flags = cqe->wc_flags;
	wc->pkey_index = cqe->pkey_index;
	wc->slid = cqe->slid;
	wc->sl = cqe->sl;
	wc->dlid_path_bits = cqe->dlid_path_bits;
}

/*
 * ibv_poll_cq(): up to num_entries completions from the ring, no system call. A CQ whose
 * ring overflowed is in error: -1, errno EOVERFLOW, as the kernel's poll answered before.
 */
static int pfnic_poll_cq(struct ibv_cq *ibcq, int num_entries, struct ibv_wc *wc)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);
	uint32_t producer;
	int n = 0;

	if (num_entries < 0) {
		errno = EINVAL;
		return -1;
	}
	pthread_spin_lock(&cq->lock);
	if (__atomic_load_n(&cq->ring->flags, __ATOMIC_RELAXED) & PFNIC_CQ_RING_OVERFLOW) {
		pthread_spin_unlock(&cq->lock);
		errno = EOVERFLOW;
		return -1;
	}
	/* acquire: the CQEs below the index are written before it */
	producer = __atomic_load_n(&cq->ring->producer, __ATOMIC_ACQUIRE);
	while (n < num_entries && cq->consumer != producer) {
		pfnic_wc_from_cqe(&wc[n++], &cq->cqes[cq->consumer & (cq->slots - 1)]);
		cq->consumer++;
	}
	/* release: the CQEs are read before the driver may write their slots again */
	if (n)
		__atomic_store_n(&cq->ring->consumer, cq->consumer, __ATOMIC_RELEASE);
	pthread_spin_unlock(&cq->lock);
	return n;
}

/*
 * ibv_req_notify_cq(): a new arming request in the ring's arming word, no system call. The
 * driver fires the completion event for the first completion it writes after it sees the
 * request (pfnic-abi.h). A NEXT request that has not fired yet is not narrowed to SOLICITED.
 */
static int pfnic_req_notify_cq(struct ibv_cq *ibcq, int solicited_only)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);
	uint32_t old, fired, request, seq;

	pthread_spin_lock(&cq->lock);
	old = __atomic_load_n(&cq->ring->arm, __ATOMIC_RELAXED);
	fired = __atomic_load_n(&cq->ring->fired, __ATOMIC_ACQUIRE);
	request = solicited_only ? PFNIC_CQ_ARM_SOLICITED : PFNIC_CQ_ARM_NEXT;
	if ((old >> PFNIC_CQ_ARM_SHIFT) != fired && (old & PFNIC_CQ_ARM_NEXT))
		request = PFNIC_CQ_ARM_NEXT;
	/* sequence 0 is the ring's first, never fired, value: skip it when wrapping */
	seq = ((old >> PFNIC_CQ_ARM_SHIFT) + 1) & (UINT32_MAX >> PFNIC_CQ_ARM_SHIFT);
	if (!seq)
		seq = 1;
	__atomic_store_n(&cq->ring->arm, seq << PFNIC_CQ_ARM_SHIFT | request, __ATOMIC_RELEASE);
	/*
	 * The request is visible before this thread polls again: a completion the driver
	 * writes after this point sees the request, and one written before is seen by that
	 * poll (the driver orders its index store and its arming load likewise).
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	pthread_spin_unlock(&cq->lock);
	return 0;
}

/* CREATE_QP's response: the core's, then the driver's (pfnic-abi.h). */
struct pfnic_create_qp_resp_all {
	struct ib_uverbs_create_qp_resp ibv_resp;
	struct pfnic_create_qp_resp drv;
};

/* ------------------------------------------------------------------------------------------
 * Extended CQs: ibv_create_cq_ex, ibv_start_poll / ibv_next_poll / ibv_end_poll, ibv_wc_read_*
 */

/* The CQE the poll is at: start_poll and next_poll set it, the read functions read it. */
static const struct pfnic_cqe *pfnic_cur(struct ibv_cq_ex *ibcq)
{
	return to_pfnic_cq(ibv_cq_ex_to_cq(ibcq))->cur;
}

/* Moves the poll to the CQE at the consumer index, if there is one. Caller holds the lock. */
static int pfnic_poll_at(struct pfnic_cq *cq)
{
	/* acquire: the CQEs below the index are written before it */
	uint32_t producer = __atomic_load_n(&cq->ring->producer, __ATOMIC_ACQUIRE);

	if (cq->consumer == producer) {
		cq->cur = NULL;
		return ENOENT;
	}
	cq->cur = &cq->cqes[cq->consumer & (cq->slots - 1)];
	cq->ibv_cq_ex.wr_id = cq->cur->wr_id;
	cq->ibv_cq_ex.status = (enum ibv_wc_status)cq->cur->status;
	return 0;
}

/* Lets the driver have the slots of the CQEs taken. Caller holds the lock. */
static void pfnic_poll_publish(struct pfnic_cq *cq)
{
	/* release: the CQEs are read before the driver may write their slots again */
	__atomic_store_n(&cq->ring->consumer, cq->consumer, __ATOMIC_RELEASE);
}

/*
 * ibv_start_poll(): the first completion, or ENOENT (then the poll is over: no end_poll). The
 * CQ stays locked until ibv_end_poll(). A CQ whose ring overflowed is in error: EOVERFLOW.
 */
static int pfnic_start_poll(struct ibv_cq_ex *ibcq, struct ibv_poll_cq_attr *attr)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibv_cq_ex_to_cq(ibcq));
	int ret;

	if (attr->comp_mask)
		return EINVAL;
	pthread_spin_lock(&cq->lock);
	if (__atomic_load_n(&cq->ring->flags, __ATOMIC_RELAXED) & PFNIC_CQ_RING_OVERFLOW)
		ret = EOVERFLOW;
	else
		ret = pfnic_poll_at(cq);
	if (ret)
		pthread_spin_unlock(&cq->lock);
	return ret;
}

/* ibv_next_poll(): the completion after the current one (which is taken), or ENOENT. */
static int pfnic_next_poll(struct ibv_cq_ex *ibcq)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibv_cq_ex_to_cq(ibcq));

	if (cq->cur)
		cq->consumer++;
	return pfnic_poll_at(cq);
}

/* ibv_end_poll(): the current completion is taken, and the CQ unlocked. */
static void pfnic_end_poll(struct ibv_cq_ex *ibcq)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibv_cq_ex_to_cq(ibcq));

	if (cq->cur)
		cq->consumer++;
	cq->cur = NULL;
	pfnic_poll_publish(cq);
	pthread_spin_unlock(&cq->lock);
}

static enum ibv_wc_opcode pfnic_read_opcode(struct ibv_cq_ex *ibcq)
{
	return (enum ibv_wc_opcode)pfnic_cur(ibcq)->opcode;
}

static uint32_t pfnic_read_vendor_err(struct ibv_cq_ex *ibcq)
{
	return pfnic_cur(ibcq)->vendor_err;
}

static uint32_t pfnic_read_byte_len(struct ibv_cq_ex *ibcq)
{
	return pfnic_cur(ibcq)->byte_len;
}

/* The immediate data (network order), or the invalidated rkey (ibv_wc_read_invalidated_rkey) */
static __be32 pfnic_read_imm_data(struct ibv_cq_ex *ibcq)
{
	return (__be32)pfnic_cur(ibcq)->ex_data;
}

static uint32_t pfnic_read_qp_num(struct ibv_cq_ex *ibcq)
{
	return pfnic_cur(ibcq)->qp_num;
}

static uint32_t pfnic_read_src_qp(struct ibv_cq_ex *ibcq)
{
	return pfnic_cur(ibcq)->src_qp;
}

static unsigned int pfnic_read_wc_flags(struct ibv_cq_ex *ibcq)
{
	return pfnic_cur(ibcq)->wc_flags;
}

static uint32_t pfnic_read_slid(struct ibv_cq_ex *ibcq)
{
	return pfnic_cur(ibcq)->slid;
}

static uint8_t pfnic_read_sl(struct ibv_cq_ex *ibcq)
{
	return pfnic_cur(ibcq)->sl;
}

static uint8_t pfnic_read_dlid_path_bits(struct ibv_cq_ex *ibcq)
{
	return pfnic_cur(ibcq)->dlid_path_bits;
}

/*
 * ibv_create_cq_ex(): a CQ with the extended poll, for the completion fields a CQE carries
 * (IBV_WC_STANDARD_FLAGS); timestamps and the other fields, parent domains and the overrun
 * flag are refused with EOPNOTSUPP. IBV_CREATE_CQ_ATTR_SINGLE_THREADED is a hint only.
 */
static struct ibv_cq_ex *pfnic_create_cq_ex(struct ibv_context *context,
					    struct ibv_cq_init_attr_ex *attr)
{
	struct ibv_comp_channel *channel = attr->channel;
	struct ibv_cq_ex *ex;
	struct pfnic_cq *cq;

	if ((attr->comp_mask & ~IBV_CQ_INIT_ATTR_MASK_FLAGS) ||
	    (attr->wc_flags & ~(uint64_t)IBV_WC_STANDARD_FLAGS) ||
	    ((attr->comp_mask & IBV_CQ_INIT_ATTR_MASK_FLAGS) &&
	     (attr->flags & ~IBV_CREATE_CQ_ATTR_SINGLE_THREADED))) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	cq = pfnic_cq_make(context, (int)attr->cqe, channel, (int)attr->comp_vector);
	if (!cq)
		return NULL;
	ex = &cq->ibv_cq_ex;
	/* what libibverbs' ibv_create_cq does after a provider's create_cq, done here */
	ex->channel = channel;
	ex->cq_context = attr->cq_context;
	pthread_mutex_init(&ex->mutex, NULL);
	pthread_cond_init(&ex->cond, NULL);
	if (channel) {
		pthread_mutex_lock(&context->mutex);
		channel->refcnt++;
		pthread_mutex_unlock(&context->mutex);
	}
	ex->start_poll = pfnic_start_poll;
	ex->next_poll = pfnic_next_poll;
	ex->end_poll = pfnic_end_poll;
	ex->read_opcode = pfnic_read_opcode;
	ex->read_vendor_err = pfnic_read_vendor_err;
	ex->read_wc_flags = pfnic_read_wc_flags;
	if (attr->wc_flags & IBV_WC_EX_WITH_BYTE_LEN)
		ex->read_byte_len = pfnic_read_byte_len;
	if (attr->wc_flags & IBV_WC_EX_WITH_IMM)
		ex->read_imm_data = pfnic_read_imm_data;
	if (attr->wc_flags & IBV_WC_EX_WITH_QP_NUM)
		ex->read_qp_num = pfnic_read_qp_num;
	if (attr->wc_flags & IBV_WC_EX_WITH_SRC_QP)
		ex->read_src_qp = pfnic_read_src_qp;
	if (attr->wc_flags & IBV_WC_EX_WITH_SLID)
		ex->read_slid = pfnic_read_slid;
	if (attr->wc_flags & IBV_WC_EX_WITH_SL)
		ex->read_sl = pfnic_read_sl;
	if (attr->wc_flags & IBV_WC_EX_WITH_DLID_PATH_BITS)
		ex->read_dlid_path_bits = pfnic_read_dlid_path_bits;
	return ex;
}

/*
 * Maps the rings CREATE_QP answered with: a send ring, but for an XRC TGT QP; a receive
 * ring, but for a QP on an SRQ or an XRC QP (an INI QP only sends). Return: 0, or an errno
 * with none mapped.
 */
static int pfnic_qp_map_rings(struct ibv_context *context, struct pfnic_qp *qp,
			      const struct pfnic_create_qp_resp *drv, enum ibv_qp_type type,
			      bool srq, const struct ibv_qp_cap *cap)
{
	int ret = 0;

	qp->max_inline = drv->max_inline;
	if (type != IBV_QPT_XRC_RECV)
		ret = pfnic_uwq_map(context, &qp->sq, &drv->sq, cap->max_send_sge);
	if (!ret && !srq && type != IBV_QPT_XRC_SEND && type != IBV_QPT_XRC_RECV)
		ret = pfnic_uwq_map(context, &qp->rq, &drv->rq, cap->max_recv_sge);
	if (ret)
		pfnic_uwq_unmap(&qp->sq);
	return ret;
}

/*
 * ibv_create_qp(): system call CREATE_QP, whose response says where the QP's rings are,
 * which are mapped here. Which QP types and capabilities are supported is the kernel
 * driver's call (RC, UD); the capabilities it granted come back in attr->cap. The QP is a
 * verbs_qp, as libibverbs' ibv_qp_to_qp_ex() assumes; comp_mask stays 0, so that reports no
 * extended QP.
 */
static struct ibv_qp *pfnic_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
	struct pfnic_create_qp_resp_all resp;
	struct ibv_create_qp cmd;
	struct pfnic_qp *qp;
	int ret;

	qp = calloc(1, sizeof(*qp));
	if (!qp)
		return NULL;

	memset(&cmd, 0, sizeof(cmd));
	memset(&resp, 0, sizeof(resp));
	ret = ibv_cmd_create_qp(pd, &qp->vqp.qp, attr, &cmd, sizeof(cmd), &resp.ibv_resp,
				sizeof(resp));
	if (ret) {
		free(qp);
		errno = ret;
		return NULL;
	}
	ret = pfnic_qp_map_rings(pd->context, qp, &resp.drv, attr->qp_type, attr->srq, &attr->cap);
	if (ret) {
		ibv_cmd_destroy_qp(&qp->vqp.qp);
		free(qp);
		errno = ret;
		return NULL;
	}
	return &qp->vqp.qp;
}

/* ------------------------------------------------------------------------------------------
 * Extended QPs: ibv_wr_start(), ibv_wr_<opcode>(), ibv_wr_set_*(), ibv_wr_complete()
 *
 * Each ibv_wr_<opcode>() begins a WQE in the send ring and the setters fill it; nothing is
 * seen by the driver until ibv_wr_complete() publishes them all (and rings the doorbell if
 * the engine is idle). An error on the way (a full ring, too many SGEs, too much inline
 * data, a QP not yet in RTS) is kept and returned by ibv_wr_complete(), which then posts
 * none of them, as ibv_wr_abort() does.
 */

static struct pfnic_qp *pfnic_qpx(struct ibv_qp_ex *qpx)
{
	return to_pfnic_qp(&qpx->qp_base);
}

static void pfnic_wr_start(struct ibv_qp_ex *qpx)
{
	struct pfnic_qp *qp = pfnic_qpx(qpx);
	enum ibv_qp_state state;

	pthread_spin_lock(&qp->sq.lock);
	qp->wr_begin = qp->sq.producer;
	qp->wr_cur = NULL;
	qp->wr_err = 0;
	state = pfnic_ring_qp_state(&qp->sq);
	if (state == IBV_QPS_RESET || state == IBV_QPS_INIT || state == IBV_QPS_RTR)
		qp->wr_err = EINVAL;
}

/* Begins a WQE of @opcode with the QP's wr_id and wr_flags. Return: it, or NULL (error kept). */
static struct pfnic_send_wqe *pfnic_wr_begin(struct ibv_qp_ex *qpx, enum ibv_wr_opcode opcode)
{
	struct pfnic_qp *qp = pfnic_qpx(qpx);
	struct pfnic_send_wqe *wqe;
	uint8_t *slot;

	qp->wr_cur = NULL;
	if (qp->wr_err)
		return NULL;
	slot = pfnic_uwq_next(&qp->sq);
	if (!slot) {
		qp->wr_err = ENOMEM;
		return NULL;
	}
	wqe = (struct pfnic_send_wqe *)slot;
	memset(wqe, 0, sizeof(*wqe));
	wqe->wr_id = qpx->wr_id;
	wqe->opcode = (uint8_t)opcode;
	wqe->send_flags = (uint16_t)(qpx->wr_flags & PFNIC_SEND_FLAGS & ~IBV_SEND_INLINE);
	qp->sq.producer++;
	qp->wr_cur = wqe;
	return wqe;
}

static void pfnic_wr_send(struct ibv_qp_ex *qpx)
{
	pfnic_wr_begin(qpx, IBV_WR_SEND);
}

static void pfnic_wr_send_imm(struct ibv_qp_ex *qpx, __be32 imm_data)
{
	struct pfnic_send_wqe *wqe = pfnic_wr_begin(qpx, IBV_WR_SEND_WITH_IMM);

	if (wqe)
		wqe->ex_data = imm_data;
}

static void pfnic_wr_send_inv(struct ibv_qp_ex *qpx, uint32_t invalidate_rkey)
{
	struct pfnic_send_wqe *wqe = pfnic_wr_begin(qpx, IBV_WR_SEND_WITH_INV);

	if (wqe)
		wqe->ex_data = invalidate_rkey;
}

static void pfnic_wr_local_inv(struct ibv_qp_ex *qpx, uint32_t invalidate_rkey)
{
	struct pfnic_send_wqe *wqe = pfnic_wr_begin(qpx, IBV_WR_LOCAL_INV);

	if (wqe)
		wqe->ex_data = invalidate_rkey;
}

/* A bind's WQE: the window's new rkey, the MR's lkey, the window's bounds and rights. */
static void pfnic_bind_wqe_fill(struct pfnic_send_wqe *wqe, uint32_t rkey,
				const struct ibv_mw_bind_info *info)
{
	wqe->rkey = rkey;
	wqe->ex_data = info->mr ? info->mr->lkey : 0;
	wqe->remote_addr = info->addr;
	wqe->compare_add = info->length;
	wqe->swap = info->mw_access_flags;
}

/*
 * Whether a bind of @mw to @rkey is one to post: a window of this QP's device, bound through
 * the post (type 2) or through ibv_bind_mw() (type 1, @type1), keeping its index (the
 * rkey's upper 24 bits, which name the window to the driver), with an MR unless it unbinds.
 */
static bool pfnic_bind_ok(const struct pfnic_qp *qp, const struct ibv_mw *mw, uint32_t rkey,
			  const struct ibv_mw_bind_info *info, bool type1)
{
	return mw && mw->context == qp->vqp.qp.context &&
	       mw->type == (type1 ? IBV_MW_TYPE_1 : IBV_MW_TYPE_2) &&
	       (rkey >> 8) == (mw->rkey >> 8) && (info->mr || (type1 && !info->length));
}

static void pfnic_wr_bind_mw(struct ibv_qp_ex *qpx, struct ibv_mw *mw, uint32_t rkey,
			     const struct ibv_mw_bind_info *info)
{
	struct pfnic_qp *qp = pfnic_qpx(qpx);
	struct pfnic_send_wqe *wqe;

	if (!qp->wr_err && !pfnic_bind_ok(qp, mw, rkey, info, false)) {
		qp->wr_err = EINVAL;
		return;
	}
	wqe = pfnic_wr_begin(qpx, IBV_WR_BIND_MW);
	if (wqe)
		pfnic_bind_wqe_fill(wqe, rkey, info);
}

static void pfnic_wr_rdma(struct ibv_qp_ex *qpx, enum ibv_wr_opcode opcode, uint32_t rkey,
			  uint64_t remote_addr, __be32 imm_data)
{
	struct pfnic_send_wqe *wqe = pfnic_wr_begin(qpx, opcode);

	if (!wqe)
		return;
	wqe->rkey = rkey;
	wqe->remote_addr = remote_addr;
	wqe->ex_data = imm_data;
}

static void pfnic_wr_rdma_write(struct ibv_qp_ex *qpx, uint32_t rkey, uint64_t remote_addr)
{
	pfnic_wr_rdma(qpx, IBV_WR_RDMA_WRITE, rkey, remote_addr, 0);
}

static void pfnic_wr_rdma_write_imm(struct ibv_qp_ex *qpx, uint32_t rkey, uint64_t remote_addr,
				    __be32 imm_data)
{
	pfnic_wr_rdma(qpx, IBV_WR_RDMA_WRITE_WITH_IMM, rkey, remote_addr, imm_data);
}

static void pfnic_wr_rdma_read(struct ibv_qp_ex *qpx, uint32_t rkey, uint64_t remote_addr)
{
	pfnic_wr_rdma(qpx, IBV_WR_RDMA_READ, rkey, remote_addr, 0);
}

static void pfnic_wr_atomic(struct ibv_qp_ex *qpx, enum ibv_wr_opcode opcode, uint32_t rkey,
			    uint64_t remote_addr, uint64_t compare_add, uint64_t swap)
{
	struct pfnic_send_wqe *wqe = pfnic_wr_begin(qpx, opcode);

	if (!wqe)
		return;
	wqe->rkey = rkey;
	wqe->remote_addr = remote_addr;
	wqe->compare_add = compare_add;
	wqe->swap = swap;
}

static void pfnic_wr_atomic_cmp_swp(struct ibv_qp_ex *qpx, uint32_t rkey, uint64_t remote_addr,
				    uint64_t compare, uint64_t swap)
{
	pfnic_wr_atomic(qpx, IBV_WR_ATOMIC_CMP_AND_SWP, rkey, remote_addr, compare, swap);
}

static void pfnic_wr_atomic_fetch_add(struct ibv_qp_ex *qpx, uint32_t rkey,
				      uint64_t remote_addr, uint64_t add)
{
	pfnic_wr_atomic(qpx, IBV_WR_ATOMIC_FETCH_AND_ADD, rkey, remote_addr, add, 0);
}

/* ibv_wr_atomic_write(): the 8 bytes at @value, stored at once at @remote_addr. */
static void pfnic_wr_atomic_write(struct ibv_qp_ex *qpx, uint32_t rkey, uint64_t remote_addr,
				  const void *value)
{
	struct pfnic_send_wqe *wqe = pfnic_wr_begin(qpx, IBV_WR_ATOMIC_WRITE);

	if (!wqe)
		return;
	wqe->rkey = rkey;
	wqe->remote_addr = remote_addr;
	memcpy(&wqe->compare_add, value, sizeof(wqe->compare_add));
}

/* ibv_wr_set_xrc_srqn(): the XRC SRQ the current WQE's message is for. */
static void pfnic_wr_set_xrc_srqn(struct ibv_qp_ex *qpx, uint32_t remote_srqn)
{
	struct pfnic_send_wqe *wqe = pfnic_qpx(qpx)->wr_cur;

	if (wqe)
		wqe->remote_qpn = remote_srqn;
}

static void pfnic_wr_set_ud_addr(struct ibv_qp_ex *qpx, struct ibv_ah *ah, uint32_t remote_qpn,
				 uint32_t remote_qkey)
{
	struct pfnic_qp *qp = pfnic_qpx(qpx);
	struct pfnic_send_wqe *wqe = qp->wr_cur;

	if (!wqe)
		return;
	if (!ah) {
		qp->wr_err = EINVAL;
		return;
	}
	memcpy(wqe->dgid, to_pfnic_ah(ah)->dgid, sizeof(wqe->dgid));
	wqe->sgid_index = to_pfnic_ah(ah)->sgid_index;
	wqe->remote_qpn = remote_qpn;
	wqe->remote_qkey = remote_qkey;
}

/* The current WQE's buffers; an atomic's must be one of 8 bytes. */
static void pfnic_wr_set_sge_list(struct ibv_qp_ex *qpx, size_t num_sge,
				  const struct ibv_sge *sg_list)
{
	struct pfnic_qp *qp = pfnic_qpx(qpx);
	struct pfnic_send_wqe *wqe = qp->wr_cur;
	uint64_t len = 0;

	if (!wqe)
		return;
	for (size_t i = 0; i < num_sge; i++)
		len += sg_list[i].length;
	if (num_sge > qp->sq.max_sge || len > (1ULL << 31) ||
	    ((wqe->opcode == IBV_WR_ATOMIC_CMP_AND_SWP || wqe->opcode == IBV_WR_ATOMIC_FETCH_AND_ADD) &&
	     (num_sge != 1 || sg_list[0].length != sizeof(uint64_t)))) {
		qp->wr_err = EINVAL;
		return;
	}
	wqe->num_sge = (uint16_t)num_sge;
	memcpy(wqe + 1, sg_list, num_sge * sizeof(struct pfnic_sge));
}

static void pfnic_wr_set_sge(struct ibv_qp_ex *qpx, uint32_t lkey, uint64_t addr,
			     uint32_t length)
{
	struct ibv_sge sge = { .addr = addr, .length = length, .lkey = lkey };

	pfnic_wr_set_sge_list(qpx, 1, &sge);
}

/* The current WQE's data, copied into it now (SEND and RDMA WRITE only). */
static void pfnic_wr_set_inline_data_list(struct ibv_qp_ex *qpx, size_t num_buf,
					  const struct ibv_data_buf *buf_list)
{
	struct pfnic_qp *qp = pfnic_qpx(qpx);
	struct pfnic_send_wqe *wqe = qp->wr_cur;
	uint8_t *data;
	size_t len = 0;

	if (!wqe)
		return;
	for (size_t i = 0; i < num_buf; i++)
		len += buf_list[i].length;
	if (len > qp->max_inline || !pfnic_inline_opcode((enum ibv_wr_opcode)wqe->opcode)) {
		qp->wr_err = EINVAL;
		return;
	}
	data = (uint8_t *)(wqe + 1);
	for (size_t i = 0; i < num_buf; i++) {
		memcpy(data, buf_list[i].addr, buf_list[i].length);
		data += buf_list[i].length;
	}
	wqe->send_flags |= IBV_SEND_INLINE;
	wqe->inline_len = (uint32_t)len;
	wqe->num_sge = 0;
}

static void pfnic_wr_set_inline_data(struct ibv_qp_ex *qpx, void *addr, size_t length)
{
	struct ibv_data_buf buf = { .addr = addr, .length = length };

	pfnic_wr_set_inline_data_list(qpx, 1, &buf);
}

static int pfnic_wr_complete(struct ibv_qp_ex *qpx)
{
	struct pfnic_qp *qp = pfnic_qpx(qpx);
	bool ring_bell = false;
	int ret = qp->wr_err;

	if (ret)
		qp->sq.producer = qp->wr_begin;
	else if (qp->sq.producer != qp->wr_begin)
		ring_bell = pfnic_uwq_publish(&qp->sq) ||
			    pfnic_ring_qp_state(&qp->sq) == IBV_QPS_ERR;
	qp->wr_cur = NULL;
	pthread_spin_unlock(&qp->sq.lock);
	if (ring_bell)
		pfnic_doorbell(&qp->vqp.qp);
	return ret;
}

static void pfnic_wr_abort(struct ibv_qp_ex *qpx)
{
	struct pfnic_qp *qp = pfnic_qpx(qpx);

	qp->sq.producer = qp->wr_begin;
	qp->wr_cur = NULL;
	pthread_spin_unlock(&qp->sq.lock);
}

/* The extended post's operations pfnic has, by QP type. */
#define PFNIC_QP_EX_UD_OPS (IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_SEND_WITH_IMM)
/* UC: sends and writes, no responder resources (reads, atomics) and no SEND with Invalidate */
#define PFNIC_QP_EX_UC_OPS (PFNIC_QP_EX_UD_OPS | IBV_QP_EX_WITH_RDMA_WRITE | \
			    IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM | IBV_QP_EX_WITH_LOCAL_INV | \
			    IBV_QP_EX_WITH_BIND_MW)
#define PFNIC_QP_EX_RC_OPS (PFNIC_QP_EX_UC_OPS | IBV_QP_EX_WITH_SEND_WITH_INV | \
			    IBV_QP_EX_WITH_RDMA_READ | IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP | \
			    IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD | IBV_QP_EX_WITH_ATOMIC_WRITE)

/* The extended post's operations a QP of @type may have. */
static uint64_t pfnic_qp_ex_ops(enum ibv_qp_type type)
{
	switch (type) {
	case IBV_QPT_RC:
	case IBV_QPT_XRC_SEND:
		return PFNIC_QP_EX_RC_OPS;
	case IBV_QPT_XRC_RECV:
		return 0;
	case IBV_QPT_UC:
		return PFNIC_QP_EX_UC_OPS;
	default:
		return PFNIC_QP_EX_UD_OPS;
	}
}

/* Makes @qp an extended QP: libibverbs' ibv_qp_to_qp_ex() then returns its ibv_qp_ex. */
static void pfnic_qp_ex_init(struct pfnic_qp *qp)
{
	struct ibv_qp_ex *qpx = &qp->vqp.qp_ex;

	qp->vqp.comp_mask |= PFNIC_VERBS_QP_EX;
	qpx->wr_start = pfnic_wr_start;
	qpx->wr_complete = pfnic_wr_complete;
	qpx->wr_abort = pfnic_wr_abort;
	qpx->wr_send = pfnic_wr_send;
	qpx->wr_send_imm = pfnic_wr_send_imm;
	qpx->wr_set_sge = pfnic_wr_set_sge;
	qpx->wr_set_sge_list = pfnic_wr_set_sge_list;
	qpx->wr_set_inline_data = pfnic_wr_set_inline_data;
	qpx->wr_set_inline_data_list = pfnic_wr_set_inline_data_list;
	if (qp->vqp.qp.qp_type == IBV_QPT_UD) {
		qpx->wr_set_ud_addr = pfnic_wr_set_ud_addr;
		return;
	}
	qpx->wr_local_inv = pfnic_wr_local_inv;
	qpx->wr_bind_mw = pfnic_wr_bind_mw;
	if (qp->vqp.qp.qp_type == IBV_QPT_XRC_SEND)
		qpx->wr_set_xrc_srqn = pfnic_wr_set_xrc_srqn;
	qpx->wr_rdma_write = pfnic_wr_rdma_write;
	qpx->wr_rdma_write_imm = pfnic_wr_rdma_write_imm;
	if (qp->vqp.qp.qp_type == IBV_QPT_UC)
		return;
	qpx->wr_send_inv = pfnic_wr_send_inv;
	qpx->wr_rdma_read = pfnic_wr_rdma_read;
	qpx->wr_atomic_cmp_swp = pfnic_wr_atomic_cmp_swp;
	qpx->wr_atomic_fetch_add = pfnic_wr_atomic_fetch_add;
	qpx->wr_atomic_write = pfnic_wr_atomic_write;
}

/*
 * An XRC QP: system call CREATE_QP with the extended attributes. An XRC_SEND QP (INI) has a
 * send queue's ring and no receive queue; an XRC_RECV QP (TGT), of an XRC domain, has no ring
 * at all: its messages land in the XRC SRQs they name.
 */
static struct ibv_qp *pfnic_create_qp_xrc(struct ibv_context *context,
					  struct ibv_qp_init_attr_ex *attr)
{
	struct pfnic_create_qp_resp_all resp;
	struct ibv_create_qp cmd;
	struct pfnic_qp *qp;
	int ret;

	qp = calloc(1, sizeof(*qp));
	if (!qp)
		return NULL;
	memset(&cmd, 0, sizeof(cmd));
	memset(&resp, 0, sizeof(resp));
	ret = ibv_cmd_create_qp_ex(context, &qp->vqp, attr, &cmd, sizeof(cmd), &resp.ibv_resp,
				   sizeof(resp));
	if (ret) {
		free(qp);
		errno = ret;
		return NULL;
	}
	ret = pfnic_qp_map_rings(context, qp, &resp.drv, attr->qp_type, false, &attr->cap);
	if (ret) {
		ibv_cmd_destroy_qp(&qp->vqp.qp);
		free(qp);
		errno = ret;
		return NULL;
	}
	return &qp->vqp.qp;
}

/*
 * ibv_create_qp_ex(): a QP of its PD (an XRC TGT QP: of its XRC domain), with no creation
 * flags, and with the extended post (IBV_QP_INIT_ATTR_SEND_OPS_FLAGS) for the operations
 * pfnic has on the QP's type. Anything else (TSO, RSS, ...) is EOPNOTSUPP, as for a missing
 * verb.
 */
static struct ibv_qp *pfnic_create_qp_ex(struct ibv_context *context,
					 struct ibv_qp_init_attr_ex *attr)
{
	uint64_t ops = attr->comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS ?
		       attr->send_ops_flags : 0;
	struct ibv_qp_init_attr plain;
	struct ibv_qp *qp;

	bool xrc = attr->qp_type == IBV_QPT_XRC_SEND || attr->qp_type == IBV_QPT_XRC_RECV;

	if ((attr->comp_mask & ~(IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_CREATE_FLAGS |
				 IBV_QP_INIT_ATTR_SEND_OPS_FLAGS | IBV_QP_INIT_ATTR_XRCD)) ||
	    (!(attr->comp_mask & IBV_QP_INIT_ATTR_PD) && attr->qp_type != IBV_QPT_XRC_RECV) ||
	    (attr->qp_type == IBV_QPT_XRC_RECV && !(attr->comp_mask & IBV_QP_INIT_ATTR_XRCD)) ||
	    ((attr->comp_mask & IBV_QP_INIT_ATTR_CREATE_FLAGS) && attr->create_flags) ||
	    (ops & ~pfnic_qp_ex_ops(attr->qp_type))) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	if (attr->qp_type != IBV_QPT_XRC_RECV && attr->pd->context != context) {
		errno = EINVAL;
		return NULL;
	}
	if (xrc) {
		qp = pfnic_create_qp_xrc(context, attr);
		if (qp && attr->qp_type == IBV_QPT_XRC_SEND &&
		    (attr->comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS))
			pfnic_qp_ex_init(to_pfnic_qp(qp));
		return qp;
	}
	memset(&plain, 0, sizeof(plain));
	plain.qp_context = attr->qp_context;
	plain.send_cq = attr->send_cq;
	plain.recv_cq = attr->recv_cq;
	plain.srq = attr->srq;
	plain.cap = attr->cap;
	plain.qp_type = attr->qp_type;
	plain.sq_sig_all = attr->sq_sig_all;
	qp = pfnic_create_qp(attr->pd, &plain);
	if (!qp)
		return NULL;
	attr->cap = plain.cap;
	if (attr->comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS)
		pfnic_qp_ex_init(to_pfnic_qp(qp));
	return qp;
}

/*
 * ibv_open_qp(): system call OPEN_QP, another handle on an XRC TGT QP of the domain (as a
 * second process sharing the domain through its file opens it). The TGT QP lives on while
 * any handle on it does; having no ring, the handle needs nothing mapped.
 */
static struct ibv_qp *pfnic_open_qp(struct ibv_context *context, struct ibv_qp_open_attr *attr)
{
	struct ib_uverbs_create_qp_resp resp;
	struct ibv_open_qp cmd;
	struct pfnic_qp *qp;
	int ret;

	if (attr->qp_type != IBV_QPT_XRC_RECV) {
		errno = EINVAL;
		return NULL;
	}
	qp = calloc(1, sizeof(*qp));
	if (!qp)
		return NULL;
	memset(&cmd, 0, sizeof(cmd));
	memset(&resp, 0, sizeof(resp));
	ret = ibv_cmd_open_qp(context, &qp->vqp, sizeof(qp->vqp), attr, &cmd, sizeof(cmd), &resp,
			      sizeof(resp));
	if (ret) {
		free(qp);
		errno = ret;
		return NULL;
	}
	return &qp->vqp.qp;
}

/* ibv_query_qp(): system call QUERY_QP. */
static int pfnic_query_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int attr_mask,
			  struct ibv_qp_init_attr *init_attr)
{
	struct ibv_query_qp cmd;

	memset(&cmd, 0, sizeof(cmd));
	return ibv_cmd_query_qp(qp, attr, attr_mask, init_attr, &cmd, sizeof(cmd));
}

/*
 * Takes QP @qpn's completions out of @ibcq's ring, as mlx5's provider cleans a CQ of a QP
 * moved to RESET: those not yet polled are moved up towards the producer over the QP's, in
 * order, and the consumer index passes the slots freed. The driver writes only at and past
 * the producer index read here, and adds nothing more for a QP in RESET. @keep_recv: receive
 * completions stay (an SRQ's: their WQEs are consumed, and cannot go back to it).
 */
static void pfnic_cq_clean(struct ibv_cq *ibcq, uint32_t qpn, bool keep_recv)
{
	struct pfnic_cq *cq = to_pfnic_cq(ibcq);
	uint32_t producer, from, to, mask = cq->slots - 1;

	pthread_spin_lock(&cq->lock);
	producer = __atomic_load_n(&cq->ring->producer, __ATOMIC_ACQUIRE);
	to = producer;
	for (from = producer; from != cq->consumer;) {
		from--;
		if (cq->cqes[from & mask].qp_num == qpn &&
		    !(keep_recv && (cq->cqes[from & mask].opcode & IBV_WC_RECV)))
			continue;
		to--;
		if (to != from)
			cq->cqes[to & mask] = cq->cqes[from & mask];
	}
	if (to != cq->consumer) {
		cq->consumer = to;
		cq->cur = NULL;
		/* release: the moved CQEs are in place before their old slots go back */
		__atomic_store_n(&cq->ring->consumer, cq->consumer, __ATOMIC_RELEASE);
	}
	pthread_spin_unlock(&cq->lock);
}

/*
 * ibv_modify_qp(): system call MODIFY_QP. A QP moved to RESET starts its rings again at slot
 * 0, the driver's side and ours (pfnic-abi.h), and its completions leave its CQs (those of
 * an SRQ's receives stay: their WQEs are consumed).
 */
static int pfnic_modify_qp(struct ibv_qp *ibqp, struct ibv_qp_attr *attr, int attr_mask)
{
	struct pfnic_qp *qp = to_pfnic_qp(ibqp);
	struct ibv_modify_qp cmd;
	int ret;

	memset(&cmd, 0, sizeof(cmd));
	ret = ibv_cmd_modify_qp(ibqp, attr, attr_mask, &cmd, sizeof(cmd));
	if (ret || !(attr_mask & IBV_QP_STATE) || attr->qp_state != IBV_QPS_RESET)
		return ret;
	/* an XRC TGT QP has no ring and no CQ */
	if (!qp->sq.ring)
		return 0;
	pthread_spin_lock(&qp->sq.lock);
	qp->sq.producer = 0;
	pthread_spin_unlock(&qp->sq.lock);
	if (qp->rq.ring) {
		pthread_spin_lock(&qp->rq.lock);
		qp->rq.producer = 0;
		pthread_spin_unlock(&qp->rq.lock);
	}
	pfnic_cq_clean(ibqp->send_cq, ibqp->qp_num, ibqp->srq);
	if (ibqp->recv_cq && ibqp->recv_cq != ibqp->send_cq)
		pfnic_cq_clean(ibqp->recv_cq, ibqp->qp_num, ibqp->srq);
	return 0;
}

/*
 * ibv_destroy_qp(): system call DESTROY_QP. libibverbs then waits until the caller has
 * acknowledged every async event the kernel reported for the QP.
 */
static int pfnic_destroy_qp(struct ibv_qp *ibqp)
{
	struct pfnic_qp *qp = to_pfnic_qp(ibqp);
	int ret;

	ret = ibv_cmd_destroy_qp(ibqp);
	if (ret)
		return ret;
	pfnic_uwq_unmap(&qp->sq);
	pfnic_uwq_unmap(&qp->rq);
	free(qp);
	return 0;
}

/*
 * What the driver would refuse in a WQE, refused at the post instead, as the kernel's post
 * refused it: an opcode the QP's type does not have (a UD send needs an address handle),
 * more SGEs than the QP takes, more inline data than a WQE holds, an atomic without its one
 * 8-byte buffer, a message longer than 2 GiB. Return: 0 or EINVAL.
 */
static int pfnic_check_send_wr(const struct pfnic_qp *qp, const struct ibv_send_wr *wr,
			       uint64_t *len, bool type1)
{
	bool ud = qp->vqp.qp.qp_type == IBV_QPT_UD;
	bool rc = qp->vqp.qp.qp_type == IBV_QPT_RC || qp->vqp.qp.qp_type == IBV_QPT_XRC_SEND;

	*len = 0;
	if (wr->num_sge < 0)
		return EINVAL;
	for (int i = 0; i < wr->num_sge; i++)
		*len += wr->sg_list[i].length;
	switch (wr->opcode) {
	case IBV_WR_SEND:
	case IBV_WR_SEND_WITH_IMM:
		if (ud && !wr->wr.ud.ah)
			return EINVAL;
		break;
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
	case IBV_WR_LOCAL_INV:
		if (ud)
			return EINVAL;
		break;
	case IBV_WR_SEND_WITH_INV:
	case IBV_WR_RDMA_READ:
		if (!rc)
			return EINVAL;
		break;
	case IBV_WR_BIND_MW:
		if (ud || !pfnic_bind_ok(qp, wr->bind_mw.mw, wr->bind_mw.rkey,
					 &wr->bind_mw.bind_info, type1))
			return EINVAL;
		*len = 0;
		return 0;
	case IBV_WR_ATOMIC_CMP_AND_SWP:
	case IBV_WR_ATOMIC_FETCH_AND_ADD:
	case IBV_WR_ATOMIC_WRITE:
		/* an atomic write's one 8-byte buffer holds the value it writes */
		if (!rc || wr->num_sge != 1 || wr->sg_list[0].length != sizeof(uint64_t))
			return EINVAL;
		break;
	default:
		return EINVAL;
	}
	if ((wr->send_flags & IBV_SEND_INLINE) && pfnic_inline_opcode(wr->opcode))
		return *len > qp->max_inline ? EINVAL : 0;
	if ((uint32_t)wr->num_sge > qp->sq.max_sge || *len > (1ULL << 31))
		return EINVAL;
	return 0;
}

/* Writes a send WR into @slot: the WQE, then its SGEs or its inline data. */
static void pfnic_send_wqe_write(uint8_t *slot, const struct pfnic_qp *qp,
				 const struct ibv_send_wr *wr, uint64_t len)
{
	struct pfnic_send_wqe *wqe = (struct pfnic_send_wqe *)slot;
	uint8_t *data = slot + sizeof(*wqe);

	memset(wqe, 0, sizeof(*wqe));
	wqe->wr_id = wr->wr_id;
	wqe->opcode = (uint8_t)wr->opcode;
	wqe->send_flags = (uint16_t)(wr->send_flags & PFNIC_SEND_FLAGS);
	if (!pfnic_inline_opcode(wr->opcode))
		wqe->send_flags &= (uint16_t)~IBV_SEND_INLINE;
	if (wr->opcode == IBV_WR_BIND_MW) {
		wqe->send_flags &= (uint16_t)~IBV_SEND_INLINE;
		pfnic_bind_wqe_fill(wqe, wr->bind_mw.rkey, &wr->bind_mw.bind_info);
		return;
	}
	if (wr->opcode == IBV_WR_SEND_WITH_INV || wr->opcode == IBV_WR_LOCAL_INV)
		wqe->ex_data = wr->invalidate_rkey;
	else
		wqe->ex_data = wr->imm_data;
	if (qp->vqp.qp.qp_type == IBV_QPT_UD) {
		const struct pfnic_ah *ah = to_pfnic_ah(wr->wr.ud.ah);

		memcpy(wqe->dgid, ah->dgid, sizeof(wqe->dgid));
		wqe->sgid_index = ah->sgid_index;
		wqe->remote_qpn = wr->wr.ud.remote_qpn;
		wqe->remote_qkey = wr->wr.ud.remote_qkey;
	} else if (wr->opcode == IBV_WR_ATOMIC_WRITE) {
		/* the value is read now, as inline data is: the buffer may change once posted */
		wqe->remote_addr = wr->wr.rdma.remote_addr;
		wqe->rkey = wr->wr.rdma.rkey;
		memcpy(&wqe->compare_add, (const void *)(uintptr_t)wr->sg_list[0].addr,
		       sizeof(wqe->compare_add));
		return;
	} else if (wr->opcode == IBV_WR_ATOMIC_CMP_AND_SWP ||
		   wr->opcode == IBV_WR_ATOMIC_FETCH_AND_ADD) {
		wqe->remote_addr = wr->wr.atomic.remote_addr;
		wqe->rkey = wr->wr.atomic.rkey;
		wqe->compare_add = wr->wr.atomic.compare_add;
		wqe->swap = wr->wr.atomic.swap;
	} else {
		wqe->remote_addr = wr->wr.rdma.remote_addr;
		wqe->rkey = wr->wr.rdma.rkey;
	}
	/* an XRC INI QP's message names the XRC SRQ it is for, where UD names a QP */
	if (qp->vqp.qp.qp_type == IBV_QPT_XRC_SEND)
		wqe->remote_qpn = wr->qp_type.xrc.remote_srqn;
	if (wqe->send_flags & IBV_SEND_INLINE) {
		/* the data is copied now: the caller may reuse its buffers once this returns */
		wqe->inline_len = (uint32_t)len;
		for (int i = 0; i < wr->num_sge; i++) {
			memcpy(data, (const void *)(uintptr_t)wr->sg_list[i].addr,
			       wr->sg_list[i].length);
			data += wr->sg_list[i].length;
		}
		return;
	}
	wqe->num_sge = (uint16_t)wr->num_sge;
	memcpy(data, wr->sg_list, (size_t)wr->num_sge * sizeof(struct pfnic_sge));
}

/*
 * ibv_post_send(): the WRs go into the send queue's ring; a system call (POST_SEND with no
 * WR, the doorbell) only when the driver's engine is idle and must be woken, or the QP is in
 * the error state, where the driver flushes them. On failure *bad_wr is the first WR not
 * posted: EINVAL (see pfnic_check_send_wr(), or a QP not yet in RTS), ENOMEM (the queue is
 * full).
 */
static int pfnic_post_send_wrs(struct ibv_qp *ibqp, struct ibv_send_wr *wr,
			       struct ibv_send_wr **bad_wr, bool type1)
{
	struct pfnic_qp *qp = to_pfnic_qp(ibqp);
	struct pfnic_uwq *sq = &qp->sq;
	enum ibv_qp_state state;
	bool ring_bell = false;
	uint64_t len;
	uint8_t *slot;
	int ret = 0;

	/* an XRC TGT QP has no send queue */
	if (!sq->ring) {
		*bad_wr = wr;
		return EINVAL;
	}
	pthread_spin_lock(&sq->lock);
	state = pfnic_ring_qp_state(sq);
	if (state == IBV_QPS_RESET || state == IBV_QPS_INIT || state == IBV_QPS_RTR)
		ret = EINVAL;
	for (; wr && !ret; wr = wr->next) {
		ret = pfnic_check_send_wr(qp, wr, &len, type1);
		if (ret)
			break;
		slot = pfnic_uwq_next(sq);
		if (!slot) {
			ret = ENOMEM;
			break;
		}
		pfnic_send_wqe_write(slot, qp, wr, len);
		sq->producer++;
		ring_bell = true;
	}
	/* the state looked at after the WQEs are published (pfnic-abi.h's struct pfnic_wq_ring) */
	if (ring_bell)
		ring_bell = pfnic_uwq_publish(sq) || pfnic_ring_qp_state(sq) == IBV_QPS_ERR;
	pthread_spin_unlock(&sq->lock);
	if (ret)
		*bad_wr = wr;
	if (ring_bell)
		pfnic_doorbell(ibqp);
	return ret;
}

static int pfnic_post_send(struct ibv_qp *ibqp, struct ibv_send_wr *wr,
			   struct ibv_send_wr **bad_wr)
{
	return pfnic_post_send_wrs(ibqp, wr, bad_wr, false);
}

/*
 * ibv_bind_mw(): a type 1 window's bind, posted on @qp as a BIND_MW WQE with the window's
 * next rkey, which the window has from then on (a length of 0 unbinds it). The completion
 * says whether the driver bound it (IBV_WC_MW_BIND_ERR if not). Return: 0 or an errno.
 */
static int pfnic_bind_mw(struct ibv_qp *qp, struct ibv_mw *mw, struct ibv_mw_bind *mw_bind)
{
	struct ibv_send_wr wr = { .wr_id = mw_bind->wr_id, .opcode = IBV_WR_BIND_MW,
				  .send_flags = mw_bind->send_flags }, *bad_wr;
	int ret;

	wr.bind_mw.mw = mw;
	wr.bind_mw.rkey = ibv_inc_rkey(mw->rkey);
	wr.bind_mw.bind_info = mw_bind->bind_info;
	ret = pfnic_post_send_wrs(qp, &wr, &bad_wr, true);
	if (!ret)
		mw->rkey = wr.bind_mw.rkey;
	return ret;
}

/* ibv_attach_mcast(), ibv_detach_mcast(): system calls ATTACH_MCAST and DETACH_MCAST. */
static int pfnic_attach_mcast(struct ibv_qp *qp, const union ibv_gid *gid, uint16_t lid)
{
	return ibv_cmd_attach_mcast(qp, gid, lid);
}

static int pfnic_detach_mcast(struct ibv_qp *qp, const union ibv_gid *gid, uint16_t lid)
{
	return ibv_cmd_detach_mcast(qp, gid, lid);
}

/* ibv_alloc_mw(): system call ALLOC_MW; the window is unbound, its rkey reaches nothing. */
static struct ibv_mw *pfnic_alloc_mw(struct ibv_pd *pd, enum ibv_mw_type type)
{
	struct ib_uverbs_alloc_mw_resp resp;
	struct ibv_alloc_mw cmd;
	struct ibv_mw *mw = calloc(1, sizeof(*mw));
	int ret;

	if (!mw)
		return NULL;
	memset(&cmd, 0, sizeof(cmd));
	memset(&resp, 0, sizeof(resp));
	ret = ibv_cmd_alloc_mw(pd, type, mw, &cmd, sizeof(cmd), &resp, sizeof(resp));
	if (ret) {
		free(mw);
		errno = ret;
		return NULL;
	}
	return mw;
}

/* ibv_dealloc_mw(): system call DEALLOC_MW; what its rkey reached is unreachable by it. */
static int pfnic_dealloc_mw(struct ibv_mw *mw)
{
	int ret = ibv_cmd_dealloc_mw(mw);

	if (!ret)
		free(mw);
	return ret;
}

/*
 * ibv_post_recv(): the WRs go into the receive queue's ring, no system call; in the error
 * state, a doorbell (POST_RECV with no WR) has the driver flush them. A QP on an SRQ has no
 * receive queue: EINVAL. On failure *bad_wr is the first WR not posted.
 */
static int pfnic_post_recv(struct ibv_qp *ibqp, struct ibv_recv_wr *wr,
			   struct ibv_recv_wr **bad_wr)
{
	struct pfnic_qp *qp = to_pfnic_qp(ibqp);
	int ret;

	if (!qp->rq.ring || pfnic_ring_qp_state(&qp->rq) == IBV_QPS_RESET) {
		*bad_wr = wr;
		return EINVAL;
	}
	ret = pfnic_uwq_post_recv(&qp->rq, wr, bad_wr);
	/* after the publication's barrier: a move to ERR now is seen, or its flush sees these */
	if (pfnic_ring_qp_state(&qp->rq) == IBV_QPS_ERR) {
		struct ibv_recv_wr *none;

		/* posted: should the doorbell fail (the device gone), there is nothing to flush */
		ibv_cmd_post_recv(ibqp, NULL, &none);
	}
	return ret;
}

/*
 * ibv_create_ah(): system call CREATE_AH, which checks the address (RoCE needs a GRH); a UD
 * WQE then carries the destination GID and source GID index itself, as a NIC's WQE carries
 * its address vector.
 */
static struct ibv_ah *pfnic_create_ah(struct ibv_pd *pd, struct ibv_ah_attr *attr)
{
	struct ib_uverbs_create_ah_resp resp;
	struct pfnic_ah *ah;
	int ret;

	ah = calloc(1, sizeof(*ah));
	if (!ah)
		return NULL;
	memset(&resp, 0, sizeof(resp));
	ret = ibv_cmd_create_ah(pd, &ah->ibv_ah, attr, &resp, sizeof(resp));
	if (ret) {
		free(ah);
		errno = ret;
		return NULL;
	}
	memcpy(ah->dgid, attr->grh.dgid.raw, sizeof(ah->dgid));
	ah->sgid_index = attr->grh.sgid_index;
	return &ah->ibv_ah;
}

/* ibv_destroy_ah(): system call DESTROY_AH. */
static int pfnic_destroy_ah(struct ibv_ah *ibah)
{
	int ret = ibv_cmd_destroy_ah(ibah);

	if (ret)
		return ret;
	free(to_pfnic_ah(ibah));
	return 0;
}

/* CREATE_SRQ's response: the core's, then the driver's (pfnic-abi.h). */
struct pfnic_create_srq_resp_all {
	struct ib_uverbs_create_srq_resp ibv_resp;
	struct pfnic_create_srq_resp drv;
};

/*
 * What follows CREATE_SRQ (@ret, its result): the ring its response describes mapped, or on
 * any failure the SRQ destroyed and freed. Return: the SRQ, or NULL with errno set.
 */
static struct ibv_srq *pfnic_srq_finish(struct ibv_context *context, struct pfnic_srq *srq,
					int ret, const struct pfnic_create_srq_resp *drv,
					uint32_t max_sge)
{
	if (!ret) {
		ret = pfnic_uwq_map(context, &srq->rq, &drv->rq, max_sge);
		if (ret)
			ibv_cmd_destroy_srq(&srq->vsrq.srq);
	}
	if (ret) {
		free(srq);
		errno = ret;
		return NULL;
	}
	return &srq->vsrq.srq;
}

/*
 * ibv_create_srq(): system call CREATE_SRQ, whose response says where its ring is; the
 * kernel grants max_wr and max_sge, which come back in attr->attr. A basic SRQ only (no
 * XRC).
 */
static struct ibv_srq *pfnic_create_srq(struct ibv_pd *pd, struct ibv_srq_init_attr *attr)
{
	struct pfnic_create_srq_resp_all resp;
	struct ibv_create_srq cmd;
	struct pfnic_srq *srq;
	int ret;

	srq = calloc(1, sizeof(*srq));
	if (!srq)
		return NULL;
	memset(&cmd, 0, sizeof(cmd));
	memset(&resp, 0, sizeof(resp));
	ret = ibv_cmd_create_srq(pd, &srq->vsrq.srq, attr, &cmd, sizeof(cmd), &resp.ibv_resp,
				 sizeof(resp));
	return pfnic_srq_finish(pd->context, srq, ret, &resp.drv, attr->attr.max_sge);
}

/* ibv_create_srq_ex(): a basic SRQ as ibv_create_srq() makes it, or an XRC SRQ (a number). */
static struct ibv_srq *pfnic_create_srq_ex(struct ibv_context *context,
					   struct ibv_srq_init_attr_ex *attr)
{
	struct pfnic_create_srq_resp_all resp;
	struct ibv_create_xsrq cmd;
	struct pfnic_srq *srq;
	int ret;

	if (!(attr->comp_mask & IBV_SRQ_INIT_ATTR_PD) || attr->pd->context != context) {
		errno = EINVAL;
		return NULL;
	}
	if (!(attr->comp_mask & IBV_SRQ_INIT_ATTR_TYPE) || attr->srq_type == IBV_SRQT_BASIC) {
		struct ibv_srq_init_attr plain = { .srq_context = attr->srq_context,
						   .attr = attr->attr };
		struct ibv_srq *basic = pfnic_create_srq(attr->pd, &plain);

		if (basic)
			attr->attr = plain.attr;
		return basic;
	}
	if (attr->srq_type != IBV_SRQT_XRC) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	srq = calloc(1, sizeof(*srq));
	if (!srq)
		return NULL;
	memset(&cmd, 0, sizeof(cmd));
	memset(&resp, 0, sizeof(resp));
	ret = ibv_cmd_create_srq_ex(context, &srq->vsrq, attr, &cmd, sizeof(cmd), &resp.ibv_resp,
				    sizeof(resp));
	return pfnic_srq_finish(context, srq, ret, &resp.drv, attr->attr.max_sge);
}

/* ibv_get_srq_num(): the XRC SRQ's number, which CREATE_XSRQ answered. */
static int pfnic_get_srq_num(struct ibv_srq *srq, uint32_t *srq_num)
{
	struct pfnic_srq *s = to_pfnic_srq(srq);

	if (s->vsrq.srq_type != IBV_SRQT_XRC)
		return EOPNOTSUPP;
	*srq_num = s->vsrq.srq_num;
	return 0;
}

/* ibv_open_xrcd(), ibv_close_xrcd(): system calls OPEN_XRCD and CLOSE_XRCD. */
static struct ibv_xrcd *pfnic_open_xrcd(struct ibv_context *context,
					struct ibv_xrcd_init_attr *attr)
{
	struct ib_uverbs_open_xrcd_resp resp;
	struct verbs_xrcd *xrcd = calloc(1, sizeof(*xrcd));
	struct ibv_open_xrcd cmd;
	int ret;

	if (!xrcd)
		return NULL;
	memset(&cmd, 0, sizeof(cmd));
	memset(&resp, 0, sizeof(resp));
	ret = ibv_cmd_open_xrcd(context, xrcd, sizeof(*xrcd), attr, &cmd, sizeof(cmd), &resp,
				sizeof(resp));
	if (ret) {
		free(xrcd);
		errno = ret;
		return NULL;
	}
	return &xrcd->xrcd;
}

static int pfnic_close_xrcd(struct ibv_xrcd *xrcd)
{
	struct verbs_xrcd *v = pfnic_container_of(xrcd, struct verbs_xrcd, xrcd);
	int ret = ibv_cmd_close_xrcd(v);

	if (!ret)
		free(v);
	return ret;
}

/* ibv_modify_srq(): system call MODIFY_SRQ (arming the limit; the size stays). */
static int pfnic_modify_srq(struct ibv_srq *srq, struct ibv_srq_attr *attr, int attr_mask)
{
	struct ibv_modify_srq cmd;

	memset(&cmd, 0, sizeof(cmd));
	return ibv_cmd_modify_srq(srq, attr, attr_mask, &cmd, sizeof(cmd));
}

/* ibv_query_srq(): system call QUERY_SRQ. */
static int pfnic_query_srq(struct ibv_srq *srq, struct ibv_srq_attr *attr)
{
	struct ibv_query_srq cmd;

	memset(&cmd, 0, sizeof(cmd));
	return ibv_cmd_query_srq(srq, attr, &cmd, sizeof(cmd));
}

/* ibv_destroy_srq(): system call DESTROY_SRQ, refused while a QP uses the SRQ. */
static int pfnic_destroy_srq(struct ibv_srq *ibsrq)
{
	struct pfnic_srq *srq = to_pfnic_srq(ibsrq);
	int ret = ibv_cmd_destroy_srq(ibsrq);

	if (ret)
		return ret;
	pfnic_uwq_unmap(&srq->rq);
	free(srq);
	return 0;
}

/* ibv_post_srq_recv(): the WRs go into the SRQ's ring, no system call. */
static int pfnic_post_srq_recv(struct ibv_srq *ibsrq, struct ibv_recv_wr *wr,
			       struct ibv_recv_wr **bad_wr)
{
	return pfnic_uwq_post_recv(&to_pfnic_srq(ibsrq)->rq, wr, bad_wr);
}

/*
 * Everything not listed is left to libibverbs: its stubs fail with EOPNOTSUPP, and the two
 * event hooks (async_event, cq_event) are no-ops there, which is all pfnic needs, since event
 * delivery and acknowledgement are libibverbs' own work on the kernel's event files.
 */
static const struct verbs_context_ops pfnic_ctx_ops = {
	.advise_mr = pfnic_advise_mr,
	.alloc_mw = pfnic_alloc_mw,
	.alloc_pd = pfnic_alloc_pd,
	.attach_mcast = pfnic_attach_mcast,
	.bind_mw = pfnic_bind_mw,
	.close_xrcd = pfnic_close_xrcd,
	.create_ah = pfnic_create_ah,
	.create_cq = pfnic_create_cq,
	.create_cq_ex = pfnic_create_cq_ex,
	.create_qp = pfnic_create_qp,
	.create_qp_ex = pfnic_create_qp_ex,
	.create_srq = pfnic_create_srq,
	.create_srq_ex = pfnic_create_srq_ex,
	.dealloc_mw = pfnic_dealloc_mw,
	.dealloc_pd = pfnic_dealloc_pd,
	.detach_mcast = pfnic_detach_mcast,
	.dereg_mr = pfnic_dereg_mr,
	.destroy_ah = pfnic_destroy_ah,
	.destroy_cq = pfnic_destroy_cq,
	.destroy_qp = pfnic_destroy_qp,
	.destroy_srq = pfnic_destroy_srq,
	.free_context = pfnic_free_context,
	.get_srq_num = pfnic_get_srq_num,
	.modify_qp = pfnic_modify_qp,
	.modify_srq = pfnic_modify_srq,
	.open_qp = pfnic_open_qp,
	.open_xrcd = pfnic_open_xrcd,
	.poll_cq = pfnic_poll_cq,
	.post_recv = pfnic_post_recv,
	.post_send = pfnic_post_send,
	.post_srq_recv = pfnic_post_srq_recv,
	.query_device_ex = pfnic_query_device_ex,
	.query_port = pfnic_query_port,
	.query_qp = pfnic_query_qp,
	.query_srq = pfnic_query_srq,
	.reg_mr = pfnic_reg_mr,
	.rereg_mr = pfnic_rereg_mr,
	.req_notify_cq = pfnic_req_notify_cq,
	.resize_cq = pfnic_resize_cq,
};

/* ------------------------------------------------------------------------------------------
 * Contexts
 */

/*
 * ibv_open_device(): system call GET_CONTEXT, which creates the kernel's user context on
 * cmd_fd (libibverbs opened it; it is ours from here, closed on every failure path). No
 * private data either way.
 */
static struct verbs_context *pfnic_alloc_context(struct ibv_device *ibdev, int cmd_fd,
						 void *private_data)
{
	const struct verbs_sysfs_dev *sysfs = verbs_get_device(ibdev)->sysfs;
	struct ibv_get_context cmd;
	struct ib_uverbs_get_context_resp resp;
	struct pfnic_context *ctx;
	uint32_t driver_id;
	int ret;

	(void)private_data;

	/*
	 * The kernel refuses any ioctl() whose header names another driver than its device's, so
	 * the context takes the driver id the kernel reported for this device (over netlink);
	 * without one, RDMA_DRIVER_UNKNOWN.
	 */
	driver_id = sysfs ? sysfs->driver_id : RDMA_DRIVER_UNKNOWN;

	ctx = _verbs_init_and_alloc_context(
		ibdev, cmd_fd, sizeof(*ctx),
		(struct verbs_context *)(uintptr_t)offsetof(struct pfnic_context, ibv_ctx),
		driver_id);
	if (!ctx)
		return NULL;

	memset(&cmd, 0, sizeof(cmd));
	ret = ibv_cmd_get_context(&ctx->ibv_ctx, &cmd, sizeof(cmd), &resp, sizeof(resp));
	if (ret) {
		verbs_uninit_context(&ctx->ibv_ctx);
		free(ctx);
		errno = ret;
		return NULL;
	}

	verbs_set_ops(&ctx->ibv_ctx, &pfnic_ctx_ops);
	return &ctx->ibv_ctx;
}

/* ibv_close_device(): closing cmd_fd makes the kernel destroy the user context. */
static void pfnic_free_context(struct ibv_context *ibctx)
{
	struct pfnic_context *ctx = to_pfnic_context(ibctx);

	verbs_uninit_context(&ctx->ibv_ctx);
	free(ctx);
}

/* ------------------------------------------------------------------------------------------
 * Devices
 */

static struct verbs_device *pfnic_alloc_device(struct verbs_sysfs_dev *sysfs_dev)
{
	struct pfnic_device *dev;

	(void)sysfs_dev;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	return &dev->ibv_dev;
}

static void pfnic_uninit_device(struct verbs_device *vdev)
{
	free(to_pfnic_device(vdev));
}

/*
 * pfnic is not in the kernel's enum rdma_driver_id, so its devices are recognised by their
 * kernel name. libibverbs calls this for every device no earlier provider took.
 */
static bool pfnic_match_device(struct verbs_sysfs_dev *sysfs_dev)
{
	return strncmp(sysfs_dev->ibdev_name, PFNIC_IBDEV_PREFIX,
		       sizeof(PFNIC_IBDEV_PREFIX) - 1) == 0;
}

/*
 * No table entries: matching is pfnic_match_device()'s. The table must still exist, as an
 * empty one: libibverbs v44 walks every provider's table, without checking it for NULL,
 * whenever a device has a known driver id (an rxe device next to pfnic, say).
 */
static const struct verbs_match_ent pfnic_match_table[] = {
	{ .kind = VERBS_MATCH_SENTINEL },
};

static const struct verbs_device_ops pfnic_dev_ops = {
	.name = "pfnic",
	.match_min_abi_version = PFNIC_UVERBS_ABI_VERSION,
	.match_max_abi_version = PFNIC_UVERBS_ABI_VERSION,
	.match_table = pfnic_match_table,
	.match_device = pfnic_match_device,
	.alloc_context = pfnic_alloc_context,
	.alloc_device = pfnic_alloc_device,
	.uninit_device = pfnic_uninit_device,
};

/* ------------------------------------------------------------------------------------------
 * Registration: libibverbs dlopen()s this library, and its constructor adds the provider.
 */

static void __attribute__((constructor)) pfnic_register_driver(void)
{
	verbs_register_driver(&pfnic_dev_ops);
}
