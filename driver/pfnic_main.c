// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: module entry.
 *
 * The device model, verbs and the ODP engine arrive with the first-light work; this file
 * is the module's life cycle, which every kernel of the test matrix builds and loads.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/utsname.h>

#include "pfnic.h"

static int __init pfnic_init(void)
{
	pr_info(PFNIC_DRV_NAME ": version " PFNIC_DRV_VERSION " loaded on %s\n",
		init_utsname()->release);
	return 0;
}

static void __exit pfnic_exit(void)
{
	pr_info(PFNIC_DRV_NAME ": unloaded\n");
}

module_init(pfnic_init);
module_exit(pfnic_exit);

MODULE_AUTHOR("The pfnic authors");
MODULE_DESCRIPTION("pfnic: page-fault-capable software RDMA HCA");
MODULE_LICENSE("GPL");
MODULE_VERSION(PFNIC_DRV_VERSION);
