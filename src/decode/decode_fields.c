/*-------------------------------------------------------------------------
 * decode_fields.c
 *		Records already split into named fields (CSV) to table columns.
 *
 * A CSV record is a flat object of strings, so it needs no JSON: the
 * names of a file's fields are matched to the plan's columns once per
 * SourceFields id, by the same rules as JSON keys (the matching runs
 * JsonScan over a tiny object of the names, so exact, camelCase and
 * case-insensitive matches, and "the last of equals wins", are the
 * decoder's own), and then each record's fields go straight to
 * DecodeValue as string tokens, as a JSON string of the same text would.
 * So a value stored from a CSV field is the one the JSON path stored.
 *
 * A field is laid out by its reader with one byte before and after it
 * (file_read.c writes quotes there): a string token's span includes its
 * quotes.  An empty unquoted field is null, as in COPY's CSV format.
 * A path into a field (a.b) finds a string, not an object: the column's
 * record is a dead letter, as in the JSON path.  $payload is the record's
 * text: it fills text, varchar and bytea columns, and json/jsonb ones get
 * NULL (the record is no JSON value).
 *
 * The invariant is the decoder's: nothing here raises an error for any
 * record, and no catalog access happens per record.
 *-------------------------------------------------------------------------
 */
#include "iotstream.h"
#include "decode/decode_int.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"

/* Matches the names of a SourceFields to the plan's columns. */
static void
map_fields(DecodePlan *plan, const SourceFields *fs)
{
	MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(plan));
	StringInfoData obj;
	JsonToken	whole;
	const char *error;
	size_t		error_at;
	bool		ok = true;

	if (plan->field_of == NULL)
		plan->field_of = palloc(sizeof(int) * plan->natts);
	for (int i = 0; i < plan->natts; i++)
		plan->field_of[i] = FIELD_NONE;

	/* {"name0":0,"name1":1,...}: each column's slot gets its field's index */
	initStringInfo(&obj);
	appendStringInfoChar(&obj, '{');
	for (int f = 0; f < fs->nnames; f++)
	{
		const char *n = fs->names[f];

		if (f > 0)
			appendStringInfoChar(&obj, ',');
		appendStringInfoChar(&obj, '"');
		for (; *n; n++)
		{
			unsigned char c = (unsigned char) *n;

			if (c == '"' || c == '\\')
				appendStringInfo(&obj, "\\%c", c);
			else if (c < 0x20)
				appendStringInfo(&obj, "\\u%04x", c);
			else
				appendStringInfoChar(&obj, (char) c);
		}
		appendStringInfo(&obj, "\":%d", f);
	}
	appendStringInfoChar(&obj, '}');

	if (plan->root != NULL)
	{
		memset(plan->slots, 0, sizeof(JsonScanSlot) * plan->natts);
		ok = JsonScan(obj.data, obj.len, plan->root, plan->slots, &whole,
					  &error, &error_at);
	}
	for (int i = 0; ok && plan->root != NULL && i < plan->natts; i++)
	{
		const JsonToken *tok = &plan->slots[i].tok;

		if (plan->cols[i].source != DS_JSON)
			continue;
		if (tok->type == JTOK_NUMBER)
			plan->field_of[i] = (int) strtol(tok->start, NULL, 10);
		else if (tok->type == JTOK_BADSHAPE)
			plan->field_of[i] = FIELD_NESTED;
	}
	/* names that are not UTF-8 match no column */
	pfree(obj.data);
	plan->fields_id = fs->id;
	MemoryContextSwitchTo(old);
}

/* A field's text as a JSON string token, escaped anew if it must be. */
static void
json_string_token(const char *f, int len, JsonToken *tok)
{
	StringInfoData buf;
	int			i;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) f[i];

		if (c == '"' || c == '\\' || c < 0x20)
			break;
	}
	if (i == len)
		return;					/* its quotes make it JSON already */
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '"');
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) f[i];

		if (c == '"' || c == '\\')
			appendStringInfo(&buf, "\\%c", c);
		else if (c < 0x20)
			appendStringInfo(&buf, "\\u%04x", c);
		else
			appendStringInfoChar(&buf, (char) c);
	}
	appendStringInfoChar(&buf, '"');
	tok->start = buf.data;
	tok->len = buf.len;
	tok->flags = JTOK_F_ESCAPES;
}

bool
DecodeFields(DecodePlan *plan, const SourceMessage *msg,
			 Datum *values, bool *nulls, const char **reason)
{
	const SourceFields *fs = msg->fieldset;
	JsonToken	whole;

	if (plan->fields_id != fs->id || plan->field_of == NULL)
		map_fields(plan, fs);
	memset(&whole, 0, sizeof(whole));
	for (int i = 0; i < plan->natts; i++)
	{
		const DecodeColumn *col = &plan->cols[i];
		JsonToken  *tok = &plan->slots[i].tok;
		int			f = plan->field_of[i];
		const char *s;
		int			len;

		if (col->source == DS_PAYLOAD && col->kind != DK_BYTEA &&
			!pg_verify_mbstr(PG_UTF8, msg->payload, msg->payload_len, true))
		{
			*reason = psprintf("column \"%s\": the record is not valid UTF-8 or holds a NUL byte",
							   col->name);
			return false;
		}
		if (col->source != DS_JSON)
			continue;
		memset(tok, 0, sizeof(*tok));
		if (f == FIELD_NONE)
			continue;			/* JTOK_NONE: missing */
		if (f == FIELD_NESTED)
		{
			*reason = psprintf("column \"%s\": the path \"%s\" goes through a string",
							   col->name, col->path);
			return false;
		}
		s = msg->fields[f];
		if (s == NULL)
		{
			tok->type = JTOK_NULL;
			continue;
		}
		len = msg->field_lens[f];
		if (!pg_verify_mbstr(PG_UTF8, s, len, true))
		{
			*reason = psprintf("column \"%s\": the field \"%s\" is not valid UTF-8 or holds a NUL byte",
							   col->name, fs->names[f]);
			return false;
		}
		tok->type = JTOK_STRING;
		tok->start = s - 1;
		tok->len = len + 2;
		if (col->kind == DK_JSON || col->kind == DK_JSONB)
			json_string_token(s, len, tok);
	}
	return DecodeColumns(plan, msg, &whole, values, nulls, reason);
}
