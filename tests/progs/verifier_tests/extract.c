/* Print the kernel's own verifier test programs (selftests/bpf/verifier/NAME.c, C arrays of
 * struct bpf_test initialisers) as one JSON object per line, so Python can load them.
 *
 * Built by tests/passes/kernel_selftests.py with
 *   gcc -DTEST_FILE='"verifier/NAME.c"' -I SELFTESTS -I TOOLS/include/uapi -I TOOLS/include ...
 * The struct has the fields the initialisers name (only the ones we print are used); the
 * instruction macros are the kernel's own (tools/include/linux/filter.h).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/btf.h>
#include <linux/bpf_perf_event.h>
#include "test_btf.h"
#include "../../../include/linux/filter.h"

#define MAX_INSNS 4096
#define MAX_EXPECTED_INSNS 32
#define MAX_FIXUPS 8
#define MAX_TEST_RUNS 8
#define TEST_DATA_LEN 64
#define MAX_FUNC_INFOS 8
#define MAX_BTF_STRINGS 256
#define MAX_BTF_TYPES 256
#define POINTER_VALUE 0xcafe4all
#define INSN_OFF_MASK ((__s16)0xFFFF)
#define INSN_IMM_MASK ((__s32)0xFFFFFFFF)
#define SKIP_INSNS() BPF_RAW_INSN(0xde, 0xa, 0xd, 0xbeef, 0xdeadbeef)
#define F_NEEDS_EFFICIENT_UNALIGNED_ACCESS (1 << 0)
#define F_LOAD_WITH_STRICT_ALIGNMENT (1 << 1)
#define F_NEEDS_JIT_ENABLED (1 << 2)
#define MAX_ENTRIES 11
#ifndef offsetofend
#define offsetofend(TYPE, MEMBER) (offsetof(TYPE, MEMBER) + sizeof(((TYPE *)0)->MEMBER))
#endif

struct kfunc_btf_id_pair { const char *kfunc; int insn_idx; };

struct bpf_test {
	const char *descr;
	struct bpf_insn insns[MAX_INSNS];
	struct bpf_insn *fill_insns;
	struct bpf_insn expected_insns[MAX_EXPECTED_INSNS];
	struct bpf_insn unexpected_insns[MAX_EXPECTED_INSNS];
	int fixup_map_hash_8b[MAX_FIXUPS], fixup_map_hash_48b[MAX_FIXUPS], fixup_map_hash_16b[MAX_FIXUPS];
	int fixup_map_array_48b[MAX_FIXUPS], fixup_map_sockmap[MAX_FIXUPS], fixup_map_sockhash[MAX_FIXUPS];
	int fixup_map_xskmap[MAX_FIXUPS], fixup_map_stacktrace[MAX_FIXUPS], fixup_prog1[MAX_FIXUPS];
	int fixup_prog2[MAX_FIXUPS], fixup_map_in_map[MAX_FIXUPS], fixup_cgroup_storage[MAX_FIXUPS];
	int fixup_percpu_cgroup_storage[MAX_FIXUPS], fixup_map_spin_lock[MAX_FIXUPS];
	int fixup_map_array_ro[MAX_FIXUPS], fixup_map_array_wo[MAX_FIXUPS], fixup_map_array_small[MAX_FIXUPS];
	int fixup_sk_storage_map[MAX_FIXUPS], fixup_map_event_output[MAX_FIXUPS];
	int fixup_map_reuseport_array[MAX_FIXUPS], fixup_map_ringbuf[MAX_FIXUPS], fixup_map_timer[MAX_FIXUPS];
	int fixup_map_kptr[MAX_FIXUPS];
	struct kfunc_btf_id_pair fixup_kfunc_btf_id[MAX_FIXUPS];
	const char *errstr, *errstr_unpriv;
	uint32_t insn_processed;
	int prog_len;
	enum { UNDEF, ACCEPT, REJECT, VERBOSE_ACCEPT } result, result_unpriv;
	enum bpf_prog_type prog_type;
	uint8_t flags;
	void (*fill_helper)(struct bpf_test *self);
	int runs;
#define TEST_DATA struct { uint32_t retval, retval_unpriv; \
		union { __u8 data[TEST_DATA_LEN]; __u64 data64[TEST_DATA_LEN / 8]; }; }
	union { TEST_DATA; TEST_DATA retvals[MAX_TEST_RUNS]; };
	enum bpf_attach_type expected_attach_type;
	const char *kfunc;
	struct bpf_func_info func_info[MAX_FUNC_INFOS];
	int func_info_cnt;
	char btf_strings[MAX_BTF_STRINGS];
	__u32 btf_types[MAX_BTF_TYPES];
};

/* The generated programs (fill_helper) are not extracted: the stubs only mark them. */
#define FILL(name) static void name(struct bpf_test *self) { (void)self; }
FILL(bpf_fill_big_prog_with_loop_1) FILL(bpf_fill_jump_around_ld_abs) FILL(bpf_fill_ld_abs_vlan_push_pop)
FILL(bpf_fill_rand_ld_dw) FILL(bpf_fill_scale) FILL(bpf_fill_torturous_jumps)

/* Instruction sequences test_verifier.c defines for its tests (same instructions). */
#define BPF_SK_LOOKUP(func) \
	BPF_MOV64_IMM(BPF_REG_2, 0), BPF_STX_MEM(BPF_W, BPF_REG_10, BPF_REG_2, -8), \
	BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_2, -16), BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_2, -24), \
	BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_2, -32), BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_2, -40), \
	BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_2, -48), BPF_MOV64_REG(BPF_REG_2, BPF_REG_10), \
	BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, -48), BPF_MOV64_IMM(BPF_REG_3, sizeof(struct bpf_sock_tuple)), \
	BPF_MOV64_IMM(BPF_REG_4, 0), BPF_MOV64_IMM(BPF_REG_5, 0), BPF_EMIT_CALL(BPF_FUNC_ ## func)
#define BPF_DIRECT_PKT_R2 \
	BPF_MOV64_IMM(BPF_REG_0, 0), BPF_LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_1, offsetof(struct __sk_buff, data)), \
	BPF_LDX_MEM(BPF_W, BPF_REG_3, BPF_REG_1, offsetof(struct __sk_buff, data_end)), \
	BPF_MOV64_REG(BPF_REG_4, BPF_REG_2), BPF_ALU64_IMM(BPF_ADD, BPF_REG_4, 8), \
	BPF_JMP_REG(BPF_JLE, BPF_REG_4, BPF_REG_3, 1), BPF_EXIT_INSN()
#define BPF_RAND_UEXT_R7 \
	BPF_RAW_INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_prandom_u32), BPF_MOV64_REG(BPF_REG_7, BPF_REG_0), \
	BPF_ALU64_IMM(BPF_LSH, BPF_REG_7, 33), BPF_ALU64_IMM(BPF_RSH, BPF_REG_7, 33)
#define BPF_RAND_SEXT_R7 \
	BPF_RAW_INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_prandom_u32), BPF_MOV64_REG(BPF_REG_7, BPF_REG_0), \
	BPF_ALU64_IMM(BPF_OR, BPF_REG_7, 0x80000000), BPF_ALU64_IMM(BPF_LSH, BPF_REG_7, 32), \
	BPF_ALU64_IMM(BPF_ARSH, BPF_REG_7, 32)

static struct bpf_test tests[] = {
#define FILL_ARRAY
#include TEST_FILE
#undef FILL_ARRAY
};

static int any(const int *fix) { return fix[0] != 0; }

static void json_string(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\') printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
		else putchar(*s);
	}
	putchar('"');
}

int main(void)
{
	for (size_t t = 0; t < sizeof(tests) / sizeof(tests[0]); t++) {
		struct bpf_test *x = &tests[t];
		int len = MAX_INSNS - 1;
		while (len > 0 && x->insns[len].code == 0 && x->insns[len].imm == 0) len--;
		const int *fixups[] = {
			x->fixup_map_hash_8b, x->fixup_map_hash_48b, x->fixup_map_hash_16b, x->fixup_map_array_48b,
			x->fixup_map_sockmap, x->fixup_map_sockhash, x->fixup_map_xskmap, x->fixup_map_stacktrace,
			x->fixup_prog1, x->fixup_prog2, x->fixup_map_in_map, x->fixup_cgroup_storage,
			x->fixup_percpu_cgroup_storage, x->fixup_map_spin_lock, x->fixup_map_array_ro,
			x->fixup_map_array_wo, x->fixup_map_array_small, x->fixup_sk_storage_map,
			x->fixup_map_event_output, x->fixup_map_reuseport_array, x->fixup_map_ringbuf,
			x->fixup_map_timer, x->fixup_map_kptr };
		/* The maps test_verifier.c creates plainly (hash_8b, hash_48b, hash_16b, array_48b, array_ro,
		 * array_wo, array_small) are printed with their instruction indices; any other fixup marks
		 * the test as needing test_verifier.c's own set-up. */
		const char *plain_names[] = { "hash_8b", "hash_48b", "hash_16b", "array_48b", "array_ro", "array_wo",
					      "array_small" };
		const int *plain[] = { x->fixup_map_hash_8b, x->fixup_map_hash_48b, x->fixup_map_hash_16b,
				       x->fixup_map_array_48b, x->fixup_map_array_ro, x->fixup_map_array_wo,
				       x->fixup_map_array_small };
		int fixup = x->fixup_kfunc_btf_id[0].kfunc != NULL;
		for (size_t f = 0; f < sizeof(fixups) / sizeof(fixups[0]); f++) {
			int is_plain = 0;
			for (size_t q = 0; q < sizeof(plain) / sizeof(plain[0]); q++) is_plain |= fixups[f] == plain[q];
			if (!is_plain) fixup |= any(fixups[f]);
		}
		printf("{\"index\": %zu, \"descr\": ", t);
		json_string(x->descr);
		printf(", \"prog_type\": %d, \"result\": %d, \"flags\": %d, \"fixup\": %d, \"fill\": %d, "
		       "\"attach_type\": %d, \"kfunc\": %d, \"func_info_cnt\": %d, \"btf\": %d, \"insns\": [",
		       x->prog_type, x->result, x->flags, fixup, x->fill_helper != NULL, x->expected_attach_type,
		       x->kfunc != NULL, x->func_info_cnt, x->btf_types[0] != 0);
		for (int i = 0; i <= len; i++)
			printf("%s[%u, %u, %u, %d, %d]", i ? ", " : "", x->insns[i].code, x->insns[i].dst_reg,
			       x->insns[i].src_reg, x->insns[i].off, x->insns[i].imm);
		printf("], \"maps\": {");
		int first = 1;
		for (size_t q = 0; q < sizeof(plain) / sizeof(plain[0]); q++) {
			if (!any(plain[q])) continue;
			printf("%s\"%s\": [", first ? "" : ", ", plain_names[q]);
			for (int k = 0; k < MAX_FIXUPS && plain[q][k]; k++) printf("%s%d", k ? ", " : "", plain[q][k]);
			printf("]");
			first = 0;
		}
		printf("}}\n");
	}
	return 0;
}
