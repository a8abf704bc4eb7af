// Programs whose verification the kernel follows by rewrites the verifier test programs do not
// reach: bpf_loop inlining (optimize_bpf_loop) and kfunc call fixups (fixup_kfunc_call), for
// `--pass kernel` against this kernel's xlated output.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
extern void *bpf_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
extern void bpf_obj_drop_impl(void *kptr, void *meta) __ksym;

// The kernel's own struct, as far as read here (CO-RE relocates the offset).
struct sk_buff {
	unsigned int len;
} __attribute__((preserve_access_index));

struct loop_ctx {
	__u64 sum;
	__u32 seen;
};

struct blob {
	__u64 a;
	__u32 b[5];
};

volatile __u64 flags_from_user;  // .bss: unknown to the verifier
volatile __u32 pick;

static long add_index(__u64 index, void *data)
{
	struct loop_ctx *c = data;

	c->sum += index;
	return ++c->seen > 6;
}

static long add_twice(__u64 index, void *data)
{
	struct loop_ctx *c = data;

	c->sum += 2 * index;
	return 0;
}

// flags a known 0, one callback: inlined, R6-R8 spilled below the (unaligned) stack
SEC("tc")
int loop_inlined(struct __sk_buff *skb)
{
	struct loop_ctx c = {};
	volatile char pad[3] = {1, 2, 3};

	bpf_loop(skb->len & 15, add_index, &c, 0);
	return (c.sum + pad[1]) & 1;
}

// two call sites with a callback each: both inlined, sharing the 24 extra bytes
SEC("tc")
int loop_two_sites(struct __sk_buff *skb)
{
	struct loop_ctx c = {};

	bpf_loop(4, add_index, &c, 0);
	bpf_loop(8, add_twice, &c, 0);
	return c.sum & 1;
}

// flags the verifier does not know: the call stays
SEC("tc")
int loop_unknown_flags(struct __sk_buff *skb)
{
	struct loop_ctx c = {};

	bpf_loop(4, add_index, &c, flags_from_user);
	return c.sum & 1;
}

// one call site, two callbacks: the call stays
SEC("tc")
int loop_two_callbacks(struct __sk_buff *skb)
{
	struct loop_ctx c = {};

	bpf_loop(4, pick ? add_index : add_twice, &c, 0);
	return c.sum & 1;
}

// bpf_cast_to_kern_ctx and bpf_rdonly_cast become r0 = r1
SEC("tc")
int kfunc_casts(struct __sk_buff *skb)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	struct sk_buff *again = bpf_rdonly_cast(kskb, bpf_core_type_id_kernel(struct sk_buff));

	return again->len & 1;
}

// bpf_obj_new gets the type's size in R1 and its btf_struct_meta in R2, bpf_obj_drop the meta in R2
SEC("tc")
int kfunc_obj_new_drop(struct __sk_buff *skb)
{
	struct blob *p = bpf_obj_new_impl(bpf_core_type_id_local(struct blob), NULL);

	if (!p)
		return 0;
	p->a = skb->len;
	bpf_obj_drop_impl(p, NULL);
	return 1;
}

char _license[] SEC("license") = "GPL";
