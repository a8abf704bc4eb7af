// XDP header rewrites with checksum updates: swap MACs, decrement the TTL (incremental IPv4
// checksum), rewrite a UDP destination port (incremental UDP checksum), then bounce.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

const volatile __u16 from_port = 7777;
const volatile __u16 to_port = 8888;
__u64 rewritten = 0;

static __always_inline __u16 csum_fold(__u32 c)
{
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)c;
}

static __always_inline __u16 csum_replace2(__u16 check, __u16 old, __u16 new)
{
	return ~csum_fold((__u16)~check + (__u32)(__u16)~old + new);
}

SEC("xdp")
int xdp_rewrite(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;
	unsigned char tmp[ETH_ALEN];
	__u16 old;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5)
		return XDP_PASS;
	if (ip->ttl <= 1)
		return XDP_DROP;
	old = *(__u16 *)&ip->ttl;
	ip->ttl--;
	ip->check = csum_replace2(ip->check, old, *(__u16 *)&ip->ttl);
	if (ip->protocol == IPPROTO_UDP) {
		udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > end)
			return XDP_PASS;
		if (udp->dest == bpf_htons(from_port)) {
			old = udp->dest;
			udp->dest = bpf_htons(to_port);
			if (udp->check)
				udp->check = csum_replace2(udp->check, old, udp->dest);
			rewritten++;
		}
	}
	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
