/* Coverage fixture: which lines run depends on the packet's first two bytes. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 drops = 0, odd = 0, seen_ff = 0;

static __attribute__((noinline)) int classify(unsigned char b)
{
	if (b & 1) {
		odd += 1; /* MARK odd */
		return 1;
	}
	return 2;
}

SEC("xdp")
int cover_me(struct xdp_md *ctx)
{
	unsigned char *p = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;

	if (p + 2 > end)
		return XDP_ABORTED;
	if (p[0] == 0x42) {
		drops += 1; /* MARK drop */
		return XDP_DROP;
	}
	if (p[1] == 0xff) {
		seen_ff += 1; /* MARK never */
		return XDP_TX;
	}
	return classify(p[1]) == 1 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
