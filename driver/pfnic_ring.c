// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: the rings a user process shares with the device (uapi/pfnic-abi.h). A user CQ, send
 * queue, receive queue and SRQ each live in pages the process maps and the driver reaches
 * through a kernel mapping of the same pages: the provider posts WQEs and takes completions
 * there, the engine takes WQEs and writes completions, and each side publishes how far it
 * got in an index word the other reads, with the memory order written at each access.
 *
 * What a process writes into a ring is not trusted: each WQE is copied once, then checked,
 * and only the copy is used; an index the process moved too far is taken as a full ring.
 */
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <rdma/uverbs_ioctl.h>

#include "pfnic.h"

static_assert(sizeof(struct pfnic_sge) == sizeof(struct ib_sge));
static_assert(offsetof(struct pfnic_sge, length) == offsetof(struct ib_sge, length));
static_assert(offsetof(struct pfnic_sge, lkey) == offsetof(struct ib_sge, lkey));

static void pfnic_ring_mem_free(struct pfnic_ring_mem *mem);

/* The ring's memory: pages charged to the process's cgroup, mapped once into the kernel. */
static struct pfnic_ring_mem *pfnic_ring_mem_alloc(size_t size)
{
	unsigned long i, npages = PAGE_ALIGN(size) >> PAGE_SHIFT;
	struct pfnic_ring_mem *mem;

	mem = kzalloc(sizeof(*mem), GFP_KERNEL_ACCOUNT);
	if (!mem)
		return NULL;
	mem->pages = kvcalloc(npages, sizeof(*mem->pages), PFNIC_GFP_USER_SIZED);
	if (!mem->pages)
		goto fail;
	mem->npages = npages;
	for (i = 0; i < npages; i++) {
		mem->pages[i] = alloc_page(PFNIC_GFP_USER_SIZED | __GFP_ZERO);
		if (!mem->pages[i])
			goto fail;
	}
	mem->buf = vmap(mem->pages, npages, VM_MAP, PAGE_KERNEL);
	if (mem->buf)
		return mem;
fail:
	pfnic_ring_mem_free(mem);
	return NULL;
}

/* Frees what pfnic_ring_mem_alloc() made, as far as it got. */
static void pfnic_ring_mem_free(struct pfnic_ring_mem *mem)
{
	unsigned long i;

	if (mem->buf)
		vunmap(mem->buf);
	for (i = 0; mem->pages && i < mem->npages && mem->pages[i]; i++)
		__free_page(mem->pages[i]);
	kvfree(mem->pages);
	kfree(mem);
}

/*
 * The core calls this once a ring's entry was removed (its object destroyed) and no mmap()
 * is looking it up. The kernel's mapping goes, and the driver's references to the pages; a
 * process that still maps the ring holds its own (vm_map_pages_zero() took them), so the
 * pages stay until it unmaps them, and then go.
 */
void pfnic_mmap_free(struct rdma_user_mmap_entry *entry)
{
	pfnic_ring_mem_free(container_of(entry, struct pfnic_ring_mem, entry));
}

/**
 * pfnic_mmap() - map a ring into the process that owns it
 * @ibuc: the process's context
 * @vma: the mapping: its offset names the ring (a CREATE_CQ response gave it), its length
 *	must be the ring's, and it must be shared (a private copy would hide the two sides'
 *	writes from each other)
 *
 * Return: 0, or -EINVAL for an offset or length that names no ring, or a private mapping.
 */
int pfnic_mmap(struct ib_ucontext *ibuc, struct vm_area_struct *vma)
{
	struct rdma_user_mmap_entry *entry;
	struct pfnic_ring_mem *mem;
	int rv = -EINVAL;

	entry = rdma_user_mmap_entry_get(ibuc, vma);
	if (!entry)
		return -EINVAL;
	mem = container_of(entry, struct pfnic_ring_mem, entry);
	if ((vma->vm_flags & VM_SHARED) && !(vma->vm_flags & VM_EXEC)) {
		/* data, never code: no mprotect() makes it executable later */
		pfnic_vm_flags_mod(vma, 0, VM_MAYEXEC);
		rv = vm_map_pages_zero(vma, mem->pages, mem->npages);
	}
	rdma_user_mmap_entry_put(entry);
	return rv;
}

/**
 * pfnic_ring_mem_map() - a ring's memory, with its place among a process's mmap offsets
 * @ibuc: the process's context
 * @size: bytes the ring needs (rounded up to pages)
 *
 * Return: the memory, zeroed (its entry gives the offset), or ERR_PTR(-ENOMEM) or the
 * core's error. Undone by rdma_user_mmap_entry_remove(), after which the pages go once the
 * process no longer maps them (pfnic_mmap_free()).
 */
struct pfnic_ring_mem *pfnic_ring_mem_map(struct ib_ucontext *ibuc, size_t size)
{
	struct pfnic_ring_mem *mem = pfnic_ring_mem_alloc(size);
	int rv;

	if (!mem)
		return ERR_PTR(-ENOMEM);
	rv = rdma_user_mmap_entry_insert(ibuc, &mem->entry, mem->npages << PAGE_SHIFT);
	if (rv) {
		pfnic_ring_mem_free(mem);
		return ERR_PTR(rv);
	}
	return mem;
}

/* What a process maps of a ring: its offset, its size. */
static void pfnic_ring_mem_describe(struct pfnic_ring_mem *mem, struct pfnic_ring_map *map)
{
	map->offset = rdma_user_mmap_get_offset(&mem->entry);
	map->size = mem->npages << PAGE_SHIFT;
}

/*
 * A WQE as the engine keeps it: room for @max_sge SGEs, or @max_inline bytes of inline data
 * in their place, whichever is larger.
 */
static size_t pfnic_wqe_stride(u32 max_sge, u32 max_inline)
{
	return max(struct_size((struct pfnic_wqe *)NULL, sge, max_sge),
		   ALIGN(struct_size((struct pfnic_wqe *)NULL, sge, 0) + max_inline, sizeof(u64)));
}

/*
 * A kernel consumer's work queue of @size WQEs of @max_sge SGEs each, or @max_inline bytes of
 * inline data (which take the SGEs' place), whichever is larger.
 */
int pfnic_wq_init(struct pfnic_wq *wq, u32 size, u32 max_sge, u32 max_inline)
{
	wq->size = size;
	wq->max_sge = max_sge;
	wq->max_inline = max_inline;
	wq->stride = pfnic_wqe_stride(max_sge, max_inline);
	wq->buf = kvcalloc(size, wq->stride, PFNIC_GFP_USER_SIZED);
	return wq->buf ? 0 : -ENOMEM;
}

/**
 * pfnic_wq_init_user() - a user work queue: a ring its process maps
 * @wq: the queue
 * @ibuc: the process's context
 * @size: WQEs asked for (the ring has a power of two of slots, at least this many)
 * @max_sge: SGEs per WQE
 * @max_inline: inline bytes per WQE (0 for a receive queue)
 * @send: a send queue (struct pfnic_send_wqe) rather than a receive queue or SRQ
 * @map: where the process finds the ring (for the create command's response)
 *
 * Return: 0, -ENOMEM, or the core's error.
 */
int pfnic_wq_init_user(struct pfnic_wq *wq, struct ib_ucontext *ibuc, u32 size, u32 max_sge,
		       u32 max_inline, bool send, struct pfnic_ring_map *map)
{
	size_t header = send ? sizeof(struct pfnic_send_wqe) : sizeof(struct pfnic_recv_wqe);
	struct pfnic_ring_mem *mem;

	wq->size = roundup_pow_of_two(size);
	wq->max_sge = max_sge;
	wq->max_inline = max_inline;
	wq->stride = pfnic_wqe_stride(max_sge, max_inline);
	wq->ustride = ALIGN(header + max_t(size_t, max_sge * sizeof(struct pfnic_sge), max_inline),
			    16);
	mem = pfnic_ring_mem_map(ibuc, sizeof(struct pfnic_wq_ring) +
				 (size_t)wq->size * wq->ustride);
	if (IS_ERR(mem))
		return PTR_ERR(mem);
	wq->mem = mem;
	wq->shared = mem->buf;
	wq->slots = (u8 *)(wq->shared + 1);
	/* nothing posted, nothing for the engine to look at without a doorbell */
	wq->shared->engine_idle = 1;
	pfnic_ring_mem_describe(mem, map);
	map->slots = wq->size;
	map->stride = wq->ustride;
	return 0;
}

/* Frees a work queue's WQEs: a kernel queue's now, a ring once its process unmaps it. */
void pfnic_wq_destroy(struct pfnic_wq *wq)
{
	if (wq->mem)
		rdma_user_mmap_entry_remove(&wq->mem->entry);
	wq->mem = NULL;
	wq->shared = NULL;
	kvfree(wq->buf);
	wq->buf = NULL;
}

/**
 * pfnic_wq_count() - WQEs posted to a queue and not yet done
 * @wq: the queue; the caller holds the lock that guards its @head
 *
 * A ring's count comes from its producer word: loaded with acquire order, so that the
 * WQEs below it are seen as the provider wrote them; a count past the ring's size (the
 * process moved the word too far) is taken as a full ring.
 */
u32 pfnic_wq_count(struct pfnic_wq *wq)
{
	u32 posted;

	if (!wq->shared)
		return wq->count;
	/* acquire: the WQEs below the index were written before it (the provider's release) */
	posted = smp_load_acquire(&wq->shared->producer);
	return min(posted - wq->head, wq->size);
}

/*
 * Whether a ring's producer word claims more WQEs than the ring holds: the process moved it
 * past what it may, and the queue is malformed (the engine fails its head WQE).
 */
bool pfnic_wq_overrun(struct pfnic_wq *wq)
{
	return wq->shared && READ_ONCE(wq->shared->producer) - wq->head > wq->size;
}

/* Done with the WQE at the head; a ring's slot may be written again once this is seen. */
void pfnic_wq_pop(struct pfnic_wq *wq)
{
	if (!wq->shared) {
		wq->head = (wq->head + 1) % wq->size;
		wq->count--;
		return;
	}
	wq->head++;
	/* release: the WQE was copied out before the provider may write its slot again */
	smp_store_release(&wq->shared->consumer, wq->head);
}

/* Drops every WQE (RESET): a ring starts again at slot 0, on both sides. */
void pfnic_wq_reset(struct pfnic_wq *wq)
{
	wq->head = 0;
	wq->count = 0;
	if (!wq->shared)
		return;
	WRITE_ONCE(wq->shared->producer, 0);
	WRITE_ONCE(wq->shared->consumer, 0);
}

/* The ring slot of the WQE at the head. */
static const u8 *pfnic_wq_head_slot(const struct pfnic_wq *wq)
{
	return wq->slots + (size_t)(wq->head & (wq->size - 1)) * wq->ustride;
}

/*
 * The head WQE's id and completion opcode, for a flush: read straight from the ring (once),
 * since nothing but the completion depends on them.
 */
u64 pfnic_wq_head_id(struct pfnic_wq *wq, bool send, enum ib_wr_opcode *opcode)
{
	const u8 *slot;

	if (!wq->shared) {
		struct pfnic_wqe *wqe = pfnic_wq_entry(wq, wq->head);

		if (opcode)
			*opcode = wqe->opcode;
		return wqe->wr_id;
	}
	slot = pfnic_wq_head_slot(wq);
	if (opcode)
		*opcode = send ? READ_ONCE(((const struct pfnic_send_wqe *)slot)->opcode) :
				 IB_WR_SEND;
	return READ_ONCE(*(const u64 *)slot);
}

/* Whether a send WR's data may come inline (SEND and RDMA WRITE, as the spec has it). */
bool pfnic_inline_opcode(enum ib_wr_opcode opcode)
{
	return opcode == IB_WR_SEND || opcode == IB_WR_SEND_WITH_IMM ||
	       opcode == IB_WR_SEND_WITH_INV || opcode == IB_WR_RDMA_WRITE ||
	       opcode == IB_WR_RDMA_WRITE_WITH_IMM;
}

/* Whether a ring's WQE may carry @opcode on a QP of @type (what uverbs' POST_SEND takes). */
static bool pfnic_ring_opcode(enum ib_qp_type type, u8 opcode)
{
	switch (opcode) {
	case IB_WR_SEND:
	case IB_WR_SEND_WITH_IMM:
		return true;
	case IB_WR_RDMA_WRITE:
	case IB_WR_RDMA_WRITE_WITH_IMM:
	case IB_WR_LOCAL_INV:
	case IB_WR_BIND_MW:
		return type == IB_QPT_RC || type == IB_QPT_UC || type == IB_QPT_XRC_INI;
	case IB_WR_SEND_WITH_INV:
	case IB_WR_RDMA_READ:
	case IB_WR_ATOMIC_CMP_AND_SWP:
	case IB_WR_ATOMIC_FETCH_AND_ADD:
	case PFNIC_WR_ATOMIC_WRITE:
		return type == IB_QPT_RC || type == IB_QPT_XRC_INI;
	default:
		return false;
	}
}

#define PFNIC_RING_SEND_FLAGS	(IB_SEND_FENCE | IB_SEND_SIGNALED | IB_SEND_SOLICITED | \
				 IB_SEND_INLINE)

/**
 * pfnic_wq_fetch_send() - a send WQE, copied out of its ring and checked
 * @qp: a user QP; the caller holds its lock and saw more than @after WQEs in the queue
 * @after: which: the head's (0), or the one @after places behind it
 * @into: the engine's WQE (room for PFNIC_MAX_SGE SGEs and the queue's inline data)
 *
 * Return: 0, or -EINVAL for a WQE the QP cannot carry out (an opcode not of its type, flags
 * it does not know, too many SGEs or too much inline data, an atomic without its one 8-byte
 * buffer, a message longer than max_msg_sz): @into then has the WQE's id, and the engine
 * completes it with IB_WC_LOC_QP_OP_ERR.
 */
int pfnic_wq_fetch_send(struct pfnic_qp *qp, u32 after, struct pfnic_wqe *into)
{
	struct pfnic_wq *wq = &qp->sq;
	const u8 *slot = wq->slots + (size_t)((wq->head + after) & (wq->size - 1)) * wq->ustride;
	struct pfnic_send_wqe u;
	u32 i;

	lockdep_assert_held(&qp->lock);
	memcpy(&u, slot, sizeof(u));
	memset(into, 0, sizeof(*into));
	into->wr_id = u.wr_id;
	into->opcode = u.opcode;
	if (!pfnic_ring_opcode(qp->ibqp.qp_type, u.opcode) ||
	    (u.send_flags & ~PFNIC_RING_SEND_FLAGS))
		return -EINVAL;
	into->send_flags = u.send_flags;
	if (!pfnic_inline_opcode(u.opcode))
		into->send_flags &= ~IB_SEND_INLINE;
	into->imm_data = (__force __be32)u.ex_data;
	if (u.opcode == IB_WR_SEND_WITH_INV || u.opcode == IB_WR_LOCAL_INV)
		into->invalidate_rkey = u.ex_data;
	if (u.opcode == IB_WR_BIND_MW)
		into->bind_lkey = u.ex_data;
	into->remote_addr = u.remote_addr;
	into->rkey = u.rkey;
	into->compare_add = u.compare_add;
	into->swap = u.swap;
	memcpy(into->dgid.raw, u.dgid, sizeof(into->dgid.raw));
	into->sgid_index = u.sgid_index;
	into->remote_qpn = u.remote_qpn & 0xffffff;
	/* an XRC INI QP's WQE names the XRC SRQ its message is for where UD names a QP */
	into->xrc_srqn = into->remote_qpn;
	into->remote_qkey = u.remote_qkey;
	if (into->send_flags & IB_SEND_INLINE) {
		if (u.inline_len > qp->max_inline)
			return -EINVAL;
		memcpy(pfnic_wqe_inline(into), slot + sizeof(u), u.inline_len);
		into->total_len = u.inline_len;
		return 0;
	}
	if (u.num_sge > wq->max_sge)
		return -EINVAL;
	memcpy(into->sge, slot + sizeof(u), u.num_sge * sizeof(struct ib_sge));
	into->num_sge = u.num_sge;
	for (i = 0; i < u.num_sge; i++)
		into->total_len += into->sge[i].length;
	if ((u.opcode == IB_WR_ATOMIC_CMP_AND_SWP || u.opcode == IB_WR_ATOMIC_FETCH_AND_ADD) &&
	    (u.num_sge != 1 || into->sge[0].length != sizeof(u64)))
		return -EINVAL;
	/* an atomic write's value, and a bind, are in the WQE itself */
	if ((u.opcode == PFNIC_WR_ATOMIC_WRITE || u.opcode == IB_WR_BIND_MW) && u.num_sge)
		return -EINVAL;
	return into->total_len > PFNIC_MAX_MSG_SZ ? -EINVAL : 0;
}

/**
 * pfnic_wq_fetch_recv() - a receive queue's or SRQ's head WQE, copied out and checked
 * @wq: the queue; the caller holds its lock and saw it non-empty
 * @into: where to (room for PFNIC_MAX_SGE SGEs)
 *
 * A kernel queue's WQE is copied as it is. A ring's WQE with more SGEs than the queue's
 * max_sge is taken as having no buffer: a message into it fails with IB_WC_LOC_LEN_ERR.
 */
void pfnic_wq_fetch_recv(struct pfnic_wq *wq, struct pfnic_wqe *into)
{
	const u8 *slot;
	struct pfnic_recv_wqe u;
	u32 i;

	if (!wq->shared) {
		memcpy(into, pfnic_wq_entry(wq, wq->head), wq->stride);
		return;
	}
	slot = pfnic_wq_head_slot(wq);
	memcpy(&u, slot, sizeof(u));
	into->wr_id = u.wr_id;
	into->num_sge = u.num_sge <= wq->max_sge ? u.num_sge : 0;
	memcpy(into->sge, slot + sizeof(u), into->num_sge * sizeof(struct ib_sge));
	into->total_len = 0;
	for (i = 0; i < into->num_sge; i++)
		into->total_len += into->sge[i].length;
}
