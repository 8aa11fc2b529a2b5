// SPDX-License-Identifier: GPL-2.0-only
/*
 * libpfnic: the rdma-core provider that libibverbs loads for pfnic devices.
 *
 * The pfnic kernel driver keeps every queue and every completion in the kernel and takes no
 * driver-private data in any command (pfnic-abi.h), so each verb here is a system call into
 * the kernel driver: one uverbs command, sent by libibverbs' generic ibv_cmd_* helpers as an
 * ioctl() or a write() on the device's uverbs file (write() where the kernel lacks the ioctl
 * form). That includes the data path (post_send, post_recv, poll_cq, req_notify_cq): there are
 * no mmap()ed queues and no doorbells.
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

/* ibv_create_cq(): system call CREATE_CQ. */
static struct ibv_cq *pfnic_create_cq(struct ibv_context *context, int cqe,
				      struct ibv_comp_channel *channel, int comp_vector)
{
	struct ibv_create_cq cmd;
	struct ib_uverbs_create_cq_resp resp;
	struct ibv_cq *cq;
	int ret;

	cq = calloc(1, sizeof(*cq));
	if (!cq)
		return NULL;

	memset(&cmd, 0, sizeof(cmd));
	ret = ibv_cmd_create_cq(context, cqe, channel, comp_vector, cq, &cmd, sizeof(cmd), &resp,
				sizeof(resp));
	if (ret) {
		free(cq);
		errno = ret;
		return NULL;
	}
	return cq;
}

/*
 * ibv_destroy_cq(): system call DESTROY_CQ. libibverbs then waits until the caller has
 * acknowledged every event the kernel reported for the CQ.
 */
static int pfnic_destroy_cq(struct ibv_cq *cq)
{
	int ret;

	ret = ibv_cmd_destroy_cq(cq);
	if (ret)
		return ret;
	free(cq);
	return 0;
}

/* ibv_poll_cq(): system call POLL_CQ, which copies up to num_entries completions out. */
static int pfnic_poll_cq(struct ibv_cq *cq, int num_entries, struct ibv_wc *wc)
{
	if (num_entries < 0) {
		errno = EINVAL;
		return -1;
	}
	if (num_entries == 0)
		return 0;
	return ibv_cmd_poll_cq(cq, num_entries, wc);
}

/* ibv_req_notify_cq(): system call REQ_NOTIFY_CQ. */
static int pfnic_req_notify_cq(struct ibv_cq *cq, int solicited_only)
{
	return ibv_cmd_req_notify_cq(cq, solicited_only);
}

/*
 * ibv_create_qp(): system call CREATE_QP. Which QP types and capabilities are supported is
 * the kernel driver's call (RC); the capabilities it granted come back in attr->cap. The QP is
 * a verbs_qp, as libibverbs' ibv_qp_to_qp_ex() assumes; comp_mask stays 0, so that reports no
 * extended QP.
 */
static struct ibv_qp *pfnic_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
	struct ibv_create_qp cmd;
	struct ib_uverbs_create_qp_resp resp;
	struct verbs_qp *vqp;
	int ret;

	vqp = calloc(1, sizeof(*vqp));
	if (!vqp)
		return NULL;

	memset(&cmd, 0, sizeof(cmd));
	ret = ibv_cmd_create_qp(pd, &vqp->qp, attr, &cmd, sizeof(cmd), &resp, sizeof(resp));
	if (ret) {
		free(vqp);
		errno = ret;
		return NULL;
	}
	return &vqp->qp;
}

/*
 * ibv_create_qp_ex(): what an extended request can ask of the plain CREATE_QP command, which
 * is the QP's PD and no creation flags (rdma-core's tests ask for exactly that, with the
 * CREATE_FLAGS bit set and no flag in it). Anything else needs extended QPs (send ops through
 * ibv_qp_ex, XRC, TSO), which pfnic does not have: EOPNOTSUPP, as for a missing verb.
 */
static struct ibv_qp *pfnic_create_qp_ex(struct ibv_context *context,
					 struct ibv_qp_init_attr_ex *attr)
{
	struct ibv_qp_init_attr plain;
	struct ibv_qp *qp;

	if ((attr->comp_mask & ~(IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_CREATE_FLAGS)) ||
	    !(attr->comp_mask & IBV_QP_INIT_ATTR_PD) ||
	    ((attr->comp_mask & IBV_QP_INIT_ATTR_CREATE_FLAGS) && attr->create_flags)) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	if (attr->pd->context != context) {
		errno = EINVAL;
		return NULL;
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
	if (qp)
		attr->cap = plain.cap;
	return qp;
}

/* ibv_query_qp(): system call QUERY_QP. */
static int pfnic_query_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int attr_mask,
			  struct ibv_qp_init_attr *init_attr)
{
	struct ibv_query_qp cmd;

	memset(&cmd, 0, sizeof(cmd));
	return ibv_cmd_query_qp(qp, attr, attr_mask, init_attr, &cmd, sizeof(cmd));
}

/* ibv_modify_qp(): system call MODIFY_QP. */
static int pfnic_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int attr_mask)
{
	struct ibv_modify_qp cmd;

	memset(&cmd, 0, sizeof(cmd));
	return ibv_cmd_modify_qp(qp, attr, attr_mask, &cmd, sizeof(cmd));
}

/*
 * ibv_destroy_qp(): system call DESTROY_QP. libibverbs then waits until the caller has
 * acknowledged every async event the kernel reported for the QP.
 */
static int pfnic_destroy_qp(struct ibv_qp *qp)
{
	struct verbs_qp *vqp = pfnic_container_of(qp, struct verbs_qp, qp);
	int ret;

	ret = ibv_cmd_destroy_qp(qp);
	if (ret)
		return ret;
	free(vqp);
	return 0;
}

/*
 * ibv_post_send(): system call POST_SEND, carrying the whole chain of work requests. On
 * failure *bad_wr is the first one the kernel did not take.
 */
static int pfnic_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr,
			   struct ibv_send_wr **bad_wr)
{
	return ibv_cmd_post_send(qp, wr, bad_wr);
}

/*
 * ibv_post_recv(): system call POST_RECV, carrying the whole chain of work requests. On
 * failure *bad_wr is the first one the kernel did not take.
 */
static int pfnic_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr,
			   struct ibv_recv_wr **bad_wr)
{
	return ibv_cmd_post_recv(qp, wr, bad_wr);
}

/*
 * ibv_create_ah(): system call CREATE_AH. The kernel resolves the destination and keeps it;
 * a UD send names the AH by its handle.
 */
static struct ibv_ah *pfnic_create_ah(struct ibv_pd *pd, struct ibv_ah_attr *attr)
{
	struct ib_uverbs_create_ah_resp resp;
	struct ibv_ah *ah;
	int ret;

	ah = calloc(1, sizeof(*ah));
	if (!ah)
		return NULL;
	memset(&resp, 0, sizeof(resp));
	ret = ibv_cmd_create_ah(pd, ah, attr, &resp, sizeof(resp));
	if (ret) {
		free(ah);
		errno = ret;
		return NULL;
	}
	return ah;
}

/* ibv_destroy_ah(): system call DESTROY_AH. */
static int pfnic_destroy_ah(struct ibv_ah *ah)
{
	int ret = ibv_cmd_destroy_ah(ah);

	if (ret)
		return ret;
	free(ah);
	return 0;
}

/*
 * ibv_create_srq(): system call CREATE_SRQ; the kernel grants max_wr and max_sge, which come
 * back in attr->attr. A basic SRQ only (no XRC): a plain ibv_srq.
 */
static struct ibv_srq *pfnic_create_srq(struct ibv_pd *pd, struct ibv_srq_init_attr *attr)
{
	struct ib_uverbs_create_srq_resp resp;
	struct ibv_create_srq cmd;
	struct ibv_srq *srq;
	int ret;

	srq = calloc(1, sizeof(*srq));
	if (!srq)
		return NULL;
	memset(&cmd, 0, sizeof(cmd));
	ret = ibv_cmd_create_srq(pd, srq, attr, &cmd, sizeof(cmd), &resp, sizeof(resp));
	if (ret) {
		free(srq);
		errno = ret;
		return NULL;
	}
	return srq;
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
static int pfnic_destroy_srq(struct ibv_srq *srq)
{
	int ret = ibv_cmd_destroy_srq(srq);

	if (ret)
		return ret;
	free(srq);
	return 0;
}

/* ibv_post_srq_recv(): system call POST_SRQ_RECV, with the whole chain. */
static int pfnic_post_srq_recv(struct ibv_srq *srq, struct ibv_recv_wr *wr,
			       struct ibv_recv_wr **bad_wr)
{
	return ibv_cmd_post_srq_recv(srq, wr, bad_wr);
}

/*
 * Everything not listed is left to libibverbs: its stubs fail with EOPNOTSUPP, and the two
 * event hooks (async_event, cq_event) are no-ops there, which is all pfnic needs, since event
 * delivery and acknowledgement are libibverbs' own work on the kernel's event files.
 */
static const struct verbs_context_ops pfnic_ctx_ops = {
	.advise_mr = pfnic_advise_mr,
	.alloc_pd = pfnic_alloc_pd,
	.create_ah = pfnic_create_ah,
	.create_cq = pfnic_create_cq,
	.create_qp = pfnic_create_qp,
	.create_qp_ex = pfnic_create_qp_ex,
	.create_srq = pfnic_create_srq,
	.dealloc_pd = pfnic_dealloc_pd,
	.dereg_mr = pfnic_dereg_mr,
	.destroy_ah = pfnic_destroy_ah,
	.destroy_cq = pfnic_destroy_cq,
	.destroy_qp = pfnic_destroy_qp,
	.destroy_srq = pfnic_destroy_srq,
	.free_context = pfnic_free_context,
	.modify_qp = pfnic_modify_qp,
	.modify_srq = pfnic_modify_srq,
	.poll_cq = pfnic_poll_cq,
	.post_recv = pfnic_post_recv,
	.post_send = pfnic_post_send,
	.post_srq_recv = pfnic_post_srq_recv,
	.query_device_ex = pfnic_query_device_ex,
	.query_port = pfnic_query_port,
	.query_qp = pfnic_query_qp,
	.query_srq = pfnic_query_srq,
	.reg_mr = pfnic_reg_mr,
	.req_notify_cq = pfnic_req_notify_cq,
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
