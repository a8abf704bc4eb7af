// Programs whose verification runs callbacks, iterators and frozen constants, for checking
// bpfpatch.analysis against the kernel's log_level 2 states: bpf_loop, bpf_for_each_map_elem,
// bpf_timer_set_callback, a ringbuf dynptr, and .rodata constants.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} vals SEC(".maps");

struct elem {
	struct bpf_timer t;
	__u64 fired;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct elem);
} timers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

const volatile __u32 limit = 16;  // .rodata: frozen by libbpf, a known constant to the verifier
const volatile __u32 size = 8;

struct loop_ctx {
	__u64 sum;
	__u32 seen;
};

static long add_one(__u64 index, void *data)
{
	struct loop_ctx *c = data;

	c->sum += index;
	c->seen++;
	return c->seen > 10;
}

static long sum_elem(struct bpf_map *map, __u32 *key, __u64 *val, void *data)
{
	struct loop_ctx *c = data;

	c->sum += *val + *key;
	return 0;
}

static int timer_cb(void *map, __u32 *key, struct elem *e)
{
	e->fired++;
	return 0;
}

SEC("tc")
int loop_and_walk(struct __sk_buff *skb)
{
	struct loop_ctx c = {};
	__u32 key = 0;
	struct elem *e;

	bpf_loop(limit, add_one, &c, 0);
	bpf_for_each_map_elem(&vals, sum_elem, &c, 0);
	e = bpf_map_lookup_elem(&timers, &key);
	if (e) {
		bpf_timer_init(&e->t, &timers, 1);
		bpf_timer_set_callback(&e->t, timer_cb);
	}
	return c.sum & 1;
}

SEC("tc")
int ringbuf_dynptr(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	__u64 v = skb->len;

	if (bpf_ringbuf_reserve_dynptr(&rb, size, 0, &d)) {
		bpf_ringbuf_discard_dynptr(&d, 0);
		return 0;
	}
	bpf_dynptr_write(&d, 0, &v, sizeof(v), 0);
	bpf_ringbuf_submit_dynptr(&d, 0);
	return 1;
}

// A bpf_sock field load: the kernel rewrites it (bpf_sock_convert_ctx_access), so it never
// randomizes its upper half under BPF_F_TEST_RND_HI32, whatever its liveness says.
SEC("cgroup/bind4")
int bind_family(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return 1;
	if (sk->family != 2 || sk->type != 1)
		return 0;
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
