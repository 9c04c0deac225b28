//! Producer headers: `SEND_MESSAGE` (10), `SEND_MESSAGE_V2` (310) with its one-letter field names,
//! and their response.

use super::field::command_header;

command_header! {
    /// `SEND_MESSAGE` (10) / `SEND_BATCH_MESSAGE` (320) request, long field names.
    pub struct SendMessageRequestHeader {
        /// `producerGroup` (required).
        producer_group: String = "producerGroup",
        /// `topic` (required).
        topic: String = "topic",
        /// `defaultTopic` (required): the template topic for auto-creation (`TBW102`).
        default_topic: String = "defaultTopic",
        /// `defaultTopicQueueNums` (required): queues of an auto-created topic.
        default_topic_queue_nums: i32 = "defaultTopicQueueNums",
        /// `queueId` (required).
        queue_id: i32 = "queueId",
        /// `sysFlag` (required): message system flags.
        sys_flag: i32 = "sysFlag",
        /// `bornTimestamp` (required): milliseconds since the epoch.
        born_timestamp: i64 = "bornTimestamp",
        /// `flag` (required): the user's message flag.
        flag: i32 = "flag",
        /// `properties`: message properties, `name\u{1}value\u{2}` pairs.
        properties: Option<String> = "properties",
        /// `reconsumeTimes`.
        reconsume_times: Option<i32> = "reconsumeTimes",
        /// `unitMode`.
        unit_mode: Option<bool> = "unitMode",
        /// `batch`: the body is a batch of messages.
        batch: Option<bool> = "batch",
        /// `maxReconsumeTimes`.
        max_reconsume_times: Option<i32> = "maxReconsumeTimes",
        /// `bname`: the broker name the client addressed.
        broker_name: Option<String> = "bname",
    }
}

command_header! {
    /// `SEND_MESSAGE_V2` (310) / `SEND_BATCH_MESSAGE` request: [`SendMessageRequestHeader`] with
    /// one-letter field names (convert with `From` both ways).
    pub struct SendMessageRequestHeaderV2 {
        /// `a` = producerGroup (required).
        a: String = "a",
        /// `b` = topic (required).
        b: String = "b",
        /// `c` = defaultTopic (required).
        c: String = "c",
        /// `d` = defaultTopicQueueNums (required).
        d: i32 = "d",
        /// `e` = queueId (required).
        e: i32 = "e",
        /// `f` = sysFlag (required).
        f: i32 = "f",
        /// `g` = bornTimestamp (required).
        g: i64 = "g",
        /// `h` = flag (required).
        h: i32 = "h",
        /// `i` = properties.
        i: Option<String> = "i",
        /// `j` = reconsumeTimes.
        j: Option<i32> = "j",
        /// `k` = unitMode.
        k: Option<bool> = "k",
        /// `l` = maxReconsumeTimes.
        l: Option<i32> = "l",
        /// `m` = batch.
        m: Option<bool> = "m",
        /// `n` = bname (broker name).
        n: Option<String> = "n",
    }
}

impl From<SendMessageRequestHeaderV2> for SendMessageRequestHeader {
    fn from(v2: SendMessageRequestHeaderV2) -> Self {
        SendMessageRequestHeader {
            producer_group: v2.a,
            topic: v2.b,
            default_topic: v2.c,
            default_topic_queue_nums: v2.d,
            queue_id: v2.e,
            sys_flag: v2.f,
            born_timestamp: v2.g,
            flag: v2.h,
            properties: v2.i,
            reconsume_times: v2.j,
            unit_mode: v2.k,
            max_reconsume_times: v2.l,
            batch: v2.m,
            broker_name: v2.n,
        }
    }
}

impl From<SendMessageRequestHeader> for SendMessageRequestHeaderV2 {
    fn from(v1: SendMessageRequestHeader) -> Self {
        SendMessageRequestHeaderV2 {
            a: v1.producer_group,
            b: v1.topic,
            c: v1.default_topic,
            d: v1.default_topic_queue_nums,
            e: v1.queue_id,
            f: v1.sys_flag,
            g: v1.born_timestamp,
            h: v1.flag,
            i: v1.properties,
            j: v1.reconsume_times,
            k: v1.unit_mode,
            l: v1.max_reconsume_times,
            m: v1.batch,
            n: v1.broker_name,
        }
    }
}

command_header! {
    /// `SEND_MESSAGE` / `SEND_MESSAGE_V2` response.
    pub struct SendMessageResponseHeader {
        /// `msgId` (required): the offset message id (store host + commit log offset, hex).
        msg_id: String = "msgId",
        /// `queueId` (required).
        queue_id: i32 = "queueId",
        /// `queueOffset` (required): the message's consume-queue offset.
        queue_offset: i64 = "queueOffset",
        /// `transactionId`.
        transaction_id: Option<String> = "transactionId",
        /// `batchUniqId`.
        batch_uniq_id: Option<String> = "batchUniqId",
        /// `recallHandle`.
        recall_handle: Option<String> = "recallHandle",
    }
}
