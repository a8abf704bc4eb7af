// Maps of the older form, as pre-1.0 libbpf and iproute2 (tc) objects declare them: a "maps"
// section of struct bpf_map_def (libbpf 1.x refuses such objects).
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

struct bpf_map_def {
	unsigned int type, key_size, value_size, max_entries, map_flags;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, unsigned long flags) = (void *)2;

struct bpf_map_def SEC("maps") counts = {
	.type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 4,
};

struct bpf_map_def SEC("maps") seen = {
	.type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = 4, .max_entries = 16, .map_flags = BPF_F_NO_PREALLOC,
};

SEC("socket")
int count_lengths(struct __sk_buff *skb)
{
	unsigned int key = skb->len & 3, len = skb->len;
	unsigned long *n = bpf_map_lookup_elem(&counts, &key);

	if (n)
		*n += len / (key + 1);
	bpf_map_update_elem(&seen, &key, &len, BPF_ANY);
	return skb->len % 7;
}

char _license[] SEC("license") = "GPL";
