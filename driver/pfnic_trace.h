/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * pfnic's tracepoints, under events/pfnic/ in tracefs (perf and bpftrace name them
 * pfnic:pfnic_fault and so on): the ODP core's page faults, invalidations and migrations,
 * and a QP resuming after its fault.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM pfnic

#if !defined(PFNIC_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define PFNIC_TRACE_H

#include <linux/tracepoint.h>

#include "pfnic.h"

/* The constants the formats below print by name, for tools that read the format files. */
TRACE_DEFINE_ENUM(PFNIC_FAULT_WRITE);
TRACE_DEFINE_ENUM(PFNIC_FAULT_PREFETCH);
TRACE_DEFINE_ENUM(PFNIC_FAULT_SNAPSHOT);
TRACE_DEFINE_ENUM(MMU_NOTIFY_UNMAP);
TRACE_DEFINE_ENUM(MMU_NOTIFY_CLEAR);
TRACE_DEFINE_ENUM(MMU_NOTIFY_PROTECTION_VMA);
TRACE_DEFINE_ENUM(MMU_NOTIFY_PROTECTION_PAGE);
TRACE_DEFINE_ENUM(MMU_NOTIFY_SOFT_DIRTY);
TRACE_DEFINE_ENUM(MMU_NOTIFY_RELEASE);
TRACE_DEFINE_ENUM(MMU_NOTIFY_MIGRATE);
TRACE_DEFINE_ENUM(MMU_NOTIFY_EXCLUSIVE);

/* Device names are copied into a fixed array: one form for every kernel of the matrix. */
#define PFNIC_TRACE_DEV(mr) dev_name(&(mr)->pfnic->ibdev.dev)

TRACE_EVENT(pfnic_fault,
	TP_PROTO(struct pfnic_mr *mr, unsigned long va, size_t len, unsigned int flags,
		 unsigned long pages, int result),
	TP_ARGS(mr, va, len, flags, pages, result),
	TP_STRUCT__entry(
		__array(char, dev, IB_DEVICE_NAME_MAX)
		__field(u32, lkey)
		__field(unsigned long, va)
		__field(size_t, len)
		__field(unsigned int, flags)
		__field(unsigned long, pages)
		__field(int, result)
	),
	TP_fast_assign(
		strscpy(__entry->dev, PFNIC_TRACE_DEV(mr), IB_DEVICE_NAME_MAX);
		__entry->lkey = mr->ibmr.lkey;
		__entry->va = va;
		__entry->len = len;
		__entry->flags = flags;
		__entry->pages = pages;
		__entry->result = result;
	),
	TP_printk("dev=%s lkey=0x%x va=0x%lx len=%zu flags=%s pages=%lu result=%d",
		  __entry->dev, __entry->lkey, __entry->va, __entry->len,
		  __print_flags(__entry->flags, "|",
				{ PFNIC_FAULT_WRITE, "write" },
				{ PFNIC_FAULT_PREFETCH, "prefetch" },
				{ PFNIC_FAULT_SNAPSHOT, "snapshot" }),
		  __entry->pages, __entry->result)
);

DECLARE_EVENT_CLASS(pfnic_zap,
	TP_PROTO(struct pfnic_mr *mr, unsigned long start, unsigned long end,
		 unsigned long pages, u8 event),
	TP_ARGS(mr, start, end, pages, event),
	TP_STRUCT__entry(
		__array(char, dev, IB_DEVICE_NAME_MAX)
		__field(u32, lkey)
		__field(unsigned long, start)
		__field(unsigned long, end)
		__field(unsigned long, pages)
		__field(u8, event)
	),
	TP_fast_assign(
		strscpy(__entry->dev, PFNIC_TRACE_DEV(mr), IB_DEVICE_NAME_MAX);
		__entry->lkey = mr->ibmr.lkey;
		__entry->start = start;
		__entry->end = end;
		__entry->pages = pages;
		__entry->event = event;
	),
	TP_printk("dev=%s lkey=0x%x start=0x%lx end=0x%lx pages=%lu event=%s",
		  __entry->dev, __entry->lkey, __entry->start, __entry->end, __entry->pages,
		  __print_symbolic(__entry->event,
				   { MMU_NOTIFY_UNMAP, "unmap" },
				   { MMU_NOTIFY_CLEAR, "clear" },
				   { MMU_NOTIFY_PROTECTION_VMA, "protection_vma" },
				   { MMU_NOTIFY_PROTECTION_PAGE, "protection_page" },
				   { MMU_NOTIFY_SOFT_DIRTY, "soft_dirty" },
				   { MMU_NOTIFY_RELEASE, "release" },
				   { MMU_NOTIFY_MIGRATE, "migrate" },
				   { MMU_NOTIFY_EXCLUSIVE, "exclusive" }))
);

/* An MMU-notifier invalidation took translations of an ODP MR. */
DEFINE_EVENT(pfnic_zap, pfnic_invalidate,
	TP_PROTO(struct pfnic_mr *mr, unsigned long start, unsigned long end,
		 unsigned long pages, u8 event),
	TP_ARGS(mr, start, end, pages, event));

/* ... because the kernel was moving the pages. */
DEFINE_EVENT(pfnic_zap, pfnic_migrate,
	TP_PROTO(struct pfnic_mr *mr, unsigned long start, unsigned long end,
		 unsigned long pages, u8 event),
	TP_ARGS(mr, start, end, pages, event));

/* A QP stalled on a page fault runs again; result is the fault's. */
TRACE_EVENT(pfnic_resume,
	TP_PROTO(struct pfnic_qp *qp, struct pfnic_mr *mr, int result),
	TP_ARGS(qp, mr, result),
	TP_STRUCT__entry(
		__array(char, dev, IB_DEVICE_NAME_MAX)
		__field(u32, qpn)
		__field(u32, lkey)
		__field(u64, va)
		__field(u64, len)
		__field(int, result)
	),
	TP_fast_assign(
		strscpy(__entry->dev, PFNIC_TRACE_DEV(mr), IB_DEVICE_NAME_MAX);
		__entry->qpn = qp->ibqp.qp_num;
		__entry->lkey = mr->ibmr.lkey;
		__entry->va = qp->fault.va;
		__entry->len = qp->fault.len;
		__entry->result = result;
	),
	TP_printk("dev=%s qpn=0x%x lkey=0x%x va=0x%llx len=%llu result=%d",
		  __entry->dev, __entry->qpn, __entry->lkey, __entry->va, __entry->len,
		  __entry->result)
);

#endif /* PFNIC_TRACE_H */

/* define_trace.h includes this header again from the driver's folder */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE pfnic_trace
#include <trace/define_trace.h>
