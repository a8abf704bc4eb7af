/* The address of a kernel function, taken as bpf_ksym_exists does (cilium/ebpf's kfunc.c): libbpf writes
 * an ld_imm64 of the function's BTF id (BPF_PSEUDO_BTF_ID), and the kernel replaces it with the
 * function's address from kallsyms (check_pseudo_btf_id), as it writes a map's address: the loader's. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_cpumask {};

extern struct bpf_cpumask *bpf_cpumask_create(void) __ksym __weak;
extern void bpf_cpumask_release(struct bpf_cpumask *cpumask) __ksym __weak;

SEC("tp_btf/task_newtask")
int kfunc_address(void *ctx)
{
	if (!!bpf_cpumask_create) {
		struct bpf_cpumask *mask = bpf_cpumask_create();

		if (mask)
			bpf_cpumask_release(mask);
		return 0;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
