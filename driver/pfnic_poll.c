// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: the polling engine, which spends a CPU to save user QPs their doorbells, as
 * io_uring's SQPOLL thread does for its rings.
 *
 * Without it, the engine lets go of a user QP whose send queue it emptied and marks the ring
 * idle, and the next post rings the doorbell: a system call per post when the poster waits
 * for each completion. With poll_usecs set, the engine hands such a QP to one kernel thread
 * instead, with the ring left marked busy: the thread looks at the send queues it holds over
 * and over, and runs the engine on any with WQEs, until a queue has stayed empty for
 * poll_usecs; then it marks that ring idle, looks once more, and lets the QP go. Posts meanwhile
 * are a store to the ring and nothing else. The provider needs no change: it rings only for a
 * ring marked idle (uapi/pfnic-abi.h gives the ordering both sides keep).
 *
 * The thread sleeps while it holds no QP. It holds a reference on each, and lets go of a QP
 * that leaves RTS (destroy moves a QP to the error state first), waits on a page fault, or
 * waits to send again after an RNR NAK or a missing ACK (the fault's resolution, or the
 * retry timer, runs the engine, which hands the QP back).
 */
#include <linux/kthread.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>

#include "pfnic_engine.h"

static unsigned int poll_usecs;
module_param(poll_usecs, uint, 0644);
MODULE_PARM_DESC(poll_usecs,
		 "poll a user QP's emptied send queue this many microseconds for new WQEs in a kernel thread, so that posts ring no doorbell (0: off; it spends a CPU while polling)");

/* QPs polled at most in one round: the rest wait for the next */
#define PFNIC_POLL_BATCH	16

static LIST_HEAD(pfnic_poll_qps);
static DEFINE_SPINLOCK(pfnic_poll_lock);	/* pfnic_poll_qps; taken inside a QP's lock */
static DECLARE_WAIT_QUEUE_HEAD(pfnic_poll_wait);
static struct task_struct *pfnic_poller;

/**
 * pfnic_poll_take() - hand a user QP whose send queue the engine emptied to the poller
 * @qp: the QP, in RTS, with a ring of its own
 *
 * Context: the engine, letting go of @qp; caller holds @qp->lock.
 * Return: true if the poller has it (until poll_usecs from now pass with no WQE): its ring
 * stays marked busy. False if polling is off: the caller marks the ring idle.
 */
bool pfnic_poll_take(struct pfnic_qp *qp)
{
	unsigned int usecs = READ_ONCE(poll_usecs);

	lockdep_assert_held(&qp->lock);
	if (!usecs || !pfnic_poller || qp->attr.qp_state != IB_QPS_RTS)
		return false;
	qp->poll_until = ktime_get_ns() + (u64)usecs * NSEC_PER_USEC;
	if (!list_empty(&qp->poll_entry))
		return true;
	kref_get(&qp->ref);
	spin_lock(&pfnic_poll_lock);
	list_add_tail(&qp->poll_entry, &pfnic_poll_qps);
	spin_unlock(&pfnic_poll_lock);
	wake_up(&pfnic_poll_wait);
	return true;
}

/*
 * One look at a polled QP: run the engine if WQEs wait; let the QP go if it left RTS, waits on
 * a fault or a retry timer, or stayed empty past its time (marking the ring idle first, with
 * a last look, as pfnic_engine_release() does). A QP someone else runs now is left for the
 * next round.
 */
static void pfnic_poll_one(struct pfnic_qp *qp)
{
	bool drive = false, leave = false;

	spin_lock_irq(&qp->lock);
	if (list_empty(&qp->poll_entry) || qp->running) {
		spin_unlock_irq(&qp->lock);
		return;
	}
	if (qp->stalled || qp->retry_wait) {
		/*
		 * The fault's resolution, or the retry timer of an RNR NAK or a missing ACK,
		 * runs the engine, which hands the QP back.
		 */
		leave = true;
	} else if (qp->attr.qp_state != IB_QPS_RTS) {
		/* as the engine leaves a QP out of RTS: a doorbell brings it back (SQD to RTS) */
		WRITE_ONCE(qp->sq.shared->engine_idle, 1);
		leave = true;
	} else if (pfnic_wq_count(&qp->sq)) {
		drive = true;
	} else if (!READ_ONCE(poll_usecs) || ktime_get_ns() > qp->poll_until) {
		/* marked idle, with a last look at the producer */
		drive = !pfnic_ring_mark_idle(qp);
		leave = !drive;
	}
	if (leave) {
		spin_lock(&pfnic_poll_lock);
		list_del_init(&qp->poll_entry);
		spin_unlock(&pfnic_poll_lock);
	}
	spin_unlock_irq(&qp->lock);
	if (drive) {
		pfnic_stat_add(qp->pfnic, PFNIC_STAT_POLLED_RUNS, 1);
		pfnic_engine_drive(qp);
	}
	if (leave)
		pfnic_qp_put(qp);
}

static int pfnic_poll_thread(void *unused)
{
	struct pfnic_qp *batch[PFNIC_POLL_BATCH], *qp;
	unsigned int n, i;

	while (!kthread_should_stop()) {
		wait_event_idle(pfnic_poll_wait,
				!list_empty_careful(&pfnic_poll_qps) || kthread_should_stop());
		n = 0;
		spin_lock_irq(&pfnic_poll_lock);
		list_for_each_entry(qp, &pfnic_poll_qps, poll_entry) {
			if (n == PFNIC_POLL_BATCH) {
				/* the next round starts where this one stopped */
				list_rotate_to_front(&qp->poll_entry, &pfnic_poll_qps);
				break;
			}
			kref_get(&qp->ref);
			batch[n++] = qp;
		}
		spin_unlock_irq(&pfnic_poll_lock);
		for (i = 0; i < n; i++) {
			pfnic_poll_one(batch[i]);
			pfnic_qp_put(batch[i]);
		}
		cond_resched();
	}
	return 0;
}

/* Module load: the poller's thread, asleep until a QP is handed to it. */
int pfnic_poll_init(void)
{
	struct task_struct *t = kthread_run(pfnic_poll_thread, NULL, "pfnic_poll");

	if (IS_ERR(t))
		return PTR_ERR(t);
	pfnic_poller = t;
	return 0;
}

/* Module unload, after every device went (and with them every QP the poller held). */
void pfnic_poll_exit(void)
{
	kthread_stop(pfnic_poller);
	pfnic_poller = NULL;
}
