// A store at a variable offset into a 4 KB map value: the prover's model builds a term per byte of
// the value for each byte stored (tests/kernel/test_prove_deadline.py: its encoding stops at the deadline).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct big {
	unsigned char buf[4096];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct big);
} bigmap SEC(".maps");

SEC("xdp")
int store_anywhere(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct big *b = bpf_map_lookup_elem(&bigmap, &key);
	if (!b)
		return XDP_PASS;
	__u32 at = (ctx->data_end - ctx->data) & 2047;
	b->buf[at] = 1;
	b->buf[at + 1] = 2;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
