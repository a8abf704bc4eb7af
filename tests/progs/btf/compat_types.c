// Types for libbpf's type-compatibility rule (bpf_core_types_are_compat), read back from this object's BTF.
// Each global's type is what the test compares: the rule is shallow (kinds after typedefs and qualifiers).
#define SEC(name) __attribute__((section(name), used))

struct one { int a; };
struct other { long b; char c; };
union either { int a; long b; };
enum colour { RED, GREEN };
enum big { HUGE = 0x100000000ULL };
typedef int my_int;
typedef const volatile my_int cv_int;
typedef int (*takes_one)(int);
typedef long (*takes_one_long)(long);
typedef int (*takes_two)(int, long);
typedef struct one *(*gives_struct)(int);
typedef int *(*gives_int_ptr)(int);
struct bits { int lo : 3; int hi : 5; };

int v_int;
unsigned long v_ulong;
cv_int v_cv_int;
int *v_int_ptr;
long *v_long_ptr;
int **v_int_ptr_ptr;
void *v_void_ptr;
struct one v_one;
struct other v_other;
union either v_either;
enum colour v_colour;
enum big v_big;
int v_arr_int[4];
long v_arr_long[8];
struct one v_arr_one[2];
takes_one v_takes_one;
takes_one_long v_takes_one_long;
takes_two v_takes_two;
gives_struct v_gives_struct;
gives_int_ptr v_gives_int_ptr;

SEC("socket")
int use(void *ctx)
{
	return v_int + v_ulong + v_cv_int + (long)v_int_ptr + (long)v_long_ptr + (long)v_int_ptr_ptr + (long)v_void_ptr +
	       v_one.a + v_other.c + v_either.a + v_colour + v_big + v_arr_int[0] + v_arr_long[0] + v_arr_one[0].a +
	       (long)v_takes_one + (long)v_takes_one_long + (long)v_takes_two + (long)v_gives_struct + (long)v_gives_int_ptr;
}

char _license[] SEC("license") = "GPL";
