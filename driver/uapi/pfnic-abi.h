/* SPDX-License-Identifier: (GPL-2.0-only WITH Linux-syscall-note) OR BSD-2-Clause */
/*
 * pfnic's ABI with userspace: the one header the kernel driver and the rdma-core provider
 * (provider/) both build with.
 */
#ifndef PFNIC_ABI_H
#define PFNIC_ABI_H

#include <linux/types.h>

/* The uverbs ABI version the driver reports and the provider accepts. */
#define PFNIC_UVERBS_ABI_VERSION 1

/*
 * pfnic is not an in-tree driver, so it has no entry in enum rdma_driver_id. It reports this
 * value, far beyond that enum, so that the kernel can tell its devices apart (netdev events,
 * module unload) and no rdma-core provider's driver-id table matches them by accident; the
 * pfnic provider matches devices by name ("pfnic" prefix) instead.
 */
#define PFNIC_RDMA_DRIVER_ID 0x7066

/*
 * No command carries driver-private data yet: every command's driver-specific request and
 * response are empty. Work requests and completions travel through the generic POST_SEND,
 * POST_RECV, POLL_CQ and REQ_NOTIFY_CQ commands; nothing is mmap()ed. Adding private data
 * to any command is an ABI change: it needs its structures here and a new
 * PFNIC_UVERBS_ABI_VERSION.
 */

#endif /* PFNIC_ABI_H */
