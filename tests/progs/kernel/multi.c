// Two tc programs in one section sharing a local (static) function: libbpf
// makes every global function of a section a program of its own.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
static __attribute__((noinline)) int twice(int x) { return x * 2; }
SEC("tc") int first(struct __sk_buff *skb) { return twice(skb->len) + 1; }
SEC("tc") int second(struct __sk_buff *skb) { return twice(skb->len) + 2; }
char LICENSE[] SEC("license") = "GPL";
