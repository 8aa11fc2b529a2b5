/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libpfnic: the rdma-core provider for pfnic devices.
 *
 * pfnic keeps all of its state in the kernel: every verb is one uverbs command, sent by
 * libibverbs' generic ibv_cmd_* helpers. The provider's own objects are therefore just the
 * generic ones libibverbs knows (ibv_pd, ibv_cq, verbs_mr, verbs_qp); only the device and the
 * context have pfnic wrappers, as places for provider state to come.
 */
#ifndef PFNIC_PROVIDER_H
#define PFNIC_PROVIDER_H

#include <stddef.h>

#include "verbs-private-34.h"

#define pfnic_container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

struct pfnic_device {
	struct verbs_device ibv_dev;
};

struct pfnic_context {
	struct verbs_context ibv_ctx;
};

static inline struct pfnic_device *to_pfnic_device(struct verbs_device *vdev)
{
	return pfnic_container_of(vdev, struct pfnic_device, ibv_dev);
}

static inline struct pfnic_context *to_pfnic_context(struct ibv_context *ibctx)
{
	return pfnic_container_of(ibctx, struct pfnic_context, ibv_ctx.context);
}

#endif /* PFNIC_PROVIDER_H */
