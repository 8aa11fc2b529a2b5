// SPDX-License-Identifier: GPL-2.0-only
/*
 * rig_splat: makes the kernel report a problem of a chosen kind, so that a test can show
 * the VM rig fails a guest whose kernel reported one. Each kind is a bug on purpose:
 *   warn     WARN_ON()
 *   kasan    a read past the end of a kmalloc'd object (KASAN)
 *   lockdep  two mutexes taken in both orders (lockdep's circular dependency)
 *   sleep    an allocation that may sleep while holding a spinlock (DEBUG_ATOMIC_SLEEP)
 *   leak     an object allocated and forgotten (kmemleak, at the rig's end-of-run scan)
 * Loading it with kinds=a,b,... does each named, in that order; loading does nothing else,
 * and it unloads. A KASAN report turns lockdep off: name kasan after lockdep.
 */
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>

static char *kinds = "";
module_param(kinds, charp, 0444);
MODULE_PARM_DESC(kinds, "comma-separated: warn, kasan, lockdep, sleep, leak");

static DEFINE_MUTEX(rig_first);
static DEFINE_MUTEX(rig_second);
static DEFINE_SPINLOCK(rig_spin);

static noinline void rig_kasan(void)
{
	char *p = kmalloc(16, GFP_KERNEL);
	size_t past_end = 16;

	if (!p)
		return;
	OPTIMIZER_HIDE_VAR(past_end);
	pr_info("rig_splat: byte 16 of a 16-byte object holds %d\n", READ_ONCE(p[past_end]));
	kfree(p);
}

static noinline void rig_lockdep(void)
{
	mutex_lock(&rig_first);
	mutex_lock(&rig_second);
	mutex_unlock(&rig_second);
	mutex_unlock(&rig_first);
	/* the other order: never a deadlock here, but one waiting to happen */
	mutex_lock(&rig_second);
	mutex_lock(&rig_first);
	mutex_unlock(&rig_first);
	mutex_unlock(&rig_second);
}

static noinline void rig_sleep(void)
{
	void *p;

	spin_lock(&rig_spin);
	p = kmalloc(64, GFP_KERNEL);
	spin_unlock(&rig_spin);
	kfree(p);
}

static noinline void rig_leak(void)
{
	void *p;
	int i;

	/*
	 * Each object's only pointer is gone when the next one is made; the last may linger
	 * in a stack slot a scan still sees, the others cannot.
	 */
	for (i = 0; i < 16; i++) {
		p = kmalloc(128, GFP_KERNEL);
		OPTIMIZER_HIDE_VAR(p);
	}
}

static int __init rig_splat_init(void)
{
	char *list = kstrdup(kinds, GFP_KERNEL), *cur, *kind;

	if (!list)
		return -ENOMEM;
	cur = list;
	while ((kind = strsep(&cur, ","))) {
		if (!strcmp(kind, "warn"))
			WARN_ON(1);
		else if (!strcmp(kind, "kasan"))
			rig_kasan();
		else if (!strcmp(kind, "lockdep"))
			rig_lockdep();
		else if (!strcmp(kind, "sleep"))
			rig_sleep();
		else if (!strcmp(kind, "leak"))
			rig_leak();
		else if (*kind)
			pr_err("rig_splat: unknown kind %s\n", kind);
	}
	kfree(list);
	return 0;
}

static void __exit rig_splat_exit(void)
{
}

module_init(rig_splat_init);
module_exit(rig_splat_exit);
MODULE_DESCRIPTION("Kernel reports on purpose, to test the VM rig");
MODULE_LICENSE("GPL");
