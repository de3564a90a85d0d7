/*-------------------------------------------------------------------------
 * iotstream.c
 *		Module entry point: defines the GUCs and registers what the server
 *		must start.  Each stage keeps its own setup in an *Init() function.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "ingest/ingest.h"

#include "fmgr.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void
_PG_init(void)
{
	LauncherInit();
	CopyRouteInit();
	MarkGUCPrefixReserved("iotstream");
}
