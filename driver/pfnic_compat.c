// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: entry points of verbs whose signature differs between the kernels of the matrix
 * (see pfnic_compat.h). Each only adapts its arguments to the driver's one implementation.
 */
#include <rdma/uverbs_ioctl.h>

#include "pfnic.h"

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
int pfnic_compat_create_cq(struct ib_cq *ibcq, const struct ib_cq_init_attr *attr,
			   struct uverbs_attr_bundle *attrs)
{
	return pfnic_create_cq(ibcq, attr, attrs ? &attrs->driver_udata : NULL);
}
#else
int pfnic_compat_create_cq(struct ib_cq *ibcq, const struct ib_cq_init_attr *attr,
			   struct ib_udata *udata)
{
	return pfnic_create_cq(ibcq, attr, udata);
}
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 17, 0)
struct ib_mr *pfnic_compat_reg_user_mr(struct ib_pd *ibpd, u64 start, u64 length, u64 iova,
				       int access, struct ib_dmah *dmah, struct ib_udata *udata)
{
	return pfnic_reg_user_mr(ibpd, start, length, iova, access, udata);
}
#else
struct ib_mr *pfnic_compat_reg_user_mr(struct ib_pd *ibpd, u64 start, u64 length, u64 iova,
				       int access, struct ib_udata *udata)
{
	return pfnic_reg_user_mr(ibpd, start, length, iova, access, udata);
}
#endif

#ifdef PFNIC_HAVE_RESIZE_USER_CQ
int pfnic_compat_resize_cq(struct ib_cq *ibcq, unsigned int cqe, struct ib_udata *udata)
{
	return pfnic_resize_cq(ibcq, min_t(unsigned int, cqe, INT_MAX), udata);
}
#else
int pfnic_compat_resize_cq(struct ib_cq *ibcq, int cqe, struct ib_udata *udata)
{
	return pfnic_resize_cq(ibcq, cqe, udata);
}
#endif
