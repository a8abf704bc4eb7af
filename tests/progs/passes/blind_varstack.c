/* A subprogram whose stack pointer moves by a register (an array on the stack indexed by a bounded
 * variable) and whose blinded constants sit where every register is live: blind's "auto" mode must
 * take the frame's depth from the verifier to find a spill slot. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[8]);
} vals SEC(".maps");

static __attribute__((noinline)) __u64 mix(__u64 *v, __u32 k)
{
	__u64 a[8] = {};
	__u64 x0 = v[0], x1 = v[1], x2 = v[2], x3 = v[3], x4 = v[4], x5 = v[5], x6 = v[6], x7 = v[7];

	a[k & 7] = x0 ^ 0x5a5a;
	asm volatile("" : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3), "+r"(x4), "+r"(x5), "+r"(x6), "+r"(x7));
	x0 += 0x12345;
	x1 ^= 0x2468ace;
	asm volatile("" : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3), "+r"(x4), "+r"(x5), "+r"(x6), "+r"(x7));
	return a[(k >> 3) & 7] + x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7;
}

SEC("socket")
int varstack(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&vals, &zero);

	if (!v)
		return 0;
	return mix(v, skb->len) & 0xff;
}

char _license[] SEC("license") = "GPL";
