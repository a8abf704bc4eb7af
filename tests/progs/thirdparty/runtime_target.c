// bcc's fsslower / fsdist / funclatency: an fentry program whose section names a placeholder the loader
// replaces at run time (bpf_program__set_attach_target). The kernel has no such function, so libbpf cannot
// load the object as it is, and analyze cannot know the arguments: it says so, naming the section,
// instead of reporting a violation at the first argument read ("R1 invalid mem access 'scalar'").
#include <linux/bpf.h>

__attribute__((section("fentry/bpfpatch_dummy_target"), used))
int dummy_fentry(unsigned long long *ctx)
{
	return *(long *)ctx[0] != 0;
}

char _license[] __attribute__((section("license"), used)) = "GPL";
