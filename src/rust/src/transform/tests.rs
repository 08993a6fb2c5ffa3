use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::*;
use crate::sink::memory::Tables;

fn words_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("word", DataType::Utf8, true), Field::new("x", DataType::Float64, true)]))
}

fn words(items: &[(&str, f64)]) -> RecordBatch {
    RecordBatch::try_new(
        words_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(items.iter().map(|i| i.0))),
            Arc::new(Float64Array::from_iter_values(items.iter().map(|i| i.1))),
        ],
    )
    .unwrap()
}

fn plan(sql: &str, mode: OutputMode) -> Result<Transform> {
    Transform::plan(sql, "words", words_schema(), Some(mode), false, &Arc::default())
}

/// (word, count) pairs of a result, sorted.
fn counts(batches: &[RecordBatch]) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let w = b.column(0).as_string::<i32>();
        let n = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            out.push((w.value(i).to_string(), n.value(i)));
        }
    }
    out.sort();
    out
}

const COUNT: &str = r#"SELECT "word", COUNT(*) AS "n" FROM "words" GROUP BY "word""#;

#[test]
fn row_by_row_pipelines_run_on_each_chunk() {
    let mut t = plan(r#"SELECT UPPER("word") AS "w", "x" * 2.0 AS "y" FROM "words" WHERE "x" > 1.0"#, OutputMode::Append).unwrap();
    assert!(!t.is_aggregation());
    let out = t.process(words(&[("a", 1.0), ("b", 2.0), ("c", 3.0)])).unwrap();
    let rows: usize = out.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2);
    assert_eq!(out[0].column(0).as_string::<i32>().value(0), "B");
    assert!(t.finish_batch().unwrap().is_empty());
}

#[test]
fn counts_across_chunks_and_batches_equal_one_count_of_everything() {
    let mut t = plan(COUNT, OutputMode::Complete).unwrap();
    assert_eq!(t.key_columns(), ["word"]);
    assert!(t.process(words(&[("a", 1.0), ("b", 1.0)])).unwrap().is_empty());
    t.process(words(&[("a", 1.0)])).unwrap();
    assert_eq!(counts(&t.finish_batch().unwrap()), [("a".into(), 2), ("b".into(), 1)]);
    t.process(words(&[("c", 1.0), ("a", 1.0)])).unwrap();
    assert_eq!(counts(&t.finish_batch().unwrap()), [("a".into(), 3), ("b".into(), 1), ("c".into(), 1)]);
}

#[test]
fn update_mode_writes_only_the_groups_a_batch_changed() {
    let mut t = plan(COUNT, OutputMode::Update).unwrap();
    t.process(words(&[("a", 1.0), ("b", 1.0)])).unwrap();
    assert_eq!(counts(&t.finish_batch().unwrap()).len(), 2);
    t.process(words(&[("b", 1.0)])).unwrap();
    assert_eq!(counts(&t.finish_batch().unwrap()), [("b".into(), 2)]);
    assert_eq!(counts(&t.finish_batch().unwrap()), []);
}

#[test]
fn saved_state_restores_the_same_results() {
    let sql = r#"SELECT "word", AVG("x") AS "m", COUNT(DISTINCT "x") AS "d", STDDEV_SAMP("x") AS "s" FROM "words" GROUP BY "word""#;
    let mut a = plan(sql, OutputMode::Complete).unwrap();
    a.process(words(&[("a", 1.0), ("a", 2.0), ("b", 5.0)])).unwrap();
    let saved = a.save_state().unwrap().unwrap();
    a.process(words(&[("a", 6.0), ("a", 2.0)])).unwrap();
    let uninterrupted = a.finish_batch().unwrap();

    let mut b = plan(sql, OutputMode::Complete).unwrap();
    b.process(words(&[("zzz", 1.0)])).unwrap(); // thrown away by the restore
    b.restore_state(Some(&saved)).unwrap();
    b.process(words(&[("a", 6.0), ("a", 2.0)])).unwrap();
    let restored = b.finish_batch().unwrap();
    assert_eq!(arrow::util::pretty::pretty_format_batches(&uninterrupted).unwrap().to_string(),
               arrow::util::pretty::pretty_format_batches(&restored).unwrap().to_string());
    assert_eq!(restored[0].num_rows(), 2);
}

#[test]
fn steps_after_the_aggregation_apply_to_the_result() {
    let sql = r#"SELECT * FROM (SELECT "word", COUNT(*) AS "n" FROM "words" GROUP BY "word") "q01" WHERE ("n" > 1) ORDER BY "n" DESC"#;
    let mut t = plan(sql, OutputMode::Complete).unwrap();
    t.process(words(&[("a", 1.0), ("b", 1.0), ("b", 1.0), ("c", 1.0), ("c", 1.0), ("c", 1.0)])).unwrap();
    let out = t.finish_batch().unwrap();
    let w = out[0].column(0).as_string::<i32>();
    assert_eq!((out[0].num_rows(), w.value(0), w.value(1)), (2, "c", "b"));
}

#[test]
fn global_summaries_and_distinct_are_aggregations() {
    let mut t = plan(r#"SELECT COUNT(*) AS "n", SUM("x") AS "s" FROM "words""#, OutputMode::Complete).unwrap();
    t.process(words(&[("a", 1.0), ("b", 2.0)])).unwrap();
    t.process(words(&[("c", 3.0)])).unwrap();
    let out = t.finish_batch().unwrap();
    assert_eq!(out[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0), 3);
    let mut d = plan(r#"SELECT DISTINCT "word" FROM "words""#, OutputMode::Update).unwrap();
    d.process(words(&[("a", 1.0), ("a", 2.0), ("b", 1.0)])).unwrap();
    assert_eq!(d.finish_batch().unwrap()[0].num_rows(), 2);
}

#[test]
fn user_mistakes_are_config_errors_naming_the_problem() {
    let e = plan(r#"SELECT MYFUN("word") AS "w" FROM "words""#, OutputMode::Append).err().unwrap();
    assert!(e.message.contains("`myfun()`"), "{}", e.message);
    let e = plan(COUNT, OutputMode::Append).err().unwrap();
    assert_eq!(e.arg.as_deref(), Some("mode"));
    let e = plan(r#"SELECT "word" FROM "words""#, OutputMode::Complete).err().unwrap();
    assert_eq!(e.arg.as_deref(), Some("mode"));
    let e = Transform::plan(COUNT, "words", words_schema(), Some(OutputMode::Complete), true, &Arc::default()).err().unwrap();
    assert_eq!(e.arg.as_deref(), Some("trigger"));
    let e = plan(r#"SELECT "word", ROW_NUMBER() OVER (ORDER BY "x") AS "r" FROM "words""#, OutputMode::Append).err().unwrap();
    assert!(e.message.contains("window"), "{}", e.message);
}

#[test]
fn a_failure_on_the_data_is_an_execution_error_not_a_users_mistake() {
    let mut t = plan(r#"SELECT CAST("word" AS INT) AS "n" FROM "words""#, OutputMode::Append).unwrap();
    let e = t.process(words(&[("12", 1.0), ("twelve", 1.0)])).unwrap_err();
    assert_eq!(e.kind, crate::error::ErrorKind::Execution, "{e:?}");
    assert_eq!(e.arg, None);
    let e = plan(r#"SELECT "nope" FROM "words""#, OutputMode::Append).err().unwrap();
    assert_eq!((e.kind, e.arg.as_deref()), (crate::error::ErrorKind::Config, Some("x")));
}

/// A connection with a table `lookup(word, label)`.
fn lookup(rows: &[(&str, &str)]) -> Arc<Tables> {
    let tables: Arc<Tables> = Arc::default();
    replace_lookup(&tables, rows);
    tables
}

fn replace_lookup(tables: &Tables, rows: &[(&str, &str)]) {
    let schema = Arc::new(Schema::new(vec![Field::new("word", DataType::Utf8, true), Field::new("label", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )
    .unwrap();
    tables.copy_in("lookup", batch, true).unwrap();
}

/// Rows of a result as text, sorted.
fn texts(batches: &[RecordBatch]) -> Vec<String> {
    let mut out: Vec<String> = arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    out.sort();
    out
}

fn join(sql: &str, tables: &Arc<Tables>) -> Result<Transform> {
    Transform::plan(sql, "words", words_schema(), Some(OutputMode::Append), false, tables)
}

#[test]
fn a_stream_joins_the_table_as_it_is_when_each_batch_begins() {
    let tables = lookup(&[("a", "first"), ("b", "second")]);
    let sql = r#"SELECT "words"."word", "x", "label" FROM "words" LEFT JOIN "lookup" ON ("words"."word" = "lookup"."word")"#;
    let mut t = join(sql, &tables).unwrap();
    t.begin_batch(0, 0).unwrap();
    let out = t.process(words(&[("a", 1.0), ("c", 2.0)])).unwrap();
    assert_eq!(texts(&out), ["| a | 1.0 | first |", "| c | 2.0 | |"]);
    // A replaced table is seen from the next batch on, not in the middle of one.
    replace_lookup(&tables, &[("c", "third")]);
    let out = t.process(words(&[("c", 3.0)])).unwrap();
    assert_eq!(texts(&out), ["| c | 3.0 | |"]);
    t.begin_batch(0, 0).unwrap();
    let out = t.process(words(&[("c", 3.0)])).unwrap();
    assert_eq!(texts(&out), ["| c | 3.0 | third |"]);
}

#[test]
fn inner_semi_and_anti_joins_keep_the_rows_spark_keeps() {
    let tables = lookup(&[("a", "first"), ("a", "again"), ("b", "second")]);
    let chunk = || words(&[("a", 1.0), ("c", 2.0), ("b", 3.0)]);
    let run_one = |sql: &str| {
        let mut t = join(sql, &tables).unwrap();
        t.begin_batch(0, 0).unwrap();
        texts(&t.process(chunk()).unwrap())
    };
    let inner = run_one(r#"SELECT "words"."word", "label" FROM "words" INNER JOIN "lookup" ON ("words"."word" = "lookup"."word")"#);
    assert_eq!(inner, ["| a | again |", "| a | first |", "| b | second |"]);
    let semi = run_one(r#"SELECT * FROM "words" WHERE EXISTS (SELECT 1 FROM "lookup" WHERE ("words"."word" = "lookup"."word"))"#);
    assert_eq!(semi, ["| a | 1.0 |", "| b | 3.0 |"]);
    let anti = run_one(r#"SELECT * FROM "words" WHERE NOT EXISTS (SELECT 1 FROM "lookup" WHERE ("words"."word" = "lookup"."word"))"#);
    assert_eq!(anti, ["| c | 2.0 |"]);
}

#[test]
fn a_join_then_a_count_aggregates_the_enriched_rows() {
    let tables = lookup(&[("a", "vowel"), ("b", "consonant"), ("c", "consonant")]);
    let sql = r#"SELECT "label" AS "word", COUNT(*) AS "n" FROM (SELECT "label" FROM "words" INNER JOIN "lookup" ON ("words"."word" = "lookup"."word")) "q01" GROUP BY "label""#;
    let mut t = Transform::plan(sql, "words", words_schema(), Some(OutputMode::Complete), false, &tables).unwrap();
    t.begin_batch(0, 0).unwrap();
    t.process(words(&[("a", 1.0), ("b", 1.0), ("c", 1.0), ("z", 1.0)])).unwrap();
    assert_eq!(counts(&t.finish_batch().unwrap()), [("consonant".into(), 2), ("vowel".into(), 1)]);
}

#[test]
fn joins_outside_sparks_matrix_and_mismatched_keys_are_errors_at_start() {
    let tables = lookup(&[("a", "first")]);
    let on = r#"ON ("words"."word" = "lookup"."word")"#;
    let e = join(&format!(r#"SELECT "x" FROM "words" RIGHT JOIN "lookup" {on}"#), &tables).err().unwrap();
    assert!(e.message.contains("Right outer join with a streaming DataFrame/Dataset on the left is not supported"), "{}", e.message);
    let e = join(&format!(r#"SELECT "x" FROM "words" FULL JOIN "lookup" {on}"#), &tables).err().unwrap();
    assert!(e.message.contains("Full outer joins with streaming DataFrames/Datasets are not supported"), "{}", e.message);
    let e = join(&format!(r#"SELECT "label" FROM "lookup" LEFT JOIN "words" {on}"#), &tables).err().unwrap();
    assert!(e.message.contains("on the right is not supported"), "{}", e.message);
    let e = join(r#"SELECT "label" FROM "words" JOIN "lookup" ON ("words"."x" = "lookup"."word")"#, &tables).err().unwrap();
    assert_eq!(e.arg.as_deref(), Some("by"));
    assert!(e.message.contains("can't join `x` (Float64) with `word` (Utf8)"), "{}", e.message);
}

#[test]
fn semi_and_anti_joins_written_as_exists_get_the_join_checks() {
    let tables = lookup(&[("a", "first")]);
    let e = join(r#"SELECT * FROM "words" WHERE EXISTS (SELECT 1 FROM "lookup" WHERE ("words"."x" = "lookup"."word"))"#, &tables).err().unwrap();
    assert_eq!(e.arg.as_deref(), Some("by"), "{}", e.message);
    let sql = r#"SELECT * FROM (SELECT "word", COUNT(*) AS "n" FROM "words" GROUP BY "word") "q01" WHERE EXISTS (SELECT 1 FROM "lookup" WHERE ("q01"."word" = "lookup"."word"))"#;
    let e = Transform::plan(sql, "words", words_schema(), Some(OutputMode::Complete), false, &tables).err().unwrap();
    assert!(e.message.contains("a join after an aggregation"), "{}", e.message);
}

/// `stream_lag()` as R writes it: the lag in a subquery, filters and
/// mutates over its result above. The lag must see every row once, in
/// order, whatever DataFusion's optimizer does with the steps above.
const LAG: &str = r#"SELECT "word", "x", "prev", "prev" || '!' AS "again" FROM (SELECT "word", "x", streamlyr_lag('prev', "word", 2) AS "prev" FROM "words") AS "q01" WHERE "prev" <> 'b'"#;

fn lag_rows(batches: &[RecordBatch]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let s = |c: usize| b.column(c).as_string::<i32>().value(i).to_string();
            out.push((s(0), s(2), s(3)));
        }
    }
    out
}

#[test]
fn a_lag_carries_across_chunks_and_a_filter_on_it_is_not_pushed_below_it() {
    let letters: Vec<String> = (b'a'..=b'j').map(|c| (c as char).to_string()).collect();
    let expected: Vec<(String, String, String)> = (2..letters.len())
        .filter(|&i| letters[i - 2] != "b")
        .map(|i| (letters[i].clone(), letters[i - 2].clone(), format!("{}!", letters[i - 2])))
        .collect();
    for cut in [1, 3, 10] {
        let mut t = plan(LAG, OutputMode::Append).unwrap();
        assert!(t.has_state());
        let mut got = Vec::new();
        for chunk in letters.chunks(cut) {
            let rows: Vec<(&str, f64)> = chunk.iter().map(|w| (w.as_str(), 1.0)).collect();
            got.extend(lag_rows(&t.process(words(&rows)).unwrap()));
        }
        assert_eq!(got, expected, "chunks of {cut}");
    }
}

#[test]
fn a_lag_is_saved_and_restored_with_the_batch() {
    let mut t = plan(LAG, OutputMode::Append).unwrap();
    t.process(words(&[("a", 1.0), ("b", 1.0), ("c", 1.0)])).unwrap();
    let saved = t.save_state().unwrap().expect("a lag has state");
    // A batch that fails after more rows: back to the saved state.
    t.process(words(&[("x", 1.0), ("y", 1.0)])).unwrap();
    t.restore_state(Some(&saved)).unwrap();
    // Two rows back from d is b (filtered out), from e is c.
    assert_eq!(lag_rows(&t.process(words(&[("d", 1.0), ("e", 1.0)])).unwrap()), vec![("e".into(), "c".into(), "c!".into())]);
    // A new query (a restart) from the same bytes.
    let mut again = plan(LAG, OutputMode::Append).unwrap();
    again.restore_state(Some(&saved)).unwrap();
    assert_eq!(lag_rows(&again.process(words(&[("d", 1.0), ("e", 1.0)])).unwrap()).len(), 1, "e's lag is c; d's is b, filtered out");
    // No batch committed yet: nothing kept.
    again.restore_state(None).unwrap();
    assert!(again.process(words(&[("f", 1.0)])).unwrap().iter().all(|b| b.num_rows() == 0));
}

#[test]
fn a_lag_then_a_count_and_a_lag_under_a_continuous_trigger() {
    let sql = r#"SELECT "prev", COUNT(*) AS "n" FROM (SELECT streamlyr_lag('prev', "word", 1) AS "prev" FROM "words") AS "q01" GROUP BY "prev""#;
    let mut t = plan(sql, OutputMode::Complete).unwrap();
    t.process(words(&[("a", 1.0), ("a", 1.0)])).unwrap();
    t.process(words(&[("b", 1.0)])).unwrap();
    let out = t.finish_batch().unwrap();
    let rows: usize = out.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2, "groups NA (first row) and a (rows 2 and 3)");
    let saved = t.save_state().unwrap().unwrap();
    let mut again = plan(sql, OutputMode::Complete).unwrap();
    again.restore_state(Some(&saved)).unwrap();
    assert_eq!(Transform::saved_watermark(&saved), Some(0));

    let e = Transform::plan(LAG, "words", words_schema(), Some(OutputMode::Append), true, &Arc::default()).err().unwrap();
    assert_eq!(e.arg.as_deref(), Some("trigger"));
}

/// The shapes DataFusion's optimizer would rewrite (a filter on another
/// column above the lag, a filter below it and one on it above, a CASE over
/// it): the lag still sees exactly the rows written before it, in order.
#[test]
fn steps_around_a_lag_stay_on_their_side_of_it() {
    let input: Vec<(String, f64)> = (0..12).map(|i| (format!("w{i}"), (i % 3) as f64)).collect();
    let rows: Vec<(&str, f64)> = input.iter().map(|(w, x)| (w.as_str(), *x)).collect();
    let run_chunks = |sql: &str| -> Vec<Vec<Option<String>>> {
        let mut t = plan(sql, OutputMode::Append).unwrap();
        let mut out = Vec::new();
        for chunk in rows.chunks(5) {
            for b in t.process(words(chunk)).unwrap() {
                for i in 0..b.num_rows() {
                    out.push(
                        (0..b.num_columns())
                            .map(|c| {
                                let col = arrow::compute::cast(b.column(c), &DataType::Utf8).unwrap();
                                let s = col.as_string::<i32>();
                                s.is_valid(i).then(|| s.value(i).to_string())
                            })
                            .collect(),
                    );
                }
            }
        }
        out
    };
    let word = |i: usize| Some(format!("w{i}"));
    // A filter on another column after the lag: the lag is over every row.
    let got = run_chunks(r#"SELECT "word", "prev" FROM (SELECT "word", "x", streamlyr_lag('p', "word", 1) AS "prev" FROM "words") AS "q" WHERE "x" > 1.0"#);
    let expected: Vec<Vec<Option<String>>> = (0..12).filter(|i| i % 3 == 2).map(|i| vec![word(i), word(i - 1)]).collect();
    assert_eq!(got, expected, "filter after the lag");
    // A filter before the lag, and one on the lag after it: the lag is over the filtered rows.
    let got = run_chunks(
        r#"SELECT "word", "prev" FROM (SELECT "word", streamlyr_lag('p', "word", 1) AS "prev" FROM (SELECT * FROM "words" WHERE "x" > 0.0) AS "q0") AS "q1" WHERE "prev" IS NOT NULL"#,
    );
    let kept: Vec<usize> = (0..12).filter(|i| i % 3 != 0).collect();
    let expected: Vec<Vec<Option<String>>> = kept.windows(2).map(|w| vec![word(w[1]), word(w[0])]).collect();
    assert_eq!(got, expected, "filter before, filter on the lag after");
    // A CASE over the lag: every row feeds the lag, whatever the CASE picks.
    let got = run_chunks(
        r#"SELECT "word", CASE WHEN "x" > 1.0 THEN "prev" ELSE NULL END AS "p" FROM (SELECT "word", "x", streamlyr_lag('p', "word", 1) AS "prev" FROM "words") AS "q""#,
    );
    let expected: Vec<Vec<Option<String>>> = (0..12).map(|i| vec![word(i), if i % 3 == 2 { word(i - 1) } else { None }]).collect();
    assert_eq!(got, expected, "CASE over the lag");
    // After an aggregation: refused.
    let e = plan(r#"SELECT "word", streamlyr_lag('n', "n", 1) AS "prev" FROM (SELECT "word", COUNT(*) AS "n" FROM "words" GROUP BY "word") AS "q""#, OutputMode::Complete)
        .err()
        .unwrap();
    assert_eq!(e.arg.as_deref(), Some("x"));
    assert!(e.message.contains("after an aggregation"), "{e}");
}

/// Rows of (name, amount), with a null in each column.
fn people() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, true), Field::new("amount", DataType::Int32, true)]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![Some("ab"), None, Some("c")])),
            Arc::new(arrow::array::Int32Array::from(vec![Some(1), Some(-1), None])),
        ],
    )
    .unwrap()
}

fn run_on_people(sql: &str) -> Result<RecordBatch> {
    let mut t = Transform::plan(sql, "people", people().schema(), Some(OutputMode::Append), false, &Arc::default())?;
    let out = t.process(people())?;
    Ok(arrow::compute::concat_batches(&out[0].schema(), &out)?)
}

fn binary_rows(column: &dyn Array) -> Vec<Option<Vec<u8>>> {
    let b = column.as_binary::<i32>();
    (0..b.len()).map(|i| b.is_valid(i).then(|| b.value(i).to_vec())).collect()
}

#[test]
fn to_avro_writes_the_bytes_of_sparks_schema_for_the_column() {
    let out = run_on_people(r#"SELECT to_avro("name") AS n, to_avro("amount") AS a, to_avro("amount", '"long"') AS l FROM "people""#).unwrap();
    // A nullable column is the union [type, "null"]: branch 0 then the value; null stays null.
    assert_eq!(binary_rows(out.column(0)), [Some(vec![0, 4, b'a', b'b']), None, Some(vec![0, 2, b'c'])]);
    // Zig-zag ints: 1 -> 2, -1 -> 1.
    assert_eq!(binary_rows(out.column(1)), [Some(vec![0, 2]), Some(vec![0, 1]), None]);
    // With a schema given, in its type (an int column as a long, not a union).
    assert_eq!(binary_rows(out.column(2)), [Some(vec![2]), Some(vec![1]), None]);
    // A struct is a bare record (Spark's `to_avro(struct(...))`); a null struct a null value.
    let out = run_on_people(
        r#"SELECT to_avro(CASE WHEN "amount" = -1 THEN NULL ELSE named_struct('n', "name", 'a', "amount") END) AS r FROM "people""#,
    )
    .unwrap();
    let r = out.column(0).as_binary::<i32>();
    assert_eq!((r.value(0), r.is_null(1), r.value(2)), (&[0, 4, b'a', b'b', 0, 2][..], true, &[0, 2, b'c', 2][..]));
}

#[test]
fn from_avro_reads_what_to_avro_wrote_records_included() {
    let record = r#"{"type": "record", "name": "topLevelRecord", "fields": [{"name": "n", "type": ["string", "null"]}, {"name": "a", "type": ["int", "null"]}]}"#;
    let sql = format!(
        r#"SELECT from_avro(to_avro(named_struct('n', "name", 'a', "amount")), '{record}') AS r,
                  from_avro(to_avro("name"), '["string", "null"]') AS n FROM "people""#
    );
    let out = run_on_people(&sql).unwrap();
    let r = out.column(0).as_struct();
    assert_eq!(r.column_names(), ["n", "a"]);
    let names = r.column(0).as_string::<i32>();
    assert_eq!((names.value(0), names.is_null(1), names.value(2)), ("ab", true, "c"));
    let amounts = r.column(1).as_primitive::<arrow::datatypes::Int32Type>();
    assert_eq!((amounts.value(0), amounts.value(1), amounts.is_null(2)), (1, -1, true));
    let n = out.column(1).as_string::<i32>();
    assert_eq!((n.value(0), n.is_null(1), n.value(2)), ("ab", true, "c"));
}

#[test]
fn from_avro_fails_fast_on_a_malformed_value_and_names_cols_for_a_bad_schema() {
    // A string that says it has two bytes, with one: the value is cut short.
    let e = run_on_people(r#"SELECT from_avro(decode('0461', 'hex'), '"string"') AS v FROM "people""#);
    let e = e.err().expect("a truncated value fails");
    assert_eq!(e.kind, crate::error::ErrorKind::Execution, "{e:?}");
    assert!(e.message.contains("Current parse Mode: FAILFAST"), "{}", e.message);

    let e = run_on_people(r#"SELECT from_avro(to_avro("name"), '{"type": "recrod"}') AS v FROM "people""#).err().unwrap();
    assert_eq!((e.kind, e.arg.as_deref()), (crate::error::ErrorKind::Config, Some("x")), "{e:?}");
    let e = run_on_people(r#"SELECT from_avro("name", '"string"') AS v FROM "people""#).err().unwrap();
    assert!(e.message.contains("reads binary columns"), "{}", e.message);
}
