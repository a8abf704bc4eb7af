// One straight-line function called from several places: the kernel keeps its checkpoints in lists
// per hash of (instruction, callsite), so the function's entry from one call does not see the entry
// from another (bpfpatch.analysis.verifier's pruning must do the same to process as many instructions).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static __attribute__((noinline)) __u32 mix(const __u8 *p, __u32 seed)
{
	__u32 a = seed ^ p[0], b = seed + p[1], c = p[2] | (p[3] << 8);

	a += b; b ^= c << 3; c -= a >> 5;
	a ^= p[4]; b += p[5]; c ^= p[6];
	a -= c; b ^= a << 7; c += b >> 11;
	a ^= p[7] << 13; b -= p[8]; c ^= p[9] << 2;
	return a ^ b ^ c;
}

SEC("tc")
int five_calls(struct __sk_buff *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	int i = 0;

#define STEP do { \
	if (data + i + 16 > data_end) \
		return 0; \
	ctx->tc_index = mix(data + i, ctx->cb[0] + i); \
	i++; \
	} while (0)
	STEP; STEP; STEP; STEP; STEP;
	return 0;
}

char _license[] SEC("license") = "GPL";
