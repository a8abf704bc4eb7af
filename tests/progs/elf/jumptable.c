/* A hand-assembled Linux 6.19 indirect jump: a two-entry table in .jumptables (what LLVM 20+
 * emits for a switch), loaded with `r0 = jt0 ll`, indexed, and taken with gotox (0x0d; LLVM 19
 * has no mnemonic for it).  A division and a constant come first, so div-guard and blind move
 * the targets. */
__attribute__((section("socket"), used, naked)) void jt_prog(void)
{
	asm volatile ("					\
	.pushsection .jumptables,\"\",@progbits;	\
jt0:							\
	.quad ret0 - jt_prog;				\
	.quad ret1 - jt_prog;				\
	.size jt0, 16;					\
	.global jt0;					\
	.popsection;					\
	r1 = 7;						\
	r2 = 1;						\
	r1 /= r2;					\
	r0 = jt0 ll;					\
	r0 += 8;					\
	r0 = *(u64 *)(r0 + 0);				\
	.8byte 0x000000000000000d;			\
ret0:							\
	r0 = 0;						\
	exit;						\
ret1:							\
	r0 = 1;						\
	exit;						\
	" ::: "memory");
}

char LICENSE[] __attribute__((section("license"), used)) = "GPL";
