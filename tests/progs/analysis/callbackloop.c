// Sync callbacks whose runs change the caller's stack: the kernel verifies the call again after each
// run of the callback (prepare_func_exit goes back to the call site) until the states converge, so
// after bpf_loop / bpf_for_each_map_elem the caller sees what the callback may have written.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} vals SEC(".maps");

struct lctx {
	__u64 sum;
	__u32 seen;
};

static int add_index(__u32 i, struct lctx *c)
{
	c->sum += i;
	c->seen = 1;
	return 0;
}

static long count_elem(void *map, __u32 *key, __u64 *val, struct lctx *c)
{
	c->sum += *val;
	c->seen = 1;
	return 0;
}

SEC("tc")
int loop_sum(struct __sk_buff *skb)
{
	struct lctx c = { .sum = 0, .seen = 0 };

	bpf_loop(skb->len & 7, add_index, &c, 0);
	if (!c.seen)
		return 0;
	return c.sum > 5 ? 1 : 2;
}

SEC("tc")
int each_sum(struct __sk_buff *skb)
{
	struct lctx c = { .sum = 0, .seen = 0 };

	bpf_for_each_map_elem(&vals, count_elem, &c, 0);
	if (!c.seen)
		return 0;
	return c.sum > 5 ? 1 : 2;
}

char _license[] SEC("license") = "GPL";
