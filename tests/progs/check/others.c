// Program types beyond packets: a raw tracepoint reading its arguments, a kprobe (no test run
// on this kernel) and a socket filter that depends on randomness (not deterministic).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 seen_args = 0;

SEC("raw_tp/sys_enter")
int raw_args(__u64 *ctx)
{
	__u64 id = ctx[1];

	seen_args += ctx[0] & 0xff;
	if (id == 59)
		return 1;
	return id > 1000 ? 2 : 0;
}

SEC("kprobe/do_sys_open")
int probe_open(void *ctx)
{
	return 0;
}

SEC("socket")
int coin(struct __sk_buff *skb)
{
	return bpf_get_prandom_u32() & 1;
}

char LICENSE[] SEC("license") = "GPL";

// A flow dissector: its keys come back in data_out.  Direct packet access: in a test run there is
// no skb, so bpf_skb_load_bytes always fails there (net/core/filter.c).
SEC("flow_dissector")
int dissect(struct __sk_buff *skb)
{
	struct bpf_flow_keys *keys = skb->flow_keys;
	unsigned char *data = (void *)(long)skb->data;
	unsigned char *end = (void *)(long)skb->data_end;

	if (data + 34 > end)
		return BPF_DROP;
	keys->nhoff = 14;
	keys->thoff = 34;
	keys->ip_proto = data[23];
	keys->n_proto = 0x0008;
	return data[23] == 17 ? BPF_OK : BPF_OK + 0;
}

// A syscall program: its context is written back.
SEC("syscall")
int sys_prog(__u64 *args)
{
	args[1] = args[0] * 3 + 1;
	return args[0] == 42;
}
