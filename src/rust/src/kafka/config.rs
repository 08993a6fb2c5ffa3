//! The user's `options = list(...)`, already turned into strings by R, and
//! what they mean for the Kafka source and sink.
//!
//! Parsing is pure (no Kafka, no R), so it is tested and fuzzed on its own.
//! Secrets never leave this module in clear text: [`KafkaClientConfig`]'s
//! `Debug` and [`KafkaClientConfig::describe`] redact them.
//!
//! Every `kafka.*` option goes to librdkafka without its prefix, except the
//! ones streamlyr says it ignores (they are dropped) and the settings it
//! manages itself: those are set after the user's
//! ([`KafkaClientConfig::to_rdkafka`]), and where a user's value would
//! break a guarantee the option is refused with an error naming it.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

pub type Options = BTreeMap<String, String>;

/// Options from `(name, value)` pairs, for tests.
#[cfg(test)]
pub(crate) fn options_of(pairs: &[(&str, &str)]) -> Options {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// librdkafka properties whose values must never be printed or stored.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.contains("sasl.jaas.config")
        || k.contains("ssl.key.pem")
        || k.contains("ssl_key")
        || k.contains("token")
        || k.contains("ssl.keystore.key")
        || k.contains("user.info")
}

/// Properties handed to librdkafka (the `kafka.` prefix removed).
#[derive(Clone, Default, PartialEq)]
pub struct KafkaClientConfig {
    pub properties: BTreeMap<String, String>,
}

impl KafkaClientConfig {
    /// The `kafka.*` options, without the prefix; those said to be ignored are dropped.
    fn from_options(options: &Options) -> Self {
        let properties = options
            .iter()
            .filter(|(k, _)| !SPARK_ONLY.contains(&k.as_str()))
            .filter_map(|(k, v)| k.strip_prefix("kafka.").map(|p| (p.to_string(), v.clone())))
            .collect();
        KafkaClientConfig { properties }
    }

    pub fn bootstrap_servers(&self) -> &str {
        self.properties.get("bootstrap.servers").map(String::as_str).unwrap_or("")
    }

    /// The properties with secrets replaced by `<redacted>`.
    pub fn describe(&self) -> BTreeMap<String, String> {
        self.properties
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret(k) { "<redacted>".to_string() } else { v.clone() };
                (k.clone(), shown)
            })
            .collect()
    }

    /// A librdkafka client config: our `defaults`, then the user's
    /// properties, then the settings streamlyr `manages` (which no user
    /// property may replace).
    pub(crate) fn to_rdkafka(&self, defaults: &[(&str, &str)], manages: &[(&str, &str)]) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        for (k, v) in defaults {
            config.set(*k, *v);
        }
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        for (k, v) in manages {
            config.set(*k, *v);
        }
        config
    }
}

impl fmt::Debug for KafkaClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.describe()).finish()
    }
}

fn require_bootstrap(options: &Options) -> Result<()> {
    match options.get("kafka.bootstrap.servers") {
        Some(s) if !s.trim().is_empty() => Ok(()),
        _ => Err(Error::option("kafka.bootstrap.servers", "`kafka.bootstrap.servers` is required")
            .with_hint("for example `options = list(kafka.bootstrap.servers = \"localhost:9092\", ...)`")),
    }
}

/// Options Spark rejects because the source or sink manages them itself.
fn reject_managed(options: &Options, managed: &[(&str, &str)]) -> Result<()> {
    for (key, why) in managed {
        if options.contains_key(*key) {
            return Err(Error::option(key, format!("Kafka option `{key}` is not supported: {why}")));
        }
    }
    Ok(())
}

pub(crate) fn parse_bool(options: &Options, key: &str, default: bool) -> Result<bool> {
    match options.get(key).map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(s) if s == "true" => Ok(true),
        Some(s) if s == "false" => Ok(false),
        Some(s) => Err(Error::option(key, format!("`{key}` must be \"true\" or \"false\", not \"{s}\""))),
    }
}

pub(crate) fn parse_positive(options: &Options, key: &str) -> Result<Option<u64>> {
    match options.get(key) {
        None => Ok(None),
        Some(s) => match s.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(Error::option(key, format!("`{key}` must be a positive whole number, not \"{s}\""))),
        },
    }
}

/// Options that are Spark's but mean nothing here; accepted so that a sparklyr
/// script runs unchanged, and reported back so R can say they were ignored.
const SPARK_ONLY: &[&str] = &[
    "minPartitions",
    "kafkaConsumer.pollTimeoutMs",
    "fetchOffset.numRetries",
    "fetchOffset.retryIntervalMs",
    "groupIdPrefix",
    "minOffsetsPerTrigger",
    "maxTriggerDelay",
    "startingTimestamp",
    "startingOffsetsByTimestamp",
    "startingOffsetsByTimestampStrategy",
    "endingOffsets",
    "endingTimestamp",
    "endingOffsetsByTimestamp",
    "producer.cache.timeout",
    "kafka.group.id",
];

fn unknown_options(options: &Options, known: &[&str]) -> Vec<String> {
    options
        .keys()
        .filter(|k| !k.starts_with("kafka.") && !known.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// topic -> partition -> offset: where a Kafka source is, or starts.
pub type OffsetMap = BTreeMap<String, BTreeMap<i32, i64>>;

/// `subscribePattern` as Java's `Pattern.matches()` reads it: the whole
/// topic name must match.
pub(crate) fn compile_pattern(pattern: &str) -> std::result::Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

/// `subscribePattern`, as written and compiled (once).
#[derive(Debug, Clone)]
pub struct TopicPattern {
    pub text: String,
    pub regex: regex::Regex,
}

impl PartialEq for TopicPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Where a Kafka source reads from.
#[derive(Debug, Clone, PartialEq)]
pub enum Subscription {
    Topics(Vec<String>),
    Pattern(TopicPattern),
    /// Fixed partitions: topic -> partition numbers.
    Assign(BTreeMap<String, Vec<i32>>),
}

/// Where a partition starts when the query has no checkpoint yet.
#[derive(Debug, Clone, PartialEq)]
pub enum StartingOffsets {
    Earliest,
    Latest,
    /// topic -> partition -> offset; -2 is earliest, -1 latest.
    Specific(OffsetMap),
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSourceOptions {
    pub client: KafkaClientConfig,
    pub subscription: Subscription,
    pub starting_offsets: StartingOffsets,
    pub max_offsets_per_trigger: Option<u64>,
    pub fail_on_data_loss: bool,
    pub include_headers: bool,
    /// `key.format`/`value.format`: keys and values read as columns.
    pub(crate) decoding: Option<crate::message::MessageDecoding>,
    /// The rows the source hands on: Spark's Kafka columns, with a decoded
    /// key or value replaced by its fields.
    pub schema: arrow::datatypes::SchemaRef,
    /// `scaleOut = "group"`: share the input with other processes in a consumer group.
    pub group: Option<crate::kafka::group::GroupOptions>,
    /// Options accepted for sparklyr compatibility but without effect.
    pub ignored: Vec<String>,
}

impl StartingOffsets {
    /// Where `tp` starts under this rule, given its low and high watermarks.
    pub(crate) fn resolve(&self, tp: &(String, i32), low: i64, high: i64) -> i64 {
        match self {
            StartingOffsets::Earliest => low,
            StartingOffsets::Latest => high,
            StartingOffsets::Specific(m) => match m.get(&tp.0).and_then(|ps| ps.get(&tp.1)) {
                Some(-2) => low,
                Some(-1) | None => high,
                Some(off) => *off,
            },
        }
    }
}

/// `scaleOut` and what it needs: `kafka.group.id`, a subscription (not
/// `assign`), and none of the group settings streamlyr pins.
fn parse_scale_out(options: &Options, subscription: &Subscription) -> Result<Option<crate::kafka::group::GroupOptions>> {
    match options.get("scaleOut").map(|s| s.trim()) {
        None | Some("none") => return Ok(None),
        Some("group") => {}
        Some(other) => {
            return Err(Error::option("scaleOut", format!("`scaleOut` must be \"group\" (or \"none\"), not \"{other}\""))
                .with_hint("`scaleOut = \"group\"` shares the input's partitions with the other processes of the consumer group `kafka.group.id`"))
        }
    }
    let group_id = match options.get("kafka.group.id").map(|s| s.trim()) {
        Some(g) if !g.is_empty() => g.to_string(),
        _ => {
            return Err(Error::option("kafka.group.id", "`scaleOut = \"group\"` needs `kafka.group.id`: the consumer group the processes share")
                .with_hint("for example `kafka.group.id = \"orders-enricher\"`, the same in every process"))
        }
    };
    if matches!(subscription, Subscription::Assign(_)) {
        return Err(Error::option("assign", "`assign` can't be used with `scaleOut = \"group\"`: the group assigns the partitions")
            .with_hint("use `subscribe` or `subscribePattern`"));
    }
    for (key, why) in [
        ("kafka.group.protocol", "the classic group protocol is pinned (transactional commits under the new one need Kafka 4.3)"),
        ("kafka.partition.assignment.strategy", "eager `range` assignment is pinned (cooperative assignment is not proven safe with transactions here)"),
        ("kafka.isolation.level", "the group's committed offsets are read as stable, which needs `read_committed`"),
    ] {
        if options.contains_key(key) {
            return Err(Error::option(key, format!("Kafka option `{key}` can't be set with `scaleOut = \"group\"`: {why}")));
        }
    }
    let instance_id = match options.get("kafka.group.instance.id").map(|s| s.trim()) {
        None => None,
        Some(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) => Some(id.to_string()),
        Some(id) => {
            return Err(Error::option(
                "kafka.group.instance.id",
                format!("`kafka.group.instance.id` must be letters, digits, `.`, `_` or `-` (it also names this process's part of the checkpoint), not \"{id}\""),
            ))
        }
    };
    Ok(Some(crate::kafka::group::GroupOptions { group_id, instance_id }))
}

impl KafkaSourceOptions {
    pub fn parse(options: &Options) -> Result<Self> {
        require_bootstrap(options)?;
        reject_managed(
            options,
            &[
                ("kafka.auto.offset.reset", "use `startingOffsets` instead"),
                ("kafka.key.deserializer", "keys are always read as raw bytes; cast them in R"),
                ("kafka.value.deserializer", "values are always read as raw bytes; cast them in R"),
                ("kafka.enable.auto.commit", "the checkpoint keeps the offsets, not Kafka"),
                ("kafka.enable.auto.offset.store", "the checkpoint keeps the offsets, not Kafka"),
                ("kafka.enable.partition.eof", "the source reads up to offsets it plans itself"),
                ("kafka.interceptor.classes", "interceptors are a Java client feature"),
            ],
        )?;

        let strategies: Vec<&str> = ["subscribe", "subscribePattern", "assign"]
            .into_iter()
            .filter(|k| options.contains_key(*k))
            .collect();
        let subscription = match strategies.as_slice() {
            ["subscribe"] => {
                let topics: Vec<String> = options["subscribe"]
                    .split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect();
                if topics.is_empty() {
                    return Err(Error::option("subscribe", "`subscribe` names no topic"));
                }
                Subscription::Topics(topics)
            }
            ["subscribePattern"] => {
                let pattern = options["subscribePattern"].trim().to_string();
                if pattern.is_empty() {
                    return Err(Error::option("subscribePattern", "`subscribePattern` is empty"));
                }
                let regex = compile_pattern(&pattern).map_err(|e| {
                    Error::option("subscribePattern", format!("`subscribePattern` is not a valid regular expression: {e}"))
                })?;
                Subscription::Pattern(TopicPattern { text: pattern, regex })
            }
            ["assign"] => Subscription::Assign(parse_assign(&options["assign"])?),
            [] => {
                return Err(Error::config("options", "a Kafka source needs one of `subscribe`, `subscribePattern` or `assign`")
                    .with_hint("for example `subscribe = \"topic1\"`"))
            }
            many => {
                return Err(Error::config(
                    "options",
                    format!("only one of `subscribe`, `subscribePattern` and `assign` may be given, not {}", many.join(" and ")),
                ))
            }
        };

        let starting_offsets = match options.get("startingOffsets").map(|s| s.trim()) {
            None | Some("latest") => StartingOffsets::Latest,
            Some("earliest") => StartingOffsets::Earliest,
            Some(json) if json.starts_with('{') => StartingOffsets::Specific(parse_offsets_json(json, "startingOffsets")?),
            Some(other) => {
                return Err(Error::option(
                    "startingOffsets",
                    format!("`startingOffsets` must be \"latest\", \"earliest\" or a JSON object, not \"{other}\""),
                ))
            }
        };

        let mut known = vec![
            "subscribe", "subscribePattern", "assign", "startingOffsets", "maxOffsetsPerTrigger",
            "failOnDataLoss", "includeHeaders", "scaleOut",
        ];
        known.extend_from_slice(SPARK_ONLY);
        known.extend_from_slice(&crate::message::SOURCE_OPTIONS);
        let unknown = unknown_options(options, &known);
        if let Some(first) = unknown.first() {
            return Err(Error::option(first, format!("unknown Kafka source option `{first}`"))
                .with_hint("librdkafka settings take the prefix `kafka.`, for example `kafka.client.id`"));
        }
        let group = parse_scale_out(options, &subscription)?;
        // With `scaleOut`, `kafka.group.id` names the group; alone, it keeps Spark's meaning (ACLs only).
        let ignored = options
            .keys()
            .filter(|k| SPARK_ONLY.contains(&k.as_str()) && !(group.is_some() && *k == "kafka.group.id"))
            .cloned()
            .collect();

        let include_headers = parse_bool(options, "includeHeaders", false)?;
        let decoding = crate::message::MessageDecoding::parse(options)?;
        let schema = crate::source::kafka::kafka_schema(include_headers);
        let schema = match &decoding {
            Some(d) => d.output_schema(&schema)?,
            None => schema,
        };
        Ok(KafkaSourceOptions {
            client: KafkaClientConfig::from_options(options),
            subscription,
            starting_offsets,
            max_offsets_per_trigger: parse_positive(options, "maxOffsetsPerTrigger")?,
            fail_on_data_loss: parse_bool(options, "failOnDataLoss", true)?,
            include_headers,
            decoding,
            schema,
            group,
            ignored,
        })
    }
}

fn parse_assign(json: &str) -> Result<BTreeMap<String, Vec<i32>>> {
    let parsed: BTreeMap<String, Vec<i32>> = serde_json::from_str(json).map_err(|e| {
        Error::option("assign", format!("`assign` must be JSON like {{\"topic1\":[0,1]}}: {e}"))
    })?;
    if parsed.values().all(|p| p.is_empty()) {
        return Err(Error::option("assign", "`assign` names no partition"));
    }
    Ok(parsed)
}

/// `{"topic":{"0":23,"1":-2}}`, as Spark's `startingOffsets`.
pub fn parse_offsets_json(json: &str, what: &str) -> Result<OffsetMap> {
    let raw: BTreeMap<String, BTreeMap<String, i64>> = serde_json::from_str(json).map_err(|e| {
        Error::option(what, format!("`{what}` must be JSON like {{\"topic1\":{{\"0\":23,\"1\":-2}}}}: {e}"))
    })?;
    let mut out = BTreeMap::new();
    for (topic, parts) in raw {
        let mut m = BTreeMap::new();
        for (p, off) in parts {
            let p: i32 = p
                .parse()
                .map_err(|_| Error::option(what, format!("`{what}`: partition \"{p}\" of topic `{topic}` is not a number")))?;
            if off < -2 {
                return Err(Error::option(what, format!("`{what}`: offset {off} is not valid (use -2 for earliest, -1 for latest)")));
            }
            m.insert(p, off);
        }
        out.insert(topic, m);
    }
    Ok(out)
}

/// How the Kafka sink delivers (the `guarantee` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Idempotent producer, acks=all; a batch in flight at a crash is written again.
    AtLeastOnce,
    /// One Kafka transaction per micro-batch, committed with the batch's record.
    ExactlyOnce,
}

/// What the Kafka sink needs to know before the first row.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSinkOptions {
    pub client: KafkaClientConfig,
    /// The `topic` option; when set it wins over a `topic` column.
    pub topic: Option<String>,
    pub include_headers: bool,
    pub guarantee: Guarantee,
    /// `value.format` (and `value.schema`): how values made of columns are
    /// written (JSON without it).
    pub(crate) value_encoding: Option<crate::message::ValueEncoding>,
    pub ignored: Vec<String>,
}

impl KafkaSinkOptions {
    pub fn parse(options: &Options) -> Result<Self> {
        require_bootstrap(options)?;
        reject_managed(
            options,
            &[
                ("kafka.key.serializer", "keys are written as bytes or UTF-8 text as they are"),
                ("kafka.value.serializer", "values are written as bytes or UTF-8 text as they are"),
                ("kafka.interceptor.classes", "interceptors are a Java client feature"),
                ("kafka.transactional.id", "transactions are managed by the `guarantee` option"),
            ],
        )?;
        let topic = match options.get("topic").map(|t| t.trim()) {
            Some("") => return Err(Error::option("topic", "the `topic` option is empty")),
            Some(t) => Some(t.to_string()),
            None => None,
        };
        let mut known = vec!["topic", "includeHeaders", "guarantee"];
        known.extend_from_slice(SPARK_ONLY);
        known.extend_from_slice(&crate::message::SINK_OPTIONS);
        if let Some(first) = unknown_options(options, &known).first() {
            return Err(Error::option(first, format!("unknown Kafka sink option `{first}`"))
                .with_hint("librdkafka settings take the prefix `kafka.`, for example `kafka.linger.ms`"));
        }
        let guarantee = match options.get("guarantee").map(|s| s.trim()) {
            None | Some("at-least-once") => Guarantee::AtLeastOnce,
            Some("exactly-once") => Guarantee::ExactlyOnce,
            Some(other) => {
                return Err(Error::option("guarantee", format!("`guarantee` must be \"at-least-once\" or \"exactly-once\", not \"{other}\"")))
            }
        };
        if guarantee == Guarantee::ExactlyOnce {
            // A transactional producer must be idempotent and wait for every replica.
            for (key, wanted) in [("kafka.enable.idempotence", &["true"][..]), ("kafka.acks", &["all", "-1"][..])] {
                if let Some(v) = options.get(key).filter(|v| !wanted.contains(&v.trim().to_ascii_lowercase().as_str())) {
                    return Err(Error::option(key, format!("`{key}` can't be \"{v}\" with `guarantee = \"exactly-once\"`"))
                        .with_hint(format!("exactly-once needs `{key} = \"{}\"`; leave it out", wanted[0])));
                }
            }
        }
        let ignored = options.keys().filter(|k| SPARK_ONLY.contains(&k.as_str())).cloned().collect();
        Ok(KafkaSinkOptions {
            client: KafkaClientConfig::from_options(options),
            topic,
            include_headers: parse_bool(options, "includeHeaders", false)?,
            guarantee,
            value_encoding: crate::message::ValueEncoding::parse(options)?,
            ignored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::options_of as opts;

    #[test]
    fn scale_out_joins_the_named_group_and_says_what_it_needs() {
        let base = [("kafka.bootstrap.servers", "h:1"), ("subscribe", "t"), ("scaleOut", "group")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            KafkaSourceOptions::parse(&opts(&pairs))
        };
        let o = with(&[("kafka.group.id", "g"), ("kafka.group.instance.id", "pod-1")]).unwrap();
        let group = o.group.unwrap();
        assert_eq!((group.group_id.as_str(), group.instance_id.as_deref()), ("g", Some("pod-1")));
        assert!(o.ignored.is_empty(), "kafka.group.id means something here: {:?}", o.ignored);
        let option_of = |e: Error| e.option.unwrap();
        assert_eq!(option_of(with(&[]).unwrap_err()), "kafka.group.id");
        assert_eq!(option_of(with(&[("kafka.group.id", "g"), ("kafka.group.protocol", "consumer")]).unwrap_err()), "kafka.group.protocol");
        assert_eq!(
            option_of(with(&[("kafka.group.id", "g"), ("kafka.partition.assignment.strategy", "cooperative-sticky")]).unwrap_err()),
            "kafka.partition.assignment.strategy"
        );
        assert_eq!(option_of(with(&[("kafka.group.id", "g"), ("kafka.isolation.level", "read_uncommitted")]).unwrap_err()), "kafka.isolation.level");
        assert_eq!(option_of(with(&[("kafka.group.id", "g"), ("kafka.group.instance.id", "../x")]).unwrap_err()), "kafka.group.instance.id");
        let assign = opts(&[("kafka.bootstrap.servers", "h:1"), ("assign", r#"{"t":[0]}"#), ("scaleOut", "group"), ("kafka.group.id", "g")]);
        assert_eq!(option_of(KafkaSourceOptions::parse(&assign).unwrap_err()), "assign");
        let odd = opts(&[("kafka.bootstrap.servers", "h:1"), ("subscribe", "t"), ("scaleOut", "yes"), ("kafka.group.id", "g")]);
        assert_eq!(option_of(KafkaSourceOptions::parse(&odd).unwrap_err()), "scaleOut");
        // Without scaleOut, kafka.group.id keeps Spark's meaning: ignored.
        let plain = KafkaSourceOptions::parse(&opts(&[("kafka.bootstrap.servers", "h:1"), ("subscribe", "t"), ("kafka.group.id", "g")])).unwrap();
        assert!(plain.group.is_none() && plain.ignored == vec!["kafka.group.id".to_string()]);
    }

    #[test]
    fn source_needs_bootstrap_servers() {
        let e = KafkaSourceOptions::parse(&opts(&[("subscribe", "t")])).unwrap_err();
        assert!(e.message.contains("kafka.bootstrap.servers"));
        assert_eq!(e.arg.as_deref(), Some("options"));
    }

    #[test]
    fn source_parses_spark_options() {
        let o = KafkaSourceOptions::parse(&opts(&[
            ("kafka.bootstrap.servers", "h:1"),
            ("subscribe", "a, b"),
            ("startingOffsets", "{\"a\":{\"0\":5,\"1\":-2}}"),
            ("maxOffsetsPerTrigger", "1000"),
            ("failOnDataLoss", "false"),
        ]))
        .unwrap();
        assert_eq!(o.subscription, Subscription::Topics(vec!["a".into(), "b".into()]));
        assert_eq!(o.max_offsets_per_trigger, Some(1000));
        assert!(!o.fail_on_data_loss);
        match o.starting_offsets {
            StartingOffsets::Specific(m) => assert_eq!(m["a"][&1], -2),
            other => panic!("{other:?}"),
        }
        assert_eq!(o.client.bootstrap_servers(), "h:1");
    }

    #[test]
    fn source_rejects_what_spark_rejects() {
        for key in ["kafka.auto.offset.reset", "kafka.enable.auto.commit", "kafka.value.deserializer"] {
            let e = KafkaSourceOptions::parse(&opts(&[("kafka.bootstrap.servers", "h:1"), ("subscribe", "t"), (key, "x")]))
                .unwrap_err();
            assert!(e.message.contains(key), "{e}");
        }
        let e = KafkaSourceOptions::parse(&opts(&[("kafka.bootstrap.servers", "h:1"), ("subscribe", "t"), ("assign", "{}")]))
            .unwrap_err();
        assert!(e.message.contains("only one of"));
        let e = KafkaSourceOptions::parse(&opts(&[("kafka.bootstrap.servers", "h:1"), ("subscribe", "t"), ("maxOffsetsPerTrigger", "1000.0")]))
            .unwrap_err();
        assert!(e.message.contains("positive whole number"));
    }

    #[test]
    fn ignored_options_are_dropped_and_managed_settings_win() {
        let o = KafkaSourceOptions::parse(&opts(&[
            ("kafka.bootstrap.servers", "h:1"),
            ("subscribe", "t"),
            ("kafka.group.id", "shared-by-two-queries"),
        ]))
        .unwrap();
        assert_eq!(o.ignored, vec!["kafka.group.id".to_string()]);
        assert!(!o.client.properties.contains_key("group.id"), "an ignored option reached librdkafka");
        let mut user = o.client.clone();
        user.properties.insert("group.id".into(), "theirs".into());
        let config = user.to_rdkafka(&[("group.id", "default")], &[("group.id", "streamlyr-eos-q")]);
        assert_eq!(config.get("group.id"), Some("streamlyr-eos-q"));
        let config = user.to_rdkafka(&[("group.id", "default")], &[]);
        assert_eq!(config.get("group.id"), Some("theirs"));
    }

    #[test]
    fn exactly_once_refuses_settings_that_would_break_it() {
        for (key, value) in [("kafka.enable.idempotence", "false"), ("kafka.acks", "1")] {
            let e = KafkaSinkOptions::parse(&opts(&[
                ("kafka.bootstrap.servers", "h:1"),
                ("guarantee", "exactly-once"),
                (key, value),
            ]))
            .unwrap_err();
            assert_eq!(e.option.as_deref(), Some(key), "{e}");
        }
        KafkaSinkOptions::parse(&opts(&[("kafka.bootstrap.servers", "h:1"), ("guarantee", "exactly-once"), ("kafka.acks", "all")]))
            .unwrap();
        KafkaSinkOptions::parse(&opts(&[("kafka.bootstrap.servers", "h:1"), ("kafka.acks", "1")])).unwrap();
        for key in ["kafka.enable.auto.offset.store", "kafka.enable.partition.eof"] {
            let e = KafkaSourceOptions::parse(&opts(&[("kafka.bootstrap.servers", "h:1"), ("subscribe", "t"), (key, "true")]))
                .unwrap_err();
            assert_eq!(e.option.as_deref(), Some(key));
        }
    }

    #[test]
    fn unknown_options_are_errors_and_spark_only_ones_are_reported() {
        let e = KafkaSinkOptions::parse(&opts(&[("kafka.bootstrap.servers", "h:1"), ("topik", "t")])).unwrap_err();
        assert!(e.message.contains("topik"));
        let o = KafkaSinkOptions::parse(&opts(&[("kafka.bootstrap.servers", "h:1"), ("topic", "t"), ("minPartitions", "3")]))
            .unwrap();
        assert_eq!(o.ignored, vec!["minPartitions".to_string()]);
    }

    #[test]
    fn secrets_are_redacted() {
        let o = KafkaSinkOptions::parse(&opts(&[
            ("kafka.bootstrap.servers", "h:1"),
            ("kafka.sasl.password", "hunter2"),
            ("kafka.ssl.key.password", "hunter3"),
        ]))
        .unwrap();
        let shown = format!("{:?} {:?}", o, o.client.describe());
        assert!(!shown.contains("hunter2") && !shown.contains("hunter3"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
