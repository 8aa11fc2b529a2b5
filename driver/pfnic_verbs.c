// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: device-level verbs (query device, port, pkey; user contexts; protection domains)
 * and the ib_device_ops table.
 */
#include <linux/etherdevice.h>
#include <rdma/ib_mad.h>
#include <rdma/uverbs_ioctl.h>

#include "pfnic.h"

static int pfnic_query_device(struct ib_device *ibdev, struct ib_device_attr *attr,
			      struct ib_udata *udata)
{
	if (udata && (udata->inlen || udata->outlen))
		return -EINVAL;

	memset(attr, 0, sizeof(*attr));
	attr->fw_ver = 0;
	attr->sys_image_guid = ibdev->node_guid;
	attr->max_mr_size = U64_MAX;
	attr->page_size_cap = PAGE_SIZE;
	attr->vendor_id = PFNIC_VENDOR_ID;
	attr->vendor_part_id = PFNIC_VENDOR_PART_ID;
	attr->hw_ver = 0;
	attr->max_qp = PFNIC_MAX_QP;
	attr->max_qp_wr = PFNIC_MAX_QP_WR;
	/* fast registration and remote invalidation, which kernel storage protocols need */
	attr->device_cap_flags = IB_DEVICE_SYS_IMAGE_GUID | IB_DEVICE_RC_RNR_NAK_GEN |
				 IB_DEVICE_PORT_ACTIVE_EVENT | IB_DEVICE_MEM_MGT_EXTENSIONS |
				 IB_DEVICE_MEM_WINDOW | IB_DEVICE_MEM_WINDOW_TYPE_2A |
				 PFNIC_DEVICE_ATOMIC_WRITE | IB_DEVICE_XRC;
	attr->max_fast_reg_page_list_len = PFNIC_MAX_FAST_REG_PAGES;
	attr->kernel_cap_flags = IBK_ALLOW_USER_UNREG | IBK_ON_DEMAND_PAGING;
	attr->max_send_sge = PFNIC_MAX_SGE;
	attr->max_recv_sge = PFNIC_MAX_SGE;
	attr->max_sge_rd = PFNIC_MAX_SGE;
	attr->max_cq = PFNIC_MAX_CQ;
	attr->max_cqe = PFNIC_MAX_CQE;
	attr->max_mr = PFNIC_MAX_MR;
	attr->max_mw = PFNIC_MAX_MW;
	attr->max_mcast_grp = PFNIC_MAX_MCAST_GRP;
	attr->max_mcast_qp_attach = PFNIC_MAX_MCAST_QP_ATTACH;
	attr->max_total_mcast_qp_attach = PFNIC_MAX_MCAST_GRP * PFNIC_MAX_MCAST_QP_ATTACH;
	attr->max_pd = PFNIC_MAX_PD;
	attr->max_srq = PFNIC_MAX_SRQ;
	/* address handles are not a resource pfnic runs out of: no limit, as mlx5 reports it */
	attr->max_ah = INT_MAX;
	attr->max_srq_wr = PFNIC_MAX_QP_WR;
	attr->max_srq_sge = PFNIC_MAX_SGE;
	attr->max_qp_rd_atom = PFNIC_MAX_RD_ATOM;
	attr->max_qp_init_rd_atom = PFNIC_MAX_RD_ATOM;
	attr->max_res_rd_atom = PFNIC_MAX_RD_ATOM * PFNIC_MAX_QP;
	/* the engine changes the word with the CPU's atomic instructions: atomic for all */
	attr->atomic_cap = IB_ATOMIC_GLOB;
	attr->max_pkeys = 1;
	attr->local_ca_ack_delay = 15;
	/* ODP, explicit and implicit MRs, for every operation the engine runs */
	attr->odp_caps.general_caps = IB_ODP_SUPPORT | IB_ODP_SUPPORT_IMPLICIT;
	attr->odp_caps.per_transport_caps.rc_odp_caps = IB_ODP_SUPPORT_SEND |
		IB_ODP_SUPPORT_RECV | IB_ODP_SUPPORT_WRITE | IB_ODP_SUPPORT_READ |
		IB_ODP_SUPPORT_ATOMIC | IB_ODP_SUPPORT_SRQ_RECV;
	attr->odp_caps.per_transport_caps.xrc_odp_caps =
		attr->odp_caps.per_transport_caps.rc_odp_caps;
	attr->odp_caps.per_transport_caps.uc_odp_caps = IB_ODP_SUPPORT_SEND |
		IB_ODP_SUPPORT_RECV | IB_ODP_SUPPORT_WRITE | IB_ODP_SUPPORT_SRQ_RECV;
	attr->odp_caps.per_transport_caps.ud_odp_caps = IB_ODP_SUPPORT_SEND |
		IB_ODP_SUPPORT_RECV | IB_ODP_SUPPORT_SRQ_RECV;
	return 0;
}

/* Port state follows the netdev, as for any RoCE port. */
static int pfnic_query_port(struct ib_device *ibdev, u32 port, struct ib_port_attr *attr)
{
	struct pfnic_dev *pfnic = to_pfnic_dev(ibdev);
	struct net_device *ndev = pfnic->ndev;
	bool up = netif_running(ndev) && netif_carrier_ok(ndev);
	int rv;

	/* the core zeroes *attr before it calls us */
	attr->state = up ? IB_PORT_ACTIVE : IB_PORT_DOWN;
	attr->phys_state = up ? IB_PORT_PHYS_STATE_LINK_UP : IB_PORT_PHYS_STATE_DISABLED;
	attr->max_mtu = IB_MTU_4096;
	attr->active_mtu = ib_mtu_int_to_enum(READ_ONCE(ndev->mtu));
	attr->gid_tbl_len = PFNIC_GID_TABLE_LEN;
	attr->pkey_tbl_len = 1;
	attr->port_cap_flags = IB_PORT_CM_SUP;
	attr->max_msg_sz = PFNIC_MAX_MSG_SZ;
	attr->max_vl_num = 1;
	rv = ib_get_eth_speed(ibdev, port, &attr->active_speed, &attr->active_width);
	if (rv) {
		attr->active_speed = IB_SPEED_SDR;
		attr->active_width = IB_WIDTH_1X;
	}
	return 0;
}

static int pfnic_get_port_immutable(struct ib_device *ibdev, u32 port,
				    struct ib_port_immutable *immutable)
{
	struct ib_port_attr attr = {};
	int rv;

	rv = ib_query_port(ibdev, port, &attr);
	if (rv)
		return rv;
	immutable->pkey_tbl_len = attr.pkey_tbl_len;
	immutable->gid_tbl_len = attr.gid_tbl_len;
	immutable->core_cap_flags = RDMA_CORE_PORT_IBA_ROCE_UDP_ENCAP;
	immutable->max_mad_size = IB_MGMT_MAD_SIZE;
	return 0;
}

static enum rdma_link_layer pfnic_get_link_layer(struct ib_device *ibdev, u32 port)
{
	return IB_LINK_LAYER_ETHERNET;
}

/* One pkey, the default full-membership one, as RoCE ports have. */
static int pfnic_query_pkey(struct ib_device *ibdev, u32 port, u16 index, u16 *pkey)
{
	if (index > 0)
		return -EINVAL;
	*pkey = IB_DEFAULT_PKEY_FULL;
	return 0;
}

static int pfnic_alloc_ucontext(struct ib_ucontext *ibuc, struct ib_udata *udata)
{
	/* no private data either way: see uapi/pfnic-abi.h */
	return 0;
}

static void pfnic_dealloc_ucontext(struct ib_ucontext *ibuc)
{
}

/*
 * Device removal with a process still attached: the core destroys the context's objects, and
 * the process sees IB_EVENT_DEVICE_FATAL, instead of removal waiting for it to exit. The
 * rings it maps stay mapped, pages it holds references to, which no device writes any more.
 */
static void pfnic_disassociate_ucontext(struct ib_ucontext *ibuc)
{
}

static const u32 pfnic_obj_max[] = {
	[PFNIC_OBJ_PD] = PFNIC_MAX_PD,
	[PFNIC_OBJ_CQ] = PFNIC_MAX_CQ,
	[PFNIC_OBJ_QP] = PFNIC_MAX_QP,
	[PFNIC_OBJ_SRQ] = PFNIC_MAX_SRQ,
	[PFNIC_OBJ_MR] = PFNIC_MAX_MR,
	[PFNIC_OBJ_MW] = PFNIC_MAX_MW,
};

/**
 * pfnic_obj_take() - count one more object of a kind on a device, within its limit
 * @pfnic: the device
 * @obj: the kind
 *
 * The limits are those query_device reports (max_pd, max_cq, max_qp, max_srq, max_mr, max_mw), so
 * that what a program is told is what it gets. Each object taken is dropped
 * (pfnic_obj_drop()) when it is destroyed, or when its creation fails after this.
 *
 * Return: 0, or -ENOMEM if the device has as many as it may.
 */
int pfnic_obj_take(struct pfnic_dev *pfnic, enum pfnic_obj obj)
{
	BUILD_BUG_ON(ARRAY_SIZE(pfnic_obj_max) != ARRAY_SIZE(pfnic->objects));
	if (atomic_inc_return(&pfnic->objects[obj]) > pfnic_obj_max[obj]) {
		atomic_dec(&pfnic->objects[obj]);
		return -ENOMEM;
	}
	return 0;
}

void pfnic_obj_drop(struct pfnic_dev *pfnic, enum pfnic_obj obj)
{
	atomic_dec(&pfnic->objects[obj]);
}

static int pfnic_alloc_pd(struct ib_pd *ibpd, struct ib_udata *udata)
{
	return pfnic_obj_take(to_pfnic_dev(ibpd->device), PFNIC_OBJ_PD);
}

static int pfnic_dealloc_pd(struct ib_pd *ibpd, struct ib_udata *udata)
{
	pfnic_obj_drop(to_pfnic_dev(ibpd->device), PFNIC_OBJ_PD);
	return 0;
}

/*
 * An address handle keeps what a UD send needs of it: the destination GID, and which of the
 * port's GIDs is the source. RoCE addresses are GIDs: an AH without a GRH is refused. The
 * core may call this in atomic context: nothing here sleeps.
 */
static int pfnic_create_ah(struct ib_ah *ibah, struct rdma_ah_init_attr *init,
			   struct ib_udata *udata)
{
	const struct rdma_ah_attr *attr = init->ah_attr;
	struct pfnic_ah *ah = to_pfnic_ah(ibah);

	if (udata && (udata->inlen || udata->outlen))
		return -EINVAL;
	if (!(rdma_ah_get_ah_flags(attr) & IB_AH_GRH) || rdma_ah_get_port_num(attr) != PFNIC_PORT)
		return -EINVAL;
	ah->dgid = attr->grh.dgid;
	ah->sgid_index = attr->grh.sgid_index;
	return 0;
}

static int pfnic_destroy_ah(struct ib_ah *ibah, u32 flags)
{
	return 0;
}

/* The device's counters, and under the same names the MRs' (pfnic_restrack.c). */
const struct rdma_stat_desc pfnic_stat_descs[PFNIC_STAT_COUNT] = {
	[PFNIC_STAT_PAGE_FAULTS] = { .name = "page_faults" },
	[PFNIC_STAT_PAGE_FAULTS_HANDLED] = { .name = "page_faults_handled" },
	[PFNIC_STAT_PAGE_FAULT_ERRORS] = { .name = "page_fault_errors" },
	[PFNIC_STAT_PAGE_INVALIDATIONS] = { .name = "page_invalidations" },
	[PFNIC_STAT_PAGE_INVALIDATIONS_HANDLED] = { .name = "page_invalidations_handled" },
	[PFNIC_STAT_PAGE_PREFETCH] = { .name = "page_prefetch" },
	[PFNIC_STAT_MIGRATIONS] = { .name = "migrations" },
	[PFNIC_STAT_RNR_RETRIES] = { .name = "rnr_retries" },
	[PFNIC_STAT_WQES] = { .name = "send_wqes" },
	[PFNIC_STAT_FAULT_RETRIES] = { .name = "page_fault_retries" },
	/* mlx5's name: its local ACK timer expired and the requester sent again */
	[PFNIC_STAT_ACK_TIMEOUTS] = { .name = "local_ack_timeout_err" },
	/* the system calls a user QP's posts made: one wakes an idle engine (pfnic-abi.h) */
	[PFNIC_STAT_DOORBELLS] = { .name = "doorbells" },
	/* the engine runs the polling thread started on WQEs it found, with no doorbell */
	[PFNIC_STAT_POLLED_RUNS] = { .name = "polled_runs" },
	/* on the wire, under rxe's and mlx5's names where they have one */
	[PFNIC_STAT_SENT_PKTS] = { .name = "sent_pkts" },
	[PFNIC_STAT_RCVD_PKTS] = { .name = "rcvd_pkts" },
	[PFNIC_STAT_RX_MALFORMED] = { .name = "rx_malformed" },
	[PFNIC_STAT_RX_ICRC_ERRORS] = { .name = "rx_icrc_errors" },
	[PFNIC_STAT_RX_UNKNOWN_QP] = { .name = "rx_unknown_qp" },
	[PFNIC_STAT_RX_DROPPED] = { .name = "rx_dropped" },
	[PFNIC_STAT_RETRANSMITS] = { .name = "retransmits" },
	[PFNIC_STAT_RCVD_SEQ_ERR] = { .name = "rcvd_seq_err" },
	[PFNIC_STAT_OUT_OF_SEQUENCE] = { .name = "out_of_sequence" },
	[PFNIC_STAT_DUPLICATE_REQUEST] = { .name = "duplicate_request" },
	[PFNIC_STAT_SEND_RNR_NAK] = { .name = "send_rnr_nak" },
	[PFNIC_STAT_ACKS_COALESCED] = { .name = "acks_coalesced" },
};

static struct rdma_hw_stats *pfnic_alloc_hw_port_stats(struct ib_device *ibdev, u32 port)
{
	return rdma_alloc_hw_stats_struct(pfnic_stat_descs, PFNIC_STAT_COUNT,
					  RDMA_HW_STATS_DEFAULT_LIFESPAN);
}

static int pfnic_get_hw_stats(struct ib_device *ibdev, struct rdma_hw_stats *stats, u32 port,
			      int index)
{
	struct pfnic_dev *pfnic = to_pfnic_dev(ibdev);
	int i;

	for (i = 0; i < PFNIC_STAT_COUNT; i++)
		stats->value[i] = atomic64_read(&pfnic->stats[i]);
	return PFNIC_STAT_COUNT;
}

const struct ib_device_ops pfnic_dev_ops = {
	.owner = THIS_MODULE,
	.driver_id = PFNIC_RDMA_DRIVER_ID,
	.uverbs_abi_ver = PFNIC_UVERBS_ABI_VERSION,

	.advise_mr = pfnic_advise_mr,
	.alloc_hw_port_stats = pfnic_alloc_hw_port_stats,
	.alloc_mr = pfnic_alloc_mr,
	.alloc_mw = pfnic_alloc_mw,
	.alloc_xrcd = pfnic_alloc_xrcd,
	.attach_mcast = pfnic_attach_mcast,
	.alloc_pd = pfnic_alloc_pd,
	.alloc_ucontext = pfnic_alloc_ucontext,
	.create_ah = pfnic_create_ah,
	.create_cq = pfnic_compat_create_cq,
	.create_qp = pfnic_create_qp,
	.create_srq = pfnic_create_srq,
	.create_user_ah = pfnic_create_ah,
#ifdef PFNIC_HAVE_CREATE_USER_CQ
	.create_user_cq = pfnic_compat_create_cq,
#endif
	.dealloc_driver = pfnic_dealloc_driver,
	.dealloc_mw = pfnic_dealloc_mw,
	.dealloc_xrcd = pfnic_dealloc_xrcd,
	.detach_mcast = pfnic_detach_mcast,
	.dealloc_pd = pfnic_dealloc_pd,
	.dealloc_ucontext = pfnic_dealloc_ucontext,
	.dereg_mr = pfnic_dereg_mr,
	.destroy_ah = pfnic_destroy_ah,
	.disassociate_ucontext = pfnic_disassociate_ucontext,
	.destroy_cq = pfnic_destroy_cq,
	.destroy_qp = pfnic_destroy_qp,
	.destroy_srq = pfnic_destroy_srq,
	.fill_res_mr_entry = pfnic_fill_res_mr_entry,
	.fill_stat_mr_entry = pfnic_fill_stat_mr_entry,
	.get_dma_mr = pfnic_get_dma_mr,
	.get_hw_stats = pfnic_get_hw_stats,
	.get_link_layer = pfnic_get_link_layer,
	.get_port_immutable = pfnic_get_port_immutable,
	.map_mr_sg = pfnic_map_mr_sg,
	.mmap = pfnic_mmap,
	.mmap_free = pfnic_mmap_free,
	.modify_qp = pfnic_modify_qp,
	.modify_srq = pfnic_modify_srq,
	.poll_cq = pfnic_poll_cq,
	.post_recv = pfnic_post_recv,
	.post_send = pfnic_post_send,
	.post_srq_recv = pfnic_post_srq_recv,
	.query_device = pfnic_query_device,
	.query_pkey = pfnic_query_pkey,
	.query_port = pfnic_query_port,
	.query_qp = pfnic_query_qp,
	.query_srq = pfnic_query_srq,
	.reg_user_mr = pfnic_compat_reg_user_mr,
	.rereg_user_mr = pfnic_rereg_user_mr,
	.req_notify_cq = pfnic_req_notify_cq,
#ifdef PFNIC_HAVE_RESIZE_USER_CQ
	.resize_user_cq = pfnic_compat_resize_cq,
#else
	.resize_cq = pfnic_compat_resize_cq,
#endif

	INIT_RDMA_OBJ_SIZE(ib_ah, pfnic_ah, ibah),
	INIT_RDMA_OBJ_SIZE(ib_cq, pfnic_cq, ibcq),
	INIT_RDMA_OBJ_SIZE(ib_mw, pfnic_mw, ibmw),
	INIT_RDMA_OBJ_SIZE(ib_xrcd, pfnic_xrcd, ibxrcd),
	INIT_RDMA_OBJ_SIZE(ib_pd, pfnic_pd, ibpd),
	INIT_RDMA_OBJ_SIZE(ib_qp, pfnic_qp, ibqp),
	INIT_RDMA_OBJ_SIZE(ib_srq, pfnic_srq, ibsrq),
	INIT_RDMA_OBJ_SIZE(ib_ucontext, pfnic_ucontext, ibuc),
};
