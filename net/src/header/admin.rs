//! Transaction and administration headers.

use super::field::command_header;

command_header! {
    /// `END_TRANSACTION` (37) request: a producer commits or rolls back a half message.
    pub struct EndTransactionRequestHeader {
        /// `topic`.
        topic: Option<String> = "topic",
        /// `producerGroup` (required).
        producer_group: String = "producerGroup",
        /// `tranStateTableOffset` (required).
        tran_state_table_offset: i64 = "tranStateTableOffset",
        /// `commitLogOffset` (required).
        commit_log_offset: i64 = "commitLogOffset",
        /// `commitOrRollback` (required): the transaction type flag (commit 8, rollback 12, none 0).
        commit_or_rollback: i32 = "commitOrRollback",
        /// `fromTransactionCheck`: absent means false.
        from_transaction_check: Option<bool> = "fromTransactionCheck",
        /// `msgId` (required).
        msg_id: String = "msgId",
        /// `transactionId`.
        transaction_id: Option<String> = "transactionId",
    }
}

command_header! {
    /// `CHECK_TRANSACTION_STATE` (39) request, broker to producer.
    pub struct CheckTransactionStateRequestHeader {
        /// `topic`.
        topic: Option<String> = "topic",
        /// `tranStateTableOffset` (required).
        tran_state_table_offset: i64 = "tranStateTableOffset",
        /// `commitLogOffset` (required).
        commit_log_offset: i64 = "commitLogOffset",
        /// `msgId`.
        msg_id: Option<String> = "msgId",
        /// `transactionId`.
        transaction_id: Option<String> = "transactionId",
        /// `offsetMsgId`.
        offset_msg_id: Option<String> = "offsetMsgId",
    }
}

command_header! {
    /// `UPDATE_AND_CREATE_TOPIC` (17) request.
    pub struct CreateTopicRequestHeader {
        /// `topic` (required).
        topic: String = "topic",
        /// `defaultTopic` (required).
        default_topic: String = "defaultTopic",
        /// `readQueueNums` (required).
        read_queue_nums: i32 = "readQueueNums",
        /// `writeQueueNums` (required).
        write_queue_nums: i32 = "writeQueueNums",
        /// `perm` (required): permission bits (2 write, 4 read, 1 inherit).
        perm: i32 = "perm",
        /// `topicFilterType` (required): `SINGLE_TAG` or `MULTI_TAG`.
        topic_filter_type: String = "topicFilterType",
        /// `topicSysFlag`.
        topic_sys_flag: Option<i32> = "topicSysFlag",
        /// `order` (required).
        order: bool = "order",
        /// `attributes`: `+key=value` pairs, comma-separated.
        attributes: Option<String> = "attributes",
        /// `force`: absent means false.
        force: Option<bool> = "force",
    }
}

command_header! {
    /// `DELETE_TOPIC_IN_BROKER` (215) request.
    pub struct DeleteTopicRequestHeader {
        /// `topic` (required).
        topic: String = "topic",
    }
}

command_header! {
    /// `GET_TOPIC_STATS_INFO` (202) request.
    pub struct GetTopicStatsInfoRequestHeader {
        /// `topic` (required).
        topic: String = "topic",
    }
}

command_header! {
    /// `GET_CONSUME_STATS` (208) request.
    pub struct GetConsumeStatsRequestHeader {
        /// `consumerGroup` (required).
        consumer_group: String = "consumerGroup",
        /// `topic`: one topic, or absent for all the group's topics.
        topic: Option<String> = "topic",
        /// `topicList`: several topics, `;`-separated.
        topic_list: Option<String> = "topicList",
    }
}
