// Maps without keys, as bpf-examples' nat64 (reclaimed_addrs, a queue): `check` lists a queue and a
// stack by popping and pushing back, and says a bloom filter is not compared.  -DPUSH_PLUS=N: the
// stack gets the packet's first byte plus N (a rewrite whose only difference is in the stack).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#ifndef PUSH_PLUS
#define PUSH_PLUS 0
#endif

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 8);
	__type(value, __u32);
} fifo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 8);
	__type(value, __u32);
} lifo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 16);
	__type(value, __u32);
} seen SEC(".maps");

SEC("xdp")
int push(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 v, w, old;

	if (data + 1 > end)
		return XDP_PASS;
	v = *(__u8 *)data;
	w = v + PUSH_PLUS;
	if (bpf_map_peek_elem(&seen, &v) == 0)
		return XDP_DROP;
	bpf_map_push_elem(&seen, &v, 0);
	if (bpf_map_push_elem(&fifo, &v, 0))  /* full: drop the oldest */
		bpf_map_pop_elem(&fifo, &old), bpf_map_push_elem(&fifo, &v, 0);
	bpf_map_push_elem(&lifo, &w, BPF_EXIST);  /* full: the oldest goes */
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
