// The sample program `make demo` rewrites: a socket filter with register
// divisions (div-guard has work), constants (blind has work), a static
// subprogram and a global counter map.  Rebuild with `make -C src/bpfpatch/samples`.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} packets SEC(".maps");

static __attribute__((noinline)) __u32 scale(__u32 len, __u32 by)
{
	if (by == 0)
		return len;
	return len / by + len % by;
}

SEC("socket")
int sample_filter(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&packets, &key);
	__u32 len = skb->len;
	__u64 acc = 0x1234567887654321ULL;

	if (count)
		__sync_fetch_and_add(count, 1);
	for (int i = 1; i < 8; i++)
		acc ^= (__u64)len / (__u64)(i + (len & 3));
	return (scale(len, skb->protocol & 7) + (__u32)acc) & 0xffff;
}

char LICENSE[] SEC("license") = "GPL";
