// What a linker must resolve the way libbpf does: subprogram calls nested several deep (libbpf
// appends each callee depth first), a callback's address (bpf_loop: clang relocates the ld_imm64
// against .text), extern kernel functions (open-coded iterator kfuncs, resolved by BTF id), a map,
// and a section name that holds a colon (uprobe/<binary>:<symbol>).
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __ksym __attribute__((section(".ksyms")))
#define __noinline __attribute__((noinline))

struct bpf_iter_num { unsigned long long __opaque[1]; } __attribute__((aligned(8)));
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

static long (*bpf_loop)(unsigned int nr, void *fn, void *ctx, unsigned long flags) = (void *)181;
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

struct {
	int (*type)[BPF_MAP_TYPE_ARRAY];
	int (*max_entries)[2];
	unsigned int *key;
	unsigned long long *value;
} totals SEC(".maps");

static __noinline int leaf(int x) { return x * 3 + 1; }
static __noinline int left(int x) { return leaf(x) + 2; }
static __noinline int right(int x) { return x ^ 5; }
static __noinline int both(int x) { return left(x) + right(x); }  /* libbpf: both, left, leaf, right */

static int add(unsigned int i, void *ctx)
{
	*(unsigned long long *)ctx += i;
	return 0;
}

SEC("socket")
int nested_calls(struct __sk_buff *skb)
{
	return both(skb->len & 15);
}

SEC("socket")
int loop_callback(struct __sk_buff *skb)
{
	unsigned long long sum = skb->len & 7;
	unsigned int key = 0;
	unsigned long long *total = bpf_map_lookup_elem(&totals, &key);

	bpf_loop(8, add, &sum, 0);
	if (total)
		*total += sum;
	return sum;
}

SEC("socket")
int iterator_kfuncs(struct __sk_buff *skb)
{
	struct bpf_iter_num it;
	int *v, sum = 0;

	bpf_iter_num_new(&it, 0, 5);
	while ((v = bpf_iter_num_next(&it)))
		sum += *v;
	bpf_iter_num_destroy(&it);
	return sum;
}

SEC("uprobe/libc.so.6:fopen")
int colon_section(void *ctx)
{
	return right(1);
}

char _license[] SEC("license") = "GPL";
