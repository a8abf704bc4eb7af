// Constructs of third-party programs (libbpf-bootstrap, bcc's libbpf-tools) that bpfpatch got wrong.
//
// Two bpf_printk formats in one .rodata: clang 14 relocates the second against the section symbol
// with the string's offset in the ld_imm64's immediate (libbpf-bootstrap's fentry.bpf.c, every
// tool printing more than one message). The analysis once added that offset twice and refused the
// program ("invalid access to map value, value_size=76 off=66 size=43") that the kernel loads.
#include <linux/bpf.h>

static long (*trace_printk)(const char *fmt, __u32 fmt_size, ...) = (void *)BPF_FUNC_trace_printk;

#define printk(fmt, ...) ({ static const char ____fmt[] = fmt; trace_printk(____fmt, sizeof(____fmt), ##__VA_ARGS__); })

__attribute__((section("socket"), used))
int two_messages(struct __sk_buff *skb)
{
	if (skb->len > 100)
		printk("long packet: len = %d, protocol = %d\n", skb->len, skb->protocol);
	else
		printk("a short packet of this many bytes, not more: %d, and this much more text\n", skb->len);
	return 0;
}

// libbpf's section names: tp_btf/ is a BTF-typed tracing program, not a tracepoint ("tp"),
// uretprobe/ a kprobe (bcc's bashreadline): analyze once took both for other types.
__attribute__((section("uretprobe/readline"), used))
int ret_probe(void *ctx)
{
	return ((unsigned long *)ctx)[10] != 0;  // PT_REGS_RC: pt_regs->ax, 8 bytes at offset 80
}

char _license[] __attribute__((section("license"), used)) = "GPL";
