#include "textflag.h"

// func prefetch2(addr unsafe.Pointer)
TEXT ·prefetch2(SB), NOSPLIT|NOFRAME, $0-8
	MOVD addr+0(FP), R0
	PRFM (R0), PLDL1KEEP
	PRFM 64(R0), PLDL1KEEP
	RET
