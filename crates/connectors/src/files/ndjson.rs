//! NDJSON: schema inferred from the first lines of the first file, each line validated (for its
//! line number) and decoded with Arrow's JSON decoder in batches.
//!
//! The reading itself works on any buffered reader ([`Lines`]) and sends its batches to any
//! [`RecordSink`], so a command's standard output is decoded by the same code as a file.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::json::ReaderBuilder;
use deltalake::arrow::json::reader::{Decoder, infer_json_schema_from_iterator};
use deltalake::arrow::record_batch::RecordBatch;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use tributary_core::SourceError;
use tributary_core::config::{OnError, TableConfig};

use super::{FileInput, ReadCtx};
use crate::util::normalize_type_for_delta;

/// Records of the first file used to infer the schema.
pub(crate) const INFER_RECORDS: usize = 1000;

/// The schema, from the first file.
pub(crate) struct NdjsonPlan {
    schema: SchemaRef,
    first_file: String,
}

/// Reads lines, numbering them and skipping blank ones.
pub(crate) struct Lines {
    reader: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    line: u64,
}

/// One line of NDJSON input.
#[derive(Debug, Clone)]
pub(crate) enum Line {
    /// A non-blank line with valid JSON object syntax.
    Record(u64, String),
    /// A malformed line: number, reason and the line as read.
    Bad(u64, String, String),
}

/// Lines as read, with I/O errors turned into [`SourceError`]s.
pub(crate) type LineIter<'a> = dyn Iterator<Item = Result<Line, SourceError>> + Send + 'a;

/// Where decoded NDJSON goes: a file read's channel, or a command's.
pub(crate) trait RecordSink {
    /// A malformed record (`raw`: as read): `Err` stops the read, `Ok` skips the record.
    fn bad_record(&mut self, line: u64, reason: String, raw: &str) -> Result<(), SourceError>;
    /// Send a batch; `false` when the consumer is gone (stop reading).
    fn send(&mut self, batch: RecordBatch) -> bool;
}

/// A file's records go to the file read's context.
struct FileSink<'a> {
    input: &'a FileInput,
    ctx: &'a mut ReadCtx,
}

impl RecordSink for FileSink<'_> {
    fn bad_record(&mut self, line: u64, reason: String, raw: &str) -> Result<(), SourceError> {
        self.ctx.bad_record(self.input, line, reason, raw)
    }
    fn send(&mut self, batch: RecordBatch) -> bool {
        self.ctx.send(batch, self.input)
    }
}

impl Lines {
    /// Lines of `reader`, numbered from 1.
    pub(crate) fn new(reader: Box<dyn BufRead + Send>) -> Lines {
        Lines {
            reader,
            buf: Vec::new(),
            line: 0,
        }
    }

    /// The next non-blank line, `None` at the end of the input.
    pub(crate) fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            self.buf.clear();
            let n = self.reader.read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = match std::str::from_utf8(&self.buf) {
                Ok(t) => t.trim_end_matches(['\n', '\r']),
                Err(e) => {
                    return Ok(Some(Line::Bad(
                        self.line,
                        format!("the line is not valid UTF-8 ({e})"),
                        String::from_utf8_lossy(&self.buf)
                            .trim_end_matches(['\n', '\r'])
                            .to_string(),
                    )));
                }
            };
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
                return Ok(Some(Line::Bad(
                    self.line,
                    format!("invalid JSON: {e}"),
                    text.to_string(),
                )));
            }
            if !text.trim_start().starts_with('{') {
                return Ok(Some(Line::Bad(
                    self.line,
                    "the line is not a JSON object (NDJSON needs one object per line)".into(),
                    text.to_string(),
                )));
            }
            return Ok(Some(Line::Record(self.line, text.to_string())));
        }
    }
}

/// The lines of a file.
///
/// A file whose first non-blank character is `[` holds one JSON array of objects instead
/// (`.json` exports): its elements are the records, numbered by position (record 1, 2, …, in
/// place of line numbers), parsed as a stream (memory does not grow with the file). A syntax
/// error in the array stops the read whatever `on_error` says: nothing after it can be found.
fn file_lines(
    input: &FileInput,
) -> Result<Box<dyn Iterator<Item = Result<Line, SourceError>> + Send + '_>, SourceError> {
    let mut reader = input.open_text()?;
    let is_array = loop {
        let buf = reader.fill_buf().map_err(|e| input.read_error(e))?;
        let Some(pos) = buf.iter().position(|b| !b.is_ascii_whitespace()) else {
            if buf.is_empty() {
                break false;
            }
            let n = buf.len();
            reader.consume(n);
            continue;
        };
        let first = buf[pos];
        break first == b'[';
    };
    if is_array {
        return Ok(Box::new(
            array_records(reader).map(move |r| r.map_err(|e| input.bad_content(e))),
        ));
    }
    let mut lines = Lines::new(reader);
    Ok(Box::new(std::iter::from_fn(move || {
        lines
            .next_line()
            .map_err(|e| input.read_error(e))
            .transpose()
    })))
}

/// The elements of a JSON array read from `reader`, parsed on a thread of their own and handed
/// over through a bounded channel.
fn array_records(
    reader: Box<dyn BufRead + Send>,
) -> impl Iterator<Item = Result<Line, String>> + Send {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Line, String>>(256);
    std::thread::spawn(move || {
        let mut de = serde_json::Deserializer::from_reader(reader);
        let result = serde::Deserializer::deserialize_seq(&mut de, ArrayVisitor { tx: &tx })
            .and_then(|()| de.end());
        if let Err(e) = result {
            let _ = tx.send(Err(format!("invalid JSON array: {e}")));
        }
    });
    rx.into_iter()
}

/// Sends each element of a JSON array as a record.
struct ArrayVisitor<'a> {
    tx: &'a std::sync::mpsc::SyncSender<Result<Line, String>>,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0u64;
        while let Some(raw) = seq.next_element::<Box<serde_json::value::RawValue>>()? {
            n += 1;
            let text = raw.get();
            let line = if text.trim_start().starts_with('{') {
                Line::Record(n, text.to_string())
            } else {
                Line::Bad(
                    n,
                    "the array element is not a JSON object".into(),
                    text.to_string(),
                )
            };
            if self.tx.send(Ok(line)).is_err() {
                // The reader stopped (an error or the consumer went away).
                return Ok(());
            }
        }
        Ok(())
    }
}

impl NdjsonPlan {
    /// Infer the schema from the first records of the first file.
    pub(crate) fn infer(table: &TableConfig, input: &FileInput) -> Result<NdjsonPlan, SourceError> {
        Self::infer_from(table, &mut file_lines(input)?, &input.display)?.ok_or_else(|| {
            input.no_columns(
                "the first file has no JSON record, so the table's columns cannot be known",
            )
        })
    }

    /// Infer the schema from the first [`INFER_RECORDS`] records of `lines` (consuming no line
    /// after the last of them). `display` names the input in errors. `None` when the input has
    /// no record at all.
    pub(crate) fn infer_from(
        table: &TableConfig,
        lines: &mut LineIter<'_>,
        display: &str,
    ) -> Result<Option<NdjsonPlan>, SourceError> {
        Self::infer_with(table, lines, display, INFER_RECORDS, None)
    }

    /// Infer the schema from the first `max_records` records of `lines`, streaming (only the
    /// field types are kept, not the records). With `base` (the target table's columns), its
    /// columns come first and keep their types where the records' values fit them (a field
    /// never seen, or seen only as null, keeps its type; integers fit a float column; scalars
    /// fit a text column); struct columns gain the records' new fields. `None` when the input
    /// has no record and there is no `base`.
    pub(crate) fn infer_with(
        table: &TableConfig,
        lines: &mut LineIter<'_>,
        display: &str,
        max_records: usize,
        base: Option<&Schema>,
    ) -> Result<Option<NdjsonPlan>, SourceError> {
        let mut order = KeyOrder::default();
        let mut failure: Option<SourceError> = None;
        let mut seen = 0usize;
        let inferred = {
            let values = std::iter::from_fn(|| {
                while seen < max_records && failure.is_none() {
                    let line = match lines.next().transpose() {
                        Ok(Some(line)) => line,
                        Ok(None) => return None,
                        Err(e) => {
                            failure = Some(e);
                            return None;
                        }
                    };
                    match line {
                        Line::Record(line, text) => {
                            let parsed =
                                serde_json::from_str::<serde_json::Value>(&text).and_then(|v| {
                                    let mut de = serde_json::Deserializer::from_str(&text);
                                    OrderSeed(&mut order).deserialize(&mut de).map(|()| v)
                                });
                            match parsed {
                                Ok(mut v) => {
                                    if let serde_json::Value::Object(map) = &mut v {
                                        // Cast fields are text whatever their values.
                                        map.retain(|k, _| !table.cast.contains_key(k));
                                    }
                                    seen += 1;
                                    return Some(Ok::<_, ArrowError>(v));
                                }
                                Err(e) => {
                                    if table.on_error == OnError::Fail {
                                        failure = Some(SourceError::BadRecord {
                                            file: display.to_string(),
                                            line,
                                            reason: format!("invalid JSON: {e}"),
                                        });
                                    }
                                }
                            }
                        }
                        Line::Bad(line, reason, _) => {
                            // Skipped lines are counted when the input is read.
                            if table.on_error == OnError::Fail {
                                failure = Some(SourceError::BadRecord {
                                    file: display.to_string(),
                                    line,
                                    reason,
                                });
                            }
                        }
                    }
                }
                None
            });
            infer_json_schema_from_iterator(values)
        };
        if let Some(e) = failure {
            return Err(e);
        }
        let sample = if max_records == usize::MAX {
            "the records".to_string()
        } else {
            format!("the first {max_records} records")
        };
        let inferred = inferred.map_err(|e| SourceError::BadRecord {
            file: display.to_string(),
            line: 0,
            reason: format!(
                "cannot infer one type per field from {sample} ({e}); \
                 a field holding both objects/arrays and other values cannot be loaded"
            ),
        })?;
        if seen == 0 && base.is_none() {
            return Ok(None);
        }
        let mut fields: Vec<Field> = inferred
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for key in &order.keys {
            if table.cast.contains_key(key) {
                fields.push(Field::new(key, DataType::Utf8, true));
            }
        }
        let fields = order.reorder(fields);
        let fields = match base {
            Some(base) => merge_fields(base, fields),
            None => fields,
        };
        let fields = fields
            .iter()
            .map(|f| {
                let ty = normalize_type_for_delta(f.data_type()).map_err(|reason| {
                    SourceError::UnsupportedType {
                        table: table.name.clone(),
                        column: f.name().clone(),
                        source_type: f.data_type().to_string(),
                        reason,
                    }
                })?;
                Ok(Field::new(f.name(), ty, true))
            })
            .collect::<Result<Vec<_>, SourceError>>()?;
        Ok(Some(NdjsonPlan {
            schema: Arc::new(Schema::new(fields)),
            first_file: display.to_string(),
        }))
    }

    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn decoder(&self, batch_size: usize) -> Result<Decoder, SourceError> {
        ReaderBuilder::new(self.schema.clone())
            .with_batch_size(batch_size.max(1))
            .with_coerce_primitive(true)
            .with_strict_mode(true)
            .build_decoder()
            .map_err(|e| SourceError::Internal(format!("building the JSON decoder: {e}")))
    }

    /// Decode lines into one batch; `Err` is the decoder's message.
    fn decode(&self, lines: &[(u64, String)]) -> Result<Option<RecordBatch>, String> {
        let mut decoder = self.decoder(lines.len()).map_err(|e| e.to_string())?;
        for (_, text) in lines {
            decoder.decode(text.as_bytes()).map_err(|e| e.to_string())?;
            decoder.decode(b"\n").map_err(|e| e.to_string())?;
        }
        decoder.flush().map_err(|e| e.to_string())
    }

    /// Decode and send the pending lines. When the batch does not decode, find the lines that do
    /// not (one by one) and report or skip them. `Ok(false)` when the consumer is gone.
    fn flush(
        &self,
        pending: &mut Vec<(u64, String)>,
        display: &str,
        sink: &mut dyn RecordSink,
    ) -> Result<bool, SourceError> {
        if pending.is_empty() {
            return Ok(true);
        }
        let batch = match self.decode(pending) {
            Ok(b) => b,
            Err(_) => {
                let mut good = Vec::with_capacity(pending.len());
                for (line, text) in pending.drain(..) {
                    match self.decode(std::slice::from_ref(&(line, text.clone()))) {
                        Ok(_) => good.push((line, text)),
                        Err(e) => {
                            let reason = match unknown_field(&self.schema, &text) {
                                Some(field) => format!(
                                    "field `{field}` is not among the fields inferred from the first \
                                     {INFER_RECORDS} records of {}; a field that first appears later \
                                     cannot be loaded (it is not dropped silently)",
                                    self.first_file
                                ),
                                None => format!(
                                    "{e} (the schema was inferred from the first {INFER_RECORDS} records of {}; \
                                     `cast: {{ field: text }}` loads a scalar field as text)",
                                    self.first_file
                                ),
                            };
                            sink.bad_record(line, reason, &text)?
                        }
                    }
                }
                self.decode(&good).map_err(|e| SourceError::BadRecord {
                    file: display.to_string(),
                    line: good.first().map_or(0, |g| g.0),
                    reason: e,
                })?
            }
        };
        pending.clear();
        match batch {
            Some(b) if b.num_rows() > 0 => {
                let b = RecordBatch::try_new(self.schema.clone(), b.columns().to_vec())
                    .map_err(|e| SourceError::Internal(format!("assembling a JSON batch: {e}")))?;
                Ok(sink.send(b))
            }
            _ => Ok(true),
        }
    }

    /// Read one file into batches. `Ok(false)` when the consumer is gone.
    pub(crate) fn read_file(
        &self,
        input: &FileInput,
        ctx: &mut ReadCtx,
    ) -> Result<bool, SourceError> {
        let batch_size = ctx.batch_size;
        self.read_lines(
            &mut file_lines(input)?,
            &input.display,
            batch_size,
            &mut FileSink { input, ctx },
        )
    }

    /// Decode `lines` into batches of `batch_size` rows sent to `sink`; `display` names the
    /// input in errors. `Ok(false)` when the consumer is gone.
    pub(crate) fn read_lines(
        &self,
        lines: &mut LineIter<'_>,
        display: &str,
        batch_size: usize,
        sink: &mut dyn RecordSink,
    ) -> Result<bool, SourceError> {
        let batch_size = batch_size.max(1);
        let mut pending: Vec<(u64, String)> = Vec::with_capacity(batch_size);
        for line in lines {
            match line? {
                Line::Bad(n, reason, raw) => sink.bad_record(n, reason, &raw)?,
                Line::Record(n, text) => {
                    pending.push((n, text));
                    if pending.len() >= batch_size && !self.flush(&mut pending, display, sink)? {
                        return Ok(false);
                    }
                }
            }
        }
        self.flush(&mut pending, display, sink)
    }
}

/// `base`'s fields (in its order) merged with the inferred ones of the same name, then the
/// inferred fields `base` does not have (see [`NdjsonPlan::infer_with`]).
fn merge_fields(base: &Schema, inferred: Vec<Field>) -> Vec<Field> {
    let mut out: Vec<Field> = base
        .fields()
        .iter()
        .map(|b| match inferred.iter().find(|f| f.name() == b.name()) {
            Some(f) => Field::new(b.name(), merge_type(b.data_type(), f.data_type()), true),
            None => b.as_ref().clone().with_nullable(true),
        })
        .collect();
    for f in inferred {
        if base.field_with_name(f.name()).is_err() {
            out.push(f);
        }
    }
    out
}

/// The type of a column that has type `base` in the table and `inferred` in the new records:
/// `base` when every inferred value fits it, the structs' fields merged, else `inferred`
/// (and the table's `on_schema_change` policy decides).
fn merge_type(base: &DataType, inferred: &DataType) -> DataType {
    use DataType as D;
    match (base, inferred) {
        (_, D::Null) => base.clone(),
        (D::Struct(b), D::Struct(i)) => {
            let b = Schema::new(b.clone());
            let i: Vec<Field> = i.iter().map(|f| f.as_ref().clone()).collect();
            D::Struct(merge_fields(&b, i).into())
        }
        (D::List(b), D::List(i)) => D::List(Arc::new(Field::new(
            b.name(),
            merge_type(b.data_type(), i.data_type()),
            true,
        ))),
        (D::Float64, D::Int64) => D::Float64,
        (D::Utf8, D::Int64 | D::Float64 | D::Boolean) => D::Utf8,
        _ => inferred.clone(),
    }
}

/// The first field of a record (`a`, or `a.b` inside a struct) that the schema does not have,
/// if that is why the record does not decode.
fn unknown_field(schema: &Schema, text: &str) -> Option<String> {
    fn walk(
        fields: &deltalake::arrow::datatypes::Fields,
        value: &serde_json::Value,
        prefix: &str,
    ) -> Option<String> {
        let serde_json::Value::Object(map) = value else {
            return None;
        };
        for (key, v) in map {
            let path = format!("{prefix}{key}");
            let Some((_, field)) = fields.find(key) else {
                return Some(path);
            };
            let found = match (field.data_type(), v) {
                (DataType::Struct(inner), _) => walk(inner, v, &format!("{path}.")),
                (DataType::List(item), serde_json::Value::Array(items)) => match item.data_type() {
                    DataType::Struct(inner) => items
                        .iter()
                        .find_map(|i| walk(inner, i, &format!("{path}[]."))),
                    _ => None,
                },
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    walk(schema.fields(), &value, "")
}

/// The order in which object keys first appear in the inferred records (serde_json's `Value`
/// sorts keys), so columns and struct fields keep the file's order.
#[derive(Debug, Default)]
struct KeyOrder {
    keys: Vec<String>,
    children: HashMap<String, KeyOrder>,
}

impl KeyOrder {
    fn position(&self, key: &str) -> usize {
        self.keys
            .iter()
            .position(|k| k == key)
            .unwrap_or(usize::MAX)
    }

    /// Sort fields (and nested struct fields) by first appearance.
    fn reorder(&self, mut fields: Vec<Field>) -> Vec<Field> {
        fields.sort_by_key(|f| self.position(f.name()));
        fields
            .into_iter()
            .map(|f| match self.children.get(f.name()) {
                Some(child) => {
                    let ty = child.reorder_type(f.data_type());
                    Field::new(f.name(), ty, f.is_nullable())
                }
                None => f,
            })
            .collect()
    }

    fn reorder_type(&self, ty: &DataType) -> DataType {
        match ty {
            DataType::Struct(fields) => DataType::Struct(
                self.reorder(fields.iter().map(|f| f.as_ref().clone()).collect())
                    .into(),
            ),
            DataType::List(item) => DataType::List(Arc::new(Field::new(
                item.name(),
                self.reorder_type(item.data_type()),
                item.is_nullable(),
            ))),
            other => other.clone(),
        }
    }
}

/// Records key order while walking a JSON value. Objects inside arrays share their array's node.
struct OrderSeed<'a>(&'a mut KeyOrder);

impl<'de> DeserializeSeed<'de> for OrderSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(OrderVisitor(self.0))
    }
}

struct OrderVisitor<'a>(&'a mut KeyOrder);

impl<'de> Visitor<'de> for OrderVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if !self.0.keys.contains(&key) {
                self.0.keys.push(key.clone());
            }
            let child = self.0.children.entry(key).or_default();
            map.next_value_seed(OrderSeed(child))?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(OrderSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
}
