// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic_wire_traffic: data-verifying RC traffic from another host into an ODP MR whose memory
 * goes offline, and whose DIMM goes away, while the traffic runs.
 *
 *   pfnic_wire_traffic server -d DEVICE -g GID_INDEX -p PORT [--unplug] [--churn SECONDS]
 *   pfnic_wire_traffic client -d DEVICE -g GID_INDEX -p PORT SERVER_ADDRESS
 *
 * The server registers an ODP MR of 16 MiB over memory it prefers on NUMA node 1 (with the
 * rig's --numa --dimm, the hot-pluggable DIMM alone), filled with a known pattern, and
 * gives the client its key over TCP. The client keeps a copy of what the MR must hold and
 * runs WRITEs and READs at unaligned offsets and lengths across pages, one after the other,
 * checking every byte it reads against its copy. Meanwhile the server takes each online
 * Movable block of node 1 offline (the MR's pages migrate to node 0, their translations
 * invalidated under the traffic) and, with --unplug, prints "ready-for-unplug" and waits for
 * the host to remove the DIMM. With --churn, before that, the blocks go offline and come
 * back online in turn for that long, so that the MR's pages keep moving under the traffic
 * (for a benchmark's measure: test/bench/wire.sh). Then the client stops, reads the whole
 * MR back, byte for byte, and says how it went.
 *
 * Both sides print "# " lines only, so that a TAP script can run them (test/guest/wire.sh);
 * the exit status says whether every check passed (0), one failed (1), or the command line
 * was bad (2). The server checks: every block went offline (and away), the MR's pages all
 * left node 1, its QP is still in RTS, and its device counted invalidations. The client:
 * every WQE succeeded, every byte read matched, the QP never left RTS.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "verbs-test.h"

#define MR_LEN		(16ul << 20)
#define XFER_MAX	(70u << 10)
#define MPOL_PREFERRED	1

static int bad;

/* ---- the TCP side channel: one line at a time -------------------------------------------- */

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (write(fd, line, n) != n)
		bail("the side channel: %s", strerror(errno));
}

/* The next line from @fd into @line, waiting at most @secs. Return: false if none came. */
static bool hear(int fd, char *line, size_t len, double secs)
{
	size_t n = 0;

	while (n + 1 < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, (int)(secs * 1000)) != 1 || read(fd, line + n, 1) != 1)
			return false;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = 0;
	return true;
}

/* ---- the QP -------------------------------------------------------------------------------- */

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_cq *cq;
static struct ibv_qp *qp;
static union ibv_gid my_gid;
static const char *dev;
static int gidx = -1;
static int port;
static bool unplug;
static double churn;

static void make_qp(void)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = NULL, .recv_cq = NULL, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1 },
	};

	ctx = open_device_named(dev);
	pd = ibv_alloc_pd(ctx);
	cq = ibv_create_cq(ctx, 8, NULL, NULL, 0);
	if (!pd || !cq)
		bail("PD or CQ: %s", strerror(errno));
	ia.send_cq = ia.recv_cq = cq;
	qp = ibv_create_qp(pd, &ia);
	if (!qp)
		bail("ibv_create_qp: %s", strerror(errno));
	if (ibv_query_gid(ctx, 1, gidx, &my_gid))
		bail("ibv_query_gid %d: %s", gidx, strerror(errno));
}

static void gid_hex(const union ibv_gid *g, char *out)
{
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", g->raw[i]);
}

static bool gid_parse(const char *s, union ibv_gid *g)
{
	for (int i = 0; i < 16; i++)
		if (sscanf(s + 2 * i, "%2hhx", &g->raw[i]) != 1)
			return false;
	return true;
}

/* Brings the QP to RTS towards the peer's @qpn at @gid, both sides starting at PSN @psn. */
static void connect_to(uint32_t qpn, const union ibv_gid *gid, uint32_t my_psn, uint32_t peer_psn)
{
	struct vt_rc c = {
		.port = 1, .dest_qpn = qpn, .rq_psn = peer_psn, .sq_psn = my_psn,
		.min_rnr_timer = 1, .rnr_retry = 7, .sgid_index = gidx, .dgid = *gid,
		.access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ,
	};
	int state = IBV_QPS_RESET;
	const char *step;

	if (vt_rc_bring_up(qp, &c, &state, IBV_QPS_RTS, &step))
		bail("QP to %s: %s", step, strerror(errno));
}

static enum ibv_qp_state qp_state(void)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;

	return ibv_query_qp(qp, &a, IBV_QP_STATE, &ia) ? IBV_QPS_UNKNOWN : a.qp_state;
}

/* ---- the server ---------------------------------------------------------------------------- */

static bool block_on_node(long block, int node)
{
	char path[128];

	snprintf(path, sizeof(path), VT_MEMDIR "/memory%ld/node%d", block, node);
	return access(path, F_OK) == 0;
}

/* How many of the @n pages at @p are on node @node (move_pages(2) asked where they are). */
static long pages_on(uint8_t *p, long n, int node)
{
	static void *pages[MR_LEN / 4096];
	static int status[MR_LEN / 4096];
	long on = 0;

	for (long i = 0; i < n; i++)
		pages[i] = p + i * 4096;
	if (syscall(SYS_move_pages, 0, n, pages, NULL, status, 0))
		bail("move_pages: %s", strerror(errno));
	for (long i = 0; i < n; i++)
		on += status[i] == node;
	return on;
}

static int server(void)
{
	uint8_t *buf = map_fresh(MR_LEN);
	unsigned long mask = 1ul << 1;
	long blocks[64], nb = 0, gone = 0;
	long long inv0;
	char line[256], hex[33];
	int lfd, fd, one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	/* preferred, not bound: offlining must be free to move the pages to node 0 */
	if (syscall(SYS_mbind, buf, MR_LEN, MPOL_PREFERRED, &mask, 64, 0))
		bail("mbind(MPOL_PREFERRED, node 1): %s", strerror(errno));
	for (size_t i = 0; i < MR_LEN; i++)
		buf[i] = vt_pat(7, i);
	long on1 = pages_on(buf, MR_LEN / 4096, 1);

	diag("server: %ld of %lu pages of the MR on node 1", on1, MR_LEN / 4096);
	EXPECT(on1 == (long)(MR_LEN / 4096), "server: only %ld pages of the MR on node 1", on1);
	for (long b = 0; b < 4096 && nb < 64; b++)
		if (block_on_node(b, 1) && !strcmp(vt_block_attr(b, "state"), "online"))
			blocks[nb++] = b;
	EXPECT(nb > 0, "server: node 1 has no online memory block");

	make_qp();
	struct ibv_mr *mr = ibv_reg_mr(pd, buf, MR_LEN, IBV_ACCESS_LOCAL_WRITE |
				       IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
				       IBV_ACCESS_ON_DEMAND);

	if (!mr)
		bail("ibv_reg_mr (ODP): %s", strerror(errno));
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1))
		bail("listen on port %d: %s", port, strerror(errno));
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		bail("accept: %s", strerror(errno));
	gid_hex(&my_gid, hex);
	say(fd, "%u %s %llu %u %lu\n", qp->qp_num, hex, (unsigned long long)(uintptr_t)buf,
	    mr->rkey, MR_LEN);
	uint32_t peer_qpn;
	char peer_hex[40];
	union ibv_gid peer_gid;

	if (!hear(fd, line, sizeof(line), 120) || sscanf(line, "%u %39s", &peer_qpn, peer_hex) != 2 ||
	    !gid_parse(peer_hex, &peer_gid))
		bail("server: no word from the client");
	connect_to(peer_qpn, &peer_gid, 0x300, 0x200);
	say(fd, "go\n");
	if (!hear(fd, line, sizeof(line), 300) || strcmp(line, "running"))
		bail("server: the client's traffic did not start");

	/*
	 * a steady rate first, for the client to measure the offlining's against: as long as the
	 * churn, if there is one (the rate climbs while the guests warm up)
	 */
	sleep(churn > 5 ? (unsigned int)churn : 5);
	inv0 = vt_device_counter(dev, "page_invalidations");
	say(fd, "offlining\n");
	for (double end = now() + churn; churn > 0 && now() < end;) {
		long moved = 0;

		for (long i = 0; i < nb && now() < end; i++) {
			int rv = vt_block_set(blocks[i], "offline", 120);

			if (!rv)
				rv = vt_block_set(blocks[i], "online_movable", 120);
			EXPECT(!rv, "server: memory%ld did not go offline and back: %s", blocks[i],
			       strerror(rv));
			if (rv)
				end = 0;
			moved++;
		}
		diag("server: %ld blocks of node 1 offline and back", moved);
	}
	for (long i = 0; i < nb; i++) {
		double t0 = now();
		int rv = vt_block_set(blocks[i], "offline", 120);

		diag("server: memory%ld offline: %s (%.1f s)", blocks[i], rv ? strerror(rv) : "ok",
		     now() - t0);
		EXPECT(!rv, "server: memory%ld did not go offline: %s", blocks[i], strerror(rv));
	}
	say(fd, "offlined\n");
	long left = pages_on(buf, MR_LEN / 4096, 1);

	EXPECT(left == 0, "server: %ld pages of the MR still on node 1", left);
	if (unplug) {
		printf("ready-for-unplug\n");
		fflush(stdout);
		for (double end = now() + 120; now() < end && gone < nb; usleep(200000)) {
			gone = 0;
			for (long i = 0; i < nb; i++)
				gone += !strcmp(vt_block_attr(blocks[i], "state"), "absent");
		}
		diag("server: %ld of %ld blocks of node 1 gone with the DIMM", gone, nb);
		EXPECT(gone == nb, "server: the DIMM's blocks did not go away");
		/* a little more traffic after the DIMM went */
		sleep(2);
	}
	long long inv = vt_device_counter(dev, "page_invalidations") - inv0;

	diag("server: %lld page invalidations, %lld RNR NAKs sent, %lld duplicate requests", inv,
	     vt_device_counter(dev, "send_rnr_nak"), vt_device_counter(dev, "duplicate_request"));
	EXPECT(inv > 0, "server: no page invalidations while the blocks went offline");
	say(fd, "stop\n");
	if (!hear(fd, line, sizeof(line), 600) || strncmp(line, "done", 4))
		bail("server: the client did not finish");
	diag("server: the client says: %s", line);
	EXPECT(!strcmp(line, "done ok"), "server: the client failed");
	EXPECT(qp_state() == IBV_QPS_RTS, "server: its QP is in state %d, not RTS", qp_state());
	close(fd);
	close(lfd);
	ibv_destroy_qp(qp);
	ibv_dereg_mr(mr);
	return bad;
}

/* ---- the client ---------------------------------------------------------------------------- */

/* One RDMA WRITE or READ of @len bytes between @local and the server's @raddr, waited for. */
static bool rdma(enum ibv_wr_opcode op, struct ibv_mr *mr, void *local, uint32_t len,
		 uint64_t raddr, uint32_t rkey)
{
	struct ibv_sge sge = { .addr = (uintptr_t)local, .length = len, .lkey = mr->lkey };
	struct ibv_send_wr wr = {
		.sg_list = &sge, .num_sge = 1, .opcode = op, .send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = raddr, .rkey = rkey },
	}, *badwr;
	struct ibv_wc wc;
	double end = now() + 120;
	int n = 0;

	if (ibv_post_send(qp, &wr, &badwr)) {
		diag("client: ibv_post_send: %s", strerror(errno));
		return false;
	}
	while (!(n = ibv_poll_cq(cq, 1, &wc)) && now() < end)
		usleep(200);
	if (n != 1 || wc.status != IBV_WC_SUCCESS) {
		diag("client: %s of %u bytes at +%#llx: %s", op == IBV_WR_RDMA_READ ? "READ" : "WRITE",
		     len, (unsigned long long)raddr, n == 1 ? ibv_wc_status_str(wc.status) :
		     "no completion in 120 s");
		return false;
	}
	return true;
}

static int client(const char *server_addr)
{
	uint8_t *shadow = map_fresh(MR_LEN), *out = map_fresh(XFER_MAX + 64);
	uint8_t *in = map_fresh(1ul << 20);
	uint64_t base, seed = 1;
	uint32_t rkey, sqpn;
	unsigned long len, rounds = 0, bytes = 0;
	char line[256], hex[40];
	union ibv_gid sgid;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = true, stop = false, said_running = false;

	if (inet_pton(AF_INET, server_addr, &a.sin_addr) != 1)
		bail("client: %s is no IPv4 address", server_addr);
	for (int i = 0; connect(fd, (struct sockaddr *)&a, sizeof(a)); i++) {
		if (i > 600)
			bail("client: cannot reach %s:%d: %s", server_addr, port, strerror(errno));
		close(fd);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		usleep(200000);
	}
	if (!hear(fd, line, sizeof(line), 120) ||
	    sscanf(line, "%u %39s %llu %u %lu", &sqpn, hex, (unsigned long long *)&base, &rkey,
		   &len) != 5 || !gid_parse(hex, &sgid) || len != MR_LEN)
		bail("client: the server's word is bad: %s", line);
	for (size_t i = 0; i < MR_LEN; i++)
		shadow[i] = vt_pat(7, i);
	make_qp();
	struct ibv_mr *omr = ibv_reg_mr(pd, out, XFER_MAX + 64, IBV_ACCESS_LOCAL_WRITE);
	struct ibv_mr *imr = ibv_reg_mr(pd, in, 1ul << 20, IBV_ACCESS_LOCAL_WRITE);

	if (!omr || !imr)
		bail("client: ibv_reg_mr: %s", strerror(errno));
	gid_hex(&my_gid, hex);
	say(fd, "%u %s\n", qp->qp_num, hex);
	connect_to(sqpn, &sgid, 0x200, 0x300);
	if (!hear(fd, line, sizeof(line), 120) || strcmp(line, "go"))
		bail("client: the server did not say go");

	/* the rate in each phase: steady, while the server's blocks go offline, after */
	double t0 = now(), mark[3] = { 0, 0, 0 };
	unsigned long at[3] = { 0, 0, 0 };
	int phase = -1;

	while (ok && !stop) {
		/* a WRITE of fresh bytes, then a READ elsewhere, both at unaligned places */
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t wlen = 1 + (seed >> 33) % XFER_MAX;
		uint64_t woff = (seed >> 7) % (MR_LEN - wlen);
		uint32_t rlen = 1 + (seed >> 17) % XFER_MAX;
		uint64_t roff = (seed >> 23) % (MR_LEN - rlen);

		for (uint32_t i = 0; i < wlen; i++)
			out[i] = vt_pat(seed, i);
		ok = rdma(IBV_WR_RDMA_WRITE, omr, out, wlen, base + woff, rkey);
		if (!ok)
			break;
		memcpy(shadow + woff, out, wlen);
		ok = rdma(IBV_WR_RDMA_READ, imr, in, rlen, base + roff, rkey);
		if (ok && memcmp(in, shadow + roff, rlen)) {
			for (uint32_t i = 0; i < rlen; i++)
				if (in[i] != shadow[roff + i]) {
					diag("client: READ of %u bytes at +%#llx: byte %u is %#x, expected %#x",
					     rlen, (unsigned long long)roff, i, in[i], shadow[roff + i]);
					break;
				}
			ok = false;
		}
		rounds++;
		bytes += wlen + rlen;
		if (rounds == 20 && !said_running) {
			say(fd, "running\n");
			said_running = true;
			phase = 0;
			mark[0] = now();
			at[0] = rounds;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (said_running && poll(&p, 1, 0) == 1 && hear(fd, line, sizeof(line), 1)) {
			stop = !strcmp(line, "stop");
			if ((!strcmp(line, "offlining") && phase == 0) ||
			    (!strcmp(line, "offlined") && phase == 1)) {
				phase++;
				mark[phase] = now();
				at[phase] = rounds;
			}
		}
	}
	double secs = now() - t0, end = now();

	diag("client: %lu rounds of a WRITE and a READ, %lu bytes in %.1f s (%.1f rounds/s)%s",
	     rounds, bytes, secs, rounds / secs, ok ? "" : "; stopped by a failure");
	if (phase == 2 && mark[1] > mark[0] && mark[2] > mark[1]) {
		double steady = (at[1] - at[0]) / (mark[1] - mark[0]);
		double during = (at[2] - at[1]) / (mark[2] - mark[1]);
		double after = (rounds - at[2]) / (end - mark[2]);

		diag("bench: rounds/s %.1f steady, %.1f while the server's blocks went offline (%.2f of steady, over %.1f s), %.1f after",
		     steady, during, steady > 0 ? during / steady : 0, mark[2] - mark[1], after);
	}
	/* the whole MR back, every byte */
	for (uint64_t off = 0; ok && off < MR_LEN; off += 1ul << 20) {
		ok = rdma(IBV_WR_RDMA_READ, imr, in, 1ul << 20, base + off, rkey);
		if (ok && memcmp(in, shadow + off, 1ul << 20)) {
			diag("client: the MR's MiB at +%#llx differs from what was written",
			     (unsigned long long)off);
			ok = false;
		}
	}
	if (ok)
		diag("client: all %lu MiB of the server's MR read back, every byte right", MR_LEN >> 20);
	EXPECT(ok, "client: the traffic failed");
	EXPECT(qp_state() == IBV_QPS_RTS, "client: its QP is in state %d, not RTS", qp_state());
	if (!stop && !hear(fd, line, sizeof(line), 600))
		diag("client: the server never said stop");
	say(fd, "done %s\n", bad ? "failed" : "ok");
	close(fd);
	ibv_destroy_qp(qp);
	return bad;
}

static bool take(int opt, const char *arg)
{
	if (opt == 'p')
		port = atoi(arg);
	else if (opt == 'u')
		unplug = true;
	else if (opt == 'c')
		churn = atof(arg);
	else
		return false;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option more[] = {
		{ "port", required_argument, NULL, 'p' }, { "unplug", no_argument, NULL, 'u' },
		{ "churn", required_argument, NULL, 'c' }, {},
	};
	const char *usage = "pfnic_wire_traffic server|client -d DEVICE -g GID_INDEX -p PORT [--unplug] [--churn SECONDS] [SERVER_ADDRESS]";
	const char *role = argc > 1 ? argv[1] : "";
	int rv;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(role, "server") && strcmp(role, "client")) {
		fprintf(stderr, "usage: %s\n", usage);
		return 2;
	}
	argv[1] = argv[0];
	argc--;
	argv++;
	/* vt_args() takes no positional argument: the client's address goes after them */
	const char *addr = NULL;

	if (!strcmp(role, "client") && argc > 1) {
		addr = argv[argc - 1];
		argc--;
	}
	vt_args(argc, argv, usage, &dev, &gidx, "p:uc:", more, take);
	if (gidx < 0 || !port || (!strcmp(role, "client") && !addr)) {
		fprintf(stderr, "usage: %s\n", usage);
		return 2;
	}
	rv = !strcmp(role, "server") ? server() : client(addr);
	diag("%s: %s", role, rv ? "FAILED" : "every check passed");
	return rv ? 1 : 0;
}
