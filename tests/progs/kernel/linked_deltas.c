/* Linked scalars with a constant delta (the verifier's BPF_ADD_CONST, 6.18): after `r1 = r0; r1 += -10`
 * a branch on r1 narrows r0 too, so the kernel removes what the narrowed r0 cannot reach (the dead
 * code passes).  tetragon's switch ranges compile to this shape (`r1 = r7; r1 += -10; if r1 < 2`).
 * Each program returns 0 or 1; `r0 = 7` marks the code only the linked bounds prove dead. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __imm(name) [name]"i"(name)
#define __clobber_all "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "memory"

/* r0 in [9, 11]; r1 = r0 - 10 not below 2 (unsigned): r1 == -1, so r0 == 9 */
SEC("socket")
__attribute__((naked)) void add_negative(void)
{
	asm volatile ("					\
	call %[bpf_get_prandom_u32];			\
	if r0 s> 11 goto 1f;				\
	if r0 s< 9 goto 1f;				\
	r1 = r0;					\
	r1 += -10;					\
	if r1 < 2 goto 1f;				\
	if r0 == 9 goto 1f;				\
	r0 = 7;						\
	exit;						\
1:	r0 = 0;						\
	exit;						\
"	:: __imm(bpf_get_prandom_u32) : __clobber_all);
}

/* the same with `r1 -= 10` (BPF_SUB: the delta is -10) */
SEC("socket")
__attribute__((naked)) void sub_constant(void)
{
	asm volatile ("					\
	call %[bpf_get_prandom_u32];			\
	if r0 s> 11 goto 1f;				\
	if r0 s< 9 goto 1f;				\
	r1 = r0;					\
	r1 -= 10;					\
	if r1 < 2 goto 1f;				\
	if r0 == 9 goto 1f;				\
	r0 = 7;						\
	exit;						\
1:	r0 = 0;						\
	exit;						\
"	:: __imm(bpf_get_prandom_u32) : __clobber_all);
}

/* a positive delta: r1 = r0 + 10 > 20 means r0 > 10 */
SEC("socket")
__attribute__((naked)) void add_positive(void)
{
	asm volatile ("					\
	call %[bpf_get_prandom_u32];			\
	r0 &= 0xff;					\
	r1 = r0;					\
	r1 += 10;					\
	if r1 <= 20 goto 1f;				\
	if r0 > 10 goto 1f;				\
	r0 = 7;						\
	exit;						\
1:	r0 = 0;						\
	exit;						\
"	:: __imm(bpf_get_prandom_u32) : __clobber_all);
}

/* ALU32 (BPF_ADD_CONST32): w7 = w6 + 1, r6 <= 5 after the branch, so r7 in [1, 6], zero-extended */
SEC("socket")
__attribute__((naked)) void alu32_delta(void)
{
	asm volatile ("					\
	call %[bpf_get_prandom_u32];			\
	w6 = w0;					\
	r7 = r6;					\
	w7 += 1;					\
	if r6 > 5 goto 1f;				\
	if r7 != 0 goto 1f;				\
	r0 = 7;						\
	exit;						\
1:	r0 = 0;						\
	exit;						\
"	:: __imm(bpf_get_prandom_u32) : __clobber_all);
}

/* mixed widths: r7 (32-bit delta) and r8 (64-bit delta) are not synced to each other, so `r8 > 7` stays
 * open after the branch on r7 (r6 is narrowed, r8 is not) */
SEC("socket")
__attribute__((naked)) void mixed_widths(void)
{
	asm volatile ("					\
	call %[bpf_get_prandom_u32];			\
	w6 = w0;					\
	r7 = r6;					\
	w7 += 1;					\
	r8 = r6;					\
	r8 += 2;					\
	if r7 > 6 goto 1f;				\
	if r8 <= 7 goto 1f;				\
	r0 = 1;						\
	exit;						\
1:	r0 = 0;						\
	exit;						\
"	:: __imm(bpf_get_prandom_u32) : __clobber_all);
}

/* two deltas on one register drop the link: nothing is narrowed, nothing removed */
SEC("socket")
__attribute__((naked)) void two_deltas(void)
{
	asm volatile ("					\
	call %[bpf_get_prandom_u32];			\
	r0 &= 0xff;					\
	r1 = r0;					\
	r1 += 5;					\
	r1 += 5;					\
	if r1 <= 20 goto 1f;				\
	if r0 > 10 goto 1f;				\
	r0 = 1;						\
	exit;						\
1:	r0 = 0;						\
	exit;						\
"	:: __imm(bpf_get_prandom_u32) : __clobber_all);
}

char LICENSE[] SEC("license") = "GPL";
