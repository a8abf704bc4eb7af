/* The prover's helper models: a tail call, a spin lock, local storage deleted, a socket cast.
 * tests/kernel/test_prove_helpers.py mutates each program (wrong rewrites get counterexamples) and proves the
 * built-in passes' rewrites of them. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct sock;
struct task_struct;

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} jmp_table SEC(".maps");

__u64 calls = 0;

/* A tail call into slot p[0] & 3: `calls` is stored before it (the called program sees it). */
SEC("xdp")
int tail(struct xdp_md *ctx)
{
	unsigned char *p = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;

	if (p + 2 > end)
		return XDP_ABORTED;
	calls += 1;
	bpf_tail_call(ctx, &jmp_table, p[0] & 3);
	return p[1] > 7 ? XDP_PASS : XDP_DROP;
}

struct counted {
	struct bpf_spin_lock lock;
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counted);
} counters SEC(".maps");

/* The counters of one array slot, updated under its lock. */
SEC("tc")
int locked(struct __sk_buff *skb)
{
	__u32 key = 0;
	struct counted *c = bpf_map_lookup_elem(&counters, &key);
	__u64 seen;

	if (!c)
		return 0;
	bpf_spin_lock(&c->lock);
	c->packets += 1;
	c->bytes += skb->len;
	seen = c->packets;
	bpf_spin_unlock(&c->lock);
	return seen & 1;
}

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} others SEC(".maps");

/* The task's start time, read and removed: its value if there was one, else 0. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(storage_delete, struct task_struct *task)
{
	__u64 *start = bpf_task_storage_get(&starts, task, 0, 0);
	__u64 v;

	if (!start)
		return 0;
	v = *start;
	bpf_task_storage_delete(&starts, task);
	bpf_task_storage_get(&others, task, 0, 0);
	/* gone once deleted (unless the delete failed) */
	return bpf_task_storage_get(&starts, task, 0, 0) ? 0x100 : v & 0xff;
}

struct tcp6_sock;

/* A socket cast: the cast's result NULL or a BTF pointer. */
SEC("fentry/tcp_v6_connect")
int BPF_PROG(cast, struct sock *sk)
{
	struct tcp6_sock *t = bpf_skc_to_tcp6_sock(sk);

	return t ? 1 : 2;
}

char LICENSE[] SEC("license") = "GPL";
