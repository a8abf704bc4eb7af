/* Open-coded iterator loops, walked as the kernel walks them (process_iter_next_call, is_state_visited):
 * an active iterator's next forks (an element, one iteration deeper, is queued; the path goes on with
 * the iterator drained and NULL), a drained one gives NULL without a fork, and the loop converges on
 * the iterator (states equal range within at next).  Each program's processed count is the kernel's.
 *
 * overfetch: ten next calls in a row (unrolled), five elements; the walk forks once per path where
 *   every call forked (2^10 paths before: 11,758 instructions where the kernel processes 865).
 * two_loops: two sequential loops, each with its own iterator (a new reference per path: the
 *   second loop's states differ from the first path's only in the reference's number).
 * nested: a loop inside a loop.
 * next_after_destroy, double_new: refused, as the kernel refuses them. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../iter_num.h"

SEC("raw_tp/sys_enter")
int overfetch(const void *ctx)
{
	struct bpf_iter_num it;
	int cnt = 0, *v, i;

	bpf_iter_num_new(&it, 0, 5);
#pragma clang loop unroll(full)
	for (i = 0; i < 10; i++) {
		v = bpf_iter_num_next(&it);
		if (v)
			cnt++;
	}
	bpf_iter_num_destroy(&it);
	return cnt & 1;
}

SEC("raw_tp/sys_enter")
int two_loops(const void *ctx)
{
	struct bpf_iter_num it;
	int sum = 0, *v;

	bpf_iter_num_new(&it, 0, 3);
	while ((v = bpf_iter_num_next(&it)))
		sum += *v;
	bpf_iter_num_destroy(&it);
	bpf_iter_num_new(&it, 5, 10);
	while ((v = bpf_iter_num_next(&it)))
		sum += *v;
	bpf_iter_num_destroy(&it);
	return sum & 1;
}

SEC("raw_tp/sys_enter")
int nested(const void *ctx)
{
	struct bpf_iter_num outer, inner;
	int sum = 0, *v, *w;

	bpf_iter_num_new(&outer, 0, 4);
	while ((v = bpf_iter_num_next(&outer))) {
		bpf_iter_num_new(&inner, 0, 8);
		while ((w = bpf_iter_num_next(&inner)))
			sum += *v * *w;
		bpf_iter_num_destroy(&inner);
	}
	bpf_iter_num_destroy(&outer);
	return sum & 1;
}

SEC("?raw_tp/sys_enter")
int next_after_destroy(const void *ctx)
{
	struct bpf_iter_num it;

	bpf_iter_num_new(&it, 0, 3);
	bpf_iter_num_destroy(&it);
	return bpf_iter_num_next(&it) != 0;
}

SEC("?raw_tp/sys_enter")
int double_new(const void *ctx)
{
	struct bpf_iter_num it;

	bpf_iter_num_new(&it, 0, 3);
	bpf_iter_num_new(&it, 0, 3);
	bpf_iter_num_destroy(&it);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
