// A global function of hidden visibility, as usdt.bpf.h's bpf_usdt_arg (libbpf-bootstrap's usdt,
// every USDT program): libbpf makes its BTF FUNC static, so the kernel verifies it in its callers'
// state and `res` is the caller's stack slot, not a maybe-NULL pointer of a global function's
// argument. analyze once refused it ("R3 invalid mem access 'mem_or_null'").
#include <linux/bpf.h>

__attribute__((weak, visibility("hidden"), noinline))
int fill(struct __sk_buff *skb, long *res)
{
	*res = skb->len;
	return 0;
}

__attribute__((section("socket"), used))
int hidden_callee(struct __sk_buff *skb)
{
	long v = 0;

	fill(skb, &v);
	return v;
}

char _license[] __attribute__((section("license"), used)) = "GPL";
