// The prover's corpus: loop-free programs of the types BPF_PROG_TEST_RUN runs,
// with divisions (div-guard), constants (blind), 32-bit arithmetic (zext),
// context loads (ctx), dead branches (dce), maps, helpers and subprograms.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} weights SEC(".maps");

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

volatile const __u32 divisor = 7;

static __attribute__((noinline)) __u32 mix(__u32 a, __u32 b)
{
	return (a * 2654435761u) ^ (b >> 3);
}

SEC("socket")
int sock_ratio(struct __sk_buff *skb)
{
	__u32 len = skb->len;
	__u32 proto = skb->protocol;
	__u32 b = load_byte(skb, 0);
	if (len == 0)
		return 0;
	return (len * 100) / (b + 1) + proto % (len | 1);
}

SEC("socket")
int sock_hash(struct __sk_buff *skb)
{
	__u32 h = skb->len ^ skb->mark;
	h = h * 31 + skb->priority;
	h ^= h >> 16;
	h = (h << 5) | (h >> 27);
	return (h % 1000) + skb->queue_mapping;
}

SEC("socket")
int sock_ipv4(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return 0;
	__u8 ihl = load_byte(skb, 0) & 0xf;
	__u8 proto = load_byte(skb, 9);
	__u32 saddr = load_word(skb, 12);
	if (ihl < 5)
		return -1;
	if (proto == IPPROTO_UDP)
		return (saddr % 251) + ihl * 4;
	return saddr / (ihl * 4);
}

SEC("tc")
int tc_parse(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return 2;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return 1;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return 2;
	__u32 k = ip->protocol & 3;
	__u64 *v = bpf_map_lookup_elem(&stats, &k);
	if (v)
		*v += skb->len;
	__u32 t = bpf_ntohs(ip->tot_len);
	return t / (ip->ttl | 1) + mix(ip->saddr, ip->daddr) % divisor;
}

SEC("tc")
int tc_weights(struct __sk_buff *skb)
{
	__u32 key = skb->mark & 63;
	__u32 *w = bpf_map_lookup_elem(&weights, &key);
	__u32 base = skb->len;
	if (!w) {
		__u32 one = 1;
		bpf_map_update_elem(&weights, &key, &one, BPF_ANY);
		return base;
	}
	*w += 1;
	return base / *w + base % (*w + 3);
}

SEC("tc")
int tc_rewrite(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return 0;
	__u8 tmp[ETH_ALEN];
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	skb->mark = skb->len * 3;
	return 0;
}

SEC("xdp")
int xdp_udp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_ABORTED;
	if (ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return XDP_ABORTED;
	__u16 port = bpf_ntohs(udp->dest);
	if (port % 53 == 0)
		return XDP_DROP;
	return (port / 1000) & 1 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	__u32 k = (ctx->data_end - ctx->data) & 3;
	__u64 *v = bpf_map_lookup_elem(&stats, &k);
	if (!v)
		return XDP_ABORTED;
	__sync_fetch_and_add(v, 1);
	return mix(k, (__u32)*v) % 3 == 0 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_ttl(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_PASS;
	if (ip->ttl <= 1)
		return XDP_DROP;
	ip->ttl--;
	__u32 c = ip->check + bpf_htons(0x0100);
	ip->check = c + (c >= 0xffff);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
