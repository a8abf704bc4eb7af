// IPv4/IPv6/TCP/UDP parsing with bounds checks; per-port counters in a hash map,
// per-protocol packet counts in a per-CPU array.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128);
	__type(key, __u16);
	__type(value, __u64);
} port_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} proto_count SEC(".maps");

static __always_inline void count_proto(__u32 k)
{
	__u64 *v = bpf_map_lookup_elem(&proto_count, &k);

	if (v)
		*v += 1;
}

static __always_inline int l4(void *p, void *end, __u8 proto)
{
	__u16 port;
	__u64 one = 1, *v;

	if (proto == IPPROTO_TCP) {
		struct tcphdr *t = p;

		if ((void *)(t + 1) > end)
			return XDP_ABORTED;
		if (t->syn && !t->ack)
			count_proto(2);
		port = bpf_ntohs(t->dest);
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *u = p;

		if ((void *)(u + 1) > end)
			return XDP_ABORTED;
		port = bpf_ntohs(u->dest);
		if (port == 53)
			return XDP_DROP;
	} else {
		return XDP_PASS;
	}
	v = bpf_map_lookup_elem(&port_hits, &port);
	if (v)
		*v += 1;
	else
		bpf_map_update_elem(&port_hits, &port, &one, BPF_NOEXIST);
	return port == 22 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_parse(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return XDP_ABORTED;
		if (ip->ihl < 5)
			return XDP_DROP;
		count_proto(0);
		return l4((void *)ip + ip->ihl * 4, end, ip->protocol);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return XDP_ABORTED;
		count_proto(1);
		if (ip6->hop_limit <= 1)
			return XDP_DROP;
		return l4(ip6 + 1, end, ip6->nexthdr);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
