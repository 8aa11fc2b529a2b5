// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: RoCE v2 packets in and out of a device's netdev (see pfnic_wire.h).
 *
 * Out: a packet's transport headers and payload are built by the requester or responder
 * (pfnic_pkt_alloc()), then pfnic_pkt_send() puts UDP and IP in front (the route to the
 * peer's GID's address, out of the device's netdev), the ICRC behind, and hands it to the
 * IP stack, which resolves the neighbour and queues it on the netdev.
 *
 * In: pfnic takes UDP packets to port 4791 off its netdev before the IP stack sees them
 * (an rx_handler), so that rxe on another netdev of the same kernel, which listens on that
 * port through a socket, keeps its own. What is not RoCE v2 goes on to the stack untouched.
 * A packet is checked whole before anything in it is trusted (IP header, lengths, ICRC, an
 * opcode this device knows with the headers it needs, a destination GID of the device and
 * a QP of the device) and then queued to its QP: a request to the QP's responder, an ACK or
 * a response to its requester.
 */
#include <linux/crc32.h>
#include <linux/etherdevice.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/rtnetlink.h>
#include <linux/udp.h>
#include <net/ip.h>
#include <net/ip6_route.h>
#include <net/ipv6.h>
#include <net/route.h>
#include <rdma/ib_cache.h>

#include "pfnic_engine.h"

/* The extension headers after the BTH of an opcode pfnic takes, or -1 for one it does not. */
static int pfnic_op_hdrlen(u8 opcode)
{
	if (PFNIC_OP_TRANSPORT(opcode) == PFNIC_OP_UD) {
		if (opcode == (PFNIC_OP_UD | PFNIC_OP_SEND_ONLY))
			return PFNIC_DETH_LEN;
		if (opcode == (PFNIC_OP_UD | PFNIC_OP_SEND_ONLY_IMM))
			return PFNIC_DETH_LEN + PFNIC_IMMDT_LEN;
		return -1;
	}
	if (PFNIC_OP_TRANSPORT(opcode) != PFNIC_OP_RC)
		return -1;
	switch (PFNIC_OP_CODE(opcode)) {
	case PFNIC_OP_SEND_FIRST:
	case PFNIC_OP_SEND_MIDDLE:
	case PFNIC_OP_SEND_LAST:
	case PFNIC_OP_SEND_ONLY:
	case PFNIC_OP_WRITE_MIDDLE:
	case PFNIC_OP_WRITE_LAST:
	case PFNIC_OP_READ_RESP_MIDDLE:
		return 0;
	case PFNIC_OP_SEND_LAST_IMM:
	case PFNIC_OP_SEND_ONLY_IMM:
	case PFNIC_OP_WRITE_LAST_IMM:
		return PFNIC_IMMDT_LEN;
	case PFNIC_OP_SEND_LAST_INV:
	case PFNIC_OP_SEND_ONLY_INV:
		return PFNIC_IETH_LEN;
	case PFNIC_OP_WRITE_FIRST:
	case PFNIC_OP_WRITE_ONLY:
	case PFNIC_OP_READ_REQUEST:
	case PFNIC_OP_ATOMIC_WRITE:
		return PFNIC_RETH_LEN;
	case PFNIC_OP_WRITE_ONLY_IMM:
		return PFNIC_RETH_LEN + PFNIC_IMMDT_LEN;
	case PFNIC_OP_READ_RESP_FIRST:
	case PFNIC_OP_READ_RESP_LAST:
	case PFNIC_OP_READ_RESP_ONLY:
	case PFNIC_OP_ACK:
		return PFNIC_AETH_LEN;
	case PFNIC_OP_ATOMIC_ACK:
		return PFNIC_AETH_LEN + PFNIC_ATMACK_LEN;
	case PFNIC_OP_CMP_SWAP:
	case PFNIC_OP_FETCH_ADD:
		return PFNIC_ATMETH_LEN;
	default:
		return -1;
	}
}

/* Whether an opcode's packets carry a payload. */
static bool pfnic_op_has_payload(u8 opcode)
{
	u8 op = PFNIC_OP_CODE(opcode);

	return op <= PFNIC_OP_WRITE_ONLY_IMM ||
	       (op >= PFNIC_OP_READ_RESP_FIRST && op <= PFNIC_OP_READ_RESP_ONLY) ||
	       op == PFNIC_OP_SEND_LAST_INV || op == PFNIC_OP_SEND_ONLY_INV ||
	       op == PFNIC_OP_ATOMIC_WRITE;
}

/* Whether a packet goes to its QP's requester (an answer) rather than its responder. */
bool pfnic_op_is_answer(u8 opcode)
{
	u8 op = PFNIC_OP_CODE(opcode);

	return PFNIC_OP_TRANSPORT(opcode) == PFNIC_OP_RC &&
	       op >= PFNIC_OP_READ_RESP_FIRST && op <= PFNIC_OP_ATOMIC_ACK;
}

/*
 * The ICRC of a packet whose IP header starts at @nh, over @len bytes up to the ICRC: a
 * CRC-32 over 8 bytes of ones (the absent LRH) and the packet with the fields a router may
 * change masked to ones: IPv4's TOS, TTL and checksum, IPv6's traffic class, flow label
 * and hop limit, UDP's checksum, and the BTH's byte of FECN, BECN and reserved bits.
 */
static u32 pfnic_icrc(const u8 *nh, u32 len, bool v4)
{
	static const u8 ones[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	u32 iplen = v4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	u8 pseudo[sizeof(struct ipv6hdr) + sizeof(struct udphdr) + PFNIC_BTH_LEN];
	u32 fixed = iplen + sizeof(struct udphdr) + PFNIC_BTH_LEN;
	struct udphdr *uh;
	u32 crc;

	memcpy(pseudo, nh, fixed);
	if (v4) {
		struct iphdr *iph = (struct iphdr *)pseudo;

		iph->tos = 0xff;
		iph->ttl = 0xff;
		iph->check = htons(0xffff);
	} else {
		struct ipv6hdr *ip6h = (struct ipv6hdr *)pseudo;

		ip6h->priority = 0xf;
		memset(ip6h->flow_lbl, 0xff, sizeof(ip6h->flow_lbl));
		ip6h->hop_limit = 0xff;
	}
	uh = (struct udphdr *)(pseudo + iplen);
	uh->check = htons(0xffff);
	pseudo[iplen + sizeof(struct udphdr) + 4] = 0xff;

	crc = crc32_le(~0U, ones, sizeof(ones));
	crc = crc32_le(crc, pseudo, fixed);
	crc = crc32_le(crc, nh + fixed, len - fixed);
	return ~crc;
}

/**
 * pfnic_pkt_alloc() - a packet to build: room for the headers the stack puts in front,
 *		       then @hdrlen bytes of transport headers (the BTH first), @paylen of
 *		       payload, its pad and the ICRC
 * @pfnic: the device it goes out of
 * @hdrlen: the BTH and the extension headers
 * @paylen: the payload
 *
 * Context: any (GFP_ATOMIC); the caller fills the headers and payload (zeroed, pad too).
 * Return: the skb, whose data starts at the BTH, or NULL.
 */
struct sk_buff *pfnic_pkt_alloc(struct pfnic_dev *pfnic, u32 hdrlen, u32 paylen)
{
	struct net_device *ndev = pfnic->ndev;
	u32 room = LL_RESERVED_SPACE(ndev) + sizeof(struct ipv6hdr) + sizeof(struct udphdr);
	u32 len = hdrlen + ALIGN(paylen, 4) + PFNIC_ICRC_LEN;
	struct sk_buff *skb;

	skb = alloc_skb(room + len + ndev->needed_tailroom, GFP_ATOMIC);
	if (!skb)
		return NULL;
	skb_reserve(skb, room);
	skb_put_zero(skb, len);
	return skb;
}

/* Puts UDP and IPv4 in front of a packet, on the route to @daddr. Return: 0 or an error. */
static int pfnic_push_v4(struct pfnic_dev *pfnic, struct sk_buff *skb, __be32 saddr,
			 __be32 daddr)
{
	struct net *net = dev_net(pfnic->ndev);
	struct flowi4 fl = {
		.flowi4_oif = pfnic->ndev->ifindex,
		.flowi4_proto = IPPROTO_UDP,
		.daddr = daddr,
		.saddr = saddr,
	};
	struct rtable *rt;
	struct iphdr *iph;

	rt = ip_route_output_key(net, &fl);
	if (IS_ERR(rt))
		return PTR_ERR(rt);
	skb_dst_set(skb, &rt->dst);
	iph = skb_push(skb, sizeof(*iph));
	skb_reset_network_header(skb);
	iph->version = 4;
	iph->ihl = 5;
	iph->tos = 0;
	iph->tot_len = htons(skb->len);
	/* RoCE is never fragmented: a packet longer than the path's MTU is dropped */
	iph->frag_off = htons(IP_DF);
	iph->ttl = ip4_dst_hoplimit(&rt->dst);
	iph->protocol = IPPROTO_UDP;
	iph->saddr = saddr;
	iph->daddr = daddr;
	__ip_select_ident(net, iph, 1);
	ip_send_check(iph);
	skb->protocol = htons(ETH_P_IP);
	memset(IPCB(skb), 0, sizeof(*IPCB(skb)));
	return 0;
}

/* ... and IPv6. */
static int pfnic_push_v6(struct pfnic_dev *pfnic, struct sk_buff *skb,
			 const struct in6_addr *saddr, const struct in6_addr *daddr)
{
	struct net *net = dev_net(pfnic->ndev);
	struct flowi6 fl6 = {
		.flowi6_oif = pfnic->ndev->ifindex,
		.flowi6_proto = IPPROTO_UDP,
		.daddr = *daddr,
		.saddr = *saddr,
	};
	struct dst_entry *dst;
	struct ipv6hdr *ip6h;
	u32 paylen = skb->len;

	dst = ip6_dst_lookup_flow(net, NULL, &fl6, NULL);
	if (IS_ERR(dst))
		return PTR_ERR(dst);
	skb_dst_set(skb, dst);
	ip6h = skb_push(skb, sizeof(*ip6h));
	skb_reset_network_header(skb);
	ip6_flow_hdr(ip6h, 0, 0);
	ip6h->payload_len = htons(paylen);
	ip6h->nexthdr = IPPROTO_UDP;
	ip6h->hop_limit = ip6_dst_hoplimit(dst);
	ip6h->saddr = *saddr;
	ip6h->daddr = *daddr;
	skb->protocol = htons(ETH_P_IPV6);
	memset(IP6CB(skb), 0, sizeof(*IP6CB(skb)));
	return 0;
}

/**
 * pfnic_pkt_send() - send a packet pfnic_pkt_alloc() gave and the caller built
 * @pfnic: the device
 * @skb: the packet, consumed whatever happens
 * @sgid: the source GID (an address of the device's netdev)
 * @dgid: the destination's
 * @sport: the UDP source port: the flow's entropy, the same for every packet of a QP
 *
 * Context: any; takes no lock of pfnic's.
 * Return: 0 if the packet went to the IP stack (which may still drop it, as a wire may);
 * -ENETUNREACH with no route, -ENOBUFS if the netdev's queue refused it.
 */
int pfnic_pkt_send(struct pfnic_dev *pfnic, struct sk_buff *skb, const union ib_gid *sgid,
		   const union ib_gid *dgid, u16 sport)
{
	bool v4 = ipv6_addr_v4mapped((const struct in6_addr *)dgid->raw);
	struct net *net = dev_net(pfnic->ndev);
	struct udphdr *uh;
	u32 len;
	int rv;

	uh = skb_push(skb, sizeof(*uh));
	skb_reset_transport_header(skb);
	uh->source = htons(sport);
	uh->dest = htons(PFNIC_ROCE_V2_PORT);
	uh->len = htons(skb->len);
	/* the ICRC covers the packet: RoCE v2 sends no UDP checksum */
	uh->check = 0;
	if (v4) {
		__be32 saddr, daddr;

		memcpy(&saddr, sgid->raw + 12, 4);
		memcpy(&daddr, dgid->raw + 12, 4);
		rv = pfnic_push_v4(pfnic, skb, saddr, daddr);
	} else {
		rv = pfnic_push_v6(pfnic, skb, (const struct in6_addr *)sgid->raw,
				   (const struct in6_addr *)dgid->raw);
	}
	if (rv) {
		kfree_skb(skb);
		return -ENETUNREACH;
	}
	len = skb->len - PFNIC_ICRC_LEN;
	put_unaligned_le32(pfnic_icrc(skb->data, len, v4), skb->data + len);
	skb->ip_summed = CHECKSUM_NONE;
	pfnic_stat_add(pfnic, PFNIC_STAT_SENT_PKTS, 1);
	rv = v4 ? ip_local_out(net, NULL, skb) : ip6_local_out(net, NULL, skb);
	return net_xmit_eval(rv) ? -ENOBUFS : 0;
}

/* A UDP source port for a QP's flow, in the range RoCE v2 leaves for entropy. */
u16 pfnic_flow_port(u32 qpn)
{
	return 0xc000 | (hash_32(qpn, 14) & 0x3fff);
}

/* Drops a received packet that cannot be trusted, counted. */
static void pfnic_rx_drop(struct pfnic_dev *pfnic, struct sk_buff *skb, enum pfnic_stat why)
{
	pfnic_stat_add(pfnic, why, 1);
	kfree_skb(skb);
}

/*
 * The GSI QP of a device, with a reference: the one a MAD to QP1 on the wire goes to.
 */
static struct pfnic_qp *pfnic_gsi_of(struct pfnic_dev *pfnic, const union ib_gid *dgid)
{
	struct pfnic_qp *qp = pfnic_gsi_get(dgid, dev_net(pfnic->ndev));

	if (qp && qp->pfnic != pfnic) {
		pfnic_qp_put(qp);
		return NULL;
	}
	return qp;
}

/*
 * Checks the IP and UDP headers of a RoCE v2 packet (the skb's data at its IP header,
 * linear), trims what a link padded after it, and fills the addresses and lengths of
 * @pkt. Return: false if it is malformed.
 */
static bool pfnic_rx_ip(struct sk_buff *skb, struct pfnic_pkt *pkt, union ib_gid *sgid,
			union ib_gid *dgid)
{
	u32 iplen, len;
	struct udphdr *uh;

	if (skb->protocol == htons(ETH_P_IP)) {
		const struct iphdr *iph = (const struct iphdr *)skb->data;

		if (iph->ihl != 5 || ip_fast_csum(iph, iph->ihl))
			return false;
		len = ntohs(iph->tot_len);
		iplen = sizeof(*iph);
		ipv6_addr_set_v4mapped(iph->saddr, (struct in6_addr *)sgid->raw);
		ipv6_addr_set_v4mapped(iph->daddr, (struct in6_addr *)dgid->raw);
		pkt->v4 = true;
	} else {
		const struct ipv6hdr *ip6h = (const struct ipv6hdr *)skb->data;

		iplen = sizeof(*ip6h);
		len = iplen + ntohs(ip6h->payload_len);
		memcpy(sgid->raw, &ip6h->saddr, 16);
		memcpy(dgid->raw, &ip6h->daddr, 16);
		pkt->v4 = false;
	}
	if (len > skb->len || len < iplen + sizeof(*uh) + PFNIC_BTH_LEN + PFNIC_ICRC_LEN)
		return false;
	if (pskb_trim(skb, len))
		return false;
	uh = (struct udphdr *)(skb->data + iplen);
	if (ntohs(uh->len) != len - iplen)
		return false;
	pkt->hdr = iplen + sizeof(*uh);
	return true;
}

/*
 * Takes a RoCE v2 packet off the device's netdev: checks it whole, then queues it to the
 * QP it is for. Context: softirq (the rx_handler); consumes @skb.
 */
static void pfnic_rx(struct pfnic_dev *pfnic, struct sk_buff *skb)
{
	struct pfnic_pkt *pkt = PFNIC_PKT(skb);
	const struct ib_gid_attr *gattr;
	const struct pfnic_bth *bth;
	union ib_gid sgid, dgid;
	struct pfnic_qp *qp;
	int ext;
	u32 end, pad;

	/* a packet GRO merged is no RoCE packet any more: its ICRC covers one of them */
	if (skb_is_gso(skb) || skb_linearize(skb) || !pfnic_rx_ip(skb, pkt, &sgid, &dgid))
		return pfnic_rx_drop(pfnic, skb, PFNIC_STAT_RX_MALFORMED);
	end = skb->len - PFNIC_ICRC_LEN;
	if (pfnic_icrc(skb->data, end, pkt->v4) != get_unaligned_le32(skb->data + end))
		return pfnic_rx_drop(pfnic, skb, PFNIC_STAT_RX_ICRC_ERRORS);
	bth = (const struct pfnic_bth *)(skb->data + pkt->hdr);
	pkt->opcode = bth->opcode;
	pkt->flags = bth->flags;
	pkt->qpn = be32_to_cpu(bth->qpn) & PFNIC_QPN_MASK;
	pkt->psn = be32_to_cpu(bth->apsn) & PFNIC_PSN_MASK;
	pkt->ackreq = be32_to_cpu(bth->apsn) & PFNIC_BTH_ACKREQ;
	pkt->hdr += PFNIC_BTH_LEN;
	ext = pfnic_op_hdrlen(pkt->opcode);
	pad = PFNIC_BTH_PAD(pkt->flags);
	if (ext < 0 || pkt->hdr + ext + pad > end ||
	    (!pfnic_op_has_payload(pkt->opcode) && end - pkt->hdr - ext != pad))
		return pfnic_rx_drop(pfnic, skb, PFNIC_STAT_RX_MALFORMED);
	pkt->payload = pkt->hdr + ext;
	pkt->paylen = end - pkt->payload - pad;

	/* for this device: one of its GIDs, one of its QPs */
	gattr = rdma_find_gid_by_port(&pfnic->ibdev, &dgid, IB_GID_TYPE_ROCE_UDP_ENCAP,
				      PFNIC_PORT, NULL);
	if (IS_ERR(gattr))
		return pfnic_rx_drop(pfnic, skb, PFNIC_STAT_RX_UNKNOWN_QP);
	rdma_put_gid_attr(gattr);
	if (pkt->qpn == PFNIC_GSI_QPN)
		qp = pfnic_gsi_of(pfnic, &dgid);
	else
		qp = pfnic_qp_get(pkt->qpn);
	if (qp && qp->pfnic != pfnic) {
		pfnic_qp_put(qp);
		qp = NULL;
	}
	if (!qp)
		return pfnic_rx_drop(pfnic, skb, PFNIC_STAT_RX_UNKNOWN_QP);
	/*
	 * An RC QP connected to another host hears only its peer, a UD or GSI QP datagrams;
	 * UC and XRC QPs reach pfnic devices of this kernel only.
	 */
	if (qp->ibqp.qp_type == IB_QPT_RC ?
	    (!READ_ONCE(qp->wire.remote) || PFNIC_OP_TRANSPORT(pkt->opcode) != PFNIC_OP_RC ||
	     memcmp(&sgid, &qp->wire.dgid, sizeof(sgid))) :
	    ((qp->ibqp.qp_type != IB_QPT_UD && qp->ibqp.qp_type != IB_QPT_GSI) ||
	     PFNIC_OP_TRANSPORT(pkt->opcode) != PFNIC_OP_UD)) {
		pfnic_qp_put(qp);
		return pfnic_rx_drop(pfnic, skb, PFNIC_STAT_RX_UNKNOWN_QP);
	}
	pfnic_stat_add(pfnic, PFNIC_STAT_RCVD_PKTS, 1);
	if (pfnic_op_is_answer(pkt->opcode))
		pfnic_wire_answer_arrived(qp, skb);
	else
		pfnic_wire_request_arrived(qp, skb);
	pfnic_qp_put(qp);
}

/*
 * Whether a packet the netdev received is RoCE v2 to this host: IPv4 or IPv6 (no
 * extension header, no fragment) carrying UDP to port 4791. Looks without changing the
 * skb, which may be shared still.
 */
static bool pfnic_is_roce(const struct sk_buff *skb)
{
	struct udphdr uhbuf;
	const struct udphdr *uh;
	u32 iplen;
	u8 proto;

	if (skb->protocol == htons(ETH_P_IP)) {
		struct iphdr buf;
		const struct iphdr *iph = skb_header_pointer(skb, 0, sizeof(buf), &buf);

		if (!iph || iph->version != 4 || iph->ihl < 5 || ip_is_fragment(iph))
			return false;
		iplen = iph->ihl * 4;
		proto = iph->protocol;
	} else if (skb->protocol == htons(ETH_P_IPV6)) {
		struct ipv6hdr buf;
		const struct ipv6hdr *ip6h = skb_header_pointer(skb, 0, sizeof(buf), &buf);

		if (!ip6h || ip6h->version != 6)
			return false;
		iplen = sizeof(*ip6h);
		proto = ip6h->nexthdr;
	} else {
		return false;
	}
	if (proto != IPPROTO_UDP)
		return false;
	uh = skb_header_pointer(skb, iplen, sizeof(uhbuf), &uhbuf);
	return uh && uh->dest == htons(PFNIC_ROCE_V2_PORT);
}

static rx_handler_result_t pfnic_rx_handler(struct sk_buff **pskb)
{
	struct sk_buff *skb = *pskb;
	struct pfnic_dev *pfnic = rcu_dereference(skb->dev->rx_handler_data);

	if (skb->pkt_type != PACKET_HOST || !pfnic_is_roce(skb))
		return RX_HANDLER_PASS;
	skb = skb_share_check(skb, GFP_ATOMIC);
	if (skb)
		pfnic_rx(pfnic, skb);
	return RX_HANDLER_CONSUMED;
}

/**
 * pfnic_net_attach() - take the RoCE v2 packets of a device's netdev
 * @pfnic: the device
 *
 * A netdev has one rx_handler: one already taken (a bridge's or a bond's port) leaves the
 * device without the wire, which it says; its QPs still reach pfnic devices of this kernel.
 *
 * Context: process; takes the RTNL.
 */
void pfnic_net_attach(struct pfnic_dev *pfnic)
{
	int rv;

	rtnl_lock();
	rv = netdev_rx_handler_register(pfnic->ndev, pfnic_rx_handler, pfnic);
	rtnl_unlock();
	if (rv)
		dev_warn(&pfnic->ibdev.dev,
			 "%s has a receive handler already: no RoCE v2 from other hosts (%d)\n",
			 netdev_name(pfnic->ndev), rv);
}

/**
 * pfnic_net_detach() - give a netdev's packets back to the stack, if pfnic took them
 * @ndev: the netdev
 *
 * Context: caller holds the RTNL.
 */
void pfnic_net_detach(struct net_device *ndev)
{
	ASSERT_RTNL();
	if (rcu_access_pointer(ndev->rx_handler) == pfnic_rx_handler)
		netdev_rx_handler_unregister(ndev);
}
