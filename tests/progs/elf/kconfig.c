// __kconfig externs as programs declare them (libbpf's bpf_helpers.h spells __kconfig this way):
// libbpf lays them out in a read-only .kconfig map and fills it for the running kernel.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __kconfig __attribute__((section(".kconfig")))
#define __weak __attribute__((weak))

enum libbpf_tristate { TRI_NO = 0, TRI_YES = 1, TRI_MODULE = 2 };

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern _Bool LINUX_HAS_BPF_COOKIE __kconfig __weak;
extern int CONFIG_HZ __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig __weak;
extern char CONFIG_DEFAULT_HOSTNAME[8] __kconfig __weak;
extern unsigned long long CONFIG_BPFPATCH_NOT_AN_OPTION __kconfig __weak;

SEC("socket")
int kconfig_values(struct __sk_buff *skb)
{
	if (LINUX_KERNEL_VERSION < (5 << 16))  /* dead on any kernel that runs this */
		return 99;
	if (CONFIG_BPFPATCH_NOT_AN_OPTION)  /* a weak option no kernel has: 0 */
		return 98;
	return (unsigned int)CONFIG_HZ / 50 + CONFIG_BPF_SYSCALL + LINUX_HAS_BPF_COOKIE + (CONFIG_BPF_JIT == TRI_YES)
	       + CONFIG_DEFAULT_HOSTNAME[1];
}

char _license[] SEC("license") = "GPL";
