// A big table the program only reads (a control plane fills it, as katran's ch_rings) and a counter
// it writes, for `check`'s map-writes rule.  -DWRITE_TABLE=V: the program also stores V into the
// entry it looked up (a rewrite that writes a map its original only reads).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

SEC("xdp")
int lookup(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 zero = 0, key;
	__u64 *h;
	__u32 *v;

	if (data + 4 > end)
		return XDP_PASS;
	key = *(__u32 *)data & 0xffff;
	v = bpf_map_lookup_elem(&table, &key);
	h = bpf_map_lookup_elem(&hits, &zero);
	if (h)
		__sync_fetch_and_add(h, 1);
#ifdef WRITE_TABLE
	if (v)
		*v = WRITE_TABLE;
#endif
	return v && *v ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
