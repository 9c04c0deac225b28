//! Codec vectors: real client frames from `/work/shared/captures` (stored as hex under
//! `tests/vectors/`), decoded and re-encoded; error handling; encode/decode identity properties.

use proptest::prelude::*;
use tern_net::code::{request, response};
use tern_net::frame::{self, DecodeError, FrameError, DEFAULT_MAX_FRAME_LEN};
use tern_net::header::{
    CommandHeader, GetMaxOffsetRequestHeader, GetMinOffsetRequestHeader, GetRouteInfoRequestHeader,
    HeaderFieldError, PullMessageRequestHeader, QueryConsumerOffsetRequestHeader,
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
    UnregisterClientRequestHeader,
};
use tern_net::{ExtFields, LanguageCode, RemotingCommand, SerializeType};

fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/vectors/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = text.trim();
    assert!(text.len() % 2 == 0, "{path}: odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Decodes a captured frame after checking that framing finds exactly its length.
fn decode_vector(name: &str) -> (Vec<u8>, RemotingCommand) {
    let bytes = vector(name);
    assert_eq!(
        frame::next_frame_len(&bytes, DEFAULT_MAX_FRAME_LEN),
        Ok(Some(bytes.len())),
        "{name}"
    );
    assert_eq!(
        frame::next_frame_len(&bytes[..bytes.len() - 1], DEFAULT_MAX_FRAME_LEN),
        Ok(None)
    );
    let cmd = frame::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    (bytes, cmd)
}

fn encoded(cmd: &RemotingCommand) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(cmd, &mut out);
    out
}

fn assert_json_round_trip(cmd: &RemotingCommand) {
    let bytes = encoded(cmd);
    assert_eq!(&frame::decode(&bytes).unwrap(), cmd);
}

fn ext(pairs: &[(&str, &str)]) -> ExtFields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---- ROCKETMQ binary headers: decode and re-encode byte-exactly ----

#[test]
fn rocketmq_get_route() {
    let (bytes, cmd) = decode_vector("rocketmq_get_route");
    assert_eq!(cmd.code, request::GET_ROUTEINFO_BY_TOPIC);
    assert_eq!(cmd.serialize_type, SerializeType::RocketMq);
    assert_eq!(cmd.language, LanguageCode::Rust);
    assert_eq!((cmd.version, cmd.opaque, cmd.flag), (474, 0, 0));
    assert_eq!(cmd.remark, None);
    assert_eq!(cmd.ext_fields, ext(&[("topic", "RMQCHK_produce_cap2")]));
    assert!(cmd.body.is_empty());
    let h: GetRouteInfoRequestHeader = cmd.decode_header().unwrap();
    assert_eq!(h.topic, "RMQCHK_produce_cap2");
    assert_eq!(h.accept_standard_json_only, None);
    assert_eq!(encoded(&cmd), bytes);
}

#[test]
fn rocketmq_heartbeat() {
    let (bytes, cmd) = decode_vector("rocketmq_heartbeat");
    assert_eq!(cmd.code, request::HEART_BEAT);
    assert_eq!(cmd.opaque, 4);
    assert!(cmd.ext_fields.is_empty());
    assert_eq!(cmd.body.len(), 203);
    assert!(cmd
        .body
        .starts_with(br#"{"clientID":"192.0.2.2@rmqchk_p_27501_0""#));
    assert_eq!(encoded(&cmd), bytes);
}

#[test]
fn rocketmq_send_message() {
    let (bytes, cmd) = decode_vector("rocketmq_send_message");
    assert_eq!(cmd.code, request::SEND_MESSAGE);
    assert_eq!(cmd.opaque, 2);
    assert_eq!(cmd.body, b"rmq-check produce cap2 #0");
    let h: SendMessageRequestHeader = cmd.decode_header().unwrap();
    assert_eq!(h.producer_group, "RMQCHK_produce_pg_cap2");
    assert_eq!(h.topic, "RMQCHK_produce_cap2");
    assert_eq!(h.default_topic, "TBW102");
    assert_eq!(h.default_topic_queue_nums, 4);
    assert_eq!(h.queue_id, 3);
    assert_eq!(h.sys_flag, 0);
    assert_eq!(h.born_timestamp, 1_795_477_789_735);
    assert_eq!(h.flag, 0);
    assert_eq!(h.reconsume_times, Some(0));
    assert_eq!(h.unit_mode, Some(false));
    assert_eq!(h.batch, Some(false));
    assert_eq!(h.max_reconsume_times, None);
    assert_eq!(h.broker_name.as_deref(), Some("broker-a"));
    assert_eq!(
        h.properties.as_deref(),
        Some("TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}UNIQ_KEY\u{1}C00002026B6DAC4C820C7668F4270000\u{2}KEYS\u{1}KEY_produce_cap2_0\u{2}")
    );
    assert_eq!(encoded(&cmd), bytes);
    // The typed header writes back exactly the fields received.
    let rebuilt = RemotingCommand {
        ext_fields: ExtFields::new(),
        ..cmd.clone()
    }
    .with_header(&h);
    assert_eq!(rebuilt.ext_fields, cmd.ext_fields);
}

#[test]
fn rocketmq_unregister_client() {
    let (bytes, cmd) = decode_vector("rocketmq_unregister_client");
    assert_eq!(cmd.code, request::UNREGISTER_CLIENT);
    let h: UnregisterClientRequestHeader = cmd.decode_header().unwrap();
    assert_eq!(h.client_id, "192.0.2.2@rmqchk_p_27501_0");
    assert_eq!(h.producer_group.as_deref(), Some("RMQCHK_produce_pg_cap2"));
    assert_eq!(h.consumer_group, None);
    assert_eq!(encoded(&cmd), bytes);
}

// ---- JSON headers ----

#[test]
fn json_get_route() {
    let (_, cmd) = decode_vector("json_get_route");
    assert_eq!(cmd.code, request::GET_ROUTEINFO_BY_TOPIC);
    assert_eq!(cmd.serialize_type, SerializeType::Json);
    assert_eq!(cmd.language, LanguageCode::Rust);
    assert_eq!((cmd.version, cmd.opaque, cmd.flag), (474, 0, 0));
    assert_eq!(cmd.remark, None);
    assert_eq!(cmd.ext_fields, ext(&[("topic", "RMQCHK_produce_cap1")]));
    assert_json_round_trip(&cmd);
}

#[test]
fn json_send_message() {
    let (_, cmd) = decode_vector("json_send_message");
    assert_eq!(cmd.code, request::SEND_MESSAGE);
    assert_eq!(cmd.body.len(), 25);
    let h: SendMessageRequestHeader = cmd.decode_header().unwrap();
    assert_eq!(h.queue_id, 2);
    assert_eq!(h.born_timestamp, 1_795_477_753_245);
    assert!(h
        .properties
        .unwrap()
        .contains("UNIQ_KEY\u{1}C00002026B10AC4C820C7668659D0000\u{2}"));
    assert_json_round_trip(&cmd);
}

#[test]
fn json_heartbeat() {
    let (_, cmd) = decode_vector("json_heartbeat");
    assert_eq!(cmd.code, request::HEART_BEAT);
    assert!(cmd.ext_fields.is_empty());
    assert_eq!(cmd.body.len(), 203);
    assert!(cmd.body.starts_with(br#"{"clientID":"#));
    assert_json_round_trip(&cmd);
}

#[test]
fn json_pull_messages() {
    for (name, code, max_msg_nums, sys_flag) in [
        ("json_pull_message", request::PULL_MESSAGE, 32, 4),
        ("json_lite_pull_message", request::LITE_PULL_MESSAGE, 10, 22),
    ] {
        let (_, cmd) = decode_vector(name);
        assert_eq!(cmd.code, code);
        let h: PullMessageRequestHeader = cmd.decode_header().unwrap();
        assert_eq!(h.consumer_group, "RMQCHK_classic_pull_cg_cp1");
        assert_eq!(h.topic, "RMQCHK_classic_pull_cp1");
        assert_eq!(h.queue_offset, 0);
        assert_eq!(h.max_msg_nums, max_msg_nums);
        assert_eq!(h.sys_flag, sys_flag);
        assert_eq!(h.suspend_timeout_millis, 20_000);
        assert_eq!(h.sub_version, 0);
        assert_eq!(h.subscription.as_deref(), Some("*"));
        assert_eq!(h.expression_type.as_deref(), Some("TAG"));
        assert_eq!(h.max_msg_bytes, Some(i32::MAX));
        assert_json_round_trip(&cmd);
    }
}

#[test]
fn json_query_consumer_offset() {
    let (_, cmd) = decode_vector("json_query_consumer_offset");
    let h: QueryConsumerOffsetRequestHeader = cmd.decode_header().unwrap();
    assert_eq!(h.queue_id, 2);
    assert_eq!(h.set_zero_if_not_found, None);
    assert_eq!(h.broker_name.as_deref(), Some("broker-a"));
}

#[test]
fn json_get_min_and_max_offset() {
    let (_, cmd) = decode_vector("json_get_min_offset");
    assert_eq!((cmd.code, cmd.opaque), (request::GET_MIN_OFFSET, 13));
    let h: GetMinOffsetRequestHeader = cmd.decode_header().unwrap();
    assert_eq!(
        (h.topic.as_str(), h.queue_id),
        ("RMQCHK_classic_pull_cp1", 1)
    );
    assert_eq!(h.broker_name.as_deref(), Some("broker-a"));
    assert_json_round_trip(&cmd);

    let (_, cmd) = decode_vector("json_get_max_offset");
    assert_eq!((cmd.code, cmd.opaque), (request::GET_MAX_OFFSET, 15));
    let h: GetMaxOffsetRequestHeader = cmd.decode_header().unwrap();
    assert_eq!(
        (h.topic.as_str(), h.queue_id),
        ("RMQCHK_classic_pull_cp1", 1)
    );
    assert_eq!(h.committed, Some(false));
    assert_json_round_trip(&cmd);
}

#[test]
fn node_first_request_without_serialize_type() {
    let (bytes, cmd) = decode_vector("node_first_request");
    let header = std::str::from_utf8(&bytes[8..]).unwrap();
    assert!(!header.contains("serializeTypeCurrentRPC"));
    assert_eq!(cmd.code, request::GET_ROUTEINFO_BY_TOPIC);
    assert_eq!(cmd.serialize_type, SerializeType::Json);
    assert_eq!(cmd.language, LanguageCode::Java);
    assert_eq!((cmd.version, cmd.opaque), (121, 1));
    assert_eq!(cmd.ext("topic"), Some("RMQCHK_node_produce_cap3"));
    assert_json_round_trip(&cmd);
}

#[test]
fn node_style_numbers_and_booleans_in_ext_fields() {
    let header = br#"{"code":310,"language":"JAVA","opaque":5,"flag":0,"version":121,"extFields":{"a":"pg","b":"t","c":"TBW102","d":4,"e":1,"f":0,"g":1795478433135,"h":0,"j":0,"k":false}}"#;
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(4 + header.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&(header.len() as u32).to_be_bytes());
    bytes.extend_from_slice(header);
    let cmd = frame::decode(&bytes).unwrap();
    let h: SendMessageRequestHeaderV2 = cmd.decode_header().unwrap();
    assert_eq!((h.d, h.e, h.f, h.g, h.h), (4, 1, 0, 1_795_478_433_135, 0));
    assert_eq!((h.j, h.k), (Some(0), Some(false)));
    assert_eq!(cmd.ext("k"), Some("false"));
}

#[test]
fn node_send_message_v2_short_names() {
    let (_, cmd) = decode_vector("node_send_message_v2");
    assert_eq!(cmd.code, request::SEND_MESSAGE_V2);
    let v2: SendMessageRequestHeaderV2 = cmd.decode_header().unwrap();
    let v1 = SendMessageRequestHeader::from(v2.clone());
    assert_eq!(v1.producer_group, "RMQCHK_node_consume_pg_nc1");
    assert_eq!(v1.topic, "RMQCHK_node_consume_nc1");
    assert_eq!(v1.default_topic, "TBW102");
    assert_eq!(v1.default_topic_queue_nums, 4);
    assert_eq!(v1.queue_id, 1);
    assert_eq!(v1.born_timestamp, 1_795_478_433_135);
    assert_eq!(v1.unit_mode, Some(false));
    assert_eq!(v1.batch, None);
    assert_eq!(
        v1.properties.as_deref(),
        Some("TAGS\u{1}TagA\u{2}KEYS\u{1}KEY_consume1_nc1_0\u{2}")
    );
    // Long names and back: the same short-name fields as received.
    let back = SendMessageRequestHeaderV2::from(v1);
    assert_eq!(back, v2);
    let mut fields = ExtFields::new();
    back.write_ext_fields(&mut fields);
    assert_eq!(fields, cmd.ext_fields);
    assert_json_round_trip(&cmd);
}

#[test]
fn node_heartbeat() {
    let (_, cmd) = decode_vector("node_heartbeat");
    assert_eq!(cmd.code, request::HEART_BEAT);
    assert_eq!(cmd.language, LanguageCode::Java);
    assert_eq!(cmd.body.len(), 529 - 8 - 111);
    assert_json_round_trip(&cmd);
}

// ---- Our own responses: exact bytes ----

#[test]
fn json_response_exact() {
    let (_, req) = decode_vector("json_get_route");
    let rsp = RemotingCommand::response_to(
        &req,
        response::TOPIC_NOT_EXIST,
        Some("No topic route info in name server for the topic: RMQCHK_produce_cap1".into()),
    );
    let bytes = encoded(&rsp);
    let header = r#"{"code":17,"flag":1,"language":"JAVA","opaque":0,"remark":"No topic route info in name server for the topic: RMQCHK_produce_cap1","serializeTypeCurrentRPC":"JSON","version":0}"#;
    assert_eq!(&bytes[..4], &(4 + header.len() as u32).to_be_bytes());
    assert_eq!(&bytes[4..8], &(header.len() as u32).to_be_bytes());
    assert_eq!(std::str::from_utf8(&bytes[8..]).unwrap(), header);
}

#[test]
fn json_send_response_exact() {
    let (_, req) = decode_vector("json_send_message");
    let rsp = RemotingCommand::response_to(&req, response::SUCCESS, None).with_header(
        &SendMessageResponseHeader {
            msg_id: "7F00000100002A9F0000000000000000".into(),
            queue_id: 2,
            queue_offset: 0,
            transaction_id: None,
            batch_uniq_id: None,
            recall_handle: None,
        },
    );
    let bytes = encoded(&rsp);
    assert_eq!(
        std::str::from_utf8(&bytes[8..]).unwrap(),
        r#"{"code":0,"extFields":{"msgId":"7F00000100002A9F0000000000000000","queueId":"2","queueOffset":"0"},"flag":1,"language":"JAVA","opaque":2,"serializeTypeCurrentRPC":"JSON","version":0}"#
    );
}

#[test]
fn rocketmq_response_exact() {
    let (_, req) = decode_vector("rocketmq_get_route");
    let rsp = RemotingCommand::response_to(&req, response::TOPIC_NOT_EXIST, Some("none".into()))
        .with_body(b"xy".to_vec());
    let mut head = Vec::new();
    frame::encode_head(&rsp, 2, &mut head);
    let expected_head: &[u8] = &[
        0, 0, 0, 0x1f, // total: 4 + 25 + 2
        1, 0, 0, 25, // ROCKETMQ, header 25 bytes
        0, 17, 0, 0, 0, // code 17, JAVA, version 0
        0, 0, 0, 0, // opaque 0
        0, 0, 0, 1, // flag RESPONSE
        0, 0, 0, 4, b'n', b'o', b'n', b'e', // remark
        0, 0, 0, 0, // no extFields
    ];
    assert_eq!(head, expected_head);
    let mut whole = head.clone();
    whole.extend_from_slice(b"xy");
    assert_eq!(encoded(&rsp), whole);
    assert_eq!(frame::decode(&whole).unwrap(), rsp);
}

// ---- Errors ----

#[test]
fn oversized_length_is_rejected_before_allocation() {
    let claim = [0x7f, 0xff, 0xff, 0xff];
    assert_eq!(
        frame::next_frame_len(&claim, DEFAULT_MAX_FRAME_LEN),
        Err(FrameError::TooLarge {
            len: 0x7fff_ffff + 4,
            max: DEFAULT_MAX_FRAME_LEN
        })
    );
    assert!(matches!(
        frame::next_frame_len(&[0xff; 4], DEFAULT_MAX_FRAME_LEN),
        Err(FrameError::TooLarge { .. })
    ));
    // Exactly at the limit is fine.
    let at_limit = ((DEFAULT_MAX_FRAME_LEN - 4) as u32).to_be_bytes();
    assert_eq!(
        frame::next_frame_len(&at_limit, DEFAULT_MAX_FRAME_LEN),
        Ok(None)
    );
}

#[test]
fn lengths_that_contradict_each_other() {
    assert!(matches!(
        frame::next_frame_len(&[0, 0, 0, 3], DEFAULT_MAX_FRAME_LEN),
        Err(FrameError::Inconsistent { .. })
    ));
    // Header claims 100 bytes in a frame of 10.
    let bad = [0, 0, 0, 10, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0];
    assert!(matches!(
        frame::next_frame_len(&bad[..8], DEFAULT_MAX_FRAME_LEN),
        Err(FrameError::Inconsistent {
            header_len: 100,
            ..
        })
    ));
    assert!(matches!(
        frame::decode(&bad),
        Err(DecodeError::Frame(FrameError::Inconsistent {
            header_len: 100,
            ..
        }))
    ));
    // A prefix that disagrees with the slice.
    assert!(matches!(
        frame::decode(&[0, 0, 0, 9, 0, 0, 0, 0, 1]),
        Err(DecodeError::Frame(FrameError::Inconsistent { .. }))
    ));
    assert!(matches!(
        frame::next_frame_len(&[0, 0, 0, 4, 7, 0, 0, 0], DEFAULT_MAX_FRAME_LEN),
        Err(FrameError::UnknownSerializeType(7))
    ));
}

fn json_frame(header: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(4 + header.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&(header.len() as u32).to_be_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes
}

#[test]
fn garbage_header_keeps_the_opaque_when_readable() {
    match frame::decode(&json_frame(r#"{"code":"ten","opaque":77,"flag":0}"#)) {
        Err(DecodeError::Header(e)) => {
            assert_eq!(e.opaque, Some(77));
            assert_eq!(e.serialize_type, SerializeType::Json);
        }
        other => panic!("{other:?}"),
    }
    match frame::decode(&json_frame("\u{1}garbage")) {
        Err(DecodeError::Header(e)) => assert_eq!(e.opaque, None),
        other => panic!("{other:?}"),
    }
    // A binary header cut inside its extFields still yields the opaque.
    let mut bytes = vector("rocketmq_get_route");
    let header_len = bytes.len() - 8 - 1;
    bytes.pop();
    bytes[0..4].copy_from_slice(&(4 + header_len as u32).to_be_bytes());
    bytes[4..8].copy_from_slice(&((1 << 24) | header_len as u32).to_be_bytes());
    match frame::decode(&bytes) {
        Err(DecodeError::Header(e)) => {
            assert_eq!(e.opaque, Some(0));
            assert_eq!(e.serialize_type, SerializeType::RocketMq);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_required_header_field_is_named() {
    let cmd = RemotingCommand::request(request::PULL_MESSAGE).with_ext("topic", "t");
    assert_eq!(
        cmd.decode_header::<PullMessageRequestHeader>(),
        Err(HeaderFieldError::Missing {
            field: "consumerGroup"
        })
    );
    let cmd = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
        .with_ext("topic", "t")
        .with_ext("acceptStandardJsonOnly", "TRUE");
    let h: GetRouteInfoRequestHeader = cmd.decode_header().unwrap();
    assert_eq!(h.accept_standard_json_only, Some(true));
    let cmd = RemotingCommand::request(request::UNREGISTER_CLIENT).with_ext("clientID", " x ");
    assert_eq!(
        cmd.decode_header::<UnregisterClientRequestHeader>()
            .unwrap()
            .client_id,
        " x "
    );
}

// ---- Properties ----

fn language() -> impl Strategy<Value = LanguageCode> {
    (0u8..14).prop_map(LanguageCode::from_code)
}

prop_compose! {
    fn command(serialize_type: SerializeType)(
        code in any::<i16>(),
        wide_code in any::<i32>(),
        language in language(),
        version in any::<i16>(),
        wide_version in any::<i32>(),
        opaque in any::<i32>(),
        flag in any::<i32>(),
        remark in proptest::option::of("\\PC{1,24}"),
        ext_fields in proptest::collection::hash_map("\\PC{0,12}", "\\PC{0,24}", 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) -> RemotingCommand {
        let json = serialize_type == SerializeType::Json;
        RemotingCommand {
            code: if json { wide_code } else { i32::from(code) },
            language,
            version: if json { wide_version } else { i32::from(version) },
            opaque,
            flag,
            remark,
            ext_fields: ext_fields.into_iter().collect(),
            serialize_type,
            body,
        }
    }
}

proptest! {
    #[test]
    fn json_encode_decode_identity(cmd in command(SerializeType::Json)) {
        let bytes = encoded(&cmd);
        prop_assert_eq!(frame::next_frame_len(&bytes, DEFAULT_MAX_FRAME_LEN), Ok(Some(bytes.len())));
        prop_assert_eq!(frame::decode(&bytes).unwrap(), cmd);
    }

    #[test]
    fn rocketmq_encode_decode_identity(cmd in command(SerializeType::RocketMq)) {
        let bytes = encoded(&cmd);
        prop_assert_eq!(frame::next_frame_len(&bytes, DEFAULT_MAX_FRAME_LEN), Ok(Some(bytes.len())));
        let decoded = frame::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &cmd);
        prop_assert_eq!(encoded(&decoded), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = frame::next_frame_len(&bytes, DEFAULT_MAX_FRAME_LEN);
        let _ = frame::next_frame_len(&bytes, 64);
        let _ = frame::decode(&bytes);
    }

    #[test]
    fn arbitrary_headers_never_panic(
        type_byte in 0u8..2,
        header in proptest::collection::vec(any::<u8>(), 0..200),
        body_len in 0usize..8,
    ) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&((4 + header.len() + body_len) as u32).to_be_bytes());
        bytes.extend_from_slice(&((u32::from(type_byte) << 24) | header.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&header);
        bytes.resize(bytes.len() + body_len, 0);
        prop_assert_eq!(frame::next_frame_len(&bytes, DEFAULT_MAX_FRAME_LEN), Ok(Some(bytes.len())));
        match frame::decode(&bytes) {
            Ok(cmd) => {
                prop_assert_eq!(cmd.body.len(), body_len);
                // Whatever decodes survives a round trip unchanged.
                prop_assert_eq!(frame::decode(&encoded(&cmd)).unwrap(), cmd);
            }
            Err(DecodeError::Header(_)) => {}
            Err(DecodeError::Frame(e)) => prop_assert!(false, "sound frame rejected: {}", e),
        }
    }
}
