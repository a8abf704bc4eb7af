// Global functions, which the kernel verifies on their own from their BTF argument types
// (btf_prepare_func_args): a context argument, sized memory that may be NULL, a non-NULL one,
// a scalar, and a global function calling another; the callers see R0 as an unknown scalar.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __arg_nonnull __attribute__((btf_decl_tag("arg:nonnull")))

struct pair {
	__u32 a;
	__u32 b;
};

__noinline int sum_pair(struct pair *p)
{
	if (!p)
		return 0;
	return p->a + p->b;
}

__noinline int scaled(struct pair *p __arg_nonnull, int k)
{
	return (p->a * k + sum_pair(p)) & 0xff;
}

__noinline int ctx_len(struct __sk_buff *skb)
{
	return skb->len > 100;
}

/* kprobe's context named as its typedef: the empty struct the kernel's selftests use on old kernels */
struct bpf_user_pt_regs_t {};

__noinline int regs_ctx(struct bpf_user_pt_regs_t *ctx)
{
	return ctx != 0;
}

SEC("tc")
int global_calls(struct __sk_buff *skb)
{
	struct pair p = { .a = skb->mark, .b = 7 };
	int r = scaled(&p, 3);

	if (r > 200)
		return 2;
	return ctx_len(skb) + sum_pair(0);
}

SEC("xdp")
int global_xdp(struct xdp_md *ctx)
{
	struct pair p = { .a = ctx->ingress_ifindex, .b = 1 };

	return sum_pair(&p) & 1 ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
