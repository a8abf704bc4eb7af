/* An enumerator this kernel's enum bpf_func_id does not have (cilium/ebpf's relocs_enum.c does the
 * same with cgroup_subsys_id): clang writes bpf_core_enum_value as an ld_imm64 with an ENUMVAL_VALUE
 * record, and where the target lacks the enumerator libbpf poisons both of its slots (two
 * `call 0xbad2310`), guarded by the ENUMVAL_EXISTS check libbpf makes 0, so the kernel never walks
 * them.  The two slots stay one instruction to the linker's comparison. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

enum bpf_func_id___local {
	BPF_FUNC_bpfpatch_no_such_helper = 1,
};

SEC("socket")
int poisoned_enum(void *ctx)
{
	if (bpf_core_enum_value_exists(enum bpf_func_id___local, BPF_FUNC_bpfpatch_no_such_helper)) {
		volatile long val = bpf_core_enum_value(enum bpf_func_id___local, BPF_FUNC_bpfpatch_no_such_helper);
		return val != 0;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
