// Kernel symbols (__ksym externs) as programs declare them (libbpf's bpf_helpers.h spells __ksym this way).
// libbpf resolves a typed one to the BTF id of its VAR in the running kernel (a BTF-id ld_imm64), a
// typeless one (`const void`) to its address in /proc/kallsyms; a __weak one the kernel lacks reads as 0.
// -DTYPED adds a typed kernel variable: the kernel resolves its address through kallsyms too, so it loads
// only on a kernel built with CONFIG_KALLSYMS_ALL. -DSTRONG_MISSING adds a strong one no kernel has.
// -DTYPED_AS=<type> declares bpf_prog_active (an int in the kernel) as <type>: libbpf refuses the object
// when the declared type is incompatible (a struct, a pointer), and takes any integer or a typedef of one.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __ksym __attribute__((section(".ksyms")))
#define __weak __attribute__((weak))

extern const void _stext __ksym;                       /* typeless: its address from kallsyms */
extern const void bpfpatch_no_such_sym __ksym __weak;  /* typeless, weak, missing: 0 */
extern const int bpfpatch_no_such_var __ksym __weak;   /* typed, weak, missing: 0 */

unsigned long long out_text, out_missing, out_typed_missing, out_active;

#ifdef TYPED
static void *(*bpf_this_cpu_ptr)(const void *percpu_ptr) = (void *)BPF_FUNC_this_cpu_ptr;
extern const int bpf_prog_active __ksym;               /* typed: DEFINE_PER_CPU(int, bpf_prog_active) */
#endif
#ifdef STRONG_MISSING
extern const void bpfpatch_strong_sym __ksym;
#endif
#ifdef TYPED_AS
struct bpfpatch_not_an_int { int x; };
typedef int bpfpatch_int_t;
static void *(*bpf_this_cpu_ptr)(const void *percpu_ptr) = (void *)BPF_FUNC_this_cpu_ptr;
extern const TYPED_AS bpf_prog_active __ksym;
#endif

SEC("raw_tp/sys_enter")
int ksym_values(void *ctx)
{
	out_text = (unsigned long long)&_stext;
	out_missing = (unsigned long long)&bpfpatch_no_such_sym;
	out_typed_missing = (unsigned long long)&bpfpatch_no_such_var;
#ifdef TYPED
	out_active = *(const int *)bpf_this_cpu_ptr(&bpf_prog_active);
#endif
#ifdef STRONG_MISSING
	out_active = (unsigned long long)&bpfpatch_strong_sym;
#endif
#ifdef TYPED_AS
	out_active = *(const char *)bpf_this_cpu_ptr(&bpf_prog_active);
#endif
	return 0;
}

char _license[] SEC("license") = "GPL";
