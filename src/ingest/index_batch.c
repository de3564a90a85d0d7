/*-------------------------------------------------------------------------
 * index_batch.c
 *		Index maintenance for one multi-insert of a stream table partition,
 *		with one BRIN insert per page range instead of one per row.
 *
 * Stream tables carry a minmax BRIN index on their time column (rules read
 * sealed time ranges through it).  PostgreSQL 15 maintains it row by row:
 * each brininsert maps the revmap, finds the range's summary and compares,
 * which cost a quarter of the ingest worker's time.  A minmax summary is
 * the smallest and largest value of its range (and whether it holds
 * nulls), so inserting the smallest and the largest of the rows a batch
 * put into a range, and one null if it put any, leaves exactly the summary
 * that inserting every row leaves.  Those are real rows, inserted through
 * index_insert like any other: a concurrent summarization's placeholder
 * is widened by them as by any insert.  The first row of a new range is
 * inserted too, so that autosummarize still hears of the range.
 *
 * This is used only when every index of the partition is such a minmax
 * BRIN on a plain column; any other index (a btree, an expression, a
 * partial or a bloom BRIN) leaves the partition on ExecInsertIndexTuples.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "ingest/ingest_int.h"

#include "access/brin.h"
#include "access/brin_internal.h"
#include "access/genam.h"
#include "access/stratnum.h"
#include "catalog/pg_am_d.h"
#include "executor/executor.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/sortsupport.h"

/* What one index needs for its inserts, looked up once per partition and batch. */
typedef struct IndexBatchColumn
{
	AttrNumber	attno;			/* in the partition */
	BlockNumber per_range;
	SortSupportData order;		/* the opfamily's < on the column's type,
								 * compared without an fmgr call where the
								 * type allows (int8, timestamptz, ...) */
} IndexBatchColumn;

struct IndexBatch
{
	int			n;
	IndexBatchColumn cols[FLEXIBLE_ARRAY_MEMBER];	/* per index of the partition */
};

/* Whether the index is a minmax BRIN on one plain column. */
static bool
minmax_brin(Relation idx, IndexInfo *ii)
{
	return idx->rd_rel->relam == BRIN_AM_OID &&
		ii->ii_NumIndexAttrs == 1 &&
		ii->ii_IndexAttrNumbers[0] > 0 &&
		ii->ii_Expressions == NIL &&
		ii->ii_Predicate == NIL &&
		index_getprocid(idx, 1, BRIN_PROCNUM_OPCINFO) == F_BRIN_MINMAX_OPCINFO;
}

/*
 * The per-index state IndexBatchInsert needs, in the current memory
 * context, or NULL if some index of the partition is not such a BRIN (or
 * it has none): then ExecInsertIndexTuples maintains them.
 */
IndexBatch *
IndexBatchCreate(ResultRelInfo *rri)
{
	IndexBatch *ib;

	if (rri->ri_NumIndices == 0)
		return NULL;
	for (int j = 0; j < rri->ri_NumIndices; j++)
		if (!minmax_brin(rri->ri_IndexRelationDescs[j], rri->ri_IndexRelationInfo[j]))
			return NULL;
	ib = palloc(offsetof(IndexBatch, cols) + sizeof(IndexBatchColumn) * rri->ri_NumIndices);
	ib->n = rri->ri_NumIndices;
	for (int j = 0; j < ib->n; j++)
	{
		Relation	idx = rri->ri_IndexRelationDescs[j];
		Oid			type = idx->rd_opcintype[0];
		Oid			less_op = get_opfamily_member(idx->rd_opfamily[0], type, type, BTLessStrategyNumber);
		IndexBatchColumn *c = &ib->cols[j];

		if (!OidIsValid(less_op))
			elog(ERROR, "no less-than operator for the BRIN index \"%s\"",
				 RelationGetRelationName(idx));
		c->attno = rri->ri_IndexRelationInfo[j]->ii_IndexAttrNumbers[0];
		c->per_range = BrinGetPagesPerRange(idx);
		memset(&c->order, 0, sizeof(SortSupportData));
		c->order.ssup_cxt = CurrentMemoryContext;
		c->order.ssup_collation = idx->rd_indcollation[0];
		PrepareSortSupportFromOrderingOp(less_op, &c->order);
	}
	return ib;
}

static void
index_one(Relation idx, IndexInfo *ii, Relation heap, TupleTableSlot *slot, Datum value, bool isnull)
{
	index_insert(idx, &value, &isnull, &slot->tts_tid, heap, UNIQUE_CHECK_NO, false, ii);
}

/*
 * The index entries of n rows just multi-inserted (their slots hold their
 * TIDs), for a partition IndexBatchCreate() accepted.
 */
void
IndexBatchInsert(IndexBatch *ib, ResultRelInfo *rri, TupleTableSlot **slots, int n)
{
	Relation	heap = rri->ri_RelationDesc;

	for (int j = 0; j < ib->n; j++)
	{
		Relation	idx = rri->ri_IndexRelationDescs[j];
		IndexInfo  *ii = rri->ri_IndexRelationInfo[j];
		IndexBatchColumn *c = &ib->cols[j];
		int			i = 0;

		if (!ii->ii_ReadyForInserts)
			continue;			/* being built concurrently: as ExecInsertIndexTuples */

		/* each run of rows in one page range: its smallest, largest, a null */
		while (i < n)
		{
			BlockNumber range = ItemPointerGetBlockNumber(&slots[i]->tts_tid) / c->per_range;
			int			lo = -1,
						hi = -1,
						null = -1;
			Datum		lo_v = 0,
						hi_v = 0;

			for (; i < n && ItemPointerGetBlockNumber(&slots[i]->tts_tid) / c->per_range == range; i++)
			{
				ItemPointer tid = &slots[i]->tts_tid;
				bool		isnull;
				Datum		v = slot_getattr(slots[i], c->attno, &isnull);

				if (ItemPointerGetBlockNumber(tid) % c->per_range == 0 &&
					ItemPointerGetOffsetNumber(tid) == FirstOffsetNumber)
				{
					index_one(idx, ii, heap, slots[i], v, isnull);	/* autosummarize */
					continue;
				}
				if (isnull)
					null = i;
				else if (lo < 0)
				{
					lo = hi = i;
					lo_v = hi_v = v;
				}
				else if (ApplySortComparator(v, false, lo_v, false, &c->order) < 0)
				{
					lo = i;
					lo_v = v;
				}
				else if (ApplySortComparator(hi_v, false, v, false, &c->order) < 0)
				{
					hi = i;
					hi_v = v;
				}
			}
			if (lo >= 0)
				index_one(idx, ii, heap, slots[lo], lo_v, false);
			if (hi >= 0 && hi != lo)
				index_one(idx, ii, heap, slots[hi], hi_v, false);
			if (null >= 0)
				index_one(idx, ii, heap, slots[null], (Datum) 0, true);
		}
	}
}
