/* A field this kernel's task_struct does not have, read only where bpf_core_field_exists says it
 * exists: clang writes the check as `r1 = 1` with a FIELD_EXISTS record, libbpf makes it 0 here, and
 * the read (whose CO-RE record cannot be resolved) becomes dead code the verifier never walks.  A
 * pass that folds clang's 1 keeps the read and drops the check: libbpf then refuses the object. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct___gone {
	int no_such_field_here;
} __attribute__((preserve_access_index));

SEC("kprobe/do_nanosleep")
int gone_field(struct pt_regs *ctx)
{
	struct task_struct___gone *t = (void *)bpf_get_current_task();
	int v;

	if (bpf_core_field_exists(t->no_such_field_here))
		v = BPF_CORE_READ(t, no_such_field_here);
	else
		v = bpf_get_smp_processor_id() + 7;
	return v;
}

char LICENSE[] SEC("license") = "GPL";
