// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_wire_peer: a pfnic device against a scripted RoCE v2 peer, packet by packet (TAP).
 *
 * The program makes a veth pair, puts a pfnic device on one end (pfw0, 10.9.0.1), and plays
 * the other host itself on the other end (pfw1): it writes whole Ethernet frames there with
 * a packet socket and reads what pfnic sends back, each checked down to its ICRC. So every
 * answer pfnic gives is seen as the wire carries it, and the peer can send what no real
 * peer would: a wrong ICRC, a cut header, an unknown QP, a PSN out of order, a duplicate.
 *
 * As responder (pfnic's QP takes the peer's requests):
 *  - a SEND lands and is ACKed; the PSN wraps from 0xffffff to 0;
 *  - bad packets are dropped and counted, never answered: wrong ICRC, payload changed,
 *    truncated, IP or UDP lengths that lie, a bad IP checksum, an opcode pfnic does not
 *    know, a header cut short, an unknown QP, a foreign address, a UD opcode on RC;
 *  - a PSN past the expected one gets one sequence NAK; a duplicate is ACKed again and
 *    not carried out twice; an atomic's duplicate is answered from its record;
 *  - a WRITE and a READ that meet ODP pages not present get an RNR NAK, then succeed;
 *  - a READ across a page boundary comes back at the path MTU;
 *  - requests back to back may share one ACK, the last one's (counted: acks_coalesced);
 *  - a WRITE with a key the QP cannot use gets a remote access NAK and the QP fails.
 * As requester (pfnic's QP sends to the peer):
 *  - SEND, WRITE, READ and atomic requests carry the right headers and bytes;
 *  - no ACK: pfnic sends again after its timeout; an ACK with a bad ICRC is not trusted;
 *  - a sequence NAK sends it back to that PSN, an RNR NAK after the RNR timer;
 *  - WQEs posted while one waits go out behind it, one ACK completes them in order, a NAK
 *    of a later one sends it and those after it again; READs stay within max_rd_atomic;
 *  - a remote access NAK fails the WQE; a peer gone fails it after retry_cnt tries.
 *
 * Usage: pfnic_wire_peer (as root, with pfnic loaded). It cleans up after itself.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>

#include "verbs-test.h"

#define DEV		"pfnicw0"
#define NIC		"pfw0"
#define PEER_NIC	"pfw1"
#define DEV_IP		"10.9.0.1"
#define PEER_IP		"10.9.0.2"
#define PEER_QPN	0x4242
#define PEER_QPN2	0x4343
#define MTU		1024
#define ROCE_PORT	4791

enum {
	OP_SEND_FIRST = 0x00, OP_SEND_MIDDLE = 0x01, OP_SEND_LAST = 0x02, OP_SEND_ONLY = 0x04,
	OP_WRITE_FIRST = 0x06, OP_WRITE_MIDDLE = 0x07, OP_WRITE_LAST = 0x08,
	OP_WRITE_ONLY = 0x0a, OP_READ_REQ = 0x0c, OP_READ_FIRST = 0x0d, OP_READ_MIDDLE = 0x0e,
	OP_READ_LAST = 0x0f, OP_READ_ONLY = 0x10, OP_ACK = 0x11, OP_ATOMIC_ACK = 0x12,
	OP_CMP_SWAP = 0x13, OP_FETCH_ADD = 0x14, OP_UD_SEND_ONLY = 0x64,
};

/* AETH syndromes: ACK (no credits), RNR NAK with timer code 1, NAKs */
#define SYN_ACK		0x1f
#define SYN_RNR		(0x20 | 1)
#define SYN_NAK_SEQ	0x60
#define SYN_NAK_ACCESS	0x62

static int bad;
static int num, failed;

static void point(const char *name)
{
	vt_point(&num, &failed, &bad, name);
}

/* ---- the wire -------------------------------------------------------------------------- */

static int raw_fd;
static int peer_ifindex;
static uint8_t dev_mac[6], peer_mac[6];
static uint32_t dev_ip, peer_ip;	/* network order */

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc_add(uint32_t crc, const uint8_t *p, size_t n)
{
	while (n--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

/*
 * The ICRC of a RoCE v2 packet over IPv4 whose IP header is at @ip, over @len bytes up to
 * the ICRC: CRC-32 over eight bytes of ones and the packet, with IPv4's TOS, TTL and
 * checksum, UDP's checksum and the BTH's FECN/BECN byte masked to ones.
 */
static uint32_t icrc(const uint8_t *ip, size_t len)
{
	static const uint8_t ones[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t head[20 + 8 + 12];

	memcpy(head, ip, sizeof(head));
	head[1] = 0xff;				/* TOS */
	head[8] = 0xff;				/* TTL */
	head[10] = head[11] = 0xff;		/* IP checksum */
	head[26] = head[27] = 0xff;		/* UDP checksum */
	head[28 + 4] = 0xff;			/* BTH: FECN, BECN, reserved */
	uint32_t crc = crc_add(0xffffffffu, ones, sizeof(ones));

	crc = crc_add(crc, head, sizeof(head));
	crc = crc_add(crc, ip + sizeof(head), len - sizeof(head));
	return ~crc;
}

static uint16_t ip_checksum(const uint8_t *p, size_t n)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v); }
static void put64(uint8_t *p, uint64_t v) { put32(p, v >> 32); put32(p + 4, v); }
static uint16_t get16(const uint8_t *p) { return p[0] << 8 | p[1]; }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

#define ETH_LEN	14
#define IP_LEN	20
#define UDP_LEN	8
#define BTH_LEN	12
#define HDRS	(ETH_LEN + IP_LEN + UDP_LEN)

struct frame {
	uint8_t b[2048];
	size_t len;
};

/* Fills the IP and UDP lengths and checksum and the ICRC of @f for its length. */
static void seal(struct frame *f)
{
	uint8_t *ip = f->b + ETH_LEN;

	put16(ip + 2, f->len - ETH_LEN);
	put16(ip + 10, 0);
	put16(ip + 10, ip_checksum(ip, IP_LEN));
	put16(ip + IP_LEN + 4, f->len - ETH_LEN - IP_LEN);
	if (f->len < HDRS + BTH_LEN + 4)
		return;				/* too short to have an ICRC */
	uint32_t c = icrc(ip, f->len - ETH_LEN - 4);

	memcpy(f->b + f->len - 4, &c, 4);	/* little-endian, as on the wire */
}

/*
 * A RoCE v2 frame from the peer to the device: @op to @qpn at @psn, the extension headers
 * @ext (@extlen bytes), then @paylen bytes of @pay padded to 4, and the ICRC.
 */
static void build(struct frame *f, uint8_t op, uint32_t qpn, uint32_t psn, bool ackreq,
		  const void *ext, size_t extlen, const void *pay, size_t paylen)
{
	uint8_t *p = f->b, *ip = p + ETH_LEN, *udp = ip + IP_LEN, *bth = udp + UDP_LEN;
	size_t pad = (4 - (paylen & 3)) & 3;

	memset(f->b, 0, sizeof(f->b));
	memcpy(p, dev_mac, 6);
	memcpy(p + 6, peer_mac, 6);
	put16(p + 12, ETH_P_IP);
	ip[0] = 0x45;
	put16(ip + 6, 0x4000);			/* DF */
	ip[8] = 64;
	ip[9] = IPPROTO_UDP;
	memcpy(ip + 12, &peer_ip, 4);
	memcpy(ip + 16, &dev_ip, 4);
	put16(udp, 0xc001);
	put16(udp + 2, ROCE_PORT);
	bth[0] = op;
	bth[1] = pad << 4;
	put16(bth + 2, 0xffff);
	put32(bth + 4, qpn & 0xffffff);
	put32(bth + 8, (psn & 0xffffff) | (ackreq ? 0x80000000u : 0));
	if (extlen)
		memcpy(bth + BTH_LEN, ext, extlen);
	if (paylen)
		memcpy(bth + BTH_LEN + extlen, pay, paylen);
	f->len = HDRS + BTH_LEN + extlen + paylen + pad + 4;
	seal(f);
}

static void send_frame(const struct frame *f)
{
	struct sockaddr_ll to = {
		.sll_family = AF_PACKET, .sll_ifindex = peer_ifindex, .sll_halen = 6,
	};

	memcpy(to.sll_addr, dev_mac, 6);
	if (sendto(raw_fd, f->b, f->len, 0, (struct sockaddr *)&to, sizeof(to)) != (ssize_t)f->len)
		bail("sendto on %s: %s", PEER_NIC, strerror(errno));
}

/* A packet the device sent, parsed. */
struct pkt {
	struct frame f;
	uint8_t op;
	uint32_t qpn, psn;
	bool ackreq;
	uint8_t syn;		/* AETH, where there is one */
	uint32_t msn;
	const uint8_t *ext;	/* what follows the BTH */
	const uint8_t *pay;	/* the payload, after the AETH if any */
	size_t paylen;
};

static bool op_has_aeth(uint8_t op)
{
	return op == OP_ACK || op == OP_ATOMIC_ACK || op == OP_READ_FIRST || op == OP_READ_LAST ||
	       op == OP_READ_ONLY;
}

/* The bytes of RETH or AtomicETH an RC request carries after its BTH. */
static size_t op_request_ext(uint8_t op)
{
	if (op == OP_WRITE_FIRST || op == OP_WRITE_ONLY || op == OP_READ_REQ)
		return 16;
	if (op == OP_CMP_SWAP || op == OP_FETCH_ADD)
		return 28;
	return 0;
}

/*
 * Packets that came ahead of the one a check waits for. A veth hands a packet to its peer on
 * the CPU that sent it, so two packets of one QP sent from two CPUs (a doorbell's context,
 * then the engine's worker) may arrive swapped, as on any multi-queue path, and a responder
 * would put them back in order or NAK. A check that waits for a PSN keeps those after it
 * here (receive_psn()); the next receives take them first, lowest PSN first.
 */
#define HELD_MAX 8
static struct pkt held[HELD_MAX];
static unsigned int nheld;

static void pkt_copy(struct pkt *to, const struct pkt *from)
{
	*to = *from;
	to->ext = to->f.b + (from->ext - from->f.b);
	to->pay = to->f.b + (from->pay - from->f.b);
}

/* How far PSN @a is after PSN @b, in the 24-bit PSN space (0x800000 and above: before). */
static uint32_t psn_after(uint32_t a, uint32_t b)
{
	return (a - b) & 0xffffff;
}

/* Takes held packet @i out into @k. */
static void unhold(struct pkt *k, unsigned int i)
{
	pkt_copy(k, &held[i]);
	for (nheld--; i < nheld; i++)
		pkt_copy(&held[i], &held[i + 1]);
}

static bool receive_wire(struct pkt *k, double secs);

/*
 * The next RoCE v2 packet the device sends within @secs (a held one first), its ICRC and
 * headers checked (a bad one fails the current point). Return: false if none came.
 */
static bool receive(struct pkt *k, double secs)
{
	if (nheld) {
		unhold(k, 0);
		return true;
	}
	return receive_wire(k, secs);
}

/*
 * The packet to QP @qpn at @psn, or else the first other one that is not just ahead of it
 * (which the check then reports), within @secs; packets to @qpn up to 32 PSNs ahead are held
 * for later. With @skip_behind, packets to @qpn up to 32 PSNs behind are passed over: a
 * requester whose ACK timeout ran out sends again what the peer has already answered.
 * Return: false if nothing came and nothing is held.
 */
static bool receive_psn(struct pkt *k, double secs, uint32_t qpn, uint32_t psn,
			bool skip_behind)
{
	double end = now() + secs;
	unsigned int i;

	psn &= 0xffffff;
	for (i = 0; i < nheld; i++)
		if (held[i].qpn == qpn && held[i].psn == psn) {
			unhold(k, i);
			return true;
		}
	while (receive_wire(k, end - now())) {
		uint32_t ahead = psn_after(k->psn, psn), behind = psn_after(psn, k->psn);

		if (k->qpn == qpn && skip_behind && behind && behind <= 32) {
			diag("PSN %#x came again while %#x was awaited: passed over", k->psn, psn);
			continue;
		}
		if (k->qpn != qpn || !ahead || ahead > 32 || nheld == HELD_MAX)
			return true;
		for (i = nheld; i && psn_after(held[i - 1].psn, k->psn) < 0x800000 &&
		     held[i - 1].psn != k->psn; i--)
			pkt_copy(&held[i], &held[i - 1]);
		pkt_copy(&held[i], k);
		nheld++;
	}
	if (nheld) {
		unhold(k, 0);
		return true;
	}
	return false;
}

static bool receive_wire(struct pkt *k, double secs)
{
	double end = now() + secs;

	for (;;) {
		double left = end - now();
		struct pollfd pfd = { .fd = raw_fd, .events = POLLIN };
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
			return false;
		n = recvfrom(raw_fd, k->f.b, sizeof(k->f.b), 0, (struct sockaddr *)&from, &fl);
		if (n < 0 || from.sll_pkttype == PACKET_OUTGOING)
			continue;
		k->f.len = n;
		const uint8_t *ip = k->f.b + ETH_LEN, *bth = ip + IP_LEN + UDP_LEN;

		if (n < HDRS + BTH_LEN + 4 || get16(k->f.b + 12) != ETH_P_IP || ip[0] != 0x45 ||
		    ip[9] != IPPROTO_UDP || get16(ip + IP_LEN + 2) != ROCE_PORT)
			continue;
		uint32_t c;
		size_t iplen = get16(ip + 2);

		EXPECT(iplen + ETH_LEN <= (size_t)n && get16(ip + IP_LEN + 4) == iplen - IP_LEN,
		       "a packet's IP length %zu or UDP length %u is wrong", iplen,
		       get16(ip + IP_LEN + 4));
		EXPECT(ip_checksum(ip, IP_LEN) == 0, "a packet's IP checksum is wrong");
		EXPECT(!memcmp(ip + 12, &dev_ip, 4) && !memcmp(ip + 16, &peer_ip, 4),
		       "a packet goes between the wrong addresses");
		k->f.len = iplen + ETH_LEN;
		memcpy(&c, k->f.b + k->f.len - 4, 4);
		EXPECT(c == icrc(ip, iplen - 4), "a packet's ICRC is %#x, expected %#x", c,
		       icrc(ip, iplen - 4));
		EXPECT(get16(bth + 2) == 0xffff, "a packet's P_Key is %#x", get16(bth + 2));
		k->op = bth[0];
		k->qpn = get32(bth + 4) & 0xffffff;
		k->psn = get32(bth + 8) & 0xffffff;
		k->ackreq = bth[8] & 0x80;
		k->ext = bth + BTH_LEN;
		k->syn = 0;
		k->msn = 0;
		size_t hdr = BTH_LEN;

		if (op_has_aeth(k->op)) {
			k->syn = k->ext[0];
			k->msn = get32(k->ext) & 0xffffff;
			hdr += 4;
		}
		hdr += op_request_ext(k->op);
		size_t pad = (bth[1] >> 4) & 3;

		k->pay = bth + hdr;
		k->paylen = k->f.len - HDRS - hdr - pad - 4;
		return true;
	}
}

/* Expects nothing from the device for @secs. Return: false (said) if something came. */
static bool quiet(double secs, const char *what)
{
	struct pkt k;

	if (!receive(&k, secs))
		return true;
	diag("%s: the device sent opcode %#x PSN %#x (syndrome %#x)", what, k.op, k.psn, k.syn);
	bad = 1;
	return false;
}

/* An answer expected within a few seconds: @op at @psn. Return: false (said) otherwise. */
static bool expect_answer(struct pkt *k, uint8_t op, uint32_t psn, const char *what)
{
	if (!receive_psn(k, 10, PEER_QPN, psn, false)) {
		diag("%s: no answer from the device", what);
		bad = 1;
		return false;
	}
	if (k->op != op || k->psn != (psn & 0xffffff) || k->qpn != PEER_QPN) {
		diag("%s: got opcode %#x PSN %#x to QP %#x (syndrome %#x), expected opcode %#x PSN %#x to QP %#x",
		     what, k->op, k->psn, k->qpn, k->syn, op, psn & 0xffffff, PEER_QPN);
		bad = 1;
		return false;
	}
	return true;
}

/* ---- the device's side -------------------------------------------------------------------- */

static long long counter(const char *name)
{
	char path[256], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/infiniband/%s/ports/1/hw_counters/%s", DEV, name);
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f))
		bail("cannot read %s", path);
	fclose(f);
	return atoll(buf);
}

/* Expects counter @name to reach @want (it may lag the packet a little). */
static void expect_counter(const char *name, long long want)
{
	long long v = counter(name);

	for (int i = 0; i < 50 && v != want; i++) {
		usleep(20000);
		v = counter(name);
	}
	EXPECT(v == want, "%s is %lld, expected %lld", name, v, want);
}

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_cq *cq;

static int sh(const char *cmd)
{
	int rv = system(cmd);

	if (rv)
		diag("`%s` failed (%d)", cmd, rv);
	return rv;
}

static void teardown(void)
{
	if (system("rdma link delete " DEV " 2>/dev/null; ip link delete " NIC " 2>/dev/null")) {
		/* gone already */
	}
}

static void read_mac(const char *nic, uint8_t *mac)
{
	char path[96], buf[32];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/net/%s/address", nic);
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f) ||
	    sscanf(buf, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3],
		   &mac[4], &mac[5]) != 6)
		bail("cannot read %s", path);
	fclose(f);
}

/* The index of the device's RoCE v2 GID for DEV_IP. */
static int find_gid(void)
{
	union ibv_gid want = {};

	want.raw[10] = want.raw[11] = 0xff;
	memcpy(want.raw + 12, &dev_ip, 4);
	for (int tries = 0; tries < 100; tries++) {
		for (int i = 0; i < 16; i++) {
			union ibv_gid g;
			char path[128], type[32] = "";
			FILE *f;

			if (ibv_query_gid(ctx, 1, i, &g) || memcmp(&g, &want, sizeof(g)))
				continue;
			snprintf(path, sizeof(path),
				 "/sys/class/infiniband/%s/ports/1/gid_attrs/types/%d", DEV, i);
			f = fopen(path, "r");
			if (f && fgets(type, sizeof(type), f) && !strncmp(type, "RoCE v2", 7)) {
				fclose(f);
				return i;
			}
			if (f)
				fclose(f);
		}
		usleep(100000);
	}
	bail("%s has no RoCE v2 GID for %s", DEV, DEV_IP);
}

static void set_up(void)
{
	char cmd[256];

	teardown();
	if (sh("modprobe veth") || sh("ip link add " NIC " type veth peer name " PEER_NIC) ||
	    sh("sysctl -q -w net.ipv6.conf." NIC ".disable_ipv6=1 net.ipv6.conf." PEER_NIC ".disable_ipv6=1") ||
	    sh("ip addr add " DEV_IP "/24 dev " NIC) || sh("ip link set " NIC " up") ||
	    sh("ip link set " PEER_NIC " up"))
		bail("cannot make the veth pair");
	read_mac(NIC, dev_mac);
	read_mac(PEER_NIC, peer_mac);
	/* the peer has no address: the device's packets reach it by this neighbour entry */
	snprintf(cmd, sizeof(cmd),
		 "ip neigh replace " PEER_IP " lladdr %02x:%02x:%02x:%02x:%02x:%02x dev " NIC " nud permanent",
		 peer_mac[0], peer_mac[1], peer_mac[2], peer_mac[3], peer_mac[4], peer_mac[5]);
	if (sh(cmd) || sh("rdma link add " DEV " type pfnic netdev " NIC))
		bail("cannot put a pfnic device on %s", NIC);
	inet_pton(AF_INET, DEV_IP, &dev_ip);
	inet_pton(AF_INET, PEER_IP, &peer_ip);
	peer_ifindex = if_nametoindex(PEER_NIC);
	raw_fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	if (raw_fd < 0)
		bail("packet socket: %s", strerror(errno));
	struct sockaddr_ll at = {
		.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
		.sll_ifindex = peer_ifindex,
	};

	if (bind(raw_fd, (struct sockaddr *)&at, sizeof(at)))
		bail("bind to %s: %s", PEER_NIC, strerror(errno));
	ctx = open_device_named(DEV);
	pd = ibv_alloc_pd(ctx);
	cq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	if (!pd || !cq)
		bail("PD or CQ: %s", strerror(errno));
}

static struct ibv_mr *reg(void *p, size_t len, int access)
{
	struct ibv_mr *mr = ibv_reg_mr(pd, p, len, access);

	if (!mr)
		bail("ibv_reg_mr of %zu bytes (access %#x): %s", len, access, strerror(errno));
	return mr;
}

/* An RC QP connected to the peer's QP @peer_qpn: its receive PSN @rq_psn, send PSN @sq_psn. */
/* The local ACK timeout of the QPs connect_qp() makes: 67 ms, unless a case asks for more. */
static uint8_t qp_timeout = 14;

static struct ibv_qp *connect_qp(int gidx, uint32_t peer_qpn, uint32_t rq_psn, uint32_t sq_psn,
				 uint8_t retry_cnt, uint8_t rnr_retry)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16, .max_send_sge = 2, .max_recv_sge = 2 },
	};
	struct ibv_qp *qp = ibv_create_qp(pd, &ia);
	struct vt_rc c = {
		.port = 1, .dest_qpn = peer_qpn, .rq_psn = rq_psn, .sq_psn = sq_psn,
		.min_rnr_timer = 1, .rnr_retry = rnr_retry, .sgid_index = gidx,
		.access = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
			  IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_LOCAL_WRITE,
	};
	struct ibv_qp_attr a;
	int state = IBV_QPS_RESET;
	const char *step;

	if (!qp)
		bail("ibv_create_qp: %s", strerror(errno));
	c.dgid.raw[10] = c.dgid.raw[11] = 0xff;
	memcpy(c.dgid.raw + 12, &peer_ip, 4);
	if (vt_rc_bring_up(qp, &c, &state, IBV_QPS_RTR, &step))
		bail("QP to %s: %s", step, strerror(errno));
	vt_rc_rts_attr(&a, &c);
	a.timeout = qp_timeout;
	a.retry_cnt = retry_cnt;
	if (ibv_modify_qp(qp, &a, VT_RC_RTS_MASK))
		bail("QP to RTS: %s", strerror(errno));
	return qp;
}

static void post_recv(struct ibv_qp *qp, struct ibv_mr *mr, void *p, uint32_t len, uint64_t id)
{
	struct ibv_sge sge = { .addr = (uintptr_t)p, .length = len, .lkey = mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = id, .sg_list = &sge, .num_sge = 1 }, *badwr;

	if (ibv_post_recv(qp, &wr, &badwr))
		bail("ibv_post_recv: %s", strerror(errno));
}

/* The next completion within @secs into @wc. Return: false if none came. */
static bool completion(struct ibv_wc *wc, double secs)
{
	double end = now() + secs;

	do {
		int n = ibv_poll_cq(cq, 1, wc);

		if (n < 0)
			bail("ibv_poll_cq: %d", n);
		if (n)
			return true;
		usleep(1000);
	} while (now() < end);
	return false;
}

static void no_completion(const char *what)
{
	struct ibv_wc wc;

	if (completion(&wc, 0.05)) {
		diag("%s: a completion came (wr_id %llu, status %s)", what,
		     (unsigned long long)wc.wr_id, ibv_wc_status_str(wc.status));
		bad = 1;
	}
}

static void expect_completion(uint64_t wr_id, enum ibv_wc_status status, const char *what)
{
	struct ibv_wc wc;

	if (!completion(&wc, 20)) {
		diag("%s: no completion", what);
		bad = 1;
		return;
	}
	EXPECT(wc.wr_id == wr_id && wc.status == status,
	       "%s: completion of wr_id %llu with %s, expected wr_id %llu with %s", what,
	       (unsigned long long)wc.wr_id, ibv_wc_status_str(wc.status),
	       (unsigned long long)wr_id, ibv_wc_status_str(status));
}

static void fill(uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = vt_pat(seed, i);
}

static bool same(const uint8_t *p, size_t len, uint64_t seed, const char *what)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != vt_pat(seed, i)) {
			diag("%s: byte %zu of %zu is %#x, expected %#x", what, i, len, p[i],
			     vt_pat(seed, i));
			bad = 1;
			return false;
		}
	return true;
}

static void reth(uint8_t *e, uint64_t va, uint32_t rkey, uint32_t len)
{
	put64(e, va);
	put32(e + 8, rkey);
	put32(e + 12, len);
}

/*
 * Packets the device must have dropped: nothing answered, nothing delivered, and counter
 * @name at @want.
 */
static void expect_dropped(const char *name, long long want, const char *what)
{
	quiet(1, what);
	expect_counter(name, want);
	no_completion(what);
}

/* A receive completion of @wr_id from the peer's QP: @len bytes of pattern @seed at @p. */
static void expect_received(uint64_t wr_id, const uint8_t *p, uint32_t len, uint64_t seed,
			    const char *what)
{
	struct ibv_wc wc;

	if (!completion(&wc, 10)) {
		diag("%s: no receive completion", what);
		bad = 1;
		return;
	}
	EXPECT(wc.wr_id == wr_id && wc.status == IBV_WC_SUCCESS && wc.byte_len == len &&
	       wc.opcode == IBV_WC_RECV && wc.src_qp == PEER_QPN,
	       "%s: completion wr_id %llu %s, %u bytes, from QP %#x", what,
	       (unsigned long long)wc.wr_id, ibv_wc_status_str(wc.status), wc.byte_len, wc.src_qp);
	same(p, len, seed, what);
}

/* ---- pfnic as the responder ------------------------------------------------------------- */

/* The PSN the device's QP expects next, starting just below the wrap. */
static uint32_t psn = 0xfffffe;

static void responder(int gidx)
{
	const size_t buf_len = 4 * 4096;
	uint8_t *recv_buf = map_fresh(buf_len), *odp_buf = map_fresh(buf_len);
	uint64_t *word = map_fresh(4096);
	struct ibv_mr *recv_mr = reg(recv_buf, buf_len, IBV_ACCESS_LOCAL_WRITE);
	int remote = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
		     IBV_ACCESS_REMOTE_ATOMIC;
	struct ibv_mr *odp_mr = reg(odp_buf, buf_len, remote | IBV_ACCESS_ON_DEMAND);
	struct ibv_mr *word_mr = reg(word, 4096, remote);
	struct ibv_qp *qp = connect_qp(gidx, PEER_QPN, psn, 0x100, 7, 7);
	uint8_t pay[4096], e[28];
	struct frame f;
	struct pkt k;
	long long c0;

	diag("the device's QP %#x expects PSN %#x from the peer's QP %#x", qp->qp_num, psn,
	     PEER_QPN);
	for (int i = 0; i < 4; i++)
		post_recv(qp, recv_mr, recv_buf + i * 1024, 1024, 100 + i);

	/* 1: a SEND that is right in every way */
	fill(pay, 300, 1);
	build(&f, OP_SEND_ONLY, qp->qp_num, psn, true, NULL, 0, pay, 300);
	send_frame(&f);
	if (expect_answer(&k, OP_ACK, psn, "SEND"))
		EXPECT(k.syn == SYN_ACK && k.msn == 1, "SEND: ACK syndrome %#x MSN %u, expected %#x MSN 1",
		       k.syn, k.msn, SYN_ACK);
	expect_received(100, recv_buf, 300, 1, "SEND");
	psn++;
	point("responder: a SEND from the wire lands in the receive WQE and is ACKed, MSN 1");

	/* 2: the ICRC, and the bytes it covers */
	c0 = counter("rx_icrc_errors");
	build(&f, OP_SEND_ONLY, qp->qp_num, psn, true, NULL, 0, pay, 300);
	f.b[f.len - 1] ^= 0x40;
	send_frame(&f);
	build(&f, OP_SEND_ONLY, qp->qp_num, psn, true, NULL, 0, pay, 300);
	f.b[HDRS + BTH_LEN + 17] ^= 1;
	send_frame(&f);
	build(&f, OP_SEND_ONLY, qp->qp_num, psn, true, NULL, 0, pay, 300);
	f.b[HDRS + 7] ^= 0x01;		/* the QPN's low byte changed after the ICRC */
	send_frame(&f);
	expect_dropped("rx_icrc_errors", c0 + 3, "bad ICRC");
	point("responder: a wrong ICRC, or bytes or a header it covers changed, is dropped and counted (rx_icrc_errors)");

	/* 3: packets cut short, or whose headers lie */
	c0 = counter("rx_malformed");
	int cases = 0;

	build(&f, OP_SEND_ONLY, qp->qp_num, psn, true, NULL, 0, NULL, 0);
	f.len = HDRS + 6;			/* shorter than a BTH */
	seal(&f);
	send_frame(&f), cases++;
	build(&f, OP_SEND_ONLY, qp->qp_num, psn, true, NULL, 0, pay, 100);
	put16(f.b + ETH_LEN + 2, f.len - ETH_LEN + 40);	/* IP says more than came */
	put16(f.b + ETH_LEN + 10, 0);
	put16(f.b + ETH_LEN + 10, ip_checksum(f.b + ETH_LEN, IP_LEN));
	send_frame(&f), cases++;
	build(&f, OP_SEND_ONLY, qp->qp_num, psn, true, NULL, 0, pay, 100);
	put16(f.b + ETH_LEN + IP_LEN + 4, get16(f.b + ETH_LEN + IP_LEN + 4) - 8);	/* UDP lies */
	send_frame(&f), cases++;
	build(&f, OP_SEND_ONLY, qp->qp_num, psn, true, NULL, 0, pay, 100);
	f.b[ETH_LEN + 10] ^= 0x10;		/* IP checksum */
	send_frame(&f), cases++;
	build(&f, 0x1e, qp->qp_num, psn, true, NULL, 0, pay, 100);	/* no such RC opcode */
	send_frame(&f), cases++;
	build(&f, 0x44, qp->qp_num, psn, true, NULL, 0, pay, 100);	/* RD: not carried */
	send_frame(&f), cases++;
	reth(e, (uintptr_t)odp_buf, odp_mr->rkey, 64);
	build(&f, OP_WRITE_ONLY, qp->qp_num, psn, true, e, 10, NULL, 0);	/* RETH cut */
	send_frame(&f), cases++;
	build(&f, OP_ACK, qp->qp_num, psn, false, NULL, 0, pay, 8);	/* an ACK with payload */
	send_frame(&f), cases++;
	/* UC reaches pfnic devices of this kernel only: the wire carries no UC opcode */
	build(&f, 0x24, qp->qp_num, psn, true, NULL, 0, pay, 100);
	send_frame(&f), cases++;
	expect_dropped("rx_malformed", c0 + cases, "malformed");
	point("responder: packets cut short, with lying IP or UDP lengths, a bad IP checksum, an opcode the wire does not carry or a cut header are dropped and counted (rx_malformed)");

	/* 4: not for this QP */
	c0 = counter("rx_unknown_qp");
	cases = 0;
	build(&f, OP_SEND_ONLY, 0xabcdef, psn, true, NULL, 0, pay, 100);
	send_frame(&f), cases++;
	uint32_t keep = peer_ip;

	inet_pton(AF_INET, "10.9.0.3", &peer_ip);
	build(&f, OP_SEND_ONLY, qp->qp_num, psn, true, NULL, 0, pay, 100);
	peer_ip = keep;
	send_frame(&f), cases++;
	keep = dev_ip;
	inet_pton(AF_INET, "10.9.0.77", &dev_ip);
	build(&f, OP_SEND_ONLY, qp->qp_num, psn, true, NULL, 0, pay, 100);
	dev_ip = keep;
	send_frame(&f), cases++;
	memset(e, 0, 8);
	build(&f, OP_UD_SEND_ONLY, qp->qp_num, psn, false, e, 8, pay, 100);
	send_frame(&f), cases++;
	expect_dropped("rx_unknown_qp", c0 + cases, "not for the QP");
	point("responder: a packet for an unknown QP, from an address not the QP's peer, to an address not the device's, or a UD opcode to an RC QP is dropped and counted (rx_unknown_qp)");

	/* 5: ahead of the expected PSN (the expected one is 0xffffff, ahead ones wrap) */
	c0 = counter("out_of_sequence");
	build(&f, OP_SEND_ONLY, qp->qp_num, psn + 2, true, NULL, 0, pay, 100);
	send_frame(&f);
	build(&f, OP_SEND_ONLY, qp->qp_num, psn + 3, true, NULL, 0, pay, 100);
	send_frame(&f);
	if (expect_answer(&k, OP_ACK, psn, "PSN ahead"))
		EXPECT(k.syn == SYN_NAK_SEQ, "PSN ahead: syndrome %#x, expected %#x", k.syn,
		       SYN_NAK_SEQ);
	quiet(1, "the second packet ahead");
	expect_counter("out_of_sequence", c0 + 2);
	no_completion("PSN ahead");
	fill(pay, 200, 2);
	build(&f, OP_SEND_ONLY, qp->qp_num, psn, true, NULL, 0, pay, 200);
	send_frame(&f);
	if (expect_answer(&k, OP_ACK, psn, "the expected PSN"))
		EXPECT(k.syn == SYN_ACK && k.msn == 2, "expected PSN: syndrome %#x MSN %u", k.syn,
		       k.msn);
	expect_received(101, recv_buf + 1024, 200, 2, "the expected PSN");
	psn = (psn + 1) & 0xffffff;
	point("responder: PSNs ahead of the expected one (past the wrap) get one sequence NAK of the expected PSN; the expected one then lands");

	/* 6: a duplicate SEND */
	c0 = counter("duplicate_request");
	build(&f, OP_SEND_ONLY, qp->qp_num, psn - 1, true, NULL, 0, pay, 200);
	send_frame(&f);
	if (expect_answer(&k, OP_ACK, psn - 1, "duplicate SEND"))
		EXPECT(k.syn == SYN_ACK, "duplicate SEND: syndrome %#x", k.syn);
	expect_counter("duplicate_request", c0 + 1);
	no_completion("duplicate SEND");
	point("responder: a duplicate SEND (PSN 0xffffff after the wrap) is ACKed again and not delivered twice");

	/* 7: a WRITE into ODP pages that are not there, across a page boundary */
	const size_t woff = 4096 - 3, wlen = 700;
	long long rnr0 = counter("send_rnr_nak");
	int rnrs = 0, tries = 0;
	bool acked = false;

	fill(pay, wlen, 3);
	reth(e, (uintptr_t)odp_buf + woff, odp_mr->rkey, wlen);
	while (!acked && tries++ < 100) {
		build(&f, OP_WRITE_ONLY, qp->qp_num, psn, true, e, 16, pay, wlen);
		send_frame(&f);
		if (!expect_answer(&k, OP_ACK, psn, "WRITE to ODP"))
			break;
		if (k.syn == SYN_RNR) {
			rnrs++;
			usleep(10000);
			continue;
		}
		EXPECT(k.syn == SYN_ACK, "WRITE to ODP: syndrome %#x", k.syn);
		acked = true;
	}
	EXPECT(acked && rnrs >= 1, "WRITE to ODP: %d RNR NAKs, then %s", rnrs,
	       acked ? "ACKed" : "never ACKed");
	expect_counter("send_rnr_nak", rnr0 + rnrs);
	same(odp_buf + woff, wlen, 3, "WRITE's bytes");
	EXPECT(odp_buf[woff - 1] == 0 && odp_buf[woff + wlen] == 0, "WRITE: bytes around it changed");
	psn = (psn + 1) & 0xffffff;
	diag("WRITE to ODP pages not present: %d RNR NAK(s), then ACKed", rnrs);
	point("responder: a WRITE across a page boundary into ODP pages not present gets RNR NAKs while they fault in, then lands, byte for byte");

	/* 8: a READ across a page boundary, of pages not present (the MR's last two) */
	const size_t roff = 2 * 4096 + 1000, rlen = 2 * MTU + 500;

	fill(odp_buf + roff, rlen, 4);
	if (madvise(odp_buf + 2 * 4096, 2 * 4096, MADV_PAGEOUT))
		diag("MADV_PAGEOUT: %s (the pages stay)", strerror(errno));
	reth(e, (uintptr_t)odp_buf + roff, odp_mr->rkey, rlen);
	rnrs = 0;
	tries = 0;
	acked = false;
	while (!acked && tries++ < 100) {
		build(&f, OP_READ_REQ, qp->qp_num, psn, false, e, 16, NULL, 0);
		send_frame(&f);
		if (!receive(&k, 10)) {
			diag("READ: no answer");
			bad = 1;
			break;
		}
		if (k.op == OP_ACK && k.syn == SYN_RNR && k.psn == psn) {
			rnrs++;
			usleep(10000);
			continue;
		}
		acked = true;
		size_t got = 0;

		for (int i = 0; i < 3; i++) {
			uint8_t want_op = i == 0 ? OP_READ_FIRST : i == 1 ? OP_READ_MIDDLE : OP_READ_LAST;

			if (i && !receive(&k, 10)) {
				diag("READ: response %d did not come", i);
				bad = 1;
				break;
			}
			if (k.op != want_op || k.psn != ((psn + i) & 0xffffff) ||
			    k.paylen != (i < 2 ? MTU : rlen - 2 * MTU)) {
				diag("READ: response %d is opcode %#x PSN %#x %zu bytes", i, k.op,
				     k.psn, k.paylen);
				bad = 1;
				break;
			}
			for (size_t j = 0; j < k.paylen; j++)
				if (k.pay[j] != vt_pat(4, got + j)) {
					diag("READ: byte %zu is %#x, expected %#x", got + j,
					     k.pay[j], vt_pat(4, got + j));
					bad = 1;
					break;
				}
			got += k.paylen;
		}
	}
	psn = (psn + 3) & 0xffffff;
	diag("READ of pages paged out: %d RNR NAK(s) first", rnrs);
	point("responder: a READ across a page boundary is answered at the path MTU (FIRST, MIDDLE, LAST, their PSNs), byte for byte");

	/* 9: atomics, and an atomic's duplicate */
	word[0] = 100;
	uint8_t at[28];

	put64(at, (uintptr_t)word);
	put32(at + 8, word_mr->rkey);
	put64(at + 12, 5);
	put64(at + 20, 0);
	c0 = counter("duplicate_request");
	for (int i = 0; i < 2; i++) {
		build(&f, OP_FETCH_ADD, qp->qp_num, psn, false, at, 28, NULL, 0);
		send_frame(&f);
		if (expect_answer(&k, OP_ATOMIC_ACK, psn, "FETCH_ADD"))
			EXPECT(k.paylen == 8 && get64(k.pay) == 100,
			       "FETCH_ADD %d: %zu bytes, original %llu, expected 100", i, k.paylen,
			       (unsigned long long)get64(k.pay));
	}
	EXPECT(word[0] == 105, "FETCH_ADD: the word is %llu, expected 105",
	       (unsigned long long)word[0]);
	expect_counter("duplicate_request", c0 + 1);
	psn = (psn + 1) & 0xffffff;
	put64(at + 12, 777);	/* swap */
	put64(at + 20, 105);	/* compare */
	build(&f, OP_CMP_SWAP, qp->qp_num, psn, false, at, 28, NULL, 0);
	send_frame(&f);
	if (expect_answer(&k, OP_ATOMIC_ACK, psn, "CMP_SWAP"))
		EXPECT(get64(k.pay) == 105 && word[0] == 777,
		       "CMP_SWAP: original %llu, word %llu", (unsigned long long)get64(k.pay),
		       (unsigned long long)word[0]);
	psn = (psn + 1) & 0xffffff;
	point("responder: a FETCH_ADD sent twice is carried out once, its duplicate answered from the record; CMP_SWAP swaps");

	/* 10: after all that, the QP still works */
	fill(pay, 1000, 5);
	build(&f, OP_SEND_ONLY, qp->qp_num, psn, true, NULL, 0, pay, 1000);
	send_frame(&f);
	expect_answer(&k, OP_ACK, psn, "SEND after it all");
	expect_received(102, recv_buf + 2048, 1000, 5, "SEND after it all");
	psn = (psn + 1) & 0xffffff;
	point("responder: after every bad packet, the QP takes the next SEND as if nothing happened");

	/*
	 * 10b: WRITEs back to back, each asking for an ACK: the responder may answer several with
	 * one (ACK coalescing, when they wait in its queue together), always the last one's
	 */
	const int nw = 6;
	uint8_t *wbase = (uint8_t *)word + 1024 + 3;
	int acks = 0;
	uint32_t last = 0;

	usleep(50000);	/* not the value the core kept from a read a moment ago */
	c0 = counter("acks_coalesced");
	for (int i = 0; i < nw; i++) {
		fill(pay, 100, 20 + i);
		reth(e, (uintptr_t)(wbase + i * 100), word_mr->rkey, 100);
		build(&f, OP_WRITE_ONLY, qp->qp_num, (psn + i) & 0xffffff, true, e, 16, pay, 100);
		send_frame(&f);
	}
	while (last != ((psn + nw - 1) & 0xffffff) && receive(&k, 10)) {
		EXPECT(k.op == OP_ACK && k.syn == SYN_ACK && (!acks || ((k.psn - last) & 0xffffff) < 0x800000),
		       "WRITEs back to back: got opcode %#x PSN %#x syndrome %#x after PSN %#x", k.op,
		       k.psn, k.syn, last);
		acks++;
		last = k.psn;
	}
	EXPECT(last == ((psn + nw - 1) & 0xffffff), "WRITEs back to back: the last ACK is of PSN %#x, expected %#x",
	       last, (psn + nw - 1) & 0xffffff);
	for (int i = 0; i < nw; i++)
		same(wbase + i * 100, 100, 20 + i, "a WRITE back to back");
	/* the core keeps a device's counters for 10 ms before it asks again */
	usleep(50000);
	long long coalesced = counter("acks_coalesced") - c0;

	EXPECT(coalesced == nw - acks,
	       "WRITEs back to back: %d ACKs for %d WRITEs, but %lld counted as coalesced", acks,
	       nw, coalesced);
	diag("%d WRITEs back to back got %d ACK(s); %lld left to a later one", nw, acks, coalesced);
	psn = (psn + nw) & 0xffffff;
	point("responder: WRITEs sent back to back, each asking for an ACK, land byte for byte; ACKs come in order, the last one's too, and each one left to a later one is counted (acks_coalesced)");

	/* 11: a key the QP cannot use */
	struct ibv_qp_attr qa;
	struct ibv_qp_init_attr qia;
	struct ibv_async_event ev;
	struct pollfd pfd = { .fd = ctx->async_fd, .events = POLLIN };

	reth(e, (uintptr_t)odp_buf, odp_mr->rkey ^ 0x100, 64);
	build(&f, OP_WRITE_ONLY, qp->qp_num, psn, true, e, 16, pay, 64);
	send_frame(&f);
	if (expect_answer(&k, OP_ACK, psn, "WRITE with a bad key"))
		EXPECT(k.syn == SYN_NAK_ACCESS, "bad key: syndrome %#x, expected %#x", k.syn,
		       SYN_NAK_ACCESS);
	if (poll(&pfd, 1, 10000) == 1 && !ibv_get_async_event(ctx, &ev)) {
		EXPECT(ev.event_type == IBV_EVENT_QP_ACCESS_ERR && ev.element.qp == qp,
		       "bad key: async event %s", ibv_event_type_str(ev.event_type));
		ibv_ack_async_event(&ev);
	} else {
		diag("bad key: no async event");
		bad = 1;
	}
	EXPECT(!ibv_query_qp(qp, &qa, IBV_QP_STATE, &qia) && qa.qp_state == IBV_QPS_ERR,
	       "bad key: the QP is in state %d, not ERR", qa.qp_state);
	expect_completion(103, IBV_WC_WR_FLUSH_ERR, "the last receive WQE");
	point("responder: a WRITE with a key the QP cannot use gets a remote access NAK, and the QP goes to the error state with its event");

	ibv_destroy_qp(qp);
	ibv_dereg_mr(recv_mr);
	ibv_dereg_mr(odp_mr);
	ibv_dereg_mr(word_mr);
}

/* ---- pfnic as the requester -------------------------------------------------------------- */

/*
 * The request packet expected from the device: @op at @psn with @paylen bytes. With
 * @skip_behind, what it sends again from before @psn (its ACK timeout ran out) is passed over.
 */
static bool expect_request_at(struct pkt *k, uint8_t op, uint32_t psn, size_t paylen,
			      const char *what, bool skip_behind)
{
	if (!receive_psn(k, 10, PEER_QPN2, psn, skip_behind)) {
		diag("%s: nothing came", what);
		bad = 1;
		return false;
	}
	if (k->op != op || k->psn != (psn & 0xffffff) || k->qpn != PEER_QPN2 ||
	    k->paylen != paylen) {
		diag("%s: got opcode %#x PSN %#x to QP %#x, %zu bytes; expected opcode %#x PSN %#x to QP %#x, %zu bytes",
		     what, k->op, k->psn, k->qpn, k->paylen, op, psn & 0xffffff, PEER_QPN2, paylen);
		bad = 1;
		return false;
	}
	return true;
}

static bool expect_request(struct pkt *k, uint8_t op, uint32_t psn, size_t paylen,
			   const char *what)
{
	return expect_request_at(k, op, psn, paylen, what, true);
}

/*
 * What a sequence NAK of @psn must make the device send: @psn first. A packet from before
 * it fails the check, as a go-back to the wrong place would send it.
 */
static bool expect_resend(struct pkt *k, uint8_t op, uint32_t psn, size_t paylen,
			  const char *what)
{
	return expect_request_at(k, op, psn, paylen, what, false);
}

/* An answer from the peer to the device's QP @qpn: @op at @psn, the AETH, @pay. */
static void answer(uint32_t qpn, uint8_t op, uint32_t psn, uint8_t syn, uint32_t msn,
		   const void *pay, size_t paylen, bool break_icrc)
{
	struct frame f;
	uint8_t aeth[4];

	put32(aeth, (uint32_t)syn << 24 | (msn & 0xffffff));
	build(&f, op, qpn, psn, false, op == OP_READ_MIDDLE ? NULL : aeth,
	      op == OP_READ_MIDDLE ? 0 : 4, pay, paylen);
	if (break_icrc)
		f.b[f.len - 2] ^= 0x08;
	send_frame(&f);
}

static void post_send(struct ibv_qp *qp, enum ibv_wr_opcode op, struct ibv_mr *mr, void *p,
		      uint32_t len, uint64_t id, uint64_t raddr, uint32_t rkey)
{
	struct ibv_sge sge = { .addr = (uintptr_t)p, .length = len, .lkey = mr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = id, .sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
	}, *badwr;

	if (op == IBV_WR_ATOMIC_FETCH_AND_ADD) {
		wr.wr.atomic.remote_addr = raddr;
		wr.wr.atomic.rkey = rkey;
		wr.wr.atomic.compare_add = 9;
	} else {
		wr.wr.rdma.remote_addr = raddr;
		wr.wr.rdma.rkey = rkey;
	}
	if (ibv_post_send(qp, &wr, &badwr))
		bail("ibv_post_send: %s", strerror(errno));
}

static void requester(int gidx)
{
	const size_t len = 4 * 4096;
	uint8_t *buf = map_fresh(len);
	struct ibv_mr *mr = reg(buf, len, IBV_ACCESS_LOCAL_WRITE);
	uint32_t sq = 0xffffff;		/* the device's first PSN: its SEND's packets wrap */
	struct ibv_qp *qp = connect_qp(gidx, PEER_QPN2, 0x10, sq, 3, 2);
	uint32_t qpn = qp->qp_num;
	struct pkt k;
	long long c0;
	uint8_t pay[4096];

	/* 1: a SEND of two packets, and no ACK for it at first */
	fill(buf, 2000, 6);
	c0 = counter("retransmits");
	post_send(qp, IBV_WR_SEND, mr, buf, 2000, 1, 0, 0);
	if (expect_request(&k, OP_SEND_FIRST, sq, MTU, "SEND's first packet"))
		same(k.pay, MTU, 6, "SEND's first packet");
	if (expect_request(&k, OP_SEND_LAST, sq + 1, 2000 - MTU, "SEND's last packet")) {
		EXPECT(k.ackreq, "SEND's last packet does not ask for an ACK");
		for (size_t j = 0; j < k.paylen; j++)
			if (k.pay[j] != vt_pat(6, MTU + j)) {
				diag("SEND's last packet: byte %zu differs", j);
				bad = 1;
				break;
			}
	}
	point("requester: a SEND of 2000 bytes goes out as SEND FIRST and SEND LAST at the path MTU, PSNs wrapping, every byte and the ICRC right");

	/* the peer keeps quiet: the device sends both again after its timeout */
	expect_request(&k, OP_SEND_FIRST, sq, MTU, "SEND's first packet again");
	expect_request(&k, OP_SEND_LAST, sq + 1, 2000 - MTU, "SEND's last packet again");
	no_completion("SEND not ACKed");
	answer(qpn, OP_ACK, sq + 1, SYN_ACK, 1, NULL, 0, false);
	expect_completion(1, IBV_WC_SUCCESS, "SEND once ACKed");
	EXPECT(counter("retransmits") >= c0 + 2, "retransmits went from %lld to %lld", c0,
	       counter("retransmits"));
	sq = (sq + 2) & 0xffffff;
	point("requester: without an ACK it sends again after its timeout (retransmits), and completes on the ACK");

	/* 2: an ACK with a bad ICRC is not believed */
	c0 = counter("rx_icrc_errors");
	fill(buf, 100, 7);
	post_send(qp, IBV_WR_SEND, mr, buf, 100, 2, 0, 0);
	expect_request(&k, OP_SEND_ONLY, sq, 100, "SEND ONLY");
	answer(qpn, OP_ACK, sq, SYN_ACK, 2, NULL, 0, true);
	no_completion("ACK with a bad ICRC");
	expect_request(&k, OP_SEND_ONLY, sq, 100, "SEND ONLY again");
	answer(qpn, OP_ACK, sq, SYN_ACK, 2, NULL, 0, false);
	expect_completion(2, IBV_WC_SUCCESS, "SEND ONLY once ACKed");
	expect_counter("rx_icrc_errors", c0 + 1);
	sq = (sq + 1) & 0xffffff;
	point("requester: an ACK with a wrong ICRC is dropped (rx_icrc_errors); the WQE completes on a good one");

	/* 3: a READ into a buffer at an unaligned offset across a page boundary */
	const size_t loff = 4096 - 77, rlen = MTU + 300;

	memset(buf, 0, len);
	post_send(qp, IBV_WR_RDMA_READ, mr, buf + loff, rlen, 3, 0x123456789000ull, 0xabcd);
	if (expect_request(&k, OP_READ_REQ, sq, 0, "READ request")) {
		EXPECT(get64(k.ext) == 0x123456789000ull && get32(k.ext + 8) == 0xabcd &&
		       get32(k.ext + 12) == rlen, "READ request: RETH %#llx %#x %u",
		       (unsigned long long)get64(k.ext), get32(k.ext + 8), get32(k.ext + 12));
	}
	fill(pay, rlen, 8);
	answer(qpn, OP_READ_FIRST, sq, SYN_ACK, 3, pay, MTU, false);
	answer(qpn, OP_READ_LAST, sq + 1, SYN_ACK, 3, pay + MTU, rlen - MTU, false);
	expect_completion(3, IBV_WC_SUCCESS, "READ");
	same(buf + loff, rlen, 8, "READ's bytes");
	EXPECT(buf[loff - 1] == 0 && buf[loff + rlen] == 0, "READ: bytes around it changed");
	sq = (sq + 2) & 0xffffff;
	point("requester: a READ's request carries its RETH, and its two responses land across a page boundary, byte for byte");

	/* 4: a sequence NAK in the middle of a WRITE */
	fill(buf, 3000, 9);
	c0 = counter("rcvd_seq_err");
	post_send(qp, IBV_WR_RDMA_WRITE, mr, buf, 3000, 4, 0x5000, 0x77);
	expect_request(&k, OP_WRITE_FIRST, sq, MTU, "WRITE FIRST");
	expect_request(&k, OP_WRITE_MIDDLE, sq + 1, MTU, "WRITE MIDDLE");
	expect_request(&k, OP_WRITE_LAST, sq + 2, 3000 - 2 * MTU, "WRITE LAST");
	answer(qpn, OP_ACK, sq + 1, SYN_NAK_SEQ, 3, NULL, 0, false);
	if (expect_resend(&k, OP_WRITE_MIDDLE, sq + 1, MTU, "WRITE MIDDLE again"))
		for (size_t j = 0; j < MTU; j++)
			if (k.pay[j] != vt_pat(9, MTU + j)) {
				diag("WRITE MIDDLE again: byte %zu differs", j);
				bad = 1;
				break;
			}
	expect_request(&k, OP_WRITE_LAST, sq + 2, 3000 - 2 * MTU, "WRITE LAST again");
	answer(qpn, OP_ACK, sq + 2, SYN_ACK, 4, NULL, 0, false);
	expect_completion(4, IBV_WC_SUCCESS, "WRITE");
	expect_counter("rcvd_seq_err", c0 + 1);
	sq = (sq + 3) & 0xffffff;
	point("requester: a sequence NAK of a WRITE's middle packet sends it back to that packet (rcvd_seq_err), then it completes");

	/* 5: an RNR NAK: sent again once the timer ran out */
	post_send(qp, IBV_WR_SEND, mr, buf, 10, 5, 0, 0);
	expect_request(&k, OP_SEND_ONLY, sq, 10, "SEND before RNR");
	answer(qpn, OP_ACK, sq, SYN_RNR, 4, NULL, 0, false);
	expect_request(&k, OP_SEND_ONLY, sq, 10, "SEND after an RNR NAK");
	answer(qpn, OP_ACK, sq, SYN_ACK, 5, NULL, 0, false);
	expect_completion(5, IBV_WC_SUCCESS, "SEND after an RNR NAK");
	sq = (sq + 1) & 0xffffff;
	point("requester: after an RNR NAK it sends again once the RNR timer ran out, and completes");

	/* 6: an atomic's answer */
	uint64_t *res = (uint64_t *)(buf + 8192);

	*res = 0;
	post_send(qp, IBV_WR_ATOMIC_FETCH_AND_ADD, mr, res, 8, 6, 0x8000, 0x99);
	if (expect_request(&k, OP_FETCH_ADD, sq, 0, "FETCH_ADD"))
		EXPECT(get64(k.ext) == 0x8000 && get32(k.ext + 8) == 0x99 && get64(k.ext + 12) == 9,
		       "FETCH_ADD: AtomicETH %#llx %#x add %llu", (unsigned long long)get64(k.ext),
		       get32(k.ext + 8), (unsigned long long)get64(k.ext + 12));
	put64(pay, 0x1122334455667788ull);
	answer(qpn, OP_ATOMIC_ACK, sq, SYN_ACK, 6, pay, 8, false);
	expect_completion(6, IBV_WC_SUCCESS, "FETCH_ADD");
	EXPECT(*res == 0x1122334455667788ull, "FETCH_ADD: the original is %#llx",
	       (unsigned long long)*res);
	sq = (sq + 1) & 0xffffff;
	point("requester: a FETCH_ADD carries its AtomicETH, and the original in the atomic ACK lands in the local buffer");

	/*
	 * 7: WQEs posted one after another while the first waits for its ACK go out behind
	 * it, each asking for an ACK at its end; one ACK of the last PSN completes them all.
	 * On a QP of its own whose ACK timeout (1 s) a slow guest does not run into: here every
	 * packet that comes is counted.
	 */
	struct ibv_qp *qp1 = qp;
	uint32_t sq1 = sq;

	qp_timeout = 18;
	sq = 0x800;
	qp = connect_qp(gidx, PEER_QPN2, 0x10, sq, 3, 2);
	qpn = qp->qp_num;
	qp_timeout = 14;
	fill(buf, 4096, 10);
	post_send(qp, IBV_WR_SEND, mr, buf, 100, 20, 0, 0);
	post_send(qp, IBV_WR_RDMA_WRITE, mr, buf + 1000, 1500, 21, 0x6000, 0x78);
	post_send(qp, IBV_WR_SEND, mr, buf + 3001, 50, 22, 0, 0);
	if (expect_request(&k, OP_SEND_ONLY, sq, 100, "first of three: SEND ONLY")) {
		EXPECT(k.ackreq, "first of three: no ACK asked for");
		same(k.pay, 100, 10, "first of three");
	}
	if (expect_request(&k, OP_WRITE_FIRST, sq + 1, MTU, "second of three: WRITE FIRST")) {
		EXPECT(get64(k.ext) == 0x6000 && get32(k.ext + 8) == 0x78 &&
		       get32(k.ext + 12) == 1500, "second of three: RETH %#llx %#x %u",
		       (unsigned long long)get64(k.ext), get32(k.ext + 8), get32(k.ext + 12));
		for (size_t j = 0; j < MTU; j++)
			if (k.pay[j] != vt_pat(10, 1000 + j)) {
				diag("second of three: WRITE FIRST's byte %zu differs", j);
				bad = 1;
				break;
			}
	}
	if (expect_request(&k, OP_WRITE_LAST, sq + 2, 1500 - MTU, "second of three: WRITE LAST"))
		EXPECT(k.ackreq, "second of three: no ACK asked for at its end");
	if (expect_request(&k, OP_SEND_ONLY, sq + 3, 50, "third of three: SEND ONLY"))
		for (size_t j = 0; j < 50; j++)
			if (k.pay[j] != vt_pat(10, 3001 + j)) {
				diag("third of three: byte %zu differs", j);
				bad = 1;
				break;
			}
	no_completion("three in flight, none ACKed");
	answer(qpn, OP_ACK, sq + 3, SYN_ACK, 9, NULL, 0, false);
	expect_completion(20, IBV_WC_SUCCESS, "first of three, on the ACK of the third");
	expect_completion(21, IBV_WC_SUCCESS, "second of three");
	expect_completion(22, IBV_WC_SUCCESS, "third of three");
	sq = (sq + 4) & 0xffffff;
	point("requester: WQEs posted while one waits for its ACK go out behind it, PSN after PSN, every byte right; one ACK of the last completes them all, in order");

	/* 8: a sequence NAK of the second of three: the first is done, the rest go again */
	c0 = counter("rcvd_seq_err");
	post_send(qp, IBV_WR_SEND, mr, buf, 10, 23, 0, 0);
	post_send(qp, IBV_WR_RDMA_WRITE, mr, buf + 7, 64, 24, 0x7000, 0x79);
	post_send(qp, IBV_WR_SEND, mr, buf + 99, 20, 25, 0, 0);
	expect_request(&k, OP_SEND_ONLY, sq, 10, "SEND before the NAK");
	expect_request(&k, OP_WRITE_ONLY, sq + 1, 64, "WRITE before the NAK");
	expect_request(&k, OP_SEND_ONLY, sq + 2, 20, "SEND after it");
	answer(qpn, OP_ACK, sq + 1, SYN_NAK_SEQ, 10, NULL, 0, false);
	expect_completion(23, IBV_WC_SUCCESS, "the SEND before the NAK's PSN");
	if (expect_resend(&k, OP_WRITE_ONLY, sq + 1, 64, "WRITE again"))
		for (size_t j = 0; j < 64; j++)
			if (k.pay[j] != vt_pat(10, 7 + j)) {
				diag("WRITE again: byte %zu differs", j);
				bad = 1;
				break;
			}
	expect_request(&k, OP_SEND_ONLY, sq + 2, 20, "SEND after it again, at its PSN");
	answer(qpn, OP_ACK, sq + 2, SYN_ACK, 12, NULL, 0, false);
	expect_completion(24, IBV_WC_SUCCESS, "WRITE sent again");
	expect_completion(25, IBV_WC_SUCCESS, "SEND sent again");
	expect_counter("rcvd_seq_err", c0 + 1);
	sq = (sq + 3) & 0xffffff;
	point("requester: a sequence NAK of the second of three completes the first, and sends the second and third again at their PSNs");

	/* 9: max_rd_atomic 1: a second READ waits for the first's answer */
	memset(buf, 0, len);
	post_send(qp, IBV_WR_RDMA_READ, mr, buf + 5, 40, 26, 0x1000, 0xabcd);
	post_send(qp, IBV_WR_RDMA_READ, mr, buf + 4096 - 3, 60, 27, 0x2000, 0xabcd);
	expect_request(&k, OP_READ_REQ, sq, 0, "first READ");
	/* for a while, the second must not come (the first may, after its timeout) */
	for (double end = now() + 0.3; now() < end && receive(&k, end - now());)
		EXPECT(k.psn == sq, "second READ while the first, max_rd_atomic 1, is unanswered: the device sent opcode %#x PSN %#x",
		       k.op, k.psn);
	fill(pay, 60, 11);
	answer(qpn, OP_READ_ONLY, sq, SYN_ACK, 13, pay, 40, false);
	expect_completion(26, IBV_WC_SUCCESS, "first READ");
	/* the first's tries that may still be on their way are passed over */
	bool got = false;

	for (double end = now() + 10; !got && now() < end && receive(&k, end - now());)
		got = !(k.op == OP_READ_REQ && k.psn == sq);
	EXPECT(got && k.op == OP_READ_REQ && k.psn == ((sq + 1) & 0xffffff),
	       "second READ, once the first is answered: %s", got ? "another packet came" :
	       "nothing came");
	answer(qpn, OP_READ_ONLY, sq + 1, SYN_ACK, 14, pay, 60, false);
	expect_completion(27, IBV_WC_SUCCESS, "second READ");
	same(buf + 5, 40, 11, "first READ's bytes");
	same(buf + 4096 - 3, 60, 11, "second READ's bytes, across a page boundary");
	sq = (sq + 2) & 0xffffff;
	point("requester: with max_rd_atomic 1 a second READ goes out only once the first is answered, both byte for byte");
	ibv_destroy_qp(qp);
	qp = qp1;
	qpn = qp->qp_num;
	sq = sq1;

	/* 10: a remote access NAK */
	post_send(qp, IBV_WR_RDMA_WRITE, mr, buf, 64, 7, 0x9000, 0x1);
	expect_request(&k, OP_WRITE_ONLY, sq, 64, "WRITE before the NAK");
	answer(qpn, OP_ACK, sq, SYN_NAK_ACCESS, 6, NULL, 0, false);
	expect_completion(7, IBV_WC_REM_ACCESS_ERR, "WRITE with a remote access NAK");
	point("requester: a remote access NAK fails the WQE with REM_ACCESS_ERR");
	ibv_destroy_qp(qp);

	/* 11: a peer that never answers: 1 + retry_cnt (3) tries, then RETRY_EXC_ERR */
	sq = 0x200;
	qp = connect_qp(gidx, PEER_QPN2, 0x10, sq, 3, 2);
	c0 = counter("local_ack_timeout_err");
	post_send(qp, IBV_WR_SEND, mr, buf, 10, 8, 0, 0);
	int sent = 0;

	while (receive(&k, 3))
		sent += k.op == OP_SEND_ONLY && k.psn == sq;
	expect_completion(8, IBV_WC_RETRY_EXC_ERR, "a peer gone");
	EXPECT(sent == 4, "a peer gone: the SEND went out %d times, expected 4", sent);
	EXPECT(counter("local_ack_timeout_err") >= c0 + 3, "local_ack_timeout_err went from %lld to %lld",
	       c0, counter("local_ack_timeout_err"));
	point("requester: to a peer that never answers, a SEND goes out 1 + retry_cnt times, then fails with RETRY_EXC_ERR");
	ibv_destroy_qp(qp);
	ibv_dereg_mr(mr);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n1..24\n");
	crc_init();
	set_up();
	int gidx = find_gid();

	responder(gidx);
	requester(gidx);
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	close(raw_fd);
	teardown();
	diag("%d of %d failed", failed, num);
	return failed ? 1 : 0;
}
