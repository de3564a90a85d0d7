/*-------------------------------------------------------------------------
 * catch.c
 *		Runs a step in a subtransaction and turns its error into a value.
 *
 * Bad input must cost a row, never a batch: the row-by-row retry of a
 * batch, the creation of one row's partition and the preview of a json
 * value each run their step here.  On an error the subtransaction is
 * rolled back (with everything the step did, its user and GUC changes
 * too) and the caller gets the message; the memory context and resource
 * owner are the caller's again either way.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

/* NULL if step(arg) succeeded; else its error message, in the caller's context. */
const char *
CatchError(void (*step) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	const char *volatile error = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		step(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		error = edata->message;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return error;
}
