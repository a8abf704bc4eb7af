// SEC("?xdp"): libbpf's "not loaded unless asked" mark (bpf_program__set_autoload), which libbpf strips
// before it matches the section name: an XDP program (the kernel selftests use ?tc, ?raw_tp, ?fentry/...).
// analyze once found no type for "?xdp", took it for a socket filter and refused the packet read
// ("invalid mem access 'scalar'": a socket filter's ctx->data is skb->len).
#include <linux/bpf.h>

__attribute__((section("?xdp"), used))
int first_byte(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;

	if (data + 1 > end)
		return XDP_PASS;
	return data[0] == 0xff ? XDP_DROP : XDP_PASS;
}

char _license[] __attribute__((section("license"), used)) = "GPL";
