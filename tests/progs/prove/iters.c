/* The open-coded numbers iterator (bpf_iter_num_new / next / destroy), in an XDP program: the bound is the
 * packet's first byte (masked), each step adds i * the second byte.
 * tests/kernel/test_prove_iters.py mutates it (wrong rewrites get counterexamples) and proves the passes' rewrites. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../iter_num.h"

SEC("xdp")
int sum(struct xdp_md *ctx)
{
	unsigned char *p = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;
	struct bpf_iter_num it;
	unsigned int total = 0;
	int *i;

	if (p + 2 > end)
		return XDP_ABORTED;
	bpf_iter_num_new(&it, 2, 2 + (p[0] & 7));
	while ((i = bpf_iter_num_next(&it)))
		total += *i * p[1];
	bpf_iter_num_destroy(&it);
	return total & 3;
}

char LICENSE[] SEC("license") = "GPL";
