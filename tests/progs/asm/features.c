// Exercises what clang emits: loops, subprogram calls (static and global),
// maps, atomics, 32-bit ALU, signed division/modulo, signed loads, byte swaps,
// global data.  Compiled by the tests for -mcpu=v1..v4.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} vals SEC(".maps");

long counter = 3;
const volatile int limit = 10;
__u32 zeroed;

#if __BPF_CPU_VERSION__ >= 4
typedef long sdiv_t;  /* cpu v4 has signed division */
#else
typedef unsigned long sdiv_t;
#endif

static __attribute__((noinline)) long mix(long a, long b)
{
	return (a * 31) ^ (b >> 3) ^ ((sdiv_t)a / (sdiv_t)(b | 1));
}

__attribute__((noinline)) int global_fn(int x)
{
	return (sdiv_t)x % 7 + ((sdiv_t)x / 3);
}

SEC("socket")
int features(struct __sk_buff *skb)
{
	__u32 key = skb->len & 3;
	__u64 *v = bpf_map_lookup_elem(&vals, &key);
	long acc = counter;
	int s = (int)skb->protocol - 100;
	__u32 u = skb->len;

	if (v) {
		__sync_fetch_and_add(v, 1);
		acc += __sync_fetch_and_add(v, 2);
		acc ^= __sync_lock_test_and_set(v, acc);
		acc += __sync_val_compare_and_swap(v, 5, 6);
		__sync_fetch_and_or(v, 8);
		__sync_fetch_and_xor(v, 16);
		__sync_fetch_and_and(v, 0xff);
	}
	for (int i = 0; i < limit && i < 16; i++)
		acc += mix(acc, i) + (u >> i);
	acc += (sdiv_t)s / 3 + (sdiv_t)s % 5 + (long)(signed char)u + (short)(u >> 8);
	acc += bpf_htons(u) + __builtin_bswap64(acc) + bpf_ntohl(u);
	u = u * 7 + (u << 3) - (u >> 2);
	zeroed += u;
	return (int)(acc + global_fn((int)u)) & 0xfff;
}

SEC("xdp")
int features_xdp(struct xdp_md *ctx)
{
	long n = ctx->data_end - ctx->data;
	return mix(n, 3) > 10 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
