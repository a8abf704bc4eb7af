// Static and global functions, a bounded loop, an array map and global data (tc).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} hist SEC(".maps");

__u32 calls = 0;

static __attribute__((noinline)) __u32 mix(__u32 a, __u32 b)
{
	return (a * 31) ^ (b >> 3);
}

__attribute__((noinline)) int bucket(__u32 len)
{
	int b = 0;

	for (int i = 0; i < 7; i++)  // bounded loop
		if (len > (64u << i))
			b = i + 1;
	return b;
}

SEC("tc")
int tc_funcs(struct __sk_buff *skb)
{
	__u32 key = bucket(skb->len) & 7;
	__u32 *v = bpf_map_lookup_elem(&hist, &key);
	__u32 acc = 0;

	if (v)
		*v += 1;
	for (int i = 0; i < 4; i++)
		acc = mix(acc, skb->cb[i] + i);
	calls++;
	skb->mark = acc;
	skb->cb[4] = key;
	return acc & 1 ? 0 : 2;
}

char LICENSE[] SEC("license") = "GPL";
