/* List heads and rbtree roots with their __contains tags, in a map value and in global data
 * (tests/elf/test_elf_btf_fields.py reads them back with bpfpatch.btf.fields.graph_roots). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __contains(name, node) __attribute__((btf_decl_tag("contains:" #name ":" #node)))

struct bpf_list_head { __u64 __a, __b; } __attribute__((aligned(8)));
struct bpf_list_node { __u64 __a, __b, __c; } __attribute__((aligned(8)));
struct bpf_rb_root { __u64 __a, __b; } __attribute__((aligned(8)));
struct bpf_rb_node { __u64 __a, __b, __c, __d; } __attribute__((aligned(8)));

struct foo {
	struct bpf_list_node node;
	int data;
	struct bpf_list_node node2;   /* at 32 */
	struct bpf_rb_node rb;        /* at 56 */
};

struct map_value {
	int pad;
	struct bpf_list_head head __contains(foo, node2);   /* at 8 */
	struct bpf_rb_root root __contains(foo, rb);        /* at 24 */
	struct bpf_spin_lock lock;                          /* the kernel wants one beside list heads */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, int);
	__type(value, struct map_value);
	__uint(max_entries, 1);
} values SEC(".maps");

struct foo *foo_ref; /* keeps struct foo in the BTF, as bpf_obj_new(struct foo) does */

#define private(name) SEC(".data." #name) __attribute__((aligned(8)))
private(A) struct bpf_list_head ghead __contains(foo, node);
private(A) struct bpf_list_head garray[2] __contains(foo, node2);
private(A) struct bpf_spin_lock glock;

SEC("tc")
int use(struct __sk_buff *skb)
{
	int k = 0;
	struct map_value *v = bpf_map_lookup_elem(&values, &k);

	return v ? v->pad : 0;
}

char _license[] SEC("license") = "GPL";
