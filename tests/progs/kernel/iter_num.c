/* bpf_iter_num_next's result is the kernel's PTR_TO_MEM | MEM_RDONLY | PTR_MAYBE_NULL of the pointee's
 * size (int: 4 bytes), holding the iterator's reference: read through it after the NULL check (loads),
 * write through it (refused: "R0 cannot write into rdonly_mem"), or read it after the iterator is
 * destroyed (refused: the reference is released, the pointer with it). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../iter_num.h"

SEC("raw_tp/sys_enter")
int sum_elements(const void *ctx)
{
	struct bpf_iter_num it;
	int total = 0;
	int *v;

	bpf_iter_num_new(&it, 0, 10);
	while ((v = bpf_iter_num_next(&it)))
		total += *v;
	bpf_iter_num_destroy(&it);
	return total & 1;
}

SEC("?raw_tp/sys_enter")
int write_element(const void *ctx)
{
	struct bpf_iter_num it;
	int *v;

	bpf_iter_num_new(&it, 0, 10);
	v = bpf_iter_num_next(&it);
	if (v)
		*(volatile int *)v = 1;
	bpf_iter_num_destroy(&it);
	return 0;
}

SEC("?raw_tp/sys_enter")
int read_after_destroy(const void *ctx)
{
	struct bpf_iter_num it;
	int r = 0;
	int *v;

	bpf_iter_num_new(&it, 0, 10);
	v = bpf_iter_num_next(&it);
	bpf_iter_num_destroy(&it);
	if (v)
		r = *(volatile int *)v;
	return r;
}

char LICENSE[] SEC("license") = "GPL";
