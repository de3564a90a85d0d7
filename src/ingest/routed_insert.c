/*-------------------------------------------------------------------------
 * routed_insert.c
 *		Rows into a (partitioned) table as COPY stores them: the executor's
 *		tuple routing, and a multi-insert per partition.
 *
 * Both a source's batch (ingest.c) and COPY into a stream table
 * (copy_route.c) store their rows here.  Each row goes through what an
 * INSERT would run (BEFORE row triggers, generated columns, constraints);
 * up to MAX_BUFFERED_ROWS rows of each of MAX_BUFFERED_PARTS partitions
 * wait for one table_multi_insert, then their index entries (batched, see
 * index_batch.c) and AFTER row triggers.  The caller opens and closes it
 * around the rows, within one transaction, after creating the partitions
 * the rows need: the table cannot be in use while one is attached.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "ingest/ingest_int.h"

#include "access/heapam.h"
#include "access/tableam.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/execPartition.h"
#include "executor/nodeModifyTable.h"
#include "executor/tuptable.h"
#include "nodes/makefuncs.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#define MAX_BUFFERED_ROWS	1000	/* per partition, before a multi-insert */
#define MAX_BUFFERED_PARTS	16

/* Rows waiting for one partition's multi-insert. */
typedef struct PartBuffer
{
	ResultRelInfo *rri;
	TupleDesc	desc;			/* an unpinned copy: slots made per batch
								 * must not each pin the relcache's */
	BulkInsertState bistate;	/* one per partition: a bulk-insert state
								 * remembers a buffer by block number only */
	IndexBatch *index_batch;	/* NULL: indexes maintained row by row */
	TupleTableSlot *slots[MAX_BUFFERED_ROWS];
	int			nslots;			/* slots created so far */
	int			n;				/* slots holding rows */
} PartBuffer;

struct RoutedInsert
{
	MemoryContext cxt;			/* the caller's: buffers and slots live here */
	EState	   *estate;
	ModifyTableState *mtstate;
	ResultRelInfo *root;
	PartitionTupleRouting *proute;	/* NULL for a table without partitions */
	TupleTableSlot *rootslot;
	CommandId	cid;
	PartBuffer *bufs[MAX_BUFFERED_PARTS];
	int			nbufs;
};

/*
 * Opens relid for insert, for rows stored as the current user; with
 * statement_triggers, its BEFORE INSERT statement triggers fire now.
 */
RoutedInsert *
RoutedInsertBegin(Oid relid, bool statement_triggers, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	RoutedInsert *st = palloc0(sizeof(RoutedInsert));
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	Relation	rel;

	st->cxt = cxt;
	st->estate = CreateExecutorState();
	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = get_rel_relkind(relid);
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	ExecInitRangeTable(st->estate, list_make1(rte));
	st->root = makeNode(ResultRelInfo);
	ExecInitResultRelation(st->estate, st->root, 1);
	CheckValidResultRel(st->root, CMD_INSERT);
	ExecOpenIndices(st->root, false);
	rel = st->root->ri_RelationDesc;

	st->mtstate = makeNode(ModifyTableState);
	st->mtstate->ps.state = st->estate;
	st->mtstate->operation = CMD_INSERT;
	st->mtstate->mt_nrels = 1;
	st->mtstate->resultRelInfo = st->root;
	st->mtstate->rootResultRelInfo = st->root;

	AfterTriggerBeginQuery();
	if (statement_triggers)
		ExecBSInsertTriggers(st->estate, st->root);
	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		st->proute = ExecSetupPartitionTupleRouting(st->estate, rel);
	st->cid = GetCurrentCommandId(true);
	st->estate->es_output_cid = st->cid;
	st->rootslot = ExecInitExtraTupleSlot(st->estate, RelationGetDescr(rel), &TTSOpsVirtual);
	MemoryContextSwitchTo(old);
	return st;
}

static void
flush_buffer(RoutedInsert *st, PartBuffer *b)
{
	ResultRelInfo *rri = b->rri;

	if (b->n == 0)
		return;
	table_multi_insert(rri->ri_RelationDesc, b->slots, b->n, st->cid, 0, b->bistate);
	if (b->index_batch)
		IndexBatchInsert(b->index_batch, rri, b->slots, b->n);
	for (int i = 0; i < b->n; i++)
	{
		if (rri->ri_NumIndices > 0 && !b->index_batch)
			list_free(ExecInsertIndexTuples(rri, b->slots[i], st->estate,
											false, false, NULL, NIL));
		if (rri->ri_TrigDesc && rri->ri_TrigDesc->trig_insert_after_row)
			ExecARInsertTriggers(st->estate, rri, b->slots[i], NIL, NULL);
		ResetPerTupleExprContext(st->estate);
	}
	b->n = 0;
}

/* The buffer of partition rri, taking over another if all are in use. */
static PartBuffer *
buffer_for(RoutedInsert *st, ResultRelInfo *rri)
{
	PartBuffer *b;

	for (int i = 0; i < st->nbufs; i++)
		if (st->bufs[i]->rri == rri)
			return st->bufs[i];
	if (st->nbufs == MAX_BUFFERED_PARTS)
	{
		for (int i = 0; i < st->nbufs; i++)
			flush_buffer(st, st->bufs[i]);
		st->nbufs = 0;			/* buffers are reused below */
	}
	if (st->bufs[st->nbufs] == NULL)
		st->bufs[st->nbufs] = MemoryContextAllocZero(st->cxt, sizeof(PartBuffer));
	b = st->bufs[st->nbufs++];
	if (b->rri != rri)
	{
		MemoryContext old = MemoryContextSwitchTo(st->cxt);

		if (b->bistate)
			FreeBulkInsertState(b->bistate);
		b->rri = rri;
		b->desc = CreateTupleDescCopy(RelationGetDescr(rri->ri_RelationDesc));
		b->bistate = GetBulkInsertState();
		b->index_batch = IndexBatchCreate(rri);
		b->nslots = 0;
		MemoryContextSwitchTo(old);
	}
	return b;
}

/* Stores one row (natts values in the table's order); false if a BEFORE trigger skipped it. */
bool
RoutedInsertRow(RoutedInsert *st, const Datum *values, const bool *nulls)
{
	TupleTableSlot *slot = st->rootslot;
	ResultRelInfo *rri = st->root;
	PartBuffer *b;
	TupleTableSlot *bslot;
	Relation	rel;

	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, sizeof(Datum) * slot->tts_tupleDescriptor->natts);
	memcpy(slot->tts_isnull, nulls, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	ExecStoreVirtualTuple(slot);

	if (st->proute)
	{
		rri = ExecFindPartition(st->mtstate, st->root, st->proute, slot, st->estate);
		if (rri->ri_RootToPartitionMap)
			slot = execute_attr_map_slot(rri->ri_RootToPartitionMap->attrMap, slot,
										 rri->ri_PartitionTupleSlot);
	}
	rel = rri->ri_RelationDesc;
	b = buffer_for(st, rri);
	if (b->n == b->nslots)
	{
		/* the slot and its entry in the tuple table live as long as st */
		MemoryContext old = MemoryContextSwitchTo(st->cxt);

		b->slots[b->nslots++] = ExecInitExtraTupleSlot(st->estate, b->desc,
													   table_slot_callbacks(rel));
		MemoryContextSwitchTo(old);
	}
	bslot = b->slots[b->n];
	ExecCopySlot(bslot, slot);

	if (rri->ri_TrigDesc && rri->ri_TrigDesc->trig_insert_before_row &&
		!ExecBRInsertTriggers(st->estate, rri, bslot))
		return false;
	if (rel->rd_att->constr && rel->rd_att->constr->has_generated_stored)
		ExecComputeStoredGenerated(rri, st->estate, bslot, CMD_INSERT);
	if (rel->rd_att->constr)
		ExecConstraints(rri, bslot, st->estate);
	ResetPerTupleExprContext(st->estate);
	if (++b->n == MAX_BUFFERED_ROWS)
		flush_buffer(st, b);
	return true;
}

/*
 * Stores what waits and closes the table; with statement_triggers, its
 * AFTER INSERT statement triggers fire first.
 */
void
RoutedInsertEnd(RoutedInsert *st, bool statement_triggers)
{
	for (int i = 0; i < MAX_BUFFERED_PARTS && st->bufs[i]; i++)
	{
		if (i < st->nbufs)
			flush_buffer(st, st->bufs[i]);
		FreeBulkInsertState(st->bufs[i]->bistate);
	}
	if (statement_triggers)
		ExecASInsertTriggers(st->estate, st->root, NULL);
	AfterTriggerEndQuery(st->estate);
	if (st->proute)
		ExecCleanupTupleRouting(st->mtstate, st->proute);
	ExecCloseResultRelations(st->estate);
	ExecCloseRangeTableRelations(st->estate);
	ExecResetTupleTable(st->estate->es_tupleTable, false);
	FreeExecutorState(st->estate);
}
