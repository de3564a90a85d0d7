/*-------------------------------------------------------------------------
 * alerts.c
 *		Produces anomalies to their rule's alert topic: the outbox.
 *
 * Anomalies are written with the evaluation that raised them and carry
 * their alert_topic; alerted_at stays NULL until the broker has
 * acknowledged the message.  After each evaluation commits, the detection
 * worker calls AlertsDrain in a transaction of its own: it locks the unsent
 * anomalies of the table's source (whose connection it uses),
 * produces each keyed by its id, waits for the acknowledgements, and only
 * then marks them sent.  A crash in between sends them again: at least
 * once, and consumers de-duplicate by key.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "source/source.h"
#include "detect/detect_int.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#define ALERTS_PER_DRAIN	1000
#define ALERT_FLUSH_MS		5000

/*
 * Produces up to ALERTS_PER_DRAIN unsent anomalies of source; returns how
 * many were sent, or -1 if the broker did not acknowledge them all (they
 * stay unsent).  The producer (*sinkp) is opened on the connection of
 * source_id the first time there is something to send.  Inside a
 * transaction.
 */
int
AlertsDrain(KafkaSink **sinkp, int source_id, const char *source)
{
	KafkaSink  *sink;
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(source), Int32GetDatum(ALERTS_PER_DRAIN)};
	uint64		n;
	Datum	   *ids;
	SPITupleTable *tt;
	int			sent = 0;

	SPI_connect();
	if (SPI_execute_with_args("SELECT id, alert_topic, iotstream._anomaly_payload(a)::text"
							  " FROM iotstream.anomalies a"
							  " WHERE alert_topic IS NOT NULL AND alerted_at IS NULL AND source = $1"
							  " ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the alert outbox");
	n = SPI_processed;
	tt = SPI_tuptable;
	if (n == 0)
	{
		SPI_finish();
		return 0;
	}
	if (*sinkp == NULL)
	{
		char		errbuf[512];

		*sinkp = SourceOpenAlertSink(source_id, errbuf, sizeof(errbuf));
		if (*sinkp == NULL)
		{
			ereport(WARNING,
					(errmsg("iotstream could not open the alert producer of source \"%s\": %s",
							source, errbuf)));
			SPI_finish();
			return -1;
		}
	}
	sink = *sinkp;
	ids = palloc(sizeof(Datum) * n);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *key = SPI_getvalue(tt->vals[i], tt->tupdesc, 1);
		char	   *topic = SPI_getvalue(tt->vals[i], tt->tupdesc, 2);
		char	   *payload = SPI_getvalue(tt->vals[i], tt->tupdesc, 3);

		ids[i] = SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull);
		if (!KafkaSinkProduce(sink, topic, key, strlen(key), payload, strlen(payload)))
		{
			(void) KafkaSinkFlush(sink, ALERT_FLUSH_MS);
			SPI_finish();
			return -1;
		}
	}
	if (KafkaSinkFlush(sink, ALERT_FLUSH_MS) != 0)
	{
		SPI_finish();
		return -1;
	}
	{
		Oid			utypes[1] = {INT8ARRAYOID};
		Datum		uargs[1];

		uargs[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (SPI_execute_with_args("UPDATE iotstream.anomalies SET alerted_at = clock_timestamp()"
								  " WHERE id = ANY($1)", 1, utypes, uargs, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not mark alerts as sent");
		sent = n;
	}
	SPI_finish();
	return sent;
}
