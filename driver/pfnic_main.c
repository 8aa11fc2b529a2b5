// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: module entry and device life cycle.
 *
 * A pfnic device is bound to a netdev, whose addresses become its RoCE GIDs. Devices are
 * made by `rdma link add <name> type pfnic netdev <ifname>` or, for the common case, by the
 * module parameter netdev=<ifname>[,<ifname>...]; they go away with `rdma link delete`,
 * when their netdev is unregistered, or when the module is unloaded.
 */
#include <linux/module.h>
#include <linux/rtnetlink.h>
#include <linux/init.h>
#include <linux/utsname.h>
#include <net/addrconf.h>
#include <rdma/rdma_netlink.h>

#include "pfnic.h"

/*
 * Three queues, so that no kind of work waits behind another: the engines (each QP's send
 * queue, RNR retries, drains); device page faults, which may block on I/O in
 * hmm_range_fault() for as long as the memory takes; and prefetches (ibv_advise_mr without
 * FLUSH), advice that must never hold up a fault or an engine.
 */
struct workqueue_struct *pfnic_wq;
struct workqueue_struct *pfnic_fault_wq;
struct workqueue_struct *pfnic_prefetch_wq;

static void pfnic_destroy_workqueues(void)
{
	destroy_workqueue(pfnic_prefetch_wq);
	destroy_workqueue(pfnic_fault_wq);
	destroy_workqueue(pfnic_wq);
}

static char *netdev;
module_param(netdev, charp, 0444);
MODULE_PARM_DESC(netdev, "comma-separated netdevs to create pfnic devices on at load");

/*
 * Called by the RDMA core once the device is unregistered and its last user gone, or when
 * a device that never registered is freed.
 */
void pfnic_dealloc_driver(struct ib_device *ibdev)
{
	struct pfnic_dev *pfnic = to_pfnic_dev(ibdev);

	rtnl_lock();
	pfnic_net_detach(pfnic->ndev);
	rtnl_unlock();
	netdev_put(pfnic->ndev, &pfnic->ndev_tracker);
}

/**
 * pfnic_dev_add() - create and register a pfnic device on a netdev
 * @ndev: the netdev; the device holds its own reference on it
 * @name: the device name, or a pattern with %d
 *
 * Return: 0, -EEXIST if @ndev already has a pfnic device, or the core's error.
 */
static int pfnic_dev_add(struct net_device *ndev, const char *name)
{
	struct ib_device *existing;
	struct pfnic_dev *pfnic;
	struct ib_device *ibdev;
	int rv;

	existing = ib_device_get_by_netdev(ndev, PFNIC_RDMA_DRIVER_ID);
	if (existing) {
		ib_device_put(existing);
		return -EEXIST;
	}

	pfnic = ib_alloc_device(pfnic_dev, ibdev);
	if (!pfnic)
		return -ENOMEM;
	ibdev = &pfnic->ibdev;
	pfnic->ndev = ndev;
	netdev_hold(ndev, &pfnic->ndev_tracker, GFP_KERNEL);

	ibdev->node_type = RDMA_NODE_IB_CA;
	ibdev->phys_port_cnt = 1;
	/*
	 * Completion vectors, one a CPU as rxe has: pfnic calls a CQ's handler from the engine
	 * whichever a CQ names, but programs (and the core's CQ pool) spread CQs over them.
	 */
	ibdev->num_comp_vectors = num_possible_cpus();
	addrconf_addr_eui48((unsigned char *)&ibdev->node_guid, ndev->dev_addr);
	strscpy(ibdev->node_desc, "pfnic", sizeof(ibdev->node_desc));
	ib_set_device_ops(ibdev, &pfnic_dev_ops);
	/*
	 * The core enables the kernel-mediated data path commands only for drivers that ask:
	 * pfnic's whole data path is in the kernel (the engine), so it needs all five.
	 */
	ibdev->uverbs_cmd_mask |= BIT_ULL(IB_USER_VERBS_CMD_POST_SEND) |
				  BIT_ULL(IB_USER_VERBS_CMD_POST_RECV) |
				  BIT_ULL(IB_USER_VERBS_CMD_POST_SRQ_RECV) |
				  BIT_ULL(IB_USER_VERBS_CMD_POLL_CQ) |
				  BIT_ULL(IB_USER_VERBS_CMD_REQ_NOTIFY_CQ);

	/*
	 * Under the netdev's own device, if it has one (a NIC's PCI function), as a hardware
	 * HCA sits: tools find the device's netdev through /sys/class/infiniband/<dev>/device.
	 */
	ibdev->dev.parent = ndev->dev.parent;
	rv = ib_device_set_netdev(ibdev, ndev, PFNIC_PORT);
	if (rv)
		goto err_dealloc;
	/* a software device: no DMA device, the core maps with virtual addresses */
	rv = ib_register_device(ibdev, name, NULL);
	if (rv)
		goto err_dealloc;
	/* RoCE v2 from other hosts, once there is a device whose QPs take it */
	pfnic_net_attach(pfnic);
	dev_info(&ibdev->dev, "created on %s\n", netdev_name(ndev));
	return 0;

err_dealloc:
	/* also runs pfnic_dealloc_driver, which drops the netdev reference */
	ib_dealloc_device(ibdev);
	return rv;
}

static int pfnic_newlink(const char *ibdev_name, struct net_device *ndev)
{
	return pfnic_dev_add(ndev, ibdev_name);
}

static struct rdma_link_ops pfnic_link_ops = {
	.type = PFNIC_DRV_NAME,
	.newlink = pfnic_newlink,
};

static void pfnic_port_event(struct ib_device *ibdev, enum ib_event_type type)
{
	struct ib_event event = {
		.device = ibdev,
		.element.port_num = PFNIC_PORT,
		.event = type,
	};

	ib_dispatch_event(&event);
}

/* Follows the netdevs pfnic devices are bound to: link state, and their going away. */
static int pfnic_netdev_event(struct notifier_block *nb, unsigned long event, void *arg)
{
	struct net_device *ndev = netdev_notifier_info_to_dev(arg);
	struct ib_device *ibdev;

	ibdev = ib_device_get_by_netdev(ndev, PFNIC_RDMA_DRIVER_ID);
	if (!ibdev)
		return NOTIFY_DONE;

	switch (event) {
	case NETDEV_UNREGISTER:
		/* the netdev's packets go back first (the RTNL is held here) */
		pfnic_net_detach(ndev);
		/* the core drops the device, and with it our netdev reference, off this path */
		ib_unregister_device_queued(ibdev);
		break;
	case NETDEV_UP:
	case NETDEV_CHANGE:
		if (netif_running(ndev) && netif_carrier_ok(ndev))
			pfnic_port_event(ibdev, IB_EVENT_PORT_ACTIVE);
		else
			pfnic_port_event(ibdev, IB_EVENT_PORT_ERR);
		break;
	case NETDEV_DOWN:
		pfnic_port_event(ibdev, IB_EVENT_PORT_ERR);
		break;
	default:
		break;
	}
	ib_device_put(ibdev);
	return NOTIFY_OK;
}

static struct notifier_block pfnic_netdev_notifier = {
	.notifier_call = pfnic_netdev_event,
};

/* Creates a device on each netdev named by the netdev= parameter. */
static int pfnic_add_param_devices(void)
{
	char *names, *cursor, *name;
	int rv = 0;

	if (!netdev || !*netdev)
		return 0;
	names = kstrdup(netdev, GFP_KERNEL);
	if (!names)
		return -ENOMEM;
	cursor = names;
	while ((name = strsep(&cursor, ",")) != NULL) {
		struct net_device *ndev;

		if (!*name)
			continue;
		ndev = dev_get_by_name(&init_net, name);
		if (!ndev) {
			pr_err(PFNIC_DRV_NAME ": netdev=%s: no such network device\n", name);
			rv = -ENODEV;
			break;
		}
		rv = pfnic_dev_add(ndev, "pfnic%d");
		dev_put(ndev);
		if (rv) {
			pr_err(PFNIC_DRV_NAME ": netdev=%s: cannot create a device: %d\n",
			       name, rv);
			break;
		}
	}
	kfree(names);
	return rv;
}

static int __init pfnic_init(void)
{
	int rv;

	/* WQ_MEM_RECLAIM: the engine moves data reclaim may be waiting on */
	pfnic_wq = alloc_workqueue("pfnic", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	/* ... and the faults the engine waits on */
	pfnic_fault_wq = alloc_workqueue("pfnic_fault", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	pfnic_prefetch_wq = alloc_workqueue("pfnic_prefetch", WQ_UNBOUND, PFNIC_PREFETCH_ACTIVE);
	if (!pfnic_wq || !pfnic_fault_wq || !pfnic_prefetch_wq) {
		if (pfnic_prefetch_wq)
			destroy_workqueue(pfnic_prefetch_wq);
		if (pfnic_fault_wq)
			destroy_workqueue(pfnic_fault_wq);
		if (pfnic_wq)
			destroy_workqueue(pfnic_wq);
		return -ENOMEM;
	}
	rv = pfnic_events_init();
	if (rv)
		goto err_wq;
	rv = pfnic_poll_init();
	if (rv)
		goto err_events;
	rv = register_netdevice_notifier(&pfnic_netdev_notifier);
	if (rv)
		goto err_poll;
	rdma_link_register(&pfnic_link_ops);
	rv = pfnic_add_param_devices();
	if (rv)
		goto err_unregister;
	pr_info(PFNIC_DRV_NAME ": version " PFNIC_DRV_VERSION " loaded on %s\n",
		init_utsname()->release);
	return 0;

err_unregister:
	rdma_link_unregister(&pfnic_link_ops);
	ib_unregister_driver(PFNIC_RDMA_DRIVER_ID);
	unregister_netdevice_notifier(&pfnic_netdev_notifier);
err_poll:
	pfnic_poll_exit();
err_events:
	pfnic_events_exit();
err_wq:
	pfnic_destroy_workqueues();
	return rv;
}

static void __exit pfnic_exit(void)
{
	/* no new devices, then every device unregistered and freed before the code goes */
	rdma_link_unregister(&pfnic_link_ops);
	ib_unregister_driver(PFNIC_RDMA_DRIVER_ID);
	unregister_netdevice_notifier(&pfnic_netdev_notifier);
	pfnic_poll_exit();
	pfnic_events_exit();
	pfnic_destroy_workqueues();
	pr_info(PFNIC_DRV_NAME ": unloaded\n");
}

module_init(pfnic_init);
module_exit(pfnic_exit);

MODULE_ALIAS_RDMA_LINK(PFNIC_DRV_NAME);
MODULE_AUTHOR("The pfnic authors");
MODULE_DESCRIPTION("pfnic: page-fault-capable software RDMA HCA");
MODULE_LICENSE("GPL");
MODULE_VERSION(PFNIC_DRV_VERSION);
