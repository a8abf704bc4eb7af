// katran's balancer: lru_map = bpf_map_lookup_elem(&lru_mapping, &cpu) (an array of maps), else
// &fallback_cache; then bpf_map_lookup_elem(lru_map, key). The prover merges the two paths' r1 into
// "one of map:fallback_cache, mv:lru_mapping:0" and once looked that up as one map's name (KeyError).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} fallback SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct inner);
} per_cpu SEC(".maps");

SEC("socket")
int map_or_inner(struct __sk_buff *skb)
{
	__u32 key = skb->len & 1, *v;
	void *m = bpf_map_lookup_elem(&per_cpu, &key);

	if (!m)
		m = &fallback;
	v = bpf_map_lookup_elem(m, &key);
	return v ? *v + 1 : 0;
}

char _license[] SEC("license") = "GPL";
