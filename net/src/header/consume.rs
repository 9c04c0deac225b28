//! Consumer headers: pulls, offsets, consumer lists and send-back.

use super::field::command_header;

command_header! {
    /// `PULL_MESSAGE` (11) / `LITE_PULL_MESSAGE` (361) request.
    pub struct PullMessageRequestHeader {
        /// `consumerGroup` (required).
        consumer_group: String = "consumerGroup",
        /// `topic` (required).
        topic: String = "topic",
        /// `queueId` (required).
        queue_id: i32 = "queueId",
        /// `queueOffset` (required): the first consume-queue offset wanted.
        queue_offset: i64 = "queueOffset",
        /// `maxMsgNums` (required).
        max_msg_nums: i32 = "maxMsgNums",
        /// `sysFlag` (required): commit-offset / suspend / subscription / class-filter bits.
        sys_flag: i32 = "sysFlag",
        /// `commitOffset` (required): the consumer's offset to store, when the flag says so.
        commit_offset: i64 = "commitOffset",
        /// `suspendTimeoutMillis` (required): long-polling hold time.
        suspend_timeout_millis: i64 = "suspendTimeoutMillis",
        /// `subscription`: the filter expression.
        subscription: Option<String> = "subscription",
        /// `subVersion` (required).
        sub_version: i64 = "subVersion",
        /// `expressionType`: `TAG` (absent means TAG) or `SQL92`.
        expression_type: Option<String> = "expressionType",
        /// `maxMsgBytes`.
        max_msg_bytes: Option<i32> = "maxMsgBytes",
        /// `requestSource`.
        request_source: Option<i32> = "requestSource",
        /// `proxyFrowardClientId` (RocketMQ's spelling).
        proxy_forward_client_id: Option<String> = "proxyFrowardClientId",
        /// `bname`: the broker name the client addressed.
        broker_name: Option<String> = "bname",
    }
}

command_header! {
    /// `PULL_MESSAGE` response.
    pub struct PullMessageResponseHeader {
        /// `suggestWhichBrokerId` (required).
        suggest_which_broker_id: i64 = "suggestWhichBrokerId",
        /// `nextBeginOffset` (required).
        next_begin_offset: i64 = "nextBeginOffset",
        /// `minOffset` (required).
        min_offset: i64 = "minOffset",
        /// `maxOffset` (required).
        max_offset: i64 = "maxOffset",
        /// `offsetDelta`.
        offset_delta: Option<i64> = "offsetDelta",
        /// `topicSysFlag`.
        topic_sys_flag: Option<i32> = "topicSysFlag",
        /// `groupSysFlag`.
        group_sys_flag: Option<i32> = "groupSysFlag",
        /// `forbiddenType`.
        forbidden_type: Option<i32> = "forbiddenType",
    }
}

command_header! {
    /// `QUERY_CONSUMER_OFFSET` (14) request.
    pub struct QueryConsumerOffsetRequestHeader {
        /// `consumerGroup` (required).
        consumer_group: String = "consumerGroup",
        /// `topic` (required).
        topic: String = "topic",
        /// `queueId` (required).
        queue_id: i32 = "queueId",
        /// `setZeroIfNotFound`: absent means true.
        set_zero_if_not_found: Option<bool> = "setZeroIfNotFound",
        /// `bname`.
        broker_name: Option<String> = "bname",
    }
}

command_header! {
    /// `QUERY_CONSUMER_OFFSET` response.
    pub struct QueryConsumerOffsetResponseHeader {
        /// `offset` (required).
        offset: i64 = "offset",
    }
}

command_header! {
    /// `UPDATE_CONSUMER_OFFSET` (15) request.
    pub struct UpdateConsumerOffsetRequestHeader {
        /// `consumerGroup` (required).
        consumer_group: String = "consumerGroup",
        /// `topic` (required).
        topic: String = "topic",
        /// `queueId` (required).
        queue_id: i32 = "queueId",
        /// `commitOffset` (required).
        commit_offset: i64 = "commitOffset",
        /// `bname`.
        broker_name: Option<String> = "bname",
    }
}

command_header! {
    /// `GET_CONSUMER_LIST_BY_GROUP` (38) request.
    pub struct GetConsumerListByGroupRequestHeader {
        /// `consumerGroup` (required).
        consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// `UNREGISTER_CLIENT` (35) request.
    pub struct UnregisterClientRequestHeader {
        /// `clientID` (required).
        client_id: String = "clientID",
        /// `producerGroup`.
        producer_group: Option<String> = "producerGroup",
        /// `consumerGroup`.
        consumer_group: Option<String> = "consumerGroup",
    }
}

command_header! {
    /// `NOTIFY_CONSUMER_IDS_CHANGED` (40) request, broker to client (one-way).
    pub struct NotifyConsumerIdsChangedRequestHeader {
        /// `consumerGroup` (required).
        consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// `CONSUMER_SEND_MSG_BACK` (36) request: a consumer returns a message for retry.
    pub struct ConsumerSendMsgBackRequestHeader {
        /// `offset` (required): the message's commit log offset.
        offset: i64 = "offset",
        /// `group` (required): the consumer group.
        group: String = "group",
        /// `delayLevel` (required).
        delay_level: i32 = "delayLevel",
        /// `originMsgId`.
        origin_msg_id: Option<String> = "originMsgId",
        /// `originTopic`.
        origin_topic: Option<String> = "originTopic",
        /// `unitMode`: absent means false.
        unit_mode: Option<bool> = "unitMode",
        /// `maxReconsumeTimes`.
        max_reconsume_times: Option<i32> = "maxReconsumeTimes",
    }
}
