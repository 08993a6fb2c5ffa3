//! The option and checkpoint parsers take whatever users and disks give
//! them: any input is an `Ok` or a clear `Err`, never a panic.

use std::collections::BTreeMap;

use proptest::prelude::*;
use streamlyr::checkpoint::CheckpointLog;
use streamlyr::kafka::config::{parse_offsets_json, KafkaSinkOptions, KafkaSourceOptions};

fn option_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("kafka.bootstrap.servers".to_string()),
        Just("subscribe".to_string()),
        Just("subscribePattern".to_string()),
        Just("assign".to_string()),
        Just("startingOffsets".to_string()),
        Just("maxOffsetsPerTrigger".to_string()),
        Just("failOnDataLoss".to_string()),
        Just("includeHeaders".to_string()),
        Just("topic".to_string()),
        Just("guarantee".to_string()),
        Just("kafka.sasl.password".to_string()),
        "[a-zA-Z.]{0,20}",
    ]
}

fn option_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "\\{\"[a-z]{1,5}\":(\\[[0-9,-]{0,10}\\]|\\{\"[0-9-]{1,3}\":-?[0-9]{1,20}\\})\\}",
        "(true|false|earliest|latest|exactly-once|at-least-once|-?[0-9]{1,25})",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn option_parsers_never_panic(options in proptest::collection::btree_map(option_key(), option_value(), 0..8)) {
        let options: BTreeMap<String, String> = options;
        let _ = KafkaSourceOptions::parse(&options);
        let _ = KafkaSinkOptions::parse(&options);
    }

    #[test]
    fn offsets_json_never_panics(text in "\\PC{0,80}") {
        let _ = parse_offsets_json(&text, "startingOffsets");
    }

    #[test]
    fn damaged_checkpoint_files_are_errors_not_panics(
        metadata in proptest::collection::vec(any::<u8>(), 0..200),
        offsets in proptest::collection::vec(any::<u8>(), 0..200),
        prefix in prop_oneof![Just(b"v1\n".to_vec()), Just(Vec::new())],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let opened = CheckpointLog::open(dir.path(), "s", "k");
        prop_assert!(opened.is_ok());
        std::fs::write(dir.path().join("offsets").join("0"), [prefix.clone(), offsets].concat()).unwrap();
        let (log, _) = opened.unwrap();
        let _ = log.latest_offsets::<serde_json::Value>();
        // Let go of the checkpoint's lock, or reopening only ever sees "in use".
        drop(log);
        let damaged = [prefix, metadata].concat();
        let parses = std::str::from_utf8(&damaged).ok()
            .and_then(|t| t.strip_prefix("v1\n"))
            .and_then(|body| serde_json::from_str::<serde_json::Value>(body).ok())
            .is_some_and(|v| v.get("id").is_some_and(|id| id.is_string()) && v.get("source") == Some(&"s".into()) && v.get("sink") == Some(&"k".into()));
        std::fs::write(dir.path().join("metadata"), &damaged).unwrap();
        match CheckpointLog::open(dir.path(), "s", "k") {
            Ok(_) => prop_assert!(parses, "damaged metadata was accepted"),
            Err(e) => {
                prop_assert!(!e.message.contains("in use"), "{}", e.message);
                prop_assert!(e.message.contains("metadata") || e.message.contains("another query"), "{}", e.message);
            }
        }
    }
}
