//! Windows and the watermark against an oracle: the same events counted
//! per window in plain Rust, with Spark's rules for late rows and closing.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;

use super::*;

fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("word", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())), true),
    ]))
}

fn events(items: &[(&str, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        events_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(items.iter().map(|i| i.0))),
            Arc::new(TimestampMillisecondArray::from_iter_values(items.iter().map(|i| i.1)).with_timezone("+00:00")),
        ],
    )
    .unwrap()
}

/// What dbplyr renders for `stream_watermark("ts", delay) %>% group_by(w = window(ts, ...), word) %>% summarise(n = n())`.
fn windowed_count(delay_ms: i64, window: &str) -> String {
    format!(
        r#"SELECT "w", "word", COUNT(*) AS "n" FROM (SELECT "q01".*, window("ts", {window}) AS "w" FROM (SELECT "word", streamlyr_watermark("ts", {delay_ms}) AS "ts" FROM "events") "q01") "q02" GROUP BY "w", "word""#
    )
}

fn plan(sql: &str, mode: OutputMode) -> Result<Transform> {
    Transform::plan(sql, "events", events_schema(), Some(mode), false, &Arc::default())
}

type Counts = Vec<(i64, i64, String, i64)>; // (start ms, end ms, word, n)

fn decode(batches: &[RecordBatch]) -> Counts {
    let mut out = Vec::new();
    for b in batches {
        let w = b.column(0).as_struct();
        let start = w.column(0).as_primitive::<TimestampMicrosecondType>();
        let end = w.column(1).as_primitive::<TimestampMicrosecondType>();
        let word = b.column(1).as_string::<i32>();
        let n = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            out.push((start.value(i) / 1000, end.value(i) / 1000, word.value(i).to_string(), n.value(i)));
        }
    }
    out.sort();
    out
}

/// Batches through the transform as the query loop runs them: each with
/// the watermark of the one before, and a batch without rows whenever the
/// watermark moved. Per batch: (output, rows dropped).
fn run(t: &mut Transform, batches: &[Vec<(&str, i64)>]) -> Vec<(Counts, u64)> {
    let mut wm = 0;
    let mut out = Vec::new();
    let run_one = |t: &mut Transform, rows: &[(&str, i64)], wm: &mut i64| {
        t.begin_batch(1_000, *wm).unwrap();
        if !rows.is_empty() {
            t.process(events(rows)).unwrap();
        }
        let result = decode(&t.finish_batch().unwrap());
        let before = *wm;
        *wm = t.next_watermark();
        assert!(*wm >= before, "the watermark went back");
        (result, t.rows_dropped(), *wm > before)
    };
    for rows in batches {
        let (result, dropped, moved) = run_one(t, rows, &mut wm);
        out.push((result, dropped));
        if moved && t.closes_groups() {
            let (result, dropped, _) = run_one(t, &[], &mut wm);
            out.push((result, dropped));
        }
    }
    out
}

/// Spark's rules over plain maps.
fn oracle(batches: &[Vec<(&str, i64)>], delay: i64, width: i64, slide: i64, mode: OutputMode) -> Vec<(Counts, u64)> {
    let mut state: BTreeMap<(i64, String), i64> = BTreeMap::new();
    let mut wm = 0i64;
    let mut out = Vec::new();
    let batch = |rows: &[(&str, i64)], wm: &mut i64, state: &mut BTreeMap<(i64, String), i64>| {
        let mut dropped = 0;
        let mut changed = std::collections::BTreeSet::new();
        for (word, ts) in rows {
            // Every start aligned to the slide, from a width before the time to the time.
            let mut start = (ts - width).div_euclid(slide) * slide;
            while start <= *ts {
                if start + width > *ts {
                    if start + width <= *wm && mode != OutputMode::Complete {
                        dropped += 1;
                    } else {
                        *state.entry((start, word.to_string())).or_default() += 1;
                        changed.insert((start, word.to_string()));
                    }
                }
                start += slide;
            }
        }
        let as_counts = |keys: Vec<(i64, String)>, state: &BTreeMap<(i64, String), i64>| -> Counts {
            keys.into_iter().map(|(s, w)| (s, s + width, w.clone(), state[&(s, w)])).collect()
        };
        let closed: Vec<(i64, String)> = state.keys().filter(|(s, _)| s + width <= *wm).cloned().collect();
        let result = match mode {
            OutputMode::Append => as_counts(closed.clone(), state),
            OutputMode::Update => as_counts(changed.into_iter().collect(), state),
            OutputMode::Complete => as_counts(state.keys().cloned().collect(), state),
        };
        if mode != OutputMode::Complete {
            closed.iter().for_each(|k| {
                state.remove(k);
            });
        }
        let before = *wm;
        if let Some(max) = rows.iter().map(|r| r.1).max() {
            *wm = (*wm).max(max - delay);
        }
        let mut result = result;
        result.sort();
        ((result, dropped), *wm > before)
    };
    for rows in batches {
        let (r, moved) = batch(rows, &mut wm, &mut state);
        out.push(r);
        if moved && mode != OutputMode::Complete {
            out.push(batch(&[], &mut wm, &mut state).0);
        }
    }
    out
}

#[test]
fn tumbling_windows_in_append_mode_are_written_once_when_the_watermark_passes() {
    let mut t = plan(&windowed_count(5_000, "'10 seconds'"), OutputMode::Append).unwrap();
    assert!(t.closes_groups());
    let out = run(&mut t, &[
        vec![("a", 1_000), ("a", 2_000), ("b", 12_000)],
        vec![("a", 9_000), ("a", 26_000)], // wm 7 s: nothing closes yet; then wm 21 s
        vec![("a", 3_000), ("b", 27_000)], // late for [0, 10): dropped
    ]);
    // Each batch that moves the watermark is followed by one without rows:
    // batch 0 (wm 0), no-data (wm 7 s), batch 1 (wm 7 s: [0, 10) still open),
    // no-data (wm 21 s: writes [0, 10) and [10, 20)), batch 2 (its a@3 s is late), no-data (wm 22 s).
    assert_eq!(out.len(), 6);
    assert!(out.iter().enumerate().all(|(i, o)| i == 3 || o.0.is_empty()), "{out:?}");
    assert_eq!(out[3].0, vec![(0, 10_000, "a".into(), 3), (10_000, 20_000, "b".into(), 1)]);
    assert_eq!(out.iter().map(|o| o.1).collect::<Vec<_>>(), [0, 0, 0, 0, 1, 0]);
    assert_eq!(t.groups_held(), Some(2)); // [20, 30) a and b
}

#[test]
fn window_keys_and_the_watermark_are_found_through_aliases_and_group_by_expressions() {
    // dbplyr may also render the window inside GROUP BY itself.
    let sql = r#"SELECT window("ts", '10 seconds') AS "w", COUNT(*) AS "n" FROM (SELECT "word", streamlyr_watermark("ts", 0) AS "ts" FROM "events") "q01" GROUP BY window("ts", '10 seconds')"#;
    assert!(plan(sql, OutputMode::Append).unwrap().closes_groups());
    // Grouping by the watermarked column itself closes groups too.
    let sql = r#"SELECT "ts", COUNT(*) AS "n" FROM (SELECT streamlyr_watermark("ts", 0) AS "ts" FROM "events") "q01" GROUP BY "ts""#;
    assert!(plan(sql, OutputMode::Append).unwrap().closes_groups());
    // A window on a column without a watermark does not close: append is Spark's error.
    let sql = r#"SELECT "w", COUNT(*) AS "n" FROM (SELECT window("ts", '10 seconds') AS "w" FROM "events") "q01" GROUP BY "w""#;
    let e = plan(sql, OutputMode::Append).err().unwrap();
    assert!(e.message.contains("without watermark"), "{}", e.message);
    assert_eq!(e.arg.as_deref(), Some("mode"));
    // Complete keeps every group.
    assert!(!plan(&windowed_count(0, "'10 seconds'"), OutputMode::Complete).unwrap().closes_groups());
}

#[test]
fn bad_windows_and_watermarks_are_the_users_errors() {
    let e = plan(&windowed_count(0, "'10 seconds', '20 seconds'"), OutputMode::Update).err().unwrap();
    assert!(e.message.contains("must be less than or equal to the windowDuration"), "{}", e.message);
    let e = plan(&windowed_count(0, "'ten seconds'"), OutputMode::Update).err().unwrap();
    assert!(e.message.contains("can't read \"ten seconds\""), "{}", e.message);
    let sql = r#"SELECT streamlyr_watermark("word", 1000) AS "word" FROM "events""#;
    let e = plan(sql, OutputMode::Append).err().unwrap();
    assert_eq!(e.arg.as_deref(), Some("column"));
    assert!(e.message.contains("Event time must be defined on a window or a timestamp"), "{}", e.message);
    let sql = r#"SELECT session_window("ts", '5 minutes') AS "s" FROM "events""#;
    let e = plan(sql, OutputMode::Append).err().unwrap();
    assert!(e.message.contains("session_window()"), "{}", e.message);
}

#[test]
fn now_is_the_batch_time() {
    let mut t = plan(r#"SELECT "word", now() AS "t", current_timestamp AS "u" FROM "events""#, OutputMode::Append).unwrap();
    t.begin_batch(1_234_567, 0).unwrap();
    let out = t.process(events(&[("a", 0)])).unwrap();
    let time = out[0].column(1).as_primitive::<TimestampMicrosecondType>().value(0);
    assert_eq!(time, 1_234_567_000);
    assert_eq!(out[0].column(2).as_primitive::<TimestampMicrosecondType>().value(0), time);
}

#[test]
fn window_state_survives_a_restore() {
    let sql = windowed_count(0, "'10 seconds'");
    let mut a = plan(&sql, OutputMode::Update).unwrap();
    a.begin_batch(0, 0).unwrap();
    a.process(events(&[("a", 1_000), ("a", 12_000)])).unwrap();
    a.finish_batch().unwrap();
    let saved = a.save_state().unwrap().unwrap();
    let mut b = plan(&sql, OutputMode::Update).unwrap();
    b.restore_state(Some(&saved)).unwrap();
    b.begin_batch(0, 0).unwrap();
    b.process(events(&[("a", 13_000)])).unwrap();
    assert_eq!(decode(&b.finish_batch().unwrap()), vec![(10_000, 20_000, "a".into(), 2)]);
}

fn batches_strategy() -> impl Strategy<Value = Vec<Vec<(&'static str, i64)>>> {
    let event = (prop::sample::select(vec!["a", "b", "c"]), 0i64..120_000);
    prop::collection::vec(prop::collection::vec(event, 0..12), 1..7)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn windows_match_the_oracle(
        batches in batches_strategy(),
        delay in prop::sample::select(vec![0i64, 5_000, 30_000]),
        (width, slide) in prop::sample::select(vec![(10_000i64, 10_000i64), (10_000, 5_000), (15_000, 4_000)]),
        mode in prop::sample::select(vec![OutputMode::Append, OutputMode::Update, OutputMode::Complete]),
    ) {
        let window = if width == slide { format!("'{} seconds'", width / 1000) } else { format!("'{} seconds', '{} seconds'", width / 1000, slide / 1000) };
        let mut t = plan(&windowed_count(delay, &window), mode).unwrap();
        let got = run(&mut t, &batches);
        let expected = oracle(&batches, delay, width, slide, mode);
        prop_assert_eq!(got, expected);
    }
}

#[test]
fn the_event_time_key_is_traced_through_a_join_and_not_through_other_casts() {
    let tables: Arc<crate::sink::memory::Tables> = Arc::default();
    let lookup = Arc::new(Schema::new(vec![Field::new("word", DataType::Utf8, true), Field::new("label", DataType::Utf8, true)]));
    tables.copy_in("lookup", RecordBatch::new_empty(lookup), false).unwrap();
    // stream_watermark() first, then a join, then the window (Spark's usual order).
    let sql = r#"SELECT "w", COUNT(*) AS "n" FROM (SELECT *, window("ts", '10 seconds') AS "w" FROM (SELECT "q01"."ts", "label" FROM (SELECT "word", streamlyr_watermark("ts", 0) AS "ts" FROM "events") "q01" LEFT JOIN "lookup" ON ("q01"."word" = "lookup"."word")) "q02") "q03" GROUP BY "w""#;
    let t = Transform::plan(sql, "events", events_schema(), Some(OutputMode::Append), false, &tables).unwrap();
    assert!(t.closes_groups());
    // A date of the watermarked time is another value: no watermark on it.
    let sql = r#"SELECT "d", COUNT(*) AS "n" FROM (SELECT CAST("ts" AS DATE) AS "d" FROM (SELECT streamlyr_watermark("ts", 0) AS "ts" FROM "events") "q01") "q02" GROUP BY "d""#;
    let e = plan(sql, OutputMode::Append).err().unwrap();
    assert!(e.message.contains("without watermark"), "{}", e.message);
}

#[test]
fn sliding_windows_must_be_columns_of_their_own_and_one_at_a_time() {
    let sql = r#"SELECT COUNT(*) AS "n" FROM (SELECT streamlyr_watermark("ts", 0) AS "ts" FROM "events") "q01" GROUP BY window("ts", '10 seconds', '5 seconds')"#;
    let e = plan(sql, OutputMode::Update).err().unwrap();
    assert!(e.message.contains("must be a column of its own"), "{}", e.message);
    let sql = r#"SELECT window("ts", '10 seconds', '5 seconds') AS "a", window("ts", '20 seconds', '5 seconds') AS "b" FROM "events""#;
    let e = plan(sql, OutputMode::Append).err().unwrap();
    assert!(e.message.contains("Multiple time/session window expressions"), "{}", e.message);
}
