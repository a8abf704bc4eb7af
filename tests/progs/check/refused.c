// The verifier refuses this one: a packet read without a bounds check.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int no_bounds_check(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	return data[20] == 6 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
