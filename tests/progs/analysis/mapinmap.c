// A map of maps whose inner map only its BTF declares (__array(values, ...)): a lookup in the outer
// map gives the inner map, a lookup in that one a value of the inner map's size (a constant key in
// bounds of the inner array: never NULL on 6.14+).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
	__array(values, struct inner);
} outer SEC(".maps");

SEC("socket")
int inner_lookup(void *ctx)
{
	__u32 key = 0;
	void *m = bpf_map_lookup_elem(&outer, &key);
	__u64 *v;

	if (!m)
		return 0;
	v = bpf_map_lookup_elem(m, &key);
	if (!v)
		return 1;
	return *v & 0xff;
}

char _license[] SEC("license") = "GPL";
