// Programs of several types for the kernel-oracle tests; each result is
// computable from the packet alone, so the tests check it independently.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} counter SEC(".maps");

// socket filter: accept the packet's length divided by its first byte (+1).
SEC("socket")
int sock_div(struct __sk_buff *skb)
{
	__u8 b = 0;
	bpf_skb_load_bytes(skb, 0, &b, 1);
	return skb->len / ((__u32)b + 1);
}

// tc: count packets in an array map, return the new count.
SEC("tc")
int tc_count(struct __sk_buff *skb)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&counter, &k);
	if (!v)
		return 0;
	*v += 1;
	return *v;
}

// xdp: drop (1) packets whose first byte is odd, pass (2) the others.
SEC("xdp")
int xdp_odd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (data + 1 > end)
		return XDP_ABORTED;
	return (*(__u8 *)data & 1) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
