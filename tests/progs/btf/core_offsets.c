/* Kernel structures declared as another kernel laid them out (ebpf_exporter, retsnoop, Falco ship a
 * vmlinux.h of their own): the fields sit at other offsets than in the running kernel's BTF, and libbpf
 * rewrites each load's offset (a FIELD_BYTE_OFFSET record) before the verifier sees it.  total_vm is in
 * an anonymous struct of the kernel's mm_struct, found by name as libbpf finds it; no_such_field is
 * nowhere (its FIELD_EXISTS check is 0 in the kernel). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct mm_struct___old {
	unsigned long total_vm;
} __attribute__((preserve_access_index));

struct task_struct___old {
	int pad[3];
	int pid;
	struct mm_struct___old *mm;
	int no_such_field;
} __attribute__((preserve_access_index));

SEC("tp_btf/sched_switch")
int old_layout(unsigned long long *ctx)
{
	struct task_struct___old *next = (void *)ctx[2];
	struct mm_struct___old *mm = next->mm;
	volatile long v = next->pid;

	if (bpf_core_field_exists(next->no_such_field))
		v += next->no_such_field;
	if (mm)
		v += mm->total_vm;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
