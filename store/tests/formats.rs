//! Byte-exact and behavioural tests of the store's on-disk formats: stored messages, properties,
//! message ids, ConsumeQueue files and IndexFiles.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use proptest::prelude::*;
use tern_store::consume_queue::{tag_hash_code, ConsumeQueue, CqEntry, CqError, CQ_ENTRY_SIZE};
use tern_store::index::{format_timestamp_name, IndexService};
use tern_store::message::{
    check_record, encode_blank, store_timestamp_pos, sys_flag, DecodeError, EncodeError,
    MessageDraft, RecordCheck, StoredMessage, BLANK_MAGIC_CODE, MESSAGE_MAGIC_CODE,
    PHYSICAL_OFFSET_POS, QUEUE_OFFSET_POS,
};
use tern_store::message_id::MessageId;
use tern_store::properties;

/// Bytes of a hex string, ignoring whitespace and `|` separators.
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn encode(draft: &MessageDraft<'_>, queue_offset: i64, phys: i64, store_ts: i64) -> Vec<u8> {
    let len = draft.stored_len().unwrap();
    // Oversized, pre-filled buffer: encoding must touch exactly `len` bytes.
    let mut out = vec![0xEE; len + 5];
    assert_eq!(
        draft.encode_into(queue_offset, phys, store_ts, &mut out),
        Ok(len)
    );
    assert_eq!(&out[len..], &[0xEE; 5]);
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------------------------
// Stored message layout
// ---------------------------------------------------------------------------------------------

fn ipv4_draft() -> MessageDraft<'static> {
    MessageDraft {
        topic: "T1",
        queue_id: 3,
        flag: 7,
        body: b"hi",
        properties: b"TAGS\x01A\x02",
        sys_flag: 0,
        born_timestamp: 0x0102_0304_0506_0708,
        born_host: addr("10.0.0.1:5000"),
        store_host: addr("10.0.0.2:10911"),
        reconsume_times: 1,
        prepared_transaction_offset: 0,
    }
}

#[test]
fn ipv4_record_is_byte_exact() {
    let crc = crc32fast::hash(b"hi") & 0x7fff_ffff;
    assert_eq!(crc, 0x5893_2aac);
    let expected = hex("00000066 | DAA320A7 | 58932AAC | 00000003 | 00000007
         0000000000000009 | 0000000000000100 | 00000000 | 0102030405060708
         0A000001 00001388 | 1122334455667788 | 0A000002 00002A9F
         00000001 | 0000000000000000 | 00000002 6869 | 02 5431 | 0007 54414753 01 41 02");
    let draft = ipv4_draft();
    assert_eq!(draft.stored_len(), Ok(102));
    let bytes = encode(&draft, 9, 0x100, 0x1122_3344_5566_7788);
    assert_eq!(bytes, expected);
    // Field positions exported for in-place patching.
    assert_eq!(bytes[QUEUE_OFFSET_POS..][..8], 9i64.to_be_bytes());
    assert_eq!(bytes[PHYSICAL_OFFSET_POS..][..8], 0x100i64.to_be_bytes());
    assert_eq!(
        bytes[store_timestamp_pos(0)..][..8],
        0x1122_3344_5566_7788i64.to_be_bytes()
    );

    let msg = StoredMessage::decode(&bytes).unwrap();
    assert_eq!(msg.total_size, 102);
    assert_eq!(msg.body_crc, 0x5893_2aac);
    assert_eq!((msg.queue_id, msg.flag, msg.queue_offset), (3, 7, 9));
    assert_eq!(msg.physical_offset, 0x100);
    assert_eq!(msg.born_host, addr("10.0.0.1:5000"));
    assert_eq!(msg.store_host, addr("10.0.0.2:10911"));
    assert_eq!(msg.store_timestamp, 0x1122_3344_5566_7788);
    assert_eq!((msg.topic, msg.body), ("T1", &b"hi"[..]));
    assert_eq!(msg.tags(), Some("A"));
    assert_eq!(msg.tag_hash(), tag_hash_code("A"));
}

#[test]
fn ipv6_host_record_sets_sys_flag_bits() {
    let draft = MessageDraft {
        topic: "T",
        queue_id: 0,
        flag: 0,
        body: b"",
        properties: b"",
        // The caller's claim that the store host is IPv6 is overridden by the addresses.
        sys_flag: sys_flag::TRANSACTION_PREPARED_TYPE | sys_flag::STOREHOSTADDRESS_V6,
        born_timestamp: 0x18C_0000_0000,
        born_host: addr("[::1]:5000"),
        store_host: addr("127.0.0.1:10911"),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    };
    assert_eq!(draft.stored_sys_flag(), 0x14);
    let expected = hex("00000068 | DAA320A7 | 00000000 | 00000000 | 00000000
         0000000000000001 | 0100000000000040 | 00000014 | 0000018C00000000
         00000000000000000000000000000001 00001388 | 0000018C000003E8 | 7F000001 00002A9F
         00000000 | 0000000000000000 | 00000000 | 01 54 | 0000");
    let bytes = encode(&draft, 1, (1 << 56) | 0x40, 0x18C_0000_03E8);
    assert_eq!(bytes, expected);
    assert_eq!(
        bytes[store_timestamp_pos(0x14)..][..8],
        0x18C_0000_03E8i64.to_be_bytes()
    );
    let msg = StoredMessage::decode(&bytes).unwrap();
    assert_eq!(msg.sys_flag, 0x14);
    assert_eq!(msg.born_host, addr("[::1]:5000"));
    assert_eq!(msg.store_host, addr("127.0.0.1:10911"));
    assert_eq!(
        sys_flag::transaction_type(msg.sys_flag),
        sys_flag::TRANSACTION_PREPARED_TYPE
    );
    assert_eq!(msg.tags(), None);
    assert_eq!(msg.tag_hash(), 0);
    assert_eq!(msg.keys().count(), 0);
}

/// The first SEND_MESSAGE of rocketmq-client-rust in `/work/shared/captures/rust-produce-json.txt`.
#[test]
fn captured_client_message_round_trips() {
    let props =
        "KEYS\u{1}KEY_produce_cap1_0\u{2}UNIQ_KEY\u{1}C00002026B10AC4C820C7668659D0000\u{2}\
                 TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}";
    let draft = MessageDraft {
        topic: "RMQCHK_produce_cap1",
        queue_id: 2,
        flag: 0,
        body: b"rmq-check produce cap1 #0",
        properties: props.as_bytes(),
        sys_flag: 0,
        born_timestamp: 1_795_477_753_245,
        born_host: addr("127.0.0.1:49842"),
        store_host: addr("127.0.0.1:10911"),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    };
    assert_eq!(draft.stored_len(), Ok(91 + 25 + 19 + 86));
    let bytes = encode(&draft, 0, 0, 1_795_477_753_250);
    let msg = StoredMessage::decode(&bytes).unwrap();
    assert_eq!(msg.total_size, 221);
    assert_eq!(
        msg.body_crc,
        (crc32fast::hash(draft.body) & 0x7fff_ffff) as i32
    );
    assert_eq!(msg.topic, "RMQCHK_produce_cap1");
    assert_eq!(msg.queue_id, 2);
    assert_eq!(msg.flag, 0);
    assert_eq!(msg.queue_offset, 0);
    assert_eq!(msg.physical_offset, 0);
    assert_eq!(msg.sys_flag, 0);
    assert_eq!(msg.born_timestamp, 1_795_477_753_245);
    assert_eq!(msg.born_host, draft.born_host);
    assert_eq!(msg.store_timestamp, 1_795_477_753_250);
    assert_eq!(msg.store_host, draft.store_host);
    assert_eq!(msg.reconsume_times, 0);
    assert_eq!(msg.prepared_transaction_offset, 0);
    assert_eq!(msg.body, b"rmq-check produce cap1 #0");
    assert_eq!(msg.properties, props.as_bytes());
    assert_eq!(msg.tags(), Some("TagA"));
    assert_eq!(msg.tag_hash(), 2_598_919);
    assert_eq!(msg.keys().collect::<Vec<_>>(), vec!["KEY_produce_cap1_0"]);
    assert_eq!(msg.uniq_key(), Some("C00002026B10AC4C820C7668659D0000"));
    assert_eq!(msg.property(properties::WAIT), Some("true"));
    // The broker in the capture answered with this offset message id for the record at offset 0.
    let id = MessageId::new(msg.store_host, msg.physical_offset);
    assert_eq!(id.to_string(), "7F00000100002A9F0000000000000000");
}

#[test]
fn keys_split_on_spaces_skipping_empty() {
    let mut props = Vec::new();
    properties::encode([(properties::KEYS, " a  b c ")], &mut props);
    let draft = MessageDraft {
        properties: &props,
        ..ipv4_draft()
    };
    let bytes = encode(&draft, 0, 0, 0);
    let msg = StoredMessage::decode(&bytes).unwrap();
    assert_eq!(msg.keys().collect::<Vec<_>>(), vec!["a", "b", "c"]);
}

#[test]
fn encode_rejects_fields_too_long_for_the_layout() {
    let long_topic = "t".repeat(128);
    let long_props = vec![b'x'; 32768];
    let draft = ipv4_draft();
    assert_eq!(
        MessageDraft {
            topic: &long_topic,
            ..draft
        }
        .stored_len(),
        Err(EncodeError::TopicLength(128))
    );
    assert_eq!(
        MessageDraft { topic: "", ..draft }.stored_len(),
        Err(EncodeError::TopicLength(0))
    );
    assert_eq!(
        MessageDraft {
            properties: &long_props,
            ..draft
        }
        .stored_len(),
        Err(EncodeError::PropertiesTooLong(32768))
    );
    let mut small = [0u8; 101];
    assert_eq!(
        draft.encode_into(0, 0, 0, &mut small),
        Err(EncodeError::BufferTooSmall {
            need: 102,
            have: 101
        })
    );
    let max_topic = "t".repeat(127);
    assert!(MessageDraft {
        topic: &max_topic,
        ..draft
    }
    .stored_len()
    .is_ok());
}

#[test]
fn blank_and_unwritten_records_are_recognised() {
    let mut buf = [0xAAu8; 16];
    assert_eq!(encode_blank(4096, &mut buf), Some(8));
    assert_eq!(&buf[..8], &hex("00001000 CBD43194")[..]);
    assert_eq!(
        check_record(&buf[..8], true),
        RecordCheck::Blank { len: 4096 }
    );
    assert_eq!(BLANK_MAGIC_CODE, 0xcbd4_3194_u32 as i32);
    assert_eq!(MESSAGE_MAGIC_CODE, 0xdaa3_20a7_u32 as i32);
    assert_eq!(encode_blank(8, &mut buf[..7]), None);
    assert_eq!(
        check_record(&[0u8; 64], true),
        RecordCheck::Invalid(DecodeError::Unwritten)
    );
    // A blank is not a message.
    assert!(StoredMessage::decode(&buf).is_err());
    assert_eq!(
        check_record(&hex("00000004 CBD43194"), true),
        RecordCheck::Invalid(DecodeError::BadTotalSize(4))
    );
}

#[test]
fn check_record_skips_crc_only_when_asked() {
    let mut bytes = encode(&ipv4_draft(), 0, 0, 0);
    bytes[88] ^= 0x01; // first body byte
    assert!(matches!(
        check_record(&bytes, true),
        RecordCheck::Invalid(DecodeError::BodyCrc { .. })
    ));
    assert!(matches!(
        check_record(&bytes, false),
        RecordCheck::Message(_)
    ));
}

/// Re-encodes a decoded record; a consistent decode reproduces the input bytes exactly.
fn reencode(msg: &StoredMessage<'_>) -> Vec<u8> {
    let draft = MessageDraft {
        topic: msg.topic,
        queue_id: msg.queue_id,
        flag: msg.flag,
        body: msg.body,
        properties: msg.properties,
        sys_flag: msg.sys_flag,
        born_timestamp: msg.born_timestamp,
        born_host: msg.born_host,
        store_host: msg.store_host,
        reconsume_times: msg.reconsume_times,
        prepared_transaction_offset: msg.prepared_transaction_offset,
    };
    encode(
        &draft,
        msg.queue_offset,
        msg.physical_offset,
        msg.store_timestamp,
    )
}

fn assert_total_decode(bytes: &[u8]) {
    for verify in [true, false] {
        if let RecordCheck::Message(msg) = check_record(bytes, verify) {
            let again = reencode(&msg);
            if verify {
                assert_eq!(&again[..], &bytes[..msg.total_size]);
            } else {
                // Without CRC checking only the CRC field may differ.
                assert_eq!(&again[..8], &bytes[..8]);
                assert_eq!(&again[12..], &bytes[12..msg.total_size]);
            }
        }
    }
}

#[test]
fn every_truncation_and_bit_flip_is_an_error_or_consistent() {
    let props = "KEYS\u{1}k1 k2\u{2}TAGS\u{1}TagA\u{2}";
    let records = [
        encode(&ipv4_draft(), 9, 0x100, 5),
        encode(
            &MessageDraft {
                born_host: addr("[2001:db8::7]:1"),
                store_host: addr("[::1]:10911"),
                properties: props.as_bytes(),
                ..ipv4_draft()
            },
            1,
            2,
            3,
        ),
    ];
    for record in &records {
        for len in 0..record.len() {
            match check_record(&record[..len], true) {
                RecordCheck::Invalid(_) => {}
                other => panic!("truncation to {len} decoded as {other:?}"),
            }
        }
        for pos in 0..record.len() {
            for mask in [0x01u8, 0x80, 0xFF] {
                let mut flipped = record.clone();
                flipped[pos] ^= mask;
                assert_total_decode(&flipped);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        assert_total_decode(&bytes);
    }

    #[test]
    fn random_drafts_round_trip(
        topic in "[A-Za-z0-9_%|-]{1,127}",
        body in proptest::collection::vec(any::<u8>(), 0..200),
        tags in "[A-Za-z]{1,10}",
        queue_id in any::<i32>(),
        queue_offset in any::<i64>(),
        v6 in any::<bool>(),
        port in any::<u16>(),
    ) {
        let mut props = Vec::new();
        properties::encode([(properties::TAGS, tags.as_str())], &mut props);
        let host = if v6 { SocketAddr::new("::2".parse().unwrap(), port) } else { SocketAddr::new([1, 2, 3, 4].into(), port) };
        let draft = MessageDraft { topic: &topic, body: &body, properties: &props, queue_id, born_host: host, ..ipv4_draft() };
        let bytes = encode(&draft, queue_offset, 77, 88);
        let msg = StoredMessage::decode(&bytes).unwrap();
        prop_assert_eq!(msg.topic, topic.as_str());
        prop_assert_eq!(msg.body, &body[..]);
        prop_assert_eq!(msg.queue_offset, queue_offset);
        prop_assert_eq!(msg.born_host, host);
        prop_assert_eq!(msg.tags(), Some(tags.as_str()));
        prop_assert_eq!(reencode(&msg), bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// Tag hashes
// ---------------------------------------------------------------------------------------------

#[test]
fn tag_hash_matches_java_string_hash_code() {
    assert_eq!(tag_hash_code("TagA"), 2_598_919);
    assert_eq!(tag_hash_code(""), 0);
    // U+1F600 is the surrogate pair D83D DE00: 0xD83D * 31 + 0xDE00 = 1_772_899.
    assert_eq!(tag_hash_code("\u{1F600}"), 1_772_899);
    // Non-ASCII BMP characters hash by their UTF-16 unit, not their UTF-8 bytes.
    assert_eq!(tag_hash_code("é标签"), 1_081_088);
    // Overflow wraps like Java's int arithmetic and the result is sign-extended.
    assert_eq!(tag_hash_code("polygenelubricants"), i64::from(i32::MIN));
}

// ---------------------------------------------------------------------------------------------
// ConsumeQueue
// ---------------------------------------------------------------------------------------------

fn cq_entry(i: i64) -> CqEntry {
    CqEntry {
        phys_offset: i * 100,
        size: 100,
        tag_hash: i,
    }
}

fn queue_files(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root.join("consumequeue/T/1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn filled_queue(root: &Path, n: i64) -> ConsumeQueue {
    let mut cq = ConsumeQueue::open(root, "T", 1, 4).unwrap();
    for i in 0..n {
        cq.append(i, cq_entry(i)).unwrap();
    }
    cq.flush().unwrap();
    cq
}

#[test]
fn cq_appends_across_files_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let cq = filled_queue(dir.path(), 10);
    assert_eq!((cq.min_offset(), cq.max_offset()), (0, 10));
    assert_eq!(cq.last_phys_end(), Some(1000));
    assert_eq!(cq.get(10), None);
    assert_eq!(cq.get(-1), None);
    drop(cq);
    assert_eq!(
        queue_files(dir.path()),
        [
            "00000000000000000000",
            "00000000000000000080",
            "00000000000000000160"
        ]
    );
    let raw = fs::read(dir.path().join("consumequeue/T/1/00000000000000000080")).unwrap();
    assert_eq!(raw.len(), 4 * CQ_ENTRY_SIZE);
    assert_eq!(
        &raw[..20],
        &hex("0000000000000190 00000064 0000000000000004")[..]
    );

    let cq = ConsumeQueue::open(dir.path(), "T", 1, 4).unwrap();
    assert_eq!((cq.min_offset(), cq.max_offset()), (0, 10));
    for i in 0..10 {
        assert_eq!(cq.get(i), Some(cq_entry(i)));
    }
    let empty = ConsumeQueue::open(dir.path(), "T", 2, 4).unwrap();
    assert_eq!(
        (
            empty.min_offset(),
            empty.max_offset(),
            empty.last_phys_end()
        ),
        (0, 0, None)
    );
}

#[test]
fn cq_rejects_unsafe_topics_and_foreign_geometry() {
    let dir = tempfile::tempdir().unwrap();
    for topic in ["", "../etc", "a/b", "a.b", "t\u{e9}"] {
        assert!(
            matches!(
                ConsumeQueue::open(dir.path(), topic, 0, 4),
                Err(CqError::InvalidTopic(_))
            ),
            "{topic:?}"
        );
    }
    assert!(ConsumeQueue::open(dir.path(), "%RETRY%g-1|x_Y", 0, 4).is_ok());
    assert!(matches!(
        ConsumeQueue::open(dir.path(), "T", 0, 0),
        Err(CqError::EntriesPerFile(0))
    ));
    drop(filled_queue(dir.path(), 10));
    // Only the newest file may be short.
    let middle = dir.path().join("consumequeue/T/1/00000000000000000080");
    let full = fs::read(&middle).unwrap();
    fs::write(&middle, &full[..40]).unwrap();
    assert!(matches!(
        ConsumeQueue::open(dir.path(), "T", 1, 4),
        Err(CqError::FileSize { len: 40, .. })
    ));
    // Nor may a file be missing.
    fs::remove_file(&middle).unwrap();
    assert!(matches!(
        ConsumeQueue::open(dir.path(), "T", 1, 4),
        Err(CqError::NotContiguous { .. })
    ));
    fs::write(&middle, &full).unwrap();
    assert_eq!(
        ConsumeQueue::open(dir.path(), "T", 1, 4)
            .unwrap()
            .max_offset(),
        10
    );
    // Files written with 4 entries each do not fit 2 per file, nor 8.
    assert!(matches!(
        ConsumeQueue::open(dir.path(), "T", 1, 2),
        Err(CqError::FileSize { .. })
    ));
    assert!(matches!(
        ConsumeQueue::open(dir.path(), "T", 1, 8),
        Err(CqError::FileSize { .. } | CqError::NotContiguous { .. })
    ));
}

#[test]
fn cq_append_accepts_identical_replays_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut cq = filled_queue(dir.path(), 6);
    cq.append(3, cq_entry(3)).unwrap();
    assert_eq!(cq.max_offset(), 6);
    assert!(matches!(
        cq.append(3, cq_entry(4)),
        Err(CqError::Conflict { offset: 3 })
    ));
    assert!(matches!(
        cq.append(7, cq_entry(7)),
        Err(CqError::Gap {
            expected: 6,
            got: 7
        })
    ));
    let bad = CqEntry {
        size: 0,
        ..cq_entry(6)
    };
    assert!(matches!(cq.append(6, bad), Err(CqError::InvalidEntry(_))));
    cq.set_min_phys(450).unwrap();
    assert!(matches!(
        cq.append(2, cq_entry(2)),
        Err(CqError::BelowMin { offset: 2, min: 5 })
    ));
}

#[test]
fn cq_drops_a_torn_last_entry_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    drop(filled_queue(dir.path(), 10));
    // The last file holds entries 8 and 9; cut it in the middle of entry 9.
    let last = dir.path().join("consumequeue/T/1/00000000000000000160");
    let file = fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(27).unwrap();
    drop(file);
    let mut cq = ConsumeQueue::open(dir.path(), "T", 1, 4).unwrap();
    assert_eq!(cq.max_offset(), 9);
    assert_eq!(cq.get(9), None);
    cq.append(9, cq_entry(9)).unwrap();
    assert_eq!(cq.get(9), Some(cq_entry(9)));
}

#[test]
fn cq_drops_trailing_invalid_entries_and_empty_files_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    drop(filled_queue(dir.path(), 7));
    let second = dir.path().join("consumequeue/T/1/00000000000000000080");
    let mut raw = fs::read(&second).unwrap();
    // Entry 6 torn (size zero), then a stray valid-looking entry at 7 that must not resurface.
    raw[2 * 20 + 8..2 * 20 + 12].fill(0);
    raw[3 * 20..4 * 20].copy_from_slice(&cq_entry(7).to_bytes());
    fs::write(&second, &raw).unwrap();
    // A rolled-but-never-written file after it.
    fs::write(
        dir.path().join("consumequeue/T/1/00000000000000000160"),
        [0u8; 80],
    )
    .unwrap();

    let cq = ConsumeQueue::open(dir.path(), "T", 1, 4).unwrap();
    assert_eq!(cq.max_offset(), 6);
    assert_eq!(cq.last_phys_end(), Some(600));
    assert_eq!(queue_files(dir.path()).len(), 2);
    drop(cq);
    let raw = fs::read(&second).unwrap();
    assert!(raw[2 * 20..].iter().all(|&b| b == 0));
    assert_eq!(
        ConsumeQueue::open(dir.path(), "T", 1, 4)
            .unwrap()
            .max_offset(),
        6
    );
}

#[test]
fn cq_truncate_from_phys() {
    let dir = tempfile::tempdir().unwrap();
    let mut cq = filled_queue(dir.path(), 10);
    cq.truncate_from_phys(550).unwrap();
    assert_eq!(cq.max_offset(), 6);
    assert_eq!(cq.get(5), Some(cq_entry(5)));
    assert_eq!(cq.get(6), None);
    assert_eq!(queue_files(dir.path()).len(), 2);
    // Truncating at a file boundary removes that file.
    cq.truncate_from_phys(400).unwrap();
    assert_eq!(cq.max_offset(), 4);
    assert_eq!(queue_files(dir.path()).len(), 1);
    // Nothing at or past the end: no change.
    cq.truncate_from_phys(10_000).unwrap();
    assert_eq!(cq.max_offset(), 4);
    for i in 4..7 {
        cq.append(i, cq_entry(i)).unwrap();
    }
    cq.flush().unwrap();
    drop(cq);
    let cq = ConsumeQueue::open(dir.path(), "T", 1, 4).unwrap();
    assert_eq!(cq.max_offset(), 7);
    assert_eq!(cq.get(6), Some(cq_entry(6)));
}

#[test]
fn cq_set_min_phys_drops_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut cq = filled_queue(dir.path(), 10);
    cq.set_min_phys(450).unwrap();
    assert_eq!((cq.min_offset(), cq.max_offset()), (5, 10));
    assert_eq!(cq.get(4), None);
    assert_eq!(cq.get(5), Some(cq_entry(5)));
    assert_eq!(queue_files(dir.path()).len(), 2);
    // Past every entry: the queue is empty but the newest file stays for the next append.
    cq.set_min_phys(5_000).unwrap();
    assert_eq!((cq.min_offset(), cq.max_offset()), (10, 10));
    assert_eq!(queue_files(dir.path()), ["00000000000000000160"]);
    cq.append(10, cq_entry(10)).unwrap();
    drop(cq);
    let cq = ConsumeQueue::open(dir.path(), "T", 1, 4).unwrap();
    assert_eq!((cq.min_offset(), cq.max_offset()), (8, 11));
}

#[test]
fn cq_search_by_time_finds_the_first_message_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let cq = filled_queue(dir.path(), 10);
    // Message i was stored at 1000 + 10 i.
    let ts = |phys: i64, _size: i32| Some(1000 + phys / 10);
    assert_eq!(cq.search_by_time(1035, ts), 4);
    assert_eq!(cq.search_by_time(1040, ts), 4);
    assert_eq!(cq.search_by_time(0, ts), 0);
    assert_eq!(cq.search_by_time(99_999, ts), 10);
    // Unreadable (expired) messages at the front count as older.
    let gone = |phys: i64, _size: i32| (phys >= 300).then_some(1000 + phys / 10);
    assert_eq!(cq.search_by_time(0, gone), 3);
}

// ---------------------------------------------------------------------------------------------
// Index
// ---------------------------------------------------------------------------------------------

const T0: i64 = 1_700_000_000_000;

fn index_files(root: &Path) -> usize {
    fs::read_dir(root.join("index")).unwrap().count()
}

/// Puts key `t#k{i % keys}` for message i at offset 10 i, stored at T0 + 1000 i.
fn fill_index(index: &mut IndexService, from: i64, to: i64, keys: i64) {
    for i in from..to {
        index
            .put(&format!("t#k{}", i % keys), i * 10, T0 + i * 1000)
            .unwrap();
    }
}

fn expected(to: i64, keys: i64, key: i64) -> Vec<i64> {
    (0..to)
        .rev()
        .filter(|i| i % keys == key)
        .map(|i| i * 10)
        .collect()
}

#[test]
fn index_put_query_across_collisions_and_rolls() {
    let dir = tempfile::tempdir().unwrap();
    // 4 slots, 9 entries per file: 25 puts of 7 keys collide in slots and roll 3 files.
    let mut index = IndexService::open(dir.path(), 4, 10).unwrap();
    fill_index(&mut index, 0, 25, 7);
    assert_eq!(index_files(dir.path()), 3);
    assert_eq!(index.max_phys_offset(), 240);
    for key in 0..7 {
        let got = index.query(&format!("t#k{key}"), 100, 0, i64::MAX);
        assert_eq!(got, expected(25, 7, key), "key {key}");
    }
    assert!(index.query("t#absent", 10, 0, i64::MAX).is_empty());
    assert_eq!(index.query("t#k0", 2, 0, i64::MAX), vec![210, 140]);
    // Time range: messages 5..=12 only.
    let got = index.query("t#k1", 100, T0 + 5_000, T0 + 12_000);
    assert_eq!(got, vec![80]);
    let got = index.query("t#k5", 100, T0 + 5_000, T0 + 12_000);
    assert_eq!(got, vec![120, 50]);
    // A replayed put below the newest offset is ignored.
    index.put("t#k0", 0, T0).unwrap();
    assert_eq!(index.query("t#k0", 100, 0, i64::MAX), expected(25, 7, 0));
    // So is a key already indexed for the newest message, while its other keys are still added.
    index.put("t#k3", 240, T0 + 24_000).unwrap();
    assert_eq!(index.query("t#k3", 100, 0, i64::MAX), expected(25, 7, 3));
    index.put("t#other", 240, T0 + 24_000).unwrap();
    assert_eq!(index.query("t#other", 100, 0, i64::MAX), vec![240]);

    index.flush().unwrap();
    drop(index);
    let index = IndexService::open(dir.path(), 4, 10).unwrap();
    assert_eq!(index.max_phys_offset(), 240);
    for key in 0..7 {
        assert_eq!(
            index.query(&format!("t#k{key}"), 100, 0, i64::MAX),
            expected(25, 7, key)
        );
    }
    // Reopening with another geometry is refused rather than misread.
    assert!(IndexService::open(dir.path(), 8, 10).is_err());
}

#[test]
fn index_truncate_from_phys_keeps_queries_correct() {
    let dir = tempfile::tempdir().unwrap();
    let mut index = IndexService::open(dir.path(), 4, 10).unwrap();
    fill_index(&mut index, 0, 25, 7);
    // Message 13 (offset 130) and later are gone: the third file goes, the second keeps 9..=12.
    index.truncate_from_phys(130).unwrap();
    assert_eq!(index_files(dir.path()), 2);
    assert_eq!(index.max_phys_offset(), 120);
    for key in 0..7 {
        assert_eq!(
            index.query(&format!("t#k{key}"), 100, 0, i64::MAX),
            expected(13, 7, key)
        );
    }
    // Re-dispatch from the truncation point rebuilds the same index.
    fill_index(&mut index, 13, 25, 7);
    for key in 0..7 {
        assert_eq!(
            index.query(&format!("t#k{key}"), 100, 0, i64::MAX),
            expected(25, 7, key)
        );
    }
    index.flush().unwrap();
    drop(index);
    let mut index = IndexService::open(dir.path(), 4, 10).unwrap();
    assert_eq!(index.query("t#k3", 100, 0, i64::MAX), expected(25, 7, 3));
    // Truncating everything leaves an empty index that accepts offsets from zero again.
    index.truncate_from_phys(0).unwrap();
    assert_eq!(index_files(dir.path()), 0);
    assert_eq!(index.max_phys_offset(), 0);
    fill_index(&mut index, 0, 3, 7);
    assert_eq!(index.query("t#k2", 10, 0, i64::MAX), vec![20]);
}

#[test]
fn index_file_is_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut index = IndexService::open(dir.path(), 4, 10).unwrap();
    // abs(hashCode): "t#a" 0x1B812 (slot 2), "t#b" 0x1B813 (slot 3), "t#e" 0x1B816 (slot 2).
    index.put("t#a", 0x10, T0).unwrap();
    index.put("t#b", 0x20, T0 + 2_500).unwrap();
    index.put("t#e", 0x30, T0 + 4_000).unwrap();
    index.flush().unwrap();
    let file = fs::read_dir(dir.path().join("index"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let raw = fs::read(file.path()).unwrap();
    let expected = hex(
        "0000018BCFE56800 0000018BCFE577A0 0000000000000010 0000000000000030 00000002 00000004
         00000000 00000000 00000003 00000002
         00000000 0000000000000000 00000000 00000000
         0001B812 0000000000000010 00000000 00000000
         0001B813 0000000000000020 00000002 00000000
         0001B816 0000000000000030 00000004 00000001",
    );
    assert_eq!(raw.len(), 40 + 4 * 4 + 10 * 20);
    assert_eq!(&raw[..expected.len()], &expected[..]);
    assert!(raw[expected.len()..].iter().all(|&b| b == 0));
    assert_eq!(index.query("t#e", 10, 0, i64::MAX), vec![0x30]);
    assert_eq!(index.query("t#a", 10, 0, i64::MAX), vec![0x10]);
}

#[test]
fn index_removes_a_file_left_empty_by_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut index = IndexService::open(dir.path(), 4, 10).unwrap();
    fill_index(&mut index, 0, 5, 7);
    index.flush().unwrap();
    drop(index);
    fs::write(dir.path().join("index/29991231235959999"), b"").unwrap();
    let index = IndexService::open(dir.path(), 4, 10).unwrap();
    assert_eq!(index_files(dir.path()), 1);
    assert_eq!(index.max_phys_offset(), 40);
    assert_eq!(index.query("t#k3", 10, 0, i64::MAX), vec![30]);
}

#[test]
fn index_delete_files_before_phys_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let mut index = IndexService::open(dir.path(), 4, 10).unwrap();
    fill_index(&mut index, 0, 25, 7);
    index.delete_files_before_phys(100).unwrap();
    assert_eq!(index_files(dir.path()), 2);
    assert_eq!(index.query("t#k0", 100, 0, i64::MAX), vec![210, 140]);
    index.delete_files_before_phys(i64::MAX).unwrap();
    assert_eq!(index_files(dir.path()), 1);
}

#[test]
fn index_file_names_are_creation_times() {
    let mut name = String::new();
    format_timestamp_name(1_795_477_753_245, &mut name);
    assert_eq!(name, "20261123234913245");
    name.clear();
    format_timestamp_name(951_782_400_123, &mut name);
    assert_eq!(name, "20000229000000123");
    let dir = tempfile::tempdir().unwrap();
    let mut index = IndexService::open(dir.path(), 4, 10).unwrap();
    fill_index(&mut index, 0, 30, 3);
    let mut names: Vec<String> = fs::read_dir(dir.path().join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4);
    assert!(names.iter().all(|n| n.len() == 17 && n.starts_with("20")));
    names.dedup();
    assert_eq!(names.len(), 4);
}
