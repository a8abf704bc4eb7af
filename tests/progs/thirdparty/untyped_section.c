// Sections no program type names, as suricata's ebpf/filter.c ("filter") and lb.c ("loadbalancer"):
// libbpf opens the object but refuses to load them ("missing BPF prog type, check ELF section name");
// suricata sets the type itself (socket filter, for its AF_PACKET fanout). analyze once took them for
// socket filters silently, check reported a bare EINVAL as undecided, and check --prove "unknown program
// type 'filter'" without naming the file or the way out (--prog-type).
#include <linux/bpf.h>

__attribute__((section("filter"), used))
int hashfilter(struct __sk_buff *skb)
{
	return skb->protocol == __builtin_bswap16(0x0800) ? -1 : 0;
}

__attribute__((section("loadbalancer"), used))
int lb(struct __sk_buff *skb)
{
	return skb->len & 7;
}

char _license[] __attribute__((section("license"), used)) = "GPL";
