/* One object with what real objects hold: CO-RE field reads, BTF-defined maps, global data
 * (.data, .rodata, .bss), static and global functions in .text called from two program
 * sections, a callback passed by address (bpf_loop), a division (div-guard) and constants (blind).  Built with clang 14 and clang 19,
 * -mcpu=v2..v4, -O0..-O2, against a vmlinux.h dumped from this kernel's BTF. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

int hits = 3;                     /* .data */
const volatile int scale = 5;     /* .rodata */
__u64 last_pid;                   /* .bss */

static __noinline int task_pid(struct task_struct *t)
{
	return BPF_CORE_READ(t, pid) + hits;
}

__noinline int scaled(int x)
{
	return x * scale + 0x1234;
}

static int add_index(__u32 i, void *ctx)  /* a callback: its address is an ld_imm64 into .text */
{
	hits += i * 3;
	return 0;
}

static __always_inline void bump(__u32 k, __u64 by)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &k);

	if (v)
		__sync_fetch_and_add(v, by);
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	int pid = task_pid(t);
	__u32 d = (__u32)bpf_get_prandom_u32() | 1;

	last_pid = pid;
	bump(0, scaled(pid) / d);
	if (bpf_core_field_exists(t->tgid))
		hits++;
	bpf_loop(4, add_index, 0, 0);
	return 0;
}

SEC("kprobe/do_nanosleep")
int on_nanosleep(struct pt_regs *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();

	bump(1, task_pid(t) + bpf_core_type_size(struct task_struct));
	return scaled(7) > 100 ? 1 : 0;
}

SEC("socket")
int sock(struct __sk_buff *skb)
{
	__u32 len = skb->len;

	bump(2, len % 7);
	return len > 64 ? 0 : -1;
}

char LICENSE[] SEC("license") = "GPL";
