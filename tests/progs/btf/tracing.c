/* Programs whose context is the attach target's arguments, typed by the kernel's BTF
 * (tests/cli/test_cli_btfctx.py): a tp_btf program dereferencing its task pointers, and an
 * iterator reading its maybe-NULL task after the NULL check. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct task_struct;

SEC("tp_btf/sched_process_fork")
int fork_prog(unsigned long long *ctx)
{
	struct task_struct *parent = (void *)ctx[0];
	struct task_struct *child = (void *)ctx[1];

	return *(volatile int *)parent + *(volatile int *)child;
}

SEC("iter/task")
int task_prog(unsigned long long *ctx)
{
	struct task_struct *task = (void *)ctx[1];

	if (!task)
		return 0;
	return *(volatile int *)task & 1;
}

char _license[] SEC("license") = "GPL";
