/*-------------------------------------------------------------------------
 * source_config.c
 *		A source's configuration, from the catalog, secrets included.
 *
 * The source worker reads it at start; the detection worker reads the
 * connection part of it to produce alerts on the source's brokers.  Only
 * here do the secret properties leave iotstream.source_secrets, and only
 * into memory handed to the client library.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/source_int.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

/*
 * Reads the source and its librdkafka properties, secrets included; runs in
 * a transaction.  Options with a dot in their name (and "debug") go to
 * librdkafka; the others are ours.  An MQTT source gets all its options
 * (mqtt_source.c reads qos, client_id, username, password, ...).
 */
SourceConfig *
SourceConfigLoad(int source_id, bool running, MemoryContext cxt)
{
	SourceConfig *c = MemoryContextAllocZero(cxt, sizeof(SourceConfig));
	Oid			argtypes[2] = {INT4OID, BOOLOID};
	Datum		args[2] = {Int32GetDatum(source_id), BoolGetDatum(running)};
	MemoryContext old;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	Datum	   *elems;
	int			n;

	SPI_connect();
	if (SPI_execute_with_args("SELECT s.name, s.target::oid, s.mapping, s.options,"
							  "  coalesce((s.options->>'batch_size')::int, 10000),"
							  "  coalesce((s.options->>'batch_ms')::int, 100),"
							  "  s.topics, s.brokers, s.group_id,"
							  "  coalesce(s.options->>'start', 'earliest'), s.kind"
							  " FROM iotstream.sources s WHERE s.source_id = $1 AND (s.running OR NOT $2)",
							  2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read iotstream.sources");
	if (SPI_processed == 0)
	{
		SPI_finish();
		return NULL;
	}
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	old = MemoryContextSwitchTo(cxt);
	c->source_id = source_id;
	c->name = SPI_getvalue(tup, desc, 1);
	c->target = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	d = SPI_getbinval(tup, desc, 3, &isnull);
	c->mapping = isnull ? NULL : DatumGetJsonbPCopy(d);
	c->options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull));
	c->batch_size = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
	c->batch_ms = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
	deconstruct_array(DatumGetArrayTypePCopy(SPI_getbinval(tup, desc, 7, &isnull)),
					  TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &n);
	c->topics = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
		c->topics[i] = TextDatumGetCString(elems[i]);
	c->ntopics = n;
	c->props = palloc(sizeof(SourceProperty) * 3);
	c->props[0].name = "bootstrap.servers";
	c->props[0].value = SPI_getvalue(tup, desc, 8);
	c->props[1].name = "group.id";
	c->props[1].value = SPI_getvalue(tup, desc, 9);
	c->props[2].name = "auto.offset.reset";
	c->props[2].value = SPI_getvalue(tup, desc, 10);
	c->nprops = 3;
	c->kind = SPI_getvalue(tup, desc, 11);
	MemoryContextSwitchTo(old);

	if (SPI_execute_with_args("SELECT o.key, o.value #>> '{}' FROM iotstream.sources s, jsonb_each(s.options) o"
							  " WHERE s.source_id = $1 AND (o.key LIKE '%.%' OR o.key = 'debug' OR s.kind = 'mqtt')"
							  " UNION ALL"
							  " SELECT o.key, o.value #>> '{}' FROM iotstream.source_secrets x, jsonb_each(x.properties) o"
							  " WHERE x.source_id = $1",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the properties of an iotstream source");
	old = MemoryContextSwitchTo(cxt);
	c->props = repalloc(c->props, sizeof(SourceProperty) * (c->nprops + SPI_processed));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		c->props[c->nprops].name = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		c->props[c->nprops].value = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);
		c->nprops++;
	}
	MemoryContextSwitchTo(old);
	SPI_finish();
	return c;
}

/*
 * The implementation of the source interface that reads sources of a kind
 * (iotstream.sources.kind); NULL for a kind this build does not know.
 */
const SourceOps *
SourceOpsFor(const char *kind)
{
	static const SourceOps *const all[] = {&KafkaSourceOps, &MqttSourceOps, &FileSourceOps};

	for (int i = 0; i < lengthof(all); i++)
		if (strcmp(all[i]->kind, kind) == 0)
			return all[i];
	return NULL;
}

/*
 * A producer for alert topics on the connection of source source_id: its
 * bootstrap servers and security settings, not its consumer settings.
 * NULL (with the reason in errbuf) if it cannot be opened.  In a
 * transaction.
 */
KafkaSink *
SourceOpenAlertSink(int source_id, char *errbuf, size_t errlen)
{
	SourceConfig *c = SourceConfigLoad(source_id, false, CurrentMemoryContext);
	SourceProperty *props;
	int			n = 0;

	if (c == NULL)
	{
		snprintf(errbuf, errlen, "source %d no longer exists", source_id);
		return NULL;
	}
	props = palloc(sizeof(SourceProperty) * c->nprops);
	for (int i = 0; i < c->nprops; i++)
	{
		const char *name = c->props[i].name;

		if (strcmp(name, "bootstrap.servers") == 0 || strcmp(name, "client.id") == 0 ||
			strncmp(name, "security.", 9) == 0 || strncmp(name, "sasl.", 5) == 0 ||
			strncmp(name, "ssl.", 4) == 0 || strncmp(name, "socket.", 7) == 0 ||
			strcmp(name, "broker.address.family") == 0)
			props[n++] = c->props[i];
	}
	return KafkaSinkOpen(props, n, errbuf, errlen);
}
