//! The command line: mqadmin's subcommand names and short options, plus Tern's global flags.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `tern`: administer a Tern (or Apache RocketMQ) cluster through its nameservers and brokers.
#[derive(Debug, Parser)]
#[command(name = "tern", version, about)]
pub struct Cli {
    /// Nameserver addresses, `;`-separated; each is tried in turn.
    #[arg(
        short = 'n',
        long = "namesrv-addr",
        env = "NAMESRV_ADDR",
        default_value = "127.0.0.1:9876",
        global = true
    )]
    pub namesrv_addr: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Per-request timeout in milliseconds.
    #[arg(long = "timeout-ms", default_value_t = 3000, global = true)]
    pub timeout_ms: u64,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// One `-b broker address` or `-c cluster` choice of target brokers.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// A broker address (`host:port`).
    #[arg(short = 'b', long = "broker-addr")]
    pub broker_addr: Option<String>,
    /// Every master of this cluster.
    #[arg(short = 'c', long = "cluster")]
    pub cluster: Option<String>,
}

/// The subcommands, named as mqadmin names them.
#[derive(Debug, Subcommand)]
#[command(rename_all = "camelCase")]
pub enum Command {
    /// Create or update a topic on a broker or on every master of a cluster.
    UpdateTopic {
        /// The topic.
        #[arg(short = 't', long)]
        topic: String,
        #[command(flatten)]
        target: Target,
        /// Read queues.
        #[arg(short = 'r', long = "read-queues", default_value_t = 8)]
        read_queues: i32,
        /// Write queues.
        #[arg(short = 'w', long = "write-queues", default_value_t = 8)]
        write_queues: i32,
        /// Permission bits: 2 write, 4 read, 6 both.
        #[arg(short = 'p', long, default_value_t = 6)]
        perm: i32,
        /// Ordered topic.
        #[arg(short = 'o', long)]
        order: bool,
    },
    /// Delete a topic from every master of a cluster and from the nameservers.
    DeleteTopic {
        /// The topic.
        #[arg(short = 't', long)]
        topic: String,
        /// The cluster.
        #[arg(short = 'c', long)]
        cluster: String,
    },
    /// List every topic the nameserver knows.
    TopicList,
    /// Show a topic's route: brokers, addresses, queues.
    TopicRoute {
        /// The topic.
        #[arg(short = 't', long)]
        topic: String,
    },
    /// Show min and max offsets of every queue of a topic.
    TopicStatus {
        /// The topic.
        #[arg(short = 't', long)]
        topic: String,
    },
    /// Create or update a subscription (consumer) group.
    UpdateSubGroup {
        /// The group.
        #[arg(short = 'g', long)]
        group: String,
        #[command(flatten)]
        target: Target,
        /// Whether the group may consume.
        #[arg(short = 's', long = "consume-enable", default_value_t = true, action = clap::ArgAction::Set)]
        consume_enable: bool,
        /// Deliveries before a message goes to the dead-letter queue.
        #[arg(short = 'q', long = "retry-max-times", default_value_t = 16)]
        retry_max_times: i32,
    },
    /// Delete a subscription group.
    DeleteSubGroup {
        /// The group.
        #[arg(short = 'g', long)]
        group: String,
        #[command(flatten)]
        target: Target,
    },
    /// Show a group's consumer offsets and lag (on one topic, or on all the group's topics).
    ConsumerProgress {
        /// The group.
        #[arg(short = 'g', long)]
        group: String,
        /// Only this topic.
        #[arg(short = 't', long)]
        topic: Option<String>,
    },
    /// List the clients connected in a consumer group.
    ConsumerConnection {
        /// The group.
        #[arg(short = 'g', long)]
        group: String,
    },
    /// List clusters and their brokers.
    ClusterList,
    /// Show a broker's runtime statistics.
    BrokerStatus {
        #[command(flatten)]
        target: Target,
    },
    /// Show a broker's configuration.
    GetBrokerConfig {
        #[command(flatten)]
        target: Target,
    },
    /// Show a message by its offset message id.
    QueryMsgById {
        /// The offset message id (32 or 56 hex digits).
        #[arg(short = 'i', long = "msg-id")]
        msg_id: String,
        /// Ask this broker instead of the store host the id names.
        #[arg(short = 'b', long = "broker-addr")]
        broker_addr: Option<String>,
    },
    /// Find messages by key.
    QueryMsgByKey {
        /// The topic.
        #[arg(short = 't', long)]
        topic: String,
        /// The key.
        #[arg(short = 'k', long)]
        key: String,
        /// Earliest store time, milliseconds since the epoch.
        #[arg(short = 'b', long, default_value_t = 0)]
        begin: i64,
        /// Latest store time, milliseconds since the epoch.
        #[arg(short = 'e', long, default_value_t = i64::MAX)]
        end: i64,
    },
    /// Find a message by its unique key (the client message id producers set).
    QueryMsgByUniqueKey {
        /// The topic.
        #[arg(short = 't', long)]
        topic: String,
        /// The unique key (`UNIQ_KEY`).
        #[arg(short = 'i', long = "msg-id")]
        msg_id: String,
        /// Earliest store time, milliseconds since the epoch.
        #[arg(short = 'b', long, default_value_t = 0)]
        begin: i64,
        /// Latest store time, milliseconds since the epoch.
        #[arg(short = 'e', long, default_value_t = i64::MAX)]
        end: i64,
    },
    /// Show the message at a queue offset.
    QueryMsgByOffset {
        /// The topic.
        #[arg(short = 't', long)]
        topic: String,
        /// The broker name.
        #[arg(short = 'b', long = "broker-name")]
        broker_name: String,
        /// The queue id.
        #[arg(short = 'i', long = "queue-id")]
        queue_id: i32,
        /// The consume-queue offset.
        #[arg(short = 'o', long)]
        offset: i64,
    },
    /// Move a group's offsets on a topic to the first message stored at or after a time.
    ResetOffsetByTime {
        /// The group.
        #[arg(short = 'g', long)]
        group: String,
        /// The topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Milliseconds since the epoch, or `now`.
        #[arg(short = 's', long)]
        timestamp: String,
    },
    /// Send one message.
    SendMessage {
        /// The topic.
        #[arg(short = 't', long)]
        topic: String,
        /// The body (UTF-8).
        #[arg(short = 'p', long)]
        body: String,
        /// Keys, space-separated.
        #[arg(short = 'k', long)]
        keys: Option<String>,
        /// Tag.
        #[arg(short = 'c', long)]
        tags: Option<String>,
        /// Broker name (default: the first writable one).
        #[arg(short = 'b', long = "broker-name")]
        broker_name: Option<String>,
        /// Queue id (default: 0).
        #[arg(short = 'i', long = "queue-id")]
        queue_id: Option<i32>,
    },
    /// Pull messages from a topic and print them.
    ConsumeMessage {
        /// The topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Only this broker.
        #[arg(short = 'b', long = "broker-name")]
        broker_name: Option<String>,
        /// Only this queue.
        #[arg(short = 'i', long = "queue-id")]
        queue_id: Option<i32>,
        /// First offset (default: each queue's minimum).
        #[arg(short = 'o', long)]
        offset: Option<i64>,
        /// Most messages to print.
        #[arg(short = 'c', long = "count", default_value_t = 128)]
        count: usize,
        /// Consumer group the pulls are made as (its offsets are not changed).
        #[arg(short = 'g', long, default_value = crate::commands::ADMIN_GROUP)]
        group: String,
    },
    /// Set a KV config entry on every nameserver.
    UpdateKvConfig {
        /// The namespace.
        #[arg(short = 's', long)]
        namespace: String,
        /// The key.
        #[arg(short = 'k', long)]
        key: String,
        /// The value.
        #[arg(short = 'v', long)]
        value: String,
    },
    /// Delete a KV config entry from every nameserver.
    DeleteKvConfig {
        /// The namespace.
        #[arg(short = 's', long)]
        namespace: String,
        /// The key.
        #[arg(short = 'k', long)]
        key: String,
    },
    /// List a KV config namespace (Tern addition).
    GetKvList {
        /// The namespace.
        #[arg(short = 's', long)]
        namespace: String,
    },
    /// Stop local broker or nameserver processes (SIGTERM), as mqshutdown does.
    Shutdown {
        /// Which server.
        #[arg(value_enum)]
        server: Server,
        /// Only this process (it must still be one of that server's processes).
        #[arg(long)]
        pid: Option<i32>,
        /// Only list the processes that would be signalled.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
}

/// The servers `shutdown` can stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Server {
    /// `tern-broker` processes.
    Broker,
    /// `tern-namesrv` processes.
    Namesrv,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommands_have_mqadmin_names() {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        for n in [
            "updateTopic",
            "deleteTopic",
            "topicList",
            "topicRoute",
            "topicStatus",
            "updateSubGroup",
            "deleteSubGroup",
            "consumerProgress",
            "consumerConnection",
            "clusterList",
            "brokerStatus",
            "queryMsgById",
            "queryMsgByKey",
            "queryMsgByUniqueKey",
            "getBrokerConfig",
            "queryMsgByOffset",
            "resetOffsetByTime",
            "sendMessage",
            "consumeMessage",
            "shutdown",
        ] {
            assert!(names.iter().any(|x| x == n), "missing {n}");
        }
    }

    #[test]
    fn global_flags_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from(["tern", "topicRoute", "-t", "T", "-n", "a:1;b:2", "--json"])
            .unwrap();
        assert_eq!(cli.namesrv_addr, "a:1;b:2");
        assert!(cli.json);
        assert!(matches!(cli.command, Command::TopicRoute { ref topic } if topic == "T"));
    }

    #[test]
    fn update_topic_needs_exactly_one_target() {
        assert!(Cli::try_parse_from(["tern", "updateTopic", "-t", "T"]).is_err());
        assert!(
            Cli::try_parse_from(["tern", "updateTopic", "-t", "T", "-b", "x:1", "-c", "C"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["tern", "updateTopic", "-t", "T", "-c", "C"]).is_ok());
    }
}
