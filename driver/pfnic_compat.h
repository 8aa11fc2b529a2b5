/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Everything that differs between the kernels pfnic is built for lives here, and only
 * here: the rest of the driver is written against one interface and this file maps each
 * kernel of the matrix (Debian's 6.1, 6.12 and 7.x) onto it.
 */
#ifndef PFNIC_COMPAT_H
#define PFNIC_COMPAT_H

#include <linux/mm.h>
#include <linux/version.h>

/*
 * The oldest kernel pfnic supports: 6.1 has mmu_interval_notifier and hmm_range_fault
 * exported with the sequence protocol the ODP core relies on.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 1, 0)
#error "pfnic needs Linux 6.1 or newer"
#endif

struct ib_cq;
struct ib_cq_init_attr;
struct ib_mr;
struct ib_pd;
struct ib_udata;

/*
 * Verbs whose signature changed inside the matrix have a per-kernel entry point in
 * pfnic_compat.c, which calls the driver's one implementation:
 * - create_cq: 6.10 passes the uverbs attribute bundle instead of udata; 7.2 adds
 *   create_user_cq, which the core prefers for user CQs (pfnic serves both alike).
 * - reg_user_mr: 6.17 adds a DMA handle (a software device has no use for it).
 * - resize_cq: in 7.2 (the matrix's first kernel after 6.12) it is resize_user_cq, for user
 *   CQs only and with an unsigned size; the kernel's own consumers cannot resize there.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
struct uverbs_attr_bundle;
int pfnic_compat_create_cq(struct ib_cq *ibcq, const struct ib_cq_init_attr *attr,
			   struct uverbs_attr_bundle *attrs);
#else
int pfnic_compat_create_cq(struct ib_cq *ibcq, const struct ib_cq_init_attr *attr,
			   struct ib_udata *udata);
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 2, 0)
#define PFNIC_HAVE_CREATE_USER_CQ 1
#define PFNIC_HAVE_RESIZE_USER_CQ 1
int pfnic_compat_resize_cq(struct ib_cq *ibcq, unsigned int cqe, struct ib_udata *udata);
#else
int pfnic_compat_resize_cq(struct ib_cq *ibcq, int cqe, struct ib_udata *udata);
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 17, 0)
struct ib_dmah;
struct ib_mr *pfnic_compat_reg_user_mr(struct ib_pd *ibpd, u64 start, u64 length, u64 iova,
				       int access, struct ib_dmah *dmah, struct ib_udata *udata);
#else
struct ib_mr *pfnic_compat_reg_user_mr(struct ib_pd *ibpd, u64 start, u64 length, u64 iova,
				       int access, struct ib_udata *udata);
#endif

/*
 * The device capability of atomic writes: uverbs' value (IB_UVERBS_DEVICE_ATOMIC_WRITE),
 * which 6.1's headers do not name; its core passes the bit on to user space all the same.
 */
#define PFNIC_DEVICE_ATOMIC_WRITE	BIT_ULL(40)

/* 6.12 moved the unaligned accessors (the wire's headers) from asm/ to linux/. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
#include <linux/unaligned.h>
#else
#include <asm/unaligned.h>
#endif

/* 6.3 made a VMA's flags writable through helpers only (ummunotify's mmap). */
static inline void pfnic_vm_flags_mod(struct vm_area_struct *vma, vm_flags_t set,
				      vm_flags_t clear)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_mod(vma, set, clear);
#else
	vma->vm_flags = (vma->vm_flags | set) & ~clear;
#endif
}

#endif /* PFNIC_COMPAT_H */
