/* bpf_kptr_xchg's result is an acquired reference (is_acquire_function): the old pointer it takes out
 * of the map value's kptr field can be stashed again or released.  The second xchg passes the first
 * one's result as its released argument. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define __kptr __attribute__((btf_type_tag("kptr")))

struct task_struct {
	int pid;
} __attribute__((preserve_access_index));
extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

struct value {
	struct task_struct __kptr *task;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, int);
	__type(value, struct value);
} stash SEC(".maps");

SEC("tp_btf/task_newtask")
int BPF_PROG(swap_tasks, struct task_struct *task, __u64 clone_flags)
{
	struct task_struct *acquired, *old;
	struct value *v;
	int key = 0;

	v = bpf_map_lookup_elem(&stash, &key);
	if (!v)
		return 0;
	acquired = bpf_task_acquire(task);
	if (!acquired)
		return 0;
	old = bpf_kptr_xchg(&v->task, acquired);
	if (old)
		old = bpf_kptr_xchg(&v->task, old);
	if (old)
		bpf_task_release(old);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
