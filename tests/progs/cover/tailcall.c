/* Coverage fixture: a tail call that succeeds for p[0] == 1 (never returns), fails otherwise. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} jmp_table SEC(".maps");

__u64 odd = 0;

SEC("xdp")
int target(struct xdp_md *ctx)
{
	return 7;
}

SEC("xdp")
int entry(struct xdp_md *ctx)
{
	unsigned char *p = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;
	int bit;

	if (p + 2 > end)
		return XDP_ABORTED;
	bit = p[1] & 1;
	bpf_tail_call(ctx, &jmp_table, p[0] == 1 ? 0 : 1); /* MARK call */
	if (bit) { /* MARK after */
		odd += 1; /* MARK odd */
		return XDP_PASS;
	}
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
