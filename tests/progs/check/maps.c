// Maps of every common kind and global data, for the libbpf binding and `check`.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} by_len SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} bytes_seen SEC(".maps");

const volatile __u32 threshold = 100;  // .rodata: frozen by libbpf, lets the verifier drop code
__u64 packets = 0;                     // .bss
__u32 last_len = 7;                    // .data

SEC("socket")
int count_packets(struct __sk_buff *skb)
{
	__u32 key = skb->len > threshold ? 1 : 0;
	__u32 len = skb->len;
	__u64 *c = bpf_map_lookup_elem(&counts, &key);
	__u64 *b;

	if (c)
		*c += 1;
	b = bpf_map_lookup_elem(&bytes_seen, &key);
	if (b)
		*b += len;
	bpf_map_update_elem(&by_len, &len, &key, BPF_ANY);
	packets++;
	last_len = len;
	return key;
}

char LICENSE[] SEC("license") = "GPL";
