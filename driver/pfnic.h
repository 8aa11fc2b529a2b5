/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * pfnic: a page-fault-capable software RDMA HCA.
 *
 * Types and prototypes shared by the driver's files.
 */
#ifndef PFNIC_H
#define PFNIC_H

#include "pfnic_compat.h"

#define PFNIC_DRV_NAME "pfnic"
#define PFNIC_DRV_VERSION "0.1.0"

#endif /* PFNIC_H */
