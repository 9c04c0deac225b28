//! The properties each fuzz target checks, one function per target, shared by the libFuzzer binaries
//! (`fuzz_targets/`) and by the stable-toolchain regression test `engine/tests/fuzz_corpus.rs`, which
//! replays every checked-in corpus and crash file through the same functions.
//!
//! Every function takes arbitrary bytes and must return without panicking; the `assert!`s inside
//! state invariants the decoders promise (bounds of borrowed slices, encode/decode round trips).

use tern_engine::broker::{batch, BrokerConfig};
use tern_net::frame;
use tern_net::header::{
    CommandHeader, ConsumerSendMsgBackRequestHeader, GetMaxOffsetRequestHeader,
    PullMessageRequestHeader, QueryConsumerOffsetRequestHeader, QueryMessageRequestHeader,
    SendMessageRequestHeader, SendMessageRequestHeaderV2, UpdateConsumerOffsetRequestHeader,
    ViewMessageRequestHeader,
};
use tern_net::{RemotingCommand, SerializeType};
use tern_store::message::{check_record, RecordCheck, StoredMessage};

/// A target's property: takes arbitrary bytes, panics on a violation.
pub type Check = fn(&[u8]);

/// Every target, by name: the name is both the fuzz binary and the corpus directory.
pub const TARGETS: &[(&str, Check)] = &[
    ("frame_decode", frame_decode),
    ("header_json", header_json),
    ("header_rocketmq", header_rocketmq),
    ("stored_message", stored_message),
    ("batch_decode", batch_decode),
    ("message_properties", message_properties),
    ("broker_properties", broker_properties),
];

/// A byte stream into the frame splitter and decoder: splitting and decoding never panic, a decoded
/// frame survives an encode/decode round trip unchanged, and typed headers read from its fields
/// fail cleanly.
pub fn frame_decode(data: &[u8]) {
    let _ = frame::next_frame_len(data, frame::DEFAULT_MAX_FRAME_LEN);
    let _ = frame::next_frame_len(data, 64);
    if let Ok(cmd) = frame::decode(data) {
        round_trip(&cmd);
        typed_headers(&cmd);
    }
}

/// Arbitrary bytes as a JSON header inside a well-formed frame.
pub fn header_json(data: &[u8]) {
    header_of_type(SerializeType::Json, data);
}

/// Arbitrary bytes as a ROCKETMQ binary header inside a well-formed frame.
pub fn header_rocketmq(data: &[u8]) {
    header_of_type(SerializeType::RocketMq, data);
}

fn header_of_type(serialize_type: SerializeType, header: &[u8]) {
    if header.len() > frame::MAX_HEADER_LEN {
        return;
    }
    let mut bytes = Vec::with_capacity(header.len() + 12);
    bytes.extend_from_slice(&((4 + header.len() + 4) as u32).to_be_bytes());
    let word = (u32::from(serialize_type.code()) << 24) | header.len() as u32;
    bytes.extend_from_slice(&word.to_be_bytes());
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(b"body");
    assert_eq!(
        frame::next_frame_len(&bytes, usize::MAX),
        Ok(Some(bytes.len()))
    );
    match frame::decode(&bytes) {
        Ok(cmd) => {
            assert_eq!(cmd.serialize_type, serialize_type);
            assert_eq!(cmd.body, b"body");
            round_trip(&cmd);
            typed_headers(&cmd);
        }
        // A well-delimited frame only ever fails in its header.
        Err(frame::DecodeError::Header(e)) => assert_eq!(e.serialize_type, serialize_type),
        Err(frame::DecodeError::Frame(e)) => panic!("frame error on a sound frame: {e}"),
    }
}

fn round_trip(cmd: &RemotingCommand) {
    let mut out = Vec::new();
    frame::encode(cmd, &mut out);
    assert_eq!(frame::next_frame_len(&out, usize::MAX), Ok(Some(out.len())));
    let again = frame::decode(&out).expect("a re-encoded frame decodes");
    assert_eq!(&again, cmd);
}

fn typed_headers(cmd: &RemotingCommand) {
    fn try_one<H: CommandHeader>(cmd: &RemotingCommand) {
        if let Ok(h) = cmd.decode_header::<H>() {
            // What was read writes back into fields that read the same.
            let mut ext = tern_net::ExtFields::new();
            h.write_ext_fields(&mut ext);
            assert!(H::from_ext_fields(&ext).is_ok());
        }
    }
    try_one::<SendMessageRequestHeader>(cmd);
    try_one::<SendMessageRequestHeaderV2>(cmd);
    try_one::<PullMessageRequestHeader>(cmd);
    try_one::<QueryConsumerOffsetRequestHeader>(cmd);
    try_one::<UpdateConsumerOffsetRequestHeader>(cmd);
    try_one::<GetMaxOffsetRequestHeader>(cmd);
    try_one::<ViewMessageRequestHeader>(cmd);
    try_one::<QueryMessageRequestHeader>(cmd);
    try_one::<ConsumerSendMsgBackRequestHeader>(cmd);
}

/// Bytes at a CommitLog position: classification never panics and a decoded record's slices lie
/// within its TOTALSIZE.
pub fn stored_message(data: &[u8]) {
    for verify_crc in [false, true] {
        match check_record(data, verify_crc) {
            RecordCheck::Message(msg) => {
                assert!(msg.total_size <= data.len());
                let within = |s: &[u8]| {
                    let start = s.as_ptr() as usize - data.as_ptr() as usize;
                    start + s.len() <= msg.total_size
                };
                assert!(within(msg.body) && within(msg.properties));
                assert!(within(msg.topic.as_bytes()));
                let _ = (
                    msg.tags(),
                    msg.keys().count(),
                    msg.uniq_key(),
                    msg.tag_hash(),
                );
                assert_eq!(StoredMessage::decode_checked(data, verify_crc), Ok(msg));
            }
            RecordCheck::Blank { len } => assert!(len >= 8),
            RecordCheck::Invalid(_) => {}
        }
    }
}

/// A SEND_BATCH_MESSAGE body: splitting never panics and the items tile the body exactly.
pub fn batch_decode(data: &[u8]) {
    if let Ok(items) = batch::decode_batch(data) {
        let used: usize = items
            .iter()
            .map(|i| batch::FIXED_LEN + i.body.len() + i.properties.len())
            .sum();
        assert_eq!(used, data.len());
        for item in &items {
            let _ = tern_store::properties::parse(item.properties).count();
        }
    }
}

/// An encoded property string: parsing yields only non-empty, separator-free names and values, and
/// the pairs re-encode to a string that parses to the same pairs.
pub fn message_properties(data: &[u8]) {
    use tern_store::properties;
    let pairs: Vec<(&str, &str)> = properties::parse(data).collect();
    for (name, value) in &pairs {
        assert!(!name.is_empty() && !value.is_empty());
        assert!(!name.contains('\u{1}') && !name.contains('\u{2}') && !value.contains('\u{2}'));
    }
    let _ = properties::get(data, properties::TAGS);
    let mut out = Vec::new();
    properties::encode(pairs.iter().copied(), &mut out);
    let again: Vec<(&str, &str)> = properties::parse(&out).collect();
    assert_eq!(again, pairs);
}

/// A broker.properties file (ISO-8859-1, as the broker reads it): parsing never panics, values are
/// applied or rejected with a typed error, and the effective settings the broker prints (`-p`) are
/// accepted back.
pub fn broker_properties(data: &[u8]) {
    thread_local! {
        // The default looks up the host's address; build it once.
        static DEFAULT: BrokerConfig = BrokerConfig::default();
    }
    let fresh = || DEFAULT.with(BrokerConfig::clone);
    let text: String = data.iter().map(|&b| b as char).collect();
    let mut config = fresh();
    let mut applied = false;
    for p in tern_engine::properties::parse(&text) {
        applied |= matches!(
            config.set(&p.key, &p.value),
            Ok(tern_engine::broker::config::KeyUse::Applied)
        );
    }
    // Most inputs set nothing; the defaults' round trip is a unit test of BrokerConfig and part of any
    // input that sets a key. Printing and re-applying the ~80 settings (a few hundred allocations,
    // each slow under ASan) is the bulk of the work per input.
    if !applied {
        return;
    }
    let printed = config.to_properties();
    let mut again = fresh();
    for p in tern_engine::properties::parse(&printed) {
        if let Err(e) = again.set(&p.key, &p.value) {
            panic!(
                "printed setting {}={:?} not accepted back: {e}",
                p.key, p.value
            );
        }
    }
    assert_eq!(again.to_properties(), printed);
}
