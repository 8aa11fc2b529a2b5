/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Everything that differs between the kernels pfnic is built for lives here, and only
 * here: the rest of the driver is written against one interface and this file maps each
 * kernel of the matrix (Debian's 6.1, 6.12 and 7.x) onto it.
 */
#ifndef PFNIC_COMPAT_H
#define PFNIC_COMPAT_H

#include <linux/version.h>

/*
 * The oldest kernel pfnic supports: 6.1 has mmu_interval_notifier and hmm_range_fault
 * exported with the sequence protocol the ODP core relies on.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 1, 0)
#error "pfnic needs Linux 6.1 or newer"
#endif

/*
 * create_cq: 6.10 passes the uverbs attribute bundle instead of udata. 7.2 adds a separate
 * create_user_cq, which the core prefers for user CQs (and will require); pfnic serves
 * both from one function.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
#define PFNIC_CREATE_CQ_ARG struct uverbs_attr_bundle *attrs
#define PFNIC_CREATE_CQ_UDATA(cq) ((attrs) ? &(attrs)->driver_udata : NULL)
#else
#define PFNIC_CREATE_CQ_ARG struct ib_udata *udata
#define PFNIC_CREATE_CQ_UDATA(cq) (udata)
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 2, 0)
#define PFNIC_HAVE_CREATE_USER_CQ 1
#endif

/* reg_user_mr: 6.17 adds a DMA handle argument (a software device ignores it). */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 17, 0)
#define PFNIC_REG_USER_MR_DMAH struct ib_dmah *dmah,
#else
#define PFNIC_REG_USER_MR_DMAH
#endif

#endif /* PFNIC_COMPAT_H */
