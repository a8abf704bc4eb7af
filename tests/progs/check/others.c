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
