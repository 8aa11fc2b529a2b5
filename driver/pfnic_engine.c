// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: the execution engine, the emulated device's data path. It runs each QP's send
 * queue in order on pfnic_wq: SEND (with immediate data or invalidation), RDMA_WRITE (with
 * immediate data), RDMA_READ and atomics between any two pfnic QPs of this kernel (RC in
 * loopback), datagrams on UD and GSI QPs.
 *
 * Data moves page by page through the MRs' translation tables. A missing translation on
 * an ODP MR raises a page fault: the QP stalls at that WQE (nothing is dropped and no
 * error is completed), the ODP core resolves the fault (pfnic_engine_fault), and the QP
 * resumes the WQE from the first byte it had not moved (qp->progress). A fault on the
 * responder's MR stalls the requester the same way, as an RNR NAK would on a wire.
 *
 * Kernel consumers' MRs (DMA and fast registration) name kernel memory, which the engine
 * reaches directly and never faults; IB_WR_REG_MR and IB_WR_LOCAL_INV run in send queue
 * order on the QP's own device.
 */
#include <linux/delay.h>
#include <linux/highmem.h>
#include <linux/ip.h>
#include <linux/moduleparam.h>
#include <linux/ipv6.h>
#include <net/checksum.h>
#include <net/ipv6.h>
#include <rdma/ib_cache.h>

#include "pfnic.h"
#include "pfnic_trace.h"

/*
 * Testing: the next this many device page faults end as if their range had kept changing
 * for the whole retry window, which real memory does only under heavy migration.
 */
static unsigned int inject_fault_busy;
module_param(inject_fault_busy, uint, 0600);
MODULE_PARM_DESC(inject_fault_busy,
		 "testing: the next N device page faults time out as if their range kept changing");

/*
 * Testing: every device page fault waits this long before it is resolved, so that a test
 * can act on a QP (reset it, destroy it) while its fault is in flight.
 */
static unsigned int inject_fault_delay_ms;
module_param(inject_fault_delay_ms, uint, 0600);
MODULE_PARM_DESC(inject_fault_delay_ms,
		 "testing: each device page fault waits this many milliseconds first");

/* Takes one injected -EBUSY, if any is left. */
static bool pfnic_fault_busy_injected(void)
{
	unsigned int n = READ_ONCE(inject_fault_busy), seen;

	while (n) {
		seen = cmpxchg(&inject_fault_busy, n, n - 1);
		if (seen == n)
			return true;
		n = seen;
	}
	return false;
}

/* How an attempt to run a WQE ended, when it did not end in a completion. */
enum pfnic_step {
	PFNIC_DONE = 0,
	PFNIC_FAULT,	/* a translation is missing: qp->fault_* says which */
	PFNIC_RNR,	/* the responder has no receive WQE */
	PFNIC_ABORT,	/* the QP was reset or moved to the error state mid-copy */
	PFNIC_NO_ACK,	/* no responder took the message (see pfnic_engine_run()) */
};

/*
 * Bytes a device page fault maps at most. A larger access stalls once per window; with the
 * WQE going on from where it stopped (qp->progress), each fault moves it forward however
 * fast its memory changes, and no fault has gigabytes to map before the engine sees any.
 */
#define PFNIC_FAULT_WINDOW	(2UL << 20)
/* Pages a copy moves between two looks at its QP's state, and between reschedules. */
#define PFNIC_COPY_BATCH	64
/* WQEs one run of a QP's engine completes before it queues itself again. */
#define PFNIC_ENGINE_BUDGET	64

/*
 * One side of a copy as the engine walks it. @mr NULL: @addr is kernel memory the engine
 * owns (a WQE's inline data, a GRH, an atomic's original value). A kernel MR (DMA, fast
 * registration): @addr is an iova, a kernel virtual address behind it. A user MR: @addr is
 * the user virtual address, reached through the translation table @xlt (kept, with its
 * reference, while the walk stays inside it).
 */
struct pfnic_span {
	struct pfnic_mr *mr;
	unsigned long addr;
	struct pfnic_xlt *xlt;
};

static struct pfnic_span pfnic_span_mr(struct pfnic_mr *mr, u64 iova)
{
	if (pfnic_mr_kernel(mr))
		return (struct pfnic_span){ .mr = mr, .addr = iova };
	return (struct pfnic_span){ .mr = mr, .addr = pfnic_mr_uva(mr, iova) };
}

static struct pfnic_span pfnic_span_raw(const void *buf)
{
	return (struct pfnic_span){ .addr = (unsigned long)buf };
}

/* Whether a span goes through translation tables (which may lack a page: a fault). */
static bool pfnic_span_user(const struct pfnic_span *sp)
{
	return sp->mr && !pfnic_mr_kernel(sp->mr);
}

static void pfnic_span_done(struct pfnic_span *sp)
{
	if (sp->xlt)
		pfnic_xlt_put(sp->xlt);
	sp->xlt = NULL;
}

/*
 * The table covering a user span's address, kept in @sp->xlt across the pages of one walk.
 * Return: false if an implicit MR has none there yet; true for any other span.
 */
static bool pfnic_span_table(struct pfnic_span *sp)
{
	struct pfnic_xlt *xlt = sp->xlt;

	if (!pfnic_span_user(sp))
		return true;
	if (xlt && sp->addr - xlt->va < xlt->npages << PAGE_SHIFT)
		return true;
	if (xlt)
		pfnic_xlt_put(xlt);
	sp->xlt = pfnic_xlt_get(sp->mr, sp->addr);
	return sp->xlt;
}

/* Bytes from a span's address on that the next access may reach at once (at most a page). */
static size_t pfnic_span_room(const struct pfnic_span *sp)
{
	size_t room = PAGE_SIZE - offset_in_page(sp->addr);

	if (sp->mr && sp->mr->kind == PFNIC_MR_FAST) {
		size_t fast;

		pfnic_mr_kva(sp->mr, sp->addr, &fast);
		room = min(room, fast);
	}
	return room;
}

/*
 * The kernel address of a span's bytes, for an access of at most pfnic_span_room() bytes;
 * for a user span, its table's lock is held. Return: NULL if a user span has no translation
 * there (for writing, if @write): the access must fault. Undone by pfnic_span_unmap().
 */
static void *pfnic_span_map(struct pfnic_span *sp, bool write)
{
	struct page *page;
	size_t room;

	if (!sp->mr)
		return (void *)sp->addr;
	if (pfnic_mr_kernel(sp->mr))
		return pfnic_mr_kva(sp->mr, sp->addr, &room);
	page = pfnic_xlt_page(sp->xlt, sp->addr, write);
	return page ? kmap_local_page(page) + offset_in_page(sp->addr) : NULL;
}

static void pfnic_span_unmap(const struct pfnic_span *sp, void *p)
{
	if (pfnic_span_user(sp))
		kunmap_local(p);
}

/* Locks the tables of the user spans among two (one, if both are in one table). */
static void pfnic_lock_two(struct pfnic_xlt *a, struct pfnic_xlt *b)
{
	if (!a || a == b) {
		swap(a, b);
		if (a)
			mutex_lock(&a->lock);
		return;
	}
	if (!b) {
		mutex_lock(&a->lock);
		return;
	}
	if (a > b)
		swap(a, b);
	mutex_lock(&a->lock);
	mutex_lock_nested(&b->lock, SINGLE_DEPTH_NESTING);
}

static void pfnic_unlock_two(struct pfnic_xlt *a, struct pfnic_xlt *b)
{
	if (a && b && a != b)
		mutex_unlock(&b->lock);
	else if (!a)
		a = b;
	if (a)
		mutex_unlock(&a->lock);
}

/*
 * Records the fault that stalls @qp: the pages @len bytes from @uva of @mr need, or the first
 * PFNIC_FAULT_WINDOW of them.
 */
static void pfnic_raise_fault(struct pfnic_qp *qp, struct pfnic_mr *mr, unsigned long uva,
			      u64 len, bool write, bool remote)
{
	kref_get(&mr->ref);
	qp->fault_mr = mr;
	qp->fault_va = uva;
	qp->fault_len = min_t(u64, len, PFNIC_FAULT_WINDOW - offset_in_page(uva));
	qp->fault_write = write;
	qp->fault_remote = remote;
}

/* The WQE the engine runs was taken away: its QP was reset, flushed or moved to error. */
static bool pfnic_wqe_taken_away(struct pfnic_qp *qp)
{
	return READ_ONCE(qp->attr.qp_state) == IB_QPS_ERR ||
	       READ_ONCE(qp->sq.gen) != qp->wqe_gen;
}

/**
 * pfnic_copy() - move bytes between two spans: MRs (through their translation tables, or
 *		  kernel memory for a kernel MR) or the engine's own buffers
 * @qp: the requesting QP, which a fault stalls
 * @dst: where to, already checked for bounds and rights
 * @src: where from, likewise
 * @len: bytes
 * @remote: which side is the responder's (for the fault record): bit 0 @dst, bit 1 @src
 * @moved: bytes moved are added to it, also when the copy stops early
 *
 * Only a user MR's span can lack a page; kernel memory is never faulted.
 *
 * Context: the engine (process context; no spinlock held, a UD delivery holds the
 * receiver's deliver_lock); reschedules every PFNIC_COPY_BATCH pages, where it also stops
 * if @qp's WQE was taken away.
 * Return: PFNIC_DONE; PFNIC_FAULT with the fault recorded in @qp (the bytes before the
 * missing page were moved); PFNIC_ABORT if @qp was reset or moved to the error state.
 */
static enum pfnic_step pfnic_copy(struct pfnic_qp *qp, struct pfnic_span dst,
				  struct pfnic_span src, u64 len, unsigned int remote, u64 *moved)
{
	enum pfnic_step step = PFNIC_DONE;
	unsigned int pages = 0;

	while (len) {
		if (!(++pages % PFNIC_COPY_BATCH)) {
			if (pfnic_wqe_taken_away(qp)) {
				step = PFNIC_ABORT;
				break;
			}
			cond_resched();
		}
		size_t n = min3((size_t)min_t(u64, len, PAGE_SIZE), pfnic_span_room(&dst),
				pfnic_span_room(&src));
		bool have_dst = pfnic_span_table(&dst);
		bool have_src = pfnic_span_table(&src);
		bool dst_missing = !have_dst;
		void *d = NULL, *s = NULL;

		if (have_dst && have_src) {
			pfnic_lock_two(dst.xlt, src.xlt);
			d = pfnic_span_map(&dst, true);
			s = d ? pfnic_span_map(&src, false) : NULL;
			if (s) {
				memmove(d, s, n);
				pfnic_span_unmap(&src, s);
			}
			if (d)
				pfnic_span_unmap(&dst, d);
			pfnic_unlock_two(dst.xlt, src.xlt);
			if (s) {
				dst.addr += n;
				src.addr += n;
				len -= n;
				*moved += n;
				continue;
			}
			dst_missing = !d;
		}
		if (dst_missing)
			pfnic_raise_fault(qp, dst.mr, dst.addr, len, true, remote & 1);
		else
			pfnic_raise_fault(qp, src.mr, src.addr, len, false, remote & 2);
		step = PFNIC_FAULT;
		break;
	}
	pfnic_span_done(&dst);
	pfnic_span_done(&src);
	return step;
}

/**
 * pfnic_mr_lookup() - the MR for an access, if the access is allowed
 * @key: lkey or rkey
 * @pd: the PD the MR must belong to
 * @iova: start of the access
 * @len: its length
 * @access: the rights it needs (IB_ACCESS_*; 0 for a local read)
 *
 * An rkey may name a bound memory window: the access must then lie inside the window and
 * have the window's rights, and it reaches the window's MR (the window's bounds are in
 * the MR's address space). A window's key is no lkey.
 *
 * Return: the MR with a reference, or NULL: no such key, another PD, out of bounds, or
 * a right the MR (or window) does not grant. A DMA MR's addresses are kernel virtual
 * addresses: one in the first page, which none is, is out of its bounds (a NULL pointer a
 * consumer mapped).
 */
static struct pfnic_mr *pfnic_mr_lookup(u32 key, struct ib_pd *pd, u64 iova, u64 len, int access)
{
	const int remote = IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC;
	struct pfnic_mr *mr = pfnic_mr_get(key);

	if (!mr)
		return NULL;
	if (mr->ibmr.pd != pd || !pfnic_mr_covers(mr, iova, len) ||
	    (mr->kind == PFNIC_MR_DMA && iova < PAGE_SIZE) ||
	    (mr->access & access) != access ||
	    (mr->kind == PFNIC_MR_WINDOW && !(access & remote))) {
		pfnic_mr_put(mr);
		return NULL;
	}
	if (mr->kind == PFNIC_MR_WINDOW)
		return pfnic_mw_resolve(mr);
	return mr;
}

/*
 * Changes the 8-byte word an atomic WQE names in @mr, with the CPU's own atomic
 * instructions, so that the change is atomic for the CPU and for every pfnic QP alike, and
 * puts the value it held in *@orig (an atomic write stores its value whole and returns
 * nothing). Return: PFNIC_DONE, or PFNIC_FAULT (recorded in @qp) with the word untouched.
 */
static enum pfnic_step pfnic_atomic_remote(struct pfnic_qp *qp, struct pfnic_mr *mr,
					   const struct pfnic_wqe *wqe, u64 *orig)
{
	struct pfnic_span sp = pfnic_span_mr(mr, wqe->remote_addr);
	u64 *word = NULL;

	/* the caller checked that the word is aligned in memory: it lies in one page */
	if (pfnic_span_table(&sp)) {
		pfnic_lock_two(sp.xlt, NULL);
		word = pfnic_span_map(&sp, true);
		if (word) {
			if (wqe->opcode == IB_WR_ATOMIC_CMP_AND_SWP)
				*orig = cmpxchg64(word, wqe->compare_add, wqe->swap);
			else if (wqe->opcode == PFNIC_WR_ATOMIC_WRITE)
				atomic64_set((atomic64_t *)word, wqe->compare_add);
			else
				*orig = atomic64_fetch_add(wqe->compare_add, (atomic64_t *)word);
			pfnic_span_unmap(&sp, word);
		}
		pfnic_unlock_two(sp.xlt, NULL);
	}
	pfnic_span_done(&sp);
	if (word)
		return PFNIC_DONE;
	pfnic_raise_fault(qp, mr, sp.addr, sizeof(u64), true, true);
	return PFNIC_FAULT;
}

/*
 * Writes @len bytes of @buf into the buffers of @sgl (@num_sge entries, MRs of @pd), for a WQE
 * of @qp, which a missing translation stalls (@remote: the buffers are the responder's).
 * Return: PFNIC_DONE (check @status: LOC_PROT_ERR for a bad key, rights or a list too
 * short), or PFNIC_FAULT.
 */
static enum pfnic_step pfnic_put_sgl(struct pfnic_qp *qp, const struct ib_sge *sgl,
				     u32 num_sge, struct ib_pd *pd, const void *buf, u32 len,
				     bool remote, enum ib_wc_status *status)
{
	enum pfnic_step step = PFNIC_DONE;
	u32 i, n;

	*status = IB_WC_SUCCESS;
	for (i = 0; len && step == PFNIC_DONE; i++, buf += n, len -= n) {
		struct pfnic_mr *mr;
		u64 moved = 0;

		n = i < num_sge ? min(len, sgl[i].length) : 0;
		mr = i < num_sge ? pfnic_mr_lookup(sgl[i].lkey, pd, sgl[i].addr, n,
						    IB_ACCESS_LOCAL_WRITE) : NULL;
		if (!mr) {
			*status = IB_WC_LOC_PROT_ERR;
			return PFNIC_DONE;
		}
		step = pfnic_copy(qp, pfnic_span_mr(mr, sgl[i].addr), pfnic_span_raw(buf), n,
				  remote ? 1 : 0, &moved);
		pfnic_mr_put(mr);
	}
	/* a copy this short never stops to look at the QP: only a fault ends it early */
	return step == PFNIC_ABORT ? PFNIC_DONE : step;
}

/**
 * pfnic_sg_copy() - move data between a scatter/gather list and one remote range, or
 *		     between two lists (SEND)
 * @qp: the requesting QP
 * @sgl: the local list, of @qp's PD; for a WQE with inline data, one entry whose address
 *	is that of the data in the engine's copy of the WQE (its key is not looked at)
 * @num_sge: its length
 * @peer_sgl: the responder's receive list, of @peer_pd; NULL for RDMA
 * @peer_num_sge: its length
 * @peer_pd: the PD of the responder's QP
 * @rkey: for RDMA: the responder's MR
 * @remote_addr: for RDMA: the address in it
 * @len: bytes to move
 * @to_peer: data flows from @qp to the peer (SEND, WRITE) rather than back (READ)
 * @status: set to the completion status on a protection failure
 * @done: bytes moved by earlier runs of this WQE, which this one skips; what it moves is
 *	added to it
 *
 * Return: PFNIC_DONE (check @status), PFNIC_FAULT or PFNIC_ABORT (see pfnic_copy()).
 */
static enum pfnic_step pfnic_sg_copy(struct pfnic_qp *qp, const struct ib_sge *sgl, u32 num_sge,
				     const struct ib_sge *peer_sgl, u32 peer_num_sge,
				     struct ib_pd *peer_pd, u32 rkey, u64 remote_addr, u64 len,
				     bool to_peer, enum ib_wc_status *status, u64 *done)
{
	u32 li = 0, pi = 0;
	u64 loff = 0, poff = 0, skip = *done;
	enum pfnic_step step = PFNIC_DONE;

	*status = IB_WC_SUCCESS;
	while (len) {
		const struct ib_sge *l, *p = NULL;
		struct pfnic_mr *lmr, *pmr;
		struct pfnic_span lsp, psp;
		u64 n;

		while (li < num_sge && loff == sgl[li].length) {
			li++;
			loff = 0;
		}
		if (peer_sgl) {
			while (pi < peer_num_sge && poff == peer_sgl[pi].length) {
				pi++;
				poff = 0;
			}
			if (pi == peer_num_sge) {
				*status = IB_WC_REM_INV_REQ_ERR;
				return PFNIC_DONE;
			}
			p = &peer_sgl[pi];
		}
		if (li == num_sge) {
			*status = IB_WC_LOC_LEN_ERR;
			return PFNIC_DONE;
		}
		l = &sgl[li];
		n = min_t(u64, len, l->length - loff);
		if (p)
			n = min_t(u64, n, p->length - poff);
		if (skip) {
			/* moved by an earlier run, checked then */
			n = min(n, skip);
			skip -= n;
			goto next;
		}

		if (qp->cur->send_flags & IB_SEND_INLINE) {
			lmr = NULL;
		} else {
			lmr = pfnic_mr_lookup(l->lkey, qp->ibqp.pd, l->addr + loff, n,
					      to_peer ? 0 : IB_ACCESS_LOCAL_WRITE);
			if (!lmr) {
				*status = IB_WC_LOC_PROT_ERR;
				return PFNIC_DONE;
			}
		}
		if (p)
			pmr = pfnic_mr_lookup(p->lkey, peer_pd, p->addr + poff, n,
					      IB_ACCESS_LOCAL_WRITE);
		else
			pmr = pfnic_mr_lookup(rkey, peer_pd, remote_addr, n, to_peer ?
					      IB_ACCESS_REMOTE_WRITE : IB_ACCESS_REMOTE_READ);
		if (!pmr) {
			if (lmr)
				pfnic_mr_put(lmr);
			*status = p ? IB_WC_REM_OP_ERR : IB_WC_REM_ACCESS_ERR;
			return PFNIC_DONE;
		}
		lsp = lmr ? pfnic_span_mr(lmr, l->addr + loff) :
			    pfnic_span_raw((void *)(uintptr_t)(l->addr + loff));
		psp = pfnic_span_mr(pmr, p ? p->addr + poff : remote_addr);
		if (to_peer)
			step = pfnic_copy(qp, psp, lsp, n, 1, done);
		else
			step = pfnic_copy(qp, lsp, psp, n, 2, done);
		pfnic_mr_put(pmr);
		if (lmr)
			pfnic_mr_put(lmr);
		if (step != PFNIC_DONE)
			return step;
next:
		loff += n;
		if (p)
			poff += n;
		else
			remote_addr += n;
		len -= n;
	}
	return PFNIC_DONE;
}

/* The PD of the MRs a QP's receive buffers must be in: its SRQ's, if it has one. */
static struct ib_pd *pfnic_recv_pd(struct pfnic_qp *qp)
{
	return qp->srq ? qp->srq->ibsrq.pd : qp->ibqp.pd;
}

/*
 * The PD of the MRs a responder's RDMA and atomics reach: its own, or for an XRC TGT QP
 * (which has none) that of the XRC SRQ the message names.
 */
static struct ib_pd *pfnic_rdma_pd(struct pfnic_qp *qp)
{
	return pfnic_qp_xrc_tgt(qp) ? qp->srq->ibsrq.pd : qp->ibqp.pd;
}

/*
 * CMP_SWP and FETCH_ADD: the responder's word changes once (qp->atomic_done), then its
 * original value goes to the local buffer, which may fault in turn; the WQE then runs again
 * and finds the change made, as a responder answers a repeated atomic request from its
 * record of the first. ATOMIC_WRITE stores the WQE's value into the word whole, and is done.
 * Return: PFNIC_DONE (check @status) or PFNIC_FAULT.
 */
static enum pfnic_step pfnic_atomic(struct pfnic_qp *qp, struct pfnic_qp *peer,
				    enum ib_wc_status *status)
{
	struct pfnic_wqe *wqe = qp->cur;
	struct pfnic_mr *mr;
	enum pfnic_step step;

	if (!qp->atomic_done) {
		/* an atomic's word is naturally aligned: anything else is an invalid request */
		if (wqe->remote_addr & (sizeof(u64) - 1)) {
			*status = IB_WC_REM_INV_REQ_ERR;
			return PFNIC_DONE;
		}
		/* an atomic write is a write, of one word at once: it needs write rights */
		mr = pfnic_mr_lookup(wqe->rkey, pfnic_rdma_pd(peer), wqe->remote_addr, sizeof(u64),
				     wqe->opcode == PFNIC_WR_ATOMIC_WRITE ? IB_ACCESS_REMOTE_WRITE :
				     IB_ACCESS_REMOTE_ATOMIC);
		if (!mr) {
			*status = IB_WC_REM_ACCESS_ERR;
			return PFNIC_DONE;
		}
		/*
		 * ... in memory too: an iova aligned in an MR whose iova and address differ
		 * in their low bits names a word that is not, which may cross into the next
		 * page; the CPU's atomics would reach past the page mapped for it.
		 */
		if (pfnic_mr_uva(mr, wqe->remote_addr) & (sizeof(u64) - 1)) {
			pfnic_mr_put(mr);
			*status = IB_WC_REM_INV_REQ_ERR;
			return PFNIC_DONE;
		}
		step = pfnic_atomic_remote(qp, mr, wqe, &qp->atomic_orig);
		pfnic_mr_put(mr);
		if (step != PFNIC_DONE)
			return step;
		qp->atomic_done = true;
	}
	if (wqe->opcode == PFNIC_WR_ATOMIC_WRITE) {
		*status = IB_WC_SUCCESS;
		return PFNIC_DONE;
	}
	return pfnic_put_sgl(qp, &wqe->sge[0], 1, qp->ibqp.pd, &qp->atomic_orig, sizeof(u64), false,
			     status);
}

/* Whether two QPs' devices are in one network namespace, where their GIDs reach each other. */
static bool pfnic_same_net(struct pfnic_qp *a, struct pfnic_qp *b)
{
	return net_eq(dev_net(a->pfnic->ndev), dev_net(b->pfnic->ndev));
}

/*
 * The connected peer of an RC, UC or XRC INI QP, if it is there and connected back to us: a
 * QP of the same type (an XRC TGT QP for an INI QP), the one each was connected to (its
 * incarnation, not just its number), in the same network namespace.
 */
static struct pfnic_qp *pfnic_peer(struct pfnic_qp *qp)
{
	struct pfnic_qp *peer = pfnic_qp_get(qp->attr.dest_qp_num);
	u64 bound = READ_ONCE(qp->peer_incarnation), back;
	const struct ib_gid_attr *gid;

	if (!peer)
		return NULL;
	back = READ_ONCE(peer->peer_incarnation);
	if (peer->ibqp.qp_type != (qp->ibqp.qp_type == IB_QPT_XRC_INI ? IB_QPT_XRC_TGT :
				   qp->ibqp.qp_type) ||
	    (bound && bound != peer->incarnation) ||
	    (back && back != qp->incarnation) || !pfnic_same_net(qp, peer)) {
		pfnic_qp_put(peer);
		return NULL;
	}
	/* the destination GID must be one of the peer device's */
	gid = rdma_find_gid_by_port(&peer->pfnic->ibdev, &qp->attr.ah_attr.grh.dgid,
				    IB_GID_TYPE_ROCE_UDP_ENCAP, PFNIC_PORT, NULL);
	if (IS_ERR(gid) || READ_ONCE(peer->attr.dest_qp_num) != qp->ibqp.qp_num) {
		if (!IS_ERR(gid))
			rdma_put_gid_attr(gid);
		pfnic_qp_put(peer);
		return NULL;
	}
	rdma_put_gid_attr(gid);
	return peer;
}

static bool pfnic_can_receive(enum ib_qp_state state)
{
	return state == IB_QPS_RTR || state == IB_QPS_RTS || state == IB_QPS_SQD;
}

/*
 * The local list of the WQE the engine runs (qp->cur): its SGEs, or for inline data one
 * entry over the data (pfnic_sg_copy() reads it without a key). Return: the entries.
 */
static u32 pfnic_local_sgl(struct pfnic_qp *qp, struct ib_sge *one, const struct ib_sge **sgl)
{
	struct pfnic_wqe *wqe = qp->cur;

	if (!(wqe->send_flags & IB_SEND_INLINE)) {
		*sgl = wqe->sge;
		return wqe->num_sge;
	}
	one->addr = (uintptr_t)pfnic_wqe_inline(wqe);
	one->length = wqe->total_len;
	one->lkey = 0;
	*sgl = one;
	return 1;
}

/*
 * The requester's own side, checked before anything reaches the responder, as an HCA reads
 * local memory first: every SGE's key, PD, bounds and rights.
 */
static enum ib_wc_status pfnic_check_local(struct pfnic_qp *qp, const struct pfnic_wqe *wqe)
{
	bool writes = wqe->opcode == IB_WR_RDMA_READ || wqe->opcode == IB_WR_ATOMIC_CMP_AND_SWP ||
		      wqe->opcode == IB_WR_ATOMIC_FETCH_AND_ADD;
	int access = writes ? IB_ACCESS_LOCAL_WRITE : 0;
	struct pfnic_mr *mr;
	u32 i;

	/* inline data is in the WQE itself */
	if (wqe->send_flags & IB_SEND_INLINE)
		return IB_WC_SUCCESS;
	for (i = 0; i < wqe->num_sge; i++) {
		if (!wqe->sge[i].length)
			continue;
		mr = pfnic_mr_lookup(wqe->sge[i].lkey, qp->ibqp.pd, wqe->sge[i].addr,
				     wqe->sge[i].length, access);
		if (!mr)
			return IB_WC_LOC_PROT_ERR;
		pfnic_mr_put(mr);
	}
	return IB_WC_SUCCESS;
}

/*
 * The receive WQE a message to @peer lands in, copied to @rwqe, and the generation of
 * @peer's receive queue to check it against on delivery. From an SRQ, the message keeps
 * the WQE it took until it is delivered; *@limit is set when that took the SRQ below its
 * armed limit (the caller reports it, pfnic_srq_limit_event(), after unlocking). The WQE is
 * the caller's to fill (@peer->rq_busy) until pfnic_respond() or pfnic_recv_release(). Caller
 * holds @peer->lock. Return: false if there is none.
 */
static bool pfnic_take_recv(struct pfnic_qp *peer, struct pfnic_wqe *rwqe, u32 *rgen,
			    bool *limit)
{
	lockdep_assert_held(&peer->lock);
	if (peer->srq) {
		if (!peer->srq_held && !pfnic_srq_take(peer->srq, peer->srq_wqe, limit))
			return false;
		peer->srq_held = true;
		memcpy(rwqe, peer->srq_wqe, peer->srq->rq.stride);
	} else {
		if (!pfnic_wq_count(&peer->rq))
			return false;
		pfnic_wq_fetch_recv(&peer->rq, rwqe);
	}
	*rgen = peer->rq.gen;
	peer->rq_busy++;
	return true;
}

/*
 * Lets go of the receive WQE of @peer that pfnic_take_recv() gave a message that did not
 * consume it (a fault, a copy stopped because the requester's WQE was taken away, an error
 * of the requester's own): it stays at the head. If a flush came meanwhile, it left that WQE
 * to us: it is flushed now.
 */
static void pfnic_recv_release(struct pfnic_qp *peer)
{
	bool flush;

	spin_lock_irq(&peer->lock);
	peer->rq_busy--;
	flush = peer->attr.qp_state == IB_QPS_ERR;
	spin_unlock_irq(&peer->lock);
	if (flush)
		pfnic_qp_flush(peer);
}

/*
 * An XRC INI QP's message: the XRC SRQ it names, in its TGT QP's domain, becomes the TGT
 * QP's for the message (@peer->srq, with a reference). A message that held a WQE of it and
 * stalled (srq_held) has it already. Return: false if no such XRC SRQ is there.
 */
static bool pfnic_xrc_enter(struct pfnic_qp *peer, u32 srqn)
{
	struct pfnic_srq *srq = pfnic_xrc_srq_get(srqn, peer->ibqp.xrcd);
	bool ok;

	if (!srq)
		return false;
	spin_lock_irq(&peer->lock);
	ok = !peer->srq || peer->srq == srq;
	if (!peer->srq) {
		peer->srq = srq;
		srq = NULL;
	}
	spin_unlock_irq(&peer->lock);
	if (srq)
		pfnic_srq_put(srq);
	return ok;
}

/* The message is done with its XRC SRQ, unless it holds a WQE of it (it will run again). */
static void pfnic_xrc_leave(struct pfnic_qp *peer)
{
	struct pfnic_srq *srq = NULL;

	spin_lock_irq(&peer->lock);
	if (!peer->srq_held) {
		srq = peer->srq;
		peer->srq = NULL;
	}
	spin_unlock_irq(&peer->lock);
	if (srq)
		pfnic_srq_put(srq);
}

/*
 * The responder's side of a WQE that ran to its end: deliver the message (consume and
 * complete the receive WQE, with @peer_status), and move the responder to the error state
 * when it found an error itself (a bad receive buffer, a remote access violation, or a
 * request it cannot carry out). The state changes before the completion is seen. A receive
 * WQE taken for a message (@consumes) is let go of here, delivered or not.
 */
static enum pfnic_step pfnic_respond(struct pfnic_qp *qp, struct pfnic_qp *peer, u32 rgen,
				     bool consumes, enum ib_wc_status *status,
				     enum ib_wc_status peer_status)
{
	struct pfnic_wqe *wqe = qp->cur, *rwqe = qp->rcur;
	bool ud = !pfnic_qp_connected(qp);
	bool acked = qp->ibqp.qp_type == IB_QPT_RC;
	bool access_error = *status == IB_WC_REM_ACCESS_ERR;
	/* a request the responder cannot carry out (a misaligned atomic) */
	bool request_error = *status == IB_WC_REM_INV_REQ_ERR && !consumes;
	bool deliver = consumes && (*status == IB_WC_SUCCESS || peer_status != IB_WC_SUCCESS);
	bool error = access_error || request_error || peer_status != IB_WC_SUCCESS;
	unsigned int signal = 0;
	struct ib_wc wc = {};

	if (!deliver && !error) {
		if (consumes)
			pfnic_recv_release(peer);
		return PFNIC_DONE;
	}
	spin_lock_irq(&peer->lock);
	if (consumes)
		peer->rq_busy--;
	if (deliver && (peer->rq.gen != rgen || peer->attr.qp_state == IB_QPS_ERR)) {
		/*
		 * The responder was reset (its WQEs went without completions) or moved to the
		 * error state (its flush left the WQE being filled to us) meanwhile: the
		 * message found no one.
		 */
		error = peer->attr.qp_state == IB_QPS_ERR;
		spin_unlock_irq(&peer->lock);
		if (error)
			pfnic_qp_flush(peer);
		/* a datagram or a UC message is simply lost; an RC requester hears no ACK */
		return acked ? PFNIC_NO_ACK : PFNIC_DONE;
	}
	if (deliver) {
		wc.wr_id = rwqe->wr_id;
		wc.status = peer_status;
		wc.opcode = wqe->opcode == IB_WR_RDMA_WRITE_WITH_IMM ?
			    IB_WC_RECV_RDMA_WITH_IMM : IB_WC_RECV;
		wc.byte_len = wqe->total_len;
		wc.qp = &peer->ibqp;
		wc.src_qp = qp->ibqp.qp_num;
		wc.port_num = PFNIC_PORT;
		if (ud) {
			/* the GRH came first */
			wc.byte_len += PFNIC_GRH_LEN;
			wc.wc_flags |= IB_WC_GRH;
		}
		if (wqe->opcode == IB_WR_SEND_WITH_INV) {
			wc.wc_flags |= IB_WC_WITH_INVALIDATE;
			wc.ex.invalidate_rkey = wqe->invalidate_rkey;
		} else if (wqe->opcode != IB_WR_SEND) {
			wc.wc_flags |= IB_WC_WITH_IMM;
			wc.ex.imm_data = wqe->imm_data;
		}
		if (ud) {
			bool v4 = ipv6_addr_v4mapped((struct in6_addr *)wqe->dgid.raw);

			/* RoCE v2: the GRH slot holds the IP header of this type */
			wc.wc_flags |= IB_WC_WITH_NETWORK_HDR_TYPE;
			wc.network_hdr_type = v4 ? RDMA_NETWORK_IPV4 : RDMA_NETWORK_IPV6;
			wc.pkey_index = 0;
			/*
			 * RoCE carries no service level. mlx5 reports the packet's L3 type in
			 * the SL bits of a UD receive instead (2: IPv4, 1: IPv6), and UCX's UD
			 * transport reads it there to find the destination address in the
			 * GRH slot (without it UCX drops every datagram, as it does on rxe).
			 */
			wc.sl = v4 ? 2 : 1;
		}
		/*
		 * The receive WQE goes and the completion is queued under the responder's
		 * lock: a flush, or the end of the SRQ's WQEs (LAST_WQE_REACHED), never
		 * overtakes this completion. A user ring's slot is given back first, so that
		 * a process that polls the completion and posts a receive at once finds it.
		 */
		if (peer->srq)
			peer->srq_held = false;
		else
			pfnic_wq_pop(&peer->rq);
		signal = pfnic_cq_push(pfnic_recv_cq(peer), &wc,
				       wqe->send_flags & IB_SEND_SOLICITED);
	}
	if (error)
		pfnic_qp_set_state(peer, IB_QPS_ERR);
	spin_unlock_irq(&peer->lock);
	if (deliver)
		pfnic_cq_signal(pfnic_recv_cq(peer), signal);
	if (!error)
		return PFNIC_DONE;
	if (access_error)
		pfnic_qp_event(peer, IB_EVENT_QP_ACCESS_ERR);
	else if (request_error)
		pfnic_qp_event(peer, IB_EVENT_QP_REQ_ERR);
	pfnic_qp_flush(peer);
	return PFNIC_DONE;
}

/**
 * pfnic_execute() - run qp->cur against the connected @peer
 * @qp: the requester
 * @peer: the responder
 * @failed: a page fault of this WQE could not be resolved (qp->fault_remote says whose)
 * @status: the requester's completion status, when the WQE ran to its end
 *
 * A UC message, which no ACK answers, is lost where an RC one would be retried or failed by
 * its responder: to a peer not receiving, with no receive WQE, without the rights or the key
 * it needs, or too long for its receive WQE. Its requester completes it with success; its
 * responder sees nothing of it, but for an error of its own receive WQE (which fails that WQE
 * and moves it to the error state, as on RC).
 *
 * Return: PFNIC_DONE with *status (the responder's side already done: see
 * pfnic_respond()), PFNIC_FAULT (the fault recorded in @qp), PFNIC_ABORT, PFNIC_RNR or
 * PFNIC_NO_ACK (RC: @peer cannot receive, or was reset or moved to the error state while the
 * message was delivered).
 */
static enum pfnic_step pfnic_execute(struct pfnic_qp *qp, struct pfnic_qp *peer, bool failed,
				     enum ib_wc_status *status)
{
	struct pfnic_wqe *wqe = qp->cur, *rwqe = qp->rcur;
	bool sends = wqe->opcode == IB_WR_SEND || wqe->opcode == IB_WR_SEND_WITH_IMM ||
		     wqe->opcode == IB_WR_SEND_WITH_INV;
	bool consumes = sends || wqe->opcode == IB_WR_RDMA_WRITE_WITH_IMM;
	bool atomic = wqe->opcode == IB_WR_ATOMIC_CMP_AND_SWP ||
		      wqe->opcode == IB_WR_ATOMIC_FETCH_AND_ADD ||
		      wqe->opcode == PFNIC_WR_ATOMIC_WRITE;
	int rights = wqe->opcode == IB_WR_RDMA_READ ? IB_ACCESS_REMOTE_READ :
		     atomic && wqe->opcode != PFNIC_WR_ATOMIC_WRITE ? IB_ACCESS_REMOTE_ATOMIC :
		     IB_ACCESS_REMOTE_WRITE;
	enum ib_wc_status peer_status = IB_WC_SUCCESS;
	enum pfnic_step step = PFNIC_DONE;
	bool uc = qp->ibqp.qp_type == IB_QPT_UC;
	const struct ib_sge *lsgl;
	struct ib_sge one;
	bool limit = false;
	u32 rgen = 0, lnum;

	lnum = pfnic_local_sgl(qp, &one, &lsgl);
	*status = pfnic_check_local(qp, wqe);
	if (*status == IB_WC_SUCCESS && failed && !qp->fault_remote)
		*status = IB_WC_LOC_PROT_ERR;
	if (*status != IB_WC_SUCCESS)
		return PFNIC_DONE;

	spin_lock_irq(&peer->lock);
	if (!pfnic_can_receive(peer->attr.qp_state)) {
		spin_unlock_irq(&peer->lock);
		return uc ? PFNIC_DONE : PFNIC_NO_ACK;
	}
	if (!sends && !(peer->attr.qp_access_flags & rights)) {
		spin_unlock_irq(&peer->lock);
		if (uc)
			return PFNIC_DONE;
		*status = IB_WC_REM_ACCESS_ERR;
		pfnic_respond(qp, peer, 0, false, status, IB_WC_SUCCESS);
		return PFNIC_DONE;
	}
	if (consumes && !pfnic_take_recv(peer, rwqe, &rgen, &limit)) {
		qp->rnr_timer = peer->attr.min_rnr_timer;
		spin_unlock_irq(&peer->lock);
		return uc ? PFNIC_DONE : PFNIC_RNR;
	}
	spin_unlock_irq(&peer->lock);
	if (limit)
		pfnic_srq_limit_event(peer->srq);
	/* a message goes on into the receive WQE it started in, or starts again */
	if (consumes && rgen != qp->progress_rgen) {
		qp->progress = 0;
		qp->progress_rgen = rgen;
	}

	if (failed) {
		/* the responder's memory could not be faulted in */
		*status = sends ? IB_WC_REM_OP_ERR : IB_WC_REM_ACCESS_ERR;
		if (sends)
			peer_status = IB_WC_LOC_PROT_ERR;
	} else if (sends && wqe->total_len > rwqe->total_len) {
		*status = IB_WC_REM_INV_REQ_ERR;
		peer_status = IB_WC_LOC_LEN_ERR;
	} else if (atomic) {
		step = pfnic_atomic(qp, peer, status);
	} else if (sends) {
		step = pfnic_sg_copy(qp, lsgl, lnum, rwqe->sge, rwqe->num_sge,
				     pfnic_recv_pd(peer), 0, 0, wqe->total_len, true, status,
				     &qp->progress);
		if (*status == IB_WC_REM_OP_ERR)
			peer_status = IB_WC_LOC_PROT_ERR;
	} else {
		step = pfnic_sg_copy(qp, lsgl, lnum, NULL, 0, pfnic_rdma_pd(peer), wqe->rkey,
				     wqe->remote_addr, wqe->total_len,
				     wqe->opcode != IB_WR_RDMA_READ, status, &qp->progress);
	}
	if (step != PFNIC_DONE) {
		if (consumes)
			pfnic_recv_release(peer);
		return step;
	}
	/*
	 * SEND_WITH_INV: the responder invalidates the MR the rkey names before the receive
	 * completion says so; a key it cannot invalidate is an invalid request (as rxe).
	 */
	if (wqe->opcode == IB_WR_SEND_WITH_INV && *status == IB_WC_SUCCESS &&
	    peer_status == IB_WC_SUCCESS &&
	    pfnic_mr_invalidate(wqe->invalidate_rkey, pfnic_recv_pd(peer))) {
		*status = IB_WC_REM_INV_REQ_ERR;
		peer_status = IB_WC_REM_INV_REQ_ERR;
	}
	if (uc && (*status == IB_WC_REM_ACCESS_ERR || *status == IB_WC_REM_INV_REQ_ERR)) {
		/* a bad key or range, a receive WQE too short: the message is dropped */
		if (consumes)
			pfnic_recv_release(peer);
		*status = IB_WC_SUCCESS;
		return PFNIC_DONE;
	}
	step = pfnic_respond(qp, peer, rgen, consumes, status, peer_status);
	/* the responder's own receive WQE was bad: it failed, and its requester hears nothing */
	if (uc && *status == IB_WC_REM_OP_ERR)
		*status = IB_WC_SUCCESS;
	return step;
}

/*
 * The GRH slot of a UD receive, as RoCE v2 fills it: with IPv4 GIDs the IPv4 header in its
 * last 20 bytes (after 20 zero bytes), else an IPv6 header of the two GIDs. ibv_wc users
 * that build a reply's address from it (ibv_init_ah_from_wc) read exactly these.
 */
static void pfnic_ud_grh(u8 *grh, const union ib_gid *sgid, const union ib_gid *dgid, u32 len)
{
	/* UDP, BTH, DETH and ICRC around the payload */
	u32 paylen = 8 + 12 + 8 + len + 4;

	memset(grh, 0, PFNIC_GRH_LEN);
	if (ipv6_addr_v4mapped((const struct in6_addr *)sgid->raw) &&
	    ipv6_addr_v4mapped((const struct in6_addr *)dgid->raw)) {
		struct iphdr *ip = (struct iphdr *)(grh + 20);

		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons(20 + paylen);
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP;
		memcpy(&ip->saddr, sgid->raw + 12, 4);
		memcpy(&ip->daddr, dgid->raw + 12, 4);
		ip->check = ip_fast_csum(ip, ip->ihl);
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)grh;

		ip6->version = 6;
		ip6->payload_len = htons(paylen);
		ip6->nexthdr = IPPROTO_UDP;
		ip6->hop_limit = 64;
		memcpy(&ip6->saddr, sgid->raw, 16);
		memcpy(&ip6->daddr, dgid->raw, 16);
	}
}

/* @src's SGEs without their first @skip bytes, into @dst. Return: how many there are. */
static u32 pfnic_sge_skip(struct ib_sge *dst, const struct ib_sge *src, u32 num_sge, u32 skip)
{
	u32 i, n = 0;

	for (i = 0; i < num_sge; i++) {
		u32 cut = min(skip, src[i].length);

		skip -= cut;
		if (src[i].length == cut)
			continue;
		dst[n] = src[i];
		dst[n].addr += cut;
		dst[n].length -= cut;
		n++;
	}
	return n;
}

/*
 * Delivers the datagram of qp->cur to @peer, a UD (or GSI) QP the datagram is addressed to,
 * which the caller holds a reference to. Return: PFNIC_DONE (delivered, or lost: no receive
 * WQE, another Q_Key, a receiver not receiving; *status is the sender's), PFNIC_FAULT (the
 * fault recorded in @qp) or PFNIC_ABORT.
 */
static enum pfnic_step pfnic_ud_deliver(struct pfnic_qp *qp, struct pfnic_qp *peer, bool failed,
					enum ib_wc_status *status)
{
	struct pfnic_wqe *wqe = qp->cur, *rwqe = qp->rcur;
	enum ib_wc_status peer_status = IB_WC_SUCCESS, put;
	struct ib_sge rsge[PFNIC_MAX_SGE], one;
	const struct ib_sge *lsgl;
	const struct ib_gid_attr *gid;
	u8 grh[PFNIC_GRH_LEN];
	enum pfnic_step step;
	bool limit = false;
	u32 qkey, rgen, n, lnum;

	/* a Q_Key with its high bit set means the sender's own */
	qkey = wqe->remote_qkey & BIT(31) ? qp->attr.qkey : wqe->remote_qkey;

	/* one sender at a time from taking the receive WQE to delivering into it */
	mutex_lock(&peer->deliver_lock);
	spin_lock_irq(&peer->lock);
	if (!pfnic_can_receive(peer->attr.qp_state) || qkey != peer->attr.qkey ||
	    !pfnic_take_recv(peer, rwqe, &rgen, &limit)) {
		spin_unlock_irq(&peer->lock);
		goto unlock;
	}
	spin_unlock_irq(&peer->lock);
	if (limit)
		pfnic_srq_limit_event(peer->srq);

	if (failed) {
		/* the receive buffer could not be faulted in */
		peer_status = IB_WC_LOC_PROT_ERR;
		goto respond;
	}
	if (rwqe->total_len < PFNIC_GRH_LEN + wqe->total_len) {
		peer_status = IB_WC_LOC_LEN_ERR;
		goto respond;
	}
	gid = rdma_get_gid_attr(&qp->pfnic->ibdev, PFNIC_PORT, wqe->sgid_index);
	if (IS_ERR(gid)) {
		/* the source GID went away with its address: nothing can be sent from it */
		*status = IB_WC_LOC_QP_OP_ERR;
		pfnic_recv_release(peer);
		goto unlock;
	}
	pfnic_ud_grh(grh, &gid->gid, &wqe->dgid, wqe->total_len);
	rdma_put_gid_attr(gid);
	step = pfnic_put_sgl(qp, rwqe->sge, rwqe->num_sge, pfnic_recv_pd(peer), grh,
			     PFNIC_GRH_LEN, true, &put);
	if (step == PFNIC_DONE && put == IB_WC_SUCCESS) {
		/* a datagram is one packet: after a fault it is sent again whole */
		u64 moved = 0;

		n = pfnic_sge_skip(rsge, rwqe->sge, rwqe->num_sge, PFNIC_GRH_LEN);
		lnum = pfnic_local_sgl(qp, &one, &lsgl);
		step = pfnic_sg_copy(qp, lsgl, lnum, rsge, n, pfnic_recv_pd(peer), 0, 0,
				     wqe->total_len, true, status, &moved);
		/* the receiver's buffer is the receiver's error; the sender's is the sender's */
		if (*status == IB_WC_REM_OP_ERR || *status == IB_WC_REM_INV_REQ_ERR) {
			*status = IB_WC_SUCCESS;
			peer_status = IB_WC_LOC_PROT_ERR;
		}
	} else if (step == PFNIC_DONE) {
		peer_status = IB_WC_LOC_PROT_ERR;
	}
	if (step != PFNIC_DONE) {
		/* the WQE stays at the head: whoever delivers next (maybe us again) fills it */
		pfnic_recv_release(peer);
		mutex_unlock(&peer->deliver_lock);
		return step;
	}
respond:
	/* delivered unless the sender's own buffer failed it (pfnic_respond() tells which) */
	pfnic_respond(qp, peer, rgen, true, status, peer_status);
unlock:
	mutex_unlock(&peer->deliver_lock);
	return PFNIC_DONE;
}

/*
 * A datagram to a multicast GID: to each UD QP attached to its group in the sender's network
 * namespace, in order of QP number, once (qp->mcast_after: a fault stalls the send at one
 * member, and it goes on from there). An unresolved fault is that member's alone.
 */
static enum pfnic_step pfnic_execute_mcast(struct pfnic_qp *qp, bool failed,
					   enum ib_wc_status *status)
{
	struct net *net = dev_net(qp->pfnic->ndev);
	struct pfnic_qp *peer;
	enum pfnic_step step;
	u32 qpn;

	while ((qpn = pfnic_mcast_next(&qp->cur->dgid, net, qp->mcast_after))) {
		peer = pfnic_qp_get(qpn);
		if (peer) {
			step = pfnic_ud_deliver(qp, peer, failed, status);
			pfnic_qp_put(peer);
			if (step != PFNIC_DONE || *status != IB_WC_SUCCESS)
				return step;
		}
		failed = false;
		qp->mcast_after = qpn;
	}
	return PFNIC_DONE;
}

/*
 * pfnic_execute_ud() - run qp->cur, a UD send: a datagram to the QP and GID it names, or to
 *			the members of the multicast group of its GID
 * @qp: the sender
 * @failed: a page fault of this WQE could not be resolved (qp->fault_remote says whose)
 * @status: the sender's completion status, when the WQE ran to its end
 *
 * A datagram that finds no QP, a QP of another type or Q_Key, or no receive WQE is lost,
 * and its sender completes successfully, as on a wire. A receiver that cannot take it
 * (buffer too small or not its to write) completes its receive WQE in error and leaves
 * RTS; the sender still succeeds.
 *
 * Return: PFNIC_DONE with *status, PFNIC_FAULT (the fault recorded in @qp) or PFNIC_ABORT.
 */
static enum pfnic_step pfnic_execute_ud(struct pfnic_qp *qp, bool failed,
					enum ib_wc_status *status)
{
	struct pfnic_wqe *wqe = qp->cur;
	const struct ib_gid_attr *gid;
	struct pfnic_qp *peer;
	enum pfnic_step step;
	int mtu;

	*status = pfnic_check_local(qp, wqe);
	if (*status == IB_WC_SUCCESS && failed && !qp->fault_remote)
		*status = IB_WC_LOC_PROT_ERR;
	if (*status != IB_WC_SUCCESS)
		return PFNIC_DONE;
	/* a datagram fits in one packet of the port's MTU (query_port's active_mtu) */
	mtu = ib_mtu_enum_to_int(ib_mtu_int_to_enum(READ_ONCE(qp->pfnic->ndev->mtu)));
	if (wqe->total_len > mtu) {
		*status = IB_WC_LOC_LEN_ERR;
		return PFNIC_DONE;
	}
	if (pfnic_gid_multicast(&wqe->dgid))
		return pfnic_execute_mcast(qp, failed, status);
	/* QP1 is every device's: the one whose port has the destination GID */
	if (wqe->remote_qpn == PFNIC_GSI_QPN)
		peer = pfnic_gsi_get(&wqe->dgid, dev_net(qp->pfnic->ndev));
	else
		peer = pfnic_qp_get(wqe->remote_qpn);
	if (!peer)
		return PFNIC_DONE;
	step = PFNIC_DONE;
	if ((peer->ibqp.qp_type != IB_QPT_UD && peer->ibqp.qp_type != IB_QPT_GSI) ||
	    !pfnic_same_net(qp, peer))
		goto lost;
	gid = rdma_find_gid_by_port(&peer->pfnic->ibdev, &wqe->dgid, IB_GID_TYPE_ROCE_UDP_ENCAP,
				    PFNIC_PORT, NULL);
	if (IS_ERR(gid))
		goto lost;
	rdma_put_gid_attr(gid);
	step = pfnic_ud_deliver(qp, peer, failed, status);
lost:
	pfnic_qp_put(peer);
	return step;
}

/*
 * The operations a QP carries out on its own device, in send queue order: IB_WR_REG_MR and
 * IB_WR_LOCAL_INV on fast-registration MRs of its PD, IB_WR_LOCAL_INV and IB_WR_BIND_MW on
 * its memory windows. Return: the completion status; IB_WC_LOC_QP_OP_ERR for one refused,
 * as rxe completes it, IB_WC_MW_BIND_ERR for a bind.
 */
static enum ib_wc_status pfnic_execute_local(struct pfnic_qp *qp)
{
	struct pfnic_wqe *wqe = qp->cur;
	struct pfnic_mr *mr;
	int rv = -EINVAL;

	if (wqe->opcode == IB_WR_BIND_MW)
		return pfnic_mw_bind(qp, wqe) ? IB_WC_MW_BIND_ERR : IB_WC_SUCCESS;
	if (wqe->opcode == IB_WR_LOCAL_INV) {
		rv = pfnic_mr_invalidate(wqe->invalidate_rkey, qp->ibqp.pd);
	} else {
		/* the index is the WR's MR's, unless that MR was deregistered meanwhile */
		mr = pfnic_mr_get_index(wqe->reg_index);
		if (mr) {
			if (&mr->ibmr == wqe->reg_mr)
				rv = pfnic_mr_fast_reg(mr, qp->ibqp.pd, wqe->reg_key,
						       wqe->reg_access);
			pfnic_mr_put(mr);
		}
	}
	return rv ? IB_WC_LOC_QP_OP_ERR : IB_WC_SUCCESS;
}

/*
 * The RNR NAK timer's encoding (InfiniBand Architecture, table 45): min_rnr_timer 0 to 31
 * as microseconds, 0 being the longest.
 */
static const u32 pfnic_rnr_usecs[32] = {
	655360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1280, 1920,
	2560, 3840, 5120, 7680, 10240, 15360, 20480, 30720, 40960, 61440, 81920, 122880,
	163840, 245760, 327680, 491520,
};

/* How long a requester waits after an RNR NAK: min_rnr_timer, rounded up to whole jiffies. */
static unsigned long pfnic_rnr_delay(u8 timer)
{
	return usecs_to_jiffies(pfnic_rnr_usecs[timer & 31]);
}

/*
 * How long a requester waits for an ACK before it sends again: the QP's local ACK timeout,
 * 4.096 us << timeout. 0 means no timer on a wire, where the message would wait for ever;
 * here the requester looks again each second, so that a responder that comes up later is
 * found (a program that waits for ever on a NIC is not failed by this).
 */
static unsigned long pfnic_ack_timeout(u8 timeout)
{
	if (!timeout)
		return HZ;
	return max(1UL, nsecs_to_jiffies(4096ULL << min_t(u8, timeout, 31)));
}

/* Drops the fault a WQE raised when the WQE will not wait for it (taken away meanwhile). */
static void pfnic_forget_fault(struct pfnic_qp *qp, enum pfnic_step step)
{
	if (step != PFNIC_FAULT)
		return;
	pfnic_mr_put(qp->fault_mr);
	qp->fault_mr = NULL;
}

/*
 * Lets go of the engine (@qp->running) as it stops; caller holds @qp->lock. @idle: it stops
 * because nothing is left for it to do, so a user QP's provider must ring the doorbell for
 * what it posts next. Return: false if a WQE came meanwhile (seen after the idle mark was
 * published): then the engine runs on, and keeps it.
 */
static bool pfnic_engine_release(struct pfnic_qp *qp, bool idle)
{
	lockdep_assert_held(&qp->lock);
	if (idle && qp->sq.shared) {
		WRITE_ONCE(qp->sq.shared->engine_idle, 1);
		/*
		 * The mark before the producer's second look, as the provider orders its
		 * producer store before its look at the mark: either the provider rings, or
		 * this look sees its WQE.
		 */
		smp_mb();
		if (qp->attr.qp_state == IB_QPS_RTS && !qp->stalled && pfnic_wq_count(&qp->sq)) {
			WRITE_ONCE(qp->sq.shared->engine_idle, 0);
			return false;
		}
	}
	qp->running = false;
	wake_up_all(&qp->idle);
	return true;
}

/**
 * pfnic_engine_drive() - run a QP's send queue from its head until it is empty, the QP
 *			  leaves RTS, or a WQE stalls (page fault, RNR, no ACK)
 * @qp: the QP
 *
 * Called by the engine's work item, and by a user QP's doorbell in the poster's own context
 * (no hand-off to a worker on another CPU). Whoever finds the engine running already
 * (@qp->running) returns at once: the one running it looks at the queue again before it
 * stops. After PFNIC_ENGINE_BUDGET WQEs the work item is queued, so that one busy QP keeps
 * neither a worker, nor a poster, nor the CPU from the others.
 *
 * An RC message no responder took (no QP of that number and incarnation, one not in RTR or
 * RTS, or one reset or moved to the error state while it was delivered) gets no ACK, as on a
 * wire: the requester sends it again after its local ACK timeout, retry_cnt times, then
 * fails it with IB_WC_RETRY_EXC_ERR. So a requester that reaches RTS and sends before its
 * peer reaches RTR, or whose peer went away with sends outstanding, behaves as on hardware.
 *
 * The WQE it runs stays the engine's (@qp->sq_busy) until the engine has finished with its
 * buffers and queued its completion: a flush meanwhile leaves it and those after it, and the
 * engine completes it, with IB_WC_WR_FLUSH_ERR if the QP is in the error state by then, and
 * then flushes the rest. A user QP's WQE is copied out of its ring and checked first: one
 * the QP cannot carry out completes with IB_WC_LOC_QP_OP_ERR.
 *
 * Context: process; takes @qp->lock, and the peer's locks while it delivers.
 */
void pfnic_engine_drive(struct pfnic_qp *qp)
{
	unsigned int budget = PFNIC_ENGINE_BUDGET;

	spin_lock_irq(&qp->lock);
	if (qp->running) {
		spin_unlock_irq(&qp->lock);
		return;
	}
	qp->running = true;
	if (qp->sq.shared)
		WRITE_ONCE(qp->sq.shared->engine_idle, 0);
	spin_unlock_irq(&qp->lock);

	for (;;) {
		enum ib_wc_status status = IB_WC_SUCCESS;
		struct pfnic_qp *peer;
		enum pfnic_step step = PFNIC_DONE;
		bool failed, flush, malformed = false;
		u32 gen;

		spin_lock_irq(&qp->lock);
		if (qp->attr.qp_state != IB_QPS_RTS || qp->stalled || !pfnic_wq_count(&qp->sq)) {
			/* stalled, the fault's resolution queues the work again */
			if (!pfnic_engine_release(qp, !qp->stalled)) {
				spin_unlock_irq(&qp->lock);
				continue;
			}
			spin_unlock_irq(&qp->lock);
			return;
		}
		if (!budget--) {
			pfnic_engine_release(qp, false);
			spin_unlock_irq(&qp->lock);
			queue_work(pfnic_wq, &qp->work);
			return;
		}
		/* a producer moved past the ring's end fails the head WQE as a malformed one */
		if (qp->sq.shared)
			malformed = pfnic_wq_fetch_send(qp, qp->cur) != 0 ||
				    pfnic_wq_overrun(&qp->sq);
		else
			memcpy(qp->cur, pfnic_wq_entry(&qp->sq, qp->sq.head), qp->sq.stride);
		gen = qp->sq.gen;
		qp->sq_busy = true;
		/* what earlier runs did belongs to their WQE: a flush or a new WQE forgets it */
		if (qp->wqe_gen != gen || qp->wqe_head != qp->sq.head) {
			qp->atomic_done = false;
			qp->progress = 0;
			qp->mcast_after = 0;
			qp->wqe_gen = gen;
			qp->wqe_head = qp->sq.head;
		}
		/* a fault of this WQE that could not be resolved fails it this time */
		failed = qp->fault_status;
		qp->fault_status = 0;
		spin_unlock_irq(&qp->lock);

		if (malformed) {
			status = IB_WC_LOC_QP_OP_ERR;
		} else if (qp->cur->opcode == IB_WR_REG_MR || qp->cur->opcode == IB_WR_LOCAL_INV ||
			   qp->cur->opcode == IB_WR_BIND_MW) {
			status = pfnic_execute_local(qp);
		} else if (!pfnic_qp_connected(qp)) {
			step = pfnic_execute_ud(qp, failed, &status);
		} else {
			peer = pfnic_peer(qp);
			if (!peer) {
				/* a UC message to no one is lost, as on a wire */
				if (qp->ibqp.qp_type != IB_QPT_UC)
					step = PFNIC_NO_ACK;
			} else if (qp->ibqp.qp_type != IB_QPT_XRC_INI) {
				step = pfnic_execute(qp, peer, failed, &status);
				pfnic_qp_put(peer);
			} else if (!pfnic_xrc_enter(peer, qp->cur->xrc_srqn)) {
				/* no XRC SRQ of that number in the TGT QP's domain */
				status = IB_WC_REM_INV_REQ_ERR;
				pfnic_qp_put(peer);
			} else {
				step = pfnic_execute(qp, peer, failed, &status);
				pfnic_xrc_leave(peer);
				pfnic_qp_put(peer);
			}
		}

		spin_lock_irq(&qp->lock);
		if (qp->sq.gen != gen) {
			/* reset while we ran it: its WQEs went without completions */
			qp->sq_busy = false;
			spin_unlock_irq(&qp->lock);
			pfnic_forget_fault(qp, step);
			continue;
		}
		if (qp->attr.qp_state == IB_QPS_ERR) {
			/* moved to the error state while we ran it: the flush left it to us */
			pfnic_forget_fault(qp, step);
			if (step != PFNIC_DONE || status == IB_WC_SUCCESS)
				status = IB_WC_WR_FLUSH_ERR;
			step = PFNIC_DONE;
		}
		if (step == PFNIC_ABORT) {
			/* what made it stop was undone before we looked: run it on */
			qp->sq_busy = false;
			spin_unlock_irq(&qp->lock);
			continue;
		}
		if (step == PFNIC_FAULT) {
			/* its buffers are untouched while it waits: a flush may complete it */
			qp->sq_busy = false;
			qp->stalled = true;
			qp->fault_gen = gen;
			pfnic_engine_release(qp, false);
			spin_unlock_irq(&qp->lock);
			queue_work(pfnic_fault_wq, &qp->fault_work);
			return;
		}
		if (step == PFNIC_RNR) {
			if (qp->attr.rnr_retry == 7 || qp->rnr_left) {
				if (qp->attr.rnr_retry != 7)
					qp->rnr_left--;
				qp->sq_busy = false;
				pfnic_engine_release(qp, false);
				spin_unlock_irq(&qp->lock);
				pfnic_stat_add(qp->pfnic, PFNIC_STAT_RNR_RETRIES, 1);
				queue_delayed_work(pfnic_wq, &qp->rnr_work,
						   pfnic_rnr_delay(qp->rnr_timer));
				return;
			}
			status = IB_WC_RNR_RETRY_EXC_ERR;
		}
		if (step == PFNIC_NO_ACK) {
			if (!qp->attr.timeout || qp->retry_left) {
				if (qp->attr.timeout)
					qp->retry_left--;
				qp->sq_busy = false;
				pfnic_engine_release(qp, false);
				spin_unlock_irq(&qp->lock);
				pfnic_stat_add(qp->pfnic, PFNIC_STAT_ACK_TIMEOUTS, 1);
				queue_delayed_work(pfnic_wq, &qp->rnr_work,
						   pfnic_ack_timeout(qp->attr.timeout));
				return;
			}
			status = IB_WC_RETRY_EXC_ERR;
		}
		pfnic_wq_pop(&qp->sq);
		qp->rnr_left = qp->attr.rnr_retry;
		qp->retry_left = qp->attr.retry_cnt;
		/* a queue of one WQE has the same head for the next */
		qp->atomic_done = false;
		qp->progress = 0;
		qp->mcast_after = 0;
		/* an error completion is seen with the QP already in the error state */
		if (status != IB_WC_SUCCESS)
			pfnic_qp_set_state(qp, IB_QPS_ERR);
		spin_unlock_irq(&qp->lock);

		pfnic_stat_add(qp->pfnic, PFNIC_STAT_WQES, 1);
		pfnic_qp_complete_send(qp, qp->cur, status);
		/* only now may a flush complete the WQEs after it: completions stay in order */
		spin_lock_irq(&qp->lock);
		qp->sq_busy = false;
		flush = qp->attr.qp_state == IB_QPS_ERR;
		spin_unlock_irq(&qp->lock);
		if (flush)
			pfnic_qp_flush(qp);
	}
}

/* The engine's work item: pfnic_engine_drive() on a worker. */
void pfnic_engine_run(struct work_struct *work)
{
	pfnic_engine_drive(container_of(work, struct pfnic_qp, work));
}

void pfnic_engine_rnr_retry(struct work_struct *work)
{
	struct pfnic_qp *qp = container_of(to_delayed_work(work), struct pfnic_qp, rnr_work);

	queue_work(pfnic_wq, &qp->work);
}

/*
 * Faults in a row a QP takes again after they timed out on a changing range. Each real
 * round spends the fault's whole retry window (HMM_RANGE_DEFAULT_TIMEOUT, 1 s), so this
 * lets memory change under a WQE for half a minute, which outlasts offlining a block,
 * before the WQE fails as any unresolvable fault does.
 */
#define PFNIC_FAULT_BUSY_ROUNDS	30

/*
 * The device's page-fault event for a QP: the ODP core resolves it, then the QP resumes
 * at the WQE that faulted. A fault that cannot be resolved fails that WQE. One that timed
 * out because the range kept changing (-EBUSY: a memory block going offline, compaction
 * migrating the MR's pages one after another) is not a failure of the WQE: the QP
 * resumes without an error, runs the WQE again and takes the fault again, as a NIC whose
 * fault handler told it to retry would, up to PFNIC_FAULT_BUSY_ROUNDS times in a row. A
 * QP moved to the error state or destroyed meanwhile stops it; faults made to time out by
 * the test hook return at once. A QP reset (or flushed) while its fault was resolved has
 * no WQE waiting for it any more: the outcome is dropped, so that it cannot fail a WQE
 * posted in the QP's next life.
 */
void pfnic_engine_fault(struct work_struct *work)
{
	struct pfnic_qp *qp = container_of(work, struct pfnic_qp, fault_work);
	struct pfnic_mr *mr = qp->fault_mr;
	unsigned int delay = READ_ONCE(inject_fault_delay_ms);
	int rv;

	if (delay)
		msleep(delay);
	if (pfnic_fault_busy_injected())
		rv = -EBUSY;
	else
		rv = pfnic_odp_fault(mr, qp->fault_va, qp->fault_len,
				     qp->fault_write ? PFNIC_FAULT_WRITE : 0);
	trace_pfnic_resume(qp, mr, rv);
	if (rv == -EBUSY && qp->busy_rounds < PFNIC_FAULT_BUSY_ROUNDS) {
		qp->busy_rounds++;
		pfnic_stat_add(qp->pfnic, PFNIC_STAT_FAULT_RETRIES, 1);
		rv = 0;
	} else {
		qp->busy_rounds = 0;
	}

	spin_lock_irq(&qp->lock);
	qp->fault_mr = NULL;
	if (qp->sq.gen == qp->fault_gen) {
		qp->fault_status = rv;
	} else {
		qp->fault_status = 0;
		qp->busy_rounds = 0;
	}
	qp->stalled = false;
	spin_unlock_irq(&qp->lock);
	pfnic_mr_put(mr);
	queue_work(pfnic_wq, &qp->work);
}
