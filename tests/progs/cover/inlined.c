/* Coverage fixture: one always-inline function, two call sites; the packet's first byte picks one. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 total = 0, small = 0, big = 0;

static __always_inline __u64 weigh(unsigned char b)
{
	__u64 w = b * 3 + 1; /* MARK weigh */
	if (w > 100)
		big += 1; /* MARK big */
	return w;
}

SEC("xdp")
int inlined(struct xdp_md *ctx)
{
	unsigned char *p = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;

	if (p + 2 > end)
		return XDP_ABORTED;
	if (p[0] == 1) {
		total += weigh(p[1]); /* MARK site_a */
		return XDP_PASS;
	}
	if (p[0] == 2) {
		small += weigh(p[1] >> 4); /* MARK site_b */
		return XDP_DROP;
	}
	return XDP_TX; /* MARK other */
}

char LICENSE[] SEC("license") = "GPL";
