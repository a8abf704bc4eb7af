/* The open-coded numbers iterator's kfuncs, as kernel/bpf/bpf_iter.c declares them (the selftests'
 * bpf_experimental.h): included by the test programs that use it, after <bpf/bpf_helpers.h>. */
#ifndef BPFPATCH_TESTS_ITER_NUM_H
#define BPFPATCH_TESTS_ITER_NUM_H

struct bpf_iter_num {
	__u64 __opaque[1];
} __attribute__((aligned(8)));

extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

#endif
