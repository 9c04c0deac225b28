//! Nameserver request and response headers (RocketMQ's `header/namesrv` package and
//! `GetTopicsByClusterRequestHeader`).

use super::field::command_header;

command_header! {
    /// `REGISTER_BROKER` (103) request: a broker announcing itself; the body carries its topic
    /// configuration.
    pub struct RegisterBrokerRequestHeader {
        /// `brokerName` (required).
        broker_name: String = "brokerName",
        /// `brokerAddr` (required): `ip:port` clients connect to.
        broker_addr: String = "brokerAddr",
        /// `clusterName` (required).
        cluster_name: String = "clusterName",
        /// `haServerAddr` (required): the HA replication address.
        ha_server_addr: String = "haServerAddr",
        /// `brokerId` (required): 0 is the master.
        broker_id: i64 = "brokerId",
        /// `heartbeatTimeoutMillis`.
        heartbeat_timeout_millis: Option<i64> = "heartbeatTimeoutMillis",
        /// `enableActingMaster`.
        enable_acting_master: Option<bool> = "enableActingMaster",
        /// `compressed`: whether the body is compressed (absent means false).
        compressed: Option<bool> = "compressed",
        /// `bodyCrc32`: CRC32 of the body (absent or 0 means not checked).
        body_crc32: Option<i32> = "bodyCrc32",
    }
}

command_header! {
    /// `REGISTER_BROKER` response.
    pub struct RegisterBrokerResponseHeader {
        /// `haServerAddr` of the master.
        ha_server_addr: Option<String> = "haServerAddr",
        /// `masterAddr`: the master's address, for slaves.
        master_addr: Option<String> = "masterAddr",
    }
}

command_header! {
    /// `UNREGISTER_BROKER` (104) request.
    pub struct UnRegisterBrokerRequestHeader {
        /// `brokerName` (required).
        broker_name: String = "brokerName",
        /// `brokerAddr` (required).
        broker_addr: String = "brokerAddr",
        /// `clusterName` (required).
        cluster_name: String = "clusterName",
        /// `brokerId` (required).
        broker_id: i64 = "brokerId",
    }
}

command_header! {
    /// `GET_ROUTEINFO_BY_TOPIC` (105) request.
    pub struct GetRouteInfoRequestHeader {
        /// `topic` (required).
        topic: String = "topic",
        /// `acceptStandardJsonOnly`: the client cannot parse fastjson's non-standard map keys.
        accept_standard_json_only: Option<bool> = "acceptStandardJsonOnly",
    }
}

command_header! {
    /// `DELETE_TOPIC_IN_NAMESRV` (216) request.
    pub struct DeleteTopicFromNamesrvRequestHeader {
        /// `topic` (required).
        topic: String = "topic",
        /// `clusterName`: restrict the deletion to one cluster.
        cluster_name: Option<String> = "clusterName",
    }
}

command_header! {
    /// `GET_KV_CONFIG` (101) request.
    pub struct GetKVConfigRequestHeader {
        /// `namespace` (required).
        namespace: String = "namespace",
        /// `key` (required).
        key: String = "key",
    }
}

command_header! {
    /// `GET_KV_CONFIG` response.
    pub struct GetKVConfigResponseHeader {
        /// `value`, absent when the key is unknown.
        value: Option<String> = "value",
    }
}

command_header! {
    /// `PUT_KV_CONFIG` (100) request.
    pub struct PutKVConfigRequestHeader {
        /// `namespace` (required).
        namespace: String = "namespace",
        /// `key` (required).
        key: String = "key",
        /// `value` (required).
        value: String = "value",
    }
}

command_header! {
    /// `DELETE_KV_CONFIG` (102) request.
    pub struct DeleteKVConfigRequestHeader {
        /// `namespace` (required).
        namespace: String = "namespace",
        /// `key` (required).
        key: String = "key",
    }
}

command_header! {
    /// `QUERY_DATA_VERSION` (322) request: has the broker's registration changed?
    pub struct QueryDataVersionRequestHeader {
        /// `brokerName` (required).
        broker_name: String = "brokerName",
        /// `brokerAddr` (required).
        broker_addr: String = "brokerAddr",
        /// `clusterName` (required).
        cluster_name: String = "clusterName",
        /// `brokerId` (required).
        broker_id: i64 = "brokerId",
    }
}

command_header! {
    /// `QUERY_DATA_VERSION` response.
    pub struct QueryDataVersionResponseHeader {
        /// `changed` (required).
        changed: bool = "changed",
    }
}

command_header! {
    /// `GET_KVLIST_BY_NAMESPACE` (219) request.
    pub struct GetKVListByNamespaceRequestHeader {
        /// `namespace` (required).
        namespace: String = "namespace",
    }
}

command_header! {
    /// `GET_TOPICS_BY_CLUSTER` (224) request.
    pub struct GetTopicsByClusterRequestHeader {
        /// `cluster` (required).
        cluster: String = "cluster",
    }
}
