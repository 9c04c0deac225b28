//! Queue offset and message lookup headers.

use super::field::command_header;

command_header! {
    /// `GET_MAX_OFFSET` (30) request.
    pub struct GetMaxOffsetRequestHeader {
        /// `topic` (required).
        topic: String = "topic",
        /// `queueId` (required).
        queue_id: i32 = "queueId",
        /// `committed`: absent means true.
        committed: Option<bool> = "committed",
        /// `bname`.
        broker_name: Option<String> = "bname",
    }
}

command_header! {
    /// `GET_MAX_OFFSET` response.
    pub struct GetMaxOffsetResponseHeader {
        /// `offset` (required).
        offset: i64 = "offset",
    }
}

command_header! {
    /// `GET_MIN_OFFSET` (31) request.
    pub struct GetMinOffsetRequestHeader {
        /// `topic` (required).
        topic: String = "topic",
        /// `queueId` (required).
        queue_id: i32 = "queueId",
        /// `bname`.
        broker_name: Option<String> = "bname",
    }
}

command_header! {
    /// `GET_MIN_OFFSET` response.
    pub struct GetMinOffsetResponseHeader {
        /// `offset` (required).
        offset: i64 = "offset",
    }
}

command_header! {
    /// `SEARCH_OFFSET_BY_TIMESTAMP` (29) request.
    pub struct SearchOffsetRequestHeader {
        /// `topic` (required).
        topic: String = "topic",
        /// `queueId` (required).
        queue_id: i32 = "queueId",
        /// `timestamp` (required): milliseconds since the epoch.
        timestamp: i64 = "timestamp",
        /// `boundaryType`: `LOWER` (absent) or `UPPER`, case-insensitive.
        boundary_type: Option<String> = "boundaryType",
        /// `bname`.
        broker_name: Option<String> = "bname",
    }
}

command_header! {
    /// `SEARCH_OFFSET_BY_TIMESTAMP` response.
    pub struct SearchOffsetResponseHeader {
        /// `offset` (required).
        offset: i64 = "offset",
    }
}

command_header! {
    /// `GET_EARLIEST_MSG_STORETIME` (32) request.
    pub struct GetEarliestMsgStoretimeRequestHeader {
        /// `topic` (required).
        topic: String = "topic",
        /// `queueId` (required).
        queue_id: i32 = "queueId",
        /// `bname`.
        broker_name: Option<String> = "bname",
    }
}

command_header! {
    /// `GET_EARLIEST_MSG_STORETIME` response.
    pub struct GetEarliestMsgStoretimeResponseHeader {
        /// `timestamp` (required).
        timestamp: i64 = "timestamp",
    }
}

command_header! {
    /// `VIEW_MESSAGE_BY_ID` (33) request.
    pub struct ViewMessageRequestHeader {
        /// `topic`.
        topic: Option<String> = "topic",
        /// `offset` (required): the message's commit log offset.
        offset: i64 = "offset",
    }
}

command_header! {
    /// `QUERY_MESSAGE` (12) request: messages by key in a time range.
    pub struct QueryMessageRequestHeader {
        /// `topic` (required).
        topic: String = "topic",
        /// `key` (required).
        key: String = "key",
        /// `maxNum` (required).
        max_num: i32 = "maxNum",
        /// `beginTimestamp` (required).
        begin_timestamp: i64 = "beginTimestamp",
        /// `endTimestamp` (required).
        end_timestamp: i64 = "endTimestamp",
    }
}

command_header! {
    /// `QUERY_MESSAGE` response.
    pub struct QueryMessageResponseHeader {
        /// `indexLastUpdateTimestamp` (required).
        index_last_update_timestamp: i64 = "indexLastUpdateTimestamp",
        /// `indexLastUpdatePhyoffset` (required).
        index_last_update_phyoffset: i64 = "indexLastUpdatePhyoffset",
    }
}
