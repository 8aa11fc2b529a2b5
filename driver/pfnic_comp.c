// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: the completer (see pfnic_engine.h). It decides what follows each run of a WQE: the
 * send completion, a stall on a page fault until the ODP core has resolved it, a retry after
 * an RNR NAK or a missing ACK, a failure once the retries are spent; it resolves the faults
 * that stall QPs (on pfnic_fault_wq) and lets the engine go idle.
 */
#include <linux/delay.h>
#include <linux/moduleparam.h>

#include "pfnic_engine.h"
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

/*
 * The RNR NAK timer's encoding (InfiniBand Architecture, table 45): min_rnr_timer 0 to 31
 * as microseconds, 0 being the longest.
 */
static const u32 pfnic_rnr_usecs[32] = {
	655360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1280, 1920,
	2560, 3840, 5120, 7680, 10240, 15360, 20480, 30720, 40960, 61440, 81920, 122880,
	163840, 245760, 327680, 491520,
};

/*
 * How long a requester waits after an RNR NAK: at least min_rnr_timer, as the NAK asks. A timer
 * of N jiffies fires at the N-th tick from now, which may come a whole jiffy early: one more.
 */
static unsigned long pfnic_rnr_delay(u8 timer)
{
	return usecs_to_jiffies(pfnic_rnr_usecs[timer & 31]) + 1;
}

/*
 * How long a requester waits for an ACK before it sends again: the QP's local ACK timeout,
 * 4.096 us << timeout. 0 means no timer on a wire, where the message would wait for ever;
 * here the requester looks again each second, so that a responder that comes up later is
 * found (a program that waits for ever on a NIC is not failed by this).
 */
unsigned long pfnic_ack_timeout(u8 timeout)
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
	pfnic_mr_put(qp->fault.mr);
	qp->fault.mr = NULL;
}

/**
 * pfnic_ring_mark_idle() - mark a user QP's send ring idle, so that its next post rings the
 *			    doorbell
 * @qp: the QP, with a ring of its own
 *
 * The mark goes before a second look at the producer, as the provider orders its producer
 * store before its look at the mark: either the provider rings, or this look sees its WQE.
 *
 * Context: caller holds @qp->lock.
 * Return: true if the ring stays marked; false if a WQE the engine may run came meanwhile
 * (the mark is taken back: the caller runs it).
 */
bool pfnic_ring_mark_idle(struct pfnic_qp *qp)
{
	lockdep_assert_held(&qp->lock);
	WRITE_ONCE(qp->sq.shared->engine_idle, 1);
	/* the mark, then the producer: pairs with the provider's producer, then the mark */
	smp_mb();
	if (qp->attr.qp_state == IB_QPS_RTS && !qp->stalled && pfnic_wq_count(&qp->sq)) {
		WRITE_ONCE(qp->sq.shared->engine_idle, 0);
		return false;
	}
	return true;
}

/*
 * Lets go of the engine (@qp->running) as it stops; caller holds @qp->lock. @idle: it stops
 * because nothing is left for it to do, so a user QP's provider must ring the doorbell for
 * what it posts next. Return: false if a WQE came meanwhile (seen after the idle mark was
 * published): then the engine runs on, and keeps it.
 */
bool pfnic_engine_release(struct pfnic_qp *qp, bool idle)
{
	lockdep_assert_held(&qp->lock);
	/* a ring the polling engine takes stays marked busy: no doorbell needed */
	if (idle && qp->sq.shared && !pfnic_poll_take(qp) && !pfnic_ring_mark_idle(qp))
		return false;
	qp->running = false;
	wake_up_all(&qp->idle);
	return true;
}

/**
 * pfnic_comp_step() - the completer: what follows one run of the WQE at the send queue's head
 * @qp: the requester, whose engine ran the WQE (qp->cur, qp->sq_busy set)
 * @gen: the send queue's generation when the WQE was taken
 * @step: how the run ended
 * @status: the completion status, for a run that ended (PFNIC_DONE)
 *
 * A WQE that ended completes, in order, with the QP moved to the error state first if it
 * failed; then a flush that came meanwhile completes the rest. One that faulted stalls the
 * QP until the ODP core has resolved the fault (pfnic_engine_fault()). One that met an RNR
 * NAK, or no ACK, runs again after the responder's RNR timer or the local ACK timeout, as
 * many times as rnr_retry and retry_cnt allow, and then fails. A WQE taken away meanwhile (the
 * QP reset) goes without a completion; one whose QP moved to the error state completes with
 * IB_WC_WR_FLUSH_ERR unless it had failed on its own.
 *
 * Context: the engine, which runs @qp (@qp->running); takes @qp->lock.
 * Return: true if the engine goes on with the send queue (the next WQE, or the same again);
 * false if it stopped and let go of @qp (a stall, or a retry's timer queued).
 */
bool pfnic_comp_step(struct pfnic_qp *qp, u32 gen, enum pfnic_step step,
		     enum ib_wc_status status)
{
	bool flush;

	spin_lock_irq(&qp->lock);
	if (qp->sq.gen != gen) {
		/* reset while we ran it: its WQEs went without completions */
		qp->sq_busy = false;
		spin_unlock_irq(&qp->lock);
		pfnic_forget_fault(qp, step);
		return true;
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
		return true;
	}
	if (step == PFNIC_FAULT) {
		/* its buffers are untouched while it waits: a flush may complete it */
		qp->sq_busy = false;
		qp->stalled = true;
		qp->fault_gen = gen;
		pfnic_engine_release(qp, false);
		spin_unlock_irq(&qp->lock);
		queue_work(pfnic_fault_wq, &qp->fault_work);
		return false;
	}
	if (step == PFNIC_WAIT) {
		/* packets in flight: an answer, or the deadline, runs the WQE again */
		qp->sq_busy = false;
		if (!skb_queue_empty(&qp->wire.acks)) {
			spin_unlock_irq(&qp->lock);
			return true;
		}
		if (READ_ONCE(qp->wire.ahead_wqes)) {
			/* a user ring's next post rings the doorbell, to go out behind it */
			if (qp->sq.shared)
				WRITE_ONCE(qp->sq.shared->engine_idle, 1);
			/* the mark, then a look at the producer: as pfnic_ring_mark_idle() */
			smp_mb();
			/* posted after the requester's last look, and before the mark: sent now */
			if (qp->wire.ahead_starved &&
			    pfnic_wq_count(&qp->sq) > qp->wire.nahead + 1) {
				if (qp->sq.shared)
					WRITE_ONCE(qp->sq.shared->engine_idle, 0);
				spin_unlock_irq(&qp->lock);
				return true;
			}
		}
		qp->retry_wait = true;
		qp->wire.waiting = true;
		queue_delayed_work(pfnic_wq, &qp->rnr_work,
				   max_t(long, 1, (long)(qp->wire.deadline - jiffies)));
		pfnic_engine_release(qp, false);
		spin_unlock_irq(&qp->lock);
		return false;
	}
	if (step == PFNIC_RNR) {
		if (qp->attr.rnr_retry == 7 || qp->rnr_left) {
			if (qp->attr.rnr_retry != 7)
				qp->rnr_left--;
			qp->sq_busy = false;
			/* until the timer, no one else runs the QP (its doorbell, the poller) */
			qp->retry_wait = true;
			qp->wire.waiting = false;
			/* in place of the ACK timeout's timer, if that is still queued */
			mod_delayed_work(pfnic_wq, &qp->rnr_work, pfnic_rnr_delay(qp->rnr_timer));
			pfnic_engine_release(qp, false);
			spin_unlock_irq(&qp->lock);
			pfnic_stat_add(qp->pfnic, PFNIC_STAT_RNR_RETRIES, 1);
			return false;
		}
		status = IB_WC_RNR_RETRY_EXC_ERR;
	}
	if (step == PFNIC_NO_ACK) {
		if (!qp->attr.timeout || qp->retry_left) {
			if (qp->attr.timeout)
				qp->retry_left--;
			qp->sq_busy = false;
			/* as for RNR: the timer alone runs it again */
			qp->retry_wait = true;
			qp->wire.waiting = false;
			mod_delayed_work(pfnic_wq, &qp->rnr_work,
					 pfnic_ack_timeout(qp->attr.timeout));
			pfnic_engine_release(qp, false);
			spin_unlock_irq(&qp->lock);
			pfnic_stat_add(qp->pfnic, PFNIC_STAT_ACK_TIMEOUTS, 1);
			return false;
		}
		status = IB_WC_RETRY_EXC_ERR;
	}
	pfnic_wq_pop(&qp->sq);
	qp->wire.started = false;
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
	return true;
}

/* The retry timer (RNR or ACK timeout): the requester runs the WQE again. */
void pfnic_engine_rnr_retry(struct work_struct *work)
{
	struct pfnic_qp *qp = container_of(to_delayed_work(work), struct pfnic_qp, rnr_work);

	pfnic_engine_drive_retry(qp);
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
	struct pfnic_mr *mr = qp->fault.mr;
	unsigned int delay = READ_ONCE(inject_fault_delay_ms);
	int rv;

	if (delay)
		msleep(delay);
	if (pfnic_fault_busy_injected())
		rv = -EBUSY;
	else
		rv = pfnic_odp_fault(mr, qp->fault.va, qp->fault.len,
				     qp->fault.write ? PFNIC_FAULT_WRITE : 0);
	trace_pfnic_resume(qp, mr, rv);
	if (rv == -EBUSY && qp->busy_rounds < PFNIC_FAULT_BUSY_ROUNDS) {
		qp->busy_rounds++;
		pfnic_stat_add(qp->pfnic, PFNIC_STAT_FAULT_RETRIES, 1);
		rv = 0;
	} else {
		qp->busy_rounds = 0;
	}

	spin_lock_irq(&qp->lock);
	qp->fault.mr = NULL;
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
