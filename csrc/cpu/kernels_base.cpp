// The CPU kernels for any x86-64 (or other) CPU.
#define GF_ISA isa_base
#define GF_TABLE_FLOAT table_float_base
#define GF_TABLE_DOUBLE table_double_base
#include "kernels_impl.h"
