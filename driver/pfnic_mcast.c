// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: multicast groups of UD QPs. A QP attached to a group's GID receives every datagram
 * sent to that GID in its network namespace, once, as a NIC's multicast table delivers a
 * packet to each QP attached on the port. The engine walks a group's members in order of
 * their QP numbers (pfnic_mcast_next()), so that a send stalled by a receiver's page fault
 * goes on after the members it already reached.
 */
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <rdma/ib_addr.h>

#include "pfnic.h"

/* One QP attached to one group. */
struct pfnic_mcast_member {
	struct list_head entry;
	union ib_gid gid;
	u32 qpn;
	struct net *net;
};

static LIST_HEAD(pfnic_mcast_members);
static DEFINE_MUTEX(pfnic_mcast_lock);	/* the list, and each QP's mcast_groups */

/* Whether @gid is a multicast address: IPv6 (ff00::/8), or IPv4 (224/4) mapped in IPv6. */
bool pfnic_gid_multicast(const union ib_gid *gid)
{
	return rdma_is_multicast_addr((struct in6_addr *)gid->raw);
}

static struct pfnic_mcast_member *pfnic_mcast_find(const union ib_gid *gid, u32 qpn)
{
	struct pfnic_mcast_member *m;

	lockdep_assert_held(&pfnic_mcast_lock);
	list_for_each_entry(m, &pfnic_mcast_members, entry)
		if (m->qpn == qpn && !memcmp(&m->gid, gid, sizeof(*gid)))
			return m;
	return NULL;
}

static u32 pfnic_mcast_group_size(const union ib_gid *gid)
{
	struct pfnic_mcast_member *m;
	u32 n = 0;

	lockdep_assert_held(&pfnic_mcast_lock);
	list_for_each_entry(m, &pfnic_mcast_members, entry)
		n += !memcmp(&m->gid, gid, sizeof(*gid));
	return n;
}

/**
 * pfnic_attach_mcast() - attach a UD QP to the multicast group of a GID
 * @ibqp: the QP
 * @gid: the group's GID, a multicast address
 * @lid: unused on RoCE
 *
 * Attaching a QP that is attached already does nothing, as on mlx5 and rxe.
 *
 * Return: 0; -EINVAL for a QP that is not UD or a GID that is not multicast; -ENOMEM when
 * the group has max_mcast_qp_attach QPs, or the QP is in max_mcast_grp groups.
 */
int pfnic_attach_mcast(struct ib_qp *ibqp, union ib_gid *gid, u16 lid)
{
	struct pfnic_qp *qp = to_pfnic_qp(ibqp);
	struct pfnic_mcast_member *m;
	int rv = 0;

	if (ibqp->qp_type != IB_QPT_UD || !pfnic_gid_multicast(gid))
		return -EINVAL;
	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (!m)
		return -ENOMEM;
	m->gid = *gid;
	m->qpn = ibqp->qp_num;
	m->net = dev_net(qp->pfnic->ndev);
	mutex_lock(&pfnic_mcast_lock);
	if (pfnic_mcast_find(gid, m->qpn)) {
		kfree(m);
	} else if (pfnic_mcast_group_size(gid) >= PFNIC_MAX_MCAST_QP_ATTACH ||
		   qp->mcast_groups >= PFNIC_MAX_MCAST_GRP) {
		kfree(m);
		rv = -ENOMEM;
	} else {
		list_add_tail(&m->entry, &pfnic_mcast_members);
		qp->mcast_groups++;
	}
	mutex_unlock(&pfnic_mcast_lock);
	return rv;
}

/**
 * pfnic_detach_mcast() - detach a UD QP from a multicast group
 * @ibqp: the QP
 * @gid: the group's GID
 * @lid: unused on RoCE
 *
 * Return: 0, or -EINVAL if the QP is not attached to that group.
 */
int pfnic_detach_mcast(struct ib_qp *ibqp, union ib_gid *gid, u16 lid)
{
	struct pfnic_mcast_member *m;

	mutex_lock(&pfnic_mcast_lock);
	m = pfnic_mcast_find(gid, ibqp->qp_num);
	if (m) {
		list_del(&m->entry);
		to_pfnic_qp(ibqp)->mcast_groups--;
	}
	mutex_unlock(&pfnic_mcast_lock);
	kfree(m);
	return m ? 0 : -EINVAL;
}

/* Detaches a QP being destroyed from every group (a kernel consumer may leave it attached). */
void pfnic_mcast_forget(struct pfnic_qp *qp)
{
	struct pfnic_mcast_member *m, *next;

	mutex_lock(&pfnic_mcast_lock);
	list_for_each_entry_safe(m, next, &pfnic_mcast_members, entry) {
		if (m->qpn != qp->ibqp.qp_num)
			continue;
		list_del(&m->entry);
		kfree(m);
	}
	qp->mcast_groups = 0;
	mutex_unlock(&pfnic_mcast_lock);
}

/**
 * pfnic_mcast_next() - the next member of a multicast group to deliver to
 * @gid: the group
 * @net: the sender's network namespace, which the members must be in
 * @after: the last QP number delivered to (0 before the first)
 *
 * Context: process (the engine); takes the group table's mutex.
 * Return: the smallest QP number above @after attached to @gid in @net, or 0 if none is.
 */
u32 pfnic_mcast_next(const union ib_gid *gid, const struct net *net, u32 after)
{
	struct pfnic_mcast_member *m;
	u32 next = 0;

	mutex_lock(&pfnic_mcast_lock);
	list_for_each_entry(m, &pfnic_mcast_members, entry)
		if (m->qpn > after && (!next || m->qpn < next) && net_eq(m->net, net) &&
		    !memcmp(&m->gid, gid, sizeof(*gid)))
			next = m->qpn;
	mutex_unlock(&pfnic_mcast_lock);
	return next;
}
