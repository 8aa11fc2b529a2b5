// SPDX-License-Identifier: GPL-2.0-only
/* pfnic: the one place the tracepoints of pfnic_trace.h are defined. */
#define CREATE_TRACE_POINTS
#include "pfnic_trace.h"
