/* Callbacks the kernel runs in a loop, in an XDP program: bpf_loop (six steps, the packet's first byte says at
 * which one the callback stops) and bpf_for_each_map_elem over a 4-element array (each value read and bumped).
 * (The elements first: after the kernel pass inlines bpf_loop, a lookup after the loop would be one per
 * iteration count, named apart from the original's.)
 * tests/kernel/test_prove_callbacks.py mutates it (wrong rewrites get counterexamples) and proves the passes'
 * rewrites. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} vals SEC(".maps");

struct loop_ctx {
	__u64 sum;
	__u32 mul;
	__u32 stop;
};

static int step(__u32 i, void *data)
{
	struct loop_ctx *c = data;

	c->sum += i * c->mul;
	if (i == c->stop)
		return 1;
	return 0;
}

static long add_elem(struct bpf_map *map, __u32 *key, __u64 *val, void *data)
{
	struct loop_ctx *c = data;

	c->sum += *val + 3 * *key;
	*val += 1;
	return 0;
}

SEC("xdp")
int loops(struct xdp_md *ctx)
{
	unsigned char *p = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;
	struct loop_ctx c = {};
	long n;

	if (p + 2 > end)
		return XDP_ABORTED;
	c.mul = p[1];
	c.stop = p[0] & 7;
	bpf_for_each_map_elem(&vals, add_elem, &c, 0);
	n = bpf_loop(6, step, &c, 0);
	return (c.sum + n) & 3;
}

char LICENSE[] SEC("license") = "GPL";
