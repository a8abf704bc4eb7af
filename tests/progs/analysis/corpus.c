// Programs for checking bpfpatch.analysis against the kernel's log_level 2 states:
// the common program types, packet parsing, maps, loops, spills, subprograms.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct { __u64 pkts; __u64 bytes; });
} stats SEC(".maps");

static __attribute__((noinline)) int classify(__u32 proto, __u32 len)
{
	if (proto == IPPROTO_TCP)
		return len > 1000 ? 3 : 2;
	if (proto == IPPROTO_UDP)
		return 1;
	return 0;
}

SEC("socket")
int sf_len(struct __sk_buff *skb)
{
	__u32 len = skb->len;
	__u32 key = len & 15;
	__u64 *v = bpf_map_lookup_elem(&slots, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	return len > 64 ? 0 : -1;
}

SEC("socket")
int sf_ldabs(struct __sk_buff *skb)
{
	__u64 proto = load_byte(skb, ETH_HLEN + offsetof(struct iphdr, protocol));
	__u32 sum = 0;
	for (int i = 0; i < 8; i++)
		sum += load_byte(skb, i);
	return proto == IPPROTO_TCP && sum ? -1 : 0;
}

SEC("tc")
int tc_parse(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return 0;
	__u32 ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return 0;
	__u32 key = ip->protocol;
	__u64 one = 1, *c = bpf_map_lookup_elem(&counts, &key);
	if (c)
		*c += 1;
	else
		bpf_map_update_elem(&counts, &key, &one, BPF_ANY);
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)ip + sizeof(*ip);
		if ((void *)(tcp + 1) > data_end)
			return 0;
		skb->mark = bpf_ntohs(tcp->dest);
	}
	return classify(ip->protocol, skb->len);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	typeof(struct { __u64 pkts; __u64 bytes; }) *s;
	struct ethhdr *eth = data;
	if (data + sizeof(*eth) > data_end)
		return XDP_DROP;
	s = bpf_map_lookup_elem(&stats, &key);
	if (!s)
		return XDP_ABORTED;
	s->pkts++;
	s->bytes += data_end - data;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	return ctx->ingress_ifindex == 1 ? XDP_TX : XDP_PASS;
}

SEC("xdp")
int xdp_udp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *udp = (void *)ip + sizeof(*ip);
	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	__u16 port = bpf_ntohs(udp->dest);
	unsigned char *p = (void *)(udp + 1);
	__u32 h = 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if ((void *)(p + i + 1) > data_end)
			break;
		h = h * 31 + p[i];
	}
	return (port == 53 && h != 7) ? XDP_DROP : XDP_PASS;
}

SEC("cgroup_skb/egress")
int cg_egress(struct __sk_buff *skb)
{
	__u32 key = skb->protocol & 63;
	__u64 *c = bpf_map_lookup_elem(&counts, &key);
	if (c)
		__sync_fetch_and_add(c, skb->len);
	return 1;
}

SEC("tc")
int tc_loop(struct __sk_buff *skb)
{
	__u64 acc = 0;
	volatile __u32 buf[8];
	for (int i = 0; i < 8; i++)
		buf[i] = skb->len + i;
	for (__u32 i = 0; i < 8; i++) {
		__u32 k = i;
		__u64 *v = bpf_map_lookup_elem(&slots, &k);
		if (v)
			acc += *v ^ buf[i & 7];
	}
	__s32 sig = (__s32)acc;
	return sig < 0 ? (int)(acc >> 3) : (int)(acc % 7);
}
char LICENSE[] SEC("license") = "GPL";
