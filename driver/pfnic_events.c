// SPDX-License-Identifier: GPL-2.0-only
/*
 * pfnic: the event channel, /dev/pfnic-events (record format and rules for readers:
 * uapi/pfnic-events.h), and the memory-hotplug notifier that feeds it.
 *
 * Invalidations produce records from MMU-notifier context, where nothing may sleep or
 * allocate. So each reader gets a fixed ring at open(), producing only copies into the rings
 * under their spinlocks, and a ring with no room counts what it misses instead: the reader
 * learns the count from a LOST record, and memory use grows with readers, never with events.
 */
#include <linux/fs.h>
#include <linux/memory.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/pid_namespace.h>
#include <linux/poll.h>
#include <linux/rculist.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <rdma/restrack.h>

#include "pfnic.h"
#include "uapi/pfnic-events.h"

static unsigned int event_records = 1024;
module_param(event_records, uint, 0644);
MODULE_PARM_DESC(event_records,
		 "records each reader of /dev/pfnic-events can have waiting (16 to 1048576)");

/**
 * struct pfnic_reader - one open() of /dev/pfnic-events
 * @node: in pfnic_readers (RCU for producers, pfnic_readers_lock for changes)
 * @lock: protects the ring and the counts below; producers take it in notifier context
 * @read_lock: serializes read()s, so one can look at a record before taking it
 * @wait: read() and poll() wait here for records
 * @ring: @size records; [@head, @head + @count) wait to be read
 * @seq: the last sequence number given, to a record queued or missed
 * @lost: records missed since the last LOST record was queued
 * @lost_from: the sequence number of the first of those
 * @all: opened with CAP_SYS_ADMIN: sees every MR's records
 * @euid: otherwise, the owner its MR records must have
 * @pid_ns: the namespace whose numbers its records' pids are
 */
struct pfnic_reader {
	struct list_head node;
	spinlock_t lock;	/* the ring; see above */
	struct mutex read_lock;	/* see above */
	wait_queue_head_t wait;
	struct pfnic_event *ring;
	u32 size;
	u32 head;
	u32 count;
	u64 seq;
	u64 lost;
	u64 lost_from;
	bool all;
	kuid_t euid;
	struct pid_namespace *pid_ns;
};

static LIST_HEAD(pfnic_readers);
static DEFINE_MUTEX(pfnic_readers_lock);	/* adding and removing readers */
static unsigned int pfnic_nreaders;		/* under pfnic_readers_lock */

/*
 * Readers at once: every invalidation visits each, and each holds its ring (charged to the
 * opener's memory cgroup). Unprivileged openers may have PFNIC_MAX_USER_READERS each and
 * PFNIC_MAX_READERS together; a reader with CAP_SYS_ADMIN (the control plane) is counted
 * but never refused, so that no user can lock the operator out by opening readers.
 */
#define PFNIC_MAX_READERS 256
#define PFNIC_MAX_USER_READERS 16

/* Whether a reader for @euid may be added now. Caller holds pfnic_readers_lock. */
static bool pfnic_reader_allowed(bool all, kuid_t euid)
{
	unsigned int mine = 0, users = 0;
	struct pfnic_reader *r;

	lockdep_assert_held(&pfnic_readers_lock);
	if (all)
		return true;
	list_for_each_entry(r, &pfnic_readers, node) {
		if (r->all)
			continue;
		users++;
		mine += uid_eq(r->euid, euid);
	}
	return users < PFNIC_MAX_READERS && mine < PFNIC_MAX_USER_READERS;
}

/*
 * The memory block being offlined, from MEM_GOING_OFFLINE to MEM_OFFLINE or
 * MEM_CANCEL_OFFLINE (the kernel offlines one range at a time), so that a migration out of
 * it can say so. @end_pfn is 0 when none is.
 */
static DEFINE_SPINLOCK(pfnic_offlining_lock);
static unsigned long pfnic_offlining_start, pfnic_offlining_end;
static struct pfnic_block pfnic_offlining_block;

/* Queues the LOST record that accounts for what @r missed. Caller holds @r->lock. */
static void pfnic_reader_queue_lost(struct pfnic_reader *r)
{
	struct pfnic_event *slot = &r->ring[(r->head + r->count) % r->size];

	lockdep_assert_held(&r->lock);
	memset(slot, 0, sizeof(*slot));
	slot->size = sizeof(*slot);
	slot->type = PFNIC_EVENT_LOST;
	slot->seq = r->lost_from;
	slot->lost = r->lost;
	slot->time_ns = ktime_get_ns();
	slot->realtime_ns = ktime_get_real_ns();
	slot->node = -1;
	slot->block = -1;
	r->count++;
	r->lost = 0;
}

/*
 * Gives @r a copy of @ev with its own sequence number and @owner's pid as @r sees it, or
 * counts it missed. Once one is missed, the next has to wait until there is room for the
 * LOST record as well: records never overtake the loss they follow.
 */
static void pfnic_reader_queue(struct pfnic_reader *r, const struct pfnic_event *ev,
			       struct pid *owner)
{
	struct pfnic_event *slot;
	bool queued = false;

	spin_lock(&r->lock);
	r->seq++;
	if (r->lost && r->count + 2 <= r->size)
		pfnic_reader_queue_lost(r);
	if (r->lost || r->count == r->size) {
		if (!r->lost++)
			r->lost_from = r->seq;
	} else {
		slot = &r->ring[(r->head + r->count) % r->size];
		*slot = *ev;
		slot->seq = r->seq;
		slot->pid = owner ? pid_nr_ns(owner, r->pid_ns) : 0;
		r->count++;
		queued = true;
	}
	spin_unlock(&r->lock);
	if (queued)
		wake_up_interruptible_poll(&r->wait, EPOLLIN | EPOLLRDNORM);
}

static void pfnic_event_init(struct pfnic_event *ev, enum pfnic_event_type type, u16 reason,
			     const struct pfnic_block *blk)
{
	memset(ev, 0, sizeof(*ev));
	ev->size = sizeof(*ev);
	ev->type = type;
	ev->reason = reason;
	ev->time_ns = ktime_get_ns();
	ev->realtime_ns = ktime_get_real_ns();
	ev->node = blk ? blk->node : -1;
	ev->block = blk ? blk->block : -1;
}

/* The ABI's name for what made the kernel invalidate. */
static u16 pfnic_event_reason(u8 event)
{
	switch (event) {
	case MMU_NOTIFY_UNMAP:
		return PFNIC_REASON_UNMAP;
	case MMU_NOTIFY_CLEAR:
		return PFNIC_REASON_CLEAR;
	case MMU_NOTIFY_PROTECTION_VMA:
		return PFNIC_REASON_PROTECTION_VMA;
	case MMU_NOTIFY_PROTECTION_PAGE:
		return PFNIC_REASON_PROTECTION_PAGE;
	case MMU_NOTIFY_SOFT_DIRTY:
		return PFNIC_REASON_SOFT_DIRTY;
	case MMU_NOTIFY_RELEASE:
		return PFNIC_REASON_RELEASE;
	case MMU_NOTIFY_MIGRATE:
		return PFNIC_REASON_MIGRATE;
	case MMU_NOTIFY_EXCLUSIVE:
		return PFNIC_REASON_EXCLUSIVE;
	default:
		return PFNIC_REASON_OTHER;
	}
}

/**
 * pfnic_events_listened() - whether anyone reads the event channel
 *
 * For producers on hot paths (every invalidation): with no reader there is no record to
 * build. A reader that opens meanwhile sees what happens from its open() on, so a stale
 * answer loses nothing it was promised.
 *
 * Return: true if a reader is open.
 */
bool pfnic_events_listened(void)
{
	return READ_ONCE(pfnic_nreaders);
}

/**
 * pfnic_event_mr() - tell the readers allowed to see @mr's records what happened to it
 * @mr: the MR
 * @type: PFNIC_EVENT_INVALIDATE, PFNIC_EVENT_MIGRATE or PFNIC_EVENT_PINNED
 * @mmu_event: for INVALIDATE and MIGRATE, the invalidation's mmu_notifier_event
 * @start: the first user address concerned
 * @end: the end of the range concerned
 * @pages: pages concerned
 * @blk: the memory block concerned, or NULL
 *
 * Context: any, without sleeping: MMU-notifier invalidations call it.
 */
void pfnic_event_mr(struct pfnic_mr *mr, enum pfnic_event_type type, u8 mmu_event,
		    unsigned long start, unsigned long end, unsigned long pages,
		    const struct pfnic_block *blk)
{
	struct pfnic_reader *r;
	struct pfnic_event ev;

	if (!pfnic_events_listened())
		return;
	pfnic_event_init(&ev, type, type == PFNIC_EVENT_PINNED ? 0 : pfnic_event_reason(mmu_event),
			 blk);
	if (blk && type == PFNIC_EVENT_MIGRATE)
		ev.flags |= PFNIC_EVENT_F_OFFLINING;
	ev.mrn = READ_ONCE(mr->ibmr.res.id);
	ev.lkey = mr->ibmr.lkey;
	ev.start = start;
	ev.end = end;
	ev.pages = pages;
	strscpy(ev.device, dev_name(&mr->pfnic->ibdev.dev), sizeof(ev.device));

	rcu_read_lock();
	list_for_each_entry_rcu(r, &pfnic_readers, node)
		if (r->all || uid_eq(r->euid, mr->owner_euid))
			pfnic_reader_queue(r, &ev, mr->owner);
	rcu_read_unlock();
}

/**
 * pfnic_event_offlining() - whether a page lies in the memory block being offlined
 * @pfn: the page's frame number
 * @blk: set to that block when it does
 *
 * Context: any, without sleeping.
 * Return: true if offlining of a block that holds @pfn is under way.
 */
bool pfnic_event_offlining(unsigned long pfn, struct pfnic_block *blk)
{
	bool in;

	spin_lock(&pfnic_offlining_lock);
	in = pfn >= pfnic_offlining_start && pfn < pfnic_offlining_end;
	if (in)
		*blk = pfnic_offlining_block;
	spin_unlock(&pfnic_offlining_lock);
	return in;
}

/* ---- memory hotplug ------------------------------------------------------------------------ */

static u16 pfnic_memory_action(unsigned long action)
{
	switch (action) {
	case MEM_GOING_ONLINE:
		return PFNIC_MEMORY_GOING_ONLINE;
	case MEM_ONLINE:
		return PFNIC_MEMORY_ONLINE;
	case MEM_CANCEL_ONLINE:
		return PFNIC_MEMORY_CANCEL_ONLINE;
	case MEM_GOING_OFFLINE:
		return PFNIC_MEMORY_GOING_OFFLINE;
	case MEM_OFFLINE:
		return PFNIC_MEMORY_OFFLINE;
	case MEM_CANCEL_OFFLINE:
		return PFNIC_MEMORY_CANCEL_OFFLINE;
	default:
		return 0;	/* steps before the memory map exists, for instance */
	}
}

/*
 * A memory block changes state: every reader hears of it. When one starts going offline,
 * migrations out of it are marked as such until it is offline (or stays online), and the
 * pinned MRs that hold pages in it, which make offlining fail, are named.
 */
static int pfnic_memory_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	const struct memory_notify *mn = data;
	u16 what = pfnic_memory_action(action);
	struct pfnic_block blk;
	struct pfnic_reader *r;
	struct pfnic_event ev;

	if (!what)
		return NOTIFY_DONE;
	blk.block = PFN_PHYS(mn->start_pfn) / memory_block_size_bytes();
	blk.node = pfn_to_nid(mn->start_pfn);

	spin_lock(&pfnic_offlining_lock);
	if (what == PFNIC_MEMORY_GOING_OFFLINE) {
		pfnic_offlining_start = mn->start_pfn;
		pfnic_offlining_end = mn->start_pfn + mn->nr_pages;
		pfnic_offlining_block = blk;
	} else if (what == PFNIC_MEMORY_OFFLINE || what == PFNIC_MEMORY_CANCEL_OFFLINE) {
		pfnic_offlining_end = 0;
	}
	spin_unlock(&pfnic_offlining_lock);

	pfnic_event_init(&ev, PFNIC_EVENT_MEMORY, what, &blk);
	ev.start = PFN_PHYS(mn->start_pfn);
	ev.end = PFN_PHYS(mn->start_pfn + mn->nr_pages);
	ev.pages = mn->nr_pages;
	rcu_read_lock();
	list_for_each_entry_rcu(r, &pfnic_readers, node)
		pfnic_reader_queue(r, &ev, NULL);
	rcu_read_unlock();

	/* naming the pinned MRs scans every page they pin: only for someone to read it */
	if (what == PFNIC_MEMORY_GOING_OFFLINE && pfnic_events_listened())
		pfnic_mr_report_pinned(mn->start_pfn, mn->nr_pages, &blk);
	return NOTIFY_OK;
}

static struct notifier_block pfnic_memory_nb = {
	.notifier_call = pfnic_memory_notify,
};

/* ---- the character device -------------------------------------------------------------- */

static int pfnic_events_open(struct inode *inode, struct file *file)
{
	unsigned int size = clamp(READ_ONCE(event_records), 16U, 1U << 20);
	struct pfnic_reader *r;

	/* a reader only reads */
	if (file->f_mode & FMODE_WRITE)
		return -EINVAL;
	r = kzalloc(sizeof(*r), GFP_KERNEL_ACCOUNT);
	if (!r)
		return -ENOMEM;
	r->ring = kvcalloc(size, sizeof(*r->ring), PFNIC_GFP_USER_SIZED);
	if (!r->ring) {
		kfree(r);
		return -ENOMEM;
	}
	spin_lock_init(&r->lock);
	mutex_init(&r->read_lock);
	init_waitqueue_head(&r->wait);
	r->size = size;
	r->all = capable(CAP_SYS_ADMIN);
	r->euid = current_euid();
	r->pid_ns = get_pid_ns(task_active_pid_ns(current));

	mutex_lock(&pfnic_readers_lock);
	if (!pfnic_reader_allowed(r->all, r->euid)) {
		mutex_unlock(&pfnic_readers_lock);
		put_pid_ns(r->pid_ns);
		kvfree(r->ring);
		kfree(r);
		return -EMFILE;
	}
	list_add_tail_rcu(&r->node, &pfnic_readers);
	/* counted once on the list: a producer that sees the count finds the reader */
	WRITE_ONCE(pfnic_nreaders, pfnic_nreaders + 1);
	mutex_unlock(&pfnic_readers_lock);
	file->private_data = r;
	return stream_open(inode, file);
}

static int pfnic_events_release(struct inode *inode, struct file *file)
{
	struct pfnic_reader *r = file->private_data;

	mutex_lock(&pfnic_readers_lock);
	list_del_rcu(&r->node);
	WRITE_ONCE(pfnic_nreaders, pfnic_nreaders - 1);
	mutex_unlock(&pfnic_readers_lock);
	/* no producer is still copying into the ring */
	synchronize_rcu();
	put_pid_ns(r->pid_ns);
	kvfree(r->ring);
	kfree(r);
	return 0;
}

/*
 * The oldest record, copied to @ev, if there is one; a loss that no record has followed yet
 * is turned into its LOST record here, so a reader hears of it without waiting for more.
 */
static bool pfnic_reader_peek(struct pfnic_reader *r, struct pfnic_event *ev)
{
	bool any;

	spin_lock(&r->lock);
	if (!r->count && r->lost)
		pfnic_reader_queue_lost(r);
	any = r->count;
	if (any)
		*ev = r->ring[r->head];
	spin_unlock(&r->lock);
	return any;
}

static ssize_t pfnic_events_read(struct file *file, char __user *buf, size_t len,
				 loff_t *off)
{
	struct pfnic_reader *r = file->private_data;
	struct pfnic_event ev;
	ssize_t done = 0;
	int rv = 0;

	if (len < sizeof(ev))
		return -EINVAL;
	if (mutex_lock_interruptible(&r->read_lock))
		return -ERESTARTSYS;
	while (done + sizeof(ev) <= len) {
		if (!pfnic_reader_peek(r, &ev)) {
			if (done)
				break;
			if (file->f_flags & O_NONBLOCK) {
				rv = -EAGAIN;
				break;
			}
			mutex_unlock(&r->read_lock);
			if (wait_event_interruptible(r->wait,
						     READ_ONCE(r->count) || READ_ONCE(r->lost)))
				return -ERESTARTSYS;
			if (mutex_lock_interruptible(&r->read_lock))
				return -ERESTARTSYS;
			continue;
		}
		/* taken from the ring only once the reader has it */
		if (copy_to_user(buf + done, &ev, sizeof(ev))) {
			rv = -EFAULT;
			break;
		}
		spin_lock(&r->lock);
		r->head = (r->head + 1) % r->size;
		r->count--;
		spin_unlock(&r->lock);
		done += sizeof(ev);
	}
	mutex_unlock(&r->read_lock);
	return done ? done : rv;
}

static __poll_t pfnic_events_poll(struct file *file, poll_table *wait)
{
	struct pfnic_reader *r = file->private_data;

	poll_wait(file, &r->wait, wait);
	return READ_ONCE(r->count) || READ_ONCE(r->lost) ? EPOLLIN | EPOLLRDNORM : 0;
}

static const struct file_operations pfnic_events_fops = {
	.owner = THIS_MODULE,
	.open = pfnic_events_open,
	.release = pfnic_events_release,
	.read = pfnic_events_read,
	.poll = pfnic_events_poll,
};

static struct miscdevice pfnic_events_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "pfnic-events",
	.fops = &pfnic_events_fops,
	/* anyone may read; what each reader sees is filtered (see the uapi header) */
	.mode = 0444,
};

/**
 * pfnic_events_init() - create /dev/pfnic-events and follow memory hotplug
 *
 * Return: 0 or the error of either.
 */
int pfnic_events_init(void)
{
	int rv = misc_register(&pfnic_events_dev);

	if (rv)
		return rv;
	rv = register_memory_notifier(&pfnic_memory_nb);
	if (rv)
		misc_deregister(&pfnic_events_dev);
	return rv;
}

void pfnic_events_exit(void)
{
	unregister_memory_notifier(&pfnic_memory_nb);
	misc_deregister(&pfnic_events_dev);
}
