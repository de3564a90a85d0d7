// Deterministic mutation corpus for test/integration/31_decode_fuzz.sh.
//
//   node decode_fuzz_corpus.mjs OUT.jsonl [seed]
//
// Writes one JSON object a line: {id, target, kind, p (payload, hex), key,
// topic, part, off, ts, h, text}.  target is "t" (the mixed-type table with
// an explicit mapping), "td" (the same table with the default rule: keys
// matched exactly, in camelCase or ignoring case) or "ev" (seed-002 events,
// default rule);
// kind names the mutation; text says whether the payload is valid UTF-8
// without NUL, i.e. also passable to the text overload of decode_preview.
// The same seed always gives the same corpus.  Prints counts per kind to
// stderr.
import { writeFileSync } from "node:fs";

const out = process.argv[2];
if (!out) {
  console.error("usage: node decode_fuzz_corpus.mjs OUT.jsonl [seed]");
  process.exit(2);
}
let state = Number(process.argv[3] || 31) >>> 0;

// mulberry32: small, fast, and the same everywhere
function rnd() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const below = (n) => Math.floor(rnd() * n);
const pick = (a) => a[below(a.length)];
const B = (s) => Buffer.from(s, "utf8");
const cat = (...parts) => Buffer.concat(parts.map((p) => (typeof p === "string" ? B(p) : p)));

// ---------------------------------------------------------------- seeds

const SEED_T = {
  ts: "2026-01-01T00:00:00Z",
  deviceId: "d1",
  value: 21.5,
  n: 3,
  big: 12345678901,
  ok: true,
  id: "6f1c2a9e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
  data: { a: [1, 2, { b: null }] },
  amount: 123.45,
  price: 9.99,
  raw: "\\x0102ff",
  day: "2026-01-02",
  small: 7,
  f4: 1.5,
  lts: "2026-01-01T12:30:00",
  j: { x: [true, null] },
  note: "TEMP",
  "a.b": "dotted",
  nest: { x: { y: "deep" } },
};
const SEED_T_TEXT = JSON.stringify(SEED_T);

function seedEvent(i) {
  const hex = (n) => Array.from({ length: n }, () => "0123456789abcdef"[below(16)]).join("");
  const cd = {};
  for (let k = 0; k < 23; k++) cd["moreData" + k] = Number((40 + rnd() * 50).toFixed(12));
  const ms = Date.UTC(2026, 10, 1) + i * 1000;
  return {
    eventId: `${hex(8)}-${hex(4)}-4${hex(3)}-${"89ab"[below(4)]}${hex(3)}-${hex(12)}`,
    complexData: cd,
    value: Number((rnd() * 100).toFixed(15)),
    deviceId: "device-" + (i % 50),
    deviceSequenceNumber: i,
    type: i % 2 ? "TEMP" : "CO2",
    createdAt: new Date(ms).toISOString(),
  };
}
// the exact first event: 31_decode_fuzz.sh checks what it decodes to
const SEED_EV0 = {
  eventId: "00000000-0000-4000-8000-000000000002",
  complexData: { moreData0: 57.739726013343247, moreData1: 40.5 },
  value: 49.94,
  deviceId: "device-7",
  deviceSequenceNumber: 42,
  type: "TEMP",
  createdAt: "2026-11-01T00:00:00.123Z",
};

// variants of the T seed that use the other accepted forms
const SEEDS_T = [
  SEED_T,
  { ...SEED_T, ts: 1767225600, day: 1767312000000, lts: 1767270600000000 },
  { ...SEED_T, ts: "1767225600000", n: "3", big: "12345678901", value: "21.5", ok: "t", amount: "NaN" },
  { ...SEED_T, ts: "2026-01-01T01:00:00+01:00", ok: 0, value: "Infinity", f4: "-Infinity", id: "6f1c2a9e3b4d4e5f8a9b0c1d2e3f4a5b" },
  { ...SEED_T, ts: 1767225600123456789, n: 5.0, small: -32768, big: -9223372036854775808n },
  { ...SEED_T, data: null, j: "str", raw: "\\x", note: null, nest: { x: {} } },
  { ts: "2026-01-01T00:00:00Z", deviceId: "only-required" },
];
const SEEDS_EV = [SEED_EV0, ...Array.from({ length: 9 }, (_, i) => seedEvent(i + 1))];

// JSON.stringify with bigint support
const js = (v) => JSON.stringify(v, (k, x) => (typeof x === "bigint" ? `__BIG${x}__` : x)).replace(/"__BIG(-?\d+)__"/g, "$1");

// ---------------------------------------------------------------- pieces

const INVALID_UTF8 = [
  [0x80], [0xbf], [0x80, 0x80], // lone continuation bytes
  [0xc0, 0x80], [0xc1, 0xbf], // overlong (0xC0 0x80 is Java's NUL)
  [0xe0, 0x80, 0x80], [0xe0, 0x9f, 0xbf], [0xf0, 0x80, 0x80, 0x80], [0xf0, 0x8f, 0xbf, 0xbf], // overlong
  [0xf8, 0x88, 0x80, 0x80, 0x80], [0xfc, 0x84, 0x80, 0x80, 0x80, 0x80], // 5- and 6-byte forms
  [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80], // surrogates in UTF-8 (CESU)
  [0xf4, 0x90, 0x80, 0x80], [0xf7, 0xbf, 0xbf, 0xbf], // beyond U+10FFFF
  [0xfe], [0xff], [0xff, 0xfe], [0xfe, 0xff],
  [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xc3], // truncated sequences
  [0xc3, 0x28], [0xe2, 0x28, 0xa1], [0xf0, 0x28, 0x8c, 0x28], // bad continuation
].map((a) => Buffer.from(a));

const BAD_ESCAPES = [
  "\\ud800", "\\udc00", "\\udfff", "\\ud800\\u0041", "\\ud800x", "\\udc00\\ud800", "\\ud83d", "\\ude00",
  "\\ud83d\\ude00", // a valid pair
  "\\u12", "\\u", "\\uZZZZ", "\\u00g0", "\\U0041", "\\x41", "\\", "\\a", "\\0", "\\u0000", "a\\u0000b",
  "\\u0000\\u0000", "\\uD800\\uDBFF", "\\u00e9", "\\ufeff", "\\uffff", "\\/", "\\\"",
];

const rawNumbers = [
  "1e999999", "-1e999999", "1e-400", "-1e-400", "-0", "0", "-0.0", "0e0", "1E+308", "1.7976931348623157e308",
  "1.7976931348623159e308", "4.9e-324", "2.4e-324", "2147483647", "2147483648", "-2147483648", "-2147483649",
  "32767", "32768", "-32769", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
  "-9223372036854775809", "1" + "0".repeat(399), "-" + "9".repeat(400), "0." + "0".repeat(399) + "1",
  "1" + "0".repeat(20000), "1.5", "5.0", "5.000000000000000000001", "1e2", "1e0", "0.1e1", "123456789012345678901234567890",
  // not JSON numbers at all
  "007", "+1", ".5", "1.", "1e", "-", "--1", "0x10", "Infinity", "-Infinity", "NaN", "nan", "1_000", "1,5", "١٢",
];
const rawValues = [
  ...rawNumbers,
  "null", "true", "false", "TRUE", "nul", "tru", "[]", "{}", "[null]", "[1,2]", '{"a":1}', '""', '" "',
  '"x"', '"NaN"', '"Infinity"', '"-0"', '"1e999999"', '"2147483648"', '"12345678901"', '"3.7"', '"0x1F"',
  '"true"', '"t"', '"f"', '"yes"', '"1"', '"0"', '"2"', '"2026-01-01"', '"2026-13-45T25:61:61Z"', '"2026-02-30T00:00:00Z"',
  '"294277-01-01T00:00:00Z"', '"-infinity"', '"infinity"', '"epoch"', '"now"', '"today"', '"allballs"',
  '"4714-11-24T00:00:00 BC"', '"2026-01-01T00:00:00+99:99"', '"2026-01-01T00:00:00.1234567890123Z"',
  '"2026-01-01 00:00:00"', '"20260101T000000Z"', '"\\\\x"', '"\\\\x0"', '"\\\\xzz"', '"\\\\x0102"', '"\\\\X0102"',
  '"6f1c2a9e-3b4d-4e5f-8a9b-0c1d2e3f4a5"', '"{6f1c2a9e-3b4d-4e5f-8a9b-0c1d2e3f4a5b}"', '"6f1c2a9e3b4d4e5f8a9b0c1d2e3f4a5bb"',
  '"zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"', '"' + "x".repeat(9) + '"', '"ééééééééé"', '"😀😀😀😀😀😀😀😀"',
  "1767225600", "1767225600000", "1767225600000000", "1767225600000000000", "-1767225600", "99999999999999999999",
  "-70000000000", "-62167219200", "-210866803200", "-210866803201", "9224318015999", '"0001-01-01T00:00:00Z"',
  '"0000-12-31T23:59:59Z"', '"-0044-03-15T00:00:00Z"', '"+002026-01-01T00:00:00Z"', '"9999-12-31T23:59:59.999999Z"',
  "1e17", "1e11", "99999999999", "100000000000",
  ...BAD_ESCAPES.map((e) => `"${e}"`),
];

// ---------------------------------------------------------------- output

const rows = [];
const kinds = new Map();
const utf8 = new TextDecoder("utf-8", { fatal: true });
function isText(buf) {
  if (buf.includes(0)) return false;
  try {
    utf8.decode(buf);
    return true;
  } catch {
    return false;
  }
}

const KEYS = [null, null, null, null, "k1", "", "6f1c2a9e-3b4d-4e5f-8a9b-0c1d2e3f4a5b", "123", "-1", "é😀", "x".repeat(3000)];
const TOPICS = ["t", "t", "t", "telemetry", "", "é😀", "x".repeat(300)];
const PARTS = [0, 0, 0, 1, -1, 2147483647, -2147483648];
const OFFS = ["0", "0", "0", "42", "-1", "9223372036854775807", "-9223372036854775808"];
const TSS = [null, null, null, "2026-01-01T00:00:00Z", "infinity", "-infinity", "1970-01-01T00:00:00Z",
  "294276-12-31T23:59:59Z", "4713-11-24 00:00:00+00 BC", "1969-12-31T23:59:59.999Z"];
const HDRS = [null, null, null, {}, { a: "b" }, { device: "d-7", site: "north" }, { a: 1 }, { a: null },
  { "": "" }, [], "x", 1, { a: { b: 1 } }, { é: "ü", "😀": "\u0001" }, { dup: "1", Dup: "2" }];

function add(target, kind, payload, meta = {}) {
  const p = typeof payload === "string" ? B(payload) : payload;
  const r = {
    id: rows.length + 1,
    target,
    kind,
    p: p.toString("hex"),
    key: "key" in meta ? meta.key : pick(KEYS),
    topic: "topic" in meta ? meta.topic : pick(TOPICS),
    part: "part" in meta ? meta.part : pick(PARTS),
    off: "off" in meta ? meta.off : pick(OFFS),
    ts: "ts" in meta ? meta.ts : pick(TSS),
    h: "h" in meta ? meta.h : pick(HDRS),
    text: isText(p),
  };
  rows.push(r);
  kinds.set(kind, (kinds.get(kind) || 0) + 1);
}
const plain = { key: null, topic: "t", part: 0, off: "0", ts: null, h: null };

// ---------------------------------------------------------------- corpus

// 1. the seeds themselves, with fixed metadata (checked exactly)
add("t", "seed", SEED_T_TEXT, { key: "k1", topic: "t", part: 3, off: "42", ts: "2026-01-01T00:00:00Z", h: { a: "b" } });
// written out, not stringified: its numbers keep seed-002's 15 digits
const EV0_TEXT = '{"eventId":"00000000-0000-4000-8000-000000000002","complexData":{"moreData0":57.739726013343247,' +
  '"moreData1":40.500000000000000},"value":49.940000000000000,"deviceId":"device-7","deviceSequenceNumber":42,' +
  '"type":"TEMP","createdAt":"2026-11-01T00:00:00.123Z"}';
add("ev", "seed", EV0_TEXT, plain);
for (const s of SEEDS_T) add("t", "seed", js(s));
for (const s of SEEDS_EV) add("ev", "seed", js(s));
// seeds as known-answer probes (31_decode_fuzz.sh finds them by kind)
const withT = (o) => js({ ...SEED_T, ...o });
add("t", "probe:utf8_in_text", cat('{"ts":"2026-01-01T00:00:00Z","deviceId":"d', Buffer.from([0xff, 0xfe]), '1"}'), plain);
add("t", "probe:overlong_in_text", cat('{"ts":"2026-01-01T00:00:00Z","deviceId":"d', Buffer.from([0xc0, 0x80]), '"}'), plain);
add("t", "probe:surrogate_utf8_in_text", cat('{"ts":"2026-01-01T00:00:00Z","deviceId":"', Buffer.from([0xed, 0xa0, 0x80]), '"}'), plain);
add("t", "probe:lone_surrogate_escape", '{"ts":"2026-01-01T00:00:00Z","deviceId":"\\ud800"}', plain);
add("t", "probe:nul_escape", '{"ts":"2026-01-01T00:00:00Z","deviceId":"a\\u0000b"}', plain);
add("t", "probe:raw_nul", cat('{"ts":"2026-01-01T00:00:00Z","deviceId":"a', Buffer.from([0]), 'b"}'), plain);
add("t", "probe:int4_max", withT({ n: 2147483647 }), plain);
add("t", "probe:int4_over", withT({ n: 2147483648 }), plain);
add("t", "probe:int8_max", js({ ...SEED_T, big: 9223372036854775807n }), plain);
add("t", "probe:int8_over", js({ ...SEED_T, big: 9223372036854775808n }), plain);
add("t", "probe:float_overflow", SEED_T_TEXT.replace('"value":21.5', '"value":1e999999'), plain);
add("t", "probe:numeric_400_digits", SEED_T_TEXT.replace('"amount":123.45', '"amount":' + "9".repeat(400)), plain);
add("t", "probe:numeric_typmod_overflow", SEED_T_TEXT.replace('"price":9.99', '"price":12345.678'), plain);
add("t", "probe:varchar_too_long", withT({ note: "TEMPERATURE" }), plain);
add("t", "probe:epoch_ms", withT({ ts: 1767225600000 }), plain);
add("t", "probe:missing_not_null", js({ ts: "2026-01-01T00:00:00Z" }), plain);
add("t", "probe:empty", "", plain);
add("t", "probe:whitespace", " \t\r\n ", plain);
add("t", "probe:deep_array_10000", "[".repeat(10000), plain);
add("t", "probe:deep_object_100000", '{"a":'.repeat(100000), plain);
add("ev", "probe:duplicate_keys", '{"eventId":"00000000-0000-4000-8000-000000000001","deviceId":"a","deviceId":"b","createdAt":"2026-11-01T00:00:00Z"}', plain);
add("ev", "probe:wrong_type_uuid", js({ ...SEED_EV0, eventId: 12345 }), plain);
add("t", "probe:epoch_bc", withT({ ts: -70000000000 }), plain);

// 2. truncation at every position of one T seed and one event
for (let i = 0; i < SEED_T_TEXT.length; i++) add("t", "truncate", B(SEED_T_TEXT).subarray(0, i));
const ev1 = B(js(SEEDS_EV[1]));
for (let i = 0; i < ev1.length; i += 1) add("ev", "truncate", ev1.subarray(0, i));
// truncation inside a multibyte character and inside escapes
const mb = B(withT({ deviceId: "é😀\\u00e9\\ud83d\\ude00" }));
for (let i = 0; i < mb.length; i++) add("t", "truncate:multibyte", mb.subarray(0, i));

// 3. every field of each seed replaced by each value of the zoo (wrong types
// for every column, numbers for strings and strings for numbers, ...)
function replaceField(obj, field, raw) {
  // serialize with a placeholder and splice the raw text in
  const mark = "\u0001MARK\u0001";
  return js({ ...obj, [field]: mark }).replace(JSON.stringify(mark), raw);
}
for (const f of Object.keys(SEED_T)) for (const v of rawValues) add("t", "field:" + f, replaceField(SEED_T, f, v));
for (const f of Object.keys(SEED_EV0)) for (const v of rawValues) add("ev", "field:" + f, replaceField(SEED_EV0, f, v));
// nested paths: values deep inside objects the mapping reads
for (const v of rawValues) add("t", "field:nest.x.y", replaceField(SEED_T, "nest", `{"x":{"y":${v}}}`));
for (const v of rawValues.slice(0, 40)) add("t", "field:nest.x", replaceField(SEED_T, "nest", `{"x":${v}}`));

// 4. invalid UTF-8 in every string value, key, and between tokens
const seedTBuf = B(SEED_T_TEXT);
const quotePositions = [];
for (let i = 0; i < seedTBuf.length; i++) if (seedTBuf[i] === 0x22) quotePositions.push(i);
for (const bad of INVALID_UTF8) {
  for (const q of quotePositions) add("t", "utf8:in_string", cat(seedTBuf.subarray(0, q + 1), bad, seedTBuf.subarray(q + 1)));
  for (let k = 0; k < 6; k++) {
    const at = below(seedTBuf.length + 1);
    add("t", "utf8:anywhere", cat(seedTBuf.subarray(0, at), bad, seedTBuf.subarray(at)));
  }
  add("t", "utf8:whole", bad);
}
const evBuf = B(js(SEED_EV0));
for (const bad of INVALID_UTF8)
  for (let k = 0; k < 12; k++) {
    const at = below(evBuf.length + 1);
    add("ev", "utf8:anywhere", cat(evBuf.subarray(0, at), bad, evBuf.subarray(at)));
  }

// 5. broken escapes in values and in keys
for (const e of BAD_ESCAPES) {
  for (const f of ["deviceId", "note", "raw", "id", "ts", "day", "amount"]) add("t", "escape:value", replaceField(SEED_T, f, `"${e}"`));
  add("t", "escape:key", SEED_T_TEXT.replace('"deviceId"', `"device${e}Id"`));
  add("t", "escape:key_exact", SEED_T_TEXT.replace('"n":3', `"${e}":3`));
  add("t", "escape:in_data", replaceField(SEED_T, "data", `{"${e}":"${e}"}`));
  add("ev", "escape:value", replaceField(SEED_EV0, "type", `"${e}"`));
  add("ev", "escape:key", js(SEED_EV0).replace('"deviceId"', `"deviceId${e}"`));
}

// 6. NUL bytes
for (let k = 0; k < 150; k++) {
  const at = below(seedTBuf.length + 1);
  add("t", "nul:raw", cat(seedTBuf.subarray(0, at), Buffer.from([0]), seedTBuf.subarray(at)));
}
add("t", "nul:only", Buffer.from([0]));
add("t", "nul:after", cat(seedTBuf, Buffer.from([0])));
add("t", "nul:many", Buffer.alloc(1000));
add("t", "nul:key", SEED_T_TEXT.replace('"n":3', '"n\\u0000":3'));

// 7. deep nesting, open and balanced, at the top and under mapped keys
for (const d of [100, 1000, 10000, 100000]) {
  add("t", "deep:array_open", "[".repeat(d));
  add("t", "deep:array_balanced", "[".repeat(d) + "]".repeat(d));
  add("t", "deep:object_open", '{"a":'.repeat(d));
  add("t", "deep:object_balanced", '{"a":'.repeat(d) + "1" + "}".repeat(d));
  add("t", "deep:in_data", replaceField(SEED_T, "data", "[".repeat(d) + "]".repeat(d)));
  add("t", "deep:in_j", replaceField(SEED_T, "j", '{"a":'.repeat(d) + "null" + "}".repeat(d)));
  add("t", "deep:in_text", replaceField(SEED_T, "note", "[".repeat(d) + "]".repeat(d)));
  add("t", "deep:nest_path", replaceField(SEED_T, "nest", '{"x":'.repeat(d) + '{"y":1}' + "}".repeat(d)));
  add("t", "deep:unbalanced", replaceField(SEED_T, "data", "[".repeat(d) + "]".repeat(d - 1)));
  add("ev", "deep:complex", replaceField(SEED_EV0, "complexData", '{"a":'.repeat(d) + "1" + "}".repeat(d)));
}
add("t", "deep:mixed", "[{".repeat(20000));
add("t", "deep:strings", '["'.repeat(20000));

// 8. huge numbers and strings
for (const n of [400, 5000, 100000, 1000000]) {
  add("t", "huge:int_digits", replaceField(SEED_T, "amount", "9".repeat(n)));
  add("t", "huge:frac_digits", replaceField(SEED_T, "value", "0." + "1".repeat(n)));
  add("t", "huge:exponent", replaceField(SEED_T, "n", "1e" + "9".repeat(Math.min(n, 400))));
}
const MB = 1 << 20;
add("t", "huge:string", replaceField(SEED_T, "deviceId", JSON.stringify("x".repeat(MB))));
add("t", "huge:string_escapes", replaceField(SEED_T, "deviceId", '"' + "\\n\\t\\\"\\\\\\u00e9".repeat(MB / 16) + '"'));
add("t", "huge:string_surrogates", replaceField(SEED_T, "note", '"' + "\\ud83d\\ude00".repeat(MB / 12) + '"'));
add("t", "huge:string_4byte", replaceField(SEED_T, "data", JSON.stringify("😀".repeat(MB / 4))));
add("t", "huge:raw_hex", replaceField(SEED_T, "raw", '"\\\\x' + "ab".repeat(MB / 2) + '"'));
add("t", "huge:key", replaceField(SEED_T, "x".repeat(MB), "1"));
add("t", "huge:many_keys", "{" + Array.from({ length: 100000 }, (_, i) => `"k${i}":${i}`).join(",") + `,"ts":"2026-01-01T00:00:00Z","deviceId":"d"}`);
add("t", "huge:array", replaceField(SEED_T, "data", "[" + "1,".repeat(200000) + "1]"));
add("t", "huge:unterminated_string", '{"ts":"2026-01-01T00:00:00Z","deviceId":"' + "x".repeat(MB));
add("ev", "huge:string", replaceField(SEED_EV0, "type", JSON.stringify("y".repeat(MB))));

// 9. duplicate keys, case and camelCase variants
const dupValues = ['"a"', "1", "null", "true", "{}", "[]", '"2026-01-01T00:00:00Z"'];
for (const f of ["ts", "deviceId", "n", "value", "data", "nest"])
  for (const v of dupValues) {
    add("t", "dup:first", SEED_T_TEXT.replace("{", `{"${f}":${v},`));
    add("t", "dup:last", SEED_T_TEXT.replace(/}$/, `,"${f}":${v}}`));
  }
for (const [a, b] of [["deviceId", "device_id"], ["deviceId", "DEVICEID"], ["createdAt", "created_at"], ["eventId", "EventId"],
  ["value", "VALUE"], ["deviceSequenceNumber", "device_sequence_number"], ["type", "Type"]])
  for (const v of dupValues) {
    add("ev", "dup:variant", js(SEED_EV0).replace("{", `{"${b}":${v},`));
    add("ev", "dup:variant_last", js(SEED_EV0).replace(/}$/, `,"${b}":${v}}`));
  }

// 10. documents that are not one object
for (const s of ["", " ", "\n", "\t\r\n", "\u00a0", "\ufeff", "null", "true", "1", '"x"', "[]", "{}", "[{}]",
  '{"ts":"2026-01-01T00:00:00Z","deviceId":"d"} x', '{"ts":"2026-01-01T00:00:00Z","deviceId":"d"}{"ts":1}',
  '{"ts":"2026-01-01T00:00:00Z","deviceId":"d",}', '{"ts":"2026-01-01T00:00:00Z","deviceId":"d"', '{,}', '{"a"}',
  '{"a":}', '{:1}', "{'ts':1}", '{"ts":1,,"a":2}', "]", "}", '"', "\\", "/*c*/{}", '{"a":1}//', "\u2028",
  '{"ts":"2026-01-01T00:00:00Z"\u00a0,"deviceId":"d"}', '{"ts":"2026-01-01T00:00:00Z","deviceId":"d\n"}',
  '{"ts":"2026-01-01T00:00:00Z","deviceId":"d\t\u0001"}'])
  for (const t of ["t", "ev"]) add(t, "doc", s);
add("t", "doc:bom", cat(Buffer.from([0xef, 0xbb, 0xbf]), SEED_T_TEXT));
add("t", "doc:utf16le", Buffer.from(SEED_T_TEXT, "utf16le"));
add("t", "doc:utf16be_bom", cat(Buffer.from([0xfe, 0xff]), Buffer.from(SEED_T_TEXT, "utf16le").swap16()));

// 11. random bytes
for (let k = 0; k < 400; k++) {
  const b = Buffer.alloc(below(300));
  for (let i = 0; i < b.length; i++) b[i] = below(256);
  add(pick(["t", "ev"]), "random:bytes", b);
}
// random bytes drawn from JSON's alphabet, more likely to get far
const ALPHA = B('{}[]:,"\\ 0123456789.eE+-truefalsenullu\\"xyzabcd');
for (let k = 0; k < 600; k++) {
  const b = Buffer.alloc(1 + below(120));
  for (let i = 0; i < b.length; i++) b[i] = ALPHA[below(ALPHA.length)];
  add("t", "random:json_alphabet", cat("{", b));
}

// 12. random generated JSON with the mapped keys, values from the zoo
const T_KEYS = [...Object.keys(SEED_T), "nest", "Ts", "DEVICEID", "device_id", "x", ""];
function randValue(depth) {
  const r = below(10);
  if (depth > 3 || r < 6) return pick(rawValues);
  if (r < 8) return "[" + Array.from({ length: below(4) }, () => randValue(depth + 1)).join(",") + "]";
  return "{" + Array.from({ length: below(4) }, () => `${JSON.stringify(pick(T_KEYS))}:${randValue(depth + 1)}`).join(",") + "}";
}
for (let k = 0; k < 3000; k++) {
  const fields = Array.from({ length: 1 + below(8) }, () => `${JSON.stringify(pick(T_KEYS))}:${randValue(0)}`);
  if (below(3)) fields.push('"ts":"2026-01-01T00:00:00Z"', '"deviceId":"d"');
  fields.sort(() => rnd() - 0.5);
  add("t", "generated", "{" + fields.join(",") + "}");
}
const EV_KEYS = [...Object.keys(SEED_EV0), "device_id", "CreatedAt", "EVENTID", "complex_data", "device_sequence_number"];
for (let k = 0; k < 1500; k++) {
  const base = { ...pick(SEEDS_EV) };
  const f = pick(EV_KEYS);
  add("ev", "generated", replaceField(base, f, randValue(0)));
}

// 13. byte-level mutations of the seeds: flips, insertions, deletions,
// duplication and splicing, stacked 1 to 8 deep
const INTERESTING = [0x00, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x2c, 0x2e, 0x2d, 0x65, 0x30, 0x39, 0x80, 0xc0, 0xff, 0x0a, 0x75];
function mutate(buf) {
  let b = Buffer.from(buf);
  const n = 1 + below(8);
  for (let m = 0; m < n; m++) {
    const at = below(b.length + 1);
    switch (below(9)) {
      case 0: // bit flip
        if (b.length) b[Math.min(at, b.length - 1)] ^= 1 << below(8);
        break;
      case 1: // random byte
        if (b.length) b[Math.min(at, b.length - 1)] = below(256);
        break;
      case 2: // interesting byte
        if (b.length) b[Math.min(at, b.length - 1)] = pick(INTERESTING);
        break;
      case 3: // insert bytes
        b = cat(b.subarray(0, at), Buffer.from(Array.from({ length: 1 + below(4) }, () => pick(INTERESTING))), b.subarray(at));
        break;
      case 4: // delete a run
        b = cat(b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + below(8))));
        break;
      case 5: { // duplicate a chunk
        const len = below(32);
        b = cat(b.subarray(0, at), b.subarray(at, at + len), b.subarray(at));
        break;
      }
      case 6: // invalid UTF-8
        b = cat(b.subarray(0, at), pick(INVALID_UTF8), b.subarray(at));
        break;
      case 7: // a zoo value spliced in
        b = cat(b.subarray(0, at), pick(rawValues), b.subarray(at));
        break;
      case 8: { // splice with another seed
        const o = B(js(pick([...SEEDS_T, ...SEEDS_EV])));
        b = cat(b.subarray(0, at), o.subarray(below(o.length)));
        break;
      }
    }
  }
  return b;
}
const seedBufsT = SEEDS_T.map((s) => B(js(s)));
const seedBufsEv = SEEDS_EV.map((s) => B(js(s)));
for (let k = 0; k < 12000; k++) add("t", "mutate", mutate(pick(seedBufsT)));
for (let k = 0; k < 6000; k++) add("ev", "mutate", mutate(pick(seedBufsEv)));

// 14. the default rule: keys in other cases and spellings, and several keys
// matching one column with different qualities (exact > camelCase > case)
const camel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
const snake = (k) => k.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
const KEY_FORMS = [
  (k) => k, (k) => k.toUpperCase(), (k) => k.toLowerCase(), camel, snake, (k) => snake(k).toUpperCase(),
  (k) => k[0].toUpperCase() + k.slice(1), (k) => k + " ", (k) => " " + k, (k) => k.replace(/_/g, "-"),
  (k) => k.replace(/i/g, "\u0069"), (k) => k.replace(/I/g, "İ"), (k) => k.replace(/s/g, "ſ"),
  (k) => [...k].map((c) => (below(2) ? c.toUpperCase() : c.toLowerCase())).join(""),
];
const TD_SEED = { ...SEED_T, device_id: undefined, deviceId: "d1", dotted: "x", deep: "y", inner: "z", topic: "tp",
  k: "kk", part: 1, off: 2, mts: "2026-01-01T00:00:00Z", hdrs: { a: "b" }, whole: "\\x00", ingested: "2026-01-01T00:00:00Z" };
delete TD_SEED.device_id;
add("td", "seed", js(TD_SEED), plain);
for (let k = 0; k < 3000; k++) {
  const parts = [];
  for (const [key, v] of Object.entries(TD_SEED)) {
    if (below(6) === 0) continue;
    parts.push(`"${pick(KEY_FORMS)(key)}":${js(v)}`);
    if (below(4) === 0) parts.push(`"${pick(KEY_FORMS)(key)}":${pick(rawValues)}`);
  }
  parts.sort(() => rnd() - 0.5);
  add("td", "keycase", "{" + parts.join(",") + "}");
}
const tdBuf = B(js(TD_SEED));
for (let k = 0; k < 3000; k++) add("td", "mutate", mutate(tdBuf));
const T0 = '"ts":"2026-01-01T00:00:00Z"';
add("td", "probe:match_exact_first", `{${T0},"device_id":"exact","deviceId":"camel","devicE_id":"ci"}`, plain);
add("td", "probe:match_exact_last", `{"devicE_id":"ci","deviceId":"camel","device_id":"exact",${T0}}`, plain);
add("td", "probe:match_camel_first", `{${T0},"deviceId":"camel","devicE_id":"ci"}`, plain);
add("td", "probe:match_camel_last", `{"devicE_id":"ci","deviceId":"camel",${T0}}`, plain);
add("td", "probe:match_ci", `{"devicE_id":"ci",${T0}}`, plain);

// ---------------------------------------------------------------- write

writeFileSync(out, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
const bytes = rows.reduce((s, r) => s + r.p.length / 2, 0);
console.error(`${rows.length} payloads, ${(bytes / MB).toFixed(1)} MB`);
for (const [k, n] of [...kinds].sort()) if (!k.startsWith("field:") && !k.startsWith("probe:")) console.error(`  ${k}: ${n}`);
