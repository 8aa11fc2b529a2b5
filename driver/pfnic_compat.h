/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Everything that differs between the kernels pfnic is built for lives here, and only
 * here: the rest of the driver is written against the newest interface and this file
 * maps it onto older kernels. The matrix is Debian's 6.1, 6.12 and 7.x kernels.
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

#endif /* PFNIC_COMPAT_H */
