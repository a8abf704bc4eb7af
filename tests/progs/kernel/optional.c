// SEC("?tc"): a program libbpf does not load unless asked, and names "tc" (it drops the "?").
// bpfpatch's disasm, patch and analyze name it "?tc" as the ELF writes it; check and the loader
// must find it by that name too (scx's lib/pmu.bpf.c: SEC("?tp_btf/sched_switch")).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("?tc")
int optional_prog(struct __sk_buff *skb)
{
	return skb->len > 100;
}

SEC("tc")
int always_prog(struct __sk_buff *skb)
{
	return 2;
}

char LICENSE[] SEC("license") = "GPL";
