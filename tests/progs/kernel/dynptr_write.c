/* A tc program that writes packet data only through a writable dynptr slice: the kernel's
 * check_kfunc_call asks may_access_direct_pkt_data for a write at bpf_dynptr_slice_rdwr, which sets
 * seen_direct_write, so convert_ctx_accesses puts the unclone prologue first, as for a direct store.
 * `slice_read` takes a read-only slice: no prologue. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags, struct bpf_dynptr *ptr) __ksym;
extern void *bpf_dynptr_slice(const struct bpf_dynptr *ptr, __u32 offset, void *buffer, __u32 buffer__szk) __ksym;
extern void *bpf_dynptr_slice_rdwr(const struct bpf_dynptr *ptr, __u32 offset, void *buffer,
				   __u32 buffer__szk) __ksym;

SEC("tc")
int slice_write(struct __sk_buff *skb)
{
	struct bpf_dynptr ptr;
	__u8 buf[4] = {};
	__u8 *p;

	if (bpf_dynptr_from_skb(skb, 0, &ptr))
		return TC_ACT_OK;
	p = bpf_dynptr_slice_rdwr(&ptr, 0, buf, sizeof(buf));
	if (!p)
		return TC_ACT_OK;
	p[0] ^= 1;
	return TC_ACT_OK;
}

SEC("tc")
int slice_read(struct __sk_buff *skb)
{
	struct bpf_dynptr ptr;
	__u8 buf[4] = {};
	__u8 *p;

	if (bpf_dynptr_from_skb(skb, 0, &ptr))
		return TC_ACT_OK;
	p = bpf_dynptr_slice(&ptr, 0, buf, sizeof(buf));
	if (!p)
		return TC_ACT_OK;
	return p[0] == 1 ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
