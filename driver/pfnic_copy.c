// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: translation and copy, the engine's one way to memory (see pfnic_engine.h). Keys are
 * looked up and checked here (PD, bounds, rights, memory windows); bytes move through the
 * MRs' translation tables, or straight for kernel MRs, in runs of pages under one hold of
 * the tables' locks; a page a user MR's table lacks is recorded as the fault that stalls the
 * requesting QP.
 */
#include <linux/highmem.h>

#include "pfnic_engine.h"

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

/* Whether a span needs no table, or the table it holds covers its address. */
static bool pfnic_span_inside(const struct pfnic_span *sp)
{
	return !pfnic_span_user(sp) ||
	       (sp->xlt && sp->addr - sp->xlt->va < sp->xlt->npages << PAGE_SHIFT);
}

/*
 * The table covering a user span's address, kept in @sp->xlt across the pages of one walk.
 * Its lock must not be held here: the table it held may go. Return: false if an implicit MR
 * has none there yet; true for any other span.
 */
static bool pfnic_span_table(struct pfnic_span *sp)
{
	if (pfnic_span_inside(sp))
		return true;
	if (sp->xlt)
		pfnic_xlt_put(sp->xlt);
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
 * Records a fault in @f (a requester's, which stalls its QP, or a responder's on the wire):
 * the pages @len bytes from @uva of @mr need, or the first PFNIC_FAULT_WINDOW of them.
 */
static void pfnic_raise_fault(struct pfnic_fault *f, struct pfnic_mr *mr, unsigned long uva,
			      u64 len, bool write, bool remote)
{
	kref_get(&mr->ref);
	f->mr = mr;
	f->va = uva;
	f->len = min_t(u64, len, PFNIC_FAULT_WINDOW - offset_in_page(uva));
	f->write = write;
	f->remote = remote;
}

/* The WQE the engine runs was taken away: its QP was reset, flushed or moved to error. */
bool pfnic_wqe_taken_away(struct pfnic_qp *qp)
{
	return READ_ONCE(qp->attr.qp_state) == IB_QPS_ERR ||
	       READ_ONCE(qp->sq.gen) != qp->wqe_gen;
}

/**
 * pfnic_copy() - move bytes between two spans: MRs (through their translation tables, or
 *		  kernel memory for a kernel MR) or the engine's own buffers
 * @qp: the QP whose work this is (a long copy stops if its WQE is taken away)
 * @f: where a fault is recorded (@qp's own, for a requester's, which stalls it)
 * @dst: where to, already checked for bounds and rights
 * @src: where from, likewise
 * @len: bytes
 * @remote: which side is the responder's (for the fault record): bit 0 @dst, bit 1 @src
 * @moved: bytes moved are added to it, also when the copy stops early
 *
 * The pages of a run move under one hold of their tables' locks: the run ends where a span
 * leaves its table, at a missing page, and after PFNIC_COPY_BATCH pages, so that an
 * invalidation waits for at most one run to end. Only a user MR's span can lack a page;
 * kernel memory is never faulted.
 *
 * Context: the engine (process context; no spinlock held, a UD delivery holds the
 * receiver's deliver_lock); takes the spans' table locks. Between two runs it reschedules,
 * and stops if @qp's WQE was taken away.
 * Return: PFNIC_DONE; PFNIC_FAULT with the fault recorded in @f (the bytes before the
 * missing page were moved); PFNIC_ABORT if @qp was reset or moved to the error state.
 */
static enum pfnic_step pfnic_copy(struct pfnic_qp *qp, struct pfnic_fault *f,
				  struct pfnic_span dst, struct pfnic_span src, u64 len,
				  unsigned int remote, u64 *moved)
{
	enum pfnic_step step = PFNIC_DONE;
	unsigned int pages = 0;
	bool locked = false;

	while (len) {
		size_t n = min3((size_t)min_t(u64, len, PAGE_SIZE), pfnic_span_room(&dst),
				pfnic_span_room(&src));
		bool dst_missing;
		void *d, *s;

		if (locked && (!(pages % PFNIC_COPY_BATCH) || !pfnic_span_inside(&dst) ||
			       !pfnic_span_inside(&src))) {
			pfnic_unlock_two(dst.xlt, src.xlt);
			locked = false;
		}
		if (pages && !(pages % PFNIC_COPY_BATCH)) {
			if (pfnic_wqe_taken_away(qp)) {
				step = PFNIC_ABORT;
				break;
			}
			cond_resched();
		}
		if (!locked) {
			dst_missing = !pfnic_span_table(&dst);
			if (dst_missing || !pfnic_span_table(&src))
				goto fault;
			pfnic_lock_two(dst.xlt, src.xlt);
			locked = true;
		}
		d = pfnic_span_map(&dst, true);
		s = d ? pfnic_span_map(&src, false) : NULL;
		if (!s) {
			if (d)
				pfnic_span_unmap(&dst, d);
			dst_missing = !d;
			goto fault;
		}
		memmove(d, s, n);
		pfnic_span_unmap(&src, s);
		pfnic_span_unmap(&dst, d);
		dst.addr += n;
		src.addr += n;
		len -= n;
		*moved += n;
		pages++;
		continue;
fault:
		if (locked)
			pfnic_unlock_two(dst.xlt, src.xlt);
		locked = false;
		if (dst_missing)
			pfnic_raise_fault(f, dst.mr, dst.addr, len, true, remote & 1);
		else
			pfnic_raise_fault(f, src.mr, src.addr, len, false, remote & 2);
		step = PFNIC_FAULT;
		break;
	}
	if (locked)
		pfnic_unlock_two(dst.xlt, src.xlt);
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
struct pfnic_mr *pfnic_mr_lookup(u32 key, struct ib_pd *pd, u64 iova, u64 len, int access)
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
 * Changes the 8-byte word at @iova in @mr as an atomic of @opcode (IB_WR_ATOMIC_CMP_AND_SWP,
 * IB_WR_ATOMIC_FETCH_AND_ADD or PFNIC_WR_ATOMIC_WRITE) with @compare_add and @swap, with
 * the CPU's own atomic instructions, so that the change is atomic for the CPU and for every
 * pfnic QP alike, and puts the value it held in *@orig (an atomic write stores its value
 * whole and returns nothing). Return: PFNIC_DONE, or PFNIC_FAULT (recorded in @f) with the
 * word untouched.
 */
enum pfnic_step pfnic_atomic_word(struct pfnic_fault *f, struct pfnic_mr *mr, u64 iova,
				  u32 opcode, u64 compare_add, u64 swap, u64 *orig)
{
	struct pfnic_span sp = pfnic_span_mr(mr, iova);
	u64 *word = NULL;

	/* the caller checked that the word is aligned in memory: it lies in one page */
	if (pfnic_span_table(&sp)) {
		pfnic_lock_two(sp.xlt, NULL);
		word = pfnic_span_map(&sp, true);
		if (word) {
			if (opcode == IB_WR_ATOMIC_CMP_AND_SWP)
				*orig = cmpxchg64(word, compare_add, swap);
			else if (opcode == PFNIC_WR_ATOMIC_WRITE)
				atomic64_set((atomic64_t *)word, compare_add);
			else
				*orig = atomic64_fetch_add(compare_add, (atomic64_t *)word);
			pfnic_span_unmap(&sp, word);
		}
		pfnic_unlock_two(sp.xlt, NULL);
	}
	pfnic_span_done(&sp);
	if (word)
		return PFNIC_DONE;
	pfnic_raise_fault(f, mr, sp.addr, sizeof(u64), true, true);
	return PFNIC_FAULT;
}

/*
 * Writes @len bytes of @buf into the buffers of @sgl (@num_sge entries, MRs of @pd), for a WQE
 * of @qp, which a missing translation stalls (@remote: the buffers are the responder's).
 * Return: PFNIC_DONE (check @status: LOC_PROT_ERR for a bad key, rights or a list too
 * short), or PFNIC_FAULT.
 */
enum pfnic_step pfnic_put_sgl(struct pfnic_qp *qp, const struct ib_sge *sgl, u32 num_sge,
			      struct ib_pd *pd, const void *buf, u32 len, bool remote,
			      enum ib_wc_status *status)
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
		step = pfnic_copy(qp, &qp->fault, pfnic_span_mr(mr, sgl[i].addr),
				  pfnic_span_raw(buf), n,
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
enum pfnic_step pfnic_sg_copy(struct pfnic_qp *qp, const struct ib_sge *sgl, u32 num_sge,
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
			step = pfnic_copy(qp, &qp->fault, psp, lsp, n, 1, done);
		else
			step = pfnic_copy(qp, &qp->fault, lsp, psp, n, 2, done);
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

/**
 * pfnic_sgl_io() - move bytes between a scatter/gather list, from an offset into it, and a
 *		    buffer of the engine's (a packet's payload)
 * @qp: the QP whose work this is
 * @f: where a fault is recorded
 * @sgl: the list
 * @num_sge: its length
 * @pd: the PD its MRs must be in
 * @raw: the list is one entry over a WQE's inline data, which has no key
 * @offset: where in the list the bytes start
 * @buf: the buffer
 * @len: bytes
 * @to_sgl: the bytes go into the list (its MRs need local write rights), else out of it
 * @remote: the list is the responder's (for the fault record)
 * @status: IB_WC_SUCCESS; IB_WC_LOC_PROT_ERR for a bad key, PD, bounds or rights;
 *	IB_WC_LOC_LEN_ERR if the list ends before @offset + @len
 *
 * Context: process; takes the MRs' table locks.
 * Return: PFNIC_DONE (check @status; the bytes before a bad entry may have moved), or
 * PFNIC_FAULT (recorded in @f; the bytes before the missing page moved).
 */
enum pfnic_step pfnic_sgl_io(struct pfnic_qp *qp, struct pfnic_fault *f,
			     const struct ib_sge *sgl, u32 num_sge, struct ib_pd *pd, bool raw,
			     u64 offset, void *buf, u32 len, bool to_sgl, bool remote,
			     enum ib_wc_status *status)
{
	u32 i;

	*status = IB_WC_SUCCESS;
	for (i = 0; i < num_sge && len; i++) {
		struct pfnic_mr *mr = NULL;
		struct pfnic_span sp;
		enum pfnic_step step;
		u64 n, moved = 0;

		if (offset >= sgl[i].length) {
			offset -= sgl[i].length;
			continue;
		}
		n = min_t(u64, len, sgl[i].length - offset);
		if (raw) {
			sp = pfnic_span_raw((void *)(uintptr_t)(sgl[i].addr + offset));
		} else {
			mr = pfnic_mr_lookup(sgl[i].lkey, pd, sgl[i].addr + offset, n,
					     to_sgl ? IB_ACCESS_LOCAL_WRITE : 0);
			if (!mr) {
				*status = IB_WC_LOC_PROT_ERR;
				return PFNIC_DONE;
			}
			sp = pfnic_span_mr(mr, sgl[i].addr + offset);
		}
		if (to_sgl)
			step = pfnic_copy(qp, f, sp, pfnic_span_raw(buf), n, remote ? 1 : 0,
					  &moved);
		else
			step = pfnic_copy(qp, f, pfnic_span_raw(buf), sp, n, remote ? 2 : 0,
					  &moved);
		if (mr)
			pfnic_mr_put(mr);
		if (step == PFNIC_FAULT)
			return step;
		buf += n;
		len -= n;
		offset = 0;
	}
	if (len)
		*status = IB_WC_LOC_LEN_ERR;
	return PFNIC_DONE;
}

/**
 * pfnic_rkey_io() - a responder's RDMA: move bytes between the MR an rkey names and a
 *		     buffer of the engine's (a packet's payload)
 * @qp: the responder
 * @f: where a fault is recorded
 * @rkey: the key
 * @pd: the PD the MR must be in
 * @iova: where in it
 * @buf: the buffer
 * @len: bytes
 * @write: the bytes go into the MR (a WRITE), else out of it (a READ's response)
 * @status: IB_WC_SUCCESS, or IB_WC_REM_ACCESS_ERR for a bad key, bounds or rights
 *
 * Context: process; takes the MR's table locks.
 * Return: PFNIC_DONE (check @status) or PFNIC_FAULT (recorded in @f).
 */
enum pfnic_step pfnic_rkey_io(struct pfnic_qp *qp, struct pfnic_fault *f, u32 rkey,
			      struct ib_pd *pd, u64 iova, void *buf, u32 len, bool write,
			      enum ib_wc_status *status)
{
	struct pfnic_mr *mr;
	enum pfnic_step step;
	u64 moved = 0;

	*status = IB_WC_SUCCESS;
	if (!len)
		return PFNIC_DONE;
	mr = pfnic_mr_lookup(rkey, pd, iova, len,
			     write ? IB_ACCESS_REMOTE_WRITE : IB_ACCESS_REMOTE_READ);
	if (!mr) {
		*status = IB_WC_REM_ACCESS_ERR;
		return PFNIC_DONE;
	}
	if (write)
		step = pfnic_copy(qp, f, pfnic_span_mr(mr, iova), pfnic_span_raw(buf), len, 1,
				  &moved);
	else
		step = pfnic_copy(qp, f, pfnic_span_raw(buf), pfnic_span_mr(mr, iova), len, 2,
				  &moved);
	pfnic_mr_put(mr);
	return step == PFNIC_FAULT ? step : PFNIC_DONE;
}
