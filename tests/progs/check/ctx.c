// Context writes: every writable __sk_buff field a tc program may store to, and xdp_md reads.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("tc")
int tc_ctx_writes(struct __sk_buff *skb)
{
	__u32 len = skb->len;

	skb->mark = len * 3 + 1;
	skb->priority = skb->mark ^ 0x55;
	skb->tc_index = 7;
	skb->tc_classid = 0x10002;
	skb->cb[0] = len;
	skb->cb[1] = skb->cb[1] + 1;
	skb->cb[4] = 0xabcd;
	skb->queue_mapping = 3;
	skb->tstamp = 1000;
	return skb->protocol == bpf_htons(0x0800) ? 0 : 2;
}

SEC("socket")
int sock_ctx_writes(struct __sk_buff *skb)
{
	skb->cb[0] = skb->len;
	skb->cb[2] = skb->ifindex + 5;  // socket filters may write cb[] only
	return skb->len;
}

SEC("xdp")
int xdp_ctx_reads(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (ctx->rx_queue_index != 0)
		return XDP_DROP;
	if (data + 14 > end)
		return XDP_ABORTED;
	return ctx->ingress_ifindex == 1 ? XDP_TX : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
